/* mr_boot_gemm — the bootstrap of a cell as resampled sums (what `run` does) against the
 * same bootstrap as CBLAS products of resample counts (issue 17's proposal;
 * docs/performance.md, "The bootstrap as a GEMM").
 *
 *   moe-robust-boot-gemm [N] [B] [M] [REPS]      (defaults 300 1000 23 20)
 *
 * M per-sample statistics of N samples (a cell's metrics and layers: columns of x [N, M],
 * alternately 0/1 values like a correctness and continuous values like an entropy), each
 * with the percentile CI of B resamples (95 %), three ways, in process CPU time on the
 * calling thread (run it with OPENBLAS_NUM_THREADS=1):
 *   gather   what `moe-robust run` does: every statistic its own stream (seed, purpose),
 *            its B x N indices kept once per run (metrics/mr_boot.h), the resampled sums
 *            gathered in draw order (mr_stats_bootstrap_mean);
 *   gemv     the same streams as resample counts C_j [B, N] (double, kept like the
 *            indices): means_j = C_j x_j / N by cblas_dgemv, one product per statistic —
 *            the only product form that keeps every stream's resamples, hence the CIs
 *            (to the rounding of a sum in another order: printed);
 *   gemm     one stream for all M statistics: means = C_0 x / N by one cblas_dgemm
 *            [B, N] x [N, M] — the one pass for all metrics, which redraws every
 *            statistic but the first (the endpoints' moves are printed, in half-widths).
 * Each way ends with the same sort and percentiles. Prints CPU ms per cell (all M
 * statistics) and the bytes kept per stream.
 */
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "analysis/mr_error.h"
#include "analysis/mr_parse.h"
#include "analysis/mr_rng.h"
#include "metrics/mr_boot.h"
#include "metrics/mr_stats.h"

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void purpose_of(char *buf, size_t cap, int j)
{
    snprintf(buf, cap, "bench/boot-gemm/%d", j);
}

/* sort the B means and take the same percentiles as mr_stats_bootstrap_mean */
static void ci_of(mr_ci *ci, double *means, int B)
{
    gsl_sort(means, 1, (size_t)B);
    ci->lo = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)B, 0.025);
    ci->hi = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)B, 0.975);
}

/* largest move of an endpoint of b against a, in half-widths of a */
static double moved(const mr_ci *a, const mr_ci *b, int M)
{
    double worst = 0;
    for (int j = 0; j < M; j++) {
        double hw = (a[j].hi - a[j].lo) / 2;
        double d = fmax(fabs(b[j].lo - a[j].lo), fabs(b[j].hi - a[j].hi));
        if (hw > 0 && d / hw > worst) worst = d / hw;
    }
    return worst;
}

int main(int argc, char **argv)
{
    int n = 300, B = 1000, M = 23, reps = 20;
    int *v[] = {&n, &B, &M, &reps};
    const char *names[] = {"N", "B", "M", "REPS"};
    const int hi[] = {1 << 20, 100000, 256, 100000};
    for (int a = 1; a < argc; a++)
        if (a > 4 || mr_parse_int(names[a - 1], argv[a], a == 2 ? 2 : 1, hi[a - 1], v[a - 1]) != MR_OK) {
            fprintf(stderr, "usage: moe-robust-boot-gemm [N] [B] [M] [REPS]\n");
            return 2;
        }
    const uint64_t seed = 0;
    char purpose[64];
    double *x = malloc((size_t)n * M * sizeof *x);          /* [N, M] statistics */
    double *counts = calloc((size_t)M * B * n, sizeof *counts); /* [M][B, N] */
    double *means = malloc((size_t)B * M * sizeof *means);  /* [B, M] */
    double *col = malloc((size_t)B * sizeof *col);          /* [B] */
    mr_ci *ci_g = calloc((size_t)M, sizeof *ci_g), *ci_v = calloc((size_t)M, sizeof *ci_v),
          *ci_m = calloc((size_t)M, sizeof *ci_m);
    mr_boot_cache *cache = NULL;
    gsl_rng *r = mr_rng_alloc(seed, "bench/boot-gemm/data", 0);
    if (!x || !counts || !means || !col || !ci_g || !ci_v || !ci_m || !r ||
        mr_boot_cache_alloc(&cache, (size_t)1 << 40) != MR_OK) {
        fprintf(stderr, "moe-robust-boot-gemm: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * M; i++)
        x[i] = (i % M) % 2 ? 2.0 * gsl_rng_uniform(r) : (double)(gsl_rng_uniform(r) < 0.8);
    /* the streams' plans, kept (drawn once per run in `run`; not timed here) and their
     * counts */
    for (int j = 0; j < M; j++) {
        mr_boot_plan_view p;
        purpose_of(purpose, sizeof purpose, j);
        if (mr_boot_plan(&p, cache, seed, purpose, (size_t)n, B) != MR_OK || !(p.idx16 || p.idx32)) {
            fprintf(stderr, "moe-robust-boot-gemm: no plan\n");
            return 1;
        }
        double *c = counts + (size_t)j * B * n;
        for (size_t k = 0; k < (size_t)B * n; k++)
            c[k / n * n + (p.idx16 ? p.idx16[k] : p.idx32[k])] += 1.0;
    }

    double t0 = cpu_s();
    for (int rep = 0; rep < reps; rep++)
        for (int j = 0; j < M; j++) {
            purpose_of(purpose, sizeof purpose, j);
            if (mr_stats_bootstrap_mean(&ci_g[j], x + j, (size_t)n, (size_t)M, B, 0.95, seed,
                                        purpose, col, cache) != MR_OK) {
                fprintf(stderr, "moe-robust-boot-gemm: %s\n", mr_error_message());
                return 1;
            }
        }
    double t_gather = (cpu_s() - t0) / reps;

    t0 = cpu_s();
    for (int rep = 0; rep < reps; rep++)
        for (int j = 0; j < M; j++) {
            cblas_dgemv(CblasRowMajor, CblasNoTrans, B, n, 1.0, counts + (size_t)j * B * n, n,
                        x + j, M, 0.0, col, 1);
            for (int b = 0; b < B; b++) col[b] /= n;
            ci_of(&ci_v[j], col, B);
        }
    double t_gemv = (cpu_s() - t0) / reps;

    t0 = cpu_s();
    for (int rep = 0; rep < reps; rep++) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, M, n, 1.0, counts, n, x, M,
                    0.0, means, M);
        for (int j = 0; j < M; j++) {
            for (int b = 0; b < B; b++) col[b] = means[(size_t)b * M + j] / n;
            ci_of(&ci_m[j], col, B);
        }
    }
    double t_gemm = (cpu_s() - t0) / reps;

    size_t idx_bytes = (size_t)B * n * (n <= 65536 ? 2 : 4), cnt_bytes = (size_t)B * n * 8;
    printf("N %d, B %d, M %d statistics, mean of %d reps, CPU ms per cell (all M)\n", n, B, M,
           reps);
    printf("gather  %9.3f ms  (kept per stream: %zu bytes of indices)\n", 1e3 * t_gather, idx_bytes);
    printf("gemv    %9.3f ms  (kept per stream: %zu bytes of counts); CIs: largest endpoint "
           "move %.3g half-widths (summation order)\n",
           1e3 * t_gemv, cnt_bytes, moved(ci_g, ci_v, M));
    printf("gemm    %9.3f ms  (one stream for all: %zu bytes); CIs: largest endpoint move "
           "%.3g half-widths (redrawn resamples)\n",
           1e3 * t_gemm, cnt_bytes, moved(ci_g, ci_m, M));
    printf("RESULT n=%d B=%d M=%d gather_ms=%.3f gemv_ms=%.3f gemm_ms=%.3f gemv_move=%.3g "
           "gemm_move=%.3g\n",
           n, B, M, 1e3 * t_gather, 1e3 * t_gemv, 1e3 * t_gemm, moved(ci_g, ci_v, M),
           moved(ci_g, ci_m, M));
    gsl_rng_free(r);
    mr_boot_cache_free(cache);
    free(x), free(counts), free(means), free(col), free(ci_g), free(ci_v), free(ci_m);
    return 0;
}
