/* contrast — Fashion-MNIST-C (mnist-c's contrast): shrink towards the per-channel mean. */
#include "mr_corrupt_impl.h"

/* mnist-c contrast (from make_imagenet_c): c = [.4, .3, .2, .1, .05][severity - 1];
 * Fashion-MNIST-C uses mnist-c's default, severity 4 */
static const double contrast_c[MR_SEVERITY_MAX] = {.4, .3, .2, .1, .05};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t hw = (size_t)H * W;
    double c = contrast_c[s - 1], *f = ws->f[0];
    mr_img_to_unit(f, in, hw * C);
    for (int ch = 0; ch < C; ch++) {
        /* means = np.mean(x, axis=(0, 1)) per channel */
        double sum = 0;
        for (size_t i = 0; i < hw; i++) sum += f[i * C + ch];
        double m = sum / (double)hw;
        for (size_t i = 0; i < hw; i++) f[i * C + ch] = (f[i * C + ch] - m) * c + m;
    }
    mr_img_from_unit(out, f, hw * C);
    return 0;
}

const mr_corruption_type mr_corruption_contrast = {
    .name = "contrast", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_DIGITAL, .benchmark = "Fashion-MNIST-C contrast",
    .summary = "contrast scaled to .4 .. .05 about the per-channel mean",
    .deterministic = 1, .default_severity = 4, .image = apply};
