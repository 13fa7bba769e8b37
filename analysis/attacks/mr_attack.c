/* The attack driver: options, micro-batches over threads, the ball on the grid, and the
 * steps every attack shares (objective, gradient, projection). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../mr_error.h"
#include "../mr_rng.h"
#include "mr_attack_impl.h"

const mr_attack_type *const mr_attack_types[] = {&mr_attack_fgsm, &mr_attack_pgd,
                                                 &mr_attack_square, &mr_attack_spsa, NULL};

const mr_attack_type *mr_attack_lookup(const char *name)
{
    for (int i = 0; mr_attack_types[i]; i++)
        if (strcmp(mr_attack_types[i]->name, name) == 0) return mr_attack_types[i];
    return NULL;
}

void mr_attack_opts_init(mr_attack_opts *o)
{
    memset(o, 0, sizeof *o);
    o->eps = 8.0 / 255.0;
    o->random_start = -1;
    o->objective = MR_ATTACK_LOSS;
    o->route_layer = -1;
    o->p_init = 0.8;
    o->spsa_samples = 128;
    o->spsa_delta = 0.01;
    o->spsa_lr = 0.01;
    o->batch = 16;
}

/* MoE index of the routing objective's block, or -1 if it is not an MoE block. */
static int route_moe_index(const mr_attack_opts *o, const mr_model *m)
{
    if (o->route_layer < 0) return 0;
    if (o->route_layer >= m->cfg.n_layers) return -1;
    const mr_layer *L = &m->layers[o->route_layer];
    return L->is_moe ? L->moe_index : -1;
}

int mr_attack_opts_check(const mr_attack_opts *o, const mr_attack_type *t, const mr_model *m)
{
    MR_REQUIRE(isfinite(o->eps) && o->eps >= 0.0 && o->eps <= 1.0, MR_EINPUT,
               "eps = %g must be in [0, 1] (intensity units: 8/255 = 0.0314)", o->eps);
    MR_REQUIRE(o->steps >= 0 && o->steps <= 1000000, MR_EINPUT,
               "steps = %d must be in 0..1000000", o->steps);
    MR_REQUIRE(t != &mr_attack_fgsm || o->steps <= 1, MR_EINPUT,
               "fgsm takes one step (steps = %d); use pgd for more", o->steps);
    MR_REQUIRE(isfinite(o->step_size) && o->step_size >= 0.0 && o->step_size <= 1.0,
               MR_EINPUT, "step size %g must be in [0, 1]", o->step_size);
    MR_REQUIRE(o->objective == MR_ATTACK_LOSS || o->objective == MR_ATTACK_ROUTING, MR_EINPUT,
               "unknown objective %d", o->objective);
    MR_REQUIRE(o->p_init > 0.0 && o->p_init <= 1.0, MR_EINPUT,
               "p_init = %g must be in (0, 1]", o->p_init);
    MR_REQUIRE(o->spsa_samples >= 1 && o->spsa_samples <= 65536, MR_EINPUT,
               "SPSA samples = %d must be in 1..65536", o->spsa_samples);
    MR_REQUIRE(o->spsa_delta > 0.0 && o->spsa_delta <= 1.0 && o->spsa_lr > 0.0 &&
                   o->spsa_lr <= 1.0, MR_EINPUT,
               "SPSA delta = %g and learning rate = %g must be in (0, 1]", o->spsa_delta,
               o->spsa_lr);
    MR_REQUIRE(o->batch >= 1 && o->batch <= 65536, MR_EINPUT, "batch = %d must be in 1..65536",
               o->batch);
    MR_REQUIRE(t != &mr_attack_spsa || o->batch >= 2, MR_EINPUT,
               "spsa evaluates direction pairs: batch = %d must be >= 2", o->batch);
    MR_REQUIRE(m->cfg.task == MR_TASK_CLASSIFY, MR_EINPUT,
               "%s is a language model: attacks write adversarial images, and an LM's "
               "input-embedding gradient cannot be written as tokens", m->path);
    MR_REQUIRE(o->objective != MR_ATTACK_ROUTING || route_moe_index(o, m) >= 0, MR_EINPUT,
               "route layer %d is not an MoE block of %s (MoE blocks: see inspect)",
               o->route_layer, m->path);
    return MR_OK;
}

/* ------------------------------------------------------------------ shared steps */
void mr_attack_project(const mr_attack_batch *b, float *x, int i)
{
    const float *lo = b->lo + (size_t)i * b->D, *hi = b->hi + (size_t)i * b->D;
    for (int j = 0; j < b->D; j++) x[j] = x[j] < lo[j] ? lo[j] : x[j] > hi[j] ? hi[j] : x[j];
}

/* routing margin of one token: p_c - max_{j != c} p_j, and that runner-up j */
static float route_margin(const float *p, int E, int c, int *runner)
{
    int best = -1;
    for (int e = 0; e < E; e++)
        if (e != c && (best < 0 || p[e] > p[best])) best = e;
    *runner = best;
    return best < 0 ? INFINITY : p[c] - p[best];
}

float mr_attack_objective(const mr_attack_batch *b, const mr_trace *tr, int s, int image)
{
    if (b->o->objective == MR_ATTACK_LOSS) {
        int C = b->m->cfg.n_out, y = b->y[image];
        const float *z = tr->logits + (size_t)s * C;
        float other = -INFINITY;
        for (int j = 0; j < C; j++)
            if (j != y && z[j] > other) other = z[j];
        return z[y] - other;
    }
    int E = tr->E, T = tr->T, runner;
    const float *p = tr->probs + ((size_t)b->route_mi * tr->B * T + (size_t)s * T) * E;
    double sum = 0.0;
    for (int t = 0; t < T; t++) {
        float mg = route_margin(p + (size_t)t * E, E, b->clean_top1[(size_t)image * T + t],
                                &runner);
        if (mg > 0.0f) sum += mg;
    }
    return (float)sum;
}

int mr_attack_flips(const mr_attack_batch *b, const mr_trace *tr, int s, int image)
{
    int k = tr->k, T = tr->T, n = 0;
    const int *top = tr->topk + ((size_t)b->route_mi * tr->B * T + (size_t)s * T) * k;
    for (int t = 0; t < T; t++) n += top[(size_t)t * k] != b->clean_top1[(size_t)image * T + t];
    return n;
}

int mr_attack_eval_float(mr_attack_batch *b, const float *xs, const int *img, int nb)
{
    size_t n = (size_t)nb * b->D;
    for (size_t i = 0; i < n; i++) b->in01[i] = xs[i] / 255.0f;
    mr_grad_set_first_sample(b->g, b->first);
    MR_TRY(mr_grad_forward_images(b->g, b->in01, nb));
    const mr_trace *tr = mr_grad_trace(b->g);
    for (int s = 0; s < nb; s++) {
        b->val[s] = mr_attack_objective(b, tr, s, img[s]);
        b->queries[img[s]]++;
    }
    return MR_OK;
}

int mr_attack_eval_u8(mr_attack_batch *b, const uint8_t *u8, const int *img, int nb)
{
    mr_workspace_set_first_sample(b->ws, b->first);
    MR_TRY(mr_engine_forward_images(b->ws, u8, nb));
    const mr_trace *tr = mr_workspace_trace(b->ws);
    for (int s = 0; s < nb; s++) {
        b->val[s] = mr_attack_objective(b, tr, s, img[s]);
        b->queries[img[s]]++;
    }
    return MR_OK;
}

int mr_attack_gradient(mr_attack_batch *b)
{
    int B = b->B, C = b->m->cfg.n_out;
    for (int i = 0; i < B; i++) b->img[i] = i;
    MR_TRY(mr_attack_eval_float(b, b->x, b->img, B));
    const mr_trace *tr = mr_grad_trace(b->g);
    const float *dprobs = NULL;
    if (b->o->objective == MR_ATTACK_LOSS) {
        /* d CE / d logits = softmax - onehot */
        for (int i = 0; i < B; i++) {
            const float *z = tr->logits + (size_t)i * C;
            float *d = b->dlogits + (size_t)i * C;
            double mx = z[0], s = 0.0;
            for (int j = 1; j < C; j++) mx = z[j] > mx ? z[j] : mx;
            for (int j = 0; j < C; j++) s += exp((double)z[j] - mx);
            for (int j = 0; j < C; j++)
                d[j] = (float)(exp((double)z[j] - mx) / s - (j == b->y[i]));
        }
    } else {
        /* maximize -sum_t max(0, p_c - p_runner): d/dp_c = -1, d/dp_runner = +1 where the
         * token has not flipped yet (the routing margin is positive) */
        int E = tr->E, T = tr->T;
        size_t N = (size_t)B * T;
        memset(b->dlogits, 0, (size_t)B * C * sizeof(float));
        memset(b->dprobs, 0, (size_t)tr->n_moe * N * E * sizeof(float));
        const float *p = tr->probs + (size_t)b->route_mi * N * E;
        float *dp = b->dprobs + (size_t)b->route_mi * N * E;
        for (size_t t = 0; t < N; t++) {
            int runner, c = b->clean_top1[t];
            if (route_margin(p + t * E, E, c, &runner) > 0.0f) {
                dp[t * E + c] = -1.0f;
                dp[t * E + runner] = 1.0f;
            }
        }
        dprobs = b->dprobs;
    }
    return mr_grad_backward(b->g, b->dlogits, dprobs, b->grad);
}

/* ------------------------------------------------------------------ driver */
struct mr_attack_ws {
    mr_attack_batch b;
    float *fbuf;
    void *bytes;
    int *ibuf;
};

void mr_attack_ws_free(mr_attack_ws *tb)
{
    if (!tb) return;
    mr_grad_free(tb->b.g);
    mr_workspace_free(tb->b.ws);
    for (int i = 0; tb->b.rng && i < tb->b.cap; i++)
        if (tb->b.rng[i]) gsl_rng_free(tb->b.rng[i]);
    free(tb->b.rng);
    free(tb->fbuf);
    free(tb->bytes);
    free(tb->ibuf);
    free(tb);
}

static int ws_init(mr_attack_ws *tb, const mr_attack_type *t, const mr_attack_opts *o,
                   const mr_model *m, const mr_router *r)
{
    const mr_config *c = &m->cfg;
    mr_attack_batch *b = &tb->b;
    b->t = t;
    b->o = o;
    b->m = m;
    b->D = c->image_h * c->image_w * c->channels;
    b->T = c->n_pos;
    b->cap = o->batch;
    b->route_mi = route_moe_index(o, m);
    b->steps = o->steps ? o->steps : t->default_steps;
    b->eps255 = floor(o->eps * 255.0 + 1e-6);
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = b->cap;
    eo.top_k = o->top_k;
    size_t cap = b->cap, D = b->D, T = b->T;
    size_t nf = 6 * cap * D + 4 * D + cap + cap * c->n_out +
                (size_t)c->n_moe * cap * T * c->n_experts + cap;
    tb->fbuf = malloc(nf * sizeof(float));
    tb->bytes = malloc(cap * D);
    tb->ibuf = malloc((cap * T + 2 * cap) * sizeof(int));
    b->rng = calloc(cap, sizeof *b->rng);
    int rng_ok = b->rng != NULL;
    for (size_t i = 0; rng_ok && i < cap; i++) rng_ok = (b->rng[i] = gsl_rng_alloc(gsl_rng_mt19937)) != NULL;
    if (!tb->fbuf || !tb->bytes || !tb->ibuf || !rng_ok)
        return mr_error_set(MR_ENOMEM, "out of memory (attack buffers)");
    float *f = tb->fbuf;
    b->lo = f, f += cap * D;
    b->hi = f, f += cap * D;
    b->x = f, f += cap * D;
    b->in01 = f, f += cap * D;
    b->grad = f, f += cap * D;
    b->dlogits = f, f += cap * c->n_out;
    b->dprobs = f, f += (size_t)c->n_moe * cap * T * c->n_experts;
    b->val = f, f += cap;
    b->aux = f;
    b->u8 = tb->bytes;
    b->clean_top1 = tb->ibuf;
    b->queries = tb->ibuf + cap * T;
    b->img = b->queries + cap;
    MR_TRY(mr_workspace_alloc(&b->ws, m, r, &eo));
    return t->float_input ? mr_grad_alloc(&b->g, m, r, &eo) : MR_OK;
}

int mr_attack_ws_alloc(mr_attack_ws **out, const mr_attack_type *t, const mr_attack_opts *o,
                       const mr_model *m, const mr_router *r)
{
    *out = NULL;
    MR_TRY(mr_attack_opts_check(o, t, m));
    if (t->needs_gradient) MR_TRY(mr_grad_check(m, r));
    mr_attack_ws *w = calloc(1, sizeof *w);
    if (!w) return mr_error_set(MR_ENOMEM, "out of memory (attack workspace)");
    int st = ws_init(w, t, o, m, r);
    if (st != MR_OK) {
        mr_attack_ws_free(w);
        return st;
    }
    *out = w;
    return MR_OK;
}

int mr_attack_run_batch(mr_attack_ws *w, uint8_t *adv, const uint8_t *images,
                        const int32_t *labels, int nb, uint64_t first, int *queries,
                        float *objective)
{
    mr_attack_batch *b = &w->b;
    size_t D = b->D;
    MR_REQUIRE(nb >= 1 && nb <= b->cap, MR_EINPUT, "attack batch of %d exceeds %d", nb, b->cap);
    for (int i = 0; i < nb; i++)
        MR_REQUIRE(labels[i] >= 0 && labels[i] < b->m->cfg.n_out, MR_EINPUT,
                   "label %d of sample %llu is outside 0..%d", (int)labels[i],
                   (unsigned long long)(first + i), b->m->cfg.n_out - 1);
    b->B = nb;
    b->first = first;
    b->x0 = images;
    b->y = labels;
    for (size_t i = 0; i < (size_t)nb * D; i++) {
        double v = b->x0[i];
        b->lo[i] = (float)fmax(0.0, v - b->eps255);
        b->hi[i] = (float)fmin(255.0, v + b->eps255);
        b->x[i] = (float)v;
    }
    memset(b->queries, 0, (size_t)nb * sizeof(int));
    if (b->o->objective == MR_ATTACK_ROUTING) { /* the clean routing to flip */
        mr_workspace_set_first_sample(b->ws, b->first);
        MR_TRY(mr_engine_forward_images(b->ws, b->x0, nb));
        const mr_trace *tr = mr_workspace_trace(b->ws);
        for (size_t t = 0; t < (size_t)nb * b->T; t++)
            b->clean_top1[t] = tr->topk[((size_t)b->route_mi * nb * b->T + t) * tr->k];
    }
    MR_TRY(b->t->run(b));
    /* onto the grid: the ball's bounds are grid values, so rounding stays inside */
    for (size_t i = 0; i < (size_t)nb * D; i++) {
        float v = b->x[i];
        v = v < b->lo[i] ? b->lo[i] : v > b->hi[i] ? b->hi[i] : v;
        adv[i] = (uint8_t)lrintf(v);
    }
    if (objective) {
        for (int i = 0; i < nb; i++) b->img[i] = i;
        MR_TRY(mr_attack_eval_u8(b, adv, b->img, nb));
        memcpy(objective, b->val, (size_t)nb * sizeof(float));
    }
    if (queries) memcpy(queries, b->queries, (size_t)nb * sizeof(int));
    return MR_OK;
}

int mr_attack_images(const mr_attack_type *t, const mr_attack_opts *o, const mr_model *m,
                     const mr_router *r, const uint8_t *images, const int32_t *labels, int n,
                     int threads, mr_attack_out *out)
{
    MR_TRY(mr_attack_opts_check(o, t, m));
    if (t->needs_gradient) MR_TRY(mr_grad_check(m, r));
    size_t D = (size_t)m->cfg.image_h * m->cfg.image_w * m->cfg.channels;
    /* workspaces hold min(batch, n) images and no thread waits without a micro-batch
     * (issue #23 item 18: --batch 65536 on 4 images asked for 64 GiB); the micro-batches
     * are the same, so are the results. Not for spsa, whose batch is also the number of
     * perturbed copies it evaluates at once (a router with batch statistics sees them). */
    mr_attack_opts oo = *o;
    if (t != &mr_attack_spsa && n >= 1 && oo.batch > n) oo.batch = n;
    o = &oo;
    int nbatch = (n + o->batch - 1) / o->batch, st = MR_OK;
    if (threads > nbatch) threads = nbatch > 0 ? nbatch : 1;
    char msg[1024] = "";
#pragma omp parallel num_threads(threads)
    {
        mr_attack_ws *w = NULL;
        int my = mr_attack_ws_alloc(&w, t, o, m, r);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < nbatch; i++) {
            if (my != MR_OK) continue;
            int s0 = i * o->batch, nb = n - s0 < o->batch ? n - s0 : o->batch;
            my = mr_attack_run_batch(w, out->adv + s0 * D, images + s0 * D, labels + s0, nb,
                                     (uint64_t)s0, out->queries ? out->queries + s0 : NULL,
                                     out->objective ? out->objective + s0 : NULL);
        }
        if (my != MR_OK) {
#pragma omp critical(mr_attack_error)
            if (st == MR_OK) {
                st = my;
                snprintf(msg, sizeof msg, "%s", mr_error_message());
            }
        }
        mr_attack_ws_free(w);
    }
    return st == MR_OK ? MR_OK : mr_error_set(st, "%s", msg);
}
