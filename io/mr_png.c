#include "mr_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>

#include "../analysis/mr_error.h"
#include "mr_file.h"

int mr_png_write(const char *path, const uint8_t *pixels, int w, int h, int C)
{
    mr_atomic a;
    MR_TRY(mr_atomic_begin(&a, path));
    FILE *volatile fp = fopen(a.tmp, "wb");
    MR_REQUIRE(fp, MR_EINPUT, "%s: cannot create file (does the directory exist?)", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        mr_atomic_abort(&a);
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
    if (bad) {
        mr_atomic_abort(&a);
        return mr_error_set(MR_EIO, "%s: write failed", path);
    }
    return mr_atomic_commit(&a);
}
