/* attention — Attention-Aware SMoE ("Improving Routing in SMoE with Graph of Tokens",
 * arXiv 2505.00792; shared/research/routers.md).
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
#include "../mr_ops.h"
#include "../mr_router.h"

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
        char *end;
        long h = strtol(buf, &end, 10);
        if (strcmp(buf, "min-entropy") == 0)
            s->head = HEAD_MIN_ENTROPY;
        else if (strcmp(buf, "mean") == 0)
            s->head = HEAD_MEAN;
        else if (end != buf && *end == '\0' && h >= 0 && h < m->cfg.n_heads)
            s->head = (int)h;
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
        const float *A = c->att + (size_t)b * NH * TT; /* [NH, T, T] */
        if (s->head == HEAD_MEAN) {
            for (size_t i = 0; i < TT; i++) {
                double a = 0.0;
                for (int h = 0; h < NH; h++) a += A[h * TT + i];
                S[i] = (float)(a / NH);
            }
        } else {
            int best = s->head;
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
        size_t o = (size_t)b * T;
        mr_route_mix(probs + o * E, topk + o * k, weights + o * k, S, G + o * E, T, E, k);
    }
    return MR_OK;
}

const mr_router_type mr_router_attention = {
    .name = "attention",
    .summary = "Attention-Aware SMoE: p_i = sum_j A_ij g_j, A the min-entropy head's attention",
    .state_size = sizeof(att_state),
    .init = att_init,
    .scratch_floats = att_scratch,
    .route = att_route,
    .free = NULL,
};
