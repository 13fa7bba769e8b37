/* mr_grad.h — input gradients: the gradient of a loss with respect to the model's input
 * (image pixels; for language models the input embeddings) through the whole model,
 * for gradient-based adversarial attacks (analysis/attacks/, docs/attacks.md).
 *
 * mr_grad_forward_* runs the same computation as mr_engine_forward_* (the same kernels in
 * the same order, so the logits and routing are bit-identical to the engine's) and keeps
 * the activations of its micro-batch; mr_grad_backward then differentiates it as
 * torch.autograd differentiates the PyTorch reference tools/moe_model.py: LayerNorm,
 * attention, GELU/ReLU, the dense FFNs, the experts and their gate weights, and every
 * router through its route_backward()/combine_backward() (analysis/mr_router_grad.h),
 * with the top-k selection held fixed (piecewise-constant routing, as autograd treats
 * torch.sort's indices). Memory: the activations of one micro-batch.
 *
 * Ownership: the caller owns the workspace (mr_grad_free); the model and router must
 * outlive it. The trace and its arrays belong to the workspace and are overwritten by
 * the next forward. One workspace per thread; the model and router may be shared.
 * Determinism: a sample's values depend only on the model, router, options and its
 * micro-batch, never on the thread.
 */
#ifndef MR_GRAD_H
#define MR_GRAD_H

#include <stdint.h>

#include "mr_engine.h"
#include "mr_model.h"
#include "mr_router.h"

/* MR_OK if this forward and backward pass implement the model's architecture, else
 * MR_EINPUT naming the feature they do not (mr_grad_alloc refuses with it). */
int mr_grad_check_model(const mr_model *m);
/* The same, and the router can be differentiated (route_backward, and combine_backward
 * with a combine). mr_grad_backward refuses with it; the forward runs for any router. */
int mr_grad_check(const mr_model *m, const mr_router *r);

typedef struct mr_grad_ws mr_grad_ws;

/* Options as for the engine (batch, seq_len, top_k; keep_* are ignored). */
int mr_grad_alloc(mr_grad_ws **out, const mr_model *m, const mr_router *r,
                  const mr_engine_opts *o);
void mr_grad_free(mr_grad_ws *g);

/* Dataset index of sample 0 of the next forward (per-sample router noise streams). */
void mr_grad_set_first_sample(mr_grad_ws *g, uint64_t first);

/* on = 1: the next forwards compute every token's output of every block, as the engine
 * does. Default (0): the last block of a classifier that pools its CLS token runs its
 * experts only for the CLS tokens, the only ones the head reads (the others' outputs are
 * left zero inside the workspace): the same logits, trace and input gradient, bit for bit
 * (up to the sign of zero gradients), at less work. For tests that compare the two. */
void mr_grad_set_all_rows(mr_grad_ws *g, int on);

/* The last forward's probs, topk, weights and logits, laid out as mr_engine's trace for
 * that call's B and T (attention and moe_input are NULL). */
const mr_trace *mr_grad_trace(const mr_grad_ws *g);

/* Forward of B images x01 [B, H, W, C], pixel intensities in [0, 1] (the engine's input
 * uint8 / 255.0f gives the engine's result exactly; other values are allowed). */
int mr_grad_forward_images(mr_grad_ws *g, const float *x01, int B);
/* Forward of a language model from input embeddings x0 [B, T, d] (token embedding plus
 * position, as mr_grad_embed_tokens computes them). */
int mr_grad_forward_embeddings(mr_grad_ws *g, const float *x0, int B, int T);
/* x0 [B, T, d] = tok[id] + pos[t] of B rows of `stride` token ids (the first T read). */
int mr_grad_embed_tokens(const mr_model *m, float *x0, const int32_t *tokens, int B, int T,
                         int stride);

/* Backward of the last forward. dlogits: dL/dlogits (classify [B, n_classes], lm
 * [B, T, vocab]); dprobs: NULL, or dL/d(routing distributions) [n_moe, B*T, E] (routing
 * objectives). Writes (not adds) dinput: dL/dx01 [B, H, W, C] (classify) or dL/dx0
 * [B, T, d] (lm). */
int mr_grad_backward(mr_grad_ws *g, const float *dlogits, const float *dprobs, float *dinput);

#endif
