/* inverse — Fashion-MNIST-C's inverse (mnist-c inverse: 255 - x), blended in by
 * severity. */
#include "mr_corrupt_impl.h"

/* Fashion-MNIST-C has one severity: the transformed image t (our severity 5).
 * Severity s shows it with opacity s / 5 over the original: round((x (5 - s) + t s) / 5)
 * per value. */
static const int inverse_weight[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5}; /* fifths */

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    uint8_t *t = ws->u;
    /* mnist-c inverse: 255. - x */
    for (size_t i = 0; i < (size_t)H * W * C; i++) t[i] = (uint8_t)(255 - in[i]);
    mr_img_blend(out, in, t, (size_t)H * W * C, inverse_weight[s - 1]);
    return 0;
}

const mr_corruption_type mr_corruption_inverse = {
    .name = "inverse", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_MNISTC, .benchmark = "Fashion-MNIST-C inverse",
    .summary = "inverted image (255 - x) with opacity 1/5 .. 5/5",
    .deterministic = 1, .default_severity = 5, .image = apply};
