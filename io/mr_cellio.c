#include "mr_cellio.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_model.h"
#include "mr_h5.h"

const char *mr_cell_kind_name(int kind)
{
    return kind == MR_CELL_CLEAN ? "clean" : kind == MR_CELL_CORRUPT ? "corrupt" : "fluct";
}

static int put(hid_t f, const char *name, const double *x, int rank, hsize_t d0, hsize_t d1)
{
    return mr_h5_write_f64(f, name, x, rank, d0, d1);
}

static int put_ci(hid_t f, const char *name, const mr_ci *c)
{
    double v[3] = {c->mean, c->lo, c->hi};
    return put(f, name, v, 1, 3, 0);
}

static int put_cis(hid_t f, const char *name, const mr_ci *c, int n, size_t stride)
{
    double *v = malloc((size_t)n * 3 * sizeof *v + 1);
    if (!v) return MR_ENOMEM;
    for (int i = 0; i < n; i++) {
        const mr_ci *x = (const mr_ci *)((const char *)c + i * stride);
        v[3 * i] = x->mean;
        v[3 * i + 1] = x->lo;
        v[3 * i + 2] = x->hi;
    }
    int st = put(f, name, v, 2, (hsize_t)n, 3);
    free(v);
    return st;
}

static int write_pass(hid_t f, const mr_cell_meta *m, const mr_pass_metrics *p)
{
    int st = MR_OK, nm = m->n_moe, E = m->E;
    st |= put_ci(f, "accuracy", &p->accuracy);
    st |= put_ci(f, "loss", &p->loss_ci);
    st |= put(f, "sample_correct", p->correct, 1, (hsize_t)m->n, 0);
    st |= put(f, "sample_loss", p->loss, 1, (hsize_t)m->n, 0);
    st |= put(f, "sample_entropy", p->routing->entropy, 2, (hsize_t)m->n, (hsize_t)nm);
    size_t stride = sizeof(mr_layer_routing);
    st |= put_cis(f, "entropy", &p->layers[0].entropy, nm, stride);
    st |= put_cis(f, "entropy_norm", &p->layers[0].entropy_norm, nm, stride);
    st |= put_cis(f, "wentropy", &p->layers[0].wentropy, nm, stride);
    double *v = malloc(((size_t)nm * (5 + E) + 1) * sizeof *v);
    if (!v) return MR_ENOMEM;
    double *lh = v, *cv = v + nm, *mm = v + 2 * nm, *dead = v + 3 * nm, *aux = v + 4 * nm;
    double *load = v + 5 * nm;
    for (int i = 0; i < nm; i++) {
        const mr_layer_routing *l = &p->layers[i];
        lh[i] = l->load_entropy_norm;
        cv[i] = l->cv;
        mm[i] = l->max_over_mean;
        dead[i] = l->dead;
        aux[i] = l->aux_loss;
        for (int e = 0; e < E; e++)
            load[i * E + e] = l->load_total > 0 ? l->load_counts[e] / l->load_total : 0.0;
    }
    st |= put(f, "load_entropy_norm", lh, 1, (hsize_t)nm, 0);
    st |= put(f, "load_cv", cv, 1, (hsize_t)nm, 0);
    st |= put(f, "load_max_over_mean", mm, 1, (hsize_t)nm, 0);
    st |= put(f, "dead_experts", dead, 1, (hsize_t)nm, 0);
    st |= put(f, "aux_loss", aux, 1, (hsize_t)nm, 0);
    st |= put(f, "load", load, 2, (hsize_t)nm, (hsize_t)E);
    free(v);
    return st;
}

static int write_flips(hid_t f, const mr_cell_meta *m, const mr_flip_metrics *fl)
{
    int st = MR_OK, nm = m->n_moe;
    st |= put_cis(f, "flip_top1", fl->top1_ci, nm, sizeof(mr_ci));
    st |= put_cis(f, "flip_set", fl->set_ci, nm, sizeof(mr_ci));
    st |= put_cis(f, "flip_jaccard", fl->jaccard_ci, nm, sizeof(mr_ci));
    st |= put_ci(f, "pred_flip", &fl->pred_ci);
    st |= put(f, "sample_flip_top1", fl->top1, 2, (hsize_t)m->n, (hsize_t)nm);
    st |= put(f, "sample_flip_set", fl->set, 2, (hsize_t)m->n, (hsize_t)nm);
    st |= put(f, "sample_flip_jaccard", fl->jaccard, 2, (hsize_t)m->n, (hsize_t)nm);
    st |= put(f, "sample_pred_flip", fl->pred, 1, (hsize_t)m->n, 0);
    return st;
}

int mr_cell_write(const char *path, const mr_cell_meta *m, const mr_pass_metrics *pass,
                  const mr_flip_metrics *flips, const mr_paired *acc_drop)
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
    if (pass && st == MR_OK) st |= write_pass(f, m, pass);
    if (flips && st == MR_OK) st |= write_flips(f, m, flips);
    if (acc_drop && st == MR_OK) {
        double bound = acc_drop->p_bound;
        st |= put_ci(f, "acc_drop", &acc_drop->diff);
        st |= put(f, "acc_drop_p", &acc_drop->p_value, 1, 1, 0);
        st |= put(f, "acc_drop_p_bound", &bound, 1, 1, 0);
    }
    if (st != MR_OK) {
        mr_h5_mem_discard(f);
        return mr_error_set(st == MR_ENOMEM ? MR_ENOMEM : MR_EIO,
                            "%s: cannot assemble the cell in memory (out of memory?)", path);
    }
    return mr_h5_mem_commit(f, path);
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

double *mr_cell_read_vector(const char *path, const char *dataset, size_t n)
{
    hid_t f;
    if (mr_h5_open_read(&f, path) != MR_OK) return NULL;
    int st = MR_OK;
    double *v = get(f, path, "", dataset, n, &st);
    H5Fclose(f);
    return v;
}

static void get3(hid_t f, const char *file, const char *prefix, const char *name, double *out,
                 int *status)
{
    double *v = get(f, file, prefix, name, 3, status);
    if (v) memcpy(out, v, 3 * sizeof *v);
    free(v);
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
        m->kind = strcmp(kind, "clean") == 0 ? MR_CELL_CLEAN
                  : strcmp(kind, "corrupt") == 0 ? MR_CELL_CORRUPT : MR_CELL_FLUCT;
        m->task = strcmp(task, "lm") == 0 ? MR_TASK_LM : MR_TASK_CLASSIFY;
        double *layers = get(file, path, pre, "layers", (size_t)m->n_moe, &st);
        for (int i = 0; layers && i < m->n_moe; i++) m->layers[i] = (int)layers[i];
        free(layers);
    }
    size_t nm = (size_t)m->n_moe;
    s->has_pass = st == MR_OK && m->kind != MR_CELL_FLUCT;
    s->has_flips = st == MR_OK && m->kind != MR_CELL_CLEAN;
    if (s->has_pass) {
        get3(file, path, pre, "accuracy", s->accuracy, &st);
        get3(file, path, pre, "loss", s->loss, &st);
        s->entropy = get(file, path, pre, "entropy", nm * 3, &st);
        s->entropy_norm = get(file, path, pre, "entropy_norm", nm * 3, &st);
        s->wentropy = get(file, path, pre, "wentropy", nm * 3, &st);
        s->load_entropy_norm = get(file, path, pre, "load_entropy_norm", nm, &st);
        s->load_cv = get(file, path, pre, "load_cv", nm, &st);
        s->load_max_over_mean = get(file, path, pre, "load_max_over_mean", nm, &st);
        s->dead = get(file, path, pre, "dead_experts", nm, &st);
        s->aux_loss = get(file, path, pre, "aux_loss", nm, &st);
        s->load = get(file, path, pre, "load", nm * (size_t)m->E, &st);
    }
    if (s->has_flips) {
        s->flip_top1 = get(file, path, pre, "flip_top1", nm * 3, &st);
        s->flip_set = get(file, path, pre, "flip_set", nm * 3, &st);
        s->flip_jaccard = get(file, path, pre, "flip_jaccard", nm * 3, &st);
        get3(file, path, pre, "pred_flip", s->pred_flip, &st);
    }
    char drop[512];
    snprintf(drop, sizeof drop, "%s/acc_drop", pre);
    if (st == MR_OK && mr_h5_exists(file, drop)) {
        s->has_drop = 1;
        get3(file, path, pre, "acc_drop", s->acc_drop, &st);
        double *p = get(file, path, pre, "acc_drop_p", 1, &st);
        if (p) s->acc_drop_p = p[0];
        free(p);
        snprintf(drop, sizeof drop, "%s/acc_drop_p_bound", pre);
        if (st == MR_OK && mr_h5_exists(file, drop)) {
            p = get(file, path, pre, "acc_drop_p_bound", 1, &st);
            if (p) s->acc_drop_p_bound = p[0] != 0.0;
            free(p);
        }
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
    free(s->entropy);
    free(s->entropy_norm);
    free(s->wentropy);
    free(s->load_entropy_norm);
    free(s->load_cv);
    free(s->load_max_over_mean);
    free(s->dead);
    free(s->aux_loss);
    free(s->load);
    free(s->flip_top1);
    free(s->flip_set);
    free(s->flip_jaccard);
    memset(s, 0, sizeof *s);
}
