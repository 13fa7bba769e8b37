/* s2moe — S2MoE ("Robust Sparse Mixture of Experts via Stochastic Learning", Do, Le, Tran
 * 2025). The paper leaves the noise module's details open and its authors' code is not
 * public; this follows a public third-party implementation (docs/routers.md, `s2moe`):
 *   x'  = eps1 ⊙ x + eps2,  eps1 ~ N(1, sigma_x^2),  eps2 ~ N(mu_x, sigma_x^2)
 *         mu_x, sigma_x: per-feature mean and (unbiased) std over the sequence's tokens
 *         (lm: over positions <= t, the tokens the model may see; sigma 0 at t = 0)
 *   g   = sigmoid(w_g · x + b_g)                  router/s2_gate_w [1, d], s2_gate_b [1]
 *   y   = g * SMoE(x) + (1 - g) * SMoE(x')        the routing of x is reused for x'
 * Evaluation with the noise branch on (option noise=on, default; seeded per sample from
 * the stream (seed, "router/s2moe/L", sample index), option seed) or off (noise=off: x' =
 * x, so y = SMoE(x)). Routing itself is the softmax gate. Only for models trained with
 * S2MoE's gate.
 */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_ops.h"
#include "../mr_rng.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

typedef struct s2_state {
    int noise;
    double seed;
} s2_state;

static int s2_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    s2_state *s = state;
    s->noise = 1;
    MR_TRY(mr_router_opts_get_choice(opts, "noise", "off", "on", &s->noise));
    MR_TRY(mr_router_opts_get_double(opts, "seed", 0, 4294967295.0, &s->seed));
    MR_REQUIRE(s->seed == floor(s->seed), MR_EINPUT, "router option seed must be an integer");
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *ly = &m->layers[l];
        if (!ly->is_moe) continue;
        const mr_named_tensor *w = mr_layer_router_tensor(ly, "s2_gate_w");
        const mr_named_tensor *b = mr_layer_router_tensor(ly, "s2_gate_b");
        MR_REQUIRE(w && b, MR_EINPUT,
                   "needs /layers/%d/moe/router/{s2_gate_w, s2_gate_b}: the model was not "
                   "trained with S2MoE",
                   l);
        MR_REQUIRE(w->size == (size_t)m->cfg.d_model && b->size == 1, MR_EINPUT,
                   "/layers/%d/moe/router: s2_gate_w must be [1, %d] and s2_gate_b [1]", l,
                   m->cfg.d_model);
    }
    return MR_OK;
}

static size_t s2_scratch(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    return 2 * (size_t)B * T * m->cfg.d_model;
}

/* The noisy input xn [N,d] = e1 ⊙ x + e2 of one block, and (e1 not NULL) e1 itself:
 * dxn/dx with the sequence statistics held constant, as the reference computes them
 * under torch.no_grad(). */
static int s2_noisy(const s2_state *s, const mr_route_ctx *c, float *xn, float *e1out)
{
    int B = c->B, T = c->T, d = c->model->cfg.d_model;
    int causal = c->model->cfg.task == MR_TASK_LM; /* lm: statistics of positions <= t */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) return mr_error_set(MR_ENOMEM, "out of memory");
    char purpose[64];
    snprintf(purpose, sizeof purpose, "router/s2moe/%d", c->layer);
    for (int b = 0; b < B; b++) {
        mr_rng_reseed(r, (uint64_t)s->seed, purpose, c->first_sample + (uint64_t)b);
        const float *x = c->x + (size_t)b * T * d;
        float *o = xn + (size_t)b * T * d;
        for (int f = 0; f < d; f++) {
            double mu = 0.0, var = 0.0, sd = 0.0;
            if (!causal) {
                for (int t = 0; t < T; t++) mu += x[(size_t)t * d + f];
                mu /= T;
                for (int t = 0; t < T; t++) {
                    double dx = x[(size_t)t * d + f] - mu;
                    var += dx * dx;
                }
                sd = T > 1 ? sqrt(var / (T - 1)) : 0.0;
            }
            for (int t = 0; t < T; t++) {
                if (causal) { /* Welford over positions <= t; one token: sd = 0 */
                    double xv = x[(size_t)t * d + f], dx = xv - mu;
                    mu += dx / (t + 1);
                    var += dx * (xv - mu);
                    sd = t > 0 ? sqrt(var / t) : 0.0;
                }
                double e1 = 1.0 + gsl_ran_gaussian_ziggurat(r, 1.0) * sd;
                double e2 = mu + gsl_ran_gaussian_ziggurat(r, 1.0) * sd;
                o[(size_t)t * d + f] = (float)(e1 * x[(size_t)t * d + f] + e2);
                if (e1out) e1out[((size_t)b * T + t) * d + f] = (float)e1;
            }
        }
    }
    gsl_rng_free(r);
    return MR_OK;
}

/* g = sigmoid(s2_gate_w . x_i + s2_gate_b) of token i */
static float s2_gate(const mr_layer *ly, const float *xi, int d)
{
    const float *gw = mr_layer_router_tensor(ly, "s2_gate_w")->data;
    double z = mr_layer_router_tensor(ly, "s2_gate_b")->data[0];
    for (int f = 0; f < d; f++) z += (double)gw[f] * xi[f];
    return (float)(1.0 / (1.0 + exp(-z)));
}

static int s2_combine(const void *state, const mr_route_ctx *c, const mr_combine_ctx *cc,
                      float *y)
{
    const s2_state *s = state;
    if (!s->noise) return MR_OK; /* x' = x: the mix is SMoE(x) itself */
    const mr_layer *ly = &c->model->layers[c->layer];
    int d = c->model->cfg.d_model;
    size_t N = (size_t)c->B * c->T;
    /* noisy input and its experts' output; for the gradient (cc->save) also e1, all
     * three kept for s2_combine_backward (s2_grad_save) */
    float *xn = cc->save ? cc->save : c->scratch, *e1 = cc->save ? xn + N * d : NULL;
    float *yn = cc->save ? e1 + N * d : xn + N * d;
    MR_TRY(s2_noisy(s, c, xn, e1));
    cc->experts(cc->engine, yn, xn, cc->topk, cc->weights);
    for (size_t i = 0; i < N; i++) {
        float g = s2_gate(ly, c->x + i * d, d);
        for (int f = 0; f < d; f++) y[i * d + f] = g * y[i * d + f] + (1.0f - g) * yn[i * d + f];
    }
    return MR_OK;
}

static size_t s2_grad_scratch(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    return 2 * (size_t)B * T * m->cfg.d_model;
}

/* the forward's xn, e1 and yn [N, d] each (s2_combine): the backward used to draw the
 * noise and run the experts on xn twice again (a quarter of an S2MoE PGD attack's time
 * went to the Gaussian draws, docs/performance.md) */
static size_t s2_grad_save(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    return 3 * (size_t)B * T * m->cfg.d_model;
}

/* y = g SMoE(x) + (1 - g) SMoE(xn), xn = e1 ⊙ x + e2, g = sigmoid(w_g . x + b_g): x
 * receives gradient through the gate, through xn (e1 ⊙ dxn; the noise and the sequence
 * statistics are constants, torch.no_grad() in the reference) and, via dy = g dL/dy,
 * through SMoE(x); the shared routing weights through both expert passes. */
static int s2_combine_backward(const void *state, const mr_route_ctx *c,
                               const mr_combine_grad *g, float *dy)
{
    const s2_state *s = state;
    if (!s->noise) return MR_OK;
    const mr_layer *ly = &c->model->layers[c->layer];
    const float *gw = mr_layer_router_tensor(ly, "s2_gate_w")->data;
    int d = c->model->cfg.d_model;
    size_t N = (size_t)c->B * c->T, Nd = N * d;
    /* what the forward kept (s2_grad_save): the gradient forward always keeps it */
    MR_REQUIRE(g->save && g->experts_vjp_fwd, MR_EINPUT,
               "s2moe: combine_backward without the forward's kept noise");
    const float *e1 = g->save + Nd, *yn = e1 + Nd; /* after xn */
    float *dyn = c->scratch, *dxn = dyn + Nd;
    for (size_t i = 0; i < N; i++) {
        float gi = s2_gate(ly, c->x + i * d, d);
        float *dyi = dy + i * d;
        double dg = 0.0;
        for (int f = 0; f < d; f++) {
            dg += (double)dyi[f] * ((double)g->y[i * d + f] - yn[i * d + f]);
            dyn[i * d + f] = (1.0f - gi) * dyi[f];
            dyi[f] = gi * dyi[f];
        }
        double dz = dg * gi * (1.0 - gi);
        for (int f = 0; f < d; f++) g->dx[i * d + f] += (float)(dz * gw[f]);
    }
    memset(dxn, 0, Nd * sizeof *dxn);
    g->experts_vjp_fwd(g->engine, dxn, g->dweights, dyn);
    for (size_t i = 0; i < Nd; i++) g->dx[i] += e1[i] * dxn[i];
    return MR_OK;
}

const mr_router_type mr_router_s2moe = {
    .name = "s2moe",
    .summary = "S2MoE: g SMoE(x) + (1-g) SMoE(x + Gaussian noise), noise=on|off",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(s2_state), .init = s2_init,
    .scratch_floats = s2_scratch, .route = mr_route_baseline, .combine = s2_combine,
    .grad_scratch_floats = s2_grad_scratch, .route_backward = mr_route_baseline_backward,
    .combine_backward = s2_combine_backward, .grad_save_floats = s2_grad_save,
};
