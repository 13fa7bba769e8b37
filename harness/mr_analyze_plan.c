/* `moe-robust analyze` (mr_analyze.h): the reference router, the output's models,
 * corruptions and groups in a fixed order, and the configuration stored in results.h5. */
#include "mr_analyze_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

static int out_model(analyzer *az, const char *name)
{
    for (int i = 0; i < az->n_out_models; i++)
        if (strcmp(az->out_models[i], name) == 0) return i;
    return -1;
}

static int corr_index(analyzer *az, const char *name)
{
    for (int i = 0; i < az->n_corr_names; i++)
        if (strcmp(az->corr_names[i], name) == 0) return i;
    return -1;
}


static int has_router(const analyzer *az, int model, const char *router)
{
    for (int i = 0; i < az->n_units; i++)
        if (az->units[i].model == model && strcmp(az->units[i].router, router) == 0) return 1;
    return 0;
}

int mr_analyze_pick_reference(analyzer *az)
{
    const char *want = az->o->reference;
    if (want) {
        for (int m = 0; m < az->n_models; m++)
            MR_REQUIRE(has_router(az, m, want), MR_EINPUT,
                       "--reference %s: model %s has no trace of router %s", want,
                       az->models[m].name, want);
        snprintf(az->reference, sizeof az->reference, "%s", want);
        return MR_OK;
    }
    int all = 1;
    for (int m = 0; m < az->n_models; m++) all &= has_router(az, m, "softmax");
    if (all) {
        snprintf(az->reference, sizeof az->reference, "softmax");
        return MR_OK;
    }
    for (int i = 0; i < az->n_units; i++) { /* units are sorted by router name per model */
        int every = 1;
        for (int m = 0; m < az->n_models; m++) every &= has_router(az, m, az->units[i].router);
        if (every && (!az->reference[0] || strcmp(az->units[i].router, az->reference) < 0))
            snprintf(az->reference, sizeof az->reference, "%s", az->units[i].router);
    }
    MR_REQUIRE(az->reference[0], MR_EINPUT,
               "no router has traces of every model: CE, mCE and the paired comparisons need a "
               "reference router on every model (record one, or analyze models separately)");
    return MR_OK;
}

/* The synthesized configuration stored in results.h5: what the results reader takes from
 * a run's config (seed, bootstrap, level, reference, routers, models), and the traces. */
int mr_analyze_make_config(analyzer *az, const char *const *paths, int n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return mr_error_set(MR_ENOMEM, "out of memory");
    fprintf(fp, "# moe-robust analyze of %d routing traces (docs/traces.md)\n[run]\n", n);
    fprintf(fp, "seed = %llu\nbootstrap = %d\nlevel = %.17g\nreference = %s\n",
            (unsigned long long)az->o->seed, az->o->bootstrap, az->o->level, az->reference);
    fprintf(fp, "allow_missing = %d\n", az->o->allow_missing);
    for (int m = 0; m < az->n_out_models; m++) fprintf(fp, "\n[model %s]\n", az->out_models[m]);
    {
        /* routers by name, each once */
        const char *names[256];
        int nn = 0;
        for (int i = 0; i < az->n_units && nn < 256; i++) {
            int seen = 0;
            for (int j = 0; j < nn; j++) seen |= strcmp(names[j], az->units[i].router) == 0;
            if (!seen) names[nn++] = az->units[i].router;
        }
        for (int i = 0; i < nn; i++)
            for (int j = i + 1; j < nn; j++)
                if (strcmp(names[j], names[i]) < 0) {
                    const char *x = names[i];
                    names[i] = names[j];
                    names[j] = x;
                }
        for (int i = 0; i < nn; i++) fprintf(fp, "\n[router %s]\n", names[i]);
    }
    fprintf(fp, "\n[traces]\n");
    /* file names and their sample ids' shape, in the sorted order analyzed */
    for (int i = 0; i < az->n_files; i++)
        fprintf(fp, "file = %s (%s, %s, top_k %d, %s, %s, %d samples)\n", az->files[i]->path,
                az->files[i]->model, az->files[i]->router, az->files[i]->k,
                az->files[i]->checkpoint, az->files[i]->condition, az->files[i]->N);
    (void)paths;
    fclose(fp);
    az->config = buf;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)buf[i]) * 1099511628211ULL;
    az->hash = h;
    return MR_OK;
}

/* Output models, corruptions and groups, in a fixed order: models by name (an earlier
 * checkpoint with corrupted traces as MODEL@CHECKPOINT after its model), routers by name,
 * k ascending; corruptions by name. */
int mr_analyze_plan(analyzer *az)
{
    for (int i = 0; i < az->n_units; i++) {
        const unit *u = &az->units[i];
        if (out_model(az, az->models[u->model].name) < 0) {
            MR_REQUIRE(az->n_out_models < 64, MR_EINPUT, "more than 64 models");
            snprintf(az->out_models[az->n_out_models++], sizeof az->out_models[0], "%s",
                     az->models[u->model].name);
        }
        for (int c = 0; c < u->n_ckpt; c++) {
            for (int j = 0; j < u->n_corr[c]; j++) {
                const char *name = u->corr[u->first_corr[c] + j]->files[0]->corruption;
                if (corr_index(az, name) < 0) {
                    MR_REQUIRE(az->n_corr_names < 64, MR_EINPUT, "more than 64 corruptions");
                    az->corr_names[az->n_corr_names++] = name;
                }
            }
            if (c + 1 < u->n_ckpt && u->n_corr[c]) {
                char nm[NAME * 2 + 2];
                snprintf(nm, sizeof nm, "%s@%s", az->models[u->model].name,
                         u->clean[c]->files[0]->checkpoint);
                if (out_model(az, nm) < 0) {
                    MR_REQUIRE(az->n_out_models < 64, MR_EINPUT, "more than 64 models");
                    snprintf(az->out_models[az->n_out_models++], sizeof az->out_models[0], "%s", nm);
                }
            }
        }
    }
    for (int i = 0; i < az->n_corr_names; i++)
        for (int j = i + 1; j < az->n_corr_names; j++)
            if (strcmp(az->corr_names[j], az->corr_names[i]) < 0) {
                const char *x = az->corr_names[i];
                az->corr_names[i] = az->corr_names[j];
                az->corr_names[j] = x;
            }
    for (int i = 0; i < az->n_out_models; i++)
        for (int j = i + 1; j < az->n_out_models; j++)
            if (strcmp(az->out_models[j], az->out_models[i]) < 0) {
                char x[NAME * 2 + 2];
                memcpy(x, az->out_models[i], sizeof x);
                memcpy(az->out_models[i], az->out_models[j], sizeof x);
                memcpy(az->out_models[j], x, sizeof x);
            }
    /* corrupted traces are sorted by condition: put each checkpoint's in (name, severity) */
    int max_cells = 0;
    for (int i = 0; i < az->n_units; i++) max_cells += 2 * az->units[i].n_ckpt + az->units[i].n_corr_total;
    az->groups = calloc((size_t)2 * az->n_units + 1, sizeof *az->groups);
    az->metas = calloc((size_t)max_cells + 1, sizeof *az->metas);
    az->cells = calloc((size_t)max_cells + 1, sizeof *az->cells);
    az->cell_files = calloc((size_t)max_cells + 1, sizeof *az->cell_files);
    if (!az->groups || !az->metas || !az->cells || !az->cell_files)
        return mr_error_set(MR_ENOMEM, "out of memory");
    return MR_OK;
}
