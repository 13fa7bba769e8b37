/* Expert compression: statistics, grouping (mr_compress_group.c), alignment and
 * merging, the optional low-rank + sparse step (mr_compress_lowrank.c), and the
 * compressed model. */
#include "mr_compress.h"

#include <gsl/gsl_cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mr_assign.h"
#include "mr_compress_impl.h"
#include "mr_error.h"

void mr_compress_opts_init(mr_compress_opts *o)
{
    memset(o, 0, sizeof *o);
    o->rank = MR_COMPRESS_DEFAULT_RANK;
    o->sparse_keep = MR_COMPRESS_DEFAULT_SPARSE_KEEP;
}

/* Routers whose routing is a function of the gate's logits W_g x + b (docs/routers.md):
 * a masked gate row removes an expert from them. */
static int gate_router(const char *name)
{
    static const char *const gate[] = {"softmax", "similarity", "attention", "momentum", "s2moe",
                                       NULL};
    for (int i = 0; gate[i]; i++)
        if (strcmp(name, gate[i]) == 0) return 1;
    return 0;
}

static int moe_index_of(const mr_model *m, int block)
{
    for (int i = 0; i < m->cfg.n_moe; i++)
        if (m->cfg.moe_layers[i] == block) return i;
    return -1;
}

int mr_compress_check(const mr_model *m, const mr_compress_type *t, const mr_compress_opts *o)
{
    const mr_config *c = &m->cfg;
    const char *p = m->path;
    MR_REQUIRE(c->n_moe >= 1, MR_EINPUT,
               "%s: the model has no MoE layers (moe_layers is empty): nothing to compress", p);
    /* the experts here are format 1's (act(x w1 + b1) w2 + b2, [E, h, d]); SwiGLU experts
     * of format 2 ([E, 2h, d], gate and up), shared experts and absent biases are not
     * handled yet */
    MR_REQUIRE(c->format_version == 1, MR_EINPUT,
               "%s: a format 2 model (docs/model-format.md, e.g. an import of docs/import.md) "
               "cannot be compressed yet", p);
    int K = o->experts, E = c->n_experts;
    MR_REQUIRE(K >= 1, MR_EINPUT, "%s: K = %d experts kept (--experts): must be positive",
               p, K);
    MR_REQUIRE(K <= E, MR_EINPUT, "%s: K = %d is more than the model's %d experts per MoE layer",
               p, K, E);
    MR_REQUIRE(K >= c->top_k, MR_EINPUT,
               "%s: K = %d is fewer than the model's top_k = %d (each token needs top_k "
               "distinct experts)",
               p, K, c->top_k);
    for (int i = 0; i < o->n_layers; i++) {
        MR_REQUIRE(moe_index_of(m, o->layers[i]) >= 0, MR_EINPUT,
                   "%s: --layers: block %d is not an MoE block", p, o->layers[i]);
        for (int j = 0; j < i; j++)
            MR_REQUIRE(o->layers[j] != o->layers[i], MR_EINPUT, "%s: --layers: block %d given twice",
                       p, o->layers[i]);
    }
    if (t->low_rank) {
        int mx = c->d_model < c->expert_hidden ? c->d_model : c->expert_hidden;
        MR_REQUIRE(o->rank >= 1 && o->rank <= mx, MR_EINPUT,
                   "%s: --rank %d must be in 1..%d (the smaller side of an expert matrix)", p,
                   o->rank, mx);
        MR_REQUIRE(o->sparse_keep >= 0.0 && o->sparse_keep <= 1.0, MR_EINPUT,
                   "%s: --sparse-keep %g must be in [0, 1]", p, o->sparse_keep);
    }
    int slots = o->n_layers > 0 && o->n_layers < c->n_moe;
    MR_REQUIRE(!slots || t->merge || gate_router(c->router), MR_EINPUT,
               "%s: --layers with %s keeps %d expert slots and masks the dropped experts in the "
               "gate (W_g, b), which the model's router '%s' does not route with: compress every "
               "MoE layer instead",
               p, t->name, E, c->router);
    return MR_OK;
}

/* ---- grouping of one block ------------------------------------------------------ */

typedef struct block_plan {
    int block, mi;      /* block index, MoE index */
    int *group_of;      /* [E] */
    int *rep;           /* [K] */
    double *freq;       /* [E] */
    float *w1, *b1, *w2, *b2; /* [K,h,d], [K,h], [K,d,h], [K,d] the new experts */
} block_plan;

/* Renumber the groups by ascending representative, so that pruning to E experts (and
 * merging into E singletons) keeps every expert at its index. Checks the method's
 * output: K non-empty groups, each representative a member. */
static int normalize_groups(int *group_of, int *rep, int E, int K, const char *method)
{
    int *order = malloc((size_t)K * sizeof *order), *newid = malloc((size_t)K * sizeof *newid);
    int *size = calloc((size_t)K, sizeof *size);
    int st = order && newid && size ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int e = 0; st == MR_OK && e < E; e++) {
        if (group_of[e] < -1 || group_of[e] >= K)
            st = mr_error_set(MR_EFAILED, "internal: %s put expert %d in group %d of %d", method,
                              e, group_of[e], K);
        else if (group_of[e] >= 0)
            size[group_of[e]]++;
    }
    for (int g = 0; st == MR_OK && g < K; g++)
        if (size[g] == 0 || rep[g] < 0 || rep[g] >= E || group_of[rep[g]] != g)
            st = mr_error_set(MR_EFAILED, "internal: %s made an empty group or a foreign "
                              "representative (group %d)", method, g);
    if (st == MR_OK) {
        for (int g = 0; g < K; g++) order[g] = g;
        for (int a = 1; a < K; a++) /* insertion sort of the groups by representative */
            for (int b = a; b > 0 && rep[order[b]] < rep[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        int *r2 = size; /* reuse: the representatives in the new order */
        for (int g = 0; g < K; g++) {
            newid[order[g]] = g;
            r2[g] = rep[order[g]];
        }
        memcpy(rep, r2, (size_t)K * sizeof *rep);
        for (int e = 0; e < E; e++)
            if (group_of[e] >= 0) group_of[e] = newid[group_of[e]];
    }
    free(order);
    free(newid);
    free(size);
    return st;
}

static int plan_block(block_plan *bp, const mr_model *m, const mr_calib *c,
                      const mr_compress_type *t, int K)
{
    int E = m->cfg.n_experts;
    const mr_layer *L = &m->layers[bp->block];
    int64_t *counts = malloc((size_t)E * sizeof *counts);
    double *sim = t->needs & MR_COMPRESS_NEED_SIM ? malloc((size_t)E * E * sizeof *sim) : NULL;
    double *sal = t->needs & MR_COMPRESS_NEED_REAP ? malloc((size_t)E * sizeof *sal) : NULL;
    int st = counts && (sim || !(t->needs & MR_COMPRESS_NEED_SIM)) &&
                     (sal || !(t->needs & MR_COMPRESS_NEED_REAP))
                 ? MR_OK
                 : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        mr_calib_counts(counts, c, bp->mi);
        int64_t tot = 0;
        for (int e = 0; e < E; e++) tot += counts[e];
        for (int e = 0; e < E; e++) bp->freq[e] = tot > 0 ? (double)counts[e] / (double)tot : 0.0;
    }
    if (st == MR_OK && sim) st = mr_calib_logit_similarity(sim, c, L, bp->mi);
    if (st == MR_OK && sal) st = mr_calib_reap(sal, c, m, L, bp->mi);
    if (st == MR_OK) {
        mr_compress_stats s = {E, K, bp->block, counts, bp->freq, sim, sal};
        st = t->group(bp->group_of, bp->rep, &s);
    }
    if (st == MR_OK) st = normalize_groups(bp->group_of, bp->rep, E, K, t->name);
    free(counts);
    free(sim);
    free(sal);
    return st;
}

/* ---- alignment and merging ------------------------------------------------------- */

int mr_compress_align(float *w1, float *b1, float *w2, const mr_layer *Lr, int ref,
                      const mr_layer *Lm, int mem, const mr_config *cfg)
{
    int h = cfg->expert_hidden, d = cfg->d_model;
    const float *r1 = Lr->exp_w1 + (size_t)ref * h * d, *m1 = Lm->exp_w1 + (size_t)mem * h * d;
    const float *r2 = Lr->exp_w2 + (size_t)ref * d * h, *m2 = Lm->exp_w2 + (size_t)mem * d * h;
    const float *rb = Lr->exp_b1 + (size_t)ref * h, *mb = Lm->exp_b1 + (size_t)mem * h;
    size_t hd = (size_t)h * d;
    double *A = malloc(hd * sizeof *A), *B = malloc(hd * sizeof *B);
    double *C = malloc((size_t)h * h * sizeof *C);
    int *perm = malloc((size_t)h * sizeof *perm);
    mr_assign_workspace *ws = NULL;
    int st = A && B && C && perm ? mr_assign_workspace_alloc(&ws, h)
                                 : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        /* C[a,b] = <W1_ref[a,:], W1_mem[b,:]> + <W2_ref[:,a], W2_mem[:,b]> + b1_ref[a] b1_mem[b] */
        for (size_t i = 0; i < hd; i++) A[i] = r1[i], B[i] = m1[i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, h, h, d, 1.0, A, d, B, d, 0.0, C, h);
        for (size_t i = 0; i < hd; i++) A[i] = r2[i], B[i] = m2[i]; /* [d, h] */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, h, d, 1.0, A, h, B, h, 1.0, C, h);
        for (int a = 0; a < h; a++)
            for (int b = 0; b < h; b++) C[(size_t)a * h + b] += (double)rb[a] * mb[b];
        st = mr_assign_solve(perm, NULL, C, h, 1, ws);
    }
    if (st == MR_OK)
        for (int a = 0; a < h; a++) {
            int s = perm[a]; /* the member's neuron matched to the reference's neuron a */
            memcpy(w1 + (size_t)a * d, m1 + (size_t)s * d, (size_t)d * sizeof *w1);
            b1[a] = mb[s];
            for (int j = 0; j < d; j++) w2[(size_t)j * h + a] = m2[(size_t)j * h + s];
        }
    mr_assign_workspace_free(ws);
    free(A), free(B), free(C), free(perm);
    return st;
}

/* acc[n] += f * (x[n] - ref[n]) */
static void add_dev(double *acc, const float *x, const float *ref, size_t n, double f)
{
    for (size_t i = 0; i < n; i++) acc[i] += f * ((double)x[i] - (double)ref[i]);
}

static void to_float(float *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

static void from_float(double *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

/* New expert g of a block: its representative, or the frequency-weighted average of the
 * aligned members, W = sum_i f_i W_i / sum_i f_i (MC-SMoE
 * `_merge_mlp_experts_by_usage_frequency_weighting`). It is computed as
 * W_rep + sum_{i != rep} (f_i / F)(W_i - W_rep), the same average written so that
 * members equal to the representative leave it exactly unchanged. A group nobody used
 * (F = 0) is averaged uniformly. */
static int build_expert(block_plan *bp, const mr_model *m, int g, int merge)
{
    const mr_config *c = &m->cfg;
    const mr_layer *L = &m->layers[bp->block];
    int E = c->n_experts, h = c->expert_hidden, d = c->d_model, r = bp->rep[g];
    size_t hd = (size_t)h * d;
    float *o1 = bp->w1 + g * hd, *ob1 = bp->b1 + (size_t)g * h;
    float *o2 = bp->w2 + g * hd, *ob2 = bp->b2 + (size_t)g * d;
    memcpy(o1, L->exp_w1 + r * hd, hd * sizeof *o1);
    memcpy(ob1, L->exp_b1 + (size_t)r * h, (size_t)h * sizeof *ob1);
    memcpy(o2, L->exp_w2 + r * hd, hd * sizeof *o2);
    memcpy(ob2, L->exp_b2 + (size_t)r * d, (size_t)d * sizeof *ob2);
    int n = 0;
    double F = 0.0;
    for (int e = 0; e < E; e++)
        if (bp->group_of[e] == g) n++, F += bp->freq[e];
    if (!merge || n == 1) return MR_OK;
    size_t tot = 2 * hd + (size_t)h + (size_t)d;
    double *acc = malloc(tot * sizeof *acc);
    float *p1 = malloc(hd * sizeof *p1), *pb1 = malloc((size_t)h * sizeof *pb1);
    float *p2 = malloc(hd * sizeof *p2);
    int st = acc && p1 && pb1 && p2 ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        from_float(acc, o1, hd);
        from_float(acc + hd, ob1, (size_t)h);
        from_float(acc + hd + h, o2, hd);
        from_float(acc + 2 * hd + h, ob2, (size_t)d);
    }
    for (int e = 0; st == MR_OK && e < E; e++) {
        if (bp->group_of[e] != g || e == r) continue;
        double f = F > 0.0 ? bp->freq[e] / F : 1.0 / n;
        st = mr_compress_align(p1, pb1, p2, L, r, L, e, c);
        if (st != MR_OK) break;
        add_dev(acc, p1, o1, hd, f);
        add_dev(acc + hd, pb1, ob1, (size_t)h, f);
        add_dev(acc + hd + h, p2, o2, hd, f);
        add_dev(acc + 2 * hd + h, L->exp_b2 + (size_t)e * d, ob2, (size_t)d, f);
    }
    if (st == MR_OK) {
        to_float(o1, acc, hd);
        to_float(ob1, acc + hd, (size_t)h);
        to_float(o2, acc + hd + h, hd);
        to_float(ob2, acc + 2 * hd + h, (size_t)d);
    }
    free(acc), free(p1), free(pb1), free(p2);
    return st;
}

/* ---- the compressed model -------------------------------------------------------- */

/* Router tensors whose first axis is the expert (docs/routers.md): a compressed block
 * keeps its representatives' rows. Every other router tensor is copied unchanged. */
static int per_expert_tensor(const mr_named_tensor *t, int E)
{
    static const char *const names[] = {"expert_emb", "random_w", "random_b", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(t->name, names[i]) == 0) return t->ndim >= 1 && (int)t->dims[0] == E;
    return 0;
}

static void copy_f(float *dst, const float *src, size_t n)
{
    if (n) memcpy(dst, src, n * sizeof *dst);
}

/* Everything outside the MoE blocks' gates, experts and router tensors. */
static void copy_common(mr_model *o, const mr_model *m)
{
    const mr_config *c = &m->cfg;
    size_t d = (size_t)c->d_model, F = (size_t)c->d_ff;
    if (c->task == MR_TASK_CLASSIFY) {
        copy_f(o->patch_w, m->patch_w, d * (size_t)(c->patch * c->patch * c->channels));
        copy_f(o->patch_b, m->patch_b, d);
        if (c->pool == MR_POOL_CLS) copy_f(o->cls, m->cls, d);
    } else {
        copy_f(o->tok, m->tok, (size_t)c->vocab_size * d);
        memcpy(o->vocab, m->vocab, (size_t)c->vocab_size * sizeof *o->vocab);
    }
    copy_f(o->pos, m->pos, (size_t)c->n_pos * d);
    for (int l = 0; l < c->n_layers; l++) {
        mr_layer *a = &o->layers[l];
        const mr_layer *b = &m->layers[l];
        copy_f(a->ln1_w, b->ln1_w, d), copy_f(a->ln1_b, b->ln1_b, d);
        copy_f(a->attn_qkv_w, b->attn_qkv_w, 3 * d * d), copy_f(a->attn_qkv_b, b->attn_qkv_b, 3 * d);
        copy_f(a->attn_out_w, b->attn_out_w, d * d), copy_f(a->attn_out_b, b->attn_out_b, d);
        copy_f(a->ln2_w, b->ln2_w, d), copy_f(a->ln2_b, b->ln2_b, d);
        if (!b->is_moe) {
            copy_f(a->ffn_w1, b->ffn_w1, F * d), copy_f(a->ffn_b1, b->ffn_b1, F);
            copy_f(a->ffn_w2, b->ffn_w2, d * F), copy_f(a->ffn_b2, b->ffn_b2, d);
        }
    }
    copy_f(o->head_ln_w, m->head_ln_w, d), copy_f(o->head_ln_b, m->head_ln_b, d);
    copy_f(o->head_w, m->head_w, (size_t)c->n_out * d);
    copy_f(o->head_b, m->head_b, (size_t)c->n_out);
}

/* Expert slot `dst` of block a = expert `src` of the given tensors (b: source block). */
static void put_expert(mr_layer *a, int dst, const float *w1, const float *b1, const float *w2,
                       const float *b2, int src, const mr_config *c)
{
    size_t h = (size_t)c->expert_hidden, d = (size_t)c->d_model;
    copy_f(a->exp_w1 + dst * h * d, w1 + src * h * d, h * d);
    copy_f(a->exp_b1 + dst * h, b1 + src * h, h);
    copy_f(a->exp_w2 + dst * d * h, w2 + src * d * h, d * h);
    copy_f(a->exp_b2 + dst * d, b2 + src * d, d);
}

/* Gate, experts and router tensors of one MoE block of the output. bp: its plan, or NULL
 * for a block left as it is (slot form). */
static void fill_block(mr_layer *a, const mr_layer *b, const block_plan *bp, int Eo, int slots,
                       float **extra, const mr_config *c)
{
    size_t d = (size_t)c->d_model;
    int E = c->n_experts;
    a->has_gate_b = b->has_gate_b;
    for (int e = 0; e < Eo; e++) {
        /* slot e holds: K form: new expert e with its representative's router row;
         * slot form: original expert e's row and its group's expert (or nothing) */
        int grp = !bp ? -2 : slots ? bp->group_of[e] : e;
        int row = bp && !slots ? bp->rep[e] : e;
        copy_f(a->gate_w + e * d, b->gate_w + row * d, d);
        a->gate_b[e] = b->gate_b[row];
        if (grp == -2)
            put_expert(a, e, b->exp_w1, b->exp_b1, b->exp_w2, b->exp_b2, e, c);
        else if (grp >= 0)
            put_expert(a, e, bp->w1, bp->b1, bp->w2, bp->b2, grp, c);
        else { /* a dropped expert in slot form: masked out of the gate, zero weights */
            memset(a->gate_w + e * d, 0, d * sizeof(float));
            a->gate_b[e] = -1e4f; /* exp(-1e4 - max) underflows: probability exactly 0 */
            a->has_gate_b = 1;
        }
    }
    a->n_router_tensors = b->n_router_tensors;
    for (int i = 0; i < b->n_router_tensors; i++) {
        const mr_named_tensor *s = &b->router_tensors[i];
        mr_named_tensor *t = &a->router_tensors[i];
        *t = *s;
        t->data = *extra;
        if (bp && !slots && per_expert_tensor(s, E)) {
            size_t row = s->size / s->dims[0];
            t->dims[0] = (size_t)Eo;
            t->size = row * (size_t)Eo;
            for (int g = 0; g < Eo; g++) copy_f(t->data + g * row, s->data + bp->rep[g] * row, row);
        } else {
            copy_f(t->data, s->data, s->size);
        }
        *extra += t->size;
    }
}

static int build_model(mr_model **out, const mr_model *m, block_plan *plans, int np, int Eo,
                       int slots)
{
    mr_config cfg = m->cfg;
    cfg.n_experts = Eo;
    size_t extra = 0;
    for (int l = 0; l < cfg.n_layers; l++)
        for (int i = 0; m->layers[l].is_moe && i < m->layers[l].n_router_tensors; i++)
            extra += m->layers[l].router_tensors[i].size; /* an upper bound (Eo <= E) */
    MR_TRY(mr_model_alloc(out, &cfg, extra));
    mr_model *o = *out;
    copy_common(o, m);
    float *cur = o->arena + o->n_params;
    for (int l = 0; l < cfg.n_layers; l++) {
        if (!m->layers[l].is_moe) continue;
        /* router_tensors is an array the model owns (mr_model_free frees it) */
        int nt = m->layers[l].n_router_tensors;
        if (nt > 0 && !(o->layers[l].router_tensors = calloc((size_t)nt, sizeof(mr_named_tensor)))) {
            mr_model_free(o);
            *out = NULL;
            return mr_error_set(MR_ENOMEM, "out of memory");
        }
        const block_plan *bp = NULL;
        for (int i = 0; i < np; i++)
            if (plans[i].block == l) bp = &plans[i];
        fill_block(&o->layers[l], &m->layers[l], bp, Eo, slots, &cur, &m->cfg);
    }
    o->n_arena = (size_t)(cur - o->arena);
    return MR_OK;
}

void mr_compress_result_free(mr_compress_result *res)
{
    if (!res) return;
    mr_model_free(res->model);
    free(res->layers);
    free(res->group_of);
    free(res->rep);
    free(res->freq);
    memset(res, 0, sizeof *res);
}

static void free_plans(block_plan *p, int n)
{
    for (int i = 0; p && i < n; i++) {
        free(p[i].w1), free(p[i].b1), free(p[i].w2), free(p[i].b2);
    }
    free(p);
}

int mr_compress_run(mr_compress_result *res, const mr_model *m, const mr_calib *c,
                    const mr_compress_type *t, const mr_compress_opts *o)
{
    memset(res, 0, sizeof *res);
    MR_TRY(mr_compress_check(m, t, o));
    const mr_config *cfg = &m->cfg;
    int E = cfg->n_experts, K = o->experts, h = cfg->expert_hidden, d = cfg->d_model;
    MR_REQUIRE(c->n_moe == cfg->n_moe && c->E == E && c->d == d, MR_EINPUT,
               "%s: the calibration statistics are of another model", m->path);
    int np = o->n_layers > 0 ? o->n_layers : cfg->n_moe;
    res->E = E;
    res->K = K;
    res->slots = np < cfg->n_moe;
    res->n_layers = np;
    res->param_ratio = 1.0;
    res->layers = malloc((size_t)np * sizeof *res->layers);
    res->group_of = malloc((size_t)np * E * sizeof *res->group_of);
    res->rep = malloc((size_t)np * K * sizeof *res->rep);
    res->freq = malloc((size_t)np * E * sizeof *res->freq);
    block_plan *plans = calloc((size_t)np, sizeof *plans);
    int st = res->layers && res->group_of && res->rep && res->freq && plans
                 ? MR_OK
                 : mr_error_set(MR_ENOMEM, "out of memory");
    /* the compressed blocks in model order, whatever the order of --layers */
    for (int i = 0; st == MR_OK && i < np; i++) {
        int v = o->n_layers > 0 ? o->layers[i] : cfg->moe_layers[i], j = i;
        for (; j > 0 && res->layers[j - 1] > v; j--) res->layers[j] = res->layers[j - 1];
        res->layers[j] = v;
    }
    for (int i = 0; st == MR_OK && i < np; i++) {
        int block = res->layers[i];
        block_plan *bp = &plans[i];
        bp->block = block;
        bp->mi = moe_index_of(m, block);
        bp->group_of = res->group_of + (size_t)i * E;
        bp->rep = res->rep + (size_t)i * K;
        bp->freq = res->freq + (size_t)i * E;
        size_t hd = (size_t)h * d;
        bp->w1 = malloc((size_t)K * hd * sizeof(float));
        bp->b1 = malloc((size_t)K * h * sizeof(float));
        bp->w2 = malloc((size_t)K * hd * sizeof(float));
        bp->b2 = malloc((size_t)K * d * sizeof(float));
        if (!bp->w1 || !bp->b1 || !bp->w2 || !bp->b2) st = mr_error_set(MR_ENOMEM, "out of memory");
        if (st == MR_OK) st = plan_block(bp, m, c, t, K);
        for (int g = 0; st == MR_OK && g < K; g++) st = build_expert(bp, m, g, t->merge);
    }
    if (st == MR_OK && t->low_rank) {
        mr_lowrank_opts lo = {o->rank, o->sparse_keep};
        float **mats = malloc((size_t)np * K * 2 * sizeof *mats);
        int *rows = malloc((size_t)np * K * 2 * sizeof *rows);
        int *cols = malloc((size_t)np * K * 2 * sizeof *cols);
        if (!mats || !rows || !cols) st = mr_error_set(MR_ENOMEM, "out of memory");
        for (int i = 0; st == MR_OK && i < np; i++)
            for (int g = 0; g < K; g++) {
                int j = (i * K + g) * 2;
                mats[j] = plans[i].w1 + (size_t)g * h * d, rows[j] = h, cols[j] = d;
                mats[j + 1] = plans[i].w2 + (size_t)g * d * h, rows[j + 1] = d, cols[j + 1] = h;
            }
        if (st == MR_OK) st = mr_lowrank_sparse(mats, rows, cols, np * K * 2, &lo, &res->param_ratio);
        free(mats), free(rows), free(cols);
    }
    if (st == MR_OK) st = build_model(&res->model, m, plans, np, res->slots ? E : K, res->slots);
    free_plans(plans, np);
    if (st != MR_OK) mr_compress_result_free(res);
    return st;
}

char *mr_compress_groups_string(const mr_compress_result *res)
{
    size_t cap = 64 + (size_t)res->n_layers * ((size_t)res->E * 12 + (size_t)res->K * 4 + 16);
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t n = 0;
    s[0] = '\0';
    for (int i = 0; i < res->n_layers; i++) {
        const int *grp = res->group_of + (size_t)i * res->E, *rep = res->rep + (size_t)i * res->K;
        n += (size_t)snprintf(s + n, cap - n, "%s%d:", i ? "; " : "", res->layers[i]);
        for (int g = 0; g < res->K; g++) {
            n += (size_t)snprintf(s + n, cap - n, " {%d", rep[g]);
            for (int e = 0; e < res->E; e++)
                if (grp[e] == g && e != rep[g]) n += (size_t)snprintf(s + n, cap - n, ",%d", e);
            n += (size_t)snprintf(s + n, cap - n, "}");
        }
    }
    return s;
}
