#include "mr_rng.h"

/* splitmix64 finalizer (Steele, Lea, Flood 2014): a bijective mix with good
 * avalanche, so nearby (seed, index) pairs give unrelated streams. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

uint64_t mr_rng_key(uint64_t seed, const char *purpose, uint64_t index)
{
    return mix64(mix64(mix64(seed) ^ fnv1a(purpose)) ^ index);
}

void mr_rng_reseed(gsl_rng *r, uint64_t seed, const char *purpose, uint64_t index)
{
    uint64_t k = mr_rng_key(seed, purpose, index);
    /* mt19937 takes an unsigned long seed; fold 64 bits so no part of the key is lost
     * on platforms where long is 32 bits, and avoid 0 (GSL maps it to a default seed) */
    unsigned long s = (unsigned long)(k ^ (k >> 32));
    gsl_rng_set(r, s ? s : 1UL);
}

gsl_rng *mr_rng_alloc(uint64_t seed, const char *purpose, uint64_t index)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r) mr_rng_reseed(r, seed, purpose, index);
    return r;
}
