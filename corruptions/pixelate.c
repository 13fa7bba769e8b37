/* pixelate — ImageNet-C family: BOX downscale and BOX upscale (PIL's resampler). */
#include <math.h>

#include "mr_corrupt_impl.h"

/* Target size factor. ImageNet-C / mnist-c: [.6, .5, .4, .3, .25] (default 3), CIFAR-10-C
 * [.95, .9, .85, .75, .65]. At 28 px both ladders are non-monotone (BOX aliasing makes
 * 28 -> 16 change a Fashion-MNIST image more than 28 -> 14, and 28 -> 26 more than
 * 28 -> 25); ours keeps mnist-c's .4 (28 -> 11) as severity 3 and picks sizes 20, 15,
 * 11, 8, 6 whose mean change increases (docs/corruptions.md). */
static const double pixelate_c[MR_SEVERITY_MAX] = {.72, .54, .4, .29, .22};

#define PREC 22   /* Pillow Resample.c PRECISION_BITS = 32 - 8 - 2 */
#define KMAX 64

/* Pillow precompute_coeffs + normalize_coeffs_8bpc for the BOX filter (support 0.5) and
 * output index xx: taps in[xmin .. xmin + cnt - 1] with fixed-point weights k. */
static int box_coeffs(int in_size, int out_size, int xx, int *xmin, int32_t *k)
{
    double scale = (double)in_size / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 0.5 * fscale, center = (xx + 0.5) * scale, ss = 1.0 / fscale;
    int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > in_size) hi = in_size;
    int cnt = hi - lo;
    if (cnt > KMAX) cnt = KMAX;
    double w[KMAX], ww = 0.0;
    for (int x = 0; x < cnt; x++) {
        double t = (x + lo - center + 0.5) * ss;
        w[x] = (t > -0.5 && t <= 0.5) ? 1.0 : 0.0; /* box_filter */
        ww += w[x];
    }
    for (int x = 0; x < cnt; x++) {
        double v = ww != 0.0 ? w[x] / ww : w[x];
        k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PREC) : 0.5 + v * (1 << PREC));
    }
    *xmin = lo;
    return cnt;
}

static uint8_t clip8(int32_t v)
{
    v >>= PREC;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* one pass of ImagingResampleHorizontal/Vertical_8bpc: src [h, w, C] -> dst along
 * `axis` (1: width w -> n, 0: height h -> n) */
static void pass(uint8_t *dst, const uint8_t *src, int h, int w, int C, int axis, int n)
{
    int32_t k[KMAX];
    int in_size = axis ? w : h;
    for (int o = 0; o < n; o++) {
        int lo, cnt = box_coeffs(in_size, n, o, &lo, k);
        int lines = axis ? h : w;
        for (int l = 0; l < lines; l++)
            for (int c = 0; c < C; c++) {
                int32_t acc = 1 << (PREC - 1);
                for (int t = 0; t < cnt; t++) {
                    size_t si = axis ? ((size_t)l * w + lo + t) * C + c
                                     : ((size_t)(lo + t) * w + l) * C + c;
                    acc += src[si] * k[t];
                }
                size_t di = axis ? ((size_t)l * n + o) * C + c : ((size_t)o * w + l) * C + c;
                dst[di] = clip8(acc);
            }
    }
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    double c = pixelate_c[s - 1];
    /* x.resize((int(W c), int(H c)), BOX).resize((W, H), BOX); each resize runs the
     * horizontal pass then the vertical one, rounding to uint8 in between */
    int w2 = (int)(W * c), h2 = (int)(H * c);
    if (w2 < 1) w2 = 1;
    if (h2 < 1) h2 = 1;
    uint8_t *a = ws->u, *b = (uint8_t *)ws->f[0];
    pass(a, in, H, W, C, 1, w2);  /* [H, w2] */
    pass(b, a, H, w2, C, 0, h2);  /* [h2, w2] */
    pass(a, b, h2, w2, C, 1, W);  /* [h2, W] */
    pass(out, a, h2, W, C, 0, H); /* [H, W] */
    return 0;
}

const mr_corruption_type mr_corruption_pixelate = {
    .name = "pixelate", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_DIGITAL,
    .benchmark = "MNIST-C pixelate (ImageNet-C family)",
    .summary = "BOX downscale to 72 % .. 22 % of the size and back",
    .deterministic = 1, .default_severity = 3, .image = apply};
