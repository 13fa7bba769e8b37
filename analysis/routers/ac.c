/* ac — Adaptive Clustering router ("Tight Clusters Make Specialized Experts", ICLR 2025,
 * arXiv 2502.15315; the authors' COSAGate_Balance.compute_W_var with --use-var --mad,
 * as summarized in shared/research/routers.md).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_ops.h"
#include "../mr_router.h"

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
    char buf[MR_NAME_LEN];
    int found;
    MR_TRY(mr_router_opts_get_string(opts, "group", buf, sizeof buf, &found));
    if (found) {
        if (strcmp(buf, "seq") == 0)
            s->group_batch = 0;
        else if (strcmp(buf, "batch") == 0)
            s->group_batch = 1;
        else
            return mr_error_set(MR_EINPUT, "router option group=%s must be seq or batch", buf);
    }
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

static size_t ac_scratch(const void *state, const mr_model *m, int B, int T)
{
    (void)state;
    size_t E = (size_t)m->cfg.n_experts, d = (size_t)m->cfg.d_model;
    return 2 * E * d + E + (size_t)B * T * d;
}

/* Cluster weights W [E, d] of the tokens x[s * stride + j] (s < nseq, j < npos; rows of
 * d floats) with labels lab at the same offsets: the first npos positions of nseq
 * sequences stored stride tokens apart. */
static void cluster_weights(float *W, float *mean, float *cnt, const float *x, const int *lab,
                            int nseq, int stride, int npos, int E, int d, double eps,
                            double clamp)
{
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
    double wsum = 0.0;
    int nonempty = 0;
    for (int e = 0; e < E; e++) {
        if (cnt[e] == 0) continue;
        nonempty++;
        for (int f = 0; f < d; f++) {
            W[e * d + f] = (float)(1.0 / (W[e * d + f] / cnt[e] + eps));
            wsum += W[e * d + f];
        }
    }
    double cap = clamp * wsum / ((double)nonempty * d);
    for (int f = 0; f < d; f++) {
        double col = 0.0;
        for (int e = 0; e < E; e++)
            if (cnt[e] > 0) {
                if (W[e * d + f] > cap) W[e * d + f] = (float)cap;
                col += W[e * d + f];
            }
        col /= nonempty;
        for (int e = 0; e < E; e++)
            if (cnt[e] > 0) W[e * d + f] = (float)(W[e * d + f] / col);
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
    float *W = c->scratch, *mean = W + (size_t)E * d, *cnt = mean + (size_t)E * d;
    float *xs = cnt + E; /* [N, d] tokens scaled by their cluster's weights */
    /* the previous block's top-1 labels, kept in our topk output (N <= N*k slots): they
     * are all read before the first top-k below is written */
    int *labels = topk;
    for (int i = 0; i < N; i++) labels[i] = c->prev_topk[(size_t)i * c->prev_k];
    /* groups: nseq sequences each (1, or all B with group=batch) */
    int nseq = s->group_batch ? B : 1, causal = cfg->task == MR_TASK_LM;
    for (int b0 = 0; b0 < B; b0 += nseq) {
        const float *xg = c->x + (size_t)b0 * T * d;
        const int *lg = labels + (size_t)b0 * T;
        /* causal: the weights of position t from positions <= t (O(T^2 d) per group,
         * small next to the block's own cost); otherwise one set for all positions */
        for (int t = causal ? 0 : T - 1; t < T; t++) {
            cluster_weights(W, mean, cnt, xg, lg, nseq, T, t + 1, E, d, s->eps, s->clamp);
            for (int sq = 0; sq < nseq; sq++)
                for (int j = causal ? t : 0; j <= t; j++) {
                    size_t i = (size_t)(b0 + sq) * T + j;
                    for (int f = 0; f < d; f++)
                        xs[i * d + f] = c->x[i * d + f] * W[labels[i] * d + f];
                }
        }
    }
    mr_linear_forward(probs, xs, s->emb[c->layer], NULL, N, d, E); /* logits [N, E] */
    mr_route_from_logits(probs, topk, weights, N, E, k, MR_GATE_RENORM);
    return MR_OK;
}

const mr_router_type mr_router_ac = {
    .name = "ac",
    .summary = "Adaptive Clustering (COSAGate + MAD): cluster-weighted cosine routing",
    .state_size = sizeof(ac_state),
    .init = ac_init,
    .scratch_floats = ac_scratch,
    .route = ac_route,
    .free = ac_free,
};
