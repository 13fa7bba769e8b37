#include "mr_model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mr_error.h"
#include "mr_model_plan.h"

const char *mr_task_name(int task) { return task == MR_TASK_LM ? "lm" : "classify"; }
const char *mr_activation_name(int a)
{
    return a == MR_ACT_RELU ? "relu" : a == MR_ACT_SWIGLU ? "swiglu" : "gelu";
}
const char *mr_gate_norm_name(int g) { return g == MR_GATE_NONE ? "none" : "renorm"; }
const char *mr_pool_name(int p) { return p == MR_POOL_MEAN ? "mean" : "cls"; }
const char *mr_norm_name(int n) { return n == MR_NORM_RMS ? "rmsnorm" : "layernorm"; }
const char *mr_position_name(int p) { return p == MR_POS_ROPE ? "rope" : "learned"; }
const char *mr_qk_norm_name(int q)
{
    return q == MR_QK_NORM_HEAD ? "head" : q == MR_QK_NORM_FULL ? "full" : "none";
}

void mr_config_v1_defaults(mr_config *cfg)
{
    cfg->format_version = 1;
    cfg->norm = MR_NORM_LAYER;
    cfg->position = MR_POS_LEARNED;
    cfg->rope_theta = 10000.0;
    cfg->rope_scaling = 1.0;
    cfg->n_kv_heads = cfg->n_heads;
    cfg->head_dim = cfg->n_heads > 0 ? cfg->d_model / cfg->n_heads : 0;
    cfg->qk_norm = MR_QK_NORM_NONE;
    cfg->clip_qkv = 0.0;
    cfg->shared_hidden = 0;
    cfg->tie_head = 0;
    cfg->has_vocab = cfg->task == MR_TASK_LM;
}

#define CHECK_RANGE(field, lo, hi)                                              \
    MR_REQUIRE(cfg->field >= (lo) && cfg->field <= (hi), MR_EINPUT,            \
               "attribute %s = %d is out of range [%d, %d]", #field, cfg->field, \
               (int)(lo), (int)(hi))

/* The attention geometry of format v2 (in v1 fixed by d_model and n_heads). */
static int check_attention(mr_config *cfg)
{
    MR_REQUIRE(cfg->format_version == 1 || cfg->format_version == 2, MR_EINPUT,
               "attribute format_version = %d, this build reads versions 1 and 2",
               cfg->format_version);
    if (cfg->format_version == 1) {
        CHECK_RANGE(n_heads, 1, cfg->d_model);
        MR_REQUIRE(cfg->d_model % cfg->n_heads == 0, MR_EINPUT,
                   "attribute n_heads = %d does not divide d_model = %d", cfg->n_heads,
                   cfg->d_model);
        MR_REQUIRE(cfg->norm == MR_NORM_LAYER && cfg->position == MR_POS_LEARNED &&
                       cfg->n_kv_heads == cfg->n_heads &&
                       cfg->head_dim == cfg->d_model / cfg->n_heads &&
                       cfg->qk_norm == MR_QK_NORM_NONE && cfg->clip_qkv == 0.0 &&
                       cfg->shared_hidden == 0 && !cfg->tie_head &&
                       cfg->activation != MR_ACT_SWIGLU &&
                       cfg->has_vocab == (cfg->task == MR_TASK_LM),
                   MR_EINPUT, "a format_version 1 model uses a format 2 feature");
    }
    CHECK_RANGE(n_heads, 1, 4096);
    CHECK_RANGE(n_kv_heads, 1, cfg->n_heads);
    MR_REQUIRE(cfg->n_heads % cfg->n_kv_heads == 0, MR_EINPUT,
               "attribute n_kv_heads = %d does not divide n_heads = %d", cfg->n_kv_heads,
               cfg->n_heads);
    CHECK_RANGE(head_dim, 1, MR_MAX_D_MODEL);
    MR_REQUIRE((long)cfg->n_heads * cfg->head_dim <= MR_MAX_HIDDEN, MR_EINPUT,
               "attributes n_heads = %d x head_dim = %d exceed %d", cfg->n_heads,
               cfg->head_dim, MR_MAX_HIDDEN);
    cfg->q_dim = cfg->n_heads * cfg->head_dim;
    cfg->kv_dim = cfg->n_kv_heads * cfg->head_dim;
    cfg->qkv_dim = cfg->q_dim + 2 * cfg->kv_dim;
    MR_REQUIRE(cfg->norm == MR_NORM_LAYER || cfg->norm == MR_NORM_RMS, MR_EINPUT,
               "attribute norm: unknown value %d", cfg->norm);
    if (cfg->position == MR_POS_ROPE) {
        MR_REQUIRE(cfg->head_dim % 2 == 0, MR_EINPUT,
                   "attribute head_dim = %d must be even for rotary position embeddings",
                   cfg->head_dim);
        MR_REQUIRE(cfg->rope_theta > 1.0 && cfg->rope_theta < 1e12, MR_EINPUT,
                   "attribute rope_theta = %g must be in (1, 1e12)", cfg->rope_theta);
        MR_REQUIRE(cfg->rope_scaling >= 1e-3 && cfg->rope_scaling <= 1e6, MR_EINPUT,
                   "attribute rope_scaling = %g must be in [0.001, 1e6]", cfg->rope_scaling);
    } else {
        MR_REQUIRE(cfg->position == MR_POS_LEARNED, MR_EINPUT,
                   "attribute position: unknown value %d", cfg->position);
    }
    MR_REQUIRE(cfg->qk_norm >= MR_QK_NORM_NONE && cfg->qk_norm <= MR_QK_NORM_FULL, MR_EINPUT,
               "attribute qk_norm: unknown value %d", cfg->qk_norm);
    MR_REQUIRE(cfg->clip_qkv >= 0.0 && cfg->clip_qkv <= 1e30, MR_EINPUT,
               "attribute clip_qkv = %g must be >= 0 (0: off)", cfg->clip_qkv);
    CHECK_RANGE(shared_hidden, 0, MR_MAX_HIDDEN);
    MR_REQUIRE(!cfg->tie_head || cfg->task == MR_TASK_LM, MR_EINPUT,
               "attribute tie_head = 1 needs task lm (the head is the token embedding)");
    return MR_OK;
}

int mr_config_check(mr_config *cfg)
{
    CHECK_RANGE(d_model, 1, MR_MAX_D_MODEL);
    CHECK_RANGE(n_layers, 1, MR_MAX_LAYERS);
    MR_TRY(check_attention(cfg));
    CHECK_RANGE(d_ff, 0, MR_MAX_HIDDEN);
    CHECK_RANGE(n_experts, 1, MR_MAX_EXPERTS);
    CHECK_RANGE(top_k, 1, cfg->n_experts);
    CHECK_RANGE(expert_hidden, 1, MR_MAX_HIDDEN);
    MR_REQUIRE(cfg->norm_eps > 0.0f && cfg->norm_eps < 1.0f, MR_EINPUT,
               "attribute norm_eps = %g must be in (0, 1)", (double)cfg->norm_eps);
    MR_REQUIRE(cfg->n_moe >= 0 && cfg->n_moe <= cfg->n_layers, MR_EINPUT,
               "attribute moe_layers has %d entries for %d layers", cfg->n_moe,
               cfg->n_layers);
    for (int i = 0; i < cfg->n_moe; i++) {
        int L = cfg->moe_layers[i];
        MR_REQUIRE(L >= 0 && L < cfg->n_layers, MR_EINPUT,
                   "attribute moe_layers[%d] = %d is not a block index (0..%d)", i, L,
                   cfg->n_layers - 1);
        MR_REQUIRE(i == 0 || L > cfg->moe_layers[i - 1], MR_EINPUT,
                   "attribute moe_layers must be strictly increasing (entry %d = %d)", i, L);
    }
    MR_REQUIRE(cfg->n_moe == cfg->n_layers || cfg->d_ff >= 1, MR_EINPUT,
               "attribute d_ff = %d but the model has dense blocks", cfg->d_ff);
    if (cfg->task == MR_TASK_CLASSIFY) {
        CHECK_RANGE(image_h, 1, MR_MAX_IMAGE);
        CHECK_RANGE(image_w, 1, MR_MAX_IMAGE);
        MR_REQUIRE(cfg->channels == 1 || cfg->channels == 3, MR_EINPUT,
                   "attribute channels = %d must be 1 or 3", cfg->channels);
        CHECK_RANGE(patch, 1, cfg->image_h < cfg->image_w ? cfg->image_h : cfg->image_w);
        MR_REQUIRE(cfg->image_h % cfg->patch == 0 && cfg->image_w % cfg->patch == 0,
                   MR_EINPUT, "attribute patch = %d does not divide the image size %dx%d",
                   cfg->patch, cfg->image_h, cfg->image_w);
        CHECK_RANGE(n_classes, 2, MR_MAX_CLASSES);
        cfg->n_patches = (cfg->image_h / cfg->patch) * (cfg->image_w / cfg->patch);
        MR_REQUIRE(cfg->n_patches + 1 <= MR_MAX_SEQ, MR_EINPUT,
                   "image %dx%d with patch %d gives %d tokens (max %d)", cfg->image_h,
                   cfg->image_w, cfg->patch, cfg->n_patches, MR_MAX_SEQ - 1);
        cfg->n_pos = cfg->n_patches + (cfg->pool == MR_POOL_CLS);
        cfg->n_out = cfg->n_classes;
    } else {
        CHECK_RANGE(vocab_size, 2, MR_MAX_VOCAB);
        CHECK_RANGE(max_seq_len, 1, MR_MAX_SEQ);
        cfg->n_patches = 0;
        cfg->n_pos = cfg->max_seq_len;
        cfg->n_out = cfg->vocab_size;
    }
    MR_REQUIRE(mr_config_param_count(cfg) > 0, MR_EINPUT,
               "the dimensions give more than %zu parameters", (size_t)MR_MAX_PARAMS);
    return MR_OK;
}

int mr_config_seq_len(const mr_config *cfg)
{
    return cfg->task == MR_TASK_CLASSIFY ? cfg->n_pos : cfg->max_seq_len;
}

/* Saturating size_t arithmetic: every factor is bounded by the range checks, but a
 * product of several can still exceed MR_MAX_PARAMS; we refuse rather than wrap. */
static size_t mul(size_t a, size_t b)
{
    if (a == 0 || b == 0) return 0;
    if (a > SIZE_MAX / b) return SIZE_MAX;
    return a * b;
}
static size_t add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

size_t mr_config_param_count(const mr_config *c)
{
    size_t d = (size_t)c->d_model, E = (size_t)c->n_experts, h = (size_t)c->expert_hidden;
    size_t F = (size_t)c->d_ff, S = (size_t)c->shared_hidden;
    size_t a = c->activation == MR_ACT_SWIGLU ? 2 : 1; /* gate and up stacked */
    size_t Q = (size_t)c->q_dim, QKV = (size_t)c->qkv_dim;
    size_t n = 0;
    if (c->task == MR_TASK_CLASSIFY) {
        size_t pp = mul(mul((size_t)c->patch, (size_t)c->patch), (size_t)c->channels);
        n = add(n, mul(d, pp) + d);
        if (c->pool == MR_POOL_CLS) n = add(n, d);
    } else {
        n = add(n, mul((size_t)c->vocab_size, d));
    }
    if (c->position == MR_POS_LEARNED) n = add(n, mul((size_t)c->n_pos, d));
    /* optional biases of format v2 are counted as present: exact for version 1 (whose
     * block is 4 d^2 + 8 d), an upper bound otherwise */
    size_t ln = c->norm == MR_NORM_LAYER ? 2 * d : d; /* weight (and bias) */
    size_t qkn = c->qk_norm == MR_QK_NORM_HEAD   ? 2 * (size_t)c->head_dim
                 : c->qk_norm == MR_QK_NORM_FULL ? Q + (size_t)c->kv_dim
                                                 : 0;
    size_t block = add(add(mul(QKV, d), mul(d, Q)), QKV + d + 2 * ln + qkn);
    size_t dense = add(add(mul(a * F, d), mul(d, F)), a * F + d);
    size_t moe = add(mul(E, d) + E, add(mul(mul(E, (a + 1) * h), d), mul(E, a * h) + mul(E, d)));
    if (S) moe = add(moe, add(mul((a + 1) * S, d), d)); /* shared expert and its gate */
    size_t n_dense = (size_t)(c->n_layers - c->n_moe);
    n = add(n, mul((size_t)c->n_layers, block));
    n = add(n, mul(n_dense, dense));
    n = add(n, mul((size_t)c->n_moe, moe));
    n = add(n, add(ln, (c->tie_head ? 0 : mul((size_t)c->n_out, d)) + (size_t)c->n_out));
    return n > MR_MAX_PARAMS ? 0 : n;
}

const mr_named_tensor *mr_layer_router_tensor(const mr_layer *layer, const char *name)
{
    for (int i = 0; i < layer->n_router_tensors; i++)
        if (strcmp(layer->router_tensors[i].name, name) == 0) return &layer->router_tensors[i];
    return NULL;
}

void mr_model_free(mr_model *m)
{
    if (!m) return;
    free(m->cfg.moe_layers);
    for (int l = 0; m->layers && l < m->cfg.n_layers; l++) free(m->layers[l].router_tensors);
    free(m->layers);
    free(m->vocab);
    free(m->arena);
    free(m);
}

int mr_model_alloc(mr_model **out, const mr_config *cfg, size_t extra)
{
    *out = NULL;
    mr_model *m = calloc(1, sizeof *m);
    if (!m) return mr_error_set(MR_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->cfg.moe_layers = malloc(((size_t)cfg->n_moe + 1) * sizeof(int));
    if (!m->cfg.moe_layers) {
        free(m);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    if (cfg->n_moe > 0) memcpy(m->cfg.moe_layers, cfg->moe_layers, (size_t)cfg->n_moe * sizeof(int));
    int st = mr_config_check(&m->cfg);
    if (st != MR_OK) {
        mr_model_free(m);
        return st;
    }
    const mr_config *c = &m->cfg;
    m->n_params = mr_config_param_count(c);
    m->n_arena = m->n_params + extra;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->arena = calloc(m->n_arena ? m->n_arena : 1, sizeof(float));
    if (c->task == MR_TASK_LM && c->has_vocab)
        m->vocab = calloc((size_t)c->vocab_size, sizeof *m->vocab);
    if (!m->layers || !m->arena || (c->task == MR_TASK_LM && c->has_vocab && !m->vocab)) {
        size_t n = m->n_arena;
        mr_model_free(m);
        return mr_error_set(MR_ENOMEM, "out of memory: %zu weights", n);
    }
    for (int l = 0; l < c->n_layers; l++) m->layers[l].moe_index = -1;
    for (int i = 0; i < c->n_moe; i++) {
        m->layers[c->moe_layers[i]].is_moe = 1;
        m->layers[c->moe_layers[i]].moe_index = i;
        m->layers[c->moe_layers[i]].has_gate_b = 1;
    }
    /* every tensor of the plan, the optional ones of format 2 (biases, shared_gate_w)
     * included, as zeros: mr_config_param_count counts them */
    mr_plan p = {0};
    st = mr_model_plan(&p, m);
    float *cur = m->arena;
    for (int i = 0; st == MR_OK && i < p.n; i++) {
        *p.items[i].dst = cur;
        cur += mr_plan_item_size(&p.items[i]);
    }
    mr_model_plan_free(&p);
    if (st != MR_OK) {
        mr_model_free(m);
        return st;
    }
    if (c->tie_head) m->head_w = m->tok;
    size_t used = (size_t)(cur - m->arena), expected = m->n_params;
    if (used != expected) { /* the layout here and mr_config_param_count must agree */
        mr_model_free(m);
        return mr_error_set(MR_EFAILED, "internal: model layout of %zu floats, expected %zu",
                            used, expected);
    }
    *out = m;
    return MR_OK;
}
