/* mr_stats.h — confidence intervals and paired tests over per-sample values
 * (docs/metrics.md, "Statistics").
 *
 * Every mean the suite reports is a mean over samples of a per-sample value (a
 * sample's accuracy, its mean token entropy, its flip fraction, ...), so the
 * bootstrap resamples samples, not tokens: tokens of one sample are correlated.
 * Resampling draws come from the stream mr_rng(seed, purpose, 0), so a CI depends
 * only on the data, B, the seed and the purpose string.
 */
#ifndef MR_STATS_H
#define MR_STATS_H

#include <stddef.h>
#include <stdint.h>

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
                            double level, uint64_t seed, const char *purpose, double *scratch);

/* Paired bootstrap of mean(x - y): CI of the difference and a two-sided bootstrap
 * p-value for "no difference" (2 * the smaller tail share of resampled differences
 * on either side of 0, capped at 1). */
typedef struct mr_paired {
    mr_ci diff;
    double p_value;
} mr_paired;
int mr_stats_bootstrap_paired(mr_paired *out, const double *x, const double *y, size_t n,
                              size_t stride, int B, double level, uint64_t seed,
                              const char *purpose, double *scratch);

/* McNemar's exact test on two classifiers' correctness over the same samples.
 * b = samples only the first got right, c = only the second; p = min(1, 2 * P(X <=
 * min(b,c))) with X ~ Binomial(b + c, 1/2) (statsmodels' exact=True). p = 1 when b+c=0. */
double mr_stats_mcnemar_exact(long b, long c);

/* ImageNet-C corruption error over severities: sum_s err[s] / sum_s err_ref[s].
 * Relative CE: sum_s (err[s] - err_clean) / sum_s (err_ref[s] - err_ref_clean).
 * Both return NaN when the denominator is 0 (undefined, reported as such). */
double mr_stats_ce(const double *err, const double *err_ref, int n_sev);
double mr_stats_relative_ce(const double *err, double err_clean, const double *err_ref,
                            double err_ref_clean, int n_sev);

#endif
