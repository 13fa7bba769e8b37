/* skimage.transform.warp with an affine inverse map, bilinear, constant 0 border — the
 * geometry behind shear, rotate, scale and translate (mnist-c). */
#include <math.h>

#include "mr_corrupt_impl.h"

/* skimage _shared/interpolation.pxd get_pixel2d, mode 'C': outside reads cval = 0 */
static inline double pixel(const double *in, int H, int W, int C, long r, long c, int ch)
{
    if (r < 0 || r >= H || c < 0 || c >= W) return 0.0;
    return in[((size_t)r * W + (size_t)c) * C + ch];
}

void mr_img_warp(double *out, const double *in, int H, int W, int C, const double M[6])
{
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) {
            /* _transform_affine(x = col, y = row) */
            double x = M[0] * c + M[1] * r + M[2];
            double y = M[3] * c + M[4] * r + M[5];
            /* bilinear_interpolation: floor/ceil corners, weights from the floor */
            long minr = (long)floor(y), minc = (long)floor(x);
            long maxr = (long)ceil(y), maxc = (long)ceil(x);
            double dr = y - minr, dc = x - minc;
            for (int ch = 0; ch < C; ch++) {
                double tl = pixel(in, H, W, C, minr, minc, ch);
                double tr = pixel(in, H, W, C, minr, maxc, ch);
                double bl = pixel(in, H, W, C, maxr, minc, ch);
                double br = pixel(in, H, W, C, maxr, maxc, ch);
                double top = (1 - dc) * tl + dc * tr;
                double bottom = (1 - dc) * bl + dc * br;
                out[((size_t)r * W + c) * C + ch] = (1 - dr) * top + dr * bottom;
            }
        }
}

void mr_affine_centred(double M[6], int H, int W, double sx, double sy, double rotation,
                       double shear)
{
    /* skimage 0.19 AffineTransform(scale, rotation, shear).params */
    double a1 = sx * cos(rotation), a2 = -sy * sin(rotation + shear);
    double b1 = sx * sin(rotation), b2 = sy * cos(rotation + shear);
    /* mnist-c: translation a3 = 13.5 (1 - a1 - a2), b3 = 13.5 (1 - b1 - b2) keeps the
     * centre of a 28 x 28 image fixed; here the centre is ((W-1)/2, (H-1)/2) */
    double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    M[0] = a1;
    M[1] = a2;
    M[3] = b1;
    M[4] = b2;
    if (H == W) { /* the reference's own expression, bit for bit */
        M[2] = cx * (1 - a1 - a2);
        M[5] = cy * (1 - b1 - b2);
    } else {
        M[2] = cx - a1 * cx - a2 * cy;
        M[5] = cy - b1 * cx - b2 * cy;
    }
}

int mr_warp_u8(uint8_t *out, const uint8_t *in, int H, int W, int C, const double M[6],
               mr_corrupt_ws *ws)
{
    size_t n = (size_t)H * W * C;
    mr_img_to_unit(ws->f[0], in, n);
    mr_img_warp(ws->f[1], ws->f[0], H, W, C, M);
    /* warp's clip=True clips to the input range, a no-op for bilinear */
    mr_img_from_unit(out, ws->f[1], n);
    return 0;
}
