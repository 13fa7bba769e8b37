/* dotted_line — MNIST-C: a dashed bright line across the image. */
#include "mr_corrupt_impl.h"

/* mnist-c dotted_line draws one line (no severity). Ours: severity s draws s lines, each
 * as mnist-c's (endpoints on the first and last column, rows uniform in 0 .. H-2);
 * severity 1 is mnist-c's dotted_line. */
static const int dotted_lines[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5};

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double *f = ws->f[0];
    mr_img_to_unit(f, in, n);
    for (int k = 0; k < dotted_lines[s - 1]; k++) {
        /* r0, r1 = np.random.randint(0, 27, size=2) for 28 rows */
        unsigned long span = H > 1 ? (unsigned long)(H - 1) : 1;
        double r0 = (double)gsl_rng_uniform_int(r, span);
        double r1 = (double)gsl_rng_uniform_int(r, span);
        /* line_from_points(0, r0, 27, r1), columns 0, 2, 4.. in pairs alternately off */
        mr_line_add(f, H, W, C, 0.0, r0, (double)(W - 1), r1, 1);
    }
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_dotted_line = {
    .name = "dotted_line", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_MNISTC, .benchmark = "MNIST-C dotted_line",
    .summary = "1 .. 5 dashed bright lines from the left to the right edge",
    .deterministic = 0, .default_severity = 1, .image = apply};
