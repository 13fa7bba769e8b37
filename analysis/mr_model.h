/* mr_model.h — an MoE transformer's configuration and weights (docs/model-format.md).
 *
 * Ownership: a model is created by mr_model_load() (io/mr_model_io.h) or
 * mr_model_alloc() and released by mr_model_free(); every weight pointer points
 * into the model's single weight arena and must not be freed on its own.
 * A loaded model is read-only and may be shared by any number of threads.
 */
#ifndef MR_MODEL_H
#define MR_MODEL_H

#include <stddef.h>

enum mr_task { MR_TASK_CLASSIFY = 0, MR_TASK_LM = 1 };
/* swiglu: silu(x W_gate^T) * (x W_up^T), the gate and up projections stacked in one
 * weight (format v2, docs/model-format.md) */
enum mr_activation { MR_ACT_GELU = 0, MR_ACT_RELU = 1, MR_ACT_SWIGLU = 2 };
enum mr_gate_norm { MR_GATE_RENORM = 0, MR_GATE_NONE = 1 };
enum mr_pool { MR_POOL_CLS = 0, MR_POOL_MEAN = 1 };
/* Format v2 (docs/model-format.md); version 1 files always have the first of each. */
enum mr_norm { MR_NORM_LAYER = 0, MR_NORM_RMS = 1 };
enum mr_position { MR_POS_LEARNED = 0, MR_POS_ROPE = 1 };
enum mr_qk_norm { MR_QK_NORM_NONE = 0, MR_QK_NORM_HEAD = 1, MR_QK_NORM_FULL = 2 };

#define MR_NAME_LEN 64

/* Limits the loader enforces before any allocation (overflow bait is refused). */
#define MR_MAX_D_MODEL 65536
#define MR_MAX_LAYERS 1024
#define MR_MAX_EXPERTS 4096
#define MR_MAX_HIDDEN (1 << 20)
#define MR_MAX_VOCAB (1 << 20)
#define MR_MAX_SEQ (1 << 16)
#define MR_MAX_IMAGE 8192
#define MR_MAX_CLASSES (1 << 20)
#define MR_MAX_PARAMS ((size_t)1 << 33) /* 8 Gi floats = 32 GiB */

typedef struct mr_config {
    int task;            /* enum mr_task */
    int d_model;         /* d */
    int n_layers;
    int n_heads;
    int d_ff;            /* dense FFN hidden width F */
    int n_experts;       /* E */
    int top_k;           /* k */
    int expert_hidden;   /* h */
    float norm_eps;
    int activation;      /* enum mr_activation */
    int gate_norm;       /* enum mr_gate_norm */
    char router[MR_NAME_LEN]; /* router the model was trained with */
    int n_moe;           /* number of MoE blocks */
    int *moe_layers;     /* [n_moe] block indices, increasing (owned by the model) */
    /* classify */
    int image_h, image_w, channels, patch, n_classes, pool;
    /* lm */
    int vocab_size, max_seq_len;
    /* format v2 (a version 1 file has the defaults noted) */
    int format_version;  /* 1 or 2 */
    int norm;            /* enum mr_norm (layernorm) */
    int position;        /* enum mr_position (learned) */
    double rope_theta;   /* RoPE base (rope only) */
    double rope_scaling; /* linear RoPE scaling factor, 1 = none */
    int n_kv_heads;      /* key/value heads (n_heads); must divide n_heads */
    int head_dim;        /* per-head width (d_model / n_heads) */
    int qk_norm;         /* enum mr_qk_norm (none) */
    double clip_qkv;     /* clamp q, k, v to [-c, c] after the projections; 0 = off */
    int shared_hidden;   /* hidden width of the shared expert, 0 = none */
    int tie_head;        /* 1: the LM head is /embed/tok (no /head/w) */
    int has_vocab;       /* lm: /vocab (code points) present; required in version 1 */
    /* derived */
    int q_dim, kv_dim;   /* n_heads * head_dim, n_kv_heads * head_dim */
    int qkv_dim;         /* rows of attn_qkv_w: q_dim + 2 kv_dim */
    int n_patches;       /* (H/P)*(W/P) for classify, 0 for lm */
    int n_pos;           /* rows of /embed/pos */
    int n_out;           /* n_classes or vocab_size */
} mr_config;

/* A router-specific float tensor or scalar read from /layers/L/moe/router/NAME. */
typedef struct mr_named_tensor {
    char name[MR_NAME_LEN];
    int ndim;            /* 0 for a scalar */
    size_t dims[4];
    size_t size;         /* number of floats */
    float *data;         /* points into the weight arena */
} mr_named_tensor;

typedef struct mr_layer {
    int is_moe;
    int moe_index;       /* 0.. n_moe-1 for MoE blocks, -1 for dense */
    /* Shapes for version 1 (v2 in brackets where they differ: Q = q_dim, QKV = qkv_dim,
     * a = 2 for swiglu, 1 otherwise). Biases marked "v2: NULL if absent" are optional in
     * v2, and so are ln*_b (NULL for rmsnorm). */
    float *ln1_w, *ln1_b;        /* [d] */
    float *attn_qkv_w;           /* [3d, d]  (v2 [QKV, d]: Q rows, K rows, V rows) */
    float *attn_qkv_b;           /* [3d]     (v2 [QKV]; NULL if absent) */
    float *attn_out_w;           /* [d, d]   (v2 [d, Q]) */
    float *attn_out_b;           /* [d]      (v2: NULL if absent) */
    float *q_norm_w, *k_norm_w;  /* v2 qk_norm: [head_dim] (head) or [Q], [kv_dim] (full) */
    float *ln2_w, *ln2_b;        /* [d] */
    /* dense block */
    float *ffn_w1;               /* [F, d]   (v2 [a*F, d]: gate rows, then up rows) */
    float *ffn_b1;               /* [F]      (v2 [a*F]; NULL if absent) */
    float *ffn_w2;               /* [d, F] */
    float *ffn_b2;               /* [d]      (v2: NULL if absent) */
    /* MoE block */
    float *gate_w;               /* [E, d] */
    float *gate_b;               /* [E]; zeros when the file has none */
    int has_gate_b;
    float *exp_w1;               /* [E, h, d] (v2 [E, a*h, d]) */
    float *exp_b1;               /* [E, h]    (v2 [E, a*h]; NULL if absent) */
    float *exp_w2;               /* [E, d, h] */
    float *exp_b2;               /* [E, d]    (v2: NULL if absent) */
    float *shared_w1;            /* v2 shared expert [a*S, d], or NULL (S = shared_hidden) */
    float *shared_w2;            /* [d, S] */
    float *shared_gate_w;        /* [1, d]: output scaled by sigmoid(w . x); NULL = 1 */
    int n_router_tensors;
    mr_named_tensor *router_tensors; /* [n_router_tensors], owned by the model */
} mr_layer;

typedef struct mr_model {
    mr_config cfg;
    /* embeddings */
    float *patch_w;              /* [d, P*P*C] (classify) */
    float *patch_b;              /* [d] */
    float *cls;                  /* [d] (pool = cls) */
    float *tok;                  /* [V, d] (lm) */
    int *vocab;                  /* [V] code points (lm; NULL in a v2 file without /vocab) */
    float *pos;                  /* [n_pos, d]; NULL with RoPE */
    mr_layer *layers;            /* [n_layers] */
    float *head_ln_w, *head_ln_b;/* [d] */
    float *head_w;               /* [n_out, d]; = tok when tie_head */
    float *head_b;               /* [n_out]; v2: NULL if absent */
    float *arena;                /* the one allocation all float weights live in */
    size_t n_arena;              /* floats in the arena */
    size_t n_params;             /* parameter count (router hyperparameters excluded) */
    char path[1024];             /* file it was loaded from */
} mr_model;

/* Check a configuration's values and their consistency; fills the derived fields.
 * Returns MR_EINPUT with a message naming the attribute on the first problem. */
int mr_config_check(mr_config *cfg);

/* Number of floats each tensor family needs; 0 on overflow beyond MR_MAX_PARAMS. */
size_t mr_config_param_count(const mr_config *cfg);

/* Sequence length the engine runs for a classify model (n_patches + cls). */
int mr_config_seq_len(const mr_config *cfg);

/* Router tensor lookup: NULL if layer L has no router tensor of that name. */
const mr_named_tensor *mr_layer_router_tensor(const mr_layer *layer, const char *name);

const char *mr_task_name(int task);
const char *mr_activation_name(int act);
const char *mr_gate_norm_name(int g);
const char *mr_pool_name(int p);
const char *mr_norm_name(int n);
const char *mr_position_name(int p);
const char *mr_qk_norm_name(int q);

/* Set the version 2 fields to what a version 1 file means (format_version 1, layernorm,
 * learned positions, n_kv_heads = n_heads, head_dim = d_model / n_heads, ...). Call
 * after n_heads and d_model are set, before mr_config_check. */
void mr_config_v1_defaults(mr_config *cfg);

/* A zero-filled model for configuration cfg (checked with mr_config_check; moe_layers is
 * copied). Every weight pointer is set, in the order of docs/model-format.md, into one
 * arena of mr_config_param_count(cfg) + extra floats; the caller may carve router
 * tensors out of the `extra` floats that follow m->arena + m->n_params. Every MoE block
 * gets has_gate_b = 1 and no router tensors. Format 2: the optional tensors (biases,
 * shared_gate_w) are allocated too (zeros: the same computation as absent), head_w is tok
 * with tie_head, and /vocab only with has_vocab. Used to build derived models
 * (compression) that io/mr_model_write.h then saves. *out is NULL on error. */
int mr_model_alloc(mr_model **out, const mr_config *cfg, size_t extra);

/* Frees everything a model owns; accepts NULL. */
void mr_model_free(mr_model *m);

#endif
