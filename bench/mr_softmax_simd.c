/* mr_softmax_simd — the softmax, entropy and top-k kernels on each vector path the CPU
 * allows (docs/performance.md, "Issue 17 on AVX2: softmax, entropy and top-k"):
 *
 *   moe-robust-softmax-simd [REPS]      (default 40)
 *
 * For the AVX-512 kernels (where the CPU has them), the AVX2 + FMA kernels (the
 * MR_SIMD=avx2 choice: mr_simd_avx512_set(0)) and the portable loops (MR_SIMD=portable),
 * in wall time on the calling thread, the best of REPS timings of a few thousand calls:
 *   square   mr_softmax_square of one head's 50 x 50 attention scores (the demo models'
 *            50 tokens; full rows), ns per row;
 *   topk     mr_route_topk of 8 scores, top-2 (the demo models' routers), ns per token;
 *   tokens   mr_softmax_entropy_tokens (probabilities, both entropies, the probability
 *            sums) of 1024 tokens of 8 logits with top-2, and of 64 logits with top-8
 *            (OLMoE-sized, `moe-robust analyze`), ns per token;
 *   topk64   mr_route_topk_tokens of 64 scores, top-8, ns per token;
 *   lanes    mr_route_lanes16 (analysis/mr_lanes.h: `analyze`'s token-lane kernel, AVX-512
 *            16 tokens in zmm registers, AVX2 8 in ymm) of the same 1024 tokens as
 *            float16, 64 logits, top-8: top-k, both entropies and the probability sums,
 *            ns per token ("-" where it does not run: the portable path).
 * Kernel figures, not a grid's: the grid's share of each is in docs/performance.md.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/mr_lanes.h"
#include "analysis/mr_ops.h"
#include "analysis/mr_router.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { NT = 1024 };
static float sq_in[50 * 50], sq[50 * 50], s[NT * 64], p[NT * 64];
static int idx[NT * 8];
static double h[NT], hk[NT], acc[64];
static uint16_t s16[NT * 64], ids16[NT * 8];

/* f (|f| < 65504) as float16, rounded to nearest; below the normal range: a signed 0 */
static uint16_t to_half(float f)
{
    uint16_t sg = f < 0.0f ? 0x8000 : 0;
    f = fabsf(f);
    if (f < 0x1p-14f) return sg;
    int e;
    float m = frexpf(f, &e); /* f = m 2^e, m in [0.5, 1) */
    int man = (int)lrintf((2.0f * m - 1.0f) * 1024.0f), ex = e - 1 + 15;
    if (man == 1024) man = 0, ex++;
    return (uint16_t)(sg | ex << 10 | man);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 40;
    if (reps < 1) {
        fprintf(stderr, "moe-robust-softmax-simd: REPS must be a positive integer\n");
        return 2;
    }
    for (int i = 0; i < 50 * 50; i++) sq_in[i] = (float)((i * 7919) % 1000) / 100.0f - 5.0f;
    for (int i = 0; i < NT * 64; i++) s[i] = (float)((i * 7919) % 1000) / 200.0f - 2.5f;
    for (int i = 0; i < NT * 64; i++) s16[i] = to_half(s[i]);
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    int has512 = mr_simd_avx512();
    mr_simd_avx512_set(0);
    int has2 = mr_simd_avx2();
    printf("path       square ns/row  topk(8,2) ns  tokens(8,2) ns  tokens(64,8) ns  topk(64,8) ns"
           "  lanes(64,8) ns\n");
    for (int path = 0; path < 3; path++) {
        if ((path == 0 && !has512) || (path == 1 && !has2)) continue;
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path != 2);
        double best[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
        int lanes = mr_route_lanes_ok(64, 8);
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int it = 0; it < 200; it++) {
                memcpy(sq, sq_in, sizeof sq);
                mr_softmax_square(sq, 50, 0);
            }
            double t = (now() - t0) / 200 / 50;
            best[0] = t < best[0] ? t : best[0];
            t0 = now();
            for (int tk = 0; tk < NT; tk++) mr_route_topk(idx + 2 * tk, s + 8 * tk, 8, 2);
            t = (now() - t0) / NT;
            best[1] = t < best[1] ? t : best[1];
            for (int e = 0; e < 2; e++) {
                int E = e ? 64 : 8, k = e ? 8 : 2;
                for (int tk = 0; tk < NT; tk++) mr_route_topk(idx + k * tk, s + E * tk, E, k);
                for (int i = 0; i < E; i++) acc[i] = 0.0;
                t0 = now();
                mr_softmax_entropy_tokens(h, hk, p, s, NT, E, idx, k, acc, NULL);
                t = (now() - t0) / NT;
                best[2 + e] = t < best[2 + e] ? t : best[2 + e];
            }
            t0 = now();
            mr_route_topk_tokens(idx, s, NT, 64, 8);
            t = (now() - t0) / NT;
            best[4] = t < best[4] ? t : best[4];
            if (!lanes) continue;
            t0 = now();
            for (int t16 = 0; t16 < NT; t16 += 16)
                mr_route_lanes16(s16 + 64 * t16, 16, 64, 8, 0, ids16 + 8 * t16, h + t16, hk + t16,
                                 acc, NULL);
            t = (now() - t0) / NT;
            best[5] = t < best[5] ? t : best[5];
        }
        printf("%-9s %13.1f %13.1f %15.1f %16.1f %14.1f", path == 0 ? "avx512" : path == 1 ? "avx2" : "portable",
               best[0] * 1e9, best[1] * 1e9, best[2] * 1e9, best[3] * 1e9, best[4] * 1e9);
        if (lanes)
            printf(" %15.1f\n", best[5] * 1e9);
        else
            printf(" %15s\n", "-");
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    return 0;
}
