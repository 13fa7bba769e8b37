/* config.json of the Hugging Face MoE families -> the model configuration (format v2).
 *
 * Keys and their meaning are those of transformers' configuration_*.py and modeling_*.py
 * for mixtral, qwen2_moe, qwen3_moe and olmoe (docs/import.md names the files and
 * commits; tools/hf_moe.py parse_config applies the same rules in Python). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_hf_import.h"
#include "mr_hf_json.h"

static const char *const family_names[] = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};

const char *mr_hf_family_name(int family)
{
    return family >= 0 && family <= MR_HF_OLMOE ? family_names[family] : "?";
}

void mr_hf_spec_free(mr_hf_spec *s)
{
    free(s->cfg.moe_layers);
    s->cfg.moe_layers = NULL;
}

/* rope_theta, and rope_scaling (or transformers 5's rope_parameters): only the default
 * and linear RoPE (inv_freq / factor) are implemented. */
static int read_rope(mr_hf_json *j, mr_config *c, int family)
{
    /* configuration_mixtral.py defaults rope_theta to 1e6, the other three to 1e4 */
    double theta = family == MR_HF_MIXTRAL ? 1e6 : 1e4;
    const cJSON *params = mr_hf_json_get(j->root, "rope_parameters");
    const cJSON *scaling = mr_hf_json_get(j->root, "rope_scaling");
    const char *sc_key = "rope_scaling";
    MR_TRY(mr_hf_json_num(j, j->root, "rope_theta", theta, 1.0, 1e12, &theta));
    if (params) {
        MR_REQUIRE(cJSON_IsObject(params), MR_EINPUT, "%s: rope_parameters must be an object",
                   j->path);
        MR_TRY(mr_hf_json_num(j, params, "rope_theta", theta, 1.0, 1e12, &theta));
        scaling = params;
        sc_key = "rope_parameters";
    }
    c->rope_theta = theta;
    c->rope_scaling = 1.0;
    if (scaling) {
        MR_REQUIRE(cJSON_IsObject(scaling), MR_EINPUT, "%s: %s must be null or an object",
                   j->path, sc_key);
        const char *tkey = mr_hf_json_get(scaling, "rope_type") ? "rope_type" : "type";
        char kind[64];
        snprintf(j->prefix, sizeof j->prefix, "%s.", sc_key);
        int st = mr_hf_json_str(j, scaling, tkey, "default", kind, sizeof kind);
        if (st == MR_OK && strcmp(kind, "linear") == 0)
            st = mr_hf_json_num(j, scaling, "factor", NAN, 1e-3, 1e6, &c->rope_scaling);
        else if (st == MR_OK && strcmp(kind, "default") != 0)
            st = mr_hf_refuse(j, tkey, mr_hf_json_get(scaling, tkey),
                              "is not implemented (supported: none, default, linear)");
        j->prefix[0] = '\0';
        MR_TRY(st);
    }
    double prf;
    MR_TRY(mr_hf_json_num(j, j->root, "partial_rotary_factor", 1.0, 0.0, 1.0, &prf));
    if (prf != 1.0)
        return mr_hf_refuse(j, "partial_rotary_factor",
                            mr_hf_json_get(j->root, "partial_rotary_factor"),
                            "only 1 (rotary embeddings over the whole head) is implemented");
    return MR_OK;
}

/* Attention geometry: heads, key/value heads, head_dim, biases, q/k norms, clip_qkv. */
static int read_attention(mr_hf_json *j, mr_hf_spec *s)
{
    mr_config *c = &s->cfg;
    int f = s->family;
    MR_TRY(mr_hf_json_int(j, j->root, "num_attention_heads", MR_HF_NO_DEFAULT, 1, 4096,
                          &c->n_heads));
    /* OlmoeConfig turns an absent num_key_value_heads into the heads; MixtralConfig,
     * Qwen2MoeConfig and Qwen3MoeConfig default it to their reference size's 8, 16 and 4,
     * a guess for any other model: required there, as hidden_size is. */
    MR_TRY(mr_hf_json_int(j, j->root, "num_key_value_heads",
                          f == MR_HF_OLMOE ? c->n_heads : MR_HF_NO_DEFAULT, 1, c->n_heads,
                          &c->n_kv_heads));
    if (c->n_heads % c->n_kv_heads)
        return mr_hf_refuse(j, "num_key_value_heads", mr_hf_json_get(j->root, "num_key_value_heads"),
                            "must divide num_attention_heads");
    int dflt = c->d_model / c->n_heads;
    if (f == MR_HF_MIXTRAL || f == MR_HF_QWEN3_MOE) {
        /* MixtralAttention / Qwen3MoeAttention read an optional head_dim */
        MR_TRY(mr_hf_json_int(j, j->root, "head_dim", dflt, 1, MR_MAX_D_MODEL, &c->head_dim));
    } else {
        /* OlmoeAttention and Qwen2MoeAttention use hidden_size / num_attention_heads */
        if (c->d_model % c->n_heads)
            return mr_hf_refuse(j, "num_attention_heads", mr_hf_json_get(j->root, "num_attention_heads"),
                                "must divide hidden_size");
        MR_TRY(mr_hf_json_int(j, j->root, "head_dim", dflt, dflt, dflt, &c->head_dim));
    }
    if (c->head_dim % 2 && mr_hf_json_get(j->root, "head_dim"))
        return mr_hf_refuse(j, "head_dim", mr_hf_json_get(j->root, "head_dim"),
                            "must be even: rotary embeddings rotate halves");
    MR_REQUIRE(c->head_dim % 2 == 0, MR_EINPUT,
               "%s: head_dim = %d (hidden_size / num_attention_heads, no head_dim key) must be "
               "even: rotary embeddings rotate halves", j->path, c->head_dim);
    int ab = 0;
    if (f == MR_HF_QWEN2_MOE) { /* q/k/v with bias, o_proj without (Qwen2MoeAttention) */
        MR_TRY(mr_hf_json_bool(j, j->root, "qkv_bias", 1, &s->qkv_bias));
        s->o_bias = 0;
    } else if (f != MR_HF_MIXTRAL) { /* attention_bias: q, k, v and o */
        MR_TRY(mr_hf_json_bool(j, j->root, "attention_bias", 0, &ab));
        s->qkv_bias = s->o_bias = ab;
    }
    c->qk_norm = f == MR_HF_OLMOE ? MR_QK_NORM_FULL : f == MR_HF_QWEN3_MOE ? MR_QK_NORM_HEAD
                                                                           : MR_QK_NORM_NONE;
    c->clip_qkv = 0.0;
    if (f == MR_HF_OLMOE) MR_TRY(mr_hf_json_num(j, j->root, "clip_qkv", 0.0, 1e-30, 1e30, &c->clip_qkv));
    return MR_OK;
}

/* Sliding windows are not implemented; a window as long as the sequences is inactive.
 * mixtral applies sliding_window whenever it is set (create_sliding_window_causal_mask);
 * qwen2_moe and qwen3_moe only with use_sliding_window. */
static int check_sliding_window(mr_hf_json *j, const mr_hf_spec *s)
{
    int use = s->family == MR_HF_MIXTRAL, win = 0;
    if (s->family == MR_HF_QWEN2_MOE || s->family == MR_HF_QWEN3_MOE)
        MR_TRY(mr_hf_json_bool(j, j->root, "use_sliding_window", 0, &use));
    if (!use) return MR_OK;
    MR_TRY(mr_hf_json_int(j, j->root, "sliding_window", 0, 0, 1 << 30, &win));
    if (s->family == MR_HF_MIXTRAL && !mr_hf_json_get(j->root, "sliding_window")) return MR_OK;
    if (win >= s->cfg.max_seq_len) return MR_OK;
    char why[160];
    snprintf(why, sizeof why,
             "an active sliding window is not implemented (a window >= the sequence length is "
             "inactive: import with --max-seq-len %d or less)", win);
    return mr_hf_refuse(j, s->family == MR_HF_MIXTRAL ? "sliding_window" : "use_sliding_window",
                        mr_hf_json_get(j->root, s->family == MR_HF_MIXTRAL ? "sliding_window"
                                                                          : "use_sliding_window"),
                        why);
}

/* Experts, top-k, renormalisation, and which layers are MoE (the rest dense MLPs). */
static int read_moe(mr_hf_json *j, mr_hf_spec *s)
{
    mr_config *c = &s->cfg;
    int f = s->family, L = c->n_layers;
    int qwen = f == MR_HF_QWEN2_MOE || f == MR_HF_QWEN3_MOE;
    MR_TRY(mr_hf_json_int(j, j->root, f == MR_HF_MIXTRAL ? "num_local_experts" : "num_experts",
                          MR_HF_NO_DEFAULT, 1, MR_MAX_EXPERTS, &c->n_experts));
    MR_TRY(mr_hf_json_int(j, j->root, qwen ? "moe_intermediate_size" : "intermediate_size",
                          MR_HF_NO_DEFAULT, 1, MR_MAX_HIDDEN, &c->expert_hidden));
    MR_TRY(mr_hf_json_int(j, j->root, "num_experts_per_tok", MR_HF_NO_DEFAULT, 1,
                          c->n_experts, &c->top_k));
    int renorm = 1; /* MixtralSparseMoeBlock always renormalises */
    if (f != MR_HF_MIXTRAL) MR_TRY(mr_hf_json_bool(j, j->root, "norm_topk_prob", 0, &renorm));
    c->gate_norm = renorm ? MR_GATE_RENORM : MR_GATE_NONE;
    c->moe_layers = malloc(((size_t)L + 1) * sizeof *c->moe_layers);
    if (!c->moe_layers) return mr_error_set(MR_ENOMEM, "out of memory");
    c->n_moe = 0;
    int step = 1;
    char *only = calloc((size_t)L + 1, 1);
    if (!only) return mr_error_set(MR_ENOMEM, "out of memory");
    int st = MR_OK;
    if (qwen) {
        /* Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer: an MoE block unless the layer is in
         * mlp_only_layers or (L + 1) % decoder_sparse_step != 0 */
        st = mr_hf_json_int(j, j->root, "decoder_sparse_step", 1, 1, L, &step);
        if (st == MR_OK) st = mr_hf_json_index_list(j, j->root, "mlp_only_layers", L, only);
    }
    for (int l = 0; st == MR_OK && l < L; l++)
        if (!only[l] && (l + 1) % step == 0) c->moe_layers[c->n_moe++] = l;
    free(only);
    MR_TRY(st);
    if (c->n_moe == 0)
        return mr_hf_refuse(j, "mlp_only_layers", mr_hf_json_get(j->root, "mlp_only_layers"),
                            "leaves no MoE layer (with decoder_sparse_step)");
    c->d_ff = 0;
    if (c->n_moe < L)
        MR_TRY(mr_hf_json_int(j, j->root, "intermediate_size", MR_HF_NO_DEFAULT, 1,
                              MR_MAX_HIDDEN, &c->d_ff));
    c->shared_hidden = 0;
    if (f == MR_HF_QWEN2_MOE)
        MR_TRY(mr_hf_json_int(j, j->root, "shared_expert_intermediate_size", MR_HF_NO_DEFAULT, 1,
                              MR_MAX_HIDDEN, &c->shared_hidden));
    return MR_OK;
}

/* Keys that mean an architecture the engine does not run. */
static int refuse_unimplemented(mr_hf_json *j)
{
    static const char *const mla[] = {"q_lora_rank", "kv_lora_rank"};
    for (int i = 0; i < 2; i++)
        if (mr_hf_json_get(j->root, mla[i]))
            return mr_hf_refuse(j, mla[i], mr_hf_json_get(j->root, mla[i]),
                                "multi-head latent attention is not implemented");
    if (mr_hf_json_get(j->root, "quantization_config"))
        return mr_hf_refuse(j, "quantization_config", NULL, "quantized weights are not implemented");
    char act[64];
    MR_TRY(mr_hf_json_str(j, j->root, "hidden_act", "silu", act, sizeof act));
    if (strcmp(act, "silu") != 0)
        return mr_hf_refuse(j, "hidden_act", mr_hf_json_get(j->root, "hidden_act"),
                            "only silu (SwiGLU experts) is implemented");
    return MR_OK;
}

static int read_spec(mr_hf_json *j, mr_hf_spec *s, int max_seq_len)
{
    mr_config *c = &s->cfg;
    char mt[64];
    MR_TRY(mr_hf_json_str(j, j->root, "model_type", NULL, mt, sizeof mt));
    s->family = -1;
    for (int i = 0; i <= MR_HF_OLMOE; i++)
        if (strcmp(mt, family_names[i]) == 0) s->family = i;
    if (s->family < 0)
        return mr_hf_refuse(j, "model_type", mr_hf_json_get(j->root, "model_type"),
                            "is not a supported family (mixtral, qwen2_moe, qwen3_moe, olmoe)");
    MR_TRY(refuse_unimplemented(j));
    c->task = MR_TASK_LM;
    MR_TRY(mr_hf_json_int(j, j->root, "hidden_size", MR_HF_NO_DEFAULT, 1, MR_MAX_D_MODEL,
                          &c->d_model));
    MR_TRY(mr_hf_json_int(j, j->root, "num_hidden_layers", MR_HF_NO_DEFAULT, 1, MR_MAX_LAYERS,
                          &c->n_layers));
    MR_TRY(mr_hf_json_int(j, j->root, "vocab_size", MR_HF_NO_DEFAULT, 2, MR_MAX_VOCAB,
                          &c->vocab_size));
    mr_config_v1_defaults(c);
    c->format_version = 2;
    c->norm = MR_NORM_RMS;
    c->position = MR_POS_ROPE;
    c->activation = MR_ACT_SWIGLU;
    c->has_vocab = 0;
    snprintf(c->router, sizeof c->router, "softmax");
    MR_TRY(read_attention(j, s));
    MR_TRY(read_rope(j, c, s->family));
    /* the configuration classes' defaults: mixtral and olmoe 1e-5, the qwen families 1e-6 */
    double eps;
    int qwen = s->family == MR_HF_QWEN2_MOE || s->family == MR_HF_QWEN3_MOE;
    MR_TRY(mr_hf_json_num(j, j->root, "rms_norm_eps", qwen ? 1e-6 : 1e-5, 1e-30, 0.5, &eps));
    c->norm_eps = (float)eps;
    MR_TRY(mr_hf_json_int(j, j->root, "max_position_embeddings", MR_HF_NO_DEFAULT, 1,
                          1 << 30, &s->max_position));
    int cap = s->max_position < MR_MAX_SEQ ? s->max_position : MR_MAX_SEQ;
    if (max_seq_len > cap)
        return mr_error_set(MR_EINPUT, "--max-seq-len %d exceeds max_position_embeddings = %d "
                                       "(or the engine's %d)", max_seq_len, s->max_position,
                            MR_MAX_SEQ);
    c->max_seq_len = max_seq_len > 0 ? max_seq_len : cap;
    MR_TRY(mr_hf_json_bool(j, j->root, "tie_word_embeddings", 0, &c->tie_head));
    MR_TRY(read_moe(j, s));
    MR_TRY(check_sliding_window(j, s));
    int st = mr_config_check(c);
    return st == MR_OK ? MR_OK : mr_error_prefix(st, "%s", j->path);
}

int mr_hf_read_config(mr_hf_spec *s, const char *dir, int max_seq_len)
{
    memset(s, 0, sizeof *s);
    mr_hf_json j;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    MR_TRY(mr_hf_json_load(&j, path));
    int st = read_spec(&j, s, max_seq_len);
    mr_hf_json_free(&j);
    if (st != MR_OK) mr_hf_spec_free(s);
    return st;
}
