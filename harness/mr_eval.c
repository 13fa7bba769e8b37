#include "mr_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../analysis/mr_error.h"
#include "../io/mr_routing_io.h"
#include "../metrics/mr_score.h"

#ifndef MR_VERSION
#define MR_VERSION "0.1.0"
#endif

void mr_eval_opts_init(mr_eval_opts *o, const mr_model *m)
{
    memset(o, 0, sizeof *o);
    mr_engine_opts_init(&o->engine, m);
    o->threads = 1;
    o->bootstrap = 1000;
    o->level = 0.95;
    o->seed = 0;
}

void mr_eval_flips_free(mr_eval_flips *f) { mr_flips_free(f); }

int mr_eval_cache_alloc(mr_eval_cache **out, int n, int T, int n_moe, int k, int rows)
{
    *out = NULL;
    mr_eval_cache *c = calloc(1, sizeof *c);
    if (!c) return mr_error_set(MR_ENOMEM, "out of memory");
    *c = (mr_eval_cache){.n = n, .T = T, .n_moe = n_moe, .k = k, .rows = rows};
    c->topk = malloc(((size_t)n * n_moe * T * k + 1) * sizeof *c->topk);
    c->pred = malloc(((size_t)n * rows + 1) * sizeof *c->pred);
    if (!c->topk || !c->pred) {
        mr_eval_cache_free(c);
        return mr_error_set(MR_ENOMEM, "out of memory: routing cache of %d samples", n);
    }
    *out = c;
    return MR_OK;
}

void mr_eval_cache_free(mr_eval_cache *c)
{
    if (!c) return;
    free(c->topk);
    free(c->pred);
    free(c);
}

void mr_eval_result_free(mr_eval_result *r)
{
    if (!r) return;
    mr_pass_free(&r->clean);
    mr_pass_free(&r->corrupt);
    mr_eval_flips_free(&r->flip_corrupt);
    mr_eval_flips_free(&r->flip_ckpt);
    memset(r, 0, sizeof *r);
}

/* Accuracy and loss of samples s0.. of one pass; token_loss [B,T] (lm) if non-NULL. */
static void score(mr_eval_pass *p, const mr_trace *tr, const mr_model *m, const mr_dataset *d,
                  int s0, float *token_loss)
{
    const mr_config *c = &m->cfg;
    int B = tr->B, T = tr->T, V = c->n_out;
    for (int b = 0; b < B; b++) {
        int s = s0 + b;
        if (c->task == MR_TASK_CLASSIFY) {
            const float *lg = tr->logits + (size_t)b * V;
            p->pred[s] = mr_score_argmax(lg, V);
            p->correct[s] = p->pred[s] == d->labels[s];
            p->loss[s] = mr_score_xent(lg, V, d->labels[s]);
            continue;
        }
        double correct = 0.0, loss = 0.0;
        for (int t = 0; t < T; t++) {
            const float *lg = tr->logits + ((size_t)b * T + t) * V;
            int target = d->tokens[(size_t)s * d->cols + t + 1];
            double l = mr_score_xent(lg, V, target);
            if (token_loss) token_loss[(size_t)b * T + t] = (float)l;
            loss += l;
            correct += mr_score_argmax(lg, V) == target;
        }
        p->correct[s] = correct / T;
        p->loss[s] = loss / T;
        p->pred[s] = -1;
    }
}

/* Routing structure of samples s0.. of a pass (metrics/mr_routing_struct.h): the
 * classes of images, the next-token targets of token sequences, the domains where the
 * data name them. */
static int add_structure(mr_eval_pass *p, const mr_trace *tr, const mr_model *m,
                         const mr_dataset *d, int s0)
{
    mr_struct_side side = {.domains = d->domains ? d->domains + s0 : NULL};
    if (m->cfg.task == MR_TASK_CLASSIFY) {
        side.labels = d->labels + s0;
    } else {
        side.targets = d->tokens + (size_t)s0 * d->cols + 1;
        side.target_stride = (size_t)d->cols;
    }
    return mr_struct_acc_add(p->structure, tr, &side);
}

/* One sample's routing and predictions, from a live trace (sample b of its micro-batch)
 * or from a cache (sample s). */
typedef struct view {
    const mr_trace *tr;
    int b;
    const mr_eval_cache *c;
    int s;
} view;

/* The sample's top-k of MoE layer mi as [T, k] ints (copied into buf for a cache). */
static const int *view_topk(view v, int mi, int T, int k, int *buf)
{
    if (v.tr) return v.tr->topk + ((size_t)mi * v.tr->B * T + (size_t)v.b * T) * k;
    const int16_t *src = v.c->topk + (((size_t)v.s * v.c->n_moe + mi) * T) * k;
    for (int i = 0; i < T * k; i++) buf[i] = src[i];
    return buf;
}

static int view_pred(view v, int row, int rows, int V)
{
    if (v.tr) return mr_score_argmax(v.tr->logits + ((size_t)v.b * rows + row) * V, V);
    return v.c->pred[(size_t)v.s * rows + row];
}

/* Flips of sample s between views a and b; bufa, bufb: [T*k] scratch. */
static void flip_sample(mr_eval_flips *f, int s, int nm, int T, int k, int rows, int V, view a,
                        view b, int *bufa, int *bufb)
{
    for (int mi = 0; mi < nm; mi++) {
        mr_flip_sums fs;
        mr_flip_compare(&fs, view_topk(a, mi, T, k, bufa), view_topk(b, mi, T, k, bufb), T, k);
        size_t i = (size_t)s * nm + mi;
        f->top1[i] = fs.top1 / T;
        f->set[i] = fs.set / T;
        f->jaccard[i] = fs.jaccard / T;
    }
    double changed = 0.0;
    for (int r = 0; r < rows; r++) changed += view_pred(a, r, rows, V) != view_pred(b, r, rows, V);
    f->pred[s] = changed / rows;
}

static void store(mr_eval_cache *c, const mr_trace *tr, int s0, int V)
{
    int T = tr->T, k = tr->k;
    for (int b = 0; b < tr->B; b++) {
        view v = {.tr = tr, .b = b};
        for (int mi = 0; mi < tr->n_moe; mi++) {
            const int *src = view_topk(v, mi, T, k, NULL);
            int16_t *dst = c->topk + (((size_t)(s0 + b) * c->n_moe + mi) * T) * k;
            for (int i = 0; i < T * k; i++) dst[i] = (int16_t)src[i];
        }
        for (int r = 0; r < c->rows; r++)
            c->pred[(size_t)(s0 + b) * c->rows + r] = view_pred(v, r, c->rows, V);
    }
}

/* Embedding hook: forwards to the corruption with the micro-batch's first sample. */
typedef struct embed_ctx {
    const mr_eval_corruption *c;
    uint64_t first;
    int thread;
} embed_ctx;

static int embed_hook(void *ctx, float *x, int B, int T, int d)
{
    embed_ctx *e = ctx;
    return e->c->embeddings(e->c->ctx, x, B, T, d, e->first, e->thread);
}

typedef struct worker {
    mr_workspace *clean, *corrupt, *other;
    uint8_t *images;     /* corrupted images [B,H,W,C] */
    int32_t *tokens;     /* corrupted tokens [B,cols] */
    float *token_loss;   /* [B,T] for --save-routing on lm: the main pass */
    float *clean_loss;   /* [B,T] the same of the clean pass, with a corruption */
    int *bufa, *bufb;    /* [T*k] top-k of one sample, for comparisons with a cache */
    embed_ctx ectx;
} worker;

static void worker_free(worker *w)
{
    mr_workspace_free(w->clean);
    mr_workspace_free(w->corrupt);
    mr_workspace_free(w->other);
    free(w->images);
    free(w->tokens);
    free(w->token_loss);
    free(w->clean_loss);
    free(w->bufa);
    free(w->bufb);
}

static int worker_alloc(worker *w, const mr_model *m, const mr_router *r, const mr_dataset *d,
                        const mr_eval_opts *o, const mr_engine_opts *eo, int T, int thread)
{
    memset(w, 0, sizeof *w);
    const mr_eval_corruption *c = o->corruption;
    int B = eo->batch, k = eo->top_k ? eo->top_k : m->cfg.top_k;
    w->bufa = malloc((size_t)T * k * sizeof *w->bufa);
    w->bufb = malloc((size_t)T * k * sizeof *w->bufb);
    if (!w->bufa || !w->bufb) return mr_error_set(MR_ENOMEM, "out of memory");
    if (!(c && o->clean_cache)) MR_TRY(mr_workspace_alloc(&w->clean, m, r, eo));
    if (c) {
        MR_TRY(mr_workspace_alloc(&w->corrupt, m, r, eo));
        if (c->embeddings) {
            w->ectx = (embed_ctx){.c = c, .thread = thread};
            mr_workspace_set_embed_hook(w->corrupt, embed_hook, &w->ectx);
        }
        if (c->images && d->kind == MR_DATA_IMAGES &&
            !(w->images = malloc((size_t)B * d->h * d->w * d->c)))
            return mr_error_set(MR_ENOMEM, "out of memory");
        if (c->tokens && d->kind == MR_DATA_TOKENS &&
            !(w->tokens = malloc((size_t)B * d->cols * sizeof *w->tokens)))
            return mr_error_set(MR_ENOMEM, "out of memory");
    }
    if (o->compare) {
        MR_TRY(mr_workspace_alloc(&w->other, o->compare, o->compare_router, eo));
        if (c && c->embeddings) mr_workspace_set_embed_hook(w->other, embed_hook, &w->ectx);
    }
    if (o->save_routing && m->cfg.task == MR_TASK_LM &&
        (!(w->token_loss = malloc((size_t)B * T * sizeof(float))) ||
         (c && !(w->clean_loss = malloc((size_t)B * T * sizeof(float))))))
        return mr_error_set(MR_ENOMEM, "out of memory");
    return MR_OK;
}

/* One forward of `ws` on samples s0..s0+nb-1 from either the dataset or a corrupted copy. */
static int forward(mr_workspace *ws, const mr_model *m, const mr_dataset *d, const uint8_t *img,
                   const int32_t *tok, int s0, int nb, int T)
{
    mr_workspace_set_first_sample(ws, (uint64_t)s0);
    if (m->cfg.task == MR_TASK_CLASSIFY)
        return mr_engine_forward_images(
            ws, img ? img : d->images + (size_t)s0 * d->h * d->w * d->c, nb);
    return mr_engine_forward_tokens(ws, tok ? tok : d->tokens + (size_t)s0 * d->cols, nb, T,
                                    d->cols);
}

/* The forward of the main condition on ws through the kept prefix p (may be NULL): the
 * rest only where p holds samples s0..s0+nb-1, else the whole forward, keeping its prefix
 * in p where it fits. */
static int forward_kept(mr_workspace *ws, mr_prefix_kept *p, const mr_model *m,
                        const mr_dataset *d, const uint8_t *img, const int32_t *tok, int s0,
                        int nb, int T)
{
    if (!p) return forward(ws, m, d, img, tok, s0, nb, T);
    float *x, *att;
    mr_engine_prefix_state(ws, nb, T, &x, &att);
    mr_workspace_set_first_sample(ws, (uint64_t)s0);
    if (mr_prefix_kept_has(p, s0, nb)) {
        mr_prefix_kept_load(p, x, att, s0, nb);
    } else {
        if (m->cfg.task == MR_TASK_CLASSIFY)
            MR_TRY(mr_engine_prefix_images(
                ws, img ? img : d->images + (size_t)s0 * d->h * d->w * d->c, nb));
        else
            MR_TRY(mr_engine_prefix_tokens(ws, tok ? tok : d->tokens + (size_t)s0 * d->cols, nb,
                                           T, d->cols));
        mr_prefix_kept_store(p, x, att, s0, nb);
    }
    return mr_engine_forward_rest(ws, nb, T);
}

/* Flips of samples s0..s0+nb-1 between two views (a live trace or a cache each). */
static void flip_chunk(mr_eval_flips *f, worker *w, const mr_eval_result *res, int V, int s0,
                       int nb, const mr_trace *ta, const mr_eval_cache *ca, const mr_trace *tb)
{
    int rows = res->task == MR_TASK_CLASSIFY ? 1 : res->T;
    for (int b = 0; b < nb; b++) {
        view a = ta ? (view){.tr = ta, .b = b} : (view){.c = ca, .s = s0 + b};
        view v = {.tr = tb, .b = b};
        flip_sample(f, s0 + b, res->n_moe, res->T, res->k, rows, V, a, v, w->bufa, w->bufb);
    }
}

static int run_chunk(worker *w, mr_eval_result *res, const mr_model *m, const mr_dataset *d,
                     const mr_eval_opts *o, mr_prefix_kept *p, mr_routing_writer *rw, int s0,
                     int nb, int T, int thread)
{
    const mr_eval_corruption *c = o->corruption;
    int V = m->cfg.n_out;
    const mr_trace *tc = NULL, *main = NULL;
    if (w->clean) {
        MR_TRY(forward_kept(w->clean, c ? NULL : p, m, d, NULL, NULL, s0, nb, T));
        tc = main = mr_workspace_trace(w->clean);
        score(&res->clean, tc, m, d, s0, c ? w->clean_loss : w->token_loss);
        MR_TRY(mr_routing_acc_add(res->clean.routing, tc, s0));
        MR_TRY(add_structure(&res->clean, tc, m, d, s0));
    }
    const uint8_t *img = NULL;
    const int32_t *tok = NULL;
    /* a kept prefix already went through the corruption */
    int kept = p && c && mr_prefix_kept_has(p, s0, nb);
    if (c && !kept) {
        if (w->images) {
            MR_TRY(c->images(c->ctx, w->images, d->images + (size_t)s0 * d->h * d->w * d->c, nb,
                             d->h, d->w, d->c, (uint64_t)s0, thread));
            img = w->images;
        }
        if (w->tokens) {
            MR_TRY(c->tokens(c->ctx, w->tokens, d->tokens + (size_t)s0 * d->cols, nb, d->cols,
                             (uint64_t)s0, thread));
            tok = w->tokens;
        }
    }
    if (c) {
        w->ectx.first = (uint64_t)s0;
        MR_TRY(forward_kept(w->corrupt, p, m, d, img, tok, s0, nb, T));
        main = mr_workspace_trace(w->corrupt);
        score(&res->corrupt, main, m, d, s0, w->token_loss);
        MR_TRY(mr_routing_acc_add(res->corrupt.routing, main, s0));
        MR_TRY(add_structure(&res->corrupt, main, m, d, s0));
        flip_chunk(&res->flip_corrupt, w, res, V, s0, nb, tc, o->clean_cache, main);
    }
    if (o->store_cache) store(o->store_cache, main, s0, V);
    if (o->compare) {
        MR_TRY(forward(w->other, o->compare, d, img, tok, s0, nb, T));
        flip_chunk(&res->flip_ckpt, w, res, V, s0, nb, main, NULL, mr_workspace_trace(w->other));
    }
    if (rw) {
        /* with a corruption both passes: the clean one as pass 0, the corrupted as 1 */
        int st;
#pragma omp critical(mr_hdf5)
        {
            st = c && tc ? mr_routing_writer_put(rw, 0, tc, s0, w->clean_loss)
                         : mr_routing_writer_put(rw, 0, main, s0, w->token_loss);
            if (st == MR_OK && c && tc) st = mr_routing_writer_put(rw, 1, main, s0, w->token_loss);
        }
        MR_TRY(st);
    }
    return MR_OK;
}

static mr_ci_opts ci_opts(const mr_eval_opts *o)
{
    return (mr_ci_opts){
        .bootstrap = o->bootstrap, .level = o->level, .seed = o->seed, .cache = o->boot_cache};
}

/* Every CI and summary of a result. The jobs are independent (each draws from its own
 * stream, keyed by its purpose, or reads its kept plan), so they run concurrently
 * without changing a bit; a cell's bootstrap was a tenth of the grid's time when run
 * one after another. */
static int summarize_all(mr_eval_result *res, int n, int nm, const mr_eval_opts *o)
{
    enum { N_JOBS = 6 };
    int status[N_JOBS] = {0};
    char msg[N_JOBS][512];
#pragma omp parallel for schedule(dynamic, 1) num_threads(o->threads)
    for (int j = 0; j < N_JOBS; j++) {
        int st = MR_OK, both = res->has_corrupt && res->has_clean;
        mr_ci_opts co = ci_opts(o);
        switch (j) {
        case 0: if (res->has_clean) st = mr_pass_summarize(&res->clean, n, &co, "clean"); break;
        case 1: if (res->has_corrupt) st = mr_pass_summarize(&res->corrupt, n, &co, "corrupt"); break;
        case 2: if (res->has_corrupt) st = mr_flips_summarize(&res->flip_corrupt, n, nm, &co, "corrupt"); break;
        case 3: if (res->has_compare) st = mr_flips_summarize(&res->flip_ckpt, n, nm, &co, "ckpt"); break;
        case 4:
            if (both)
                st = mr_pass_paired(&res->acc_drop, res->clean.correct, res->corrupt.correct, n, &co,
                            "bootstrap/accuracy-drop");
            break;
        default:
            if (both)
                st = mr_pass_paired(&res->loss_rise, res->corrupt.loss, res->clean.loss, n, &co,
                            "bootstrap/loss-rise");
        }
        status[j] = st;
        if (st != MR_OK) snprintf(msg[j], sizeof msg[j], "%s", mr_error_message());
    }
    for (int j = 0; j < N_JOBS; j++)
        if (status[j] != MR_OK) return mr_error_set(status[j], "%s", msg[j]);
    return MR_OK;
}

/* The compared checkpoint must route the same layers over the same experts. */
int mr_eval_check_compatible(const mr_model *a, const mr_model *b)
{
    const mr_config *x = &a->cfg, *y = &b->cfg;
    int same = x->task == y->task && x->n_moe == y->n_moe && x->n_experts == y->n_experts &&
               x->n_out == y->n_out && x->n_pos == y->n_pos;
    for (int i = 0; same && i < x->n_moe; i++) same = x->moe_layers[i] == y->moe_layers[i];
    if (same && x->task == MR_TASK_CLASSIFY)
        same = x->image_h == y->image_h && x->image_w == y->image_w && x->channels == y->channels;
    MR_REQUIRE(same, MR_EINPUT,
               "%s cannot be compared with %s: task, MoE layers, experts or input differ",
               b->path, a->path);
    return MR_OK;
}

int mr_eval_run(mr_eval_result *res, const mr_model *m, const mr_router *r,
                const mr_dataset *d, const mr_eval_opts *o)
{
    memset(res, 0, sizeof *res);
    MR_TRY(mr_dataset_check_model(d, m));
    MR_REQUIRE(o->threads >= 1 && o->threads <= 1024, MR_EINPUT,
               "threads = %d must be in 1..1024", o->threads);
    MR_REQUIRE(o->bootstrap >= 0 && o->bootstrap <= 1000000, MR_EINPUT,
               "bootstrap = %d must be in 0..1000000", o->bootstrap);
    MR_REQUIRE(o->level > 0.0 && o->level < 1.0, MR_EINPUT, "level = %g must be in (0, 1)",
               o->level);
    if (o->compare) {
        MR_REQUIRE(o->compare_router, MR_EINPUT, "a compared checkpoint needs a router");
        MR_TRY(mr_eval_check_compatible(m, o->compare));
    }
    const mr_config *c = &m->cfg;
    mr_engine_opts eo = o->engine;
    int T = c->task == MR_TASK_LM ? d->cols - 1 : mr_config_seq_len(c);
    if (c->task == MR_TASK_LM) eo.seq_len = T;
    MR_TRY(mr_engine_opts_check(&eo, m));
    /* workspaces hold one micro-batch: never more samples than there are (--batch 65536
     * on 256 windows asked for 59 GiB). The micro-batches, and so the results, are the
     * same: [0, n) is one batch either way. */
    if (eo.batch > d->n) eo.batch = d->n;
    int k = eo.top_k ? eo.top_k : c->top_k, n = d->n, nm = c->n_moe;
    res->task = c->task;
    res->n = n;
    res->T = T;
    res->n_moe = nm;
    res->E = c->n_experts;
    res->k = k;
    res->has_corrupt = o->corruption != NULL;
    res->has_clean = !(res->has_corrupt && o->clean_cache);
    res->has_compare = o->compare != NULL;
    res->n_scored = c->task == MR_TASK_LM ? (long long)n * T : n;
    int rows = c->task == MR_TASK_LM ? T : 1;
    const mr_eval_cache *cc[2] = {o->clean_cache, o->store_cache};
    for (int i = 0; i < 2; i++)
        MR_REQUIRE(!cc[i] || (cc[i]->n == n && cc[i]->T == T && cc[i]->n_moe == nm &&
                              cc[i]->k == k && cc[i]->rows == rows),
                   MR_EINPUT, "routing cache does not match this evaluation's shape");
    int st = res->has_clean ? mr_pass_alloc(&res->clean, n, nm, c->n_experts, k) : MR_OK;
    if (st == MR_OK && res->has_corrupt) st = mr_pass_alloc(&res->corrupt, n, nm, c->n_experts, k);
    /* every class (vocabulary id, domain) of the model and data has its row */
    int nc = c->task == MR_TASK_CLASSIFY ? c->n_out : 0, nv = c->task == MR_TASK_LM ? c->n_out : 0;
    if (st == MR_OK && res->has_clean)
        st = mr_struct_acc_reserve(res->clean.structure, nc, nv, d->n_domains);
    if (st == MR_OK && res->has_corrupt)
        st = mr_struct_acc_reserve(res->corrupt.structure, nc, nv, d->n_domains);
    if (st == MR_OK && res->has_corrupt) st = mr_flips_alloc(&res->flip_corrupt, n, nm);
    if (st == MR_OK && res->has_compare) st = mr_flips_alloc(&res->flip_ckpt, n, nm);
    mr_routing_writer *rw = NULL;
    if (st == MR_OK && o->save_routing) {
        char stem[256], source[128], cond[64];
        const char *base = strrchr(m->path, '/') ? strrchr(m->path, '/') + 1 : m->path;
        snprintf(stem, sizeof stem, "%.63s", base); /* labels are < 64 characters */
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        snprintf(source, sizeof source, "moe-robust %s (C engine)", MR_VERSION);
        mr_trace_meta tm = o->trace;
        if (!tm.model) tm.model = stem;
        if (!tm.checkpoint) tm.checkpoint = stem;
        if (!tm.router) tm.router = r->type->name;
        /* a corruption's label is "NAME:S (seed N)": the condition is "NAME:S" */
        snprintf(cond, sizeof cond, "%s", o->corruption ? o->corruption->label : "clean");
        cond[strcspn(cond, " ")] = '\0';
        if (!tm.condition) tm.condition = cond;
        if (!tm.source) tm.source = source;
        st = mr_routing_writer_open(&rw, o->save_routing, m, d, n, T, k, &tm,
                                    res->has_corrupt && res->has_clean);
    }
    if (st != MR_OK) {
        mr_eval_result_free(res);
        return st;
    }

    int B = eo.batch, n_chunks = (n + B - 1) / B;
    mr_prefix_kept *p = o->prefix;
    if (p && (p->batch != B || p->m != m || eo.keep_attention || o->compare)) p = NULL;
    int failed = 0, err_code = MR_OK;
    char err[1024] = "";
    /* one workspace per thread: no more threads than micro-batches */
    int n_threads = o->threads < n_chunks ? o->threads : n_chunks;
#pragma omp parallel num_threads(n_threads)
    {
        int thread = 0;
#ifdef _OPENMP
        thread = omp_get_thread_num();
#endif
        worker w;
        int wst = worker_alloc(&w, m, r, d, o, &eo, T, thread);
#pragma omp for schedule(dynamic, 1)
        for (int ch = 0; ch < n_chunks; ch++) {
            int bail;
#pragma omp atomic read
            bail = failed;
            if (bail || wst != MR_OK) continue;
            int s0 = ch * B, nb = n - s0 < B ? n - s0 : B;
            wst = run_chunk(&w, res, m, d, o, p, rw, s0, nb, T, thread);
        }
        if (wst != MR_OK) {
#pragma omp critical(mr_eval_error)
            if (!failed) {
                failed = 1;
                err_code = wst;
                snprintf(err, sizeof err, "%s", mr_error_message());
            }
        }
        worker_free(&w);
    }
    if (failed) {
        mr_routing_writer_abort(rw);
        mr_eval_result_free(res);
        return mr_error_set(err_code, "%s", err);
    }
    st = rw ? mr_routing_writer_close(rw) : MR_OK;
    if (st == MR_OK) st = summarize_all(res, n, nm, o);
    if (st != MR_OK) mr_eval_result_free(res);
    return st;
}

int mr_eval_compare_caches(mr_eval_flips *f, const mr_eval_cache *a, const mr_eval_cache *b,
                           const mr_eval_opts *o, const char *name)
{
    return mr_eval_compare_series(f, a, b, NULL, o, name);
}

static int same_shape(const mr_eval_cache *a, const mr_eval_cache *b)
{
    return a->n == b->n && a->T == b->T && a->n_moe == b->n_moe && a->k == b->k &&
           a->rows == b->rows;
}

int mr_eval_compare_series(mr_eval_flips *f, const mr_eval_cache *a, const mr_eval_cache *b,
                           const mr_eval_cache *last, const mr_eval_opts *o, const char *name)
{
    memset(f, 0, sizeof *f);
    MR_REQUIRE(same_shape(a, b) && (!last || same_shape(a, last)), MR_EINPUT,
               "routing caches of different shapes cannot be compared");
    int T = a->T, k = a->k, nm = a->n_moe;
    int *ba = malloc((size_t)T * k * sizeof *ba), *bb = malloc((size_t)T * k * sizeof *bb);
    int st = ba && bb ? mr_flips_alloc(f, a->n, nm) : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK && last) st = mr_flips_alloc_sat(f, a->n, nm);
    for (int s = 0; st == MR_OK && s < a->n; s++) {
        view va = {.c = a, .s = s};
        flip_sample(f, s, nm, T, k, a->rows, 0, va, (view){.c = b, .s = s}, ba, bb);
        /* saturation: a's top-k against the last checkpoint's, token by token */
        for (int mi = 0; last && mi < nm; mi++) {
            mr_flip_sums fs;
            mr_flip_compare(&fs, view_topk(va, mi, T, k, ba),
                            view_topk((view){.c = last, .s = s}, mi, T, k, bb), T, k);
            f->sat[(size_t)s * nm + mi] = fs.overlap / T;
        }
    }
    free(ba);
    free(bb);
    mr_ci_opts co = ci_opts(o);
    if (st == MR_OK) st = mr_flips_summarize(f, a->n, nm, &co, name);
    if (st != MR_OK) mr_eval_flips_free(f);
    return st;
}
