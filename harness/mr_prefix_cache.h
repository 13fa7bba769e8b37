/* mr_prefix_cache.h — the router-independent prefix of a forward (analysis/mr_engine.h:
 * the embedding, the blocks before the first MoE block and that block's attention), kept
 * for one input set so that the router groups of one model compute it once
 * (docs/performance.md "Sharing the prefix across routers").
 *
 * An entry is keyed by the model (the same weights: a checkpoint is another model), the
 * input set (NULL for the clean data, else the corruption type, with its severity) and the
 * micro-batch size; the prefix of those depends on nothing else in a run (the router and
 * k act from the first MoE block's routing on; corruptions depend on the seed and sample
 * index only). A sample's prefix is kept only when its micro-batch lies wholly in the
 * first n_keep samples (the budget), and is loaded into the same position of a
 * micro-batch of the same size: the floats are those the forward would compute again.
 * The cache holds one entry: asking for another key forgets the previous one, so a grid
 * runs one input set's router groups back to back (mr_grid.c).
 * Ownership: the caller owns the cache (mr_prefix_cache_alloc / _free); the entry belongs
 * to it. Samples are stored by the thread that computes them (disjoint ranges); loads
 * happen in later evaluations, after the storing one has returned.
 */
#ifndef MR_PREFIX_CACHE_H
#define MR_PREFIX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "../analysis/mr_model.h"

typedef struct mr_prefix_cache mr_prefix_cache;

typedef struct mr_prefix_kept {
    const mr_model *m;
    const void *input;  /* NULL: clean; else the corruption type */
    int severity;
    int batch;          /* micro-batch size the prefix is computed in */
    int n_keep;         /* samples [0, n_keep) may be kept */
    size_t xf, af;      /* floats of one sample's x [T, d] and att [NH, T, T] */
    float *x;           /* [n_keep, T, d] */
    float *att;         /* [n_keep, NH, T, T], NULL when af = 0 */
    uint8_t *filled;    /* [n_keep] 1 once sample i is kept */
} mr_prefix_kept;

int mr_prefix_cache_alloc(mr_prefix_cache **out, size_t budget_bytes);
void mr_prefix_cache_free(mr_prefix_cache *c);

/* The entry of (m, input, severity, batch) for n samples of T tokens (images: ignored),
 * made empty when the key differs from the kept one; NULL when c is NULL or not one
 * micro-batch fits the budget (the caller computes as usual). */
mr_prefix_kept *mr_prefix_cache_get(mr_prefix_cache *c, const mr_model *m, const void *input,
                                    int severity, int n, int T, int batch);
/* Forget the entry and release its memory. */
void mr_prefix_cache_drop(mr_prefix_cache *c);

/* Whether samples [first, first + n) are all kept. */
int mr_prefix_kept_has(const mr_prefix_kept *k, int first, int n);
/* Copy samples [first, first + n) into x [n, T, d] and att [n, NH, T, T] (both kept). */
void mr_prefix_kept_load(const mr_prefix_kept *k, float *x, float *att, int first, int n);
/* Keep samples [first, first + n) from x and att when they fit in n_keep (else nothing). */
void mr_prefix_kept_store(mr_prefix_kept *k, const float *x, const float *att, int first, int n);

#endif
