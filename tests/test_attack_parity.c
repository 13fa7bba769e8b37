/* FGSM and PGD-20 in C vs the same attacks in PyTorch (docs/attacks.md).
 *
 * Each tests/fixtures/attacks/torch-<method>-<router>.h5 (tools/make_attack_refs.sh, by
 * tools/attack_torch.py: float32 autograd on tools/moe_model.py) holds PyTorch's per-image
 * correctness after FGSM or PGD-20 (eps 8/255, step 2/255, no random start) on the first
 * 1,000 Fashion-MNIST test images, for a shipped model with the router it was trained
 * with. The C attack on the same images must reach the same accuracy within 0.3 points
 * (3 images): the two differ only by float rounding (gradients agree to ~1e-12 in
 * normalized MSE, tests/test_grad_parity.c), which can flip a gradient sign where it is
 * near zero. Every shipped router must have an FGSM reference.
 *
 * Cost: PGD-20 on 1,000 images is about 36 s of the 2-core machine per router, so the
 * suite runs FGSM for all eight routers on all 1,000 images, PGD-20 for the baseline
 * softmax router on all 1,000 and for the seven others on the first PGD_SUBSET images of
 * their (1,000-image) references, where at most ACC_TOL x 1,000 = 3 images may differ in
 * adversarial correctness (per image, not only in the count: a stricter form of the same
 * budget); MR_ATTACK_PARITY_ALL=1 (bench/attack_parity.sh) runs PGD-20 for all eight on
 * all 1,000 images, the acceptance of docs/attacks.md. S2MoE's references use the C
 * engine's noise draws of each image (tools/attack_torch.py), so the clean forward here
 * sets each micro-batch's first sample index. */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/attacks/mr_attack.h"
#include "analysis/mr_engine.h"
#include "analysis/mr_error.h"
#include "io/mr_data.h"
#include "io/mr_h5.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

#define FMNIST_DATA "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define ACC_TOL 0.003
#define FULL_N 1000    /* the acceptance: PGD-20 and FGSM on the first 1,000 test images */
#define PGD_SUBSET 200 /* PGD-20 of the non-softmax routers in the suite: first images */

/* argmax == label per image of a set of n images */
static void correct_of(const mr_model *m, const mr_router *r, const uint8_t *images,
                       const int32_t *labels, int n, size_t per, uint8_t *ok)
{
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, m);
    mr_workspace *ws;
    ck_assert_int_eq(mr_workspace_alloc(&ws, m, r, &eo), MR_OK);
    int C = m->cfg.n_out;
    for (int s0 = 0; s0 < n; s0 += eo.batch) {
        int nb = n - s0 < eo.batch ? n - s0 : eo.batch;
        mr_workspace_set_first_sample(ws, (uint64_t)s0); /* S2MoE's noise: per sample */
        ck_assert_int_eq(mr_engine_forward_images(ws, images + s0 * per, nb), MR_OK);
        const float *z = mr_workspace_trace(ws)->logits;
        for (int b = 0; b < nb; b++) {
            int arg = 0;
            for (int j = 1; j < C; j++) arg = z[b * C + j] > z[b * C + arg] ? j : arg;
            ok[s0 + b] = arg == labels[s0 + b];
        }
    }
    mr_workspace_free(ws);
}

static double mean_u8(const uint8_t *v, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return (double)s / n;
}

START_TEST(fgsm_and_pgd_match_pytorch)
{
    static const char *const routers[] = {"softmax", "similarity", "attention", "ac",
                                          "cosine",  "random",     "momentum",  "s2moe"};
    static const char *const methods[] = {"fgsm", "pgd20"};
    const char *env = getenv("MR_ATTACK_PARITY_ALL");
    int all = env && strcmp(env, "1") == 0;
    for (int mi = 0; mi < 2; mi++)
        for (int ri = 0; ri < 8; ri++) {
            char ref[256], model[256], method[16];
            snprintf(ref, sizeof ref, "tests/fixtures/attacks/torch-%s-%s.h5", methods[mi],
                     routers[ri]);
            hid_t f;
            ck_assert_msg(mr_h5_open_read(&f, ref) == MR_OK, "missing reference %s: %s", ref,
                          mr_error_message());
            long long n, steps, rs;
            double eps, step;
            ck_assert_int_eq(mr_h5_attr_string(f, ref, "model", model, sizeof model, NULL), MR_OK);
            ck_assert_int_eq(mr_h5_attr_string(f, ref, "method", method, sizeof method, NULL),
                             MR_OK);
            ck_assert_int_eq(mr_h5_attr_int(f, ref, "n", &n, NULL), MR_OK);
            ck_assert_int_eq(mr_h5_attr_int(f, ref, "steps", &steps, NULL), MR_OK);
            ck_assert_int_eq(mr_h5_attr_int(f, ref, "random_start", &rs, NULL), MR_OK);
            ck_assert_int_eq(mr_h5_attr_double(f, ref, "eps", &eps, NULL), MR_OK);
            ck_assert_int_eq(mr_h5_attr_double(f, ref, "step_size", &step, NULL), MR_OK);
            ck_assert_int_eq((int)rs, 0);
            uint8_t *t_clean = malloc((size_t)n), *t_adv = malloc((size_t)n);
            ck_assert_int_eq(mr_h5_read_uint8(f, ref, "/clean_correct", t_clean, (size_t)n),
                             MR_OK);
            ck_assert_int_eq(mr_h5_read_uint8(f, ref, "/adv_correct", t_adv, (size_t)n), MR_OK);
            H5Fclose(f);
            /* the suite's subset: the first images of the full reference (images are
             * attacked independently, so the first n of 1,000 are the same attack) */
            int subset = mi == 1 && ri > 0 && !all;
            ck_assert_msg(n == FULL_N || (subset && n >= PGD_SUBSET),
                          "%s holds %lld images, not %d (tools/make_attack_refs.sh)", ref, n,
                          FULL_N);
            if (subset) n = PGD_SUBSET;

            mr_model *m;
            mr_router *r;
            mr_dataset *d;
            ck_assert_int_eq(mr_model_load(&m, model), MR_OK);
            ck_assert_int_eq(mr_router_alloc(&r, routers[ri], m, NULL), MR_OK);
            ck_assert_int_eq(mr_dataset_load(&d, FMNIST_DATA, (long)n), MR_OK);
            size_t per = (size_t)d->h * d->w * d->c;
            mr_attack_opts o;
            mr_attack_opts_init(&o);
            o.eps = eps;
            o.steps = strcmp(method, "fgsm") == 0 ? 0 : (int)steps;
            o.step_size = step;
            o.random_start = 0;
            o.batch = 50;
            uint8_t *adv = malloc((size_t)n * per), *c_clean = malloc((size_t)n),
                    *c_adv = malloc((size_t)n);
            mr_attack_out out = {.adv = adv};
            ck_assert_msg(mr_attack_images(mr_attack_lookup(method), &o, m, r, d->images,
                                           d->labels, (int)n, 2, &out) == MR_OK,
                          "%s", mr_error_message());
            correct_of(m, r, d->images, d->labels, (int)n, per, c_clean);
            correct_of(m, r, adv, d->labels, (int)n, per, c_adv);
            int differ = 0, clean_differ = 0;
            for (int i = 0; i < n; i++) {
                differ += c_adv[i] != t_adv[i];
                clean_differ += c_clean[i] != t_clean[i];
            }
            double ac = mean_u8(c_adv, (int)n), at = mean_u8(t_adv, (int)n);
            printf("%-6s %-10s %4lld images: clean C %.4f PyTorch %.4f  adversarial C %.4f "
                   "PyTorch %.4f (%d images differ)\n", method, routers[ri], n,
                   mean_u8(c_clean, (int)n), mean_u8(t_clean, (int)n), ac, at, differ);
            /* float32 PyTorch vs the engine: an argmax may flip at a near-tie */
            ck_assert_msg(clean_differ <= 1, "%s: %d clean predictions differ from PyTorch's",
                          ref, clean_differ);
            if (subset)
                ck_assert_msg(differ <= (int)(ACC_TOL * FULL_N + 0.5),
                              "%s: %d of the first %lld images differ in adversarial "
                              "correctness (C vs PyTorch; at most %d)", ref, differ, n,
                              (int)(ACC_TOL * FULL_N + 0.5));
            else
                ck_assert_msg(fabs(ac - at) <= ACC_TOL + 1e-12,
                              "%s: adversarial accuracy %.4f (C) vs %.4f (PyTorch)", ref, ac, at);
            free(adv);
            free(c_clean);
            free(c_adv);
            free(t_clean);
            free(t_adv);
            mr_dataset_free(d);
            mr_router_free(r);
            mr_model_free(m);
        }
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("attack_parity");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 1200);
    tcase_add_test(tc, fgsm_and_pgd_match_pytorch);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
