/* mr_png.h — 8-bit PNG output with libpng (the corruption gallery), written atomically
 * (io/mr_file.h).
 */
#ifndef MR_PNG_H
#define MR_PNG_H

#include <stdint.h>

/* Write an 8-bit grey (C = 1) or RGB (C = 3) PNG of pixels [h, w, C]. MR_EINPUT for an
 * output that cannot be created, MR_EIO for a failed write. */
int mr_png_write(const char *path, const uint8_t *pixels, int w, int h, int C);

#endif
