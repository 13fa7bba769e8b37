#include "mr_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_file.h"

/* Encoded into memory, then written by the atomic writer (a full disk names the file
 * and the OS error); libpng itself never touches a file or prints. */
typedef struct png_mem {
    uint8_t *buf;
    size_t len, cap;
} png_mem;

static void png_mem_write(png_structp png, png_bytep data, png_size_t n)
{
    png_mem *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->len + n) cap *= 2;
        uint8_t *b = realloc(m->buf, cap);
        if (!b) png_error(png, "out of memory");
        m->buf = b;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void png_mem_flush(png_structp png) { (void)png; }

static void png_silent_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_silent_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

int mr_png_write(const char *path, const uint8_t *pixels, int w, int h, int C)
{
    png_mem m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_silent_error,
                                              png_silent_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.buf);
        return mr_error_set(MR_ENOMEM, "%s: out of memory encoding the PNG", path);
    }
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 C == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * w * C));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    int st = mr_file_write(path, m.buf, m.len);
    free(m.buf);
    return st;
}
