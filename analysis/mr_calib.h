/* mr_calib.h — what expert compression learns from calibration data
 * (docs/compression.md): one forward pass of the original model, with the router it
 * was trained with, over N calibration samples; per MoE block every token's input
 * and its top-k experts and weights. Every block's statistics come from this one pass
 * of the uncompressed model, as in M-SMoE (Li et al., ICLR 2024; UNITES-Lab/MC-SMoE
 * `compute_all_usages`, `compute_all_similarities`) and REAP (Cerebras, arXiv
 * 2510.13999; CerebrasResearch/reap `observer.py`).
 *
 * Ownership: the caller owns an mr_calib (mr_calib_free). The model and router must
 * outlive nothing: the calibration keeps copies of what it needs.
 */
#ifndef MR_CALIB_H
#define MR_CALIB_H

#include <stdint.h>

#include "mr_model.h"
#include "mr_router.h"

/* Bound on the floats a calibration keeps (n_moe * tokens * d): 2 Gi floats = 8 GiB. */
#define MR_CALIB_MAX_FLOATS ((size_t)1 << 31)

typedef struct mr_calib {
    int n_moe, n_tok, d, E, k; /* tokens = samples * tokens per sample */
    float *x;       /* [n_moe, n_tok, d] each MoE block's input (its LN2 output) */
    int *topk;      /* [n_moe, n_tok, k] chosen experts, descending */
    float *weights; /* [n_moe, n_tok, k] their gate weights (renormalized over the k for
                       gate_norm = renorm, full-softmax probabilities for none) */
} mr_calib;

/* Run model m with router r over n images [n, H, W, C] (classify) or n token rows of
 * `cols` ids, of which the first cols - 1 are read (lm), in micro-batches of `batch`.
 * MR_EINPUT if the statistics would exceed MR_CALIB_MAX_FLOATS or m has no MoE block. */
int mr_calib_images(mr_calib **out, const mr_model *m, const mr_router *r,
                    const uint8_t *images, int n, int batch);
int mr_calib_tokens(mr_calib **out, const mr_model *m, const mr_router *r,
                    const int32_t *tokens, int n, int cols, int batch);
void mr_calib_free(mr_calib *c);

/* counts[E]: tokens of MoE block i (index among MoE blocks) whose top-k holds expert e. */
void mr_calib_counts(int64_t *counts, const mr_calib *c, int i);

/* sim[E, E]: (cos(u_a, u_b) + 1) / 2 between columns a and b of the gate's logit matrix
 * [tokens, E], u = x W_g^T + b_g over block i's calibration tokens (M-SMoE's
 * "router-logits" similarity; diagonal 1). L is the block's layer. */
int mr_calib_logit_similarity(double *sim, const mr_calib *c, const mr_layer *L, int i);

/* saliency[E]: REAP's criterion, the mean over the tokens routed to expert e of
 * g_e(x) * ||f_e(x)||_2, with g the gate weight and f_e(x) the expert's (unweighted)
 * output; 0 for an expert no token chose. */
int mr_calib_reap(double *saliency, const mr_calib *c, const mr_model *m, const mr_layer *L,
                  int i);

/* y[n, d] = act(x W1^T + b1) W2^T + b2 for expert e of layer L, with hidden[n, h] as
 * scratch. */
void mr_expert_forward(float *y, float *hidden, const float *x, const mr_layer *L, int e,
                       int n, const mr_config *cfg);

#endif
