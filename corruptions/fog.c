/* fog — MNIST-C / ImageNet-C: add a diamond-square plasma fractal, rescale. */
#include "mr_corrupt_impl.h"

#include "../analysis/mr_rng.h"
#include "../analysis/mr_simd.h"

/* (c0, wibble decay). mnist-c fog: [(1.5,2), (2.,2), (2.5,1.7), (2.5,1.5), (3.,1.4)]
 * [severity - 1] (default 5). Its severities 3 and 4 share c0 = 2.5 and severity 4
 * changes Fashion-MNIST images slightly less than severity 3 (74.5 vs 75.1 grey levels
 * on average); ours raises severity 4's c0 to 2.75 so that the change increases. */
static const struct { double c0, decay; } fog_p[MR_SEVERITY_MAX] = {
    {1.5, 2.0}, {2.0, 2.0}, {2.5, 1.7}, {2.75, 1.5}, {3.0, 1.4}};

/* value/4 + wibble * U(-wibble, wibble) (sic: the noise amplitude is wibble^2); u is
 * the draw gsl_rng_uniform(r) */
static double wibbled(double sum, double wib, double u)
{
    return sum / 4 + wib * (-wib + 2 * wib * u);
}

/* The k x k uniforms of one diamond-square pass, in the stream's order: from the inline
 * state (mr_mt_uniforms) when there is one, else gsl_rng_uniform(r) per draw. */
static void draws(double *u, size_t kk, mr_mt *mt, int inline_draws, gsl_rng *r)
{
    if (inline_draws)
        mr_mt_uniforms(mt, u, kk);
    else
        for (size_t i = 0; i < kk; i++) u[i] = gsl_rng_uniform(r);
}

/* One row of a pass: out[j step] = wibbled(((a[x] + b[x]) + c[x']) + d[x'], u[j]) for
 * x = j step + ao, x' = x + co (the four terms in mnist-c's order), j < k; the offsets
 * stay inside the row except for the wrapping column the caller does itself (jlo, jhi).
 * Elementwise, no contraction (-std=c11): the same doubles at any vector width (the
 * strided loads stay scalar: gathers were slower). */
MR_VECTOR_CLONES_512 static void pass_row(double *restrict out, const double *a, int ao,
                                          const double *b, int bo, const double *c, int co,
                                          const double *d, int dof, const double *u,
                                          int jlo, int jhi, int step, double wib)
{
    for (int j = jlo; j < jhi; j++) {
        int x = j * step;
        double sum = a[x + ao] + b[x + bo] + c[x + co] + d[x + dof];
        out[x] = wibbled(sum, wib, u[j]);
    }
}

/* The minimum and maximum of x [n] (n a multiple of 8): eight lanes of each, then the
 * lanes; min and max do not depend on the order, so any width gives the same pair. */
MR_VECTOR_CLONES_512 static void min_max(double *lo, double *hi, const double *x, size_t n)
{
    double mn[8], mx[8];
    for (int l = 0; l < 8; l++) mn[l] = mx[l] = x[l];
    for (size_t i = 8; i < n; i += 8)
#pragma omp simd
        for (int l = 0; l < 8; l++) {
            mn[l] = x[i + l] < mn[l] ? x[i + l] : mn[l];
            mx[l] = x[i + l] > mx[l] ? x[i + l] : mx[l];
        }
    for (int l = 1; l < 8; l++) {
        mn[0] = mn[l] < mn[0] ? mn[l] : mn[0];
        mx[0] = mx[l] > mx[0] ? mx[l] : mx[0];
    }
    *lo = mn[0];
    *hi = mx[0];
}

/* mnist-c plasma_fractal(mapsize, wibbledecay): diamond-square on an n x n wrapping grid
 * starting from map[0][0] = 0 and wibble 100, normalised to [0, 1]: map[i] is used as
 * (map[i] - *lo) / *hi (*hi = 1 when the map is flat). The whole map is drawn (every
 * point takes its turn in the one stream, in mnist-c's order), but only the image's crop
 * is read, so the normalisation is left to the reader: the minimum and maximum come from
 * one vector pass, and max(map - lo) = max(map) - lo exactly (rounding is monotonic).
 * The 65,536 draws of a 256 x 256 map come from the generator's state a pass at a time
 * (mr_mt_uniforms into u [(n/2)^2]), the words gsl_rng_uniform(r) would give: calling it
 * per draw was most of fog's time; each pass's rows then run without wrapping indices
 * but for the one column that wraps. */
static void plasma(double *map, double *u, int n, double decay, gsl_rng *r, double *lo,
                   double *hi)
{
    const int mask = n - 1; /* n is a power of two: wrapping is a mask */
    mr_mt mt;
    const int inline_draws = mr_mt_load(&mt, r);
#define ROW(i) (map + (size_t)((i) & mask) * n)
    map[0] = 0;
    double wib = 100;
    for (int step = n; step >= 2; step /= 2, wib /= decay) {
        int h = step / 2, k = n / step, last = (k - 1) * step;
        size_t kk = (size_t)k * k;
        /* squares: centre (y + h, x + h) = mean of the 4 corners + wibble; x + step wraps
         * in the last column */
        draws(u, kk, &mt, inline_draws, r);
        for (int i = 0; i < k; i++) {
            int y = i * step;
            double *o = ROW(y + h) + h;
            const double *r0 = ROW(y), *r1 = ROW(y + step), *ui = u + (size_t)i * k;
            pass_row(o, r0, 0, r1, 0, r0, step, r1, step, ui, 0, k - 1, step, wib);
            o[last] = wibbled(r0[last] + r1[last] + r0[0] + r1[0], wib, ui[k - 1]);
        }
        /* diamonds on the corner rows: (y, x + h) from (y + h, x + h), (y - h, x + h),
         * (y, x), (y, x + step) */
        draws(u, kk, &mt, inline_draws, r);
        for (int i = 0; i < k; i++) {
            int y = i * step;
            double *o = ROW(y) + h;
            const double *rc = ROW(y + h), *ru = ROW(y - h), *r0 = ROW(y);
            const double *ui = u + (size_t)i * k;
            pass_row(o, rc, h, ru, h, r0, 0, r0, step, ui, 0, k - 1, step, wib);
            o[last] = wibbled(rc[last + h] + ru[last + h] + r0[last] + r0[0], wib, ui[k - 1]);
        }
        /* diamonds on the centre rows: (y + h, x) from (y + h, x + h), (y + h, x - h),
         * (y, x), (y + step, x); x - h wraps in the first column */
        draws(u, kk, &mt, inline_draws, r);
        for (int i = 0; i < k; i++) {
            int y = i * step;
            double *o = ROW(y + h);
            const double *rc = ROW(y + h), *r0 = ROW(y), *r1 = ROW(y + step);
            const double *ui = u + (size_t)i * k;
            o[0] = wibbled(rc[h] + rc[n - h] + r0[0] + r1[0], wib, ui[0]);
            pass_row(o, rc, h, rc, -h, r0, 0, r1, 0, ui, 1, k, step, wib);
        }
    }
#undef ROW
    if (inline_draws) mr_mt_store(r, &mt);
    double mn, mx;
    min_max(&mn, &mx, map, (size_t)n * n);
    *lo = mn;
    *hi = mx - mn > 0 ? mx - mn : 1;
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double c0 = fog_p[s - 1].c0, *f = ws->f[0], mx = 0, lo, hi;
    plasma(ws->plasma, ws->plasma_u, ws->pn, fog_p[s - 1].decay, r, &lo, &hi);
    mr_img_to_unit(f, in, n);
    for (size_t i = 0; i < n; i++) mx = f[i] > mx ? f[i] : mx; /* x.max() */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) {
                /* (x + c0 plasma[:H, :W]) * max / (max + c0) */
                size_t i = ((size_t)y * W + x) * C + c;
                double p = (ws->plasma[(size_t)y * ws->pn + x] - lo) / hi;
                f[i] = (f[i] + c0 * p) * mx / (mx + c0);
            }
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_fog = {
    .name = "fog", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_WEATHER, .benchmark = "MNIST-C fog",
    .summary = "plasma-fractal fog of strength 1.5 .. 3, contrast rescaled",
    .deterministic = 0, .default_severity = 5, .image = apply};
