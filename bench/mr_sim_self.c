/* mr_sim_self — how often a token's own similarity-router projection has its largest
 * inner product with itself (docs/routers.md, `similarity`: what tau -> 0 does).
 *
 *   moe-robust-sim-self MODEL.h5 DATA [N]
 *
 * For every MoE block and token i of the first N samples (default 1000): the token j the
 * similarity graph S_ij = softmax_j(<W_s x_i, W_s x_j> / tau) concentrates on as tau -> 0
 * is argmax_j <W_s x_i, W_s x_j> (j: all tokens of an image; x the block's normalized
 * input, W_s the model's router/sim_w or the identity). Prints the share with j = i: only
 * those tokens keep their own gate, i.e. route as softmax would.
 */
#include <stdio.h>
#include <stdlib.h>

#include "analysis/mr_engine.h"
#include "analysis/mr_error.h"
#include "analysis/mr_parse.h"
#include "analysis/mr_router.h"
#include "io/mr_data.h"
#include "io/mr_model_io.h"

int main(int argc, char **argv)
{
    int n = 1000;
    if (argc < 3 || argc > 4 || (argc == 4 && mr_parse_int("N", argv[3], 1, 1 << 30, &n) != MR_OK)) {
        fprintf(stderr, "usage: moe-robust-sim-self MODEL.h5 DATA [N]\n");
        return 2;
    }
    mr_model *m = NULL;
    mr_dataset *d = NULL;
    mr_router *r = NULL;
    mr_workspace *ws = NULL;
    mr_router_opts o = {0};
    mr_engine_opts eo;
    int st = mr_model_load(&m, argv[1]);
    if (st == MR_OK) st = mr_dataset_load(&d, argv[2], n);
    if (st == MR_OK && (m->cfg.task != MR_TASK_CLASSIFY || d->kind != MR_DATA_IMAGES))
        st = mr_error_set(MR_EINPUT, "an image classifier and images, please");
    if (st == MR_OK) st = mr_router_alloc(&r, "softmax", m, &o);
    if (st == MR_OK) {
        mr_engine_opts_init(&eo, m);
        eo.batch = 50;
        eo.keep_moe_input = 1;
        st = mr_workspace_alloc(&ws, m, r, &eo);
    }
    int nm = st == MR_OK ? m->cfg.n_moe : 0, D = st == MR_OK ? m->cfg.d_model : 0;
    long *self = calloc((size_t)nm + 1, sizeof *self), total = 0;
    double *z = NULL;
    for (int s0 = 0; st == MR_OK && s0 < d->n; s0 += eo.batch) {
        int nb = d->n - s0 < eo.batch ? d->n - s0 : eo.batch;
        st = mr_engine_forward_images(ws, d->images + (size_t)s0 * d->h * d->w * d->c, nb);
        const mr_trace *t = mr_workspace_trace(ws);
        int T = t->T;
        total += (long)nb * T;
        for (int mi = 0; st == MR_OK && mi < nm; mi++) {
            const mr_layer *ly = &m->layers[m->cfg.moe_layers[mi]];
            const mr_named_tensor *w = mr_layer_router_tensor(ly, "sim_w");
            int ds = w ? (int)w->dims[0] : D; /* z = W_s x: [T, ds] */
            if (!(z = realloc(z, sizeof *z * (size_t)T * ds))) st = MR_ENOMEM;
            for (int b = 0; st == MR_OK && b < nb; b++) {
                const float *x = t->moe_input + ((size_t)mi * t->B * T + (size_t)b * T) * D;
                for (int i = 0; i < T; i++)
                    for (int q = 0; q < ds; q++) {
                        double a = 0;
                        if (!w) a = x[i * D + q];
                        else
                            for (int f = 0; f < D; f++) a += (double)w->data[q * D + f] * x[i * D + f];
                        z[i * ds + q] = a;
                    }
                for (int i = 0; i < T; i++) {
                    int best = 0;
                    double bv = 0;
                    for (int j = 0; j < T; j++) {
                        double s = 0;
                        for (int q = 0; q < ds; q++) s += z[i * ds + q] * z[j * ds + q];
                        if (j == 0 || s > bv) bv = s, best = j;
                    }
                    self[mi] += best == i;
                }
            }
        }
    }
    if (st == MR_OK)
        for (int mi = 0; mi < nm; mi++)
            printf("%s: block %d: %ld of %ld tokens (%.1f %%) have their largest inner product "
                   "with themselves\n", argv[1], m->cfg.moe_layers[mi], self[mi], total,
                   100.0 * self[mi] / total);
    else
        fprintf(stderr, "moe-robust-sim-self: %s\n", mr_error_message());
    free(z);
    free(self);
    mr_workspace_free(ws);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
    return mr_error_exit_code(st);
}
