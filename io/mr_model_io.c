#include "mr_model_io.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_h5.h"
#include "../analysis/mr_model_plan.h"

static int str_choice(const char *file, const char *attr, const char *val, const char *a,
                      const char *b, int *out)
{
    if (strcmp(val, a) == 0)
        *out = 0;
    else if (strcmp(val, b) == 0)
        *out = 1;
    else
        return mr_error_set(MR_EINPUT, "%s: attribute %s = '%s' must be '%s' or '%s'", file, attr,
                            val, a, b);
    return MR_OK;
}

/* Read an int attribute into an int field, refusing values outside int range. */
static int attr_to_int(hid_t f, const char *file, const char *name, int *out)
{
    long long v;
    MR_TRY(mr_h5_attr_int(f, file, name, &v, NULL));
    MR_REQUIRE(v >= -2147483647LL && v <= 2147483647LL, MR_EINPUT,
               "%s: attribute %s = %lld is out of range", file, name, v);
    *out = (int)v;
    return MR_OK;
}

/* One of n strings, as its index. */
static int str_choice_n(const char *file, const char *attr, const char *val,
                        const char *const *names, int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(val, names[i]) == 0) {
            *out = i;
            return MR_OK;
        }
    char list[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return mr_error_set(MR_EINPUT, "%s: attribute %s = '%s' must be one of %s", file, attr, val,
                        list);
}

/* Optional string attribute of format v2 mapped to an enum (unchanged when absent). */
static int attr_choice_opt(hid_t f, const char *file, const char *attr,
                           const char *const *names, int n, int *out)
{
    char s[MR_NAME_LEN];
    int found;
    MR_TRY(mr_h5_attr_string(f, file, attr, s, sizeof s, &found));
    return found ? str_choice_n(file, attr, s, names, n, out) : MR_OK;
}

static int attr_int_opt(hid_t f, const char *file, const char *name, int *out)
{
    long long v;
    int found;
    MR_TRY(mr_h5_attr_int(f, file, name, &v, &found));
    if (!found) return MR_OK;
    MR_REQUIRE(v >= -2147483647LL && v <= 2147483647LL, MR_EINPUT,
               "%s: attribute %s = %lld is out of range", file, name, v);
    *out = (int)v;
    return MR_OK;
}

/* The version 2 attributes (docs/model-format.md): each optional, absent = version 1. */
static int read_config_v2(hid_t f, const char *file, mr_config *c)
{
    static const char *const norms[] = {"layernorm", "rmsnorm"};
    static const char *const positions[] = {"learned", "rope"};
    static const char *const qk[] = {"none", "head", "full"};
    MR_TRY(attr_choice_opt(f, file, "norm", norms, 2, &c->norm));
    MR_TRY(attr_choice_opt(f, file, "position", positions, 2, &c->position));
    MR_TRY(attr_choice_opt(f, file, "qk_norm", qk, 3, &c->qk_norm));
    int found;
    MR_TRY(mr_h5_attr_double(f, file, "rope_theta", &c->rope_theta, &found));
    MR_TRY(mr_h5_attr_double(f, file, "rope_scaling", &c->rope_scaling, &found));
    MR_TRY(mr_h5_attr_double(f, file, "clip_qkv", &c->clip_qkv, &found));
    MR_TRY(attr_int_opt(f, file, "n_kv_heads", &c->n_kv_heads));
    MR_TRY(attr_int_opt(f, file, "head_dim", &c->head_dim));
    MR_TRY(attr_int_opt(f, file, "shared_expert_hidden", &c->shared_hidden));
    MR_TRY(attr_int_opt(f, file, "tie_head", &c->tie_head));
    MR_REQUIRE(c->tie_head == 0 || c->tie_head == 1, MR_EINPUT,
               "%s: attribute tie_head = %d must be 0 or 1", file, c->tie_head);
    c->has_vocab = c->task == MR_TASK_LM && mr_h5_exists(f, "/vocab");
    return MR_OK;
}

static int read_config(hid_t f, const char *file, mr_config *c)
{
    char s[MR_NAME_LEN];
    MR_TRY(mr_h5_attr_string(f, file, "format", s, sizeof s, NULL));
    MR_REQUIRE(strcmp(s, "moe-robust-model") == 0, MR_EINPUT,
               "%s: attribute format = '%s', expected 'moe-robust-model'", file, s);
    long long ver;
    MR_TRY(mr_h5_attr_int(f, file, "format_version", &ver, NULL));
    MR_REQUIRE(ver == 1 || ver == 2, MR_EINPUT,
               "%s: attribute format_version = %lld, this build reads versions 1 and 2", file,
               ver);
    MR_TRY(mr_h5_attr_string(f, file, "task", s, sizeof s, NULL));
    MR_TRY(str_choice(file, "task", s, "classify", "lm", &c->task));
    MR_TRY(attr_to_int(f, file, "d_model", &c->d_model));
    MR_TRY(attr_to_int(f, file, "n_layers", &c->n_layers));
    MR_TRY(attr_to_int(f, file, "n_heads", &c->n_heads));
    MR_TRY(attr_to_int(f, file, "d_ff", &c->d_ff));
    MR_TRY(attr_to_int(f, file, "n_experts", &c->n_experts));
    MR_TRY(attr_to_int(f, file, "top_k", &c->top_k));
    MR_TRY(attr_to_int(f, file, "expert_hidden", &c->expert_hidden));
    double eps;
    MR_TRY(mr_h5_attr_double(f, file, "norm_eps", &eps, NULL));
    c->norm_eps = (float)eps;
    static const char *const acts[] = {"gelu", "relu", "swiglu"};
    MR_TRY(mr_h5_attr_string(f, file, "activation", s, sizeof s, NULL));
    if (ver == 1)
        MR_TRY(str_choice(file, "activation", s, "gelu", "relu", &c->activation));
    else
        MR_TRY(str_choice_n(file, "activation", s, acts, 3, &c->activation));
    MR_TRY(mr_h5_attr_string(f, file, "gate_norm", s, sizeof s, NULL));
    MR_TRY(str_choice(file, "gate_norm", s, "renorm", "none", &c->gate_norm));
    MR_TRY(mr_h5_attr_string(f, file, "router", c->router, sizeof c->router, NULL));
    if (c->task == MR_TASK_CLASSIFY) {
        MR_TRY(attr_to_int(f, file, "image_h", &c->image_h));
        MR_TRY(attr_to_int(f, file, "image_w", &c->image_w));
        MR_TRY(attr_to_int(f, file, "channels", &c->channels));
        MR_TRY(attr_to_int(f, file, "patch", &c->patch));
        MR_TRY(attr_to_int(f, file, "n_classes", &c->n_classes));
        MR_TRY(mr_h5_attr_string(f, file, "pool", s, sizeof s, NULL));
        MR_TRY(str_choice(file, "pool", s, "cls", "mean", &c->pool));
    } else {
        MR_TRY(attr_to_int(f, file, "vocab_size", &c->vocab_size));
        MR_TRY(attr_to_int(f, file, "max_seq_len", &c->max_seq_len));
    }
    mr_config_v1_defaults(c);
    if (ver == 2) {
        c->format_version = 2;
        MR_TRY(read_config_v2(f, file, c));
    }
    long long *ml = NULL;
    int n_ml = 0;
    int bound = c->n_layers >= 1 && c->n_layers <= MR_MAX_LAYERS ? c->n_layers : MR_MAX_LAYERS;
    MR_TRY(mr_h5_attr_int_array(f, file, "moe_layers", bound, &ml, &n_ml));
    c->moe_layers = malloc(((size_t)n_ml + 1) * sizeof *c->moe_layers);
    if (!c->moe_layers) {
        free(ml);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    c->n_moe = n_ml;
    for (int i = 0; i < n_ml; i++) {
        if (ml[i] < 0 || ml[i] >= MR_MAX_LAYERS) {
            long long bad = ml[i];
            free(ml);
            return mr_error_set(MR_EINPUT, "%s: attribute moe_layers[%d] = %lld is not a block index",
                                file, i, bad);
        }
        c->moe_layers[i] = (int)ml[i];
    }
    free(ml);
    int st = mr_config_check(c);
    if (st != MR_OK) return mr_error_prefix(st, "%s", file);
    return MR_OK;
}

/* Router tensors: every float dataset (rank <= 4) under /layers/L/moe/router, plus every
 * numeric attribute of that group as a scalar (hyperparameters such as tau). */
typedef struct router_scan {
    hid_t f;
    const char *file;
    mr_layer *layer;
    char group[128];
    size_t floats;
    int status;
    int cap;        /* of layer->router_tensors */
} router_scan;

/* The next router tensor slot (the array grows: a file may hold any number). */
static mr_named_tensor *next_tensor(router_scan *rs)
{
    mr_layer *L = rs->layer;
    if (L->n_router_tensors == rs->cap) {
        int cap = rs->cap ? 2 * rs->cap : 8;
        mr_named_tensor *t = realloc(L->router_tensors, (size_t)cap * sizeof *t);
        if (!t) {
            rs->status = mr_error_set(MR_ENOMEM, "out of memory");
            return NULL;
        }
        L->router_tensors = t;
        rs->cap = cap;
    }
    mr_named_tensor *t = &L->router_tensors[L->n_router_tensors];
    memset(t, 0, sizeof *t);
    return t;
}

static herr_t router_visit(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g;
    (void)info;
    router_scan *rs = op;
    mr_layer *L = rs->layer;
    if (strlen(name) >= MR_NAME_LEN) {
        rs->status = mr_error_set(MR_EINPUT, "%s: %s/%.64s...: router tensor names have at most %d "
                                  "characters", rs->file, rs->group, name, MR_NAME_LEN - 1);
        return -1;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/%s", rs->group, name);
    mr_h5_info in;
    int st = mr_h5_dataset_info(rs->f, rs->file, path, &in);
    if (st == MR_OK && (in.cls != H5T_FLOAT || in.type_size != 4 || in.rank > 4))
        st = mr_error_set(MR_EINPUT, "%s: %s: router tensors must be float32 of rank <= 4",
                          rs->file, path);
    if (st != MR_OK) {
        rs->status = st;
        return -1;
    }
    mr_named_tensor *t = next_tensor(rs);
    if (!t) return -1;
    L->n_router_tensors++;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = in.rank;
    t->size = 1;
    for (int i = 0; i < in.rank; i++) {
        t->dims[i] = (size_t)in.dims[i];
        if (in.dims[i] > MR_MAX_PARAMS || (t->size *= (size_t)in.dims[i]) > MR_MAX_PARAMS) {
            rs->status = mr_error_set(MR_EINPUT, "%s: %s: absurd shape", rs->file, path);
            return -1;
        }
    }
    rs->floats += t->size;
    return 0;
}

static herr_t router_attr_visit(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    router_scan *rs = op;
    mr_layer *L = rs->layer;
    double v;
    if (strlen(name) >= MR_NAME_LEN) {
        rs->status = mr_error_set(MR_EINPUT, "%s: %s: attribute %.64s...: router attribute names "
                                  "have at most %d characters", rs->file, rs->group, name,
                                  MR_NAME_LEN - 1);
        return -1;
    }
    char where[300];
    snprintf(where, sizeof where, "%s: %s", rs->file, rs->group);
    int st = mr_h5_attr_double(loc, where, name, &v, NULL);
    if (st != MR_OK) {
        rs->status = st;
        return -1;
    }
    mr_named_tensor *t = next_tensor(rs);
    if (!t) return -1;
    L->n_router_tensors++;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = 0;
    t->size = 1;
    rs->floats += 1;
    return 0;
}

static int scan_router(hid_t f, const char *file, mr_layer *L, int l, size_t *floats)
{
    router_scan rs = {.f = f, .file = file, .layer = L, .status = MR_OK};
    snprintf(rs.group, sizeof rs.group, "/layers/%d/moe/router", l);
    int found;
    MR_TRY(mr_h5_find(f, file, rs.group, &found));
    if (!found) return MR_OK;
    hid_t g = H5Gopen2(f, rs.group, H5P_DEFAULT);
    MR_REQUIRE(g >= 0, MR_EINPUT, "%s: %s: not a group", file, rs.group);
    hsize_t idx = 0;
    herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, router_visit, &rs);
    if (e >= 0 && rs.status == MR_OK) {
        idx = 0;
        e = H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, router_attr_visit, &rs);
    }
    mr_h5_close(g);
    if (rs.status != MR_OK) return rs.status;
    MR_REQUIRE(e >= 0, MR_EINPUT, "%s: %s: cannot list router tensors", file, rs.group);
    *floats += rs.floats;
    return MR_OK;
}

static int read_router(hid_t f, const char *file, mr_layer *L, int l, float **cur)
{
    char path[256];
    for (int i = 0; i < L->n_router_tensors; i++) {
        mr_named_tensor *t = &L->router_tensors[i];
        t->data = *cur;
        *cur += t->size;
        snprintf(path, sizeof path, "/layers/%d/moe/router", l);
        if (t->ndim == 0) {
            hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
            double v = 0.0;
            int st = g >= 0 ? mr_h5_attr_double(g, file, t->name, &v, NULL) : MR_EINPUT;
            if (g >= 0) mr_h5_close(g);
            MR_REQUIRE(st == MR_OK, MR_EINPUT, "%s: %s: cannot read attribute %s", file, path,
                       t->name);
            t->data[0] = (float)v;
        } else {
            snprintf(path, sizeof path, "/layers/%d/moe/router/%s", l, t->name);
            MR_TRY(mr_h5_read_float(f, file, path, t->data, t->size));
        }
    }
    return MR_OK;
}

static int read_vocab(hid_t f, const char *file, mr_model *m)
{
    mr_h5_info in;
    MR_TRY(mr_h5_dataset_info(f, file, "/vocab", &in));
    MR_REQUIRE(in.cls == H5T_INTEGER && in.rank == 1 &&
                   in.dims[0] == (hsize_t)m->cfg.vocab_size,
               MR_EINPUT, "%s: /vocab: expected an integer array of vocab_size = %d entries",
               file, m->cfg.vocab_size);
    m->vocab = malloc((size_t)m->cfg.vocab_size * sizeof *m->vocab);
    if (!m->vocab) return mr_error_set(MR_ENOMEM, "out of memory");
    MR_TRY(mr_h5_read_int32(f, file, "/vocab", m->vocab, (size_t)m->cfg.vocab_size));
    for (int i = 0; i < m->cfg.vocab_size; i++)
        MR_REQUIRE(m->vocab[i] >= 0 && m->vocab[i] <= 0x10FFFF, MR_EINPUT,
                   "%s: /vocab[%d] = %d is not a Unicode code point", file, i, m->vocab[i]);
    return MR_OK;
}

static int load(hid_t f, const char *file, mr_model *m)
{
    MR_TRY(read_config(f, file, &m->cfg));
    const mr_config *c = &m->cfg;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int l = 0; l < c->n_layers; l++) m->layers[l].moe_index = -1;
    for (int i = 0; i < c->n_moe; i++) {
        m->layers[c->moe_layers[i]].is_moe = 1;
        m->layers[c->moe_layers[i]].moe_index = i;
    }
    if (c->task == MR_TASK_LM && c->has_vocab) MR_TRY(read_vocab(f, file, m));

    /* pass 1: every shape and dtype, before any large allocation */
    mr_plan p = {0};
    int st = mr_model_plan(&p, m);
    size_t total = 0;
    for (int i = 0; st == MR_OK && i < p.n; i++) {
        mr_plan_item *it = &p.items[i];
        st = mr_h5_find(f, file, it->path, &it->present);
        if (st != MR_OK) break;
        if (!it->present && it->optional) {
            if (it->optional == MR_PLAN_ZEROS_IF_ABSENT) total += mr_plan_item_size(it);
            continue;
        }
        hsize_t dims[3] = {it->dims[0], it->dims[1], it->dims[2]};
        st = mr_h5_expect_float(f, file, it->path, it->rank, dims);
        total += mr_plan_item_size(it);
    }
    for (int l = 0; st == MR_OK && l < c->n_layers; l++)
        if (m->layers[l].is_moe) {
            m->layers[l].has_gate_b = 1;
            st = scan_router(f, file, &m->layers[l], l, &total);
        }
    if (st == MR_OK && total > MR_MAX_PARAMS)
        st = mr_error_set(MR_EINPUT, "%s: %zu weights exceed the limit", file, total);
    if (st == MR_OK) {
        m->arena = calloc(total ? total : 1, sizeof(float));
        m->n_arena = total;
        if (!m->arena) st = mr_error_set(MR_ENOMEM, "out of memory: %zu weights", total);
    }
    /* pass 2: read */
    float *cur = m->arena;
    for (int i = 0; st == MR_OK && i < p.n; i++) {
        mr_plan_item *it = &p.items[i];
        if (!it->present && it->optional == MR_PLAN_NULL_IF_ABSENT) {
            *it->dst = NULL;
            continue;
        }
        *it->dst = cur;
        cur += mr_plan_item_size(it);
        if (it->present) st = mr_h5_read_float(f, file, it->path, *it->dst, mr_plan_item_size(it));
    }
    m->n_params = (size_t)(cur - m->arena);
    if (c->tie_head) m->head_w = m->tok; /* the LM head is the token embedding */
    for (int l = 0; st == MR_OK && l < c->n_layers; l++) {
        mr_layer *L = &m->layers[l];
        if (!L->is_moe) continue;
        char gb[64];
        snprintf(gb, sizeof gb, "/layers/%d/moe/gate_b", l);
        st = mr_h5_find(f, file, gb, &L->has_gate_b);
        if (st != MR_OK) break;
        st = read_router(f, file, L, l, &cur);
    }
    mr_model_plan_free(&p);
    return st;
}

int mr_model_load(mr_model **out, const char *path)
{
    *out = NULL;
    mr_model *m = calloc(1, sizeof *m);
    if (!m) return mr_error_set(MR_ENOMEM, "out of memory");
    snprintf(m->path, sizeof m->path, "%s", path);
    hid_t f;
    int st = mr_h5_open_read(&f, path);
    if (st != MR_OK) {
        mr_model_free(m);
        return st;
    }
    st = mr_h5_close_read(f, path, load(f, path, m));
    if (st != MR_OK) {
        mr_model_free(m);
        return st;
    }
    *out = m;
    return MR_OK;
}

void mr_model_print_summary(FILE *fp, const mr_model *m)
{
    const mr_config *c = &m->cfg;
    fprintf(fp, "model        %s\n", m->path);
    fprintf(fp, "task         %s\n", mr_task_name(c->task));
    fprintf(fp, "blocks       %d (d_model %d, heads %d, d_ff %d, %s, norm_eps %g)\n",
            c->n_layers, c->d_model, c->n_heads, c->d_ff, mr_activation_name(c->activation),
            (double)c->norm_eps);
    if (c->format_version >= 2) {
        fprintf(fp, "attention    %d query heads, %d key/value heads, head_dim %d, q/k norm %s",
                c->n_heads, c->n_kv_heads, c->head_dim, mr_qk_norm_name(c->qk_norm));
        if (c->clip_qkv > 0.0) fprintf(fp, ", clip_qkv %g", c->clip_qkv);
        fprintf(fp, "\nnorm         %s; positions %s", mr_norm_name(c->norm),
                mr_position_name(c->position));
        if (c->position == MR_POS_ROPE)
            fprintf(fp, " (theta %g, linear scaling %g)", c->rope_theta, c->rope_scaling);
        fprintf(fp, "; LM head %s\n", c->tie_head ? "tied to the token embedding" : "own");
        if (c->shared_hidden > 0) fprintf(fp, "shared       expert of hidden %d\n", c->shared_hidden);
    }
    fprintf(fp, "moe blocks   ");
    for (int i = 0; i < c->n_moe; i++) fprintf(fp, "%s%d", i ? "," : "", c->moe_layers[i]);
    fprintf(fp, " (%d experts, top-%d, expert hidden %d, gate_norm %s)\n", c->n_experts,
            c->top_k, c->expert_hidden, mr_gate_norm_name(c->gate_norm));
    fprintf(fp, "router       %s\n", c->router);
    if (c->task == MR_TASK_CLASSIFY)
        fprintf(fp, "input        %dx%dx%d images, patch %d (%d tokens), pool %s, %d classes\n",
                c->image_h, c->image_w, c->channels, c->patch, c->n_pos, mr_pool_name(c->pool),
                c->n_classes);
    else
        fprintf(fp, "input        vocab %d, max_seq_len %d\n", c->vocab_size, c->max_seq_len);
    size_t a = c->activation == MR_ACT_SWIGLU ? 3 : 2; /* weight matrices per expert */
    size_t moe_params = 0, per_expert = a * (size_t)c->d_model * c->expert_hidden;
    if (c->n_moe > 0 && m->layers[c->moe_layers[0]].exp_b1)
        per_expert += (size_t)(a - 1) * c->expert_hidden + c->d_model;
    moe_params = per_expert * c->n_experts * c->n_moe;
    fprintf(fp, "parameters   %zu (%zu in experts; %zu active per token)\n", m->n_params,
            moe_params, m->n_params - moe_params + per_expert * c->top_k * c->n_moe);
    for (int l = 0; l < c->n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        for (int i = 0; i < L->n_router_tensors; i++) {
            const mr_named_tensor *t = &L->router_tensors[i];
            fprintf(fp, "router data  /layers/%d/moe/router/%s", l, t->name);
            if (t->ndim == 0)
                fprintf(fp, " = %g\n", (double)t->data[0]);
            else {
                fprintf(fp, " [");
                for (int j = 0; j < t->ndim; j++) fprintf(fp, "%s%zu", j ? "," : "", t->dims[j]);
                fprintf(fp, "]\n");
            }
        }
    }
}

/* Root attributes the format defines; everything else is metadata for `inspect`. */
static const char *const format_attrs[] = {
    "format", "format_version", "task", "d_model", "n_layers", "n_heads", "d_ff",
    "n_experts", "top_k", "expert_hidden", "norm_eps", "activation", "gate_norm", "router",
    "moe_layers", "image_h", "image_w", "channels", "patch", "n_classes", "pool",
    "vocab_size", "max_seq_len", "norm", "position", "rope_theta", "rope_scaling", "n_kv_heads",
    "head_dim", "qk_norm", "clip_qkv", "shared_expert_hidden", "tie_head", NULL};

int mr_model_is_format_attr(const char *name)
{
    for (int i = 0; format_attrs[i]; i++)
        if (strcmp(name, format_attrs[i]) == 0) return 1;
    return 0;
}

static herr_t print_meta(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    FILE *fp = op;
    if (mr_model_is_format_attr(name)) return 0;
    char s[512];
    long long iv;
    double dv;
    if (mr_h5_attr_string(loc, "", name, s, sizeof s, NULL) == MR_OK)
        fprintf(fp, "meta         %s = %s\n", name, s);
    else if (mr_h5_attr_int(loc, "", name, &iv, NULL) == MR_OK)
        fprintf(fp, "meta         %s = %lld\n", name, iv);
    else if (mr_h5_attr_double(loc, "", name, &dv, NULL) == MR_OK)
        fprintf(fp, "meta         %s = %.6g\n", name, dv);
    else
        fprintf(fp, "meta         %s (not a scalar)\n", name);
    return 0;
}

void mr_model_print_metadata(FILE *fp, const char *path)
{
    hid_t f;
    if (mr_h5_open_read(&f, path) != MR_OK) return;
    hsize_t idx = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, print_meta, fp);
    mr_h5_close(f);
}
