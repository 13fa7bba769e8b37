/* The attacks (analysis/attacks/, docs/attacks.md): the ball and the grid, determinism
 * across thread counts, Square and SPSA getting stronger with eps, the routing objective,
 * and refusals. The comparison with PyTorch's FGSM/PGD is tests/test_attack_parity.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/attacks/mr_attack.h"
#include "analysis/mr_engine.h"
#include "analysis/mr_error.h"
#include "io/mr_data.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

#define FMNIST_MODEL "models/fmnist-vit-moe-softmax.h5"
#define FMNIST_DATA "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define TINY_MODEL "tests/fixtures/tiny-classify.h5"
#define TINY_DATA "tests/fixtures/tiny-images.h5"

typedef struct setup {
    mr_model *m;
    mr_router *r;
    mr_dataset *d;
    size_t per; /* values per image */
} setup;

static void setup_load(setup *s, const char *model, const char *data, int n)
{
    ck_assert_msg(mr_model_load(&s->m, model) == MR_OK, "%s", mr_error_message());
    ck_assert_msg(mr_router_alloc(&s->r, s->m->cfg.router, s->m, NULL) == MR_OK, "%s",
                  mr_error_message());
    ck_assert_msg(mr_dataset_load(&s->d, data, n) == MR_OK, "%s", mr_error_message());
    s->per = (size_t)s->d->h * s->d->w * s->d->c;
}

static void setup_free(setup *s)
{
    mr_dataset_free(s->d);
    mr_router_free(s->r);
    mr_model_free(s->m);
}

static uint8_t *attack(const setup *s, const char *method, const mr_attack_opts *o, int threads,
                       int *queries, float *objective)
{
    uint8_t *adv = malloc((size_t)s->d->n * s->per);
    mr_attack_out out = {.adv = adv, .queries = queries, .objective = objective};
    int st = mr_attack_images(mr_attack_lookup(method), o, s->m, s->r, s->d->images,
                              s->d->labels, s->d->n, threads, &out);
    ck_assert_msg(st == MR_OK, "%s: %s", method, mr_error_message());
    return adv;
}

/* accuracy of images [n] and, if top1 != NULL, the top-1 experts of MoE block mi [n, T] */
static double accuracy(const setup *s, const uint8_t *images, int mi, int *top1)
{
    mr_engine_opts eo;
    mr_engine_opts_init(&eo, s->m);
    eo.batch = 16;
    mr_workspace *ws;
    ck_assert_int_eq(mr_workspace_alloc(&ws, s->m, s->r, &eo), MR_OK);
    int correct = 0, T = s->m->cfg.n_pos, C = s->m->cfg.n_out;
    for (int s0 = 0; s0 < s->d->n; s0 += 16) {
        int nb = s->d->n - s0 < 16 ? s->d->n - s0 : 16;
        ck_assert_int_eq(mr_engine_forward_images(ws, images + s0 * s->per, nb), MR_OK);
        const mr_trace *tr = mr_workspace_trace(ws);
        for (int b = 0; b < nb; b++) {
            const float *z = tr->logits + (size_t)b * C;
            int arg = 0;
            for (int j = 1; j < C; j++) arg = z[j] > z[arg] ? j : arg;
            correct += arg == s->d->labels[s0 + b];
        }
        for (int t = 0; top1 && t < nb * T; t++)
            top1[(size_t)s0 * T + t] = tr->topk[((size_t)mi * nb * T + t) * tr->k];
    }
    mr_workspace_free(ws);
    return (double)correct / s->d->n;
}

static const char *const methods[] = {"fgsm", "pgd", "square", "spsa"};

/* budgets small enough for a unit test */
static void small_opts(mr_attack_opts *o, const char *method, double eps)
{
    mr_attack_opts_init(o);
    o->eps = eps;
    o->batch = 4;
    if (strcmp(method, "pgd") == 0) o->steps = 5;
    if (strcmp(method, "square") == 0) o->steps = 60;
    if (strcmp(method, "spsa") == 0) {
        o->steps = 4;
        o->spsa_samples = 8;
    }
}

START_TEST(attacks_stay_in_the_ball_on_the_grid)
{
    setup s;
    setup_load(&s, TINY_MODEL, TINY_DATA, 0);
    const double eps[] = {8.0 / 255.0, 0.1, 0.0}; /* 8, 25 (floor of 25.5) and 0 levels */
    const int levels[] = {8, 25, 0};
    for (int mi = 0; mi < 4; mi++)
        for (int e = 0; e < 3; e++) {
            mr_attack_opts o;
            small_opts(&o, methods[mi], eps[e]);
            uint8_t *adv = attack(&s, methods[mi], &o, 2, NULL, NULL);
            int maxd = 0;
            for (size_t i = 0; i < (size_t)s.d->n * s.per; i++) {
                int df = abs((int)adv[i] - (int)s.d->images[i]);
                maxd = df > maxd ? df : maxd;
            }
            ck_assert_msg(maxd <= levels[e], "%s eps %g: a pixel moved %d levels (ball: %d)",
                          methods[mi], eps[e], maxd, levels[e]);
            /* the attacks use their budget: gradient attacks move pixels by a full step */
            if (e < 2 && mi < 2) ck_assert_int_eq(maxd, levels[e]);
            if (e == 2) ck_assert_int_eq(maxd, 0);
            free(adv);
        }
    setup_free(&s);
}
END_TEST

START_TEST(attacks_are_deterministic_for_any_thread_count)
{
    setup s;
    setup_load(&s, FMNIST_MODEL, FMNIST_DATA, 10);
    for (int mi = 0; mi < 4; mi++) {
        mr_attack_opts o;
        small_opts(&o, methods[mi], 16.0 / 255.0);
        o.seed = 3;
        int q1[10], q2[10];
        float f1[10], f2[10];
        uint8_t *a1 = attack(&s, methods[mi], &o, 1, q1, f1);
        uint8_t *a2 = attack(&s, methods[mi], &o, 2, q2, f2);
        ck_assert_msg(memcmp(a1, a2, (size_t)s.d->n * s.per) == 0, "%s: threads 1 and 2 differ",
                      methods[mi]);
        ck_assert(memcmp(q1, q2, sizeof q1) == 0 && memcmp(f1, f2, sizeof f1) == 0);
        /* and the seed matters for the randomized ones */
        if (mi >= 1) { /* pgd (random start), square, spsa */
            o.seed = 4;
            uint8_t *a3 = attack(&s, methods[mi], &o, 2, NULL, NULL);
            ck_assert_msg(memcmp(a1, a3, (size_t)s.d->n * s.per) != 0,
                          "%s: seeds 3 and 4 give the same images", methods[mi]);
            free(a3);
        }
        free(a1);
        free(a2);
    }
    setup_free(&s);
}
END_TEST

/* Score-based attacks: accuracy falls as eps grows (0, 4, 8, 16 / 255), and every result
 * stays inside its ball (budgets cut for a unit test: Square 80 queries, SPSA 8 steps of 12
 * direction pairs, 20 images). */
START_TEST(square_and_spsa_get_stronger_with_eps)
{
    setup s;
    setup_load(&s, FMNIST_MODEL, FMNIST_DATA, 20);
    double clean = accuracy(&s, s.d->images, 0, NULL);
    const int lv[] = {0, 4, 8, 16};
    for (int mi = 2; mi < 4; mi++) {
        double prev = clean;
        printf("%-7s clean %.4f", methods[mi], clean);
        for (int e = 0; e < 4; e++) {
            mr_attack_opts o;
            small_opts(&o, methods[mi], lv[e] / 255.0);
            o.batch = 8;
            if (mi == 3) o.steps = 8, o.spsa_samples = 12;
            else o.steps = 80;
            uint8_t *adv = attack(&s, methods[mi], &o, 2, NULL, NULL);
            for (size_t i = 0; i < (size_t)s.d->n * s.per; i++)
                ck_assert_int_le(abs((int)adv[i] - (int)s.d->images[i]), lv[e]);
            double acc = accuracy(&s, adv, 0, NULL);
            printf("  %d/255 %.4f", lv[e], acc);
            ck_assert_msg(acc <= prev, "%s: accuracy %g at eps %d/255 above %g at the smaller eps",
                          methods[mi], acc, lv[e], prev);
            prev = acc;
            free(adv);
        }
        printf("\n");
        ck_assert_msg(prev < clean - 0.1, "%s: eps 16/255 barely hurts (%g vs %g)", methods[mi],
                      prev, clean);
    }
    setup_free(&s);
}
END_TEST

/* The routing objective flips more of its block's top-1 choices than the loss objective
 * does, at the same budget. */
START_TEST(routing_objective_flips_the_chosen_block)
{
    setup s;
    setup_load(&s, FMNIST_MODEL, FMNIST_DATA, 32);
    int T = s.m->cfg.n_pos, n = s.d->n, L = s.m->cfg.moe_layers[1];
    int mi = s.m->layers[L].moe_index;
    int *clean = malloc((size_t)n * T * sizeof *clean), *adv1 = malloc((size_t)n * T * sizeof *adv1);
    accuracy(&s, s.d->images, mi, clean);
    double flips[2];
    for (int obj = 0; obj < 2; obj++) {
        mr_attack_opts o;
        mr_attack_opts_init(&o);
        o.eps = 8.0 / 255.0;
        o.steps = 10;
        o.objective = obj ? MR_ATTACK_ROUTING : MR_ATTACK_LOSS;
        o.route_layer = L;
        float *objective = malloc((size_t)n * sizeof *objective);
        uint8_t *adv = attack(&s, "pgd", &o, 2, NULL, objective);
        accuracy(&s, adv, mi, adv1);
        int f = 0;
        for (int i = 0; i < n * T; i++) f += adv1[i] != clean[i];
        flips[obj] = (double)f / (n * T);
        free(adv);
        free(objective);
    }
    printf("top-1 flips of block %d under PGD: loss objective %.4f, routing objective %.4f\n", L,
           flips[0], flips[1]);
    ck_assert_msg(flips[1] > flips[0] + 0.05 && flips[1] > 0.2,
                  "routing objective %g vs loss %g", flips[1], flips[0]);
    free(clean);
    free(adv1);
    setup_free(&s);
}
END_TEST

START_TEST(bad_options_are_refused)
{
    setup s;
    setup_load(&s, FMNIST_MODEL, FMNIST_DATA, 4);
    mr_attack_opts o;
    mr_attack_opts_init(&o);
    const mr_attack_type *pgd = mr_attack_lookup("pgd");
    ck_assert_ptr_null(mr_attack_lookup("cw"));
    o.eps = -0.1;
    ck_assert_int_eq(mr_attack_opts_check(&o, pgd, s.m), MR_EINPUT);
    o.eps = 8.0 / 255.0;
    o.objective = MR_ATTACK_ROUTING;
    o.route_layer = 0; /* a dense block */
    ck_assert_int_eq(mr_attack_opts_check(&o, pgd, s.m), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "route layer 0"));
    o.route_layer = 1;
    ck_assert_int_eq(mr_attack_opts_check(&o, pgd, s.m), MR_OK);
    mr_attack_opts_init(&o);
    o.steps = 3;
    ck_assert_int_eq(mr_attack_opts_check(&o, mr_attack_lookup("fgsm"), s.m), MR_EINPUT);
    mr_attack_opts_init(&o);
    o.batch = 1;
    ck_assert_int_eq(mr_attack_opts_check(&o, mr_attack_lookup("spsa"), s.m), MR_EINPUT);
    /* a label outside the classes */
    mr_attack_opts_init(&o);
    int32_t bad[4] = {0, 1, 99, 2};
    uint8_t adv[4 * 784];
    mr_attack_out out = {.adv = adv};
    ck_assert_int_eq(mr_attack_images(pgd, &o, s.m, s.r, s.d->images, bad, 4, 1, &out),
                     MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "label 99"));
    /* a language model */
    mr_model *lm;
    ck_assert_int_eq(mr_model_load(&lm, "tests/fixtures/tiny-lm.h5"), MR_OK);
    ck_assert_int_eq(mr_attack_opts_check(&o, pgd, lm), MR_EINPUT);
    mr_model_free(lm);
    setup_free(&s);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("attacks");
    TCase *tc = tcase_create("attacks");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, attacks_stay_in_the_ball_on_the_grid);
    tcase_add_test(tc, attacks_are_deterministic_for_any_thread_count);
    tcase_add_test(tc, square_and_spsa_get_stronger_with_eps);
    tcase_add_test(tc, routing_objective_flips_the_chosen_block);
    tcase_add_test(tc, bad_options_are_refused);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
