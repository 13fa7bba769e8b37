#include "mr_analyze.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "../analysis/mr_error.h"
#include "../io/mr_cellio.h"
#include "../io/mr_file.h"
#include "../io/mr_summary.h"
#include "../io/mr_trace_io.h"
#include "../metrics/mr_pass.h"
#include "../metrics/mr_score.h"

#define NAME MR_TRACE_NAME
#define CHUNK_BYTES ((size_t)48 << 20) /* rows read at once: about this many bytes */

void mr_analyze_opts_init(mr_analyze_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bootstrap = 1000;
    o->level = 0.95;
    o->threads = 1;
    o->formats = MR_OUT_JSON | MR_OUT_CSV;
}

/* ------------------------------------------------------------------ logical traces */

/* The shards of one (model, router, k, checkpoint, condition), merged by sample id. */
typedef struct ltrace {
    mr_trace_file **files; /* [n_files], files[0] carries the labels and shape */
    int n_files;
    int model;             /* index into az.models */
    int n;                 /* samples over all shards */
    int64_t *ids;          /* [n] sorted */
    int *file, *row;       /* [n] where each id lives */
    int *loc_file, *loc_row; /* [canonical n] of the model's samples */
} ltrace;

typedef struct amodel {
    const char *name;
    int n;                 /* canonical samples */
    int64_t *ids;
    int dropped;           /* samples not in every trace (allow_missing) */
} amodel;

/* One (model, router, k) series: checkpoints ordered by step. */
typedef struct unit {
    int *layers;           /* [n_moe] block indices (the cells' meta point here) */
    int model, k;
    const char *router;
    int n_ckpt;
    ltrace **clean;        /* [n_ckpt] */
    int *first_corr, *n_corr; /* corrupted ltraces of checkpoint c: corr[first..first+n) */
    ltrace **corr;
    int n_corr_total;
} unit;

typedef struct analyzer {
    const mr_analyze_opts *o;
    int n_files;
    mr_trace_file **files;
    int n_lt;
    ltrace *lt;
    int n_models;
    amodel *models;
    int n_units;
    unit *units;
    /* output */
    char out_models[64][NAME * 2 + 2];
    int n_out_models;
    const char *corr_names[64];
    int n_corr_names;
    int n_groups;
    mr_summary_group *groups;
    int n_cells;
    mr_cell_meta *metas;
    mr_summary_cell *cells;
    char (*cell_files)[300];
    char reference[NAME];
    uint64_t hash;
    char *config;
} analyzer;

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

static int group_traces(analyzer *az, const char *const *paths, int n)
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

static int build_models(analyzer *az)
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

static int build_units(analyzer *az)
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

/* ------------------------------------------------------------------ computation */

typedef struct side {
    const ltrace *l;
    mr_trace_rows rows;
    int has_acc, has_loss, has_pred;
} side;

typedef struct thread_buf {
    float *probs, *weights;
    int *topk, *ta, *tb;
    uint8_t *both;
} thread_buf;

/* Rows of canonical samples s0 .. s0+nb-1 of l into slots 0..nb-1, one read per run of
 * consecutive rows of one shard. */
static int read_chunk(side *sd, int s0, int nb)
{
    const ltrace *l = sd->l;
    for (int j = 0; j < nb;) {
        int f = l->loc_file[s0 + j], r = l->loc_row[s0 + j], m = 1;
        while (j + m < nb && l->loc_file[s0 + j + m] == f && l->loc_row[s0 + j + m] == r + m) m++;
        MR_TRY(mr_trace_read_rows(l->files[f], r, m, &sd->rows, j));
        j += m;
    }
    return MR_OK;
}

static void side_caps(side *sd)
{
    const mr_trace_file *t = sd->l->files[0];
    if (t->task == MR_TRACE_CLASSIFY) {
        sd->has_acc = sd->has_loss = sd->has_pred = t->has_out && t->has_labels;
    } else if (t->task == MR_TRACE_LM) {
        sd->has_loss = t->has_out;
        sd->has_acc = sd->has_pred = t->has_pred;
    }
}

/* Per-sample routing and scores of slot b (canonical sample s) into pass p. */
static int pass_sample(mr_pass_metrics *p, const side *sd, int b, int s, thread_buf *tb)
{
    const mr_trace_rows *r = &sd->rows;
    int T = r->T, E = r->E, k = r->k, L = r->n_layers, cap = r->cap;
    const uint8_t *mask = r->mask + (size_t)b * T;
    int real = 0;
    for (int t = 0; t < T; t++) {
        if (!mask[t]) continue;
        for (int li = 0; li < L; li++) {
            size_t src = ((size_t)li * cap + b) * T + t, dst = (size_t)li * T + real;
            memcpy(tb->probs + dst * E, r->probs + src * E, (size_t)E * sizeof(float));
            memcpy(tb->topk + dst * k, r->topk + src * k, (size_t)k * sizeof(int));
            memcpy(tb->weights + dst * k, r->weights + src * k, (size_t)k * sizeof(float));
        }
        real++;
    }
    /* compacted as [L, 1, real, .]: layer stride real tokens */
    for (int li = 1; li < L; li++) {
        memmove(tb->probs + (size_t)li * real * E, tb->probs + (size_t)li * T * E,
                (size_t)real * E * sizeof(float));
        memmove(tb->topk + (size_t)li * real * k, tb->topk + (size_t)li * T * k,
                (size_t)real * k * sizeof(int));
        memmove(tb->weights + (size_t)li * real * k, tb->weights + (size_t)li * T * k,
                (size_t)real * k * sizeof(float));
    }
    mr_trace tr = {.B = 1, .T = real, .E = E, .k = k, .n_moe = L, .probs = tb->probs,
                   .topk = tb->topk, .weights = tb->weights};
    MR_TRY(mr_routing_acc_add(p->routing, &tr, s));
    const mr_trace_file *t0 = sd->l->files[0];
    p->correct[s] = p->loss[s] = 0.0;
    p->pred[s] = -1;
    if (t0->task == MR_TRACE_CLASSIFY && sd->has_acc) {
        const float *lg = r->out + (size_t)b * r->C;
        p->pred[s] = mr_score_argmax(lg, r->C);
        p->correct[s] = p->pred[s] == r->labels[b];
        p->loss[s] = mr_score_xent(lg, r->C, r->labels[b]);
    } else if (t0->task == MR_TRACE_LM) {
        double loss = 0, correct = 0;
        for (int t = 0; t < T; t++) {
            if (!mask[t]) continue;
            size_t i = (size_t)b * T + t;
            if (sd->has_loss) loss += r->out[i];
            if (sd->has_acc) correct += r->pred[i] == r->labels[i];
        }
        p->loss[s] = loss / real;
        p->correct[s] = correct / real;
    }
    return MR_OK;
}

/* Flips of canonical sample s between slot b of two sides, over the tokens real in both. */
static void flip_sample(mr_flip_metrics *f, const side *a, const side *c, int b, int s,
                        thread_buf *tb)
{
    const mr_trace_rows *ra = &a->rows, *rc = &c->rows;
    int T = ra->T, k = ra->k, L = ra->n_layers, cap = ra->cap, n = 0;
    for (int t = 0; t < T; t++) n += (tb->both[t] = ra->mask[(size_t)b * T + t] && rc->mask[(size_t)b * T + t]);
    for (int li = 0; li < L; li++) {
        int m = 0;
        for (int t = 0; t < T; t++) {
            if (!tb->both[t]) continue;
            size_t src = (((size_t)li * cap + b) * T + t) * k;
            memcpy(tb->ta + (size_t)m * k, ra->topk + src, (size_t)k * sizeof(int));
            memcpy(tb->tb + (size_t)m * k, rc->topk + src, (size_t)k * sizeof(int));
            m++;
        }
        mr_flip_sums fs;
        mr_flip_compare(&fs, tb->ta, tb->tb, n, k);
        size_t i = (size_t)s * L + li;
        f->top1[i] = fs.top1 / n;
        f->set[i] = fs.set / n;
        f->jaccard[i] = fs.jaccard / n;
    }
    f->pred[s] = 0.0;
    if (!(a->has_pred && c->has_pred)) return;
    if (a->l->files[0]->task == MR_TRACE_CLASSIFY) {
        f->pred[s] = mr_score_argmax(ra->out + (size_t)b * ra->C, ra->C) !=
                     mr_score_argmax(rc->out + (size_t)b * rc->C, rc->C);
    } else {
        double changed = 0;
        for (int t = 0; t < T; t++)
            if (tb->both[t]) changed += ra->pred[(size_t)b * T + t] != rc->pred[(size_t)b * T + t];
        f->pred[s] = changed / n;
    }
}

/* Every sample has a real token (in both sides when comparing). */
static int check_masks(const side *a, const side *c, int s0, int nb, const amodel *am)
{
    int T = a->rows.T;
    for (int b = 0; b < nb; b++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            n += a->rows.mask[(size_t)b * T + t] && (!c || c->rows.mask[(size_t)b * T + t]);
        if (n) continue;
        const ltrace *l = a->l;
        int f = l->loc_file[s0 + b];
        return mr_error_set(MR_EINPUT, "%s: /mask: sample %lld has no real token%s%s",
                            l->files[f]->path, (long long)am->ids[s0 + b],
                            c ? " also real in " : "", c ? c->l->files[0]->path : "");
    }
    return MR_OK;
}

static size_t chunk_rows(const mr_trace_file *t)
{
    size_t per = (size_t)t->n_layers * t->T * ((size_t)t->E * 4 + (size_t)t->k * 8) +
                 (size_t)t->T * t->E * 10 + (size_t)t->T * 16 + (size_t)t->C * 4;
    size_t rows = CHUNK_BYTES / (per ? per : 1);
    return rows < 1 ? 1 : rows > 1024 ? 1024 : rows;
}

/* Stream ltrace a (and b): pass metrics of a (pa) and b (pb), flips a vs b (f); any of
 * the three may be NULL. */
static int compute(analyzer *az, const ltrace *la, const ltrace *lb, mr_pass_metrics *pa,
                   mr_pass_metrics *pb, mr_flip_metrics *f, side *sa_out, side *sb_out)
{
    const amodel *am = &az->models[la->model];
    const mr_trace_file *t = la->files[0];
    int n = am->n, cap = (int)chunk_rows(t), T = t->T, L = t->n_layers;
    side sa = {.l = la}, sb = {.l = lb};
    side_caps(&sa);
    if (lb) side_caps(&sb);
    int nt = az->o->threads;
    int st = mr_trace_rows_alloc(&sa.rows, t, cap);
    if (st == MR_OK && lb) st = mr_trace_rows_alloc(&sb.rows, lb->files[0], cap);
    sa.rows.threads = sb.rows.threads = nt;
    thread_buf *tbs = calloc((size_t)nt, sizeof *tbs);
    if (!tbs) st = mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < nt; i++) {
        size_t tok = (size_t)L * T;
        tbs[i].probs = malloc(tok * t->E * sizeof(float));
        tbs[i].weights = malloc(tok * t->k * sizeof(float));
        tbs[i].topk = malloc(tok * t->k * sizeof(int));
        tbs[i].ta = malloc((size_t)T * t->k * sizeof(int));
        tbs[i].tb = malloc((size_t)T * t->k * sizeof(int));
        tbs[i].both = malloc((size_t)T);
        if (!tbs[i].probs || !tbs[i].weights || !tbs[i].topk || !tbs[i].ta || !tbs[i].tb ||
            !tbs[i].both)
            st = mr_error_set(MR_ENOMEM, "out of memory: per-thread buffers of %d x %d x %d",
                              L, T, t->E);
    }
    for (int s0 = 0; st == MR_OK && s0 < n; s0 += cap) {
        int nb = n - s0 < cap ? n - s0 : cap;
        st = read_chunk(&sa, s0, nb);
        if (st == MR_OK && lb) st = read_chunk(&sb, s0, nb);
        if (st == MR_OK) st = check_masks(&sa, lb ? &sb : NULL, s0, nb, am);
        if (st != MR_OK) break;
        int failed = 0;
        char msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
        for (int b = 0; b < nb; b++) {
            int th = 0;
#ifdef _OPENMP
            th = omp_get_thread_num();
#endif
            int e = MR_OK;
            if (pa) e = pass_sample(pa, &sa, b, s0 + b, &tbs[th]);
            if (e == MR_OK && pb) e = pass_sample(pb, &sb, b, s0 + b, &tbs[th]);
            if (e == MR_OK && f) flip_sample(f, &sa, &sb, b, s0 + b, &tbs[th]);
            if (e != MR_OK) {
#pragma omp critical(mr_analyze_error)
                if (!failed) {
                    failed = e;
                    snprintf(msg, sizeof msg, "%s", mr_error_message());
                }
            }
        }
        if (failed) st = mr_error_set(failed, "%s", msg);
    }
    for (int i = 0; tbs && i < nt; i++) {
        free(tbs[i].probs);
        free(tbs[i].weights);
        free(tbs[i].topk);
        free(tbs[i].ta);
        free(tbs[i].tb);
        free(tbs[i].both);
    }
    free(tbs);
    mr_trace_rows_free(&sa.rows);
    mr_trace_rows_free(&sb.rows);
    if (sa_out) *sa_out = (side){.l = la, .has_acc = sa.has_acc, .has_loss = sa.has_loss, .has_pred = sa.has_pred};
    if (sb_out) *sb_out = (side){.l = lb, .has_acc = sb.has_acc, .has_loss = sb.has_loss, .has_pred = sb.has_pred};
    return st;
}

static const mr_ci NAN_CI = {NAN, NAN, NAN};

/* Metrics a trace does not allow are NaN, never a made-up 0. */
static void mask_pass(mr_pass_metrics *p, int n, const side *sd)
{
    if (!sd->has_acc) {
        p->accuracy = NAN_CI;
        for (int s = 0; s < n; s++) p->correct[s] = NAN;
    }
    if (!sd->has_loss) {
        p->loss_ci = NAN_CI;
        for (int s = 0; s < n; s++) p->loss[s] = NAN;
    }
}

static void mask_flips(mr_flip_metrics *f, int n, const side *a, const side *b)
{
    if (a->has_pred && b->has_pred) return;
    f->pred_ci = NAN_CI;
    for (int s = 0; s < n; s++) f->pred[s] = NAN;
}

/* ------------------------------------------------------------------ cells */

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

static mr_cell_meta *new_cell(analyzer *az, int group, int kind, const unit *u,
                              const mr_trace_file *t, const char *model, int ckpt)
{
    int i = az->n_cells++;
    mr_cell_meta *m = &az->metas[i];
    memset(m, 0, sizeof *m);
    snprintf(m->model, sizeof m->model, "%s", model);
    snprintf(m->router, sizeof m->router, "%s", u->router);
    snprintf(m->router_type, sizeof m->router_type, "%s", u->router);
    m->k = u->k;
    m->kind = kind;
    m->task = t->task == MR_TRACE_LM ? MR_TASK_LM : MR_TASK_CLASSIFY;
    m->n = az->models[u->model].n;
    m->T = t->T;
    m->n_moe = t->n_layers;
    m->E = t->E;
    m->layers = u->layers;
    m->config_hash = az->hash;
    char base[200];
    snprintf(base, sizeof base, "%s/%s@k%d", model, u->router, u->k);
    if (kind == MR_CELL_CLEAN) {
        snprintf(m->id, sizeof m->id, "%.200s/clean", base);
    } else if (kind == MR_CELL_CORRUPT) {
        snprintf(m->corruption, sizeof m->corruption, "%s", t->corruption);
        m->severity = t->severity;
        snprintf(m->id, sizeof m->id, "%.180s/%.63s/s%d", base, t->corruption, t->severity);
    } else {
        snprintf(m->checkpoints, sizeof m->checkpoints, "%s -> %s",
                 u->clean[ckpt]->files[0]->checkpoint, u->clean[ckpt + 1]->files[0]->checkpoint);
        snprintf(m->id, sizeof m->id, "%.200s/fluct/%d", base, ckpt);
    }
    char *file = az->cell_files[i];
    size_t n = 0;
    for (const char *s = m->id; *s && n + 4 < 300; s++) file[n++] = *s == '/' ? '~' : *s;
    strcpy(file + n, ".h5");
    az->cells[i] = (mr_summary_cell){.meta = m, .group = group, .ckpt = kind == MR_CELL_FLUCT ? ckpt : 0,
                                     .file = file};
    return m;
}

static int write_cell(analyzer *az, const mr_cell_meta *m, const mr_pass_metrics *p,
                      const mr_flip_metrics *f, const mr_paired *drop)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/cells/%s", az->o->out, az->cells[m - az->metas].file);
    MR_TRY(mr_cell_write(path, m, p, f, drop));
    if (az->o->log) fprintf(az->o->log, "moe-robust analyze: cell %s\n", m->id);
    return MR_OK;
}

static mr_ci_opts ci_opts(const analyzer *az)
{
    return (mr_ci_opts){.bootstrap = az->o->bootstrap, .level = az->o->level, .seed = az->o->seed};
}

/* A clean pass and its corrupted cells of checkpoint c of unit u, as model `model`. */
static int run_checkpoint(analyzer *az, const unit *u, int c, const char *model, int group)
{
    const amodel *am = &az->models[u->model];
    const mr_trace_file *t = u->clean[c]->files[0];
    int n = am->n, L = t->n_layers;
    mr_ci_opts co = ci_opts(az);
    mr_pass_metrics clean = {0};
    side sc;
    int st = mr_pass_alloc(&clean, n, L, t->E, t->k);
    if (st == MR_OK) st = compute(az, u->clean[c], NULL, &clean, NULL, NULL, &sc, NULL);
    if (st == MR_OK) st = mr_pass_summarize(&clean, n, &co, "clean");
    if (st == MR_OK) {
        mask_pass(&clean, n, &sc);
        st = write_cell(az, new_cell(az, group, MR_CELL_CLEAN, u, t, model, c), &clean, NULL, NULL);
    }
    for (int i = 0; st == MR_OK && i < u->n_corr[c]; i++) {
        const ltrace *lc = u->corr[u->first_corr[c] + i];
        mr_pass_metrics cp = {0};
        mr_flip_metrics fl = {0};
        side s1, s2;
        st = mr_pass_alloc(&cp, n, L, t->E, t->k);
        if (st == MR_OK) st = mr_flips_alloc(&fl, n, L);
        if (st == MR_OK) st = compute(az, u->clean[c], lc, NULL, &cp, &fl, &s1, &s2);
        if (st == MR_OK) st = mr_pass_summarize(&cp, n, &co, "corrupt");
        if (st == MR_OK) st = mr_flips_summarize(&fl, n, L, &co, "corrupt");
        mr_paired drop = {0};
        /* as `run` (harness/mr_grid.c): the suite's paired test of the clean minus the
         * corrupted per-sample correctness, under the same stream */
        if (st == MR_OK && sc.has_acc && s2.has_acc) {
            st = mr_pass_paired(&drop, clean.correct, cp.correct, n, &co, "bootstrap/accuracy-drop");
        } else {
            drop.diff = NAN_CI;
            drop.p_value = NAN;
        }
        if (st == MR_OK) {
            mask_pass(&cp, n, &s2);
            mask_flips(&fl, n, &s1, &s2);
            st = write_cell(az, new_cell(az, group, MR_CELL_CORRUPT, u, lc->files[0], model, c), &cp,
                            &fl, &drop);
        }
        mr_pass_free(&cp);
        mr_flips_free(&fl);
    }
    mr_pass_free(&clean);
    return st;
}

static int run_unit(analyzer *az, const unit *u, int group, int c_main)
{
    int st = run_checkpoint(az, u, c_main, az->models[u->model].name, group);
    const amodel *am = &az->models[u->model];
    mr_ci_opts co = ci_opts(az);
    for (int c = 0; st == MR_OK && c + 1 < u->n_ckpt; c++) {
        const mr_trace_file *t = u->clean[c]->files[0];
        mr_flip_metrics fl = {0};
        side s1, s2;
        st = mr_flips_alloc(&fl, am->n, t->n_layers);
        if (st == MR_OK) st = compute(az, u->clean[c], u->clean[c + 1], NULL, NULL, &fl, &s1, &s2);
        if (st == MR_OK) st = mr_flips_summarize(&fl, am->n, t->n_layers, &co, "ckpt");
        if (st == MR_OK) {
            mask_flips(&fl, am->n, &s1, &s2);
            st = write_cell(az, new_cell(az, group, MR_CELL_FLUCT, u, t, am->name, c), NULL, &fl,
                            NULL);
        }
        mr_flips_free(&fl);
    }
    return st;
}

/* ------------------------------------------------------------------ the run */

static int has_router(const analyzer *az, int model, const char *router)
{
    for (int i = 0; i < az->n_units; i++)
        if (az->units[i].model == model && strcmp(az->units[i].router, router) == 0) return 1;
    return 0;
}

static int pick_reference(analyzer *az)
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
static int make_config(analyzer *az, const char *const *paths, int n)
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
static int plan(analyzer *az)
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

static int corr_cmp(const void *x, const void *y)
{
    const mr_trace_file *a = (*(ltrace *const *)x)->files[0], *b = (*(ltrace *const *)y)->files[0];
    int c = strcmp(a->corruption, b->corruption);
    return c ? c : (a->severity > b->severity) - (a->severity < b->severity);
}

static int run_all(analyzer *az)
{
    /* groups in output-model order, units within by router name then k */
    for (int om = 0; om < az->n_out_models; om++) {
        for (int i = 0; i < az->n_units; i++) {
            unit *u = &az->units[i];
            const char *base = az->models[u->model].name;
            int main_c = u->n_ckpt - 1, c = -1;
            if (strcmp(az->out_models[om], base) == 0) {
                c = main_c;
            } else {
                for (int x = 0; x < main_c && c < 0; x++) {
                    char nm[NAME * 2 + 2];
                    snprintf(nm, sizeof nm, "%s@%s", base, u->clean[x]->files[0]->checkpoint);
                    if (u->n_corr[x] && strcmp(nm, az->out_models[om]) == 0) c = x;
                }
            }
            if (c < 0) continue;
            qsort(u->corr + u->first_corr[c], (size_t)u->n_corr[c], sizeof *u->corr, corr_cmp);
            int g = az->n_groups++;
            az->groups[g] = (mr_summary_group){.model = om, .router = u->router, .k = u->k,
                                               .first_cell = az->n_cells};
            int st = c == main_c ? run_unit(az, u, g, c)
                                 : run_checkpoint(az, u, c, az->out_models[om], g);
            MR_TRY(st);
            az->groups[g].n_cells = az->n_cells - az->groups[g].first_cell;
        }
    }
    return MR_OK;
}

static void analyzer_free(analyzer *az)
{
    for (int i = 0; i < az->n_lt; i++) {
        ltrace *l = &az->lt[i];
        free(l->ids);
        free(l->file);
        free(l->row);
        free(l->loc_file);
        free(l->loc_row);
    }
    for (int i = 0; i < az->n_units; i++) {
        free(az->units[i].clean);
        free(az->units[i].corr);
        free(az->units[i].first_corr);
        free(az->units[i].n_corr);
        free(az->units[i].layers);
    }
    for (int i = 0; i < az->n_models; i++) free(az->models[i].ids);
    for (int i = 0; i < az->n_files; i++) mr_trace_close(az->files[i]);
    free(az->files);
    free(az->lt);
    free(az->models);
    free(az->units);
    free(az->groups);
    free(az->metas);
    free(az->cells);
    free(az->cell_files);
    free(az->config);
}

int mr_analyze_run(const char *const *files, int n, const mr_analyze_opts *o)
{
    MR_REQUIRE(n >= 1, MR_EINPUT, "no trace files given");
    MR_REQUIRE(o->out && o->out[0], MR_EINPUT, "--out DIR is required");
    MR_REQUIRE(o->threads >= 1 && o->threads <= 1024, MR_EINPUT, "threads = %d must be in 1..1024",
               o->threads);
    MR_REQUIRE(o->bootstrap >= 0 && o->bootstrap <= 1000000, MR_EINPUT,
               "bootstrap = %d must be in 0..1000000", o->bootstrap);
    MR_REQUIRE(o->level > 0.0 && o->level < 1.0, MR_EINPUT, "level = %g must be in (0, 1)",
               o->level);
    analyzer az = {.o = o};
    int st = group_traces(&az, files, n);
    if (st == MR_OK) st = build_models(&az);
    if (st == MR_OK) st = build_units(&az);
    if (st == MR_OK) st = pick_reference(&az);
    if (st == MR_OK) st = plan(&az);
    if (st == MR_OK) st = make_config(&az, files, n);
    char cells[2200];
    snprintf(cells, sizeof cells, "%s/cells", o->out);
    if (st == MR_OK) st = mr_mkdir_p(cells);
    for (int m = 0; st == MR_OK && o->log && m < az.n_models; m++)
        fprintf(o->log, "moe-robust analyze: model %s: %d samples in every trace; %d dropped "
                "from the trace that held the most (--allow-missing)\n", az.models[m].name,
                az.models[m].n, az.models[m].dropped);
    if (st == MR_OK) st = run_all(&az);
    if (st == MR_OK) {
        const char *models[64];
        for (int i = 0; i < az.n_out_models; i++) models[i] = az.out_models[i];
        mr_summary_run run = {.hash = az.hash, .config = az.config, .formats = o->formats,
                              .reference = az.reference, .bootstrap = o->bootstrap,
                              .level = o->level, .seed = o->seed, .n_models = az.n_out_models,
                              .models = models, .n_corr = az.n_corr_names, .corr = az.corr_names,
                              .n_groups = az.n_groups, .groups = az.groups,
                              .n_cells = az.n_cells, .cells = az.cells};
        st = mr_summary_write(&run, o->out);
    }
    analyzer_free(&az);
    return st;
}
