/* mr_stats.h — confidence intervals and paired tests over per-sample values
 * (docs/metrics.md, "Statistics").
 *
 * Every mean the suite reports is a mean over samples of a per-sample value (a
 * sample's accuracy, its mean token entropy, its flip fraction, ...), so the
 * bootstrap resamples samples, not tokens: tokens of one sample are correlated.
 * Resampling draws come from the stream mr_rng(seed, purpose, 0), so a CI depends
 * only on the data, B, the seed and the purpose string. A resample-plan cache
 * (metrics/mr_boot.h; may be NULL) keeps each stream's indices for the next CI of the
 * same (seed, purpose, n, B): the CI is bit-identical with or without it.
 */
#ifndef MR_STATS_H
#define MR_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "mr_boot.h"

typedef struct mr_ci {
    double mean;   /* the statistic on the full sample */
    double lo, hi; /* percentile bootstrap interval */
} mr_ci;

/* Arithmetic mean in index order (deterministic); 0 for n = 0. */
double mr_stats_mean(const double *x, size_t n, size_t stride);

/* Percentile bootstrap CI of the mean of x[i*stride], i < n, with B resamples at
 * level `level` (e.g. 0.95). Needs B doubles of scratch (caller-owned, may be NULL:
 * then allocated). MR_EINPUT for n = 0, B < 2 or level outside (0,1). */
int mr_stats_bootstrap_mean(mr_ci *out, const double *x, size_t n, size_t stride, int B,
                            double level, uint64_t seed, const char *purpose, double *scratch,
                            mr_boot_cache *cache);

/* Paired bootstrap of mean(x - y): CI of the difference and a two-sided bootstrap
 * p-value for "no difference" (2 * the smaller tail share of resampled differences
 * on either side of 0, capped at 1). With B resamples the p-value cannot be resolved
 * below 1/B: when no resample falls on the other side of 0, p_value = 1/B and p_bound
 * = 1, read "p < 1/B" (never "p = 0"). */
typedef struct mr_paired {
    mr_ci diff;
    double p_value;  /* NaN when there was no bootstrap (B = 0) */
    int p_bound;     /* 1: p < p_value (= 1/B) */
} mr_paired;
int mr_stats_bootstrap_paired(mr_paired *out, const double *x, const double *y, size_t n,
                              size_t stride, int B, double level, uint64_t seed,
                              const char *purpose, double *scratch, mr_boot_cache *cache);

/* The one paired test of the suite: `eval`'s accuracy drop, the grid's corrupted cells
 * and every vs_reference comparison of summary.json call this. B = 0 (no bootstrap):
 * the difference of means with lo = hi = mean and p_value NaN ("no p-value"), the same
 * everywhere; B >= 2: mr_stats_bootstrap_paired. B = 1 is MR_EINPUT. */
int mr_stats_paired_test(mr_paired *out, const double *x, const double *y, size_t n,
                         size_t stride, int B, double level, uint64_t seed, const char *purpose,
                         mr_boot_cache *cache);

/* The p-value as text: "p = 0.0420", "p < 0.001" (bounded) or "no p-value (no
 * bootstrap)". Returns buf. */
const char *mr_stats_p_format(char *buf, size_t cap, const mr_paired *p);

/* McNemar's exact test on two classifiers' correctness over the same samples.
 * b = samples only the first got right, c = only the second; p = min(1, 2 * P(X <=
 * min(b,c))) with X ~ Binomial(b + c, 1/2) (statsmodels' exact=True). p = 1 when b+c=0. */
double mr_stats_mcnemar_exact(long b, long c);

/* ImageNet-C corruption error over severities, from integer error counts (wrong
 * predictions out of `scored` per pass, and out of `ref_scored` for the reference):
 *   CE = (sum_s err[s] / scored) / (sum_s err_ref[s] / ref_scored)
 *   relative CE = (sum_s (err[s] - err_clean) / scored) /
 *                 (sum_s (err_ref[s] - err_ref_clean) / ref_scored)
 * Sums are exact integers, so a denominator that is exactly 0 is recognised as such
 * (floating-point error rates would leave a residue of ~1e-17 and a CE of ~1e14): both
 * return NaN then (undefined, reported as such). */
double mr_stats_ce(const long long *err, long long scored, const long long *err_ref,
                   long long ref_scored, int n_sev);
double mr_stats_relative_ce(const long long *err, long long err_clean, long long scored,
                            const long long *err_ref, long long err_ref_clean,
                            long long ref_scored, int n_sev);

#endif
