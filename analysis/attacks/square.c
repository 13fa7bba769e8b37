/* square — the Square attack, L-infinity (Andriushchenko, Croce, Flammarion, Hein, "Square
 * Attack: a query-efficient black-box adversarial attack via random search", ECCV 2020,
 * arXiv 1912.00049), as AutoAttack runs it (fra31/auto-attack, autoattack/square.py):
 *
 * - images the model already gets wrong (objective <= 0) are left as they are;
 * - start: vertical stripes, x_best = clip(x + eps s), one sign s per (channel, column);
 * - iteration i: p = p_selection(i) (p_init, halved after iterations 10, 50, 200, 500,
 *   1000, 2000, 4000, 6000, 8000; with the rescaled schedule i counts in units of
 *   n_queries / 10000), square side s = max(round(sqrt(p h w)), 1) (at most min(h, w)),
 *   top-left corner uniform in [0, h-s) x [0, w-s) (0 when s = h), one sign per channel:
 *   the square's pixels go to x -+ eps (clipped to [0, 1]), the rest stays x_best;
 * - the proposal is kept if its objective is lower, or if it succeeds (<= 0); an image
 *   stops at success; the loss is the logit margin z_y - max_{j!=y} z_j (AutoAttack's
 *   `margin` loss), or the routing objective of mr_attack_impl.h.
 * Difference (documented): the corner and the signs are drawn per image from its own
 * stream (seed, "attack/square", sample index), where AutoAttack shares one draw across
 * its batch, so that an image's attack does not depend on its batch. The ball's corners
 * x -+ eps are grid values, so every query is an exact uint8 image (the engine's
 * forward). Defaults: AutoAttack standard, 5000 queries, p_init 0.8, absolute schedule.
 */
#include <math.h>
#include <string.h>

#include "../mr_error.h"
#include "../mr_rng.h"
#include "mr_attack_impl.h"

/* AutoAttack's p_selection */
static double p_selection(double p_init, int it, int n_queries, int rescale)
{
    if (rescale) it = (int)((double)it / n_queries * 10000.0);
    static const int thr[] = {10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000};
    double p = p_init;
    for (int i = 0; i < 9 && it > thr[i]; i++) p /= 2.0;
    return p;
}

static void to_u8(uint8_t *u, const float *x, int D)
{
    for (int j = 0; j < D; j++) u[j] = (uint8_t)lrintf(x[j]);
}

static int square_run(mr_attack_batch *b)
{
    const mr_config *c = &b->m->cfg;
    int B = b->B, D = b->D, H = c->image_h, W = c->image_w, C = c->channels;
    if (b->eps255 <= 0.0) return MR_OK;
    float *best = b->aux; /* [B] objective of x_best */
    /* the clean images: only those the model still gets right are attacked */
    for (int i = 0; i < B; i++) {
        b->img[i] = i;
        to_u8(b->u8 + (size_t)i * D, b->x + (size_t)i * D, D);
    }
    MR_TRY(mr_attack_eval_u8(b, b->u8, b->img, B));
    int na = 0;
    for (int i = 0; i < B; i++) {
        best[i] = b->val[i];
        if (!(best[i] > 0.0f)) continue;
        /* vertical stripes: one sign per (channel, column) */
        gsl_rng *r = b->rng[i];
        mr_rng_reseed(r, b->o->seed, "attack/square", b->first + (uint64_t)i);
        float *x = b->x + (size_t)i * D;
        const float *lo = b->lo + (size_t)i * D, *hi = b->hi + (size_t)i * D;
        for (int ch = 0; ch < C; ch++)
            for (int col = 0; col < W; col++) {
                int up = gsl_rng_uniform(r) >= 0.5;
                for (int row = 0; row < H; row++) {
                    size_t q = ((size_t)row * W + col) * C + ch;
                    x[q] = up ? hi[q] : lo[q];
                }
            }
        b->img[na] = i;
        to_u8(b->u8 + (size_t)na * D, x, D);
        na++;
    }
    if (na) MR_TRY(mr_attack_eval_u8(b, b->u8, b->img, na));
    for (int s = 0; s < na; s++) best[b->img[s]] = b->val[s];
    int side_max = H < W ? H : W;
    for (int it = 0; it < b->steps; it++) {
        double p = p_selection(b->o->p_init, it, b->steps, b->o->square_rescale);
        int side = (int)lround(sqrt(p * H * W));
        side = side < 1 ? 1 : side > side_max ? side_max : side;
        na = 0;
        for (int i = 0; i < B; i++) {
            if (!(best[i] > 0.0f)) continue; /* success, or never attacked */
            gsl_rng *r = b->rng[i];
            int vh = H > side ? (int)(gsl_rng_uniform(r) * (H - side)) : 0;
            int vw = W > side ? (int)(gsl_rng_uniform(r) * (W - side)) : 0;
            uint8_t *u = b->u8 + (size_t)na * D;
            const float *lo = b->lo + (size_t)i * D, *hi = b->hi + (size_t)i * D;
            to_u8(u, b->x + (size_t)i * D, D);
            for (int ch = 0; ch < C; ch++) {
                int up = gsl_rng_uniform(r) >= 0.5;
                for (int row = vh; row < vh + side; row++)
                    for (int col = vw; col < vw + side; col++) {
                        size_t q = ((size_t)row * W + col) * C + ch;
                        u[q] = (uint8_t)lrintf(up ? hi[q] : lo[q]);
                    }
            }
            b->img[na++] = i;
        }
        if (na == 0) break;
        MR_TRY(mr_attack_eval_u8(b, b->u8, b->img, na));
        for (int s = 0; s < na; s++) {
            int i = b->img[s];
            if (b->val[s] < best[i] || b->val[s] <= 0.0f) {
                best[i] = b->val[s];
                const uint8_t *u = b->u8 + (size_t)s * D;
                float *x = b->x + (size_t)i * D;
                for (int j = 0; j < D; j++) x[j] = u[j];
            }
        }
    }
    return MR_OK;
}

const mr_attack_type mr_attack_square = {
    .name = "square",
    .summary = "Square attack Linf (Andriushchenko et al. 2020, AutoAttack): random search",
    .needs_gradient = 0,
    .float_input = 0,
    .default_steps = 5000,
    .run = square_run,
};
