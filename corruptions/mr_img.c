/* Image conversions, rounding and colour spaces shared by the image corruptions. */
#include <math.h>

#include "mr_corrupt_impl.h"

void mr_img_to_unit(double *f, const uint8_t *u, size_t n)
{
    for (size_t i = 0; i < n; i++) f[i] = u[i] / 255.0; /* np.array(x) / 255. */
}

uint8_t mr_img_q16_to_u8(double v)
{
    if (!(v > 0.0)) return 0; /* also NaN */
    if (v >= 255.0) return 255;
    double q = floor(257.0 * v + 0.5); /* ClampToQuantum: round to the 16-bit quantum */
    return (uint8_t)floor(q / 257.0);  /* the 8-bit byte of that quantum, truncated */
}

void mr_img_from_unit(uint8_t *u, const double *f, size_t n)
{
    /* np.clip(x, 0, 1) * 255 then np.uint8 / astype(np.uint8): truncation */
    for (size_t i = 0; i < n; i++) {
        double v = f[i];
        if (!(v > 0.0)) v = 0.0; /* also NaN */
        if (v > 1.0) v = 1.0;
        u[i] = (uint8_t)(v * 255.0);
    }
}

void mr_img_blend(uint8_t *out, const uint8_t *x, const uint8_t *t, size_t n, int s)
{
    /* exact: round half up of (x (5 - s) + t s) / 5 = floor((2 num + 5) / 10) */
    for (size_t i = 0; i < n; i++) {
        int num = x[i] * (5 - s) + t[i] * s;
        out[i] = (uint8_t)((2 * num + 5) / 10);
    }
}

double mr_rgb2gray(double r, double g, double b)
{
    /* skimage.color.rgb2gray: rgb @ [0.2125, 0.7154, 0.0721] */
    return r * 0.2125 + g * 0.7154 + b * 0.0721;
}

void mr_rgb2hsv(const double rgb[3], double hsv[3])
{
    /* skimage 0.19 rgb2hsv: later channels win ties (blue over green over red) */
    double r = rgb[0], g = rgb[1], b = rgb[2];
    double v = fmax(r, fmax(g, b)), mn = fmin(r, fmin(g, b)), delta = v - mn;
    double s = delta == 0.0 ? 0.0 : delta / v, h = 0.0;
    if (delta != 0.0) {
        if (r == v) h = (g - b) / delta;
        if (g == v) h = 2.0 + (b - r) / delta;
        if (b == v) h = 4.0 + (r - g) / delta;
        h = h / 6.0;
        h = h - floor(h); /* Python's % 1. */
    }
    if (isnan(s)) s = 0.0;
    hsv[0] = h;
    hsv[1] = s;
    hsv[2] = v;
}

void mr_hsv2rgb(const double hsv[3], double rgb[3])
{
    double h = hsv[0], s = hsv[1], v = hsv[2];
    double hi = floor(h * 6.0), f = h * 6.0 - hi;
    double p = v * (1.0 - s), q = v * (1.0 - f * s), t = v * (1.0 - (1.0 - f) * s);
    int k = ((int)(uint8_t)hi) % 6; /* .astype(np.uint8) % 6 */
    switch (k) {
    case 0: rgb[0] = v; rgb[1] = t; rgb[2] = p; break;
    case 1: rgb[0] = q; rgb[1] = v; rgb[2] = p; break;
    case 2: rgb[0] = p; rgb[1] = v; rgb[2] = t; break;
    case 3: rgb[0] = p; rgb[1] = q; rgb[2] = v; break;
    case 4: rgb[0] = t; rgb[1] = p; rgb[2] = v; break;
    default: rgb[0] = v; rgb[1] = p; rgb[2] = q; break;
    }
}
