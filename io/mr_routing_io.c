#include "mr_routing_io.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_h5.h"

/* The datasets of one pass: GROUP/logits or GROUP/token_loss, GROUP/layers/L/... */
typedef struct pass_ds {
    hid_t out;
    hid_t *probs, *topk, *weights; /* [n_moe] */
} pass_ds;

struct mr_routing_writer {
    hid_t f;              /* built in memory (mr_h5_mem_create), written at close */
    int n_pass;           /* 1: the file's root; 2: /clean and /corrupted */
    pass_ds pass[2];
    int n_moe, n, T, k, E, n_out, task;
    char *path;
};

static hid_t make_ds(hid_t loc, const char *name, hid_t type, int rank, hsize_t d0, hsize_t d1,
                     hsize_t d2)
{
    hsize_t dims[3] = {d0, d1, d2};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0); /* the same run, the same bytes */
    hid_t ds = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return ds;
}

static void pass_close(pass_ds *p, int n_moe)
{
    if (p->out > 0) H5Dclose(p->out);
    for (int i = 0; i < n_moe; i++) {
        if (p->probs && p->probs[i] > 0) H5Dclose(p->probs[i]);
        if (p->topk && p->topk[i] > 0) H5Dclose(p->topk[i]);
        if (p->weights && p->weights[i] > 0) H5Dclose(p->weights[i]);
    }
    free(p->probs);
    free(p->topk);
    free(p->weights);
    memset(p, 0, sizeof *p);
}

static void close_all(mr_routing_writer *w)
{
    for (int i = 0; i < 2; i++) pass_close(&w->pass[i], w->n_moe);
}

void mr_routing_writer_abort(mr_routing_writer *w)
{
    if (!w) return;
    close_all(w);
    mr_h5_mem_discard(w->f);
    free(w->path);
    free(w);
}

/* The datasets of one pass under `loc` (the root or a pass group). */
static int pass_create(pass_ds *p, hid_t loc, const mr_routing_writer *w, const mr_model *m)
{
    const mr_config *c = &m->cfg;
    hsize_t n = (hsize_t)w->n, T = (hsize_t)w->T, k = (hsize_t)w->k, E = (hsize_t)w->E;
    p->out = c->task == MR_TASK_CLASSIFY
                 ? make_ds(loc, "logits", H5T_IEEE_F32LE, 2, n, (hsize_t)c->n_out, 0)
                 : make_ds(loc, "token_loss", H5T_IEEE_F32LE, 2, n, T, 0);
    p->probs = calloc((size_t)w->n_moe + 1, sizeof(hid_t));
    p->topk = calloc((size_t)w->n_moe + 1, sizeof(hid_t));
    p->weights = calloc((size_t)w->n_moe + 1, sizeof(hid_t));
    hid_t layers = mr_h5_create_group(loc, "layers");
    int ok = p->out >= 0 && p->probs && p->topk && p->weights && layers >= 0;
    for (int i = 0; ok && i < w->n_moe; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d", c->moe_layers[i]);
        hid_t g = mr_h5_create_group(layers, name);
        if (g < 0) {
            ok = 0;
            break;
        }
        p->probs[i] = make_ds(g, "probs", H5T_IEEE_F32LE, 3, n, T, E);
        p->topk[i] = make_ds(g, "topk", H5T_STD_I32LE, 3, n, T, k);
        p->weights[i] = make_ds(g, "weights", H5T_IEEE_F32LE, 3, n, T, k);
        ok = p->probs[i] >= 0 && p->topk[i] >= 0 && p->weights[i] >= 0;
        H5Gclose(g);
    }
    if (layers >= 0) H5Gclose(layers);
    return ok ? MR_OK : MR_ENOMEM;
}

int mr_routing_writer_open(mr_routing_writer **out, const char *path, const mr_model *m, int n,
                           int T, int k, int two_passes)
{
    *out = NULL;
    mr_h5_quiet();
    const mr_config *c = &m->cfg;
    mr_routing_writer *w = calloc(1, sizeof *w);
    if (!w) return mr_error_set(MR_ENOMEM, "out of memory");
    w->f = -1;
    w->n_pass = two_passes ? 2 : 1;
    w->n_moe = c->n_moe;
    w->n = n;
    w->T = T;
    w->k = k;
    w->E = c->n_experts;
    w->n_out = c->n_out;
    w->task = c->task;
    w->path = malloc(strlen(path) + 1);
    if (!w->path) {
        free(w);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    strcpy(w->path, path);
    /* the whole file is held in memory until close: N x T x (E + 2k) x 4 bytes per MoE
     * block plus the logits or token losses, per pass (docs/performance.md, "Memory") */
    size_t per_row = (size_t)T * ((size_t)w->E + 2 * (size_t)k) * 4 * (size_t)w->n_moe +
                     4 * (c->task == MR_TASK_CLASSIFY ? (size_t)c->n_out : (size_t)T);
    int st = mr_h5_mem_create(&w->f, path, (size_t)w->n_pass * n * per_row + ((size_t)1 << 16));
    if (st != MR_OK) {
        free(w->path);
        free(w);
        return st;
    }
    int ok = mr_h5_write_attr_string(w->f, "model", m->path) == MR_OK &&
             mr_h5_write_attr_int(w->f, "top_k", k) == MR_OK &&
             mr_h5_write_attr_string(w->f, "passes", two_passes ? "clean corrupted" : "one") ==
                 MR_OK;
    static const char *const group[2] = {"clean", "corrupted"};
    for (int p = 0; ok && p < w->n_pass; p++) {
        hid_t loc = two_passes ? mr_h5_create_group(w->f, group[p]) : w->f;
        ok = loc >= 0 && pass_create(&w->pass[p], loc, w, m) == MR_OK;
        if (two_passes && loc >= 0) H5Gclose(loc);
    }
    if (!ok) {
        mr_routing_writer_abort(w);
        return mr_error_set(MR_ENOMEM, "%s: cannot create the datasets in memory (out of memory?)",
                            path);
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
    for (int i = 0; i < w->n_moe; i++) {
        st |= put_rows(p->probs[i], H5T_NATIVE_FLOAT, tr->probs + i * per * tr->E, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->E);
        st |= put_rows(p->topk[i], H5T_NATIVE_INT, tr->topk + i * per * tr->k, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->k);
        st |= put_rows(p->weights[i], H5T_NATIVE_FLOAT, tr->weights + i * per * tr->k, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->k);
    }
    return st ? mr_error_set(MR_ENOMEM, "%s: cannot store rows in memory (out of memory?)",
                             w->path)
              : MR_OK;
}

int mr_routing_writer_close(mr_routing_writer *w)
{
    close_all(w);
    int st = mr_h5_mem_commit(w->f, w->path);
    free(w->path);
    free(w);
    return st;
}
