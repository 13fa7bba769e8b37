/* zigzag — MNIST-C: a bright zigzag line across the image. */
#include <math.h>

#include "mr_corrupt_impl.h"

/* mnist-c zigzag draws one zigzag (no severity). Ours: severity s draws s zigzags, each
 * as mnist-c's; severity 1 is mnist-c's zigzag. */
static const int zigzag_count[MR_SEVERITY_MAX] = {1, 2, 3, 4, 5};

static void zigzag(double *f, int H, int W, int C, gsl_rng *r, double *pc, double *pr,
                   int cap)
{
    const double a = 2.0, b = 2.0; /* length and width of the zigs */
    double c0 = 2, c1 = W - 3;     /* mnist-c: c0, c1 = 2, 25 for 28 columns */
    unsigned long span = H > 1 ? (unsigned long)(H - 1) : 1;
    double r0 = (double)gsl_rng_uniform_int(r, span);         /* randint(0, 27) */
    double r1 = r0 + (double)gsl_rng_uniform_int(r, 10) - 5;  /* r0 + randint(-5, 5) */
    double theta = atan((r1 - r0) / (c1 - c0));
    double d = (c1 - c0) / cos(theta); /* length of the straight line */
    int np = 0;
    pc[np] = 0;
    pr[np++] = 0;
    double ri = 0;
    int count = (int)floor((d - a) / (2 * a)) + 1;
    for (int i = 0; i < count && np < cap - 1; i++) {
        ri = (i % 2 == 0 ? 1 : -1) * b;
        pc[np] = (2 * i + 1) * a;
        pr[np++] = ri;
    }
    double max_c = (2 * a) * floor(d / (2 * a));
    if (d != max_c && np < cap) {
        pc[np] = d;
        pr[np++] = ri / (2 * (d - max_c)); /* sic, as the reference */
    }
    double ct = cos(theta), st = sin(theta);
    for (int i = 0; i < np; i++) {
        double x = ct * pc[i] - st * pr[i], y = st * pc[i] + ct * pr[i];
        pc[i] = x + c0;
        pr[i] = y + r0;
    }
    for (int i = 1; i < np; i++) mr_line_add(f, H, W, C, pc[i - 1], pr[i - 1], pc[i], pr[i], 0);
}

static int apply(uint8_t *out, const uint8_t *in, int H, int W, int C, int s, gsl_rng *r,
                 mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    double *f = ws->f[0];
    mr_img_to_unit(f, in, n);
    /* the end points (about W / 4 + 3 of them) go to the scratch images, which hold
     * at least W values */
    int cap = n < 1000000 ? (int)n : 1000000;
    if (W >= 6)
        for (int k = 0; k < zigzag_count[s - 1]; k++)
            zigzag(f, H, W, C, r, ws->f[2], ws->f[3], cap);
    mr_img_from_unit(out, f, n);
    return 0;
}

const mr_corruption_type mr_corruption_zigzag = {
    .name = "zigzag", .modality = MR_MOD_IMAGE,
    .family = MR_FAMILY_MNISTC, .benchmark = "MNIST-C zigzag",
    .summary = "1 .. 5 bright zigzag lines across the image",
    .deterministic = 0, .default_severity = 1, .image = apply};
