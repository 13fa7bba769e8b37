/* ac — Adaptive Clustering router ("Tight Clusters Make Specialized Experts", ICLR 2025,
 * arXiv 2502.15315; the authors' repository Fsoft-AIC/Tight-Clusters-Make-Specialized-
 * Experts, language-modeling/custom_gates.py: COSAGate_Balance.compute_W_var with
 * --use-var --mad).
 *
 * Over a routing group (option group=seq, the default: the tokens of one sequence;
 * group=batch: all tokens of the micro-batch, as the authors' code does with its
 * forward batch).  For a causal model (task lm) the group of the token at position i
 * holds only the group's tokens at positions j <= i, the tokens the model may see
 * there, as in the similarity router: statistics over the whole window would let a
 * token's routing depend on the characters it is trained to predict.  The authors
 * evaluate AC on classification and on a language model (Switch/GLaM on WikiText-103),
 * where their forward-batch statistics do include later tokens; we do not follow that.
 *
 *   c(i)    = top-1 expert of token i at the previous MoE block (its cluster)
 *   m_kf    = mean of x_if over tokens with c(i) = k
 *   MAD_kf  = mean of |x_if - m_kf| over those tokens
 *   W_kf    = 1 / (MAD_kf + eps)                     eps = 1e-4 (option eps)
 *   W       = min(W, clamp * mean(W))                clamp = 10 (option clamp)
 *   W_kf   /= mean over clusters k of W_kf           each feature averages 1
 *   logit_ij = (x_i ⊙ W_c(i)) · e_j / ||e_j||        e = router/expert_emb, else gate rows
 *   p_i = softmax(logit_i); top-k by logit; weights = softmax over the k logits
 * The first MoE block has no previous routing and uses the softmax gate.
 *
 * Difference from the authors' code (documented in docs/routers.md): empty clusters
 * are left out of the mean of W and of the per-feature normalization. In the
 * reference they keep MAD = 0, so W = 1/eps = 1e4 inflates both means for every
 * other cluster, which makes the result depend on how many experts happen to be
 * unused in a group — an artifact, not part of the method.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_ops.h"
#include "../mr_ops_grad.h"
#include "../mr_router.h"
#include "../mr_router_grad.h"

typedef struct ac_state {
    int group_batch;
    double eps, clamp;
    float **emb; /* [n_layers] normalized expert embeddings [E, d] (MoE blocks) */
    float *buf;  /* storage of all of them */
} ac_state;

static void ac_free(void *state)
{
    ac_state *s = state;
    free(s->emb);
    free(s->buf);
}

static int ac_init(void *state, const mr_model *m, mr_router_opts *opts)
{
    ac_state *s = state;
    int L = m->cfg.n_layers, d = m->cfg.d_model, E = m->cfg.n_experts;
    s->eps = 1e-4;
    s->clamp = 10.0;
    MR_TRY(mr_router_opts_get_choice(opts, "group", "seq", "batch", &s->group_batch));
    MR_TRY(mr_router_opts_get_double(opts, "eps", 1e-12, 1.0, &s->eps));
    MR_TRY(mr_router_opts_get_double(opts, "clamp", 1.0, 1e9, &s->clamp));
    s->emb = calloc((size_t)L, sizeof *s->emb);
    s->buf = malloc((size_t)m->cfg.n_moe * E * d * sizeof *s->buf + 1);
    if (!s->emb || !s->buf) return mr_error_set(MR_ENOMEM, "out of memory");
    float *cur = s->buf;
    for (int l = 0; l < L; l++) {
        const mr_layer *ly = &m->layers[l];
        if (!ly->is_moe) continue;
        const mr_named_tensor *t = mr_layer_router_tensor(ly, "expert_emb");
        const float *src = ly->gate_w;
        if (t) {
            MR_REQUIRE(t->ndim == 2 && t->dims[0] == (size_t)E && t->dims[1] == (size_t)d,
                       MR_EINPUT, "/layers/%d/moe/router/expert_emb must be [%d, %d]", l, E, d);
            src = t->data;
        }
        s->emb[l] = cur;
        for (int e = 0; e < E; e++) {
            double nrm = 0.0;
            for (int f = 0; f < d; f++) nrm += (double)src[e * d + f] * src[e * d + f];
            nrm = sqrt(nrm);
            for (int f = 0; f < d; f++)
                cur[e * d + f] = nrm > 0.0 ? (float)(src[e * d + f] / nrm) : 0.0f;
        }
        cur += (size_t)E * d;
    }
    return MR_OK;
}

/* Per-call workspace, carved from the caller's scratch (ac_scratch floats). */
typedef struct ac_work {
    double *col;      /* [d] column sums of W */
    double *rsum;     /* [E] row sums of the inverse MADs */
    float *xs;        /* [N, d] each token's cluster weights, then the token scaled by them */
    float *W, *mean;  /* [E, d] */
    float *sum, *inv; /* [E, d] causal: running sums, 1 / (MAD + eps) */
    float *cnt;       /* [E] cluster sizes */
    int *head, *tail; /* [E] causal: member lists in arrival order, */
    int *next;        /* [N]  linked through next */
} ac_work;

static size_t ac_scratch(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    size_t E = (size_t)m->cfg.n_experts, d = (size_t)m->cfg.d_model, N = (size_t)B * T;
    return 1 + 2 * (d + E) + N * d + 4 * E * d + E + 2 * E + N; /* 1: to align doubles */
}

static ac_work ac_work_carve(float *scratch, int N, int E, int d)
{
    ac_work w;
    uintptr_t p = ((uintptr_t)scratch + sizeof(double) - 1) & ~(uintptr_t)(sizeof(double) - 1);
    w.col = (double *)p;
    w.rsum = w.col + d;
    w.xs = (float *)(w.rsum + E);
    w.W = w.xs + (size_t)N * d;
    w.mean = w.W + (size_t)E * d;
    w.sum = w.mean + (size_t)E * d;
    w.inv = w.sum + (size_t)E * d;
    w.cnt = w.inv + (size_t)E * d;
    w.head = (int *)(w.cnt + E); /* ints in float-sized slots */
    w.tail = w.head + E;
    w.next = w.tail + E;
    return w;
}

/* inv [d] = 1 / (MAD + eps) of one cluster from its sum of absolute deviations mad [d]
 * over cnt tokens (inv may be mad); returns the sum of inv (for the mean of W). */
static double inverse_mad(float *inv, const float *mad, float cnt, int d, double eps)
{
    double sum = 0.0;
    for (int f = 0; f < d; f++) {
        inv[f] = (float)(1.0 / (mad[f] / cnt + eps));
        sum += inv[f];
    }
    return sum;
}

/* Rows of w->W [E, d] from the non-empty clusters' inverse MADs inv [E, d] (may be W) and
 * their row sums w->rsum: clamped at clamp * their mean, each feature divided by its mean
 * over the clusters. Only the rows the caller reads are written: all non-empty ones (tail
 * NULL), or those of the clusters whose last token (tail[e], a row of a T-position
 * sequence) is at position t. */
static void normalize_weights(ac_work *w, const float *inv, int E, int d, double clamp,
                              const int *tail, int T, int t)
{
    double wsum = 0.0, *col = w->col;
    int nonempty = 0;
    for (int e = 0; e < E; e++)
        if (w->cnt[e] > 0) {
            nonempty++;
            wsum += w->rsum[e];
        }
    double cap = clamp * wsum / ((double)nonempty * d);
    float capf = (float)cap;
    /* column sums cluster by cluster: independent over f (a vector loop without
     * reassociation: each column is still summed in cluster order) */
    for (int f = 0; f < d; f++) col[f] = 0.0;
    for (int e = 0; e < E; e++) {
        if (w->cnt[e] == 0) continue;
        const float *v = inv + (size_t)e * d;
#pragma omp simd
        for (int f = 0; f < d; f++) col[f] += v[f] > cap ? capf : v[f];
    }
    for (int e = 0; e < E; e++) {
        if (w->cnt[e] == 0 || (tail && tail[e] % T != t)) continue;
        const float *v = inv + (size_t)e * d;
        float *o = w->W + (size_t)e * d;
#pragma omp simd
        for (int f = 0; f < d; f++) o[f] = (float)((v[f] > cap ? capf : v[f]) / (col[f] / nonempty));
    }
}

/* Cluster weights w->W [E, d] of the tokens x[s * stride + j] (s < nseq, j < npos; rows
 * of d floats) with labels lab at the same offsets: the first npos positions of nseq
 * sequences stored stride tokens apart. */
static void cluster_weights(ac_work *w, const float *x, const int *lab, int nseq, int stride,
                            int npos, int E, int d, double eps, double clamp)
{
    float *W = w->W, *mean = w->mean, *cnt = w->cnt;
    memset(mean, 0, (size_t)E * d * sizeof *mean);
    memset(W, 0, (size_t)E * d * sizeof *W);
    memset(cnt, 0, (size_t)E * sizeof *cnt);
    for (int sq = 0; sq < nseq; sq++)
        for (int j = 0; j < npos; j++) {
            size_t i = (size_t)sq * stride + j;
            cnt[lab[i]] += 1.0f;
            for (int f = 0; f < d; f++) mean[lab[i] * d + f] += x[i * d + f];
        }
    for (int e = 0; e < E; e++)
        for (int f = 0; f < d && cnt[e] > 0; f++) mean[e * d + f] /= cnt[e];
    for (int sq = 0; sq < nseq; sq++) /* W holds the MAD sums for now */
        for (int j = 0; j < npos; j++) {
            size_t i = (size_t)sq * stride + j;
            for (int f = 0; f < d; f++)
                W[lab[i] * d + f] += fabsf(x[i * d + f] - mean[lab[i] * d + f]);
        }
    for (int e = 0; e < E; e++)
        if (cnt[e] > 0) w->rsum[e] = inverse_mad(W + (size_t)e * d, W + (size_t)e * d, cnt[e], d, eps);
    normalize_weights(w, W, E, d, clamp, NULL, 1, 0);
}

/* Causal groups (task lm): the tokens of position t of nseq sequences (stride T apart,
 * from x, lab) get the weights of their clusters over positions <= t, in wt [N, d].
 * Equal to cluster_weights over positions <= t for every t, without its O(T^2 d) cost:
 * a cluster's mean and MAD change only when a token joins it, so only the clusters that
 * grow at t are summed again, over their members (linked lists, in arrival order), and
 * only their rows of W (the ones the tokens at t read) are normalized. */
static void causal_weights(ac_work *w, float *wt, const float *x, const int *lab, int nseq,
                           int T, int E, int d, double eps, double clamp)
{
    float *mean = w->mean, *sum = w->sum, *inv = w->inv, *cnt = w->cnt;
    int *head = w->head, *tail = w->tail, *next = w->next;
    memset(sum, 0, (size_t)E * d * sizeof *sum);
    memset(cnt, 0, (size_t)E * sizeof *cnt);
    for (int e = 0; e < E; e++) head[e] = tail[e] = -1;
    for (int t = 0; t < T; t++) {
        for (int sq = 0; sq < nseq; sq++) {
            int i = sq * T + t, e = lab[i];
            cnt[e] += 1.0f;
#pragma omp simd
            for (int f = 0; f < d; f++) sum[e * d + f] += x[(size_t)i * d + f];
            next[i] = -1;
            if (tail[e] < 0)
                head[e] = i;
            else
                next[tail[e]] = i;
            tail[e] = i;
        }
        for (int e = 0; e < E; e++) {
            if (tail[e] < 0 || tail[e] % T != t) continue; /* did not grow at t */
            float *me = mean + (size_t)e * d, *ad = inv + (size_t)e * d;
            for (int f = 0; f < d; f++) me[f] = sum[e * d + f] / cnt[e];
            memset(ad, 0, (size_t)d * sizeof *ad);
            for (int i = head[e]; i >= 0; i = next[i]) {
                const float *xi = x + (size_t)i * d;
#pragma omp simd
                for (int f = 0; f < d; f++) ad[f] += fabsf(xi[f] - me[f]);
            }
            w->rsum[e] = inverse_mad(ad, ad, cnt[e], d, eps);
        }
        /* the rows of the clusters that grew at t: those of the tokens at t */
        normalize_weights(w, inv, E, d, clamp, tail, T, t);
        for (int sq = 0; sq < nseq; sq++) {
            size_t i = (size_t)sq * T + t;
            const float *wr = w->W + (size_t)lab[i] * d;
#pragma omp simd
            for (int f = 0; f < d; f++) wt[i * d + f] = wr[f];
        }
    }
}

/* wt [N, d]: each token's cluster weights W_c(i) (the rows that scale it), for the
 * previous block's top-1 labels lab [N] (ac_route's groups). */
static void token_weights(const ac_state *s, const mr_route_ctx *c, ac_work *w, const int *lab,
                          float *wt)
{
    const mr_config *cfg = &c->model->cfg;
    int B = c->B, T = c->T, d = cfg->d_model, E = cfg->n_experts;
    /* groups: nseq sequences each (1, or all B with group=batch) */
    int nseq = s->group_batch ? B : 1;
    for (int b0 = 0; b0 < B; b0 += nseq) {
        const float *xg = c->x + (size_t)b0 * T * d;
        const int *lg = lab + (size_t)b0 * T;
        float *wg = wt + (size_t)b0 * T * d;
        if (cfg->task == MR_TASK_LM) { /* position t: the clusters of positions <= t */
            causal_weights(w, wg, xg, lg, nseq, T, E, d, s->eps, s->clamp);
            continue;
        }
        cluster_weights(w, xg, lg, nseq, T, T, E, d, s->eps, s->clamp);
        for (int i = 0; i < nseq * T; i++)
            memcpy(wg + (size_t)i * d, w->W + (size_t)lg[i] * d, (size_t)d * sizeof *wg);
    }
}

static int ac_route(const void *state, const mr_route_ctx *c, float *probs, int *topk,
                    float *weights)
{
    const ac_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    int B = c->B, T = c->T, N = B * T, d = cfg->d_model, E = cfg->n_experts, k = c->k;
    if (!c->prev_topk) { /* first MoE block: the authors' architectures use the plain gate */
        mr_route_softmax_gate(probs, topk, weights, c->x, ly, N, d, E, k, MR_GATE_RENORM);
        return MR_OK;
    }
    ac_work w = ac_work_carve(c->scratch, N, E, d);
    /* the previous block's top-1 labels, kept in our topk output (N <= N*k slots): they
     * are all read before the first top-k below is written */
    int *labels = topk;
    for (int i = 0; i < N; i++) labels[i] = c->prev_topk[(size_t)i * c->prev_k];
    token_weights(s, c, &w, labels, w.xs);
    for (size_t i = 0; i < (size_t)N * d; i++) w.xs[i] *= c->x[i]; /* x_i ⊙ W_c(i) */
    mr_linear_forward(probs, w.xs, s->emb[c->layer], NULL, N, d, E); /* logits [N, E] */
    mr_route_from_logits(probs, topk, weights, N, E, k, MR_GATE_RENORM);
    return MR_OK;
}

static size_t ac_grad_scratch(const void *state, const mr_model *m, int B, int T)
{
    return ac_scratch(state, m, B, T) + (size_t)B * T * ((size_t)m->cfg.d_model + 1);
}

/* logit_ij = (x_i ⊙ W_c(i)) . e_j / |e_j|: the cluster weights W are computed under
 * torch.no_grad() in the reference (as in the authors' code), so the gradient reaches x
 * only through the product, dx = (dlogits e_n) ⊙ W_c(i). The first block's plain gate
 * renormalizes its weights whatever gate_norm is. */
static int ac_backward(const void *state, const mr_route_ctx *c, const mr_route_grad *g)
{
    const ac_state *s = state;
    const mr_config *cfg = &c->model->cfg;
    const mr_layer *ly = &c->model->layers[c->layer];
    int N = c->B * c->T, d = cfg->d_model, E = cfg->n_experts, k = c->k;
    if (!c->prev_topk) {
        mr_route_linear_gate_backward(g, ly->gate_w, N, d, E, k, MR_GATE_RENORM);
        return MR_OK;
    }
    ac_work w = ac_work_carve(c->scratch, N, E, d);
    float *dxs = c->scratch + ac_scratch(state, c->model, c->B, c->T); /* [N, d] */
    int *labels = (int *)(dxs + (size_t)N * d);                       /* [N] */
    for (int i = 0; i < N; i++) labels[i] = c->prev_topk[(size_t)i * c->prev_k];
    token_weights(s, c, &w, labels, w.xs);
    mr_route_weights_backward(g->dprobs, g->probs, g->topk, g->dweights, N, E, k,
                              MR_GATE_RENORM);
    mr_route_softmax_backward(g->dprobs, g->probs, N, E);
    memset(dxs, 0, (size_t)N * d * sizeof *dxs);
    mr_linear_backward(dxs, g->dprobs, s->emb[c->layer], N, d, E);
    for (size_t i = 0; i < (size_t)N * d; i++) g->dx[i] += dxs[i] * w.xs[i];
    return MR_OK;
}

const mr_router_type mr_router_ac = {
    .name = "ac",
    .summary = "Adaptive Clustering (COSAGate + MAD): cluster-weighted cosine routing",
    /* lifecycle; forward; backward (analysis/mr_router.h) */
    .state_size = sizeof(ac_state), .init = ac_init, .free = ac_free,
    .scratch_floats = ac_scratch, .route = ac_route,
    .grad_scratch_floats = ac_grad_scratch, .route_backward = ac_backward,
};
