/* mr_corrupt_cache.h — corrupted inputs kept for a whole run, so that a grid corrupts
 * each sample once per (corruption, severity) and every router, checkpoint and model of
 * the same input reuses it (docs/performance.md).
 *
 * Image and text corruptions depend only on the input, the corruption, the severity,
 * the seed and the sample index (mr_corrupt_images / mr_corrupt_tokens, streams
 * (seed, "corrupt/<name>", index)), not on the model or router: a kept sample is the
 * same bytes the corruption would produce again. Embedding-space corruptions act on a
 * model's embeddings and are not kept; text corruptions read the model's vocabulary,
 * which is part of an entry's key. Entries are filled sample by sample as
 * evaluations corrupt them (mr_corrupt_setup), and are kept while the byte budget lasts.
 * Ownership: the caller owns the cache (mr_corrupt_cache_alloc / _free); entries belong
 * to it. An entry's samples are written by the thread that corrupts them, one chunk of
 * samples per thread; evaluations using the cache run one after another.
 */
#ifndef MR_CORRUPT_CACHE_H
#define MR_CORRUPT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "../corruptions/mr_corruption.h"

typedef struct mr_corrupt_cache mr_corrupt_cache;

/* One (corruption, severity): n samples of `bytes` bytes each. */
typedef struct mr_corrupt_kept {
    const mr_corruption_type *t;
    int severity;
    const int32_t *vocab; /* text: the vocabulary the tokens were corrupted with [V] */
    int V;
    size_t bytes;     /* per sample */
    uint8_t *data;    /* [n, bytes] the corrupted samples */
    uint8_t *filled;  /* [n] 1 once sample i is in data */
} mr_corrupt_kept;

/* A cache for n samples of `bytes` bytes (an image h*w*c, or cols int32 token ids),
 * up to budget_bytes of samples in all. */
int mr_corrupt_cache_alloc(mr_corrupt_cache **out, int n, size_t bytes, size_t budget_bytes);
void mr_corrupt_cache_free(mr_corrupt_cache *c);

/* The entry of (t, severity, vocabulary: NULL and 0 for images), made on first use;
 * NULL when c is NULL, t is an embedding corruption, or the budget is spent (the caller
 * corrupts as usual). */
mr_corrupt_kept *mr_corrupt_cache_get(mr_corrupt_cache *c, const mr_corruption_type *t,
                                      int severity, const int32_t *vocab, int V);

/* Copy samples [first, first + n) to out when all are kept (returns 1); else 0. */
int mr_corrupt_kept_load(const mr_corrupt_kept *k, void *out, uint64_t first, int n);
/* Keep samples [first, first + n) from in. */
void mr_corrupt_kept_store(mr_corrupt_kept *k, const void *in, uint64_t first, int n);

#endif
