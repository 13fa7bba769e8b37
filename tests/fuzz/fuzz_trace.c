/* Fuzz harness: the routing trace reader (io/mr_trace_io.c) that `moe-robust analyze`
 * trusts with traces written by other frameworks (docs/trace-format.md).
 *
 * Input: the bytes of an HDF5 file. It is opened as a trace and, if accepted, every row
 * is read in chunks of 3 rows (two buffer slots, so the slot arithmetic is exercised).
 * Properties: status MR_OK or MR_EINPUT, an error names the file and leaves the output
 * NULL; an accepted trace has 1 <= N, T, E, 1 <= k <= E, unique sample ids, layers in
 * increasing order; every row it reads has a 0/1 mask, probabilities in [0, 1] summing to
 * 1 (within 1e-2, on real tokens), top-k experts in 0..E-1 without repeats, finite
 * weights; no HDF5 object is left open (fuzz_h5.h).
 * Seeds: tests/fuzz/corpus/trace, tests/fixtures/traces/ and tests/bad/traces/.
 */
#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "fuzz_h5.h"
#include "fuzz_util.h"
#include "io/mr_trace_io.h"

static void check_rows(const mr_trace_file *t, const mr_trace_rows *r, int slot, int nb)
{
    int T = t->T, E = t->E, k = t->k;
    for (int li = 0; li < t->n_layers; li++)
        for (int b = slot; b < slot + nb; b++)
            for (int p = 0; p < T; p++) {
                size_t tok = (size_t)b * T + p, lt = ((size_t)li * r->cap * T) + tok;
                FUZZ_CHECK(r->mask[tok] <= 1, "mask %d", r->mask[tok]);
                const float *q = r->probs + lt * E;
                double s = 0;
                for (int e = 0; e < E; e++) {
                    FUZZ_CHECK(q[e] >= 0.0f && q[e] <= 1.0f, "prob %g", (double)q[e]);
                    s += q[e];
                }
                if (r->mask[tok]) FUZZ_CHECK(fabs(s - 1.0) <= 1e-2, "probs sum to %g", s);
                const uint16_t *idx = r->topk + lt * k;
                for (int j = 0; j < k; j++) {
                    FUZZ_CHECK(idx[j] < E, "expert %d of %d", idx[j], E);
                    for (int i = 0; i < j; i++) FUZZ_CHECK(idx[i] != idx[j], "expert twice");
                    FUZZ_CHECK(isfinite(r->weights[lt * k + j]), "weight not finite");
                }
            }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_tmp(data, size);
    mr_trace_file *t = NULL;
    int st = mr_trace_open(&t, path);
    if (st != MR_OK) {
        FUZZ_CHECK(st == MR_EINPUT, "status %d: %s", st, mr_error_message());
        FUZZ_CHECK(t == NULL, "output left allocated after an error");
        FUZZ_CHECK(strstr(mr_error_message(), path), "message without the file: %s",
                   mr_error_message());
    } else {
        FUZZ_CHECK(t->N >= 1 && t->T >= 1 && t->E >= 1 && t->k >= 1 && t->k <= t->E,
                   "N %d T %d E %d k %d", t->N, t->T, t->E, t->k);
        for (int i = 1; i < t->n_layers; i++)
            FUZZ_CHECK(t->layers[i].index > t->layers[i - 1].index, "layers out of order");
        mr_trace_rows r;
        st = mr_trace_rows_alloc(&r, t, 6, 1);
        FUZZ_CHECK(st == MR_OK || st == MR_ENOMEM, "status %d", st);
        for (int r0 = 0, i = 0; st == MR_OK && r0 < t->N && i < 64; r0 += 3, i++) {
            int nb = t->N - r0 < 3 ? t->N - r0 : 3, slot = (i % 2) * 3;
            st = mr_trace_read_rows(t, r0, nb, &r, slot);
            if (st == MR_OK) check_rows(t, &r, slot, nb);
            else
                FUZZ_CHECK(st == MR_EINPUT && strstr(mr_error_message(), path),
                           "status %d: %s", st, mr_error_message());
        }
        mr_trace_rows_free(&r);
        mr_trace_close(t);
    }
    fuzz_check_h5_closed();
    return 0;
}
