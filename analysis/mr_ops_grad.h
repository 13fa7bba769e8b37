/* mr_ops_grad.h — backward kernels of the engine's forward kernels (mr_ops.h), for input
 * gradients (analysis/mr_grad.h). llm.c style: gradient outputs first, then the upstream
 * gradient, then what the forward saw; shapes in comments; no allocation. Every kernel
 * ADDS into its gradient outputs (callers zero them), so contributions from several
 * paths accumulate without temporaries. Each is the derivative autograd takes of the
 * PyTorch module tools/moe_model.py uses for the forward kernel.
 */
#ifndef MR_OPS_GRAD_H
#define MR_OPS_GRAD_H

#include <stddef.h>

/* dinp[N,C] += d LayerNorm(inp) (nn.LayerNorm, biased variance) given dout[N,C];
 * weight w[C]. Mean and variance are recomputed from inp (two passes in double, as the
 * forward). */
void mr_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                           int N, int C, float eps);

/* mr_layernorm_backward with the forward's statistics (mean and 1 / std of row n in
 * stats[2n], stats[2n + 1], as mr_layernorm_forward_keep keeps them) instead of
 * recomputing them: the same floats. */
void mr_layernorm_backward_stats(float *dinp, const float *dout, const float *inp,
                                 const float *w, const double *stats, int N, int C);

/* dinp[N,C] += dout[N,OC] @ weight[OC,C]: the input gradient of out = inp weight^T + b. */
void mr_linear_backward(float *dinp, const float *dout, const float *weight, int N, int C,
                        int OC);
/* dinp[N,C] = dout[N,OC] @ weight[OC,C]: mr_linear_backward into a zeroed dinp, without
 * the zeroing pass (the same floats; a zero may come out as -0 on OpenBLAS's path) */
void mr_linear_backward_set(float *dinp, const float *dout, const float *weight, int N, int C,
                            int OC);

/* d[i] *= act'(pre[i]) over n floats: exact-erf GELU (Phi(x) + x phi(x), with mr_erf) or
 * ReLU (1 for x > 0, else 0, PyTorch's choice at 0). `act` is enum mr_activation. */
void mr_activation_backward(float *d, const float *pre, size_t n, int act);
/* d[i] *= GELU'(pre[i]) given cdf[i] = Phi(pre[i]) as mr_gelu_forward_keep (mr_ops.h)
 * kept it: the floats of mr_activation_backward(d, pre, n, MR_ACT_GELU), without its
 * erf. d does not overlap pre or cdf. */
void mr_gelu_backward_cdf(float *d, const float *pre, const float *cdf, size_t n);

/* dx[N,C] += the input gradient of y = softmax(x) per row, given y[N,C] and dy[N,C]:
 * dx = y * (dy - sum(dy * y)). Entries with y = 0 (a causal mask) get 0. */
void mr_softmax_rows_backward(float *dx, const float *dy, const float *y, int N, int C);

/* Backward of mr_attention_forward: dqkv[B,T,3C] += the gradient of Q | K | V given
 * dout[B,T,C] (heads concatenated), the forward's qkv[B,T,3C] and probabilities
 * att[B,NH,T,T]. datt_extra[B,NH,T,T] (may be NULL) is a further gradient with respect to
 * the probabilities themselves (the attention router reads them). scratch: T*T floats. */
void mr_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           const float *datt_extra, int B, int T, int C, int NH,
                           float *scratch);

/* mr_attention_backward (without datt_extra) for a dout whose rows t = 1..T-1 of every
 * sequence are zero (the gradient of a classifier's last block that reaches only its
 * CLS token): the same dqkv, up to the sign of zeros, at about 1/T of the products on
 * CPUs with AVX-512 or with AVX2 and FMA (the micro-kernels, up to 128 positions and head
 * dimensions of 64; elsewhere mr_attention_backward itself, which reads the zeros). */
void mr_attention_backward_row0(float *dqkv, const float *dout, const float *qkv,
                                const float *att, int B, int T, int C, int NH, float *scratch);

#endif
