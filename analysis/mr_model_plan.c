#include "mr_model_plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mr_error.h"
#include "mr_array.h"

static int plan_add(mr_plan *p, float **dst, int optional, int rank, size_t d0, size_t d1,
                    size_t d2, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static int plan_add(mr_plan *p, float **dst, int optional, int rank, size_t d0, size_t d1,
                    size_t d2, const char *fmt, ...)
{
    MR_TRY(mr_array_grow(&p->items, &p->cap, p->n, sizeof *p->items, 64));
    mr_plan_item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->path, sizeof it->path, fmt, ap);
    va_end(ap);
    it->rank = rank;
    it->dims[0] = d0;
    it->dims[1] = d1;
    it->dims[2] = d2;
    it->dst = dst;
    it->optional = optional;
    return MR_OK;
}

size_t mr_plan_item_size(const mr_plan_item *it)
{
    size_t n = 1;
    for (int i = 0; i < it->rank; i++) n *= (size_t)it->dims[i];
    return n;
}

static int plan_layer(mr_plan *p, mr_layer *L, int l, const mr_config *c)
{
    size_t d = (size_t)c->d_model, E = (size_t)c->n_experts, h = (size_t)c->expert_hidden;
    size_t F = (size_t)c->d_ff, Q = (size_t)c->q_dim, QKV = (size_t)c->qkv_dim;
    size_t a = c->activation == MR_ACT_SWIGLU ? 2 : 1; /* gate rows, then up rows */
    int ln = c->norm == MR_NORM_LAYER;
    int bias = c->format_version == 1 ? MR_PLAN_REQUIRED : MR_PLAN_NULL_IF_ABSENT; /* v2: biases optional */
    MR_TRY(plan_add(p, &L->ln1_w, MR_PLAN_REQUIRED, 1, d, 0, 0, "/layers/%d/ln1_w", l));
    if (ln) MR_TRY(plan_add(p, &L->ln1_b, MR_PLAN_REQUIRED, 1, d, 0, 0, "/layers/%d/ln1_b", l));
    MR_TRY(plan_add(p, &L->attn_qkv_w, MR_PLAN_REQUIRED, 2, QKV, d, 0, "/layers/%d/attn_qkv_w", l));
    MR_TRY(plan_add(p, &L->attn_qkv_b, bias, 1, QKV, 0, 0, "/layers/%d/attn_qkv_b", l));
    MR_TRY(plan_add(p, &L->attn_out_w, MR_PLAN_REQUIRED, 2, d, Q, 0, "/layers/%d/attn_out_w", l));
    MR_TRY(plan_add(p, &L->attn_out_b, bias, 1, d, 0, 0, "/layers/%d/attn_out_b", l));
    if (c->qk_norm != MR_QK_NORM_NONE) {
        int full = c->qk_norm == MR_QK_NORM_FULL;
        size_t hd = (size_t)c->head_dim;
        MR_TRY(plan_add(p, &L->q_norm_w, MR_PLAN_REQUIRED, 1, full ? Q : hd, 0, 0,
                        "/layers/%d/q_norm_w", l));
        MR_TRY(plan_add(p, &L->k_norm_w, MR_PLAN_REQUIRED, 1, full ? (size_t)c->kv_dim : hd, 0, 0,
                        "/layers/%d/k_norm_w", l));
    }
    MR_TRY(plan_add(p, &L->ln2_w, MR_PLAN_REQUIRED, 1, d, 0, 0, "/layers/%d/ln2_w", l));
    if (ln) MR_TRY(plan_add(p, &L->ln2_b, MR_PLAN_REQUIRED, 1, d, 0, 0, "/layers/%d/ln2_b", l));
    if (!L->is_moe) {
        MR_TRY(plan_add(p, &L->ffn_w1, MR_PLAN_REQUIRED, 2, a * F, d, 0, "/layers/%d/ffn/w1", l));
        MR_TRY(plan_add(p, &L->ffn_b1, bias, 1, a * F, 0, 0, "/layers/%d/ffn/b1", l));
        MR_TRY(plan_add(p, &L->ffn_w2, MR_PLAN_REQUIRED, 2, d, F, 0, "/layers/%d/ffn/w2", l));
        MR_TRY(plan_add(p, &L->ffn_b2, bias, 1, d, 0, 0, "/layers/%d/ffn/b2", l));
        return MR_OK;
    }
    MR_TRY(plan_add(p, &L->gate_w, MR_PLAN_REQUIRED, 2, E, d, 0, "/layers/%d/moe/gate_w", l));
    /* gate_b is optional: when absent it is planned as zeros (see load_tensors) */
    MR_TRY(plan_add(p, &L->gate_b, MR_PLAN_ZEROS_IF_ABSENT, 1, E, 0, 0, "/layers/%d/moe/gate_b", l));
    MR_TRY(plan_add(p, &L->exp_w1, MR_PLAN_REQUIRED, 3, E, a * h, d, "/layers/%d/moe/w1", l));
    MR_TRY(plan_add(p, &L->exp_b1, bias, 2, E, a * h, 0, "/layers/%d/moe/b1", l));
    MR_TRY(plan_add(p, &L->exp_w2, MR_PLAN_REQUIRED, 3, E, d, h, "/layers/%d/moe/w2", l));
    MR_TRY(plan_add(p, &L->exp_b2, bias, 2, E, d, 0, "/layers/%d/moe/b2", l));
    if (c->shared_hidden > 0) {
        size_t S = (size_t)c->shared_hidden;
        MR_TRY(plan_add(p, &L->shared_w1, MR_PLAN_REQUIRED, 2, a * S, d, 0, "/layers/%d/moe/shared_w1", l));
        MR_TRY(plan_add(p, &L->shared_w2, MR_PLAN_REQUIRED, 2, d, S, 0, "/layers/%d/moe/shared_w2", l));
        MR_TRY(plan_add(p, &L->shared_gate_w, MR_PLAN_NULL_IF_ABSENT, 2, 1, d, 0,
                        "/layers/%d/moe/shared_gate_w", l));
    }
    return MR_OK;
}

int mr_model_plan(mr_plan *p, mr_model *m)
{
    const mr_config *c = &m->cfg;
    size_t d = (size_t)c->d_model;
    if (c->task == MR_TASK_CLASSIFY) {
        size_t pp = (size_t)c->patch * c->patch * c->channels;
        MR_TRY(plan_add(p, &m->patch_w, MR_PLAN_REQUIRED, 2, d, pp, 0, "/embed/patch_w"));
        MR_TRY(plan_add(p, &m->patch_b, MR_PLAN_REQUIRED, 1, d, 0, 0, "/embed/patch_b"));
        if (c->pool == MR_POOL_CLS)
            MR_TRY(plan_add(p, &m->cls, MR_PLAN_REQUIRED, 1, d, 0, 0, "/embed/cls"));
    } else {
        MR_TRY(plan_add(p, &m->tok, MR_PLAN_REQUIRED, 2, (size_t)c->vocab_size, d, 0, "/embed/tok"));
    }
    if (c->position == MR_POS_LEARNED)
        MR_TRY(plan_add(p, &m->pos, MR_PLAN_REQUIRED, 2, (size_t)c->n_pos, d, 0, "/embed/pos"));
    for (int l = 0; l < c->n_layers; l++) MR_TRY(plan_layer(p, &m->layers[l], l, c));
    int bias = c->format_version == 1 ? MR_PLAN_REQUIRED : MR_PLAN_NULL_IF_ABSENT;
    MR_TRY(plan_add(p, &m->head_ln_w, MR_PLAN_REQUIRED, 1, d, 0, 0, "/head/ln_w"));
    if (c->norm == MR_NORM_LAYER)
        MR_TRY(plan_add(p, &m->head_ln_b, MR_PLAN_REQUIRED, 1, d, 0, 0, "/head/ln_b"));
    if (!c->tie_head)
        MR_TRY(plan_add(p, &m->head_w, MR_PLAN_REQUIRED, 2, (size_t)c->n_out, d, 0, "/head/w"));
    MR_TRY(plan_add(p, &m->head_b, bias, 1, (size_t)c->n_out, 0, 0, "/head/b"));
    return MR_OK;
}

void mr_model_plan_free(mr_plan *p)
{
    free(p->items);
    memset(p, 0, sizeof *p);
}

mr_plan_item *mr_plan_find(mr_plan *p, const char *path)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].path, path) == 0) return &p->items[i];
    return NULL;
}
