/* glass_blur — MNIST-C / ImageNet-C: blur, locally shuffle pixels, blur again. */
#include "mr_corrupt_impl.h"

/* mnist-c glass_blur: (sigma, max_delta, iterations) =
 * [(0.7,1,2), (0.9,2,1), (1,2,3), (1.1,3,2), (1.5,4,2)][severity - 1] (default 1) */
static const struct { double sigma; int delta, iters; } glass_p[MR_SEVERITY_MAX] = {
    {0.7, 1, 2}, {0.9, 2, 1}, {1.0, 2, 3}, {1.1, 3, 2}, {1.5, 4, 2}};

void mr_glass_shuffle(uint8_t *u, int H, int W, int C, int d, int iters, gsl_rng *r)
{
    /* for h, w from (28 - delta) down to delta + 1 (here H - delta, W - delta): with
     * probability 1/2 swap the pixel with (h + dy, w + dx), dx, dy uniform in
     * [-delta, delta). A true swap of all C channels, for RGB too: the ImageNet-C
     * original's `x[h, w], x[h', w'] = x[h', w'], x[h, w]` on an [H, W, 3] array copies
     * (h', w') into (h, w) and leaves (h', w') as it was (the right side holds NumPy
     * views, the second store reads the first's result); on MNIST-C's 2-D arrays it
     * swaps. We swap everywhere: the operation the code states and MNIST-C performs,
     * one behaviour for gray and RGB (docs/corruptions.md). */
    for (int it = 0; it < iters; it++)
        for (int h = H - d; h > d; h--)
            for (int w = W - d; w > d; w--) {
                if (gsl_rng_uniform(r) >= 0.5) continue;
                int dx = (int)gsl_rng_uniform_int(r, 2 * (unsigned long)d) - d;
                int dy = (int)gsl_rng_uniform_int(r, 2 * (unsigned long)d) - d;
                size_t a = ((size_t)h * W + w) * C, b = ((size_t)(h + dy) * W + (w + dx)) * C;
                for (int c = 0; c < C; c++) {
                    uint8_t t = u[a + c];
                    u[a + c] = u[b + c];
                    u[b + c] = t;
                }
            }
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double sigma = glass_p[s - 1].sigma, *f = ws->f[0];
    int d = glass_p[s - 1].delta;
    uint8_t *u = ws->u;
    /* np.uint8(gaussian(x / 255., sigma) * 255): skimage gaussian, mode 'nearest',
     * truncate 4, over both spatial axes (see docs: mnist-c's multichannel=True on a 2-D
     * array blurs along axis 0 only) */
    mr_img_to_unit(f, in, n);
    mr_gaussian2d(f, ws->f[1], H, W, C, sigma, 4.0, MR_BORDER_NEAREST);
    for (size_t i = 0; i < n; i++) u[i] = (uint8_t)(f[i] * 255.0);
    mr_glass_shuffle(u, H, W, C, d, glass_p[s - 1].iters, r);
    mr_img_to_unit(f, u, n);
    mr_gaussian2d(f, ws->f[1], H, W, C, sigma, 4.0, MR_BORDER_NEAREST);
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_glass_blur = {
    .name = "glass_blur", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_BLUR, .benchmark = "MNIST-C glass_blur",
    .summary = "Gaussian blur, local pixel shuffling by up to 1 .. 4 px, blur again",
    .deterministic = 0, .default_severity = 1, .image = apply};
