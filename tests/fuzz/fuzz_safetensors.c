/* Fuzz harness: the safetensors reader (io/mr_safetensors.c) that `moe-robust import`
 * trusts with Hugging Face checkpoints.
 *
 * Input: the bytes of a file. It is opened as a safetensors file (8-byte header length,
 * JSON header, data), and the same bytes are also parsed as a bare header (JSON text) for
 * a data section of 4096 bytes, so that mutations reach the JSON checks without having to
 * keep the length prefix consistent.
 * Properties: status MR_OK or MR_EINPUT, an error names the file and leaves the output
 * NULL; an accepted header has unique names in sorted order, supported dtypes, rank <= 8,
 * every tensor's byte range inside the data section and of exactly its dtype x shape size,
 * no two ranges overlapping; every tensor of an opened file reads (MR_OK, or MR_EINPUT
 * naming it for a NaN or Inf) into a buffer of exactly its element count.
 * Seeds: tests/fuzz/corpus/safetensors (valid f32, bf16, f16 files) and every file of the
 * malformed checkpoints in tests/bad/hf/.
 */
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_util.h"
#include "io/mr_safetensors.h"

static void check_error(int st, const char *path, const void *out)
{
    FUZZ_CHECK(st == MR_EINPUT, "status %d: %s", st, mr_error_message());
    FUZZ_CHECK(out == NULL, "output left allocated after an error");
    FUZZ_CHECK(strstr(mr_error_message(), path), "message without the file: %s",
               mr_error_message());
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check_layout(const mr_st_file *f)
{
    uint64_t *r = malloc(((size_t)f->n + 1) * 2 * sizeof *r);
    FUZZ_CHECK(r, "out of memory");
    int m = 0;
    for (int i = 0; i < f->n; i++) {
        const mr_st_tensor *t = &f->tensors[i];
        FUZZ_CHECK(t->name && t->name[0], "tensor %d without a name", i);
        FUZZ_CHECK(i == 0 || strcmp(f->tensors[i - 1].name, t->name) < 0,
                   "names not unique and sorted at %s", t->name);
        FUZZ_CHECK(t->dtype >= MR_ST_F32 && t->dtype <= MR_ST_BF16, "%s: dtype %d", t->name,
                   t->dtype);
        FUZZ_CHECK(t->rank >= 0 && t->rank <= MR_ST_MAX_RANK, "%s: rank %d", t->name, t->rank);
        uint64_t n = 1;
        for (int j = 0; j < t->rank; j++) n *= (uint64_t)t->shape[j];
        FUZZ_CHECK(n == t->numel, "%s: numel %llu for its shape", t->name,
                   (unsigned long long)t->numel);
        FUZZ_CHECK(t->begin <= t->end && t->end <= f->data_size, "%s: [%llu, %llu] outside %llu",
                   t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                   (unsigned long long)f->data_size);
        FUZZ_CHECK(t->end - t->begin == t->numel * (t->dtype == MR_ST_F32 ? 4u : 2u),
                   "%s: byte range does not match dtype x shape", t->name);
        if (t->end > t->begin) {
            r[2 * m] = t->begin;
            r[2 * m + 1] = t->end;
            m++;
        }
    }
    qsort(r, (size_t)m, 2 * sizeof *r, cmp_u64); /* pairs sorted by begin */
    for (int i = 1; i < m; i++)
        FUZZ_CHECK(r[2 * i] >= r[2 * i - 1], "byte ranges overlap");
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_tmp(data, size);
    mr_st_file *f = NULL;
    int st = mr_st_open(&f, path);
    if (st != MR_OK) {
        check_error(st, path, f);
    } else {
        check_layout(f);
        for (int i = 0; i < f->n; i++) {
            const mr_st_tensor *t = &f->tensors[i];
            float *buf = malloc((size_t)t->numel * sizeof *buf + 1);
            FUZZ_CHECK(buf, "out of memory for %llu floats", (unsigned long long)t->numel);
            st = mr_st_read(f, t, buf);
            FUZZ_CHECK(st == MR_OK || (st == MR_EINPUT && strstr(mr_error_message(), t->name)),
                       "%s: read status %d: %s", t->name, st, mr_error_message());
            free(buf);
        }
        FUZZ_CHECK(mr_st_find(f, "\x01 no such tensor") == NULL, "found a tensor never named");
        mr_st_close(f);
    }
    f = NULL;
    st = mr_st_parse_header(&f, "fuzz-header", (const char *)data, size, 4096);
    if (st != MR_OK) {
        check_error(st, "fuzz-header", f);
    } else {
        check_layout(f);
        mr_st_close(f);
    }
    return 0;
}
