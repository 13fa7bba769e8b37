/* flip_ud — Fashion-MNIST-C's flip_up_down (np.flipud), blended in by severity. */
#include "mr_corrupt_impl.h"

/* Fashion-MNIST-C has one severity: the transformed image t (our severity 5).
 * Severity s shows it with opacity s / 5 over the original: round((x (5 - s) + t s) / 5)
 * per value. */
static const int flip_ud_weight[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5}; /* fifths */

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    uint8_t *t = ws->u;
    /* additional_corruptions.flip_up_down: np.flipud */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                t[((size_t)y * W + x) * C + c] = in[((size_t)(H - 1 - y) * W + x) * C + c];
    mr_img_blend(out, in, t, (size_t)H * W * C, flip_ud_weight[s - 1]);
    return 0;
}

const mr_corruption_type mr_corruption_flip_ud = {
    .name = "flip_ud", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_GEOMETRIC, .benchmark = "Fashion-MNIST-C flip_up_down",
    .summary = "mirrored upside down with opacity 1/5 .. 5/5",
    .deterministic = 1, .default_severity = 5, .image = apply};
