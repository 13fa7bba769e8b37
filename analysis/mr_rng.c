#include "mr_rng.h"

#include <stdatomic.h>

#include "mr_ops.h"
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

/* floor(y / scale) for 32-bit y as ((y c) >> 64) with c = ceil(2^64 / scale) (Lemire, Kaser
 * & Kurz 2019, "Faster remainder by direct computation", Theorem 1 with F = 64 >= 32 +
 * log2 scale), where scale > 1; c = 0 stands for scale = 1. */
static inline uint32_t div_scale(uint32_t y, uint64_t c, uint32_t scale)
{
#ifdef __SIZEOF_INT128__
    if (c) return (uint32_t)(((unsigned __int128)y * c) >> 64);
#endif
    return y / scale;
}

#ifdef MR_AVX512
/* 16 state words w at once: tempered (mr_mt_temper), divided by scale (div_scale's
 * product: y c = y c_hi 2^32 + y c_lo, and (y c) >> 64 = (y c_hi + (y c_lo >> 32)) >> 32,
 * which stays below 2^64 for y, c_hi < 2^32; even and odd 32-bit lanes as the low halves of
 * 64-bit lanes), the values < n compressed to the front. Returns their count; *q the
 * compressed values. Needs c != 0. */
MR_AVX512_TARGET static inline __attribute__((always_inline)) int
ints16_avx512(__m512i *q, const uint32_t *w, __m512i clo, __m512i chi, __m512i nv)
{
    __m512i y = _mm512_loadu_si512((const void *)w);
    y = _mm512_xor_si512(y, _mm512_srli_epi32(y, 11));
    y = _mm512_xor_si512(y, _mm512_and_si512(_mm512_slli_epi32(y, 7), _mm512_set1_epi32((int)0x9d2c5680u)));
    y = _mm512_xor_si512(y, _mm512_and_si512(_mm512_slli_epi32(y, 15), _mm512_set1_epi32((int)0xefc60000u)));
    y = _mm512_xor_si512(y, _mm512_srli_epi32(y, 18));
    __m512i odd = _mm512_srli_epi64(y, 32);
    __m512i te = _mm512_add_epi64(_mm512_mul_epu32(y, chi), _mm512_srli_epi64(_mm512_mul_epu32(y, clo), 32));
    __m512i to = _mm512_add_epi64(_mm512_mul_epu32(odd, chi), _mm512_srli_epi64(_mm512_mul_epu32(odd, clo), 32));
    __m512i d = _mm512_or_si512(_mm512_srli_epi64(te, 32), _mm512_slli_epi64(_mm512_srli_epi64(to, 32), 32));
    __mmask16 keep = _mm512_cmplt_epu32_mask(d, nv);
    *q = _mm512_maskz_compress_epi32(keep, d);
    return __builtin_popcount((unsigned)keep);
}

/* mr_mt_uniform_ints's whole runs of 16 words while 16 more values fit in count: returns
 * how many values it wrote at out16 / out32 (one of them NULL); m->mti advanced past the
 * words it read. */
MR_AVX512_TARGET static size_t uniform_ints_avx512(mr_mt *m, uint16_t *out16, uint32_t *out32,
                                                   size_t count, uint32_t n, uint64_t c)
{
    const __m512i clo = _mm512_set1_epi64((long long)(c & 0xffffffffu)),
                  chi = _mm512_set1_epi64((long long)(c >> 32)), nv = _mm512_set1_epi32((int)n);
    size_t k = 0;
    while (k + 16 <= count) {
        if (m->mti >= MT_N) {
            mr_mt_twist(m->mt);
            m->mti = 0;
        }
        if (m->mti + 16 > MT_N) break; /* a run across the twist: the caller's scalar loop */
        __m512i q;
        int got = ints16_avx512(&q, m->mt + m->mti, clo, chi, nv);
        /* all 16 lanes stored (k + 16 <= count: inside out), the next run overwrites those
         * past got: a masked vpmovdw to memory took 94 % of this loop on AMD Zen 5 */
        if (out16)
            _mm256_storeu_si256((__m256i *)(void *)(out16 + k), _mm512_cvtepi32_epi16(q));
        else
            _mm512_storeu_si512((void *)(out32 + k), q);
        k += (size_t)got;
        m->mti += 16;
    }
    return k;
}
#endif

/* count draws of gsl_rng_uniform_int(r, n) of the generator m was loaded from (GSL: scale
 * = (2^32 - 1) / n, a word divided by scale, values >= n rejected and drawn again), into
 * out16 (n <= 65,536) or out32: the same values in the same order, m advanced past exactly
 * the words they took, so r (mr_mt_store) or the next call continues the stream. One call
 * per draw and a 64-bit division each were 2.5x the generator's own work in the
 * bootstrap's B x n draws; with AVX-512 16 words are tempered, divided and compacted at
 * once (the rest one by one). */
void mr_mt_uniform_ints(mr_mt *m, uint16_t *out16, uint32_t *out32, size_t count, uint32_t n)
{
    const uint32_t scale = 0xffffffffu / n;
    const uint64_t c = scale > 1 ? UINT64_MAX / scale + 1 : 0;
    size_t k = 0;
    while (k < count) {
#ifdef MR_AVX512
        if (c && mr_simd_avx512()) k += uniform_ints_avx512(m, out16 ? out16 + k : NULL,
                                                            out32 ? out32 + k : NULL, count - k, n, c);
        if (k >= count) break;
#endif
        /* one word: to the end of a run of 16 (or of count) */
        uint32_t v = div_scale(mr_mt_next(m), c, scale);
        if (v >= n) continue;
        if (out16)
            out16[k++] = (uint16_t)v;
        else
            out32[k++] = v;
    }
}
