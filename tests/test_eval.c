/* Evaluation driver: bit-identical results for any thread count, --save-routing
 * contents equal to the engine's trace, and an atomic output file. */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "harness/mr_eval.h"
#include "harness/mr_h5.h"
#include "harness/mr_model_io.h"
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
    mr_engine_opts_init(&o.engine, m);
    o.engine.batch = batch;
    o.threads = threads;
    o.save_routing = save;
    ck_assert_msg(mr_eval_run(res, m, r, d, &o) == MR_OK, "%s", mr_error_message());
    mr_router_free(r);
    mr_dataset_free(d);
    mr_model_free(m);
}

static void same_bits(const mr_eval_result *a, const mr_eval_result *b)
{
    ck_assert_int_eq(a->n, b->n);
    ck_assert_int_eq(memcmp(a->sample_loss, b->sample_loss, a->n * sizeof(double)), 0);
    ck_assert_int_eq(memcmp(a->sample_correct, b->sample_correct, a->n * sizeof(double)), 0);
    ck_assert_int_eq(
        memcmp(a->sample_entropy, b->sample_entropy, (size_t)a->n * a->n_moe * sizeof(double)), 0);
    ck_assert_int_eq(memcmp(&a->loss, &b->loss, sizeof a->loss), 0);
    ck_assert_int_eq(memcmp(&a->accuracy, &b->accuracy, sizeof a->accuracy), 0);
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
        ck_assert(isfinite(a.loss) && a.loss > 0.0);
        for (int mi = 0; mi < a.n_moe; mi++) {
            ck_assert(a.entropy[mi] >= 0.0);
            ck_assert(a.entropy[mi] <= log((double)a.E) + 1e-9);
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
        ck_assert_double_le(fabs(a.sample_loss[s] - b.sample_loss[s]), 1e-5);
    mr_eval_result_free(&a);
    mr_eval_result_free(&b);
}
END_TEST

START_TEST(save_routing_writes_the_trace)
{
    char out[] = "/tmp/mr-test-routing-XXXXXX";
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    close(fd);
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
        ck_assert_double_eq(a.sample_correct[s], best == d->labels[s]);
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
            ck_assert_double_le(fabs(h / in.dims[1] - a.sample_entropy[s * c->n_moe + mi]), 1e-9);
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
    mr_engine_opts_init(&o.engine, m);
    o.threads = 1;
    o.save_routing = NULL;
    mr_eval_result res;
    o.engine.top_k = m->cfg.n_experts + 1;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "top_k"));
    /* k = E: every expert used by every token */
    o.engine.top_k = m->cfg.n_experts;
    ck_assert_int_eq(mr_eval_run(&res, m, r, d, &o), MR_OK);
    ck_assert(isfinite(res.loss));
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
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
