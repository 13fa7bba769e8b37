/* canny_edges — MNIST-C: the image replaced by its Canny edge map (skimage 0.19
 * feature.canny, sigma 1, thresholds 0.1 / 0.2), blended in by severity. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "mr_corrupt_impl.h"

/* mnist-c canny_edges has one severity: the edge map itself (our severity 5). Severity s
 * shows the edge map with opacity s / 5 over the image. */
static const int canny_weight[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5}; /* fifths */

/* scipy 'reflect' (half-sample symmetric) index */
static inline int refl(int i, int n)
{
    if (i < 0) i = -i - 1;
    if (i >= n) i = 2 * n - 1 - i;
    return i < 0 ? 0 : i;
}

void mr_canny(uint8_t *edges, const double *g, int H, int W, mr_corrupt_ws *ws)
{
    size_t hw = (size_t)H * W;
    double *sm = ws->f[1], *js = ws->f[2], *is = ws->f[3];
    double w[2 * MR_GAUSS_MAX_RADIUS + 1];
    /* _preprocess without a mask: gaussian(image) / (gaussian(ones) + eps), skimage
     * gaussian with mode 'constant', cval 0, truncate 4 (js, is are scratch here) */
    int r = mr_gauss_kernel(w, 1.0, 4.0);
    for (size_t i = 0; i < hw; i++) is[i] = 1.0;
    mr_correlate1d(js, is, H, W, 1, 0, w, r, MR_BORDER_CONSTANT);
    mr_correlate1d(is, js, H, W, 1, 1, w, r, MR_BORDER_CONSTANT); /* bleed-over */
    mr_correlate1d(js, g, H, W, 1, 0, w, r, MR_BORDER_CONSTANT);
    mr_correlate1d(sm, js, H, W, 1, 1, w, r, MR_BORDER_CONSTANT);
    for (size_t i = 0; i < hw; i++) sm[i] /= is[i] + DBL_EPSILON;
    /* ndi.sobel(sm, axis) with mode 'reflect': correlate1d [-1, 0, 1] along the axis
     * (antisymmetric: (a[-1] - a[+1]) * -1), then [1, 2, 1] along the other axis
     * (symmetric: a[0] * 2 + (a[-1] + a[+1]) * 1), evaluated per pixel in that order */
#define SM(y, x) sm[(size_t)refl((y), H) * W + refl((x), W)]
#define DX(y, x) ((SM(y, (x) - 1) - SM(y, (x) + 1)) * -1.0)
#define DY(y, x) ((SM((y) - 1, x) - SM((y) + 1, x)) * -1.0)
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            js[i] = DX(y, x) * 2.0 + (DX(y - 1, x) + DX(y + 1, x)) * 1.0;
            is[i] = DY(y, x) * 2.0 + (DY(y, x - 1) + DY(y, x + 1)) * 1.0;
        }
#undef DY
#undef DX
#undef SM
    double *mag = sm; /* the smoothed image is no longer needed */
    for (size_t i = 0; i < hw; i++) mag[i] = hypot(is[i], js[i]);
    /* non-maximum suppression (_get_local_maxima): four direction classes, each
     * comparing the magnitude with two interpolated neighbours on either side; a pixel
     * in several classes takes the last one's verdict (the reference assigns in turn) */
    uint8_t *keep = edges;
    memset(keep, 0, hw);
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++) {
            size_t i = (size_t)y * W + x;
            double m = mag[i], iv = is[i], jv = js[i];
            if (!(m > 0)) continue; /* eroded mask (1-px border off) & (magnitude > 0) */
            double ai = fabs(iv), aj = fabs(jv);
            int horiz = ai >= aj, vert = ai <= aj;
            int up = iv >= 0, down = iv <= 0, right = jv >= 0, left = jv <= 0;
            int d1 = (up && right) || (down && left), d2 = (down && right) || (up && left);
            int res = 0;
#define MAG(dy, dx) mag[(size_t)(y + (dy)) * W + (x + (dx))]
#define CASE(wv, p1y, p1x, p2y, p2x, m1y, m1x, m2y, m2x)                     \
    do {                                                                     \
        double ww = (wv);                                                    \
        int cp = MAG(p2y, p2x) * ww + MAG(p1y, p1x) * (1 - ww) <= m;         \
        int cm = MAG(m2y, m2x) * ww + MAG(m1y, m1x) * (1 - ww) <= m;         \
        res = cp && cm;                                                      \
    } while (0)
            if (d1 && horiz) CASE(aj / ai, 1, 0, 1, 1, -1, 0, -1, -1);
            if (d1 && vert) CASE(ai / aj, 0, 1, 1, 1, 0, -1, -1, -1);
            if (d2 && vert) CASE(ai / aj, 0, 1, -1, 1, 0, -1, 1, -1);
            if (d2 && horiz) CASE(aj / ai, -1, 0, -1, 1, 1, 0, 1, -1);
#undef CASE
#undef MAG
            keep[i] = (uint8_t)res;
        }
    /* hysteresis: the 8-connected components of (maxima & mag >= 0.1) (ndi.label, 3x3
     * structure) that contain a pixel with mag >= 0.2 */
    int *mark = ws->lab, *stack = ws->stack;
    for (size_t i = 0; i < hw; i++) mark[i] = 0;
    for (size_t i = 0; i < hw; i++) {
        if (!(keep[i] && mag[i] >= 0.2) || mark[i]) continue;
        int top = 0;
        stack[top++] = (int)i;
        mark[i] = 1;
        while (top) {
            int p = stack[--top], py = p / W, px = p % W;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = py + dy, xx = px + dx;
                    if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
                    size_t q = (size_t)yy * W + xx;
                    if (!mark[q] && keep[q] && mag[q] >= 0.1) {
                        mark[q] = 1;
                        stack[top++] = (int)q;
                    }
                }
        }
    }
    for (size_t i = 0; i < hw; i++) edges[i] = (uint8_t)(mark[i] != 0);
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    size_t hw = (size_t)H * W;
    double *g = ws->f[0];
    /* canny(x / 255.); RGB images: of skimage rgb2gray(x / 255.) */
    for (size_t i = 0; i < hw; i++) {
        const uint8_t *p = in + i * C;
        g[i] = C == 1 ? p[0] / 255.0 : mr_rgb2gray(p[0] / 255.0, p[1] / 255.0, p[2] / 255.0);
    }
    uint8_t *e = ws->u;
    mr_canny(e, g, H, W, ws);
    /* edge map * 255 on every channel, blended: round((x (5 - w) + e w) / 5) */
    for (size_t i = hw; i-- > 0;) { /* expand in place, last pixel first */
        uint8_t v = e[i] ? 255 : 0;
        for (int c = 0; c < C; c++) e[i * C + c] = v;
    }
    mr_img_blend(out, in, e, hw * C, canny_weight[s - 1]);
    return 0;
}

const mr_corruption_type mr_corruption_canny_edges = {
    .name = "canny_edges", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_MNISTC, .benchmark = "MNIST-C canny_edges",
    .summary = "Canny edge map (skimage, sigma 1) over the image with opacity 1/5 .. 5/5",
    .deterministic = 1, .default_severity = 5, .image = apply};
