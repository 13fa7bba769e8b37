/* Fuzz harness: the model validator (io/mr_model_io.c) and the HDF5 data reader
 * (io/mr_data.c), both over io/mr_h5.c, on the same file.
 *
 * Input: the bytes of a file; seeds are the tiny fixtures and the malformed models and
 * data of tests/bad/, so mutations start from valid HDF5 structure.
 * Properties: status MR_OK or MR_EINPUT, an error names the file and leaves the output
 * NULL; a loaded model passes mr_config_check again and prints its summary; loaded data
 * has samples and buffers of the declared size; when both load, checking the data
 * against the model returns MR_OK or MR_EINPUT; no HDF5 object is left open (fuzz_h5.h).
 * Crashes inside libhdf5 itself on hostile files are possible (it is not hardened against
 * them); docs/reliability.md says how such findings are triaged.
 */
#include <hdf5.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_h5.h"
#include "fuzz_util.h"
#include "io/mr_data.h"
#include "io/mr_model_io.h"

static void check_error(int st, const char *path, const void *out)
{
    FUZZ_CHECK(st == MR_EINPUT, "status %d: %s", st, mr_error_message());
    FUZZ_CHECK(out == NULL, "output left allocated after an error");
    FUZZ_CHECK(strstr(mr_error_message(), path), "message without the file: %s",
               mr_error_message());
}

static void check_data(const mr_dataset *d)
{
    FUZZ_CHECK(d->n >= 1, "n = %d", d->n);
    volatile long s = 0;
    if (d->kind == MR_DATA_IMAGES) {
        FUZZ_CHECK(d->h >= 1 && d->w >= 1 && d->c >= 1 && d->images && d->labels,
                   "images %dx%dx%d", d->h, d->w, d->c);
        size_t n = (size_t)d->n * d->h * d->w * d->c;
        for (size_t i = 0; i < n; i += 4096) s += d->images[i]; /* ends of each page */
        s += d->images[n - 1] + d->labels[d->n - 1];
    } else {
        FUZZ_CHECK(d->kind == MR_DATA_TOKENS && d->cols >= 2 && d->tokens, "cols %d", d->cols);
        s += d->tokens[(size_t)d->n * d->cols - 1];
    }
    (void)s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_tmp(data, size);
    mr_model *m = NULL;
    int st = mr_model_load(&m, path);
    if (st != MR_OK) {
        check_error(st, path, m);
    } else {
        FUZZ_CHECK(mr_config_check(&m->cfg) == MR_OK, "loaded an invalid configuration: %s",
                   mr_error_message());
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            mr_model_print_summary(devnull, m);
            fclose(devnull);
        }
    }
    mr_dataset *d = NULL;
    st = mr_dataset_load(&d, path, 0);
    if (st != MR_OK) {
        check_error(st, path, d);
    } else {
        check_data(d);
        if (m) {
            st = mr_dataset_check_model(d, m);
            FUZZ_CHECK(st == MR_OK || st == MR_EINPUT, "status %d", st);
        }
    }
    mr_dataset_free(d);
    mr_model_free(m);
    fuzz_check_h5_closed();
    return 0;
}
