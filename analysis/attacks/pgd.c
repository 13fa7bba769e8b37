/* fgsm, pgd — gradient attacks in the L-infinity ball.
 *
 * FGSM (Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples",
 * ICLR 2015): x' = clip(x + eps sign(grad_x L(x, y))).
 * PGD (Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
 * Adversarial Attacks", ICLR 2018; MadryLab/cifar10_challenge pgd_attack.py): from x^0 =
 * x + U(-eps, eps) (random start) or x, steps of x^{t+1} = Proj(x^t + alpha sign(grad
 * L(x^t, y))) onto the ball and [0, 1]; the result is the last iterate. L is the
 * cross-entropy with the true label. Defaults: the cifar10_challenge evaluation config
 * scaled to eps: 10 steps of eps/4 (there eps = 8, step 2 on the 0-255 scale) from a
 * random start.
 *
 * Routing objective: L = -sum over the block's tokens of max(0, p_c - max_{j!=c} p_j), c
 * the clean top-1 expert (a token stops pulling once it flipped); the result is the
 * iterate with the most top-1 flips (the last one on ties), since flips, not L, are
 * the goal.
 */
#include <math.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_rng.h"
#include "mr_attack_impl.h"

/* flips of each image at the iterate of the last gradient call, into best / bestx */
static void keep_best(mr_attack_batch *b, const float *x, float *best_flips, float *bestx,
                      int first)
{
    const mr_trace *tr = mr_grad_trace(b->g);
    for (int i = 0; i < b->B; i++) {
        float f = (float)mr_attack_flips(b, tr, i, i);
        if (first || f >= best_flips[i]) {
            best_flips[i] = f;
            memcpy(bestx + (size_t)i * b->D, x + (size_t)i * b->D, (size_t)b->D * sizeof *x);
        }
    }
}

static int sign_steps(mr_attack_batch *b, int steps, double alpha255, int random_start)
{
    int B = b->B, D = b->D, routing = b->o->objective == MR_ATTACK_ROUTING;
    if (b->eps255 <= 0.0 || steps == 0) return MR_OK;
    if (random_start)
        for (int i = 0; i < B; i++) {
            gsl_rng *r = b->rng[i];
            mr_rng_reseed(r, b->o->seed, "attack/pgd", b->first + (uint64_t)i);
            float *x = b->x + (size_t)i * D;
            for (int j = 0; j < D; j++)
                x[j] += (float)((2.0 * gsl_rng_uniform(r) - 1.0) * b->eps255);
            mr_attack_project(b, x, i);
        }
    float *bestx = b->aux, *best_flips = b->aux + (size_t)b->cap * D; /* [B, D], [B] */
    float a = (float)alpha255;
    for (int it = 0; it < steps; it++) {
        MR_TRY(mr_attack_gradient(b));
        if (routing) keep_best(b, b->x, best_flips, bestx, it == 0);
        for (int i = 0; i < B; i++) {
            float *x = b->x + (size_t)i * D;
            const float *g = b->grad + (size_t)i * D;
            for (int j = 0; j < D; j++) x[j] += g[j] > 0.0f ? a : g[j] < 0.0f ? -a : 0.0f;
            mr_attack_project(b, x, i);
        }
    }
    if (routing) { /* the last iterate's flips, then the best iterate */
        for (int i = 0; i < B; i++) b->img[i] = i;
        MR_TRY(mr_attack_eval_float(b, b->x, b->img, B));
        keep_best(b, b->x, best_flips, bestx, 0);
        memcpy(b->x, bestx, (size_t)B * D * sizeof *b->x);
    }
    return MR_OK;
}

static int pgd_run(mr_attack_batch *b)
{
    double alpha = b->o->step_size > 0.0 ? b->o->step_size : b->o->eps / 4.0;
    return sign_steps(b, b->steps, alpha * 255.0, b->o->random_start != 0);
}

static int fgsm_run(mr_attack_batch *b) { return sign_steps(b, 1, b->eps255, 0); }

const mr_attack_type mr_attack_pgd = {
    .name = "pgd",
    .summary = "PGD-Linf (Madry et al. 2018): sign-gradient steps projected onto the ball",
    .needs_gradient = 1,
    .float_input = 1,
    .default_steps = 10,
    .run = pgd_run,
};

const mr_attack_type mr_attack_fgsm = {
    .name = "fgsm",
    .summary = "FGSM (Goodfellow et al. 2015): one step of eps along the gradient's sign",
    .needs_gradient = 1,
    .float_input = 1,
    .default_steps = 1,
    .run = fgsm_run,
};
