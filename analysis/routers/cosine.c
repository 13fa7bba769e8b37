/* cosine — X-MoE ("On the Representation Collapse of Sparse Mixture of Experts", Chi et
 * al., NeurIPS 2022; docs/routers.md).
 *
 *   s_ij = cos(W_p x_i, e_j) / tau     W_p = router/proj_w [d_e, d],
 *                                      e = router/expert_emb [E, d_e], tau = router/tau
 *   p_i  = softmax(s_i); top-k; weights by the model's gate_norm
 *
 * Only for models trained with these tensors: projecting into a learned low-dimensional
 * routing space has no training-free stand-in. Option tau overrides the trained one.
 */
#include <gsl/gsl_cblas.h>
#include <math.h>
#include <stdlib.h>

#include "../mr_error.h"
#include "../mr_ops.h"
#include "../mr_ops_grad.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

typedef struct cos_state {
    double tau_opt;  /* NAN: the model's */
    int de;
} cos_state;

static int cos_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    cos_state *s = state;
    s->tau_opt = NAN;
    MR_TRY(mr_router_opts_get_double(opts, "tau", 1e-6, 1e6, &s->tau_opt));
    int d = m->cfg.d_model, E = m->cfg.n_experts;
    s->de = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *ly = &m->layers[l];
        if (!ly->is_moe) continue;
        const mr_named_tensor *p = mr_layer_router_tensor(ly, "proj_w");
        const mr_named_tensor *e = mr_layer_router_tensor(ly, "expert_emb");
        const mr_named_tensor *t = mr_layer_router_tensor(ly, "tau");
        MR_REQUIRE(p && e && (t || !isnan(s->tau_opt)), MR_EINPUT,
                   "needs /layers/%d/moe/router/{proj_w, expert_emb, tau}: the model was not "
                   "trained with X-MoE cosine routing",
                   l);
        MR_REQUIRE(p->ndim == 2 && p->dims[1] == (size_t)d && e->ndim == 2 &&
                       e->dims[0] == (size_t)E && e->dims[1] == p->dims[0],
                   MR_EINPUT,
                   "/layers/%d/moe/router: proj_w must be [d_e, %d] and expert_emb [%d, d_e]", l,
                   d, E);
        MR_REQUIRE(!t || t->data[0] > 0.0f, MR_EINPUT, "/layers/%d/moe/router/tau must be > 0",
                   l);
        if ((int)p->dims[0] > s->de) s->de = (int)p->dims[0];
    }
    return MR_OK;
}

static size_t cos_scratch(const void *state, const mr_model *m, int B, int T)
{
    const cos_state *s = state;
    return (size_t)B * T * s->de + (size_t)m->cfg.n_experts * s->de;
}

static void normalize_rows(float *x, int n, int d)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int f = 0; f < d; f++) s += (double)x[(size_t)i * d + f] * x[(size_t)i * d + f];
        double inv = s > 0.0 ? 1.0 / sqrt(s) : 0.0;
        for (int f = 0; f < d; f++) x[(size_t)i * d + f] = (float)(x[(size_t)i * d + f] * inv);
    }
}

static int cos_route(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                     float *weights)
{
    const cos_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    const mr_named_tensor *p = mr_layer_router_tensor(ly, "proj_w");
    const mr_named_tensor *e = mr_layer_router_tensor(ly, "expert_emb");
    double tau = isnan(s->tau_opt) ? mr_router_model_param(ly, "tau", 1.0) : s->tau_opt;
    int N = c->B * c->T, d = cfg->d_model, E = cfg->n_experts, k = c->k, de = (int)p->dims[0];
    float *h = c->scratch, *en = h + (size_t)N * de; /* [N, de], [E, de] */
    mr_linear_forward(h, c->x, p->data, NULL, N, d, de);
    normalize_rows(h, N, de);
    for (size_t i = 0; i < (size_t)E * de; i++) en[i] = e->data[i];
    normalize_rows(en, E, de);
    mr_linear_forward(probs, h, en, NULL, N, de, E); /* cosines [N, E] */
    for (size_t i = 0; i < (size_t)N * E; i++) probs[i] = (float)(probs[i] / tau);
    mr_route_from_logits(probs, topk, weights, N, E, k, cfg->gate_norm);
    return MR_OK;
}

static size_t cos_grad_scratch(const void *state, const mr_model *m, int B, int T)
{
    const cos_state *s = state;
    return 2 * (size_t)B * T * s->de + (size_t)m->cfg.n_experts * s->de;
}

/* logits = cos(W_p x, e) / tau with cos = (h / |h|) . (e / |e|), h = W_p x: through the
 * softmax and the temperature, then the row normalization of h (d(h/|h|) = (dhn - hn
 * (hn . dhn)) / |h|, 0 for h = 0 as the reference's torch.where), then W_p. */
static int cos_backward(const void *state, const mr_route_ctx *c, const mr_route_grad *g)
{
    const cos_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    const mr_named_tensor *p = mr_layer_router_tensor(ly, "proj_w");
    const mr_named_tensor *e = mr_layer_router_tensor(ly, "expert_emb");
    double tau = isnan(s->tau_opt) ? mr_router_model_param(ly, "tau", 1.0) : s->tau_opt;
    int N = c->B * c->T, d = cfg->d_model, E = cfg->n_experts, k = c->k, de = (int)p->dims[0];
    float *h = c->scratch, *en = h + (size_t)N * de, *dh = en + (size_t)E * de;
    mr_linear_forward(h, c->x, p->data, NULL, N, d, de);
    for (size_t i = 0; i < (size_t)E * de; i++) en[i] = e->data[i];
    normalize_rows(en, E, de);
    mr_route_weights_backward(g->dprobs, g->probs, g->topk, g->dweights, N, E, k,
                              cfg->gate_norm);
    mr_route_softmax_backward(g->dprobs, g->probs, N, E);
    for (size_t i = 0; i < (size_t)N * E; i++) g->dprobs[i] = (float)(g->dprobs[i] / tau);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, de, E, 1.0f, g->dprobs, E, en,
                de, 0.0f, dh, de); /* dL/d(h / |h|) [N, de] */
    for (int i = 0; i < N; i++) {
        float *hi = h + (size_t)i * de, *gi = dh + (size_t)i * de;
        double ss = 0.0, dot = 0.0;
        for (int f = 0; f < de; f++) ss += (double)hi[f] * hi[f];
        double nrm = sqrt(ss);
        if (!(nrm > 0.0)) {
            for (int f = 0; f < de; f++) gi[f] = 0.0f;
            continue;
        }
        for (int f = 0; f < de; f++) dot += (double)gi[f] * (hi[f] / nrm);
        for (int f = 0; f < de; f++) gi[f] = (float)((gi[f] - (hi[f] / nrm) * dot) / nrm);
    }
    mr_linear_backward(g->dx, dh, p->data, N, d, de);
    return MR_OK;
}

const mr_router_type mr_router_cosine = {
    .name = "cosine",
    .summary = "X-MoE: softmax(cos(W_p x, e_j) / tau), for models trained with it",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(cos_state), .init = cos_init,
    .scratch_floats = cos_scratch, .route = cos_route,
    .grad_scratch_floats = cos_grad_scratch, .route_backward = cos_backward,
};
