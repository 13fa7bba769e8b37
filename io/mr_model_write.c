#include "mr_model_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_array.h"
#include "mr_file.h"
#include "mr_h5.h"
#include "mr_model_io.h"
#include "../analysis/mr_model_plan.h"

/* ---- metadata list ---------------------------------------------------------------- */

enum { META_STRING, META_INT, META_DOUBLE };

typedef struct meta_item {
    char *name;
    int kind;
    char *s;
    long long i;
    double d;
} meta_item;

struct mr_model_meta {
    meta_item *items;
    int n, cap;
};

int mr_model_meta_alloc(mr_model_meta **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
}

void mr_model_meta_free(mr_model_meta *meta)
{
    if (!meta) return;
    for (int i = 0; i < meta->n; i++) {
        free(meta->items[i].name);
        free(meta->items[i].s);
    }
    free(meta->items);
    free(meta);
}

int mr_model_meta_count(const mr_model_meta *meta) { return meta ? meta->n : 0; }

const char *mr_model_meta_name(const mr_model_meta *meta, int i) { return meta->items[i].name; }

/* The slot for `name` (existing, or a new empty one at the end). */
static int meta_slot(mr_model_meta *meta, const char *name, meta_item **it)
{
    MR_REQUIRE(name[0] != '\0', MR_EINPUT, "model metadata: empty attribute name");
    MR_REQUIRE(!mr_model_is_format_attr(name), MR_EINPUT,
               "model metadata: attribute %s is defined by the model format and written "
               "from the configuration",
               name);
    for (int i = 0; i < meta->n; i++)
        if (strcmp(meta->items[i].name, name) == 0) {
            *it = &meta->items[i];
            free((*it)->s);
            (*it)->s = NULL;
            return MR_OK;
        }
    MR_TRY(mr_array_grow(&meta->items, &meta->cap, meta->n, sizeof *meta->items, 16));
    meta_item *n = &meta->items[meta->n];
    memset(n, 0, sizeof *n);
    n->name = strdup(name);
    if (!n->name) return mr_error_set(MR_ENOMEM, "out of memory");
    meta->n++;
    *it = n;
    return MR_OK;
}

int mr_model_meta_set_string(mr_model_meta *meta, const char *name, const char *value)
{
    meta_item *it;
    MR_TRY(meta_slot(meta, name, &it));
    it->kind = META_STRING;
    it->s = strdup(value);
    return it->s ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
}

int mr_model_meta_set_int(mr_model_meta *meta, const char *name, long long value)
{
    meta_item *it;
    MR_TRY(meta_slot(meta, name, &it));
    it->kind = META_INT;
    it->i = value;
    return MR_OK;
}

int mr_model_meta_set_double(mr_model_meta *meta, const char *name, double value)
{
    meta_item *it;
    MR_TRY(meta_slot(meta, name, &it));
    it->kind = META_DOUBLE;
    it->d = value;
    return MR_OK;
}

typedef struct meta_scan {
    mr_model_meta *meta;
    const char *file, *prefix;
    int status;
} meta_scan;

#define META_MAX_STRING 65536

static herr_t read_meta(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    meta_scan *ms = op;
    if (mr_model_is_format_attr(name)) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t cls = H5Tget_class(t);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    int scalar = np == 1 && H5Sget_simple_extent_ndims(sp) <= 1;
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    if (!scalar) return 0; /* arrays are not metadata the suite writes or reads */
    char key[512];
    snprintf(key, sizeof key, "%s%s", ms->prefix, name);
    int st = MR_OK;
    if (cls == H5T_STRING) {
        char *buf = malloc(META_MAX_STRING);
        if (!buf) st = mr_error_set(MR_ENOMEM, "out of memory");
        if (st == MR_OK) st = mr_h5_attr_string(loc, ms->file, name, buf, META_MAX_STRING, NULL);
        if (st == MR_OK) st = mr_model_meta_set_string(ms->meta, key, buf);
        free(buf);
    } else if (cls == H5T_INTEGER) {
        long long v;
        st = mr_h5_attr_int(loc, ms->file, name, &v, NULL);
        if (st == MR_OK) st = mr_model_meta_set_int(ms->meta, key, v);
    } else if (cls == H5T_FLOAT) {
        double v;
        st = mr_h5_attr_double(loc, ms->file, name, &v, NULL);
        if (st == MR_OK) st = mr_model_meta_set_double(ms->meta, key, v);
    }
    if (st != MR_OK) {
        ms->status = st;
        return -1;
    }
    return 0;
}

int mr_model_meta_read(mr_model_meta *meta, const char *path)
{
    return mr_model_meta_read_as(meta, path, "");
}

int mr_model_meta_read_as(mr_model_meta *meta, const char *path, const char *prefix)
{
    hid_t f;
    MR_TRY(mr_h5_open_read(&f, path));
    meta_scan ms = {meta, path, prefix, MR_OK};
    hsize_t idx = 0;
    herr_t e = H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, read_meta, &ms);
    H5Fclose(f);
    if (ms.status != MR_OK) return ms.status;
    MR_REQUIRE(e >= 0, MR_EINPUT, "%s: cannot list the root attributes", path);
    return MR_OK;
}

/* ---- the tensors of a model, in the order of docs/model-format.md ---------------- */

typedef int (*tensor_fn)(void *ctx, const char *path, int rank, const hsize_t *dims,
                         const float *data);

/* fn(path, rank, dims, data) for every float tensor of m: those of the model plan
 * (analysis/mr_model_plan.h) that the model has (an optional tensor of format 2 that is
 * NULL was absent from the source; an absent gate_b loads as zeros, and is written only
 * when the source had one, keeping the file's structure as well as its values), then the
 * router tensors (those of rank 0, stored as attributes, excluded). */
static int each_tensor(const mr_model *m, tensor_fn fn, void *ctx)
{
    mr_plan p = {0};
    int st = mr_model_plan(&p, (mr_model *)m); /* only reads m's fields */
    for (int i = 0; st == MR_OK && i < p.n; i++) {
        const mr_plan_item *it = &p.items[i];
        const float *data = *it->dst;
        if (!data && it->optional == MR_PLAN_NULL_IF_ABSENT) continue;
        if (it->optional == MR_PLAN_ZEROS_IF_ABSENT) { /* gate_b */
            int l = atoi(it->path + strlen("/layers/"));
            if (!m->layers[l].has_gate_b) continue;
        }
        hsize_t dims[3] = {it->dims[0], it->dims[1], it->dims[2]};
        st = fn(ctx, it->path, it->rank, dims, data);
    }
    mr_model_plan_free(&p);
    MR_TRY(st);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        for (int i = 0; L->is_moe && i < L->n_router_tensors; i++) {
            const mr_named_tensor *t = &L->router_tensors[i];
            if (t->ndim == 0) continue;
            char path[256];
            snprintf(path, sizeof path, "/layers/%d/moe/router/%s", l, t->name);
            hsize_t dims[4];
            for (int j = 0; j < t->ndim; j++) dims[j] = (hsize_t)t->dims[j];
            MR_TRY(fn(ctx, path, t->ndim, dims, t->data));
        }
    }
    return MR_OK;
}

static size_t n_elems(int rank, const hsize_t *dims)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    return n;
}

/* Refuse what the loader would refuse, before creating anything. */
static int check_finite(void *ctx, const char *path, int rank, const hsize_t *dims,
                        const float *data)
{
    const char *file = ctx;
    MR_REQUIRE(data != NULL, MR_EINPUT, "%s: %s: tensor not set", file, path);
    size_t n = n_elems(rank, dims);
    for (size_t i = 0; i < n; i++)
        MR_REQUIRE(isfinite(data[i]), MR_EINPUT, "%s: %s: element %zu is %g (weights must be finite)",
                   file, path, i, (double)data[i]);
    return MR_OK;
}

static int check_model(const mr_model *m, const char *file)
{
    mr_config c = m->cfg; /* mr_config_check fills derived fields: check a copy */
    int st = mr_config_check(&c);
    if (st != MR_OK) return mr_error_prefix(st, "%s: cannot save", file);
    MR_TRY(each_tensor(m, check_finite, (void *)file));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        for (int i = 0; L->is_moe && i < L->n_router_tensors; i++) {
            const mr_named_tensor *t = &L->router_tensors[i];
            MR_REQUIRE(t->ndim > 0 || isfinite(t->data[0]), MR_EINPUT,
                       "%s: /layers/%d/moe/router: attribute %s is not finite", file, l, t->name);
        }
    }
    if (m->cfg.task == MR_TASK_LM && m->vocab)
        for (int i = 0; i < m->cfg.vocab_size; i++)
            MR_REQUIRE(m->vocab[i] >= 0 && m->vocab[i] <= 0x10FFFF, MR_EINPUT,
                       "%s: /vocab[%d] = %d is not a Unicode code point", file, i, m->vocab[i]);
    return MR_OK;
}

/* ---- writing --------------------------------------------------------------------- */

typedef struct writer {
    hid_t f;
    const char *file;
} writer;

/* Chunked, shuffled and deflated like the files tools/h5export.py writes; chunks of at
 * most 256 Ki floats (whole leading rows are dropped from the chunk until it fits). */
static hid_t dataset_plist(int rank, const hsize_t *dims)
{
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    if (pl < 0 || H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0 || n_elems(rank, dims) < 64) return pl;
    hsize_t chunk[4];
    for (int i = 0; i < rank; i++) chunk[i] = dims[i];
    for (int i = 0; i < rank && n_elems(rank, chunk) > ((size_t)1 << 18); i++) {
        size_t inner = n_elems(rank, chunk) / (size_t)chunk[i];
        chunk[i] = inner >= ((size_t)1 << 18) ? 1 : (((size_t)1 << 18) / inner);
    }
    if (H5Pset_chunk(pl, rank, chunk) < 0 || H5Pset_shuffle(pl) < 0 || H5Pset_deflate(pl, 4) < 0) {
        H5Pclose(pl);
        return H5Pcreate(H5P_DATASET_CREATE); /* contiguous: still a valid file */
    }
    return pl;
}

static int write_dataset(hid_t f, const char *file, const char *path, hid_t ftype, hid_t mtype,
                         int rank, const hsize_t *dims, const void *data)
{
    hid_t dcpl = dataset_plist(rank, dims);
    int st = dcpl >= 0 ? mr_h5_write_dataset(f, path, ftype, mtype, rank, dims, data, dcpl) : MR_EIO;
    if (dcpl >= 0) H5Pclose(dcpl);
    return st != MR_OK ? mr_error_set(MR_EIO, "%s: cannot write %s", file, path) : MR_OK;
}

static int write_tensor(void *ctx, const char *path, int rank, const hsize_t *dims,
                        const float *data)
{
    writer *w = ctx;
    return write_dataset(w->f, w->file, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rank, dims, data);
}

/* Router hyperparameters of rank 0 are scalar attributes of /layers/L/moe/router (float64:
 * a float32 value converts to double and back exactly). */
static int write_router_scalars(hid_t f, const char *file, const mr_model *m)
{
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        for (int i = 0; L->is_moe && i < L->n_router_tensors; i++) {
            const mr_named_tensor *t = &L->router_tensors[i];
            if (t->ndim != 0) continue;
            char path[128];
            snprintf(path, sizeof path, "/layers/%d/moe/router", l);
            hid_t g = H5Oopen(f, path, H5P_DEFAULT);
            if (g < 0) {
                hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
                H5Pset_create_intermediate_group(lcpl, 1);
                g = H5Gcreate2(f, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
                H5Pclose(lcpl);
            }
            int st = g >= 0 ? mr_h5_write_attr_double(g, t->name, (double)t->data[0]) : MR_EIO;
            if (g >= 0) H5Oclose(g);
            if (st != MR_OK)
                return mr_error_set(MR_EIO, "%s: cannot write %s attribute %s", file, path, t->name);
        }
    }
    return MR_OK;
}

/* The version 2 attributes (docs/model-format.md, "Version 2"), all of them. */
static int write_config_v2(hid_t f, const mr_config *c)
{
    int st = MR_OK;
    st |= mr_h5_write_attr_string(f, "norm", mr_norm_name(c->norm));
    st |= mr_h5_write_attr_string(f, "position", mr_position_name(c->position));
    st |= mr_h5_write_attr_double(f, "rope_theta", c->rope_theta);
    st |= mr_h5_write_attr_double(f, "rope_scaling", c->rope_scaling);
    st |= mr_h5_write_attr_int(f, "n_kv_heads", c->n_kv_heads);
    st |= mr_h5_write_attr_int(f, "head_dim", c->head_dim);
    st |= mr_h5_write_attr_string(f, "qk_norm", mr_qk_norm_name(c->qk_norm));
    st |= mr_h5_write_attr_double(f, "clip_qkv", c->clip_qkv);
    st |= mr_h5_write_attr_int(f, "shared_expert_hidden", c->shared_hidden);
    st |= mr_h5_write_attr_int(f, "tie_head", c->tie_head);
    return st;
}

int mr_model_write_config(hid_t f, const char *file, const mr_config *c)
{
    int st = MR_OK;
    st |= mr_h5_write_attr_string(f, "format", "moe-robust-model");
    st |= mr_h5_write_attr_int(f, "format_version", c->format_version == 2 ? 2 : 1);
    if (c->format_version == 2) st |= write_config_v2(f, c);
    st |= mr_h5_write_attr_string(f, "task", mr_task_name(c->task));
    st |= mr_h5_write_attr_int(f, "d_model", c->d_model);
    st |= mr_h5_write_attr_int(f, "n_layers", c->n_layers);
    st |= mr_h5_write_attr_int(f, "n_heads", c->n_heads);
    st |= mr_h5_write_attr_int(f, "d_ff", c->d_ff);
    st |= mr_h5_write_attr_int(f, "n_experts", c->n_experts);
    st |= mr_h5_write_attr_int(f, "top_k", c->top_k);
    st |= mr_h5_write_attr_int(f, "expert_hidden", c->expert_hidden);
    /* the loader reads a double and rounds it to float: writing the float's exact value
     * as a double round-trips bit for bit */
    st |= mr_h5_write_attr_double(f, "norm_eps", (double)c->norm_eps);
    st |= mr_h5_write_attr_string(f, "activation", mr_activation_name(c->activation));
    st |= mr_h5_write_attr_string(f, "gate_norm", mr_gate_norm_name(c->gate_norm));
    st |= mr_h5_write_attr_string(f, "router", c->router);
    if (c->task == MR_TASK_CLASSIFY) {
        st |= mr_h5_write_attr_int(f, "image_h", c->image_h);
        st |= mr_h5_write_attr_int(f, "image_w", c->image_w);
        st |= mr_h5_write_attr_int(f, "channels", c->channels);
        st |= mr_h5_write_attr_int(f, "patch", c->patch);
        st |= mr_h5_write_attr_int(f, "n_classes", c->n_classes);
        st |= mr_h5_write_attr_string(f, "pool", mr_pool_name(c->pool));
    } else {
        st |= mr_h5_write_attr_int(f, "vocab_size", c->vocab_size);
        st |= mr_h5_write_attr_int(f, "max_seq_len", c->max_seq_len);
    }
    /* moe_layers: a 1-D int64 array (of 0 entries in a model without MoE blocks) */
    hsize_t n = (hsize_t)c->n_moe;
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = sp >= 0 ? H5Acreate2(f, "moe_layers", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)
                      : -1;
    long long ml[MR_MAX_LAYERS];
    for (int i = 0; i < c->n_moe; i++) ml[i] = c->moe_layers[i];
    if (a < 0 || (n > 0 && H5Awrite(a, H5T_NATIVE_LLONG, ml) < 0)) st = MR_EIO;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return st ? mr_error_set(MR_EIO, "%s: cannot write the configuration attributes", file) : MR_OK;
}

static int write_meta(hid_t f, const char *file, const mr_model_meta *meta)
{
    for (int i = 0; meta && i < meta->n; i++) {
        const meta_item *it = &meta->items[i];
        int st = it->kind == META_STRING ? mr_h5_write_attr_string(f, it->name, it->s)
                 : it->kind == META_INT  ? mr_h5_write_attr_int(f, it->name, it->i)
                                         : mr_h5_write_attr_double(f, it->name, it->d);
        if (st != MR_OK) return mr_error_set(MR_EIO, "%s: cannot write attribute %s", file, it->name);
    }
    return MR_OK;
}

static int write_all(hid_t f, const char *file, const mr_model *m, const mr_model_meta *meta)
{
    MR_TRY(mr_model_write_config(f, file, &m->cfg));
    MR_TRY(write_meta(f, file, meta));
    writer w = {f, file};
    MR_TRY(each_tensor(m, write_tensor, &w));
    MR_TRY(write_router_scalars(f, file, m));
    if (m->cfg.task == MR_TASK_LM && m->vocab) {
        hsize_t V = (hsize_t)m->cfg.vocab_size;
        MR_TRY(write_dataset(f, file, "/vocab", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &V, m->vocab));
    }
    return MR_OK;
}

int mr_model_save(const mr_model *m, const char *path, const mr_model_meta *meta)
{
    mr_h5_quiet();
    MR_TRY(check_model(m, path));
    /* built in memory and written by the project's atomic writer (io/mr_h5.h): a full
     * disk is one message naming the file and the OS error, never a crash in libhdf5 */
    hid_t f;
    MR_TRY(mr_h5_mem_create(&f, path, m->n_arena * sizeof(float) + ((size_t)1 << 20)));
    int st = write_all(f, path, m, meta);
    if (st != MR_OK) {
        mr_h5_mem_discard(f);
        return st;
    }
    return mr_h5_mem_commit(f, path);
}
