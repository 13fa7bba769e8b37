#include "mr_results.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_array.h"
#include "../analysis/mr_parse.h"
#include "../corruptions/mr_corruption.h"
#include "mr_h5.h"
#include "../metrics/mr_stats.h"

/* ------------------------------------------------------------------ config text */

typedef struct cfg_scan {
    mr_results *r;
    int n_routers;
    char routers[64][MR_RES_NAME];
    char router_opts[64][400]; /* "key=value" lines of every option but type/top_k/corruptions */
    int n_models;
    char models[MR_RES_MAX_MODELS][MR_RES_NAME];
    char model_paths[MR_RES_MAX_MODELS][1024];
    char model_compress[MR_RES_MAX_MODELS][MR_RES_NAME]; /* "METHOD:K" or "" */
    char corr_names[4096];
} cfg_scan;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* A number of [run] through the one parser (analysis/mr_parse.h), in the range `run`
 * accepts (harness/mr_runcfg.c): results.h5 is an input like any other, and a damaged
 * bootstrap count would otherwise become a huge or negative resample loop. */
static int run_number(const cfg_scan *c, int line, const char *key, const char *val,
                      double *out)
{
    char what[1400];
    snprintf(what, sizeof what, "%s: attribute config, line %d: [run] %s", c->r->file, line, key);
    if (strcmp(key, "level") == 0) return mr_parse_double(what, val, 0.5, 0.9999, out);
    long long v = 0;
    MR_TRY(mr_parse_ll(what, val, 0, strcmp(key, "seed") == 0 ? 2147483647LL : 1000000LL, &v));
    *out = (double)v;
    return MR_OK;
}

/* The resolved config is plain "key = value" INI written by mr_runcfg_write; read only
 * what the report needs, ignoring everything else. */
static int scan_config(cfg_scan *c, const char *text)
{
    char section[160] = "";
    const char *p = text;
    int line_no = 0;
    while (*p) {
        line_no++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char line[1400];
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        p += nl ? len + 1 : len;
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (e) *e = '\0';
            snprintf(section, sizeof section, "%s", trim(s + 1));
            if (strncmp(section, "router ", 7) == 0 && c->n_routers < 64) {
                c->router_opts[c->n_routers][0] = '\0';
                snprintf(c->routers[c->n_routers++], MR_RES_NAME, "%s", trim(section + 7));
            }
            if (strncmp(section, "model ", 6) == 0 && c->n_models < MR_RES_MAX_MODELS) {
                snprintf(c->models[c->n_models], MR_RES_NAME, "%s", trim(section + 6));
                c->model_compress[c->n_models][0] = '\0';
                c->model_paths[c->n_models++][0] = '\0';
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) continue;
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        mr_results *r = c->r;
        if (strcmp(section, "run") == 0) {
            double x = 0.0;
            if (!strcmp(key, "seed") || !strcmp(key, "bootstrap") || !strcmp(key, "level"))
                MR_TRY(run_number(c, line_no, key, val, &x));
            if (strcmp(key, "seed") == 0) r->seed = (uint64_t)x;
            if (strcmp(key, "bootstrap") == 0) r->bootstrap = (int)x;
            if (strcmp(key, "level") == 0) r->level = x;
            if (strcmp(key, "reference") == 0) snprintf(r->reference, sizeof r->reference, "%s", val);
        } else if (strcmp(section, "data") == 0 && strcmp(key, "path") == 0) {
            snprintf(r->data, sizeof r->data, "%s", val);
        } else if (strncmp(section, "model ", 6) == 0 && strcmp(key, "path") == 0 && c->n_models) {
            snprintf(c->model_paths[c->n_models - 1], 1024, "%s", val);
        } else if (strncmp(section, "model ", 6) == 0 && strcmp(key, "compress") == 0 && c->n_models) {
            snprintf(c->model_compress[c->n_models - 1], MR_RES_NAME, "%s", val);
        } else if (strncmp(section, "router ", 7) == 0 && c->n_routers && strcmp(key, "type") &&
                   strcmp(key, "top_k") && strcmp(key, "corruptions")) {
            /* options in sorted order, so that the order in the file does not matter */
            char *o = c->router_opts[c->n_routers - 1], item[200], rest[400];
            snprintf(item, sizeof item, "%.90s=%.90s;", key, val);
            char *at = o;
            while (*at && strncmp(at, item, strlen(item)) < 0) {
                char *semi = strchr(at, ';');
                at = semi ? semi + 1 : at + strlen(at);
            }
            snprintf(rest, sizeof rest, "%s", at);
            size_t used = (size_t)(at - o);
            snprintf(at, sizeof c->router_opts[0] - used, "%s%s", item, rest);
        } else if (strcmp(section, "corruptions") == 0 && strcmp(key, "names") == 0) {
            snprintf(c->corr_names, sizeof c->corr_names, "%s", val);
        }
    }
    return MR_OK;
}

/* ------------------------------------------------------------------ HDF5 bits */

/* A scalar double attribute that may be NaN (mce of an undefined CE). */
static int attr_double_nan(hid_t loc, const char *file, const char *where, const char *name,
                           double *out)
{
    MR_REQUIRE(H5Aexists(loc, name) > 0, MR_EINPUT, "%s: %s: missing attribute %s", file, where,
               name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int ok = t >= 0 && H5Tget_class(t) == H5T_FLOAT &&
             H5Aread(a, H5T_NATIVE_DOUBLE, out) >= 0;
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    MR_REQUIRE(ok, MR_EINPUT, "%s: %s: attribute %s must be a float", file, where, name);
    return MR_OK;
}

typedef struct name_list {
    int n, cap;
    char (*v)[300];
    int too_long;
} name_list;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    name_list *l = data;
    if (strlen(name) >= sizeof l->v[0]) {
        l->too_long = 1;
        return 0;
    }
    if (mr_array_grow(&l->v, &l->cap, l->n, sizeof l->v[0], 256) != MR_OK) return -1;
    snprintf(l->v[l->n++], sizeof l->v[0], "%s", name);
    return 0;
}

/* ------------------------------------------------------------------ grouping */

static int model_index(mr_results *r, const cfg_scan *c, const mr_cell_summary *s)
{
    for (int i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i].name, s->meta.model) == 0) return i;
    if (r->n_models == MR_RES_MAX_MODELS) return -1;
    mr_res_model *m = &r->models[r->n_models];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", s->meta.model);
    for (int i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i], m->name) == 0) {
            snprintf(m->path, sizeof m->path, "%s", c->model_paths[i]);
            /* compress = METHOD:K (the config was validated when it ran) */
            const char *colon = strrchr(c->model_compress[i], ':');
            if (colon && colon > c->model_compress[i] && atoi(colon + 1) > 0) {
                snprintf(m->compress, sizeof m->compress, "%.*s", (int)(colon - c->model_compress[i]),
                         c->model_compress[i]);
                m->compress_k = atoi(colon + 1);
            }
        }
    m->task = s->meta.task;
    m->n = s->meta.n;
    m->n_moe = s->meta.n_moe;
    m->E = s->meta.E;
    m->layers = s->meta.layers;
    return r->n_models++;
}

static int config_pos(const char (*names)[MR_RES_NAME], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return n;
}

static int add_corr(mr_results *r, const char *name)
{
    int i = mr_results_corr_index(r, name);
    if (i >= 0) return i;
    void *v = realloc(r->corr, (size_t)(r->n_corr + 1) * sizeof r->corr[0]);
    if (!v) return -1;
    r->corr = v;
    snprintf(r->corr[r->n_corr], sizeof r->corr[0], "%s", name);
    return r->n_corr++;
}

/* corruption order: the /ce groups' list (grid order), else the registry order */
static int order_corruptions(mr_results *r, const char *ce_list)
{
    if (ce_list[0]) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", ce_list);
        for (char *t = strtok(buf, ", "); t; t = strtok(NULL, ", "))
            if (add_corr(r, t) < 0) return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; pass == 0 && mr_corruption_types[i]; i++)
            for (int c = 0; c < r->n_cells; c++)
                if (r->cells[c].meta.kind == MR_CELL_CORRUPT &&
                    strcmp(r->cells[c].meta.corruption, mr_corruption_types[i]->name) == 0) {
                    if (add_corr(r, mr_corruption_types[i]->name) < 0)
                        return mr_error_set(MR_ENOMEM, "out of memory");
                    break;
                }
        for (int c = 0; pass == 1 && c < r->n_cells; c++)
            if (r->cells[c].meta.kind == MR_CELL_CORRUPT && add_corr(r, r->cells[c].meta.corruption) < 0)
                return mr_error_set(MR_ENOMEM, "out of memory");
    }
    return MR_OK;
}

static int cmp_group(const void *a, const void *b)
{
    const mr_res_group *x = a, *y = b;
    if (x->model != y->model) return x->model - y->model;
    if (x->router_order != y->router_order) return x->router_order - y->router_order;
    int c = strcmp(x->router, y->router);
    return c ? c : x->k - y->k;
}

/* The checkpoint index of a fluct cell id (".../fluct/I"), for ordering only; an id
 * that does not end in an index in range sorts first. */
static int fluct_index(const char *id)
{
    const char *p = strstr(id, "/fluct/");
    int i = 0;
    if (!p || mr_parse_int("fluct cell", p + 7, 0, 1 << 30, &i) != MR_OK) return 0;
    return i;
}

static int build_groups(mr_results *r, const cfg_scan *c)
{
    int cap = 16;
    r->groups = calloc((size_t)cap, sizeof *r->groups);
    r->cell_group = malloc(((size_t)r->n_cells + 1) * sizeof *r->cell_group);
    MR_REQUIRE(r->groups && r->cell_group, MR_ENOMEM, "out of memory");
    /* models in config order (the cells come in file-name order), the others after them */
    for (int k = 0; k < c->n_models; k++)
        for (int i = 0; i < r->n_cells; i++)
            if (strcmp(r->cells[i].meta.model, c->models[k]) == 0) {
                MR_REQUIRE(model_index(r, c, &r->cells[i]) >= 0, MR_EINPUT, "%s: more than %d models",
                           r->file, MR_RES_MAX_MODELS);
                break;
            }
    /* pass 1: the groups */
    for (int i = 0; i < r->n_cells; i++) {
        const mr_cell_meta *m = &r->cells[i].meta;
        int mi = model_index(r, c, &r->cells[i]);
        MR_REQUIRE(mi >= 0, MR_EINPUT, "%s: more than %d models", r->file, MR_RES_MAX_MODELS);
        const mr_res_model *mm = &r->models[mi];
        MR_REQUIRE(m->n == mm->n && m->n_moe == mm->n_moe && m->E == mm->E && m->task == mm->task,
                   MR_EINPUT, "%s: /cells/%s: n, n_moe, E or task differ from other cells of model %s",
                   r->file, r->stem[i], mm->name);
        int g = 0;
        while (g < r->n_groups && !(r->groups[g].model == mi && r->groups[g].k == m->k &&
                                     strcmp(r->groups[g].router, m->router) == 0))
            g++;
        if (g == r->n_groups) {
            if (g == cap) {
                void *v = realloc(r->groups, (size_t)(cap *= 2) * sizeof *r->groups);
                MR_REQUIRE(v, MR_ENOMEM, "out of memory");
                r->groups = v;
            }
            mr_res_group *gr = &r->groups[r->n_groups++];
            memset(gr, 0, sizeof *gr);
            gr->model = mi;
            snprintf(gr->router, sizeof gr->router, "%s", m->router);
            snprintf(gr->router_type, sizeof gr->router_type, "%s", m->router_type);
            gr->k = m->k;
            snprintf(gr->label, sizeof gr->label, "%s@k%d", m->router, m->k);
            gr->router_order = config_pos(c->routers, c->n_routers, m->router);
            snprintf(gr->variant, sizeof gr->variant, "%s|%s", m->router_type,
                     gr->router_order < c->n_routers ? c->router_opts[gr->router_order] : m->router);
        }
    }
    qsort(r->groups, (size_t)r->n_groups, sizeof *r->groups, cmp_group);
    for (int g = 0; g < r->n_groups; g++) {
        mr_res_group *gr = &r->groups[g];
        gr->clean = -1;
        gr->ref = -1;
        gr->corrupt = malloc(((size_t)r->n_corr * MR_SEVERITY_MAX + 1) * sizeof *gr->corrupt);
        MR_REQUIRE(gr->corrupt, MR_ENOMEM, "out of memory");
        for (int i = 0; i < r->n_corr * MR_SEVERITY_MAX; i++) gr->corrupt[i] = -1;
        for (int i = 0; i < MR_METRIC_N; i++) {
            if (mr_metric_table[i].part != MR_PART_GROUP) continue;
            size_t n = mr_metric_len(&mr_metric_table[i], 0, 0, r->n_corr);
            MR_REQUIRE(gr->value[i] = malloc((n + 1) * sizeof(double)), MR_ENOMEM, "out of memory");
            for (size_t j = 0; j < n; j++) gr->value[i][j] = NAN;
        }
        mr_res_model *mm = &r->models[gr->model];
        if (!mm->n_groups) mm->first_group = g;
        mm->n_groups++;
    }
    /* pass 2: cells into their groups */
    for (int i = 0; i < r->n_cells; i++) {
        const mr_cell_meta *m = &r->cells[i].meta;
        int g = 0;
        while (g < r->n_groups && !(strcmp(r->models[r->groups[g].model].name, m->model) == 0 &&
                                     r->groups[g].k == m->k && strcmp(r->groups[g].router, m->router) == 0))
            g++;
        mr_res_group *gr = &r->groups[g];
        r->cell_group[i] = g;
        if (m->kind == MR_CELL_CLEAN) {
            gr->clean = i;
        } else if (m->kind == MR_CELL_CORRUPT) {
            int ci = mr_results_corr_index(r, m->corruption);
            MR_REQUIRE(ci >= 0 && m->severity >= 1 && m->severity <= MR_SEVERITY_MAX, MR_EINPUT,
                       "%s: /cells/%s: bad corruption or severity", r->file, r->stem[i]);
            gr->corrupt[ci * MR_SEVERITY_MAX + m->severity - 1] = i;
        } else if (m->kind == MR_CELL_ATTACK) {
            MR_REQUIRE(gr->n_attack < MR_RES_MAX_ATTACK && m->severity >= 1 && m->severity <= 255,
                       MR_EINPUT, "%s: /cells/%s: more than %d attack cells in group %s, or eps "
                       "outside 1..255 grey levels", r->file, r->stem[i], MR_RES_MAX_ATTACK,
                       gr->label);
            int j = gr->n_attack++;
            while (j > 0) {
                const mr_cell_meta *q = &r->cells[gr->attack[j - 1]].meta;
                int c = strcmp(q->corruption, m->corruption);
                if (c < 0 || (c == 0 && q->severity <= m->severity)) break;
                gr->attack[j] = gr->attack[j - 1];
                j--;
            }
            gr->attack[j] = i;
        } else {
            MR_REQUIRE(gr->n_fluct < MR_RES_MAX_FLUCT, MR_EINPUT, "%s: group %s: more than %d "
                       "checkpoint pairs", r->file, gr->label, MR_RES_MAX_FLUCT);
            int j = gr->n_fluct++;
            int fi = fluct_index(m->id);
            while (j > 0 && fluct_index(r->cells[gr->fluct[j - 1]].meta.id) > fi) {
                gr->fluct[j] = gr->fluct[j - 1];
                j--;
            }
            gr->fluct[j] = i;
        }
    }
    /* reference groups: the config's reference router on the same model, same k if any */
    for (int g = 0; g < r->n_groups; g++) {
        mr_res_group *gr = &r->groups[g];
        for (int h = 0; h < r->n_groups; h++) {
            const mr_res_group *o = &r->groups[h];
            if (o->model != gr->model || strcmp(o->router, r->reference) != 0) continue;
            if (o->k == gr->k) {
                gr->ref = h;
                break;
            }
            if (gr->ref < 0) gr->ref = h;
        }
    }
    return MR_OK;
}

/* The group metrics of every group from its /ce group (if any): per-corruption ones from
 * datasets over its "corruptions" list, the others from attributes. */
static int read_ce(mr_results *r)
{
    char path[400];
    for (int g = 0; g < r->n_groups; g++) {
        mr_res_group *gr = &r->groups[g];
        snprintf(path, sizeof path, "/ce/%s~%s", r->models[gr->model].name, gr->label);
        if (!mr_h5_exists(r->h5, path)) continue;
        hid_t grp = H5Gopen2(r->h5, path, H5P_DEFAULT);
        MR_REQUIRE(grp >= 0, MR_EINPUT, "%s: %s: cannot open", r->file, path);
        char list[4096], names[4096];
        int st = mr_h5_attr_string(grp, r->file, "corruptions", list, sizeof list, NULL);
        int n = 0;
        snprintf(names, sizeof names, "%s", list);
        for (char *t = strtok(names, ","); st == MR_OK && t; t = strtok(NULL, ",")) n++;
        double *v = st == MR_OK ? malloc((size_t)n * sizeof *v + 1) : NULL;
        if (st == MR_OK && !v) st = mr_error_set(MR_ENOMEM, "out of memory");
        for (int i = 0; i < MR_METRIC_N && st == MR_OK; i++) {
            const mr_metric *mt = &mr_metric_table[i];
            if (mt->part != MR_PART_GROUP) continue;
            if (mt->kind != MR_KIND_PERCORR) {
                st = attr_double_nan(grp, r->file, path, mt->dataset, gr->value[i]);
                continue;
            }
            char ds[500];
            snprintf(ds, sizeof ds, "%s/%s", path, mt->dataset);
            st = mr_h5_read_f64(r->h5, r->file, ds, v, (size_t)n);
            int j = 0;
            snprintf(names, sizeof names, "%s", list);
            for (char *t = strtok(names, ","); st == MR_OK && t; t = strtok(NULL, ","), j++) {
                int ci = mr_results_corr_index(r, t);
                if (ci >= 0) gr->value[i][ci] = v[j];
            }
        }
        gr->has_ce = st == MR_OK;
        free(v);
        H5Gclose(grp);
        MR_TRY(st);
    }
    return MR_OK;
}

/* The corruption list of the first /ce group, "" if none. */
static void ce_corruptions(mr_results *r, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!mr_h5_exists(r->h5, "/ce")) return;
    hid_t g = H5Gopen2(r->h5, "/ce", H5P_DEFAULT);
    name_list l = {0};
    if (g >= 0 && H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &l) >= 0 && l.n > 0) {
        hid_t s = H5Gopen2(g, l.v[0], H5P_DEFAULT);
        if (s >= 0) {
            if (mr_h5_attr_string(s, r->file, "corruptions", buf, cap, NULL) != MR_OK) buf[0] = '\0';
            H5Gclose(s);
        }
    }
    free(l.v);
    if (g >= 0) H5Gclose(g);
}

int mr_results_load(mr_results *r, const char *dir)
{
    memset(r, 0, sizeof *r);
    r->h5 = -1;
    r->level = 0.95;
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(r->file, sizeof r->file, "%s/results.h5", dir);
    else
        snprintf(r->file, sizeof r->file, "%s", dir);
    MR_REQUIRE(stat(dir, &sb) == 0, MR_EINPUT, "%s: no such directory or file", dir);
    MR_REQUIRE(stat(r->file, &sb) == 0, MR_EINPUT,
               "%s: no results.h5 (has `moe-robust run` finished? a sharded run needs "
               "`moe-robust merge`)", dir);
    MR_TRY(mr_h5_open_read(&r->h5, r->file));
    char fmt[64];
    int found = 0;
    MR_TRY(mr_h5_attr_string(r->h5, r->file, "format", fmt, sizeof fmt, &found));
    MR_REQUIRE(found && strcmp(fmt, "moe-robust-results") == 0, MR_EINPUT,
               "%s: not a moe-robust results file (root attribute format is not "
               "\"moe-robust-results\")", r->file);
    MR_TRY(mr_h5_attr_string(r->h5, r->file, "config_hash", r->config_hash, sizeof r->config_hash, NULL));
    r->config = malloc(1 << 20);
    MR_REQUIRE(r->config, MR_ENOMEM, "out of memory");
    MR_TRY(mr_h5_attr_string(r->h5, r->file, "config", r->config, 1 << 20, NULL));
    cfg_scan *cs = calloc(1, sizeof *cs);
    MR_REQUIRE(cs, MR_ENOMEM, "out of memory");
    cs->r = r;
    r->bootstrap = 1000;
    int scanned = scan_config(cs, r->config);
    if (scanned != MR_OK) {
        free(cs);
        return scanned;
    }
    if (!r->reference[0] && cs->n_routers) snprintf(r->reference, sizeof r->reference, "%s", cs->routers[0]);
    int st = MR_OK;
    if (!mr_h5_exists(r->h5, "/cells")) st = mr_error_set(MR_EINPUT, "%s: /cells: missing group", r->file);
    name_list l = {0};
    hid_t g = st == MR_OK ? H5Gopen2(r->h5, "/cells", H5P_DEFAULT) : -1;
    if (st == MR_OK && (g < 0 || H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &l) < 0))
        st = mr_error_set(MR_EINPUT, "%s: /cells: cannot list", r->file);
    if (g >= 0) H5Gclose(g);
    if (st == MR_OK && l.too_long) st = mr_error_set(MR_EINPUT, "%s: /cells: a name is too long", r->file);
    if (st == MR_OK && l.n == 0) st = mr_error_set(MR_EINPUT, "%s: /cells is empty", r->file);
    r->stem = l.v;
    r->n_cells = 0;
    if (st == MR_OK && !(r->cells = calloc((size_t)l.n, sizeof *r->cells)))
        st = mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < l.n; i++) {
        char path[400];
        snprintf(path, sizeof path, "/cells/%s", l.v[i]);
        st = mr_cell_read_summary_at(r->h5, r->file, path, &r->cells[i]);
        if (st == MR_OK) r->n_cells++;
    }
    char list[4096];
    if (st == MR_OK) ce_corruptions(r, list, sizeof list);
    if (st == MR_OK) st = order_corruptions(r, list);
    if (st == MR_OK) st = build_groups(r, cs);
    if (st == MR_OK) st = read_ce(r);
    free(cs);
    return st;
}

void mr_results_free(mr_results *r)
{
    if (!r) return;
    for (int i = 0; r->cells && i < r->n_cells; i++) mr_cell_summary_free(&r->cells[i]);
    for (int g = 0; r->groups && g < r->n_groups; g++) {
        free(r->groups[g].corrupt);
        for (int i = 0; i < MR_METRIC_N; i++) free(r->groups[g].value[i]);
    }
    free(r->cells);
    free(r->groups);
    free(r->stem);
    free(r->cell_group);
    free(r->corr);
    free(r->config);
    if (r->h5 >= 0) H5Fclose(r->h5);
    memset(r, 0, sizeof *r);
    r->h5 = -1;
}

int mr_results_corr_index(const mr_results *r, const char *name)
{
    for (int i = 0; i < r->n_corr; i++)
        if (strcmp(r->corr[i], name) == 0) return i;
    return -1;
}

int mr_results_samples(const mr_results *r, int cell, const char *name, double *dst, size_t n)
{
    char path[500];
    snprintf(path, sizeof path, "/cells/%s/%s", r->stem[cell], name);
    return mr_h5_read_f64(r->h5, r->file, path, dst, n);
}

double *mr_results_matrix(const mr_results *r, int cell, const char *name, int dims[3])
{
    char path[500];
    snprintf(path, sizeof path, "/cells/%s/%s", r->stem[cell], name);
    return mr_cell_matrix_at(r->h5, r->file, path, dims);
}

int mr_results_ci(const mr_results *r, const double *x, size_t n, const char *purpose,
                  double out[3])
{
    if (n == 0) {
        out[0] = out[1] = out[2] = NAN;
        return MR_OK;
    }
    if (r->bootstrap < 2 || n < 2) {
        out[0] = out[1] = out[2] = mr_stats_mean(x, n, 1);
        return MR_OK;
    }
    mr_ci ci;
    MR_TRY(mr_stats_bootstrap_mean(&ci, x, n, 1, r->bootstrap, r->level, r->seed, purpose, NULL,
                                   NULL));
    out[0] = ci.mean;
    out[1] = ci.lo;
    out[2] = ci.hi;
    return MR_OK;
}
