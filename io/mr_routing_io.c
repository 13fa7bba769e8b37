#include "mr_routing_io.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_file.h"
#include "mr_h5.h"

struct mr_routing_writer {
    hid_t f;
    hid_t out;            /* /logits or /token_loss */
    hid_t *probs, *topk, *weights; /* [n_moe] */
    int n_moe, n, T, k, E, n_out, task;
    mr_atomic file;       /* written to file.tmp, renamed to file.path by close */
};

static hid_t make_ds(hid_t f, const char *path, hid_t type, int rank, hsize_t d0, hsize_t d1,
                     hsize_t d2)
{
    hsize_t dims[3] = {d0, d1, d2};
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(f, path, type, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return ds;
}

static void close_all(mr_routing_writer *w)
{
    if (w->out >= 0) H5Dclose(w->out);
    for (int i = 0; i < w->n_moe; i++) {
        if (w->probs && w->probs[i] >= 0) H5Dclose(w->probs[i]);
        if (w->topk && w->topk[i] >= 0) H5Dclose(w->topk[i]);
        if (w->weights && w->weights[i] >= 0) H5Dclose(w->weights[i]);
    }
    if (w->f >= 0) H5Fclose(w->f);
    w->f = w->out = -1;
    free(w->probs);
    free(w->topk);
    free(w->weights);
    w->probs = w->topk = w->weights = NULL;
}

void mr_routing_writer_abort(mr_routing_writer *w)
{
    if (!w) return;
    close_all(w);
    mr_atomic_abort(&w->file);
    free(w);
}

int mr_routing_writer_open(mr_routing_writer **out, const char *path, const mr_model *m, int n,
                           int T, int k)
{
    *out = NULL;
    mr_h5_quiet();
    const mr_config *c = &m->cfg;
    mr_routing_writer *w = calloc(1, sizeof *w);
    if (!w) return mr_error_set(MR_ENOMEM, "out of memory");
    w->f = w->out = -1;
    w->n_moe = c->n_moe;
    w->n = n;
    w->T = T;
    w->k = k;
    w->E = c->n_experts;
    w->n_out = c->n_out;
    w->task = c->task;
    int st = mr_atomic_begin(&w->file, path);
    if (st != MR_OK) {
        free(w);
        return st;
    }
    w->f = H5Fcreate(w->file.tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->f < 0) {
        free(w);
        return mr_error_set(MR_EINPUT, "%s: cannot create file (does the directory exist?)", path);
    }
    mr_h5_write_attr_string(w->f, "model", m->path);
    mr_h5_write_attr_int(w->f, "top_k", k);
    w->out = c->task == MR_TASK_CLASSIFY
                 ? make_ds(w->f, "/logits", H5T_IEEE_F32LE, 2, (hsize_t)n, (hsize_t)c->n_out, 0)
                 : make_ds(w->f, "/token_loss", H5T_IEEE_F32LE, 2, (hsize_t)n, (hsize_t)T, 0);
    int ok = w->out >= 0;
    w->probs = malloc(((size_t)w->n_moe + 1) * sizeof(hid_t));
    w->topk = malloc(((size_t)w->n_moe + 1) * sizeof(hid_t));
    w->weights = malloc(((size_t)w->n_moe + 1) * sizeof(hid_t));
    ok = ok && w->probs && w->topk && w->weights;
    for (int i = 0; ok && i < w->n_moe; i++) w->probs[i] = w->topk[i] = w->weights[i] = -1;
    for (int i = 0; ok && i < w->n_moe; i++) {
        char p[128];
        int L = c->moe_layers[i];
        snprintf(p, sizeof p, "/layers/%d/probs", L);
        w->probs[i] = make_ds(w->f, p, H5T_IEEE_F32LE, 3, (hsize_t)n, (hsize_t)T, (hsize_t)w->E);
        snprintf(p, sizeof p, "/layers/%d/topk", L);
        w->topk[i] = make_ds(w->f, p, H5T_STD_I32LE, 3, (hsize_t)n, (hsize_t)T, (hsize_t)k);
        snprintf(p, sizeof p, "/layers/%d/weights", L);
        w->weights[i] = make_ds(w->f, p, H5T_IEEE_F32LE, 3, (hsize_t)n, (hsize_t)T, (hsize_t)k);
        ok = w->probs[i] >= 0 && w->topk[i] >= 0 && w->weights[i] >= 0;
    }
    if (!ok) {
        mr_routing_writer_abort(w);
        return mr_error_set(MR_EIO, "%s: cannot create datasets", path);
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

int mr_routing_writer_put(mr_routing_writer *w, const mr_trace *tr, int s0,
                          const float *token_loss)
{
    int B = tr->B, T = tr->T, st = MR_OK;
    size_t per = (size_t)B * T;
    if (w->task == MR_TASK_CLASSIFY)
        st |= put_rows(w->out, H5T_NATIVE_FLOAT, tr->logits, s0, B, 2, (hsize_t)w->n_out, 0);
    else
        st |= put_rows(w->out, H5T_NATIVE_FLOAT, token_loss, s0, B, 2, (hsize_t)T, 0);
    for (int i = 0; i < w->n_moe; i++) {
        st |= put_rows(w->probs[i], H5T_NATIVE_FLOAT, tr->probs + i * per * tr->E, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->E);
        st |= put_rows(w->topk[i], H5T_NATIVE_INT, tr->topk + i * per * tr->k, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->k);
        st |= put_rows(w->weights[i], H5T_NATIVE_FLOAT, tr->weights + i * per * tr->k, s0, B, 3,
                       (hsize_t)T, (hsize_t)tr->k);
    }
    return st ? mr_error_set(MR_EIO, "%s: write failed", w->file.path) : MR_OK;
}

int mr_routing_writer_close(mr_routing_writer *w)
{
    close_all(w);
    int st = mr_atomic_commit(&w->file);
    free(w);
    return st;
}
