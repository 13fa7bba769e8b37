#include "mr_summary.h"

#include <cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */
#include "../metrics/mr_stats.h"
#include "mr_file.h"
#include "mr_fs.h"
#include "mr_h5.h"

#ifndef MR_VERSION
#define MR_VERSION "0.1.0"
#endif

/* The group metrics (MR_PART_GROUP: CE against the reference group, per corruption and
 * their means) of one (model, router@k) group: v[id] in the shape of mr_metric_len. */
typedef struct ce_row {
    int group, ref_group;
    double *v[MR_METRIC_N];
    /* CE and relative CE per corruption family (docs/corruptions.md "Families"): the mean
     * over the family's corruptions of the run; NaN for a family without one */
    double fam_ce[MR_FAMILY_N], fam_rel[MR_FAMILY_N];
} ce_row;

/* Whether some corruption of the run is of family f. */
static int family_in_run(const mr_summary_run *g, int f)
{
    for (int ci = 0; ci < g->n_corr; ci++)
        if (mr_corruption_family(g->corr[ci]) == f) return 1;
    return 0;
}

/* The family means of a group's per-corruption CEs. */
static void family_means(const mr_summary_run *g, ce_row *r)
{
    for (int f = 0; f < MR_FAMILY_N; f++) {
        double ce = 0, rel = 0;
        int n = 0;
        for (int ci = 0; ci < g->n_corr; ci++) {
            if (mr_corruption_family(g->corr[ci]) != f) continue;
            ce += r->v[MR_M_CE][ci];
            rel += r->v[MR_M_RELATIVE_CE][ci];
            n++;
        }
        r->fam_ce[f] = n ? ce / n : NAN;
        r->fam_rel[f] = n ? rel / n : NAN;
    }
}

/* The cell of `group` with this kind, corruption ("" for clean and fluct cells) and
 * severity, or NULL. */
static const mr_cell_summary *find(const mr_summary_run *g, const mr_cell_summary *s, int group,
                                   int kind, const char *corr, int sev)
{
    const mr_summary_group *gr = &g->groups[group];
    for (int i = gr->first_cell; i < gr->first_cell + gr->n_cells; i++) {
        const mr_cell_meta *m = g->cells[i].meta;
        if (m->kind == kind && strcmp(m->corruption, corr) == 0 && m->severity == sev)
            return &s[i];
    }
    return NULL;
}

static void cell_path(char *buf, size_t cap, const char *dir, const mr_summary_cell *c)
{
    snprintf(buf, cap, "%s/cells/%s", dir, c->file);
}

/* The reference group's cell matching cell i (same kind, corruption, severity,
 * checkpoint pair), or -1. */
static int reference_cell(const mr_summary_run *g, int i, int ref_group)
{
    const mr_summary_cell *c = &g->cells[i];
    const mr_summary_group *rg = &g->groups[ref_group];
    for (int j = rg->first_cell; j < rg->first_cell + rg->n_cells; j++) {
        const mr_summary_cell *r = &g->cells[j];
        if (r->meta->kind == c->meta->kind && strcmp(r->meta->corruption, c->meta->corruption) == 0 &&
            r->meta->severity == c->meta->severity && r->ckpt == c->ckpt)
            return j;
    }
    return -1;
}

/* The reference router's group on the same model, at the same k if it has one; for a
 * model that does not run the reference router (its `routers` key), the same on the
 * first model that does (e.g. a router variant against the baseline model). The config
 * check guarantees some model runs it. */
static int reference_group_on(const mr_summary_run *g, int group, int model)
{
    const mr_summary_group *gr = &g->groups[group];
    int any = -1;
    for (int i = 0; i < g->n_groups; i++) {
        const mr_summary_group *o = &g->groups[i];
        if (o->model != model || strcmp(o->router, g->reference)) continue;
        if (o->k == gr->k) return i;
        if (any < 0) any = i;
    }
    return any;
}

static int reference_group(const mr_summary_run *g, int group)
{
    int r = reference_group_on(g, group, g->groups[group].model);
    for (int m = 0; r < 0 && m < g->n_models; m++) r = reference_group_on(g, group, m);
    return r;
}

/* Wrong predictions of a pass, as the exact integer count behind its accuracy: the
 * accuracy is a mean of per-sample fractions of `T` (lm) or 1 (classify) predictions. */
static long long scored(const mr_cell_summary *c)
{
    return c->meta.task == MR_TASK_LM ? (long long)c->meta.n * c->meta.T : (long long)c->meta.n;
}

static long long errors(const mr_cell_summary *c)
{
    return scored(c) - llround(c->value[MR_M_ACCURACY][0] * (double)scored(c));
}

static void compute_ce(const mr_summary_run *g, const mr_cell_summary *s, ce_row *rows)
{
    for (int gi = 0; gi < g->n_groups; gi++) {
        ce_row *r = &rows[gi];
        r->group = gi;
        r->ref_group = reference_group(g, gi);
        double sum = 0, rsum = 0, *ce = r->v[MR_M_CE], *rel = r->v[MR_M_RELATIVE_CE];
        const mr_cell_summary *clean = find(g, s, gi, MR_CELL_CLEAN, "", 0);
        const mr_cell_summary *rclean = find(g, s, r->ref_group, MR_CELL_CLEAN, "", 0);
        for (int ci = 0; ci < g->n_corr; ci++) {
            long long err[MR_SEVERITY_MAX], ref[MR_SEVERITY_MAX];
            int n = 0;
            for (int sev = 1; sev <= MR_SEVERITY_MAX; sev++) {
                const mr_cell_summary *a = find(g, s, gi, MR_CELL_CORRUPT, g->corr[ci], sev);
                const mr_cell_summary *b =
                    find(g, s, r->ref_group, MR_CELL_CORRUPT, g->corr[ci], sev);
                if (!a || !b) continue;
                err[n] = errors(a);
                ref[n] = errors(b);
                n++;
            }
            ce[ci] = n ? mr_stats_ce(err, scored(clean), ref, scored(rclean), n) : NAN;
            rel[ci] = n ? mr_stats_relative_ce(err, errors(clean), scored(clean), ref,
                                               errors(rclean), scored(rclean), n)
                        : NAN;
            sum += ce[ci];
            rsum += rel[ci];
        }
        r->v[MR_M_MCE][0] = g->n_corr ? sum / g->n_corr : NAN;
        r->v[MR_M_RELATIVE_MCE][0] = g->n_corr ? rsum / g->n_corr : NAN;
        family_means(g, r);
    }
}

/* ---- results.h5 ---- */

static int write_h5(const mr_summary_run *g, const char *dir, const ce_row *rows)
{
    char src[1400];
    char *path = mr_fs_join(dir, "results.h5");
    if (!path) return mr_error_set(MR_ENOMEM, "out of memory");
    hid_t f;
    /* built in memory, written by the atomic writer (io/mr_h5.h) */
    int st = mr_h5_mem_create(&f, path, 0);
    if (st != MR_OK) {
        free(path);
        return st;
    }
    st |= mr_h5_write_attr_string(f, "format", "moe-robust-results");
    st |= mr_h5_write_attr_string(f, "version", MR_VERSION);
    st |= mr_h5_write_attr_string(f, "config", g->config);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)g->hash);
    st |= mr_h5_write_attr_string(f, "config_hash", hash);
    int ok = st == MR_OK;
    const char *why = "";
    hid_t cells = ok ? mr_h5_create_group(f, "cells") : -1;
    ok = ok && cells >= 0;
    for (int i = 0; ok && i < g->n_cells; i++) {
        const mr_summary_cell *c = &g->cells[i];
        cell_path(src, sizeof src, dir, c);
        hid_t sf;
        if (mr_h5_open_read(&sf, src) != MR_OK) {
            ok = 0;
            why = mr_error_message();
            break;
        }
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(c->file) - 3), c->file);
        ok = H5Ocopy(sf, "/", cells, name, H5P_DEFAULT, H5P_DEFAULT) >= 0;
        H5Fclose(sf);
    }
    if (cells >= 0) H5Gclose(cells);
    hid_t ce = ok ? mr_h5_create_group(f, "ce") : -1;
    ok = ok && ce >= 0;
    for (int gi = 0; ok && gi < g->n_groups && g->n_corr; gi++) {
        const mr_summary_group *gr = &g->groups[gi];
        char name[200];
        snprintf(name, sizeof name, "%s~%s@k%d", g->models[gr->model], gr->router, gr->k);
        hid_t grp = mr_h5_create_group(ce, name);
        if (grp < 0) {
            ok = 0;
            break;
        }
        /* per-corruption metrics as datasets, their means as attributes */
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *mt = &mr_metric_table[i];
            const double *v = rows[gi].v[i];
            if (mt->part != MR_PART_GROUP) continue;
            if (mt->kind == MR_KIND_PERCORR)
                ok = ok && mr_h5_write_f64(grp, mt->dataset, v, 1, (hsize_t)g->n_corr, 0) == MR_OK;
            else
                ok = ok && mr_h5_write_attr_double(grp, mt->dataset, v[0]) == MR_OK;
        }
        size_t len = 1;
        for (int ci = 0; ci < g->n_corr; ci++) len += strlen(g->corr[ci]) + 1;
        char *list = malloc(len);
        ok = ok && list;
        if (list) {
            list[0] = '\0';
            for (int ci = 0; ci < g->n_corr; ci++) {
                if (ci) strcat(list, ",");
                strcat(list, g->corr[ci]);
            }
            ok = ok && mr_h5_write_attr_string(grp, "corruptions", list) == MR_OK;
        }
        free(list);
        /* per family of the run's corruptions (families in enum order) */
        double fce[MR_FAMILY_N], frel[MR_FAMILY_N];
        char fams[256] = "";
        int nf = 0;
        for (int fi = 0; fi < MR_FAMILY_N; fi++) {
            if (!family_in_run(g, fi)) continue;
            fce[nf] = rows[gi].fam_ce[fi];
            frel[nf++] = rows[gi].fam_rel[fi];
            snprintf(fams + strlen(fams), sizeof fams - strlen(fams), "%s%s", nf > 1 ? "," : "",
                     mr_family_name(fi));
        }
        if (nf) {
            ok = ok && mr_h5_write_f64(grp, "ce_family", fce, 1, (hsize_t)nf, 0) == MR_OK;
            ok = ok && mr_h5_write_f64(grp, "relative_ce_family", frel, 1, (hsize_t)nf, 0) == MR_OK;
            ok = ok && mr_h5_write_attr_string(grp, "families", fams) == MR_OK;
        }
        const mr_summary_group *rg = &g->groups[rows[gi].ref_group];
        char ref[200];
        snprintf(ref, sizeof ref, "%s~%s@k%d", g->models[rg->model], rg->router, rg->k);
        ok = ok && mr_h5_write_attr_string(grp, "reference", ref) == MR_OK;
        H5Gclose(grp);
    }
    if (ce >= 0) H5Gclose(ce);
    if (!ok) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", why);
        mr_h5_mem_discard(f);
        st = mr_error_set(MR_EIO, "%s: cannot assemble%s%s", path, msg[0] ? ": " : "", msg);
    } else {
        st = mr_h5_mem_commit(f, path);
    }
    free(path);
    return st;
}

/* ---- summary.json ---- */

/* A double printed with 17 significant digits, which reads back as the same double
 * (cJSON's own printing only promises equality within an epsilon); null if not finite. */
static cJSON *num(double v)
{
    if (!isfinite(v)) return cJSON_CreateNull();
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static cJSON *ci_json(const double *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "mean", num(v[0]));
    cJSON_AddItemToObject(o, "lo", num(v[1]));
    cJSON_AddItemToObject(o, "hi", num(v[2]));
    return o;
}

/* A stored value of metric mt (per-layer ones: layer l) as JSON. */
static cJSON *value_json(const mr_metric *mt, const double *v, int l, int E)
{
    if (mt->kind == MR_KIND_CI) return ci_json(v + 3 * l);
    if (mt->kind == MR_KIND_SCALAR) return num(v[l]);
    cJSON *a = cJSON_CreateArray();
    for (int e = 0; e < E; e++) cJSON_AddItemToArray(a, num(v[l * E + e]));
    return a;
}

static cJSON *cell_json(const mr_cell_summary *s)
{
    const mr_cell_meta *m = &s->meta;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "model", m->model);
    cJSON_AddStringToObject(o, "router", m->router);
    cJSON_AddStringToObject(o, "router_type", m->router_type);
    cJSON_AddNumberToObject(o, "k", m->k);
    cJSON_AddStringToObject(o, "kind", mr_cell_kind_name(m->kind));
    cJSON_AddStringToObject(o, "task", m->task == MR_TASK_LM ? "lm" : "classify");
    if (m->kind == MR_CELL_CORRUPT) {
        cJSON_AddStringToObject(o, "corruption", m->corruption);
        cJSON_AddStringToObject(o, "family", mr_family_name(mr_corruption_family(m->corruption)));
        cJSON_AddNumberToObject(o, "severity", m->severity);
    }
    if (m->kind == MR_CELL_ATTACK) { /* docs/attacks.md: eps in grey levels */
        cJSON_AddStringToObject(o, "attack", m->corruption);
        cJSON_AddNumberToObject(o, "eps_grey_levels", m->severity);
    }
    if (m->kind == MR_CELL_FLUCT) cJSON_AddStringToObject(o, "checkpoints", m->checkpoints);
    cJSON_AddNumberToObject(o, "samples", m->n);
    for (int i = 0; i < MR_METRIC_N; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        if (mt->per_layer || !s->value[i]) continue;
        if (i == MR_M_ACC_DROP_P && s->acc_drop_p_bound) {
            /* with B resamples no p below 1/B can be resolved: an upper bound, not a value */
            cJSON_AddItemToObject(o, mt->key, cJSON_CreateNull());
            cJSON_AddItemToObject(o, "accuracy_drop_p_below", num(s->value[i][0]));
        } else {
            cJSON_AddItemToObject(o, mt->key, value_json(mt, s->value[i], 0, m->E));
        }
    }
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < m->n_moe; l++) {
        cJSON *lo = cJSON_CreateObject();
        cJSON_AddNumberToObject(lo, "layer", m->layers[l]);
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *mt = &mr_metric_table[i];
            if (mt->per_layer && s->value[i])
                cJSON_AddItemToObject(lo, mt->key, value_json(mt, s->value[i], l, m->E));
        }
        cJSON_AddItemToArray(layers, lo);
    }
    return o;
}

static cJSON *paired_json(const mr_paired *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "mean", num(p->diff.mean));
    cJSON_AddItemToObject(o, "lo", num(p->diff.lo));
    cJSON_AddItemToObject(o, "hi", num(p->diff.hi));
    cJSON_AddItemToObject(o, "p", p->p_bound ? cJSON_CreateNull() : num(p->p_value));
    if (p->p_bound) cJSON_AddItemToObject(o, "p_below", num(p->p_value));
    return o;
}

/* McNemar's exact test on two classifiers' per-sample correctness. */
static double mcnemar(const double *x, const double *y, size_t n)
{
    long only_a = 0, only_b = 0;
    for (size_t s = 0; s < n; s++) {
        only_a += x[s] > 0.5 && y[s] < 0.5;
        only_b += x[s] < 0.5 && y[s] > 0.5;
    }
    return mr_stats_mcnemar_exact(only_a, only_b);
}

/* Paired comparison of cell i with the reference router's matching cell on the same
 * samples (docs/metrics.md, "Statistics"): for every metric of the schema marked
 * `paired` that the cell has, a paired bootstrap of the difference of its per-sample
 * vectors ("KEY_diff": per MoE layer for per-layer metrics), and McNemar's exact test on
 * the accuracy of classifiers. NULL when there is nothing to compare. */
/* Resample plans of the paired comparisons: 2-byte indices, 0.6 MB a stream at 300
 * samples, 20 MB at 10,000 (metrics/mr_boot.h). */
#define MR_SUMMARY_BOOT_BUDGET ((size_t)512 << 20)

static cJSON *vs_reference(const mr_summary_run *g, const char *dir, int i, int j,
                           mr_boot_cache *cache, int *status)
{
    const mr_cell_meta *m = g->cells[i].meta;
    if (j < 0 || j == i) return NULL;
    char a[1400], b[1400];
    cell_path(a, sizeof a, dir, &g->cells[i]);
    cell_path(b, sizeof b, dir, &g->cells[j]);
    size_t n = (size_t)m->n, nl = (size_t)m->n_moe;
    int B = g->bootstrap; /* 0: differences only, no p-value (as in eval) */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "reference_cell", g->cells[j].meta->id);
    /* a reference on another model (routers = ...) with other MoE layers: no per-layer
     * pairs to compare */
    int same_layers = g->cells[j].meta->n_moe == m->n_moe;
    /* each file opened once for all its vectors (an open was ~15 per cell, most of
     * `merge`'s time: docs/performance.md) */
    hid_t fa = -1, fb = -1;
    if (mr_h5_open_read(&fa, a) != MR_OK || mr_h5_open_read(&fb, b) != MR_OK)
        *status = MR_EINPUT;
    for (int id = 0; id < MR_METRIC_N && *status == MR_OK; id++) {
        const mr_metric *mt = &mr_metric_table[id];
        int has = mt->part == MR_PART_PASS ? m->kind != MR_CELL_FLUCT
                  : mt->part == MR_PART_FLIPS ? m->kind != MR_CELL_CLEAN : 0;
        if (!mt->paired || !has || (mt->per_layer && !same_layers)) continue;
        size_t L = mt->per_layer ? nl : 1;
        double *x = mr_cell_vector_at(fa, a, mt->samples, n * L);
        double *y = mr_cell_vector_at(fb, b, mt->samples, n * L);
        if (!x || !y) *status = MR_EINPUT;
        char key[96], purpose[128];
        snprintf(key, sizeof key, "%s_diff", mt->key);
        cJSON *arr = mt->per_layer ? cJSON_AddArrayToObject(o, key) : NULL;
        for (size_t l = 0; l < L && *status == MR_OK; l++) {
            mr_paired p;
            if (mt->per_layer)
                snprintf(purpose, sizeof purpose, "paired/%s/%zu", key, l);
            else
                snprintf(purpose, sizeof purpose, "paired/%s", mt->key);
            *status = mr_stats_paired_test(&p, x + l, y + l, n, L, B, g->level, g->seed, purpose,
                                           cache);
            if (*status != MR_OK) break;
            if (arr)
                cJSON_AddItemToArray(arr, paired_json(&p));
            else
                cJSON_AddItemToObject(o, key, paired_json(&p));
        }
        if (*status == MR_OK && id == MR_M_ACCURACY && m->task == MR_TASK_CLASSIFY)
            cJSON_AddItemToObject(o, "mcnemar_p", num(mcnemar(x, y, n)));
        free(x);
        free(y);
    }
    if (fa >= 0) H5Fclose(fa);
    if (fb >= 0) H5Fclose(fb);
    return o;
}

/* The routing-structure matrices of a clean cell, per layer (every pass cell's are in
 * results.h5; summary.json keeps the clean ones, which the report draws). */
static const char *const matrix_names[] = {"coactivation", "class_usage", "domain_usage"};

static void add_matrices(cJSON *cell, const char *path)
{
    cJSON *layers = cJSON_GetObjectItem(cell, "layers");
    hid_t f;
    if (mr_h5_open_read(&f, path) != MR_OK) return;
    for (size_t i = 0; i < sizeof matrix_names / sizeof matrix_names[0]; i++) {
        int d[3];
        char name[64];
        snprintf(name, sizeof name, "/%s", matrix_names[i]);
        double *v = mr_cell_matrix_at(f, path, name, d);
        if (!v) continue;
        for (int l = 0; l < d[0] && l < cJSON_GetArraySize(layers); l++) {
            cJSON *rows = cJSON_CreateArray();
            for (int r = 0; r < d[1]; r++) {
                cJSON *row = cJSON_CreateArray();
                for (int e = 0; e < d[2]; e++)
                    cJSON_AddItemToArray(row, num(v[((size_t)l * d[1] + r) * d[2] + e]));
                cJSON_AddItemToArray(rows, row);
            }
            cJSON_AddItemToObject(cJSON_GetArrayItem(layers, l), matrix_names[i], rows);
        }
        free(v);
    }
    H5Fclose(f);
}

static int write_json(const mr_summary_run *g, const char *dir, const mr_cell_summary *s,
                      const ce_row *rows)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "moe-robust-summary");
    cJSON_AddStringToObject(root, "version", MR_VERSION);
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)g->hash);
    cJSON_AddStringToObject(root, "config_hash", hash);
    cJSON_AddStringToObject(root, "config", g->config);
    cJSON *cells = cJSON_AddArrayToObject(root, "cells");
    /* every cell's comparisons draw the same streams ("paired/KEY_diff/LAYER"): their
     * resample plans are drawn once (metrics/mr_boot.h; the p-values and CIs are the same) */
    mr_boot_cache *cache = NULL;
    int st = mr_boot_cache_alloc(&cache, MR_SUMMARY_BOOT_BUDGET);
    for (int i = 0; i < g->n_cells && st == MR_OK; i++) {
        cJSON *c = cell_json(&s[i]);
        if (s[i].meta.kind == MR_CELL_CLEAN) {
            char path[1400];
            cell_path(path, sizeof path, dir, &g->cells[i]);
            add_matrices(c, path);
        }
        int j = reference_cell(g, i, rows[g->cells[i].group].ref_group);
        cJSON *vs = vs_reference(g, dir, i, j, cache, &st);
        if (vs) cJSON_AddItemToObject(c, "vs_reference", vs);
        cJSON_AddItemToArray(cells, c);
    }
    mr_boot_cache_free(cache);
    if (st != MR_OK) {
        cJSON_Delete(root);
        return mr_error_prefix(st, "%s: paired comparisons", dir);
    }
    cJSON *ce = cJSON_AddArrayToObject(root, "corruption_error");
    for (int gi = 0; gi < g->n_groups && g->n_corr; gi++) {
        const mr_summary_group *gr = &g->groups[gi], *rg = &g->groups[rows[gi].ref_group];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", g->models[gr->model]);
        cJSON_AddStringToObject(o, "router", gr->router);
        cJSON_AddNumberToObject(o, "k", gr->k);
        char ref[200]; /* ROUTER@kK, or MODEL/ROUTER@kK when on another model */
        if (rg->model == gr->model)
            snprintf(ref, sizeof ref, "%s@k%d", rg->router, rg->k);
        else
            snprintf(ref, sizeof ref, "%s/%s@k%d", g->models[rg->model], rg->router, rg->k);
        cJSON_AddStringToObject(o, "reference", ref);
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *mt = &mr_metric_table[i];
            const double *v = rows[gi].v[i];
            if (mt->part != MR_PART_GROUP) continue;
            if (mt->kind != MR_KIND_PERCORR) {
                cJSON_AddItemToObject(o, mt->key, num(v[0]));
                continue;
            }
            cJSON *per = cJSON_AddObjectToObject(o, mt->key);
            for (int ci = 0; ci < g->n_corr; ci++)
                cJSON_AddItemToObject(per, g->corr[ci], num(v[ci]));
            /* the same per family of the run's corruptions ("ce_family": {"noise": ...}) */
            char key[64];
            snprintf(key, sizeof key, "%s_family", mt->key);
            cJSON *fam = cJSON_AddObjectToObject(o, key);
            const double *fv = i == MR_M_CE ? rows[gi].fam_ce : rows[gi].fam_rel;
            for (int fi = 0; fi < MR_FAMILY_N; fi++)
                if (family_in_run(g, fi)) cJSON_AddItemToObject(fam, mr_family_name(fi), num(fv[fi]));
        }
        cJSON_AddItemToArray(ce, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return mr_error_set(MR_ENOMEM, "out of memory (summary.json)");
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    strcpy(withnl + n, "\n");
    st = mr_file_write_in(dir, "summary.json", withnl, strlen(withnl));
    free(withnl);
    return st;
}

/* ---- summary.csv: one row per cell and MoE layer ---- */

static int write_csv(const mr_summary_run *g, const char *dir, const mr_cell_summary *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return mr_error_set(MR_ENOMEM, "out of memory");
    fprintf(fp, "cell,model,router,k,kind,corruption,severity,layer");
    for (int i = 0; i < MR_METRIC_N; i++) {
        const mr_metric *mt = &mr_metric_table[i];
        if (mt->csv) fprintf(fp, ",%s", mt->key);
        if (mt->csv == 3) fprintf(fp, ",%s_lo,%s_hi", mt->key, mt->key);
    }
    fputc('\n', fp);
    for (int c = 0; c < g->n_cells; c++) {
        const mr_cell_meta *m = &s[c].meta;
        for (int l = 0; l < m->n_moe; l++) {
            fprintf(fp, "%s,%s,%s,%d,%s,%s,%d,%d", m->id, m->model, m->router, m->k,
                    mr_cell_kind_name(m->kind), m->corruption, m->severity, m->layers[l]);
            for (int i = 0; i < MR_METRIC_N; i++) {
                const mr_metric *mt = &mr_metric_table[i];
                const double *v = s[c].value[i];
                if (!mt->csv) continue;
                size_t at = mt->per_layer ? (mt->kind == MR_KIND_CI ? 3 * (size_t)l : (size_t)l) : 0;
                for (int j = 0; j < mt->csv; j++)
                    if (v && isfinite(v[at + (size_t)j]))
                        fprintf(fp, ",%.17g", v[at + (size_t)j]);
                    else
                        fputc(',', fp);
            }
            fputc('\n', fp);
        }
    }
    fclose(fp);
    int st = mr_file_write_in(dir, "summary.csv", buf, len);
    free(buf);
    return st;
}

int mr_summary_write(const mr_summary_run *g, const char *dir)
{
    char path[1400];
    int missing = 0;
    const char *first = NULL;
    for (int i = 0; i < g->n_cells; i++) {
        cell_path(path, sizeof path, dir, &g->cells[i]);
        if (!mr_cell_done(path, g->hash)) {
            if (!missing++) first = g->cells[i].meta->id;
        }
    }
    MR_REQUIRE(!missing, MR_EINPUT,
               "%s: %d of %d cells are not done yet (first: %s); run the remaining shards or "
               "resume the run",
               dir, missing, g->n_cells, first);
    mr_cell_summary *s = calloc((size_t)g->n_cells + 1, sizeof *s);
    ce_row *rows = calloc((size_t)g->n_groups + 1, sizeof *rows);
    size_t per_group = 0;
    for (int i = 0; i < MR_METRIC_N; i++)
        if (mr_metric_table[i].part == MR_PART_GROUP)
            per_group += mr_metric_len(&mr_metric_table[i], 0, 0, g->n_corr);
    double *cebuf = calloc((size_t)g->n_groups * per_group + 1, sizeof *cebuf);
    int st = s && rows && cebuf ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < g->n_cells; i++) {
        cell_path(path, sizeof path, dir, &g->cells[i]);
        st = mr_cell_read_summary(path, &s[i]);
    }
    if (st == MR_OK) {
        /* storage of every group metric of every group, in its shape */
        double *at = cebuf;
        for (int gi = 0; gi < g->n_groups; gi++)
            for (int i = 0; i < MR_METRIC_N; i++)
                if (mr_metric_table[i].part == MR_PART_GROUP) {
                    rows[gi].v[i] = at;
                    at += mr_metric_len(&mr_metric_table[i], 0, 0, g->n_corr);
                }
        compute_ce(g, s, rows);
        st = write_h5(g, dir, rows);
    }
    if (st == MR_OK && (g->formats & MR_OUT_JSON)) st = write_json(g, dir, s, rows);
    if (st == MR_OK && (g->formats & MR_OUT_CSV)) st = write_csv(g, dir, s);
    for (int i = 0; s && i < g->n_cells; i++) mr_cell_summary_free(&s[i]);
    free(s);
    free(rows);
    free(cebuf);
    return st;
}
