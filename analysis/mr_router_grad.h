/* mr_router_grad.h — what a router's route_backward() and combine_backward() receive
 * (mr_router_type, analysis/mr_router.h), and helpers shared by their implementations.
 *
 * Convention: the top-k selection is piecewise constant and is held fixed, as autograd
 * treats torch.sort's indices; every other step is differentiated as autograd
 * differentiates the router's PyTorch definition in tools/moe_model.py, including what
 * that definition detaches (e.g. the AC cluster weights, S2MoE's noise statistics).
 * Gradient outputs are accumulated (+=); callers zero them.
 */
#ifndef MR_ROUTER_GRAD_H
#define MR_ROUTER_GRAD_H

#include "mr_router.h"

/* One MoE block's routing, N = B*T tokens. */
typedef struct mr_route_grad {
    const float *probs;    /* [N,E] the forward's route() outputs */
    const int *topk;       /* [N,k] */
    const float *weights;  /* [N,k] */
    float *dprobs;         /* [N,E] in: dL/dprobs (zeros when the loss does not read the
                              routing distribution); the router may overwrite it */
    const float *dweights; /* [N,k] dL/dweights */
    float *dx;             /* [N,d] += dL/dx through the routing (x: the block's MoE input) */
    float *datt;           /* [B,n_heads,T,T] += dL/d(this block's attention probabilities);
                              NULL unless the router type sets grad_datt */
} mr_route_grad;

/* dx[N,d] += and dweights[N,k] += the gradients of y = sum_k w * expert(x) given dy[N,d],
 * for this block's experts on input x with the given routing. */
typedef void (*mr_experts_vjp_fn)(void *engine, float *dx, float *dweights, const float *x,
                                  const int *topk, const float *weights, const float *dy);

/* dx[N,d] += and dweights[N,k] += the gradients of the block's last experts() call of
 * its forward combine() (whose activations the gradient forward kept), given dy[N,d]. */
typedef void (*mr_experts_vjp_fwd_fn)(void *engine, float *dx, float *dweights,
                                      const float *dy);

typedef struct mr_combine_grad {
    mr_experts_fn experts;         /* forward on another input (as mr_combine_ctx) */
    mr_experts_vjp_fn experts_vjp; /* its gradients */
    /* with the router's grad_save_floats: the floats its forward combine() kept
     * (mr_combine_ctx.save), and experts_vjp at the input of that combine()'s last
     * experts() call without running it again; NULL otherwise */
    const float *save;
    mr_experts_vjp_fwd_fn experts_vjp_fwd;
    void *engine;
    const int *topk;               /* [N,k] this block's routing */
    const float *weights;          /* [N,k] */
    const float *y;                /* [N,d] the experts' output on x, before combine() */
    float *dcarry;                 /* [N,d] in: dL/d(carry after this block); out: before */
    float *dx;                     /* [N,d] += dL/dx (the block's MoE input) */
    float *dweights;               /* [N,k] += dL/dweights */
} mr_combine_grad;

/* dprobs[N,E] += the gradient through the top-k weights: gate_norm renorm
 * (w_j = p_j / sum of the k selected) or none (w_j = p_j). */
void mr_route_weights_backward(float *dprobs, const float *probs, const int *topk,
                               const float *dweights, int N, int E, int k, int gate_norm);

/* In place: dp[N,E] (dL/dp with p = softmax(z) per row) becomes dL/dz. */
void mr_route_softmax_backward(float *dp, const float *p, int N, int E);

/* The gate probs = softmax(x W^T + b) with W[E,d] (the gate, or another linear map):
 * dx[N,d] += the gradient, from dprobs (overwritten) plus the weights' gradient under
 * gate_norm. */
void mr_route_linear_gate_backward(const mr_route_grad *g, const float *W, int N, int d, int E,
                                   int k, int gate_norm);

/* route_backward of mr_route_baseline (softmax gate, the model's gate_norm). */
int mr_route_baseline_backward(const void *state, const mr_route_ctx *ctx,
                               const mr_route_grad *g);

/* Backward of mr_route_mix for one sequence: p[T,E] = S[T,T] G[T,E], weights renormalized.
 * dp[T,E] = dL/dp (with the weights' gradient already added); dS[T,T] = dp G^T (set);
 * dG[T,E] = S^T dp (set). */
void mr_route_mix_backward(float *dS, float *dG, const float *dp, const float *S,
                           const float *G, int T, int E);

#endif
