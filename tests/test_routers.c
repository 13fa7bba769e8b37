/* Known answers for the routers from the literature (analysis/routers/, docs/routers.md). */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/mr_engine.h"
#include "analysis/mr_error.h"
#include "analysis/mr_ops.h"
#include "io/mr_h5.h"
#include "io/mr_model_io.h"
#include "mr_test_tmp.h"
#include "mr_test_util.h"

enum { D = 4, E = 3, T = 4 };

/* A hand-made one-block MoE "model" for calling route() directly. */
typedef struct hand {
    mr_model m;
    mr_layer layer;
    int moe_layers[1];
    float gate_w[E * D], gate_b[E];
} hand;

static void hand_init(hand *h, int task)
{
    memset(h, 0, sizeof *h);
    for (int e = 0; e < E; e++)
        for (int f = 0; f < D; f++) h->gate_w[e * D + f] = (float)((e + 1) * (f % 2 ? 1 : -1)) * 0.3f + (e == f);
    h->layer.is_moe = 1;
    h->layer.gate_w = h->gate_w;
    h->layer.gate_b = h->gate_b;
    h->moe_layers[0] = 0;
    h->m.layers = &h->layer;
    h->m.cfg = (mr_config){.task = task, .d_model = D, .n_layers = 1, .n_heads = 1,
                           .n_experts = E, .top_k = 2, .gate_norm = MR_GATE_RENORM, .n_moe = 1,
                           .moe_layers = h->moe_layers};
    strcpy(h->m.path, "hand-made");
}

/* Orthogonal tokens of equal norm: x_t = 2 * unit vector t. */
static void orthogonal_tokens(float *x)
{
    memset(x, 0, sizeof(float) * T * D);
    for (int t = 0; t < T; t++) x[t * D + t] = 2.0f;
}

static void route(const char *name, mr_router_opts *o, hand *h, const float *x,
                  const float *att, const int *prev, float *probs, int *topk, float *w)
{
    mr_router *r;
    ck_assert_msg(mr_router_alloc(&r, name, &h->m, o) == MR_OK, "%s", mr_error_message());
    float scratch[4096];
    ck_assert_uint_le(mr_router_scratch_floats(r, &h->m, 1, T), 4096);
    mr_route_ctx c = {.model = &h->m, .layer = 0, .B = 1, .T = T, .k = 2, .x = x, .att = att,
                      .prev_topk = prev, .prev_k = 2, .scratch = scratch};
    ck_assert_int_eq(r->type->route(r->state, &c, probs, topk, w), MR_OK);
    mr_router_free(r);
}

START_TEST(similarity_orthogonal_equal_norm_is_softmax)
{
    /* the one case where tau -> 0 is the baseline: every token's largest inner product is
     * with itself (docs/routers.md) */
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    float x[T * D], p0[T * E], p1[T * E], w0[T * 2], w1[T * 2];
    int k0[T * 2], k1[T * 2];
    orthogonal_tokens(x);
    mr_router_opts o = {0};
    /* <x_i, x_i> = 4, <x_i, x_j> = 0: with tau = 0.01 the graph is the identity to e^-400 */
    mr_router_opts_add(&o, "tau=0.01");
    route("similarity", &o, &h, x, NULL, NULL, p1, k1, w1);
    route("softmax", NULL, &h, x, NULL, NULL, p0, k0, w0);
    for (int i = 0; i < T * E; i++) ck_assert_float_eq_tol(p1[i], p0[i], 1e-7f);
    for (int i = 0; i < T * 2; i++) ck_assert_int_eq(k1[i], k0[i]);
}
END_TEST

START_TEST(similarity_tau_to_zero_takes_the_argmax_token_gate)
{
    /* In general tau -> 0 is not the identity graph: token i takes the gate of the token j
     * with the largest <x_i, x_j>, which need not be i (issue #23; docs/routers.md). Here
     * <x_0, x_1> = 2 > <x_0, x_0> = 1 and <x_3, x_2> = 0.5 > <x_3, x_3> = 0.25. */
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    float x[T * D] = {1, 0, 0, 0, /**/ 2, 0, 0, 0, /**/ 0, 1, 0, 0, /**/ 0, 0.5f, 0, 0};
    float p[T * E], g[T * E], w[T * 2], wg[T * 2];
    int k[T * 2], kg[T * 2];
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "tau=0.001");
    route("similarity", &o, &h, x, NULL, NULL, p, k, w);
    route("softmax", NULL, &h, x, NULL, NULL, g, kg, wg);
    int differs = 0;
    for (int i = 0; i < T; i++) {
        int best = 0;
        double bv = 0;
        for (int j = 0; j < T; j++) {
            double s = 0;
            for (int f = 0; f < D; f++) s += (double)x[i * D + f] * x[j * D + f];
            if (j == 0 || s > bv) bv = s, best = j;
        }
        for (int e = 0; e < E; e++) ck_assert_float_eq_tol(p[i * E + e], g[best * E + e], 1e-6f);
        for (int e = 0; e < E; e++) differs += fabsf(p[i * E + e] - g[i * E + e]) > 1e-3f;
    }
    ck_assert_int_gt(differs, 0); /* tokens 0 and 3 are not routed as softmax routes them */
}
END_TEST

START_TEST(similarity_uniform_graph_averages)
{
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    float x[T * D], p[T * E], g[T * E], w[T * 2], wg[T * 2];
    int k[T * 2], kg[T * 2];
    orthogonal_tokens(x);
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "tau=1e6"); /* graph -> uniform: every token gets the mean gate */
    route("similarity", &o, &h, x, NULL, NULL, p, k, w);
    route("softmax", NULL, &h, x, NULL, NULL, g, kg, wg);
    for (int e = 0; e < E; e++) {
        double mean = 0;
        for (int t = 0; t < T; t++) mean += g[t * E + e] / T;
        for (int t = 0; t < T; t++) ck_assert_float_eq_tol(p[t * E + e], (float)mean, 1e-5f);
    }
    /* lm: causal graph, token 0 sees only itself -> exactly its own gate */
    h.m.cfg.task = MR_TASK_LM;
    route("similarity", &o, &h, x, NULL, NULL, p, k, w);
    for (int e = 0; e < E; e++) ck_assert_float_eq_tol(p[e], g[e], 1e-7f);
    for (int e = 0; e < E; e++)
        ck_assert_float_eq_tol(p[1 * E + e], (g[e] + g[E + e]) / 2, 1e-5f);
}
END_TEST

START_TEST(attention_router_uses_min_entropy_head)
{
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    h.m.cfg.n_heads = 2;
    float x[T * D], att[2 * T * T], p[T * E], g[T * E], w[T * 2], wg[T * 2];
    int k[T * 2], kg[T * 2];
    orthogonal_tokens(x);
    /* head 0 uniform (max entropy), head 1 the identity (zero entropy) */
    for (int i = 0; i < T * T; i++) att[i] = 1.0f / T;
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) att[T * T + i * T + j] = i == j;
    route("attention", NULL, &h, x, att, NULL, p, k, w);
    route("softmax", NULL, &h, x, NULL, NULL, g, kg, wg);
    for (int i = 0; i < T * E; i++) ck_assert_float_eq_tol(p[i], g[i], 1e-7f);
    /* head=0 forces the uniform head: every token gets the mean gate */
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "head=0");
    route("attention", &o, &h, x, att, NULL, p, k, w);
    for (int t = 1; t < T; t++) ck_assert_float_eq_tol(p[t * E], p[0], 1e-6f);
    /* head=mean: half identity + half uniform */
    mr_router_opts m = {0};
    mr_router_opts_add(&m, "head=mean");
    route("attention", &m, &h, x, att, NULL, p, k, w);
    double mean0 = 0;
    for (int t = 0; t < T; t++) mean0 += g[t * E] / T;
    ck_assert_float_eq_tol(p[0], (float)(0.5 * g[0] + 0.5 * mean0), 1e-6f);
    /* sharpening a uniform row keeps it uniform; sigma -> 0 on a peaked row picks its max */
    float att2[2 * T * T];
    for (int i = 0; i < T * T; i++) att2[i] = att2[T * T + i] = (i % T == 0) ? 0.4f : 0.2f;
    mr_router_opts s = {0};
    mr_router_opts_add(&s, "sigma=0.01");
    route("attention", &s, &h, x, att2, NULL, p, k, w);
    for (int t = 0; t < T; t++)
        for (int e = 0; e < E; e++) ck_assert_float_eq_tol(p[t * E + e], g[e], 1e-6f);
}
END_TEST

START_TEST(ac_single_cluster_is_cosine_gate)
{
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    float x[T * D], p[T * E], w[T * 2];
    int k[T * 2];
    for (int i = 0; i < T * D; i++) x[i] = sinf(1.7f * i) + 0.1f * i;
    int prev[T * 2] = {2, 0, 2, 1, 2, 0, 2, 1}; /* every token's top-1 is expert 2 */
    route("ac", NULL, &h, x, NULL, prev, p, k, w);
    /* one cluster: each feature's weight is normalized by itself, so W = 1 and the logits
     * are x . e_j / ||e_j|| with e the gate rows (training-free swap) */
    for (int t = 0; t < T; t++) {
        double lg[E], mx = -1e30, z = 0;
        for (int e = 0; e < E; e++) {
            double dot = 0, nrm = 0;
            for (int f = 0; f < D; f++) {
                dot += x[t * D + f] * h.gate_w[e * D + f];
                nrm += h.gate_w[e * D + f] * h.gate_w[e * D + f];
            }
            lg[e] = dot / sqrt(nrm);
            mx = fmax(mx, lg[e]);
        }
        for (int e = 0; e < E; e++) z += exp(lg[e] - mx);
        for (int e = 0; e < E; e++) ck_assert_float_eq_tol(p[t * E + e], (float)(exp(lg[e] - mx) / z), 1e-6f);
    }
    /* first MoE block (no previous routing) falls back to the softmax gate */
    float g[T * E], wg[T * 2];
    int kg[T * 2];
    route("ac", NULL, &h, x, NULL, NULL, p, k, w);
    route("softmax", NULL, &h, x, NULL, NULL, g, kg, wg);
    for (int i = 0; i < T * E; i++) ck_assert_float_eq_tol(p[i], g[i], 1e-7f);
}
END_TEST

START_TEST(ac_two_clusters_scale_by_spread)
{
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    /* cluster 0 (tokens 0,1) varies only in feature 0, cluster 1 (tokens 2,3) only in
     * feature 1: each cluster weights up the feature it is tight in */
    float x[T * D] = {1, 5, 0, 0, -1, 5, 0, 0, 5, 1, 0, 0, 5, -1, 0, 0};
    int prev[T * 2] = {0, 1, 0, 1, 1, 0, 1, 0};
    float p[T * E], w[T * 2];
    int k[T * 2];
    route("ac", NULL, &h, x, NULL, prev, p, k, w);
    for (int i = 0; i < T * E; i++) ck_assert(isfinite(p[i]) && p[i] >= 0.0f);
    /* token 0 (cluster 0): MAD feature 0 = 1, feature 1 = 0 -> W_01 >> W_00, so its logits
     * are dominated by feature 1 (value 5): same ranking as the embedding's feature 1 column */
    int best = 0;
    for (int e = 1; e < E; e++) best = p[e] > p[best] ? e : best;
    int col = 0; /* expert with the largest normalized weight on feature 1 */
    double bv = -1e30;
    for (int e = 0; e < E; e++) {
        double nrm = 0;
        for (int f = 0; f < D; f++) nrm += h.gate_w[e * D + f] * h.gate_w[e * D + f];
        double v = h.gate_w[e * D + 1] / sqrt(nrm);
        if (v > bv) {
            bv = v;
            col = e;
        }
    }
    ck_assert_int_eq(best, col);
}
END_TEST

START_TEST(unsupported_models_are_refused)
{
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    mr_router *r;
    ck_assert_int_eq(mr_router_alloc(&r, "cosine", &h.m, NULL), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "not trained with X-MoE"));
    ck_assert_int_eq(mr_router_alloc(&r, "s2moe", &h.m, NULL), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "not trained with S2MoE"));
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "group=everything");
    ck_assert_int_eq(mr_router_alloc(&r, "ac", &h.m, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "group=everything"));
    mr_router_opts a = {0};
    mr_router_opts_add(&a, "head=7");
    ck_assert_int_eq(mr_router_alloc(&r, "attention", &h.m, &a), MR_EINPUT);
}
END_TEST

START_TEST(random_router_is_seeded)
{
    hand h;
    hand_init(&h, MR_TASK_CLASSIFY);
    float x[T * D], p1[T * E], p2[T * E], p3[T * E], w[T * 2];
    int k[T * 2];
    for (int i = 0; i < T * D; i++) x[i] = cosf(0.9f * i);
    mr_router_opts a = {0}, b = {0};
    mr_router_opts_add(&a, "seed=5");
    mr_router_opts_add(&b, "seed=6");
    route("random", &a, &h, x, NULL, NULL, p1, k, w);
    a.used[0] = 0;
    route("random", &a, &h, x, NULL, NULL, p2, k, w);
    route("random", &b, &h, x, NULL, NULL, p3, k, w);
    ck_assert_int_eq(memcmp(p1, p2, sizeof p1), 0);
    ck_assert_int_ne(memcmp(p1, p3, sizeof p1), 0);
}
END_TEST

/* Forward a real fixture model with two routers and compare logits. */
static double logits_diff(const char *model, const char *r1, mr_router_opts *o1, const char *r2,
                          mr_router_opts *o2)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, model) == MR_OK, "%s", mr_error_message());
    mr_router *a, *b;
    ck_assert_msg(mr_router_alloc(&a, r1, m, o1) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_router_alloc(&b, r2, m, o2) == MR_OK, "%s", mr_error_message());
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = 2;
    mr_workspace *wa, *wb;
    ck_assert_int_eq(mr_workspace_alloc(&wa, m, a, &eo), MR_OK);
    ck_assert_int_eq(mr_workspace_alloc(&wb, m, b, &eo), MR_OK);
    const mr_config *c = &m->cfg;
    int n_logits = 2 * c->n_out;
    if (c->task == MR_TASK_CLASSIFY) {
        size_t n_img = 2 * (size_t)c->image_h * c->image_w * c->channels;
        uint8_t img[4096];
        ck_assert_uint_le(n_img, sizeof img);
        for (size_t i = 0; i < n_img; i++) img[i] = (uint8_t)(i * 37 % 251);
        ck_assert_int_eq(mr_engine_forward_images(wa, img, 2), MR_OK);
        ck_assert_int_eq(mr_engine_forward_images(wb, img, 2), MR_OK);
    } else {
        int Tn = c->max_seq_len;
        int32_t tok[2 * 64];
        ck_assert_int_le(Tn, 64);
        for (int i = 0; i < 2 * Tn; i++) tok[i] = (i * 7 + 3) % c->vocab_size;
        ck_assert_int_eq(mr_engine_forward_tokens(wa, tok, 2, Tn, Tn), MR_OK);
        ck_assert_int_eq(mr_engine_forward_tokens(wb, tok, 2, Tn, Tn), MR_OK);
        n_logits = 2 * Tn * c->n_out;
    }
    const mr_trace *ta = mr_workspace_trace(wa), *tb = mr_workspace_trace(wb);
    double diff = 0;
    for (int i = 0; i < n_logits; i++) diff = fmax(diff, fabs(ta->logits[i] - tb->logits[i]));
    mr_workspace_free(wa);
    mr_workspace_free(wb);
    mr_router_free(a);
    mr_router_free(b);
    mr_model_free(m);
    return diff;
}

START_TEST(momentum_mu0_is_baseline)
{
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "mu=0");
    mr_router_opts_add(&o, "gamma=1");
    ck_assert_double_eq(logits_diff("tests/fixtures/tiny-lm.h5", "momentum", &o, "softmax", NULL), 0.0);
    /* two MoE blocks: the second adds mu * f_1 on top of f_2 */
    mr_router_opts o2 = {0};
    mr_router_opts_add(&o2, "mu=0.7");
    ck_assert_double_gt(logits_diff("tests/fixtures/tiny-lm.h5", "momentum", &o2, "softmax", NULL), 0.0);
    /* with a single MoE block m_1 = gamma f_1: momentum cannot act */
    o2.used[0] = 0;
    ck_assert_double_eq(logits_diff("tests/fixtures/tiny-classify.h5", "momentum", &o2, "softmax", NULL), 0.0);
}
END_TEST

START_TEST(momentum_cannot_change_routing_on_two_moe_blocks)
{
    /* docs/routers.md: with gamma = 1 the first MoE block adds what softmax adds, so the
     * second routes on the same input: on a model with two MoE blocks (every shipped
     * model) momentum changes outputs, never a routing decision (issue #23) */
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-lm.h5"), MR_OK);
    ck_assert_int_eq(m->cfg.n_moe, 2);
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "mu=0.7");
    mr_router *a, *b;
    ck_assert_int_eq(mr_router_alloc(&a, "momentum", m, &o), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&b, "softmax", m, NULL), MR_OK);
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = 2;
    mr_workspace *wa, *wb;
    ck_assert_int_eq(mr_workspace_alloc(&wa, m, a, &eo), MR_OK);
    ck_assert_int_eq(mr_workspace_alloc(&wb, m, b, &eo), MR_OK);
    int Tn = m->cfg.max_seq_len;
    int32_t tok[2 * 64];
    ck_assert_int_le(Tn, 64);
    for (int i = 0; i < 2 * Tn; i++) tok[i] = (i * 7 + 3) % m->cfg.vocab_size;
    ck_assert_int_eq(mr_engine_forward_tokens(wa, tok, 2, Tn, Tn), MR_OK);
    ck_assert_int_eq(mr_engine_forward_tokens(wb, tok, 2, Tn, Tn), MR_OK);
    const mr_trace *ta = mr_workspace_trace(wa), *tb = mr_workspace_trace(wb);
    size_t np = (size_t)ta->n_moe * ta->B * ta->T * ta->E, nk = (size_t)ta->n_moe * ta->B * ta->T * ta->k;
    ck_assert_int_eq(memcmp(ta->probs, tb->probs, np * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(ta->topk, tb->topk, nk * sizeof(int)), 0);
    double diff = 0;
    for (int i = 0; i < 2 * Tn * m->cfg.n_out; i++) diff = fmax(diff, fabs(ta->logits[i] - tb->logits[i]));
    ck_assert_double_gt(diff, 0.0); /* the outputs do change */
    mr_workspace_free(wa);
    mr_workspace_free(wb);
    mr_router_free(a);
    mr_router_free(b);
    mr_model_free(m);
}
END_TEST

/* The router-independent prefix (mr_engine_prefix_*): computed under one router, kept,
 * and loaded into another router's workspace, prefix + rest give the bits of that router's
 * whole forward (the grid of `moe-robust run` shares it across router groups). */
static void prefix_equals_whole(const char *model, const char *const *routers)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, model) == MR_OK, "%s", mr_error_message());
    const mr_config *c = &m->cfg;
    enum { B = 3 };
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = B;
    int Tn = c->task == MR_TASK_LM ? (c->max_seq_len < 24 ? c->max_seq_len : 24) : c->n_pos;
    if (c->task == MR_TASK_LM) eo.seq_len = Tn;
    static uint8_t img[B * 28 * 28];
    static int32_t tok[B * 24];
    if (c->task == MR_TASK_CLASSIFY) {
        ck_assert_int_le(c->image_h * c->image_w * c->channels, 28 * 28);
        for (int i = 0; i < B * c->image_h * c->image_w * c->channels; i++)
            img[i] = (uint8_t)(i * 37 % 251);
    } else {
        for (int i = 0; i < B * Tn; i++) tok[i] = (i * 7 + 3) % c->vocab_size;
    }
    size_t xf, af;
    mr_engine_prefix_sizes(m, Tn, &xf, &af);
    ck_assert_uint_gt(af, 0);
    float *kx = malloc(B * xf * sizeof(float)), *katt = malloc(B * af * sizeof(float));
    ck_assert_ptr_nonnull(kx);
    ck_assert_ptr_nonnull(katt);
    mr_router *src;
    ck_assert_int_eq(mr_router_alloc(&src, "softmax", m, NULL), MR_OK);
    mr_workspace *ws;
    ck_assert_int_eq(mr_workspace_alloc(&ws, m, src, &eo), MR_OK);
    float *x, *att;
    mr_engine_prefix_state(ws, B, Tn, &x, &att);
    ck_assert_int_eq(c->task == MR_TASK_CLASSIFY ? mr_engine_prefix_images(ws, img, B)
                                                 : mr_engine_prefix_tokens(ws, tok, B, Tn, Tn),
                     MR_OK);
    memcpy(kx, x, B * xf * sizeof(float));
    memcpy(katt, att, B * af * sizeof(float));
    for (int i = 0; routers[i]; i++) {
        mr_router *r;
        ck_assert_msg(mr_router_alloc(&r, routers[i], m, NULL) == MR_OK, "%s", mr_error_message());
        mr_workspace *wa, *wb;
        ck_assert_int_eq(mr_workspace_alloc(&wa, m, r, &eo), MR_OK);
        ck_assert_int_eq(mr_workspace_alloc(&wb, m, r, &eo), MR_OK);
        mr_workspace_set_first_sample(wa, 5);
        mr_workspace_set_first_sample(wb, 5);
        ck_assert_int_eq(c->task == MR_TASK_CLASSIFY ? mr_engine_forward_images(wa, img, B)
                                                     : mr_engine_forward_tokens(wa, tok, B, Tn, Tn),
                         MR_OK);
        mr_engine_prefix_state(wb, B, Tn, &x, &att);
        memcpy(x, kx, B * xf * sizeof(float));
        memcpy(att, katt, B * af * sizeof(float));
        ck_assert_int_eq(mr_engine_forward_rest(wb, B, Tn), MR_OK);
        const mr_trace *ta = mr_workspace_trace(wa), *tb = mr_workspace_trace(wb);
        size_t nl = (size_t)(c->task == MR_TASK_LM ? B * Tn : B) * c->n_out;
        size_t np = (size_t)c->n_moe * B * Tn;
        ck_assert_msg(memcmp(ta->logits, tb->logits, nl * sizeof(float)) == 0,
                      "%s on %s: logits through the kept prefix differ", routers[i], model);
        ck_assert_msg(memcmp(ta->probs, tb->probs, np * ta->E * sizeof(float)) == 0 &&
                          memcmp(ta->topk, tb->topk, np * ta->k * sizeof(int)) == 0,
                      "%s on %s: routing through the kept prefix differs", routers[i], model);
        mr_workspace_free(wa);
        mr_workspace_free(wb);
        mr_router_free(r);
    }
    ck_assert_int_eq(mr_engine_forward_rest(ws, B + 1, Tn), MR_EINPUT);
    mr_workspace_free(ws);
    mr_router_free(src);
    free(kx);
    free(katt);
    mr_model_free(m);
}

START_TEST(prefix_shared_across_routers_is_the_whole_forward)
{
    /* a dense block before the first MoE block; MoE in every block; an lm */
    const char *const vit[] = {"softmax", "attention", "similarity", "ac", "random", "momentum",
                               NULL};
    prefix_equals_whole("models/fmnist-vit-moe-softmax.h5", vit);
    prefix_equals_whole("models/fmnist-vit-moe4-softmax.h5", vit);
    const char *const lm[] = {"softmax", "attention", "similarity", "momentum", NULL};
    prefix_equals_whole("tests/fixtures/tiny-lm.h5", lm);
}
END_TEST

/* The last block of a classifier pooling its CLS token runs its experts for the CLS
 * tokens only (mr_engine.c, slot_step; the head's norm too): the logits and the whole
 * routing trace are those of every token's computation (mr_engine_opts.all_rows), bit for
 * bit where the suite's GEMM micro-kernels run (AVX-512, or AVX2 + FMA: every row's bits
 * are its own), within 1e-5 of the largest logit on OpenBLAS's path, where a row's
 * rounding may depend on the rows sharing its call. Every path this CPU has, every
 * router of each model (combine() of momentum and s2moe included). */
static void cls_rows_equal_all_rows(const char *model, const char *const *routers)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, model) == MR_OK, "%s", mr_error_message());
    const mr_config *c = &m->cfg;
    ck_assert(c->task == MR_TASK_CLASSIFY && c->pool == MR_POOL_CLS);
    ck_assert(m->layers[c->n_layers - 1].is_moe);
    enum { B = 5 };
    static uint8_t img[B * 28 * 28];
    for (int i = 0; i < B * 28 * 28; i++) img[i] = (uint8_t)(i * 53 % 253);
    for (int path = 0; path < 3; path++) {
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path < 2);
        int kernels = mr_simd_avx512() || mr_simd_avx2();
        if ((path == 0 && !mr_simd_avx512()) || (path == 1 && !mr_simd_avx2())) continue;
        for (int i = 0; routers[i]; i++) {
            mr_router *r;
            ck_assert_msg(mr_router_alloc(&r, routers[i], m, NULL) == MR_OK, "%s",
                          mr_error_message());
            mr_workspace *ws[2];
            for (int a = 0; a < 2; a++) {
                mr_engine_opts eo;
                mr_engine_opts_init(&eo, m);
                eo.batch = B;
                eo.all_rows = a;
                ck_assert_int_eq(mr_workspace_alloc(&ws[a], m, r, &eo), MR_OK);
                mr_workspace_set_first_sample(ws[a], 7);
                ck_assert_int_eq(mr_engine_forward_images(ws[a], img, B), MR_OK);
            }
            const mr_trace *tc = mr_workspace_trace(ws[0]), *ta = mr_workspace_trace(ws[1]);
            size_t nl = (size_t)B * c->n_out, np = (size_t)c->n_moe * B * c->n_pos;
            ck_assert_msg(memcmp(tc->probs, ta->probs, np * tc->E * sizeof(float)) == 0 &&
                              memcmp(tc->topk, ta->topk, np * tc->k * sizeof(int)) == 0 &&
                              memcmp(tc->weights, ta->weights, np * tc->k * sizeof(float)) == 0,
                          "%s on %s (path %d): the CLS-rows forward routes differently",
                          routers[i], model, path);
            if (kernels) {
                ck_assert_msg(memcmp(tc->logits, ta->logits, nl * sizeof(float)) == 0,
                              "%s on %s (path %d): CLS-rows logits differ", routers[i], model,
                              path);
            } else {
                double big = 0.0, diff = 0.0;
                for (size_t j = 0; j < nl; j++) {
                    big = fmax(big, fabs(ta->logits[j]));
                    diff = fmax(diff, fabs(tc->logits[j] - ta->logits[j]));
                }
                ck_assert_msg(diff <= 1e-5 * big, "%s on %s (OpenBLAS): logits differ by %g",
                              routers[i], model, diff);
            }
            mr_workspace_free(ws[0]);
            mr_workspace_free(ws[1]);
            mr_router_free(r);
        }
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    mr_model_free(m);
}

START_TEST(cls_rows_of_the_last_block_are_every_row)
{
    const char *const vit[] = {"softmax", "similarity", "attention", "ac", "random", "momentum",
                               NULL};
    cls_rows_equal_all_rows("models/fmnist-vit-moe-softmax.h5", vit);
    const char *const vit4[] = {"softmax", "momentum", "similarity", NULL};
    cls_rows_equal_all_rows("models/fmnist-vit-moe4-softmax.h5", vit4);
    const char *const cosine[] = {"cosine", NULL};
    cls_rows_equal_all_rows("models/fmnist-vit-moe-cosine.h5", cosine);
    const char *const s2moe[] = {"s2moe", NULL};
    cls_rows_equal_all_rows("models/fmnist-vit-moe-s2moe.h5", s2moe);
}
END_TEST

/* ...and from the third MoE block on it does (issue #18's deep model, MoE in all four
 * blocks): blocks 1 and 2 route exactly as softmax, blocks 3 and 4 do not. */
START_TEST(momentum_changes_routing_from_the_third_moe_block)
{
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "models/fmnist-vit-moe4-softmax.h5"), MR_OK);
    ck_assert_int_eq(m->cfg.n_moe, 4);
    mr_router_opts o = {0};
    mr_router_opts_add(&o, "mu=0.7");
    mr_router *a, *b;
    ck_assert_int_eq(mr_router_alloc(&a, "momentum", m, &o), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&b, "softmax", m, NULL), MR_OK);
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    enum { B = 4 };
    eo.batch = B;
    mr_workspace *wa, *wb;
    ck_assert_int_eq(mr_workspace_alloc(&wa, m, a, &eo), MR_OK);
    ck_assert_int_eq(mr_workspace_alloc(&wb, m, b, &eo), MR_OK);
    static uint8_t img[B * 28 * 28]; /* smooth synthetic images: a different pattern each */
    for (int i = 0; i < B * 28 * 28; i++) {
        int n = i / 784, y = i % 784 / 28, x = i % 28;
        img[i] = (uint8_t)(127.5 + 127.5 * sin(0.3 * (n + 1) * x + 0.2 * y * (n % 2 ? 1 : -1)));
    }
    ck_assert_int_eq(mr_engine_forward_images(wa, img, B), MR_OK);
    ck_assert_int_eq(mr_engine_forward_images(wb, img, B), MR_OK);
    const mr_trace *ta = mr_workspace_trace(wa), *tb = mr_workspace_trace(wb);
    size_t per_p = (size_t)ta->B * ta->T * ta->E, per_k = (size_t)ta->B * ta->T * ta->k;
    for (int l = 0; l < 4; l++) {
        int same_p = memcmp(ta->probs + l * per_p, tb->probs + l * per_p, per_p * sizeof(float)) == 0;
        int same_k = memcmp(ta->topk + l * per_k, tb->topk + l * per_k, per_k * sizeof(int)) == 0;
        if (l < 2) {
            ck_assert_msg(same_p && same_k, "MoE block %d: momentum routes differently", l);
        } else {
            ck_assert_msg(!same_p, "MoE block %d: momentum's gate probabilities equal softmax's", l);
            ck_assert_msg(!same_k, "MoE block %d: momentum's top-k equals softmax's on %d images", l, B);
        }
    }
    mr_workspace_free(wa);
    mr_workspace_free(wb);
    mr_router_free(a);
    mr_router_free(b);
    mr_model_free(m);
}
END_TEST

/* A copy of a fixture model with an S2MoE gate on every MoE block, written to a new
 * file made from the mkstemp template `out` (which receives its name). */
static void make_s2moe_copy(const char *src, char *out)
{
    mr_test_temp_file(out);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s %s", src, out);
    ck_assert_int_eq(system(cmd), 0);
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, out), MR_OK);
    int n_moe = m->cfg.n_moe, d = m->cfg.d_model, moe_layers[16];
    ck_assert_int_le(n_moe, 16);
    memcpy(moe_layers, m->cfg.moe_layers, (size_t)n_moe * sizeof *moe_layers);
    mr_model_free(m);
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    float w[256], b[1] = {0.3f};
    ck_assert_int_le(d, 256);
    for (int i = 0; i < d; i++) w[i] = 0.2f * sinf((float)i);
    hsize_t dw[2] = {1, (hsize_t)d}, db[1] = {1};
    for (int l = 0; l < n_moe; l++) {
        char path[128];
        snprintf(path, sizeof path, "/layers/%d/moe/router", moe_layers[l]);
        hid_t g = H5Gcreate2(f, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hid_t sw = H5Screate_simple(2, dw, NULL), sb = H5Screate_simple(1, db, NULL);
        hid_t ds = H5Dcreate2(g, "s2_gate_w", H5T_IEEE_F32LE, sw, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
        H5Dclose(ds);
        ds = H5Dcreate2(g, "s2_gate_b", H5T_IEEE_F32LE, sb, H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT);
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, b);
        H5Dclose(ds);
        H5Sclose(sw);
        H5Sclose(sb);
        H5Gclose(g);
    }
    H5Fclose(f);
}

START_TEST(s2moe_noise_off_is_baseline)
{
    char out[] = "/tmp/mr-s2moe-XXXXXX";
    make_s2moe_copy("tests/fixtures/tiny-classify.h5", out);
    mr_router_opts off = {0};
    mr_router_opts_add(&off, "noise=off");
    ck_assert_double_eq(logits_diff(out, "s2moe", &off, "softmax", NULL), 0.0);
    mr_router_opts on = {0}, on2 = {0}, other = {0};
    mr_router_opts_add(&on, "seed=3");
    mr_router_opts_add(&on2, "seed=3");
    mr_router_opts_add(&other, "seed=4");
    ck_assert_double_gt(logits_diff(out, "s2moe", &on, "softmax", NULL), 0.0);
    ck_assert_double_eq(logits_diff(out, "s2moe", &on, "s2moe", &on2), 0.0);
    on.used[0] = 0;
    ck_assert_double_gt(logits_diff(out, "s2moe", &on, "s2moe", &other), 0.0);
    unlink(out);
}
END_TEST

/* Max |logit| difference at positions < p and at positions >= p when two batches of
 * two sequences differ only from position p on (both sequences changed, so group=batch
 * is covered too). */
static void lm_prefix_diff(const char *model, const char *router, mr_router_opts *o, int p,
                           double *before, double *after)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, model) == MR_OK, "%s", mr_error_message());
    mr_router *r;
    ck_assert_msg(mr_router_alloc(&r, router, m, o) == MR_OK, "%s", mr_error_message());
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = 2;
    mr_workspace *w;
    ck_assert_int_eq(mr_workspace_alloc(&w, m, r, &eo), MR_OK);
    int Tn = m->cfg.max_seq_len, V = m->cfg.vocab_size, n_out = m->cfg.n_out;
    int32_t a[2 * 64], b[2 * 64];
    ck_assert_int_le(Tn, 64);
    ck_assert_int_lt(p, Tn);
    for (int i = 0; i < 2 * Tn; i++) {
        a[i] = b[i] = (i * 7 + 3) % V;
        if (i % Tn >= p) b[i] = (i * 5 + 1) % V;
    }
    float la[2 * 64 * 64];
    ck_assert_int_le(2 * Tn * n_out, 2 * 64 * 64);
    ck_assert_int_eq(mr_engine_forward_tokens(w, a, 2, Tn, Tn), MR_OK);
    memcpy(la, mr_workspace_trace(w)->logits, sizeof(float) * 2 * Tn * n_out);
    ck_assert_int_eq(mr_engine_forward_tokens(w, b, 2, Tn, Tn), MR_OK);
    const float *lb = mr_workspace_trace(w)->logits;
    *before = *after = 0.0;
    for (int i = 0; i < 2 * Tn * n_out; i++) {
        double dv = fabs(la[i] - lb[i]);
        if ((i / n_out) % Tn < p)
            *before = fmax(*before, dv);
        else
            *after = fmax(*after, dv);
    }
    mr_workspace_free(w);
    mr_router_free(r);
    mr_model_free(m);
}

/* A causal LM's routing may use only the tokens it can see: changing the characters
 * from position p on leaves every logit before p unchanged, for every router (the
 * statistics of ac and s2moe are prefix statistics for lm; docs/routers.md). */
START_TEST(lm_routing_never_sees_later_tokens)
{
    char s2[] = "/tmp/mr-s2moe-lm-XXXXXX";
    make_s2moe_copy("tests/fixtures/tiny-lm.h5", s2);
    static const struct {
        const char *router, *opt;
    } cases[] = {{"softmax", NULL},     {"similarity", NULL},     {"attention", NULL},
                 {"attention", "head=mean"}, {"ac", NULL},        {"ac", "group=batch"},
                 {"random", NULL},      {"momentum", NULL},       {"s2moe", "seed=2"}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        mr_router_opts o = {0};
        if (cases[c].opt) mr_router_opts_add(&o, cases[c].opt);
        const char *model = strcmp(cases[c].router, "s2moe") ? "tests/fixtures/tiny-lm.h5" : s2;
        for (int p = 1; p < 8; p += 3) {
            double before, after;
            for (int i = 0; i < o.n; i++) o.used[i] = 0;
            lm_prefix_diff(model, cases[c].router, &o, p, &before, &after);
            /* the expert batches change with later routing: allow float reassociation */
            ck_assert_msg(before <= 1e-6, "%s %s: logits before position %d moved by %g",
                          cases[c].router, cases[c].opt ? cases[c].opt : "", p, before);
            ck_assert_msg(after > 1e-3, "%s: the change at %d did not reach the logits",
                          cases[c].router, p);
        }
    }
    unlink(s2);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    mr_h5_quiet();
    Suite *s = suite_create("routers");
    TCase *tc = tcase_create("known answers");
    tcase_add_test(tc, similarity_orthogonal_equal_norm_is_softmax);
    tcase_add_test(tc, similarity_tau_to_zero_takes_the_argmax_token_gate);
    tcase_add_test(tc, similarity_uniform_graph_averages);
    tcase_add_test(tc, attention_router_uses_min_entropy_head);
    tcase_add_test(tc, ac_single_cluster_is_cosine_gate);
    tcase_add_test(tc, ac_two_clusters_scale_by_spread);
    tcase_add_test(tc, unsupported_models_are_refused);
    tcase_add_test(tc, random_router_is_seeded);
    tcase_add_test(tc, momentum_mu0_is_baseline);
    tcase_add_test(tc, momentum_cannot_change_routing_on_two_moe_blocks);
    tcase_add_test(tc, momentum_changes_routing_from_the_third_moe_block);
    tcase_add_test(tc, prefix_shared_across_routers_is_the_whole_forward);
    tcase_add_test(tc, cls_rows_of_the_last_block_are_every_row);
    tcase_add_test(tc, s2moe_noise_off_is_baseline);
    tcase_add_test(tc, lm_routing_never_sees_later_tokens);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
