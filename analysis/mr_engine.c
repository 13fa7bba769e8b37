#include "mr_engine.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mr_error.h"
#include "mr_ops.h"

struct mr_workspace {
    const mr_model *m;
    const mr_router *router;
    mr_engine_opts opts;
    int maxB, maxT;            /* capacity */
    mr_trace trace;
    /* activations, all [maxB*maxT, ...] unless noted */
    float *x;                  /* [N, d] residual stream */
    float *xn;                 /* [N, d] normed input of a sub-layer */
    float *buf;                /* [N, d] sub-layer output */
    float *qkv;                /* [N, qkv_dim] (3d in format v1) */
    float *att_out;            /* [N, q_dim] heads concatenated (d in format v1) */
    float *att;                /* [B, NH, T, T] current block's attention (if not kept) */
    float *hidden;             /* [N, a*max(F, h, S)] FFN / expert hidden (a = 2: swiglu) */
    float *rope_cos, *rope_sin;/* [maxT, head_dim/2] (RoPE only) */
    float *xg, *yg;            /* [N, d] tokens gathered for one expert, and its output */
    float *patches;            /* [B, n_patches, P*P*C] (classify) */
    float *pooled;             /* [B, d] (classify) */
    float *router_scratch;
    float *slot_w;             /* [N*k] weight of each (token, expert) assignment */
    int *slot_tok;             /* [N*k] token of each assignment, grouped by expert */
    int *expert_off;           /* [E+1] start of each expert's group */
    float *arena;
    int *iarena;
    size_t bytes;              /* of arena and iarena */
    mr_embed_hook embed_hook;
    void *embed_ctx;
    float *carry;              /* [N, d] combine() state across MoE blocks (if any) */
    uint64_t first_sample;
    const mr_layer *cur_layer; /* block whose experts run_experts() applies */
    int cur_N;
    int profile;               /* time the expert GEMMs */
    double prof_seconds, prof_flops;
};

void mr_workspace_profile_enable(mr_workspace *ws, int on)
{
    ws->profile = on;
    ws->prof_seconds = ws->prof_flops = 0.0;
}

void mr_workspace_profile_get(const mr_workspace *ws, double *seconds, double *flops)
{
    *seconds = ws->prof_seconds;
    *flops = ws->prof_flops;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mr_workspace_set_first_sample(mr_workspace *ws, uint64_t first) { ws->first_sample = first; }

void mr_workspace_set_embed_hook(mr_workspace *ws, mr_embed_hook hook, void *ctx)
{
    ws->embed_hook = hook;
    ws->embed_ctx = ctx;
}

void mr_engine_opts_init(mr_engine_opts *o, const mr_model *m)
{
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->seq_len = m->cfg.task == MR_TASK_LM ? m->cfg.max_seq_len : 0;
    o->top_k = 0;
}

int mr_engine_opts_check(const mr_engine_opts *o, const mr_model *m)
{
    MR_REQUIRE(o->batch >= 1 && o->batch <= 65536, MR_EINPUT,
               "batch = %d must be in 1..65536", o->batch);
    MR_REQUIRE(o->top_k >= 0 && o->top_k <= m->cfg.n_experts, MR_EINPUT,
               "top_k = %d must be in 1..n_experts = %d", o->top_k, m->cfg.n_experts);
    if (m->cfg.task == MR_TASK_LM)
        MR_REQUIRE(o->seq_len >= 1 && o->seq_len <= m->cfg.max_seq_len, MR_EINPUT,
                   "sequence length %d must be in 1..max_seq_len = %d", o->seq_len,
                   m->cfg.max_seq_len);
    return MR_OK;
}

const mr_trace *mr_workspace_trace(const mr_workspace *ws) { return &ws->trace; }

size_t mr_workspace_bytes(const mr_workspace *ws) { return ws->bytes; }

void mr_workspace_free(mr_workspace *ws)
{
    if (!ws) return;
    free(ws->arena);
    free(ws->iarena);
    free(ws);
}

static size_t ws_mul(size_t a, size_t b, int *ovf)
{
    if (a && b > SIZE_MAX / a) {
        *ovf = 1;
        return 0;
    }
    return a * b;
}

static size_t ws_add(size_t a, size_t b, int *ovf)
{
    if (a > SIZE_MAX - b) {
        *ovf = 1;
        return 0;
    }
    return a + b;
}

/* Carve `n` floats from the arena cursor (sizes are computed in one pass first). */
static float *take(float **cur, size_t n)
{
    float *p = *cur;
    *cur += n;
    return p;
}

int mr_workspace_alloc(mr_workspace **out, const mr_model *m, const mr_router *r,
                       const mr_engine_opts *o)
{
    *out = NULL;
    MR_TRY(mr_engine_opts_check(o, m));
    const mr_config *c = &m->cfg;
    mr_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return mr_error_set(MR_ENOMEM, "out of memory (workspace)");
    ws->m = m;
    ws->router = r;
    ws->opts = *o;
    int k = o->top_k ? o->top_k : c->top_k;
    int B = o->batch, T = c->task == MR_TASK_LM ? o->seq_len : mr_config_seq_len(c);
    ws->maxB = B;
    ws->maxT = T;
    /* sizes in checked arithmetic: what a model and --batch may ask for can exceed size_t
     * (B x heads x T^2 with T = 65536 does): refused as too large, never wrapped into a
     * small buffer */
    int ovf = 0;
#define MUL(a, b) ws_mul((a), (b), &ovf)
#define ADD(a, b) ws_add((a), (b), &ovf)
    size_t N = MUL((size_t)B, (size_t)T), d = (size_t)c->d_model, E = (size_t)c->n_experts;
    size_t NH = (size_t)c->n_heads, TT = MUL((size_t)T, (size_t)T);
    size_t hid = (size_t)(c->d_ff > c->expert_hidden ? c->d_ff : c->expert_hidden);
    if ((size_t)c->shared_hidden > hid) hid = (size_t)c->shared_hidden;
    if (c->activation == MR_ACT_SWIGLU) hid *= 2; /* gate and up outputs side by side */
    size_t n_rope = c->position == MR_POS_ROPE ? MUL((size_t)T, (size_t)c->head_dim) : 0;
    size_t nm = (size_t)c->n_moe, Nd = MUL(N, d);
    size_t pp = c->task == MR_TASK_CLASSIFY ? (size_t)c->patch * c->patch * c->channels : 0;
    size_t n_att = MUL(MUL(MUL(o->keep_attention ? (size_t)c->n_layers : 1, (size_t)B), NH), TT);
    size_t n_logits = MUL(c->task == MR_TASK_CLASSIFY ? (size_t)B : N, (size_t)c->n_out);
    size_t n_rs = mr_router_scratch_floats(r, m, B, T);
    size_t n_carry = r->type->combine ? Nd : 0;
    size_t total = ADD(MUL(5, Nd), n_att); /* x, xn, buf, xg, yg */
    total = ADD(total, ADD(MUL(N, (size_t)c->qkv_dim), MUL(N, (size_t)c->q_dim)));
    total = ADD(total, MUL(N, hid));
    total = ADD(total, MUL(MUL((size_t)B, (size_t)c->n_patches), pp));
    total = ADD(total, MUL((size_t)B, d));
    total = ADD(total, ADD(n_rs, MUL(N, (size_t)k)));
    total = ADD(total, MUL(nm, MUL(N, E)));
    total = ADD(total, MUL(nm, MUL(N, (size_t)k)));
    total = ADD(total, o->keep_moe_input ? MUL(nm, Nd) : 0);
    total = ADD(total, ADD(n_logits, ADD(n_carry, n_rope)));
    size_t itotal = ADD(ADD(MUL(N, (size_t)k), E + 1), MUL(nm, MUL(N, (size_t)k)));
    size_t bytes = MUL(total, sizeof(float));
#undef MUL
#undef ADD
    if (ovf) {
        mr_workspace_free(ws);
        return mr_error_set(MR_ENOMEM, "out of memory: a workspace for micro-batches of %d x %d "
                            "tokens exceeds the address space; lower --batch", B, T);
    }
    ws->arena = malloc(bytes);
    ws->iarena = malloc(itotal * sizeof(int));
    ws->bytes = total * sizeof(float) + itotal * sizeof(int);
    if (!ws->arena || !ws->iarena) {
        mr_workspace_free(ws);
        return mr_error_set(MR_ENOMEM, "out of memory: workspace of %zu MiB for micro-batches of "
                            "%d x %d tokens (lower --batch)", bytes >> 20, B, T);
    }
    float *cur = ws->arena;
    ws->x = take(&cur, N * d);
    ws->xn = take(&cur, N * d);
    ws->buf = take(&cur, N * d);
    ws->qkv = take(&cur, N * c->qkv_dim);
    ws->att_out = take(&cur, N * c->q_dim);
    ws->att = take(&cur, n_att);
    ws->hidden = take(&cur, N * hid);
    ws->xg = take(&cur, N * d);
    ws->yg = take(&cur, N * d);
    ws->patches = take(&cur, (size_t)B * c->n_patches * pp);
    ws->pooled = take(&cur, (size_t)B * d);
    ws->router_scratch = take(&cur, n_rs);
    ws->slot_w = take(&cur, N * k);
    ws->trace.probs = take(&cur, nm * N * E);
    ws->trace.weights = take(&cur, nm * N * k);
    ws->trace.moe_input = o->keep_moe_input ? take(&cur, nm * N * d) : NULL;
    ws->trace.logits = take(&cur, n_logits);
    ws->trace.attention = o->keep_attention ? ws->att : NULL;
    ws->carry = n_carry ? take(&cur, n_carry) : NULL;
    if (n_rope) {
        ws->rope_cos = take(&cur, n_rope / 2);
        ws->rope_sin = take(&cur, n_rope / 2);
        mr_rope_tables(ws->rope_cos, ws->rope_sin, T, c->head_dim, c->rope_theta,
                       c->rope_scaling);
    }
    int *icur = ws->iarena;
    ws->slot_tok = icur;
    icur += N * k;
    ws->expert_off = icur;
    icur += E + 1;
    ws->trace.topk = icur;
    ws->trace.E = (int)E;
    ws->trace.k = k;
    ws->trace.n_moe = (int)nm;
    ws->trace.n_heads = (int)NH;
    ws->trace.d = (int)d;
    *out = ws;
    return MR_OK;
}

/* The hidden activation of rows x[rows, a*H] -> [rows, H] in place (a = 2 for swiglu). */
static void activation(float *x, int rows, int H, int act)
{
    if (act == MR_ACT_SWIGLU)
        mr_swiglu_forward(x, x, rows, H);
    else if (act == MR_ACT_RELU)
        mr_relu_forward(x, (size_t)rows * H);
    else
        mr_gelu_forward(x, (size_t)rows * H);
}

/* An FFN on rows x[rows, d]: y[rows, d] = w2 act(w1 x + b1) + b2, with hidden width H
 * (w1 [a*H, d], biases may be NULL); hidden [rows, a*H] is scratch. */
static void ffn_forward(float *y, float *hidden, const float *x, const float *w1,
                        const float *b1, const float *w2, const float *b2, int rows, int d,
                        int H, int act)
{
    int a = act == MR_ACT_SWIGLU ? 2 : 1;
    mr_linear_forward(hidden, x, w1, b1, rows, d, a * H);
    activation(hidden, rows, H, act);
    mr_linear_forward(y, hidden, w2, b2, rows, H, d);
}

/* out[N,d] += sigmoid(shared_gate_w . x) * shared_expert(x): Qwen2-MoE's shared expert
 * (Qwen2MoeSparseMoeBlock in transformers/models/qwen2_moe/modeling_qwen2_moe.py). */
static void shared_expert_forward(mr_workspace *ws, float *out, const float *x,
                                  const mr_layer *L, int N)
{
    const mr_config *c = &ws->m->cfg;
    int d = c->d_model;
    float *y = ws->yg; /* [N, d] */
    ffn_forward(y, ws->hidden, x, L->shared_w1, NULL, L->shared_w2, NULL, N, d,
                c->shared_hidden, c->activation);
    for (int n = 0; n < N; n++) {
        float g = 1.0f;
        if (L->shared_gate_w) {
            float z = 0.0f;
            mr_linear_forward(&z, x + (size_t)n * d, L->shared_gate_w, NULL, 1, d, 1);
            g = 1.0f / (1.0f + expf(-z));
        }
        float *o = out + (size_t)n * d;
        const float *yn = y + (size_t)n * d;
        for (int j = 0; j < d; j++) o[j] += g * yn[j];
    }
}

/* 1, or T where only each sequence's first token of block L's output is ever read: the
 * last block of a classifier that pools its CLS token (the head reads row b T of each
 * sample; the routing trace of that block is computed before its experts). There the
 * experts run for the CLS tokens only and the other rows of the block's output are 0:
 * the same logits and trace (each row of the GEMM micro-kernels is its own, analysis/
 * mr_simd.h; tests/test_routers.c compares with every row's computation,
 * mr_engine_opts.all_rows), at about 1/T of the last block's experts. As the input
 * gradient's forward (analysis/mr_grad.c, slot_step). */
static int slot_step(const mr_workspace *ws, const mr_layer *L, int T)
{
    const mr_config *c = &ws->m->cfg;
    return !ws->opts.all_rows && c->task == MR_TASK_CLASSIFY && c->pool == MR_POOL_CLS &&
                   L == &ws->m->layers[c->n_layers - 1]
               ? T
               : 1;
}

/* out[N,d] = sum over each token's chosen experts of w * expert(x), for tokens 0, step,
 * 2 step, ... (slot_step; the other rows 0).
 * Tokens are grouped by expert (a counting sort) so each expert runs one GEMM pair
 * over all its tokens; contributions are added in ascending expert order. */
static void moe_forward(mr_workspace *ws, float *out, const float *x, const mr_layer *L,
                        const int *topk, const float *weights, int N, int k, int step)
{
    const mr_config *c = &ws->m->cfg;
    int d = c->d_model, E = c->n_experts, h = c->expert_hidden;
    int a = c->activation == MR_ACT_SWIGLU ? 2 : 1;
    int *off = ws->expert_off;
    memset(off, 0, (size_t)(E + 1) * sizeof *off);
    for (int n = 0; n < N; n += step)
        for (int j = 0; j < k; j++) off[topk[(size_t)n * k + j] + 1]++;
    for (int e = 0; e < E; e++) off[e + 1] += off[e];
    /* fill each expert's group in token order; cursor[e] walks from off[e] */
    int cursor[MR_MAX_EXPERTS];
    memcpy(cursor, off, (size_t)E * sizeof *cursor);
    for (int n = 0; n < N; n += step)
        for (int j = 0; j < k; j++) {
            int e = topk[(size_t)n * k + j];
            int s = cursor[e]++;
            ws->slot_tok[s] = n;
            ws->slot_w[s] = weights[(size_t)n * k + j];
        }
    memset(out, 0, (size_t)N * d * sizeof *out);
    for (int e = 0; e < E; e++) {
        int cnt = off[e + 1] - off[e];
        if (cnt == 0) continue;
        const int *tok = ws->slot_tok + off[e];
        const float *w = ws->slot_w + off[e];
        for (int i = 0; i < cnt; i++)
            memcpy(ws->xg + (size_t)i * d, x + (size_t)tok[i] * d, (size_t)d * sizeof(float));
        double t0 = ws->profile ? now_seconds() : 0.0;
        mr_linear_forward(ws->hidden, ws->xg, L->exp_w1 + (size_t)e * a * h * d,
                          L->exp_b1 ? L->exp_b1 + (size_t)e * a * h : NULL, cnt, d,
                          a * h);                                    /* [cnt, a*h] */
        double t1 = ws->profile ? now_seconds() : 0.0;
        activation(ws->hidden, cnt, h, c->activation);               /* [cnt, h] */
        double t2 = ws->profile ? now_seconds() : 0.0;
        mr_linear_forward(ws->yg, ws->hidden, L->exp_w2 + (size_t)e * d * h,
                          L->exp_b2 ? L->exp_b2 + (size_t)e * d : NULL, cnt, h, d); /* [cnt, d] */
        if (ws->profile) {
            ws->prof_seconds += (t1 - t0) + (now_seconds() - t2);
            ws->prof_flops += 2.0 * (a + 1) * cnt * d * h;
        }
        for (int i = 0; i < cnt; i++) {
            float *o = out + (size_t)tok[i] * d;
            const float *y = ws->yg + (size_t)i * d;
            for (int j = 0; j < d; j++) o[j] += w[i] * y[j];
        }
    }
    if (L->shared_w1) shared_expert_forward(ws, out, x, L, N);
}

/* mr_experts_fn for combine(): the current block's experts on another input. */
static void run_experts(void *engine, float *y, const float *x, const int *topk,
                        const float *weights)
{
    mr_workspace *ws = engine;
    moe_forward(ws, y, x, ws->cur_layer, topk, weights, ws->cur_N, ws->trace.k,
                slot_step(ws, ws->cur_layer, ws->trace.T));
}

static void add_inplace(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* A block's or the head's norm of x[N, d] (LayerNorm, or RMSNorm in format v2). */
static void norm_forward(const mr_config *c, float *out, const float *x, const float *w,
                         const float *b, int N)
{
    if (c->norm == MR_NORM_RMS)
        mr_rmsnorm_forward(out, x, w, N, c->d_model, c->norm_eps);
    else
        mr_layernorm_forward(out, x, w, b, N, c->d_model, c->norm_eps);
}

/* Format v2 steps between the qkv projection and the attention core, in the order of the
 * Hugging Face decoders: q/k RMSNorm (per head: Qwen3MoeAttention; over the whole
 * projection: OlmoeAttention), OLMoE's clip_qkv, then RoPE on q and k. */
static void qkv_prepare(mr_workspace *ws, const mr_layer *L, int B, int T)
{
    const mr_config *c = &ws->m->cfg;
    int N = B * T, hd = c->head_dim, QKV = c->qkv_dim;
    float *qkv = ws->qkv; /* [N, QKV]: q [Q], k [KV], v [KV] per row */
    if (c->qk_norm != MR_QK_NORM_NONE)
        for (int n = 0; n < N; n++) {
            float *q = qkv + (size_t)n * QKV, *k = q + c->q_dim;
            if (c->qk_norm == MR_QK_NORM_HEAD) {
                mr_rmsnorm_forward(q, q, L->q_norm_w, c->n_heads, hd, c->norm_eps);
                mr_rmsnorm_forward(k, k, L->k_norm_w, c->n_kv_heads, hd, c->norm_eps);
            } else {
                mr_rmsnorm_forward(q, q, L->q_norm_w, 1, c->q_dim, c->norm_eps);
                mr_rmsnorm_forward(k, k, L->k_norm_w, 1, c->kv_dim, c->norm_eps);
            }
        }
    if (c->clip_qkv > 0.0) mr_clamp_forward(qkv, (size_t)N * QKV, (float)c->clip_qkv);
    if (c->position == MR_POS_ROPE) {
        mr_rope_forward(qkv, B, T, c->n_heads, hd, QKV, ws->rope_cos, ws->rope_sin);
        mr_rope_forward(qkv + c->q_dim, B, T, c->n_kv_heads, hd, QKV, ws->rope_cos,
                        ws->rope_sin);
    }
}

/* x += Attn(norm1(x)) for block L; att [B, NH, T, T] receives the probabilities. */
static void attention_block(mr_workspace *ws, const mr_layer *L, float *att, int B, int T)
{
    const mr_config *c = &ws->m->cfg;
    int d = c->d_model, N = B * T;
    norm_forward(c, ws->xn, ws->x, L->ln1_w, L->ln1_b, N);
    mr_linear_forward(ws->qkv, ws->xn, L->attn_qkv_w, L->attn_qkv_b, N, d, c->qkv_dim);
    if (c->format_version == 1) {
        mr_attention_forward(ws->att_out, att, ws->qkv, B, T, d, c->n_heads,
                             c->task == MR_TASK_LM);
    } else {
        qkv_prepare(ws, L, B, T);
        mr_attention_gqa_forward(ws->att_out, att, ws->qkv, B, T, c->n_heads, c->n_kv_heads,
                                 c->head_dim, c->task == MR_TASK_LM);
    }
    mr_linear_forward(ws->buf, ws->att_out, L->attn_out_w, L->attn_out_b, N, c->q_dim, d);
    add_inplace(ws->x, ws->buf, (size_t)N * d);
}

/* The first MoE block (n_layers when there is none): every block before it, and its
 * attention sub-layer, compute the same values under every router. */
int mr_engine_prefix_layer(const mr_model *m)
{
    return m->cfg.n_moe ? m->cfg.moe_layers[0] : m->cfg.n_layers;
}

/* Block l's attention probabilities [B, NH, T, T] in the workspace. */
static float *block_att(mr_workspace *ws, int l, int B, int T)
{
    return ws->att + (ws->opts.keep_attention ? (size_t)l * B * ws->m->cfg.n_heads * T * T : 0);
}

/* The router-independent prefix, from ws->x [B*T, d] filled by the embedding: the embed
 * hook, the blocks before the first MoE block and that block's attention. */
static int forward_prefix(mr_workspace *ws, int B, int T)
{
    const mr_model *m = ws->m;
    const mr_config *c = &m->cfg;
    int d = c->d_model, N = B * T, l0 = mr_engine_prefix_layer(m);
    ws->trace.B = B;
    ws->trace.T = T;
    if (ws->embed_hook) MR_TRY(ws->embed_hook(ws->embed_ctx, ws->x, B, T, d));
    for (int l = 0; l < l0; l++) { /* dense blocks (a MoE block is never before l0) */
        const mr_layer *L = &m->layers[l];
        attention_block(ws, L, block_att(ws, l, B, T), B, T);
        norm_forward(c, ws->xn, ws->x, L->ln2_w, L->ln2_b, N);
        ffn_forward(ws->buf, ws->hidden, ws->xn, L->ffn_w1, L->ffn_b1, L->ffn_w2, L->ffn_b2, N,
                    d, c->d_ff, c->activation);
        add_inplace(ws->x, ws->buf, (size_t)N * d);
    }
    if (l0 < c->n_layers) attention_block(ws, &m->layers[l0], block_att(ws, l0, B, T), B, T);
    return MR_OK;
}

/* The rest of the forward and the head, from the prefix's state (ws->x and the first MoE
 * block's attention probabilities). */
static int forward_rest(mr_workspace *ws, int B, int T)
{
    const mr_model *m = ws->m;
    const mr_config *c = &m->cfg;
    int d = c->d_model, N = B * T, E = c->n_experts, l0 = mr_engine_prefix_layer(m);
    int k = ws->trace.k;
    size_t Nd = (size_t)N * d;
    ws->trace.B = B;
    ws->trace.T = T;
    if (ws->carry) memset(ws->carry, 0, Nd * sizeof *ws->carry);
    const int *prev_topk = NULL;
    for (int l = l0; l < c->n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        float *att = block_att(ws, l, B, T);
        if (l > l0) attention_block(ws, L, att, B, T);
        norm_forward(c, ws->xn, ws->x, L->ln2_w, L->ln2_b, N);
        if (!L->is_moe) {
            ffn_forward(ws->buf, ws->hidden, ws->xn, L->ffn_w1, L->ffn_b1, L->ffn_w2,
                        L->ffn_b2, N, d, c->d_ff, c->activation);
        } else {
            int mi = L->moe_index;
            /* trace slices are laid out for this call's B and T, so they stay dense */
            float *probs = ws->trace.probs + (size_t)mi * N * E;
            int *topk = ws->trace.topk + (size_t)mi * N * k;
            float *weights = ws->trace.weights + (size_t)mi * N * k;
            if (ws->trace.moe_input)
                memcpy(ws->trace.moe_input + (size_t)mi * Nd, ws->xn, Nd * sizeof(float));
            mr_route_ctx ctx = {.model = m, .layer = l, .moe_index = mi, .B = B, .T = T,
                                .k = k, .x = ws->xn, .att = att, .prev_topk = prev_topk,
                                .prev_k = k, .first_sample = ws->first_sample,
                                .scratch = ws->router_scratch};
            const mr_router_type *rt = ws->router->type;
            MR_TRY(rt->route(ws->router->state, &ctx, probs, topk, weights));
            moe_forward(ws, ws->buf, ws->xn, L, topk, weights, N, k, slot_step(ws, L, T));
            if (rt->combine) {
                ws->cur_layer = L;
                ws->cur_N = N;
                mr_combine_ctx cc = {.experts = run_experts, .engine = ws, .topk = topk,
                                     .weights = weights, .carry = ws->carry};
                MR_TRY(rt->combine(ws->router->state, &ctx, &cc, ws->buf));
            }
            prev_topk = topk;
        }
        add_inplace(ws->x, ws->buf, Nd);
    }
    mr_engine_head_forward(ws->trace.logits, ws->pooled, ws->xn, ws->x, m, B, T);
    return MR_OK;
}

/* The transformer blocks and the head, from ws->x [B*T, d] filled by the embedding. */
static int forward_blocks(mr_workspace *ws, int B, int T)
{
    MR_TRY(forward_prefix(ws, B, T));
    return forward_rest(ws, B, T);
}

void mr_engine_head_forward(float *logits, float *pooled, float *xn, const float *x,
                            const mr_model *m, int B, int T)
{
    const mr_config *c = &m->cfg;
    int d = c->d_model, N = B * T;
    if (c->task == MR_TASK_CLASSIFY && c->pool == MR_POOL_CLS) {
        /* the CLS rows only: the norm is per row, the other rows are never read */
        for (int b = 0; b < B; b++) {
            size_t r = (size_t)b * T * d;
            norm_forward(c, xn + r, x + r, m->head_ln_w, m->head_ln_b, 1);
        }
    } else {
        norm_forward(c, xn, x, m->head_ln_w, m->head_ln_b, N);
    }
    if (c->task == MR_TASK_LM) {
        mr_linear_forward(logits, xn, m->head_w, m->head_b, N, d, c->n_out);
        return;
    }
    for (int b = 0; b < B; b++) {
        float *p = pooled + (size_t)b * d;
        const float *z = xn + (size_t)b * T * d;
        if (c->pool == MR_POOL_CLS) {
            memcpy(p, z, (size_t)d * sizeof *p);
            continue;
        }
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int t = 0; t < T; t++) s += z[(size_t)t * d + j];
            p[j] = (float)(s / T);
        }
    }
    mr_linear_forward(logits, pooled, m->head_w, m->head_b, B, d, c->n_out);
}

static int embed_images(mr_workspace *ws, const uint8_t *images, int B)
{
    const mr_config *c = &ws->m->cfg;
    MR_REQUIRE(c->task == MR_TASK_CLASSIFY, MR_EINPUT, "%s is an lm model, not an image model",
               ws->m->path);
    MR_REQUIRE(B >= 1 && B <= ws->maxB, MR_EINPUT, "batch of %d exceeds the workspace (%d)", B,
               ws->maxB);
    int P = c->patch, C = c->channels, H = c->image_h, W = c->image_w, d = c->d_model;
    int gw = W / P, np = c->n_patches, pp = P * P * C, T = c->n_pos;
    int first = c->pool == MR_POOL_CLS; /* token 0 is the cls token */
    /* patch vectors: v[(dy*P + dx)*C + ch] = x[r*P+dy, c*P+dx, ch] / 255 (model-format.md) */
    for (int b = 0; b < B; b++)
        for (int p = 0; p < np; p++) {
            int r = p / gw, q = p % gw;
            float *v = ws->patches + ((size_t)b * np + p) * pp;
            for (int dy = 0; dy < P; dy++)
                for (int dx = 0; dx < P; dx++)
                    for (int ch = 0; ch < C; ch++) {
                        size_t src = (((size_t)b * H + r * P + dy) * W + q * P + dx) * C + ch;
                        v[(dy * P + dx) * C + ch] = images[src] / 255.0f;
                    }
        }
    for (int b = 0; b < B; b++) {
        float *xb = ws->x + (size_t)b * T * d;
        mr_linear_forward(xb + (size_t)first * d, ws->patches + (size_t)b * np * pp,
                          ws->m->patch_w, ws->m->patch_b, np, pp, d);
        if (first) memcpy(xb, ws->m->cls, (size_t)d * sizeof(float));
        if (ws->m->pos) add_inplace(xb, ws->m->pos, (size_t)T * d);
    }
    return MR_OK;
}

int mr_engine_forward_images(mr_workspace *ws, const uint8_t *images, int B)
{
    MR_TRY(embed_images(ws, images, B));
    return forward_blocks(ws, B, ws->m->cfg.n_pos);
}

int mr_engine_embed_images(mr_workspace *ws, const uint8_t *images, int B, const float **x)
{
    MR_TRY(embed_images(ws, images, B));
    *x = ws->x;
    return MR_OK;
}

static int embed_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T, int stride)
{
    const mr_config *c = &ws->m->cfg;
    MR_REQUIRE(c->task == MR_TASK_LM, MR_EINPUT, "%s is an image model, not an lm model",
               ws->m->path);
    MR_REQUIRE(B >= 1 && B <= ws->maxB, MR_EINPUT, "batch of %d exceeds the workspace (%d)", B,
               ws->maxB);
    MR_REQUIRE(T >= 1 && T <= ws->maxT && T <= stride, MR_EINPUT,
               "sequence length %d exceeds %d", T, ws->maxT);
    return mr_embed_tokens(ws->x, ws->m, tokens, B, T, stride);
}

int mr_embed_tokens(float *x, const mr_model *m, const int32_t *tokens, int B, int T, int stride)
{
    const mr_config *c = &m->cfg;
    int d = c->d_model;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t id = tokens[(size_t)b * stride + t];
            MR_REQUIRE(id >= 0 && id < c->vocab_size, MR_EINPUT,
                       "token id %d at sample %d position %d is outside the vocabulary (0..%d)",
                       (int)id, b, t, c->vocab_size - 1);
            float *xt = x + ((size_t)b * T + t) * d;
            const float *e = m->tok + (size_t)id * d;
            if (!m->pos) { /* rotary positions act in the attention, not here */
                memcpy(xt, e, (size_t)d * sizeof *xt);
                continue;
            }
            const float *p = m->pos + (size_t)t * d;
            for (int j = 0; j < d; j++) xt[j] = e[j] + p[j];
        }
    return MR_OK;
}

int mr_engine_forward_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T, int stride)
{
    MR_TRY(embed_tokens(ws, tokens, B, T, stride));
    return forward_blocks(ws, B, T);
}

/* The classify / lm sequence length of a forward of T tokens (images: n_pos). */
static int seq_len(const mr_workspace *ws, int T)
{
    return ws->m->cfg.task == MR_TASK_CLASSIFY ? ws->m->cfg.n_pos : T;
}

int mr_engine_prefix_images(mr_workspace *ws, const uint8_t *images, int B)
{
    MR_TRY(embed_images(ws, images, B));
    return forward_prefix(ws, B, ws->m->cfg.n_pos);
}

int mr_engine_prefix_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T, int stride)
{
    MR_TRY(embed_tokens(ws, tokens, B, T, stride));
    return forward_prefix(ws, B, T);
}

void mr_engine_prefix_state(mr_workspace *ws, int B, int T, float **x, float **att)
{
    int l0 = mr_engine_prefix_layer(ws->m);
    T = seq_len(ws, T);
    *x = ws->x;
    *att = l0 < ws->m->cfg.n_layers ? block_att(ws, l0, B, T) : NULL;
}

void mr_engine_prefix_sizes(const mr_model *m, int T, size_t *x_floats, size_t *att_floats)
{
    const mr_config *c = &m->cfg;
    if (c->task == MR_TASK_CLASSIFY) T = c->n_pos;
    *x_floats = (size_t)T * c->d_model;
    *att_floats = mr_engine_prefix_layer(m) < c->n_layers ? (size_t)c->n_heads * T * T : 0;
}

int mr_engine_forward_rest(mr_workspace *ws, int B, int T)
{
    MR_REQUIRE(B >= 1 && B <= ws->maxB && T >= 1 && seq_len(ws, T) <= ws->maxT, MR_EINPUT,
               "a forward of %d x %d tokens exceeds the workspace (%d x %d)", B, T, ws->maxB,
               ws->maxT);
    return forward_rest(ws, B, seq_len(ws, T));
}

int mr_engine_embed_tokens(mr_workspace *ws, const int32_t *tokens, int B, int T, int stride,
                           const float **x)
{
    MR_TRY(embed_tokens(ws, tokens, B, T, stride));
    *x = ws->x;
    return MR_OK;
}

/* OpenBLAS's pthread build would otherwise start its own threads inside each of
 * our OpenMP workers; the symbol is OpenBLAS's own (we link OpenBLAS as CBLAS). Its
 * threads, started when the library loads, then have nothing to do, but each spins
 * (sched_yield) for about 2^28 cycles before it sleeps (OpenBLAS's THREAD_TIMEOUT):
 * about 0.1 s of CPU per process, a twentieth of a small grid's. blas_thread_shutdown_,
 * which OpenBLAS's threaded builds export (it runs before a fork), ends them now; weak,
 * because a serial OpenBLAS has no threads and no such function. */
extern void openblas_set_num_threads(int n);
extern int blas_thread_shutdown_(void) __attribute__((weak));
void mr_engine_blas_single_thread(void)
{
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}
