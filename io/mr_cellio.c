#include "mr_cellio.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "mr_file_queue.h"
#include "../analysis/mr_model.h"
#include "mr_h5.h"

const char *mr_cell_kind_name(int kind)
{
    return kind == MR_CELL_CLEAN     ? "clean"
           : kind == MR_CELL_CORRUPT ? "corrupt"
           : kind == MR_CELL_ATTACK  ? "attack"
                                     : "fluct";
}

static int put(hid_t f, const char *name, const double *x, int rank, hsize_t d0, hsize_t d1)
{
    return mr_h5_write_f64(f, name, x, rank, d0, d1);
}

/* Every metric of the schema that `src` has, as the dataset of its shape ([per] or
 * [n_moe, per], [n_moe] for per-layer scalars), then the per-sample vectors. */
static int write_metrics(hid_t f, const mr_cell_meta *m, const mr_metric_src *src)
{
    int st = MR_OK, nm = m->n_moe;
    double *v = malloc(((size_t)nm * (3 + (size_t)m->E) + 4) * sizeof *v);
    if (!v) return MR_ENOMEM;
    for (int i = 0; i < MR_METRIC_N && st == MR_OK; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        if (!mt->dataset || mt->part == MR_PART_GROUP || !mr_metric_value(v, mt, src)) continue;
        hsize_t per = mr_metric_len(mt, 1, m->E, 0);
        if (mt->per_layer)
            st = put(f, mt->dataset, v, per > 1 ? 2 : 1, (hsize_t)nm, per);
        else
            st = put(f, mt->dataset, v, 1, per, 0);
    }
    for (int i = 0; i < MR_METRIC_N && st == MR_OK; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        const double *x = mt->samples ? mr_metric_samples(mt, src) : NULL;
        if (x) st = put(f, mt->samples, x, mt->per_layer ? 2 : 1, (hsize_t)m->n, (hsize_t)nm);
    }
    free(v);
    return st;
}

/* The routing-structure matrices of a pass (metrics/mr_routing_struct.h), [n_moe, R, E]:
 * "coactivation" (R = E), "class_usage" (R = classes, with labels), "domain_usage"
 * (R = domains, where the samples carry one). */
static int write_matrices(hid_t f, const mr_pass_metrics *p, int n_moe)
{
    const mr_struct_acc *a = p ? p->structure : NULL;
    if (!a || n_moe == 0) return MR_OK;
    int E = a->E, st = MR_OK;
    struct {
        const char *name;
        int rows, has;
        void (*get)(double *, const mr_struct_acc *, int);
    } mat[] = {{"coactivation", E, 1, mr_struct_coact},
               {"class_usage", a->C, a->has_labels, mr_struct_class_usage},
               {"domain_usage", a->D, a->has_domains, mr_struct_domain_usage}};
    for (size_t i = 0; i < sizeof mat / sizeof mat[0] && st == MR_OK; i++) {
        if (!mat[i].has || mat[i].rows <= 0) continue;
        size_t per = (size_t)mat[i].rows * E;
        double *v = malloc((size_t)n_moe * per * sizeof *v);
        if (!v) return MR_ENOMEM;
        for (int l = 0; l < n_moe; l++) mat[i].get(v + l * per, a, l);
        hsize_t dims[3] = {(hsize_t)n_moe, (hsize_t)mat[i].rows, (hsize_t)E};
        st = mr_h5_write_dataset(f, mat[i].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, dims, v,
                                 H5P_DEFAULT);
        free(v);
    }
    return st;
}

int mr_cell_write(const char *path, const mr_cell_meta *m, const mr_pass_metrics *pass,
                  const mr_flip_metrics *flips, const mr_paired *acc_drop)
{
    return mr_cell_write_queued(NULL, path, m, pass, flips, acc_drop);
}

int mr_cell_write_queued(mr_file_queue *q, const char *path, const mr_cell_meta *m,
                         const mr_pass_metrics *pass, const mr_flip_metrics *flips,
                         const mr_paired *acc_drop)
{
    hid_t f;
    size_t hint = (size_t)m->n * ((size_t)m->n_moe * 4 + 4) * sizeof(double) + ((size_t)1 << 16);
    MR_TRY(mr_h5_mem_create(&f, path, hint));
    int st = MR_OK;
    st |= mr_h5_write_attr_string(f, "id", m->id);
    st |= mr_h5_write_attr_string(f, "model", m->model);
    st |= mr_h5_write_attr_string(f, "router", m->router);
    st |= mr_h5_write_attr_string(f, "router_type", m->router_type);
    st |= mr_h5_write_attr_int(f, "k", m->k);
    st |= mr_h5_write_attr_string(f, "kind", mr_cell_kind_name(m->kind));
    st |= mr_h5_write_attr_string(f, "corruption", m->corruption);
    st |= mr_h5_write_attr_int(f, "severity", m->severity);
    st |= mr_h5_write_attr_string(f, "checkpoints", m->checkpoints);
    st |= mr_h5_write_attr_string(f, "task", m->task == MR_TASK_LM ? "lm" : "classify");
    st |= mr_h5_write_attr_int(f, "n", m->n);
    st |= mr_h5_write_attr_int(f, "T", m->T);
    st |= mr_h5_write_attr_int(f, "n_moe", m->n_moe);
    st |= mr_h5_write_attr_int(f, "E", m->E);
    st |= mr_h5_write_attr_int(f, "config_hash", (long long)m->config_hash);
    double *layers = malloc(((size_t)m->n_moe + 1) * sizeof *layers);
    if (!layers) st = MR_ENOMEM;
    for (int i = 0; layers && i < m->n_moe; i++) layers[i] = m->layers[i];
    if (layers) st |= put(f, "layers", layers, 1, (hsize_t)m->n_moe, 0);
    free(layers);
    mr_metric_src src = {.pass = pass, .flips = flips, .drop = acc_drop, .task = m->task,
                         .n_moe = m->n_moe, .E = m->E};
    if (st == MR_OK) st = write_metrics(f, m, &src);
    if (st == MR_OK) st = write_matrices(f, pass, m->n_moe);
    if (acc_drop && st == MR_OK) {
        /* the p-value's qualifier (mr_cell_summary.acc_drop_p_bound) */
        double bound = acc_drop->p_bound;
        st = put(f, "acc_drop_p_bound", &bound, 1, 1, 0);
    }
    if (st != MR_OK) {
        mr_h5_mem_discard(f);
        return mr_error_set(st == MR_ENOMEM ? MR_ENOMEM : MR_EIO,
                            "%s: cannot assemble the cell in memory (out of memory?)", path);
    }
    return mr_h5_mem_commit_queued(f, path, q);
}

int mr_cell_done(const char *path, uint64_t config_hash)
{
    mr_h5_quiet();
    if (access(path, F_OK) != 0) return 0;
    hid_t f;
    /* a regular, readable HDF5 file only: never block on a FIFO planted in cells/ */
    if (mr_h5_open_read(&f, path) != MR_OK) return 0;
    long long h = 0;
    int ok = mr_h5_attr_int(f, path, "config_hash", &h, NULL) == MR_OK &&
             (uint64_t)h == config_hash;
    H5Fclose(f);
    return ok;
}

/* Dataset `dataset` of the cell at group path `prefix` ("" = the file's root), exactly n
 * values (malloc'd); NULL and *status set on any problem. */
static double *get(hid_t f, const char *file, const char *prefix, const char *dataset, size_t n,
                   int *status)
{
    if (*status != MR_OK) return NULL;
    char name[512];
    snprintf(name, sizeof name, "%s/%s", prefix, dataset);
    double *v = malloc(n * sizeof *v + 1);
    if (!v) {
        *status = mr_error_set(MR_ENOMEM, "out of memory");
        return NULL;
    }
    if ((*status = mr_h5_read_f64(f, file, name, v, n)) != MR_OK) {
        *status = MR_EINPUT;
        free(v);
        v = NULL;
    }
    return v;
}

double *mr_cell_vector_at(hid_t f, const char *file, const char *dataset, size_t n)
{
    int st = MR_OK;
    return get(f, file, "", dataset, n, &st);
}

double *mr_cell_read_vector(const char *path, const char *dataset, size_t n)
{
    hid_t f;
    if (mr_h5_open_read(&f, path) != MR_OK) return NULL;
    double *v = mr_cell_vector_at(f, path, dataset, n);
    H5Fclose(f);
    return v;
}

double *mr_cell_matrix_at(hid_t f, const char *file, const char *path, int dims[3])
{
    mr_h5_info info;
    double *v = NULL;
    if (mr_h5_exists(f, path) && mr_h5_dataset_info(f, file, path, &info) == MR_OK &&
        info.rank == 3 && info.dims[0] <= MR_MAX_LAYERS && info.dims[1] <= (1u << 20) &&
        info.dims[2] <= MR_MAX_EXPERTS) {
        size_t n = (size_t)(info.dims[0] * info.dims[1] * info.dims[2]);
        v = malloc(n * sizeof *v + 1);
        if (v && mr_h5_read_f64(f, file, path, v, n) != MR_OK) {
            free(v);
            v = NULL;
        }
        for (int i = 0; v && i < 3; i++) dims[i] = (int)info.dims[i];
    }
    return v;
}

double *mr_cell_read_matrix(const char *path, const char *dataset, int dims[3])
{
    hid_t f;
    if (mr_h5_open_read(&f, path) != MR_OK) return NULL;
    char name[300];
    snprintf(name, sizeof name, "/%s", dataset);
    double *v = mr_cell_matrix_at(f, path, name, dims);
    H5Fclose(f);
    return v;
}

int mr_cell_read_summary(const char *path, mr_cell_summary *s)
{
    memset(s, 0, sizeof *s);
    hid_t f;
    MR_TRY(mr_h5_open_read(&f, path));
    int st = mr_cell_read_summary_at(f, path, "", s);
    H5Fclose(f);
    if (st != MR_OK) return mr_error_set(MR_EINPUT, "%s: not a complete cell file", path);
    return MR_OK;
}

int mr_cell_read_summary_at(hid_t file, const char *path, const char *group, mr_cell_summary *s)
{
    memset(s, 0, sizeof *s);
    const char *pre = group ? group : "";
    MR_REQUIRE(strlen(pre) < 400, MR_EINPUT, "%s: %s: group path too long", path, pre);
    char where[600];
    snprintf(where, sizeof where, "%s%s%s", path, pre[0] ? ": " : "", pre);
    MR_REQUIRE(!pre[0] || mr_h5_exists(file, pre), MR_EINPUT, "%s: no such group", where);
    hid_t f = H5Oopen(file, pre[0] ? pre : "/", H5P_DEFAULT);
    MR_REQUIRE(f >= 0, MR_EINPUT, "%s: cannot open", where);
    mr_cell_meta *m = &s->meta;
    char kind[32], task[32];
    long long v;
    int st = MR_OK;
#define ATTR_S(name, buf) \
    if (st == MR_OK) st = mr_h5_attr_string(f, where, name, buf, sizeof buf, NULL)
#define ATTR_I(name, dst)                                              \
    if (st == MR_OK && (st = mr_h5_attr_int(f, where, name, &v, NULL)) == MR_OK) dst = (int)v
    ATTR_S("id", m->id);
    ATTR_S("model", m->model);
    ATTR_S("router", m->router);
    ATTR_S("router_type", m->router_type);
    ATTR_S("kind", kind);
    ATTR_S("corruption", m->corruption);
    ATTR_S("checkpoints", m->checkpoints);
    ATTR_S("task", task);
    ATTR_I("k", m->k);
    ATTR_I("severity", m->severity);
    ATTR_I("n", m->n);
    ATTR_I("T", m->T);
    ATTR_I("n_moe", m->n_moe);
    ATTR_I("E", m->E);
    if (st == MR_OK && (st = mr_h5_attr_int(f, where, "config_hash", &v, NULL)) == MR_OK)
        m->config_hash = (uint64_t)v;
#undef ATTR_S
#undef ATTR_I
    /* the model's own limits (mr_config_check), not a buffer size */
    if (st == MR_OK && (m->n_moe < 0 || m->n_moe > MR_MAX_LAYERS || m->E < 1 ||
                        m->E > MR_MAX_EXPERTS || m->n < 0))
        st = mr_error_set(MR_EINPUT, "%s: implausible n_moe = %d, E = %d or n = %d", where,
                          m->n_moe, m->E, m->n);
    if (st == MR_OK && !(m->layers = malloc(((size_t)m->n_moe + 1) * sizeof *m->layers)))
        st = mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        m->kind = strcmp(kind, "clean") == 0     ? MR_CELL_CLEAN
                  : strcmp(kind, "corrupt") == 0 ? MR_CELL_CORRUPT
                  : strcmp(kind, "attack") == 0  ? MR_CELL_ATTACK
                  : strcmp(kind, "fluct") == 0   ? MR_CELL_FLUCT
                                                 : -1;
        if (m->kind < 0) st = mr_error_set(MR_EINPUT, "%s: unknown kind '%s'", where, kind);
        m->task = strcmp(task, "lm") == 0 ? MR_TASK_LM : MR_TASK_CLASSIFY;
        double *layers = get(file, path, pre, "layers", (size_t)m->n_moe, &st);
        for (int i = 0; layers && i < m->n_moe; i++) m->layers[i] = (int)layers[i];
        free(layers);
    }
    s->has_pass = st == MR_OK && m->kind != MR_CELL_FLUCT;
    s->has_flips = st == MR_OK && m->kind != MR_CELL_CLEAN;
    char drop[512];
    snprintf(drop, sizeof drop, "%s/%s", pre, mr_metric_table[MR_M_ACC_DROP].dataset);
    s->has_drop = st == MR_OK && mr_h5_exists(file, drop);
    for (int i = 0; i < MR_METRIC_N && st == MR_OK; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        char ds[512];
        snprintf(ds, sizeof ds, "%s/%s", pre, mt->dataset ? mt->dataset : "");
        int has = mt->optional && !mr_h5_exists(file, ds) ? 0
                  : mt->part == MR_PART_PASS ? s->has_pass
                  : mt->part == MR_PART_FLIPS ? s->has_flips
                  : mt->part == MR_PART_DROP ? s->has_drop
                  : mt->part == MR_PART_SAT ? s->has_flips && mr_h5_exists(file, ds) : 0;
        if (has && mt->dataset)
            s->value[i] = get(file, path, pre, mt->dataset, mr_metric_len(mt, m->n_moe, m->E, 0), &st);
    }
    /* the p-value's qualifier; cells written before it existed have none (p resolved) */
    snprintf(drop, sizeof drop, "%s/acc_drop_p_bound", pre);
    if (st == MR_OK && s->has_drop && mr_h5_exists(file, drop)) {
        double *p = get(file, path, pre, "acc_drop_p_bound", 1, &st);
        if (p) s->acc_drop_p_bound = p[0] != 0.0;
        free(p);
    }
    /* derived metrics of this cell's task (bpc from the loss) */
    for (int i = 0; i < MR_METRIC_N && st == MR_OK; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        const double *from = mt->derive >= 0 ? s->value[mt->derive] : NULL;
        if (!from || !mr_metric_for_task(mt, m->task)) continue;
        size_t n = mr_metric_len(mt, m->n_moe, m->E, 0);
        if (!(s->value[i] = malloc(n * sizeof(double)))) {
            st = mr_error_set(MR_ENOMEM, "out of memory");
            break;
        }
        for (size_t j = 0; j < n; j++) s->value[i][j] = from[j] / mt->divisor;
    }
    H5Oclose(f);
    if (st != MR_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", mr_error_message());
        mr_cell_summary_free(s);
        return mr_error_set(MR_EINPUT, "%s: not a complete cell (%s)", where, why);
    }
    return MR_OK;
}

void mr_cell_summary_free(mr_cell_summary *s)
{
    free(s->meta.layers);
    for (int i = 0; i < MR_METRIC_N; i++) free(s->value[i]);
    memset(s, 0, sizeof *s);
}
