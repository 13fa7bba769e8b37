/* stripe — MNIST-C: invert a band of columns at each side (deterministic). */
#include <math.h>

#include "mr_corrupt_impl.h"

/* mnist-c stripe inverts columns 0..6 and 21..27 of a 28-px image (7 per side), one
 * severity. Ours: [2, 4, 7, 10, 12] columns per side at width 28, scaled by W / 28
 * (round half up); severity 3 is mnist-c's stripe. */
static const double stripe_cols28[MR_SEVERITY_MAX] = {2, 4, 7, 10, 12};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    (void)ws;
    int w = (int)floor(stripe_cols28[s - 1] * W / 28.0 + 0.5);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int inv = x < w || x >= W - w;
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)y * W + x) * C + c;
                out[i] = inv ? (uint8_t)(255 - in[i]) : in[i]; /* 255. - x */
            }
        }
    return 0;
}

const mr_corruption_type mr_corruption_stripe = {
    .name = "stripe", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_MNISTC, .benchmark = "MNIST-C stripe",
    .summary = "invert 2 .. 12 columns (at width 28) on each side",
    .deterministic = 1, .default_severity = 3, .image = apply};
