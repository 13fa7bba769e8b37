/* softmax — the baseline top-k router (GShard / Switch).
 *
 *   p = softmax(W_g x + b)                  routing distribution
 *   S = top-k of p
 *   w_e = p_e / sum_{S} p     (gate_norm = renorm; equals softmax over the k logits)
 *   w_e = p_e                 (gate_norm = none; Switch Transformer)
 *
 * Follows fastmoe's NaiveGate as the SMoE papers' code uses it (e.g. the repositories
 * rachtsy/MomentumSMoE and Fsoft-AIC/Tight-Clusters-Make-Specialized-Experts).
 */
#include "../mr_router.h"

#include "../mr_error.h"
#include "../mr_router_grad.h"

static int softmax_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    (void)state;
    (void)m;
    (void)opts;
    return MR_OK;
}

const mr_router_type mr_router_softmax = {
    .name = "softmax",
    .summary = "baseline top-k of softmax(W_g x + b) (GShard renorm / Switch)",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .init = softmax_init,
    .route = mr_route_baseline,
    .route_backward = mr_route_baseline_backward,
};
