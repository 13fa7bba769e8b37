/* random — SMoE-Dropout's frozen random router ("Sparse MoE as the New Dropout", ICLR
 * 2023; the authors' repository VITA-Group/Random-MoE-as-Dropout).
 *
 *   p = softmax(R x + r); top-k; weights by the model's gate_norm (renorm = softmax over
 *   the k selected logits, as in the paper)
 *
 * R, r: the model's router/random_w [E, d] and router/random_b [E] when it was trained
 * with a frozen random router; otherwise drawn once, as nn.Linear initializes them
 * (uniform in +-1/sqrt(d)), from the stream (seed, "router/random/L", 0) with option
 * seed (default 0). The "self-slimmable" k-sweep is `--top-k K` (any router).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../mr_error.h"
#include "../mr_ops.h"
#include "../mr_rng.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

typedef struct rnd_state {
    const float **w, **b; /* [n_layers] */
    float *buf;           /* drawn weights, when the model has none */
} rnd_state;

static void rnd_free(void *state)
{
    rnd_state *s = state;
    free(s->w);
    free(s->b);
    free(s->buf);
}

static int rnd_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    rnd_state *s = state;
    int L = m->cfg.n_layers, d = m->cfg.d_model, E = m->cfg.n_experts;
    double seed = 0;
    MR_TRY(mr_router_opts_get_double(opts, "seed", 0, 4294967295.0, &seed));
    MR_REQUIRE(seed == floor(seed), MR_EINPUT, "router option seed must be an integer");
    s->w = calloc((size_t)L, sizeof *s->w);
    s->b = calloc((size_t)L, sizeof *s->b);
    s->buf = malloc((size_t)m->cfg.n_moe * E * (d + 1) * sizeof *s->buf + 1);
    if (!s->w || !s->b || !s->buf) return mr_error_set(MR_ENOMEM, "out of memory");
    float *cur = s->buf;
    for (int l = 0; l < L; l++) {
        const mr_layer *ly = &m->layers[l];
        if (!ly->is_moe) continue;
        const mr_named_tensor *w = mr_layer_router_tensor(ly, "random_w");
        const mr_named_tensor *b = mr_layer_router_tensor(ly, "random_b");
        if (w) {
            MR_REQUIRE(w->ndim == 2 && w->dims[0] == (size_t)E && w->dims[1] == (size_t)d,
                       MR_EINPUT, "/layers/%d/moe/router/random_w must be [%d, %d]", l, E, d);
            MR_REQUIRE(!b || (b->ndim == 1 && b->dims[0] == (size_t)E), MR_EINPUT,
                       "/layers/%d/moe/router/random_b must be [%d]", l, E);
            s->w[l] = w->data;
            s->b[l] = b ? b->data : NULL;
            continue;
        }
        char purpose[64];
        snprintf(purpose, sizeof purpose, "router/random/%d", l);
        gsl_rng *r = mr_rng_alloc((uint64_t)seed, purpose, 0);
        if (!r) return mr_error_set(MR_ENOMEM, "out of memory");
        double bound = 1.0 / sqrt((double)d);
        for (int i = 0; i < E * (d + 1); i++)
            cur[i] = (float)((2.0 * gsl_rng_uniform(r) - 1.0) * bound);
        gsl_rng_free(r);
        s->w[l] = cur;
        s->b[l] = cur + (size_t)E * d;
        cur += (size_t)E * (d + 1);
    }
    return MR_OK;
}

static int rnd_route(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                     float *weights)
{
    const rnd_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    int N = c->B * c->T, E = cfg->n_experts, k = c->k;
    mr_linear_forward(probs, c->x, s->w[c->layer], s->b[c->layer], N, cfg->d_model, E);
    mr_route_from_logits(probs, topk, weights, N, E, k, cfg->gate_norm);
    return MR_OK;
}

/* logits = R x + r: the gate's gradient with R in place of W_g */
static int rnd_backward(const void *state, const mr_route_ctx *c, const mr_route_grad *g)
{
    const rnd_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    mr_route_linear_gate_backward(g, s->w[c->layer], c->B * c->T, cfg->d_model, cfg->n_experts,
                                  c->k, cfg->gate_norm);
    return MR_OK;
}

const mr_router_type mr_router_random = {
    .name = "random",
    .summary = "SMoE-Dropout: a frozen random linear router (the model's, or seeded)",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(rnd_state), .init = rnd_init, .free = rnd_free,
    .route = rnd_route,
    .route_backward = rnd_backward,
};
