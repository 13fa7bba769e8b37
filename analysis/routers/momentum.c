/* momentum — MomentumSMoE, heavy-ball form (Teo & Nguyen, NeurIPS 2024,
 * the authors' repository rachtsy/MomentumSMoE; docs/routers.md).
 *
 * Routing is the baseline softmax gate; what changes is what each MoE block adds to the
 * residual stream. With f_l the block's MoE output and m_0 = 0:
 *   m_l = mu * m_{l-1} + gamma * f_l(x_l);   x_{l+1} = x_l + m_l
 * (dense blocks pass m through unchanged). mu = 0, gamma = 1 is the baseline.
 * Defaults: the model's router/mu and router/gamma when trained with momentum, else the
 * paper's WikiText-103 setting mu = 0.7, gamma = 1.0; options mu, gamma override.
 */
#include <math.h>

#include "../mr_error.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

typedef struct mom_state {
    double mu_opt, gamma_opt; /* NAN: the model's or the paper's */
} mom_state;

static int mom_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    (void)m;
    mom_state *s = state;
    s->mu_opt = s->gamma_opt = NAN;
    MR_TRY(mr_router_opts_get_double(opts, "mu", 0.0, 1.0, &s->mu_opt));
    MR_TRY(mr_router_opts_get_double(opts, "gamma", 0.0, 100.0, &s->gamma_opt));
    return MR_OK;
}

static void mom_params(const mom_state *s, const mr_layer *ly, float *mu, float *gamma)
{
    *mu = (float)(isnan(s->mu_opt) ? mr_router_model_param(ly, "mu", 0.7) : s->mu_opt);
    *gamma = (float)(isnan(s->gamma_opt) ? mr_router_model_param(ly, "gamma", 1.0)
                                         : s->gamma_opt);
}

static int mom_combine(const void *state, const mr_route_ctx *c, const mr_combine_ctx *cc,
                       float *y)
{
    float mu, gamma;
    mom_params(state, &c->model->layers[c->layer], &mu, &gamma);
    size_t n = (size_t)c->B * c->T * c->model->cfg.d_model;
    for (size_t i = 0; i < n; i++) {
        cc->carry[i] = mu * cc->carry[i] + gamma * y[i];
        y[i] = cc->carry[i];
    }
    return MR_OK;
}

/* m_l = mu m_{l-1} + gamma y is both the block's output and the carry: with
 * g = dL/d(output) + dL/d(carry after), dL/dy = gamma g and dL/d(carry before) = mu g. */
static int mom_combine_backward(const void *state, const mr_route_ctx *c,
                                const mr_combine_grad *g, float *dy)
{
    float mu, gamma;
    mom_params(state, &c->model->layers[c->layer], &mu, &gamma);
    size_t n = (size_t)c->B * c->T * c->model->cfg.d_model;
    for (size_t i = 0; i < n; i++) {
        float t = dy[i] + g->dcarry[i];
        dy[i] = gamma * t;
        g->dcarry[i] = mu * t;
    }
    return MR_OK;
}

const mr_router_type mr_router_momentum = {
    .name = "momentum",
    .summary = "MomentumSMoE heavy ball: m_l = mu m_{l-1} + gamma f_l(x_l) replaces f_l",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(mom_state), .init = mom_init,
    .route = mr_route_baseline, .combine = mom_combine,
    .route_backward = mr_route_baseline_backward, .combine_backward = mom_combine_backward,
};
