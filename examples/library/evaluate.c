/* Clean accuracy and per-layer routing entropy of a model on a data set, with
 * libmoerobust (docs/install.md).    evaluate MODEL.h5 DATA [ROUTER] */
#include <stdio.h>
#include <moerobust/analysis/mr_error.h>
#include <moerobust/harness/mr_eval.h>
#include <moerobust/io/mr_model_io.h>

int main(int argc, char **argv)
{
    if (argc < 3) return fprintf(stderr, "usage: evaluate MODEL.h5 DATA [ROUTER]\n"), 2;
    mr_model *m = NULL;
    mr_dataset *d = NULL;
    mr_router *r = NULL;
    mr_router_opts ro = {0};
    mr_eval_result res = {0};
    mr_eval_opts o;
    mr_engine_blas_single_thread(); /* parallel over micro-batches, as the CLI */
    int st = mr_model_load(&m, argv[1]);
    if (st == MR_OK) st = mr_dataset_load(&d, argv[2], 0);
    if (st == MR_OK) st = mr_router_alloc(&r, argc > 3 ? argv[3] : m->cfg.router, m, &ro);
    if (st == MR_OK) mr_eval_opts_init(&o, m); /* 1 thread, 1000 bootstrap resamples */
    if (st == MR_OK) st = mr_eval_run(&res, m, r, d, &o);
    if (st == MR_OK) printf("accuracy %.4f\n", res.clean.accuracy.mean);
    for (int l = 0; st == MR_OK && l < res.n_moe; l++)
        printf("layer %d routing entropy %.4f nats\n", m->cfg.moe_layers[l],
               res.clean.layers[l].entropy.mean);
    if (st != MR_OK) fprintf(stderr, "evaluate: %s\n", mr_error_message());
    mr_eval_result_free(&res);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
    return mr_error_exit_code(st);
}
