/* mr_pass.h — the metric values of one evaluation pass and of one routing comparison:
 * plain data that the evaluation driver (harness/mr_eval.h) fills and the cell format
 * (io/mr_cellio.h) stores. Nothing here allocates: the driver owns the arrays
 * (mr_eval_result_free / mr_eval_flips_free release them).
 */
#ifndef MR_PASS_H
#define MR_PASS_H

#include "mr_routing_metrics.h"
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
} mr_pass_metrics;

/* Routing comparison of two traces of the same tokens, per sample and layer. */
typedef struct mr_flip_metrics {
    double *top1, *set, *jaccard; /* [n, n_moe] fractions of the sample's tokens */
    double *pred;                 /* [n] fraction of the sample's predictions that changed */
    mr_ci *top1_ci, *set_ci, *jaccard_ci; /* [n_moe] */
    mr_ci pred_ci;
} mr_flip_metrics;

#endif
