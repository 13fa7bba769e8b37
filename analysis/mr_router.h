/* mr_router.h — pluggable routers (docs/routers.md).
 *
 * A router is a const mr_router_type (name, state size, function pointers), in
 * the style of GSL's algorithm types. mr_router_alloc() creates an instance
 * bound to one model: init() validates that the router can run on that model
 * and parses its options; route() is then called by the engine for every MoE
 * block and micro-batch, from any number of threads at once, with a read-only
 * state and a per-thread scratch buffer, and must not allocate.
 *
 * Ownership: the caller owns the mr_router returned by mr_router_alloc() and
 * releases it with mr_router_free(); the model must outlive it.
 */
#ifndef MR_ROUTER_H
#define MR_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "mr_model.h"

#define MR_ROUTER_MAX_OPTS 16

/* key=value options from the CLI (--router-opt) or a config file. */
typedef struct mr_router_opts {
    int n;
    char key[MR_ROUTER_MAX_OPTS][MR_NAME_LEN];
    char val[MR_ROUTER_MAX_OPTS][MR_NAME_LEN];
    int used[MR_ROUTER_MAX_OPTS]; /* set by the getters; unused keys are errors */
} mr_router_opts;

/* Parse "key=value" and add it; MR_EINPUT on a malformed or over-long pair. */
int mr_router_opts_add(mr_router_opts *o, const char *key_eq_value);
/* Look up a string option (copied into buf[cap]); *found says whether it was given. */
int mr_router_opts_get_string(mr_router_opts *o, const char *key, char *buf, size_t cap,
                              int *found);
/* Look up an option with two values: *out = 0 for `no`, 1 for `yes`, unchanged when
 * absent; MR_EINPUT "router option KEY=V must be NO or YES" otherwise. */
int mr_router_opts_get_choice(mr_router_opts *o, const char *key, const char *no,
                              const char *yes, int *out);
/* Look up a real-valued option; *out keeps its default when absent. */
int mr_router_opts_get_double(mr_router_opts *o, const char *key, double lo, double hi,
                              double *out);

/* What the engine hands a router for one MoE block and one micro-batch. */
typedef struct mr_route_ctx {
    const mr_model *model;
    int layer;            /* block index */
    int moe_index;        /* index among MoE blocks */
    int B, T;             /* sequences and tokens per sequence; tokens are b*T + t */
    int k;                /* experts per token for this evaluation (1..E) */
    const float *x;       /* [B*T, d] the MoE block's input (LN2 output) */
    const float *att;     /* [B, n_heads, T, T] this block's attention probabilities */
    const int *prev_topk; /* [B*T, prev_k] previous MoE block's choice, NULL for the first */
    int prev_k;
    uint64_t first_sample;/* dataset index of sequence 0 of the micro-batch (noise streams) */
    float *scratch;       /* per-thread, scratch_floats() floats */
} mr_route_ctx;

/* Runs this block's experts on x [N,d] with a given routing: y [N,d] = sum_k w * expert(x). */
typedef void (*mr_experts_fn)(void *engine, float *y, const float *x, const int *topk,
                              const float *weights);

/* What a router's combine() step gets besides the route context. */
typedef struct mr_combine_ctx {
    mr_experts_fn experts;
    void *engine;
    const int *topk;      /* [N, k] this block's routing */
    const float *weights; /* [N, k] */
    float *carry;         /* [N, d] state carried across the MoE blocks of one forward,
                             zero at the first block (e.g. the momentum buffer) */
    float *save;          /* NULL, or (the input-gradient forward, analysis/mr_grad.h, of a
                             router with grad_save_floats) that many floats of this block
                             that combine() may fill for combine_backward
                             (mr_combine_grad.save) */
} mr_combine_ctx;

/* Input gradients (analysis/mr_router_grad.h, analysis/mr_grad.h). */
struct mr_route_grad;
struct mr_combine_grad;

typedef struct mr_router_type {
    const char *name;
    const char *summary;  /* one line for --help */
    size_t state_size;
    /* Bind to a model and read options; MR_EINPUT with a reason when it cannot run. */
    int (*init)(void *state, const mr_model *m, mr_router_opts *opts);
    /* Scratch floats route() needs for a micro-batch of B sequences of T tokens. */
    size_t (*scratch_floats)(const void *state, const mr_model *m, int B, int T);
    /* probs[B*T, E]: the distribution the top-k is applied to;
     * topk[B*T, k]: chosen experts in descending order; weights[B*T, k]. */
    int (*route)(const void *state, const mr_route_ctx *ctx, float *probs, int *topk,
                 float *weights);
    /* Optional: replace the MoE output y [N,d] (in place) by what is added to the residual
     * stream, e.g. a momentum average across blocks (MomentumSMoE) or a mix with the
     * experts' output on a noisy input (S2MoE). NULL: y is added as it is. */
    int (*combine)(const void *state, const mr_route_ctx *ctx, const mr_combine_ctx *cc,
                   float *y);
    void (*free)(void *state); /* may be NULL */
    /* Optional, for input gradients: the derivative autograd takes of the router's PyTorch
     * definition (tools/moe_model.py), with the top-k selection held fixed. A router
     * without route_backward (or with combine but without combine_backward) cannot be
     * differentiated, and gradient-based attacks refuse it. Both are called with the
     * route() context of the forward they differentiate; ctx->scratch then holds
     * grad_scratch_floats() floats (NULL: none). */
    size_t (*grad_scratch_floats)(const void *state, const mr_model *m, int B, int T);
    int (*route_backward)(const void *state, const mr_route_ctx *ctx,
                          const struct mr_route_grad *g);
    /* dy [N,d]: on entry dL/d(combine's output), on return dL/d(the experts' output y). */
    int (*combine_backward)(const void *state, const mr_route_ctx *ctx,
                            const struct mr_combine_grad *g, float *dy);
    /* 1 if route_backward adds a gradient with respect to the attention probabilities
     * (mr_route_grad.datt, zeroed by the caller); 0: datt is NULL and the attention's
     * backward adds nothing (a router that reads ctx->att differentiably sets it) */
    int grad_datt;
    /* Optional: floats combine() keeps per MoE block in the input-gradient forward
     * (mr_combine_ctx.save) for combine_backward (mr_combine_grad.save), instead of
     * recomputing them; the gradient forward then also keeps the activations of
     * combine()'s last experts() call (mr_combine_grad.experts_vjp_fwd). */
    size_t (*grad_save_floats)(const void *state, const mr_model *m, int B, int T);
} mr_router_type;

typedef struct mr_router {
    const mr_router_type *type;
    void *state;
} mr_router;

/* NULL-terminated list of all routers. */
extern const mr_router_type *const mr_router_types[];
extern const mr_router_type mr_router_softmax, mr_router_similarity, mr_router_attention,
    mr_router_ac, mr_router_cosine, mr_router_random, mr_router_momentum, mr_router_s2moe;

const mr_router_type *mr_router_lookup(const char *name);

/* Create a router instance for model m; *out is NULL on error (message set). */
int mr_router_alloc(mr_router **out, const char *name, const mr_model *m,
                    mr_router_opts *opts);
void mr_router_free(mr_router *r);
size_t mr_router_scratch_floats(const mr_router *r, const mr_model *m, int B, int T);

/* Shared helpers for router implementations. */

/* A router hyperparameter stored with the model (/layers/L/moe/router/NAME, a scalar
 * attribute or one-element dataset); returns `dflt` when absent. */
double mr_router_model_param(const mr_layer *layer, const char *name, double dflt);

/* p[T,E] = S[T,T] G[T,E] for each of B sequences (tokens b*T + t): the graph-of-tokens
 * mixing of per-token gate distributions, then top-k and renormalized weights. */
void mr_route_mix(float *probs, int *topk, float *weights, const float *S, const float *G,
                  int T, int E, int k);

/* The k largest entries of p[E] in descending order, ties to the lower index (a NaN is
 * never greater); analysis/mr_topk.c, shared by the routers and `moe-robust analyze`. */
void mr_route_topk(int *idx, const float *p, int E, int k);
/* The same choice by the portable path (mr_route_topk takes a vector path where the CPU
 * has AVX-512, or AVX2 for rows of at most 16 or of 33 to 64 scores): for the tests,
 * which check all. */
void mr_route_topk_portable(int *idx, const float *p, int E, int k);
/* mr_route_topk of nt rows p[nt, E] into idx[nt, k]: the same choices; on CPUs with
 * AVX-512 two rows' searches side by side (their latencies overlapped), four for rows of
 * 33 to 64 scores where the CPU also has AVX-512 VBMI2. */
void mr_route_topk_tokens(int *idx, const float *p, int nt, int E, int k);
/* Weights of the chosen experts: renorm -> p_e / sum over the k; none -> p_e. */
void mr_route_weights(float *w, const float *p, const int *idx, int k, int gate_norm);
/* probs[N,E] holds logits on entry: softmax of each row, then top-k and weights. */
void mr_route_from_logits(float *probs, int *topk, float *weights, int N, int E, int k,
                          int gate_norm);
/* The baseline gate as a route() function (state unused): the softmax router's, also the
 * routing of routers that change only how expert outputs combine (momentum, s2moe). */
int mr_route_baseline(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                      float *weights);
/* probs[N,E] = softmax(x[N,d] gate_w^T + gate_b), then top-k and weights. */
void mr_route_softmax_gate(float *probs, int *topk, float *weights, const float *x,
                           const mr_layer *layer, int N, int d, int E, int k,
                           int gate_norm);

#endif
