#include "mr_routing_io.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../metrics/mr_score.h"
#include "mr_h5.h"
#include "mr_trace_io.h"

/* One pass: its file (built in memory, written at close) and datasets. */
typedef struct pass_ds {
    hid_t f;
    char *path;
    hid_t out;                     /* /logits or /token_loss */
    hid_t pred;                    /* lm: /predictions */
    hid_t *probs, *topk, *weights; /* [n_moe] */
} pass_ds;

struct mr_routing_writer {
    int n_pass;           /* 1, or 2: pass 0 clean (sibling file), pass 1 corrupted (path) */
    pass_ds pass[2];
    int n_moe, n, T, k, E, n_out, task;
    int32_t *pred_buf;    /* lm: [B*T] argmax per token of one put */
    size_t pred_cap;
};

static hid_t make_ds(hid_t loc, const char *name, hid_t type, int rank, hsize_t d0, hsize_t d1,
                     hsize_t d2)
{
    hsize_t dims[3] = {d0, d1, d2};
    return mr_h5_create_dataset(loc, name, type, rank, dims, H5P_DEFAULT); /* io/mr_h5.h */
}

static void pass_close(pass_ds *p, int n_moe)
{
    if (p->out > 0) H5Dclose(p->out);
    if (p->pred > 0) H5Dclose(p->pred);
    for (int i = 0; i < n_moe; i++) {
        if (p->probs && p->probs[i] > 0) H5Dclose(p->probs[i]);
        if (p->topk && p->topk[i] > 0) H5Dclose(p->topk[i]);
        if (p->weights && p->weights[i] > 0) H5Dclose(p->weights[i]);
    }
    free(p->probs);
    free(p->topk);
    free(p->weights);
    p->probs = p->topk = p->weights = NULL;
    p->out = p->pred = 0;
}

void mr_routing_writer_abort(mr_routing_writer *w)
{
    if (!w) return;
    for (int i = 0; i < 2; i++) {
        pass_close(&w->pass[i], w->n_moe);
        if (w->pass[i].path) mr_h5_mem_discard(w->pass[i].f);
        free(w->pass[i].path);
    }
    free(w->pred_buf);
    free(w);
}

int mr_routing_clean_path(char *buf, size_t cap, const char *path)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - path) : strlen(path);
    int n = snprintf(buf, cap, "%.*s.clean%s", (int)stem, path, path + stem);
    MR_REQUIRE(n >= 0 && (size_t)n < cap, MR_EINPUT, "%s: path too long", path);
    return MR_OK;
}

/* Root attributes, /sample_id and /labels or /targets of the first n samples of d. */
static int write_header(hid_t f, const mr_model *m, const mr_dataset *d, int n, int T,
                        const mr_trace_meta *meta, const char *condition)
{
    int st = MR_OK, lm = m->cfg.task == MR_TASK_LM;
    st |= mr_h5_write_attr_string(f, "format", "moe-robust-trace");
    st |= mr_h5_write_attr_int(f, "version", MR_TRACE_VERSION);
    st |= mr_h5_write_attr_string(f, "model", meta->model);
    st |= mr_h5_write_attr_string(f, "router", meta->router);
    st |= mr_h5_write_attr_string(f, "checkpoint", meta->checkpoint);
    st |= mr_h5_write_attr_int(f, "step", meta->step);
    st |= mr_h5_write_attr_string(f, "condition", condition);
    st |= mr_h5_write_attr_string(f, "task", lm ? "lm" : "classify");
    st |= mr_h5_write_attr_string(f, "source", meta->source);
    int64_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    int32_t *lab = malloc(((size_t)n * (lm ? T : 1) + 1) * sizeof *lab);
    if (!ids || !lab) st = MR_ENOMEM;
    for (int s = 0; st == MR_OK && s < n; s++) {
        ids[s] = s;
        if (!lm) lab[s] = d->labels[s];
        for (int t = 0; lm && t < T; t++) lab[(size_t)s * T + t] = d->tokens[(size_t)s * d->cols + t + 1];
    }
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)T};
    if (st == MR_OK)
        st = mr_h5_write_dataset(f, "sample_id", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims, ids,
                                 H5P_DEFAULT);
    if (st == MR_OK)
        st = mr_h5_write_dataset(f, lm ? "targets" : "labels", H5T_STD_I32LE, H5T_NATIVE_INT32,
                                 lm ? 2 : 1, dims, lab, H5P_DEFAULT);
    free(ids);
    free(lab);
    return st;
}

/* The file and datasets of one pass. */
static int pass_create(pass_ds *p, const char *path, const mr_routing_writer *w,
                       const mr_model *m, const mr_dataset *d, const mr_trace_meta *meta,
                       const char *condition)
{
    const mr_config *c = &m->cfg;
    hsize_t n = (hsize_t)w->n, T = (hsize_t)w->T, k = (hsize_t)w->k, E = (hsize_t)w->E;
    p->path = malloc(strlen(path) + 1);
    if (!p->path) return mr_error_set(MR_ENOMEM, "out of memory");
    strcpy(p->path, path);
    /* the whole file is held in memory until close: N x T x (E + 2k) x 4 bytes per MoE
     * block plus the logits or token losses (docs/performance.md, "Memory") */
    size_t per_row = (size_t)T * ((size_t)w->E + 2 * (size_t)k) * 4 * (size_t)w->n_moe +
                     4 * (c->task == MR_TASK_CLASSIFY ? (size_t)c->n_out : 3 * (size_t)T);
    int st = mr_h5_mem_create(&p->f, path, (size_t)n * per_row + ((size_t)1 << 16));
    if (st != MR_OK) {
        free(p->path);
        p->path = NULL;
        return st;
    }
    int ok = write_header(p->f, m, d, w->n, w->T, meta, condition) == MR_OK;
    p->out = c->task == MR_TASK_CLASSIFY
                 ? make_ds(p->f, "logits", H5T_IEEE_F32LE, 2, n, (hsize_t)c->n_out, 0)
                 : make_ds(p->f, "token_loss", H5T_IEEE_F32LE, 2, n, T, 0);
    ok = ok && p->out >= 0;
    if (ok && c->task == MR_TASK_LM) ok = (p->pred = make_ds(p->f, "predictions", H5T_STD_I32LE, 2, n, T, 0)) >= 0;
    p->probs = calloc((size_t)w->n_moe + 1, sizeof(hid_t));
    p->topk = calloc((size_t)w->n_moe + 1, sizeof(hid_t));
    p->weights = calloc((size_t)w->n_moe + 1, sizeof(hid_t));
    hid_t layers = ok ? mr_h5_create_group(p->f, "layers") : -1;
    ok = ok && p->probs && p->topk && p->weights && layers >= 0;
    for (int i = 0; ok && i < w->n_moe; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d", c->moe_layers[i]);
        hid_t g = mr_h5_create_group(layers, name);
        if (g < 0) {
            ok = 0;
            break;
        }
        p->probs[i] = make_ds(g, "probs", H5T_IEEE_F32LE, 3, n, T, E);
        ok = p->probs[i] >= 0 && mr_h5_write_attr_int(p->probs[i], "top_k", w->k) == MR_OK &&
             mr_h5_write_attr_string(p->probs[i], "score", "softmax") == MR_OK &&
             mr_h5_write_attr_int(p->probs[i], "norm_topk", c->gate_norm == MR_GATE_RENORM) == MR_OK;
        p->topk[i] = make_ds(g, "topk", H5T_STD_I32LE, 3, n, T, k);
        p->weights[i] = make_ds(g, "weights", H5T_IEEE_F32LE, 3, n, T, k);
        ok = ok && p->topk[i] >= 0 && p->weights[i] >= 0;
        H5Gclose(g);
    }
    if (layers >= 0) H5Gclose(layers);
    return ok ? MR_OK
              : mr_error_set(MR_ENOMEM, "%s: cannot create the datasets in memory (out of memory?)",
                             path);
}

int mr_routing_writer_open(mr_routing_writer **out, const char *path, const mr_model *m,
                           const mr_dataset *d, int n, int T, int k, const mr_trace_meta *meta,
                           int two_passes)
{
    *out = NULL;
    mr_h5_quiet();
    const mr_config *c = &m->cfg;
    mr_routing_writer *w = calloc(1, sizeof *w);
    if (!w) return mr_error_set(MR_ENOMEM, "out of memory");
    w->n_pass = two_passes ? 2 : 1;
    w->n_moe = c->n_moe;
    w->n = n;
    w->T = T;
    w->k = k;
    w->E = c->n_experts;
    w->n_out = c->n_out;
    w->task = c->task;
    char clean[4096];
    int st = two_passes ? mr_routing_clean_path(clean, sizeof clean, path) : MR_OK;
    if (st == MR_OK)
        st = two_passes ? pass_create(&w->pass[0], clean, w, m, d, meta, "clean")
                        : pass_create(&w->pass[0], path, w, m, d, meta, meta->condition);
    if (st == MR_OK && two_passes) st = pass_create(&w->pass[1], path, w, m, d, meta, meta->condition);
    if (st != MR_OK) {
        mr_routing_writer_abort(w);
        return st;
    }
    *out = w;
    return MR_OK;
}

/* write rows [s0, s0+rows) of a dataset whose rows hold `cols` x `inner` elements */
static int put_rows(hid_t ds, hid_t memtype, const void *src, int s0, int rows, int rank,
                    hsize_t d1, hsize_t d2)
{
    hsize_t start[3] = {(hsize_t)s0, 0, 0}, count[3] = {(hsize_t)rows, d1, d2};
    hid_t fs = H5Dget_space(ds);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Dwrite(ds, memtype, ms, fs, H5P_DEFAULT, src);
    H5Sclose(ms);
    H5Sclose(fs);
    return e < 0 ? MR_EIO : MR_OK;
}

int mr_routing_writer_put(mr_routing_writer *w, int pass, const mr_trace *tr, int s0,
                          const float *token_loss)
{
    mr_h5_quiet(); /* called from worker threads: the setting is per thread */
    MR_REQUIRE(pass >= 0 && pass < w->n_pass, MR_EINPUT, "routing writer: no pass %d", pass);
    const pass_ds *p = &w->pass[pass];
    int B = tr->B, T = tr->T, st = MR_OK;
    size_t per = (size_t)B * T;
    if (w->task == MR_TASK_CLASSIFY)
        st |= put_rows(p->out, H5T_NATIVE_FLOAT, tr->logits, s0, B, 2, (hsize_t)w->n_out, 0);
    else
        st |= put_rows(p->out, H5T_NATIVE_FLOAT, token_loss, s0, B, 2, (hsize_t)T, 0);
    if (w->task == MR_TASK_LM) {
        if (per > w->pred_cap) {
            int32_t *nb = realloc(w->pred_buf, per * sizeof *nb);
            if (!nb) return mr_error_set(MR_ENOMEM, "out of memory");
            w->pred_buf = nb;
            w->pred_cap = per;
        }
        for (size_t i = 0; i < per; i++)
            w->pred_buf[i] = mr_score_argmax(tr->logits + i * w->n_out, w->n_out);
        st |= put_rows(p->pred, H5T_NATIVE_INT32, w->pred_buf, s0, B, 2, (hsize_t)T, 0);
    }
    for (int i = 0; i < w->n_moe; i++) {
        st |= put_rows(p->probs[i], H5T_NATIVE_FLOAT, tr->probs + i * per * tr->E, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->E);
        st |= put_rows(p->topk[i], H5T_NATIVE_INT, tr->topk + i * per * tr->k, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->k);
        st |= put_rows(p->weights[i], H5T_NATIVE_FLOAT, tr->weights + i * per * tr->k, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->k);
    }
    return st ? mr_error_set(MR_ENOMEM, "%s: cannot store rows in memory (out of memory?)",
                             p->path)
              : MR_OK;
}

int mr_routing_writer_close(mr_routing_writer *w)
{
    int st = MR_OK;
    for (int i = 0; i < w->n_pass; i++) {
        pass_close(&w->pass[i], w->n_moe);
        int e = mr_h5_mem_commit(w->pass[i].f, w->pass[i].path);
        if (st == MR_OK) st = e;
        free(w->pass[i].path);
        w->pass[i].path = NULL;
    }
    free(w->pred_buf);
    free(w);
    return st;
}
