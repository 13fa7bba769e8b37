/* The corruption gallery: a grid PNG of one image under every image corruption and
 * severity, written with libpng. */
#include "mr_gallery.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ------------------------------------------------------------------ PNG */
int mr_png_write(const char *path, const uint8_t *pixels, int w, int h, int C)
{
    char tmp[1100];
    MR_REQUIRE(strlen(path) < 1000, MR_EINPUT, "%s: path too long", path);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *volatile fp = fopen(tmp, "wb");
    MR_REQUIRE(fp, MR_EINPUT, "%s: cannot create file (does the directory exist?)", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        unlink(tmp);
        return mr_error_set(MR_EIO, "%s: PNG write failed", path);
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 C == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * w * C));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int bad = ferror(fp) != 0;
    bad |= fclose(fp) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return mr_error_set(MR_EIO, "%s: write failed", path);
    }
    return MR_OK;
}

/* ------------------------------------------------------------------ gallery */
#define BG 24     /* background and gaps */
#define INK 235   /* text */

int mr_gallery_write(const char *path, const uint8_t *img, int H, int W, int C,
                     const mr_gallery_opts *o)
{
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
    if (st == MR_OK) st = mr_png_write(path, can, cw, chh, C);
    mr_corrupt_ws_free(ws);
    free(can);
    free(out);
    return st;
}
