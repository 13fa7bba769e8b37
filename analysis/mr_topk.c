/* mr_route_topk (analysis/mr_router.h): the k largest of p[E] in descending order, ties
 * to the lower index, for the engine's routers and `moe-robust analyze` alike (one
 * choice, so a trace's top-k is the engine's).
 *
 * Fast path (k <= 16, no NaN), on CPUs with AVX-512 in registers of 16 floats
 * (topk_avx512_fast, at most 16 candidates; with AVX2 only, rows of 33 to 64 scores in
 * registers of 8, topk_fast_avx2; elsewhere the same steps in plain loops,
 * topk_portable, at most TOPK_CAND), branch-free apart from well-predicted tests:
 *  1. a lower bound t of the k-th largest: the maxima of 16 groups (e mod 16) are 16
 *     distinct elements, so their k-th largest is at most the k-th largest of p;
 *  2. the candidates p[e] >= t in index order (every top-k element is one of them;
 *     about 10 of 64 for OLMoE-sized routers, 18 at most in 100,000 noisy tokens), from
 *     a 32-bit mask per 32 scores (a vector compare, then an OR across the lanes);
 *  3. each candidate's rank = the candidates of larger value, counted 16 lanes at a
 *     time; where values repeat (the ranks are then not a permutation: their sum falls
 *     short of n (n - 1) / 2) equal values rank by index; the first k placed by rank.
 * The order is a strict total order on non-NaN floats, so the result is exactly the
 * selection sort's (kept below as the reference for NaN inputs). More than TOPK_CAND
 * candidates (many ties) or k > 16 take one insertion pass instead.
 * It replaced an insertion pass whose data-dependent branches were 45 % of analyze's
 * profile, then loops that GCC vectorized with scalar reductions, then GCC vector
 * extensions (docs/performance.md). Rows of 33 to 64 scores on CPUs with AVX-512 VBMI2
 * take topk_fast64_q: the same steps, the candidates gathered from a 64-bit mask; rows of
 * at most 16 scores take topk_small_avx512: step 3 alone, every score a candidate (with
 * AVX2 only, topk_small_avx2). */
#include "mr_router.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mr_ops.h" /* mr_simd_avx512 */
#include "mr_simd.h"
#ifdef MR_AVX512
#include <immintrin.h>
#endif

#define TOPK_GROUPS 16
#define TOPK_CAND 32

/* Partial selection sort: any input (a NaN is never "greater", as in the engine's
 * original choice); O(k^2 E). */
static void topk_select(int *idx, const float *p, int E, int k)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++) taken |= idx[i] == e;
            if (taken) continue;
            if (best < 0 || p[e] > p[best]) best = e;
        }
        idx[j] = best;
    }
}

/* One insertion pass, for non-NaN p: an element enters only if it beats the k-th
 * largest so far (equal: the lower index stays). */
static void topk_insert(int *idx, const float *p, int E, int k)
{
    int n = 0;
    for (int e = 0; e < E; e++) {
        float v = p[e];
        if (n == k && !(v > p[idx[k - 1]])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && v > p[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = e;
    }
}

#ifdef MR_AVX512
/* Rows searched side by side at most (topk_fast64_q's Q) */
#define TOPK_Q 4

/* Steps 1-3 in AVX-512 registers (E > 32, k <= 16): 1 if idx holds the top-k, 0 when
 * there are more than 16 candidates (many ties), -1 when p holds a NaN. Branch-free but
 * for those two rare exits:
 *  1. the group maxima g (one vmaxps per 16 scores); each lane's count of maxima >= it
 *     (16 broadcast compares); t = the largest g with a count >= k;
 *  2. the candidates p[e] >= t of each block of 16 compressed (vcompressps) and
 *     appended (vexpandps) into one register of values and one of indices, in index
 *     order; the 16 - n unused lanes -Inf, below every candidate (t > -Inf: with t = -Inf
 *     all E > 32 scores would be candidates);
 *  3. each candidate's rank = the candidates before it in the order (value descending,
 *     then index): larger values (16 broadcast compares), and where values repeat
 *     (found by the ranks' sum) equal values in lower lanes; ranks 0 .. k-1 scattered
 *     into idx (vpscatterdd).
 * It replaced the same steps in GCC vector extensions, which ended each in scalar code
 * (115 ns per token of 64 scores on the 2-core VM, a third of analyze; docs/performance.md).
 * Q rows side by side (Q <= TOPK_Q): one row's chains of dependent compares and adds run
 * next to the others'. Steps 1 and 3 (topk_threshold_q, topk_rank_q) are shared with
 * topk_fast64_q below. */

/* Step 1 for Q rows from their group maxima g[q] and NaN masks nan[q]: the threshold
 * vt[q] (broadcast), and st[q] = -1 where the row holds a NaN, else 1. */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void
topk_threshold_q(int *st, __m512 *vt, const __m512 *g, const __mmask16 *nan, int k, const int Q)
{
    const __m512i one = _mm512_set1_epi32(1);
    __m512i ge[TOPK_Q];
    float ga[TOPK_Q][16];
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
        st[q] = nan[q] ? -1 : 1;
        _mm512_storeu_ps(ga[q], g[q]);
        ge[q] = _mm512_setzero_si512();
    }
    /* the lanes broadcast from memory (load ports): from the register GCC takes each by
     * a permute, two more uops on port 5, which the compares need (60 -> 52 ns a token) */
    __asm__("" : "+m"(ga));
#pragma GCC unroll 16
    for (int m = 0; m < 16; m++)
#pragma GCC unroll 4
        for (int q = 0; q < Q; q++)
            ge[q] = _mm512_mask_add_epi32(
                ge[q], _mm512_cmp_ps_mask(_mm512_set1_ps(ga[q][m]), g[q], _CMP_GE_OQ), ge[q], one);
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++)
        vt[q] = _mm512_set1_ps(
            _mm512_mask_reduce_max_ps(_mm512_cmpge_epi32_mask(ge[q], _mm512_set1_epi32(k)), g[q]));
}

/* Step 3 for Q rows: the n[q] candidates cv[q] / ci[q] (in index order, -Inf beyond n[q])
 * ranked, the first k scattered into idx[q]; rows with st[q] != 1 left alone. */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void
topk_rank_q(int *const *idx, const int *st, const __m512 *cv, const __m512i *ci, const int *n,
            int k, const int Q)
{
    const __m512i one = _mm512_set1_epi32(1);
    __m512i rank[TOPK_Q];
    float ca[TOPK_Q][16];
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
        _mm512_storeu_ps(ca[q], cv[q]);
        rank[q] = _mm512_setzero_si512();
    }
    __asm__("" : "+m"(ca)); /* broadcasts from memory, as in topk_threshold_q */
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
#pragma GCC unroll 4
        for (int q = 0; q < Q; q++)
            rank[q] = _mm512_mask_add_epi32(
                rank[q], _mm512_cmp_ps_mask(_mm512_set1_ps(ca[q][j]), cv[q], _CMP_GT_OQ), rank[q], one);
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
        if (st[q] != 1) continue;
        if (_mm512_mask_reduce_add_epi32((__mmask16)((1u << n[q]) - 1u), rank[q]) != n[q] * (n[q] - 1) / 2)
            for (int j = 0; j < 16; j++) /* lanes i > j: j is before them on equal values */
                rank[q] = _mm512_mask_add_epi32(
                    rank[q], _mm512_mask_cmp_ps_mask((__mmask16)(0xfffeu << j), _mm512_set1_ps(ca[q][j]),
                                                     cv[q], _CMP_EQ_OQ),
                    rank[q], one);
        _mm512_mask_i32scatter_epi32(idx[q], _mm512_cmplt_epi32_mask(rank[q], _mm512_set1_epi32(k)),
                                     rank[q], ci[q], 4);
    }
}

MR_AVX512_TARGET static inline __attribute__((always_inline)) void
topk_fast_q(int *st, int *const *idx, const float *const *p, int E, int k, const int Q)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __mmask16 tail = (__mmask16)((1u << (E & 15)) - 1u), nan[TOPK_Q];
    __m512 g[TOPK_Q], vt[TOPK_Q], cv[TOPK_Q];
    __m512i ci[TOPK_Q];
    int n[TOPK_Q];
    /* 1. the threshold */
    for (int q = 0; q < Q; q++) {
        g[q] = ninf;
        nan[q] = 0;
    }
    for (int b0 = 0; b0 < E; b0 += 16)
        for (int q = 0; q < Q; q++) {
            __m512 x = _mm512_mask_loadu_ps(ninf, b0 + 16 <= E ? (__mmask16)0xffff : tail, p[q] + b0);
            nan[q] |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
            g[q] = _mm512_max_ps(x, g[q]);
        }
    topk_threshold_q(st, vt, g, nan, k, Q);
    for (int q = 0; q < Q; q++) {
        cv[q] = ninf;
        ci[q] = _mm512_set1_epi32(INT32_MAX);
        n[q] = 0;
    }
    /* 2. the candidates */
    for (int b0 = 0; b0 < E; b0 += 16)
        for (int q = 0; q < Q; q++) {
            if (st[q] != 1) continue;
            __mmask16 in = b0 + 16 <= E ? (__mmask16)0xffff : tail;
            __m512 x = _mm512_maskz_loadu_ps(in, p[q] + b0);
            __mmask16 m = _mm512_mask_cmp_ps_mask(in, x, vt[q], _CMP_GE_OQ);
            int c = __builtin_popcount(m);
            if (n[q] + c > 16) {
                st[q] = 0;
                continue;
            }
            __mmask16 to = (__mmask16)(((1u << c) - 1u) << n[q]);
            cv[q] = _mm512_mask_expand_ps(cv[q], to, _mm512_maskz_compress_ps(m, x));
            ci[q] = _mm512_mask_expand_epi32(
                ci[q], to,
                _mm512_maskz_compress_epi32(m, _mm512_add_epi32(iota, _mm512_set1_epi32(b0))));
            n[q] += c;
        }
    /* 3. ranks: the larger values; where the candidates' values repeat (their ranks
     * then sum to less than n (n - 1) / 2), also the equal values in lower lanes */
    topk_rank_q(idx, st, cv, ci, n, k, Q);
}

/* Q = 1 or 2 rows; two side by side: one token's chains of dependent compares and adds
 * next to the other's, where one token at a time left the core waiting on them
 * (docs/performance.md); each token's result is its own. */
MR_AVX512_TARGET static void topk_avx512_rows(int *st, int *const *idx, const float *const *p,
                                              int E, int k, int Q)
{
    if (Q == 2) topk_fast_q(st, idx, p, E, k, 2);
    else topk_fast_q(st, idx, p, E, k, 1);
}

#define MR_VBMI2_TARGET                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi2,fma,f16c")))

/* topk_fast_q for rows of 33 to 64 scores (OLMoE's and DeepSeek-MoE's 64, Qwen1.5-MoE's
 * 60) on CPUs with AVX-512 VBMI2 (Ice Lake and later), Q <= TOPK_Q rows side by side: a
 * row's four blocks stay in registers from their load; one NaN test on their sum (where
 * Inf - Inf reads as NaN too, the row takes the portable path, right for every input);
 * step 2 without its chain of compresses and expands per block: the candidates' 64-bit
 * mask compresses a byte ramp 0..63 (vpcompressb) into their indices in index order,
 * widened to 16 lanes, and their values are picked from the registers by two two-table
 * permutes (vpermt2ps) and a blend. The same threshold, candidates and ranks, so the same
 * choices (test_router runs both kernels against the selection sort). Four rows at a
 * time: a token's top-k of 64 scores in 34.5 ns against topk_fast_q's 52 (two rows) in
 * a micro-benchmark (docs/performance.md). */
MR_VBMI2_TARGET static inline __attribute__((always_inline)) void
topk_fast64_q(int *st, int *const *idx, const float *const *p, int E, int k, const int Q)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i ramp = _mm512_set_epi64(0x3f3e3d3c3b3a3938, 0x3736353433323130, 0x2f2e2d2c2b2a2928,
                                          0x2726252423222120, 0x1f1e1d1c1b1a1918, 0x1716151413121110,
                                          0x0f0e0d0c0b0a0908, 0x0706050403020100);
    __mmask16 in[4];
    for (int b = 0; b < 4; b++) {
        int left = E - 16 * b;
        in[b] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1u) : 0;
    }
    __m512 x[TOPK_Q][4], g[TOPK_Q], vt[TOPK_Q], cv[TOPK_Q]; /* [16] each */
    __m512i ci[TOPK_Q];
    __mmask16 nan[TOPK_Q];
    int n[TOPK_Q];
    /* 1. the threshold */
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++) x[q][b] = _mm512_mask_loadu_ps(ninf, in[b], p[q] + 16 * b);
        __m512 sum = _mm512_add_ps(_mm512_add_ps(x[q][0], x[q][1]), _mm512_add_ps(x[q][2], x[q][3]));
        nan[q] = _mm512_cmp_ps_mask(sum, sum, _CMP_UNORD_Q);
        g[q] = _mm512_max_ps(_mm512_max_ps(x[q][0], x[q][1]), _mm512_max_ps(x[q][2], x[q][3]));
    }
    topk_threshold_q(st, vt, g, nan, k, Q);
    /* 2. the candidates: their indices from the mask, their values from the registers;
     * more than 16: st = 0 (n, cv and ci are then not used) */
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
        uint64_t m = 0;
#pragma GCC unroll 4
        for (int b = 0; b < 4; b++)
            m |= (uint64_t)_mm512_mask_cmp_ps_mask(in[b], x[q][b], vt[q], _CMP_GE_OQ) << (16 * b);
        n[q] = __builtin_popcountll(m);
        if (n[q] > 16 && st[q] == 1) st[q] = 0;
        ci[q] = _mm512_cvtepu8_epi32(_mm512_castsi512_si128(_mm512_maskz_compress_epi8(m, ramp)));
        __mmask16 hi = _mm512_test_epi32_mask(ci[q], _mm512_set1_epi32(32)); /* blocks 2, 3 */
        __m512 v = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(x[q][0], ci[q], x[q][1]),
                                        _mm512_permutex2var_ps(x[q][2], ci[q], x[q][3]));
        cv[q] = _mm512_mask_mov_ps(ninf, (__mmask16)(n[q] >= 16 ? 0xffffu : (1u << n[q]) - 1u), v);
    }
    /* 3. ranks (the unused lanes' index 0 is never placed: their rank is n >= k) */
    topk_rank_q(idx, st, cv, ci, n, k, Q);
}

/* Q = 1 or TOPK_Q rows */
MR_VBMI2_TARGET static void topk_vbmi2_rows(int *st, int *const *idx, const float *const *p,
                                            int E, int k, int Q)
{
    if (Q == TOPK_Q) topk_fast64_q(st, idx, p, E, k, TOPK_Q);
    else topk_fast64_q(st, idx, p, E, k, 1);
}
#endif

/* The n candidates cv/ci (in index order) ranked over W lanes (W >= n, a constant at
 * each call so the loops vectorize): rank = candidates before it in the order. */
static inline void topk_rank(int *idx, const float *cv, const int *ci, int n, int k, int W)
{
    int r[TOPK_CAND], out[TOPK_CAND + 1];
    for (int i = 0; i < W; i++) r[i] = 0;
    for (int j = 0; j < n; j++) {
        float v = cv[j];
#pragma omp simd
        for (int i = 0; i < W; i++) r[i] += (v > cv[i]) | ((v == cv[i]) & (j < i));
    }
    for (int i = 0; i < n; i++) out[r[i] < k ? r[i] : TOPK_CAND] = ci[i];
    for (int j = 0; j < k; j++) idx[j] = out[j];
}

/* Every input: NaN, k > 16, the group threshold and ranks in loops that GCC vectorizes
 * for any x86-64 (the path of CPUs without AVX-512). */
MR_VECTOR_CLONES
static void topk_portable(int *idx, const float *p, int E, int k)
{
    int nan = 0;
#pragma omp simd reduction(| : nan)
    for (int e = 0; e < E; e++) nan |= p[e] != p[e];
    if (nan) {
        topk_select(idx, p, E, k);
        return;
    }
    if (k > TOPK_GROUPS) {
        topk_insert(idx, p, E, k);
        return;
    }
    float cv[TOPK_CAND + 1] = {0};
    int ci[TOPK_CAND + 1] = {0};
    int n = 0;
    if (E <= TOPK_CAND) {
        for (int e = 0; e < E; e++) {
            cv[e] = p[e];
            ci[e] = e;
        }
        n = E;
    } else {
        /* 1. t: the k-th largest of the 16 group maxima */
        float g[TOPK_GROUPS];
        int e0 = TOPK_GROUPS;
        for (int l = 0; l < TOPK_GROUPS; l++) g[l] = p[l];
        for (; e0 + TOPK_GROUPS <= E; e0 += TOPK_GROUPS)
#pragma omp simd
            for (int l = 0; l < TOPK_GROUPS; l++) g[l] = p[e0 + l] > g[l] ? p[e0 + l] : g[l];
        for (int e = e0; e < E; e++) g[e - e0] = p[e] > g[e - e0] ? p[e] : g[e - e0];
        int ge[TOPK_GROUPS] = {0};
        for (int m = 0; m < TOPK_GROUPS; m++)
#pragma omp simd
            for (int l = 0; l < TOPK_GROUPS; l++) ge[l] += g[m] >= g[l];
        float t = -INFINITY;
#pragma omp simd reduction(max : t)
        for (int l = 0; l < TOPK_GROUPS; l++) t = ge[l] >= k && g[l] > t ? g[l] : t;
        /* 2. the candidates: a bit mask per 32 scores (a vector loop), then its set bits */
        for (int b0 = 0; b0 < E; b0 += 32) {
            int m = E - b0 < 32 ? E - b0 : 32;
            uint32_t bits = 0;
#pragma omp simd reduction(| : bits)
            for (int e = 0; e < m; e++) bits |= (uint32_t)(p[b0 + e] >= t) << e;
            if (n + __builtin_popcount(bits) > TOPK_CAND) {
                topk_insert(idx, p, E, k);
                return;
            }
            for (; bits; bits &= bits - 1) {
                int e = b0 + __builtin_ctz(bits);
                cv[n] = p[e];
                ci[n++] = e;
            }
        }
    }
    /* 3. ranks */
    if (n <= 16) topk_rank(idx, cv, ci, n, k, 16);
    else topk_rank(idx, cv, ci, n, k, TOPK_CAND);
}

#ifdef MR_AVX512
/* A token's exits from the fast kernels: a NaN (-1) to the portable path, more than 16
 * candidates (0) to the insertion pass */
static void topk_exit(int st, int *idx, const float *p, int E, int k)
{
    if (st < 0) topk_portable(idx, p, E, k);
    else if (st == 0) topk_insert(idx, p, E, k);
}

/* Rows of at most 16 scores (the demo models' 8 experts, Mixtral's 8, Switch's 16) in one
 * register: each score's rank = the scores greater than it, or equal at a lower index
 * (step 3 above, E broadcasts instead of a candidate search), then the first k by rank.
 * topk_portable's copies and loops for such rows were 2-3 % of a grid (perf). Returns 0
 * (nothing written) for a NaN: the caller's path. */
MR_AVX512_TARGET static int topk_small_avx512(int *idx, const float *p, int E, int k)
{
    const __mmask16 in = (__mmask16)((1u << E) - 1u);
    const __m512 P = _mm512_maskz_loadu_ps(in, p);
    if (_mm512_mask_cmp_ps_mask(in, P, P, _CMP_UNORD_Q)) return 0;
    const __m512i one = _mm512_set1_epi32(1);
    __m512i r = _mm512_setzero_si512(); /* lane i: the rank of p[i] */
    for (int j = 0; j < E; j++) {
        __m512 v = _mm512_set1_ps(p[j]);
        __mmask16 after = (__mmask16)~((2u << j) - 1u); /* lanes i > j */
        __mmask16 ahead = _mm512_cmp_ps_mask(v, P, _CMP_GT_OQ) |
                          (_mm512_cmp_ps_mask(v, P, _CMP_EQ_OQ) & after);
        r = _mm512_mask_add_epi32(r, ahead, r, one);
    }
    for (int q = 0; q < k; q++) /* ranks are a permutation of 0 .. E-1 */
        idx[q] = __builtin_ctz(_mm512_mask_cmpeq_epi32_mask(in, r, _mm512_set1_epi32(q)));
    return 1;
}

/* The AVX-512 path (CPUs without it keep topk_portable) */
static void topk_avx512(int *idx, const float *p, int E, int k)
{
    if (E <= 16 && k <= E && topk_small_avx512(idx, p, E, k)) return;
    int st = -1; /* k > 16, E <= 32: the portable path */
    if (k <= TOPK_GROUPS && E > TOPK_CAND) {
        if (E <= 64 && mr_simd_vbmi2()) topk_vbmi2_rows(&st, &idx, &p, E, k, 1);
        else topk_avx512_rows(&st, &idx, &p, E, k, 1);
    }
    topk_exit(st, idx, p, E, k);
}

#endif

#ifdef MR_AVX2
/* topk_small_avx512 on CPUs with AVX2 but without AVX-512: rows of at most 16 scores in
 * two registers of 8, each score's rank = the scores greater than it or equal at a lower
 * index (compares give -1, subtracted), then the first k by rank; the same choices
 * (ranks are exact). Returns 0 (nothing written) for a NaN. topk_portable's copies and
 * loops for the demo models' 8 experts were 1.3 % of a grid under MR_SIMD=avx2 (perf). */
MR_AVX2_TARGET static int topk_small_avx2(int *idx, const float *p, int E, int k)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i in[2], r[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    __m256 P[2];
    int nan = 0;
    for (int h = 0; h < 2; h++) {
        in[h] = _mm256_cmpgt_epi32(_mm256_set1_epi32(E - 8 * h), iota);
        P[h] = _mm256_maskload_ps(p + 8 * h, in[h]);
        nan |= _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(P[h], P[h], _CMP_UNORD_Q),
                                                _mm256_castsi256_ps(in[h])));
    }
    if (nan) return 0;
    const int H = E > 8 ? 2 : 1;
    for (int j = 0; j < E; j++) {
        __m256 v = _mm256_set1_ps(p[j]);
        for (int h = 0; h < H; h++) { /* lanes i > j: j is ahead of them on equal values */
            __m256i after = _mm256_cmpgt_epi32(_mm256_add_epi32(iota, _mm256_set1_epi32(8 * h)),
                                               _mm256_set1_epi32(j));
            __m256 ahead = _mm256_or_ps(_mm256_cmp_ps(v, P[h], _CMP_GT_OQ),
                                        _mm256_and_ps(_mm256_cmp_ps(v, P[h], _CMP_EQ_OQ),
                                                      _mm256_castsi256_ps(after)));
            r[h] = _mm256_sub_epi32(r[h], _mm256_castps_si256(ahead));
        }
    }
    for (int q = 0; q < k; q++) { /* ranks are a permutation of 0 .. E-1 */
        __m256i vq = _mm256_set1_epi32(q);
        unsigned lo = (unsigned)_mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpeq_epi32(r[0], vq), in[0])));
        unsigned hi = (unsigned)_mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_and_si256(_mm256_cmpeq_epi32(r[1], vq), in[1])));
        idx[q] = __builtin_ctz(lo | hi << 8);
    }
    return 1;
}
#endif

#ifdef MR_AVX2
/* Steps 1-3 above on CPUs with AVX2 but without AVX-512, for rows of 33 to 64 scores and
 * k <= 16 (OLMoE's and DeepSeek-MoE's 64, Qwen1.5-MoE's 60): the row in eight registers
 * of 8 (-Inf past E); 1. the group maxima g (lanes j and 8 + j of each block of 16 in two
 * registers), each one's count of maxima >= it (16 broadcast compares a register), t =
 * the largest g with a count >= k; 2. the candidates p[e] >= t from a 64-bit mask (a
 * compare and vmovmskps per 8 scores), gathered in index order; 3. each candidate's rank
 * = the candidates of larger value, or of equal value and lower index (a broadcast
 * compare per candidate), the first k placed by rank. Returns 1 when idx holds the top-k,
 * 0 when there are more than 16 candidates (many ties), -1 for a NaN (idx untouched).
 * topk_portable's loops were 41 % of `analyze` of an OLMoE-sized trace under
 * MR_SIMD=avx2 (perf). */
MR_AVX2_TARGET static int topk_fast_avx2(int *idx, const float *p, int E, int k)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 x[8], bad = _mm256_setzero_ps();
    _Pragma("GCC unroll 8")
    for (int h = 0; h < 8; h++) {
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(E - 8 * h), iota);
        x[h] = _mm256_blendv_ps(ninf, _mm256_maskload_ps(p + 8 * h, m), _mm256_castsi256_ps(m));
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(x[h], x[h], _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(bad)) return -1;
    /* 1. the threshold (every group holds two scores or more: E > 32) */
    __m256 g[2];
    g[0] = _mm256_max_ps(_mm256_max_ps(x[0], x[2]), _mm256_max_ps(x[4], x[6]));
    g[1] = _mm256_max_ps(_mm256_max_ps(x[1], x[3]), _mm256_max_ps(x[5], x[7]));
    float ga[16];
    _mm256_storeu_ps(ga, g[0]);
    _mm256_storeu_ps(ga + 8, g[1]);
    __m256i ge[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    _Pragma("GCC unroll 16")
    for (int m = 0; m < 16; m++) {
        __m256 b = _mm256_broadcast_ss(ga + m);
        ge[0] = _mm256_sub_epi32(ge[0], _mm256_castps_si256(_mm256_cmp_ps(b, g[0], _CMP_GE_OQ)));
        ge[1] = _mm256_sub_epi32(ge[1], _mm256_castps_si256(_mm256_cmp_ps(b, g[1], _CMP_GE_OQ)));
    }
    const __m256i km1 = _mm256_set1_epi32(k - 1);
    __m256 tv = _mm256_max_ps(
        _mm256_blendv_ps(ninf, g[0], _mm256_castsi256_ps(_mm256_cmpgt_epi32(ge[0], km1))),
        _mm256_blendv_ps(ninf, g[1], _mm256_castsi256_ps(_mm256_cmpgt_epi32(ge[1], km1))));
    __m128 t4 = _mm_max_ps(_mm256_extractf128_ps(tv, 1), _mm256_castps256_ps128(tv));
    t4 = _mm_max_ps(t4, _mm_permute_ps(t4, 0x4e));
    t4 = _mm_max_ps(t4, _mm_permute_ps(t4, 0xb1));
    const __m256 t = _mm256_broadcastss_ps(t4);
    /* 2. the candidates, in index order (lanes past E: -Inf, never >= t > -Inf; with
     * t = -Inf the mask keeps them out) */
    uint64_t bits = 0;
    _Pragma("GCC unroll 8")
    for (int h = 0; h < 8; h++)
        bits |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(x[h], t, _CMP_GE_OQ)) << (8 * h);
    if (E < 64) bits &= (1ull << E) - 1ull;
    int n = __builtin_popcountll(bits);
    if (n > 16) return 0;
    float cv[16] __attribute__((aligned(32)));
    int ci[16], r[16] __attribute__((aligned(32)));
    for (int i = 0; i < 16; i++) cv[i] = -INFINITY;
    for (int i = 0; bits; bits &= bits - 1, i++) {
        int e = __builtin_ctzll(bits);
        cv[i] = p[e];
        ci[i] = e;
    }
    /* 3. the ranks (lanes from n on: not read) */
    const __m256 c0 = _mm256_load_ps(cv), c1 = _mm256_load_ps(cv + 8);
    __m256i r0 = _mm256_setzero_si256(), r1 = r0;
    const __m256i iota8 = _mm256_add_epi32(iota, _mm256_set1_epi32(8));
    for (int j = 0; j < n; j++) {
        __m256 b = _mm256_broadcast_ss(cv + j);
        __m256i vj = _mm256_set1_epi32(j);
        __m256 a0 = _mm256_or_ps(_mm256_cmp_ps(b, c0, _CMP_GT_OQ),
                                 _mm256_and_ps(_mm256_cmp_ps(b, c0, _CMP_EQ_OQ),
                                               _mm256_castsi256_ps(_mm256_cmpgt_epi32(iota, vj))));
        __m256 a1 = _mm256_or_ps(_mm256_cmp_ps(b, c1, _CMP_GT_OQ),
                                 _mm256_and_ps(_mm256_cmp_ps(b, c1, _CMP_EQ_OQ),
                                               _mm256_castsi256_ps(_mm256_cmpgt_epi32(iota8, vj))));
        r0 = _mm256_sub_epi32(r0, _mm256_castps_si256(a0));
        r1 = _mm256_sub_epi32(r1, _mm256_castps_si256(a1));
    }
    _mm256_store_si256((__m256i *)r, r0);
    _mm256_store_si256((__m256i *)(r + 8), r1);
    for (int i = 0; i < n; i++)
        if (r[i] < k) idx[r[i]] = ci[i];
    return 1;
}
#endif

void mr_route_topk(int *idx, const float *p, int E, int k)
{
#ifdef MR_AVX512
    if (mr_simd_avx512()) {
        topk_avx512(idx, p, E, k);
        return;
    }
#endif
#ifdef MR_AVX2
    if (E <= 16 && k <= E && mr_simd_avx2() && topk_small_avx2(idx, p, E, k)) return;
    if (E > TOPK_CAND && E <= 64 && k <= TOPK_GROUPS && mr_simd_avx2()) {
        int st = topk_fast_avx2(idx, p, E, k);
        if (st == 1) return;
        if (st == 0) { /* more than 16 candidates */
            topk_insert(idx, p, E, k);
            return;
        }
    }
#endif
    topk_portable(idx, p, E, k);
}

void mr_route_topk_tokens(int *idx, const float *p, int nt, int E, int k)
{
    int t = 0;
#ifdef MR_AVX512
    int fast = k <= TOPK_GROUPS && E > TOPK_CAND;
    int q4 = fast && E <= 64 && mr_simd_vbmi2(); /* topk_fast64_q, four rows a call */
    int Q = q4 ? TOPK_Q : fast && mr_simd_avx512() ? 2 : 0;
    for (; Q && t + Q <= nt; t += Q) {
        int st[TOPK_Q], *ix[TOPK_Q];
        const float *px[TOPK_Q];
        for (int q = 0; q < Q; q++) {
            ix[q] = idx + (size_t)(t + q) * k;
            px[q] = p + (size_t)(t + q) * E;
        }
        if (q4) topk_vbmi2_rows(st, ix, px, E, k, Q);
        else topk_avx512_rows(st, ix, px, E, k, Q);
        for (int q = 0; q < Q; q++) topk_exit(st[q], ix[q], px[q], E, k);
    }
#endif
    for (; t < nt; t++) mr_route_topk(idx + (size_t)t * k, p + (size_t)t * E, E, k);
}

void mr_route_topk_portable(int *idx, const float *p, int E, int k)
{
    topk_portable(idx, p, E, k);
}
