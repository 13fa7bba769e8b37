/* gaussian_blur — ImageNet-C family, CIFAR-10-C constants: skimage gaussian. */
#include "mr_corrupt_impl.h"

/* make_cifar_c gaussian_blur: sigma = [.4, .6, .7, .8, 1][severity - 1] px (224 px:
 * [1, 2, 3, 4, 6]) */
static const double blur_sigma[MR_SEVERITY_MAX] = {.4, .6, .7, .8, 1.0};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t n = (size_t)H * W * C;
    /* gaussian(x / 255., sigma, multichannel=True): mode 'nearest', truncate 4, both
     * spatial axes, channels apart */
    mr_img_to_unit(ws->f[0], in, n);
    mr_gaussian2d(ws->f[0], ws->f[1], H, W, C, blur_sigma[s - 1], 4.0, MR_BORDER_NEAREST);
    mr_img_from_unit(out, ws->f[0], n);
    return 0;
}

const mr_corruption_type mr_corruption_gaussian_blur = {
    .name = "gaussian_blur", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_BLUR,
    .benchmark = "CIFAR-10-C gaussian_blur (ImageNet-C family)",
    .summary = "Gaussian blur, sigma .4 .. 1 px",
    .deterministic = 1, .default_severity = 0, .image = apply};
