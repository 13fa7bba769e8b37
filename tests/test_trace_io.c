/* Trace format v1 reader (io/mr_trace_io.c): the engine's own trace reads back as the
 * engine computed it; float16, bfloat16 (named type and uint16 + dtype) and float32
 * copies of the same scores read identically; derived top-k equals a stored one; masks,
 * probs and sigmoid scores; every malformed trace of tests/bad/traces/MANIFEST.tsv is
 * refused with MR_EINPUT naming the file and the manifest's dataset or value. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "analysis/mr_ops.h" /* mr_simd_avx512_set */
#include "harness/mr_eval.h"
#include "io/mr_model_io.h"
#include "io/mr_trace_io.h"
#include "mr_test_util.h"

#define FIX "tests/fixtures/traces/"

static mr_trace_file *open_ok(const char *path)
{
    mr_trace_file *t = NULL;
    ck_assert_msg(mr_trace_open(&t, path) == MR_OK, "%s", mr_error_message());
    return t;
}

/* Every row of t in file order. */
static void read_all(const mr_trace_file *t, mr_trace_rows *r)
{
    ck_assert_int_eq(mr_trace_rows_alloc(r, t, t->N, 1), MR_OK);
    /* two calls into different slots: slots must not disturb each other */
    int half = t->N / 2;
    ck_assert_msg(mr_trace_read_rows(t, half, t->N - half, r, half) == MR_OK, "%s",
                  mr_error_message());
    ck_assert_msg(mr_trace_read_rows(t, 0, half, r, 0) == MR_OK, "%s", mr_error_message());
}

/* t read again into rows that keep neither probs nor weights (as analyze reads them):
 * the same top-k and per-row sums as the rows `kept` read by read_all; the weights left
 * unallocated unless the trace stores its own (which are then read and checked). */
static void same_sums_unkept(const mr_trace_file *t, const mr_trace_rows *kept)
{
    mr_trace_rows r;
    ck_assert_int_eq(mr_trace_rows_alloc(&r, t, t->N, 0), MR_OK);
    ck_assert_ptr_null(r.probs);
    ck_assert_ptr_null(r.weights);
    int half = t->N / 2;
    ck_assert_msg(mr_trace_read_rows(t, half, t->N - half, &r, half) == MR_OK, "%s",
                  mr_error_message());
    ck_assert_msg(mr_trace_read_rows(t, 0, half, &r, 0) == MR_OK, "%s", mr_error_message());
    int stored = 0;
    for (int li = 0; li < t->n_layers; li++) stored |= t->layers[li].has_weights;
    ck_assert_msg((r.weights != NULL) == stored, "%s: weights %s", t->path,
                  r.weights ? "allocated" : "missing");
    size_t L = (size_t)t->n_layers, rows = L * t->N;
    ck_assert_msg(memcmp(r.topk, kept->topk, rows * t->T * t->k * sizeof *r.topk) == 0,
                  "%s: top-k differs", t->path);
    ck_assert_msg(memcmp(r.h_sum, kept->h_sum, rows * sizeof *r.h_sum) == 0, "%s: entropy sums "
                  "differ", t->path);
    ck_assert_msg(memcmp(r.hw_sum, kept->hw_sum, rows * sizeof *r.hw_sum) == 0, "%s: weight "
                  "entropy sums differ", t->path);
    ck_assert_msg(memcmp(r.psum, kept->psum, rows * t->E * sizeof *r.psum) == 0, "%s: "
                  "probability sums differ", t->path);
    if (stored)
        ck_assert_msg(memcmp(r.weights, kept->weights, rows * t->T * t->k * sizeof *r.weights) == 0,
                      "%s: stored weights differ", t->path);
    mr_trace_rows_free(&r);
}

START_TEST(half_floats)
{
    ck_assert_float_eq(mr_half_to_float(0x3c00), 1.0f);
    ck_assert_float_eq(mr_half_to_float(0xc000), -2.0f);
    ck_assert_float_eq(mr_half_to_float(0x0001), ldexpf(1.0f, -24)); /* smallest subnormal */
    ck_assert_float_eq(mr_half_to_float(0x7bff), 65504.0f);
    ck_assert(isinf(mr_half_to_float(0x7c00)));
    ck_assert(isnan(mr_half_to_float(0x7e00)));
    ck_assert_float_eq(mr_bf16_to_float(0x3f80), 1.0f);
    ck_assert_float_eq(mr_bf16_to_float(0xc0a0), -5.0f);
    /* every finite half is exact in float and round-trips through _Float16 rules */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float f = mr_half_to_float((uint16_t)h);
        ck_assert(isfinite(f) && f >= 0.0f);
        if (h) ck_assert(f > mr_half_to_float((uint16_t)(h - 1)));
    }
}
END_TEST

/* The vector widening (mr_trace_widen) gives mr_half_to_float's / mr_bf16_to_float's
 * bits for all 65,536 patterns of both kinds (NaNs: a NaN), at every vector tail, and
 * flags exactly the lane (e % 16) of an Inf or NaN; with the AVX-512 kernel (where the
 * CPU has it) and without. */
START_TEST(widen_every_pattern)
{
    static uint16_t raw[65536];
    static float got[65536];
    for (uint32_t h = 0; h < 65536; h++) raw[h] = (uint16_t)h;
    for (int kind = 0; kind < 4; kind++) { /* 2, 3: without the AVX-512 kernel */
        mr_simd_avx512_set(kind < 2);
        int dt = kind % 2 ? MR_TRACE_BF16 : MR_TRACE_F16;
        uint32_t bad[16] = {0};
        mr_trace_widen(got, raw, 65536, dt, bad);
        for (int l = 0; l < 16; l++) ck_assert_int_eq(bad[l] != 0, 1); /* Inf, NaN in every lane */
        for (uint32_t h = 0; h < 65536; h++) {
            float want = kind % 2 ? mr_bf16_to_float((uint16_t)h) : mr_half_to_float((uint16_t)h);
            if (isnan(want)) {
                ck_assert_msg(isnan(got[h]), "kind %d: 0x%04x", kind, h);
            } else {
                uint32_t a, b;
                memcpy(&a, &got[h], 4);
                memcpy(&b, &want, 4);
                ck_assert_msg(a == b, "kind %d: 0x%04x -> 0x%08x, expected 0x%08x", kind, h, a, b);
            }
        }
        /* a row's flag: finite iff none of its values is Inf / NaN, for lengths 1..70 */
        uint32_t inf = kind % 2 ? 0x7f80 : 0x7c00;
        for (int n = 1; n <= 70; n++)
            for (int bad = -1; bad < n; bad += 7) {
                uint16_t row[70];
                for (int e = 0; e < n; e++) row[e] = (uint16_t)(0x3c00 + e);
                if (bad >= 0) row[bad] = (uint16_t)(inf | (bad & 1));
                uint32_t fl[16] = {0};
                mr_trace_widen(got, row, n, dt, fl);
                for (int l = 0; l < 16; l++)
                    ck_assert_int_eq(fl[l] != 0, bad >= 0 && bad % 16 == l);
            }
    }
    mr_simd_avx512_set(1);
}
END_TEST

/* A trace read directly (contiguous scores, pread) that shrinks after it was opened
 * (another process rewriting it): MR_EIO and one line naming the file, the dataset and
 * the row; the file cut before the scores (the first read finds the end) and inside the
 * first row (a short read, then the end). */
START_TEST(shrunk_trace_fails_cleanly)
{
    for (int cut = 0; cut < 2; cut++) {
        char path[] = "/tmp/mr-test-shrink-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        FILE *in = fopen(FIX "logits-f16-contig.h5", "rb");
        ck_assert_ptr_nonnull(in);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
        fclose(in);
        close(fd);
        mr_trace_file *t = open_ok(path);
        ck_assert_int_ge((int)t->layers[0].file_off, 0);
        mr_trace_rows r;
        ck_assert_int_eq(mr_trace_rows_alloc(&r, t, t->N, 0), MR_OK);
        /* layer 0's scores: its first row's 5 x 4 float16 (40 bytes) from file_off */
        long long end = cut ? t->layers[0].file_off + 10 : 4096;
        ck_assert(cut || end <= t->layers[0].file_off);
        ck_assert_int_eq(truncate(path, (off_t)end), 0);
        ck_assert_int_eq(mr_trace_read_rows(t, 0, t->N, &r, 0), MR_EIO);
        const char *msg = mr_error_message();
        char at[64];
        snprintf(at, sizeof at, "ends at byte %lld", end);
        ck_assert_msg(strstr(msg, path) && strstr(msg, "/layers/1/router_logits[0]") &&
                          strstr(msg, "shrank") && strstr(msg, at) && !strchr(msg, '\n'),
                      "%s", msg);
        mr_trace_rows_free(&r);
        mr_trace_close(t);
        unlink(path);
    }
}
END_TEST

/* A trace written twice by libhdf5, the same values: contiguous (read directly) and
 * chunked + deflated (read through libhdf5). N 3, T 2051, E 64 (rows longer than a piece
 * of 256 KiB: read in pieces of 2048 float16 or 1024 float32 tokens, the last of 3), layers
 * 0 float16 softmax logits (the batched kernels), 1 float32 sigmoid logits (token by
 * token), 2 bfloat16 softmax logits with norm_topk and a mask; a few scores tied. */
static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE); /* IEEE binary16: libhdf5 1.10 has no predefined one */
    ck_assert_int_ge(H5Tset_fields(t, 15, 10, 5, 0, 10), 0);
    ck_assert_int_ge(H5Tset_precision(t, 16), 0);
    ck_assert_int_ge(H5Tset_size(t, 2), 0);
    ck_assert_int_ge(H5Tset_ebias(t, 15), 0);
    return t;
}

static void write_long_trace(const char *path, int chunked)
{
    enum { N = 3, T = 2051, E = 64 };
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    const char *keys[] = {"format", "model", "router", "checkpoint", "condition", "task", "source"};
    const char *vals[] = {"moe-robust-trace", "long", "softmax", "c", "clean", "none", "test"};
    hid_t scalar = H5Screate(H5S_SCALAR);
    for (int i = 0; i < 7; i++) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, strlen(vals[i]) + 1);
        hid_t a = H5Acreate2(f, keys[i], st, scalar, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Awrite(a, st, vals[i]), 0);
        H5Aclose(a);
        H5Tclose(st);
    }
    long long one = 1;
    const char *ints[] = {"version", "step"};
    for (int i = 0; i < 2; i++) {
        hid_t a = H5Acreate2(f, ints[i], H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_LLONG, &one), 0);
        H5Aclose(a);
    }
    hsize_t nd[1] = {N}, md[2] = {N, T}, sd[3] = {N, T, E}, cd[3] = {1, 512, E};
    hid_t s1 = H5Screate_simple(1, nd, NULL), s2 = H5Screate_simple(2, md, NULL),
          s3 = H5Screate_simple(3, sd, NULL);
    long long ids[N] = {7, 3, 11};
    hid_t d = H5Dcreate2(f, "sample_id", H5T_STD_I64LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids), 0);
    H5Dclose(d);
    static unsigned char mask[N * T];
    for (int i = 0; i < N * T; i++) mask[i] = i % 97 != 5;
    d = H5Dcreate2(f, "mask", H5T_STD_U8LE, s2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask), 0);
    H5Dclose(d);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) {
        H5Pset_chunk(dcpl, 3, cd);
        H5Pset_deflate(dcpl, 1);
    }
    static float v[N * T * E];
    static uint16_t h[N * T * E];
    uint32_t x = 12345;
    for (int li = 0; li < 3; li++) {
        for (size_t i = 0; i < (size_t)N * T * E; i++) {
            x = x * 1664525u + 1013904223u;
            /* a value on a grid of 1/8 in -4 .. 4 (exact in every dtype: ties occur) */
            v[i] = (float)((int)(x >> 24) % 64 - 32) / 8.0f;
            uint32_t bits;
            memcpy(&bits, &v[i], 4);
            if (li == 0) { /* float16 of a value on the grid: exact */
                h[i] = (uint16_t)((bits >> 16 & 0x8000u) |
                                  (v[i] == 0.0f ? 0u : ((bits >> 23 & 0xffu) - 112u) << 10 |
                                                           (bits >> 13 & 0x3ffu)));
            } else {
                h[i] = (uint16_t)(bits >> 16);
            }
        }
        char g[32];
        snprintf(g, sizeof g, "layers/%d", li);
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t grp = H5Gcreate2(f, g, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
        hid_t ft = li == 0 ? half_type() : li == 1 ? H5Tcopy(H5T_IEEE_F32LE)
                                                   : H5Tcopy(H5T_STD_U16LE);
        d = H5Dcreate2(grp, "router_logits", ft, s3, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        ck_assert_int_ge(d, 0);
        if (li == 1) {
            ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
        } else {
            hid_t mt = li == 0 ? half_type() : H5Tcopy(H5T_NATIVE_USHORT);
            ck_assert_int_ge(H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, h), 0);
            H5Tclose(mt);
        }
        if (li == 2) {
            hid_t st = H5Tcopy(H5T_C_S1);
            H5Tset_size(st, 9);
            hid_t a = H5Acreate2(d, "dtype", st, scalar, H5P_DEFAULT, H5P_DEFAULT);
            ck_assert_int_ge(H5Awrite(a, st, "bfloat16"), 0);
            H5Aclose(a);
            H5Tclose(st);
        }
        long long kv = 4, norm = li == 2;
        hid_t a = H5Acreate2(grp, "top_k", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_LLONG, &kv), 0);
        H5Aclose(a);
        a = H5Acreate2(grp, "norm_topk", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_LLONG, &norm), 0);
        H5Aclose(a);
        const char *score = li == 1 ? "sigmoid" : "softmax";
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, strlen(score) + 1);
        a = H5Acreate2(grp, "score", st, scalar, H5P_DEFAULT, H5P_DEFAULT);
        ck_assert_int_ge(H5Awrite(a, st, score), 0);
        H5Aclose(a);
        H5Tclose(st);
        H5Tclose(ft);
        H5Dclose(d);
        H5Gclose(grp);
    }
    H5Pclose(dcpl);
    H5Sclose(s1);
    H5Sclose(s2);
    H5Sclose(s3);
    H5Sclose(scalar);
    ck_assert_int_ge(H5Fclose(f), 0);
}

/* Rows longer than a piece: read directly (pread, in pieces) and through libhdf5, the
 * same probabilities, top-k, weights and per-row sums, kept and not kept, on 1 and 2
 * threads; and rows not kept the same as rows kept. */
START_TEST(direct_and_libhdf5_reads_agree)
{
    char direct[] = "/tmp/mr-test-direct-XXXXXX", lib[] = "/tmp/mr-test-lib-XXXXXX";
    int fd1 = mkstemp(direct), fd2 = mkstemp(lib);
    ck_assert(fd1 >= 0 && fd2 >= 0);
    close(fd1);
    close(fd2);
    write_long_trace(direct, 0);
    write_long_trace(lib, 1);
    mr_trace_file *a = open_ok(direct), *b = open_ok(lib);
    ck_assert_int_eq(a->T, 2051);
    for (int li = 0; li < 3; li++) {
        ck_assert_int_ge((int)a->layers[li].file_off, 0);
        ck_assert_int_eq((int)b->layers[li].file_off, -1);
    }
    for (int keep = 0; keep < 2; keep++)
        for (int th = 1; th <= 2; th++) {
            mr_trace_rows ra, rb;
            ck_assert_int_eq(mr_trace_rows_alloc(&ra, a, a->N, keep), MR_OK);
            ck_assert_int_eq(mr_trace_rows_alloc(&rb, b, b->N, keep), MR_OK);
            ra.threads = rb.threads = th;
            ck_assert_msg(mr_trace_read_rows(a, 1, 2, &ra, 1) == MR_OK, "%s", mr_error_message());
            ck_assert_msg(mr_trace_read_rows(a, 0, 1, &ra, 0) == MR_OK, "%s", mr_error_message());
            ck_assert_msg(mr_trace_read_rows(b, 0, 3, &rb, 0) == MR_OK, "%s", mr_error_message());
            size_t rows = (size_t)3 * a->N, tok = rows * a->T;
            ck_assert(memcmp(ra.topk, rb.topk, tok * a->k * sizeof *ra.topk) == 0);
            ck_assert(memcmp(ra.h_sum, rb.h_sum, rows * sizeof *ra.h_sum) == 0);
            ck_assert(memcmp(ra.hw_sum, rb.hw_sum, rows * sizeof *ra.hw_sum) == 0);
            ck_assert(memcmp(ra.psum, rb.psum, rows * a->E * sizeof *ra.psum) == 0);
            if (keep) {
                ck_assert(memcmp(ra.probs, rb.probs, tok * a->E * sizeof *ra.probs) == 0);
                ck_assert(memcmp(ra.weights, rb.weights, tok * a->k * sizeof *ra.weights) == 0);
            }
            /* the rows differ from piece to piece: not one piece read for all */
            ck_assert(memcmp(ra.topk, ra.topk + (size_t)2048 * a->k, 3 * a->k * sizeof *ra.topk) != 0);
            mr_trace_rows_free(&ra);
            mr_trace_rows_free(&rb);
        }
    /* rows that keep no probabilities (analyze's: the 16-bit layers, 64 experts, top-4,
     * routed 16 tokens at a time across the vector lanes, analysis/mr_lanes.h; 2051 = 128
     * x 16 + 3 tokens a row) against rows that keep them (8-token batches): the same bits;
     * also with the AVX-512 kernels off (MR_SIMD=avx2: the AVX2 token-lane kernel, where
     * the CPU has AVX2) against the rows kept by the default path */
    for (int th = 1; th <= 2; th++)
        for (int f = 0; f < 2; f++)
            for (int off = 0; off < 2; off++) {
                mr_trace_file *t = f ? b : a;
                mr_trace_rows rk, ru;
                ck_assert_int_eq(mr_trace_rows_alloc(&rk, t, t->N, 1), MR_OK);
                ck_assert_int_eq(mr_trace_rows_alloc(&ru, t, t->N, 0), MR_OK);
                rk.threads = ru.threads = th;
                ck_assert_msg(mr_trace_read_rows(t, 0, 3, &rk, 0) == MR_OK, "%s", mr_error_message());
                mr_simd_avx512_set(!off);
                ck_assert_msg(mr_trace_read_rows(t, 0, 3, &ru, 0) == MR_OK, "%s", mr_error_message());
                mr_simd_avx512_set(1);
                size_t rows = (size_t)3 * t->N, tok = rows * t->T;
                ck_assert_msg(memcmp(rk.topk, ru.topk, tok * t->k * sizeof *rk.topk) == 0 &&
                                  memcmp(rk.h_sum, ru.h_sum, rows * sizeof *rk.h_sum) == 0 &&
                                  memcmp(rk.hw_sum, ru.hw_sum, rows * sizeof *rk.hw_sum) == 0 &&
                                  memcmp(rk.psum, ru.psum, rows * t->E * sizeof *rk.psum) == 0,
                              "threads %d file %d AVX-512 off %d: the unkept rows differ", th, f, off);
                mr_trace_rows_free(&rk);
                mr_trace_rows_free(&ru);
            }
    mr_trace_close(a);
    mr_trace_close(b);
    unlink(direct);
    unlink(lib);
}
END_TEST

START_TEST(dtypes_read_identically)
{
    mr_trace_file *ref = open_ok(FIX "logits-f32.h5");
    ck_assert_str_eq(ref->model, "tiny");
    ck_assert_str_eq(ref->condition, "clean");
    ck_assert_int_eq((int)ref->step, 100);
    ck_assert_int_eq(ref->task, MR_TRACE_CLASSIFY);
    ck_assert_int_eq(ref->N, 4);
    ck_assert_int_eq(ref->T, 5);
    ck_assert_int_eq(ref->E, 4);
    ck_assert_int_eq(ref->k, 2);
    ck_assert_int_eq(ref->C, 3);
    ck_assert_int_eq(ref->n_layers, 2);
    ck_assert_int_eq(ref->layers[0].index, 1);
    ck_assert_int_eq(ref->layers[1].index, 3);
    ck_assert_int_eq((int)ref->ids[3], 42);
    mr_trace_rows a;
    read_all(ref, &a);
    size_t np = (size_t)2 * 4 * 5 * 4, nk = (size_t)2 * 4 * 5 * 2;
    /* probs sum to one; mask [1][3] = 0 was read */
    for (size_t tok = 0; tok < np / 4; tok++) {
        double s = 0;
        for (int e = 0; e < 4; e++) s += a.probs[tok * 4 + e];
        ck_assert_double_le(fabs(s - 1.0), 1e-6);
    }
    ck_assert_int_eq(a.mask[1 * 5 + 3], 0);
    ck_assert_int_eq(a.mask[0], 1);
    ck_assert_int_eq(a.labels[1], 2);
    /* the same scores in every dtype; the contiguous ones are read directly (pread) */
    const char *same[] = {FIX "logits-f16.h5", FIX "logits-bf16.h5", FIX "logits-bf16u16.h5",
                          FIX "logits-f32-topk.h5", FIX "logits-f32-contig.h5",
                          FIX "logits-f16-contig.h5"};
    ck_assert_int_eq((int)ref->layers[0].file_off, -1); /* chunked and compressed */
    for (int i = 0; i < 6; i++) {
        mr_trace_file *t = open_ok(same[i]);
        mr_trace_rows b;
        read_all(t, &b);
        ck_assert_msg(memcmp(a.probs, b.probs, np * sizeof(float)) == 0, "%s: probs differ", same[i]);
        ck_assert_msg(memcmp(a.topk, b.topk, nk * sizeof *a.topk) == 0, "%s: top-k differs", same[i]);
        ck_assert_msg(memcmp(a.weights, b.weights, nk * sizeof(float)) == 0, "%s: weights differ",
                      same[i]);
        ck_assert_int_eq(t->layers[0].has_topk, i == 3);
        same_sums_unkept(t, &b);
        if (i >= 4) ck_assert_msg(t->layers[0].file_off >= 0 && t->layers[1].file_off >= 0,
                                  "%s: not read directly", same[i]);
        mr_trace_rows_free(&b);
        mr_trace_close(t);
    }
    /* probs given directly: same top-k, probs within float rounding */
    mr_trace_file *t = open_ok(FIX "probs-f32.h5");
    mr_trace_rows b;
    read_all(t, &b);
    ck_assert_int_eq(memcmp(a.topk, b.topk, nk * sizeof *a.topk), 0);
    for (size_t i = 0; i < np; i++) ck_assert_double_le(fabs(a.probs[i] - b.probs[i]), 1e-6);
    same_sums_unkept(t, &b);
    mr_trace_rows_free(&b);
    mr_trace_close(t);
    /* weights renormalized over the top-k (norm_topk = 1) */
    for (size_t tok = 0; tok < nk / 2; tok++)
        ck_assert_double_le(fabs(a.weights[tok * 2] + a.weights[tok * 2 + 1] - 1.0), 1e-6);
    same_sums_unkept(ref, &a);
    mr_trace_rows_free(&a);
    mr_trace_close(ref);
}
END_TEST

/* Stored weights (with logits and a stored top-k): the weight entropy is theirs (1/2
 * and 1/2: ln 2 a real token), the routing entropy and top-k the logits' as without them;
 * the same with rows that keep no weights (which must still read and check them). */
START_TEST(stored_weights)
{
    mr_trace_file *ref = open_ok(FIX "logits-f32-topk.h5"), *t = open_ok(FIX "logits-f32-weights.h5");
    ck_assert(t->layers[0].has_weights && t->layers[1].has_weights && t->layers[0].has_topk);
    mr_trace_rows a, b;
    read_all(ref, &a);
    read_all(t, &b);
    size_t rows = (size_t)t->n_layers * t->N;
    for (size_t i = 0; i < rows; i++) {
        int s = (int)(i % (size_t)t->N), real = 0;
        for (int p = 0; p < t->T; p++) real += b.mask[(size_t)s * t->T + p];
        ck_assert_double_le(fabs(b.hw_sum[i] - real * log(2.0)), 1e-12);
        ck_assert_double_eq(b.h_sum[i], a.h_sum[i]);
    }
    ck_assert_int_eq(memcmp(a.topk, b.topk, rows * t->T * t->k * sizeof *a.topk), 0);
    ck_assert_int_eq(memcmp(a.psum, b.psum, rows * t->E * sizeof *a.psum), 0);
    same_sums_unkept(t, &b);
    mr_trace_rows_free(&a);
    mr_trace_rows_free(&b);
    mr_trace_close(ref);
    mr_trace_close(t);
}
END_TEST

/* The same top-k with the AVX-512 kernels off (the portable top-k and the scalar
 * narrowing into the rows' 16-bit ids) as with them, for a trace routed in batches. */
START_TEST(topk_same_without_avx512)
{
    const char *files[] = {FIX "logits-f16-contig.h5", FIX "logits-f32.h5"};
    for (int i = 0; i < 2; i++) {
        mr_trace_file *t = open_ok(files[i]);
        mr_trace_rows a, b;
        read_all(t, &a);
        mr_simd_avx512_set(0);
        read_all(t, &b);
        mr_simd_avx512_set(1);
        size_t nk = (size_t)t->n_layers * t->N * t->T * t->k;
        ck_assert_msg(memcmp(a.topk, b.topk, nk * sizeof *a.topk) == 0, "%s: top-k differs",
                      files[i]);
        mr_trace_rows_free(&a);
        mr_trace_rows_free(&b);
        mr_trace_close(t);
    }
}
END_TEST

START_TEST(sigmoid_scores)
{
    mr_trace_file *t = open_ok(FIX "sigmoid-f16.h5");
    ck_assert_int_eq(t->layers[0].score, MR_TRACE_SIGMOID);
    mr_trace_rows r;
    read_all(t, &r);
    mr_trace_file *f = open_ok(FIX "logits-f32.h5");
    mr_trace_rows s;
    read_all(f, &s);
    same_sums_unkept(t, &r);
    for (int tok = 0; tok < 2 * 4 * 5; tok++) {
        double sum = 0;
        for (int e = 0; e < 4; e++) sum += r.probs[tok * 4 + e];
        ck_assert_double_le(fabs(sum - 1.0), 1e-6);
        /* sigmoid is monotone: the same experts as softmax of the same logits */
        ck_assert_int_eq(r.topk[tok * 2], s.topk[tok * 2]);
        ck_assert_int_eq(r.topk[tok * 2 + 1], s.topk[tok * 2 + 1]);
    }
    mr_trace_rows_free(&r);
    mr_trace_rows_free(&s);
    mr_trace_close(t);
    mr_trace_close(f);
}
END_TEST

/* --save-routing output is a trace whose rows are what the engine computed. */
START_TEST(engine_trace_reads_back)
{
    const char *models[] = {"tests/fixtures/tiny-classify.h5", "tests/fixtures/tiny-lm.h5"};
    const char *data[] = {"tests/fixtures/tiny-images.h5", "tests/fixtures/tiny-tokens.h5"};
    for (int i = 0; i < 2; i++) {
        char out[] = "/tmp/mr-test-trace-XXXXXX";
        int fd = mkstemp(out);
        ck_assert_int_ge(fd, 0);
        close(fd);
        mr_model *m;
        mr_dataset *d;
        mr_router *r;
        ck_assert_int_eq(mr_model_load(&m, models[i]), MR_OK);
        ck_assert_int_eq(mr_dataset_load(&d, data[i], 0), MR_OK);
        ck_assert_int_eq(mr_router_alloc(&r, m->cfg.router, m, &(mr_router_opts){0}), MR_OK);
        mr_eval_opts o;
        mr_eval_opts_init(&o, m);
        o.engine.batch = 3;
        o.threads = 2;
        o.bootstrap = 0;
        o.save_routing = out;
        o.trace = (mr_trace_meta){.model = "tiny", .checkpoint = "ep1", .step = 7};
        mr_eval_result res;
        ck_assert_msg(mr_eval_run(&res, m, r, d, &o) == MR_OK, "%s", mr_error_message());
        mr_trace_file *t = open_ok(out);
        ck_assert_str_eq(t->model, "tiny");
        ck_assert_str_eq(t->checkpoint, "ep1");
        ck_assert_str_eq(t->router, m->cfg.router);
        ck_assert_int_eq((int)t->step, 7);
        ck_assert_int_eq(t->task, i == 0 ? MR_TRACE_CLASSIFY : MR_TRACE_LM);
        ck_assert_int_eq(t->N, d->n);
        ck_assert_int_eq(t->n_layers, m->cfg.n_moe);
        mr_trace_rows rows;
        read_all(t, &rows);
        ck_assert(t->layers[0].has_weights); /* read and checked even when not kept */
        same_sums_unkept(t, &rows);
        /* the trace's probs give the driver's per-sample entropy */
        for (int s = 0; s < t->N; s++) {
            ck_assert_int_eq((int)t->ids[s], s);
            for (int li = 0; li < t->n_layers; li++) {
                double h = 0;
                for (int p = 0; p < t->T; p++) {
                    const float *q = rows.probs + (((size_t)li * t->N + s) * t->T + p) * t->E;
                    for (int e = 0; e < t->E; e++)
                        if (q[e] > 0) h -= q[e] * log(q[e]);
                }
                ck_assert_double_le(fabs(h / t->T - res.clean.routing->entropy[s * t->n_layers + li]),
                                    1e-12);
            }
            if (i == 0) {
                ck_assert_int_eq(rows.labels[s], d->labels[s]);
            } else {
                double loss = 0, correct = 0;
                for (int p = 0; p < t->T; p++) {
                    loss += rows.out[(size_t)s * t->T + p];
                    correct += rows.pred[(size_t)s * t->T + p] == rows.labels[(size_t)s * t->T + p];
                }
                ck_assert_double_le(fabs(loss / t->T - res.clean.loss[s]), 1e-5);
                ck_assert_double_eq(correct / t->T, res.clean.correct[s]);
            }
        }
        mr_trace_rows_free(&rows);
        mr_trace_close(t);
        mr_eval_result_free(&res);
        mr_router_free(r);
        mr_dataset_free(d);
        mr_model_free(m);
        unlink(out);
    }
}
END_TEST

START_TEST(bad_traces_are_refused)
{
    FILE *fp = fopen("tests/bad/traces/MANIFEST.tsv", "r");
    ck_assert_ptr_nonnull(fp);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "file\t", 5) == 0) continue;
        char *file = strtok(line, "\t"), *needle = strtok(NULL, "\t");
        ck_assert_ptr_nonnull(needle);
        char path[512];
        snprintf(path, sizeof path, "tests/bad/traces/%s", file);
        mr_trace_file *t = NULL;
        int st = mr_trace_open(&t, path);
        if (st == MR_OK) {
            /* rows that keep probs and weights, then rows that keep neither (analyze's):
             * the same refusal */
            char first[1024] = "";
            for (int keep = 1; keep >= 0; keep--) {
                mr_trace_rows r;
                ck_assert_int_eq(mr_trace_rows_alloc(&r, t, 2, keep), MR_OK);
                st = MR_OK;
                for (int r0 = 0; st == MR_OK && r0 < t->N; r0 += 2)
                    st = mr_trace_read_rows(t, r0, t->N - r0 < 2 ? t->N - r0 : 2, &r, 0);
                mr_trace_rows_free(&r);
                if (keep) snprintf(first, sizeof first, "%s", mr_error_message());
                else ck_assert_msg(st != MR_OK && strcmp(first, mr_error_message()) == 0,
                                   "%s: rows without probs: %s (with: %s)", file,
                                   mr_error_message(), first);
            }
            mr_trace_close(t);
        } else {
            ck_assert_ptr_null(t);
        }
        if (getenv("MR_TEST_VERBOSE")) printf("%s\n", mr_error_message());
        ck_assert_msg(st == MR_EINPUT, "%s: status %d (%s)", file, st, mr_error_message());
        ck_assert_msg(strstr(mr_error_message(), path), "%s: message lacks the file: %s", file,
                      mr_error_message());
        ck_assert_msg(strstr(mr_error_message(), needle), "%s: message lacks '%s': %s", file,
                      needle, mr_error_message());
        n++;
    }
    fclose(fp);
    ck_assert_int_ge(n, 45);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("trace_io");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, half_floats);
    tcase_add_test(tc, widen_every_pattern);
    tcase_add_test(tc, shrunk_trace_fails_cleanly);
    tcase_add_test(tc, direct_and_libhdf5_reads_agree);
    tcase_add_test(tc, dtypes_read_identically);
    tcase_add_test(tc, stored_weights);
    tcase_add_test(tc, topk_same_without_avx512);
    tcase_add_test(tc, sigmoid_scores);
    tcase_add_test(tc, engine_trace_reads_back);
    tcase_add_test(tc, bad_traces_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return mr_test_run(suite()); }
