#include "mr_calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mr_engine.h"
#include "mr_error.h"
#include "mr_ops.h"

void mr_calib_free(mr_calib *c)
{
    if (!c) return;
    free(c->x);
    free(c->topk);
    free(c->weights);
    free(c);
}

static int calib_alloc(mr_calib **out, const mr_model *m, int n, int T)
{
    const mr_config *cfg = &m->cfg;
    MR_REQUIRE(cfg->n_moe >= 1, MR_EINPUT, "%s: the model has no MoE layers (moe_layers is empty)",
               m->path);
    MR_REQUIRE(n >= 1, MR_EINPUT, "no calibration samples");
    size_t tok = (size_t)n * (size_t)T;
    MR_REQUIRE(tok <= (size_t)1 << 30 &&
                   tok * (size_t)cfg->n_moe * (size_t)cfg->d_model <= MR_CALIB_MAX_FLOATS,
               MR_EINPUT,
               "%d calibration samples of %d tokens are too many for %d MoE layers of width %d "
               "(at most %zu floats): lower --calib-limit",
               n, T, cfg->n_moe, cfg->d_model, (size_t)MR_CALIB_MAX_FLOATS);
    mr_calib *c = calloc(1, sizeof *c);
    if (!c) return mr_error_set(MR_ENOMEM, "out of memory");
    c->n_moe = cfg->n_moe;
    c->n_tok = (int)tok;
    c->d = cfg->d_model;
    c->E = cfg->n_experts;
    c->k = cfg->top_k;
    size_t per = (size_t)c->n_moe * tok;
    c->x = malloc(per * (size_t)c->d * sizeof *c->x);
    c->topk = malloc(per * (size_t)c->k * sizeof *c->topk);
    c->weights = malloc(per * (size_t)c->k * sizeof *c->weights);
    if (!c->x || !c->topk || !c->weights) {
        mr_calib_free(c);
        return mr_error_set(MR_ENOMEM, "out of memory for the calibration statistics");
    }
    *out = c;
    return MR_OK;
}

/* Copy the trace of samples [s0, s0 + B) into the per-block arrays. */
static void take_trace(mr_calib *c, const mr_trace *tr, int s0)
{
    size_t per = (size_t)tr->B * tr->T, first = (size_t)s0 * tr->T;
    for (int i = 0; i < c->n_moe; i++) {
        size_t dst = (size_t)i * c->n_tok + first;
        memcpy(c->x + dst * c->d, tr->moe_input + (size_t)i * per * c->d,
               per * c->d * sizeof(float));
        memcpy(c->topk + dst * c->k, tr->topk + (size_t)i * per * c->k, per * c->k * sizeof(int));
        memcpy(c->weights + dst * c->k, tr->weights + (size_t)i * per * c->k,
               per * c->k * sizeof(float));
    }
}

static int collect(mr_calib **out, const mr_model *m, const mr_router *r, const uint8_t *images,
                   const int32_t *tokens, int n, int cols, int batch)
{
    *out = NULL;
    const mr_config *cfg = &m->cfg;
    int T = images ? mr_config_seq_len(cfg) : cols - 1;
    MR_REQUIRE(T >= 1, MR_EINPUT, "calibration sequences need at least 2 tokens");
    mr_calib *c = NULL;
    MR_TRY(calib_alloc(&c, m, n, T));
    mr_engine_opts o;
    mr_engine_opts_init(&o, m);
    o.batch = batch < n ? batch : n;
    o.keep_moe_input = 1;
    if (tokens) o.seq_len = T;
    mr_workspace *ws = NULL;
    int st = mr_engine_opts_check(&o, m);
    if (st == MR_OK) st = mr_workspace_alloc(&ws, m, r, &o);
    if (st != MR_OK) {
        mr_calib_free(c);
        return st;
    }
    size_t img = (size_t)cfg->image_h * cfg->image_w * cfg->channels;
    for (int s0 = 0; st == MR_OK && s0 < n; s0 += o.batch) {
        int B = n - s0 < o.batch ? n - s0 : o.batch;
        mr_workspace_set_first_sample(ws, (uint64_t)s0);
        st = images ? mr_engine_forward_images(ws, images + (size_t)s0 * img, B)
                    : mr_engine_forward_tokens(ws, tokens + (size_t)s0 * cols, B, T, cols);
        if (st == MR_OK) take_trace(c, mr_workspace_trace(ws), s0);
    }
    mr_workspace_free(ws);
    if (st != MR_OK) {
        mr_calib_free(c);
        return st;
    }
    *out = c;
    return MR_OK;
}

int mr_calib_images(mr_calib **out, const mr_model *m, const mr_router *r,
                    const uint8_t *images, int n, int batch)
{
    MR_REQUIRE(m->cfg.task == MR_TASK_CLASSIFY, MR_EINPUT,
               "%s: image calibration data for a language model", m->path);
    return collect(out, m, r, images, NULL, n, 0, batch);
}

int mr_calib_tokens(mr_calib **out, const mr_model *m, const mr_router *r,
                    const int32_t *tokens, int n, int cols, int batch)
{
    MR_REQUIRE(m->cfg.task == MR_TASK_LM, MR_EINPUT,
               "%s: token calibration data for an image classifier", m->path);
    return collect(out, m, r, NULL, tokens, n, cols, batch);
}

void mr_calib_counts(int64_t *counts, const mr_calib *c, int i)
{
    memset(counts, 0, (size_t)c->E * sizeof *counts);
    const int *tk = c->topk + (size_t)i * c->n_tok * c->k;
    for (size_t t = 0; t < (size_t)c->n_tok * c->k; t++) counts[tk[t]]++;
}

int mr_calib_logit_similarity(double *sim, const mr_calib *c, const mr_layer *L, int i)
{
    int E = c->E, d = c->d;
    /* Gram matrix of the logit columns, G = U^T U [E, E], accumulated in double over
     * tokens in index order (deterministic) */
    double *G = calloc((size_t)E * E, sizeof *G), *u = malloc((size_t)E * sizeof *u);
    if (!G || !u) {
        free(G);
        free(u);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    const float *x = c->x + (size_t)i * c->n_tok * d;
    for (int t = 0; t < c->n_tok; t++) {
        const float *xt = x + (size_t)t * d;
        for (int e = 0; e < E; e++) {
            double s = L->gate_b[e];
            const float *w = L->gate_w + (size_t)e * d;
            for (int j = 0; j < d; j++) s += (double)w[j] * xt[j];
            u[e] = s;
        }
        for (int a = 0; a < E; a++)
            for (int b = a; b < E; b++) G[a * E + b] += u[a] * u[b];
    }
    /* cosine as torch.nn.functional.cosine_similarity with the reference's eps, FP32_EPS =
     * 1e-7 (mcsmoe/utils/constants.py): dot / max(|a| |b|, eps) */
    const double eps = 1e-7;
    for (int a = 0; a < E; a++)
        for (int b = a; b < E; b++) {
            double den = sqrt(G[a * E + a]) * sqrt(G[b * E + b]);
            double cs = a == b ? 1.0 : G[a * E + b] / (den > eps ? den : eps);
            sim[a * E + b] = sim[b * E + a] = (cs + 1.0) / 2.0;
        }
    free(G);
    free(u);
    return MR_OK;
}

void mr_expert_forward(float *y, float *hidden, const float *x, const mr_layer *L, int e,
                       int n, const mr_config *cfg)
{
    int d = cfg->d_model, h = cfg->expert_hidden;
    mr_linear_forward(hidden, x, L->exp_w1 + (size_t)e * h * d, L->exp_b1 + (size_t)e * h, n, d,
                      h); /* [n, h] */
    if (cfg->activation == MR_ACT_RELU)
        mr_relu_forward(hidden, (size_t)n * h);
    else
        mr_gelu_forward(hidden, (size_t)n * h);
    mr_linear_forward(y, hidden, L->exp_w2 + (size_t)e * d * h, L->exp_b2 + (size_t)e * d, n, h,
                      d); /* [n, d] */
}

int mr_calib_reap(double *saliency, const mr_calib *c, const mr_model *m, const mr_layer *L,
                  int i)
{
    int E = c->E, d = c->d, k = c->k, h = m->cfg.expert_hidden;
    const int chunk = 256; /* tokens per expert GEMM */
    float *xg = malloc((size_t)chunk * d * sizeof *xg), *y = malloc((size_t)chunk * d * sizeof *y);
    float *hid = malloc((size_t)chunk * h * sizeof *hid), *g = malloc((size_t)chunk * sizeof *g);
    if (!xg || !y || !hid || !g) {
        free(xg), free(y), free(hid), free(g);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    const float *x = c->x + (size_t)i * c->n_tok * d;
    const int *tk = c->topk + (size_t)i * c->n_tok * k;
    const float *wt = c->weights + (size_t)i * c->n_tok * k;
    for (int e = 0; e < E; e++) {
        double sum = 0.0;
        long cnt = 0;
        int t = 0;
        while (t < c->n_tok) {
            /* gather the next tokens routed to e, in token order */
            int nb = 0;
            for (; t < c->n_tok && nb < chunk; t++)
                for (int j = 0; j < k; j++)
                    if (tk[(size_t)t * k + j] == e) {
                        memcpy(xg + (size_t)nb * d, x + (size_t)t * d, (size_t)d * sizeof *xg);
                        g[nb++] = wt[(size_t)t * k + j];
                    }
            if (nb == 0) continue;
            mr_expert_forward(y, hid, xg, L, e, nb, &m->cfg);
            for (int r = 0; r < nb; r++) {
                double nrm = 0.0;
                for (int j = 0; j < d; j++) nrm += (double)y[(size_t)r * d + j] * y[(size_t)r * d + j];
                sum += g[r] * sqrt(nrm);
            }
            cnt += nb;
        }
        saliency[e] = cnt > 0 ? sum / (double)cnt : 0.0;
    }
    free(xg), free(y), free(hid), free(g);
    return MR_OK;
}
