/* mr_eval.h — evaluate a model with a router on a dataset.
 *
 * Samples are cut into fixed micro-batches [i*B, (i+1)*B) that OpenMP threads take
 * in any order; every per-sample value is stored at its sample index and reduced
 * afterwards in index order, so results are bit-identical for any thread count.
 * Ownership: mr_eval_result arrays are owned by the result (mr_eval_result_free).
 */
#ifndef MR_EVAL_H
#define MR_EVAL_H

#include "../analysis/mr_engine.h"
#include "mr_data.h"

typedef struct mr_eval_opts {
    mr_engine_opts engine;
    int threads;               /* OpenMP threads (>= 1) */
    const char *save_routing;  /* NULL, or an HDF5 file to write routing traces to */
} mr_eval_opts;

typedef struct mr_eval_result {
    int task;
    int n;                     /* samples */
    int T;                     /* tokens per sample */
    int n_moe, E;
    long long n_scored;        /* predictions scored: n (classify) or n*T (lm) */
    double accuracy;           /* classify: top-1; lm: next-token top-1 */
    double loss;               /* mean cross-entropy (nats) per scored prediction */
    double bpc;                /* lm: loss / ln 2 */
    double *entropy;           /* [n_moe] mean routing entropy per token (nats) */
    /* per-sample values, index order */
    double *sample_correct;    /* [n] fraction of correct predictions of the sample */
    double *sample_loss;       /* [n] mean loss of the sample */
    double *sample_entropy;    /* [n, n_moe] mean routing entropy over the sample's tokens */
} mr_eval_result;

int mr_eval_run(mr_eval_result *res, const mr_model *m, const mr_router *r,
                const mr_dataset *d, const mr_eval_opts *o);
void mr_eval_result_free(mr_eval_result *res);

#endif
