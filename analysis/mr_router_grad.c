#include "mr_router_grad.h"

#include <gsl/gsl_cblas.h>

#include "mr_error.h"
#include "mr_ops_grad.h"

void mr_route_weights_backward(float *dprobs, const float *probs, const int *topk,
                               const float *dweights, int N, int E, int k, int gate_norm)
{
    for (int n = 0; n < N; n++) {
        const int *idx = topk + (size_t)n * k;
        const float *p = probs + (size_t)n * E, *dw = dweights + (size_t)n * k;
        float *dp = dprobs + (size_t)n * E;
        if (gate_norm == MR_GATE_NONE) {
            for (int j = 0; j < k; j++) dp[idx[j]] += dw[j];
            continue;
        }
        /* w_j = p_j / s, s = sum of the k selected: dp_j = (dw_j - sum_i dw_i w_i) / s */
        double s = 0.0, dot = 0.0;
        for (int j = 0; j < k; j++) s += p[idx[j]];
        for (int j = 0; j < k; j++) dot += (double)dw[j] * (p[idx[j]] / s);
        for (int j = 0; j < k; j++) dp[idx[j]] += (float)((dw[j] - dot) / s);
    }
}

void mr_route_softmax_backward(float *dp, const float *p, int N, int E)
{
    for (int n = 0; n < N; n++) {
        float *g = dp + (size_t)n * E;
        const float *y = p + (size_t)n * E;
        double s = 0.0;
        for (int e = 0; e < E; e++) s += (double)g[e] * y[e];
        for (int e = 0; e < E; e++) g[e] = (float)(y[e] * (g[e] - s));
    }
}

void mr_route_linear_gate_backward(const mr_route_grad *g, const float *W, int N, int d, int E,
                                   int k, int gate_norm)
{
    mr_route_weights_backward(g->dprobs, g->probs, g->topk, g->dweights, N, E, k, gate_norm);
    mr_route_softmax_backward(g->dprobs, g->probs, N, E);
    mr_linear_backward(g->dx, g->dprobs, W, N, d, E);
}

int mr_route_baseline_backward(const void *state, const mr_route_ctx *c, const mr_route_grad *g)
{
    (void)state;
    const mr_config *cfg = &c->model->cfg;
    mr_route_linear_gate_backward(g, c->model->layers[c->layer].gate_w, c->B * c->T,
                                  cfg->d_model, cfg->n_experts, c->k, cfg->gate_norm);
    return MR_OK;
}

void mr_route_mix_backward(float *dS, float *dG, const float *dp, const float *S,
                           const float *G, int T, int E)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, E, 1.0f, dp, E, G, E, 0.0f, dS,
                T);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, E, T, 1.0f, S, T, dp, E, 0.0f, dG,
                E);
}
