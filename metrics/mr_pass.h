/* mr_pass.h — the metric values of one evaluation pass and of one routing comparison:
 * data that the producers of results fill (the evaluation driver, harness/mr_eval.h, and
 * the trace analysis, harness/mr_analyze.h) and the cell format (io/mr_cellio.h) stores,
 * plus the one code that allocates them and turns their per-sample values into CIs, so
 * that every producer computes the same numbers with the same bootstrap streams.
 * Ownership: mr_pass_alloc / mr_flips_alloc fill caller-owned structs that
 * mr_pass_free / mr_flips_free release.
 */
#ifndef MR_PASS_H
#define MR_PASS_H

#include "mr_routing_metrics.h"
#include "mr_routing_struct.h"
#include "mr_stats.h"

/* Accuracy, loss and routing of one condition (clean or corrupted), per sample and in
 * total. */
typedef struct mr_pass_metrics {
    double *correct;           /* [n] fraction of correct predictions of the sample */
    double *loss;              /* [n] mean cross-entropy of the sample (nats) */
    int *pred;                 /* classify: [n] predicted class (for flips) */
    mr_routing_acc *routing;   /* per-sample routing entropy [n, n_moe] and layer totals */
    mr_ci accuracy, loss_ci;   /* means over samples with bootstrap CIs */
    mr_layer_routing *layers;  /* [n_moe] routing summaries */
    mr_struct_acc *structure;  /* co-activation, specialization, layer consistency: the
                                  producer adds every micro-batch with its labels,
                                  targets and domains (mr_struct_acc_add) */
    mr_struct_layer *struct_layers; /* [n_moe] their summaries (mr_pass_summarize) */
} mr_pass_metrics;

/* Routing comparison of two traces of the same tokens, per sample and layer. */
typedef struct mr_flip_metrics {
    double *top1, *set, *jaccard; /* [n, n_moe] fractions of the sample's tokens */
    double *pred;                 /* [n] fraction of the sample's predictions that changed */
    mr_ci *top1_ci, *set_ci, *jaccard_ci; /* [n_moe] */
    mr_ci pred_ci;
    /* fluct cells of a checkpoint series only (NULL otherwise, mr_flips_alloc_sat): router
     * saturation of the cell's first checkpoint, the mean over the sample's tokens of the
     * share of its top-k experts also in its top-k at the last checkpoint */
    double *sat;                  /* [n, n_moe] */
    mr_ci *sat_ci;                /* [n_moe] */
} mr_flip_metrics;

/* CI settings: B resamples (0: none, lo = hi = mean), level, seed; a resample-plan
 * cache that many cells share (metrics/mr_boot.h; NULL: every CI draws its stream). */
typedef struct mr_ci_opts {
    int bootstrap;
    double level;
    uint64_t seed;
    mr_boot_cache *cache;
} mr_ci_opts;

/* Arrays for n samples, n_moe layers of E experts, k chosen (routing accumulator). */
int mr_pass_alloc(mr_pass_metrics *p, int n, int n_moe, int E, int k);
void mr_pass_free(mr_pass_metrics *p);
int mr_flips_alloc(mr_flip_metrics *f, int n, int n_moe);
/* The saturation arrays of an allocated f (freed by mr_flips_free). */
int mr_flips_alloc_sat(mr_flip_metrics *f, int n, int n_moe);
void mr_flips_free(mr_flip_metrics *f);

/* CI of the mean of x[i*stride] under the stream `purpose` (mean only for B = 0). */
int mr_pass_ci(mr_ci *out, const double *x, int n, int stride, const mr_ci_opts *o,
               const char *purpose);
/* mr_stats_paired_test of mean(x - y) (p-value NaN for B = 0). */
int mr_pass_paired(mr_paired *out, const double *x, const double *y, int n,
                   const mr_ci_opts *o, const char *purpose);
/* Accuracy and loss CIs and layer summaries of a filled pass; `name` ("clean",
 * "corrupt") keys the bootstrap streams. */
int mr_pass_summarize(mr_pass_metrics *p, int n, const mr_ci_opts *o, const char *name);
/* Flip CIs per layer and of the prediction flips, and saturation CIs per layer when f has
 * them; `name` ("corrupt", "ckpt"). */
int mr_flips_summarize(mr_flip_metrics *f, int n, int n_moe, const mr_ci_opts *o,
                       const char *name);

#endif
