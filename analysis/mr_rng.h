/* mr_rng.h — every random stream of the suite derives from (seed, purpose, index).
 *
 * A stream is a GSL generator (gsl_rng_mt19937) seeded with a 64-bit mix of the
 * user's seed, a purpose string (e.g. "corrupt/shot_noise", "bootstrap",
 * "router/random") and an index (usually the sample index). Streams therefore do not
 * depend on thread count, batch size or evaluation order. Callers own the gsl_rng
 * and may re-seed one generator per sample with mr_rng_reseed() to avoid allocation.
 */
#ifndef MR_RNG_H
#define MR_RNG_H

#include <gsl/gsl_rng.h>
#include <stdint.h>

/* The 64-bit stream key: splitmix64 over seed, FNV-1a(purpose) and index. */
uint64_t mr_rng_key(uint64_t seed, const char *purpose, uint64_t index);

/* A new mt19937 generator for the stream (caller frees with gsl_rng_free); NULL if
 * out of memory. */
gsl_rng *mr_rng_alloc(uint64_t seed, const char *purpose, uint64_t index);

/* Re-seed an existing generator to the start of a stream. */
void mr_rng_reseed(gsl_rng *r, uint64_t seed, const char *purpose, uint64_t index);

#endif
