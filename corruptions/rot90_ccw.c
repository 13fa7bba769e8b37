/* rot90_ccw — Fashion-MNIST-C's turn_left (np.rot90(x)), published under the name
 * flip_top_bottom, blended in by severity. */
#include "mr_corrupt_impl.h"

/* Fashion-MNIST-C has one severity: the transformed image t (our severity 5).
 * Severity s shows it with opacity s / 5 over the original: round((x (5 - s) + t s) / 5)
 * per value. */
static const int rot90_ccw_weight[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5}; /* fifths */

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    uint8_t *t = ws->u;
    /* additional_corruptions.turn_left = np.rot90(x): out[i, j] = x[j, W-1-i] for square
     * images; otherwise the same quarter turn about the centre, d = floor((H - W) / 2):
     * out[i, j] = x[j+d, W-1-i+d], zero outside */
    int d = (H - W) >= 0 ? (H - W) / 2 : -((W - H + 1) / 2);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            int y = j + d, x = W - 1 - i + d;
            for (int c = 0; c < C; c++)
                t[((size_t)i * W + j) * C + c] =
                    y >= 0 && y < H && x >= 0 && x < W ? in[((size_t)y * W + x) * C + c] : 0;
        }
    mr_img_blend(out, in, t, (size_t)H * W * C, rot90_ccw_weight[s - 1]);
    return 0;
}

const mr_corruption_type mr_corruption_rot90_ccw = {
    .name = "rot90_ccw", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_GEOMETRIC, .benchmark = "Fashion-MNIST-C flip_top_bottom",
    .summary = "turned 90 degrees counter-clockwise with opacity 1/5 .. 5/5",
    .deterministic = 1, .default_severity = 5, .image = apply};
