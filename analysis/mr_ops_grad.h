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

#endif
