/* motion_blur — MNIST-C / ImageNet-C, which call ImageMagick's MotionBlurImage with a
 * random angle; restated from its definition (docs/corruptions.md). */
#include <math.h>

#include "mr_corrupt_impl.h"

/* mnist-c motion_blur: (radius, sigma) = [(10,3), (15,5), (15,8), (15,12), (20,15)]
 * [severity - 1] (default 1); angle ~ U(-45, 45) degrees */
static const struct { double radius, sigma; } motion_p[MR_SEVERITY_MAX] = {
    {10, 3}, {15, 5}, {15, 8}, {15, 12}, {20, 15}};

#define MOTION_MAX_WIDTH 256

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)ws;
    double radius = motion_p[s - 1].radius, sigma = motion_p[s - 1].sigma;
    double angle = (-45.0 + 90.0 * gsl_rng_uniform(r)) * MR_PI / 180.0;
    /* GetOptimalKernelWidth1D(radius, sigma) = 2 ceil(radius) + 1 for radius > 0 */
    int width = (int)(2.0 * ceil(radius) + 1.0);
    if (width > MOTION_MAX_WIDTH) width = MOTION_MAX_WIDTH;
    double k[MOTION_MAX_WIDTH], norm = 0.0;
    int ox[MOTION_MAX_WIDTH], oy[MOTION_MAX_WIDTH];
    for (int i = 0; i < width; i++) {
        /* one-sided Gaussian weights exp(-i^2 / (2 sigma^2)), normalised */
        k[i] = exp(-((double)i * i) / (2.0 * sigma * sigma));
        norm += k[i];
    }
    for (int i = 0; i < width; i++) k[i] /= norm;
    double px = width * sin(angle), py = width * cos(angle), hyp = hypot(px, py);
    for (int i = 0; i < width; i++) {
        ox[i] = (int)ceil(i * py / hyp - 0.5);
        oy[i] = (int)ceil(i * px / hyp - 0.5);
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int i = 0; i < width; i++) {
                    int xx = x + ox[i], yy = y + oy[i];
                    /* edge virtual pixels */
                    xx = xx < 0 ? 0 : xx >= W ? W - 1 : xx;
                    yy = yy < 0 ? 0 : yy >= H ? H - 1 : yy;
                    acc += k[i] * in[((size_t)yy * W + xx) * C + c];
                }
                /* as the reference reads it back: ImageMagick rounds to its 16-bit
                 * quantum, the 8-bit output truncates (not plain rounding) */
                out[((size_t)y * W + x) * C + c] = mr_img_q16_to_u8(acc);
            }
    return 0;
}

const mr_corruption_type mr_corruption_motion_blur = {
    .name = "motion_blur", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_BLUR, .benchmark = "MNIST-C motion_blur",
    .summary = "one-sided Gaussian motion blur along a random angle in [-45, 45] degrees",
    .deterministic = 0, .default_severity = 1, .image = apply};
