/* attention — Attention-Aware SMoE ("Improving Routing in SMoE with Graph of Tokens",
 * arXiv 2505.00792; docs/routers.md).
 *
 *   g_j  = softmax(W_g x_j + b)               every token's own gate
 *   S_i. = row i of the attention probabilities of this block's attention sub-layer,
 *          from the head with the lowest mean attention entropy over the sequence
 *          (option head=mean: the mean over heads; head=H: head H)
 *   sharpening (option sigma, default 1 = none): S_i. = softmax(scores_i. / sigma),
 *          computed from the probabilities as softmax(log A_i. / sigma), which is the
 *          same thing: log A = scores - logsumexp(scores), and the constant cancels
 *   p_i  = sum_j S_ij g_j                     then top-k, weights renormalized
 *
 * The head is chosen per sequence (the paper selects it from the sequence at hand).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_parse.h"
#include "../mr_ops.h"
#include "../mr_ops_grad.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

enum { HEAD_MIN_ENTROPY = -1, HEAD_MEAN = -2 };

typedef struct att_state {
    int head;     /* >= 0 a fixed head, or HEAD_MIN_ENTROPY / HEAD_MEAN */
    double sigma;
} att_state;

static int att_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    att_state *s = state;
    s->head = HEAD_MIN_ENTROPY;
    s->sigma = 1.0;
    char buf[MR_NAME_LEN];
    int found;
    MR_TRY(mr_router_opts_get_string(opts, "head", buf, sizeof buf, &found));
    if (found) {
        int h;
        if (strcmp(buf, "min-entropy") == 0)
            s->head = HEAD_MIN_ENTROPY;
        else if (strcmp(buf, "mean") == 0)
            s->head = HEAD_MEAN;
        else if (mr_parse_int("head", buf, 0, m->cfg.n_heads - 1, &h) == MR_OK)
            s->head = h;
        else
            return mr_error_set(MR_EINPUT,
                                "router option head=%s must be min-entropy, mean or 0..%d", buf,
                                m->cfg.n_heads - 1);
    }
    MR_TRY(mr_router_opts_get_double(opts, "sigma", 1e-3, 1e3, &s->sigma));
    return MR_OK;
}

static size_t att_scratch(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    return (size_t)B * T * m->cfg.n_experts + (size_t)T * T;
}

/* mean over rows of the entropy of one head's attention rows */
static double head_entropy(const float *A, int T)
{
    double h = 0.0;
    /* float logs as PyTorch's reference takes them (tools/moe_model.py); the double
     * version made this search most of the router's cost */
    for (int i = 0; i < T; i++) h += mr_entropy_fast(A + (size_t)i * T, T);
    return h / T;
}

/* The token graph S [T,T] of sequence b from its attention probabilities A [NH,T,T]:
 * S0 = the chosen head's rows (or their mean; the head is returned, -1 for the mean),
 * then S = softmax(log S0 / sigma) when sigma != 1 (S0 is kept in S0 if not NULL). */
static int att_graph(const att_state *s, const float *A, int T, int NH, float *S, float *S0)
{
    size_t TT = (size_t)T * T;
    int best = s->head;
    if (s->head == HEAD_MEAN) {
        for (size_t i = 0; i < TT; i++) {
            double a = 0.0;
            for (int h = 0; h < NH; h++) a += A[h * TT + i];
            S[i] = (float)(a / NH);
        }
        best = -1;
    } else {
        if (best == HEAD_MIN_ENTROPY) {
            double hmin = INFINITY;
            for (int h = 0; h < NH; h++) {
                double e = head_entropy(A + h * TT, T);
                if (e < hmin) { /* strict: ties keep the lower head */
                    hmin = e;
                    best = h;
                }
            }
        }
        memcpy(S, A + (size_t)best * TT, TT * sizeof *S);
    }
    if (S0) memcpy(S0, S, TT * sizeof *S);
    if (s->sigma != 1.0) {
        for (int i = 0; i < T; i++) {
            float *row = S + (size_t)i * T;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < T; j++)
                if (row[j] > 0.0f) mx = fmax(mx, log(row[j]) / s->sigma);
            for (int j = 0; j < T; j++) {
                row[j] = row[j] > 0.0f ? (float)exp(log(row[j]) / s->sigma - mx) : 0.0f;
                sum += row[j];
            }
            for (int j = 0; j < T; j++) row[j] = (float)(row[j] / sum);
        }
    }
    return best;
}

static int att_route(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                     float *weights)
{
    const att_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    int B = c->B, T = c->T, N = B * T, E = cfg->n_experts, k = c->k, NH = cfg->n_heads;
    size_t TT = (size_t)T * T;
    float *G = c->scratch;          /* [N, E] */
    float *S = G + (size_t)N * E;   /* [T, T] */
    mr_linear_forward(G, c->x, ly->gate_w, ly->gate_b, N, cfg->d_model, E);
    mr_softmax_rows(G, N, E);
    for (int b = 0; b < B; b++) {
        att_graph(s, c->att + (size_t)b * NH * TT, T, NH, S, NULL);
        size_t o = (size_t)b * T;
        mr_route_mix(probs + o * E, topk + o * k, weights + o * k, S, G + o * E, T, E, k);
    }
    return MR_OK;
}

static size_t att_grad_scratch(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    return 2 * (size_t)B * T * m->cfg.n_experts + 3 * (size_t)T * T;
}

/* p_i = sum_j S_ij g_j: S is the attention sub-layer's own probabilities (not detached
 * in tools/moe_model.py), so its gradient goes to datt, through the sharpening
 * softmax(log S0 / sigma) when sigma != 1 (masked entries, S0 = 0, get 0: the
 * derivative where the reference's torch.where(S > 0, log S, -inf) is defined) and to
 * the chosen head (or every head / NH for head=mean). The head search (an argmin) is
 * piecewise constant, like the top-k. */
static int att_backward(const void *state, const mr_route_ctx *c, const mr_route_grad *g)
{
    const att_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    int B = c->B, T = c->T, N = B * T, d = cfg->d_model, E = cfg->n_experts, k = c->k;
    int NH = cfg->n_heads;
    size_t TT = (size_t)T * T;
    float *G = c->scratch, *dG = G + (size_t)N * E;   /* [N, E] */
    float *S = dG + (size_t)N * E, *S0 = S + TT, *dS = S0 + TT; /* [T, T] */
    mr_linear_forward(G, c->x, ly->gate_w, ly->gate_b, N, d, E);
    mr_softmax_rows(G, N, E);
    mr_route_weights_backward(g->dprobs, g->probs, g->topk, g->dweights, N, E, k,
                              MR_GATE_RENORM);
    for (int b = 0; b < B; b++) {
        int best = att_graph(s, c->att + (size_t)b * NH * TT, T, NH, S, S0);
        size_t o = (size_t)b * T;
        mr_route_mix_backward(dS, dG + o * E, g->dprobs + o * E, S, G + o * E, T, E);
        if (s->sigma != 1.0) {
            mr_route_softmax_backward(dS, S, T, T); /* dL/d(log S0 / sigma) */
            for (size_t i = 0; i < TT; i++)
                dS[i] = S0[i] > 0.0f ? (float)(dS[i] / (s->sigma * S0[i])) : 0.0f;
        }
        float *da = g->datt + (size_t)b * NH * TT;
        if (best < 0)
            for (int h = 0; h < NH; h++)
                for (size_t i = 0; i < TT; i++) da[h * TT + i] += dS[i] / NH;
        else
            for (size_t i = 0; i < TT; i++) da[best * TT + i] += dS[i];
    }
    mr_route_softmax_backward(dG, G, N, E);
    mr_linear_backward(g->dx, dG, ly->gate_w, N, d, E);
    return MR_OK;
}

const mr_router_type mr_router_attention = {
    .name = "attention",
    .summary = "Attention-Aware SMoE: p_i = sum_j A_ij g_j, A the min-entropy head's attention",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(att_state), .init = att_init,
    .scratch_floats = att_scratch, .route = att_route,
    .grad_scratch_floats = att_grad_scratch, .route_backward = att_backward,
    .grad_datt = 1,
};
