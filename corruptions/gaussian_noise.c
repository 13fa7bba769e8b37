/* gaussian_noise — ImageNet-C family, CIFAR-10-C constants: x + N(0, c^2). */
#include <gsl/gsl_randist.h>

#include "mr_corrupt_impl.h"

/* make_cifar_c gaussian_noise: c = [.04, .06, .08, .09, .10][severity - 1] (the 32-px
 * constants; make_imagenet_c's 224-px ones are [.08, .12, .18, .26, .38]) */
static const double gauss_c[MR_SEVERITY_MAX] = {.04, .06, .08, .09, .10};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double *f = ws->f[0];
    mr_img_to_unit(f, in, n);
    for (size_t i = 0; i < n; i++) f[i] += gsl_ran_gaussian(r, gauss_c[s - 1]);
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_gaussian_noise = {
    .name = "gaussian_noise", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_NOISE,
    .benchmark = "CIFAR-10-C gaussian_noise (ImageNet-C family)",
    .summary = "additive Gaussian noise, std .04 .. .10 of the range",
    .deterministic = 0, .default_severity = 0, .image = apply};
