/* similarity — Similarity-Aware SMoE ("Improving Routing in SMoE with Graph of Tokens",
 * arXiv 2505.00792; docs/routers.md).
 *
 *   g_j  = softmax(W_g x_j + b)                       every token's own gate
 *   z_i  = W_s x_i                                    W_s = router/sim_w [d_s, d], or I
 *   S_ij = softmax_j(<z_i, z_j> / tau)                j over the tokens i may see:
 *                                                     all (classify), j <= i (lm)
 *   p_i  = sum_j S_ij g_j                             then top-k, weights renormalized
 *
 * tau: option `tau`, else the model's router/tau, else sqrt(d_s) — the scale of a
 * dot product of two LayerNorm outputs, as in scaled dot-product attention. With
 * W_s = I (training-free swap) the router needs no trained tensor.
 */
#include <gsl/gsl_cblas.h>
#include <math.h>
#include <stdlib.h>

#include "../mr_error.h"
#include "../mr_ops.h"
#include "../mr_ops_grad.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

typedef struct sim_state {
    double *tau;     /* [n_layers] (MoE blocks only) */
    int *ds;         /* [n_layers] rows of W_s, or d for the identity */
    const float **ws;/* [n_layers] W_s or NULL */
} sim_state;

static void sim_free(void *state)
{
    sim_state *s = state;
    free(s->tau);
    free(s->ds);
    free(s->ws);
}

static int sim_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    sim_state *s = state;
    int L = m->cfg.n_layers, d = m->cfg.d_model;
    s->tau = calloc((size_t)L, sizeof *s->tau);
    s->ds = calloc((size_t)L, sizeof *s->ds);
    s->ws = calloc((size_t)L, sizeof *s->ws);
    if (!s->tau || !s->ds || !s->ws) return mr_error_set(MR_ENOMEM, "out of memory");
    double tau_opt = NAN;
    MR_TRY(mr_router_opts_get_double(opts, "tau", 1e-6, 1e6, &tau_opt));
    for (int l = 0; l < L; l++) {
        const mr_layer *ly = &m->layers[l];
        if (!ly->is_moe) continue;
        const mr_named_tensor *w = mr_layer_router_tensor(ly, "sim_w");
        if (w) {
            MR_REQUIRE(w->ndim == 2 && w->dims[1] == (size_t)d && w->dims[0] >= 1, MR_EINPUT,
                       "/layers/%d/moe/router/sim_w must be [d_s, %d]", l, d);
            s->ws[l] = w->data;
            s->ds[l] = (int)w->dims[0];
        } else {
            s->ds[l] = d;
        }
        s->tau[l] = isnan(tau_opt) ? mr_router_model_param(ly, "tau", sqrt((double)s->ds[l]))
                                   : tau_opt;
        MR_REQUIRE(s->tau[l] > 0.0, MR_EINPUT, "/layers/%d/moe/router/tau must be > 0", l);
    }
    return MR_OK;
}

static size_t sim_scratch(const void *state, const mr_model *m, int B, int T)
{
    const sim_state *s = state;
    int ds = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) ds = s->ds[l] > ds ? s->ds[l] : ds;
    return (size_t)B * T * m->cfg.n_experts + (size_t)B * T * ds + (size_t)T * T;
}

static int sim_route(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                     float *weights)
{
    const sim_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    int B = c->B, T = c->T, N = B * T, d = cfg->d_model, E = cfg->n_experts, k = c->k;
    int ds = s->ds[c->layer];
    float *G = c->scratch;                 /* [N, E] own gate distributions */
    float *Z = G + (size_t)N * E;          /* [N, ds] projected tokens */
    float *S = Z + (size_t)N * ds;         /* [T, T] one sequence's similarity graph */
    mr_linear_forward(G, c->x, ly->gate_w, ly->gate_b, N, d, E);
    mr_softmax_rows(G, N, E);
    const float *z = c->x;
    if (s->ws[c->layer]) {
        mr_linear_forward(Z, c->x, s->ws[c->layer], NULL, N, d, ds);
        z = Z;
    }
    float scale = (float)(1.0 / s->tau[c->layer]);
    for (int b = 0; b < B; b++) {
        const float *zb = z + (size_t)b * T * ds;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, ds, scale, zb, ds, zb, ds,
                    0.0f, S, T);
        mr_softmax_square(S, T, cfg->task == MR_TASK_LM);
        size_t o = (size_t)b * T;
        mr_route_mix(probs + o * E, topk + o * k, weights + o * k, S, G + o * E, T, E, k);
    }
    return MR_OK;
}

static size_t sim_grad_scratch(const void *state, const mr_model *m, int B, int T)
{
    return 2 * sim_scratch(state, m, B, T);
}

/* p_i = sum_j S_ij g_j with S = softmax(z z^T / tau) (causal for lm), z = W_s x, and
 * g = softmax(W_g x + b): both S and every g_j carry gradient to x. */
static int sim_backward(const void *state, const mr_route_ctx *c, const mr_route_grad *g)
{
    const sim_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    int B = c->B, T = c->T, N = B * T, d = cfg->d_model, E = cfg->n_experts, k = c->k;
    int ds = s->ds[c->layer];
    float *G = c->scratch, *dG = G + (size_t)N * E; /* [N, E] */
    float *Z = dG + (size_t)N * E, *dZ = Z + (size_t)N * ds; /* [N, ds] */
    float *S = dZ + (size_t)N * ds, *dS = S + (size_t)T * T; /* [T, T] */
    mr_linear_forward(G, c->x, ly->gate_w, ly->gate_b, N, d, E);
    mr_softmax_rows(G, N, E);
    const float *z = c->x;
    if (s->ws[c->layer]) {
        mr_linear_forward(Z, c->x, s->ws[c->layer], NULL, N, d, ds);
        z = Z;
    }
    float scale = (float)(1.0 / s->tau[c->layer]);
    mr_route_weights_backward(g->dprobs, g->probs, g->topk, g->dweights, N, E, k,
                              MR_GATE_RENORM);
    for (int b = 0; b < B; b++) {
        const float *zb = z + (size_t)b * T * ds;
        size_t o = (size_t)b * T;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, ds, scale, zb, ds, zb, ds,
                    0.0f, S, T);
        mr_softmax_square(S, T, cfg->task == MR_TASK_LM);
        mr_route_mix_backward(dS, dG + o * E, g->dprobs + o * E, S, G + o * E, T, E);
        mr_route_softmax_backward(dS, S, T, T); /* now dL/d(scores) */
        /* scores = scale z z^T: dz = scale (dscores + dscores^T) z */
        float *dzb = dZ + o * ds;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, ds, T, scale, dS, T, zb, ds,
                    0.0f, dzb, ds);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, ds, T, scale, dS, T, zb, ds,
                    1.0f, dzb, ds);
    }
    mr_route_softmax_backward(dG, G, N, E);
    mr_linear_backward(g->dx, dG, ly->gate_w, N, d, E);
    if (s->ws[c->layer])
        mr_linear_backward(g->dx, dZ, s->ws[c->layer], N, d, ds);
    else
        for (size_t i = 0; i < (size_t)N * d; i++) g->dx[i] += dZ[i];
    return MR_OK;
}

const mr_router_type mr_router_similarity = {
    .name = "similarity",
    .summary = "Similarity-Aware SMoE: p_i = sum_j softmax_j(<W_s x_i, W_s x_j>/tau) g_j",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(sim_state), .init = sim_init, .free = sim_free,
    .scratch_floats = sim_scratch, .route = sim_route,
    .grad_scratch_floats = sim_grad_scratch, .route_backward = sim_backward,
};
