/* mr_boot.h — resample plans: the sample indices one bootstrap stream draws, kept for
 * reuse (docs/metrics.md, "Statistics"; docs/performance.md).
 *
 * A percentile-bootstrap CI (metrics/mr_stats.h) of n samples draws B x n indices from
 * the stream mr_rng(seed, purpose, 0). The stream depends on nothing else, so every cell
 * of a grid draws the same indices for the same (seed, purpose, n, B); drawing them
 * (B·n mt19937 draws per metric and layer) was most of a cell's bootstrap time. A cache
 * keeps each plan once drawn; a CI computed from a kept plan is bit-identical to one
 * that draws anew (the same indices, summed in the same order).
 * Ownership: the caller owns the cache (mr_boot_cache_alloc / mr_boot_cache_free); the
 * plans it returns belong to it and stay valid until it is freed. Thread-safe: lookups
 * and insertions are serialized, plans are never changed once kept.
 */
#ifndef MR_BOOT_H
#define MR_BOOT_H

#include <stddef.h>
#include <stdint.h>

typedef struct mr_boot_cache mr_boot_cache;

/* A cache that keeps plans up to budget_bytes of indices in all (2 bytes an index for
 * n <= 65536 samples, else 4); MR_ENOMEM if out of memory. */
int mr_boot_cache_alloc(mr_boot_cache **out, size_t budget_bytes);
void mr_boot_cache_free(mr_boot_cache *c);

/* A plan: idx16 (n <= 65536) or idx32 holds at [b * n + i] the i-th index the stream
 * draws for resample b (gsl_rng_uniform_int(r, n), in draw order); both NULL: none. */
typedef struct mr_boot_plan_view {
    const uint16_t *idx16;
    const uint32_t *idx32;
} mr_boot_plan_view;

/* The plan of (seed, purpose, n, B). Kept plans come from the cache; a new one is drawn
 * and kept while the budget allows. An empty view (and MR_OK) when c is NULL or the plan
 * does not fit: the caller draws from the stream itself. MR_ENOMEM if out of memory. */
int mr_boot_plan(mr_boot_plan_view *plan, mr_boot_cache *c, uint64_t seed,
                 const char *purpose, size_t n, int B);

/* Bytes of indices kept (for tests and --verbose figures). */
size_t mr_boot_cache_bytes(const mr_boot_cache *c);

#endif
