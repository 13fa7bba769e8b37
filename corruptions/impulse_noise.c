/* impulse_noise — MNIST-C / ImageNet-C: salt-and-pepper noise (skimage random_noise
 * mode 's&p', salt_vs_pepper 0.5). */
#include "mr_corrupt_impl.h"

/* mnist-c impulse_noise: amount = [.03, .06, .09, .17, .27][severity - 1] (default 4) */
static const double impulse_amount[MR_SEVERITY_MAX] = {.03, .06, .09, .17, .27};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double p = impulse_amount[s - 1], *f = ws->f[0];
    mr_img_to_unit(f, in, n);
    for (size_t i = 0; i < n; i++) {
        /* each element flipped with probability `amount`; a flipped element is salt (1)
         * or pepper (0) with probability 1/2 each */
        if (gsl_rng_uniform(r) < p) f[i] = gsl_rng_uniform(r) < 0.5 ? 1.0 : 0.0;
    }
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_impulse_noise = {
    .name = "impulse_noise", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_NOISE, .benchmark = "MNIST-C impulse_noise",
    .summary = "salt-and-pepper: a fraction .03 .. .27 of the values set to 0 or 255",
    .deterministic = 0, .default_severity = 4, .image = apply};
