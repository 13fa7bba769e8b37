/* Router interface and the baseline softmax router on hand-made tensors. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "analysis/mr_ops.h" /* mr_simd_avx512_set */
#include "analysis/mr_router.h"
#include "mr_test_util.h"

START_TEST(topk_descending_ties_to_lower_index)
{
    float p[6] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f};
    int idx[3];
    mr_route_topk(idx, p, 6, 3);
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 3);
    ck_assert_int_eq(idx[2], 4);
    int all[6];
    mr_route_topk(all, p, 6, 6);
    ck_assert_int_eq(all[4], 2);
    ck_assert_int_eq(all[5], 5);
}
END_TEST

/* The reference choice: partial selection sort, strict '>' (ties to the lower index, a
 * NaN never greater), as the engine chose before analysis/mr_topk.c. */
static void topk_reference(int *idx, const float *p, int E, int k)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++) taken |= idx[i] == e;
            if (!taken && (best < 0 || p[e] > p[best])) best = e;
        }
        idx[j] = best;
    }
}

/* Every path of mr_route_topk and mr_route_topk_portable (all candidates for E <= 32,
 * the group threshold in AVX-512 registers, where the CPU has them, and in loops; the
 * dispatch with the AVX-512 kernels turned off (the AVX2 kernel of rows of at most 16
 * scores) and with the AVX2 kernels off too; the insertion pass for many ties or
 * k > 16, NaN) against the reference, on scores with
 * many ties (a few levels), signed zeros, infinities and continuous noise. */
START_TEST(topk_matches_selection_sort)
{
    static const int Es[] = {1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 60, 64, 65, 128, 257};
    uint64_t x = 88172645463325252ULL;
    float p[257];
    int got[257], want[257];
    long cases = 0;
    for (size_t ie = 0; ie < sizeof Es / sizeof *Es; ie++) {
        int E = Es[ie];
        for (int kind = 0; kind < 6; kind++) {
            for (int rep = 0; rep < 40; rep++) {
                for (int e = 0; e < E; e++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
                    double u = (double)(x >> 11) / 9007199254740992.0;
                    float v = (float)(u * 8.0 - 4.0);
                    if (kind == 1) v = (float)(int)(u * 4.0);      /* 4 levels: many ties */
                    if (kind == 2) v = u < 0.5 ? 0.0f : -0.0f;      /* all equal */
                    if (kind == 3 && u < 0.1) v = u < 0.05 ? INFINITY : -INFINITY;
                    if (kind == 4 && u < 0.02) v = NAN;
                    if (kind == 5) v = (float)(int)(u * 40.0) / 8.0f; /* 40 levels */
                    p[e] = v;
                }
                for (int k = 1; k <= E && k <= 20; k++) {
                    topk_reference(want, p, E, k);
                    for (int path = 0; path < 5; path++) {
                        /* 2: the dispatch without AVX-512 (the AVX2 kernel for E <= 16
                         * where the CPU has AVX2); 3: AVX-512 without VBMI2; 4: neither
                         * (topk_portable) */
                        mr_simd_avx512_set(path != 2 && path != 4);
                        mr_simd_vbmi2_set(path != 3);
                        mr_simd_avx2_set(path != 4);
                        if (path == 1) mr_route_topk_portable(got, p, E, k);
                        else mr_route_topk(got, p, E, k);
                        for (int j = 0; j < k; j++)
                            ck_assert_msg(got[j] == want[j], "E=%d k=%d kind=%d rep=%d path %d: "
                                          "idx[%d] = %d, expected %d", E, k, kind, rep, path, j,
                                          got[j], want[j]);
                    }
                    cases++;
                }
            }
        }
    }
    mr_simd_avx512_set(1);
    mr_simd_vbmi2_set(1);
    mr_simd_avx2_set(1);
    ck_assert_int_gt(cases, 10000);
}
END_TEST

/* mr_route_topk_tokens (four rows side by side on CPUs with AVX-512 VBMI2 and rows of 33
 * to 64 scores, two with AVX-512 F only) against the reference,
 * row by row, on runs of rows of mixed kinds (noise, ties, infinities, a NaN, more than
 * 16 candidates) so that each row of a pair meets the other's exits, odd and even counts,
 * with and without the AVX-512 and AVX2 kernels. */
START_TEST(topk_tokens_match_selection_sort)
{
    static const int Es[] = {8, 33, 60, 64, 65, 128};
    enum { NT = 9, EMAX = 128 };
    static float p[NT * EMAX];
    int got[NT * 20], want[20];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int path = 0; path < 4; path++) { /* AVX-512 (with VBMI2 where the CPU has
                                              it), AVX2, AVX-512 without VBMI2, none */
        mr_simd_avx512_set(path != 1 && path != 3);
        mr_simd_vbmi2_set(path != 2);
        mr_simd_avx2_set(path != 3);
        for (size_t ie = 0; ie < sizeof Es / sizeof *Es; ie++) {
            int E = Es[ie];
            for (int rep = 0; rep < 30; rep++)
                for (int k = 1; k <= 17 && k <= E; k += 2) {
                    int nt = 1 + (rep + k) % NT;
                    for (int t = 0; t < nt; t++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        int kind = (int)(x % 6);
                        for (int e = 0; e < E; e++) {
                            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                            double u = (double)(x >> 11) / 9007199254740992.0;
                            float v = (float)(u * 8.0 - 4.0);
                            if (kind == 1) v = (float)(int)(u * 4.0);
                            if (kind == 2) v = u < 0.5 ? 0.0f : -0.0f;
                            if (kind == 3 && u < 0.1) v = u < 0.05 ? INFINITY : -INFINITY;
                            if (kind == 4 && u < 0.05) v = NAN;
                            if (kind == 5) v = (float)(int)(u * 40.0) / 8.0f;
                            p[t * E + e] = v;
                        }
                    }
                    mr_route_topk_tokens(got, p, nt, E, k);
                    for (int t = 0; t < nt; t++) {
                        topk_reference(want, p + t * E, E, k);
                        for (int j = 0; j < k; j++)
                            ck_assert_msg(got[t * k + j] == want[j], "path %d E=%d k=%d nt=%d "
                                          "row %d: idx[%d] = %d, expected %d", path, E, k, nt, t,
                                          j, got[t * k + j], want[j]);
                    }
                }
        }
    }
    mr_simd_avx512_set(1);
    mr_simd_vbmi2_set(1);
    mr_simd_avx2_set(1);
}
END_TEST

START_TEST(weights_renorm_and_switch)
{
    float p[4] = {0.1f, 0.4f, 0.2f, 0.3f};
    int idx[2] = {1, 3};
    float w[2];
    mr_route_weights(w, p, idx, 2, MR_GATE_RENORM);
    ck_assert_float_eq_tol(w[0], 4.0f / 7, 1e-7f);
    ck_assert_float_eq_tol(w[1], 3.0f / 7, 1e-7f);
    mr_route_weights(w, p, idx, 2, MR_GATE_NONE);
    ck_assert_float_eq(w[0], 0.4f);
    ck_assert_float_eq(w[1], 0.3f);
}
END_TEST

/* A 1-block model with d = 2, E = 3, identity-like gate, built by hand. */
static mr_model *hand_model(float *gate_w, float *gate_b, int gate_norm, int k)
{
    static mr_layer layer;
    static int moe_layers[1] = {0};
    mr_model *m = calloc(1, sizeof *m);
    memset(&layer, 0, sizeof layer);
    layer.is_moe = 1;
    layer.gate_w = gate_w;
    layer.gate_b = gate_b;
    m->layers = &layer;
    m->cfg.d_model = 2;
    m->cfg.n_layers = 1;
    m->cfg.n_experts = 3;
    m->cfg.top_k = k;
    m->cfg.gate_norm = gate_norm;
    m->cfg.n_moe = 1;
    m->cfg.moe_layers = moe_layers;
    strcpy(m->path, "hand-made");
    return m;
}

START_TEST(softmax_router_known_answer)
{
    float gate_w[3 * 2] = {1, 0, 0, 1, 0, 0}, gate_b[3] = {0, 0, 0.5f};
    mr_model *m = hand_model(gate_w, gate_b, MR_GATE_RENORM, 2);
    mr_router *r;
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    float x[2 * 2] = {2.0f, 0.0f, 0.0f, -1.0f};
    float probs[2 * 3], weights[2 * 2];
    int topk[2 * 2];
    mr_route_ctx ctx = {.model = m, .layer = 0, .B = 1, .T = 2, .k = 2, .x = x};
    ck_assert_int_eq(r->type->route(r->state, &ctx, probs, topk, weights), MR_OK);
    /* token 0: logits (2, 0, 0.5) */
    double z = exp(2.0) + 1.0 + exp(0.5);
    ck_assert_float_eq_tol(probs[0], (float)(exp(2.0) / z), 1e-6f);
    ck_assert_int_eq(topk[0], 0);
    ck_assert_int_eq(topk[1], 2);
    ck_assert_float_eq_tol(weights[0], (float)(exp(2.0) / (exp(2.0) + exp(0.5))), 1e-6f);
    /* token 1: logits (0, -1, 0.5) */
    ck_assert_int_eq(topk[2], 2);
    ck_assert_int_eq(topk[3], 0);
    mr_router_free(r);
    free(m);
}
END_TEST

START_TEST(unknown_router_and_option_are_errors)
{
    float gate_w[6] = {0}, gate_b[3] = {0};
    mr_model *m = hand_model(gate_w, gate_b, MR_GATE_RENORM, 1);
    mr_router *r;
    ck_assert_int_eq(mr_router_alloc(&r, "nosuch", m, NULL), MR_EINPUT);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "nosuch"));
    mr_router_opts o = {0};
    ck_assert_int_eq(mr_router_opts_add(&o, "tau=0.5"), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "tau"));
    ck_assert_int_eq(mr_router_opts_add(&o, "novalue"), MR_EINPUT);
    free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("softmax");
    tcase_set_timeout(tc, 60); /* the top-k sweep: two paths x 16 sizes x 20 k on a loaded host */
    tcase_add_test(tc, topk_descending_ties_to_lower_index);
    tcase_add_test(tc, topk_matches_selection_sort);
    tcase_add_test(tc, topk_tokens_match_selection_sort);
    tcase_add_test(tc, weights_renorm_and_switch);
    tcase_add_test(tc, softmax_router_known_answer);
    tcase_add_test(tc, unknown_router_and_option_are_errors);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
