/* `moe-robust analyze` (mr_analyze.h): the driver and the computation of the cells;
 * the traces are grouped in mr_analyze_load.c, the output planned in mr_analyze_plan.c. */
#include "mr_analyze_impl.h"

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

/* Rows read at once: about this many bytes over the sides of a chunk (1 to 3 traces);
 * two chunks are held, the next one loaded while this one is routed. Each chunk ends in
 * a join, where a thread that finished first spins (libgomp's active wait) while the
 * other, descheduled on a busy host, finishes: 128 MiB instead of 48 took 6 % less CPU
 * with 2 threads at load 5 (docs/performance.md); the peak RSS stays near 200 MiB. */
#define CHUNK_BYTES ((size_t)128 << 20)
/* Resample plans kept for the run (2 bytes an index up to 65,536 samples): 1000 resamples
 * of 1024 samples are 2 MB a stream; the bound keeps the peak well inside 1 GiB. */
#define BOOT_BUDGET ((size_t)192 << 20)

void mr_analyze_opts_init(mr_analyze_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bootstrap = 1000;
    o->level = 0.95;
    o->threads = 1;
    o->formats = MR_OUT_JSON | MR_OUT_CSV;
}

/* ------------------------------------------------------------------ computation */

typedef struct side {
    const ltrace *l;
    mr_trace_rows rows;
    int has_acc, has_loss, has_pred;
} side;

typedef struct thread_buf {
    int *ta, *tb;
    uint8_t *both;
    mr_struct_acc *sa, *sb; /* this thread's routing-structure counts of pa, pb (merged
                               after the last chunk: integers, so any split gives the same) */
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

/* Routing structure of slot b's real tokens, read in place (metrics/mr_routing_struct.h):
 * with the class label (classify) or the next-token targets (lm) where the trace has them. */
static int add_structure(mr_struct_acc *acc, const side *sd, int b)
{
    const mr_trace_rows *r = &sd->rows;
    const mr_trace_file *t0 = sd->l->files[0];
    size_t tok = (size_t)b * r->T;
    int32_t label = t0->task == MR_TRACE_CLASSIFY && t0->has_labels ? r->labels[b] : -1;
    const int32_t *tg = t0->task == MR_TRACE_LM && t0->has_labels ? r->labels + tok : NULL;
    return mr_struct_acc_add_sample(acc, r->topk + tok * r->k, r->mask + tok, r->T,
                                    (size_t)r->cap * r->T, label, tg, -1);
}

/* Per-sample routing and scores of slot b (canonical sample s) into pass p: the routing
 * statistics read the rows in place (layer stride cap x T tokens, padding masked). */
static int pass_sample(mr_pass_metrics *p, mr_struct_acc *acc, const side *sd, int b, int s)
{
    const mr_trace_rows *r = &sd->rows;
    int T = r->T, E = r->E, k = r->k, cap = r->cap;
    const uint8_t *mask = r->mask + (size_t)b * T;
    int real = 0;
    for (int t = 0; t < T; t++) real += mask[t] != 0;
    size_t tok = (size_t)b * T;
    MR_TRY(mr_routing_acc_add_sums(p->routing, s, r->h_sum + b, r->hw_sum + b, (size_t)cap,
                                   r->psum + (size_t)b * E, (size_t)cap * E, r->topk + tok * k,
                                   sd->l->files[0]->has_mask ? mask : NULL, T, (size_t)cap * T));
    const mr_trace_file *t0 = sd->l->files[0];
    MR_TRY(add_structure(acc, sd, b));
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

/* Tokens of slot b real in both rows (tb->both[T]); their count. */
static int both_real(thread_buf *tb, const mr_trace_rows *ra, const mr_trace_rows *rc, int b)
{
    int T = ra->T, n = 0;
    for (int t = 0; t < T; t++)
        n += (tb->both[t] = ra->mask[(size_t)b * T + t] && rc->mask[(size_t)b * T + t]);
    return n;
}

/* Routings of slot b at layer li compared over the n tokens of tb->both. */
static void compare_layer(mr_flip_sums *fs, const mr_trace_rows *ra, const mr_trace_rows *rc,
                          int b, int li, int n, thread_buf *tb)
{
    int T = ra->T, k = ra->k, m = 0;
    for (int t = 0; t < T; t++) {
        if (!tb->both[t]) continue;
        size_t src = (((size_t)li * ra->cap + b) * T + t) * k;
        for (int j = 0; j < k; j++) {
            tb->ta[(size_t)m * k + j] = ra->topk[src + j];
            tb->tb[(size_t)m * k + j] = rc->topk[src + j];
        }
        m++;
    }
    mr_flip_compare(fs, tb->ta, tb->tb, n, k);
}

/* Flips of canonical sample s between slot b of two sides, over the tokens real in both. */
static void flip_sample(mr_flip_metrics *f, const side *a, const side *c, int b, int s,
                        thread_buf *tb)
{
    const mr_trace_rows *ra = &a->rows, *rc = &c->rows;
    int T = ra->T, L = ra->n_layers, n = both_real(tb, ra, rc, b);
    for (int li = 0; li < L; li++) {
        mr_flip_sums fs;
        compare_layer(&fs, ra, rc, b, li, n, tb);
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

/* Router saturation of canonical sample s (slot b): the share of side a's top-k experts
 * that side z (the last checkpoint) also chose, over the tokens real in both
 * (docs/metrics.md "Router saturation"; OLMoE, Muennighoff et al. 2024, Sec. 5). */
static void sat_sample(mr_flip_metrics *f, const side *a, const side *z, int b, int s,
                       thread_buf *tb)
{
    const mr_trace_rows *ra = &a->rows, *rz = &z->rows;
    int L = ra->n_layers, n = both_real(tb, ra, rz, b);
    for (int li = 0; li < L; li++) {
        mr_flip_sums fs;
        compare_layer(&fs, ra, rz, b, li, n, tb);
        f->sat[(size_t)s * L + li] = fs.overlap / n;
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

static size_t chunk_rows(const mr_trace_file *t, int sides)
{
    /* per row: the scores (buffers; none where read directly), top-k and weights of
     * every layer, mask, labels, predictions and outputs (mr_trace_row_bytes) */
    size_t per = mr_trace_row_bytes(t) * (size_t)sides;
    size_t rows = CHUNK_BYTES / (per ? per : 1);
    return rows < 1 ? 1 : rows > 1024 ? 1024 : rows;
}

/* The per-sample work of slot b (canonical sample s) once every side's rows of it are
 * routed: pass metrics of a (pa) and b (pb), flips a vs b (f), saturation against z. */
static int sample_work(const side *sa, const side *sb, const side *zs, mr_pass_metrics *pa,
                       mr_pass_metrics *pb, mr_flip_metrics *f, int b, int s, thread_buf *tb)
{
    int e = MR_OK;
    if (pa) e = pass_sample(pa, tb->sa, sa, b, s);
    if (e == MR_OK && pb) e = pass_sample(pb, tb->sb, sb, b, s);
    if (e == MR_OK && f) flip_sample(f, sa, sb, b, s, tb);
    if (e == MR_OK && f && zs) sat_sample(f, sa, zs, b, s, tb);
    return e;
}

/* A chunk's sides: a, then b and z when given (z may be b: then not read twice). */
typedef struct chunk_sides {
    side sd[3];
    int ns;          /* sides read: 1 .. 3 */
    const side *zs;  /* z's rows (sd[2] or sd[1]), NULL without z */
} chunk_sides;

/* Rows of canonical samples s0 .. s0+nb-1 of every side loaded (mr_trace_load_rows:
 * libhdf5 calls, so one thread at a time) and their masks checked; not routed. */
static int load_chunk(chunk_sides *cs, int s0, int nb, const amodel *am)
{
    for (int i = 0; i < cs->ns; i++) {
        const ltrace *l = cs->sd[i].l;
        for (int j = 0; j < nb;) {
            int f = l->loc_file[s0 + j], r = l->loc_row[s0 + j], m = 1;
            while (j + m < nb && l->loc_file[s0 + j + m] == f && l->loc_row[s0 + j + m] == r + m)
                m++;
            MR_TRY(mr_trace_load_rows(l->files[f], r, m, &cs->sd[i].rows, j));
            j += m;
        }
    }
    MR_TRY(check_masks(&cs->sd[0], cs->ns > 1 ? &cs->sd[1] : NULL, s0, nb, am));
    if (cs->zs) MR_TRY(check_masks(&cs->sd[0], cs->zs, s0, nb, am));
    return MR_OK;
}

/* A chunk that failed while loaded and routed in parallel, read again the sequential
 * way (each side read and routed, read_chunk, then the masks checked): the error the
 * reading order meets first is the one reported, for any thread count; st0 / msg0 (what
 * the parallel pass met) when that finds none. */
static int chunk_error(chunk_sides *cs, int s0, int nb, const amodel *am, int st0,
                       const char *msg0)
{
    int st = MR_OK;
    for (int i = 0; st == MR_OK && i < cs->ns; i++) st = read_chunk(&cs->sd[i], s0, nb);
    if (st == MR_OK) st = check_masks(&cs->sd[0], cs->ns > 1 ? &cs->sd[1] : NULL, s0, nb, am);
    if (st == MR_OK && cs->zs) st = check_masks(&cs->sd[0], cs->zs, s0, nb, am);
    return st != MR_OK ? st : mr_error_set(st0, "%s", msg0);
}

/* added to a row's count of routed units when one failed: above any count (at most 3
 * sides x MR_TRACE_MAX_LAYERS units a row), and 768 failures stay inside an int */
#define UNIT_FAILED (1 << 20)

/* Stream ltrace a (and b, and z): pass metrics of a (pa) and b (pb), flips a vs b (f),
 * and with z (the last checkpoint of a series) the saturation of a against z (f->sat);
 * pa, pb, f, lb and lz may be NULL.
 * Chunks of rows are double-buffered: in one parallel region per chunk, one thread
 * loads the next chunk (libhdf5: one reader at a time) and then joins the others, which
 * route this chunk's (row, side, layer) units; whichever thread routes a row's last unit
 * does that row's per-sample work (one join per chunk, where there were two per side
 * and chunk, and no thread waits while a chunk is read). A row's tokens stay on one
 * thread, in order, and the per-thread counts are integers, so the results do not
 * depend on the threads. */
static int compute(analyzer *az, const ltrace *la, const ltrace *lb, const ltrace *lz,
                   mr_pass_metrics *pa, mr_pass_metrics *pb, mr_flip_metrics *f, side *sa_out,
                   side *sb_out)
{
    const amodel *am = &az->models[la->model];
    const mr_trace_file *t = la->files[0];
    int own_z = lz && lz != lb; /* z's rows: read here, or b's */
    int n = am->n, cap = (int)chunk_rows(t, own_z ? 3 : lb ? 2 : 1), T = t->T, L = t->n_layers;
    int nt = az->o->threads;
    chunk_sides cs[2];
    memset(cs, 0, sizeof cs);
    int st = MR_OK;
    if (lz && !lb) return mr_error_set(MR_EFAILED, "analyze: a series without its pair");
    for (int c = 0; c < 2; c++) {
        const ltrace *ls[3] = {la, lb, own_z ? lz : NULL};
        cs[c].ns = own_z ? 3 : lb ? 2 : 1;
        for (int i = 0; i < cs[c].ns; i++) {
            cs[c].sd[i].l = ls[i];
            side_caps(&cs[c].sd[i]);
            if (st == MR_OK) st = mr_trace_rows_alloc(&cs[c].sd[i].rows, ls[i]->files[0], cap, 0);
            cs[c].sd[i].rows.threads = nt;
        }
        cs[c].zs = !lz ? NULL : own_z ? &cs[c].sd[2] : &cs[c].sd[1];
    }
    thread_buf *tbs = calloc((size_t)nt, sizeof *tbs);
    mr_trace_ws **ws = calloc((size_t)nt, sizeof *ws);
    int *done = calloc((size_t)cap, sizeof *done);
    if (!tbs || !ws || !done) st = mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < nt; i++) {
        tbs[i].ta = malloc((size_t)T * t->k * sizeof(int));
        tbs[i].tb = malloc((size_t)T * t->k * sizeof(int));
        tbs[i].both = malloc((size_t)T);
        if (!tbs[i].ta || !tbs[i].tb || !tbs[i].both)
            st = mr_error_set(MR_ENOMEM, "out of memory: per-thread buffers of %d x %d", T, t->k);
        if (st == MR_OK && pa) st = mr_struct_acc_alloc(&tbs[i].sa, t->n_layers, t->E, t->k);
        if (st == MR_OK && pb) st = mr_struct_acc_alloc(&tbs[i].sb, t->n_layers, t->E, t->k);
        if (st == MR_OK && !(ws[i] = mr_trace_ws_alloc(t->E))) st = MR_ENOMEM;
    }
    char load_msg[1024] = "";
    int cur = 0, load_st = MR_OK;
    if (st == MR_OK && n > 0) {
        load_st = load_chunk(&cs[0], 0, n < cap ? n : cap, am);
        if (load_st != MR_OK) snprintf(load_msg, sizeof load_msg, "%s", mr_error_message());
    }
    for (int s0 = 0; st == MR_OK && s0 < n; s0 += cap) {
        int nb = n - s0 < cap ? n - s0 : cap, s1 = s0 + cap, nb1 = n - s1 < cap ? n - s1 : cap;
        chunk_sides *c = &cs[cur], *c1 = &cs[cur ^ 1];
        if (load_st != MR_OK) {
            st = chunk_error(c, s0, nb, am, load_st, load_msg);
            break;
        }
        int ns = c->ns, per_row = ns * L, route_failed = 0, pass_failed = 0, next_st = MR_OK;
        char route_msg[1024] = "", pass_msg[1024] = "", next_msg[1024] = "";
        long long nu = (long long)nb * per_row;
        memset(done, 0, (size_t)nb * sizeof *done);
#pragma omp parallel num_threads(nt)
        {
            int th = 0;
#ifdef _OPENMP
            th = omp_get_thread_num();
#endif
#pragma omp single nowait
            if (s1 < n) {
                next_st = load_chunk(c1, s1, nb1, am);
                if (next_st != MR_OK) snprintf(next_msg, sizeof next_msg, "%s", mr_error_message());
            }
            /* dynamic: a thread slowed by other jobs (or by the loading) takes fewer units */
#pragma omp for schedule(dynamic, 1)
            for (long long u = 0; u < nu; u++) {
                int b = (int)(u / per_row), i = (int)(u % per_row / L), li = (int)(u % L);
                int e = mr_trace_route_unit(&c->sd[i].rows, li, b, ws[th]);
                if (e != MR_OK) {
#pragma omp critical(mr_analyze_error)
                    if (!route_failed) {
                        route_failed = e;
                        snprintf(route_msg, sizeof route_msg, "%s", mr_error_message());
                    }
                }
                /* the row's last unit (acquire: the other units' results are visible) */
                int v = __atomic_add_fetch(&done[b], e == MR_OK ? 1 : 1 + UNIT_FAILED,
                                           __ATOMIC_ACQ_REL);
                if (v != per_row) continue; /* not the last, or a unit of the row failed */
                e = sample_work(&c->sd[0], ns > 1 ? &c->sd[1] : NULL, c->zs, pa, pb, f, b,
                                s0 + b, &tbs[th]);
                if (e != MR_OK) {
#pragma omp critical(mr_analyze_error)
                    if (!pass_failed) {
                        pass_failed = e;
                        snprintf(pass_msg, sizeof pass_msg, "%s", mr_error_message());
                    }
                }
            }
        }
        if (route_failed) st = chunk_error(c, s0, nb, am, route_failed, route_msg);
        else if (pass_failed) st = mr_error_set(pass_failed, "%s", pass_msg);
        load_st = next_st;
        snprintf(load_msg, sizeof load_msg, "%s", next_msg);
        cur ^= 1;
    }
    for (int i = 0; tbs && st == MR_OK && i < nt; i++) {
        if (pa) st = mr_struct_acc_merge(pa->structure, tbs[i].sa);
        if (st == MR_OK && pb) st = mr_struct_acc_merge(pb->structure, tbs[i].sb);
    }
    for (int i = 0; tbs && i < nt; i++) {
        mr_struct_acc_free(tbs[i].sa);
        mr_struct_acc_free(tbs[i].sb);
        free(tbs[i].ta);
        free(tbs[i].tb);
        free(tbs[i].both);
    }
    for (int i = 0; ws && i < nt; i++) mr_trace_ws_free(ws[i]);
    free(tbs);
    free(ws);
    free(done);
    side *a = &cs[0].sd[0], *bs = &cs[0].sd[1];
    if (sa_out) *sa_out = (side){.l = la, .has_acc = a->has_acc, .has_loss = a->has_loss, .has_pred = a->has_pred};
    if (sb_out) *sb_out = (side){.l = lb, .has_acc = bs->has_acc, .has_loss = bs->has_loss, .has_pred = bs->has_pred};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 3; i++) mr_trace_rows_free(&cs[c].sd[i].rows);
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
    return (mr_ci_opts){.bootstrap = az->o->bootstrap, .level = az->o->level, .seed = az->o->seed,
                        .cache = az->boot};
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
    int nc = t->task == MR_TRACE_CLASSIFY ? t->C : 0; /* every class has its row */
    if (st == MR_OK) st = mr_struct_acc_reserve(clean.structure, nc, 0, 0);
    if (st == MR_OK) st = compute(az, u->clean[c], NULL, NULL, &clean, NULL, NULL, &sc, NULL);
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
        if (st == MR_OK) st = mr_struct_acc_reserve(cp.structure, nc, 0, 0);
        if (st == MR_OK) st = mr_flips_alloc(&fl, n, L);
        if (st == MR_OK) st = compute(az, u->clean[c], lc, NULL, NULL, &cp, &fl, &s1, &s2);
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
        if (st == MR_OK) st = mr_flips_alloc_sat(&fl, am->n, t->n_layers);
        /* flips c -> c+1, and the saturation of c against the last checkpoint */
        if (st == MR_OK)
            st = compute(az, u->clean[c], u->clean[c + 1], u->clean[u->n_ckpt - 1], NULL, NULL,
                         &fl, &s1, &s2);
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
    mr_boot_cache_free(az->boot);
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
    int st = mr_analyze_group(&az, files, n);
    if (st == MR_OK) st = mr_analyze_build_models(&az);
    if (st == MR_OK) st = mr_analyze_build_units(&az);
    if (st == MR_OK) st = mr_analyze_pick_reference(&az);
    if (st == MR_OK) st = mr_analyze_plan(&az);
    if (st == MR_OK) st = mr_analyze_make_config(&az, files, n);
    char cells[2200];
    snprintf(cells, sizeof cells, "%s/cells", o->out);
    if (st == MR_OK) st = mr_mkdir_p(cells);
    if (st == MR_OK) st = mr_boot_cache_alloc(&az.boot, BOOT_BUDGET);
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
