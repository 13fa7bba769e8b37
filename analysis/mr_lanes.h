/* mr_lanes.h — a routing kernel with the tokens across the vector lanes, for
 * `moe-robust analyze`'s traces of 16-bit router logits (io/mr_trace_io.c).
 *
 * mr_route_topk_tokens + mr_softmax_entropy_tokens do a token's work in registers of 16
 * experts: every maximum, sum and top-k search of a token ends in horizontal reductions
 * and permutes (about 150 cycles a token of 64 experts on Zen 5, docs/performance.md).
 * Here 16 tokens are routed at once with token t in lane t of every register (the 16 x E
 * scores transposed; on CPUs with AVX2 but not AVX-512, 8 tokens in ymm registers): the maxima, sums and exponentials are lane-wise, each lane doing the
 * same operations in the same order as the horizontal reduction tree of those kernels does
 * for its token (so the same bits), and the top-k is a sorting network per lane over keys
 * that order the scores exactly as mr_route_topk does (value descending, ties to the
 * lower index). */
#ifndef MR_LANES_H
#define MR_LANES_H

#include <stdint.h>

/* Whether mr_route_lanes16 takes rows of E experts with a top-k of k: 1 <= k <= 8,
 * k <= E <= 64, and the CPU runs the AVX-512 kernels (mr_simd_avx512: 16 tokens a call)
 * or the AVX2 ones (mr_simd_avx2: the same kernel in ymm registers, 8 tokens at a time,
 * the same bits); MR_SIMD=portable (both off): 0. */
int mr_route_lanes_ok(int E, int k);

/* nt <= 16 tokens of E 16-bit router logits raw[nt][E] (bf16 = 0: float16, 1: bfloat16),
 * routed as mr_route_topk_tokens + mr_softmax_entropy_tokens route their widened floats
 * (the same bits): topk[nt][k] their top-k expert ids, h[nt] their routing entropies,
 * h_topk[nt] their top-k's renormalized entropies, acc[E] += the probabilities of the
 * tokens with real[t] != 0 (real NULL: all), in token order. Returns 1 if any logit is
 * Inf or NaN (the outputs are then unspecified: the caller routes those tokens through
 * its checked path), else 0. Only where mr_route_lanes_ok(E, k). */
int mr_route_lanes16(const uint16_t *raw, int nt, int E, int k, int bf16, uint16_t *topk,
                     double *h, double *h_topk, double *acc, const unsigned char *real);

#endif
