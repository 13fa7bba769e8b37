/* Input gradients (analysis/mr_grad.h) vs torch.autograd on the PyTorch reference.
 *
 * Each tests/fixtures/grad/ref-*.h5 (tools/export_grad_refs.py) holds the gradient of the
 * summed cross-entropy with respect to the input (image intensities in [0, 1], or an
 * LM's input embeddings) that autograd computes through tools/moe_model.py in float64,
 * for a model, a router and its options. The C backward must match it with normalized
 * MSE < 1e-6 over the samples whose routing both sides decided the same way; a sample
 * whose top-k set (or, for ac, the top-1 label the next block clusters by; or the
 * attention router's min-entropy head) differs from PyTorch's only where PyTorch's own
 * margin is below 1e-5 is a tie: it is excluded, counted and printed. A differing choice
 * at a larger margin fails.
 *
 * The gradient forward must equal the engine's forward bit for bit (logits and top-k)
 * where the suite's own GEMM kernels run (AVX-512, AVX2 + FMA); on OpenBLAS's path (other
 * CPUs, and a second pass here with those kernels off) within 1e-5 of the largest logit.
 * Every reference must also be sensitive to the router's backward: with route_backward
 * (and combine_backward) replaced by no-ops the NMSE must exceed 1e-4, or a router whose
 * gradient was dropped would pass. Coverage: every router on a shipped model, and every
 * shipped Fashion-MNIST variant with its own router. */
#include <glob.h>
#include <math.h>

#include "analysis/mr_grad.h"
#include "analysis/mr_ops.h"
#include "analysis/mr_router_grad.h"
#include "mr_parity.h"

#define GRAD_NMSE_TOL 1e-6
#define SENSITIVE_NMSE 1e-4

enum { MODE_EXACT = 0, MODE_NO_ROUTE_GRAD = 1, MODE_NO_COMBINE_GRAD = 2 };

static int noop_route_backward(const void *s, const mr_route_ctx *c, const mr_route_grad *g)
{
    (void)s, (void)c, (void)g;
    return MR_OK;
}

static int noop_combine_backward(const void *s, const mr_route_ctx *c, const mr_combine_grad *g,
                                 float *dy)
{
    (void)s, (void)c, (void)g, (void)dy;
    return MR_OK;
}

typedef struct case_result {
    double nmse;
    int n, excluded;
    char router[64], optstr[256], model[512];
} case_result;

/* Marks in tie[n] the samples whose routing differs from the reference's at a tie;
 * fails (strict) on a difference at a larger margin. */
static void find_ties(hid_t f, const char *ref, const mr_model *m, const mr_trace *tr,
                      const char *router, int *tie, int strict)
{
    const mr_config *c = &m->cfg;
    int B = tr->B, T = tr->T, k = tr->k;
    for (int mi = 0; mi < c->n_moe; mi++) {
        int L = c->moe_layers[mi];
        char p[128];
        size_t n;
        mr_h5_info in;
        snprintf(p, sizeof p, "/layers/%d/topk", L);
        int32_t *rk = mr_parity_read_i(f, ref, p, &n, &in);
        ck_assert_uint_eq(n, (size_t)B * T * k);
        snprintf(p, sizeof p, "/layers/%d/margin", L);
        float *rm = mr_parity_read_f(f, ref, p, &n);
        snprintf(p, sizeof p, "/layers/%d/top1_margin", L);
        float *r1 = mr_parity_read_f(f, ref, p, &n);
        const int *ck = tr->topk + (size_t)mi * B * T * k;
        /* ac clusters the next block's tokens by this block's top-1 expert */
        int labels_used = strcmp(router, "ac") == 0 && mi + 1 < c->n_moe;
        for (int t = 0; t < B * T; t++) {
            if (!mr_parity_same_set(ck + (size_t)t * k, rk + (size_t)t * k, k)) {
                ck_assert_msg(!strict || rm[t] < MR_PARITY_MARGIN_TOL,
                              "%s: layer %d token %d: top-k differs at PyTorch margin %g", ref,
                              L, t, (double)rm[t]);
                tie[t / T] = 1;
            }
            if (labels_used && ck[(size_t)t * k] != rk[(size_t)t * k]) {
                ck_assert_msg(!strict || r1[t] < MR_PARITY_MARGIN_TOL,
                              "%s: layer %d token %d: top-1 differs at PyTorch margin %g", ref,
                              L, t, (double)r1[t]);
                tie[t / T] = 1;
            }
        }
        snprintf(p, sizeof p, "/layers/%d/head_gap", L);
        if (mr_h5_exists(f, p)) {
            float *gap = mr_parity_read_f(f, ref, p, &n);
            for (int b = 0; b < B; b++)
                if (gap[b] < MR_PARITY_MARGIN_TOL) tie[b] = 1;
            free(gap);
        }
        free(rk);
        free(rm);
        free(r1);
    }
}

/* dL/dlogits of the summed cross-entropy: softmax - onehot, per row of V logits. */
static void ce_grad(float *d, const float *logits, const int32_t *target, int rows, int V,
                    int tstride)
{
    for (int r = 0; r < rows; r++) {
        const float *z = logits + (size_t)r * V;
        double mx = z[0], s = 0.0;
        for (int j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < V; j++) s += exp(z[j] - mx);
        for (int j = 0; j < V; j++)
            d[(size_t)r * V + j] = (float)(exp(z[j] - mx) / s - (j == target[r * tstride]));
    }
}

/* Where the suite's own GEMM micro-kernels run (AVX-512, or AVX2 + FMA: analysis/mr_simd.h)
 * a row's outputs do not depend on the rows that share its call, so the engine and the
 * gradient forward (and all rows against the CLS rows) agree bit for bit. OpenBLAS's
 * sgemm, the path of other CPUs, rounds a row with the number of rows in the call: there
 * the same values within a tolerance of the largest magnitude. */
#define LOGIT_TOL 1e-5
#define GRAD_TOL 1e-5
static int exact_kernels(void) { return mr_simd_avx512() || mr_simd_avx2(); }
static const char *kernels(void)
{
    return mr_simd_avx512() ? "AVX-512 kernels" : mr_simd_avx2() ? "AVX2 kernels" : "OpenBLAS";
}
static double max_dev = 0.0; /* the largest relative difference seen on OpenBLAS's path */
static int same_floats(const float *a, const float *b, size_t n, double tol)
{
    if (exact_kernels()) return memcmp(a, b, n * sizeof *a) == 0;
    double mx = 0.0, d = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return 0;
        mx = fmax(mx, fabs((double)b[i]));
        d = fmax(d, fabs((double)a[i] - b[i]));
    }
    double rel = mx > 0.0 ? d / mx : d;
    max_dev = fmax(max_dev, rel);
    return rel <= tol;
}

static void run_case(const char *ref, int mode, case_result *res)
{
    hid_t f;
    ck_assert_msg(mr_h5_open_read(&f, ref) == MR_OK, "%s", mr_error_message());
    ck_assert_int_eq(mr_h5_attr_string(f, ref, "router", res->router, sizeof res->router, NULL),
                     MR_OK);
    ck_assert_int_eq(mr_h5_attr_string(f, ref, "router_opts", res->optstr, sizeof res->optstr,
                                       NULL), MR_OK);
    ck_assert_int_eq(mr_h5_attr_string(f, ref, "model", res->model, sizeof res->model, NULL),
                     MR_OK);
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, res->model) == MR_OK, "%s", mr_error_message());
    const mr_config *c = &m->cfg;
    mr_router_opts opts;
    mr_parity_parse_opts(&opts, ref, res->optstr);
    mr_router *r;
    ck_assert_msg(mr_router_alloc(&r, res->router, m, &opts) == MR_OK, "%s", mr_error_message());
    mr_router_type blind = *r->type; /* the router with a part of its backward removed */
    mr_router used = *r;
    if (mode == MODE_NO_ROUTE_GRAD) blind.route_backward = noop_route_backward;
    if (mode == MODE_NO_COMBINE_GRAD) blind.combine_backward = noop_combine_backward;
    used.type = &blind;

    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    mr_h5_info in;
    size_t n_in, n;
    int B, T;
    float *x = NULL;
    uint8_t *images = NULL;
    int32_t *tokens = NULL, *labels = NULL;
    if (c->task == MR_TASK_CLASSIFY) {
        ck_assert_int_eq(mr_h5_dataset_info(f, ref, "/inputs/images", &in), MR_OK);
        B = (int)in.dims[0];
        T = c->n_pos;
        n_in = mr_parity_count(&in);
        images = malloc(n_in);
        x = malloc(n_in * sizeof *x);
        ck_assert_int_eq(mr_h5_read_uint8(f, ref, "/inputs/images", images, n_in), MR_OK);
        for (size_t i = 0; i < n_in; i++) x[i] = images[i] / 255.0f;
        labels = mr_parity_read_i(f, ref, "/inputs/labels", &n, &in);
    } else {
        tokens = mr_parity_read_i(f, ref, "/inputs/tokens", &n_in, &in);
        B = (int)in.dims[0];
        T = (int)in.dims[1] - 1;
        eo.seq_len = T;
        n_in = (size_t)B * T * c->d_model;
        x = malloc(n_in * sizeof *x);
        ck_assert_int_eq(mr_grad_embed_tokens(m, x, tokens, B, T, T + 1), MR_OK);
    }
    eo.batch = B;
    mr_grad_ws *g;
    ck_assert_msg(mr_grad_alloc(&g, m, &used, &eo) == MR_OK, "%s", mr_error_message());
    ck_assert_msg((c->task == MR_TASK_CLASSIFY ? mr_grad_forward_images(g, x, B)
                                               : mr_grad_forward_embeddings(g, x, B, T)) == MR_OK,
                  "%s", mr_error_message());
    const mr_trace *tr = mr_grad_trace(g);
    size_t nl = c->task == MR_TASK_CLASSIFY ? (size_t)B * c->n_out : (size_t)B * T * c->n_out;
    if (mode == MODE_EXACT) { /* the engine computes the same forward, bit for bit */
        mr_workspace *ws;
        ck_assert_int_eq(mr_workspace_alloc(&ws, m, r, &eo), MR_OK);
        ck_assert_int_eq(c->task == MR_TASK_CLASSIFY ? mr_engine_forward_images(ws, images, B)
                                                     : mr_engine_forward_tokens(ws, tokens, B, T,
                                                                                T + 1),
                         MR_OK);
        const mr_trace *te = mr_workspace_trace(ws);
        ck_assert_msg(same_floats(te->logits, tr->logits, nl, LOGIT_TOL),
                      "%s: the gradient forward's logits differ from the engine's (%s)", ref,
                      kernels());
        ck_assert_msg(memcmp(te->topk, tr->topk,
                             (size_t)c->n_moe * B * T * tr->k * sizeof(int)) == 0,
                      "%s: the gradient forward's top-k differ from the engine's (%s)", ref,
                      kernels());
        mr_workspace_free(ws);
    }
    float *dlogits = malloc(nl * sizeof *dlogits), *grad = malloc(n_in * sizeof *grad);
    if (c->task == MR_TASK_CLASSIFY)
        ce_grad(dlogits, tr->logits, labels, B, c->n_out, 1);
    else
        for (int b = 0; b < B; b++)
            ce_grad(dlogits + (size_t)b * T * c->n_out, tr->logits + (size_t)b * T * c->n_out,
                    tokens + (size_t)b * (T + 1) + 1, T, c->n_out, 1);
    ck_assert_msg(mr_grad_backward(g, dlogits, NULL, grad) == MR_OK, "%s", mr_error_message());
    if (mode == MODE_EXACT) {
        /* every token's rows in every block (mr_grad_set_all_rows): the same logits,
         * trace and gradient, bit for bit, as the default that skips the last block's
         * rows the head does not read */
        mr_grad_ws *ga;
        ck_assert_int_eq(mr_grad_alloc(&ga, m, &used, &eo), MR_OK);
        mr_grad_set_all_rows(ga, 1);
        ck_assert_int_eq(c->task == MR_TASK_CLASSIFY ? mr_grad_forward_images(ga, x, B)
                                                     : mr_grad_forward_embeddings(ga, x, B, T),
                         MR_OK);
        const mr_trace *ta = mr_grad_trace(ga);
        size_t nr = (size_t)c->n_moe * B * T;
        ck_assert_msg(same_floats(ta->logits, tr->logits, nl, LOGIT_TOL) &&
                          memcmp(ta->topk, tr->topk, nr * tr->k * sizeof(int)) == 0 &&
                          same_floats(ta->weights, tr->weights, nr * tr->k, LOGIT_TOL) &&
                          same_floats(ta->probs, tr->probs, nr * tr->E, LOGIT_TOL),
                      "%s: the forward of every row differs from the default's (%s)", ref,
                      kernels());
        float *ga_grad = malloc(n_in * sizeof *ga_grad);
        ck_assert_int_eq(mr_grad_backward(ga, dlogits, NULL, ga_grad), MR_OK);
        ck_assert_msg(same_floats(ga_grad, grad, n_in, GRAD_TOL),
                      "%s: the input gradient of every row differs from the default's (%s)",
                      ref, kernels());
        free(ga_grad);
        mr_grad_free(ga);
    }

    int *tie = calloc((size_t)B, sizeof *tie);
    find_ties(f, ref, m, tr, res->router, tie, mode == MODE_EXACT);
    float *rg = mr_parity_read_f(f, ref, "/grad", &n);
    ck_assert_uint_eq(n, n_in);
    size_t per = n_in / B;
    double num = 0.0, den = 0.0;
    res->n = B;
    res->excluded = 0;
    for (int b = 0; b < B; b++) {
        if (tie[b]) {
            res->excluded++;
            continue;
        }
        for (size_t i = b * per; i < (b + 1) * per; i++) {
            double dd = (double)grad[i] - rg[i];
            num += dd * dd;
            den += (double)rg[i] * rg[i];
        }
    }
    res->nmse = den > 0.0 ? num / den : num;
    free(tie);
    free(rg);
    free(dlogits);
    free(grad);
    free(x);
    free(images);
    free(tokens);
    free(labels);
    mr_grad_free(g);
    mr_router_free(r);
    mr_model_free(m);
    H5Fclose(f);
}

static int registry_index(const char *name)
{
    for (int i = 0; mr_router_types[i]; i++)
        if (strcmp(mr_router_types[i]->name, name) == 0) return i;
    return -1;
}

START_TEST(input_gradients_match_autograd)
{
    glob_t gl;
    ck_assert_int_eq(glob("tests/fixtures/grad/ref-*.h5", 0, NULL, &gl), 0);
    int shipped[32] = {0}, own_variant[32] = {0}, total_excluded = 0, total = 0;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        const char *ref = gl.gl_pathv[i];
        case_result res, blind;
        run_case(ref, MODE_EXACT, &res);
        printf("%-62s nmse %.3e  (%d of %d samples tie-excluded)\n", ref, res.nmse,
               res.excluded, res.n);
        ck_assert_msg(res.excluded * 2 <= res.n, "%s: %d of %d samples are ties", ref,
                      res.excluded, res.n);
        ck_assert_msg(res.nmse < GRAD_NMSE_TOL, "%s: input gradient nmse %g", ref, res.nmse);
        total += res.n;
        total_excluded += res.excluded;
        run_case(ref, MODE_NO_ROUTE_GRAD, &blind);
        printf("%-62s without the router's backward: nmse %.3e\n", "", blind.nmse);
        ck_assert_msg(blind.nmse > SENSITIVE_NMSE,
                      "%s: without the router's route_backward the nmse is only %g: the "
                      "reference cannot detect a wrong router gradient", ref, blind.nmse);
        const mr_router_type *t = mr_router_lookup(res.router);
        int combine_acts = t->combine && !strstr(res.optstr, "noise=off");
        if (combine_acts) {
            run_case(ref, MODE_NO_COMBINE_GRAD, &blind);
            ck_assert_msg(blind.nmse > SENSITIVE_NMSE,
                          "%s: without combine_backward the nmse is only %g", ref, blind.nmse);
        }
        int ri = registry_index(res.router);
        ck_assert(ri >= 0);
        if (strncmp(res.model, "models/", 7) == 0) {
            shipped[ri]++;
            char own[128];
            snprintf(own, sizeof own, "models/fmnist-vit-moe-%s.h5", res.router);
            own_variant[ri] += strcmp(res.model, own) == 0;
        }
    }
    globfree(&gl);
    printf("%d samples, %d tie-excluded\n", total, total_excluded);
    for (int i = 0; mr_router_types[i]; i++) {
        ck_assert_msg(shipped[i] >= 1, "router %s: no gradient reference on a shipped model",
                      mr_router_types[i]->name);
        ck_assert_msg(own_variant[i] >= 1,
                      "router %s: no gradient reference on its own Fashion-MNIST model",
                      mr_router_types[i]->name);
    }
}
END_TEST

/* The exact mode on OpenBLAS's path (the suite's AVX-512 and AVX2 kernels off, as on a
 * CPU without AVX2): the gradient forward, all rows against the CLS rows, within the
 * tolerances, and the gradients still match autograd */
START_TEST(openblas_path_within_tolerance)
{
    int a512 = mr_simd_avx512(), a2 = mr_simd_avx2();
    mr_simd_avx512_set(0);
    mr_simd_avx2_set(0);
    glob_t gl;
    ck_assert_int_eq(glob("tests/fixtures/grad/ref-*.h5", 0, NULL, &gl), 0);
    max_dev = 0.0;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        case_result res;
        run_case(gl.gl_pathv[i], MODE_EXACT, &res);
        ck_assert_msg(res.excluded * 2 <= res.n, "%s: %d of %d samples are ties",
                      gl.gl_pathv[i], res.excluded, res.n);
        ck_assert_msg(res.nmse < GRAD_NMSE_TOL, "%s: input gradient nmse %g (OpenBLAS)",
                      gl.gl_pathv[i], res.nmse);
    }
    printf("OpenBLAS's path: largest relative difference %.3g (tolerances %g, %g)\n", max_dev,
           LOGIT_TOL, GRAD_TOL);
    globfree(&gl);
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    ck_assert(mr_simd_avx512() == a512 && mr_simd_avx2() == a2);
}
END_TEST

/* A router that cannot be differentiated is refused by name (exit status 2 in the CLI):
 * its forward still runs, its backward does not. */
START_TEST(undifferentiable_router_is_refused)
{
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/tiny-classify.h5"), MR_OK);
    mr_router *r;
    ck_assert_int_eq(mr_router_alloc(&r, "momentum", m, NULL), MR_OK);
    mr_router_type t = *r->type;
    mr_router used = *r;
    used.type = &t;
    t.combine_backward = NULL;
    ck_assert_int_eq(mr_grad_check(m, &used), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "momentum"));
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    eo.batch = 2;
    mr_grad_ws *g = NULL;
    ck_assert_int_eq(mr_grad_alloc(&g, m, &used, &eo), MR_OK);
    const mr_config *c = &m->cfg;
    size_t D = (size_t)c->image_h * c->image_w * c->channels;
    float *x = calloc(2 * D, sizeof *x), *dx = calloc(2 * D, sizeof *dx);
    float dl[2 * 64] = {0};
    ck_assert_int_le(c->n_out, 64);
    ck_assert_int_eq(mr_grad_forward_images(g, x, 2), MR_OK);
    ck_assert_int_eq(mr_grad_backward(g, dl, NULL, dx), MR_EINPUT);
    t.route_backward = NULL;
    ck_assert_int_eq(mr_grad_check(m, &used), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "route_backward"));
    free(x);
    free(dx);
    mr_grad_free(g);
    mr_router_free(r);
    mr_model_free(m);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("grad_parity");
    TCase *tc = tcase_create("autograd");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, input_gradients_match_autograd);
    tcase_add_test(tc, undifferentiable_router_is_refused);
    tcase_add_test(tc, openblas_path_within_tolerance);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
