/* Known-answer tests of the metrics (metrics/, docs/metrics.md). */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "analysis/mr_rng.h"
#include "metrics/mr_routing_metrics.h"
#include "metrics/mr_stats.h"
#include "mr_test_util.h"

enum { B = 2, T = 3, E = 4, K = 2, N = B * T };

/* A hand-made trace of one MoE layer: uniform probabilities, given top-k. */
static void uniform_trace(mr_trace *tr, float *probs, int *topk, float *weights, const int *sel)
{
    memset(tr, 0, sizeof *tr);
    tr->B = B;
    tr->T = T;
    tr->E = E;
    tr->k = K;
    tr->n_moe = 1;
    for (int i = 0; i < N * E; i++) probs[i] = 0.25f;
    for (int i = 0; i < N * K; i++) {
        topk[i] = sel[i];
        weights[i] = 0.5f;
    }
    tr->probs = probs;
    tr->topk = topk;
    tr->weights = weights;
}

START_TEST(uniform_routing_has_entropy_ln_E)
{
    float probs[N * E], weights[N * K];
    int topk[N * K];
    /* every expert chosen equally often: tokens cycle through pairs (0,1),(2,3) */
    int sel[N * K] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
    mr_trace tr;
    uniform_trace(&tr, probs, topk, weights, sel);
    mr_routing_acc *a;
    ck_assert_int_eq(mr_routing_acc_alloc(&a, B, 1, E, K), MR_OK);
    ck_assert_int_eq(mr_routing_acc_add(a, &tr, 0), MR_OK);
    mr_layer_routing s;
    ck_assert_int_eq(mr_routing_summarize(&s, a, 100, 0.95, 1, NULL), MR_OK);
    ck_assert_double_le(fabs(s.entropy.mean - log(4.0)), 1e-7);
    ck_assert_double_le(fabs(s.entropy_norm.mean - 1.0), 1e-7);
    ck_assert_double_le(fabs(s.wentropy.mean - log(2.0)), 1e-7);
    ck_assert_double_le(fabs(s.load_entropy - log(4.0)), 1e-12);
    ck_assert_double_eq(s.cv, 0.0);
    ck_assert_double_eq(s.max_over_mean, 1.0);
    ck_assert_int_eq(s.dead, 0);
    /* Switch aux loss at perfect balance: E * sum_e (1/E)(1/E) = 1; top-1 shares here are
     * 1/2 for experts 0 and 2, so E * (0.5*0.25 + 0.5*0.25) = 1 as well */
    ck_assert_double_le(fabs(s.aux_loss - 1.0), 1e-9);
    ck_assert_double_le(fabs(s.importance_cv), 1e-12); /* every expert gets p = 1/4 */
    ck_assert_double_le(fabs(s.load_counts[0] / s.load_total - 0.25), 1e-12);
    mr_routing_acc_free(a);
}
END_TEST

/* A skewed routing of 4 tokens (2 samples of 2), E = 4, k = 2, weights un-normalised (the
 * gate_norm = none of Switch: w = p of the chosen experts). Expected values by hand and
 * numpy (float32 probabilities widened to double):
 *   token entropy -sum p ln p, its mean per sample then over samples: 1.1218881030;
 *   top-k weight entropy of the renormalised weights q = w / sum w: 0.5667367478;
 *   load (top-k picks) [3, 3, 2, 0]: CV with the sample std (ddof = 1, Shazeer et al.
 *   2017) sqrt(2) / 2 = 0.7071067812 (the biased std gives 0.6123724357), max / mean
 *   1.5, 1 dead expert, load entropy 1.0821955300;
 *   Switch aux loss E sum_e f_e P_e with f the top-1 shares [.5, .25, .25, 0] and P the
 *   mean probabilities [.3875, .3125, .2, .1]: 1.2875;
 *   importance CV of the summed probabilities [1.55, 1.25, .8, .4] (ddof = 1): 0.5049752397. */
START_TEST(skewed_routing_known_values)
{
    float probs[16] = {.5f, .3f, .1f, .1f, .1f, .6f, .2f, .1f, .7f, .1f, .1f, .1f, .25f, .25f, .4f, .1f};
    int topk[8] = {0, 1, 1, 2, 0, 1, 2, 0};
    float weights[8];
    for (int i = 0; i < 8; i++) weights[i] = probs[(i / 2) * 4 + topk[i]];
    mr_trace tr;
    memset(&tr, 0, sizeof tr);
    tr.B = 2;
    tr.T = 2;
    tr.E = 4;
    tr.k = 2;
    tr.n_moe = 1;
    tr.probs = probs;
    tr.topk = topk;
    tr.weights = weights;
    mr_routing_acc *a;
    ck_assert_int_eq(mr_routing_acc_alloc(&a, 2, 1, 4, 2), MR_OK);
    ck_assert_int_eq(mr_routing_acc_add(a, &tr, 0), MR_OK);
    mr_layer_routing s;
    ck_assert_int_eq(mr_routing_summarize(&s, a, 0, 0.95, 1, NULL), MR_OK);
    ck_assert_double_le(fabs(s.entropy.mean - 1.1218881030), 1e-8);
    ck_assert_double_le(fabs(s.entropy_norm.mean - 1.1218881030 / log(4.0)), 1e-8);
    ck_assert_double_le(fabs(s.wentropy.mean - 0.5667367478), 1e-8);
    ck_assert_double_le(fabs(s.cv - 0.7071067812), 1e-9);
    ck_assert_double_le(fabs(s.max_over_mean - 1.5), 1e-12);
    ck_assert_int_eq(s.dead, 1);
    ck_assert_double_le(fabs(s.load_entropy - 1.0821955300), 1e-9);
    ck_assert_double_le(fabs(s.aux_loss - 1.2875), 1e-6);
    ck_assert_double_le(fabs(s.importance_cv - 0.5049752397), 1e-6);
    ck_assert_double_le(fabs(s.load_counts[1] / s.load_total - 0.375), 1e-12);
    mr_routing_acc_free(a);
}
END_TEST

START_TEST(collapsed_routing)
{
    float probs[N * E], weights[N * K];
    int topk[N * K];
    int sel[N * K] = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    mr_trace tr;
    uniform_trace(&tr, probs, topk, weights, sel);
    for (int t = 0; t < N; t++) {
        probs[t * E + 0] = 1.0f;
        probs[t * E + 1] = probs[t * E + 2] = probs[t * E + 3] = 0.0f;
    }
    mr_routing_acc *a;
    ck_assert_int_eq(mr_routing_acc_alloc(&a, B, 1, E, K), MR_OK);
    ck_assert_int_eq(mr_routing_acc_add(a, &tr, 0), MR_OK);
    mr_layer_routing s;
    ck_assert_int_eq(mr_routing_summarize(&s, a, 0, 0.95, 1, NULL), MR_OK);
    ck_assert_double_eq(s.entropy.mean, 0.0);
    ck_assert_int_eq(s.dead, 2);
    ck_assert_double_eq(s.max_over_mean, 2.0);
    ck_assert_double_le(fabs(s.load_entropy - log(2.0)), 1e-12);
    /* all top-1 on expert 0 with P_0 = 1: aux = E * 1 * 1 */
    ck_assert_double_le(fabs(s.aux_loss - 4.0), 1e-9);
    /* importance (N, 0, 0, 0): mean N/4, unbiased std N/2, CV 2 */
    ck_assert_double_le(fabs(s.importance_cv - 2.0), 1e-9);
    mr_routing_acc_free(a);
}
END_TEST

START_TEST(flip_identical_disjoint_partial)
{
    int a[3 * 2] = {0, 1, 2, 3, 4, 5};
    int same[3 * 2] = {1, 0, 2, 3, 4, 5}; /* same sets, token 0's top-1 differs */
    int disj[3 * 2] = {6, 7, 0, 1, 2, 3};
    mr_flip_sums f;
    mr_flip_compare(&f, a, a, 3, 2);
    ck_assert_double_eq(f.top1, 0.0);
    ck_assert_double_eq(f.set, 0.0);
    ck_assert_double_eq(f.jaccard, 0.0);
    mr_flip_compare(&f, a, disj, 3, 2);
    ck_assert_double_eq(f.top1, 3.0);
    ck_assert_double_eq(f.set, 3.0);
    ck_assert_double_eq(f.jaccard, 3.0);
    mr_flip_compare(&f, a, same, 3, 2);
    ck_assert_double_eq(f.top1, 1.0);
    ck_assert_double_eq(f.set, 0.0);
    /* one shared expert of two: Jaccard distance 1 - 1/3 */
    int half[2] = {0, 9};
    mr_flip_compare(&f, a, half, 1, 2);
    ck_assert_double_le(fabs(f.jaccard - 2.0 / 3.0), 1e-15);
    ck_assert_double_eq(f.set, 1.0); /* a partly changed set is a set flip */
    ck_assert_double_eq(f.top1, 0.0);
    /* overlap (router saturation): |A n B| / k summed over tokens, order-free */
    ck_assert_double_eq(f.overlap, 0.5);
    mr_flip_compare(&f, a, a, 3, 2);
    ck_assert_double_eq(f.overlap, 3.0);
    mr_flip_compare(&f, a, same, 3, 2);
    ck_assert_double_eq(f.overlap, 3.0);
    mr_flip_compare(&f, a, disj, 3, 2);
    ck_assert_double_eq(f.overlap, 0.0);
    int mixed[3 * 2] = {1, 7, 3, 2, 8, 9}; /* 1 of 2, 2 of 2, 0 of 2 */
    mr_flip_compare(&f, a, mixed, 3, 2);
    ck_assert_double_eq(f.overlap, 1.5);
}
END_TEST

START_TEST(mcnemar_by_hand)
{
    /* b = 10, c = 2: p = 2 * P(X <= 2), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66) / 4096 */
    ck_assert_double_le(fabs(mr_stats_mcnemar_exact(10, 2) - 158.0 / 4096.0), 1e-12);
    ck_assert_double_le(fabs(mr_stats_mcnemar_exact(2, 10) - 158.0 / 4096.0), 1e-12);
    ck_assert_double_eq(mr_stats_mcnemar_exact(0, 0), 1.0);
    ck_assert_double_eq(mr_stats_mcnemar_exact(5, 5), 1.0);
    /* b = 0, c = 6: 2 * (1/64) */
    ck_assert_double_le(fabs(mr_stats_mcnemar_exact(0, 6) - 2.0 / 64.0), 1e-12);
}
END_TEST

START_TEST(mcnemar_is_exactly_one_when_balanced)
{
    /* 2 * P(X <= min(b, c)) >= 1 whenever 2 min + 1 >= b + c: the p-value is exactly 1
     * there (issue #23: b = 50, c = 51 gave 0.9999999999999961), and never above 1 or
     * asymmetric anywhere */
    for (long b = 0; b <= 300; b++)
        for (long c = 0; c <= 300; c++) {
            double p = mr_stats_mcnemar_exact(b, c);
            long m = b < c ? b : c;
            if (2 * m + 1 >= b + c)
                ck_assert_msg(p == 1.0, "b = %ld, c = %ld: p = %.17g, expected exactly 1", b, c, p);
            ck_assert(p > 0.0 && p <= 1.0);
            ck_assert(p == mr_stats_mcnemar_exact(c, b));
        }
}
END_TEST

START_TEST(bootstrap_ci_covers_true_mean)
{
    /* 1000 seeded repetitions: draw 100 values from N(3, 2^2), 95 % percentile CI with
     * B = 400. A 95 % interval covers 3 in 950 +- 6.9 (binomial sd) of them; the percentile
     * bootstrap of a mean at n = 100 undercovers slightly (its interval is about
     * sqrt((n - 1) / n) as wide as the normal one: about 94.8 %). Accept 920..970: an
     * interval of another level fails, e.g. a 90 % one (900 +- 9.5) or a 99 % one reported
     * as 95 % (990 +- 3.1). */
    enum { REPS = 1000, n = 100 };
    double x[n];
    int covered = 0;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    for (int rep = 0; rep < REPS; rep++) {
        mr_rng_reseed(r, 7, "test/data", (uint64_t)rep);
        for (int i = 0; i < n; i++) x[i] = 3.0 + gsl_ran_gaussian(r, 2.0);
        mr_ci ci;
        ck_assert_int_eq(
            mr_stats_bootstrap_mean(&ci, x, n, 1, 400, 0.95, (uint64_t)rep, "bootstrap", NULL, NULL),
            MR_OK);
        ck_assert(ci.lo <= ci.mean && ci.mean <= ci.hi);
        covered += ci.lo <= 3.0 && 3.0 <= ci.hi;
    }
    gsl_rng_free(r);
    printf("bootstrap coverage: %d / %d\n", covered, REPS);
    ck_assert_int_ge(covered, 920);
    ck_assert_int_le(covered, 970);
}
END_TEST

START_TEST(bootstrap_is_deterministic_and_checks_args)
{
    double x[5] = {1, 2, 3, 4, 10};
    mr_ci a, b;
    ck_assert_int_eq(mr_stats_bootstrap_mean(&a, x, 5, 1, 500, 0.9, 3, "p", NULL, NULL), MR_OK);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&b, x, 5, 1, 500, 0.9, 3, "p", NULL, NULL), MR_OK);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert_double_eq(a.mean, 4.0);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&a, x, 0, 1, 500, 0.9, 3, "p", NULL, NULL), MR_EINPUT);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&a, x, 5, 1, 1, 0.9, 3, "p", NULL, NULL), MR_EINPUT);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&a, x, 5, 1, 500, 1.5, 3, "p", NULL, NULL), MR_EINPUT);
}
END_TEST

START_TEST(bootstrap_plan_is_the_stream)
{
    /* a plan drawn in bulk (metrics/mr_boot.c) holds gsl_rng_uniform_int's draws of the
     * stream, in order: n = 1 (only the word 2^32 - 1 rejected), small n with
     * rejections, n spanning several state blocks, the 16-bit/32-bit index boundary */
    const size_t ns[] = {1, 2, 3, 7, 300, 65536, 65537, 100003};
    const int Bs[] = {3, 5, 2, 1000, 7, 2, 2, 3};
    mr_boot_cache *c = NULL;
    ck_assert_int_eq(mr_boot_cache_alloc(&c, (size_t)1 << 30), MR_OK);
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        size_t n = ns[t];
        int B = Bs[t];
        mr_boot_plan_view p;
        ck_assert_int_eq(mr_boot_plan(&p, c, 5, "bootstrap/test/stream", n, B), MR_OK);
        ck_assert(n <= 65536 ? p.idx16 != NULL : p.idx32 != NULL);
        gsl_rng *r = mr_rng_alloc(5, "bootstrap/test/stream", 0);
        size_t bad = 0;
        for (size_t k = 0; k < (size_t)B * n; k++) {
            unsigned long j = gsl_rng_uniform_int(r, (unsigned long)n);
            bad += j != (n <= 65536 ? (unsigned long)p.idx16[k] : (unsigned long)p.idx32[k]);
        }
        gsl_rng_free(r);
        ck_assert_uint_eq(bad, 0);
    }
    mr_boot_cache_free(c);
}
END_TEST

START_TEST(bootstrap_percentiles_are_the_sorted_ones)
{
    /* the interval reads only its order statistics (mr_stats.c selects the tails): the
     * same lo and hi as sorting all B means of the stream and taking GSL's quantiles, for
     * levels whose tails are selected or sorted, B from 2 up, many ties (n = 3) and none,
     * and the paired p-value counted from every mean */
    static const double levels[] = {0.95, 0.9, 0.5, 0.99, 0.999};
    static const int Bs[] = {2, 3, 10, 40, 1000, 2001};
    static const size_t ns[] = {3, 50};
    double x[50], y[50], *means = malloc(2001 * sizeof *means);
    gsl_rng *g = mr_rng_alloc(4, "test/data", 0);
    for (int i = 0; i < 50; i++) {
        x[i] = gsl_ran_gaussian(g, 1.0);
        y[i] = x[i] + gsl_ran_gaussian(g, 0.5) - 0.1;
    }
    gsl_rng_free(g);
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
        for (size_t bi = 0; bi < sizeof Bs / sizeof *Bs; bi++)
            for (size_t li = 0; li < sizeof levels / sizeof *levels; li++) {
                size_t n = ns[t];
                int Bn = Bs[bi];
                double level = levels[li], a = (1.0 - level) / 2.0;
                for (int paired = 0; paired < 2; paired++) {
                    gsl_rng *r = mr_rng_alloc(6, "bootstrap/test/pct", 0);
                    int below = 0, above = 0;
                    for (int b = 0; b < Bn; b++) {
                        double sum = 0.0;
                        for (size_t i = 0; i < n; i++) {
                            unsigned long j = gsl_rng_uniform_int(r, (unsigned long)n);
                            sum += paired ? x[j] - y[j] : x[j];
                        }
                        means[b] = sum / (double)n;
                        below += means[b] <= 0.0;
                        above += means[b] >= 0.0;
                    }
                    gsl_rng_free(r);
                    gsl_sort(means, 1, (size_t)Bn);
                    double lo = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)Bn, a);
                    double hi = gsl_stats_quantile_from_sorted_data(means, 1, (size_t)Bn, 1.0 - a);
                    if (paired) {
                        mr_paired p;
                        ck_assert_int_eq(mr_stats_bootstrap_paired(&p, x, y, n, 1, Bn, level, 6,
                                                                   "bootstrap/test/pct", NULL,
                                                                   NULL),
                                         MR_OK);
                        ck_assert_msg(p.diff.lo == lo && p.diff.hi == hi,
                                      "paired n %zu B %d level %g", n, Bn, level);
                        int tail = below < above ? below : above;
                        ck_assert(p.p_value == (tail == 0 ? 1.0 / Bn
                                                : fmin(2.0 * tail / (double)Bn, 1.0)));
                    } else {
                        mr_ci ci;
                        ck_assert_int_eq(mr_stats_bootstrap_mean(&ci, x, n, 1, Bn, level, 6,
                                                                 "bootstrap/test/pct", NULL,
                                                                 NULL),
                                         MR_OK);
                        ck_assert_msg(ci.lo == lo && ci.hi == hi, "n %zu B %d level %g", n, Bn,
                                      level);
                    }
                }
            }
    free(means);
}
END_TEST

START_TEST(bootstrap_plan_cache_is_bit_identical)
{
    /* a kept resample plan (metrics/mr_boot.h) gives the CI of a fresh draw bit for bit:
     * strided and paired, on the first use (drawn and kept), on reuse (from the cache),
     * from many threads at once, and when the budget keeps nothing */
    enum { n = 300, L = 3, B = 1000 };
    double x[n * L], y[n * L];
    gsl_rng *r = mr_rng_alloc(11, "test/data", 0);
    for (int i = 0; i < n * L; i++) {
        x[i] = gsl_ran_gaussian(r, 1.0) + (i % L);
        y[i] = x[i] + gsl_ran_gaussian(r, 0.3);
    }
    gsl_rng_free(r);
    mr_ci want[L];
    mr_paired pwant[L];
    char purpose[L][32];
    for (int l = 0; l < L; l++) {
        snprintf(purpose[l], sizeof purpose[l], "bootstrap/test/%d", l);
        ck_assert_int_eq(mr_stats_bootstrap_mean(&want[l], x + l, n, L, B, 0.95, 9, purpose[l],
                                                 NULL, NULL), MR_OK);
        ck_assert_int_eq(mr_stats_bootstrap_paired(&pwant[l], x + l, y + l, n, L, B, 0.95, 9,
                                                   purpose[l], NULL, NULL), MR_OK);
    }
    size_t budgets[2] = {(size_t)1 << 30, 0};
    for (int bi = 0; bi < 2; bi++) {
        mr_boot_cache *c = NULL;
        ck_assert_int_eq(mr_boot_cache_alloc(&c, budgets[bi]), MR_OK);
        int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad)
        for (int rep = 0; rep < 4 * L; rep++) {
            int l = rep % L;
            mr_ci got;
            mr_paired pg;
            bad += mr_stats_bootstrap_mean(&got, x + l, n, L, B, 0.95, 9, purpose[l], NULL, c) != MR_OK;
            bad += memcmp(&got, &want[l], sizeof got) != 0;
            bad += mr_stats_paired_test(&pg, x + l, y + l, n, L, B, 0.95, 9, purpose[l], c) != MR_OK;
            bad += memcmp(&pg.diff, &pwant[l].diff, sizeof pg.diff) != 0 ||
                   pg.p_value != pwant[l].p_value;
        }
        ck_assert_int_eq(bad, 0);
        /* one plan per purpose, kept once however many threads asked */
        ck_assert_uint_eq(mr_boot_cache_bytes(c), bi == 0 ? (size_t)L * B * n * sizeof(uint16_t) : 0);
        /* another seed, n or B is another plan */
        mr_ci other;
        ck_assert_int_eq(mr_stats_bootstrap_mean(&other, x, n, L, B, 0.95, 10, purpose[0], NULL, c),
                         MR_OK);
        ck_assert(memcmp(&other, &want[0], sizeof other) != 0);
        mr_boot_cache_free(c);
    }
    /* more than 65536 samples: 4-byte indices, the same CI */
    enum { N = 70000, B2 = 8 };
    double *big = malloc(N * sizeof *big);
    ck_assert_ptr_nonnull(big);
    for (int i = 0; i < N; i++) big[i] = sin(i) + (i % 7);
    mr_ci a, b;
    mr_boot_cache *c = NULL;
    ck_assert_int_eq(mr_boot_cache_alloc(&c, (size_t)1 << 30), MR_OK);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&a, big, N, 1, B2, 0.9, 3, "big", NULL, NULL), MR_OK);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&b, big, N, 1, B2, 0.9, 3, "big", NULL, c), MR_OK);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert_int_eq(mr_stats_bootstrap_mean(&b, big, N, 1, B2, 0.9, 3, "big", NULL, c), MR_OK);
    ck_assert_int_eq(memcmp(&a, &b, sizeof a), 0);
    ck_assert_uint_eq(mr_boot_cache_bytes(c), (size_t)B2 * N * sizeof(uint32_t));
    mr_boot_cache_free(c);
    free(big);
}
END_TEST

START_TEST(paired_bootstrap)
{
    double x[50], y[50], z[50];
    for (int i = 0; i < 50; i++) {
        x[i] = sin(i);
        y[i] = x[i];
        z[i] = x[i] - 1.0 + 0.01 * cos(i);
    }
    mr_paired p;
    ck_assert_int_eq(mr_stats_bootstrap_paired(&p, x, y, 50, 1, 1000, 0.95, 1, "d", NULL, NULL), MR_OK);
    ck_assert_double_eq(p.diff.mean, 0.0);
    ck_assert_double_eq(p.diff.lo, 0.0);
    ck_assert_double_eq(p.diff.hi, 0.0);
    ck_assert_double_eq(p.p_value, 1.0);
    ck_assert_int_eq(p.p_bound, 0);
    ck_assert_int_eq(mr_stats_bootstrap_paired(&p, x, z, 50, 1, 1000, 0.95, 1, "d", NULL, NULL), MR_OK);
    ck_assert_double_gt(p.diff.lo, 0.99);
    ck_assert_double_lt(p.diff.hi, 1.01);
    /* no resample crossed 0: p < 1/B, never "p = 0" */
    ck_assert_double_eq(p.p_value, 1.0 / 1000);
    ck_assert_int_eq(p.p_bound, 1);
    char buf[64];
    ck_assert_str_eq(mr_stats_p_format(buf, sizeof buf, &p), "p < 0.001");
    ck_assert_int_eq(mr_stats_bootstrap_paired(&p, x, z, 50, 1, 250, 0.95, 1, "d", NULL, NULL), MR_OK);
    ck_assert_str_eq(mr_stats_p_format(buf, sizeof buf, &p), "p < 0.004");
}
END_TEST

START_TEST(paired_test_without_bootstrap)
{
    /* bootstrap = 0 means one thing everywhere (eval, the grid's cells, vs_reference):
     * the difference of means, no interval, no p-value (NaN, "no p-value") */
    double x[4] = {1, 1, 0, 1}, y[4] = {0, 1, 0, 0};
    mr_paired p;
    ck_assert_int_eq(mr_stats_paired_test(&p, x, y, 4, 1, 0, 0.95, 1, "d", NULL), MR_OK);
    ck_assert_double_eq(p.diff.mean, 0.5);
    ck_assert_double_eq(p.diff.lo, 0.5);
    ck_assert_double_eq(p.diff.hi, 0.5);
    ck_assert(isnan(p.p_value));
    ck_assert_int_eq(p.p_bound, 0);
    char buf[64];
    ck_assert_str_eq(mr_stats_p_format(buf, sizeof buf, &p), "no p-value (no bootstrap)");
    /* with B > 0 it is the paired bootstrap, bit for bit */
    mr_paired a, b;
    ck_assert_int_eq(mr_stats_paired_test(&a, x, y, 4, 1, 200, 0.9, 5, "d", NULL), MR_OK);
    ck_assert_int_eq(mr_stats_bootstrap_paired(&b, x, y, 4, 1, 200, 0.9, 5, "d", NULL, NULL), MR_OK);
    ck_assert(a.diff.mean == b.diff.mean && a.diff.lo == b.diff.lo && a.diff.hi == b.diff.hi &&
              a.p_value == b.p_value && a.p_bound == b.p_bound);
    ck_assert_int_eq(mr_stats_paired_test(&a, x, y, 4, 1, 1, 0.9, 5, "d", NULL), MR_EINPUT);
}
END_TEST

/* The paired bootstrap p-value is two-sided: 2 min(#{means <= 0}, #{means >= 0}) / B. For
 * n = 400 differences standardised so that mean / (sd / sqrt(n)) = z, the bootstrap means
 * are close to N(mean, sd^2 / n) and p is close to the normal two-sided 2 (1 - Phi(z)):
 * 0.1336 at z = 1.5, 0.0455 at z = 2 (a one-sided p would be half). Within 25 % of it
 * (Monte Carlo sd of p at B = 4000: 0.005 and 0.003; the percentile bootstrap's own
 * deviation from the normal at n = 400 is of the same order). */
START_TEST(paired_p_value_two_sided)
{
    enum { n = 400 };
    double x[n], y[n] = {0}, d[n];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    mr_rng_reseed(r, 3, "test/p-value", 0);
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += (d[i] = gsl_ran_gaussian(r, 1.0));
    m /= n;
    for (int i = 0; i < n; i++) v += (d[i] - m) * (d[i] - m);
    double sd = sqrt(v / n);
    const double z[2] = {1.5, 2.0}, want[2] = {0.133614, 0.045500};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < n; i++) x[i] = (d[i] - m) / sd + z[c] / sqrt((double)n);
        mr_paired p;
        ck_assert_int_eq(mr_stats_bootstrap_paired(&p, x, y, n, 1, 4000, 0.95, 5, "p", NULL, NULL),
                         MR_OK);
        printf("paired bootstrap at z = %g: p = %.4f (normal two-sided %.4f)\n", z[c], p.p_value,
               want[c]);
        ck_assert_msg(fabs(p.p_value - want[c]) < 0.25 * want[c], "z = %g: p = %g, expected about %g", z[c],
                      p.p_value, want[c]);
        ck_assert(!p.p_bound);
    }
    gsl_rng_free(r);
}
END_TEST

START_TEST(corruption_error)
{
    /* error counts out of 10 predictions (model) and 20 (reference) */
    long long err[5] = {1, 2, 3, 4, 5}, ref[5] = {4, 8, 12, 16, 20};
    /* (15/10) / (60/20) */
    ck_assert_double_le(fabs(mr_stats_ce(err, 10, ref, 20, 5) - 0.5), 1e-15);
    /* relative: ((15 - 5*1)/10) / ((60 - 5*2)/20) = 1.0 / 2.5 */
    ck_assert_double_le(fabs(mr_stats_relative_ce(err, 1, 10, ref, 2, 20, 5) - 0.4), 1e-15);
    long long zero[5] = {0};
    ck_assert(isnan(mr_stats_ce(err, 10, zero, 20, 5)));
}
END_TEST

START_TEST(relative_ce_zero_denominator_is_nan)
{
    /* The reference's corrupted errors equal its clean errors at every severity: the
     * relative CE is undefined. As floating-point error rates (1 - accuracy, e.g. 1 -
     * 7/10 against 1 - 0.7) the denominator left a residue and the CE read +-4.5e14; from
     * integer counts it is exactly 0 (issue #23). Every clean count against every
     * constant reference, for 1..5 severities. */
    for (long long n = 1; n <= 40; n++)
        for (long long rc = 0; rc <= n; rc++)
            for (int sev = 1; sev <= 5; sev++) {
                long long err[5] = {1, 2, 3, 4, 5}, ref[5];
                for (int s = 0; s < 5; s++) ref[s] = rc;
                double r = mr_stats_relative_ce(err, 0, n, ref, rc, n, sev);
                ck_assert_msg(isnan(r), "n = %lld, reference errors %lld: relative CE %g", n, rc, r);
            }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("known answers");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, uniform_routing_has_entropy_ln_E);
    tcase_add_test(tc, collapsed_routing);
    tcase_add_test(tc, skewed_routing_known_values);
    tcase_add_test(tc, flip_identical_disjoint_partial);
    tcase_add_test(tc, mcnemar_by_hand);
    tcase_add_test(tc, mcnemar_is_exactly_one_when_balanced);
    tcase_add_test(tc, bootstrap_ci_covers_true_mean);
    tcase_add_test(tc, bootstrap_is_deterministic_and_checks_args);
    tcase_add_test(tc, bootstrap_plan_is_the_stream);
    tcase_add_test(tc, bootstrap_plan_cache_is_bit_identical);
    tcase_add_test(tc, bootstrap_percentiles_are_the_sorted_ones);
    tcase_add_test(tc, paired_bootstrap);
    tcase_add_test(tc, paired_test_without_bootstrap);
    tcase_add_test(tc, corruption_error);
    tcase_add_test(tc, paired_p_value_two_sided);
    tcase_add_test(tc, relative_ce_zero_denominator_is_nan);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
