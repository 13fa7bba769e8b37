/* spsa — the SPSA attack (Uesato, O'Donoghue, van den Oord, Kohli, "Adversarial Risk and
 * the Dangers of Evaluating Against Weak Attacks", ICML 2018), as cleverhans implements it
 * (cleverhans/torch/attacks/spsa.py), one image at a time:
 *
 * - images the model already gets wrong (objective <= 0) are left as they are;
 * - delta^0 ~ U(-eps, eps) per value, projected onto the ball (and [0, 1]);
 * - each iteration estimates the gradient of the objective L (the logit margin
 *   z_y - max_{j!=y} z_j, cleverhans' untargeted margin loss, or the routing objective)
 *   from `samples` antithetic pairs of Rademacher directions v:
 *   g = 1/(2n) sum_k [L(x + delta + d v_k) - L(x + delta - d v_k)] v_k / d,
 *   then takes one Adam step on delta (lr, beta 0.9 / 0.999, eps 1e-8: torch.optim.Adam's
 *   defaults) and projects again; it stops when L(x + delta) <= 0 (cleverhans'
 *   early_stop_loss_threshold at 0).
 * The points are evaluated at x + delta^t +- d v (the current iterate; cleverhans'
 * PyTorch version evaluates at x + x +- d v, its issue #1249). Directions come from the
 * stream (seed, "attack/spsa", sample index). Defaults: cleverhans' lr 0.01, delta 0.01,
 * 128 pairs, and 20 iterations (the setting Nielsen et al. 2025 evaluate ACMoE with).
 */
#include <math.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_rng.h"
#include "mr_attack_impl.h"

/* delta [D] (intensity units) projected: x0 + delta inside image i's ball */
static void project_delta(const mr_attack_batch *b, float *delta, int i)
{
    const uint8_t *x0 = b->x0 + (size_t)i * b->D;
    const float *lo = b->lo + (size_t)i * b->D, *hi = b->hi + (size_t)i * b->D;
    for (int j = 0; j < b->D; j++) {
        float v = x0[j] + 255.0f * delta[j];
        v = v < lo[j] ? lo[j] : v > hi[j] ? hi[j] : v;
        delta[j] = (v - x0[j]) / 255.0f;
    }
}

/* b->x's row i = x0 + delta (pixel units) */
static float *place(mr_attack_batch *b, const float *delta, int i)
{
    float *x = b->x + (size_t)i * b->D;
    const uint8_t *x0 = b->x0 + (size_t)i * b->D;
    for (int j = 0; j < b->D; j++) x[j] = x0[j] + 255.0f * delta[j];
    return x;
}

/* L at x0 + delta of image i (one query) */
static int loss_at(mr_attack_batch *b, const float *delta, int i, float *L)
{
    int slot[1] = {i};
    MR_TRY(mr_attack_eval_float(b, place(b, delta, i), slot, 1));
    *L = b->val[0];
    return MR_OK;
}

/* the SPSA estimate of dL/d(delta) at delta, into g [D] */
static int spsa_gradient(mr_attack_batch *b, const float *delta, int i, float *g)
{
    int D = b->D, n = b->o->spsa_samples, pairs = b->cap / 2;
    double d = b->o->spsa_delta;
    gsl_rng *r = b->rng[i];
    const uint8_t *x0 = b->x0 + (size_t)i * D;
    float *pts = b->aux + 4 * (size_t)D; /* [cap, D] */
    int8_t *v = (int8_t *)b->u8;          /* [pairs, D] directions */
    memset(g, 0, (size_t)D * sizeof *g);
    for (int k0 = 0; k0 < n; k0 += pairs) {
        int np = n - k0 < pairs ? n - k0 : pairs;
        for (int k = 0; k < np; k++) {
            int8_t *vk = v + (size_t)k * D;
            float *plus = pts + (size_t)(2 * k) * D, *minus = plus + D;
            for (int j = 0; j < D; j += 32) {
                unsigned long bits = gsl_rng_get(r); /* 32 random bits (mt19937) */
                for (int q = j; q < j + 32 && q < D; q++, bits >>= 1) vk[q] = bits & 1 ? 1 : -1;
            }
            for (int j = 0; j < D; j++) {
                float base = x0[j] + 255.0f * delta[j], step = (float)(255.0 * d * vk[j]);
                plus[j] = base + step;
                minus[j] = base - step;
            }
            b->img[2 * k] = b->img[2 * k + 1] = i;
        }
        MR_TRY(mr_attack_eval_float(b, pts, b->img, 2 * np));
        for (int k = 0; k < np; k++) {
            double w = (b->val[2 * k] - b->val[2 * k + 1]) / (2.0 * d * n);
            const int8_t *vk = v + (size_t)k * D;
            for (int j = 0; j < D; j++) g[j] += (float)(w * vk[j]);
        }
    }
    return MR_OK;
}

static int spsa_one(mr_attack_batch *b, int i)
{
    int D = b->D;
    float *delta = b->aux, *m = delta + D, *v2 = m + D, *g = v2 + D;
    const double lr = b->o->spsa_lr, b1 = 0.9, b2 = 0.999, ae = 1e-8;
    gsl_rng *r = b->rng[i];
    mr_rng_reseed(r, b->o->seed, "attack/spsa", b->first + (uint64_t)i);
    float L;
    memset(delta, 0, (size_t)D * sizeof *delta);
    MR_TRY(loss_at(b, delta, i, &L));
    if (!(L > 0.0f)) return MR_OK; /* already misclassified (or flipped): left as it is */
    double eps = b->eps255 / 255.0;
    for (int j = 0; j < D; j++) delta[j] = (float)((2.0 * gsl_rng_uniform(r) - 1.0) * eps);
    project_delta(b, delta, i);
    memset(m, 0, 2 * (size_t)D * sizeof *m);
    for (int t = 1; t <= b->steps; t++) {
        MR_TRY(spsa_gradient(b, delta, i, g));
        double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
        for (int j = 0; j < D; j++) {
            m[j] = (float)(b1 * m[j] + (1.0 - b1) * g[j]);
            v2[j] = (float)(b2 * v2[j] + (1.0 - b2) * (double)g[j] * g[j]);
            delta[j] -= (float)(lr * (m[j] / c1) / (sqrt(v2[j] / c2) + ae));
        }
        project_delta(b, delta, i);
        MR_TRY(loss_at(b, delta, i, &L));
        if (L <= 0.0f) break;
    }
    place(b, delta, i);
    return MR_OK;
}

static int spsa_run(mr_attack_batch *b)
{
    if (b->eps255 <= 0.0) return MR_OK;
    for (int i = 0; i < b->B; i++) MR_TRY(spsa_one(b, i));
    return MR_OK;
}

const mr_attack_type mr_attack_spsa = {
    .name = "spsa",
    .summary = "SPSA (Uesato et al. 2018): Adam on a finite-difference gradient estimate",
    .needs_gradient = 0,
    .float_input = 1,
    .default_steps = 20,
    .run = spsa_run,
};
