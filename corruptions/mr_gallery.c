/* The corruption gallery: a grid picture of one image under every image corruption and
 * severity (io/mr_png.h writes it as a PNG). */
#include "mr_gallery.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_corruption.h"

void mr_gallery_opts_init(mr_gallery_opts *o)
{
    o->scale = 3;
    o->gap = 4;
    o->labels = 1;
    o->seed = 0;
    o->index = 0;
}

/* ------------------------------------------------------------------ 5x7 font */
/* 5 x 9 cells, rows top to bottom ('#' set): 2 ascender rows, 5 x-height rows, 2 descender
 * rows; a-z, 0-9, '_' and ' ' (enough for the corruption names) */
static const char glyph_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789_ ";
static const char *const glyphs[] = {
    ".....|.....|.###.|....#|.####|#...#|.####|.....|.....", /* a */
    "#....|#....|####.|#...#|#...#|#...#|####.|.....|.....", /* b */
    ".....|.....|.###.|#....|#....|#...#|.###.|.....|.....", /* c */
    "....#|....#|.####|#...#|#...#|#...#|.####|.....|.....", /* d */
    ".....|.....|.###.|#...#|#####|#....|.###.|.....|.....", /* e */
    "..##.|.#..#|.#...|###..|.#...|.#...|.#...|.....|.....", /* f */
    ".....|.....|.####|#...#|#...#|#...#|.####|....#|.###.", /* g */
    "#....|#....|#.##.|##..#|#...#|#...#|#...#|.....|.....", /* h */
    "..#..|.....|.##..|..#..|..#..|..#..|.###.|.....|.....", /* i */
    "...#.|.....|..##.|...#.|...#.|...#.|...#.|#..#.|.##..", /* j */
    "#....|#....|#..#.|#.#..|##...|#.#..|#..#.|.....|.....", /* k */
    ".##..|..#..|..#..|..#..|..#..|..#..|.###.|.....|.....", /* l */
    ".....|.....|##.#.|#.#.#|#.#.#|#...#|#...#|.....|.....", /* m */
    ".....|.....|#.##.|##..#|#...#|#...#|#...#|.....|.....", /* n */
    ".....|.....|.###.|#...#|#...#|#...#|.###.|.....|.....", /* o */
    ".....|.....|####.|#...#|#...#|#...#|####.|#....|#....", /* p */
    ".....|.....|.####|#...#|#...#|#...#|.####|....#|....#", /* q */
    ".....|.....|#.##.|##..#|#....|#....|#....|.....|.....", /* r */
    ".....|.....|.####|#....|.###.|....#|####.|.....|.....", /* s */
    ".#...|.#...|###..|.#...|.#...|.#..#|..##.|.....|.....", /* t */
    ".....|.....|#...#|#...#|#...#|#..##|.##.#|.....|.....", /* u */
    ".....|.....|#...#|#...#|#...#|.#.#.|..#..|.....|.....", /* v */
    ".....|.....|#...#|#...#|#.#.#|#.#.#|.#.#.|.....|.....", /* w */
    ".....|.....|#...#|.#.#.|..#..|.#.#.|#...#|.....|.....", /* x */
    ".....|.....|#...#|#...#|#...#|#...#|.####|....#|.###.", /* y */
    ".....|.....|#####|...#.|..#..|.#...|#####|.....|.....", /* z */
    ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.|.....|.....", /* 0 */
    "..#..|.##..|..#..|..#..|..#..|..#..|.###.|.....|.....", /* 1 */
    ".###.|#...#|....#|...#.|..#..|.#...|#####|.....|.....", /* 2 */
    "#####|...#.|..#..|...#.|....#|#...#|.###.|.....|.....", /* 3 */
    "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.|.....|.....", /* 4 */
    "#####|#....|####.|....#|....#|#...#|.###.|.....|.....", /* 5 */
    "..##.|.#...|#....|####.|#...#|#...#|.###.|.....|.....", /* 6 */
    "#####|....#|...#.|..#..|.#...|.#...|.#...|.....|.....", /* 7 */
    ".###.|#...#|#...#|.###.|#...#|#...#|.###.|.....|.....", /* 8 */
    ".###.|#...#|#...#|.####|....#|...#.|.##..|.....|.....", /* 9 */
    ".....|.....|.....|.....|.....|.....|#####|.....|.....", /* _ */
    ".....|.....|.....|.....|.....|.....|.....|.....|.....", /* space */
};
#define FONT_W 5
#define FONT_H 9

/* draw text with its top-left corner at (x, y), each font pixel k x k */
static void draw_text(uint8_t *can, int cw, int ch, int C, int x, int y, int k, const char *s,
                      uint8_t ink)
{
    for (; *s; s++, x += (FONT_W + 1) * k) {
        const char *p = strchr(glyph_chars, *s);
        if (!p) continue;
        const char *g = glyphs[p - glyph_chars];
        for (int r = 0; r < FONT_H; r++)
            for (int c = 0; c < FONT_W; c++) {
                if (g[r * (FONT_W + 1) + c] != '#') continue;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) {
                        int yy = y + r * k + dy, xx = x + c * k + dx;
                        if (yy < 0 || yy >= ch || xx < 0 || xx >= cw) continue;
                        for (int q = 0; q < C; q++) can[((size_t)yy * cw + xx) * C + q] = ink;
                    }
            }
    }
}

/* ------------------------------------------------------------------ gallery */
#define BG 24     /* background and gaps */
#define INK 235   /* text */

int mr_gallery_render(mr_gallery_image *res, const uint8_t *img, int H, int W, int C,
                      const mr_gallery_opts *o)
{
    memset(res, 0, sizeof *res);
    MR_REQUIRE(C == 1 || C == 3, MR_EINPUT, "gallery: %d channels (images have 1 or 3)", C);
    MR_REQUIRE(o->scale >= 1 && o->scale <= 16, MR_EINPUT, "gallery: scale %d is outside 1..16",
               o->scale);
    MR_REQUIRE(o->gap >= 0 && o->gap <= 64, MR_EINPUT, "gallery: gap %d is outside 0..64", o->gap);
    MR_REQUIRE(H >= 1 && W >= 1 && (long)H * o->scale <= 4096 && (long)W * o->scale <= 4096,
               MR_EINPUT, "gallery: image %dx%d at scale %d is too large", H, W, o->scale);
    int rows = 0;
    size_t longest = 5; /* "clean" */
    for (int k = 0; mr_corruption_types[k]; k++)
        if (mr_corruption_types[k]->modality == MR_MOD_IMAGE) {
            rows++;
            size_t l = strlen(mr_corruption_types[k]->name);
            longest = l > longest ? l : longest;
        }
    const int cols = 1 + MR_SEVERITY_MAX, tk = 2; /* text pixel size */
    int cellw = W * o->scale, cellh = H * o->scale, g = o->gap;
    int left = o->labels ? (int)longest * (FONT_W + 1) * tk + 2 * g : 0;
    int top = o->labels ? FONT_H * tk + 2 * g : 0;
    int cw = left + cols * (cellw + g) + g, chh = top + rows * (cellh + g) + g;
    uint8_t *can = malloc((size_t)cw * chh * C), *out = malloc((size_t)H * W * C);
    mr_corrupt_ws *ws = NULL;
    int st = can && out ? mr_corrupt_ws_alloc(&ws, H, W, C, 0)
                        : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        memset(can, BG, (size_t)cw * chh * C);
        if (o->labels) {
            static const char *const titles[] = {"clean", "1", "2", "3", "4", "5"};
            for (int c = 0; c < cols; c++) {
                int tw = (int)strlen(titles[c]) * (FONT_W + 1) * tk - tk;
                draw_text(can, cw, chh, C, left + g + c * (cellw + g) + (cellw - tw) / 2, g, tk,
                          titles[c], INK);
            }
        }
        int r = 0;
        for (int k = 0; mr_corruption_types[k] && st == MR_OK; k++) {
            const mr_corruption_type *t = mr_corruption_types[k];
            if (t->modality != MR_MOD_IMAGE) continue;
            int y0 = top + g + r * (cellh + g);
            if (o->labels)
                draw_text(can, cw, chh, C, g, y0 + (cellh - FONT_H * tk) / 2, tk, t->name, INK);
            for (int c = 0; c < cols && st == MR_OK; c++) {
                const uint8_t *src = img;
                if (c > 0) {
                    st = mr_corrupt_images(out, img, 1, H, W, C, t, c, o->seed, o->index, ws);
                    src = out;
                }
                int x0 = left + g + c * (cellw + g);
                for (int y = 0; y < cellh; y++)
                    for (int x = 0; x < cellw; x++)
                        memcpy(can + ((size_t)(y0 + y) * cw + x0 + x) * C,
                               src + ((size_t)(y / o->scale) * W + x / o->scale) * C, (size_t)C);
            }
            r++;
        }
    }
    mr_corrupt_ws_free(ws);
    free(out);
    if (st != MR_OK) {
        free(can);
        return st;
    }
    *res = (mr_gallery_image){.pixels = can, .w = cw, .h = chh, .C = C};
    return MR_OK;
}

void mr_gallery_image_free(mr_gallery_image *g)
{
    free(g->pixels);
    memset(g, 0, sizeof *g);
}
