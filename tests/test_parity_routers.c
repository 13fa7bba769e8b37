/* Every router of the C registry vs its PyTorch implementation (tools/moe_model.py).
 *
 * Each tests/fixtures/routers/ref-*.h5 (written by tools/export_router_refs.py) holds
 * what PyTorch computed for a model, a few inputs, a router (root attribute `router`)
 * and its options (`router_opts`, "key=value,key=value"). The engine runs the same
 * router with the same options (parsed with mr_router_opts_add) on all the inputs as
 * one micro-batch, under the tolerance rules of tests/test_parity.c (tests/mr_parity.h).
 *
 * Coverage is part of the test: every registered router must be checked at least once
 * (s2moe with noise=off: noise=on draws GSL Gaussians PyTorch does not reproduce; its
 * seeding and determinism are tested in tests/test_routers.c), every training-free swap
 * on both shipped models, and every reference must be far from what the softmax router
 * computes, except the two that equal it by definition (softmax itself, s2moe noise=off):
 * a router that silently fell back to the baseline gate would otherwise pass. */
#include <glob.h>

#include "mr_parity.h"

#define MAX_ROUTERS 32
#define DISTINCT_NMSE 1e-4 /* a hundred times the parity tolerance */

typedef struct router_stats {
    int refs, shipped;
    double logits, probs; /* worst NMSE */
} router_stats;

static int registry_index(const char *name)
{
    for (int i = 0; mr_router_types[i]; i++)
        if (strcmp(mr_router_types[i]->name, name) == 0) return i;
    return -1;
}

START_TEST(every_router_matches_pytorch)
{
    glob_t g;
    ck_assert_int_eq(glob("tests/fixtures/routers/ref-*.h5", 0, NULL, &g), 0);
    router_stats st[MAX_ROUTERS] = {{0}};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *ref = g.gl_pathv[i];
        hid_t f;
        ck_assert_msg(mr_h5_open_read(&f, ref) == MR_OK, "%s", mr_error_message());
        char router[64], optstr[512], model[512];
        ck_assert_int_eq(mr_h5_attr_string(f, ref, "router", router, sizeof router, NULL),
                         MR_OK);
        ck_assert_int_eq(mr_h5_attr_string(f, ref, "router_opts", optstr, sizeof optstr, NULL),
                         MR_OK);
        ck_assert_int_eq(mr_h5_attr_string(f, ref, "model", model, sizeof model, NULL), MR_OK);
        H5Fclose(f);
        int ri = registry_index(router);
        ck_assert_msg(ri >= 0, "%s: unknown router %s", ref, router);

        mr_router_opts opts;
        mr_parity_parse_opts(&opts, ref, optstr);
        mr_parity_result res;
        mr_parity_check(ref, router, &opts, &res, 1);
        st[ri].refs++;
        st[ri].shipped += strncmp(model, "models/", 7) == 0;
        if (res.logits_nmse > st[ri].logits) st[ri].logits = res.logits_nmse;
        if (res.probs_nmse > st[ri].probs) st[ri].probs = res.probs_nmse;

        int same_as_baseline = strcmp(router, "softmax") == 0 ||
                               (strcmp(router, "s2moe") == 0 && strstr(optstr, "noise=off"));
        if (!same_as_baseline) {
            mr_parity_result base;
            mr_parity_check(ref, "softmax", NULL, &base, 0);
            double far = base.logits_nmse > base.probs_nmse ? base.logits_nmse : base.probs_nmse;
            ck_assert_msg(far > DISTINCT_NMSE,
                          "%s: the softmax router reproduces this %s reference (nmse %g): "
                          "it cannot tell the router from the baseline",
                          ref, router, far);
        }
    }
    globfree(&g);

    printf("%-12s %5s %8s %14s %14s\n", "router", "refs", "shipped", "worst logits", "worst probs");
    for (int i = 0; mr_router_types[i]; i++) {
        const char *name = mr_router_types[i]->name;
        printf("%-12s %5d %8d %14.3e %14.3e\n", name, st[i].refs, st[i].shipped, st[i].logits,
               st[i].probs);
        ck_assert_msg(st[i].refs >= 1, "router %s has no parity reference", name);
    }
    /* the training-free swaps of docs/routers.md, on both shipped models */
    const char *swaps[] = {"similarity", "attention", "ac", "random", "momentum"};
    for (size_t i = 0; i < sizeof swaps / sizeof *swaps; i++)
        ck_assert_msg(st[registry_index(swaps[i])].shipped >= 2,
                      "router %s: needs references on both shipped models", swaps[i]);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("parity_routers");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, every_router_matches_pytorch);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
