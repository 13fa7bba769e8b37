#include "mr_grad.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mr_error.h"
#include "mr_ops.h"
#include "mr_ops_grad.h"
#include "mr_router_grad.h"
#include "mr_simd.h"

/* Tokens of one MoE block grouped by expert (a counting sort, as the engine's
 * moe_forward): slot s = off[e] .. off[e+1]-1 holds token tok[s], its position j[s] in
 * the token's top-k and weight w[s]. */
typedef struct slots {
    int *off; /* [E+1] */
    int *tok; /* [N*k] */
    int *j;   /* [N*k] */
    float *w; /* [N*k] */
} slots;

/* What the backward pass needs of one block. */
typedef struct saved_layer {
    float *xin;  /* [N, d] block input (residual stream) */
    float *qkv;  /* [N, 3d] */
    float *att;  /* [B, NH, T, T] attention probabilities */
    float *xmid; /* [N, d] residual after the attention sub-layer */
    double *ln1, *ln2; /* [N, 2] LN1's and LN2's mean and 1 / std per token */
    float *xn2;  /* [N, d] LN2 output: FFN / MoE input */
    float *pre;  /* dense [N, F] / MoE [N*k, h] hidden pre-activations */
    float *cdf;  /* GELU: Phi(pre) of each (mr_gelu_forward_keep), for the backward */
    float *ye;   /* MoE [N*k, d] each (token, expert) output, before its weight */
    float *ypre; /* MoE with combine(): [N, d] experts' output before combine() */
    slots sl;    /* MoE */
    /* routers with grad_save_floats: what combine() keeps for combine_backward, and the
     * activations of combine()'s last experts() call (experts_vjp_fwd) */
    float *save;
    slots tsl;
    float *tpre, *tcdf, *tye;
} saved_layer;

struct mr_grad_ws {
    const mr_model *m;
    const mr_router *router;
    int maxB, maxT, k, B, T;
    int all_rows;        /* mr_grad_set_all_rows */
    uint64_t first_sample;
    const mr_layer *cur; /* block whose experts run_experts() applies */
    saved_layer *keep;   /* forward: run_experts() keeps its activations here (tsl...) */
    saved_layer *kept;   /* backward: experts_vjp_fwd() differentiates these */
    mr_trace trace;
    saved_layer *layers; /* [n_layers] */
    float *xfin;         /* [N, d] input of the head LayerNorm */
    /* forward scratch */
    float *xn, *buf, *att_out, *hid, *xg, *yg, *patches, *pooled, *rscratch, *carry;
    slots tmp;           /* combine(): experts on another input */
    float *tmp_pre, *tmp_ye, *tmp_cdf; /* [N*k, h], [N*k, d], GELU [N*k, h] (combine) */
    /* backward scratch */
    float *dx, *dmid, *dxn, *dbuf, *dqkv, *datt, *dcarry, *dprobs, *dweights, *dhid, *dxg,
        *dpatch, *dpooled, *attscr;
    float *arena;
    int *iarena;
};

int mr_grad_check_model(const mr_model *m)
{
    const mr_config *c = &m->cfg;
    /* the architecture this forward and backward pass implement: model-format.md v1
     * (pre-LN blocks, LayerNorm, learned positions, multi-head attention, GELU/ReLU MLP
     * experts). A feature added to the format must be refused here until it is
     * implemented and differentiated. */
    MR_REQUIRE(c->task == MR_TASK_CLASSIFY || c->task == MR_TASK_LM, MR_EINPUT,
               "%s: task %d has no input gradient", m->path, c->task);
    MR_REQUIRE(c->activation == MR_ACT_GELU || c->activation == MR_ACT_RELU, MR_EINPUT,
               "%s: activation %s has no input gradient", m->path,
               mr_activation_name(c->activation));
    MR_REQUIRE(c->gate_norm == MR_GATE_RENORM || c->gate_norm == MR_GATE_NONE, MR_EINPUT,
               "%s: gate_norm %s has no input gradient", m->path, mr_gate_norm_name(c->gate_norm));
    MR_REQUIRE(c->task == MR_TASK_LM || c->pool == MR_POOL_CLS || c->pool == MR_POOL_MEAN,
               MR_EINPUT, "%s: pool %s has no input gradient", m->path, mr_pool_name(c->pool));
    /* format 2 (RMSNorm, RoPE, grouped-query attention, q/k norms, shared experts,
     * optional biases) is not differentiated here, whatever its activation */
    MR_REQUIRE(c->format_version == 1, MR_EINPUT,
               "%s: a format 2 model (docs/model-format.md) has no input gradient yet", m->path);
    return MR_OK;
}

int mr_grad_check(const mr_model *m, const mr_router *r)
{
    const mr_router_type *t = r->type;
    MR_TRY(mr_grad_check_model(m));
    MR_REQUIRE(t->route_backward, MR_EINPUT,
               "router %s has no input gradient (no route_backward in analysis/routers/%s.c)",
               t->name, t->name);
    MR_REQUIRE(!t->combine || t->combine_backward, MR_EINPUT,
               "router %s has no input gradient of its combine step (no combine_backward)",
               t->name);
    return MR_OK;
}

void mr_grad_free(mr_grad_ws *g)
{
    if (!g) return;
    free(g->layers);
    free(g->arena);
    free(g->iarena);
    free(g);
}

void mr_grad_set_first_sample(mr_grad_ws *g, uint64_t first) { g->first_sample = first; }

void mr_grad_set_all_rows(mr_grad_ws *g, int on) { g->all_rows = on != 0; }

const mr_trace *mr_grad_trace(const mr_grad_ws *g) { return &g->trace; }

static float *take(float **cur, size_t n)
{
    float *p = *cur;
    *cur += n;
    return p;
}

/* n doubles from the float arena, 8-byte aligned (n + 1 doubles counted) */
static double *dtake(float **cur, size_t n)
{
    float *p = *cur;
    if ((uintptr_t)p % sizeof(double)) p++;
    *cur += 2 * (n + 1);
    return (double *)(void *)p;
}

static int *itake(int **cur, size_t n)
{
    int *p = *cur;
    *cur += n;
    return p;
}

/* Sizes of the arenas: one pass with a NULL base counts, the second carves. */
static void carve(mr_grad_ws *g, float *fa, int *ia, size_t *nf, size_t *ni)
{
    const mr_config *c = &g->m->cfg;
    const mr_router_type *rt = g->router->type;
    size_t B = g->maxB, T = g->maxT, N = B * T, d = c->d_model, E = c->n_experts, k = g->k;
    size_t NH = c->n_heads, TT = T * T, h = c->expert_hidden, F = c->d_ff, nm = c->n_moe;
    size_t hid = F > h ? F : h, pp = 0, np = 0;
    if (c->task == MR_TASK_CLASSIFY) {
        pp = (size_t)c->patch * c->patch * c->channels;
        np = c->n_patches;
    }
    size_t rs = mr_router_scratch_floats(g->router, g->m, (int)B, (int)T);
    size_t rgs = rt->grad_scratch_floats ? rt->grad_scratch_floats(g->router->state, g->m,
                                                                      (int)B, (int)T) : 0;
    if (rgs > rs) rs = rgs;
    int comb = rt->combine != NULL, gelu = c->activation == MR_ACT_GELU;
    size_t nsave = rt->grad_save_floats ? rt->grad_save_floats(g->router->state, g->m,
                                                                (int)B, (int)T) : 0;
    float *f = fa;
    int *i = ia;
    for (int l = 0; l < c->n_layers; l++) {
        saved_layer *s = &g->layers[l];
        int moe = g->m->layers[l].is_moe;
        s->xin = take(&f, N * d);
        s->qkv = take(&f, N * 3 * d);
        s->att = take(&f, B * NH * TT);
        s->xmid = take(&f, N * d);
        s->ln1 = dtake(&f, 2 * N);
        s->ln2 = dtake(&f, 2 * N);
        s->xn2 = take(&f, N * d);
        s->pre = take(&f, moe ? N * k * h : N * F);
        s->cdf = gelu ? take(&f, moe ? N * k * h : N * F) : NULL;
        s->ye = moe ? take(&f, N * k * d) : NULL;
        s->ypre = moe && comb ? take(&f, N * d) : NULL;
        if (moe) {
            s->sl.off = itake(&i, E + 1);
            s->sl.tok = itake(&i, N * k);
            s->sl.j = itake(&i, N * k);
            s->sl.w = take(&f, N * k);
        }
        s->save = moe && comb && nsave ? take(&f, nsave) : NULL;
        if (s->save) {
            s->tsl.off = itake(&i, E + 1);
            s->tsl.tok = itake(&i, N * k);
            s->tsl.j = itake(&i, N * k);
            s->tsl.w = take(&f, N * k);
            s->tpre = take(&f, N * k * h);
            s->tcdf = gelu ? take(&f, N * k * h) : NULL;
            s->tye = take(&f, N * k * d);
        }
    }
    g->xfin = take(&f, N * d);
    g->xn = take(&f, N * d);
    g->buf = take(&f, N * d);
    g->att_out = take(&f, N * d);
    g->hid = take(&f, N * hid);
    g->xg = take(&f, N * d);
    g->yg = take(&f, N * d);
    g->patches = take(&f, B * np * pp);
    g->pooled = take(&f, B * d);
    g->rscratch = take(&f, rs);
    g->carry = comb ? take(&f, N * d) : NULL;
    g->tmp.off = itake(&i, E + 1);
    g->tmp.tok = itake(&i, N * k);
    g->tmp.j = itake(&i, N * k);
    g->tmp.w = take(&f, N * k);
    g->tmp_pre = comb ? take(&f, N * k * h) : NULL;
    g->tmp_ye = comb ? take(&f, N * k * d) : NULL;
    g->tmp_cdf = comb && gelu ? take(&f, N * k * h) : NULL;
    g->trace.probs = take(&f, nm * N * E);
    g->trace.weights = take(&f, nm * N * k);
    g->trace.topk = itake(&i, nm * N * k);
    g->trace.logits = take(&f, c->task == MR_TASK_CLASSIFY ? B * c->n_out : N * c->n_out);
    g->dx = take(&f, N * d);
    g->dmid = take(&f, N * d);
    g->dxn = take(&f, N * d);
    g->dbuf = take(&f, N * d);
    g->dqkv = take(&f, N * 3 * d);
    g->datt = take(&f, B * NH * TT);
    g->dcarry = comb ? take(&f, N * d) : NULL;
    g->dprobs = take(&f, N * E);
    g->dweights = take(&f, N * k);
    g->dhid = take(&f, N * hid);
    g->dxg = take(&f, N * d);
    g->dpatch = take(&f, np * pp);
    g->dpooled = take(&f, B * d);
    g->attscr = take(&f, TT);
    *nf = (size_t)(f - fa);
    *ni = (size_t)(i - ia);
}

int mr_grad_alloc(mr_grad_ws **out, const mr_model *m, const mr_router *r,
                  const mr_engine_opts *o)
{
    *out = NULL;
    MR_TRY(mr_engine_opts_check(o, m));
    MR_TRY(mr_grad_check_model(m));
    const mr_config *c = &m->cfg;
    mr_grad_ws *g = calloc(1, sizeof *g);
    if (!g) return mr_error_set(MR_ENOMEM, "out of memory (gradient workspace)");
    g->m = m;
    g->router = r;
    g->k = o->top_k ? o->top_k : c->top_k;
    g->maxB = o->batch;
    g->maxT = c->task == MR_TASK_LM ? o->seq_len : mr_config_seq_len(c);
    g->layers = calloc((size_t)c->n_layers, sizeof *g->layers);
    size_t nf = 0, ni = 0;
    if (g->layers) carve(g, NULL, NULL, &nf, &ni);
    g->arena = g->layers ? malloc(nf * sizeof(float) + 1) : NULL;
    g->iarena = g->layers ? malloc(ni * sizeof(int) + 1) : NULL;
    if (!g->arena || !g->iarena) {
        mr_grad_free(g);
        return mr_error_set(MR_ENOMEM, "out of memory: gradient workspace of %zu MiB",
                            nf * sizeof(float) >> 20);
    }
    carve(g, g->arena, g->iarena, &nf, &ni);
    g->trace.E = c->n_experts;
    g->trace.k = g->k;
    g->trace.n_moe = c->n_moe;
    g->trace.n_heads = c->n_heads;
    g->trace.d = c->d_model;
    *out = g;
    return MR_OK;
}

/* ------------------------------------------------------------------ experts */
/* 1, or T when only each sequence's first token of block L's output is ever read: the
 * last block of a classifier that pools its CLS token. Its other tokens' FFN outputs
 * reach neither the logits nor the routing trace, and their gradient is zero in the
 * backward (the head reads the CLS rows only), so the experts skip them: the same
 * logits, trace and input gradient (test_grad_parity compares with every row's
 * computation, mr_grad_set_all_rows), at about 1/T of the last block's experts. */
static int slot_step(const mr_grad_ws *g, const mr_layer *L)
{
    const mr_config *c = &g->m->cfg;
    return !g->all_rows && c->task == MR_TASK_CLASSIFY && c->pool == MR_POOL_CLS &&
                   L == &g->m->layers[c->n_layers - 1]
               ? g->T
               : 1;
}

/* the slots of tokens 0, step, 2 step, ... of N (their other tokens' slots left out) */
static void group_slots(slots *s, const int *topk, const float *weights, int N, int k, int E,
                        int step)
{
    memset(s->off, 0, (size_t)(E + 1) * sizeof *s->off);
    for (int n = 0; n < N; n += step)
        for (int j = 0; j < k; j++) s->off[topk[(size_t)n * k + j] + 1]++;
    for (int e = 0; e < E; e++) s->off[e + 1] += s->off[e];
    int cursor[MR_MAX_EXPERTS];
    memcpy(cursor, s->off, (size_t)E * sizeof *cursor);
    for (int n = 0; n < N; n += step)
        for (int j = 0; j < k; j++) {
            int e = topk[(size_t)n * k + j], q = cursor[e]++;
            s->tok[q] = n;
            s->j[q] = j;
            s->w[q] = weights[(size_t)n * k + j];
        }
}

static void activation(float *x, size_t n, int act)
{
    if (act == MR_ACT_RELU)
        mr_relu_forward(x, n);
    else
        mr_gelu_forward(x, n);
}

/* hid = act(pre) over n floats; GELU keeps Phi(pre) in cdf for the backward */
static void activation_keep(float *hid, float *cdf, const float *pre, size_t n, int act)
{
    if (act == MR_ACT_GELU) {
        mr_gelu_forward_keep(hid, cdf, pre, n);
        return;
    }
    memcpy(hid, pre, n * sizeof *hid);
    activation(hid, n, act);
}

/* d *= act'(pre) over n floats, with the forward's cdf (GELU) */
static void activation_back(float *d, const float *pre, const float *cdf, size_t n, int act)
{
    if (act == MR_ACT_GELU)
        mr_gelu_backward_cdf(d, pre, cdf, n);
    else
        mr_activation_backward(d, pre, n, act);
}

/* out[N,d] = sum over each token's experts of w * expert(x), as the engine's moe_forward
 * (same GEMMs, same order of additions); keeps each slot's pre-activation pre[N*k, h],
 * its GELU cdf[N*k, h] and output ye[N*k, d]. Tokens without slots (slot_step) get 0. */
static void experts_forward(mr_grad_ws *g, float *out, const float *x, const mr_layer *L,
                            const slots *s, float *pre, float *cdf, float *ye, int N)
{
    const mr_config *c = &g->m->cfg;
    int d = c->d_model, E = c->n_experts, h = c->expert_hidden;
    memset(out, 0, (size_t)N * d * sizeof *out);
    for (int e = 0; e < E; e++) {
        int cnt = s->off[e + 1] - s->off[e];
        if (cnt == 0) continue;
        const int *tok = s->tok + s->off[e];
        const float *w = s->w + s->off[e];
        float *pe = pre + (size_t)s->off[e] * h, *ys = ye + (size_t)s->off[e] * d;
        for (int i = 0; i < cnt; i++)
            memcpy(g->xg + (size_t)i * d, x + (size_t)tok[i] * d, (size_t)d * sizeof(float));
        mr_linear_forward(pe, g->xg, L->exp_w1 + (size_t)e * h * d, L->exp_b1 + (size_t)e * h,
                          cnt, d, h);                                   /* [cnt, h] */
        activation_keep(g->hid, cdf ? cdf + (size_t)s->off[e] * h : NULL, pe, (size_t)cnt * h,
                        c->activation);
        mr_linear_forward(ys, g->hid, L->exp_w2 + (size_t)e * d * h, L->exp_b2 + (size_t)e * d,
                          cnt, h, d);                                   /* [cnt, d] */
        for (int i = 0; i < cnt; i++) {
            float *o = out + (size_t)tok[i] * d;
            const float *y = ys + (size_t)i * d;
            for (int j = 0; j < d; j++) o[j] += w[i] * y[j];
        }
    }
}

/* dx[N,d] += and dweights[N,k] += the gradients of experts_forward given dy[N,d]. */
static void experts_backward(mr_grad_ws *g, float *dx, float *dweights, const float *dy,
                             const mr_layer *L, const slots *s, const float *pre,
                             const float *cdf, const float *ye)
{
    const mr_config *c = &g->m->cfg;
    int d = c->d_model, E = c->n_experts, h = c->expert_hidden, k = g->k;
    for (int e = 0; e < E; e++) {
        int cnt = s->off[e + 1] - s->off[e];
        if (cnt == 0) continue;
        for (int i = 0; i < cnt; i++) {
            int q = s->off[e] + i, n = s->tok[q];
            const float *dyn = dy + (size_t)n * d, *y = ye + (size_t)q * d;
            double dw = 0.0;
            for (int f = 0; f < d; f++) {
                dw += (double)dyn[f] * y[f];
                g->dxg[(size_t)i * d + f] = s->w[q] * dyn[f]; /* dL/d(expert output) */
            }
            dweights[(size_t)n * k + s->j[q]] += (float)dw;
        }
        mr_linear_backward_set(g->dhid, g->dxg, L->exp_w2 + (size_t)e * d * h, cnt, h, d);
        activation_back(g->dhid, pre + (size_t)s->off[e] * h,
                        cdf ? cdf + (size_t)s->off[e] * h : NULL, (size_t)cnt * h,
                        c->activation);
        mr_linear_backward_set(g->dxg, g->dhid, L->exp_w1 + (size_t)e * h * d, cnt, d, h);
        for (int i = 0; i < cnt; i++) {
            float *o = dx + (size_t)s->tok[s->off[e] + i] * d;
            const float *v = g->dxg + (size_t)i * d;
            for (int f = 0; f < d; f++) o[f] += v[f];
        }
    }
}

/* mr_experts_fn / mr_experts_vjp_fn for combine() and combine_backward(): the current
 * block's experts (g->cur) on another input, with the temporary slots, or in the
 * forward of a router that keeps its combine() (g->keep) with that block's own. */
static void run_experts(void *engine, float *y, const float *x, const int *topk,
                        const float *weights)
{
    mr_grad_ws *g = engine;
    int N = g->B * g->T;
    saved_layer *s = g->keep;
    slots *sl = s ? &s->tsl : &g->tmp;
    group_slots(sl, topk, weights, N, g->k, g->m->cfg.n_experts, slot_step(g, g->cur));
    experts_forward(g, y, x, g->cur, sl, s ? s->tpre : g->tmp_pre, s ? s->tcdf : g->tmp_cdf,
                    s ? s->tye : g->tmp_ye, N);
}

/* mr_combine_grad.experts_vjp_fwd: the gradients of the block's last forward experts()
 * call, from the activations it kept (no second forward of the experts) */
static void experts_vjp_fwd(void *engine, float *dx, float *dweights, const float *dy)
{
    mr_grad_ws *g = engine;
    const saved_layer *s = g->kept;
    experts_backward(g, dx, dweights, dy, g->cur, &s->tsl, s->tpre, s->tcdf, s->tye);
}

static void experts_vjp(void *engine, float *dx, float *dweights, const float *x,
                        const int *topk, const float *weights, const float *dy)
{
    mr_grad_ws *g = engine;
    run_experts(engine, g->yg, x, topk, weights); /* keeps pre and ye; the output unused */
    experts_backward(g, dx, dweights, dy, g->cur, &g->tmp, g->tmp_pre, g->tmp_cdf, g->tmp_ye);
}

/* ------------------------------------------------------------------ forward */
static mr_route_ctx route_ctx(mr_grad_ws *g, int l, const int *prev_topk)
{
    const mr_layer *L = &g->m->layers[l];
    mr_route_ctx ctx = {.model = g->m, .layer = l, .moe_index = L->moe_index, .B = g->B,
                        .T = g->T, .k = g->k, .x = g->layers[l].xn2, .att = g->layers[l].att,
                        .prev_topk = prev_topk, .prev_k = g->k,
                        .first_sample = g->first_sample, .scratch = g->rscratch};
    return ctx;
}

/* One MoE block's output into g->buf, from its input s->xn2 (engine: forward_blocks). */
static int moe_block(mr_grad_ws *g, int l, const int *prev_topk)
{
    const mr_config *c = &g->m->cfg;
    const mr_layer *L = &g->m->layers[l];
    saved_layer *s = &g->layers[l];
    int N = g->B * g->T, E = c->n_experts, k = g->k, mi = L->moe_index;
    float *probs = g->trace.probs + (size_t)mi * N * E;
    int *topk = g->trace.topk + (size_t)mi * N * k;
    float *weights = g->trace.weights + (size_t)mi * N * k;
    mr_route_ctx ctx = route_ctx(g, l, prev_topk);
    const mr_router_type *rt = g->router->type;
    MR_TRY(rt->route(g->router->state, &ctx, probs, topk, weights));
    group_slots(&s->sl, topk, weights, N, k, E, slot_step(g, L));
    experts_forward(g, g->buf, s->xn2, L, &s->sl, s->pre, s->cdf, s->ye, N);
    if (rt->combine) {
        memcpy(s->ypre, g->buf, (size_t)N * c->d_model * sizeof(float));
        g->cur = L;
        g->keep = s->save ? s : NULL;
        mr_combine_ctx cc = {.experts = run_experts, .engine = g, .topk = topk,
                             .weights = weights, .carry = g->carry, .save = s->save};
        int st = rt->combine(g->router->state, &ctx, &cc, g->buf);
        g->keep = NULL;
        MR_TRY(st);
    }
    return MR_OK;
}

/* each sum alone, so the AVX-512 clone gives the same floats (scalar, this loop was 2.6 %
 * of a PGD attack's time, docs/performance.md) */
MR_VECTOR_CLONES_512
static void add_to(float *restrict out, const float *restrict a, const float *restrict b,
                   size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* The blocks and the head, from layers[0].xin filled by the embedding. */
static int forward_blocks(mr_grad_ws *g)
{
    const mr_model *m = g->m;
    const mr_config *c = &m->cfg;
    int B = g->B, T = g->T, d = c->d_model, N = B * T, NH = c->n_heads;
    size_t Nd = (size_t)N * d;
    g->trace.B = B;
    g->trace.T = T;
    if (g->carry) memset(g->carry, 0, Nd * sizeof *g->carry);
    const int *prev_topk = NULL;
    for (int l = 0; l < c->n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        saved_layer *s = &g->layers[l];
        float *xout = l + 1 < c->n_layers ? g->layers[l + 1].xin : g->xfin;
        mr_layernorm_forward_keep(g->xn, s->ln1, s->xin, L->ln1_w, L->ln1_b, N, d, c->norm_eps);
        mr_linear_forward(s->qkv, g->xn, L->attn_qkv_w, L->attn_qkv_b, N, d, 3 * d);
        mr_attention_forward(g->att_out, s->att, s->qkv, B, T, d, NH, c->task == MR_TASK_LM);
        mr_linear_forward(g->buf, g->att_out, L->attn_out_w, L->attn_out_b, N, d, d);
        add_to(s->xmid, s->xin, g->buf, Nd);
        mr_layernorm_forward_keep(s->xn2, s->ln2, s->xmid, L->ln2_w, L->ln2_b, N, d,
                                  c->norm_eps);
        if (!L->is_moe) {
            mr_linear_forward(s->pre, s->xn2, L->ffn_w1, L->ffn_b1, N, d, c->d_ff);
            activation_keep(g->hid, s->cdf, s->pre, (size_t)N * c->d_ff, c->activation);
            mr_linear_forward(g->buf, g->hid, L->ffn_w2, L->ffn_b2, N, c->d_ff, d);
        } else {
            MR_TRY(moe_block(g, l, prev_topk));
            prev_topk = g->trace.topk + (size_t)L->moe_index * N * g->k;
        }
        add_to(xout, s->xmid, g->buf, Nd);
    }
    mr_engine_head_forward(g->trace.logits, g->pooled, g->xn, g->xfin, m, B, T);
    return MR_OK;
}

int mr_grad_forward_images(mr_grad_ws *g, const float *x01, int B)
{
    const mr_config *c = &g->m->cfg;
    MR_REQUIRE(c->task == MR_TASK_CLASSIFY, MR_EINPUT, "%s is an lm model, not an image model",
               g->m->path);
    MR_REQUIRE(B >= 1 && B <= g->maxB, MR_EINPUT, "batch of %d exceeds the workspace (%d)", B,
               g->maxB);
    int P = c->patch, C = c->channels, H = c->image_h, W = c->image_w, d = c->d_model;
    int gw = W / P, np = c->n_patches, pp = P * P * C, T = c->n_pos;
    int first = c->pool == MR_POOL_CLS;
    g->B = B;
    g->T = T;
    float *x = g->layers[0].xin;
    /* the engine's embed_images, from intensities instead of uint8 / 255 */
    for (int b = 0; b < B; b++) {
        for (int p = 0; p < np; p++) {
            int r = p / gw, q = p % gw;
            float *v = g->patches + ((size_t)b * np + p) * pp;
            for (int dy = 0; dy < P; dy++)
                for (int dx = 0; dx < P; dx++)
                    for (int ch = 0; ch < C; ch++)
                        v[(dy * P + dx) * C + ch] =
                            x01[(((size_t)b * H + r * P + dy) * W + q * P + dx) * C + ch];
        }
        float *xb = x + (size_t)b * T * d;
        mr_linear_forward(xb + (size_t)first * d, g->patches + (size_t)b * np * pp,
                          g->m->patch_w, g->m->patch_b, np, pp, d);
        if (first) memcpy(xb, g->m->cls, (size_t)d * sizeof(float));
        for (size_t i = 0; i < (size_t)T * d; i++) xb[i] += g->m->pos[i];
    }
    return forward_blocks(g);
}

int mr_grad_embed_tokens(const mr_model *m, float *x0, const int32_t *tokens, int B, int T,
                         int stride)
{
    const mr_config *c = &m->cfg;
    MR_REQUIRE(c->task == MR_TASK_LM, MR_EINPUT, "%s is an image model, not an lm model",
               m->path);
    MR_REQUIRE(T >= 1 && T <= c->max_seq_len && T <= stride, MR_EINPUT,
               "sequence length %d exceeds %d", T, c->max_seq_len);
    return mr_embed_tokens(x0, m, tokens, B, T, stride);
}

int mr_grad_forward_embeddings(mr_grad_ws *g, const float *x0, int B, int T)
{
    const mr_config *c = &g->m->cfg;
    MR_REQUIRE(c->task == MR_TASK_LM, MR_EINPUT, "%s is an image model, not an lm model",
               g->m->path);
    MR_REQUIRE(B >= 1 && B <= g->maxB, MR_EINPUT, "batch of %d exceeds the workspace (%d)", B,
               g->maxB);
    MR_REQUIRE(T >= 1 && T <= g->maxT, MR_EINPUT, "sequence length %d exceeds %d", T, g->maxT);
    g->B = B;
    g->T = T;
    memcpy(g->layers[0].xin, x0, (size_t)B * T * c->d_model * sizeof(float));
    return forward_blocks(g);
}

/* ------------------------------------------------------------------ backward */
/* g->dxn += dL/d(MoE input) of block l given g->dbuf = dL/d(block output); also the
 * router's gradient with respect to this block's attention probabilities, into g->datt. */
static int moe_backward(mr_grad_ws *g, int l, const float *dprobs_in)
{
    const mr_config *c = &g->m->cfg;
    const mr_layer *L = &g->m->layers[l];
    const mr_router_type *rt = g->router->type;
    saved_layer *s = &g->layers[l];
    int N = g->B * g->T, E = c->n_experts, k = g->k, mi = L->moe_index;
    const int *topk = g->trace.topk + (size_t)mi * N * k;
    const float *weights = g->trace.weights + (size_t)mi * N * k;
    const int *prev_topk = mi > 0 ? g->trace.topk + (size_t)(mi - 1) * N * k : NULL;
    mr_route_ctx ctx = route_ctx(g, l, prev_topk);
    memset(g->dweights, 0, (size_t)N * k * sizeof(float));
    if (rt->combine) {
        g->cur = L;
        g->kept = s;
        mr_combine_grad cg = {.experts = run_experts, .experts_vjp = experts_vjp,
                              .experts_vjp_fwd = s->save ? experts_vjp_fwd : NULL,
                              .save = s->save, .engine = g,
                              .topk = topk, .weights = weights, .y = s->ypre,
                              .dcarry = g->dcarry, .dx = g->dxn, .dweights = g->dweights};
        MR_TRY(rt->combine_backward(g->router->state, &ctx, &cg, g->dbuf));
    }
    experts_backward(g, g->dxn, g->dweights, g->dbuf, L, &s->sl, s->pre, s->cdf, s->ye);
    if (dprobs_in)
        memcpy(g->dprobs, dprobs_in + (size_t)mi * N * E, (size_t)N * E * sizeof(float));
    else
        memset(g->dprobs, 0, (size_t)N * E * sizeof(float));
    /* only a router that reads the attention probabilities writes their gradient:
     * otherwise the attention's backward goes without (block_backward), not through
     * B * NH * T * T zeros (a memset and an addition: 2 % of a PGD attack) */
    if (rt->grad_datt)
        memset(g->datt, 0, (size_t)g->B * c->n_heads * g->T * g->T * sizeof(float));
    mr_route_grad rg = {.probs = g->trace.probs + (size_t)mi * N * E, .topk = topk,
                        .weights = weights, .dprobs = g->dprobs, .dweights = g->dweights,
                        .dx = g->dxn, .datt = rt->grad_datt ? g->datt : NULL};
    return rt->route_backward(g->router->state, &ctx, &rg);
}

/* 1 if rows 1..T-1 of every sequence of x [B*T, d] are zero (either sign) */
static int only_first_rows(const float *x, int B, int T, int d)
{
    int nz = 0;
    for (int b = 0; b < B; b++) {
        const float *r = x + ((size_t)b * T + 1) * d;
        size_t n = (size_t)(T - 1) * d;
#pragma omp simd reduction(| : nz)
        for (size_t i = 0; i < n; i++) nz |= r[i] != 0.0f;
    }
    return !nz;
}

/* g->dx: on entry dL/d(output of block l), on return dL/d(its input). */
static int block_backward(mr_grad_ws *g, int l, const float *dprobs)
{
    const mr_config *c = &g->m->cfg;
    const mr_layer *L = &g->m->layers[l];
    saved_layer *s = &g->layers[l];
    int B = g->B, T = g->T, N = B * T, d = c->d_model, NH = c->n_heads;
    size_t Nd = (size_t)N * d;
    memcpy(g->dbuf, g->dx, Nd * sizeof(float));
    memset(g->dxn, 0, Nd * sizeof(float));
    if (L->is_moe) {
        MR_TRY(moe_backward(g, l, dprobs));
    } else {
        size_t NF = (size_t)N * c->d_ff;
        mr_linear_backward_set(g->dhid, g->dbuf, L->ffn_w2, N, c->d_ff, d);
        activation_back(g->dhid, s->pre, s->cdf, NF, c->activation);
        mr_linear_backward(g->dxn, g->dhid, L->ffn_w1, N, d, c->d_ff);
    }
    /* x_out = xmid + f(LN2(xmid)) */
    memcpy(g->dmid, g->dx, Nd * sizeof(float));
    int datt = L->is_moe && g->router->type->grad_datt;
    if (slot_step(g, L) == T && !datt && (mr_simd_avx512() || mr_simd_avx2()) &&
        only_first_rows(g->dxn, B, T, d)) {
        /* The last block of a CLS classifier: the head reads only each sequence's first
         * token, so only those rows of dx (and of the FFN's gradient) are nonzero; when
         * the routing sent nothing to the other rows either (routers that mix tokens, as
         * similarity, or a routing objective's dprobs do), LN2's backward and the output
         * projection of those rows alone, and the attention's backward from their dO
         * (mr_attention_backward_row0, which reads no other row of dbuf): the products of
         * the other rows were products of zeros. The micro-kernels only (AVX-512 or
         * AVX2), whose every row's bits are its own. */
        for (int b = 0; b < B; b++) {
            size_t o = (size_t)b * T * d;
            mr_layernorm_backward_stats(g->dmid + o, g->dxn + o, s->xmid + o, L->ln2_w,
                                        s->ln2 + 2 * (size_t)b * T, 1, d);
            memcpy(g->dxg + (size_t)b * d, g->dmid + o, (size_t)d * sizeof(float));
        }
        mr_linear_backward_set(g->yg, g->dxg, L->attn_out_w, B, d, d);
        for (int b = 0; b < B; b++)
            memcpy(g->dbuf + (size_t)b * T * d, g->yg + (size_t)b * d, (size_t)d * sizeof(float));
        memset(g->dqkv, 0, 3 * Nd * sizeof(float));
        mr_attention_backward_row0(g->dqkv, g->dbuf, s->qkv, s->att, B, T, d, NH, g->attscr);
    } else {
        mr_layernorm_backward_stats(g->dmid, g->dxn, s->xmid, L->ln2_w, s->ln2, N, d);
        /* xmid = x + out_proj(attention(qkv(LN1(x)))) */
        mr_linear_backward_set(g->dbuf, g->dmid, L->attn_out_w, N, d, d);
        memset(g->dqkv, 0, 3 * Nd * sizeof(float));
        mr_attention_backward(g->dqkv, g->dbuf, s->qkv, s->att, datt ? g->datt : NULL, B, T, d,
                              NH, g->attscr);
    }
    mr_linear_backward_set(g->dxn, g->dqkv, L->attn_qkv_w, N, d, 3 * d);
    memcpy(g->dx, g->dmid, Nd * sizeof(float));
    mr_layernorm_backward_stats(g->dx, g->dxn, s->xin, L->ln1_w, s->ln1, N, d);
    return MR_OK;
}

/* g->dx = dL/d(input of the head LayerNorm) from dlogits. */
static void head_backward(mr_grad_ws *g, const float *dlogits)
{
    const mr_model *m = g->m;
    const mr_config *c = &m->cfg;
    int B = g->B, T = g->T, N = B * T, d = c->d_model;
    size_t Nd = (size_t)N * d;
    memset(g->dxn, 0, Nd * sizeof(float));
    if (c->task == MR_TASK_LM) {
        mr_linear_backward(g->dxn, dlogits, m->head_w, N, d, c->n_out);
    } else {
        mr_linear_backward_set(g->dpooled, dlogits, m->head_w, B, d, c->n_out);
        for (int b = 0; b < B; b++) {
            const float *dp = g->dpooled + (size_t)b * d;
            if (c->pool == MR_POOL_CLS) {
                memcpy(g->dxn + (size_t)b * T * d, dp, (size_t)d * sizeof(float));
                continue;
            }
            for (int t = 0; t < T; t++)
                for (int j = 0; j < d; j++) g->dxn[((size_t)b * T + t) * d + j] = dp[j] / T;
        }
    }
    memset(g->dx, 0, Nd * sizeof(float));
    mr_layernorm_backward(g->dx, g->dxn, g->xfin, m->head_ln_w, N, d, c->norm_eps);
}

/* dinput [B,H,W,C] = dL/dx01 from g->dx = dL/d(embedding output). */
static void patch_backward(mr_grad_ws *g, float *dinput)
{
    const mr_config *c = &g->m->cfg;
    int P = c->patch, C = c->channels, H = c->image_h, W = c->image_w, d = c->d_model;
    int gw = W / P, np = c->n_patches, pp = P * P * C, T = g->T;
    int first = c->pool == MR_POOL_CLS;
    for (int b = 0; b < g->B; b++) {
        mr_linear_backward_set(g->dpatch, g->dx + ((size_t)b * T + first) * d, g->m->patch_w, np,
                           pp, d);
        for (int p = 0; p < np; p++) {
            int r = p / gw, q = p % gw;
            const float *v = g->dpatch + (size_t)p * pp;
            for (int dy = 0; dy < P; dy++)
                for (int dx = 0; dx < P; dx++)
                    for (int ch = 0; ch < C; ch++)
                        dinput[(((size_t)b * H + r * P + dy) * W + q * P + dx) * C + ch] =
                            v[(dy * P + dx) * C + ch];
        }
    }
}

int mr_grad_backward(mr_grad_ws *g, const float *dlogits, const float *dprobs, float *dinput)
{
    const mr_config *c = &g->m->cfg;
    MR_REQUIRE(g->B >= 1, MR_EINPUT, "mr_grad_backward: no forward to differentiate");
    MR_TRY(mr_grad_check(g->m, g->router));
    head_backward(g, dlogits);
    if (g->dcarry) memset(g->dcarry, 0, (size_t)g->B * g->T * c->d_model * sizeof(float));
    for (int l = c->n_layers - 1; l >= 0; l--) MR_TRY(block_backward(g, l, dprobs));
    if (c->task == MR_TASK_LM)
        memcpy(dinput, g->dx, (size_t)g->B * g->T * c->d_model * sizeof(float));
    else
        patch_backward(g, dinput);
    return MR_OK;
}
