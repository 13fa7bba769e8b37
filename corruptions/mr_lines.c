/* mnist-c line_from_points: the anti-aliased line profile behind dotted_line and zigzag. */
#include <math.h>

#include "mr_corrupt_impl.h"

/* Python slice bound semantics for corruption[:, :b] / [:, b:] on W columns */
static int slice_bound(long b, int W)
{
    if (b < 0) b += W;
    if (b < 0) b = 0;
    if (b > W) b = W;
    return (int)b;
}

void mr_line_add(double *acc, int H, int W, int C, double c0, double r0, double c1,
                 double r1, int dashed)
{
    if (c1 == c0) return; /* the reference returns an all-zero layer */
    double m = (r1 - r0) / (c1 - c0);
    int l = slice_bound((long)floor(c0), W), r = slice_bound((long)ceil(c1), W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            /* cc, rr = meshgrid(linspace(0, W-1, W), linspace(0, H-1, H)) */
            double d = fabs((double)y - (m * ((double)x - c0) + r0));
            if (d > 2.3 - 1e-10) d = 2.3 - 1e-10;
            double v = log(1 - d / 2.3) + 1;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            if (x < l || x >= r) v = 0;
            if (dashed && (x / 2) % 2 == 0) v = 0;
            for (int c = 0; c < C; c++) {
                double *a = &acc[((size_t)y * W + x) * C + c];
                *a += v;
                *a = *a < 0 ? 0 : *a > 1 ? 1 : *a;
            }
        }
}
