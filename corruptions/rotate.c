/* rotate — MNIST-C: rotation about the image centre, random sign. */
#include "mr_corrupt_impl.h"

/* mnist-c rotate: c = [0.2, 0.4, 0.6, 0.8, 1.][severity - 1] rad (default 2) */
static const double rotate_c[MR_SEVERITY_MAX] = {0.2, 0.4, 0.6, 0.8, 1.0};

int mr_rotate_signed(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, int sign,
                     mr_corrupt_ws *ws)
{
    /* AffineTransform(rotation=c) + centre-fixing translation, as warp's inverse map */
    double M[6];
    mr_affine_centred(M, H, W, 1.0, 1.0, sign * rotate_c[s - 1], 0.0);
    return mr_warp_u8(out, in, H, W, C, M, ws);
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    int sign = gsl_rng_uniform(r) < 0.5 ? -1 : 1; /* np.random.choice([-1, 1]) */
    return mr_rotate_signed(out, in, H, W, C, s, sign, ws);
}

const mr_corruption_type mr_corruption_rotate = {
    .name = "rotate", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_GEOMETRIC, .benchmark = "MNIST-C rotate",
    .summary = "rotation by 0.2 .. 1.0 rad (11 .. 57 degrees) about the centre, random sign",
    .deterministic = 0, .default_severity = 2, .image = apply};
