/* Evaluation driver: bit-identical results for any thread count, --save-routing
 * contents equal to the engine's trace, and an atomic output file. */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "harness/mr_eval.h"
#include "io/mr_h5.h"
#include "io/mr_model_io.h"
#include "mr_test_tmp.h"
#include "mr_test_util.h"

static void run(mr_eval_result *res, const char *model, const char *data, int threads,
                int batch, const char *save)
{
    mr_model *m;
    mr_dataset *d;
    mr_router *r;
    ck_assert_msg(mr_model_load(&m, model) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_dataset_load(&d, data, 0) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    mr_eval_opts o;
    mr_eval_opts_init(&o, m);
    o.engine.batch = batch;
    o.threads = threads;
    o.save_routing = save;
    o.bootstrap = 200;
    ck_assert_msg(mr_eval_run(res, m, r, d, &o) == MR_OK, "%s", mr_error_message());
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
}

static void same_bits(const mr_eval_result *a, const mr_eval_result *b)
{
    ck_assert_int_eq(a->n, b->n);
    const mr_eval_pass *x = &a->clean, *y = &b->clean;
    ck_assert_int_eq(memcmp(x->loss, y->loss, a->n * sizeof(double)), 0);
    ck_assert_int_eq(memcmp(x->correct, y->correct, a->n * sizeof(double)), 0);
    size_t ps = (size_t)a->n * a->n_moe * sizeof(double);
    ck_assert_int_eq(memcmp(x->routing->entropy, y->routing->entropy, ps), 0);
    ck_assert_int_eq(memcmp(x->routing->wentropy, y->routing->wentropy, ps), 0);
    size_t ls = (size_t)a->n_moe * a->E * sizeof(int64_t);
    ck_assert_int_eq(memcmp(x->routing->load, y->routing->load, ls), 0);
    ck_assert_int_eq(memcmp(x->routing->psum, y->routing->psum, ls), 0);
    ck_assert_int_eq(memcmp(&x->loss_ci, &y->loss_ci, sizeof x->loss_ci), 0);
    ck_assert_int_eq(memcmp(&x->accuracy, &y->accuracy, sizeof x->accuracy), 0);
    for (int mi = 0; mi < a->n_moe; mi++) {
        ck_assert_int_eq(memcmp(&x->layers[mi].entropy, &y->layers[mi].entropy, sizeof(mr_ci)), 0);
        ck_assert_int_eq(memcmp(&x->layers[mi].aux_loss, &y->layers[mi].aux_loss, sizeof(double)), 0);
    }
}

START_TEST(threads_do_not_change_bits)
{
    const char *cases[][2] = {{"tests/fixtures/tiny-classify.h5", "tests/fixtures/tiny-images.h5"},
                              {"tests/fixtures/tiny-lm.h5", "tests/fixtures/tiny-tokens.h5"}};
    for (int i = 0; i < 2; i++) {
        mr_eval_result a, b, c;
        run(&a, cases[i][0], cases[i][1], 1, 2, NULL);
        run(&b, cases[i][0], cases[i][1], 2, 2, NULL);
        run(&c, cases[i][0], cases[i][1], 3, 2, NULL);
        same_bits(&a, &b);
        same_bits(&a, &c);
        ck_assert(isfinite(a.clean.loss_ci.mean) && a.clean.loss_ci.mean > 0.0);
        for (int mi = 0; mi < a.n_moe; mi++) {
            const mr_layer_routing *l = &a.clean.layers[mi];
            ck_assert(l->entropy.mean >= 0.0);
            ck_assert(l->entropy.mean <= log((double)a.E) + 1e-9);
            ck_assert(l->entropy.lo <= l->entropy.mean && l->entropy.mean <= l->entropy.hi);
        }
        mr_eval_result_free(&a);
        mr_eval_result_free(&b);
        mr_eval_result_free(&c);
    }
}
END_TEST

START_TEST(batch_size_changes_at_most_rounding)
{
    mr_eval_result a, b;
    run(&a, "tests/fixtures/tiny-lm.h5", "tests/fixtures/tiny-tokens.h5", 1, 1, NULL);
    run(&b, "tests/fixtures/tiny-lm.h5", "tests/fixtures/tiny-tokens.h5", 1, 4, NULL);
    for (int s = 0; s < a.n; s++)
        ck_assert_double_le(fabs(a.clean.loss[s] - b.clean.loss[s]), 1e-5);
    mr_eval_result_free(&a);
    mr_eval_result_free(&b);
}
END_TEST

START_TEST(save_routing_writes_the_trace)
{
    char out[] = "/tmp/mr-test-routing-XXXXXX";
    mr_test_temp_file(out);
    mr_eval_result a;
    run(&a, "tests/fixtures/tiny-classify.h5", "tests/fixtures/tiny-images.h5", 2, 3, out);
    hid_t f;
    ck_assert_msg(mr_h5_open_read(&f, out) == MR_OK, "%s", mr_error_message());
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-classify.h5"), MR_OK);
    const mr_config *c = &m->cfg;
    mr_h5_info in;
    ck_assert_int_eq(mr_h5_dataset_info(f, out, "/logits", &in), MR_OK);
    ck_assert_int_eq((int)in.dims[0], a.n);
    ck_assert_int_eq((int)in.dims[1], c->n_classes);
    float *logits = malloc(in.dims[0] * in.dims[1] * sizeof *logits);
    ck_assert_int_eq(mr_h5_read_float(f, out, "/logits", logits, in.dims[0] * in.dims[1]),
                     MR_OK);
    /* the saved logits reproduce the per-sample correctness the driver computed */
    mr_dataset *d;
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-images.h5", 0), MR_OK);
    for (int s = 0; s < a.n; s++) {
        const float *l = logits + (size_t)s * c->n_classes;
        int best = 0;
        for (int j = 1; j < c->n_classes; j++) best = l[j] > l[best] ? j : best;
        ck_assert_double_eq(a.clean.correct[s], best == d->labels[s]);
    }
    for (int mi = 0; mi < c->n_moe; mi++) {
        char p[64];
        snprintf(p, sizeof p, "/layers/%d/probs", c->moe_layers[mi]);
        ck_assert_int_eq(mr_h5_dataset_info(f, out, p, &in), MR_OK);
        ck_assert_int_eq(in.rank, 3);
        size_t n = in.dims[0] * in.dims[1] * in.dims[2];
        ck_assert_int_eq((int)in.dims[2], c->n_experts);
        float *probs = malloc(n * sizeof *probs);
        ck_assert_int_eq(mr_h5_read_float(f, out, p, probs, n), MR_OK);
        /* per-sample entropy recomputed from the file equals the driver's */
        for (int s = 0; s < a.n; s++) {
            double h = 0;
            for (hsize_t t = 0; t < in.dims[1]; t++) {
                const float *q = probs + ((size_t)s * in.dims[1] + t) * c->n_experts;
                double sum = 0;
                for (int e = 0; e < c->n_experts; e++) {
                    sum += q[e];
                    if (q[e] > 0) h -= q[e] * log(q[e]);
                }
                ck_assert_double_le(fabs(sum - 1.0), 1e-5);
            }
            ck_assert_double_le(
                fabs(h / in.dims[1] - a.clean.routing->entropy[s * c->n_moe + mi]), 1e-9);
        }
        free(probs);
        snprintf(p, sizeof p, "/layers/%d/topk", c->moe_layers[mi]);
        ck_assert_int_eq(mr_h5_dataset_info(f, out, p, &in), MR_OK);
        ck_assert_int_eq((int)in.dims[2], c->top_k);
    }
    H5Fclose(f);
    /* no temporary file left beside the output */
    char pat[64];
    snprintf(pat, sizeof pat, "%s.tmp-*", out);
    glob_t g;
    ck_assert_int_eq(glob(pat, 0, NULL, &g), GLOB_NOMATCH);
    free(logits);
    mr_dataset_free(d);
    mr_model_free(m);
    mr_eval_result_free(&a);
    unlink(out);
}
END_TEST

START_TEST(top_k_override_and_bad_options)
{
    mr_model *m;
    mr_dataset *d;
    mr_router *r;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-lm.h5"), MR_OK);
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-tokens.h5", 0), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    mr_eval_opts o;
    mr_eval_opts_init(&o, m);
    mr_eval_result res;
    o.engine.top_k = m->cfg.n_experts + 1;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "top_k"));
    /* k = E: every expert used by every token */
    o.engine.top_k = m->cfg.n_experts;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_OK);
    ck_assert(isfinite(res.clean.loss_ci.mean));
    /* with k = E every token uses every expert: loads are exactly equal */
    for (int mi = 0; mi < res.n_moe; mi++) {
        ck_assert_double_eq(res.clean.layers[mi].cv, 0.0);
        ck_assert_int_eq(res.clean.layers[mi].dead, 0);
    }
    mr_eval_result_free(&res);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
}
END_TEST

/* A checkpoint compared with itself never flips; with a different checkpoint it does. */
START_TEST(compare_checkpoint)
{
    mr_model *m, *same, *other;
    mr_dataset *d;
    mr_router *r, *rs, *ro;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-classify.h5"), MR_OK);
    ck_assert_int_eq(mr_model_load(&same, "tests/fixtures/tiny-classify.h5"), MR_OK);
    ck_assert_int_eq(mr_model_load(&other, "tests/fixtures/tiny-classify.h5"), MR_OK);
    /* perturb the second copy's gate so its routing differs */
    const mr_layer *L = &other->layers[other->cfg.moe_layers[0]];
    for (int i = 0; i < other->cfg.n_experts * other->cfg.d_model; i++)
        L->gate_w[i] = (i % 3 == 0) ? -L->gate_w[i] : L->gate_w[i] * 2.0f;
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-images.h5", 0), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&rs, "softmax", same, NULL), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&ro, "softmax", other, NULL), MR_OK);
    mr_eval_opts o;
    mr_eval_opts_init(&o, m);
    o.bootstrap = 100;
    mr_eval_result res;
    o.compare = same;
    o.compare_router = rs;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_OK);
    for (int mi = 0; mi < res.n_moe; mi++) {
        ck_assert_double_eq(res.flip_ckpt.top1_ci[mi].mean, 0.0);
        ck_assert_double_eq(res.flip_ckpt.jaccard_ci[mi].hi, 0.0);
    }
    ck_assert_double_eq(res.flip_ckpt.pred_ci.mean, 0.0);
    mr_eval_result_free(&res);
    o.compare = other;
    o.compare_router = ro;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_OK);
    ck_assert_double_gt(res.flip_ckpt.top1_ci[0].mean, 0.0);
    /* per token, the Jaccard distance of two top-k sets is 0 when the sets agree (no set
     * flip) and 1 - |A n B| / |A u B| >= 1 - (k - 1) / (k + 1) = 2 / (k + 1) when they
     * differ (a set flip): so 2 / (k + 1) set <= jaccard <= set for every token, hence
     * for the means; a perturbed gate flips some sets but not all */
    int k = m->cfg.top_k;
    double set = res.flip_ckpt.set_ci[0].mean, jac = res.flip_ckpt.jaccard_ci[0].mean;
    ck_assert_msg(set > 0.0 && set < 1.0, "set flip mean %g: some, not all, sets change", set);
    ck_assert_msg(jac <= set + 1e-12 && jac >= 2.0 / (k + 1) * set - 1e-12,
                  "jaccard %g outside [2/(k+1), 1] x set flip %g (k = %d)", jac, set, k);
    mr_eval_result_free(&res);
    /* an incompatible checkpoint is refused with both names */
    mr_model *lm;
    mr_router *rl;
    ck_assert_int_eq(mr_model_load(&lm, "tests/fixtures/tiny-lm.h5"), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&rl, "softmax", lm, NULL), MR_OK);
    o.compare = lm;
    o.compare_router = rl;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "cannot be compared"));
    mr_router_free(rl);
    mr_model_free(lm);
    mr_router_free(r);
    mr_router_free(rs);
    mr_router_free(ro);
    mr_dataset_free(d);
    mr_model_free(m);
    mr_model_free(same);
    mr_model_free(other);
}
END_TEST

/* A stand-in corruption for driver tests: invert every pixel. */
static int invert(void *ctx, uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                  uint64_t first, int thread)
{
    (void)ctx;
    (void)first;
    (void)thread;
    for (size_t i = 0; i < (size_t)n * H * W * C; i++) out[i] = (uint8_t)(255 - in[i]);
    return MR_OK;
}

/* a token corruption for the tests: every id shifted by one (mod the vocabulary, 11) */
static int shift_tokens(void *ctx, int32_t *out, const int32_t *in, int n, int cols,
                        uint64_t first, int thread)
{
    (void)ctx, (void)first, (void)thread;
    for (size_t i = 0; i < (size_t)n * cols; i++) out[i] = (in[i] + 1) % 11;
    return MR_OK;
}

START_TEST(cached_clean_pass_equals_live_one)
{
    mr_model *m;
    mr_dataset *d;
    mr_router *r;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-classify.h5"), MR_OK);
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-images.h5", 0), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    mr_eval_corruption inv = {.label = "invert", .images = invert};
    mr_eval_opts o;
    mr_eval_opts_init(&o, m);
    o.bootstrap = 50;
    o.engine.batch = 3;
    o.threads = 2;
    mr_eval_cache *cache, *again;
    ck_assert_int_eq(mr_eval_cache_alloc(&cache, d->n, m->cfg.n_pos, m->cfg.n_moe, 2, 1), MR_OK);
    ck_assert_int_eq(mr_eval_cache_alloc(&again, d->n, m->cfg.n_pos, m->cfg.n_moe, 2, 1), MR_OK);
    mr_eval_result clean, live, cached;
    o.store_cache = cache;
    ck_assert_int_eq(mr_eval_run(&clean, m, r, d, &o), MR_OK);
    o.store_cache = NULL;
    o.corruption = &inv;
    ck_assert_int_eq(mr_eval_run(&live, m, r, d, &o), MR_OK);
    o.clean_cache = cache;
    o.store_cache = again;
    ck_assert_int_eq(mr_eval_run(&cached, m, r, d, &o), MR_OK);
    ck_assert(!cached.has_clean && live.has_clean);
    size_t ps = (size_t)d->n * m->cfg.n_moe * sizeof(double);
    ck_assert_int_eq(memcmp(live.flip_corrupt.top1, cached.flip_corrupt.top1, ps), 0);
    ck_assert_int_eq(memcmp(live.flip_corrupt.jaccard, cached.flip_corrupt.jaccard, ps), 0);
    ck_assert_int_eq(memcmp(live.flip_corrupt.pred, cached.flip_corrupt.pred, d->n * sizeof(double)), 0);
    ck_assert_int_eq(memcmp(live.corrupt.correct, cached.corrupt.correct, d->n * sizeof(double)), 0);
    /* inverting the image moves routing: some flips, all within [0, 1] */
    ck_assert_double_gt(live.flip_corrupt.set_ci[0].mean, 0.0);
    ck_assert_double_le(live.flip_corrupt.set_ci[0].hi, 1.0);
    /* cache vs cache: the clean pass against itself is 0, against the corrupted pass it
     * equals the flips the driver computed */
    mr_eval_flips f;
    ck_assert_int_eq(mr_eval_compare_caches(&f, cache, cache, &o, "self"), MR_OK);
    ck_assert_double_eq(f.top1_ci[0].hi, 0.0);
    mr_eval_flips_free(&f);
    ck_assert_int_eq(mr_eval_compare_caches(&f, cache, again, &o, "x"), MR_OK);
    ck_assert_int_eq(memcmp(f.top1, live.flip_corrupt.top1, ps), 0);
    ck_assert_int_eq(memcmp(f.pred, live.flip_corrupt.pred, d->n * sizeof(double)), 0);
    mr_eval_flips_free(&f);
    mr_eval_result_free(&clean);
    mr_eval_result_free(&live);
    mr_eval_result_free(&cached);
    mr_eval_cache_free(cache);
    mr_eval_cache_free(again);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
}
END_TEST

START_TEST(save_routing_with_a_corruption_keeps_both_passes)
{
    /* issue #23: with a corruption only the corrupted pass was saved, so flips could not
     * be computed from the file. Now both passes, as two traces of format v1 (one
     * condition per file, issue #16): FILE the corrupted pass, its .clean.h5 sibling the
     * clean one; the top-1 flips recomputed from their topk equal the driver's, and the
     * clean sibling equals a clean-only run's file. */
    char out[] = "/tmp/mr-test-routing2-XXXXXX", only[] = "/tmp/mr-test-routing3-XXXXXX";
    mr_test_temp_file(out);
    mr_test_temp_file(only);
    mr_model *m;
    mr_dataset *d;
    mr_router *r;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-lm.h5"), MR_OK);
    ck_assert_int_eq(mr_dataset_load(&d, "tests/fixtures/tiny-tokens.h5", 0), MR_OK);
    ck_assert_int_eq(mr_router_alloc(&r, "softmax", m, NULL), MR_OK);
    mr_eval_corruption shift = {.label = "shift", .tokens = shift_tokens};
    mr_eval_opts o;
    mr_eval_opts_init(&o, m);
    o.bootstrap = 0;
    o.engine.batch = 2;
    o.threads = 2;
    o.save_routing = only;
    mr_eval_result plain, res;
    ck_assert_int_eq(mr_eval_run(&plain, m, r, d, &o), MR_OK);
    o.corruption = &shift;
    o.save_routing = out;
    ck_assert_msg(mr_eval_run(&res, m, r, d, &o) == MR_OK, "%s", mr_error_message());
    hid_t f, g, fc;
    char clean[256];
    ck_assert_int_eq(mr_routing_clean_path(clean, sizeof clean, out), MR_OK);
    ck_assert_int_eq(mr_h5_open_read(&f, out), MR_OK);
    ck_assert_int_eq(mr_h5_open_read(&fc, clean), MR_OK);
    ck_assert_int_eq(mr_h5_open_read(&g, only), MR_OK);
    int T = res.T, k = res.k, n = res.n;
    size_t cnt = (size_t)n * T * k;
    int32_t *a = malloc(cnt * sizeof *a), *b = malloc(cnt * sizeof *b), *p = malloc(cnt * sizeof *p);
    for (int mi = 0; mi < m->cfg.n_moe; mi++) {
        char pa[64], pb[64], pp[64];
        snprintf(pa, sizeof pa, "/layers/%d/topk", m->cfg.moe_layers[mi]);
        snprintf(pb, sizeof pb, "/layers/%d/topk", m->cfg.moe_layers[mi]);
        snprintf(pp, sizeof pp, "/layers/%d/topk", m->cfg.moe_layers[mi]);
        ck_assert_msg(mr_h5_read_int32(fc, clean, pa, a, cnt) == MR_OK, "%s", mr_error_message());
        ck_assert_msg(mr_h5_read_int32(f, out, pb, b, cnt) == MR_OK, "%s", mr_error_message());
        ck_assert_int_eq(mr_h5_read_int32(g, only, pp, p, cnt), MR_OK);
        ck_assert_int_eq(memcmp(a, p, cnt * sizeof *a), 0);
        for (int s = 0; s < n; s++) {
            int flips = 0;
            for (int t = 0; t < T; t++) flips += a[((size_t)s * T + t) * k] != b[((size_t)s * T + t) * k];
            ck_assert_double_eq_tol(res.flip_corrupt.top1[(size_t)s * m->cfg.n_moe + mi],
                                    (double)flips / T, 1e-12);
        }
    }
    mr_h5_info in;
    ck_assert_int_eq(mr_h5_dataset_info(fc, clean, "/token_loss", &in), MR_OK);
    ck_assert_int_eq(mr_h5_dataset_info(f, out, "/token_loss", &in), MR_OK);
    char cond[64];
    ck_assert_int_eq(mr_h5_attr_string(fc, clean, "condition", cond, sizeof cond, NULL), MR_OK);
    ck_assert_str_eq(cond, "clean");
    ck_assert_int_eq(mr_h5_attr_string(f, out, "condition", cond, sizeof cond, NULL), MR_OK);
    ck_assert_str_eq(cond, "shift");
    H5Fclose(f);
    H5Fclose(fc);
    unlink(clean);
    H5Fclose(g);
    free(a);
    free(b);
    free(p);
    unlink(out);
    unlink(only);
    mr_eval_result_free(&plain);
    mr_eval_result_free(&res);
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("driver");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, threads_do_not_change_bits);
    tcase_add_test(tc, batch_size_changes_at_most_rounding);
    tcase_add_test(tc, save_routing_writes_the_trace);
    tcase_add_test(tc, top_k_override_and_bad_options);
    tcase_add_test(tc, compare_checkpoint);
    tcase_add_test(tc, cached_clean_pass_equals_live_one);
    tcase_add_test(tc, save_routing_with_a_corruption_keeps_both_passes);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
