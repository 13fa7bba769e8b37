#include "mr_grid.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h> /* mallopt */
#endif

#include "../analysis/mr_error.h"
#include "../analysis/mr_parse.h"
#include "mr_attack_setup.h"
#include "mr_compress_setup.h"
#include "mr_corrupt_setup.h"
#include "../io/mr_file.h"
#include "../io/mr_file_queue.h"
#include "../io/mr_model_io.h"
#include "../io/mr_summary.h"

/* Resample plans kept for the whole run (metrics/mr_boot.h): a plan is B x n 2-byte
 * indices (0.6 MB at B = 1000 and 300 samples, 20 MB at 10,000), one per CI stream (23
 * for a model of 2 MoE layers: 460 MB at 10,000 samples); the streams beyond this are
 * drawn per cell as before. */
#define MR_GRID_BOOT_BUDGET ((size_t)512 << 20)
/* Corrupted inputs kept for the whole run (mr_corrupt_cache.h): each (corruption,
 * severity) is corrupted by the first group that runs it and read by the others; 235 KB
 * per entry at 300 Fashion-MNIST images, 7.8 MB at 10,000 (32 of the 160 entries of
 * examples/fmnist.ini; the rest are corrupted per cell as before). */
#define MR_GRID_CORRUPT_BUDGET ((size_t)256 << 20)
/* The router-independent prefix of one input set (mr_prefix_cache.h), kept while the
 * model's router groups run it: 52.8 KB per Fashion-MNIST image for the demo's ViTs
 * (the residual stream [50, 64] and one block's attention [4, 50, 50]), 15.8 MB at 300
 * images; up to 5,080 images are shared, the rest of a larger set computed per group. */
#define MR_GRID_PREFIX_BUDGET ((size_t)256 << 20)
/* cell files waiting for the writer thread at most (a 300-image demo cell is ~28 KB, a
 * 10,000-image one ~1 MB): beyond it the grid waits for the disk */
#define MR_GRID_WRITE_QUEUE_BYTES ((size_t)64 << 20)

void mr_grid_cell_path(char *buf, size_t cap, const char *dir, const mr_grid_cell *c)
{
    snprintf(buf, cap, "%s/cells/%s", dir, c->file);
}

void mr_grid_free(mr_grid *g)
{
    if (!g) return;
    mr_dataset_free(g->data);
    mr_dataset_free(g->calib);
    for (int i = 0; i < MR_CFG_MAX_MODELS; i++) mr_model_free(g->models[i]);
    free(g->groups);
    free(g->cells);
    mr_boot_cache_free(g->boot_cache);
    mr_corrupt_cache_free(g->corrupt_cache);
    mr_prefix_cache_free(g->prefix_cache);
    memset(g, 0, sizeof *g);
}

/* "FILE:LINE" of a config line, or "FILE: --set ..." (mr_runcfg_where) */
typedef struct where_buf {
    char s[MR_PATH_LEN + MR_SET_LEN + 16];
} where_buf;

static const char *at(const mr_run_config *c, int line, where_buf *b)
{
    mr_runcfg_where(c, line, b->s, sizeof b->s);
    return b->s;
}

static int add_corr(mr_grid *g, const mr_corruption_type *t)
{
    for (int i = 0; i < g->n_corr; i++)
        if (g->corr[i] == t) return MR_OK;
    MR_REQUIRE(g->n_corr < MR_CFG_MAX_CORR, MR_EINPUT, "too many corruptions");
    g->corr[g->n_corr++] = t;
    return MR_OK;
}

/* Names and groups (all, image, text, embed) to corruption types fitting the data. */
static int resolve_corruptions(mr_grid *g)
{
    const mr_run_config *c = g->cfg;
    int data_mod = g->data->kind == MR_DATA_IMAGES ? MR_MOD_IMAGE : MR_MOD_TEXT;
    const char *data_kind = data_mod == MR_MOD_IMAGE ? "images" : "token sequences";
    where_buf w;
    for (int i = 0; i < c->n_corr_names; i++) {
        const char *n = c->corr_names[i];
        int group = strcmp(n, "all") == 0 ? -1
                    : strcmp(n, "image") == 0 ? MR_MOD_IMAGE
                    : strcmp(n, "text") == 0 ? MR_MOD_TEXT
                    : strcmp(n, "embed") == 0 ? MR_MOD_EMBED : -2;
        if (group == MR_MOD_IMAGE || group == MR_MOD_TEXT)
            MR_REQUIRE(group == data_mod, MR_EINPUT, "%s: names = %s, but %s holds %s",
                       at(c, c->corr_line, &w), n, c->data, data_kind);
        if (group != -2) {
            for (int j = 0; mr_corruption_types[j]; j++) {
                const mr_corruption_type *t = mr_corruption_types[j];
                int fits = t->modality == data_mod || t->modality == MR_MOD_EMBED;
                if (fits && (group == -1 || t->modality == group)) MR_TRY(add_corr(g, t));
            }
            continue;
        }
        const mr_corruption_type *t = mr_corruption_lookup(n);
        MR_REQUIRE(t, MR_EINPUT,
                   "%s: unknown corruption '%s' (see docs/corruptions.md, or use all, image, "
                   "text, embed)",
                   at(c, c->corr_line, &w), n);
        MR_REQUIRE(t->modality == MR_MOD_EMBED || t->modality == data_mod, MR_EINPUT,
                   "%s: corruption %s does not apply to %s (%s)", at(c, c->corr_line, &w), n,
                   c->data, data_kind);
        MR_TRY(add_corr(g, t));
    }
    return MR_OK;
}

/* compress = METHOD:K of model i: what can be checked before compressing (K against the
 * model, the calibration data against its input). */
static int check_compress(mr_grid *g, int i)
{
    const mr_run_config *c = g->cfg;
    const mr_cfg_model *cm = &c->models[i];
    mr_compress_opts o;
    where_buf w;
    mr_compress_opts_init(&o);
    o.experts = cm->compress_k;
    if (mr_compress_check(g->models[i], mr_compress_lookup(cm->compress), &o) != MR_OK)
        return mr_error_prefix(MR_EINPUT, "%s: [model %s] compress", at(c, cm->compress_line, &w),
                               cm->name);
    if (!g->calib && mr_dataset_load(&g->calib, c->calib, c->calib_limit) != MR_OK)
        return mr_error_prefix(MR_EINPUT, "%s: [data] calib", at(c, c->calib_line, &w));
    if (mr_dataset_check_model(g->calib, g->models[i]) != MR_OK)
        return mr_error_prefix(MR_EINPUT, "%s: [data] calib for model %s",
                               at(c, c->calib_line, &w), cm->name);
    g->n_experts[i] = cm->compress_k;
    return MR_OK;
}

static int check_models(mr_grid *g)
{
    const mr_run_config *c = g->cfg;
    where_buf w;
    for (int i = 0; i < c->n_models; i++) {
        const mr_cfg_model *cm = &c->models[i];
        if (mr_model_load(&g->models[i], cm->path) != MR_OK)
            return mr_error_prefix(MR_EINPUT, "%s: [model %s]", at(c, cm->line, &w), cm->name);
        mr_model *m = g->models[i];
        if (mr_dataset_check_model(g->data, m) != MR_OK)
            return mr_error_prefix(MR_EINPUT, "%s: [model %s]", at(c, cm->line, &w), cm->name);
        g->n_experts[i] = m->cfg.n_experts;
        if (cm->compress[0]) MR_TRY(check_compress(g, i));
        for (int j = 0; j < cm->n_ckpt; j++) {
            mr_model *ck = NULL;
            int st = mr_model_load(&ck, cm->ckpt[j]);
            if (st == MR_OK) st = mr_eval_check_compatible(m, ck);
            mr_model_free(ck);
            if (st != MR_OK)
                return mr_error_prefix(MR_EINPUT, "%s: [model %s] checkpoint",
                                       at(c, cm->line, &w), cm->name);
        }
        for (int r = 0; r < c->n_routers; r++) {
            if (!mr_runcfg_model_runs(c, i, r)) continue;
            const mr_cfg_router *cr = &c->routers[r];
            mr_router_opts o = cr->opts;
            mr_router *rt = NULL;
            if (mr_router_alloc(&rt, cr->type, m, &o) != MR_OK)
                return mr_error_prefix(MR_EINPUT, "%s: [router %s] on model %s",
                                       at(c, cr->line, &w), cr->name, cm->name);
            mr_router_free(rt);
            for (int k = 0; k < cr->n_k; k++)
                MR_REQUIRE(cr->ks[k] <= g->n_experts[i], MR_EINPUT,
                           "%s: top_k = %d exceeds n_experts = %d of model %s",
                           at(c, cr->k_line, &w), cr->ks[k], g->n_experts[i], cm->name);
        }
    }
    return MR_OK;
}

/* index of the reference router's section (mr_runcfg_parse checked that it exists) */
static int reference_router(const mr_run_config *c)
{
    for (int i = 0; i < c->n_routers; i++)
        if (strcmp(c->routers[i].name, c->reference) == 0) return i;
    return 0;
}

/* Attack options of an [attack] cell: the method's defaults (docs/attacks.md) but for
 * eps, steps, the objective (and its route_layer) and the run's seed. */
static void attack_opts(mr_attack_opts *o, const mr_attack_type *t, const mr_run_config *c,
                        int eps_grey, int objective)
{
    mr_attack_opts_init(o);
    o->objective = objective;
    o->route_layer = c->route_layer;
    o->eps = eps_grey / 255.0;
    o->steps = t == &mr_attack_fgsm ? 0 : c->attack_steps; /* FGSM: one step, whatever steps says */
    o->seed = c->seed;
    o->batch = c->batch;
}

/* Whether every method of [attack] can attack model i through [router r] (a gradient
 * attack needs the router's backward): a workspace is allocated and freed. */
static int check_attack_router(const mr_grid *g, int i, int r, const char *as)
{
    const mr_run_config *c = g->cfg;
    const mr_cfg_router *cr = &c->routers[r];
    mr_router_opts ro = cr->opts;
    mr_router *rt = NULL;
    int st = mr_router_alloc(&rt, cr->type, g->models[i], &ro);
    for (int a = 0; st == MR_OK && a < c->n_attacks * c->n_objectives; a++) {
        const mr_attack_type *t = mr_attack_lookup(c->attacks[a / c->n_objectives]);
        mr_attack_opts o;
        attack_opts(&o, t, c, c->eps[c->n_eps - 1], c->objectives[a % c->n_objectives]);
        mr_attack_ws *w = NULL;
        st = mr_attack_opts_check(&o, t, g->models[i]);
        if (st == MR_OK) st = mr_attack_ws_alloc(&w, t, &o, g->models[i], rt);
        mr_attack_ws_free(w);
        if (st != MR_OK) { /* where the routing objective's route_layer was set, if it was */
            char at[MR_PATH_LEN + MR_SET_LEN + 16];
            mr_runcfg_where(c, o.objective == MR_ATTACK_ROUTING && c->route_line ? c->route_line
                                                                                 : c->attack_line,
                            at, sizeof at);
            st = mr_error_prefix(MR_EINPUT, "%s: [attack] %s through [router %s]%s on model %s",
                                 at, t->name, cr->name, as, c->models[i].name);
        }
    }
    mr_router_free(rt);
    return st;
}

/* [attack]: image data, and every router the attacks go through able to take them;
 * before anything is written. */
static int check_attacks(const mr_grid *g)
{
    const mr_run_config *c = g->cfg;
    if (!c->n_attacks) return MR_OK;
    MR_REQUIRE(g->data->kind == MR_DATA_IMAGES, MR_EINPUT,
               "%s:%d: [attack]: %s holds token sequences (attacks perturb images)", c->file,
               c->attack_line, c->data);
    int ref = reference_router(c);
    for (int i = 0; i < c->n_models; i++) {
        int any = 0;
        for (int r = 0; r < c->n_routers; r++) {
            if (!mr_runcfg_model_runs(c, i, r) || c->routers[r].no_corruptions) continue;
            MR_TRY(check_attack_router(g, i, r, ""));
            any |= r != ref;
        }
        if (c->transfer && any) MR_TRY(check_attack_router(g, i, ref, " (transfer source)"));
    }
    return MR_OK;
}

static void cell_file(mr_grid_cell *c)
{
    /* ids use '/' between parts; file names use '~' */
    size_t n = 0;
    for (const char *s = c->meta.id; *s && n + 4 < sizeof c->file; s++) c->file[n++] = *s == '/' ? '~' : *s;
    strcpy(c->file + n, ".h5");
}

static int enumerate(mr_grid *g)
{
    const mr_run_config *c = g->cfg;
    int n_sev = 0;
    for (int s = 1; s <= MR_SEVERITY_MAX; s++) n_sev += (c->sev_mask >> s) & 1;
    int max_groups = 0, max_cells = 0;
    for (int r = 0; r < c->n_routers; r++) max_groups += c->routers[r].n_k ? c->routers[r].n_k : 1;
    max_groups *= c->n_models;
    int n_att_max = 2 * c->n_attacks * c->n_objectives * c->n_eps, ref = reference_router(c);
    int per_group_max = 1 + g->n_corr * n_sev + n_att_max + MR_CFG_MAX_CKPT;
    max_cells = max_groups * per_group_max;
    g->groups = calloc((size_t)max_groups + 1, sizeof *g->groups);
    g->cells = calloc((size_t)max_cells + 1, sizeof *g->cells);
    if (!g->groups || !g->cells) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int mi = 0; mi < c->n_models; mi++) {
        const mr_model *m = g->models[mi];
        const mr_cfg_model *cm = &c->models[mi];
        for (int ri = 0; ri < c->n_routers; ri++) {
            if (!mr_runcfg_model_runs(c, mi, ri)) continue;
            const mr_cfg_router *cr = &c->routers[ri];
            int nk = cr->n_k ? cr->n_k : 1;
            for (int ki = 0; ki < nk; ki++) {
                int k = cr->n_k ? cr->ks[ki] : m->cfg.top_k;
                mr_grid_group *gr = &g->groups[g->n_groups];
                *gr = (mr_grid_group){.model = mi, .router = ri, .k = k, .first_cell = g->n_cells};
                char base[200];
                snprintf(base, sizeof base, "%s/%s@k%d", cm->name, cr->name, k);
                int n_cor = cr->no_corruptions ? 0 : g->n_corr * n_sev;
                /* per method and objective: white-box at every eps, then transferred at
                 * every eps */
                int n_ways = 1 + (c->transfer && ri != ref), n_obj = c->n_objectives;
                int n_att = cr->no_corruptions ? 0 : c->n_attacks * n_obj * n_ways * c->n_eps;
                int total = 1 + n_cor + n_att + (cm->n_ckpt > 1 ? cm->n_ckpt - 1 : 0);
                for (int j = 0; j < total; j++) {
                    mr_grid_cell *cell = &g->cells[g->n_cells++];
                    mr_cell_meta *mt = &cell->meta;
                    cell->group = g->n_groups;
                    snprintf(mt->model, sizeof mt->model, "%s", cm->name);
                    snprintf(mt->router, sizeof mt->router, "%s", cr->name);
                    snprintf(mt->router_type, sizeof mt->router_type, "%s", cr->type);
                    mt->k = k;
                    mt->task = m->cfg.task;
                    mt->n = g->data->n;
                    mt->T = m->cfg.task == MR_TASK_LM ? g->data->cols - 1 : m->cfg.n_pos;
                    mt->n_moe = m->cfg.n_moe;
                    mt->E = g->n_experts[mi];
                    mt->layers = m->cfg.moe_layers; /* owned by the model */
                    mt->config_hash = g->hash;
                    if (j == 0) {
                        mt->kind = MR_CELL_CLEAN;
                        snprintf(mt->id, sizeof mt->id, "%s/clean", base);
                    } else if (j <= n_cor) {
                        int ci = (j - 1) / n_sev, si = (j - 1) % n_sev, sev = 0;
                        for (int s = 1, seen = 0; s <= MR_SEVERITY_MAX; s++)
                            if ((c->sev_mask >> s) & 1 && seen++ == si) sev = s;
                        mt->kind = MR_CELL_CORRUPT;
                        cell->corr = g->corr[ci];
                        mt->severity = sev;
                        snprintf(mt->corruption, sizeof mt->corruption, "%s", cell->corr->name);
                        snprintf(mt->id, sizeof mt->id, "%s/%s/s%d", base, cell->corr->name, sev);
                    } else if (j <= n_cor + n_att) {
                        int a = j - 1 - n_cor, ei = a % c->n_eps, way = a / c->n_eps % n_ways,
                            oi = a / c->n_eps / n_ways % n_obj;
                        mt->kind = MR_CELL_ATTACK;
                        cell->attack = mr_attack_lookup(c->attacks[a / c->n_eps / n_ways / n_obj]);
                        cell->transfer = way;
                        cell->objective = c->objectives[oi];
                        mt->severity = c->eps[ei];
                        /* METHOD[-routing][-transfer]: the loss objective keeps the plain name */
                        const char *obj = cell->objective == MR_ATTACK_ROUTING ? "-routing" : "";
                        snprintf(mt->corruption, sizeof mt->corruption, "%s%s%s",
                                 cell->attack->name, obj, way ? "-transfer" : "");
                        snprintf(mt->id, sizeof mt->id, "%s/attack/%s%s%s/e%d", base,
                                 cell->attack->name, obj, way ? "-transfer" : "", mt->severity);
                    } else {
                        int i = j - 1 - n_cor - n_att;
                        mt->kind = MR_CELL_FLUCT;
                        cell->ckpt = i;
                        snprintf(mt->checkpoints, sizeof mt->checkpoints, "%s -> %s", cm->ckpt[i],
                                 cm->ckpt[i + 1]);
                        snprintf(mt->id, sizeof mt->id, "%s/fluct/%d", base, i);
                    }
                    cell_file(cell);
                }
                gr->n_cells = g->n_cells - gr->first_cell;
                g->n_groups++;
            }
        }
    }
    return MR_OK;
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp((*(const mr_grid_cell *const *)a)->file, (*(const mr_grid_cell *const *)b)->file);
}

/* Every cell must have its own id and file, or the grid would run to the end and then
 * fail to assemble results.h5 (issue #23: top_k = 2,2): checked before the first cell. */
static int check_unique(const mr_grid *g)
{
    const mr_grid_cell **v = malloc(((size_t)g->n_cells + 1) * sizeof *v);
    MR_REQUIRE(v, MR_ENOMEM, "out of memory");
    for (int i = 0; i < g->n_cells; i++) v[i] = &g->cells[i];
    qsort(v, (size_t)g->n_cells, sizeof *v, cmp_file);
    int st = MR_OK;
    for (int i = 1; i < g->n_cells && st == MR_OK; i++)
        if (strcmp(v[i - 1]->file, v[i]->file) == 0)
            st = mr_error_set(MR_EINPUT, "%s: two cells of the grid would be %s", g->cfg->file,
                              v[i]->meta.id);
    free(v);
    return st;
}

/* The prefix cache and its budget: MR_SHARE_PREFIX in the environment, when set, is the
 * budget in bytes, 0 for none (docs/performance.md; the tests compare a grid with and
 * without sharing, and with a budget that keeps only some micro-batches). */
static int prefix_cache(mr_grid *g)
{
    const char *e = getenv("MR_SHARE_PREFIX");
    int budget = (int)MR_GRID_PREFIX_BUDGET;
    if (e && mr_parse_int("MR_SHARE_PREFIX", e, 0, INT_MAX, &budget) != MR_OK)
        return mr_error_prefix(MR_EINPUT, "environment");
    return budget ? mr_prefix_cache_alloc(&g->prefix_cache, (size_t)budget) : MR_OK;
}

int mr_grid_build(mr_grid *g, const mr_run_config *cfg)
{
    memset(g, 0, sizeof *g);
    g->cfg = cfg;
    g->hash = mr_runcfg_hash(cfg);
    int st = mr_dataset_load(&g->data, cfg->data, cfg->limit);
    if (st != MR_OK) {
        where_buf w;
        mr_error_prefix(st, "%s: [data]", at(cfg, cfg->data_line, &w));
        mr_grid_free(g);
        return st;
    }
    st = resolve_corruptions(g);
    if (st == MR_OK) st = check_models(g);
    if (st == MR_OK) st = check_attacks(g);
    if (st == MR_OK) st = enumerate(g);
    if (st == MR_OK) st = check_unique(g);
    if (st == MR_OK) st = mr_boot_cache_alloc(&g->boot_cache, MR_GRID_BOOT_BUDGET);
    if (st == MR_OK)
        st = mr_corrupt_cache_alloc(&g->corrupt_cache, g->data->n,
                                    g->data->kind == MR_DATA_IMAGES
                                        ? (size_t)g->data->h * g->data->w * g->data->c
                                        : (size_t)g->data->cols * sizeof(int32_t),
                                    MR_GRID_CORRUPT_BUDGET);
    if (st == MR_OK) st = prefix_cache(g);
    if (st != MR_OK) mr_grid_free(g);
    return st;
}

int mr_grid_prepare_models(mr_grid *g, const char *dir, FILE *log)
{
    const mr_run_config *c = g->cfg;
    for (int i = 0; i < c->n_models; i++) {
        const mr_cfg_model *cm = &c->models[i];
        if (!cm->compress[0]) continue;
        char models[1200], path[1400];
        snprintf(models, sizeof models, "%s/models", dir);
        snprintf(path, sizeof path, "%s/%s.h5", models, cm->name);
        if (access(path, F_OK) != 0) {
            mr_compress_request rq;
            mr_compress_request_init(&rq);
            rq.model = cm->path;
            rq.calib = c->calib;
            rq.calib_limit = c->calib_limit;
            rq.method = cm->compress;
            rq.out = path;
            rq.batch = c->batch;
            rq.opts.experts = cm->compress_k;
            MR_TRY(mr_mkdir_p(models));
            int st = mr_compress_file(&rq, NULL);
            if (st != MR_OK) return mr_error_prefix(st, "[model %s] compress", cm->name);
            if (log)
                fprintf(log, "moe-robust run: model %s = %s compressed by %s to %d experts: %s\n",
                        cm->name, cm->path, cm->compress, cm->compress_k, path);
        }
        mr_model *m = NULL;
        MR_TRY(mr_model_load(&m, path));
        if (m->cfg.n_experts != cm->compress_k || m->cfg.n_moe != g->models[i]->cfg.n_moe) {
            mr_model_free(m);
            return mr_error_set(MR_EINPUT, "%s: not the model this run compresses (%s to %d "
                                "experts): remove it", path, cm->compress, cm->compress_k);
        }
        /* the cells of this model name its MoE blocks through the model (mr_cell_meta.layers
         * is not owned): point them at the compressed model's before the source is freed */
        for (int c2 = 0; c2 < g->n_cells; c2++)
            if (g->cells[c2].meta.layers == g->models[i]->cfg.moe_layers)
                g->cells[c2].meta.layers = m->cfg.moe_layers;
        mr_model_free(g->models[i]);
        g->models[i] = m;
    }
    return MR_OK;
}

/* Evaluation options of a group. */
static void group_opts(mr_eval_opts *o, const mr_grid *g, const mr_model *m, int k, int threads)
{
    mr_eval_opts_init(o, m);
    o->engine.batch = g->cfg->batch;
    o->engine.top_k = k;
    o->threads = threads;
    o->bootstrap = g->cfg->bootstrap;
    o->level = g->cfg->level;
    o->seed = g->cfg->seed;
    o->boot_cache = g->boot_cache;
}

/* Clean pass of model m (a checkpoint or the main model) with a fresh router, into a new
 * routing cache; res receives the pass. */
static int clean_pass(mr_eval_result *res, mr_eval_cache **cache, const mr_grid *g,
                      const mr_model *m, const mr_cfg_router *cr, int k, int threads,
                      mr_prefix_kept *prefix)
{
    mr_router_opts ro = cr->opts;
    mr_router *r = NULL;
    MR_TRY(mr_router_alloc(&r, cr->type, m, &ro));
    int T = m->cfg.task == MR_TASK_LM ? g->data->cols - 1 : m->cfg.n_pos;
    int st = mr_eval_cache_alloc(cache, g->data->n, T, m->cfg.n_moe, k,
                                 m->cfg.task == MR_TASK_LM ? T : 1);
    mr_eval_opts o;
    group_opts(&o, g, m, k, threads);
    o.store_cache = *cache;
    o.prefix = prefix;
    if (st == MR_OK) st = mr_eval_run(res, m, r, g->data, &o);
    mr_router_free(r);
    return st;
}

/* Fault injection for the crash-safety tests (docs/reliability.md): with
 * MR_FAULT_KILL_AFTER_CELLS=N in the environment the process kills itself with SIGKILL,
 * as `kill -9` would, right after writing its N-th cell; with MR_FAULT_STOP_AFTER_CELLS=N
 * it stops itself (SIGSTOP) there, still holding its output directory, until a SIGCONT. */
static int fault_env(const char *name)
{
    const char *e = getenv(name);
    int v;
    return e && mr_parse_int(name, e, 0, 1 << 30, &v) == MR_OK ? v : -1;
}

static int fault_after_cell(mr_file_queue *writes)
{
    static int written = 0, kill_at = -2, stop_at = -2;
    if (kill_at == -2) {
        kill_at = fault_env("MR_FAULT_KILL_AFTER_CELLS");
        stop_at = fault_env("MR_FAULT_STOP_AFTER_CELLS");
    }
    written++;
    int kill = kill_at >= 0 && written >= kill_at, stop = stop_at >= 0 && written == stop_at;
    /* "after writing": the queued cells on disk first */
    if ((kill || stop) && writes) MR_TRY(mr_file_queue_drain(writes));
    if (kill) raise(SIGKILL);
    if (stop) raise(SIGSTOP);
    return MR_OK;
}

/* The pass of a corrupted or attacked cell: the group's model and router on the data as
 * `ec` changes it (clean routing from the group's cache) and the paired accuracy drop
 * against the clean pass. The caller frees res. */
static int scored_pass(mr_eval_result *res, mr_paired *drop, const mr_grid *g,
                       const mr_grid_cell *cell, const mr_model *m, mr_router *r,
                       const mr_eval_corruption *ec, const mr_eval_result *clean,
                       mr_eval_cache *cache, int threads, mr_prefix_kept *prefix)
{
    mr_eval_opts eo;
    group_opts(&eo, g, m, cell->meta.k, threads);
    eo.corruption = ec;
    eo.clean_cache = cache;
    eo.prefix = prefix;
    int st = mr_eval_run(res, m, r, g->data, &eo);
    /* the same paired test as `eval` (bootstrap = 0: difference only, p NaN) */
    if (st == MR_OK)
        st = mr_stats_paired_test(drop, clean->clean.correct, res->corrupt.correct,
                                  (size_t)g->data->n, 1, eo.bootstrap, eo.level, eo.seed,
                                  "bootstrap/accuracy-drop", eo.boot_cache);
    return st;
}

/* A corrupted cell of a group: the pass under the cell's corruption and severity. */
static int corrupt_cell(mr_eval_result *res, mr_paired *drop, const mr_grid *g,
                        const mr_grid_cell *cell, const mr_model *m, mr_router *r,
                        const mr_eval_result *clean, mr_eval_cache *cache, int threads,
                        mr_prefix_kept *prefix)
{
    const mr_run_config *c = g->cfg;
    mr_corrupt_setup cs;
    mr_eval_opts eo;
    group_opts(&eo, g, m, cell->meta.k, threads);
    MR_TRY(mr_corrupt_setup_init(&cs, cell->corr, cell->meta.severity, c->seed, m, r, g->data,
                                 &eo.engine, threads));
    cs.kept = mr_corrupt_cache_get(g->corrupt_cache, cell->corr, cell->meta.severity, cs.vocab,
                                   cs.V);
    int st = scored_pass(res, drop, g, cell, m, r, &cs.ec, clean, cache, threads, prefix);
    mr_corrupt_setup_free(&cs);
    return st;
}

/* An attack cell: the images crafted white-box through the group's router r, or with
 * cell->transfer through the reference router on the same model and k. */
static int attack_cell(mr_eval_result *res, mr_paired *drop, const mr_grid *g,
                       const mr_grid_cell *cell, const mr_model *m, mr_router *r,
                       const mr_eval_result *clean, mr_eval_cache *cache, int threads)
{
    const mr_run_config *c = g->cfg;
    mr_router *src = NULL;
    if (cell->transfer) {
        const mr_cfg_router *ref = &c->routers[reference_router(c)];
        mr_router_opts ro = ref->opts;
        MR_TRY(mr_router_alloc(&src, ref->type, m, &ro));
    }
    mr_attack_opts ao;
    attack_opts(&ao, cell->attack, c, cell->meta.severity, cell->objective);
    mr_eval_opts eo;
    group_opts(&eo, g, m, cell->meta.k, threads);
    mr_attack_setup as;
    int st = mr_attack_setup_init(&as, cell->attack, &ao, m, src ? src : r, g->data, &eo.engine,
                                  threads);
    if (st == MR_OK) {
        st = scored_pass(res, drop, g, cell, m, r, &as.ec, clean, cache, threads, NULL);
        mr_attack_setup_free(&as);
    }
    mr_router_free(src);
    return st;
}

/* The routing cache of a checkpoint's clean pass. */
static int ckpt_cache(mr_eval_cache **out, const mr_grid *g, const char *path,
                      const mr_cfg_router *cr, int k, int threads)
{
    mr_model *ck = NULL;
    mr_eval_result res = {0};
    int st = mr_model_load(&ck, path);
    if (st == MR_OK) st = clean_pass(&res, out, g, ck, cr, k, threads, NULL);
    mr_eval_result_free(&res);
    mr_model_free(ck);
    return st;
}

/* A group of the shard while its model runs: its clean pass (the routing cache every cell
 * compares against), router, and the checkpoint caches of its fluctuation cells. */
typedef struct group_run {
    const mr_grid_group *gr;
    int pending;
    mr_eval_result clean;
    mr_eval_cache *cache;
    mr_router *r;
    mr_eval_cache *prev, *last; /* consecutive checkpoints' caches (fluctuation cells) */
    int prev_i;
} group_run;

/* The prefix entry of model m on an input set (corruption type, NULL: clean) when the
 * model's groups share it (mr_prefix_cache.h), else NULL. */
static mr_prefix_kept *shared_prefix(const mr_grid *g, const mr_model *m, const void *input,
                                     int severity)
{
    int n = g->data->n, B = g->cfg->batch < n ? g->cfg->batch : n;
    int T = m->cfg.task == MR_TASK_LM ? g->data->cols - 1 : m->cfg.n_pos;
    return mr_prefix_cache_get(g->prefix_cache, m, input, severity, n, T, B);
}

/* Counts the group's pending cells (the done ones reported as skipped) and, if any, runs
 * its clean pass (sharing the model's clean prefix when `share`) and allocates its
 * router. */
static int group_open(group_run *gs, mr_grid *g, const mr_grid_group *gr,
                      const mr_grid_run_opts *o, int share)
{
    memset(gs, 0, sizeof *gs);
    gs->gr = gr;
    gs->prev_i = -1;
    char path[1400];
    for (int i = 0; i < gr->n_cells; i++) {
        const mr_grid_cell *cell = &g->cells[gr->first_cell + i];
        mr_grid_cell_path(path, sizeof path, o->dir, cell);
        int done = mr_cell_done(path, g->hash);
        gs->pending += !done;
        if (done) mr_grid_progress_cell(o->progress, cell, 0, 1);
    }
    if (!gs->pending) return MR_OK;
    const mr_cfg_router *cr = &g->cfg->routers[gr->router];
    const mr_model *m = g->models[gr->model];
    mr_prefix_kept *p = share ? shared_prefix(g, m, NULL, 0) : NULL;
    MR_TRY(clean_pass(&gs->clean, &gs->cache, g, m, cr, gr->k, o->threads, p));
    mr_router_opts ro = cr->opts;
    return mr_router_alloc(&gs->r, cr->type, m, &ro);
}

static void group_close(group_run *gs)
{
    if (gs->prev != gs->last) mr_eval_cache_free(gs->prev);
    mr_eval_cache_free(gs->last);
    mr_router_free(gs->r);
    mr_eval_cache_free(gs->cache);
    mr_eval_result_free(&gs->clean);
    memset(gs, 0, sizeof *gs);
}

/* Cell i of an open group, unless done; a corrupted cell shares its input set's prefix
 * when `share`. */
static int group_cell(group_run *gs, mr_grid *g, int i, const mr_grid_run_opts *o, int share)
{
    const mr_grid_group *gr = gs->gr;
    const mr_cfg_router *cr = &g->cfg->routers[gr->router];
    const mr_cfg_model *cm = &g->cfg->models[gr->model];
    const mr_model *m = g->models[gr->model];
    mr_grid_cell *cell = &g->cells[gr->first_cell + i];
    char path[1400];
    mr_grid_cell_path(path, sizeof path, o->dir, cell);
    if (!gs->pending || mr_cell_done(path, g->hash)) return MR_OK;
    int st = MR_OK;
    if (cell->meta.kind == MR_CELL_CLEAN) {
        st = mr_cell_write_queued(g->writes, path, &cell->meta, &gs->clean.clean, NULL, NULL);
    } else if (cell->meta.kind == MR_CELL_CORRUPT || cell->meta.kind == MR_CELL_ATTACK) {
        mr_eval_result res = {0};
        mr_paired drop = {0};
        if (cell->meta.kind == MR_CELL_CORRUPT)
            st = corrupt_cell(&res, &drop, g, cell, m, gs->r, &gs->clean, gs->cache, o->threads,
                              share ? shared_prefix(g, m, cell->corr, cell->meta.severity)
                                    : NULL);
        else
            st = attack_cell(&res, &drop, g, cell, m, gs->r, &gs->clean, gs->cache, o->threads);
        if (st == MR_OK)
            st = mr_cell_write_queued(g->writes, path, &cell->meta, &res.corrupt, &res.flip_corrupt,
                                      &drop);
        mr_eval_result_free(&res);
    } else {
        /* consecutive checkpoints: keep the previous one's cache; the last one's, the
         * reference of router saturation, is computed first and kept */
        int last_i = cm->n_ckpt - 1;
        if (!gs->last) st = ckpt_cache(&gs->last, g, cm->ckpt[last_i], cr, gr->k, o->threads);
        for (int j = gs->prev_i + 1; st == MR_OK && j <= cell->ckpt + 1; j++) {
            mr_eval_cache *cur = gs->last;
            if (j != last_i) st = ckpt_cache(&cur, g, cm->ckpt[j], cr, gr->k, o->threads);
            if (st == MR_OK && j == cell->ckpt + 1) {
                mr_eval_flips f;
                mr_eval_opts eo;
                group_opts(&eo, g, m, gr->k, o->threads);
                st = mr_eval_compare_series(&f, gs->prev, cur, gs->last, &eo, "ckpt");
                if (st == MR_OK)
                    st = mr_cell_write_queued(g->writes, path, &cell->meta, NULL, &f, NULL);
                mr_eval_flips_free(&f);
            }
            if (gs->prev != gs->last) mr_eval_cache_free(gs->prev);
            gs->prev = cur;
            gs->prev_i = j;
        }
    }
    if (st == MR_OK) mr_grid_progress_cell(o->progress, cell, g->data->n, 0);
    if (st == MR_OK) st = fault_after_cell(g->writes);
    return st;
}

/* The groups gs[0..n) of one model, cell by cell in group order, except that a corrupted
 * cell is followed at once by the same (corruption, severity) cell of the later groups
 * (marked in ran [n_cells]): one input set's router groups run back to back, sharing its
 * prefix (every group open at once). Every cell is computed as alone, so the order changes
 * no result. */
static int run_model(mr_grid *g, group_run *gs, int n, uint8_t *ran, const mr_grid_run_opts *o)
{
    int share = n > 1 && g->prefix_cache;
    int st = MR_OK;
    for (int a = 0; st == MR_OK && a < n; a++) st = group_open(&gs[a], g, gs[a].gr, o, share);
    for (int a = 0; st == MR_OK && a < n; a++) {
        const mr_grid_group *ga = gs[a].gr;
        for (int i = 0; st == MR_OK && i < ga->n_cells; i++) {
            const mr_grid_cell *ca = &g->cells[ga->first_cell + i];
            if (ran[ga->first_cell + i]) continue;
            st = group_cell(&gs[a], g, i, o, share);
            if (ca->meta.kind != MR_CELL_CORRUPT) continue;
            for (int b = a + 1; st == MR_OK && b < n; b++) {
                const mr_grid_group *gb = gs[b].gr;
                for (int j = 0; st == MR_OK && j < gb->n_cells; j++) {
                    const mr_grid_cell *cb = &g->cells[gb->first_cell + j];
                    if (cb->meta.kind != MR_CELL_CORRUPT || cb->corr != ca->corr ||
                        cb->meta.severity != ca->meta.severity || ran[gb->first_cell + j])
                        continue;
                    st = group_cell(&gs[b], g, j, o, share);
                    ran[gb->first_cell + j] = 1;
                }
            }
        }
    }
    for (int a = 0; a < n; a++) group_close(&gs[a]);
    mr_prefix_cache_drop(g->prefix_cache);
    return st;
}

int mr_grid_run(mr_grid *g, const mr_grid_run_opts *o)
{
#ifdef __GLIBC__
    /* Every cell allocates and frees the same workspaces (an attack cell's gradient
     * workspaces are ~35 MB a thread): glibc served blocks above its mmap threshold (at
     * most 32 MB by default) with fresh mappings and gave a freed heap top back to the
     * kernel, so each cell faulted in new zeroed pages again: 185,000 page faults and
     * 1.7 s of system time in a 10-cell PGD grid of 100 images, 40,000 and 0.5 s with
     * freed memory kept for the next cell (docs/performance.md), at a peak RSS ~5 %
     * higher there (171 against 159-165 MB): freed memory is kept, not returned. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
    group_run *gs = calloc((size_t)g->n_groups + 1, sizeof *gs);
    uint8_t *ran = calloc((size_t)g->n_cells + 1, 1);
    int st = gs && ran ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    /* cell files are written (fsync'd, renamed) by a thread of their own while the next
     * cells run: io/mr_file_queue.h */
    if (st == MR_OK) st = mr_file_queue_alloc(&g->writes, MR_GRID_WRITE_QUEUE_BYTES);
    /* model by model, its groups of this shard together (groups are enumerated model by
     * model, so this is the order of the groups) */
    for (int mi = 0; st == MR_OK && mi < g->cfg->n_models; mi++) {
        int n = 0;
        for (int i = 0; i < g->n_groups; i++)
            if (i % o->n_shards == o->shard && g->groups[i].model == mi) gs[n++].gr = &g->groups[i];
        st = run_model(g, gs, n, ran, o);
    }
    /* every cell queued is on disk before this returns (up to a failed write: none after it) */
    if (g->writes) {
        int wst = mr_file_queue_drain(g->writes);
        if (st == MR_OK) st = wst;
        mr_file_queue_free(g->writes);
        g->writes = NULL;
    }
    free(gs);
    free(ran);
    return st;
}

/* The resolved config text stored in the outputs (without the file name: the same
 * config read from anywhere gives the same text). malloc'd. */
static char *config_text(const mr_run_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return NULL;
    mr_run_config copy = *c;
    copy.file[0] = '\0';
    mr_runcfg_write(&copy, fp);
    fclose(fp);
    return buf;
}

int mr_grid_write_summary(const mr_grid *g, const char *dir)
{
    const mr_run_config *c = g->cfg;
    const char *models[MR_CFG_MAX_MODELS], *corr[MR_CFG_MAX_CORR];
    for (int i = 0; i < c->n_models; i++) models[i] = c->models[i].name;
    for (int i = 0; i < g->n_corr; i++) corr[i] = g->corr[i]->name;
    mr_summary_group *groups = calloc((size_t)g->n_groups + 1, sizeof *groups);
    mr_summary_cell *cells = calloc((size_t)g->n_cells + 1, sizeof *cells);
    char *text = config_text(c);
    int st = groups && cells && text ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < g->n_groups; i++) {
        const mr_grid_group *gr = &g->groups[i];
        groups[i] = (mr_summary_group){.model = gr->model, .router = c->routers[gr->router].name,
                                       .k = gr->k, .first_cell = gr->first_cell,
                                       .n_cells = gr->n_cells};
    }
    for (int i = 0; st == MR_OK && i < g->n_cells; i++) {
        const mr_grid_cell *cell = &g->cells[i];
        cells[i] = (mr_summary_cell){.meta = &cell->meta, .group = cell->group,
                                     .ckpt = cell->ckpt, .file = cell->file};
    }
    mr_summary_run run = {.hash = g->hash, .config = text, .formats = c->formats,
                          .reference = c->reference, .bootstrap = c->bootstrap,
                          .level = c->level, .seed = c->seed, .n_models = c->n_models,
                          .models = models, .n_corr = g->n_corr, .corr = corr,
                          .n_groups = g->n_groups, .groups = groups, .n_cells = g->n_cells,
                          .cells = cells};
    if (st == MR_OK) st = mr_summary_write(&run, dir);
    free(groups);
    free(cells);
    free(text);
    return st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process, every thread */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* an attack cell's calibration slot: 2 * (2 * method index + objective) + transfer */
static int attack_slot(const mr_run_config *c, const mr_grid_cell *cell)
{
    int a = 0;
    while (a < c->n_attacks && strcmp(c->attacks[a], cell->attack->name) != 0) a++;
    return 2 * (2 * a + (cell->objective == MR_ATTACK_ROUTING)) + cell->transfer;
}

int mr_grid_estimate(mr_grid *g, int threads, mr_grid_estimate_out *out)
{
    memset(out, 0, sizeof *out);
    out->group_seconds = calloc((size_t)g->n_groups + 1, sizeof *out->group_seconds);
    MR_REQUIRE(out->group_seconds, MR_ENOMEM, "out of memory");
    const mr_run_config *c = g->cfg;
    /* the first samples only: a few micro-batches per thread */
    mr_dataset *full = g->data, view = *full;
    int m = 2 * c->batch * threads;
    if (m < 64) m = 64;
    if (m > full->n) m = full->n;
    view.n = m;
    g->data = &view;
    out->calib_samples = m;
    double t_start = now_s(), c_start = cpu_s();
    double *per_sample = calloc((size_t)g->n_groups + 1, sizeof *per_sample);
    double *corr_ratio = calloc((size_t)g->n_corr + 1, sizeof *corr_ratio);
    double att_ratio[4 * MR_CFG_MAX_ATTACKS] = {0}; /* by attack_slot */
    int st = per_sample && corr_ratio ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    /* every group's clean pass; every corruption once, in the first group that runs it
     * (its middle severity), as a multiple of that group's clean pass */
    for (int gi = 0; st == MR_OK && gi < g->n_groups; gi++) {
        const mr_grid_group *gr = &g->groups[gi];
        const mr_cfg_router *cr = &c->routers[gr->router];
        const mr_model *mod = g->models[gr->model];
        mr_eval_result clean = {0};
        mr_eval_cache *cache = NULL;
        double t0 = now_s();
        st = clean_pass(&clean, &cache, g, mod, cr, gr->k, threads, NULL);
        per_sample[gi] = (now_s() - t0) / m;
        mr_router_opts ro = cr->opts;
        mr_router *r = NULL;
        if (st == MR_OK) st = mr_router_alloc(&r, cr->type, mod, &ro);
        for (int ci = 0; st == MR_OK && ci < g->n_corr; ci++) {
            if (corr_ratio[ci] > 0) continue;
            const mr_grid_cell *pick = NULL;
            int seen = 0, total = 0;
            for (int i = 0; i < gr->n_cells; i++)
                total += g->cells[gr->first_cell + i].corr == g->corr[ci];
            for (int i = 0; i < gr->n_cells && !pick; i++) {
                const mr_grid_cell *cell = &g->cells[gr->first_cell + i];
                if (cell->corr == g->corr[ci] && seen++ == total / 2) pick = cell;
            }
            if (!pick) continue;
            mr_eval_result res = {0};
            mr_paired drop = {0};
            t0 = now_s();
            st = corrupt_cell(&res, &drop, g, pick, mod, r, &clean, cache, threads, NULL);
            corr_ratio[ci] = (now_s() - t0) / m / (per_sample[gi] > 0 ? per_sample[gi] : 1e-9);
            if (corr_ratio[ci] <= 0) corr_ratio[ci] = 1e-9;
            mr_eval_result_free(&res);
        }
        /* every attack (white-box, transfer) once, at its middle eps: an attack's cost
         * varies with eps only where it stops early (Square, SPSA) */
        for (int i = 0; st == MR_OK && i < gr->n_cells; i++) {
            const mr_grid_cell *cell = &g->cells[gr->first_cell + i];
            if (cell->meta.kind != MR_CELL_ATTACK || cell->meta.severity != c->eps[c->n_eps / 2] ||
                att_ratio[attack_slot(c, cell)] > 0)
                continue;
            mr_eval_result res = {0};
            mr_paired drop = {0};
            t0 = now_s();
            st = attack_cell(&res, &drop, g, cell, mod, r, &clean, cache, threads);
            double ratio = (now_s() - t0) / m / (per_sample[gi] > 0 ? per_sample[gi] : 1e-9);
            att_ratio[attack_slot(c, cell)] = ratio > 0 ? ratio : 1e-9;
            mr_eval_result_free(&res);
        }
        mr_router_free(r);
        mr_eval_cache_free(cache);
        mr_eval_result_free(&clean);
    }
    g->data = full;
    out->calib_seconds = now_s() - t_start;
    /* the share of wall time the process got the CPU for: what other work left it */
    double busy = out->calib_seconds > 0 ? (cpu_s() - c_start) / out->calib_seconds : 0;
    out->cpu_per_wall = busy;
    /* a group: its clean pass, one pass per corrupted cell, an attack's passes per attack
     * cell, one clean pass per checkpoint */
    for (int gi = 0; st == MR_OK && gi < g->n_groups; gi++) {
        const mr_grid_group *gr = &g->groups[gi];
        const mr_cfg_model *cm = &c->models[gr->model];
        double passes = 1.0 + (cm->n_ckpt > 1 ? cm->n_ckpt : 0);
        for (int i = 0; i < gr->n_cells; i++) {
            const mr_grid_cell *cell = &g->cells[gr->first_cell + i];
            if (cell->meta.kind == MR_CELL_ATTACK) passes += att_ratio[attack_slot(c, cell)];
            if (cell->meta.kind != MR_CELL_CORRUPT) continue;
            for (int ci = 0; ci < g->n_corr; ci++)
                if (g->corr[ci] == cell->corr) passes += corr_ratio[ci];
        }
        out->group_seconds[gi] = passes * per_sample[gi] * full->n;
        out->total_seconds += out->group_seconds[gi];
    }
    free(per_sample);
    free(corr_ratio);
    if (st != MR_OK) mr_grid_estimate_free(out);
    return st;
}

void mr_grid_estimate_free(mr_grid_estimate_out *e)
{
    free(e->group_seconds);
    memset(e, 0, sizeof *e);
}
