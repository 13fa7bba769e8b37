#include "mr_compress_setup.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../io/mr_data.h"
#include "../io/mr_fs.h"
#include "../io/mr_model_io.h"
#include "../io/mr_model_write.h"

void mr_compress_request_init(mr_compress_request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->calib_limit = MR_COMPRESS_DEFAULT_CALIB_LIMIT;
    rq->batch = 32;
    mr_compress_opts_init(&rq->opts);
}

static int unknown_method(const char *name)
{
    char list[256] = "";
    for (int i = 0; mr_compress_types[i]; i++) {
        strcat(list, i ? ", " : "");
        strcat(list, mr_compress_types[i]->name);
    }
    return mr_error_set(MR_EINPUT, "--method '%s': unknown compression method (one of %s)", name,
                        list);
}

static int describe(mr_model_meta *meta, const mr_compress_request *rq, const mr_model *m,
                    const mr_dataset *d, const mr_compress_result *res, const mr_compress_type *t)
{
    char buf[1024] = "", sha[65];
    MR_TRY(mr_model_meta_read_as(meta, rq->model, "source_"));
    MR_TRY(mr_model_meta_set_string(meta, "compress_method", t->name));
    MR_TRY(mr_model_meta_set_int(meta, "compress_experts", res->K));
    MR_TRY(mr_model_meta_set_int(meta, "compress_experts_before", res->E));
    for (int i = 0; i < res->n_layers; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%d", i ? "," : "", res->layers[i]);
    MR_TRY(mr_model_meta_set_string(meta, "compress_layers", buf));
    MR_TRY(mr_model_meta_set_string(meta, "compress_form", res->slots ? "slots" : "experts"));
    char *groups = mr_compress_groups_string(res);
    if (!groups) return mr_error_set(MR_ENOMEM, "out of memory");
    int st = mr_model_meta_set_string(meta, "compress_groups", groups);
    free(groups);
    MR_TRY(st);
    MR_TRY(mr_model_meta_set_string(meta, "compress_source", rq->model));
    MR_TRY(mr_model_meta_set_string(meta, "compress_router", m->cfg.router));
    MR_TRY(mr_model_meta_set_string(meta, "compress_calib", rq->calib));
    MR_TRY(mr_model_meta_set_int(meta, "compress_calib_samples", d->n));
    int T = d->kind == MR_DATA_TOKENS ? d->cols - 1 : mr_config_seq_len(&m->cfg);
    MR_TRY(mr_model_meta_set_int(meta, "compress_calib_tokens", (long long)d->n * T));
    mr_dataset_sha256(d, sha);
    MR_TRY(mr_model_meta_set_string(meta, "compress_calib_sha256", sha));
    if (t->low_rank) {
        MR_TRY(mr_model_meta_set_int(meta, "compress_rank", rq->opts.rank));
        MR_TRY(mr_model_meta_set_double(meta, "compress_sparse_keep", rq->opts.sparse_keep));
        MR_TRY(mr_model_meta_set_double(meta, "compress_param_ratio", res->param_ratio));
    }
    if (rq->command) MR_TRY(mr_model_meta_set_string(meta, "compress_command", rq->command));
    return MR_OK;
}

static void summary(FILE *fp, const mr_compress_request *rq, const mr_compress_result *res,
                    const mr_compress_type *t, const mr_dataset *d)
{
    fprintf(fp, "method       %s: %d -> %d experts per compressed MoE layer (%s form)\n", t->name,
            res->E, res->K, res->slots ? "slot" : "expert");
    fprintf(fp, "calibration  %s: %d samples\n", rq->calib, d->n);
    for (int i = 0; i < res->n_layers; i++) {
        fprintf(fp, "layer %-6d usage", res->layers[i]);
        for (int e = 0; e < res->E; e++) fprintf(fp, " %.3f", res->freq[(size_t)i * res->E + e]);
        fprintf(fp, "\n             kept/groups");
        const int *grp = res->group_of + (size_t)i * res->E, *rep = res->rep + (size_t)i * res->K;
        for (int g = 0; g < res->K; g++) {
            fprintf(fp, " {%d", rep[g]);
            for (int e = 0; e < res->E; e++)
                if (grp[e] == g && e != rep[g]) fprintf(fp, ",%d", e);
            fprintf(fp, "}");
        }
        fprintf(fp, "\n");
    }
    if (t->low_rank)
        fprintf(fp, "low rank     rank %d, sparse rows kept %.2f: %.3f of the expert parameters\n",
                rq->opts.rank, rq->opts.sparse_keep, res->param_ratio);
    fprintf(fp, "written      %s\n", rq->out);
}

int mr_compress_file(const mr_compress_request *rq, FILE *log)
{
    const mr_compress_type *t = mr_compress_lookup(rq->method);
    if (!t) return unknown_method(rq->method);
    mr_model *m = NULL;
    mr_dataset *d = NULL;
    mr_router *r = NULL;
    mr_calib *c = NULL;
    mr_model_meta *meta = NULL;
    mr_compress_result res = {0};
    /* the output is checked before any work: never the model or data file itself */
    char *labels = NULL;
    int st = mr_dataset_files(rq->calib, &labels);
    const char *inputs[3] = {rq->model, rq->calib, labels};
    if (st == MR_OK) st = mr_fs_check_output(rq->out, "--out", inputs, 3);
    free(labels);
    if (st == MR_OK) st = mr_model_load(&m, rq->model);
    if (st == MR_OK) st = mr_compress_check(m, t, &rq->opts);
    if (st == MR_OK) st = mr_dataset_load(&d, rq->calib, rq->calib_limit);
    if (st == MR_OK) st = mr_dataset_check_model(d, m);
    if (st == MR_OK && !mr_router_lookup(m->cfg.router))
        st = mr_error_set(MR_EINPUT, "%s: attribute router = '%s' names no router of this build",
                          rq->model, m->cfg.router);
    if (st == MR_OK) st = mr_router_alloc(&r, m->cfg.router, m, NULL);
    if (st == MR_OK)
        st = d->kind == MR_DATA_IMAGES ? mr_calib_images(&c, m, r, d->images, d->n, rq->batch)
                                       : mr_calib_tokens(&c, m, r, d->tokens, d->n, d->cols, rq->batch);
    if (st == MR_OK) st = mr_compress_run(&res, m, c, t, &rq->opts);
    if (st == MR_OK) st = mr_model_meta_alloc(&meta);
    if (st == MR_OK) st = describe(meta, rq, m, d, &res, t);
    if (st == MR_OK) st = mr_model_save(res.model, rq->out, meta);
    if (st == MR_OK && log) summary(log, rq, &res, t, d);
    mr_model_meta_free(meta);
    mr_compress_result_free(&res);
    mr_calib_free(c);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
    return st;
}
