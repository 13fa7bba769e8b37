/* saturate — Fashion-MNIST-C (mnist-c's saturate) on grayscale, ImageNet-C's on RGB. */
#include "mr_corrupt_impl.h"

/* (scale, shift). ImageNet-C / mnist-c: [(0.3,0), (0.1,0), (2,0), (5,0.1), (20,0.2)],
 * whose first two levels desaturate: the pixel change is not monotone in severity.
 * Ours keep the saturating side: (1.5, 0) = CIFAR-10-C severity 3, (5, .1) =
 * ImageNet-C severity 4, (20, .2) = ImageNet-C severity 5 = the Fashion-MNIST-C
 * default; (3, 0) and (10, .15) lie between. */
static const struct { double scale, shift; } saturate_p[MR_SEVERITY_MAX] = {
    {1.5, 0}, {3, 0}, {5, .1}, {10, .15}, {20, .2}};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t hw = (size_t)H * W;
    double a = saturate_p[s - 1].scale, b = saturate_p[s - 1].shift, *f = ws->f[0];
    mr_img_to_unit(f, in, hw * C);
    for (size_t i = 0; i < hw; i++) {
        double hsv[3], rgb[3];
        if (C == 1) {
            /* mnist-c: gray2rgb -> rgb2hsv = (0, 0, v) -> every channel * a + b, clipped
             * to [0, 1] -> hsv2rgb -> rgb2gray */
            double v = f[i];
            hsv[0] = hsv[1] = b < 0 ? 0 : b > 1 ? 1 : b;
            hsv[2] = v * a + b;
            hsv[2] = hsv[2] < 0 ? 0 : hsv[2] > 1 ? 1 : hsv[2];
            mr_hsv2rgb(hsv, rgb);
            f[i] = mr_rgb2gray(rgb[0], rgb[1], rgb[2]);
        } else {
            /* make_imagenet_c: S = clip(S * a + b, 0, 1) */
            mr_rgb2hsv(f + 3 * i, hsv);
            hsv[1] = hsv[1] * a + b;
            hsv[1] = hsv[1] < 0 ? 0 : hsv[1] > 1 ? 1 : hsv[1];
            mr_hsv2rgb(hsv, f + 3 * i);
        }
    }
    mr_img_from_unit(out, f, hw * C);
    return 0;
}

const mr_corruption_type mr_corruption_saturate = {
    .name = "saturate", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_DIGITAL, .benchmark = "Fashion-MNIST-C saturate",
    .summary = "HSV saturation * 1.5 .. 20 + 0 .. .2 (grayscale: mnist-c's HSV formula)",
    .deterministic = 1, .default_severity = 5, .image = apply};
