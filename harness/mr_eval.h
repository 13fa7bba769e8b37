/* mr_eval.h — evaluate a model with a router on a dataset: clean, optionally under a
 * corruption, optionally against a second checkpoint.
 *
 * Samples are cut into fixed micro-batches [i*B, (i+1)*B) that OpenMP threads take
 * in any order; every per-sample value is stored at its sample index and reduced
 * afterwards in index order (layer counts are exact integers), so results are
 * bit-identical for any thread count.
 * Ownership: everything in mr_eval_result is owned by it (mr_eval_result_free).
 */
#ifndef MR_EVAL_H
#define MR_EVAL_H

#include "../analysis/mr_engine.h"
#include "../metrics/mr_pass.h"
#include "../io/mr_data.h"
#include "../io/mr_routing_io.h"
#include "mr_prefix_cache.h"

/* How a micro-batch's input is corrupted (the corrupted pass). Implemented by the
 * corruption library; `ctx` is its state. Any of the three may be NULL. */
typedef struct mr_eval_corruption {
    const char *label; /* e.g. "shot_noise:3", for output */
    /* out[n,H,W,C] from in; samples first_index .. first_index+n-1; thread = worker */
    int (*images)(void *ctx, uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                  uint64_t first_index, int thread);
    /* out[n,cols] from in (same shape, ids in vocabulary) */
    int (*tokens)(void *ctx, int32_t *out, const int32_t *in, int n, int cols,
                  uint64_t first_index, int thread);
    /* x[n*T, d] in place, after the input embedding */
    int (*embeddings)(void *ctx, float *x, int n, int T, int d, uint64_t first_index,
                      int thread);
    void *ctx;
} mr_eval_corruption;

/* Routing choices and predictions of one pass, kept to compare later passes against
 * (the batch harness runs a clean pass once per model and router and reuses it for
 * every corrupted cell and checkpoint comparison). Memory: n*n_moe*T*k int16 plus n*rows
 * int32 — it grows with tokens, unlike a single eval run, by design of the grid.
 * Ownership: mr_eval_cache_alloc / mr_eval_cache_free. */
typedef struct mr_eval_cache {
    int n, T, n_moe, k, rows;   /* rows: predictions per sample (1 classify, T lm) */
    int16_t *topk;              /* [n, n_moe, T, k] */
    int32_t *pred;              /* [n, rows] argmax of the logits */
} mr_eval_cache;

int mr_eval_cache_alloc(mr_eval_cache **out, int n, int T, int n_moe, int k, int rows);
void mr_eval_cache_free(mr_eval_cache *c);

/* The metric values of a pass and of a routing comparison (metrics/mr_pass.h). */
typedef mr_pass_metrics mr_eval_pass;
typedef mr_flip_metrics mr_eval_flips;

typedef struct mr_eval_opts {
    mr_engine_opts engine;
    int threads;               /* OpenMP threads (>= 1) */
    const char *save_routing;  /* NULL, or an HDF5 file for the routing trace (format v1,
                                  io/mr_routing_io.h) of the main condition; with a
                                  corruption and a clean pass, the clean pass goes to its
                                  .clean.h5 sibling (mr_routing_clean_path) */
    mr_trace_meta trace;       /* its labels (docs/trace-format.md); NULL fields default to
                                  the model file's stem (model, checkpoint), the router's
                                  type, the condition evaluated and "moe-robust" */
    const mr_eval_corruption *corruption; /* NULL: clean only */
    const mr_model *compare;   /* NULL, or a second checkpoint run on the same inputs */
    const mr_router *compare_router; /* its router (required with compare) */
    const mr_eval_cache *clean_cache; /* with a corruption: compare against this clean
                                         pass instead of recomputing it (res->clean unset) */
    mr_eval_cache *store_cache;  /* NULL, or filled with the main condition's routing */
    int bootstrap;             /* resamples for CIs (0: none) */
    double level;              /* CI level, e.g. 0.95 */
    uint64_t seed;             /* bootstrap seed */
    mr_boot_cache *boot_cache; /* NULL, or resample plans kept across evaluations (the
                                  grid's: metrics/mr_boot.h); CIs are the same either way */
    mr_prefix_kept *prefix;    /* NULL, or the router-independent prefix of the main
                                  condition's inputs, kept across evaluations (the grid's:
                                  mr_prefix_cache.h): samples it holds skip the prefix and
                                  their corruption, the others fill it; ignored unless its
                                  micro-batch size is this evaluation's, and with
                                  keep_attention or compare. Results are the same either way */
} mr_eval_opts;

void mr_eval_opts_init(mr_eval_opts *o, const mr_model *m);

typedef struct mr_eval_result {
    int task, n, T, n_moe, E, k;
    long long n_scored;        /* predictions per pass: n (classify) or n*T (lm) */
    mr_eval_pass clean;
    mr_eval_pass corrupt;      /* when opts.corruption */
    mr_eval_flips flip_corrupt;/* clean vs corrupted, same model */
    mr_eval_flips flip_ckpt;   /* this model vs opts.compare on the main condition */
    mr_paired acc_drop;        /* clean minus corrupted accuracy (paired bootstrap) */
    mr_paired loss_rise;       /* corrupted minus clean loss */
    int has_clean, has_corrupt, has_compare;
} mr_eval_result;

int mr_eval_run(mr_eval_result *res, const mr_model *m, const mr_router *r,
                const mr_dataset *d, const mr_eval_opts *o);
void mr_eval_result_free(mr_eval_result *res);

/* MR_OK if checkpoint b routes the same MoE layers over the same experts and inputs as a
 * (so their routings can be compared token by token); MR_EINPUT naming both otherwise. */
int mr_eval_check_compatible(const mr_model *a, const mr_model *b);

/* Flips between two caches of the same samples and shapes (f allocated here; free with
 * mr_eval_flips_free). CIs use opts' bootstrap, level and seed, under `name`. */
int mr_eval_compare_caches(mr_eval_flips *f, const mr_eval_cache *a, const mr_eval_cache *b,
                           const mr_eval_opts *o, const char *name);
/* The same, plus the router saturation of a against `last`, the last checkpoint of a
 * series (f->sat, docs/metrics.md "Router saturation"); last = NULL: none. */
int mr_eval_compare_series(mr_eval_flips *f, const mr_eval_cache *a, const mr_eval_cache *b,
                           const mr_eval_cache *last, const mr_eval_opts *o, const char *name);
void mr_eval_flips_free(mr_eval_flips *f);

#endif
