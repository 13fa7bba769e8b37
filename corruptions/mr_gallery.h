/* mr_gallery.h — a picture of one image under every image corruption and severity, to
 * check the corruptions at a glance (docs/corruption-gallery-fmnist.png).
 *
 * Rows are the image corruptions in registry order, columns the clean image and
 * severities 1..5, each cell upscaled `scale` times (nearest neighbour) with a gap
 * between cells; with `labels`, the corruption names are drawn to the left and the
 * column titles on top in a built-in 5x9 pixel font. The image is corrupted as sample
 * `index` under `seed`, so the picture shows exactly what that sample gets in
 * `moe-robust corrupt` / `eval --corruption`.
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

/* A rendered gallery: pixels [h, w, C] (owned: mr_gallery_image_free). */
typedef struct mr_gallery_image {
    uint8_t *pixels;
    int w, h, C;
} mr_gallery_image;

/* Render the gallery of img [H, W, C] uint8, C = 1 (grey) or 3 (RGB), into *out (io/mr_png.h
 * writes it as a PNG). MR_EINPUT for bad arguments; on error *out is empty. */
int mr_gallery_render(mr_gallery_image *out, const uint8_t *img, int H, int W, int C,
                      const mr_gallery_opts *o);
void mr_gallery_image_free(mr_gallery_image *g);

#endif
