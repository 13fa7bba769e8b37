/* mr_ops.h — the forward kernels of the engine (llm.c style: outputs first,
 * shapes in comments, no allocation). Matrices are row-major float32; weights
 * use the PyTorch nn.Linear layout [out, in]. GEMMs go through GSL's CBLAS
 * interface, linked against OpenBLAS, but the linear layers' and the attention's on
 * CPUs with AVX-512 (mr_gemm_micro, mr_simd.h) or with AVX2 and FMA (mr_gemm_micro8: the
 * same bits). Every kernel is deterministic: the
 * result does not depend on the calling thread or on other samples.
 */
#ifndef MR_OPS_H
#define MR_OPS_H

#include <stddef.h>

/* out[N,C] = LayerNorm(in[N,C]) * w[C] + b[C]; biased variance, as nn.LayerNorm. */
void mr_layernorm_forward(float *out, const float *in, const float *w, const float *b,
                          int N, int C, float eps);
/* mr_layernorm_forward that also keeps each row's mean and 1 / sqrt(var + eps) as
 * doubles, stats[2n] and stats[2n + 1], for mr_layernorm_backward_stats (mr_ops_grad.h):
 * the same out, bit for bit. */
void mr_layernorm_forward_keep(float *out, double *stats, const float *in, const float *w,
                               const float *b, int N, int C, float eps);

/* out[N,C] = in[N,C] / sqrt(mean(in^2) + eps) * w[C]: RMSNorm (Zhang & Sennrich 2019), as
 * the Hugging Face decoders compute it in float32 (e.g. MixtralRMSNorm in
 * transformers/models/mixtral/modeling_mixtral.py); out may equal in. */
void mr_rmsnorm_forward(float *out, const float *in, const float *w, int N, int C, float eps);

/* out[N,OC] = in[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). On CPUs with
 * AVX-512 (mr_simd_avx512) and C <= 512: mr_gemm_micro, each output one chain of fused
 * multiply-adds and then the bias, a row's bits independent of the other rows; on CPUs
 * with AVX2 and FMA only (mr_simd_avx2) and C <= 512: mr_gemm_micro8, the same bits;
 * else OpenBLAS. */
void mr_linear_forward(float *out, const float *in, const float *weight, const float *bias,
                       int N, int C, int OC);

/* erf(x) within 3e-7 (Abramowitz & Stegun 7.1.28), the form GELU uses. */
float mr_erf(float x);

/* In-place activations over n floats. gelu is the erf form (nn.GELU(), not the tanh
 * approximation), with erf from mr_erf. */
void mr_gelu_forward(float *x, size_t n);
void mr_relu_forward(float *x, size_t n);
/* y[i] = GELU(x[i]) (the floats of mr_gelu_forward) and cdf[i] = Phi(x[i]) = (1 +
 * mr_erf(x[i] / sqrt 2)) / 2, kept for mr_gelu_backward_cdf (mr_ops_grad.h); the three
 * arrays do not overlap. */
void mr_gelu_forward_keep(float *y, float *cdf, const float *x, size_t n);

/* SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer"): out[n, j] = silu(in[n, j]) *
 * in[n, H + j] for in[N, 2H] (gate columns, then up columns), silu(x) = x / (1 + e^-x)
 * (PyTorch F.silu); out[N, H] may equal in (rows are compacted in place). */
void mr_swiglu_forward(float *out, const float *in, int N, int H);

/* x[n] = min(max(x[n], -c), c) over n floats (OLMoE's clip_qkv). */
void mr_clamp_forward(float *x, size_t n, float c);

/* Rotary position embedding tables (Su et al. 2021, RoFormer; the "rotate-half" layout of
 * the Hugging Face decoders): for position t < T and i < hd/2, angle = t * inv_freq[i] with
 * inv_freq[i] = 1 / theta^(2i / hd) / scaling (scaling: linear RoPE scaling, 1 = none),
 * each step in float32 as transformers' default RoPE initialisation computes it;
 * cos[T, hd/2], sin[T, hd/2]. */
void mr_rope_tables(float *cos_t, float *sin_t, int T, int hd, double theta, double scaling);

/* Rotate NH heads of hd floats of each of B*T token rows of x (row r at x + r*stride,
 * head j at + j*hd; token r at position r % T), in place: with x1 = x[i], x2 = x[i + hd/2],
 * x[i] = x1 cos - x2 sin, x[i + hd/2] = x2 cos + x1 sin (q cos + rotate_half(q) sin). */
void mr_rope_forward(float *x, int B, int T, int NH, int hd, int stride, const float *cos_t,
                     const float *sin_t);

/* In-place softmax of each row of a square x[T,T]; with `causal`, row i covers
 * columns 0..i only and the rest are set to exactly 0. */
void mr_softmax_square(float *x, int T, int causal);

/* In-place softmax of each of the N rows of x[N,C]. */
void mr_softmax_rows(float *x, int N, int C);
/* p[n] = softmax(s[n]) (mr_softmax_rows's bits on the portable path; with AVX-512, or
 * AVX2 + FMA (the same bits), an inline vector exp within 2 ulp: the probabilities within
 * a few ulp of those); returns
 * its entropy (nats) computed from the logits (ln Z - sum p_i (s_i - max s): no log per
 * entry; within a few 1e-7 absolute of mr_entropy(p)). With idx (k experts), *h_topk =
 * the entropy of their probabilities renormalized to sum 1 in the same way
 * (mr_entropy_renorm's value). With acc (n doubles), acc[i] += (double)p[i] as well: the
 * probability sums of a row of tokens (metrics/mr_routing_metrics.h's
 * mr_routing_psum_add, the same bits) in the pass that writes p. */
double mr_softmax_entropy(float *restrict p, const float *restrict s, int n, const int *idx,
                          int k, double *h_topk, double *restrict acc);
/* mr_softmax_entropy of nt tokens: h[nt], h_topk[nt] (NULL: none; then idx unused),
 * p[nt, n] from s[nt, n] and idx[nt, k]; acc[n] += the probabilities of the tokens with
 * real[t] != 0 (real NULL: all; acc NULL: none), in token order. The same bits as nt calls
 * of mr_softmax_entropy; on CPUs with AVX-512, rows of at most 64 logits and a top-k of
 * at most 16 go through a kernel for 8 tokens at a time whose tokens' dependency chains
 * overlap (docs/performance.md); with AVX2 + FMA only, a kernel that takes the entropies
 * (log, division) of 4 tokens at a time. */
void mr_softmax_entropy_tokens(double *h, double *h_topk, float *p, const float *s, int nt,
                               int n, const int *idx, int k, double *acc,
                               const unsigned char *real);
/* mr_softmax_entropy without that kernel (the general AVX-512 or AVX2 loop, or the
 * portable loops): the same bits; for the tests that compare the two and for benchmarks. */
double mr_softmax_entropy_general(float *restrict p, const float *restrict s, int n,
                                  const int *idx, int k, double *h_topk, double *restrict acc);

/* Whether the kernels written for AVX-512 (F, BW, DQ, VL) run: the CPU has them and
 * mr_simd_avx512_set(0) has not turned them off. mr_simd_avx512_set(1): as the CPU
 * allows. For the tests (both paths of every such kernel) and benchmarks; not for use
 * while other threads compute (the choice must not change within a run). */
int mr_simd_avx512(void);
void mr_simd_avx512_set(int on);
/* Whether the kernels that also need AVX-512 VBMI2 (Ice Lake and later: the top-k of
 * rows of 33 to 64 scores) run: mr_simd_avx512() and the CPU has it, and
 * mr_simd_vbmi2_set(0) has not turned them off (then the AVX-512 F kernels run). For the
 * tests and benchmarks, as mr_simd_avx512_set. */
int mr_simd_vbmi2(void);
void mr_simd_vbmi2_set(int on);
/* Whether the kernels written for AVX2 + FMA (MR_AVX2_TARGET, analysis/mr_simd.h) run:
 * the CPU has AVX2 and FMA, mr_simd_avx512() is 0 (where it is 1 the AVX-512 kernels run
 * instead) and mr_simd_avx2_set(0) has not turned them off (then the portable paths:
 * OpenBLAS and the compiler's vector clones). For the tests and benchmarks, as
 * mr_simd_avx512_set. */
int mr_simd_avx2(void);
void mr_simd_avx2_set(int on);

/* Grouped-query attention core (Ainslie et al. 2023) for B sequences of T tokens:
 * qkv[B, T, (NH + 2 NKV) hd] holds NH query heads, then NKV key heads, then NKV value
 * heads of hd floats; query head h reads key/value head h / (NH / NKV) (transformers'
 * repeat_kv). out[B, T, NH hd] (heads concatenated), att[B, NH, T, T] the probabilities
 * (masked entries exactly 0), scores scaled by 1/sqrt(hd). */
void mr_attention_gqa_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                              int NKV, int hd, int causal);

/* Multi-head self-attention core for B sequences of T tokens.
 * qkv[B,T,3C] (Q | K | V), out[B,T,C] (heads concatenated), att[B,NH,T,T] receives
 * the attention probabilities (masked entries are exactly 0 when causal). */
void mr_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH, int causal);

/* Shannon entropy (nats) of a probability vector p[n]; 0 log 0 = 0. In double, with
 * libmvec's vector log (at most 4 ulp) and a fixed summation order per machine. */
double mr_entropy(const float *p, int n);
/* The entropy of w[n] normalized to sum 1 (the renormalized top-k weights), in the same
 * way; 0 when the weights sum to 0. */
double mr_entropy_renorm(const float *w, int n);
/* The same with float logarithms in a vector loop (within ~1e-6 relative; in perf of the
 * attention router on the Fashion-MNIST model, 14 % of the forward with mr_entropy, 4 %
 * with this): for choices that follow PyTorch's float32 computation (the min-entropy
 * head), not for reported metrics. */
double mr_entropy_fast(const float *p, int n);

#endif
