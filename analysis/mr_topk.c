/* mr_route_topk (analysis/mr_router.h): the k largest of p[E] in descending order, ties
 * to the lower index, for the engine's routers and `moe-robust analyze` alike (one
 * choice, so a trace's top-k is the engine's).
 *
 * Fast path (k <= 16, no NaN), branch-free apart from two well-predicted tests:
 *  1. a lower bound t of the k-th largest: the maxima of 16 groups (e mod 16) are 16
 *     distinct elements, so their k-th largest is at most the k-th largest of p;
 *  2. the candidates p[e] >= t in index order (every top-k element is one of them;
 *     about 10 of 64 for OLMoE-sized routers, 18 at most in 100,000 noisy tokens), from
 *     a bit mask built in a vector loop;
 *  3. each candidate's rank in the order (value descending, index ascending) counted
 *     over the candidates in fixed-width vector loops, and the first k placed by rank.
 * The order is a strict total order on non-NaN floats, so the result is exactly the
 * selection sort's (kept below as the reference for NaN inputs). More than TOPK_CAND
 * candidates (many ties) or k > 16 take one insertion pass instead.
 * It replaced an insertion pass whose data-dependent branches were 45 % of analyze's
 * profile (docs/performance.md). */
#include "mr_router.h"

#include <math.h>
#include <stdint.h>

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

MR_VECTOR_CLONES
void mr_route_topk(int *idx, const float *p, int E, int k)
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
