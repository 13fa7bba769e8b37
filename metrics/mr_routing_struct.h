/* mr_routing_struct.h — which experts fire together, for which classes, tokens and
 * domains, and how consistent routing is across layers (docs/metrics.md, "Routing
 * structure"):
 *   co-activation   per layer, P(j in top-k | i in top-k) over tokens, and the share of
 *                   the co-activation mass held by the top 10 % of expert pairs (OLMoE,
 *                   Muennighoff et al. 2024, Sec. 5, counts every pair of the top-k, not
 *                   only adjacent ranks as the authors' script does);
 *   specialization  classify: the class x expert usage matrix (share of a class's top-k
 *                   assignments per expert) and the NMI between label and top-1 expert;
 *                   lm: vocabulary specialization keyed by the next-token target (OLMoE's
 *                   "ground-truth next token" keying: every trace carries /targets);
 *                   domain: the domain x expert matrix and NMI where samples carry one;
 *   consistency     NMI between the top-1 experts of consecutive MoE layers (the premise
 *                   of the AC router's reuse of the previous layer's routing).
 * NMI is the arithmetic-mean normalisation MI / ((H_U + H_V) / 2) in nats (scikit-learn's
 * normalized_mutual_info_score default; equal to the V-measure), 1 when both sides are a
 * single cluster, 0 when only one is.
 *
 * Streaming like mr_routing_acc: traces are added micro-batch by micro-batch from any
 * number of threads; every count is an exact integer merged under one critical section
 * per call, so the result does not depend on thread count or order. Classes, target ids
 * and domains grow the tables as they appear (a trace does not declare its vocabulary).
 * Ownership: the caller owns the accumulator (mr_struct_acc_free).
 */
#ifndef MR_ROUTING_STRUCT_H
#define MR_ROUTING_STRUCT_H

#include <stddef.h>
#include <stdint.h>

#include "../analysis/mr_engine.h"

/* Token ids with fewer occurrences than this are left out of vocabulary specialization. */
#define MR_VOCAB_MIN_COUNT 20

typedef struct mr_struct_acc {
    int n_moe, E, k;
    int64_t *single;   /* [n_moe, E] top-k assignments per expert */
    int64_t *pair;     /* [n_moe, E, E] tokens with both i and j in the top-k (i != j) */
    int64_t *chain;    /* [n_moe, E, E] top-1 at layer l-1 (row) and at l (column); l >= 1 */
    int C, V, D;       /* rows of the tables below (grown on demand) */
    int64_t *cls;      /* [C, n_moe, 2, E] per class: top-k assignments, top-1 tokens */
    int64_t *voc;      /* [V, n_moe, E] per target id: top-k assignments */
    int64_t *voc_n;    /* [V] occurrences of each target id */
    int64_t *dom;      /* [D, n_moe, 2, E] per domain: top-k assignments, top-1 tokens */
    int has_labels, has_targets, has_domains;
    int upper;         /* pair holds each unordered pair once, at [min][max]: the private
                          counts of mr_struct_acc_add_sample, which mr_struct_acc_merge
                          mirrors into a full accumulator */
    uint64_t *bits;    /* [E] mr_struct_acc_add_sample's workspace: per expert, which of up
                          to 64 tokens chose it */
} mr_struct_acc;

int mr_struct_acc_alloc(mr_struct_acc **out, int n_moe, int E, int k);
void mr_struct_acc_free(mr_struct_acc *a);

/* Rows for C classes, V target ids and D domains at least (e.g. the model's classes, so
 * that a class without samples still has its row); not thread-safe. */
int mr_struct_acc_reserve(mr_struct_acc *a, int C, int V, int D);

/* What a micro-batch's samples carry besides their routing (each may be NULL; negative
 * values are "none" and skipped): labels[b] (classify), targets[b * target_stride + t]
 * (lm: the next token of position t), domains[b]. */
typedef struct mr_struct_side {
    const int32_t *labels;
    const int32_t *targets;
    size_t target_stride;
    const int32_t *domains;
} mr_struct_side;

/* Add the trace of one micro-batch (thread-safe). */
int mr_struct_acc_add(mr_struct_acc *a, const mr_trace *tr, const mr_struct_side *side);

/* One sample read in place from trace rows (analyze): its top-k (16-bit expert ids, as
 * io/mr_trace_io.h keeps them) at layer l, token t at topk[(l * layer_stride + t) * k]; tokens with mask[t] = 0 left out (mask NULL: all
 * real); label, domain (< 0: none) and targets[T] (NULL: none) as in mr_struct_side.
 * Counts straight into a, without a copy or a lock: NOT thread-safe, so each thread adds
 * into its own accumulator and the caller merges them (mr_struct_acc_merge; every count
 * is an integer, so the merged result does not depend on the split). Such an accumulator
 * holds each expert pair once (upper = 1; half the increments) and is only for merging:
 * mr_struct_acc_add refuses it. */
int mr_struct_acc_add_sample(mr_struct_acc *a, const uint16_t *topk, const uint8_t *mask, int T,
                             size_t layer_stride, int32_t label, const int32_t *targets,
                             int32_t domain);

/* dst += src (same n_moe, E, k; dst grows to src's classes, ids and domains; the pairs
 * of an upper src counted both ways); not thread-safe. */
int mr_struct_acc_merge(mr_struct_acc *dst, const mr_struct_acc *src);

/* One MoE layer's scalar summaries; NaN where undefined (no pairs with k = 1, no labels,
 * no target id with MR_VOCAB_MIN_COUNT occurrences, no domains, the first MoE layer). */
typedef struct mr_struct_layer {
    double coact_top10;  /* share of the pair counts held by the top ceil(10 %) of the
                            E (E - 1) / 2 expert pairs */
    double class_nmi;    /* NMI(label, top-1 expert) over tokens */
    double vocab_spec;   /* sum_x m_x / sum_x n_x over ids x with n_x >= 20 occurrences,
                            m_x the top-k count of x's most frequent expert (the frequency-
                            weighted mean of m_x / n_x) */
    double domain_nmi;   /* NMI(domain, top-1 expert) over tokens */
    double layer_nmi;    /* NMI(top-1 at the previous MoE layer, top-1 here) */
} mr_struct_layer;

void mr_struct_summarize(mr_struct_layer *out, const mr_struct_acc *a);

/* Matrices of layer l (caller-owned out):
 * co-activation out[E * E]: P(j | i) = pair(i, j) / single(i), diagonal 1, rows of unused
 * experts 0; class / domain usage out[C * E] / out[D * E]: share of the class's (domain's)
 * top-k assignments per expert, rows without tokens 0. */
void mr_struct_coact(double *out, const mr_struct_acc *a, int l);
void mr_struct_class_usage(double *out, const mr_struct_acc *a, int l);
void mr_struct_domain_usage(double *out, const mr_struct_acc *a, int l);

/* Arithmetic NMI of a contingency table n[r * row_stride + c * col_stride], R x C. */
double mr_struct_nmi(const int64_t *n, int R, int C, size_t row_stride, size_t col_stride);
/* Share of the total held by the largest ceil(frac * n) of the n counts (NaN if 0). */
double mr_struct_top_share(const int64_t *x, int n, double frac);

#endif
