/* mr_ops.h — the forward kernels of the engine (llm.c style: outputs first,
 * shapes in comments, no allocation). Matrices are row-major float32; weights
 * use the PyTorch nn.Linear layout [out, in]. GEMMs go through GSL's CBLAS
 * interface, linked against OpenBLAS. Every kernel is deterministic: the
 * result does not depend on the calling thread or on other samples.
 */
#ifndef MR_OPS_H
#define MR_OPS_H

#include <stddef.h>

/* out[N,C] = LayerNorm(in[N,C]) * w[C] + b[C]; biased variance, as nn.LayerNorm. */
void mr_layernorm_forward(float *out, const float *in, const float *w, const float *b,
                          int N, int C, float eps);

/* out[N,OC] = in[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL). */
void mr_linear_forward(float *out, const float *in, const float *weight, const float *bias,
                       int N, int C, int OC);

/* erf(x) within 3e-7 (Abramowitz & Stegun 7.1.28), the form GELU uses. */
float mr_erf(float x);

/* In-place activations over n floats. gelu is the erf form (nn.GELU(), not the tanh
 * approximation), with erf from mr_erf. */
void mr_gelu_forward(float *x, size_t n);
void mr_relu_forward(float *x, size_t n);

/* In-place softmax of each row of a square x[T,T]; with `causal`, row i covers
 * columns 0..i only and the rest are set to exactly 0. */
void mr_softmax_square(float *x, int T, int causal);

/* In-place softmax of each of the N rows of x[N,C]. */
void mr_softmax_rows(float *x, int N, int C);

/* Multi-head self-attention core for B sequences of T tokens.
 * qkv[B,T,3C] (Q | K | V), out[B,T,C] (heads concatenated), att[B,NH,T,T] receives
 * the attention probabilities (masked entries are exactly 0 when causal). */
void mr_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH, int causal);

/* Shannon entropy (nats) of a probability vector p[n]; 0 log 0 = 0. */
double mr_entropy(const float *p, int n);
/* The same with float logarithms in a vector loop (within ~1e-6 relative; in perf of the
 * attention router on the Fashion-MNIST model, 14 % of the forward with mr_entropy, 4 %
 * with this): for choices that follow PyTorch's float32 computation (the min-entropy
 * head), not for reported metrics. */
double mr_entropy_fast(const float *p, int n);

#endif
