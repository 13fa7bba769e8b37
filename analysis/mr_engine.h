/* mr_engine.h — forward pass of an MoE transformer with a pluggable router.
 *
 * One mr_workspace per thread: it owns every buffer a micro-batch of B samples
 * needs (one arena, allocated once), so the forward pass never allocates.
 * After a forward call the workspace's trace holds what later metrics and
 * routers need: per MoE block the routing distribution, the top-k experts and
 * their weights, and on request the attention probabilities and MoE inputs.
 *
 * Ownership: the caller owns the workspace (mr_workspace_free); the trace and
 * its arrays belong to the workspace and are overwritten by the next forward.
 * Determinism: a sample's results depend only on the model, router, options and
 * the micro-batch it was computed in, never on the thread that computed it.
 */
#ifndef MR_ENGINE_H
#define MR_ENGINE_H

#include <stdint.h>

#include "mr_model.h"
#include "mr_router.h"

typedef struct mr_engine_opts {
    int batch;          /* samples per micro-batch (>= 1) */
    int seq_len;        /* lm: longest sequence passed (<= max_seq_len); classify: ignored */
    int top_k;          /* experts per token; 0 = the model's top_k */
    int keep_attention; /* keep every block's attention probabilities in the trace */
    int keep_moe_input; /* keep every MoE block's input in the trace */
    int all_rows;       /* a classifier pooling its CLS token: run the last block's experts
                           for every token, not for the CLS tokens only (the same logits and
                           trace; for tests) */
} mr_engine_opts;

/* Defaults: batch 16, seq_len = max_seq_len, the model's top_k, nothing extra kept. */
void mr_engine_opts_init(mr_engine_opts *o, const mr_model *m);
/* Check options against a model; MR_EINPUT naming the bad option. */
int mr_engine_opts_check(const mr_engine_opts *o, const mr_model *m);

typedef struct mr_trace {
    int B, T;            /* samples and tokens per sample of the last forward */
    int E, k, n_moe, n_heads, d;
    float *probs;        /* [n_moe, B, T, E] routing distribution */
    int *topk;           /* [n_moe, B, T, k] chosen experts, descending */
    float *weights;      /* [n_moe, B, T, k] their weights */
    float *attention;    /* [n_layers, B, NH, T, T] when keep_attention, else NULL */
    float *moe_input;    /* [n_moe, B, T, d] when keep_moe_input, else NULL */
    float *logits;       /* classify [B, n_classes]; lm [B, T, vocab] */
} mr_trace;

typedef struct mr_workspace mr_workspace;

int mr_workspace_alloc(mr_workspace **out, const mr_model *m, const mr_router *r,
                       const mr_engine_opts *o);
void mr_workspace_free(mr_workspace *ws);
const mr_trace *mr_workspace_trace(const mr_workspace *ws);
/* Bytes of the workspace's buffers (its activations; the model's weights not included). */
size_t mr_workspace_bytes(const mr_workspace *ws);

/* Called after the input embedding (patches or tokens, plus positions) and before the
 * first block, on x [B*T, d]; embedding-space corruptions use it. `ctx` is the
 * caller's (e.g. holding the first sample index of the micro-batch). NULL disables. */
typedef int (*mr_embed_hook)(void *ctx, float *x, int B, int T, int d);
void mr_workspace_set_embed_hook(mr_workspace *ws, mr_embed_hook hook, void *ctx);

/* Dataset index of the first sample of the next forward (for per-sample random
 * streams of stochastic routers); 0 by default. */
void mr_workspace_set_first_sample(mr_workspace *ws, uint64_t first);

/* images [B, H, W, C] uint8, B <= opts.batch. */
int mr_engine_forward_images(mr_workspace *ws, const uint8_t *images, int B);
/* tokens: B rows of `stride` ids, of which the first T are read; T <= opts.seq_len. */
int mr_engine_forward_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T,
                             int stride);

/* The input embedding of an LM: x[B*T, d] = token + position embeddings of tokens (B rows
 * of `stride` ids, the first T read); MR_EINPUT naming an id outside the vocabulary. */
int mr_embed_tokens(float *x, const mr_model *m, const int32_t *tokens, int B, int T, int stride);

/* Only the input embedding (patches or tokens, plus positions) of B samples: *x points
 * to the workspace's [B*T, d] buffer (valid until the next call). For statistics of
 * clean embeddings (embedding-space corruptions). */
int mr_engine_embed_images(mr_workspace *ws, const uint8_t *images, int B, const float **x);
int mr_engine_embed_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T, int stride,
                           const float **x);

/* The forward in two parts, for sharing the first across routers (the grid of `moe-robust
 * run`, docs/performance.md "Sharing the prefix across routers"). The prefix is what every
 * router computes alike: the input embedding, the embed hook, every block before the first
 * MoE block (mr_engine_prefix_layer) and that block's attention sub-layer. Its state, read
 * and written through mr_engine_prefix_state, is x [B*T, d] (the residual stream) and att
 * [B, NH, T, T] (that block's attention probabilities, which routers may read; NULL for a
 * model without MoE blocks). mr_engine_forward_rest() runs the rest and the head from that
 * state, and prefix + rest compute the same floats as mr_engine_forward_* (the same
 * operations in the same order). Samples are independent rows of the state, so a caller
 * may keep a sample's prefix and load it into the same position of a micro-batch of the
 * same size. With keep_attention, only the first MoE block's probabilities are state: the
 * earlier blocks' are not restored. */
int mr_engine_prefix_layer(const mr_model *m);
int mr_engine_prefix_images(mr_workspace *ws, const uint8_t *images, int B);
int mr_engine_prefix_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T, int stride);
/* x [B*T, d], att [B, NH, T, T] (T: the forward's tokens; images: ignored); they belong
 * to the workspace. */
void mr_engine_prefix_state(mr_workspace *ws, int B, int T, float **x, float **att);
/* Floats of one sample's state: x [T, d] and att [NH, T, T] (0 without MoE blocks). */
void mr_engine_prefix_sizes(const mr_model *m, int T, size_t *x_floats, size_t *att_floats);
/* The rest of a forward of B samples of T tokens (images: T ignored) from the state. */
int mr_engine_forward_rest(mr_workspace *ws, int B, int T);

/* The head: xn [B*T, d] = LayerNorm(x) per token (a classifier pooling its CLS token:
 * the CLS rows only, the others left as they were), then logits = classify: [B, n_classes]
 * from the cls token or the mean over tokens (pooled [B, d]); lm: [B*T, vocab]. Shared
 * with the gradient engine (mr_grad.h), so both compute the same logits. */
void mr_engine_head_forward(float *logits, float *pooled, float *xn, const float *x,
                            const mr_model *m, int B, int T);

/* Expert-GEMM profile (bench/): when enabled, every expert GEMM of this workspace is
 * timed and its flops counted (2*M*N*K per GEMM). Off by default: no clock calls. */
void mr_workspace_profile_enable(mr_workspace *ws, int on);
void mr_workspace_profile_get(const mr_workspace *ws, double *seconds, double *flops);

/* OpenBLAS must run single-threaded inside our OpenMP workers; call once at start. */
void mr_engine_blas_single_thread(void);

#endif
