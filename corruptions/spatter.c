/* spatter — MNIST-C (mud variant of ImageNet-C's spatter): thresholded blurred noise
 * blobs painted over the image. */
#include <gsl/gsl_randist.h>

#include "mr_corrupt_impl.h"

/* (loc, scale, sigma, threshold, sigma2). mnist-c spatter: [(0.65,0.3,4,0.69,0.6),
 * (0.65,0.3,3,0.68,0.6), (0.65,0.3,2,0.68,0.5), (0.65,0.3,1,0.65,1.5), (0.67,0.4,1,0.65,
 * 1.5)][severity - 1] (default 4; its sixth value, ImageNet-C's water/mud switch, is
 * unused: mnist-c paints mud at every severity). Its severities 1-3 (large smooth blobs)
 * change Fashion-MNIST images more than its default severity 4 (17.5 vs 8.9 grey levels
 * at severity 3), so they are replaced by severity 4's small blobs with a lower mean
 * liquid level (loc .59, .61, .63); severities 4 and 5 are mnist-c's. */
static const struct { double loc, scale, sigma, thr, sigma2; } spatter_p[MR_SEVERITY_MAX] = {
    {0.59, 0.3, 1, 0.65, 1.5}, {0.61, 0.3, 1, 0.65, 1.5}, {0.63, 0.3, 1, 0.65, 1.5},
    {0.65, 0.3, 1, 0.65, 1.5}, {0.67, 0.4, 1, 0.65, 1.5}};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t hw = (size_t)H * W, n = hw * C;
    double *f = ws->f[0], *liquid = ws->f[1], *tmp = ws->f[2];
    /* mnist-c's mud is grey 63/255; on RGB images ImageNet-C's mud brown (63, 42, 20) */
    static const double mud[3] = {63 / 255., 42 / 255., 20 / 255.};
    mr_img_to_unit(f, in, n);
    /* liquid layer ~ N(loc, scale^2) per pixel, skimage gaussian (nearest, truncate 4) */
    for (size_t i = 0; i < hw; i++)
        liquid[i] = spatter_p[s - 1].loc + gsl_ran_gaussian(r, spatter_p[s - 1].scale);
    mr_gaussian2d(liquid, tmp, H, W, 1, spatter_p[s - 1].sigma, 4.0, MR_BORDER_NEAREST);
    double thr = spatter_p[s - 1].thr;
    /* liquid[liquid < thr] = 0; m = liquid > thr; m = gaussian(m, sigma2); m[m < .8] = 0 */
    for (size_t i = 0; i < hw; i++) liquid[i] = liquid[i] > thr ? 1.0 : 0.0;
    mr_gaussian2d(liquid, tmp, H, W, 1, spatter_p[s - 1].sigma2, 4.0, MR_BORDER_NEAREST);
    for (size_t i = 0; i < hw; i++) {
        double m = liquid[i] < 0.8 ? 0.0 : liquid[i];
        for (int c = 0; c < C; c++) {
            double col = C == 1 ? 63 / 255. : mud[c];
            f[i * C + c] = f[i * C + c] * (1 - m) + col * m;
        }
    }
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_spatter = {
    .name = "spatter", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_WEATHER, .benchmark = "MNIST-C spatter",
    .summary = "mud blobs: thresholded, blurred Gaussian noise painted grey (RGB: brown)",
    .deterministic = 0, .default_severity = 4, .image = apply};
