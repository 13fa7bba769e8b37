/* mr_lanes_impl.h — what the token-lane kernels share (internal to analysis/): the top-k's
 * sorting networks, and the AVX2 form (analysis/mr_lanes_avx2.c) that mr_route_lanes16
 * (analysis/mr_lanes.c) calls on CPUs without AVX-512. */
#ifndef MR_LANES_IMPL_H
#define MR_LANES_IMPL_H

#include <stdint.h>
#include <string.h>

#include "mr_simd.h" /* MR_AVX512, MR_AVX2 */

#if defined(MR_AVX512) || defined(MR_AVX2)
/* Both kernels read W tokens (16 or 8) of E 16-bit scores a call: a partial call's nt < W
 * tokens are copied into pad (W * E entries), then zeros, and the kernel reads pad;
 * a whole call reads raw in place. Returns what the kernel reads. */
static inline const uint16_t *mr_lanes_pad(uint16_t *pad, const uint16_t *raw, int nt, int E,
                                           int W)
{
    if (nt >= W) return raw;
    memcpy(pad, raw, (size_t)nt * E * sizeof *raw);
    memset(pad + (size_t)nt * E, 0, (size_t)(W - nt) * E * sizeof *raw);
    return pad;
}

/* The sorting networks of both kernels (mr_lanes.c's 16 lanes, mr_lanes_avx2.c's 8), on
 * the key vectors of the kernel that expands them: KMAX / KMIN its lane-wise
 * signed 32-bit maximum and minimum (vpmaxsd / vpminsd), defined before each kernel.
 * CX: compare-exchange, a the larger key, b the smaller. */
#define CX(a, b)                                                                           \
    do {                                                                                   \
        __typeof__(a) hi_ = KMAX(a, b);                                                    \
        (b) = KMIN(a, b);                                                                  \
        (a) = hi_;                                                                         \
    } while (0)

/* K keys v[0 .. K-1] sorted in descending order, lane-wise (K = 1, 2, 4, 8) */
#define SORT_NET(v, K)                                                                     \
    do {                                                                                   \
        if ((K) == 2) {                                                                    \
            CX(v[0], v[1]); /* 2 */                                                        \
        } else if ((K) == 4) {                                                             \
            CX(v[0], v[1]); CX(v[2], v[3]); /* 4: pairs, */                                \
            CX(v[0], v[2]); CX(v[1], v[3]); /* their larger and smaller, */                \
            CX(v[1], v[2]);                 /* the middle two */                           \
        } else if ((K) == 8) { /* 19 compare-exchanges, depth 6 */                         \
            CX(v[0], v[2]); CX(v[1], v[3]); CX(v[4], v[6]); CX(v[5], v[7]);                \
            CX(v[0], v[4]); CX(v[1], v[5]); CX(v[2], v[6]); CX(v[3], v[7]);                \
            CX(v[0], v[1]); CX(v[2], v[3]); CX(v[4], v[5]); CX(v[6], v[7]);                \
            CX(v[2], v[4]); CX(v[3], v[5]);                                                \
            CX(v[1], v[4]); CX(v[3], v[6]);                                                \
            CX(v[1], v[2]); CX(v[3], v[4]); CX(v[5], v[6]);                                \
        }                                                                                  \
    } while (0)

/* run[K] = the top K of sorted run[K] and sorted g[K], sorted: the elementwise maximum of
 * one list and the other reversed is bitonic, then a bitonic sorter */
#define MERGE_NET(run, g, K)                                                               \
    do {                                                                                   \
        _Pragma("GCC unroll 8")                                                            \
        for (int i = 0; i < (K); i++) run[i] = KMAX(run[i], g[(K) - 1 - i]);               \
        _Pragma("GCC unroll 4")                                                            \
        for (int s = K / 2; s >= 1; s >>= 1)                                               \
            _Pragma("GCC unroll 8")                                                        \
            for (int i = 0; i < (K); i++)                                                  \
                if (!(i & s)) CX(run[i], run[i + s]);                                      \
    } while (0)
#endif

#ifdef MR_AVX2
/* mr_route_lanes16 for nt <= 8 tokens in ymm registers (AVX2, FMA, F16C): the same
 * arguments and outputs, the same bits (tests/test_ops.c lanes_kernel_same_bits); only
 * where mr_simd_avx2() and mr_route_lanes_ok(E, k). */
int mr_route_lanes8_avx2(const uint16_t *raw, int nt, int E, int k, int bf16, uint16_t *topk,
                         double *h, double *h_topk, double *acc, const unsigned char *real);
#endif

#endif
