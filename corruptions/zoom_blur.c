/* zoom_blur — ImageNet-C family, CIFAR-10-C constants: mean of centre zooms. */
#include <math.h>

#include "mr_corrupt_impl.h"

/* make_cifar_c zoom_blur: zoom factors np.arange(1, e, 0.01) with e = [1.06, 1.11, 1.16,
 * 1.21, 1.26][severity - 1]. In floating point those hold 7, 12, 16, 21 and 26 factors
 * (1.06 and 1.11 are reached), NumPy's 1 + k ((1 + 0.01) - 1). (224 px: up to 1.3.) */
static const int zoom_n[MR_SEVERITY_MAX] = {7, 12, 16, 21, 26};

/* clipped_zoom + accumulate: centre crop of ceil(H / z) x ceil(W / z), scipy zoom order 1
 * (output round(size z), sample o at o (in - 1) / (out - 1)), trimmed back to H x W by
 * dropping (out - H) // 2 first rows (columns); the result (float32 in the reference)
 * is added to acc. The columns' taps (image columns xi [2j], xi [2j + 1] and weight fx [j]
 * of output column j) are the same on every row: computed once per zoom. */
static void add_zoom(float *acc, const float *x, int H, int W, int C, double z, double *fx,
                     int *xi)
{
    int ch = (int)ceil(H / z), cw = (int)ceil(W / z);
    int top = (H - ch) / 2, left = (W - cw) / 2;
    int oh = (int)nearbyint(ch * z), ow = (int)nearbyint(cw * z); /* Python round() */
    double zy = oh > 1 ? (double)(ch - 1) / (oh - 1) : 1.0;
    double zx = ow > 1 ? (double)(cw - 1) / (ow - 1) : 1.0;
    int tt = (oh - H) / 2, tl = (ow - W) / 2;
    for (int j = 0; j < W; j++) {
        double xx = (j + tl) * zx;
        int x0 = (int)floor(xx);
        if (x0 > cw - 2) x0 = cw - 2;
        if (x0 < 0) x0 = 0;
        fx[j] = cw > 1 ? xx - x0 : 0.0;
        xi[2 * j] = left + x0;
        xi[2 * j + 1] = left + (cw > 1 ? x0 + 1 : x0);
    }
    for (int i = 0; i < H; i++) {
        double y = (i + tt) * zy;
        int y0 = (int)floor(y);
        if (y0 > ch - 2) y0 = ch - 2;
        if (y0 < 0) y0 = 0;
        double fy = ch > 1 ? y - y0 : 0.0;
        int y1 = ch > 1 ? y0 + 1 : y0;
        const float *r0 = x + (size_t)(top + y0) * W * C, *r1 = x + (size_t)(top + y1) * W * C;
        float *a = acc + (size_t)i * W * C;
        for (int j = 0; j < W; j++) {
            double f = fx[j];
            size_t c0 = (size_t)xi[2 * j] * C, c1 = (size_t)xi[2 * j + 1] * C;
            for (int c = 0; c < C; c++) {
                double v = (1 - fy) * ((1 - f) * (double)r0[c0 + c] + f * (double)r0[c1 + c]) +
                           fy * ((1 - f) * (double)r1[c0 + c] + f * (double)r1[c1 + c]);
                a[(size_t)j * C + c] += (float)v;
            }
        }
    }
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t n = (size_t)H * W * C;
    /* float32 throughout, as the reference: x = (x / 255.).astype(np.float32) */
    float *x = (float *)ws->f[0], *acc = (float *)ws->f[1];
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(in[i] / 255.0);
        acc[i] = 0.0f;
    }
    int k = zoom_n[s - 1];
    double step = (1.0 + 0.01) - 1.0;
    /* the columns' taps: weights [W] in f[2], columns [2 W] (ints) in f[3] */
    double *fx = ws->f[2];
    int *xi = (int *)ws->f[3];
    for (int i = 0; i < k; i++) add_zoom(acc, x, H, W, C, 1.0 + i * step, fx, xi);
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] + acc[i]) / (float)(k + 1);
        v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        out[i] = (uint8_t)(v * 255.0f);
    }
    return 0;
}

const mr_corruption_type mr_corruption_zoom_blur = {
    .name = "zoom_blur", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_BLUR,
    .benchmark = "CIFAR-10-C zoom_blur (ImageNet-C family)",
    .summary = "mean of the image and its centre zooms by 1 .. 1.05 up to 1 .. 1.25",
    .deterministic = 1, .default_severity = 0, .image = apply};
