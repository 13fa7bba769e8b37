/* elastic_transform — ImageNet-C family (make_cifar_c elastic_transform): a random
 * affine jitter of three points, then a smooth random displacement field. */
#include <math.h>

#include "mr_corrupt_impl.h"

/* (alpha, sigma, affine) as fractions of the image side S = min(H, W) (the references
 * multiply by IMSIZE = 32 / 28). CIFAR-10-C's ladder [(0,0,.08), (.05,.2,.07),
 * (.08,.06,.06), (.1,.04,.05), (.1,.03,.03)] trades a shrinking affine jitter for a
 * growing elastic field, and its pixel change is not monotone in severity. Ours scales
 * CIFAR-10-C's severity 5 (.1, .03, .03), our severity 3, by 0.4, 0.7, 1, 1.4, 2 in
 * alpha and affine (sigma fixed). */
static const struct { double alpha, sigma, affine; } elastic_p[MR_SEVERITY_MAX] = {
    {.04, .03, .012}, {.07, .03, .021}, {.10, .03, .030}, {.14, .03, .042}, {.20, .03, .060}};

static inline int reflect101(int i, int n)
{
    if (n == 1) return 0;
    int p = 2 * n - 2;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - i;
}

static inline int reflect(int i, int n)
{
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* bilinear sample of channel c at (y, x) with an index mapping for the border */
static double sample(const double *img, int H, int W, int C, int c, double y, double x,
                     int (*idx)(int, int))
{
    int y0 = (int)floor(y), x0 = (int)floor(x);
    double fy = y - y0, fx = x - x0;
    int ya = idx(y0, H), yb = idx(y0 + 1, H), xa = idx(x0, W), xb = idx(x0 + 1, W);
#define P(r, q) img[((size_t)(r) * W + (q)) * C + c]
    return (1 - fy) * ((1 - fx) * P(ya, xa) + fx * P(ya, xb)) +
           fy * ((1 - fx) * P(yb, xa) + fx * P(yb, xb));
#undef P
}

/* cv2.getAffineTransform: the 2x3 map taking the three points p to q */
static void affine_from_points(const double p[3][2], const double q[3][2], double M[6])
{
    double a = p[0][0], b = p[0][1], c = p[1][0], d = p[1][1], e = p[2][0], f = p[2][1];
    double det = a * (d - f) - b * (c - e) + (c * f - d * e);
    for (int k = 0; k < 2; k++) {
        double u = q[0][k], v = q[1][k], w = q[2][k];
        /* Cramer's rule on [x y 1] m = target */
        M[3 * k + 0] = (u * (d - f) - b * (v - w) + (v * f - d * w)) / det;
        M[3 * k + 1] = (a * (v - w) - u * (c - e) + (c * w - v * e)) / det;
        M[3 * k + 2] = (a * (d * w - v * f) - b * (c * w - v * e) + u * (c * f - d * e)) / det;
    }
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t hw = (size_t)H * W, n = hw * C;
    double S = H < W ? H : W;
    double alpha = S * elastic_p[s - 1].alpha, sigma = S * elastic_p[s - 1].sigma;
    double amax = S * elastic_p[s - 1].affine;
    double *img = ws->f[0], *warped = ws->f[1], *dx = ws->f[2], *dy = ws->f[3];
    mr_img_to_unit(img, in, n);
    /* random affine: centre_square = shape[:2] // 2, square_size = min(shape[:2]) // 3;
     * pts1 taken as (x, y) by OpenCV, pts2 = pts1 + U(-affine, affine) */
    double c0 = (double)(H / 2), c1 = (double)(W / 2), sq = (double)((H < W ? H : W) / 3);
    double p[3][2] = {{c0 + sq, c1 + sq}, {c0 + sq, c1 - sq}, {c0 - sq, c1 - sq}}, q[3][2];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) q[i][k] = p[i][k] + (-amax + 2 * amax * gsl_rng_uniform(r));
    double M[6] = {1, 0, 0, 0, 1, 0};
    if (sq > 0) affine_from_points(p, q, M); /* images under 3 px: no affine (degenerate) */
    /* cv2.warpAffine(image, M, (W, H), BORDER_REFLECT_101): dst(x, y) = src(M^-1 (x, y)) */
    double det = M[0] * M[4] - M[1] * M[3];
    double i00 = M[4] / det, i01 = -M[1] / det, i10 = -M[3] / det, i11 = M[0] / det;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = x - M[2], v = y - M[5];
            double sx = i00 * u + i01 * v, sy = i10 * u + i11 * v;
            for (int c = 0; c < C; c++)
                warped[((size_t)y * W + x) * C + c] = sample(img, H, W, C, c, sy, sx, reflect101);
        }
    /* displacement fields: gaussian(U(-1, 1), sigma, mode 'reflect', truncate 3) * alpha */
    for (size_t i = 0; i < hw; i++) dx[i] = -1 + 2 * gsl_rng_uniform(r);
    mr_gaussian2d(dx, img, H, W, 1, sigma, 3.0, MR_BORDER_REFLECT);
    for (size_t i = 0; i < hw; i++) dy[i] = -1 + 2 * gsl_rng_uniform(r);
    mr_gaussian2d(dy, img, H, W, 1, sigma, 3.0, MR_BORDER_REFLECT);
    /* map_coordinates(image, (y + dy, x + dx), order 1, mode 'reflect') */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            for (int c = 0; c < C; c++)
                img[i * C + c] = sample(warped, H, W, C, c, y + dy[i] * alpha, x + dx[i] * alpha,
                                        reflect);
        }
    mr_img_from_unit(out, img, n);
    return 0;
}

const mr_corruption_type mr_corruption_elastic_transform = {
    .name = "elastic_transform", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_DIGITAL,
    .benchmark = "CIFAR-10-C elastic_transform (ImageNet-C family)",
    .summary = "random affine jitter and smooth displacement field, 0.4x .. 2x CIFAR-10-C's",
    .deterministic = 0, .default_severity = 0, .image = apply};
