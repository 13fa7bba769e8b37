/* C engine vs a PyTorch reference state file (docs/model-format.md, "Reference state
 * files"), shared by tests/test_parity.c (softmax, tests/fixtures/ref-*.h5) and
 * tests/test_parity_routers.c (every router, tests/fixtures/routers/ref-*.h5).
 *
 * Tolerance rules: logits and routing probabilities with normalized MSE < 1e-6; the
 * same top-k sets at every token except where PyTorch's own top-k margin is below 1e-5
 * (a tie within float rounding); the weights of a matching set within 1e-4, or 1e-3 for
 * ac. Why ac gets more: its per-feature weights are 1 / (MAD + eps) of each cluster
 * (eps = 1e-4), and on a causal LM the clusters of the first positions hold one or two
 * tokens, so a MAD near 0 multiplies float32 rounding by up to 1/eps. Measured at
 * ref-kjv-char-ac-trained-ac.h5, layer 3 token 156 (the worst token of any fixture):
 * 6.3e-5 with OpenBLAS's AVX2 kernels, 1.6e-4 with the CI host's kernels, the same C
 * code. A formula error moves weights by 1e-2 and more, far above either bound.
 *
 * The reference is one forward pass of all its n samples, so the engine runs them as
 * ONE micro-batch (--batch n): routers whose routing depends on the other sequences of
 * the micro-batch (ac group=batch) then see exactly what PyTorch saw.
 *
 * Header-only test code (static functions), included by one test file each. */
#ifndef MR_PARITY_H
#define MR_PARITY_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_engine.h"
#include "analysis/mr_error.h"
#include "io/mr_h5.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

#define MR_PARITY_NMSE_TOL 1e-6
#define MR_PARITY_MARGIN_TOL 1e-5
#define MR_PARITY_WEIGHT_TOL 1e-4f
#define MR_PARITY_WEIGHT_TOL_AC 1e-3f /* see above: 1/(MAD + eps) of 1-token clusters */

typedef struct mr_parity_result {
    int task;            /* MR_TASK_* of the checked model */
    double logits_nmse;  /* of the whole logits tensor */
    double probs_nmse;   /* worst over the MoE blocks */
    int exempt;          /* tokens whose top-k differs at a margin < MR_PARITY_MARGIN_TOL */
    float weight_diff;   /* largest |weight - PyTorch's| over the matching top-k sets */
    int weight_token;    /* where (B*T index), and in which MoE layer */
    int weight_layer;
} mr_parity_result;

static size_t mr_parity_count(const mr_h5_info *in)
{
    size_t n = 1;
    for (int i = 0; i < in->rank; i++) n *= (size_t)in->dims[i];
    return n;
}

static float *mr_parity_read_f(hid_t f, const char *file, const char *path, size_t *n)
{
    mr_h5_info in;
    ck_assert_msg(mr_h5_dataset_info(f, file, path, &in) == MR_OK, "%s", mr_error_message());
    *n = mr_parity_count(&in);
    float *p = malloc(*n * sizeof *p + 1);
    ck_assert_int_eq(mr_h5_read_float(f, file, path, p, *n), MR_OK);
    return p;
}

static int32_t *mr_parity_read_i(hid_t f, const char *file, const char *path, size_t *n,
                                 mr_h5_info *in)
{
    ck_assert_msg(mr_h5_dataset_info(f, file, path, in) == MR_OK, "%s", mr_error_message());
    *n = mr_parity_count(in);
    int32_t *p = malloc(*n * sizeof *p + 1);
    ck_assert_int_eq(mr_h5_read_int32(f, file, path, p, *n), MR_OK);
    return p;
}

/* Router options from a reference's `router_opts` attribute ("key=value,key=value"). */
static inline void mr_parity_parse_opts(mr_router_opts *o, const char *ref, const char *list)
{
    memset(o, 0, sizeof *o);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save))
        ck_assert_msg(mr_router_opts_add(o, kv) == MR_OK, "%s: router_opts: %s", ref,
                      mr_error_message());
}

/* Same set of k experts (order free: ties may order them differently)? */
static int mr_parity_same_set(const int *a, const int32_t *b, int k)
{
    for (int j = 0; j < k; j++) {
        int found = 0;
        for (int i = 0; i < k; i++) found |= a[j] == b[i];
        if (!found) return 0;
    }
    return 1;
}

/* Check the engine running model file `model` (NULL: the reference's `model` attribute)
 * against reference file `ref` with router `router` and options `opts` (may be NULL).
 * strict: fail the running Check test on any violation of the tolerances; 0: only
 * measure (res) — used to show that a reference is far from what another router
 * computes. */
static inline void mr_parity_check_model(const char *ref, const char *model, const char *router,
                                         mr_router_opts *opts, mr_parity_result *res, int strict)
{
    hid_t f;
    ck_assert_msg(mr_h5_open_read(&f, ref) == MR_OK, "%s", mr_error_message());
    char model_path[512];
    if (model)
        snprintf(model_path, sizeof model_path, "%s", model);
    else
        ck_assert_int_eq(mr_h5_attr_string(f, ref, "model", model_path, sizeof model_path, NULL),
                         MR_OK);
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, model_path) == MR_OK, "%s", mr_error_message());
    const mr_config *c = &m->cfg;
    mr_router *r;
    ck_assert_msg(mr_router_alloc(&r, router, m, opts) == MR_OK, "%s: %s", ref,
                  mr_error_message());

    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    mr_h5_info in;
    size_t n_in;
    int B, T;
    uint8_t *images = NULL;
    int32_t *tokens = NULL;
    if (c->task == MR_TASK_CLASSIFY) {
        ck_assert_int_eq(mr_h5_dataset_info(f, ref, "/inputs/images", &in), MR_OK);
        B = (int)in.dims[0];
        T = c->n_pos;
        n_in = mr_parity_count(&in);
        images = malloc(n_in);
        ck_assert_int_eq(mr_h5_read_uint8(f, ref, "/inputs/images", images, n_in), MR_OK);
    } else {
        tokens = mr_parity_read_i(f, ref, "/inputs/tokens", &n_in, &in);
        B = (int)in.dims[0];
        T = (int)in.dims[1] - 1;
        eo.seq_len = T;
    }
    eo.batch = B; /* one micro-batch, as the reference's one forward pass */
    mr_workspace *ws;
    ck_assert_msg(mr_workspace_alloc(&ws, m, r, &eo) == MR_OK, "%s", mr_error_message());
    int st = c->task == MR_TASK_CLASSIFY ? mr_engine_forward_images(ws, images, B)
                                         : mr_engine_forward_tokens(ws, tokens, B, T, T + 1);
    ck_assert_msg(st == MR_OK, "%s", mr_error_message());
    const mr_trace *tr = mr_workspace_trace(ws);

    size_t n;
    float *ref_logits = mr_parity_read_f(f, ref, "/logits", &n);
    size_t want = c->task == MR_TASK_CLASSIFY ? (size_t)B * c->n_out : (size_t)B * T * c->n_out;
    ck_assert_uint_eq(n, want);
    res->task = c->task;
    res->logits_nmse = mr_test_nmse(tr->logits, ref_logits, n);
    res->probs_nmse = 0.0;
    res->exempt = 0;
    res->weight_diff = 0.0f;
    res->weight_token = res->weight_layer = -1;
    const float wtol = strcmp(router, "ac") == 0 ? MR_PARITY_WEIGHT_TOL_AC : MR_PARITY_WEIGHT_TOL;
    if (strict) printf("%s: %s logits nmse %.3e\n", ref, router, res->logits_nmse);
    ck_assert_msg(!strict || res->logits_nmse < MR_PARITY_NMSE_TOL, "%s: %s: logits nmse %g",
                  ref, router, res->logits_nmse);
    free(ref_logits);

    int E = c->n_experts, k = tr->k;
    for (int mi = 0; mi < c->n_moe; mi++) {
        int L = c->moe_layers[mi];
        char path[128];
        snprintf(path, sizeof path, "/layers/%d/probs", L);
        float *rp = mr_parity_read_f(f, ref, path, &n);
        ck_assert_uint_eq(n, (size_t)B * T * E);
        double e = mr_test_nmse(tr->probs + (size_t)mi * B * T * E, rp, n);
        if (e > res->probs_nmse) res->probs_nmse = e;
        if (strict) printf("%s: %s layer %d probs nmse %.3e\n", ref, router, L, e);
        ck_assert_msg(!strict || e < MR_PARITY_NMSE_TOL, "%s: %s: layer %d probs nmse %g", ref,
                      router, L, e);
        snprintf(path, sizeof path, "/layers/%d/topk", L);
        int32_t *rk = mr_parity_read_i(f, ref, path, &n, &in);
        ck_assert_uint_eq(n, (size_t)B * T * k);
        snprintf(path, sizeof path, "/layers/%d/margin", L);
        float *rm = mr_parity_read_f(f, ref, path, &n);
        snprintf(path, sizeof path, "/layers/%d/weights", L);
        float *rw = mr_parity_read_f(f, ref, path, &n);
        const int *topk = tr->topk + (size_t)mi * B * T * k;
        const float *w = tr->weights + (size_t)mi * B * T * k;
        for (int t = 0; t < B * T; t++) {
            if (!strict) continue;
            if (!mr_parity_same_set(topk + (size_t)t * k, rk + (size_t)t * k, k)) {
                ck_assert_msg(rm[t] < MR_PARITY_MARGIN_TOL,
                              "%s: %s: layer %d token %d: top-k differs at PyTorch margin %g",
                              ref, router, L, t, (double)rm[t]);
                res->exempt++;
                continue;
            }
            for (int j = 0; j < k; j++)
                for (int i = 0; i < k; i++)
                    if (topk[t * k + j] == rk[t * k + i]) {
                        float dw = fabsf(w[t * k + j] - rw[t * k + i]);
                        if (dw > res->weight_diff) {
                            res->weight_diff = dw;
                            res->weight_token = t;
                            res->weight_layer = L;
                        }
                        ck_assert_msg(dw < wtol,
                                      "%s: %s: layer %d token %d weight %g vs %g", ref, router,
                                      L, t, (double)w[t * k + j], (double)rw[t * k + i]);
                    }
        }
        free(rp);
        free(rk);
        free(rm);
        free(rw);
    }
    if (strict) {
        printf("%s: %d tokens exempt from the top-k check (margin < %g)\n", ref, res->exempt,
               MR_PARITY_MARGIN_TOL);
        printf("%s: largest weight difference %.3e (layer %d token %d)\n", ref,
               (double)res->weight_diff, res->weight_layer, res->weight_token);
    }
    free(images);
    free(tokens);
    mr_workspace_free(ws);
    mr_router_free(r);
    mr_model_free(m);
    H5Fclose(f);
}

/* mr_parity_check_model on the reference's own model. */
static inline void mr_parity_check(const char *ref, const char *router, mr_router_opts *opts,
                            mr_parity_result *res, int strict)
{
    mr_parity_check_model(ref, NULL, router, opts, res, strict);
}

#endif
