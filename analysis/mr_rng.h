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
#include <stddef.h>
#include <stdint.h>

/* The 64-bit stream key: splitmix64 over seed, FNV-1a(purpose) and index. */
uint64_t mr_rng_key(uint64_t seed, const char *purpose, uint64_t index);

/* A new mt19937 generator for the stream (caller frees with gsl_rng_free); NULL if
 * out of memory. */
gsl_rng *mr_rng_alloc(uint64_t seed, const char *purpose, uint64_t index);

/* Re-seed an existing generator to the start of a stream. */
void mr_rng_reseed(gsl_rng *r, uint64_t seed, const char *purpose, uint64_t index);

/* GSL's mt19937 drawn inline, for loops of many draws (fog's 65,536 per image, the
 * bootstrap's B x n): a copy of the generator's state (Matsumoto & Nishimura 1998, the
 * reference genrand_int32, as GSL's gsl/rng/mt.c keeps it) whose words are the ones
 * gsl_rng_get(r) would return, in the same order, without a call per draw. */
typedef struct mr_mt {
    uint32_t mt[624]; /* the MT19937 state */
    int mti;          /* next word of it; 624: twist first */
} mr_mt;

/* Copy r's state into m. Returns 1, or 0 (m unusable: draw from r) when r is not a
 * gsl_rng_mt19937 with the state layout of GSL's mt.c (checked once per process against
 * GSL's own draws). */
int mr_mt_load(mr_mt *m, const gsl_rng *r);

/* Write m's state back into r (loaded by mr_mt_load), so r continues after m's draws. */
void mr_mt_store(gsl_rng *r, const mr_mt *m);

/* MT19937's twist of the whole state (Matsumoto & Nishimura 1998, eq. 2.1). */
void mr_mt_twist(uint32_t *mt);

/* MT19937's tempering of one state word (Matsumoto & Nishimura 1998, eq. 2.2-2.5). */
static inline uint32_t mr_mt_temper(uint32_t y)
{
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* The next word: gsl_rng_get(r). */
static inline uint32_t mr_mt_next(mr_mt *m)
{
    if (m->mti >= 624) {
        mr_mt_twist(m->mt);
        m->mti = 0;
    }
    return mr_mt_temper(m->mt[m->mti++]);
}

/* The next uniform in [0, 1): gsl_rng_uniform(r) (GSL's mt_get_double: word / 2^32). */
static inline double mr_mt_uniform(mr_mt *m)
{
    return mr_mt_next(m) / 4294967296.0;
}

/* The next n uniforms into u [n]: n calls of mr_mt_uniform(m), the same doubles, tempered
 * and converted a state's run of words at a time (vectorized). */
void mr_mt_uniforms(mr_mt *m, double *u, size_t n);

/* The next count draws of gsl_rng_uniform_int(r, n) (1 <= n <= 2^32 - 1) into out16
 * (n <= 65,536; out32 NULL) or out32 (out16 NULL): the same values in the same order, m
 * advanced past exactly the words they took (vectorized where the CPU has AVX-512). */
void mr_mt_uniform_ints(mr_mt *m, uint16_t *out16, uint32_t *out32, size_t count, uint32_t n);

#endif
