/* IDX reader (http://yann.lecun.com/exdb/mnist/ file format): big-endian header
 * 0x00 0x00 type ndims, then ndims big-endian uint32 sizes, then the data. zlib's
 * gzread reads .gz files and passes raw files through unchanged. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../analysis/mr_error.h"
#include "mr_data.h"
#include "mr_fs.h"

static int read_exact(gzFile g, const char *path, void *buf, size_t n, const char *what)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(g, (char *)buf + got, chunk);
        if (r <= 0) {
            int err;
            const char *msg = gzerror(g, &err);
            return mr_error_set(MR_EINPUT, "%s: truncated or corrupt IDX file while reading %s%s%s",
                                path, what, err ? ": " : "", err ? msg : "");
        }
        got += (size_t)r;
    }
    return MR_OK;
}

/* Read n bytes into a new buffer that grows with the data actually read (from 64 KiB,
 * doubling), so a header that declares gigabytes over a short file costs no more memory
 * than the file holds. */
static int read_alloc(gzFile g, const char *path, size_t n, const char *what, uint8_t **out)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int st = MR_OK;
    while (st == MR_OK && cap < n) {
        size_t got = cap;
        cap = cap ? 2 * cap : (size_t)1 << 16;
        if (cap > n) cap = n;
        uint8_t *b = realloc(buf, cap);
        if (!b)
            st = mr_error_set(MR_ENOMEM, "out of memory reading %s", path);
        else
            st = read_exact(g, path, (buf = b) + got, cap - got, what);
    }
    if (st != MR_OK) {
        free(buf);
        buf = NULL;
    }
    *out = buf;
    return st;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Header check: magic 0x0000 08 (unsigned byte) ndims; returns the sizes. */
static int read_header(gzFile g, const char *path, int want_dims, uint32_t *dims)
{
    unsigned char h[4], b[4];
    MR_TRY(read_exact(g, path, h, 4, "the header"));
    MR_REQUIRE(h[0] == 0 && h[1] == 0 && h[2] == 0x08 && h[3] == want_dims, MR_EINPUT,
               "%s: not an IDX uint8 file with %d dimensions (magic %02x%02x%02x%02x)", path,
               want_dims, h[0], h[1], h[2], h[3]);
    for (int i = 0; i < want_dims; i++) {
        MR_TRY(read_exact(g, path, b, 4, "the header"));
        dims[i] = be32(b);
    }
    return MR_OK;
}

/* A regular file only: a FIFO would block gzopen forever, /dev/zero would feed it
 * zeros without end (issue #23). */
static int open_gz(gzFile *g, const char *path)
{
    int fd;
    MR_TRY(mr_fs_open_input(path, &fd, NULL));
    *g = gzdopen(fd, "rb");
    if (!*g) {
        close(fd);
        return mr_error_set(MR_ENOMEM, "%s: out of memory", path);
    }
    return MR_OK;
}

int mr_idx_read_images(const char *path, long limit, uint8_t **out, int *n, int *rows,
                       int *cols)
{
    *out = NULL;
    gzFile g;
    MR_TRY(open_gz(&g, path));
    uint32_t dims[3] = {0};
    int st = read_header(g, path, 3, dims);
    if (st == MR_OK && (dims[0] == 0 || dims[0] > MR_DATA_MAX_SAMPLES || dims[1] == 0 ||
                        dims[1] > 8192 || dims[2] == 0 || dims[2] > 8192))
        st = mr_error_set(MR_EINPUT, "%s: implausible IDX image dimensions %u x %u x %u", path,
                          dims[0], dims[1], dims[2]);
    /* each bound alone lets the product reach 6.7e15 bytes (read_alloc would only find
     * the file short, but no IDX file of that size is plausible) */
    if (st == MR_OK && (size_t)dims[0] * dims[1] * dims[2] > MR_DATA_MAX_BYTES)
        st = mr_error_set(MR_EINPUT, "%s: IDX header declares %u images of %u x %u: too large",
                          path, dims[0], dims[1], dims[2]);
    if (st == MR_OK) {
        long count = limit > 0 && limit < (long)dims[0] ? limit : (long)dims[0];
        st = read_alloc(g, path, (size_t)count * dims[1] * dims[2], "the images", out);
        *n = (int)count;
        *rows = (int)dims[1];
        *cols = (int)dims[2];
    }
    gzclose(g);
    if (st != MR_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

int mr_idx_read_labels(const char *path, long limit, uint8_t **out, int *n)
{
    *out = NULL;
    gzFile g;
    MR_TRY(open_gz(&g, path));
    uint32_t dims[1] = {0};
    int st = read_header(g, path, 1, dims);
    if (st == MR_OK && (dims[0] == 0 || dims[0] > MR_DATA_MAX_SAMPLES))
        st = mr_error_set(MR_EINPUT, "%s: implausible IDX label count %u", path, dims[0]);
    if (st == MR_OK) {
        long count = limit > 0 && limit < (long)dims[0] ? limit : (long)dims[0];
        st = read_alloc(g, path, (size_t)count, "the labels", out);
        *n = (int)count;
    }
    gzclose(g);
    if (st != MR_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}
