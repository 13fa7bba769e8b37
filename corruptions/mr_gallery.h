/* mr_gallery.h — a picture of one image under every image corruption and severity, to
 * check the corruptions at a glance (docs/corruption-gallery-fmnist.png).
 *
 * Rows are the image corruptions in registry order, columns the clean image and
 * severities 1..5, each cell upscaled `scale` times (nearest neighbour) with a gap
 * between cells; with `labels`, the corruption names are drawn to the left and the
 * column titles on top in a built-in 5x9 pixel font. The image is corrupted as sample
 * `index` under `seed`, so the picture shows exactly what that sample gets in
 * `moe-robust corrupt` / `eval --corruption`.
 * Files are written to PATH.tmp-PID and renamed into place (never half-written).
 */
#ifndef MR_GALLERY_H
#define MR_GALLERY_H

#include <stdint.h>

typedef struct mr_gallery_opts {
    int scale;      /* cell upscale factor, 1..16 (default 3) */
    int gap;        /* pixels between cells (default 4) */
    int labels;     /* draw names and column titles (default 1) */
    uint64_t seed;  /* corruption seed */
    uint64_t index; /* sample index the image is corrupted as */
} mr_gallery_opts;

void mr_gallery_opts_init(mr_gallery_opts *o);

/* img [H, W, C] uint8, C = 1 (grey PNG) or 3 (RGB PNG). MR_EINPUT for bad arguments or an
 * output that cannot be created, MR_EIO for a failed write. */
int mr_gallery_write(const char *path, const uint8_t *img, int H, int W, int C,
                     const mr_gallery_opts *o);

/* Write an 8-bit grey (C = 1) or RGB (C = 3) PNG of pixels [h, w, C], atomically. */
int mr_png_write(const char *path, const uint8_t *pixels, int w, int h, int C);

#endif
