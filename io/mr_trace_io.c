#define _DEFAULT_SOURCE /* pread */
#include "mr_trace_io.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../analysis/mr_error.h"
#include "../analysis/mr_huge.h"
#include "../analysis/mr_lanes.h"
#include "../analysis/mr_ops.h"
#include "../analysis/mr_router.h"
#include "../analysis/mr_simd.h"
#ifdef MR_AVX512
#include <immintrin.h>
#endif
#include "../metrics/mr_routing_metrics.h"
#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */
#include "mr_h5.h"

/* Bounds that keep every size computation in range and refuse absurd declarations before
 * anything is allocated from them (one sample's scores must fit a chunk buffer). */
#define MAX_N 2000000000LL
#define MAX_T (1LL << 24)
#define MAX_E 65536
#define MAX_TE (1LL << 28)
#define MAX_C (1LL << 24)

/* ------------------------------------------------------------------ 16-bit floats */

float mr_half_to_float(uint16_t h)
{
    /* IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits */
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13; /* Inf / NaN */
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float mr_bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16; /* bfloat16 is the upper half of a float32 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ------------------------------------------------------------------ attributes */

/* A name used in cell ids and file names: printable, no '/', not empty. */
static int check_label(const char *file, const char *key, const char *v)
{
    MR_REQUIRE(v[0], MR_EINPUT, "%s: attribute %s is empty", file, key);
    for (const char *s = v; *s; s++)
        MR_REQUIRE(isprint((unsigned char)*s) && *s != '/', MR_EINPUT,
                   "%s: attribute %s = '%s': only printable characters other than '/'", file,
                   key, v);
    return MR_OK;
}

static int attr_label(hid_t f, const char *file, const char *key, char *buf, size_t cap)
{
    MR_TRY(mr_h5_attr_string(f, file, key, buf, cap, NULL));
    return check_label(file, key, buf);
}

/* condition = "clean" or "NAME:S" with S in 1..MR_SEVERITY_MAX (the suite's severity scale). */
static int parse_condition(mr_trace_file *t)
{
    if (strcmp(t->condition, "clean") == 0) return MR_OK;
    const char *colon = strrchr(t->condition, ':');
    char *end = NULL;
    long s = colon ? strtol(colon + 1, &end, 10) : 0;
    MR_REQUIRE(colon && colon > t->condition && end != colon + 1 && *end == '\0' && s >= 1 &&
                   s <= MR_SEVERITY_MAX,
               MR_EINPUT,
               "%s: attribute condition = '%s': expected \"clean\" or \"NAME:S\" with severity "
               "S in 1..%d",
               t->path, t->condition, MR_SEVERITY_MAX);
    snprintf(t->corruption, sizeof t->corruption, "%.*s", (int)(colon - t->condition),
             t->condition);
    MR_REQUIRE(strcmp(t->corruption, "clean") != 0, MR_EINPUT,
               "%s: attribute condition = '%s': \"clean\" takes no severity", t->path,
               t->condition);
    t->severity = (int)s;
    return MR_OK;
}

/* ------------------------------------------------------------------ datasets */

static const char *dtype_name(const mr_h5_info *in)
{
    static const char *const names[] = {"integer", "float", "string", "other"};
    int i = in->cls == H5T_INTEGER ? 0 : in->cls == H5T_FLOAT ? 1 : in->cls == H5T_STRING ? 2 : 3;
    return names[i];
}

/* Require `path` of the given rank and leading dims (dims[i] < 0: any, returned). */
static int expect_shape(hid_t f, const char *file, const char *path, int rank, long long *dims,
                        mr_h5_info *in)
{
    MR_TRY(mr_h5_dataset_info(f, file, path, in));
    int same = in->rank == rank;
    for (int i = 0; same && i < rank; i++) same = dims[i] < 0 || in->dims[i] == (hsize_t)dims[i];
    if (!same) {
        char got[160], want[160] = "[";
        for (int i = 0; i < rank; i++) {
            size_t n = strlen(want);
            if (dims[i] < 0)
                snprintf(want + n, sizeof want - n, "%s%c", i ? "," : "", "NTEkC"[i < 3 ? i : 4]);
            else
                snprintf(want + n, sizeof want - n, "%s%lld", i ? "," : "", dims[i]);
        }
        strcat(want, "]");
        return mr_error_set(MR_EINPUT, "%s: %s: shape %s, expected %s", file, path,
                            mr_h5_dims_str(got, sizeof got, in->rank, in->dims), want);
    }
    for (int i = 0; i < rank; i++) dims[i] = (long long)in->dims[i];
    return MR_OK;
}

static int expect_int(const char *file, const char *path, const mr_h5_info *in, size_t max_size)
{
    MR_REQUIRE(in->cls == H5T_INTEGER && in->type_size <= max_size, MR_EINPUT,
               "%s: %s: dtype %s%zu, expected an integer type of at most %zu bits", file, path,
               dtype_name(in), in->type_size * 8, max_size * 8);
    return MR_OK;
}

static hid_t open_ds(hid_t f, const char *path) { return H5Dopen2(f, path, H5P_DEFAULT); }

/* Whether `path` exists; a soft or external link on the way is MR_EINPUT (mr_h5_find). */
static int has(const mr_trace_file *t, const char *path, int *found)
{
    return mr_h5_find(t->h5, t->path, path, found);
}

/* The 16-bit float flavour of a float dataset: IEEE half or bfloat16 fields. */
static int float_kind(hid_t ds)
{
    hid_t t = H5Dget_type(ds);
    size_t spos, epos, esize, mpos, msize;
    int kind = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_FLOAT) {
        size_t sz = H5Tget_size(t);
        H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize);
        if (sz == 4 && esize == 8 && msize == 23) kind = MR_TRACE_F32;
        else if (sz == 2 && esize == 5 && msize == 10 && spos == 15) kind = MR_TRACE_F16;
        else if (sz == 2 && esize == 8 && msize == 7 && spos == 15) kind = MR_TRACE_BF16;
    }
    if (t >= 0) H5Tclose(t);
    return kind;
}

/* Layer attributes live on the scores dataset, or on the group /layers/L. */
static int layer_attrs(mr_trace_file *t, mr_trace_layer *l, const char *scores, hid_t grp)
{
    long long k = 0, norm = 0;
    char score[32], where[2200];
    int found = 0;
    snprintf(where, sizeof where, "%s: %s", t->path, scores);
    hid_t loc = l->scores_ds;
    MR_TRY(mr_h5_attr_int(loc, where, "top_k", &k, &found));
    if (!found) {
        loc = grp;
        snprintf(where, sizeof where, "%s: /layers/%d", t->path, l->index);
        MR_TRY(mr_h5_attr_int(loc, where, "top_k", &k, NULL));
    }
    MR_TRY(mr_h5_attr_string(loc, where, "score", score, sizeof score, NULL));
    MR_TRY(mr_h5_attr_int(loc, where, "norm_topk", &norm, NULL));
    MR_REQUIRE(k >= 1 && k <= t->E, MR_EINPUT, "%s: top_k = %lld outside 1..E = %d", where, k,
               t->E);
    MR_REQUIRE(norm == 0 || norm == 1, MR_EINPUT, "%s: norm_topk = %lld, expected 0 or 1",
               where, norm);
    int sc = strcmp(score, "softmax") == 0 ? MR_TRACE_SOFTMAX
             : strcmp(score, "sigmoid") == 0 ? MR_TRACE_SIGMOID : -1;
    MR_REQUIRE(sc >= 0, MR_EINPUT, "%s: score = '%s', expected softmax or sigmoid", where,
               score);
    MR_REQUIRE(t->k == 0 || t->k == k, MR_EINPUT,
               "%s: top_k = %lld, but another layer has top_k = %d", where, k, t->k);
    t->k = (int)k;
    l->top_k = (int)k;
    l->score = sc;
    l->norm_topk = (int)norm;
    return MR_OK;
}

static int open_layer(mr_trace_file *t, mr_trace_layer *l)
{
    char lg[96], pr[96], path[96], grp_path[64];
    snprintf(grp_path, sizeof grp_path, "/layers/%d", l->index);
    snprintf(lg, sizeof lg, "%s/router_logits", grp_path);
    snprintf(pr, sizeof pr, "%s/probs", grp_path);
    int has_lg, has_pr;
    MR_TRY(has(t, lg, &has_lg));
    MR_TRY(has(t, pr, &has_pr));
    MR_REQUIRE(has_lg || has_pr, MR_EINPUT,
               "%s: %s: missing dataset (router_logits or probs is required)", t->path, lg);
    MR_REQUIRE(!(has_lg && has_pr), MR_EINPUT,
               "%s: %s: both router_logits and probs given; keep one", t->path, grp_path);
    const char *sp = has_lg ? lg : pr;
    l->is_logits = has_lg;
    mr_h5_info in;
    long long dims[3] = {t->N, t->T ? t->T : -1, t->E ? t->E : -1};
    MR_TRY(expect_shape(t->h5, t->path, sp, 3, dims, &in));
    MR_REQUIRE(dims[1] >= 1 && dims[1] <= MAX_T && dims[2] >= 1 && dims[2] <= MAX_E &&
                   dims[1] * dims[2] <= MAX_TE,
               MR_EINPUT, "%s: %s: T = %lld positions x E = %lld experts is out of range",
               t->path, sp, dims[1], dims[2]);
    t->T = (int)dims[1];
    t->E = (int)dims[2];
    l->scores_ds = open_ds(t->h5, sp);
    MR_REQUIRE(l->scores_ds >= 0, MR_EINPUT, "%s: %s: not a readable dataset", t->path, sp);
    hid_t grp = H5Gopen2(t->h5, grp_path, H5P_DEFAULT);
    int st = grp >= 0 ? layer_attrs(t, l, sp, grp)
                      : mr_error_set(MR_EINPUT, "%s: %s: not a group", t->path, grp_path);
    if (grp >= 0) mr_h5_close(grp);
    MR_TRY(st);
    if (in.cls == H5T_FLOAT) {
        l->dtype = float_kind(l->scores_ds);
        MR_REQUIRE(l->dtype >= 0, MR_EINPUT,
                   "%s: %s: dtype float%zu, expected float16, bfloat16 or float32", t->path, sp,
                   in.type_size * 8);
    } else {
        char dt[32] = "";
        int found = 0;
        char where[2200];
        snprintf(where, sizeof where, "%s: %s", t->path, sp);
        if (in.cls == H5T_INTEGER && in.type_size == 2 && !in.is_signed)
            MR_TRY(mr_h5_attr_string(l->scores_ds, where, "dtype", dt, sizeof dt, &found));
        MR_REQUIRE(found && strcmp(dt, "bfloat16") == 0, MR_EINPUT,
                   "%s: %s: dtype %s%zu, expected float16, bfloat16 or float32 (uint16 only "
                   "with attribute dtype = \"bfloat16\")",
                   t->path, sp, dtype_name(&in), in.type_size * 8);
        l->dtype = MR_TRACE_BF16_U16;
    }
    snprintf(path, sizeof path, "%s/topk", grp_path);
    MR_TRY(has(t, path, &l->has_topk));
    if (l->has_topk) {
        long long d[3] = {t->N, t->T, t->k};
        MR_TRY(expect_shape(t->h5, t->path, path, 3, d, &in));
        MR_TRY(expect_int(t->path, path, &in, 8));
        l->topk_ds = open_ds(t->h5, path);
    }
    snprintf(path, sizeof path, "%s/weights", grp_path);
    MR_TRY(has(t, path, &l->has_weights));
    if (l->has_weights) {
        long long d[3] = {t->N, t->T, t->k};
        MR_TRY(expect_shape(t->h5, t->path, path, 3, d, &in));
        MR_REQUIRE(in.cls == H5T_FLOAT && in.type_size == 4, MR_EINPUT,
                   "%s: %s: dtype %s%zu, expected float32", t->path, path, dtype_name(&in),
                   in.type_size * 8);
        l->weights_ds = open_ds(t->h5, path);
    }
    return MR_OK;
}

static herr_t collect_layer(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g;
    (void)info;
    mr_trace_file *t = op;
    char *end;
    long v = strtol(name, &end, 10);
    if (!isdigit((unsigned char)name[0]) || *end || v < 0 || v > 1000000 ||
        t->n_layers >= MR_TRACE_MAX_LAYERS) {
        snprintf(t->source, sizeof t->source, "%s", name); /* reported by the caller */
        return 1;
    }
    t->layers[t->n_layers++].index = (int)v;
    return 0;
}

static int cmp_layer(const void *a, const void *b)
{
    int x = ((const mr_trace_layer *)a)->index, y = ((const mr_trace_layer *)b)->index;
    return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int open_layers(mr_trace_file *t)
{
    int found;
    MR_TRY(has(t, "/layers", &found));
    MR_REQUIRE(found, MR_EINPUT, "%s: /layers: missing group", t->path);
    hid_t g = H5Gopen2(t->h5, "/layers", H5P_DEFAULT);
    MR_REQUIRE(g >= 0, MR_EINPUT, "%s: /layers: not a group", t->path);
    t->layers = calloc(MR_TRACE_MAX_LAYERS, sizeof *t->layers);
    if (!t->layers) {
        mr_h5_close(g);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < MR_TRACE_MAX_LAYERS; i++)
    {
        t->layers[i].scores_ds = t->layers[i].topk_ds = t->layers[i].weights_ds = -1;
        t->layers[i].file_off = -1;
    }
    char keep[256];
    snprintf(keep, sizeof keep, "%s", t->source);
    t->source[0] = '\0';
    herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, collect_layer, t);
    mr_h5_close(g);
    if (e != 0) {
        int many = t->n_layers >= MR_TRACE_MAX_LAYERS;
        char bad[256];
        snprintf(bad, sizeof bad, "%s", t->source);
        snprintf(t->source, sizeof t->source, "%s", keep);
        MR_REQUIRE(!many, MR_EINPUT, "%s: /layers: more than %d layers", t->path,
                   MR_TRACE_MAX_LAYERS);
        if (e > 0)
            return mr_error_set(MR_EINPUT, "%s: /layers/%s: layer names must be block indices "
                                "(0, 1, ...)", t->path, bad);
        return mr_error_set(MR_EINPUT, "%s: /layers: cannot list its members", t->path);
    }
    snprintf(t->source, sizeof t->source, "%s", keep);
    MR_REQUIRE(t->n_layers >= 1, MR_EINPUT, "%s: /layers: no layers", t->path);
    qsort(t->layers, (size_t)t->n_layers, sizeof *t->layers, cmp_layer);
    for (int i = 1; i < t->n_layers; i++)
        MR_REQUIRE(t->layers[i].index != t->layers[i - 1].index, MR_EINPUT,
                   "%s: /layers/%d: named twice (leading zeros?)", t->path, t->layers[i].index);
    for (int i = 0; i < t->n_layers; i++) MR_TRY(open_layer(t, &t->layers[i]));
    return MR_OK;
}

static int read_ids(mr_trace_file *t)
{
    mr_h5_info in;
    long long d[1] = {-1};
    MR_TRY(expect_shape(t->h5, t->path, "/sample_id", 1, d, &in));
    MR_TRY(expect_int(t->path, "/sample_id", &in, 8));
    MR_REQUIRE(d[0] >= 1 && d[0] <= MAX_N, MR_EINPUT, "%s: /sample_id: %lld samples (1..%lld)",
               t->path, d[0], MAX_N);
    MR_REQUIRE(!(in.type_size == 8 && !in.is_signed), MR_EINPUT,
               "%s: /sample_id: uint64, expected int64 (or a smaller integer type)", t->path);
    t->N = (int)d[0];
    t->ids = malloc((size_t)t->N * sizeof *t->ids);
    int64_t *sorted = malloc((size_t)t->N * sizeof *sorted);
    int st = t->ids && sorted ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory: %d sample ids", t->N);
    hid_t ds = st == MR_OK ? open_ds(t->h5, "/sample_id") : -1;
    if (st == MR_OK && (ds < 0 || H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                          t->ids) < 0))
        st = mr_error_set(MR_EINPUT, "%s: /sample_id: read failed", t->path);
    if (ds >= 0) mr_h5_close(ds);
    if (st == MR_OK) {
        memcpy(sorted, t->ids, (size_t)t->N * sizeof *sorted);
        qsort(sorted, (size_t)t->N, sizeof *sorted, cmp_i64);
        for (int i = 1; i < t->N && st == MR_OK; i++)
            if (sorted[i] == sorted[i - 1])
                st = mr_error_set(MR_EINPUT, "%s: /sample_id: id %lld appears twice", t->path,
                                  (long long)sorted[i]);
    }
    free(sorted);
    return st;
}

/* Optional sample datasets: mask, labels/targets, logits/token_loss, predictions. */
static int open_samples(mr_trace_file *t)
{
    mr_h5_info in;
    int other_found;
    MR_TRY(has(t, "/mask", &t->has_mask));
    if (t->has_mask) {
        long long d[2] = {t->N, t->T};
        MR_TRY(expect_shape(t->h5, t->path, "/mask", 2, d, &in));
        MR_TRY(expect_int(t->path, "/mask", &in, 1));
        t->mask_ds = open_ds(t->h5, "/mask");
    }
    const char *lab = t->task == MR_TRACE_LM ? "/targets" : "/labels";
    const char *other = t->task == MR_TRACE_LM ? "/labels" : "/targets";
    MR_TRY(has(t, other, &other_found));
    MR_REQUIRE(!other_found || t->task == MR_TRACE_NONE, MR_EINPUT,
               "%s: %s: not a dataset of task %s (expected %s)", t->path, other,
               t->task == MR_TRACE_LM ? "lm" : "classify", lab);
    if (t->task != MR_TRACE_NONE) MR_TRY(has(t, lab, &t->has_labels));
    if (t->has_labels) {
        long long d[2] = {t->N, t->T};
        MR_TRY(expect_shape(t->h5, t->path, lab, t->task == MR_TRACE_LM ? 2 : 1, d, &in));
        MR_TRY(expect_int(t->path, lab, &in, 8));
        t->labels_ds = open_ds(t->h5, lab);
    }
    const char *out = t->task == MR_TRACE_LM ? "/token_loss" : "/logits";
    if (t->task != MR_TRACE_NONE) MR_TRY(has(t, out, &t->has_out));
    if (t->has_out) {
        long long d[2] = {t->N, t->task == MR_TRACE_LM ? t->T : -1};
        MR_TRY(expect_shape(t->h5, t->path, out, 2, d, &in));
        MR_REQUIRE(in.cls == H5T_FLOAT && in.type_size >= 2 && in.type_size <= 8, MR_EINPUT,
                   "%s: %s: dtype %s%zu, expected float", t->path, out, dtype_name(&in),
                   in.type_size * 8);
        if (t->task == MR_TRACE_CLASSIFY) {
            MR_REQUIRE(d[1] >= 2 && d[1] <= MAX_C, MR_EINPUT, "%s: /logits: %lld classes (2..%lld)",
                       t->path, d[1], MAX_C);
            t->C = (int)d[1];
            MR_REQUIRE(t->has_labels, MR_EINPUT,
                       "%s: /labels: missing dataset (/logits needs the labels to score)",
                       t->path);
        }
        t->out_ds = open_ds(t->h5, out);
    }
    if (t->task == MR_TRACE_LM) MR_TRY(has(t, "/predictions", &t->has_pred));
    if (t->has_pred) {
        long long d[2] = {t->N, t->T};
        MR_TRY(expect_shape(t->h5, t->path, "/predictions", 2, d, &in));
        MR_TRY(expect_int(t->path, "/predictions", &in, 8));
        MR_REQUIRE(t->has_labels && t->has_out, MR_EINPUT,
                   "%s: /predictions: needs /targets and /token_loss beside it", t->path);
        t->pred_ds = open_ds(t->h5, "/predictions");
    }
    return MR_OK;
}

/* Layers whose scores can be read straight from the file: a contiguous dataset at a known
 * offset (no user block, no external file, fully written, inside the file), of a type whose
 * bytes are what route_token uses (float32 native, or 16-bit floats in native byte order,
 * read as raw bits anyway), at any offset. route_unit reads such a row's scores with
 * pread() into its thread's (aligned) buffer, a piece at a time (read_piece), on the routing
 * threads: no libhdf5 copy of every chunk, no buffer of the whole chunk, and no mapping
 * (mapping the page cache's pages cost page-table work on the loading thread and memory
 * stalls while routing: docs/performance.md). Anything else is read through libhdf5. */
static void find_direct(mr_trace_file *t)
{
    hsize_t ub = 1;
    hid_t fcpl = H5Fget_create_plist(t->h5);
    if (fcpl >= 0) {
        if (H5Pget_userblock(fcpl, &ub) < 0) ub = 1;
        H5Pclose(fcpl);
    }
    if (ub != 0) return;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) close(fd);
        return;
    }
    int any = 0;
    for (int i = 0; i < t->n_layers; i++) {
        mr_trace_layer *l = &t->layers[i];
        size_t sz = l->dtype == MR_TRACE_F32 ? 4 : 2;
        unsigned long long bytes = (unsigned long long)t->N * t->T * t->E * sz;
        haddr_t off = H5Dget_offset(l->scores_ds);
        hid_t ft = H5Dget_type(l->scores_ds), dcpl = H5Dget_create_plist(l->scores_ds);
        int ok = off != HADDR_UNDEF && ft >= 0 && dcpl >= 0 &&
                 H5Pget_external_count(dcpl) == 0 &&
                 H5Dget_storage_size(l->scores_ds) == bytes &&
                 off + bytes <= (unsigned long long)st.st_size &&
                 H5Tget_order(ft) == H5Tget_order(H5T_NATIVE_FLOAT) &&
                 (l->dtype != MR_TRACE_F32 || H5Tequal(ft, H5T_NATIVE_FLOAT) > 0);
        if (ft >= 0) H5Tclose(ft);
        if (dcpl >= 0) H5Pclose(dcpl);
        if (ok) {
            l->file_off = (long long)off;
            any = 1;
        }
    }
    if (any) t->fd = fd;
    else close(fd);
}

static int open_all(mr_trace_file *t)
{
    MR_TRY(mr_h5_open_read(&t->h5, t->path));
    char fmt[64], task[32];
    long long version;
    MR_TRY(mr_h5_attr_string(t->h5, t->path, "format", fmt, sizeof fmt, NULL));
    MR_REQUIRE(strcmp(fmt, "moe-robust-trace") == 0, MR_EINPUT,
               "%s: attribute format = '%s', expected moe-robust-trace (docs/trace-format.md)",
               t->path, fmt);
    MR_TRY(mr_h5_attr_int(t->h5, t->path, "version", &version, NULL));
    MR_REQUIRE(version == MR_TRACE_VERSION, MR_EINPUT,
               "%s: attribute version = %lld, this build reads version %d", t->path, version,
               MR_TRACE_VERSION);
    MR_TRY(attr_label(t->h5, t->path, "model", t->model, sizeof t->model));
    MR_TRY(attr_label(t->h5, t->path, "router", t->router, sizeof t->router));
    MR_TRY(attr_label(t->h5, t->path, "checkpoint", t->checkpoint, sizeof t->checkpoint));
    MR_TRY(attr_label(t->h5, t->path, "condition", t->condition, sizeof t->condition));
    MR_TRY(parse_condition(t));
    MR_TRY(mr_h5_attr_int(t->h5, t->path, "step", &t->step, NULL));
    MR_TRY(mr_h5_attr_string(t->h5, t->path, "source", t->source, sizeof t->source, NULL));
    MR_TRY(mr_h5_attr_string(t->h5, t->path, "task", task, sizeof task, NULL));
    t->task = strcmp(task, "classify") == 0 ? MR_TRACE_CLASSIFY
              : strcmp(task, "lm") == 0     ? MR_TRACE_LM
              : strcmp(task, "none") == 0   ? MR_TRACE_NONE : -1;
    MR_REQUIRE(t->task >= 0, MR_EINPUT,
               "%s: attribute task = '%s', expected classify, lm or none", t->path, task);
    MR_TRY(read_ids(t));
    MR_TRY(open_layers(t));
    MR_TRY(open_samples(t));
    find_direct(t);
    return MR_OK;
}

int mr_trace_open(mr_trace_file **out, const char *path)
{
    *out = NULL;
    mr_trace_file *t = calloc(1, sizeof *t);
    if (!t) return mr_error_set(MR_ENOMEM, "out of memory");
    t->h5 = t->mask_ds = t->labels_ds = t->out_ds = t->pred_ds = t->fd = -1;
    if (strlen(path) >= sizeof t->path) {
        free(t);
        return mr_error_set(MR_EINPUT, "%.100s...: path too long", path);
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    int st = open_all(t);
    if (st != MR_OK) {
        mr_trace_close(t);
        return st;
    }
    *out = t;
    return MR_OK;
}

void mr_trace_close(mr_trace_file *t)
{
    if (!t) return;
    hid_t ds[4] = {t->mask_ds, t->labels_ds, t->out_ds, t->pred_ds};
    for (int i = 0; i < 4; i++)
        if (ds[i] >= 0) mr_h5_close(ds[i]);
    for (int i = 0; t->layers && i < MR_TRACE_MAX_LAYERS; i++) {
        mr_trace_layer *l = &t->layers[i];
        if (l->scores_ds >= 0) mr_h5_close(l->scores_ds);
        if (l->topk_ds >= 0) mr_h5_close(l->topk_ds);
        if (l->weights_ds >= 0) mr_h5_close(l->weights_ds);
    }
    if (t->h5 >= 0) mr_h5_close(t->h5);
    if (t->fd >= 0) close(t->fd);
    free(t->layers);
    free(t->ids);
    free(t);
}

int mr_trace_check_same_shape(const mr_trace_file *a, const mr_trace_file *b)
{
    int same = a->T == b->T && a->E == b->E && a->k == b->k && a->n_layers == b->n_layers &&
               a->task == b->task && a->C == b->C;
    for (int i = 0; same && i < a->n_layers; i++) same = a->layers[i].index == b->layers[i].index;
    MR_REQUIRE(same, MR_EINPUT,
               "%s: cannot be paired with %s: task, positions T (%d vs %d), experts E (%d vs "
               "%d), top_k (%d vs %d), classes or MoE layers differ",
               b->path, a->path, b->T, a->T, b->E, a->E, b->k, a->k);
    return MR_OK;
}

/* ------------------------------------------------------------------ rows */

void mr_trace_rows_free(mr_trace_rows *r)
{
    if (!r) return;
    free(r->mask);
    free(r->labels);
    free(r->out);
    free(r->pred);
    free(r->probs);
    free(r->topk);
    free(r->topk_in);
    free(r->weights);
    free(r->raw);
    free(r->scratch);
    free(r->iscratch);
    free(r->h_sum);
    free(r->hw_sum);
    free(r->psum);
    free(r->row_file);
    free(r->row_index);
    free(r->src_off);
    memset(r, 0, sizeof *r);
}

int mr_trace_rows_alloc(mr_trace_rows *r, const mr_trace_file *t, int cap, int want_probs)
{
    memset(r, 0, sizeof *r);
    *r = (mr_trace_rows){.cap = cap, .T = t->T, .E = t->E, .k = t->k, .C = t->C,
                         .n_layers = t->n_layers};
    size_t tok = (size_t)cap * t->T, L = (size_t)t->n_layers;
    size_t outw = t->task == MR_TRACE_LM ? (size_t)t->T : (size_t)(t->C > 0 ? t->C : 1);
    r->mask = malloc(tok + 1);
    r->labels = malloc(tok * sizeof *r->labels + 4);
    r->out = malloc((size_t)cap * outw * sizeof *r->out + 4);
    r->pred = malloc(tok * sizeof *r->pred + 4);
    if (want_probs) r->probs = mr_huge_alloc(L * tok * t->E * sizeof *r->probs);
    r->h_sum = malloc(L * cap * sizeof *r->h_sum);
    r->hw_sum = malloc(L * cap * sizeof *r->hw_sum);
    r->psum = malloc(L * cap * t->E * sizeof *r->psum);
    r->row_file = calloc((size_t)cap + 1, sizeof *r->row_file);
    r->row_index = calloc((size_t)cap + 1, sizeof *r->row_index);
    r->src_off = malloc((L * cap + 1) * sizeof *r->src_off);
    r->topk = mr_huge_alloc(L * tok * t->k * sizeof *r->topk);
    /* the weights only when kept (a trace's own /weights: weights_buffer, at its read) */
    if (want_probs) r->weights = mr_huge_alloc(L * tok * t->k * sizeof *r->weights);
    /* int64 scratch for the integer datasets (tok values; /topk: tok * k); the buffers of
     * scores read through libhdf5 only when a layer is not read directly (scores_buffers) */
    r->iscratch = malloc(tok * (size_t)(t->k > 1 ? t->k : 1) * sizeof *r->iscratch);
    if (!r->mask || !r->labels || !r->out || !r->pred || (want_probs && !r->probs) || !r->topk ||
        (want_probs && !r->weights) || !r->iscratch || !r->h_sum || !r->hw_sum || !r->psum || !r->src_off ||
        !r->row_file || !r->row_index) {
        mr_trace_rows_free(r);
        return mr_error_set(MR_ENOMEM, "out of memory: %d trace rows of %d x %d scores", cap,
                            t->T, t->E);
    }
    return MR_OK;
}

/* Read rows [r0, r0+nb) of ds (rank `rank`, trailing dims d1, d2) into the memory
 * buffer of `cap` rows at row `slot`, as memory type mt. */
static int read_block(hid_t ds, hid_t mt, void *dst, int rank, int cap, hsize_t d1, hsize_t d2,
                      int r0, int nb, int slot, const char *file, const char *what)
{
    hsize_t fstart[3] = {(hsize_t)r0, 0, 0}, count[3] = {(hsize_t)nb, d1, d2};
    hsize_t mdims[3] = {(hsize_t)cap, d1, d2}, mstart[3] = {(hsize_t)slot, 0, 0};
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(rank, mdims, NULL);
    herr_t e = fs >= 0 && ms >= 0 ? 0 : -1;
    if (e >= 0) e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, fstart, NULL, count, NULL);
    if (e >= 0) e = H5Sselect_hyperslab(ms, H5S_SELECT_SET, mstart, NULL, count, NULL);
    if (e >= 0) e = H5Dread(ds, mt, ms, fs, H5P_DEFAULT, dst);
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    MR_REQUIRE(e >= 0, MR_EINPUT, "%s: %s: read failed (truncated or corrupt file?)", file, what);
    return MR_OK;
}

/* Integers of a block, read as int64 and range-checked into int32 dst. */
static int read_ints(hid_t ds, int32_t *dst, int64_t *tmp, int rank, int cap, hsize_t d1,
                     hsize_t d2, int r0, int nb, int slot, long long lo, long long hi,
                     const char *file, const char *what)
{
    MR_TRY(read_block(ds, H5T_NATIVE_INT64, tmp, rank, cap, d1, d2, r0, nb, slot, file, what));
    size_t per = (size_t)(d1 ? d1 : 1) * (d2 ? d2 : 1);
    for (size_t i = (size_t)slot * per; i < (size_t)(slot + nb) * per; i++) {
        if (tmp[i] < lo || tmp[i] > hi) {
            size_t row = i / per - (size_t)slot + (size_t)r0, col = i % per;
            char at[64] = "";
            if (rank > 1) snprintf(at, sizeof at, "[%zu]", col);
            return mr_error_set(MR_EINPUT, "%s: %s[%zu]%s = %lld outside %lld..%lld", file, what,
                                row, at, (long long)tmp[i], lo, hi);
        }
        dst[i] = (int32_t)tmp[i];
    }
    return MR_OK;
}

/* Scores of one layer into dst [cap, T, E] (float32) or raw [cap, T, E] (16-bit, raw
 * bits). */
static int read_scores(const mr_trace_file *t, const mr_trace_layer *l, mr_trace_rows *r,
                       float *dst, uint16_t *raw, int r0, int nb, int slot, const char *what)
{
    hsize_t T = (hsize_t)t->T, E = (hsize_t)t->E;
    if (l->dtype == MR_TRACE_F32)
        return read_block(l->scores_ds, H5T_NATIVE_FLOAT, dst, 3, r->cap, T, E, r0, nb, slot,
                          t->path, what);
    /* raw bits in native byte order: the file type with only its order changed */
    hid_t ft = H5Dget_type(l->scores_ds), mt = ft >= 0 ? H5Tcopy(ft) : -1;
    int st = mt >= 0 && H5Tset_order(mt, H5Tget_order(H5T_NATIVE_USHORT)) >= 0
                 ? read_block(l->scores_ds, mt, raw, 3, r->cap, T, E, r0, nb, slot, t->path, what)
                 : mr_error_set(MR_EINPUT, "%s: %s: unreadable datatype", t->path, what);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    return st; /* widened token by token in route_layers's parallel loop (widen) */
}

/* 16-bit scores raw[n] as floats, exact, in one vector loop (mr_trace_io.h). float16:
 * the exponent and mantissa bits shifted into a float's place give the value times
 * 2^-112 for normal and subnormal halves alike, so one multiplication by 2^112 rebiases
 * (exact: a power of two); Inf / NaN (exponent 31) are rebuilt as Inf / NaN. It replaced
 * a table look-up per value (a scalar loop, 8 % of analyze). The Inf / NaN flags go into
 * 16 lanes (bad[e % 16]) without a reduction: GCC's reductions in these loops end in a
 * scalar pass over the lanes, per token; the caller reduces once per row. */
MR_VECTOR_CLONES_512
static void widen_loops(float *restrict dst, const uint16_t *restrict raw, int n, int dtype,
                        uint32_t *restrict bad)
{
    for (int e0 = 0; e0 < n; e0 += 16) {
        int m = n - e0 < 16 ? n - e0 : 16;
        const uint16_t *r = raw + e0;
        float *d = dst + e0;
        if (dtype == MR_TRACE_F16) {
#pragma omp simd
            for (int l = 0; l < m; l++) {
                uint32_t h = r[l], em = h & 0x7fffu, sign = (h & 0x8000u) << 16, bits;
                float f;
                bits = em << 13;
                memcpy(&f, &bits, sizeof f);
                f *= 0x1p112f;
                memcpy(&bits, &f, sizeof f);
                uint32_t inf = em >= 0x7c00u;
                bits = inf ? 0x7f800000u | (em & 0x3ffu) << 13 : bits;
                bits |= sign;
                memcpy(&d[l], &bits, sizeof bits);
                bad[l] |= inf;
            }
        } else {
#pragma omp simd
            for (int l = 0; l < m; l++) {
                uint32_t bits = (uint32_t)r[l] << 16; /* bfloat16: a float32's upper half */
                memcpy(&d[l], &bits, sizeof bits);
                bad[l] |= (bits & 0x7f800000u) == 0x7f800000u;
            }
        }
    }
}

#ifdef MR_AVX512
/* widen_loops's blocks of 16 with one instruction each on CPUs with AVX-512: vcvtph2ps
 * (exact for every half, subnormals included; a NaN stays a NaN) or, for bfloat16, a zero
 * extension and shift; the Inf / NaN lanes (all exponent bits set) found by one compare
 * of the widened bits. Returns how many values it widened (a multiple of 16). */
MR_AVX512_TARGET static int widen_avx512(float *restrict dst, const uint16_t *restrict raw,
                                         int n, int dtype, uint32_t *restrict bad)
{
    const __m512i expo = _mm512_set1_epi32(0x7f800000);
    __mmask16 nonfinite = 0;
    int e0 = 0;
    for (; e0 + 16 <= n; e0 += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(raw + e0));
        __m512i bits = dtype == MR_TRACE_F16
                           ? _mm512_castps_si512(_mm512_cvtph_ps(h))
                           : _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
        nonfinite |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, expo), expo);
        _mm512_storeu_si512((void *)(dst + e0), bits);
    }
    if (nonfinite) /* rare: lanes set to 1, the others kept */
        _mm512_mask_storeu_epi32(bad, nonfinite, _mm512_set1_epi32(1));
    return e0;
}
#endif

void mr_trace_widen(float *restrict dst, const uint16_t *restrict raw, int n, int dtype,
                    uint32_t *restrict bad)
{
    int done = 0;
#ifdef MR_AVX512
    if (mr_simd_avx512()) done = widen_avx512(dst, raw, n, dtype, bad);
#endif
    if (done < n) widen_loops(dst + done, raw + done, n - done, dtype, bad);
}

/* Flags of non-finite s[n] into bad[e % 16], as mr_trace_widen's. */
MR_VECTOR_CLONES_512
static void flag_nonfinite(const float *restrict s, int n, uint32_t *restrict bad)
{
    for (int e0 = 0; e0 < n; e0 += 16) {
        int m = n - e0 < 16 ? n - e0 : 16;
#pragma omp simd
        for (int l = 0; l < m; l++) bad[l] |= !(fabsf(s[e0 + l]) <= FLT_MAX); /* NaN: bad */
    }
}

static int any_lane(const uint32_t *bad)
{
    uint32_t x = 0;
    for (int l = 0; l < 16; l++) x |= bad[l];
    return x != 0;
}

/* Turn one token's scores s[E] into probs p[E]; top-k and weights unless given; the
 * routing entropy *h and the entropy of the renormalized weights *hw (of real tokens);
 * with acc (a real token's row sums), acc[e] += p[e] (mr_routing_psum_add; for softmax
 * logits folded into the softmax's last pass). */
static int token_route(const mr_trace_file *t, const mr_trace_layer *l, float *p,
                       const float *s, int finite, int *idx, float *w, int real, const char *what, size_t row,
                       int pos, double *h, double *hw, double *acc)
{
    int E = t->E, k = t->k, hw_done = 0;
    for (int e = 0; !finite && e < E; e++)
        MR_REQUIRE(isfinite(s[e]), MR_EINPUT, "%s: %s[%zu][%d][%d] = %g (not finite)", t->path,
                   what, row, pos, e, (double)s[e]);
    if (!l->has_topk) mr_route_topk(idx, s, E, k); /* the engine's choice (analysis/mr_topk.c) */
    int logits = l->is_logits && l->score == MR_TRACE_SOFTMAX;
    for (int j = 0; l->has_topk && logits && j < k; j++) /* read below */
        MR_REQUIRE(idx[j] >= 0 && idx[j] < E, MR_EINPUT, "%s: /layers/%d/topk[%zu][%d][%d] = %d "
                   "outside 0..%d", t->path, l->index, row, pos, j, idx[j], E - 1);
    if (logits) {
        /* the engine's softmax (analysis/mr_ops.h), the entropies from the logits */
        *h = mr_softmax_entropy(p, s, E, l->has_weights ? NULL : idx, k,
                                l->has_weights ? NULL : hw, acc);
        hw_done = !l->has_weights;
    } else {
        double sum = 0.0;
        for (int e = 0; e < E; e++) {
            double v = l->is_logits ? 1.0 / (1.0 + exp(-(double)s[e])) : (double)s[e];
            if (!l->is_logits && real)
                MR_REQUIRE(v >= 0.0 && v <= 1.0, MR_EINPUT,
                           "%s: %s[%zu][%d][%d] = %g outside [0, 1]", t->path, what, row, pos, e, v);
            p[e] = (float)v;
            sum += v;
        }
        if (l->score == MR_TRACE_SOFTMAX && !l->is_logits && real)
            MR_REQUIRE(fabs(sum - 1.0) <= 1e-2, MR_EINPUT,
                       "%s: %s[%zu][%d]: probabilities sum to %g, not 1 (score = softmax)",
                       t->path, what, row, pos, sum);
        /* sigmoid scores: the routing distribution is the scores normalized to sum 1 */
        if (l->score == MR_TRACE_SIGMOID)
            for (int e = 0; e < E; e++) p[e] = sum > 0.0 ? (float)(p[e] / sum) : 1.0f / (float)E;
        *h = real ? mr_entropy(p, E) : 0.0; /* as `run` computes it (metrics/) */
        if (acc) mr_routing_psum_add(acc, p, E);
    }
    for (int j = 0; l->has_topk && j < k; j++) { /* mr_route_topk's are valid */
        MR_REQUIRE(idx[j] >= 0 && idx[j] < E, MR_EINPUT, "%s: /layers/%d/topk[%zu][%d][%d] = %d "
                   "outside 0..%d", t->path, l->index, row, pos, j, idx[j], E - 1);
        for (int i = 0; i < j; i++)
            MR_REQUIRE(idx[i] != idx[j], MR_EINPUT,
                       "%s: /layers/%d/topk[%zu][%d]: expert %d chosen twice", t->path, l->index,
                       row, pos, idx[j]);
    }
    if (!l->has_weights)
        mr_route_weights(w, p, idx, k, l->norm_topk ? MR_GATE_RENORM : MR_GATE_NONE);
    for (int j = 0; l->has_weights && j < k; j++)
        MR_REQUIRE(isfinite(w[j]), MR_EINPUT, "%s: /layers/%d/weights[%zu][%d][%d] is not finite",
                   t->path, l->index, row, pos, j);
    if (!hw_done) *hw = real ? mr_entropy_renorm(w, k) : 0.0;
    return MR_OK;
}

static void layer_what(char *what, size_t cap, const mr_trace_layer *l)
{
    snprintf(what, cap, "/layers/%d/%s", l->index, l->is_logits ? "router_logits" : "probs");
}

/* Every layer's scores of a chunk at once, for a trace whose scores are read through
 * libhdf5 (on one thread, then routed in one parallel loop): allocated at the first such
 * read, so that traces read directly never hold them. */
static int scores_buffers(mr_trace_rows *r)
{
    if (r->raw) return MR_OK;
    size_t n = (size_t)r->n_layers * r->cap * r->T * r->E;
    r->raw = mr_huge_alloc(n * sizeof *r->raw);
    r->scratch = mr_huge_alloc(n * sizeof *r->scratch);
    if (r->raw && r->scratch) return MR_OK;
    free(r->raw);
    free(r->scratch);
    r->raw = NULL;
    r->scratch = NULL;
    return mr_error_set(MR_ENOMEM, "out of memory: %d trace rows of %d x %d scores", r->cap,
                        r->T, r->E);
}

/* The stored top-k of every layer of a chunk as read (int32, checked while routed, then
 * narrowed into r->topk): allocated at the first read of a stored top-k. */
static int topk_buffer(mr_trace_rows *r)
{
    if (r->topk_in) return MR_OK;
    r->topk_in = mr_huge_alloc((size_t)r->n_layers * r->cap * r->T * r->k * sizeof *r->topk_in);
    return r->topk_in ? MR_OK
                      : mr_error_set(MR_ENOMEM, "out of memory: %d trace rows of %d x %d top-k",
                                     r->cap, r->T, r->k);
}

/* The weights of every layer of a chunk, for rows that do not keep them but read a
 * trace's /weights (to be checked): allocated at the first such read. */
static int weights_buffer(mr_trace_rows *r)
{
    if (r->weights) return MR_OK;
    r->weights = mr_huge_alloc((size_t)r->n_layers * r->cap * r->T * r->k * sizeof *r->weights);
    return r->weights ? MR_OK
                      : mr_error_set(MR_ENOMEM, "out of memory: %d trace rows of %d x %d weights",
                                     r->cap, r->T, r->k);
}

size_t mr_trace_row_bytes(const mr_trace_file *t)
{
    size_t per = (size_t)t->T * 24 + (size_t)t->C * 4 + (size_t)t->n_layers * t->E * 16;
    for (int i = 0; i < t->n_layers; i++) {
        const mr_trace_layer *l = &t->layers[i];
        size_t scores = l->file_off >= 0 ? 0 : 6; /* direct: a piece a thread (read_piece) */
        per += (size_t)t->T * ((size_t)t->E * scores + (size_t)t->k * 8);
    }
    return per;
}

/* Layer li's datasets of rows r0 .. r0+nb-1: /topk and /weights into their slots, the
 * scores left in the file for route_unit (r->src_off: read directly) or read into its
 * slice of r->scratch (float32) or r->raw (16-bit). libhdf5 calls only. */
static int read_layer(const mr_trace_file *t, int li, int r0, int nb, mr_trace_rows *r, int slot)
{
    const mr_trace_layer *l = &t->layers[li];
    int T = t->T, E = t->E, k = t->k, cap = r->cap;
    char what[96];
    layer_what(what, sizeof what, l);
    float *w = NULL;
    if (l->has_topk) {
        MR_TRY(topk_buffer(r));
        int32_t *topk = r->topk_in + (size_t)li * cap * T * k;
        char tp[96];
        snprintf(tp, sizeof tp, "/layers/%d/topk", l->index);
        MR_TRY(read_ints(l->topk_ds, topk, r->iscratch, 3, cap, (hsize_t)T, (hsize_t)k, r0, nb,
                         slot, INT32_MIN, INT32_MAX, t->path, tp));
    }
    if (l->has_weights) {
        MR_TRY(weights_buffer(r));
        w = r->weights + (size_t)li * cap * T * k;
        char wp[96];
        snprintf(wp, sizeof wp, "/layers/%d/weights", l->index);
        MR_TRY(read_block(l->weights_ds, H5T_NATIVE_FLOAT, w, 3, cap, (hsize_t)T, (hsize_t)k, r0,
                          nb, slot, t->path, wp));
    }
    if (l->file_off >= 0 && t->fd >= 0) {
        size_t row = (size_t)T * E * (l->dtype == MR_TRACE_F32 ? 4 : 2);
        for (int b = 0; b < nb; b++)
            r->src_off[(size_t)li * cap + slot + b] = l->file_off + (long long)(r0 + b) * (long long)row;
        return MR_OK;
    }
    for (int b = 0; b < nb; b++) r->src_off[(size_t)li * cap + slot + b] = -1;
    MR_TRY(scores_buffers(r));
    size_t per_layer = (size_t)cap * T * E;
    return read_scores(t, l, r, r->scratch + (size_t)li * per_layer,
                       r->raw + (size_t)li * per_layer, r0, nb, slot, what);
}

/* Tokens routed at once by route_batch (mr_softmax_entropy_tokens's kernel takes 8) */
#define BATCH 8

/* A row of a layer read directly is read PIECE_BYTES at a time (whole tokens, a multiple
 * of BATCH, at least BATCH) into its thread's buffer, which stays in the core's L2 cache
 * and is reused for every piece: 256 KiB, the row of an OLMoE-sized trace (T 2048, E 64,
 * float16) in one read. */
#define PIECE_BYTES ((size_t)256 << 10)

static int piece_tokens(int E, size_t size)
{
    size_t n = PIECE_BYTES / ((size_t)E * size) / BATCH * BATCH;
    return n < BATCH ? BATCH : (int)n;
}

/* A thread's buffers: BATCH tokens' widened scores and (when the rows keep none) their
 * probabilities, and a row's probability sums; each on cache lines of its own (64-byte
 * aligned, whole lines): with malloc's 16-byte alignment two threads' buffers shared a
 * line, written every token by both, and 2 threads took 1.7x the CPU time of 1 for the
 * same work. */
struct mr_trace_ws {
    float *s, *p;
    double *acc;
    float *w;   /* [E] a token's weights, where the rows keep none */
    int *idx;   /* [BATCH x E] a batch's (or a token's) top-k, before it is narrowed */
    char *piece;/* a piece of a row's scores read directly (piece_tokens x E values) */
};

mr_trace_ws *mr_trace_ws_alloc(int E)
{
    size_t fs = ((size_t)BATCH * E * sizeof(float) + 63) / 64 * 64;
    size_t ds = ((size_t)E * sizeof(double) + 63) / 64 * 64;
    size_t ws_ = ((size_t)E * sizeof(float) + 63) / 64 * 64;
    size_t is = ((size_t)BATCH * E * sizeof(int) + 63) / 64 * 64;
    size_t ps = (size_t)piece_tokens(E, 4) * E * 4; /* float32: the largest piece */
    size_t p2 = (size_t)piece_tokens(E, 2) * E * 2;
    ps = ((ps > p2 ? ps : p2) + 63) / 64 * 64;
    char *m = aligned_alloc(64, 64 + 2 * fs + ds + ws_ + is + ps);
    if (!m) {
        mr_error_set(MR_ENOMEM, "out of memory");
        return NULL;
    }
    mr_trace_ws *ws = (mr_trace_ws *)(void *)m;
    ws->s = (float *)(void *)(m + 64);
    ws->p = (float *)(void *)(m + 64 + fs);
    ws->acc = (double *)(void *)(m + 64 + 2 * fs);
    ws->w = (float *)(void *)(m + 64 + 2 * fs + ds);
    ws->idx = (int *)(void *)(m + 64 + 2 * fs + ds + ws_);
    ws->piece = m + 64 + 2 * fs + ds + ws_ + is;
    return ws;
}

/* `bytes` of t's scores from file offset `off` (the scores of row `row` from position
 * pos of layer l) into dst with pread(): a file that ends before them (shrunk since it
 * was opened: rewritten while analyze reads it) or a failed read is MR_EIO naming the
 * file, the dataset and the row (exit status 1: a runtime failure, the file was valid
 * when opened; nothing is written before the reading is done). */
static int read_piece(const mr_trace_file *t, const char *what, int row, int pos,
                      long long off, size_t bytes, char *dst)
{
    size_t done = 0;
    while (done < bytes) {
        ssize_t got = pread(t->fd, dst + done, bytes - done, (off_t)(off + (long long)done));
        if (got > 0) {
            done += (size_t)got;
        } else if (got == 0) {
            struct stat sb;
            long long size = fstat(t->fd, &sb) == 0 ? (long long)sb.st_size : -1;
            return mr_error_set(MR_EIO, "%s: %s[%d] from position %d: the file ends at byte "
                                "%lld, before its scores' byte %lld: it shrank while it was "
                                "being read (was it rewritten during analyze?)", t->path, what,
                                row, pos, size, off + (long long)done);
        } else if (errno != EINTR) {
            int e = errno;
            return mr_error_set(MR_EIO, "%s: %s[%d] from position %d: read failed: %s",
                                t->path, what, row, pos, strerror(e));
        }
    }
    return MR_OK;
}

void mr_trace_ws_free(mr_trace_ws *ws) { free(ws); }

/* Token pos of slot b at layer li, routed; its entropies into *h, *hw and (acc) its
 * probabilities added to acc (token_route); src: its scores read directly (read_piece;
 * NULL: in r->raw / r->scratch); what: the layer's scores dataset, for messages.
 * Non-finite scores are flagged in bad[16] (check = 0: the caller looks once per row,
 * mr_trace_route_unit) or refused here (check = 1). */
static int route_token(mr_trace_rows *r, int li, int b, int pos, const char *src,
                       const char *what, const mr_trace_ws *ws, double *h, double *hw,
                       double *acc, int check, uint32_t *bad)
{
    const mr_trace_file *t = r->row_file[b];
    int T = t->T, E = t->E, k = t->k, cap = r->cap;
    const mr_trace_layer *l = &t->layers[li];
    size_t tok = (size_t)b * T + (size_t)pos, at = (size_t)li * cap * T + tok;
    const float *s = src ? (const float *)(const void *)src : r->scratch + at * E;
    float *p = r->probs ? r->probs + at * E : ws->p;
    uint32_t own[16] = {0};
    uint32_t *flags = check ? own : bad;
    if (l->dtype != MR_TRACE_F32) {
        const uint16_t *raw = src ? (const uint16_t *)(const void *)src : r->raw + at * E;
        mr_trace_widen(ws->s, raw, E, l->dtype, flags);
        s = ws->s;
    } else {
        flag_nonfinite(s, E, flags);
    }
    int finite = !check || !any_lane(own);
    float *w = r->weights ? r->weights + at * k : ws->w;
    int *idx = l->has_topk ? r->topk_in + at * k : ws->idx; /* stored: checked here */
    MR_TRY(token_route(t, l, p, s, finite, idx, w, r->mask[tok], what, (size_t)r->row_index[b],
                       pos, h, hw, acc));
    for (int j = 0; j < k; j++) r->topk[at * k + j] = (uint16_t)idx[j]; /* 0 .. E-1 */
    return MR_OK;
}

/* Scores read through libhdf5 (r->raw / r->scratch) prefetched PREFETCH_BYTES ahead of a
 * batch: a row's scores (a layer's T x E) are contiguous, but the hardware prefetchers do
 * not cross pages (the pieces read directly lie in the thread's cache: not needed). */
#define PREFETCH_BYTES 4096

/* Prefetch the n values PREFETCH_BYTES after value `at` of a row of row_n values of `size`
 * bytes each (row: its first), as far as they lie in the row. */
static inline void prefetch_ahead(const char *row, size_t at, size_t n, size_t row_n, size_t size)
{
    size_t from = at + PREFETCH_BYTES / size, to = from + n < row_n ? from + n : row_n;
    for (size_t o = from * size; o < to * size; o += 64) __builtin_prefetch(row + o);
}

#ifdef MR_AVX512
/* narrow_ids 16 at a time (vpmovdw); the scalar loop was 3 % of analyze (GCC's -O2 does
 * not vectorize it for the baseline x86-64) */
MR_AVX512_TARGET static void narrow_ids_avx512(uint16_t *out, const int *idx, int n)
{
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
        _mm256_mask_storeu_epi16(out + j, m, _mm512_cvtepi32_epi16(_mm512_maskz_loadu_epi32(m, idx + j)));
    }
}
#endif

/* out[j] = idx[j] for the n expert ids of a batch (each in 0 .. E-1 <= 65,535) */
static void narrow_ids(uint16_t *out, const int *idx, int n)
{
#ifdef MR_AVX512
    if (mr_simd_avx512()) {
        narrow_ids_avx512(out, idx, n);
        return;
    }
#endif
    for (int j = 0; j < n; j++) out[j] = (uint16_t)idx[j];
}

/* Tokens pos0 .. pos0 + nt - 1 (nt <= BATCH) of slot b at layer li, of softmax router
 * logits without a given top-k or weights (batchable), routed as route_token would
 * (check = 0: non-finite scores flagged in bad[16]) with one call of
 * mr_softmax_entropy_tokens: the same bits, the tokens' latencies overlapped. src: their
 * scores read directly (NULL: in r->raw / r->scratch). Their entropies into th[nt],
 * thw[nt]; the real tokens' probabilities added to ws->acc. */
static void route_batch(mr_trace_rows *r, int li, int b, int pos0, int nt, const char *src,
                        const mr_trace_ws *ws, double *th, double *thw, uint32_t *bad)
{
    const mr_trace_file *t = r->row_file[b];
    int E = t->E, k = t->k;
    const mr_trace_layer *l = &t->layers[li];
    size_t tok = (size_t)b * t->T + (size_t)pos0, at = (size_t)li * r->cap * t->T + tok;
    int n = nt * E;
    size_t row0 = (at - (size_t)pos0) * E; /* the row's first score in raw / scratch */
    if (!src)
        prefetch_ahead(l->dtype != MR_TRACE_F32 ? (const char *)(r->raw + row0)
                                                : (const char *)(r->scratch + row0),
                       (size_t)pos0 * E, (size_t)n, (size_t)t->T * E,
                       l->dtype == MR_TRACE_F32 ? 4 : 2);
    const float *s;
    if (l->dtype != MR_TRACE_F32) {
        mr_trace_widen(ws->s, src ? (const uint16_t *)(const void *)src : r->raw + at * E, n,
                       l->dtype, bad);
        s = ws->s;
    } else {
        s = src ? (const float *)(const void *)src : r->scratch + at * E;
        flag_nonfinite(s, n, bad);
    }
    float *p = r->probs ? r->probs + at * E : ws->p, *w = r->weights ? r->weights + at * k : NULL;
    int *idx = ws->idx; /* the kernels' int ids in the thread's buffer, then narrowed */
    mr_route_topk_tokens(idx, s, nt, E, k);
    mr_softmax_entropy_tokens(th, thw, p, s, nt, E, idx, k, ws->acc, r->mask + tok);
    narrow_ids(r->topk + at * k, idx, nt * k);
    for (int j = 0; w && j < nt; j++) /* weights only where the rows keep them */
        mr_route_weights(w + j * k, p + (size_t)j * E, idx + j * k, k,
                         l->norm_topk ? MR_GATE_RENORM : MR_GATE_NONE);
}

static int batchable(const mr_trace_layer *l)
{
    return l->is_logits && l->score == MR_TRACE_SOFTMAX && !l->has_topk && !l->has_weights;
}

/* Tokens routed at once by route_lanes (mr_route_lanes16) */
#define LANES 16

/* Whether route_unit routes layer l's batches with route_lanes: 16-bit logits, E <= 64,
 * k <= 8, rows that keep neither probabilities nor weights (analyze's) */
static int lanes_layer(const mr_trace_rows *r, const mr_trace_file *t, const mr_trace_layer *l)
{
    return l->dtype != MR_TRACE_F32 && !r->probs && !r->weights && mr_route_lanes_ok(t->E, t->k);
}

/* route_batch for nt <= LANES tokens of a 16-bit layer with the tokens across the vector
 * lanes (analysis/mr_lanes.h): the same top-k, entropies and sums, the same bits. */
static void route_lanes(mr_trace_rows *r, int li, int b, int pos0, int nt, const char *src,
                        const mr_trace_ws *ws, double *th, double *thw, uint32_t *bad)
{
    const mr_trace_file *t = r->row_file[b];
    int E = t->E, k = t->k;
    const mr_trace_layer *l = &t->layers[li];
    size_t tok = (size_t)b * t->T + (size_t)pos0, at = (size_t)li * r->cap * t->T + tok;
    if (!src)
        prefetch_ahead((const char *)(r->raw + (at - (size_t)pos0) * E), (size_t)pos0 * E,
                       (size_t)nt * E, (size_t)t->T * E, 2);
    const uint16_t *raw = src ? (const uint16_t *)(const void *)src : r->raw + at * E;
    if (mr_route_lanes16(raw, nt, E, k, l->dtype != MR_TRACE_F16, r->topk + at * k, th, thw,
                         ws->acc, r->mask + tok))
        bad[0] = 1; /* a non-finite score: the row is routed again with every check */
}

/* Unit (layer li, slot b): its tokens routed in order, and the row's sums over its real
 * tokens (entropies, probabilities) for metrics/mr_routing_metrics.h. A row read directly
 * (r->src_off) is read and routed a piece at a time (read_piece; a failed read is
 * reported as it is). Non-finite scores are looked for once per row; a row with one, or
 * with any error, is routed again token by token with every check (check = 1), so that
 * the first error in token order is the one reported. */
static int route_unit(mr_trace_rows *r, int li, int b, const mr_trace_ws *ws, int check)
{
    int T = r->T, E = r->E;
    const mr_trace_layer *l = &r->row_file[b]->layers[li];
    char what[96];
    layer_what(what, sizeof what, l);
    memset(ws->acc, 0, (size_t)E * sizeof *ws->acc);
    double h = 0.0, hw = 0.0;
    uint32_t flags[16] = {0};
    const uint8_t *mask = r->mask + (size_t)b * T;
    long long off = r->src_off[(size_t)li * r->cap + b];
    size_t tb = (size_t)E * (l->dtype == MR_TRACE_F32 ? 4 : 2); /* a token's score bytes */
    int piece = off >= 0 ? piece_tokens(E, l->dtype == MR_TRACE_F32 ? 4 : 2) : T;
    int batch = !check && batchable(l);
    int lanes = batch && lanes_layer(r, r->row_file[b], l), step = lanes ? LANES : BATCH;
    for (int p0 = 0; p0 < T; p0 += piece) {
        int np = T - p0 < piece ? T - p0 : piece;
        if (off >= 0)
            MR_TRY(read_piece(r->row_file[b], what, r->row_index[b], p0,
                              off + (long long)p0 * (long long)tb, (size_t)np * tb, ws->piece));
        for (int pos = p0; batch && pos < p0 + np; pos += step) {
            int nt = p0 + np - pos < step ? p0 + np - pos : step;
            double th[LANES], thw[LANES];
            const char *src = off >= 0 ? ws->piece + (size_t)(pos - p0) * tb : NULL;
            if (lanes)
                route_lanes(r, li, b, pos, nt, src, ws, th, thw, flags);
            else
                route_batch(r, li, b, pos, nt, src, ws, th, thw, flags);
            for (int j = 0; j < nt; j++) {
                if (!mask[pos + j]) continue;
                h += th[j];
                hw += thw[j];
            }
        }
        for (int pos = p0; !batch && pos < p0 + np; pos++) {
            double th = 0.0, thw = 0.0;
            if (route_token(r, li, b, pos, off >= 0 ? ws->piece + (size_t)(pos - p0) * tb : NULL,
                            what, ws, &th, &thw, mask[pos] ? ws->acc : NULL, check,
                            flags) != MR_OK)
                return check ? MR_EINPUT : route_unit(r, li, b, ws, 1);
            if (!mask[pos]) continue;
            h += th;
            hw += thw;
        }
    }
    if (!check && any_lane(flags)) return route_unit(r, li, b, ws, 1);
    size_t o = (size_t)li * r->cap + b;
    r->h_sum[o] = h;
    r->hw_sum[o] = hw;
    mr_routing_psum_fix(r->psum + o * E, ws->acc, E);
    return MR_OK;
}

int mr_trace_route_unit(mr_trace_rows *r, int li, int b, mr_trace_ws *ws)
{
    return route_unit(r, li, b, ws, 0);
}

/* Every layer of slots slot .. slot+nb-1 in one parallel loop over (layer, slot) units
 * (one fork and join, not one per layer: the waiting thread's spinning was CPU time); a
 * row's tokens stay on one thread, in order, so its sums do not depend on the threads;
 * the first error in (layer, token) order reported. */
static int route_layers(mr_trace_rows *r, int nb, int slot)
{
    int nt = r->threads > 0 ? r->threads : 1;
    mr_trace_ws **ws = calloc((size_t)nt, sizeof *ws);
    int st = ws ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < nt; i++)
        if (!(ws[i] = mr_trace_ws_alloc(r->E))) st = MR_ENOMEM;
    long long nu = (long long)r->n_layers * nb, bad = nu;
    /* dynamic: a thread slowed by other jobs on the machine does not hold the others
     * spinning at the join; every unit's result is independent of its thread */
#pragma omp parallel num_threads(nt) if (st == MR_OK)
    {
        int th = 0;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
#pragma omp for schedule(dynamic, 1)
        for (long long u = 0; u < nu; u++) {
            long long first;
#pragma omp atomic read
            first = bad;
            if (st != MR_OK || u > first) continue;
            if (route_unit(r, (int)(u / nb), slot + (int)(u % nb), ws[th], 0) != MR_OK) {
#pragma omp critical(mr_trace_error)
                if (u < bad) bad = u;
            }
        }
    }
    /* the message again, from this thread, for the first bad unit */
    if (st == MR_OK && bad < nu) st = route_unit(r, (int)(bad / nb), slot + (int)(bad % nb), ws[0], 1);
    for (int i = 0; ws && i < nt; i++) mr_trace_ws_free(ws[i]);
    free(ws);
    return st;
}

int mr_trace_read_rows(const mr_trace_file *t, int r0, int nb, mr_trace_rows *r, int slot)
{
    int st = mr_trace_load_rows(t, r0, nb, r, slot);
    if (st == MR_OK && nb > 0) st = route_layers(r, nb, slot);
    return st;
}

int mr_trace_load_rows(const mr_trace_file *t, int r0, int nb, mr_trace_rows *r, int slot)
{
    MR_REQUIRE(r0 >= 0 && nb >= 0 && r0 + nb <= t->N && slot >= 0 && slot + nb <= r->cap &&
                   r->T == t->T && r->E == t->E && r->k == t->k && r->n_layers == t->n_layers,
               MR_EINPUT, "%s: rows %d..%d do not fit the trace or the buffer", t->path, r0,
               r0 + nb - 1);
    if (nb == 0) return MR_OK;
    int T = t->T, cap = r->cap;
    size_t a = (size_t)slot * T, b = (size_t)(slot + nb) * T;
    /* the scores scratch doubles as int64 scratch for the small integer datasets */
    int64_t *tmp = r->iscratch;
    if (t->has_mask) {
        MR_TRY(read_block(t->mask_ds, H5T_NATIVE_UINT8, r->mask, 2, cap, (hsize_t)T, 0, r0, nb,
                          slot, t->path, "/mask"));
        for (size_t i = a; i < b; i++)
            MR_REQUIRE(r->mask[i] <= 1, MR_EINPUT, "%s: /mask[%zu][%zu] = %d, expected 0 or 1",
                       t->path, i / T - slot + r0, i % T, r->mask[i]);
    } else {
        memset(r->mask + a, 1, b - a);
    }
    if (t->task == MR_TRACE_CLASSIFY) {
        for (int i = slot; i < slot + nb; i++) r->labels[i] = -1;
        if (t->has_labels)
            MR_TRY(read_ints(t->labels_ds, r->labels, tmp, 1, cap, 0, 0, r0, nb, slot, 0,
                             t->C > 0 ? t->C - 1 : INT32_MAX, t->path, "/labels"));
        if (t->has_out)
            MR_TRY(read_block(t->out_ds, H5T_NATIVE_FLOAT, r->out, 2, cap, (hsize_t)t->C, 0, r0,
                              nb, slot, t->path, "/logits"));
        for (size_t i = (size_t)slot * t->C; t->has_out && i < (size_t)(slot + nb) * t->C; i++)
            MR_REQUIRE(isfinite(r->out[i]), MR_EINPUT, "%s: /logits[%zu][%zu] is not finite",
                       t->path, i / t->C - slot + r0, i % t->C);
    } else if (t->task == MR_TRACE_LM) {
        if (t->has_labels)
            MR_TRY(read_ints(t->labels_ds, r->labels, tmp, 2, cap, (hsize_t)T, 0, r0, nb, slot, 0,
                             INT32_MAX, t->path, "/targets"));
        if (t->has_out)
            MR_TRY(read_block(t->out_ds, H5T_NATIVE_FLOAT, r->out, 2, cap, (hsize_t)T, 0, r0, nb,
                              slot, t->path, "/token_loss"));
        for (size_t i = a; t->has_out && i < b; i++)
            MR_REQUIRE(isfinite(r->out[i]) && r->out[i] >= 0.0f, MR_EINPUT,
                       "%s: /token_loss[%zu][%zu] = %g (must be finite and >= 0)", t->path,
                       i / T - slot + r0, i % T, (double)r->out[i]);
        if (t->has_pred)
            MR_TRY(read_ints(t->pred_ds, r->pred, tmp, 2, cap, (hsize_t)T, 0, r0, nb, slot, 0,
                             INT32_MAX, t->path, "/predictions"));
    }
    for (int b = 0; b < nb; b++) {
        r->row_file[slot + b] = t;
        r->row_index[slot + b] = r0 + b;
    }
    for (int li = 0; li < t->n_layers; li++) MR_TRY(read_layer(t, li, r0, nb, r, slot));
    return MR_OK;
}
