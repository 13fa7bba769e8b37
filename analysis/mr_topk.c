/* mr_route_topk (analysis/mr_router.h): the k largest of p[E] in descending order, ties
 * to the lower index, for the engine's routers and `moe-robust analyze` alike (one
 * choice, so a trace's top-k is the engine's).
 *
 * Fast path (k <= 16, no NaN), on CPUs with AVX-512 in GCC vector extensions of 16
 * floats (one register; elsewhere the same steps in plain loops, topk_portable), branch-
 * free apart from well-predicted tests:
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
 * profile, then loops that GCC vectorized with scalar reductions (docs/performance.md). */
#include "mr_router.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mr_simd.h"

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

#if defined(__GNUC__) && !defined(__clang__)
#define TOPK_VEC 1
typedef float v16f __attribute__((vector_size(64)));  /* 16 scores */
typedef int32_t v16i __attribute__((vector_size(64))); /* 16 lanes of 0 / -1 or counts */
/* Macros, not functions: a function taking or returning a 64-byte vector changes the ABI
 * between the clones (GCC -Wpsabi). */
#define V_LOAD(v, src) memcpy(&(v), (src), sizeof(v))
#define V_MAX(a, b) ((v16f)(((v16i)(a) & (v16i)((a) > (b))) | ((v16i)(b) & ~(v16i)((a) > (b)))))
#define V_SWAP8 ((v16i){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7})
#define V_SWAP4 ((v16i){4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3})
#define V_SWAP2 ((v16i){2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1})
#define V_SWAP1 ((v16i){1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0})
/* x = its lanes' OR (or max) in every lane, in 4 shuffles */
#define V_ALL_OR(x)                                                                     \
    do {                                                                                \
        x |= __builtin_shuffle(x, V_SWAP8);                                             \
        x |= __builtin_shuffle(x, V_SWAP4);                                             \
        x |= __builtin_shuffle(x, V_SWAP2);                                             \
        x |= __builtin_shuffle(x, V_SWAP1);                                             \
    } while (0)
#define V_ALL_MAX(x)                                                                    \
    do {                                                                                \
        x = V_MAX(x, __builtin_shuffle(x, V_SWAP8));                                    \
        x = V_MAX(x, __builtin_shuffle(x, V_SWAP4));                                    \
        x = V_MAX(x, __builtin_shuffle(x, V_SWAP2));                                    \
        x = V_MAX(x, __builtin_shuffle(x, V_SWAP1));                                    \
    } while (0)

/* Steps 1-3 for E >= 32; 0 when there are more than TOPK_CAND candidates, -1 when p
 * holds a NaN (found on the way: a separate check ended in a scalar pass over the
 * lanes, 7 % of the search). */
static inline __attribute__((always_inline)) int topk_vec(int *idx, const float *p, int E,
                                                          int k)
{
    static const v16i pw = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
                            16384, 32768};
    /* 1. t: the k-th largest of the 16 group maxima */
    v16f g, x;
    V_LOAD(g, p);
    v16i nan = (v16i)(g != g);
    int e0 = 16;
    for (; e0 + 16 <= E; e0 += 16) {
        V_LOAD(x, p + e0);
        nan |= (v16i)(x != x);
        g = V_MAX(g, x);
    }
    for (int e = e0; e < E; e++) {
        nan[e - e0] |= p[e] != p[e];
        g[e - e0] = p[e] > g[e - e0] ? p[e] : g[e - e0];
    }
    V_ALL_OR(nan);
    if (nan[0]) return -1;
    v16i ge = {0};
    for (int m = 0; m < 16; m++) ge -= (v16i)(g[m] >= g);
    const v16f ninf = (v16f){0} - INFINITY;
    v16f tv = (v16f)(((v16i)g & (v16i)(ge >= k)) | ((v16i)ninf & ~(v16i)(ge >= k)));
    V_ALL_MAX(tv);
    float t = tv[0];
    /* 2. the candidates in index order */
    float cv[TOPK_CAND + 16];
    int ci[TOPK_CAND];
    int n = 0, done = 0;
    for (int b0 = 0; b0 + 16 <= E; b0 += 32) {
        done = b0 + 32 <= E ? b0 + 32 : b0 + 16;
        V_LOAD(x, p + b0);
        v16i m = (v16i)(x >= t) & pw;
        if (b0 + 32 <= E) {
            V_LOAD(x, p + b0 + 16);
            m |= ((v16i)(x >= t) & pw) << 16;
        }
        V_ALL_OR(m);
        uint32_t bits = (uint32_t)m[0];
        if (n + __builtin_popcount(bits) > TOPK_CAND) return 0;
        for (; bits; bits &= bits - 1) {
            int e = b0 + __builtin_ctz(bits);
            cv[n] = p[e];
            ci[n++] = e;
        }
    }
    for (int e = done; e < E; e++) {
        if (!(p[e] >= t)) continue;
        if (n == TOPK_CAND) return 0;
        cv[n] = p[e];
        ci[n++] = e;
    }
    /* 3. ranks */
    int r[TOPK_CAND + 16], out[TOPK_CAND + 1];
    for (int i = n; i < ((n + 15) & ~15); i++) cv[i] = -INFINITY;
    for (int c0 = 0; c0 < n; c0 += 16) {
        v16f c;
        V_LOAD(c, cv + c0);
        v16i rv = {0};
        for (int j = 0; j < n; j++) rv -= (v16i)(cv[j] > c);
        memcpy(r + c0, &rv, sizeof rv);
    }
    int sum = 0;
    for (int i = 0; i < n; i++) sum += r[i];
    if (2 * sum != n * (n - 1))
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) r[i] += cv[j] == cv[i];
    for (int i = 0; i < n; i++) out[r[i] < k ? r[i] : TOPK_CAND] = ci[i];
    for (int j = 0; j < k; j++) idx[j] = out[j];
    return 1;
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

#ifdef TOPK_VEC
/* The 16-float vector path, compiled for AVX-512 only: with AVX2 or SSE GCC splits the
 * 64-byte vectors and their shuffles into slow sequences (5x topk_portable's time), so
 * other CPUs keep topk_portable. */
__attribute__((target("avx512f"))) static void topk_avx512(int *idx, const float *p, int E,
                                                           int k)
{
    int st = k > TOPK_GROUPS || E <= TOPK_CAND ? -1 : topk_vec(idx, p, E, k);
    if (st < 0) topk_portable(idx, p, E, k); /* NaN, k > 16, E <= 32 */
    else if (st == 0) topk_insert(idx, p, E, k);
}

static int has_avx512(void)
{
    static int known = -1; /* a benign race: every thread finds the same */
    if (known < 0) known = __builtin_cpu_supports("avx512f") ? 1 : 0;
    return known;
}
#endif

void mr_route_topk(int *idx, const float *p, int E, int k)
{
#ifdef TOPK_VEC
    if (has_avx512()) {
        topk_avx512(idx, p, E, k);
        return;
    }
#endif
    topk_portable(idx, p, E, k);
}

void mr_route_topk_portable(int *idx, const float *p, int E, int k)
{
    topk_portable(idx, p, E, k);
}
