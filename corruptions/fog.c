/* fog — MNIST-C / ImageNet-C: add a diamond-square plasma fractal, rescale. */
#include "mr_corrupt_impl.h"

#include "../analysis/mr_rng.h"

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

/* mnist-c plasma_fractal(mapsize, wibbledecay): diamond-square on an n x n wrapping grid
 * starting from map[0][0] = 0 and wibble 100, normalised to [0, 1]: map[i] is used as
 * (map[i] - *lo) / *hi (*hi = 1 when the map is flat). The whole map is drawn (every
 * point takes its turn in the one stream, in mnist-c's order), but only the image's crop
 * is read, so the normalisation is left to the reader: the minimum and maximum come from
 * one pass, and max(map - lo) = max(map) - lo exactly (rounding is monotonic). The
 * 65,536 draws of a 256 x 256 map come inline from the generator's state (mr_mt), the
 * words gsl_rng_uniform(r) would give: calling it per draw was most of fog's time. */
static void plasma(double *map, int n, double decay, gsl_rng *r, double *lo, double *hi)
{
    const int mask = n - 1; /* n is a power of two: wrapping is a mask */
    mr_mt mt;
    const int inline_draws = mr_mt_load(&mt, r);
#define M(i, j) map[(size_t)((i) & mask) * n + (size_t)((j) & mask)]
#define U() (inline_draws ? mr_mt_uniform(&mt) : gsl_rng_uniform(r))
    map[0] = 0;
    double wib = 100;
    for (int step = n; step >= 2; step /= 2, wib /= decay) {
        int h = step / 2, k = n / step;
        /* squares: centre = mean of the 4 corners + wibble */
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int y = i * step, x = j * step;
                double sum = M(y, x) + M(y + step, x) + M(y, x + step) + M(y + step, x + step);
                M(y + h, x + h) = wibbled(sum, wib, U());
            }
        /* diamonds on the corner rows: (i step, j step + h) */
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int y = i * step, x = j * step;
                double sum = M(y + h, x + h) + M(y - h, x + h) + M(y, x) + M(y, x + step);
                M(y, x + h) = wibbled(sum, wib, U());
            }
        /* diamonds on the centre rows: (i step + h, j step) */
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int y = i * step, x = j * step;
                double sum = M(y + h, x + h) + M(y + h, x - h) + M(y, x) + M(y + step, x);
                M(y + h, x) = wibbled(sum, wib, U());
            }
    }
#undef U
#undef M
    if (inline_draws) mr_mt_store(r, &mt);
    size_t nn = (size_t)n * n;
    double mn = map[0], mx = map[0];
    /* min and max do not depend on the order: a vector reduction gives the same pair */
#pragma omp simd reduction(min : mn) reduction(max : mx)
    for (size_t i = 1; i < nn; i++) {
        mn = map[i] < mn ? map[i] : mn;
        mx = map[i] > mx ? map[i] : mx;
    }
    *lo = mn;
    *hi = mx - mn > 0 ? mx - mn : 1;
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double c0 = fog_p[s - 1].c0, *f = ws->f[0], mx = 0, lo, hi;
    plasma(ws->plasma, ws->pn, fog_p[s - 1].decay, r, &lo, &hi);
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
