/* shot_noise — MNIST-C / ImageNet-C: out = Poisson(c x) / c per element. */
#include <gsl/gsl_randist.h>

#include "mr_corrupt_impl.h"

/* mnist-c corruptions.py shot_noise: c = [60, 25, 12, 5, 3][severity - 1] (default 5) */
static const double shot_c[MR_SEVERITY_MAX] = {60, 25, 12, 5, 3};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double c = shot_c[s - 1], *f = ws->f[0];
    for (size_t i = 0; i < n; i++) {
        /* np.random.poisson(x * c) / float(c), x = value / 255. */
        f[i] = gsl_ran_poisson(r, in[i] / 255.0 * c) / c;
    }
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_shot_noise = {
    .name = "shot_noise", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_NOISE, .benchmark = "MNIST-C shot_noise",
    .summary = "Poisson photon noise: Poisson(c x) / c, c = 60 .. 3",
    .deterministic = 0, .default_severity = 5, .image = apply};
