/* Hugging Face MoE checkpoint -> model format v2 (docs/import.md, docs/model-format.md).
 *
 * The checkpoint's tensors are mapped onto the datasets of the model's plan
 * (io/mr_model_plan.h) as "pieces": a tensor [R, C] (or [R]) lands R rows into a dataset
 * at a fixed start, e.g. q_proj, k_proj, v_proj stacked into attn_qkv_w, an expert's
 * gate_proj and up_proj into rows 0..h-1 and h..2h-1 of moe/w1[j] (the SwiGLU layout of
 * format v2). Names follow the transformers modeling files (MixtralSparseMoeBlock:
 * block_sparse_moe.experts.J.w1/w3/w2; the others mlp.experts.J.gate_proj/up_proj/
 * down_proj, Qwen2MoeSparseMoeBlock's shared_expert and shared_expert_gate).
 *
 * Everything is checked before the output is created: every tensor present with the shape
 * the config implies and the dtype config.json's torch_dtype names, no tensor left over,
 * the index and the shards agreeing. Tensors are then copied a block of rows at a time
 * (at most 16 Mi floats in memory), converted exactly to float32; a NaN or infinite value
 * stops the import naming the file and tensor, and the temporary output is removed. */
#include "mr_hf_import.h"

#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_array.h"
#include "mr_file.h"
#include "mr_fs.h"
#include "mr_h5.h"
#include "mr_hf_json.h"
#include "mr_model_write.h"
#include "../analysis/mr_model_plan.h"
#include "mr_safetensors.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define BLOCK_FLOATS ((size_t)16 << 20)

/* ---- the checkpoint: shards and the tensor -> shard map ---------------------------- */

typedef struct ckpt {
    const char *dir;
    int n;                 /* shards */
    char **names;          /* [n] file names in dir */
    mr_st_file **files;    /* [n] */
    unsigned char **used;  /* [n][tensors of the file] */
    mr_hf_json index;      /* root NULL without an index */
} ckpt;

static void ckpt_free(ckpt *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->names[i]);
        mr_st_close(c->files[i]);
        free(c->used[i]);
    }
    free(c->names);
    free(c->files);
    free(c->used);
    mr_hf_json_free(&c->index);
}

static int shard_index(const ckpt *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->names[i], name) == 0) return i;
    return -1;
}

/* Open shard `name` (a plain file name of dir) as entry c->n; `why` names a tensor the
 * index maps to it, for the message when it is missing. */
static int add_shard(ckpt *c, const char *name, const char *why)
{
    MR_REQUIRE(name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 256, MR_EINPUT,
               "%s/%s: shard name '%s' (for tensor %s) is not a file name of the directory",
               c->dir, INDEX_NAME, name, why);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    struct stat sb;
    MR_REQUIRE(stat(path, &sb) == 0, MR_EINPUT, "%s: missing shard (%s maps tensor %s to it)",
               path, INDEX_NAME, why);
    char **nn = realloc(c->names, ((size_t)c->n + 1) * sizeof *nn);
    if (nn) c->names = nn;
    mr_st_file **nf = realloc(c->files, ((size_t)c->n + 1) * sizeof *nf);
    if (nf) c->files = nf;
    unsigned char **nu = realloc(c->used, ((size_t)c->n + 1) * sizeof *nu);
    if (nu) c->used = nu;
    if (!nn || !nf || !nu || !(c->names[c->n] = strdup(name)))
        return mr_error_set(MR_ENOMEM, "out of memory");
    c->files[c->n] = NULL;
    c->used[c->n] = NULL;
    c->n++;
    MR_TRY(mr_st_open(&c->files[c->n - 1], path));
    c->used[c->n - 1] = calloc((size_t)c->files[c->n - 1]->n + 1, 1);
    if (!c->used[c->n - 1]) return mr_error_set(MR_ENOMEM, "out of memory");
    return MR_OK;
}

/* The index's weight_map and the shards must agree tensor by tensor. */
static int check_index(ckpt *c, const cJSON *map)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        int s = shard_index(c, e->valuestring);
        MR_REQUIRE(mr_st_find(c->files[s], e->string), MR_EINPUT,
                   "%s/%s: tensor %s, which %s maps to this shard, is not in it", c->dir,
                   c->names[s], e->string, INDEX_NAME);
    }
    for (int s = 0; s < c->n; s++)
        for (int i = 0; i < c->files[s]->n; i++) {
            const char *t = c->files[s]->tensors[i].name;
            const cJSON *to = cJSON_GetObjectItemCaseSensitive(map, t);
            MR_REQUIRE(to, MR_EINPUT, "%s/%s: tensor %s is not in %s", c->dir, c->names[s], t,
                       INDEX_NAME);
            MR_REQUIRE(strcmp(to->valuestring, c->names[s]) == 0, MR_EINPUT,
                       "%s/%s: tensor %s is also in this shard, but %s maps it to %s", c->dir,
                       c->names[s], t, INDEX_NAME, to->valuestring);
        }
    return MR_OK;
}

static int ckpt_open(ckpt *c, const char *dir)
{
    memset(c, 0, sizeof *c);
    c->dir = dir;
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, INDEX_NAME);
    if (stat(path, &sb) != 0) {
        snprintf(path, sizeof path, "%s/%s", dir, SINGLE_NAME);
        MR_REQUIRE(stat(path, &sb) == 0, MR_EINPUT, "%s: neither %s nor %s", dir, SINGLE_NAME,
                   INDEX_NAME);
        return add_shard(c, SINGLE_NAME, "(all)");
    }
    MR_TRY(mr_hf_json_load(&c->index, path));
    const cJSON *map = mr_hf_json_get(c->index.root, "weight_map");
    MR_REQUIRE(cJSON_IsObject(map) && cJSON_GetArraySize(map) > 0, MR_EINPUT,
               "%s: weight_map must be a non-empty object", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        MR_REQUIRE(cJSON_IsString(e) && e->valuestring, MR_EINPUT,
                   "%s: weight_map[%s] is not a file name", path, e->string);
        if (shard_index(c, e->valuestring) < 0) MR_TRY(add_shard(c, e->valuestring, e->string));
    }
    return check_index(c, map);
}

/* The file and tensor called `name` (marked used), or MR_EINPUT naming what is missing. */
static int ckpt_find(ckpt *c, const char *name, int *file, const mr_st_tensor **t)
{
    int s = 0;
    if (c->index.root) {
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(
            mr_hf_json_get(c->index.root, "weight_map"), name);
        MR_REQUIRE(to, MR_EINPUT, "%s: tensor %s is missing (not in %s)", c->dir, name,
                   INDEX_NAME);
        s = shard_index(c, to->valuestring);
    }
    *t = mr_st_find(c->files[s], name);
    MR_REQUIRE(*t, MR_EINPUT, "%s/%s: tensor %s is missing", c->dir, c->names[s], name);
    c->used[s][*t - c->files[s]->tensors] = 1;
    *file = s;
    return MR_OK;
}

/* ---- pieces: checkpoint tensors -> rows of the model's datasets --------------------- */

typedef struct piece {
    char name[192];        /* checkpoint tensor */
    int item;              /* plan item */
    long long rows, cols;  /* expected shape [rows, cols], or [rows] when cols = 0 */
    hsize_t start[3];      /* the dataset index its row 0 lands at */
    int file;
    const mr_st_tensor *t;
} piece;

typedef struct pieces {
    piece *p;
    int n, cap;
    mr_plan *plan;
} pieces;

/* Tensor `name` [rows, cols] to rows start.. of dataset `path`; the row axis is the
 * dataset's second-to-last (last for a 1-D piece), lead = the index before it (expert). */
static int put(pieces *ps, const char *path, hsize_t lead, hsize_t row, long long rows,
               long long cols, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static int put(pieces *ps, const char *path, hsize_t lead, hsize_t row, long long rows,
               long long cols, const char *fmt, ...)
{
    mr_plan_item *it = mr_plan_find(ps->plan, path);
    if (!it) return mr_error_set(MR_EFAILED, "import: no dataset %s in the plan", path);
    MR_TRY(mr_array_grow(&ps->p, &ps->cap, ps->n, sizeof *ps->p, 256));
    piece *pc = &ps->p[ps->n++];
    memset(pc, 0, sizeof *pc);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pc->name, sizeof pc->name, fmt, ap);
    va_end(ap);
    pc->item = (int)(it - ps->plan->items);
    pc->rows = rows;
    pc->cols = cols;
    if (it->rank == 3) {
        pc->start[0] = lead;
        pc->start[1] = row;
    } else {
        pc->start[0] = row;
    }
    return MR_OK;
}

static int attention_pieces(pieces *ps, const mr_hf_spec *s, int l)
{
    const mr_config *c = &s->cfg;
    long long d = c->d_model, Q = c->q_dim, KV = c->kv_dim;
    const char *p = "model.layers";
    char w[64], b[64];
    snprintf(w, sizeof w, "/layers/%d/attn_qkv_w", l);
    snprintf(b, sizeof b, "/layers/%d/attn_qkv_b", l);
    const char *proj[3] = {"q", "k", "v"};
    long long rows[3] = {Q, KV, KV}, at[3] = {0, Q, Q + KV};
    for (int i = 0; i < 3; i++) {
        MR_TRY(put(ps, w, 0, (hsize_t)at[i], rows[i], d, "%s.%d.self_attn.%s_proj.weight", p, l,
                   proj[i]));
        if (s->qkv_bias)
            MR_TRY(put(ps, b, 0, (hsize_t)at[i], rows[i], 0, "%s.%d.self_attn.%s_proj.bias", p, l,
                       proj[i]));
    }
    snprintf(w, sizeof w, "/layers/%d/attn_out_w", l);
    MR_TRY(put(ps, w, 0, 0, d, Q, "%s.%d.self_attn.o_proj.weight", p, l));
    snprintf(b, sizeof b, "/layers/%d/attn_out_b", l);
    if (s->o_bias) MR_TRY(put(ps, b, 0, 0, d, 0, "%s.%d.self_attn.o_proj.bias", p, l));
    if (c->qk_norm != MR_QK_NORM_NONE) {
        int full = c->qk_norm == MR_QK_NORM_FULL;
        snprintf(w, sizeof w, "/layers/%d/q_norm_w", l);
        MR_TRY(put(ps, w, 0, 0, full ? Q : c->head_dim, 0, "%s.%d.self_attn.q_norm.weight", p, l));
        snprintf(w, sizeof w, "/layers/%d/k_norm_w", l);
        MR_TRY(put(ps, w, 0, 0, full ? KV : c->head_dim, 0, "%s.%d.self_attn.k_norm.weight", p, l));
    }
    return MR_OK;
}

/* A SwiGLU MLP (gate, up, down) into w1 (gate rows, then up rows) and w2; lead = expert. */
static int mlp_pieces(pieces *ps, const char *w1, const char *w2, hsize_t lead, long long d,
                      long long H, const char *gate, const char *up, const char *down)
{
    MR_TRY(put(ps, w1, lead, 0, H, d, "%s", gate));
    MR_TRY(put(ps, w1, lead, (hsize_t)H, H, d, "%s", up));
    return put(ps, w2, lead, 0, d, H, "%s", down);
}

static int moe_pieces(pieces *ps, const mr_hf_spec *s, int l)
{
    const mr_config *c = &s->cfg;
    long long d = c->d_model, h = c->expert_hidden;
    int mixtral = s->family == MR_HF_MIXTRAL;
    char w1[64], w2[64], g[192], u[192], dn[192];
    snprintf(w1, sizeof w1, "/layers/%d/moe/gate_w", l);
    MR_TRY(put(ps, w1, 0, 0, c->n_experts, d, "model.layers.%d.%s.gate.weight", l,
               mixtral ? "block_sparse_moe" : "mlp"));
    snprintf(w1, sizeof w1, "/layers/%d/moe/w1", l);
    snprintf(w2, sizeof w2, "/layers/%d/moe/w2", l);
    for (int e = 0; e < c->n_experts; e++) {
        const char *pre = mixtral ? "block_sparse_moe" : "mlp";
        snprintf(g, sizeof g, "model.layers.%d.%s.experts.%d.%s.weight", l, pre, e,
                 mixtral ? "w1" : "gate_proj");
        snprintf(u, sizeof u, "model.layers.%d.%s.experts.%d.%s.weight", l, pre, e,
                 mixtral ? "w3" : "up_proj");
        snprintf(dn, sizeof dn, "model.layers.%d.%s.experts.%d.%s.weight", l, pre, e,
                 mixtral ? "w2" : "down_proj");
        MR_TRY(mlp_pieces(ps, w1, w2, (hsize_t)e, d, h, g, u, dn));
    }
    if (c->shared_hidden > 0) {
        snprintf(w1, sizeof w1, "/layers/%d/moe/shared_w1", l);
        snprintf(w2, sizeof w2, "/layers/%d/moe/shared_w2", l);
        snprintf(g, sizeof g, "model.layers.%d.mlp.shared_expert.gate_proj.weight", l);
        snprintf(u, sizeof u, "model.layers.%d.mlp.shared_expert.up_proj.weight", l);
        snprintf(dn, sizeof dn, "model.layers.%d.mlp.shared_expert.down_proj.weight", l);
        MR_TRY(mlp_pieces(ps, w1, w2, 0, d, c->shared_hidden, g, u, dn));
        snprintf(w1, sizeof w1, "/layers/%d/moe/shared_gate_w", l);
        MR_TRY(put(ps, w1, 0, 0, 1, d, "model.layers.%d.mlp.shared_expert_gate.weight", l));
    }
    return MR_OK;
}

static int build_pieces(pieces *ps, const mr_hf_spec *s, const mr_model *m)
{
    const mr_config *c = &s->cfg;
    long long d = c->d_model;
    MR_TRY(put(ps, "/embed/tok", 0, 0, c->vocab_size, d, "model.embed_tokens.weight"));
    for (int l = 0; l < c->n_layers; l++) {
        char w[64], w2[64];
        snprintf(w, sizeof w, "/layers/%d/ln1_w", l);
        MR_TRY(put(ps, w, 0, 0, d, 0, "model.layers.%d.input_layernorm.weight", l));
        MR_TRY(attention_pieces(ps, s, l));
        snprintf(w, sizeof w, "/layers/%d/ln2_w", l);
        MR_TRY(put(ps, w, 0, 0, d, 0, "model.layers.%d.post_attention_layernorm.weight", l));
        if (m->layers[l].is_moe) {
            MR_TRY(moe_pieces(ps, s, l));
            continue;
        }
        char g[192], u[192], dn[192];
        snprintf(w, sizeof w, "/layers/%d/ffn/w1", l);
        snprintf(w2, sizeof w2, "/layers/%d/ffn/w2", l);
        snprintf(g, sizeof g, "model.layers.%d.mlp.gate_proj.weight", l);
        snprintf(u, sizeof u, "model.layers.%d.mlp.up_proj.weight", l);
        snprintf(dn, sizeof dn, "model.layers.%d.mlp.down_proj.weight", l);
        MR_TRY(mlp_pieces(ps, w, w2, 0, d, c->d_ff, g, u, dn));
    }
    MR_TRY(put(ps, "/head/ln_w", 0, 0, d, 0, "model.norm.weight"));
    if (!c->tie_head) MR_TRY(put(ps, "/head/w", 0, 0, c->vocab_size, d, "lm_head.weight"));
    return MR_OK;
}

/* ---- checks before writing --------------------------------------------------------- */

/* Every piece's tensor exists with its shape and the config's dtype (-1: any). */
static int check_pieces(pieces *ps, ckpt *ck, int want_dtype, const char *cfg_dtype)
{
    for (int i = 0; i < ps->n; i++) {
        piece *pc = &ps->p[i];
        MR_TRY(ckpt_find(ck, pc->name, &pc->file, &pc->t));
        const mr_st_tensor *t = pc->t;
        const char *f = ck->names[pc->file];
        int rank = pc->cols ? 2 : 1;
        int ok = t->rank == rank && t->shape[0] == pc->rows && (rank == 1 || t->shape[1] == pc->cols);
        char got[160];
        MR_REQUIRE(ok, MR_EINPUT, "%s/%s: tensor %s has shape %s, config.json implies [%lld%s%lld]",
                   ck->dir, f, t->name, mr_st_shape_str(got, sizeof got, t), pc->rows,
                   rank == 2 ? "," : "", rank == 2 ? pc->cols : 0LL);
        MR_REQUIRE(want_dtype < 0 || t->dtype == want_dtype, MR_EINPUT,
                   "%s/%s: tensor %s is %s, config.json torch_dtype = '%s'", ck->dir, f, t->name,
                   mr_st_dtype_name(t->dtype), cfg_dtype);
    }
    return MR_OK;
}

/* No tensor of the checkpoint is left out: one the model has no place for means the
 * architecture differs from what the config says. Ignored: rotary inv_freq buffers (older
 * checkpoints saved them; they are recomputed) and lm_head.weight of a tied model (the
 * head is the embedding, as PreTrainedModel.tie_weights makes it). */
static int check_leftovers(const ckpt *ck, int tied)
{
    for (int s = 0; s < ck->n; s++)
        for (int i = 0; i < ck->files[s]->n; i++) {
            const char *t = ck->files[s]->tensors[i].name;
            const char *inv = ".rotary_emb.inv_freq";
            size_t n = strlen(t), ni = strlen(inv);
            if (ck->used[s][i] || (n > ni && strcmp(t + n - ni, inv) == 0) ||
                (tied && strcmp(t, "lm_head.weight") == 0))
                continue;
            return mr_error_set(MR_EINPUT,
                                "%s/%s: tensor %s has no place in the model config.json describes",
                                ck->dir, ck->names[s], t);
        }
    return MR_OK;
}

/* torch_dtype (transformers 5: dtype) of config.json as a safetensors dtype, -1 if absent. */
static int config_dtype(const char *dir, char *name, size_t cap, int *out)
{
    mr_hf_json j;
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", dir);
    MR_TRY(mr_hf_json_load(&j, path));
    const char *key = mr_hf_json_get(j.root, "torch_dtype") ? "torch_dtype" : "dtype";
    int st = mr_hf_json_str(&j, j.root, key, "", name, cap);
    *out = -1;
    if (st == MR_OK && strcmp(name, "float32") == 0) *out = MR_ST_F32;
    else if (st == MR_OK && strcmp(name, "bfloat16") == 0) *out = MR_ST_BF16;
    else if (st == MR_OK && strcmp(name, "float16") == 0) *out = MR_ST_F16;
    else if (st == MR_OK && name[0] && strcmp(name, "auto") != 0)
        st = mr_hf_refuse(&j, key, mr_hf_json_get(j.root, key),
                          "is not a float dtype this import converts (float32, bfloat16, float16)");
    mr_hf_json_free(&j);
    return st;
}

/* ---- writing -------------------------------------------------------------------------- */

/* The configuration (mr_model_write_config) and where the model came from. */
static int write_attrs(hid_t f, const char *file, const mr_config *c, const char *dir, int family)
{
    MR_TRY(mr_model_write_config(f, file, c));
    int st = mr_h5_write_attr_string(f, "hf_model_type", mr_hf_family_name(family));
    if (st == MR_OK) st = mr_h5_write_attr_string(f, "hf_source", dir);
    return st == MR_OK ? MR_OK : mr_error_set(MR_EIO, "%s: cannot write attributes", file);
}

/* Copy one piece into its dataset, a block of rows at a time. */
static int write_piece(const ckpt *ck, const piece *pc, hid_t ds, int rank, float *buf)
{
    long long C = pc->cols ? pc->cols : 1;
    long long per = (long long)(BLOCK_FLOATS / (size_t)C);
    if (per < 1) per = 1;
    hid_t fs = H5Dget_space(ds);
    MR_REQUIRE(fs >= 0, MR_EIO, "cannot get a dataspace");
    int st = MR_OK;
    for (long long r0 = 0; st == MR_OK && r0 < pc->rows; r0 += per) {
        long long nr = pc->rows - r0 < per ? pc->rows - r0 : per;
        st = mr_st_read_range(ck->files[pc->file], pc->t, (uint64_t)(r0 * C), (uint64_t)(nr * C),
                              buf);
        if (st != MR_OK) break;
        hsize_t start[3] = {pc->start[0], pc->start[1], 0}, count[3] = {1, 1, 1};
        int ax = rank == 3 ? 1 : 0; /* the row axis */
        start[ax] += (hsize_t)r0;
        count[ax] = (hsize_t)nr;
        if (rank >= 2) count[ax + 1] = (hsize_t)C;
        hsize_t mdim = (hsize_t)(nr * C);
        hid_t ms = H5Screate_simple(1, &mdim, NULL);
        if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0)
            st = mr_error_set(MR_EIO, "cannot write %s", pc->name);
        if (ms >= 0) H5Sclose(ms);
    }
    H5Sclose(fs);
    return st;
}

/* Create every dataset that pieces fill (optional ones only if filled) and fill it. */
static int write_datasets(hid_t f, const ckpt *ck, const pieces *ps, mr_plan *plan)
{
    hid_t *ds = malloc(((size_t)plan->n + 1) * sizeof *ds);
    float *buf = malloc(BLOCK_FLOATS * sizeof *buf);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int st = ds && buf ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK && (dcpl < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0))
        st = mr_error_set(MR_EIO, "cannot set dataset properties");
    for (int i = 0; ds && i < plan->n; i++) ds[i] = -1;
    for (int i = 0; st == MR_OK && i < ps->n; i++) {
        const piece *pc = &ps->p[i];
        mr_plan_item *it = &plan->items[pc->item];
        if (ds[pc->item] < 0) {
            hsize_t dims[3] = {it->dims[0], it->dims[1], it->dims[2]};
            /* parent groups and the dataset without timestamps (item 19 of issue #23: same
             * bytes) */
            ds[pc->item] = mr_h5_create_dataset(f, it->path, H5T_IEEE_F32LE, it->rank, dims, dcpl);
            if (ds[pc->item] < 0) st = mr_error_set(MR_EIO, "cannot create dataset %s", it->path);
        }
        if (st == MR_OK) st = write_piece(ck, pc, ds[pc->item], it->rank, buf);
    }
    for (int i = 0; ds && i < plan->n; i++)
        if (ds[i] >= 0) H5Dclose(ds[i]);
    if (dcpl >= 0) H5Pclose(dcpl);
    free(ds);
    free(buf);
    return st;
}

/* Every required dataset is covered exactly by its pieces (a mapping error otherwise). */
static int check_coverage(const pieces *ps, mr_plan *plan)
{
    size_t *got = calloc((size_t)plan->n + 1, sizeof *got);
    if (!got) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; i < ps->n; i++)
        got[ps->p[i].item] += (size_t)ps->p[i].rows * (size_t)(ps->p[i].cols ? ps->p[i].cols : 1);
    int st = MR_OK;
    for (int i = 0; st == MR_OK && i < plan->n; i++) {
        mr_plan_item *it = &plan->items[i];
        if ((got[i] || it->optional == MR_PLAN_REQUIRED) && got[i] != mr_plan_item_size(it))
            st = mr_error_set(MR_EFAILED, "import: %s gets %zu of its %zu values", it->path,
                              got[i], mr_plan_item_size(it));
    }
    free(got);
    return st;
}

static int write_model(const char *out, const ckpt *ck, const pieces *ps, mr_plan *plan,
                       const mr_hf_spec *s)
{
    mr_atomic a; /* PATH.tmp-PID, renamed when complete (io/mr_file.h) */
    MR_TRY(mr_atomic_begin(&a, out));
    /* libhdf5 writes this file itself (it streams: the model never fits in memory twice),
     * and a write it cannot finish leaves the library in a state that crashes at exit (and
     * a failed H5Fcreate leaks inside libhdf5). So the disk space is reserved first: the
     * weights, plus generous room for metadata. A full disk is then one message naming the
     * file, before libhdf5 writes anything. H5Fcreate's truncation gives the reservation
     * back, so it is taken again once the file exists. */
    long long bytes = ((long long)1 << 20) + 4096LL * plan->n;
    for (int i = 0; i < ps->n; i++)
        bytes += 4LL * ps->p[i].rows * (ps->p[i].cols ? ps->p[i].cols : 1);
    int st = mr_fs_reserve(a.tmp, out, bytes);
    if (st != MR_OK) {
        mr_atomic_abort(&a);
        return st;
    }
    mr_h5_quiet();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fapl >= 0) H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    /* no object timestamps: the same checkpoint gives the same bytes (issue #23 item 19) */
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    hid_t f = H5Fcreate(a.tmp, H5F_ACC_TRUNC, fcpl, fapl);
    int e = errno; /* libhdf5 writes the superblock at once: a full disk fails here */
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0) {
        mr_atomic_abort(&a);
        if (e == ENOSPC || e == EDQUOT)
            return mr_error_set(MR_EIO, "%s: cannot write (%s)", out, mr_fs_strerror(e));
        return mr_error_set(MR_EINPUT, "%s: cannot create (directory missing or not writable?)", out);
    }
    st = mr_fs_reserve(a.tmp, out, bytes);
    if (st != MR_OK) {
        H5Fclose(f);
        mr_atomic_abort(&a);
        return st;
    }
    st = write_attrs(f, out, &s->cfg, ck->dir, s->family);
    if (st == MR_OK) st = write_datasets(f, ck, ps, plan);
    if (H5Fclose(f) < 0 && st == MR_OK) st = mr_error_set(MR_EIO, "%s: cannot finish writing", out);
    if (st == MR_OK) st = mr_fs_release(a.tmp, out);
    if (st == MR_OK) return mr_atomic_commit(&a);
    mr_atomic_abort(&a);
    return st;
}

int mr_hf_import(const char *dir, const char *out, const mr_hf_import_opts *o)
{
    mr_hf_spec s;
    MR_TRY(mr_hf_read_config(&s, dir, o ? o->max_seq_len : 0));
    char dtname[64];
    int dtype = -1; /* set by config_dtype; initialized for -Os, which cannot see it */
    ckpt ck;
    int st = config_dtype(dir, dtname, sizeof dtname, &dtype);
    mr_model m = {0};
    mr_plan plan = {0};
    pieces ps = {.plan = &plan};
    if (st == MR_OK) st = ckpt_open(&ck, dir);
    else memset(&ck, 0, sizeof ck);
    m.cfg = s.cfg;
    m.layers = calloc((size_t)s.cfg.n_layers, sizeof *m.layers);
    if (st == MR_OK && !m.layers) st = mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < s.cfg.n_moe; i++) m.layers[s.cfg.moe_layers[i]].is_moe = 1;
    if (st == MR_OK) st = mr_model_plan(&plan, &m);
    if (st == MR_OK) st = build_pieces(&ps, &s, &m);
    if (st == MR_OK) st = check_coverage(&ps, &plan);
    if (st == MR_OK) st = check_pieces(&ps, &ck, dtype, dtname);
    if (st == MR_OK) st = check_leftovers(&ck, s.cfg.tie_head);
    if (st == MR_OK) st = write_model(out, &ck, &ps, &plan, &s);
    free(ps.p);
    mr_model_plan_free(&plan);
    free(m.layers);
    ckpt_free(&ck);
    mr_hf_spec_free(&s);
    return st;
}
