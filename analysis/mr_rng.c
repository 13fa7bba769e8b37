#include "mr_rng.h"

#include <stdatomic.h>

#include "mr_simd.h"

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

/* GSL's mt19937 state (gsl/rng/mt.c, mt_state_t) */
typedef struct gsl_mt_state {
    unsigned long mt[624];
    int mti;
} gsl_mt_state;

enum { MT_N = 624, MT_M = 397 };

/* Vectorized (omp simd): word k reads words k + 1 and k + M not yet replaced, or k + M - N
 * replaced 227 words earlier, so lanes of up to 227 words read what the scalar loop
 * reads. */
MR_VECTOR_CLONES_512 void mr_mt_twist(uint32_t *mt)
{
#define MT_Y(a, b) (((a) & 0x80000000u) | ((b) & 0x7fffffffu))
#define MT_NEXT(z, y) ((z) ^ ((y) >> 1) ^ (-((y) & 1u) & 0x9908b0dfu))
#pragma omp simd safelen(64)
    for (int k = 0; k < MT_N - MT_M; k++) mt[k] = MT_NEXT(mt[k + MT_M], MT_Y(mt[k], mt[k + 1]));
#pragma omp simd safelen(64)
    for (int k = MT_N - MT_M; k < MT_N - 1; k++)
        mt[k] = MT_NEXT(mt[k + MT_M - MT_N], MT_Y(mt[k], mt[k + 1]));
    mt[MT_N - 1] = MT_NEXT(mt[MT_M - 1], MT_Y(mt[MT_N - 1], mt[0]));
#undef MT_Y
#undef MT_NEXT
}

MR_VECTOR_CLONES_512 void mr_mt_uniforms(mr_mt *m, double *u, size_t n)
{
    size_t k = 0;
    while (k < n) {
        if (m->mti >= MT_N) {
            mr_mt_twist(m->mt);
            m->mti = 0;
        }
        size_t cnt = (size_t)(MT_N - m->mti);
        if (cnt > n - k) cnt = n - k;
        const uint32_t *w = m->mt + m->mti;
        double *d = u + k;
#pragma omp simd
        for (size_t i = 0; i < cnt; i++) d[i] = mr_mt_temper(w[i]) / 4294967296.0;
        m->mti += (int)cnt;
        k += cnt;
    }
}

static int load(mr_mt *m, const gsl_rng *r)
{
    if (r->type != gsl_rng_mt19937 || gsl_rng_size(r) != sizeof(gsl_mt_state)) return 0;
    const gsl_mt_state *st = gsl_rng_state(r);
    if (st->mti < 0 || st->mti > MT_N) return 0;
    for (int i = 0; i < MT_N; i++) m->mt[i] = (uint32_t)st->mt[i];
    m->mti = st->mti;
    return 1;
}

void mr_mt_store(gsl_rng *r, const mr_mt *m)
{
    gsl_mt_state *st = gsl_rng_state(r);
    for (int i = 0; i < MT_N; i++) st->mt[i] = m->mt[i];
    st->mti = m->mti;
}

/* The layout is GSL's internal one: once per process, a generator copied into an mr_mt,
 * drawn past two twists and stored back must agree with GSL's own draws. */
static int layout_check(void)
{
    gsl_rng *a = gsl_rng_alloc(gsl_rng_mt19937), *b = gsl_rng_alloc(gsl_rng_mt19937);
    mr_mt m;
    int same = a && b;
    if (same) {
        gsl_rng_set(a, 20261201UL);
        gsl_rng_set(b, 20261201UL);
        same = load(&m, a);
        for (int i = 0; same && i < 2 * MT_N + 7; i++) same = mr_mt_next(&m) == gsl_rng_get(b);
        if (same) mr_mt_store(a, &m);
        for (int i = 0; same && i < MT_N; i++) same = gsl_rng_get(a) == gsl_rng_get(b);
    }
    if (a) gsl_rng_free(a);
    if (b) gsl_rng_free(b);
    return same;
}

int mr_mt_load(mr_mt *m, const gsl_rng *r)
{
    static _Atomic int layout; /* 0 unknown, 1 GSL's, -1 not */
    int known = layout;
    if (known == 0) layout = known = layout_check() ? 1 : -1;
    return known == 1 && load(m, r);
}
