/* Separable and dense correlation with scipy.ndimage's border modes and summation
 * order (gaussian_filter, correlate1d, correlate), on [H, W, C] double images. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "mr_corrupt_impl.h"

int mr_gauss_kernel(double *w, double sigma, double truncate)
{
    /* scipy.ndimage.gaussian_filter1d: radius = int(truncate * sd + 0.5);
     * _gaussian_kernel1d: phi = exp(-0.5 / sigma^2 * x^2), phi /= phi.sum() */
    if (!(sigma > 1e-15)) {
        w[0] = 1.0;
        return 0;
    }
    int r = (int)(truncate * sigma + 0.5);
    if (r > MR_GAUSS_MAX_RADIUS) r = MR_GAUSS_MAX_RADIUS;
    double s2 = sigma * sigma, sum = 0.0;
    for (int i = -r; i <= r; i++) {
        w[i + r] = exp(-0.5 / s2 * (double)i * i);
    }
    /* numpy's pairwise sum of <= 128 terms is a plain left-to-right loop */
    for (int i = 0; i <= 2 * r; i++) sum += w[i];
    for (int i = 0; i <= 2 * r; i++) w[i] /= sum;
    return r;
}

/* index i of a line of n samples extended by the border mode; -1 = constant 0 */
static inline int border_index(int i, int n, int border)
{
    if (i >= 0 && i < n) return i;
    switch (border) {
    case MR_BORDER_NEAREST: return i < 0 ? 0 : n - 1;
    case MR_BORDER_REFLECT: {
        int p = 2 * n;
        i %= p;
        if (i < 0) i += p;
        return i < n ? i : p - 1 - i;
    }
    case MR_BORDER_MIRROR: {
        if (n == 1) return 0;
        int p = 2 * n - 2;
        i %= p;
        if (i < 0) i += p;
        return i < n ? i : p - i;
    }
    default: return -1;
    }
}

/* scipy NI_Correlate1D's symmetry test: 1 symmetric, -1 antisymmetric, 0 neither */
static int symmetry(const double *w, int r)
{
    const double *c = w + r;
    int sym = 1;
    for (int j = 1; j <= r; j++)
        if (fabs(c[j] - c[-j]) > DBL_EPSILON) sym = 0;
    if (sym) return 1;
    for (int j = 1; j <= r; j++)
        if (fabs(c[j] + c[-j]) > DBL_EPSILON) return 0;
    return -1;
}

void mr_correlate1d(double *out, const double *in, int H, int W, int C, int axis,
                    const double *w, int r, int border)
{
    int n = axis == 0 ? H : W;               /* line length */
    int lines = axis == 0 ? W : H;           /* lines per channel */
    size_t step = axis == 0 ? (size_t)W * C : (size_t)C; /* stride along the line */
    int sym = symmetry(w, r);
    const double *c = w + r;
    for (int l = 0; l < lines; l++)
        for (int ch = 0; ch < C; ch++) {
            size_t base = axis == 0 ? (size_t)l * C + ch : (size_t)l * W * C + ch;
            for (int i = 0; i < n; i++) {
                /* inside the line (every tap in range) the border mode reads nothing: the
                 * same terms in the same order, without the border arithmetic per tap */
                int inside = i >= r && i + r < n;
#define AT(k)                                                                              \
    (inside ? in[base + (size_t)(k) * step]                                                \
     : border_index((k), n, border) < 0 ? 0.0                                              \
                                        : in[base + border_index((k), n, border) * step])
                double acc;
                if (sym > 0) {
                    acc = in[base + i * step] * c[0];
                    for (int j = -r; j < 0; j++) acc += (AT(i + j) + AT(i - j)) * c[j];
                } else if (sym < 0) {
                    acc = in[base + i * step] * c[0];
                    for (int j = -r; j < 0; j++) acc += (AT(i + j) - AT(i - j)) * c[j];
                } else {
                    acc = 0.0;
                    for (int j = -r; j <= r; j++) acc += AT(i + j) * c[j];
                }
#undef AT
                out[base + i * step] = acc;
            }
        }
}

void mr_gaussian2d(double *img, double *tmp, int H, int W, int C, double sigma,
                   double truncate, int border)
{
    double w[2 * MR_GAUSS_MAX_RADIUS + 1];
    if (!(sigma > 1e-15)) return; /* scipy skips axes with sigma <= 1e-15 */
    int r = mr_gauss_kernel(w, sigma, truncate);
    mr_correlate1d(tmp, img, H, W, C, 0, w, r, border);
    mr_correlate1d(img, tmp, H, W, C, 1, w, r, border);
}

void mr_correlate2d(double *out, const double *in, int H, int W, int C, const double *k,
                    int kh, int kw, int border)
{
    /* scipy.ndimage.correlate: the kernel's centre is (kh/2, kw/2); terms in the
     * kernel's row-major order, zero weights skipped */
    enum { MAXTAPS = 4096 };
    int ty[MAXTAPS], tx[MAXTAPS], nt = 0;
    double tw[MAXTAPS];
    for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw && nt < MAXTAPS; j++)
            if (k[i * kw + j] != 0.0) {
                ty[nt] = i - kh / 2;
                tx[nt] = j - kw / 2;
                tw[nt++] = k[i * kw + j];
            }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int ch = 0; ch < C; ch++) {
                double acc = 0.0;
                for (int t = 0; t < nt; t++) {
                    int yy = border_index(y + ty[t], H, border);
                    int xx = border_index(x + tx[t], W, border);
                    if (yy < 0 || xx < 0) continue;
                    acc += in[((size_t)yy * W + xx) * C + ch] * tw[t];
                }
                out[((size_t)y * W + x) * C + ch] = acc;
            }
}
