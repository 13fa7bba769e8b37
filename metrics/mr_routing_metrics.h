/* mr_routing_metrics.h — routing entropy, flip rates and load balance
 * (docs/metrics.md).
 *
 * Streaming: an mr_routing_acc ingests engine traces micro-batch by micro-batch,
 * from any number of threads. Memory is O(n_moe x E) for the layer totals plus a
 * few doubles per sample (for bootstrap CIs). Layer totals are kept as exact
 * integers (counts, and probabilities in 2^-32 fixed point), so they do not depend
 * on the order threads add them in; per-sample values are written at their index.
 * Ownership: the caller owns the accumulator (mr_routing_acc_free).
 */
#ifndef MR_ROUTING_METRICS_H
#define MR_ROUTING_METRICS_H

#include <stdint.h>

#include "../analysis/mr_engine.h"
#include "mr_stats.h"

typedef struct mr_routing_acc {
    int n, n_moe, E, k;
    double *entropy;   /* [n, n_moe] per sample: mean over tokens of H(p) (nats) */
    double *wentropy;  /* [n, n_moe] per sample: mean entropy of the top-k weights, renormalized */
    int64_t *load;     /* [n_moe, E] top-k assignments */
    int64_t *top1;     /* [n_moe, E] top-1 assignments */
    uint64_t *psum;    /* [n_moe, E] sum of p, fixed point 2^-32 */
    int64_t n_tokens;  /* tokens seen per layer */
} mr_routing_acc;

int mr_routing_acc_alloc(mr_routing_acc **out, int n, int n_moe, int E, int k);
void mr_routing_acc_free(mr_routing_acc *a);
/* Add the trace of samples s0 .. s0 + tr->B - 1 (thread-safe for disjoint samples). */
int mr_routing_acc_add(mr_routing_acc *a, const mr_trace *tr, int s0);
/* Add sample s from rows in place (no copy): layer li's token t at probs[(li * layer_stride
 * + t) * E], topk and weights likewise with k; mask[T] (NULL: all real) leaves out
 * padding. Thread-safe for distinct s. */
int mr_routing_acc_add_sample(mr_routing_acc *a, int s, const float *probs, const int *topk,
                              const float *weights, const uint8_t *mask, int T,
                              size_t layer_stride);

/* The same from sums computed while reading (`moe-robust analyze`, io/mr_trace_io.h):
 * h[li * stride] and hw[li * stride] the sums over the sample's real tokens of layer li's
 * routing entropy and weight entropy, psum[li * pstride + e] its probability sums
 * (mr_routing_psum_fix); topk (16-bit expert ids, as the trace reader keeps them), mask,
 * T and layer_stride as in add_sample. Thread-safe for distinct s. */
int mr_routing_acc_add_sums(mr_routing_acc *a, int s, const double *h, const double *hw,
                            size_t stride, const uint64_t *psum, size_t pstride,
                            const uint16_t *topk, const uint8_t *mask, int T, size_t layer_stride);
/* The probability sums of one layer of one sample, as both producers form them: acc[E]
 * += p[E] per real token, in double and token order (fixed, whatever the threads), then
 * ps[e] = llround(acc[e] 2^32) once (the fixed point that makes the layer totals exact
 * integers, independent of the order samples are added in). */
void mr_routing_psum_add(double *restrict acc, const float *restrict p, int E);
void mr_routing_psum_fix(uint64_t *ps, const double *acc, int E);

/* One MoE layer's summary. */
typedef struct mr_layer_routing {
    mr_ci entropy;          /* mean H(p) per token, nats, with CI over samples */
    mr_ci entropy_norm;     /* the same divided by ln E */
    mr_ci wentropy;         /* entropy of the renormalized top-k weights */
    double load_entropy;    /* H(f) of the expert-load distribution f, nats */
    double load_entropy_norm;
    double cv;              /* std(f) / mean(f), unbiased std (FastMoE's monitor) */
    double max_over_mean;   /* max f / mean f */
    int dead;               /* experts with no assignment */
    double aux_loss;        /* Switch: E * sum_e f1_e * P_e (f1 top-1 share, P mean prob) */
    double importance_cv;   /* CV of the experts' importance sum_tokens p_e (Shazeer 2017) */
    const int64_t *load_counts; /* [E] top-k assignments per expert (points into the acc) */
    double load_total;          /* their sum: f_e = load_counts[e] / load_total */
} mr_layer_routing;

/* Summaries of every layer (out[n_moe]); B bootstrap resamples (B = 0: no CI), their
 * plans kept in `cache` (may be NULL; metrics/mr_boot.h).
 * out[].load_counts points into `a`, which must outlive the summaries. */
int mr_routing_summarize(mr_layer_routing *out, const mr_routing_acc *a, int B, double level,
                         uint64_t seed, mr_boot_cache *cache);

/* Comparison of two routings of the same N tokens (k experts each):
 * top1 = tokens whose top-1 expert differs, set = tokens whose top-k set differs,
 * jaccard = sum of Jaccard distances 1 - |A n B| / |A u B|, overlap = sum of |A n B| / k
 * (the share of a token's top-k experts in A also chosen in B: router saturation when B
 * is the last checkpoint, OLMoE, Muennighoff et al. 2024, Sec. 5). Sums, not means. */
typedef struct mr_flip_sums {
    double top1, set, jaccard, overlap;
} mr_flip_sums;
void mr_flip_compare(mr_flip_sums *out, const int *topk_a, const int *topk_b, int N, int k);

/* Load-balance figures from expert counts (shared with the summary above). */
void mr_load_balance(const int64_t *load, int E, double *entropy, double *cv,
                     double *max_over_mean, int *dead);

#endif
