/* The importer and the engine on Hugging Face MoE families (format v2) vs their PyTorch
 * implementation.
 *
 * tests/fixtures/hf/ (tools/make_hf_fixture.py --fixtures) holds, per family (mixtral,
 * qwen2_moe, qwen3_moe, olmoe) and weight dtype (f32, bf16), a tiny random checkpoint in
 * the Hugging Face layout, the same weights converted to format v2 by tools/hf_moe.py
 * (FAMILY-DTYPE.h5), and ref-FAMILY-DTYPE[-ROUTER].h5: tools/hf_moe.py's forward pass
 * (written from the transformers modeling files) on tests/fixtures/hf/tokens.h5, with the
 * family's own routing or a training-free router of tools/moe_model.py swapped in.
 *
 * Tolerances are tests/mr_parity.h's: logits and routing probabilities NMSE < 1e-6, the
 * same top-k sets except where PyTorch's own margin is below 1e-5 (an exact tie within
 * float rounding). Coverage is part of the test: every family in both dtypes, and the
 * swapped routers similarity, attention and ac, each far from what the family's own
 * routing computes (a router that silently fell back to it would otherwise pass);
 * attention and ac also on the grouped-query families (mixtral, qwen3_moe: 4 query heads
 * over 2 key/value heads) and across qwen3_moe's non-adjacent MoE layers 1 and 3.
 *
 * imported_checkpoints_match: mr_hf_import (the C importer: cJSON, the project's
 * safetensors parser, bf16 and f16 -> float32) on each checkpoint (and mixtral-f16) gives
 * exactly the weights the
 * PyTorch side converted (every float of the two models' arenas equal), and the imported
 * model passes the same parity checks. */
#include <glob.h>

#include <unistd.h>

#include "analysis/mr_grad.h"
#include "io/mr_hf_import.h"
#include "mr_parity.h"
#include "mr_test_tmp.h"

static const char *const families[] = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};
static const char *const swaps[] = {"similarity", "attention", "ac"};
#define N_FAMILIES 4
#define N_SWAPS 3
#define DISTINCT_NMSE 1e-4

static void ref_attr(const char *ref, const char *name, char *buf, size_t cap)
{
    hid_t f;
    ck_assert_msg(mr_h5_open_read(&f, ref) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_h5_attr_string(f, ref, name, buf, cap, NULL) == MR_OK, "%s",
                  mr_error_message());
    H5Fclose(f);
}

START_TEST(converted_models_match_pytorch)
{
    glob_t g;
    ck_assert_int_eq(glob("tests/fixtures/hf/ref-*.h5", 0, NULL, &g), 0);
    int seen[N_FAMILIES][2] = {{0}}, swapped[N_SWAPS] = {0};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *ref = g.gl_pathv[i];
        char router[64], model[512];
        ref_attr(ref, "router", router, sizeof router);
        ref_attr(ref, "model", model, sizeof model);
        mr_parity_result res;
        mr_parity_check(ref, router, NULL, &res, 1);
        ck_assert_int_eq(res.task, MR_TASK_LM);
        for (int f = 0; f < N_FAMILIES; f++) {
            char name[64];
            for (int dt = 0; dt < 2; dt++) {
                snprintf(name, sizeof name, "tests/fixtures/hf/%s-%s.h5", families[f],
                         dt ? "bf16" : "f32");
                if (strcmp(model, name) == 0 && strcmp(router, "softmax") == 0) seen[f][dt]++;
            }
        }
        for (int s = 0; s < N_SWAPS; s++) {
            if (strcmp(router, swaps[s]) != 0) continue;
            swapped[s]++;
            mr_parity_result base;
            mr_parity_check(ref, "softmax", NULL, &base, 0);
            double far = base.logits_nmse > base.probs_nmse ? base.logits_nmse : base.probs_nmse;
            ck_assert_msg(far > DISTINCT_NMSE,
                          "%s: the family's own routing reproduces the %s reference (nmse %g)",
                          ref, router, far);
        }
    }
    for (int f = 0; f < N_FAMILIES; f++)
        for (int dt = 0; dt < 2; dt++)
            ck_assert_msg(seen[f][dt] == 1, "no reference for %s %s", families[f],
                          dt ? "bf16" : "f32");
    for (int s = 0; s < N_SWAPS; s++)
        ck_assert_msg(swapped[s] >= 1, "no reference with the %s router swapped in", swaps[s]);
    globfree(&g);
}
END_TEST

/* The ref's `model` attribute with the imported model in its place. */
static void check_imported(const char *ref, const char *imported)
{
    char router[64];
    ref_attr(ref, "router", router, sizeof router);
    mr_parity_result res;
    mr_parity_check_model(ref, imported, router, NULL, &res, 1);
}

START_TEST(imported_checkpoints_match)
{
    static const char *const dtypes[] = {"f32", "bf16", "f16"};
    for (int f = 0; f < N_FAMILIES; f++)
        for (int dt = 0; dt < 3; dt++) {
            if (dt == 2 && f != 0) continue; /* f16: mixtral only */
            const char *dts = dtypes[dt];
            char dir[200], conv[256], out[64] = "/tmp/mr-hf-import-XXXXXX";
            snprintf(dir, sizeof dir, "tests/fixtures/hf/%s-%s", families[f], dts);
            snprintf(conv, sizeof conv, "%s.h5", dir);
            mr_test_temp_file(out);
            ck_assert_msg(mr_hf_import(dir, out, NULL) == MR_OK, "%s: %s", dir, mr_error_message());
            mr_model *a, *b;
            ck_assert_msg(mr_model_load(&a, out) == MR_OK, "%s", mr_error_message());
            ck_assert_msg(mr_model_load(&b, conv) == MR_OK, "%s", mr_error_message());
            ck_assert_uint_eq(a->n_arena, b->n_arena);
            ck_assert_uint_eq(a->n_params, b->n_params);
            ck_assert_msg(memcmp(a->arena, b->arena, a->n_arena * sizeof(float)) == 0,
                          "%s: imported weights differ from tools/hf_moe.py's", dir);
            ck_assert_msg(memcmp(&a->cfg.q_dim, &b->cfg.q_dim, 3 * sizeof(int)) == 0 &&
                              a->cfg.tie_head == b->cfg.tie_head &&
                              a->cfg.shared_hidden == b->cfg.shared_hidden &&
                              a->cfg.qk_norm == b->cfg.qk_norm &&
                              a->cfg.rope_theta == b->cfg.rope_theta &&
                              a->cfg.rope_scaling == b->cfg.rope_scaling &&
                              a->cfg.clip_qkv == b->cfg.clip_qkv &&
                              a->cfg.norm_eps == b->cfg.norm_eps &&
                              a->cfg.n_kv_heads == b->cfg.n_kv_heads &&
                              a->cfg.max_seq_len == b->cfg.max_seq_len &&
                              a->cfg.gate_norm == b->cfg.gate_norm && a->cfg.n_moe == b->cfg.n_moe,
                          "%s: imported configuration differs from tools/hf_moe.py's", dir);
            mr_model_free(a);
            mr_model_free(b);
            glob_t g;
            char pat[300];
            snprintf(pat, sizeof pat, "tests/fixtures/hf/ref-%s-%s*.h5", families[f], dts);
            ck_assert_int_eq(glob(pat, 0, NULL, &g), 0);
            for (size_t i = 0; i < g.gl_pathc; i++) check_imported(g.gl_pathv[i], out);
            globfree(&g);
            unlink(out);
        }
}
END_TEST

/* The input-gradient pass (analysis/mr_grad.c) implements format 1 only: it refuses a
 * format 2 model instead of differentiating the wrong computation. */
START_TEST(format2_has_no_gradient_yet)
{
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/hf/olmoe-f32.h5"), MR_OK);
    mr_router *r;
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    ck_assert_int_eq(mr_grad_check(m, r), MR_EINPUT); /* swiglu */
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "swiglu"));
    m->cfg.activation = MR_ACT_GELU; /* still RMSNorm, RoPE, q/k norms: refused as format 2 */
    ck_assert_int_eq(mr_grad_check(m, r), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "format 2"));
    mr_router_free(r);
    mr_model_free(m);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("hf_parity");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, converted_models_match_pytorch);
    tcase_add_test(tc, imported_checkpoints_match);
    tcase_add_test(tc, format2_has_no_gradient_yet);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
