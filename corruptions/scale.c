/* scale — MNIST-C: shrink the content about the image centre (deterministic). */
#include "mr_corrupt_impl.h"

/* mnist-c scale: c = (1/.9, 1/.9) .. (1/.5, 1/.5) [severity - 1] (default 3): the
 * inverse map scales by 1/c, so the content shrinks to 90 % .. 50 % */
static const double scale_c[MR_SEVERITY_MAX] = {0.9, 0.8, 0.7, 0.6, 0.5};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    (void)r;
    double M[6], c = 1.0 / scale_c[s - 1];
    mr_affine_centred(M, H, W, c, c, 0.0, 0.0);
    return mr_warp_u8(out, in, H, W, C, M, ws);
}

const mr_corruption_type mr_corruption_scale = {
    .name = "scale", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_GEOMETRIC, .benchmark = "MNIST-C scale",
    .summary = "content shrunk to 90 % .. 50 % about the centre, zero border",
    .deterministic = 1, .default_severity = 3, .image = apply};
