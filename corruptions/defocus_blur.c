/* defocus_blur — ImageNet-C family, CIFAR-10-C constants: anti-aliased disk kernel. */
#include <math.h>

#include "mr_corrupt_impl.h"

/* make_cifar_c defocus_blur: (radius, alias_blur) =
 * [(0.3,0.4), (0.4,0.5), (0.5,0.6), (1,0.2), (1.5,0.1)][severity - 1] (224 px:
 * [(3,.1), (4,.5), (6,.5), (8,.5), (10,.5)]) */
static const struct { double radius, alias; } defocus_p[MR_SEVERITY_MAX] = {
    {0.3, 0.4}, {0.4, 0.5}, {0.5, 0.6}, {1.0, 0.2}, {1.5, 0.1}};

#define DISK_MAX 33 /* kernel side for radius <= 16 (the table needs 17: radius <= 8) */

/* make_imagenet_c disk(radius, alias_blur), float32 like the reference: indicator of
 * X^2 + Y^2 <= r^2 on L = arange(-8, 9) (r <= 8) or arange(-r, r + 1), normalised, then
 * cv2.GaussianBlur with ksize 3 (r <= 8) or 5 and sigma alias_blur (BORDER_REFLECT_101).
 * Returns the side. */
static int disk(double *k, double radius, double alias)
{
    int half = radius <= 8 ? 8 : (int)floor(radius), ks = radius <= 8 ? 3 : 5;
    if (half > (DISK_MAX - 1) / 2) half = (DISK_MAX - 1) / 2;
    int n = 2 * half + 1;
    float d[DISK_MAX * DISK_MAX], t[DISK_MAX * DISK_MAX], g[5];
    float cnt = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double X = j - half, Y = i - half;
            d[i * n + j] = X * X + Y * Y <= radius * radius ? 1.0f : 0.0f;
            cnt += d[i * n + j];
        }
    for (int i = 0; i < n * n; i++) d[i] /= cnt;
    /* cv2.getGaussianKernel(ks, sigma): exp(-(i - (ks-1)/2)^2 / (2 sigma^2)), normalised */
    double gs = 0, gd[5];
    for (int i = 0; i < ks; i++) {
        double x = i - (ks - 1) / 2.0;
        gd[i] = exp(-x * x / (2 * alias * alias));
        gs += gd[i];
    }
    for (int i = 0; i < ks; i++) g[i] = (float)(gd[i] / gs);
    int h = ks / 2;
#define RF(i) ((i) < 0 ? -(i) : (i) >= n ? 2 * n - 2 - (i) : (i)) /* reflect-101 */
    for (int i = 0; i < n; i++) /* rows: along x */
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int q = -h; q <= h; q++) acc += (double)d[i * n + RF(j + q)] * g[q + h];
            t[i * n + j] = (float)acc;
        }
    for (int i = 0; i < n; i++) /* then along y */
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int q = -h; q <= h; q++) acc += (double)t[RF(i + q) * n + j] * g[q + h];
            k[i * n + j] = (float)acc;
        }
#undef RF
    return n;
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t n = (size_t)H * W * C;
    double k[DISK_MAX * DISK_MAX];
    int side = disk(k, defocus_p[s - 1].radius, defocus_p[s - 1].alias);
    /* cv2.filter2D(x, -1, kernel) per channel: correlation, BORDER_REFLECT_101 */
    mr_img_to_unit(ws->f[0], in, n);
    mr_correlate2d(ws->f[1], ws->f[0], H, W, C, k, side, side, MR_BORDER_MIRROR);
    mr_img_from_unit(out, ws->f[1], n);
    return 0;
}

const mr_corruption_type mr_corruption_defocus_blur = {
    .name = "defocus_blur", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_BLUR,
    .benchmark = "CIFAR-10-C defocus_blur (ImageNet-C family)",
    .summary = "defocus: anti-aliased disk kernel of radius .3 .. 1.5 px",
    .deterministic = 1, .default_severity = 0, .image = apply};
