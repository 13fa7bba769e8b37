/* Fuzz harness: the IDX reader (io/mr_idx.c), gzip and raw.
 *
 * Input: the bytes of a file, gzip-compressed or not (zlib's gzread passes raw files
 * through, so one harness covers both paths). Each input is read as images (all, and
 * with --limit 2) and as labels.
 * Properties: status MR_OK or MR_EINPUT (never a failed allocation: headers that declare
 * too much are bad input); on success the sizes are positive, within the limit, and
 * every returned byte is readable (ASan checks the buffer's extent); on error the
 * message names the file and the output is NULL.
 */
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_util.h"
#include "io/mr_data.h"

static unsigned touch(const uint8_t *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

static void check_error(int st, const char *path, const void *out)
{
    FUZZ_CHECK(st == MR_EINPUT, "status %d: %s", st, mr_error_message());
    FUZZ_CHECK(out == NULL, "output left allocated after an error");
    FUZZ_CHECK(strstr(mr_error_message(), path), "message without the file: %s",
               mr_error_message());
}

static void images(const char *path, long limit)
{
    uint8_t *img = NULL;
    int n = -1, rows = -1, cols = -1;
    int st = mr_idx_read_images(path, limit, &img, &n, &rows, &cols);
    if (st != MR_OK) {
        check_error(st, path, img);
        return;
    }
    FUZZ_CHECK(n >= 1 && rows >= 1 && cols >= 1, "n %d rows %d cols %d", n, rows, cols);
    FUZZ_CHECK(limit <= 0 || n <= limit, "n %d above the limit %ld", n, limit);
    volatile unsigned s = touch(img, (size_t)n * rows * cols);
    (void)s;
    free(img);
}

static void labels(const char *path)
{
    uint8_t *lab = NULL;
    int n = -1;
    int st = mr_idx_read_labels(path, 0, &lab, &n);
    if (st != MR_OK) {
        check_error(st, path, lab);
        return;
    }
    FUZZ_CHECK(n >= 1, "n %d", n);
    volatile unsigned s = touch(lab, (size_t)n);
    (void)s;
    free(lab);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_tmp(data, size);
    images(path, 0);
    images(path, 2);
    labels(path);
    return 0;
}
