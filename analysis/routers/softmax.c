/* softmax — the baseline top-k router (GShard / Switch).
 *
 *   p = softmax(W_g x + b)                  routing distribution
 *   S = top-k of p
 *   w_e = p_e / sum_{S} p     (gate_norm = renorm; equals softmax over the k logits)
 *   w_e = p_e                 (gate_norm = none; Switch Transformer)
 *
 * Follows the fastmoe-style NaiveGate used by the SMoE papers (shared/research/routers.md).
 */
#include "../mr_router.h"

#include "../mr_error.h"

static int softmax_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    (void)state;
    (void)m;
    (void)opts;
    return MR_OK;
}

static int softmax_route(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                         float *weights)
{
    (void)state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *layer = &c->model->layers[c->layer];
    mr_route_softmax_gate(probs, topk, weights, c->x, layer, c->B * c->T, cfg->d_model,
                          cfg->n_experts, c->k, cfg->gate_norm);
    return MR_OK;
}

const mr_router_type mr_router_softmax = {
    .name = "softmax",
    .summary = "baseline top-k of softmax(W_g x + b) (GShard renorm / Switch)",
    .state_size = 0,
    .init = softmax_init,
    .scratch_floats = NULL,
    .route = softmax_route,
    .free = NULL,
};
