/* `moe-robust analyze` (mr_analyze.h): trace files into logical traces (the shards of one
 * model, router, k, checkpoint and condition merged by sample id), models with their
 * canonical samples, and (model, router, k) series. */
#include "mr_analyze_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

static int key_cmp(const mr_trace_file *a, const mr_trace_file *b)
{
    int c = strcmp(a->model, b->model);
    if (!c) c = strcmp(a->router, b->router);
    if (!c) c = (a->k > b->k) - (a->k < b->k);
    if (!c) c = (a->step > b->step) - (a->step < b->step);
    if (!c) c = strcmp(a->checkpoint, b->checkpoint);
    if (!c) c = strcmp(a->condition, b->condition);
    return c;
}

static int file_cmp(const void *x, const void *y)
{
    const mr_trace_file *a = *(mr_trace_file *const *)x, *b = *(mr_trace_file *const *)y;
    int c = key_cmp(a, b);
    return c ? c : strcmp(a->path, b->path);
}

typedef struct idloc {
    int64_t id;
    int file, row;
} idloc;

static int idloc_cmp(const void *x, const void *y)
{
    const idloc *a = x, *b = y;
    return (a->id > b->id) - (a->id < b->id);
}

/* Shards agree on everything but their rows. */
static int check_shard(const mr_trace_file *a, const mr_trace_file *b)
{
    MR_TRY(mr_trace_check_same_shape(a, b));
    MR_REQUIRE(a->has_mask == b->has_mask && a->has_labels == b->has_labels &&
                   a->has_out == b->has_out && a->has_pred == b->has_pred,
               MR_EINPUT, "%s: a shard of %s but with other optional datasets (/mask, /labels, "
               "/logits, /token_loss, /predictions)", b->path, a->path);
    return MR_OK;
}

static int merge_shards(ltrace *l)
{
    long long total = 0;
    for (int i = 0; i < l->n_files; i++) total += l->files[i]->N;
    MR_REQUIRE(total <= 2000000000LL, MR_EINPUT, "%s: %lld samples over its shards", l->files[0]->path,
               total);
    idloc *v = malloc((size_t)total * sizeof *v);
    l->ids = malloc((size_t)total * sizeof *l->ids);
    l->file = malloc((size_t)total * sizeof *l->file);
    l->row = malloc((size_t)total * sizeof *l->row);
    if (!v || !l->ids || !l->file || !l->row) {
        free(v);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    size_t n = 0;
    for (int i = 0; i < l->n_files; i++)
        for (int r = 0; r < l->files[i]->N; r++) v[n++] = (idloc){l->files[i]->ids[r], i, r};
    qsort(v, n, sizeof *v, idloc_cmp);
    int st = MR_OK;
    for (size_t i = 0; i < n; i++) {
        if (i && v[i].id == v[i - 1].id) {
            st = mr_error_set(MR_EINPUT, "%s: /sample_id: id %lld is also in %s (shards of one "
                              "trace must hold disjoint samples)",
                              l->files[v[i].file]->path, (long long)v[i].id,
                              l->files[v[i - 1].file]->path);
            break;
        }
        l->ids[i] = v[i].id;
        l->file[i] = v[i].file;
        l->row[i] = v[i].row;
    }
    l->n = (int)n;
    free(v);
    return st;
}

static int find_id(const ltrace *l, int64_t id)
{
    int lo = 0, hi = l->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (l->ids[mid] == id) return mid;
        if (l->ids[mid] < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int mr_analyze_group(analyzer *az, const char *const *paths, int n)
{
    az->files = calloc((size_t)n + 1, sizeof *az->files);
    az->lt = calloc((size_t)n + 1, sizeof *az->lt);
    if (!az->files || !az->lt) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        MR_TRY(mr_trace_open(&az->files[i], paths[i]));
        az->n_files++;
    }
    qsort(az->files, (size_t)n, sizeof *az->files, file_cmp);
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && strcmp(az->files[j]->model, az->files[i]->model) == 0 &&
               strcmp(az->files[j]->router, az->files[i]->router) == 0 &&
               az->files[j]->k == az->files[i]->k &&
               strcmp(az->files[j]->checkpoint, az->files[i]->checkpoint) == 0 &&
               strcmp(az->files[j]->condition, az->files[i]->condition) == 0)
            j++;
        for (int s = i + 1; s < j; s++) {
            MR_TRY(check_shard(az->files[i], az->files[s]));
            MR_REQUIRE(az->files[s]->step == az->files[i]->step, MR_EINPUT,
                       "%s: step = %lld, but its shard %s has step = %lld", az->files[s]->path,
                       az->files[s]->step, az->files[i]->path, az->files[i]->step);
        }
        ltrace *l = &az->lt[az->n_lt++];
        l->files = az->files + i;
        l->n_files = j - i;
        MR_TRY(merge_shards(l));
        i = j;
    }
    return MR_OK;
}

/* ------------------------------------------------------------------ models and samples */

static int check_model_shape(const mr_trace_file *a, const mr_trace_file *b)
{
    int same = a->T == b->T && a->E == b->E && a->task == b->task && a->C == b->C &&
               a->n_layers == b->n_layers;
    for (int i = 0; same && i < a->n_layers; i++) same = a->layers[i].index == b->layers[i].index;
    MR_REQUIRE(same, MR_EINPUT,
               "%s: E = %d experts, T = %d positions, %d MoE layers, but %s of the same model %s "
               "has E = %d, T = %d, %d layers (or task or classes differ): the traces of one "
               "model must route the same layers over the same experts",
               b->path, b->E, b->T, b->n_layers, a->path, b->model, a->E, a->T, a->n_layers);
    return MR_OK;
}

int mr_analyze_build_models(analyzer *az)
{
    az->models = calloc((size_t)az->n_lt + 1, sizeof *az->models);
    if (!az->models) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; i < az->n_lt; i++) {
        ltrace *l = &az->lt[i];
        const mr_trace_file *t = l->files[0];
        int m = az->n_models - 1;
        if (m < 0 || strcmp(az->models[m].name, t->model) != 0) {
            m = az->n_models++;
            az->models[m].name = t->model;
        }
        l->model = m;
    }
    for (int m = 0; m < az->n_models; m++) {
        amodel *am = &az->models[m];
        ltrace *first = NULL;
        for (int i = 0; i < az->n_lt; i++) {
            ltrace *l = &az->lt[i];
            if (l->model != m) continue;
            if (!first) {
                first = l;
                am->ids = malloc((size_t)l->n * sizeof *am->ids);
                if (!am->ids) return mr_error_set(MR_ENOMEM, "out of memory");
                memcpy(am->ids, l->ids, (size_t)l->n * sizeof *am->ids);
                am->n = l->n;
                continue;
            }
            MR_TRY(check_model_shape(first->files[0], l->files[0]));
            int k = 0;
            for (int s = 0; s < am->n; s++)
                if (find_id(l, am->ids[s]) >= 0) am->ids[k++] = am->ids[s];
            am->n = k;
        }
        /* every trace of the model holds exactly the common samples, or --allow-missing */
        for (int i = 0; i < az->n_lt; i++) {
            ltrace *l = &az->lt[i];
            if (l->model != m || l->n == am->n) continue;
            int64_t extra = 0;
            for (int s = 0; s < l->n; s++) {
                int lo = 0, hi = am->n - 1, found = 0;
                while (lo <= hi && !found) {
                    int mid = lo + (hi - lo) / 2;
                    found = am->ids[mid] == l->ids[s];
                    if (am->ids[mid] < l->ids[s]) lo = mid + 1;
                    else hi = mid - 1;
                }
                if (!found) {
                    extra = l->ids[s];
                    break;
                }
            }
            const ltrace *miss = NULL;
            for (int j = 0; j < az->n_lt && !miss; j++)
                if (az->lt[j].model == m && find_id(&az->lt[j], extra) < 0) miss = &az->lt[j];
            if (!az->o->allow_missing)
                return mr_error_set(MR_EINPUT,
                                    "%s: /sample_id: sample %lld of %s (condition %s) is missing "
                                    "here (condition %s); pass --allow-missing to analyze only "
                                    "the samples every trace of model %s holds",
                                    miss ? miss->files[0]->path : "?", (long long)extra,
                                    l->files[0]->path, l->files[0]->condition,
                                    miss ? miss->files[0]->condition : "?", am->name);
            if (l->n - am->n > am->dropped) am->dropped = l->n - am->n;
        }
        MR_REQUIRE(am->n >= 1, MR_EINPUT, "model %s: no sample is present in every one of its "
                   "traces", am->name);
    }
    for (int i = 0; i < az->n_lt; i++) {
        ltrace *l = &az->lt[i];
        const amodel *am = &az->models[l->model];
        l->loc_file = malloc((size_t)am->n * sizeof *l->loc_file);
        l->loc_row = malloc((size_t)am->n * sizeof *l->loc_row);
        if (!l->loc_file || !l->loc_row) return mr_error_set(MR_ENOMEM, "out of memory");
        for (int s = 0; s < am->n; s++) {
            int j = find_id(l, am->ids[s]);
            l->loc_file[s] = l->file[j];
            l->loc_row[s] = l->row[j];
        }
    }
    return MR_OK;
}

/* ------------------------------------------------------------------ series */

int mr_analyze_build_units(analyzer *az)
{
    az->units = calloc((size_t)az->n_lt + 1, sizeof *az->units);
    if (!az->units) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; i < az->n_lt;) {
        const mr_trace_file *t = az->lt[i].files[0];
        int j = i + 1;
        while (j < az->n_lt && strcmp(az->lt[j].files[0]->model, t->model) == 0 &&
               strcmp(az->lt[j].files[0]->router, t->router) == 0 && az->lt[j].files[0]->k == t->k)
            j++;
        unit *u = &az->units[az->n_units++];
        u->model = az->lt[i].model;
        u->router = t->router;
        u->k = t->k;
        int cap = j - i;
        u->clean = calloc((size_t)cap, sizeof *u->clean);
        u->corr = calloc((size_t)cap, sizeof *u->corr);
        u->first_corr = calloc((size_t)cap, sizeof *u->first_corr);
        u->n_corr = calloc((size_t)cap, sizeof *u->n_corr);
        u->layers = calloc((size_t)t->n_layers + 1, sizeof *u->layers);
        for (int l = 0; u->layers && l < t->n_layers; l++) u->layers[l] = t->layers[l].index;
        if (!u->clean || !u->corr || !u->first_corr || !u->n_corr || !u->layers)
            return mr_error_set(MR_ENOMEM, "out of memory");
        /* sorted by step, checkpoint, condition ("clean" sorts among the corruptions) */
        for (int a = i; a < j;) {
            const mr_trace_file *ca = az->lt[a].files[0];
            int b = a;
            while (b < j && strcmp(az->lt[b].files[0]->checkpoint, ca->checkpoint) == 0) b++;
            if (u->n_ckpt) {
                const mr_trace_file *prev = u->clean[u->n_ckpt - 1]
                                                ? u->clean[u->n_ckpt - 1]->files[0]
                                                : u->corr[u->first_corr[u->n_ckpt - 1]]->files[0];
                MR_REQUIRE(prev->step != ca->step, MR_EINPUT,
                           "%s: checkpoints %s and %s of model %s both have step = %lld (step "
                           "orders checkpoints)",
                           ca->path, prev->checkpoint, ca->checkpoint, ca->model, ca->step);
            }
            for (int s = i; s < j; s++)
                MR_REQUIRE(strcmp(az->lt[s].files[0]->checkpoint, ca->checkpoint) != 0 ||
                               az->lt[s].files[0]->step == ca->step,
                           MR_EINPUT, "%s: checkpoint %s has step = %lld here and %lld in %s",
                           az->lt[s].files[0]->path, ca->checkpoint, az->lt[s].files[0]->step,
                           ca->step, ca->path);
            int c = u->n_ckpt++;
            u->first_corr[c] = u->n_corr_total;
            for (int x = a; x < b; x++) {
                if (strcmp(az->lt[x].files[0]->condition, "clean") == 0) u->clean[c] = &az->lt[x];
                else u->corr[u->n_corr_total++] = &az->lt[x];
            }
            u->n_corr[c] = u->n_corr_total - u->first_corr[c];
            MR_REQUIRE(u->clean[c], MR_EINPUT,
                       "%s: condition %s has no clean trace of the same model %s, router %s, "
                       "top_k %d and checkpoint %s to be paired with",
                       ca->path, u->corr[u->first_corr[c]]->files[0]->condition, ca->model,
                       ca->router, ca->k, ca->checkpoint);
            a = b;
        }
        i = j;
    }
    return MR_OK;
}
