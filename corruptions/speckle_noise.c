/* speckle_noise — ImageNet-C family, CIFAR-10-C constants: x + x N(0, c^2). */
#include <gsl/gsl_randist.h>

#include "mr_corrupt_impl.h"

/* make_cifar_c speckle_noise: c = [.06, .1, .12, .16, .2][severity - 1] (224 px:
 * [.15, .2, .35, .45, .6]) */
static const double speckle_c[MR_SEVERITY_MAX] = {.06, .1, .12, .16, .2};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double *f = ws->f[0];
    mr_img_to_unit(f, in, n);
    for (size_t i = 0; i < n; i++) f[i] += f[i] * gsl_ran_gaussian(r, speckle_c[s - 1]);
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_speckle_noise = {
    .name = "speckle_noise", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_NOISE,
    .benchmark = "CIFAR-10-C speckle_noise (ImageNet-C family)",
    .summary = "multiplicative Gaussian noise x + x N(0, c^2), c = .06 .. .2",
    .deterministic = 0, .default_severity = 0, .image = apply};
