/* translate — MNIST-C: shift by c pixels along both axes, random signs. */
#include "mr_corrupt_impl.h"

/* mnist-c translate: c = [1, 2, 3, 4, 5][severity - 1] px (default 3) */
static const double translate_c[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5};

int mr_translate_signed(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, int sx,
                        int sy, mr_corrupt_ws *ws)
{
    /* AffineTransform(translation=[dx, dy]) as warp's inverse map: out(x, y) =
     * in(x + dx, y + dy) */
    double c = translate_c[s - 1];
    double M[6] = {1, 0, sx * c, 0, 1, sy * c};
    return mr_warp_u8(out, in, H, W, C, M, ws);
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    /* bit = np.random.choice([-1, 1], 2): dx = c bit[0], dy = c bit[1] */
    int sx = gsl_rng_uniform(r) < 0.5 ? -1 : 1;
    int sy = gsl_rng_uniform(r) < 0.5 ? -1 : 1;
    return mr_translate_signed(out, in, H, W, C, s, sx, sy, ws);
}

const mr_corruption_type mr_corruption_translate = {
    .name = "translate", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_GEOMETRIC, .benchmark = "MNIST-C translate",
    .summary = "diagonal shift by 1 .. 5 px along both axes, random signs, zero border",
    .deterministic = 0, .default_severity = 3, .image = apply};
