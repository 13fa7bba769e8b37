/* Expert compression, known answers: merging two identical experts whose hidden neurons
 * are permuted recovers the original exactly; pruning (and merging) to E experts is the
 * identity; alignment, M-SMoE grouping, spectral clustering, REAP saliency, router-logit
 * similarity and the low-rank + sparse step on cases with known results; slot form and
 * per-expert router tensors. */
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "analysis/mr_compress.h"
#include "analysis/mr_compress_impl.h"
#include "analysis/mr_error.h"
#include "io/mr_data.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

static mr_model *load(const char *path)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, path) == MR_OK, "%s", mr_error_message());
    return m;
}

/* Calibration of m on the first n samples of a data file, with the model's router. */
static mr_calib *calibrate(const mr_model *m, const char *data, int n)
{
    mr_dataset *d;
    mr_router *r;
    mr_calib *c;
    ck_assert_msg(mr_dataset_load(&d, data, n) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_router_alloc(&r, m->cfg.router, m, NULL) == MR_OK, "%s", mr_error_message());
    int st = d->kind == MR_DATA_IMAGES ? mr_calib_images(&c, m, r, d->images, d->n, 3)
                                       : mr_calib_tokens(&c, m, r, d->tokens, d->n, d->cols, 3);
    ck_assert_msg(st == MR_OK, "%s", mr_error_message());
    mr_router_free(r);
    mr_dataset_free(d);
    return c;
}

static void run(mr_compress_result *res, const mr_model *m, const mr_calib *c,
                const mr_compress_type *t, int K)
{
    mr_compress_opts o;
    mr_compress_opts_init(&o);
    o.experts = K;
    ck_assert_msg(mr_compress_run(res, m, c, t, &o) == MR_OK, "%s: %s", t->name,
                  mr_error_message());
}

static void same_weights(const mr_model *a, const mr_model *b)
{
    ck_assert_int_eq(a->cfg.n_experts, b->cfg.n_experts);
    ck_assert_uint_eq(a->n_arena, b->n_arena);
    ck_assert_int_eq(memcmp(a->arena, b->arena, a->n_arena * sizeof(float)), 0);
}

/* Expert slot e of block L of model m, as one comparable tuple. */
static int expert_equal(const mr_model *a, int La, int ea, const mr_model *b, int Lb, int eb)
{
    size_t h = (size_t)a->cfg.expert_hidden, d = (size_t)a->cfg.d_model;
    const mr_layer *x = &a->layers[La], *y = &b->layers[Lb];
    return memcmp(x->exp_w1 + ea * h * d, y->exp_w1 + eb * h * d, h * d * sizeof(float)) == 0 &&
           memcmp(x->exp_b1 + ea * h, y->exp_b1 + eb * h, h * sizeof(float)) == 0 &&
           memcmp(x->exp_w2 + ea * d * h, y->exp_w2 + eb * d * h, d * h * sizeof(float)) == 0 &&
           memcmp(x->exp_b2 + ea * d, y->exp_b2 + eb * d, d * sizeof(float)) == 0;
}

/* Expert dst of block L := expert src with its hidden neurons permuted by perm. */
static void permuted_copy(mr_model *m, int L, int dst, int src, const int *perm)
{
    size_t h = (size_t)m->cfg.expert_hidden, d = (size_t)m->cfg.d_model;
    mr_layer *l = &m->layers[L];
    for (size_t a = 0; a < h; a++) {
        memcpy(l->exp_w1 + (dst * h + a) * d, l->exp_w1 + (src * h + perm[a]) * d,
               d * sizeof(float));
        l->exp_b1[dst * h + a] = l->exp_b1[src * h + perm[a]];
        for (size_t j = 0; j < d; j++)
            l->exp_w2[dst * d * h + j * h + a] = l->exp_w2[src * d * h + j * h + perm[a]];
    }
    memcpy(l->exp_b2 + dst * d, l->exp_b2 + src * d, d * sizeof(float));
}

START_TEST(pruning_or_merging_to_all_experts_is_the_identity)
{
    const char *cases[][2] = {{"tests/fixtures/tiny-classify.h5", "tests/fixtures/tiny-images.h5"},
                              {"tests/fixtures/tiny-lm.h5", "tests/fixtures/tiny-tokens.h5"},
                              {"tests/fixtures/routers/tiny-classify-cosine.h5",
                               "tests/fixtures/tiny-images.h5"}};
    const mr_compress_type *types[] = {&mr_compress_prune_freq, &mr_compress_prune_reap,
                                       &mr_compress_merge_msmoe, &mr_compress_merge_uncurl};
    for (int i = 0; i < 3; i++) {
        mr_model *m = load(cases[i][0]);
        mr_calib *c = calibrate(m, cases[i][1], 8);
        for (int t = 0; t < 4; t++) {
            mr_compress_result res;
            run(&res, m, c, types[t], m->cfg.n_experts);
            same_weights(m, res.model); /* every tensor, router tensors included */
            for (int e = 0; e < m->cfg.n_experts; e++) ck_assert_int_eq(res.group_of[e], e);
            mr_compress_result_free(&res);
        }
        mr_calib_free(c);
        mr_model_free(m);
    }
}
END_TEST

/* A method that groups {0, 1} and keeps every other expert alone, with `rep01` as the
 * pair's representative. */
static int rep01;
static int group_pair(int *group_of, int *rep, const mr_compress_stats *s)
{
    group_of[0] = group_of[1] = 0;
    rep[0] = rep01;
    for (int e = 2; e < s->E; e++) group_of[e] = e - 1, rep[e - 1] = e;
    return MR_OK;
}
static const mr_compress_type merge_pair = {"merge-pair", "test", 0, 1, 0, group_pair};

START_TEST(merging_a_permuted_copy_recovers_the_expert)
{
    mr_model *m = load("tests/fixtures/tiny-classify.h5");
    int L = m->cfg.moe_layers[0], h = m->cfg.expert_hidden, d = m->cfg.d_model;
    int perm[64];
    for (int a = 0; a < h; a++) perm[a] = (a * 5 + 3) % h; /* 5 is coprime with h = 8 */
    permuted_copy(m, L, 1, 0, perm);
    ck_assert(!expert_equal(m, L, 1, m, L, 0)); /* really permuted */
    mr_calib *c = calibrate(m, "tests/fixtures/tiny-images.h5", 8);
    for (rep01 = 0; rep01 <= 1; rep01++) {
        mr_compress_result res;
        run(&res, m, c, &merge_pair, m->cfg.n_experts - 1);
        ck_assert_int_eq(res.model->cfg.n_experts, m->cfg.n_experts - 1);
        /* the merged expert is the representative itself, bit for bit, whatever the
         * usage frequencies; the others are copied */
        ck_assert(expert_equal(res.model, L, 0, m, L, rep01));
        for (int e = 2; e < m->cfg.n_experts; e++) ck_assert(expert_equal(res.model, L, e - 1, m, L, e));
        /* router rows: the representative's, then the kept experts' */
        const mr_layer *a = &res.model->layers[L], *b = &m->layers[L];
        ck_assert_int_eq(memcmp(a->gate_w, b->gate_w + rep01 * d, d * sizeof(float)), 0);
        ck_assert(a->gate_b[0] == b->gate_b[rep01]);
        ck_assert_int_eq(memcmp(a->gate_w + d, b->gate_w + 2 * d, (size_t)(m->cfg.n_experts - 2) * d * sizeof(float)), 0);
        mr_compress_result_free(&res);
    }
    mr_calib_free(c);
    mr_model_free(m);
}
END_TEST

START_TEST(alignment_undoes_a_permutation)
{
    mr_model *m = load("tests/fixtures/tiny-lm.h5");
    int L = m->cfg.moe_layers[1], h = m->cfg.expert_hidden, d = m->cfg.d_model;
    int perm[64];
    for (int a = 0; a < h; a++) perm[a] = h - 1 - a;
    permuted_copy(m, L, 3, 2, perm);
    float w1[64 * 64], b1[64], w2[64 * 64];
    ck_assert_int_eq(mr_compress_align(w1, b1, w2, &m->layers[L], 2, &m->layers[L], 3, &m->cfg),
                     MR_OK);
    const mr_layer *l = &m->layers[L];
    ck_assert_int_eq(memcmp(w1, l->exp_w1 + 2 * h * d, (size_t)h * d * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(b1, l->exp_b1 + 2 * h, (size_t)h * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(w2, l->exp_w2 + 2 * d * h, (size_t)d * h * sizeof(float)), 0);
    /* aligning an expert to itself changes nothing */
    ck_assert_int_eq(mr_compress_align(w1, b1, w2, l, 0, l, 0, &m->cfg), MR_OK);
    ck_assert_int_eq(memcmp(w1, l->exp_w1, (size_t)h * d * sizeof(float)), 0);
    mr_model_free(m);
}
END_TEST

START_TEST(msmoe_grouping_known_answer)
{
    /* usage: 3 and 1 dominant (K = 2); 0 is closer to 1, 2 to 3, 4 ties (-> the more used) */
    int64_t counts[5] = {10, 30, 5, 40, 15};
    double freq[5] = {0.1, 0.3, 0.05, 0.4, 0.15};
    double sim[25] = {1,   0.9, 0.2, 0.3, 0.5, /* */
                      0.9, 1,   0.1, 0.2, 0.6, /* */
                      0.2, 0.1, 1,   0.8, 0.4, /* */
                      0.3, 0.2, 0.8, 1,   0.6, /* */
                      0.5, 0.6, 0.4, 0.6, 1};
    mr_compress_stats s = {5, 2, 1, counts, freq, sim, NULL};
    int group_of[5], rep[2];
    ck_assert_int_eq(mr_compress_group_dominant(group_of, rep, &s), MR_OK);
    ck_assert_int_eq(rep[0], 3);
    ck_assert_int_eq(rep[1], 1);
    int want[5] = {1, 1, 0, 0, 0};
    for (int e = 0; e < 5; e++) ck_assert_int_eq(group_of[e], want[e]);
}
END_TEST

START_TEST(spectral_clustering_finds_blocks)
{
    /* two blocks of strongly similar experts, {0, 2, 5} and {1, 3, 4}; and three */
    double sim[36];
    int blk[6] = {0, 1, 0, 1, 1, 0};
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) sim[a * 6 + b] = a == b ? 1.0 : blk[a] == blk[b] ? 0.9 : 0.05;
    int lab[6];
    ck_assert_int_eq(mr_compress_spectral(lab, sim, 6, 2, 0), MR_OK);
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) ck_assert_int_eq(lab[a] == lab[b], blk[a] == blk[b]);
    int blk3[6] = {0, 1, 2, 0, 1, 2};
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) sim[a * 6 + b] = a == b ? 1.0 : blk3[a] == blk3[b] ? 0.95 : 0.1;
    ck_assert_int_eq(mr_compress_spectral(lab, sim, 6, 3, 0), MR_OK);
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++) ck_assert_int_eq(lab[a] == lab[b], blk3[a] == blk3[b]);
    /* identical experts and more groups than distinct points: every group non-empty */
    for (int i = 0; i < 36; i++) sim[i] = 1.0;
    ck_assert_int_eq(mr_compress_spectral(lab, sim, 6, 4, 0), MR_OK);
    int size[4] = {0};
    for (int a = 0; a < 6; a++) size[lab[a]]++;
    for (int g = 0; g < 4; g++) ck_assert_int_gt(size[g], 0);
}
END_TEST

/* Experts with zero W2 output a constant b2: REAP's saliency is then mean(g) * |b2|, with
 * the gate weights g read from the calibration; identical gate rows give similarity 1,
 * opposite ones 0. */
START_TEST(reap_saliency_and_similarity_known_answers)
{
    mr_model *m = load("tests/fixtures/tiny-classify.h5");
    int L = m->cfg.moe_layers[0], E = m->cfg.n_experts, d = m->cfg.d_model, h = m->cfg.expert_hidden;
    mr_layer *l = &m->layers[L];
    memset(l->exp_w2, 0, (size_t)E * d * h * sizeof(float));
    for (int e = 0; e < E; e++)
        for (int j = 0; j < d; j++) l->exp_b2[e * d + j] = (j == 0 ? 3.0f : 0.0f) * (float)(e + 1);
    memcpy(l->gate_w + d, l->gate_w, (size_t)d * sizeof(float));
    l->gate_b[1] = l->gate_b[0];
    for (int j = 0; j < d; j++) l->gate_w[3 * d + j] = -l->gate_w[2 * d + j];
    l->gate_b[3] = -l->gate_b[2];
    mr_calib *c = calibrate(m, "tests/fixtures/tiny-images.h5", 8);
    double sal[8], sim[64];
    ck_assert_int_eq(mr_calib_reap(sal, c, m, l, 0), MR_OK);
    for (int e = 0; e < E; e++) {
        double gs = 0.0;
        long n = 0;
        for (int t = 0; t < c->n_tok; t++)
            for (int j = 0; j < c->k; j++)
                if (c->topk[t * c->k + j] == e) gs += c->weights[t * c->k + j], n++;
        double want = n ? gs / n * 3.0 * (e + 1) : 0.0;
        ck_assert_double_eq_tol(sal[e], want, 1e-6 * (1.0 + want));
    }
    ck_assert_int_eq(mr_calib_logit_similarity(sim, c, l, 0), MR_OK);
    ck_assert_double_eq_tol(sim[0 * E + 1], 1.0, 1e-12);
    ck_assert_double_eq_tol(sim[2 * E + 3], 0.0, 1e-12);
    for (int a = 0; a < E; a++) {
        ck_assert_double_eq(sim[a * E + a], 1.0);
        for (int b = 0; b < E; b++) ck_assert(sim[a * E + b] == sim[b * E + a]);
    }
    mr_calib_free(c);
    mr_model_free(m);
}
END_TEST

/* Low rank + sparse: keeping all of S gives back W; the parameter ratio counts r (rows +
 * cols) plus the kept rows. As in the reference, the threshold is the kth smallest row
 * score and only rows strictly below it go, so the row holding it stays: keep = 0 leaves
 * L R plus the single highest-scoring row (rank <= r + 1), keep = 0.5 of 12 rows keeps 7. */
START_TEST(lowrank_sparse_known_answers)
{
    enum { R = 12, C = 7 };
    float w[R * C], w0[R * C];
    for (int i = 0; i < R * C; i++) w0[i] = (float)sin(0.7 * i) + (float)(i % 5) * 0.1f;
    float *mats[1] = {w};
    int rows[1] = {R}, cols[1] = {C};
    double ratio;
    memcpy(w, w0, sizeof w);
    mr_lowrank_opts o = {2, 1.0};
    ck_assert_int_eq(mr_lowrank_sparse(mats, rows, cols, 1, &o, &ratio), MR_OK);
    for (int i = 0; i < R * C; i++) ck_assert_float_eq_tol(w[i], w0[i], 1e-5f);
    ck_assert_double_eq_tol(ratio, (2.0 * (R + C) + R * C) / (R * C), 1e-12);
    memcpy(w, w0, sizeof w);
    o.sparse_keep = 0.0;
    ck_assert_int_eq(mr_lowrank_sparse(mats, rows, cols, 1, &o, &ratio), MR_OK);
    ck_assert_double_eq_tol(ratio, (2.0 * (R + C) + C) / (R * C), 1e-12);
    gsl_matrix *A = gsl_matrix_alloc(R, C), *V = gsl_matrix_alloc(C, C);
    gsl_vector *S = gsl_vector_alloc(C);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) gsl_matrix_set(A, i, j, w[i * C + j]);
    gsl_linalg_SV_decomp_jacobi(A, V, S);
    ck_assert_double_gt(gsl_vector_get(S, 2), 1e-3);
    ck_assert_double_lt(gsl_vector_get(S, 3), 1e-5 * gsl_vector_get(S, 0));
    gsl_matrix_free(A), gsl_matrix_free(V), gsl_vector_free(S);
    /* k = 42 of 84 entries: the 6th lowest row score is the threshold, 5 rows go */
    memcpy(w, w0, sizeof w);
    o.sparse_keep = 0.5;
    ck_assert_int_eq(mr_lowrank_sparse(mats, rows, cols, 1, &o, &ratio), MR_OK);
    ck_assert_double_eq_tol(ratio, (2.0 * (R + C) + 7 * C) / (R * C), 1e-12);
}
END_TEST

/* Compressing a subset of the MoE blocks keeps E slots: the other block is unchanged,
 * merged members share their group's expert and keep their router rows; pruned experts
 * are masked in the gate and never chosen. */
START_TEST(slot_form_for_a_subset_of_blocks)
{
    mr_model *m = load("tests/fixtures/tiny-lm.h5");
    mr_calib *c = calibrate(m, "tests/fixtures/tiny-tokens.h5", 6);
    int E = m->cfg.n_experts, d = m->cfg.d_model, Lc = m->cfg.moe_layers[1], Lu = m->cfg.moe_layers[0];
    mr_compress_opts o;
    mr_compress_opts_init(&o);
    o.experts = 2;
    o.n_layers = 1;
    o.layers = &Lc;
    mr_compress_result res;
    ck_assert_msg(mr_compress_run(&res, m, c, &mr_compress_merge_msmoe, &o) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(res.slots, 1);
    ck_assert_int_eq(res.model->cfg.n_experts, E);
    for (int e = 0; e < E; e++) ck_assert(expert_equal(res.model, Lu, e, m, Lu, e));
    const mr_layer *a = &res.model->layers[Lc], *b = &m->layers[Lc];
    ck_assert_int_eq(memcmp(a->gate_w, b->gate_w, (size_t)E * d * sizeof(float)), 0);
    for (int e = 0; e < E; e++) {
        int g = res.group_of[e];
        ck_assert(expert_equal(res.model, Lc, e, res.model, Lc, res.rep[g]));
    }
    mr_compress_result_free(&res);
    ck_assert_int_eq(mr_compress_run(&res, m, c, &mr_compress_prune_freq, &o), MR_OK);
    a = &res.model->layers[Lc];
    mr_calib *c2 = calibrate(res.model, "tests/fixtures/tiny-tokens.h5", 6);
    int64_t counts[16];
    mr_calib_counts(counts, c2, 1);
    for (int e = 0; e < E; e++) {
        if (res.group_of[e] >= 0) {
            ck_assert(expert_equal(res.model, Lc, e, m, Lc, e));
        } else {
            ck_assert(a->gate_b[e] == -1e4f);
            ck_assert_int_eq(counts[e], 0); /* masked: never routed to */
        }
    }
    mr_calib_free(c2);
    mr_compress_result_free(&res);
    mr_calib_free(c);
    mr_model_free(m);
}
END_TEST

/* Per-expert router tensors keep the representatives' rows, and the result runs with
 * the router the model was trained with. */
START_TEST(per_expert_router_tensors_follow_the_kept_experts)
{
    mr_model *m = load("tests/fixtures/routers/tiny-classify-cosine.h5");
    mr_calib *c = calibrate(m, "tests/fixtures/tiny-images.h5", 8);
    mr_compress_result res;
    run(&res, m, c, &mr_compress_prune_reap, 3);
    int L = m->cfg.moe_layers[0];
    const mr_named_tensor *s = mr_layer_router_tensor(&m->layers[L], "expert_emb");
    const mr_named_tensor *t = mr_layer_router_tensor(&res.model->layers[L], "expert_emb");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->dims[0], 3);
    size_t row = s->dims[1];
    for (int g = 0; g < 3; g++)
        ck_assert_int_eq(memcmp(t->data + g * row, s->data + res.rep[g] * row, row * sizeof(float)), 0);
    const mr_named_tensor *p = mr_layer_router_tensor(&res.model->layers[L], "proj_w");
    ck_assert_int_eq(memcmp(p->data, mr_layer_router_tensor(&m->layers[L], "proj_w")->data,
                            p->size * sizeof(float)), 0);
    mr_calib *c2 = calibrate(res.model, "tests/fixtures/tiny-images.h5", 8);
    mr_calib_free(c2);
    mr_compress_result_free(&res);
    mr_calib_free(c);
    mr_model_free(m);
}
END_TEST

START_TEST(bad_requests_are_refused)
{
    mr_model *m = load("tests/fixtures/tiny-classify.h5");
    mr_compress_opts o;
    mr_compress_opts_init(&o);
    int bad_k[] = {0, -3, 5, 1};
    const char *needle[] = {"must be positive", "must be positive", "more than", "fewer than"};
    for (int i = 0; i < 4; i++) {
        o.experts = bad_k[i];
        ck_assert_int_eq(mr_compress_check(m, &mr_compress_prune_freq, &o), MR_EINPUT);
        ck_assert_ptr_nonnull(strstr(mr_error_message(), needle[i]));
        ck_assert_ptr_nonnull(strstr(mr_error_message(), "tiny-classify.h5"));
    }
    o.experts = 2;
    int not_moe = 0;
    o.n_layers = 1;
    o.layers = &not_moe;
    ck_assert_int_eq(mr_compress_check(m, &mr_compress_prune_freq, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "not an MoE block"));
    o.n_layers = 0;
    o.rank = 0;
    ck_assert_int_eq(mr_compress_check(m, &mr_compress_mc_smoe, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "--rank"));
    mr_model_free(m);
    /* pruning a subset of blocks masks the gate: refused for a router that ignores it */
    m = load("tests/fixtures/routers/tiny-lm-cosine.h5");
    mr_compress_opts_init(&o);
    o.experts = 2;
    o.n_layers = 1;
    o.layers = &m->cfg.moe_layers[0];
    ck_assert_int_eq(mr_compress_check(m, &mr_compress_prune_freq, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "cosine"));
    ck_assert_int_eq(mr_compress_check(m, &mr_compress_merge_msmoe, &o), MR_OK);
    mr_model_free(m);
    ck_assert_ptr_null(mr_compress_lookup("prune-random"));
    ck_assert_ptr_eq(mr_compress_lookup("mc-smoe"), &mr_compress_mc_smoe);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compress");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, pruning_or_merging_to_all_experts_is_the_identity);
    tcase_add_test(tc, merging_a_permuted_copy_recovers_the_expert);
    tcase_add_test(tc, alignment_undoes_a_permutation);
    tcase_add_test(tc, msmoe_grouping_known_answer);
    tcase_add_test(tc, spectral_clustering_finds_blocks);
    tcase_add_test(tc, reap_saliency_and_similarity_known_answers);
    tcase_add_test(tc, lowrank_sparse_known_answers);
    tcase_add_test(tc, slot_form_for_a_subset_of_blocks);
    tcase_add_test(tc, per_expert_router_tensors_follow_the_kept_experts);
    tcase_add_test(tc, bad_requests_are_refused);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
