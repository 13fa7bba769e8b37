#include "mr_stats.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_rng.h"
#include "mr_boot.h"

double mr_stats_mean(const double *x, size_t n, size_t stride)
{
    if (n == 0) return 0.0;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i * stride];
    return s / (double)n;
}

static int check_args(size_t n, int B, double level)
{
    MR_REQUIRE(n >= 1, MR_EINPUT, "bootstrap of an empty sample");
    MR_REQUIRE(B >= 2, MR_EINPUT, "bootstrap size B = %d must be at least 2", B);
    MR_REQUIRE(level > 0.0 && level < 1.0, MR_EINPUT, "confidence level %g must be in (0, 1)",
               level);
    return MR_OK;
}

/* means[b] = sum over i of v[idx[b * n + i]], i in draw order, for every resample b of
 * a kept plan: four resamples at a time, each in its own accumulator, so that four
 * chains of dependent additions overlap (one chain ran at the latency of an addition);
 * every resample still sums its own values in its own order, bit for bit as one at a
 * time. */
#define MR_RESAMPLE_SUMS(name, T)                                                         \
    static void name(double *sums, const double *v, const T *idx, size_t n, int B)          \
    {                                                                                        \
        int b = 0;                                                                           \
        for (; b + 4 <= B; b += 4) {                                                         \
            const T *r0 = idx + (size_t)b * n, *r1 = r0 + n, *r2 = r1 + n, *r3 = r2 + n;     \
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;                                   \
            for (size_t i = 0; i < n; i++) {                                                 \
                s0 += v[r0[i]];                                                              \
                s1 += v[r1[i]];                                                              \
                s2 += v[r2[i]];                                                              \
                s3 += v[r3[i]];                                                              \
            }                                                                                \
            sums[b] = s0, sums[b + 1] = s1, sums[b + 2] = s2, sums[b + 3] = s3;              \
        }                                                                                    \
        for (; b < B; b++) {                                                                 \
            const T *r = idx + (size_t)b * n;                                                \
            double s = 0.0;                                                                  \
            for (size_t i = 0; i < n; i++) s += v[r[i]];                                     \
            sums[b] = s;                                                                     \
        }                                                                                    \
    }
MR_RESAMPLE_SUMS(resample_sums16, uint16_t)
MR_RESAMPLE_SUMS(resample_sums32, uint32_t)
#undef MR_RESAMPLE_SUMS

/* The resampled sums of a stream that no kept plan holds (over the cache's budget: a
 * 10,000-image grid keeps 25 of its streams' 20 MB plans), drawn here a resample at a
 * time in bulk (mr_mt_uniform_ints: gsl_rng_uniform_int's indices, in its order, at a
 * fraction of a call per draw) and summed in draw order as resample_sums does: the same
 * sums. Returns 0 (nothing done) where r's state cannot be read (mr_mt_load) or out of
 * memory: the caller draws word by word. */
static int drawn_sums(double *sums, const double *v, size_t n, int B, gsl_rng *r)
{
    mr_mt *m = malloc(sizeof *m);
    uint32_t *idx = malloc(4 * n * sizeof *idx); /* [4, n] four resamples, as a plan holds them */
    int ok = m && idx && n <= 0xffffffffu && mr_mt_load(m, r);
    for (int b = 0; ok && b < B; b += 4) {
        int q = B - b < 4 ? B - b : 4;
        mr_mt_uniform_ints(m, NULL, idx, (size_t)q * n, (uint32_t)n);
        resample_sums32(sums + b, v, idx, n, q);
    }
    free(m);
    free(idx);
    return ok;
}

/* Fill means[b] with the mean of a resample of (x - y) (y may be NULL): the indices
 * of the stream (seed, purpose), kept in `cache` (metrics/mr_boot.h) or drawn here; the
 * same indices summed in the same order either way, so the means are bit-identical.
 * The per-sample values v[i] = x[i] - y[i] are formed once (the same doubles the sum
 * would form at every draw). */
static int resample_means(double *means, const double *x, const double *y, size_t n,
                          size_t stride, int B, uint64_t seed, const char *purpose,
                          mr_boot_cache *cache)
{
    mr_boot_plan_view plan;
    gsl_rng *r = NULL;
    MR_TRY(mr_boot_plan(&plan, cache, seed, purpose, n, B));
    double *v = malloc(n * sizeof *v); /* [n] */
    if (!v || (!plan.idx16 && !plan.idx32 && !(r = mr_rng_alloc(seed, purpose, 0)))) {
        free(v);
        return mr_error_set(MR_ENOMEM, "out of memory (bootstrap)");
    }
    for (size_t i = 0; i < n; i++) v[i] = y ? x[i * stride] - y[i * stride] : x[i * stride];
    if (plan.idx16)
        resample_sums16(means, v, plan.idx16, n, B);
    else if (plan.idx32)
        resample_sums32(means, v, plan.idx32, n, B);
    else if (!drawn_sums(means, v, n, B, r))
        for (int b = 0; b < B; b++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++) s += v[gsl_rng_uniform_int(r, (unsigned long)n)];
            means[b] = s;
        }
    for (int b = 0; b < B; b++) means[b] /= (double)n;
    if (r) gsl_rng_free(r);
    free(v);
    return MR_OK;
}

/* GSL's quantile_from_sorted_data at f reads the order statistics lhs = (int)(f (B - 1))
 * and lhs + 1 (lhs alone at B - 1): the count of smallest values it needs. */
static size_t quantile_reach(double f, int B)
{
    size_t lhs = (size_t)(int)(f * (B - 1));
    return lhs + 2 < (size_t)B ? lhs + 2 : (size_t)B;
}

/* The percentile interval of the B resampled means (reordered: the caller is done with
 * them). Only the order statistics the two quantiles read are put in place: the smallest
 * and the largest few in ascending order (gsl_sort_smallest / gsl_sort_largest, a pass
 * over the means) instead of sorting all B (GSL's heapsort of 1,000 means per interval
 * was a tenth of a small cell's time). The same values at the positions read, so the
 * same interval; a full sort where the tails are long or a mean is NaN. */
static void percentile(mr_ci *ci, double *means, int B, double level)
{
    enum { MAX_TAIL = 64 };
    double a = (1.0 - level) / 2.0, lo[MAX_TAIL], hi[MAX_TAIL];
    size_t kl = quantile_reach(a, B), kh = (size_t)B - (quantile_reach(1.0 - a, B) - 2);
    int select = kl <= MAX_TAIL && kh <= MAX_TAIL && kl + kh <= (size_t)B;
    for (int b = 0; select && b < B; b++) select = !isnan(means[b]);
    if (select) {
        gsl_sort_smallest(lo, kl, means, 1, (size_t)B);
        gsl_sort_largest(hi, kh, means, 1, (size_t)B);
        memcpy(means, lo, kl * sizeof *lo);
        for (size_t i = 0; i < kh; i++) means[(size_t)B - 1 - i] = hi[i];
    } else {
        gsl_sort(means, 1, (size_t)B);
    }
    ci->lo = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)B, a);
    ci->hi = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)B, 1.0 - a);
}

int mr_stats_bootstrap_mean(mr_ci *out, const double *x, size_t n, size_t stride, int B,
                            double level, uint64_t seed, const char *purpose, double *scratch,
                            mr_boot_cache *cache)
{
    MR_TRY(check_args(n, B, level));
    double *means = scratch ? scratch : malloc((size_t)B * sizeof *means);
    if (!means) return mr_error_set(MR_ENOMEM, "out of memory (bootstrap)");
    int st = resample_means(means, x, NULL, n, stride, B, seed, purpose, cache);
    if (st == MR_OK) {
        out->mean = mr_stats_mean(x, n, stride);
        percentile(out, means, B, level);
    }
    if (!scratch) free(means);
    return st;
}

int mr_stats_bootstrap_paired(mr_paired *out, const double *x, const double *y, size_t n,
                              size_t stride, int B, double level, uint64_t seed,
                              const char *purpose, double *scratch, mr_boot_cache *cache)
{
    MR_TRY(check_args(n, B, level));
    double *means = scratch ? scratch : malloc((size_t)B * sizeof *means);
    if (!means) return mr_error_set(MR_ENOMEM, "out of memory (bootstrap)");
    int st = resample_means(means, x, y, n, stride, B, seed, purpose, cache);
    if (st == MR_OK) {
        out->diff.mean = mr_stats_mean(x, n, stride) - mr_stats_mean(y, n, stride);
        int below = 0, above = 0; /* before percentile() reorders the means */
        for (int b = 0; b < B; b++) {
            below += means[b] <= 0.0;
            above += means[b] >= 0.0;
        }
        percentile(&out->diff, means, B, level);
        int tail = below < above ? below : above;
        double p = 2.0 * tail / (double)B;
        out->p_value = tail == 0 ? 1.0 / B : p > 1.0 ? 1.0 : p;
        out->p_bound = tail == 0;
    }
    if (!scratch) free(means);
    return st;
}

int mr_stats_paired_test(mr_paired *out, const double *x, const double *y, size_t n,
                         size_t stride, int B, double level, uint64_t seed, const char *purpose,
                         mr_boot_cache *cache)
{
    memset(out, 0, sizeof *out);
    if (B == 0) {
        MR_REQUIRE(n >= 1, MR_EINPUT, "paired test of an empty sample");
        out->diff.mean = out->diff.lo = out->diff.hi =
            mr_stats_mean(x, n, stride) - mr_stats_mean(y, n, stride);
        out->p_value = NAN;
        return MR_OK;
    }
    return mr_stats_bootstrap_paired(out, x, y, n, stride, B, level, seed, purpose, NULL, cache);
}

const char *mr_stats_p_format(char *buf, size_t cap, const mr_paired *p)
{
    if (isnan(p->p_value))
        snprintf(buf, cap, "no p-value (no bootstrap)");
    else if (p->p_bound)
        snprintf(buf, cap, "p < %.3g", p->p_value);
    else
        snprintf(buf, cap, "p = %.4f", p->p_value);
    return buf;
}

double mr_stats_mcnemar_exact(long b, long c)
{
    long n = b + c;
    if (n <= 0) return 1.0;
    long m = b < c ? b : c;
    /* P(X <= m) >= 1/2 exactly when 2m + 1 >= n (the binomial(n, 1/2) is symmetric), so
     * p = 1 there; computing it would leave rounding residue (0.9999999999999961) */
    if (2 * m + 1 >= n) return 1.0;
    double p = 2.0 * gsl_cdf_binomial_P((unsigned int)m, 0.5, (unsigned int)n);
    return p > 1.0 ? 1.0 : p;
}

double mr_stats_ce(const long long *err, long long scored, const long long *err_ref,
                   long long ref_scored, int n_sev)
{
    long long num = 0, den = 0;
    for (int s = 0; s < n_sev; s++) {
        num += err[s];
        den += err_ref[s];
    }
    if (den == 0 || scored <= 0 || ref_scored <= 0) return NAN;
    return ((double)num / (double)scored) / ((double)den / (double)ref_scored);
}

double mr_stats_relative_ce(const long long *err, long long err_clean, long long scored,
                            const long long *err_ref, long long err_ref_clean,
                            long long ref_scored, int n_sev)
{
    long long num = 0, den = 0;
    for (int s = 0; s < n_sev; s++) {
        num += err[s] - err_clean;
        den += err_ref[s] - err_ref_clean;
    }
    if (den == 0 || scored <= 0 || ref_scored <= 0) return NAN;
    return ((double)num / (double)scored) / ((double)den / (double)ref_scored);
}
