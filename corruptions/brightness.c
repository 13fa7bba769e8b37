/* brightness — MNIST-C (grayscale) / ImageNet-C (RGB): HSV value + c. */
#include "mr_corrupt_impl.h"

/* mnist-c / make_imagenet_c brightness: c = [.1, .2, .3, .4, .5][severity - 1]
 * (mnist-c default 5) */
static const double brightness_c[MR_SEVERITY_MAX] = {.1, .2, .3, .4, .5};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t hw = (size_t)H * W;
    double c = brightness_c[s - 1], *f = ws->f[0];
    mr_img_to_unit(f, in, hw * C);
    for (size_t i = 0; i < hw; i++) {
        if (C == 1) {
            /* mnist-c: gray2rgb -> rgb2hsv (H = S = 0, V = x) -> V = clip(V + c, 0, 1)
             * -> hsv2rgb (v, v, v) -> rgb2gray */
            double v = f[i] + c;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            f[i] = mr_rgb2gray(v, v, v);
        } else {
            /* make_imagenet_c: rgb2hsv -> V = clip(V + c, 0, 1) -> hsv2rgb */
            double hsv[3];
            mr_rgb2hsv(f + 3 * i, hsv);
            hsv[2] += c;
            hsv[2] = hsv[2] < 0 ? 0 : hsv[2] > 1 ? 1 : hsv[2];
            mr_hsv2rgb(hsv, f + 3 * i);
        }
    }
    mr_img_from_unit(out, f, hw * C);
    return 0;
}

const mr_corruption_type mr_corruption_brightness = {
    .name = "brightness", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_WEATHER, .benchmark = "MNIST-C brightness",
    .summary = "HSV value + .1 .. .5 (grayscale: clip(x + c, 0, 1))",
    .deterministic = 1, .default_severity = 5, .image = apply};
