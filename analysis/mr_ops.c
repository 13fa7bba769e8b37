#include "mr_ops.h"

#include "mr_simd.h"

#include <gsl/gsl_cblas.h>
#include <math.h>
#if defined(MR_AVX512) || defined(MR_AVX2)
#include <immintrin.h>
#endif

/* The rows of mr_layernorm_forward (stats NULL) and mr_layernorm_forward_keep: one body
 * inlined into each, so the two give the same floats. */
static inline __attribute__((always_inline)) void
layernorm_rows(float *out, double *stats, const float *in, const float *w, const float *b,
               int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        /* two-pass in double: exact enough that parity with PyTorch is limited by
         * PyTorch's own float rounding, not ours. The sums are vector reductions (their
         * order is fixed by the loop, not by threads). */
        double mean = 0.0;
#pragma omp simd reduction(+ : mean)
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= C;
        double var = 0.0;
#pragma omp simd reduction(+ : var)
        for (int i = 0; i < C; i++) {
            double dx = x[i] - mean;
            var += dx * dx;
        }
        var /= C;
        double rstd = 1.0 / sqrt(var + (double)eps);
        if (stats) {
            stats[2 * (size_t)n] = mean;
            stats[2 * (size_t)n + 1] = rstd;
        }
#pragma omp simd
        for (int i = 0; i < C; i++) y[i] = (float)((x[i] - mean) * rstd) * w[i] + b[i];
    }
}

/* an AVX-512 clone too (the sums' order then the 8-double lanes', fixed per machine):
 * 1.45x the AVX2 clone's speed on rows of 64 (docs/performance.md). The path of CPUs
 * without AVX2 (and of MR_SIMD=portable); the kernels below run elsewhere. */
MR_VECTOR_CLONES_512
static void layernorm_loops(float *out, const float *in, const float *w, const float *b,
                            int N, int C, float eps)
{
    layernorm_rows(out, NULL, in, w, b, N, C, eps);
}

MR_VECTOR_CLONES_512
static void layernorm_keep_loops(float *out, double *stats, const float *in, const float *w,
                                 const float *b, int N, int C, float eps)
{
    layernorm_rows(out, stats, in, w, b, N, C, eps);
}

/* LayerNorm in intrinsics, for the AVX-512 clone's floats. GCC vectorizes layernorm_rows'
 * two sums (`omp simd reduction`) of its avx512f clone over 16 double lanes: lane j sums
 * the elements i = j mod 16 of the row's first C - C % 16, the last C % 16 are added to
 * lane 0 in order, then 0 + lane 0 + lane 1 + ... + lane 15 one after the other (objdump
 * of the clone at -O2 and -O3). That last chain of 16 dependent additions, twice a row,
 * with the lanes kept in memory, made the clone latency-bound: about 55 ns a row of 64
 * (AVX-512) and 80 ns (AVX2 clone, 8 lanes) on the Zen 5 host. layernorm_avx2 adds in the
 * same order, but four rows at a time: their lanes transposed into vectors of the four
 * rows, so the chains of four rows run side by side; then the clone's elementwise
 * operations. It runs wherever the CPU has AVX2 (AVX-512 CPUs included: the same floats as
 * their clone), so an AVX2-only CPU now normalizes as the AVX-512 clone does (its own
 * clone summed over 8 lanes: the last bits of some rows moved there). tests/test_ops.c
 * compares it with the order written out in C, and with the AVX-512 clone where the CPU
 * runs it. */
#ifdef MR_AVX2
/* (a, b, c, d) of 4 doubles each -> their columns: out[k] = (a[k], b[k], c[k], d[k]) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void transpose4d(__m256d *v)
{
    __m256d t0 = _mm256_unpacklo_pd(v[0], v[1]), t1 = _mm256_unpackhi_pd(v[0], v[1]);
    __m256d t2 = _mm256_unpacklo_pd(v[2], v[3]), t3 = _mm256_unpackhi_pd(v[2], v[3]);
    v[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    v[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    v[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    v[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* Per row r of 4 (x[r], C floats; shift[r] = mean (squares) or unused): the clone's sum
 * of x (squares = 0) or of (x - mean)^2 (squares = 1): 16 lanes, lane j the elements
 * i = j mod 16 of the first C16 = C - C % 16, the rest added to lane 0 in order, then
 * 0 + lane 0 + ... + lane 15. The four rows' lanes are transposed so that the sixteen
 * last additions run on vectors of the four rows, each row's in its own order. */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256d
ln_sums4(const float *const *x, int C, __m256d shift, const int squares)
{
    int C16 = C & ~15;
    __m256d a[4][4]; /* [row][lanes 4q .. 4q+3] */
    const __m256d sh[4] = {_mm256_permute4x64_pd(shift, 0x00), /* shift[r] in every lane */
                           _mm256_permute4x64_pd(shift, 0x55),
                           _mm256_permute4x64_pd(shift, 0xaa),
                           _mm256_permute4x64_pd(shift, 0xff)};
    _Pragma("GCC unroll 4")
    for (int r = 0; r < 4; r++)
        _Pragma("GCC unroll 4")
        for (int q = 0; q < 4; q++) a[r][q] = _mm256_setzero_pd();
    for (int i = 0; i < C16; i += 16)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
            __m256 v0 = _mm256_loadu_ps(x[r] + i), v1 = _mm256_loadu_ps(x[r] + i + 8);
            __m256d d[4] = {_mm256_cvtps_pd(_mm256_castps256_ps128(v0)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)),
                            _mm256_cvtps_pd(_mm256_castps256_ps128(v1)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1))};
            _Pragma("GCC unroll 4")
            for (int q = 0; q < 4; q++) {
                if (squares) {
                    d[q] = _mm256_sub_pd(d[q], sh[r]);
                    d[q] = _mm256_mul_pd(d[q], d[q]);
                }
                a[r][q] = _mm256_add_pd(a[r][q], d[q]);
            }
        }
    __m256d l[16]; /* l[j] = lane j of the four rows */
    _Pragma("GCC unroll 4")
    for (int q = 0; q < 4; q++) {
        __m256d v[4] = {a[0][q], a[1][q], a[2][q], a[3][q]};
        transpose4d(v);
        _Pragma("GCC unroll 4")
        for (int k = 0; k < 4; k++) l[4 * q + k] = v[k];
    }
    for (int i = C16; i < C; i++) {
        __m256d d = _mm256_setr_pd(x[0][i], x[1][i], x[2][i], x[3][i]);
        if (squares) {
            d = _mm256_sub_pd(d, shift);
            d = _mm256_mul_pd(d, d);
        }
        l[0] = _mm256_add_pd(l[0], d);
    }
    __m256d s = _mm256_setzero_pd();
    _Pragma("GCC unroll 16")
    for (int j = 0; j < 16; j++) s = _mm256_add_pd(s, l[j]);
    return s;
}

/* y = (float)((x - mean) rstd) w + b of 8 floats (m: the lanes loaded and stored where
 * not full) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
ln_out8(float *y, const float *x, const float *w, const float *b, __m256d mv, __m256d rv,
        const int full, __m256i m)
{
    __m256 v = full ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, m);
    __m128 lo = _mm256_cvtpd_ps(
        _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), mv), rv));
    __m128 hi = _mm256_cvtpd_ps(
        _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), mv), rv));
    __m256 t = _mm256_set_m128(hi, lo);
    if (full) {
        t = _mm256_add_ps(_mm256_mul_ps(t, _mm256_loadu_ps(w)), _mm256_loadu_ps(b));
        _mm256_storeu_ps(y, t);
    } else {
        t = _mm256_add_ps(_mm256_mul_ps(t, _mm256_maskload_ps(w, m)), _mm256_maskload_ps(b, m));
        _mm256_maskstore_ps(y, m, t);
    }
}

/* layernorm_rows for the AVX-512 clone's floats, four rows at a time (the last group's
 * missing rows read the last row again and write nothing) */
MR_AVX2_TARGET static void layernorm_avx2(float *out, double *stats, const float *in,
                                          const float *w, const float *b, int N, int C,
                                          float eps)
{
    const __m256d vc = _mm256_set1_pd((double)C), ve = _mm256_set1_pd((double)eps),
                  one = _mm256_set1_pd(1.0);
    for (int n0 = 0; n0 < N; n0 += 4) {
        int R = N - n0 < 4 ? N - n0 : 4;
        const float *x[4];
        for (int r = 0; r < 4; r++) x[r] = in + (size_t)(n0 + (r < R ? r : R - 1)) * C;
        __m256d mean = _mm256_div_pd(ln_sums4(x, C, _mm256_setzero_pd(), 0), vc);
        __m256d var = _mm256_div_pd(ln_sums4(x, C, mean, 1), vc);
        __m256d rstd = _mm256_div_pd(one, _mm256_sqrt_pd(_mm256_add_pd(var, ve)));
        double mr[4], rr[4];
        _mm256_storeu_pd(mr, mean);
        _mm256_storeu_pd(rr, rstd);
        for (int r = 0; r < R; r++) {
            size_t n = (size_t)n0 + r;
            if (stats) {
                stats[2 * n] = mr[r];
                stats[2 * n + 1] = rr[r];
            }
            const float *xr = x[r];
            float *y = out + n * C;
            const __m256d mv = _mm256_set1_pd(mr[r]), rv = _mm256_set1_pd(rr[r]);
            int i = 0;
            for (; i + 8 <= C; i += 8)
                ln_out8(y + i, xr + i, w + i, b + i, mv, rv, 1, _mm256_setzero_si256());
            if (i < C) /* 1 .. 7 left */
                ln_out8(y + i, xr + i, w + i, b + i, mv, rv, 0, mr_lanes_below8(C - i));
        }
    }
}
#endif

void mr_layernorm_forward(float *out, const float *in, const float *w, const float *b,
                          int N, int C, float eps)
{
#ifdef MR_AVX2
    if (mr_simd_avx512() || mr_simd_avx2()) {
        layernorm_avx2(out, NULL, in, w, b, N, C, eps);
        return;
    }
#endif
    layernorm_loops(out, in, w, b, N, C, eps);
}

/* keeping each row's mean and 1 / std for the input gradient's backward
 * (mr_layernorm_backward_stats; recomputing them was half of LayerNorm's backward) */
void mr_layernorm_forward_keep(float *out, double *stats, const float *in, const float *w,
                               const float *b, int N, int C, float eps)
{
#ifdef MR_AVX2
    if (mr_simd_avx512() || mr_simd_avx2()) {
        layernorm_avx2(out, stats, in, w, b, N, C, eps);
        return;
    }
#endif
    layernorm_keep_loops(out, stats, in, w, b, N, C, eps);
}

MR_VECTOR_CLONES
void mr_rmsnorm_forward(float *out, const float *in, const float *w, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        float *y = out + (size_t)n * C;
        /* mean of squares in double, as mr_layernorm_forward: PyTorch's float32 sum is
         * the less exact of the two */
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        double rstd = 1.0 / sqrt(ss / C + (double)eps);
#pragma omp simd
        for (int i = 0; i < C; i++) y[i] = w[i] * (float)(x[i] * rstd);
    }
}

/* Up to this many input features, the bias is the GEMM's C (beta = 1) instead of a pass
 * after it: OpenBLAS then skips its beta pass (a memset of out for beta = 0: 3.6 % of the
 * Fashion-MNIST forward) and the bias pass over out, and adds its product to the bias in
 * one rounding, fl(sum + bias), the float the separate addition gave. That holds while C
 * is one of OpenBLAS's K blocks; beyond, the bias would join the first block's partial
 * sum and round differently. 128: every x86-64 kernel set of OpenBLAS 0.3.21 measured
 * (SkylakeX, Cooperlake, Haswell, Zen, Sandybridge, Nehalem, Prescott, Core2, Atom,
 * Barcelona, Bulldozer) gives the same bits up to 128 input features, the first
 * difference at 160 (Prescott's); docs/performance.md. tests/test_ops.c checks the two
 * forms bit for bit under the kernels in use. */
#define MR_LINEAR_BIAS_IN_GEMM 128

/* Up to this many input features mr_linear_forward runs mr_gemm_micro (mr_simd.h) on
 * CPUs with AVX-512, mr_gemm_micro8 on CPUs with AVX2 and FMA only: a panel of 32 (16)
 * output columns' weights, [C][32] ([C][16]), stays in L1/L2 */
#define MR_LINEAR_KERNEL_MAX_C 512

#ifdef MR_AVX512

/* r[16] (rows) transposed in registers: r[i] lane c becomes r[c] lane i. Interleave
 * pairs of rows (ps), then pairs of pairs (pd): u[g][m] holds, in its 128-bit lane L, rows
 * 4g .. 4g+3 of column 4L + m; a 4 x 4 transpose of 128-bit lanes across g finishes. */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void transpose16(__m512 *r)
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* u[4g + m]: rows 4g .. 4g+3, column m of each lane */
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]),
                c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int m = 0; m < 4; m++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44),   /* A0 A1 B0 B1 */
            v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xee),      /* A2 A3 B2 B3 */
            v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44), /* C0 C1 D0 D1 */
            v3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xee); /* C2 C3 D2 D3 */
        r[m] = _mm512_shuffle_f32x4(v0, v2, 0x88);      /* column m:      A0 B0 C0 D0 */
        r[4 + m] = _mm512_shuffle_f32x4(v0, v2, 0xdd);  /* column 4 + m:  A1 B1 C1 D1 */
        r[8 + m] = _mm512_shuffle_f32x4(v1, v3, 0x88);  /* column 8 + m */
        r[12 + m] = _mm512_shuffle_f32x4(v1, v3, 0xdd); /* column 12 + m */
    }
}

/* panel[c][32] = the weights of the (up to 32) output columns w[cols][C], transposed,
 * zeros past cols: 16 x 16 blocks through registers (transpose16), the last C % 16 inputs
 * one by one. Packed on every call: one element at a time it was 8 % of
 * linear_forward_avx512's time in a grid (perf annotate), a panel per model would have to
 * follow every change of a weight. */
MR_AVX512_TARGET static void pack_panel(float *restrict panel, const float *restrict w, int C,
                                        int cols)
{
    for (int j0 = 0; j0 < 32; j0 += 16) {
        int nj = cols - j0 < 0 ? 0 : cols - j0 > 16 ? 16 : cols - j0, c0 = 0;
        for (; c0 + 16 <= C; c0 += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nj ? _mm512_loadu_ps(w + (size_t)(j0 + i) * C + c0) : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < 16; i++) _mm512_store_ps(panel + (size_t)(c0 + i) * 32 + j0, r[i]);
        }
        for (int c = c0; c < C; c++)
            for (int i = 0; i < 16; i++)
                panel[(size_t)c * 32 + j0 + i] = i < nj ? w[(size_t)(j0 + i) * C + c] : 0.0f;
    }
}

/* mr_linear_forward by mr_gemm_micro: per block of 32 output columns its weights
 * transposed into a panel [C][32] (zeros past OC), then every row of in against it */
MR_AVX512_TARGET static void linear_forward_avx512(float *out, const float *in,
                                                   const float *weight, const float *bias,
                                                   int N, int C, int OC)
{
    float panel[32 * MR_LINEAR_KERNEL_MAX_C] __attribute__((aligned(64)));
    for (int j = 0; j < OC; j += 32) {
        int left = OC - j, cols = left < 32 ? left : 32, nv = cols > 16 ? 2 : 1;
        pack_panel(panel, weight + (size_t)j * C, C, cols);
        int lc = cols - 16 * (nv - 1);
        __mmask16 last = lc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << lc) - 1u);
        const float *bj = bias ? bias + j : NULL;
        if (nv == 2)
            mr_gemm_rows(out + j, OC, in, C, 1, panel, 32, C, 1.0f, bj, 0, N, 2, last);
        else
            mr_gemm_rows(out + j, OC, in, C, 1, panel, 32, C, 1.0f, bj, 0, N, 1, last);
    }
}
#endif

#ifdef MR_AVX2
/* r[8] (rows) transposed in registers: r[i] lane c becomes r[c] lane i. Interleave pairs
 * of rows (ps), then pairs of pairs (shuffle): u[m] holds rows 0-3 of column m in its low
 * 128-bit lane and of column 4 + m in its high one, u[4 + m] rows 4-7; exchanging the
 * 128-bit lanes of u[m] and u[4 + m] finishes. */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void transpose8(__m256 *r)
{
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     /* columns 0 1 | 4 5 */
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); /* columns 2 3 | 6 7 */
    }
    for (int g = 0; g < 2; g++) { /* rows 4g .. 4g+3 */
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);     /* column 0 | 4 */
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee); /* column 1 | 5 */
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44); /* 2 | 6 */
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee); /* 3 | 7 */
    }
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
        r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
    }
}

/* panel[c][16] = the weights of the (up to 16) output columns w[cols][C], transposed,
 * zeros past cols: pack_panel's layout for mr_gemm_micro8, in 8 x 8 blocks through
 * registers (transpose8), the last C % 8 inputs one by one; the second 8 columns only
 * where cols > 8 (else mr_gemm_micro8 reads the first vector only) */
MR_AVX2_TARGET static void pack_panel8(float *restrict panel, const float *restrict w, int C,
                                       int cols)
{
    for (int j0 = 0; j0 < cols; j0 += 8) {
        int nj = cols - j0 > 8 ? 8 : cols - j0, c0 = 0;
        for (; c0 + 8 <= C; c0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i < nj ? _mm256_loadu_ps(w + (size_t)(j0 + i) * C + c0) : _mm256_setzero_ps();
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_store_ps(panel + (size_t)(c0 + i) * 16 + j0, r[i]);
        }
        for (int c = c0; c < C; c++)
            for (int i = 0; i < 8; i++)
                panel[(size_t)c * 16 + j0 + i] = i < nj ? w[(size_t)(j0 + i) * C + c] : 0.0f;
    }
}

/* linear_forward_avx512 on mr_gemm_micro8: per block of 16 output columns their weights
 * transposed into a panel [C][16] (zeros past OC: its loads need no mask), then every
 * row of in against it; the same bits */
MR_AVX2_TARGET static void linear_forward_avx2(float *out, const float *in,
                                               const float *weight, const float *bias, int N,
                                               int C, int OC)
{
    float panel[16 * MR_LINEAR_KERNEL_MAX_C] __attribute__((aligned(32)));
    for (int j = 0; j < OC; j += 16) {
        int left = OC - j, cols = left < 16 ? left : 16, lc = cols > 8 ? cols - 8 : cols;
        pack_panel8(panel, weight + (size_t)j * C, C, cols);
        __m256i last = mr_mask8(lc);
        const float *bj = bias == NULL ? NULL : bias + j;
        float *o = out + j;
        if (cols > 8) {
            if (lc == 8)
                mr_gemm_rows8(o, OC, in, C, 1, panel, 16, C, 1.0f, bj, 0, N, 2, 0, 0, last);
            else
                mr_gemm_rows8(o, OC, in, C, 1, panel, 16, C, 1.0f, bj, 0, N, 2, 0, 1, last);
        } else if (lc == 8) {
            mr_gemm_rows8(o, OC, in, C, 1, panel, 16, C, 1.0f, bj, 0, N, 1, 0, 0, last);
        } else {
            mr_gemm_rows8(o, OC, in, C, 1, panel, 16, C, 1.0f, bj, 0, N, 1, 0, 1, last);
        }
    }
}
#endif

void mr_linear_forward(float *out, const float *in, const float *weight, const float *bias,
                       int N, int C, int OC)
{
    if (N == 0) return;
#ifdef MR_AVX512
    if (C <= MR_LINEAR_KERNEL_MAX_C && mr_simd_avx512()) {
        linear_forward_avx512(out, in, weight, bias, N, C, OC);
        return;
    }
#endif
#ifdef MR_AVX2
    if (C <= MR_LINEAR_KERNEL_MAX_C && mr_simd_avx2()) {
        linear_forward_avx2(out, in, weight, bias, N, C, OC);
        return;
    }
#endif
    if (bias && C <= MR_LINEAR_BIAS_IN_GEMM) {
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
#pragma omp simd /* inline: a memcpy call per row of 64 floats cost more than the copy */
            for (int j = 0; j < OC; j++) o[j] = bias[j];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, in, C, weight, C,
                    1.0f, out, OC);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, in, C, weight, C,
                0.0f, out, OC);
    if (bias)
        for (int n = 0; n < N; n++) {
            float *o = out + (size_t)n * OC;
#pragma omp simd
            for (int j = 0; j < OC; j++) o[j] += bias[j];
        }
}

float mr_erf(float x) { return erf_as(x); }

/* An AVX-512 clone too: each element alone, so every clone gives the same floats (no
 * reduction, no contraction), and the 8-double vectors take the polynomial at half the
 * instructions of AVX2's (the GELU was the largest elementwise kernel in a grid's perf) */
MR_VECTOR_CLONES_512
void mr_gelu_forward(float *x, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf_as(x[i] * inv_sqrt2));
}

/* mr_gelu_forward out of place, keeping each element's Phi(x) = (1 + erf(x / sqrt 2)) / 2
 * for the backward (mr_gelu_backward_cdf): y the same floats as mr_gelu_forward's, cdf
 * the same floats as the backward's own erf would give (the input gradient's erf was
 * most of GELU's backward in a PGD attack, docs/performance.md) */
MR_VECTOR_CLONES_512
void mr_gelu_forward_keep(float *restrict y, float *restrict cdf, const float *restrict x,
                          size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float e = erf_as(x[i] * inv_sqrt2);
        y[i] = 0.5f * x[i] * (1.0f + e);
        cdf[i] = 0.5f * (1.0f + e);
    }
}

void mr_relu_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void mr_clamp_forward(float *x, size_t n, float c)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] < -c ? -c : x[i] > c ? c : x[i];
}

/* One row: o[j] = silu(g[j]) * u[j]. o may equal g (the first row of an in-place call);
 * otherwise the three do not overlap. */
MR_VECTOR_CLONES
static void swiglu_row(float *o, const float *g, const float *u, int H)
{
#pragma omp simd
    for (int j = 0; j < H; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
}

void mr_swiglu_forward(float *out, const float *in, int N, int H)
{
    /* row n of out ends at (n + 1) H <= 2 n H, where row n of in starts (n >= 1): a row
     * never overwrites input that a later row reads, so the compaction works in place */
    for (int n = 0; n < N; n++) {
        const float *g = in + (size_t)n * 2 * H;
        swiglu_row(out + (size_t)n * H, g, g + H, H);
    }
}

void mr_rope_tables(float *cos_t, float *sin_t, int T, int hd, double theta, double scaling)
{
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        /* transformers: inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all
         * float32; linear scaling divides inv_freq by the factor */
        float e = (float)(2 * i) / (float)hd;
        float inv = 1.0f / powf((float)theta, e);
        if (scaling != 1.0) inv = inv / (float)scaling;
        for (int t = 0; t < T; t++) {
            float a = (float)t * inv; /* freqs = inv_freq @ position_ids, in float32 */
            cos_t[(size_t)t * half + i] = cosf(a);
            sin_t[(size_t)t * half + i] = sinf(a);
        }
    }
}

void mr_rope_forward(float *x, int B, int T, int NH, int hd, int stride, const float *cos_t,
                     const float *sin_t)
{
    int half = hd / 2;
    for (int r = 0; r < B * T; r++) {
        const float *c = cos_t + (size_t)(r % T) * half, *s = sin_t + (size_t)(r % T) * half;
        for (int h = 0; h < NH; h++) {
            float *x1 = x + (size_t)r * stride + (size_t)h * hd, *x2 = x1 + half;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = x1[i], b = x2[i];
                x1[i] = a * c[i] - b * s[i];
                x2[i] = b * c[i] + a * s[i];
            }
        }
    }
}

/* softmax of x[0..n-1], entries n..len-1 set to 0 (the causal mask). Three loops with no
 * dependency between iterations but the reductions, so each vectorizes; the reductions'
 * order is fixed by the loop shape, so results do not depend on threads. */
MR_VECTOR_CLONES
static void softmax_prefix(float *x, int n, int len)
{
    float mx = x[0]; /* from i = 0 (the same maximum): whole vectors for n = 64 */
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] = expf(x[i] - mx);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) sum += x[i];
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] *= inv;
    for (int i = n; i < len; i++) x[i] = 0.0f;
}

/* The top-k's sums for the entropy of their probabilities renormalized to sum 1, from the
 * exponentials e[i] = exp(s[i] - mx) (mr_softmax_entropy): *sk = sum e_j, *dk =
 * sum e_j (s_j - mx); the entropy is ln sk - dk / sk (0 when sk = 0). */
static void softmax_topk_sums(double *sk_out, double *dk_out, const float *e, const float *s,
                              float mx, const int *idx, int k)
{
    double sk = 0.0, dk = 0.0;
    for (int j = 0; j < k; j++) {
        double x = e[idx[j]];
        sk += x;
        dk += x * (double)(s[idx[j]] - mx);
    }
    *sk_out = sk;
    *dk_out = dk;
}

/* softmax_prefix's probabilities of s[n] into p (the same loops, so the same bits as
 * mr_softmax_rows), and their entropy from the logits: with d_i = s_i - max s,
 * e_i = exp(d_i) and Z = sum e_i, -sum p_i ln p_i = ln Z - sum e_i d_i / Z: one log per
 * token instead of one per expert (the 64 double logs per token were a fifth of
 * `moe-robust analyze`, docs/performance.md). The same for the top-k's renormalized
 * probabilities (e_j / sum over the top-k). Products and sums in double, so the only
 * difference to the entropy of the stored floats is the exponential's rounding (expf,
 * at most 4 ulp) and the floats' own (about 1e-7 relative each). The portable path
 * (mr_softmax_entropy below; CPUs with AVX-512 or AVX2 + FMA take their kernels). */
MR_VECTOR_CLONES
static double softmax_entropy_loops(float *restrict p, const float *restrict s, int n,
                                    const int *idx, int k, double *h_topk,
                                    double *restrict acc)
{
    float mx = s[0];
#pragma omp simd reduction(max : mx)
    for (int i = 0; i < n; i++) mx = s[i] > mx ? s[i] : mx;
#pragma omp simd
    for (int i = 0; i < n; i++) p[i] = expf(s[i] - mx);
    double sum = 0.0, dot = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) sum += p[i];
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < n; i++) dot += (double)p[i] * (double)(s[i] - mx);
    if (h_topk) {
        double sk, dk;
        softmax_topk_sums(&sk, &dk, p, s, mx, idx, k);
        *h_topk = sk > 0.0 ? log(sk) - dk / sk : 0.0;
    }
    float inv = (float)(1.0 / sum);
#pragma omp simd
    for (int i = 0; i < n; i++) p[i] *= inv;
    if (acc)
#pragma omp simd
        for (int i = 0; i < n; i++) acc[i] += (double)p[i];
    return log(sum) - dot / sum;
}

#ifdef MR_AVX512
/* the exponential of the softmax kernels: mr_exp_ps16 (analysis/mr_simd.h, shared with
 * analysis/mr_lanes.c's token-lane kernel, which must round exactly as these do) */
#define exp_avx512 mr_exp_ps16

/* 16 floats to doubles, in two halves */
#define CVT_LO(v) _mm512_cvtps_pd(_mm512_castps512_ps256(v))
#define CVT_HI(v) _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))

/* softmax_entropy_loops in registers of 16 floats with exp_avx512 instead of libmvec's
 * expf calls (those and the double sums were 28 % of `moe-robust analyze`,
 * docs/performance.md): the same formulas, the probabilities within a few ulp of
 * mr_softmax_rows's; the top-k's terms gathered (k <= 16). The two sums in 16 float
 * lanes, one rounding per block of 16, then the lanes in double (converting every
 * term to double was a fifth of the kernel: 65 -> 54 ns a token of 64 logits with
 * top-8, docs/performance.md):
 *  - sum e_i d_i by fused multiply-adds: the terms have one sign, so the relative error
 *    stays below (blocks + 1) x 6e-8, and the entropy's (ln Z plus that non-negative
 *    term) below that;
 *  - Z = (the count of logits equal to the maximum, whose e = exp(0) = 1 exactly) + the
 *    sum of the others' e < 1 in float: a maximum's 1 in a float lane would carry float's
 *    absolute rounding (6e-8) into ln Z, too much where the entropy is small
 *    (tests/test_ops.c checks H ~ 1e-4 to 1e-6 relative). */
MR_AVX512_TARGET static double softmax_entropy_avx512(float *restrict p,
                                                      const float *restrict s, int n,
                                                      const int *idx, int k, double *h_topk,
                                                      double *restrict acc)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __mmask16 tail = (__mmask16)((1u << (n & 15)) - 1u);
    __m512 vm = ninf;
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = i + 16 <= n ? (__mmask16)0xffff : tail;
        vm = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, m, s + i), vm); /* NaN: ignored */
    }
    float mx = _mm512_reduce_max_ps(vm);
    const __m512 vmx = _mm512_set1_ps(mx);
    __m512 zf = _mm512_setzero_ps(), dotf = zf;
    int top = 0;
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = i + 16 <= n ? (__mmask16)0xffff : tail;
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, s + i), vmx);
        __m512 e = _mm512_maskz_mov_ps(m, exp_avx512(d));
        _mm512_mask_storeu_ps(p + i, m, e);
        __mmask16 at = _mm512_mask_cmp_ps_mask(m, d, _mm512_setzero_ps(), _CMP_EQ_OQ);
        top += __builtin_popcount(at);
        zf = _mm512_mask_add_ps(zf, (__mmask16)~at, zf, e);
        dotf = _mm512_fmadd_ps(e, d, dotf);
    }
    double sum = (double)top + _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(zf), CVT_HI(zf)));
    double dot = _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(dotf), CVT_HI(dotf)));
    double sk = 1.0, dk = 0.0; /* no top-k: ln 1 - 0, unused */
    if (h_topk && k <= 16) {
        __mmask16 km = (__mmask16)((1u << k) - 1u);
        __m512i vi = _mm512_maskz_loadu_epi32(km, idx);
        __m512 ek = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), km, vi, p, 4);
        __m512 dd = _mm512_maskz_sub_ps(km, _mm512_mask_i32gather_ps(vmx, km, vi, s, 4), vmx);
        __m512 edk = _mm512_mul_ps(ek, dd);
        sk = _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(ek), CVT_HI(ek)));
        dk = _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(edk), CVT_HI(edk)));
    } else if (h_topk) {
        softmax_topk_sums(&sk, &dk, p, s, mx, idx, k);
    }
    /* both entropies, ln Z - dot / Z and ln sk - dk / sk, with one vector log and one
     * vector division (mr_log_pd2); sk = 0 (every top-k exponential underflowed): 0 */
    __m128d z2 = _mm_set_pd(sk, sum), d2 = _mm_set_pd(dk, dot);
    __mmask8 pos = _mm_cmp_pd_mask(z2, _mm_setzero_pd(), _CMP_GT_OQ) | 1; /* Z: NaN stays */
    z2 = _mm_mask_blend_pd(pos, _mm_set1_pd(1.0), z2);
    __m128d h2 = _mm_maskz_sub_pd(pos, mr_log_pd2(z2), _mm_div_pd(d2, z2));
    if (h_topk) *h_topk = _mm_cvtsd_f64(_mm_unpackhi_pd(h2, h2));
    /* the probabilities, and (acc) their sums over tokens, mr_routing_psum_add's
     * acc[i] += (double)p[i] folded into this pass: the same bits, one pass fewer */
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    int i = 0;
    for (; i + 16 <= n; i += 16) { /* whole blocks unmasked: masked acc updates cost more
                                     than the separate pass they replace */
        __m512 q = _mm512_mul_ps(_mm512_loadu_ps(p + i), inv);
        _mm512_storeu_ps(p + i, q);
        if (!acc) continue;
        _mm512_storeu_pd(acc + i, _mm512_add_pd(_mm512_loadu_pd(acc + i), CVT_LO(q)));
        _mm512_storeu_pd(acc + i + 8, _mm512_add_pd(_mm512_loadu_pd(acc + i + 8), CVT_HI(q)));
    }
    if (i < n) {
        __m512 q = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, p + i), inv);
        _mm512_mask_storeu_ps(p + i, tail, q);
        __mmask8 m0 = (__mmask8)tail, m1 = (__mmask8)(tail >> 8);
        if (acc) {
            _mm512_mask_storeu_pd(acc + i, m0,
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(m0, acc + i), CVT_LO(q)));
            _mm512_mask_storeu_pd(acc + i + 8, m1,
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(m1, acc + i + 8), CVT_HI(q)));
        }
    }
    return _mm_cvtsd_f64(h2);
}

/* softmax_entropy_avx512 for nt <= 8 tokens of at most 64 logits each (OLMoE's and
 * DeepSeek-MoE's 64, Mixtral's 8) and a top-k of at most 16 (or none), in three steps:
 * per token, its NB = ceil(n / 16) blocks in registers from the load of the logits to the
 * exponentials' sums (the top-k's exponentials and differences picked from the registers by
 * two two-table permutes, vpermt2ps, and a blend instead of two gathers from memory), the
 * exponentials stored in p; then both entropies of all nt tokens with one 8-lane vector log
 * and division each, and the 1 / Z; then the probabilities and their sums. Per token one
 * log, division and reduction chain of some 150 cycles of latency each ended its pass, on
 * which the next token waited; here the tokens' chains overlap. The same operations on the
 * same values as softmax_entropy_avx512 for each token, in the same order (the sums over
 * tokens, acc, in token order), so the same bits (tests/test_ops.c compares the two). */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void
softmax_tokens_reg(double *restrict h, double *restrict h_topk, float *restrict p,
                   const float *restrict s, int nt, int n, const int *idx, int k,
                   double *restrict acc, const unsigned char *real, const int NB)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __mmask16 m[4];
    _Pragma("GCC unroll 4")
    for (int b = 0; b < 4; b++) {
        int left = n - 16 * b;
        m[b] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1u) : 0;
    }
    double zs[8], ds[8], zks[8], dks[8]; /* [nt] Z, sum e d; the top-k's */
    for (int t = 0; t < nt; t++) {
        const float *st = s + (size_t)t * n;
        __m512 v[4], e[4], d[4]; /* [16] logits, exponentials, differences s - max s */
        _Pragma("GCC unroll 4")
        for (int b = 0; b < 4; b++) e[b] = d[b] = _mm512_setzero_ps();
        __m512 vm = ninf;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            v[b] = _mm512_mask_loadu_ps(ninf, m[b], st + 16 * b);
            vm = _mm512_max_ps(v[b], vm); /* NaN: ignored */
        }
        const __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            d[b] = _mm512_maskz_sub_ps(m[b], v[b], vmx);
            e[b] = _mm512_maskz_mov_ps(m[b], exp_avx512(d[b]));
            _mm512_mask_storeu_ps(p + (size_t)t * n + 16 * b, m[b], e[b]);
        }
        __m512 zf = _mm512_setzero_ps(), dot = zf;
        int top = 0;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) { /* softmax_entropy_avx512's order of the sums */
            __mmask16 at = _mm512_mask_cmp_ps_mask(m[b], d[b], _mm512_setzero_ps(), _CMP_EQ_OQ);
            top += __builtin_popcount(at);
            zf = _mm512_mask_add_ps(zf, (__mmask16)~at, zf, e[b]);
            dot = _mm512_fmadd_ps(e[b], d[b], dot);
        }
        zs[t] = (double)top + _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(zf), CVT_HI(zf)));
        ds[t] = _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(dot), CVT_HI(dot)));
        if (!h_topk) continue;
        __mmask16 km = (__mmask16)((1u << k) - 1u);
        __m512i vi = _mm512_maskz_loadu_epi32(km, idx + (size_t)t * k); /* idx < n */
        __mmask16 hi = _mm512_test_epi32_mask(vi, _mm512_set1_epi32(32)); /* blocks 2, 3 */
        __m512 ek = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(e[0], vi, e[1]),
                                         _mm512_permutex2var_ps(e[2], vi, e[3]));
        __m512 dd = _mm512_mask_blend_ps(hi, _mm512_permutex2var_ps(d[0], vi, d[1]),
                                         _mm512_permutex2var_ps(d[2], vi, d[3]));
        ek = _mm512_maskz_mov_ps(km, ek);
        __m512 edk = _mm512_mul_ps(ek, _mm512_maskz_mov_ps(km, dd));
        zks[t] = _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(ek), CVT_HI(ek)));
        dks[t] = _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(edk), CVT_HI(edk)));
    }
    /* ln Z - dot / Z (a NaN Z stays NaN) and ln sk - dk / sk (sk = 0, every top-k
     * exponential underflowed: 0) of the nt tokens; lanes from nt on: 1, unused */
    __mmask8 tm = (__mmask8)((1u << nt) - 1u);
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d z = _mm512_mask_loadu_pd(one, tm, zs);
    _mm512_mask_storeu_pd(h, tm, _mm512_sub_pd(mr_log_pd8(z),
                                               _mm512_div_pd(_mm512_maskz_loadu_pd(tm, ds), z)));
    if (h_topk) {
        __m512d zk = _mm512_mask_loadu_pd(one, tm, zks);
        __mmask8 pos = _mm512_cmp_pd_mask(zk, _mm512_setzero_pd(), _CMP_GT_OQ);
        zk = _mm512_mask_blend_pd(pos, one, zk);
        __m512d hk = _mm512_maskz_sub_pd(pos, mr_log_pd8(zk),
                                         _mm512_div_pd(_mm512_maskz_loadu_pd(tm, dks), zk));
        _mm512_mask_storeu_pd(h_topk, tm, hk);
    }
    float inv[8];
    _mm256_storeu_ps(inv, _mm512_cvtpd_ps(_mm512_div_pd(one, z))); /* (float)(1.0 / Z) */
    /* the probabilities, and (acc, real tokens) their sums over tokens in token order,
     * mr_routing_psum_add's acc[i] += (double)p[i]: the sums held in registers over the
     * nt tokens (loaded and stored once, not once a token: 16 of a token's memory
     * operations fewer for 64 experts; the same additions in the same order) */
    __m512d as[8]; /* [2 NB] acc's blocks of 8 (lanes beyond n: 0, never stored) */
    _Pragma("GCC unroll 4")
    for (int b = 0; b < NB; b++) {
        __mmask8 m0 = (__mmask8)m[b], m1 = (__mmask8)(m[b] >> 8);
        as[2 * b] = acc ? _mm512_maskz_loadu_pd(m0, acc + 16 * b) : _mm512_setzero_pd();
        as[2 * b + 1] = acc ? _mm512_maskz_loadu_pd(m1, acc + 16 * b + 8) : _mm512_setzero_pd();
    }
    for (int t = 0; t < nt; t++) {
        const __m512 vinv = _mm512_set1_ps(inv[t]);
        float *pt = p + (size_t)t * n;
        int add = acc && (!real || real[t]);
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            __m512 q = _mm512_mul_ps(_mm512_maskz_loadu_ps(m[b], pt + 16 * b), vinv);
            _mm512_mask_storeu_ps(pt + 16 * b, m[b], q);
            if (!add) continue;
            as[2 * b] = _mm512_add_pd(as[2 * b], CVT_LO(q));
            as[2 * b + 1] = _mm512_add_pd(as[2 * b + 1], CVT_HI(q));
        }
    }
    if (!acc) return;
    _Pragma("GCC unroll 4")
    for (int b = 0; b < NB; b++) {
        _mm512_mask_storeu_pd(acc + 16 * b, (__mmask8)m[b], as[2 * b]);
        _mm512_mask_storeu_pd(acc + 16 * b + 8, (__mmask8)(m[b] >> 8), as[2 * b + 1]);
    }
}

/* softmax_tokens_reg with its block count a constant, so that the compiler keeps the
 * blocks in registers (n <= 64, k <= 16 or no top-k, nt <= 8) */
MR_AVX512_TARGET static void softmax_tokens_avx512(double *h, double *h_topk, float *p,
                                                   const float *s, int nt, int n,
                                                   const int *idx, int k, double *acc,
                                                   const unsigned char *real)
{
    switch ((n + 15) >> 4) {
    case 1: softmax_tokens_reg(h, h_topk, p, s, nt, n, idx, k, acc, real, 1); break;
    case 2: softmax_tokens_reg(h, h_topk, p, s, nt, n, idx, k, acc, real, 2); break;
    case 3: softmax_tokens_reg(h, h_topk, p, s, nt, n, idx, k, acc, real, 3); break;
    default: softmax_tokens_reg(h, h_topk, p, s, nt, n, idx, k, acc, real, 4); break;
    }
}

/* softmax_prefix of R rows x[r][0..len-1] (row stride len; row r the softmax of its
 * first n + r entries with `causal`, of all len without; the rest exactly 0) in
 * registers of 16 floats for len <= 16 NB: exp_avx512 (within 2 ulp; softmax_prefix's
 * libmvec expf within 4) and the sum of the exponentials in double lanes (in another
 * order than softmax_prefix's, both nearly exact), then (float)(1 / sum) times each,
 * as softmax_prefix. The R rows' chains of dependent latencies (horizontal maximum, exp,
 * horizontal sum, division) overlap: one row at a time, the attention's rows of 50 cost
 * about 240 cycles each. The rows of 50 on the 8-float AVX2 clone with libmvec's expf
 * were 10-13 % of the Fashion-MNIST forward (docs/performance.md). NaN in: NaN out, as
 * softmax_prefix (the maximum skips it, its exponential and the sum do not). */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void
softmax_rows_reg(float *x, int n, int len, int causal, const int R, const int NB)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 v[4][4], vmx[4];
    __mmask16 m[4][4], ml[4];
    __m512d sum[4];
    _Pragma("GCC unroll 4")
    for (int b = 0; b < NB; b++) {
        int lleft = len - 16 * b;
        ml[b] = lleft >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << lleft) - 1u);
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        int nr = causal ? n + r : len;
        __m512 vm = ninf;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            int left = nr - 16 * b;
            m[r][b] = left >= 16 ? (__mmask16)0xffff : left > 0 ? (__mmask16)((1u << left) - 1u) : 0;
            v[r][b] = _mm512_mask_loadu_ps(ninf, m[r][b], x + (size_t)r * len + 16 * b);
            vm = _mm512_max_ps(v[r][b], vm); /* NaN: ignored */
        }
        vmx[r] = vm;
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) vmx[r] = _mm512_set1_ps(_mm512_reduce_max_ps(vmx[r]));
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        sum[r] = _mm512_setzero_pd();
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            v[r][b] = _mm512_maskz_mov_ps(m[r][b], exp_avx512(_mm512_maskz_sub_ps(m[r][b], v[r][b], vmx[r])));
            sum[r] = _mm512_add_pd(sum[r], _mm512_add_pd(CVT_LO(v[r][b]), CVT_HI(v[r][b])));
        }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(sum[r])));
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) /* lanes past the row's n: 0 whatever the sum */
            _mm512_mask_storeu_ps(x + (size_t)r * len + 16 * b, ml[b],
                                  _mm512_maskz_mul_ps(m[r][b], v[r][b], inv));
    }
}

/* The same for any len, through memory: the exponentials stored, then scaled. */
MR_AVX512_TARGET static void softmax_row_avx512(float *x, int n, int len)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 vm = ninf;
    for (int i = 0; i < n; i += 16) {
        int left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        vm = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, m, x + i), vm);
    }
    const __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
    __m512d sum = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        int left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512 e = _mm512_maskz_mov_ps(m, exp_avx512(_mm512_maskz_sub_ps(
                                              m, _mm512_maskz_loadu_ps(m, x + i), vmx)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = _mm512_add_pd(sum, _mm512_add_pd(CVT_LO(e), CVT_HI(e)));
    }
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(sum)));
    for (int i = 0; i < n; i += 16) {
        int left = n - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
    for (int i = n; i < len; i++) x[i] = 0.0f;
}

/* mr_softmax_square's rows: in registers four at a time for T <= 64 (the block count a
 * constant) */
MR_AVX512_TARGET static void softmax_square_avx512(float *x, int T, int causal)
{
    switch ((T + 15) >> 4) {
#define ROWS(NB)                                                                           \
    {                                                                                      \
        int t = 0;                                                                         \
        for (; t + 4 <= T; t += 4) softmax_rows_reg(x + (size_t)t * T, t + 1, T, causal, 4, NB); \
        for (; t < T; t++) softmax_rows_reg(x + (size_t)t * T, t + 1, T, causal, 1, NB);  \
    }                                                                                      \
    break;
    case 1: ROWS(1)
    case 2: ROWS(2)
    case 3: ROWS(3)
    case 4: ROWS(4)
#undef ROWS
    default:
        for (int t = 0; t < T; t++) {
            int n = causal ? t + 1 : T;
            softmax_row_avx512(x + (size_t)t * T, n, T);
        }
    }
}

#undef CVT_LO
#undef CVT_HI
#endif

#ifdef MR_AVX2
/* The AVX-512 softmax kernels above on CPUs with AVX2 and FMA but without AVX-512 (issue
 * 17's machine class): each 16-lane vector of those kernels as two 8-lane halves (lanes
 * 0..7, 8..15 of a block of 16), each lane given the same operations in the same order
 * (analysis/mr_simd.h: mr_exp_ps8, the reduction trees of GCC's _mm512_reduce_max_ps and
 * _mm512_reduce_add_pd, the double sums' pairing of lanes j and j + 8), so the same bits
 * (tests/test_ops.c compares them with memcmp). Masked lanes: loads by vmaskmovps (no
 * access past the mask), zeros by AND with the lane mask; stores whole where the half
 * is inside the row, vmaskmovps at a row's tail only. */

/* v to dst[0 .. cnt - 1] (cnt <= 0: nothing) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void store8_avx2(float *dst, __m256 v,
                                                                            int cnt)
{
    if (cnt >= 8) _mm256_storeu_ps(dst, v);
    else if (cnt > 0) _mm256_maskstore_ps(dst, mr_lanes_below8(cnt), v);
}

/* softmax_rows_reg for R rows of len <= 8 NH: the rows' floats in NH halves of 8 (a
 * 16-lane block b is halves 2b, 2b + 1); R = 2 rows at a time for len > 32 (the 16
 * AVX2 registers hold 2 x 7 halves of the attention's rows of 50), 4 below */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
softmax_rows_reg_avx2(float *x, int n, int len, int causal, const int R, const int NH)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY), zero = _mm256_setzero_ps();
    __m256 v[4][8];
    float mx[4];
    int nrow[4]; /* the row's entries: n + r (causal) or len */
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        const int nr = nrow[r] = causal ? n + r : len;
        __m256 vm[2] = {ninf, ninf};
        _Pragma("GCC unroll 8")
        for (int h = 0; h < NH; h++) {
            const float *xh = x + (size_t)r * len + 8 * h;
            if (8 * h + 8 <= nr) { /* whole halves unmasked (all but the last of a full row) */
                v[r][h] = _mm256_loadu_ps(xh);
            } else {
                __m256i m = mr_lanes_below8(nr - 8 * h);
                v[r][h] = _mm256_blendv_ps(ninf, _mm256_maskload_ps(xh, m), _mm256_castsi256_ps(m));
            }
            vm[h & 1] = _mm256_max_ps(v[r][h], vm[h & 1]); /* NaN: ignored */
        }
        mx[r] = mr_reduce_max_ps16(vm[0], vm[1]);
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < R; r++) {
        const int nr = nrow[r];
        const __m256 vmx = _mm256_set1_ps(mx[r]);
        __m256d s0 = _mm256_setzero_pd(), s1 = s0;
        _Pragma("GCC unroll 8")
        for (int h = 0; h < NH; h++) {
            if (8 * h + 8 <= nr) {
                v[r][h] = mr_exp_ps8(_mm256_sub_ps(v[r][h], vmx));
            } else {
                __m256 m = _mm256_castsi256_ps(mr_lanes_below8(nr - 8 * h));
                v[r][h] = _mm256_and_ps(mr_exp_ps8(_mm256_and_ps(_mm256_sub_ps(v[r][h], vmx), m)), m);
            }
            if (h & 1) mr_sum_ps16_pd8(&s0, &s1, v[r][h - 1], v[r][h]);
            else if (h == NH - 1) mr_sum_ps16_pd8(&s0, &s1, v[r][h], zero);
        }
        const __m256 inv = _mm256_set1_ps((float)(1.0 / mr_reduce_add_pd8(s0, s1)));
        _Pragma("GCC unroll 8")
        for (int h = 0; h < NH; h++) { /* lanes past the row's n: 0 whatever the sum */
            __m256 q = _mm256_mul_ps(v[r][h], inv);
            if (8 * h + 8 > nr) q = _mm256_and_ps(q, _mm256_castsi256_ps(mr_lanes_below8(nr - 8 * h)));
            store8_avx2(x + (size_t)r * len + 8 * h, q, len - 8 * h);
        }
    }
}

/* softmax_row_avx512 (any len, through memory) */
MR_AVX2_TARGET static void softmax_row_avx2(float *x, int n, int len)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vm[2] = {ninf, ninf};
    for (int i = 0; i < n; i += 8) {
        __m256i m = mr_lanes_below8(n - i);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, m), _mm256_castsi256_ps(m));
        vm[(i >> 3) & 1] = _mm256_max_ps(v, vm[(i >> 3) & 1]);
    }
    const __m256 vmx = _mm256_set1_ps(mr_reduce_max_ps16(vm[0], vm[1]));
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    for (int i = 0; i < n; i += 16) {
        __m256 e[2];
        for (int h = 0; h < 2; h++) {
            __m256i mi = mr_lanes_below8(n - i - 8 * h);
            __m256 m = _mm256_castsi256_ps(mi);
            e[h] = _mm256_and_ps(
                mr_exp_ps8(_mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i + 8 * h, mi), vmx), m)), m);
            store8_avx2(x + i + 8 * h, e[h], n - i - 8 * h);
        }
        mr_sum_ps16_pd8(&s0, &s1, e[0], e[1]);
    }
    const __m256 inv = _mm256_set1_ps((float)(1.0 / mr_reduce_add_pd8(s0, s1)));
    for (int i = 0; i < n; i += 8) {
        __m256i m = mr_lanes_below8(n - i);
        store8_avx2(x + i, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), inv), n - i);
    }
    for (int i = n; i < len; i++) x[i] = 0.0f;
}

/* A token's pass of softmax_entropy_avx512 (and of softmax_tokens_reg, which gives its
 * bits) up to the entropies: the maximum, the exponentials e into p (not yet scaled),
 * Z (the count of logits equal to the maximum plus the float sum of the other e, by
 * lanes j of the 16-lane blocks, then in double), sum e d (fused multiply-adds), and with
 * h_topk the top-k's sk = sum e_j and dk = sum e_j d_j (k <= 16: gathered into 16 lanes
 * and summed as the AVX-512 kernels do; beyond, softmax_topk_sums) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
entropy_sums_avx2(double *z, double *dot, double *sk, double *dk, float *restrict p,
                  const float *restrict s, int n, const int *idx, int k, int topk)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY), zero = _mm256_setzero_ps();
    __m256 vm[2] = {ninf, ninf};
    for (int i = 0; i < n; i += 8) {
        if (i + 8 <= n) {
            vm[(i >> 3) & 1] = _mm256_max_ps(_mm256_loadu_ps(s + i), vm[(i >> 3) & 1]);
        } else {
            __m256i m = mr_lanes_below8(n - i);
            __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(s + i, m), _mm256_castsi256_ps(m));
            vm[(i >> 3) & 1] = _mm256_max_ps(v, vm[(i >> 3) & 1]); /* NaN: ignored */
        }
    }
    float mx = mr_reduce_max_ps16(vm[0], vm[1]);
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 zf[2] = {zero, zero}, dotf[2] = {zero, zero};
    int top = 0;
    for (int i = 0; i < n; i += 8) {
        const int h = (i >> 3) & 1;
        __m256 d, e;
        if (i + 8 <= n) {
            d = _mm256_sub_ps(_mm256_loadu_ps(s + i), vmx);
            e = mr_exp_ps8(d);
            _mm256_storeu_ps(p + i, e);
        } else {
            __m256i mi = mr_lanes_below8(n - i);
            __m256 m = _mm256_castsi256_ps(mi);
            d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(s + i, mi), vmx), m);
            e = _mm256_and_ps(mr_exp_ps8(d), m);
            _mm256_maskstore_ps(p + i, mi, e);
        }
        __m256 at = _mm256_cmp_ps(d, zero, _CMP_EQ_OQ); /* masked lanes: e = 0, either way */
        top += __builtin_popcount((unsigned)_mm256_movemask_ps(at) & (n - i >= 8 ? 0xffu : (1u << (n - i)) - 1u));
        zf[h] = _mm256_blendv_ps(_mm256_add_ps(zf[h], e), zf[h], at);
        dotf[h] = _mm256_fmadd_ps(e, d, dotf[h]);
    }
    *z = (double)top + mr_hsum_ps16(zf[0], zf[1]);
    *dot = mr_hsum_ps16(dotf[0], dotf[1]);
    *sk = 1.0, *dk = 0.0; /* no top-k: ln 1 - 0, unused */
    if (topk && k <= 16) {
        __m256 ek[2], edk[2];
        for (int h = 0; h < 2; h++) {
            __m256i km = mr_lanes_below8(k - 8 * h);
            __m256i vi = _mm256_maskload_epi32(idx + 8 * h, km);
            ek[h] = _mm256_mask_i32gather_ps(zero, p, vi, _mm256_castsi256_ps(km), 4);
            __m256 dd = _mm256_and_ps(_mm256_sub_ps(_mm256_mask_i32gather_ps(vmx, s, vi, _mm256_castsi256_ps(km), 4),
                                                    vmx), _mm256_castsi256_ps(km));
            edk[h] = _mm256_mul_ps(ek[h], dd);
        }
        *sk = mr_hsum_ps16(ek[0], ek[1]);
        *dk = mr_hsum_ps16(edk[0], edk[1]);
    } else if (topk) {
        softmax_topk_sums(sk, dk, p, s, mx, idx, k);
    }
}

/* p[i] *= inv over n floats (and acc[i] += (double)p[i]): element by element, the
 * order of the AVX-512 kernels' passes does not matter */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
entropy_scale_avx2(float *restrict p, int n, float inv, double *restrict acc)
{
    const __m256 vinv = _mm256_set1_ps(inv);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 q = _mm256_mul_ps(_mm256_loadu_ps(p + i), vinv);
        _mm256_storeu_ps(p + i, q);
        if (!acc) continue;
        _mm256_storeu_pd(acc + i, _mm256_add_pd(_mm256_loadu_pd(acc + i),
                                                _mm256_cvtps_pd(_mm256_castps256_ps128(q))));
        _mm256_storeu_pd(acc + i + 4, _mm256_add_pd(_mm256_loadu_pd(acc + i + 4),
                                                    _mm256_cvtps_pd(_mm256_extractf128_ps(q, 1))));
    }
    for (; i < n; i++) {
        p[i] *= inv;
        if (acc) acc[i] += (double)p[i];
    }
}

/* softmax_entropy_avx512: the same bits (the two entropies by one 4-lane mr_log_pd4) */
MR_AVX2_TARGET static double softmax_entropy_avx2(float *restrict p, const float *restrict s,
                                                  int n, const int *idx, int k, double *h_topk,
                                                  double *restrict acc)
{
    double sum, dot, sk, dk;
    entropy_sums_avx2(&sum, &dot, &sk, &dk, p, s, n, idx, k, h_topk != NULL);
    __m256d z2 = _mm256_set_pd(1.0, 1.0, sk, sum), d2 = _mm256_set_pd(0.0, 0.0, dk, dot);
    __m256d pos = _mm256_cmp_pd(z2, _mm256_setzero_pd(), _CMP_GT_OQ);
    pos = _mm256_blend_pd(pos, _mm256_castsi256_pd(_mm256_set1_epi64x(-1)), 1); /* Z: NaN stays */
    z2 = _mm256_blendv_pd(_mm256_set1_pd(1.0), z2, pos);
    __m256d h2 = _mm256_and_pd(_mm256_sub_pd(mr_log_pd4(z2), _mm256_div_pd(d2, z2)), pos);
    if (h_topk) *h_topk = _mm_cvtsd_f64(_mm_unpackhi_pd(_mm256_castpd256_pd128(h2), _mm256_castpd256_pd128(h2)));
    entropy_scale_avx2(p, n, (float)(1.0 / sum), acc);
    return _mm256_cvtsd_f64(h2);
}

/* softmax_tokens_avx512 for nt <= 8 tokens of any n (k <= 16, or beyond through
 * softmax_topk_sums): each token's sums as softmax_entropy_avx2, then both entropies of
 * the nt tokens by two 4-lane mr_log_pd4 and divisions each (the tokens' log and division
 * latencies overlap), then the probabilities and their sums in token order. The same
 * bits as softmax_entropy_avx2 token by token. */
MR_AVX2_TARGET static void softmax_tokens_avx2(double *h, double *h_topk, float *p,
                                               const float *s, int nt, int n, const int *idx,
                                               int k, double *acc, const unsigned char *real)
{
    double zs[8], ds[8], zks[8], dks[8];
    for (int t = 0; t < nt; t++)
        entropy_sums_avx2(zs + t, ds + t, zks + t, dks + t, p + (size_t)t * n, s + (size_t)t * n,
                          n, h_topk ? idx + (size_t)t * k : NULL, k, h_topk != NULL);
    for (int t = nt; t < 8; t++) zs[t] = zks[t] = 1.0, ds[t] = dks[t] = 0.0;
    float inv[8];
    const __m256d one = _mm256_set1_pd(1.0);
    for (int q = 0; q < 2; q++) {
        __m256d z = _mm256_loadu_pd(zs + 4 * q);
        __m256d hq = _mm256_sub_pd(mr_log_pd4(z), _mm256_div_pd(_mm256_loadu_pd(ds + 4 * q), z));
        _mm_storeu_ps(inv + 4 * q, _mm256_cvtpd_ps(_mm256_div_pd(one, z))); /* (float)(1.0 / Z) */
        double hv[4];
        _mm256_storeu_pd(hv, hq);
        for (int j = 0; j < 4 && 4 * q + j < nt; j++) h[4 * q + j] = hv[j];
        if (!h_topk) continue;
        __m256d zk = _mm256_loadu_pd(zks + 4 * q);
        __m256d pos = _mm256_cmp_pd(zk, _mm256_setzero_pd(), _CMP_GT_OQ);
        zk = _mm256_blendv_pd(one, zk, pos);
        __m256d hk = _mm256_and_pd(_mm256_sub_pd(mr_log_pd4(zk), _mm256_div_pd(_mm256_loadu_pd(dks + 4 * q), zk)), pos);
        _mm256_storeu_pd(hv, hk);
        for (int j = 0; j < 4 && 4 * q + j < nt; j++) h_topk[4 * q + j] = hv[j];
    }
    for (int t = 0; t < nt; t++)
        entropy_scale_avx2(p + (size_t)t * n, n, inv[t], acc && (!real || real[t]) ? acc : NULL);
}

/* softmax_square_avx512's rows: in registers for T <= 64 (the half count a constant),
 * through memory beyond */
MR_AVX2_TARGET static void softmax_square_avx2(float *x, int T, int causal)
{
    switch ((T + 7) >> 3) {
#define ROWS(NH, R)                                                                        \
    {                                                                                      \
        int t = 0;                                                                         \
        for (; t + R <= T; t += R) softmax_rows_reg_avx2(x + (size_t)t * T, t + 1, T, causal, R, NH); \
        for (; t < T; t++) softmax_rows_reg_avx2(x + (size_t)t * T, t + 1, T, causal, 1, NH); \
    }                                                                                      \
    break;
    case 1: ROWS(1, 4)
    case 2: ROWS(2, 4)
    case 3: ROWS(3, 4)
    case 4: ROWS(4, 4)
    case 5: ROWS(5, 2)
    case 6: ROWS(6, 2)
    case 7: ROWS(7, 2)
    case 8: ROWS(8, 2)
#undef ROWS
    default:
        for (int t = 0; t < T; t++) {
            int nt = causal ? t + 1 : T;
            softmax_row_avx2(x + (size_t)t * T, nt, T);
        }
    }
}
#endif

static int avx512_state = -1; /* -1: not yet asked; 0: off; 1: on */

int mr_simd_avx512(void)
{
    int on = __atomic_load_n(&avx512_state, __ATOMIC_RELAXED);
    if (on < 0) {
        on = 0;
#ifdef MR_AVX512
        on = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
        __atomic_store_n(&avx512_state, on, __ATOMIC_RELAXED);
    }
    return on;
}

void mr_simd_avx512_set(int on)
{
    __atomic_store_n(&avx512_state, on ? -1 : 0, __ATOMIC_RELAXED);
}

static int vbmi2_state = -1; /* as avx512_state, for mr_simd_vbmi2 */

int mr_simd_vbmi2(void)
{
    int on = __atomic_load_n(&vbmi2_state, __ATOMIC_RELAXED);
    if (on < 0) {
        on = 0;
#ifdef MR_AVX512
        on = __builtin_cpu_supports("avx512vbmi2");
#endif
        __atomic_store_n(&vbmi2_state, on, __ATOMIC_RELAXED);
    }
    return on && mr_simd_avx512();
}

void mr_simd_vbmi2_set(int on)
{
    __atomic_store_n(&vbmi2_state, on ? -1 : 0, __ATOMIC_RELAXED);
}

static int avx2_state = -1; /* as avx512_state, for mr_simd_avx2 */

int mr_simd_avx2(void)
{
    int on = __atomic_load_n(&avx2_state, __ATOMIC_RELAXED);
    if (on < 0) {
        on = 0;
#ifdef MR_AVX2
        on = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
#endif
        __atomic_store_n(&avx2_state, on, __ATOMIC_RELAXED);
    }
    return on && !mr_simd_avx512();
}

void mr_simd_avx2_set(int on)
{
    __atomic_store_n(&avx2_state, on ? -1 : 0, __ATOMIC_RELAXED);
}

#ifdef MR_AVX512
/* softmax_tokens_avx512 takes it: rows of at most 64 logits, a top-k of at most 16 */
static int tokens_kernel(int n, const double *h_topk, int k)
{
    return mr_simd_avx512() && n <= 64 && (!h_topk || k <= 16);
}
#endif

double mr_softmax_entropy(float *restrict p, const float *restrict s, int n, const int *idx,
                          int k, double *h_topk, double *restrict acc)
{
#ifdef MR_AVX512
    if (tokens_kernel(n, h_topk, k)) {
        double h;
        softmax_tokens_avx512(&h, h_topk, p, s, 1, n, idx, k, acc, NULL);
        return h;
    }
#endif
    return mr_softmax_entropy_general(p, s, n, idx, k, h_topk, acc);
}

void mr_softmax_entropy_tokens(double *h, double *h_topk, float *p, const float *s, int nt,
                               int n, const int *idx, int k, double *acc,
                               const unsigned char *real)
{
    for (int t0 = 0; t0 < nt; t0 += 8) {
        int m = nt - t0 < 8 ? nt - t0 : 8;
        size_t o = (size_t)t0 * n;
        const int *ix = h_topk ? idx + (size_t)t0 * k : NULL;
        double *hk = h_topk ? h_topk + t0 : NULL;
        const unsigned char *rl = real ? real + t0 : NULL;
#ifdef MR_AVX512
        if (tokens_kernel(n, h_topk, k)) {
            softmax_tokens_avx512(h + t0, hk, p + o, s + o, m, n, ix, k, acc, rl);
            continue;
        }
#endif
#ifdef MR_AVX2
        if (mr_simd_avx2()) {
            softmax_tokens_avx2(h + t0, hk, p + o, s + o, m, n, ix, k, acc, rl);
            continue;
        }
#endif
        for (int t = 0; t < m; t++)
            h[t0 + t] = mr_softmax_entropy_general(p + o + (size_t)t * n, s + o + (size_t)t * n, n,
                                                   ix ? ix + (size_t)t * k : NULL, k,
                                                   hk ? hk + t : NULL,
                                                   acc && (!rl || rl[t]) ? acc : NULL);
    }
}

double mr_softmax_entropy_general(float *restrict p, const float *restrict s, int n,
                                  const int *idx, int k, double *h_topk, double *restrict acc)
{
#ifdef MR_AVX512
    if (mr_simd_avx512()) return softmax_entropy_avx512(p, s, n, idx, k, h_topk, acc);
#endif
#ifdef MR_AVX2
    if (mr_simd_avx2()) return softmax_entropy_avx2(p, s, n, idx, k, h_topk, acc);
#endif
    return softmax_entropy_loops(p, s, n, idx, k, h_topk, acc);
}

void mr_softmax_square(float *x, int T, int causal)
{
#ifdef MR_AVX512
    if (mr_simd_avx512()) {
        softmax_square_avx512(x, T, causal);
        return;
    }
#endif
#ifdef MR_AVX2
    if (mr_simd_avx2()) {
        softmax_square_avx2(x, T, causal);
        return;
    }
#endif
    for (int t = 0; t < T; t++) softmax_prefix(x + (size_t)t * T, causal ? t + 1 : T, T);
}

void mr_softmax_rows(float *x, int N, int C)
{
    for (int n = 0; n < N; n++) softmax_prefix(x + (size_t)n * C, C, C);
}

/* the attention's GEMM kernel (forward and backward), mr_simd.h: the two kernels give
 * the same bits */
mr_gemm_fn *mr_attention_gemm(int T, int hd)
{
    if (T > MR_ATT_KERNEL_MAX_T || hd > MR_ATT_KERNEL_MAX_HD) return NULL;
#ifdef MR_AVX512
    if (mr_simd_avx512()) return mr_gemm_avx512;
#endif
#ifdef MR_AVX2
    if (mr_simd_avx2()) return mr_gemm_avx2;
#endif
    return NULL;
}

/* mr_attention_gqa_forward's two GEMMs per head by the micro-kernel `gemm`
 * (mr_attention_gemm): OpenBLAS's calls of 50 x 50 x 16 (the demo models) spent more in
 * packing and call overhead than in products; the same products, summed in order of k,
 * then scaled once as OpenBLAS's alpha */
static void attention_kernel(mr_gemm_fn *gemm, float *out, float *att, const float *qkv, int B,
                             int T, int NH, int NKV, int hd, int causal, float scale)
{
    int row = (NH + 2 * NKV) * hd, C = NH * hd, group = NH / NKV;
    float kt[MR_ATT_KERNEL_MAX_HD * MR_ATT_KERNEL_MAX_T] __attribute__((aligned(64)));
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * row;
        for (int h = 0; h < NH; h++) {
            int g = h / group;
            const float *q = base + h * hd, *k = base + C + g * hd,
                        *v = base + C + NKV * hd + g * hd;
            float *a = att + ((size_t)b * NH + h) * T * T;
            if (h % group == 0) /* a key head's transpose serves its whole group */
                for (int t = 0; t < T; t++)
                    for (int i = 0; i < hd; i++) kt[i * T + t] = k[(size_t)t * row + i];
            gemm(a, T, q, row, 1, kt, T, T, hd, T, scale, NULL, 0);
            mr_softmax_square(a, T, causal);
            gemm(out + (size_t)b * T * C + h * hd, C, a, T, 1, v, row, T, T, hd, 1.0f, NULL, 0);
        }
    }
}

void mr_attention_gqa_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                              int NKV, int hd, int causal)
{
    int row = (NH + 2 * NKV) * hd, C = NH * hd, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)hd);
    mr_gemm_fn *gemm = mr_attention_gemm(T, hd);
    if (gemm) {
        attention_kernel(gemm, out, att, qkv, B, T, NH, NKV, hd, causal, scale);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * row;
        for (int h = 0; h < NH; h++) {
            int g = h / group;
            const float *q = base + h * hd;                  /* [T, hd], row stride `row` */
            const float *k = base + C + g * hd;              /* [T, hd] */
            const float *v = base + C + NKV * hd + g * hd;   /* [T, hd] */
            float *a = att + ((size_t)b * NH + h) * T * T;   /* [T, T] */
            /* scores = scale * Q K^T; the masked upper triangle is overwritten below */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, row, k,
                        row, 0.0f, a, T);
            mr_softmax_square(a, T, causal);
            float *o = out + (size_t)b * T * C + h * hd; /* [T, hd], row stride C */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, a, T, v,
                        row, 0.0f, o, C);
        }
    }
}

/* Multi-head attention is the case NKV = NH, hd = C / NH: the same GEMMs, the same bits. */
void mr_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH, int causal)
{
    mr_attention_gqa_forward(out, att, qkv, B, T, NH, NH, C / NH, causal);
}

/* -sum q log q for q = p / ws (divide: 0 or 1, a constant at each call, so mr_entropy has
 * no division), in double, in blocks of 64 in three vector loops as mr_entropy_fast below
 * (zeros replaced by ones, libmvec's double log, q log q summed in a fixed order). */
static inline __attribute__((always_inline)) double entropy_blocks(const float *p, int n,
                                                                 int divide, double ws)
{
    double u[64], t[64];
    double h = 0.0;
    for (int i0 = 0; i0 < n; i0 += 64) {
        int m = n - i0 < 64 ? n - i0 : 64;
        const float *q = p + i0;
#pragma omp simd
        for (int i = 0; i < m; i++) {
            double v = divide ? q[i] / ws : (double)q[i];
            u[i] = v > 0.0 ? v : 1.0;
        }
#pragma omp simd
        for (int i = 0; i < m; i++) t[i] = log(u[i]);
#pragma omp simd reduction(+ : h)
        for (int i = 0; i < m; i++) h -= u[i] * t[i];
    }
    return h;
}

/* The logs of the routing entropy, 64 per token and MoE layer for OLMoE-sized routers,
 * were a quarter of `moe-robust analyze` with the scalar log. */
MR_VECTOR_CLONES_512
double mr_entropy(const float *p, int n) { return entropy_blocks(p, n, 0, 1.0); }

/* The weight entropy's k logs per token were scalar calls (4 % of `moe-robust analyze`,
 * docs/performance.md). */
MR_VECTOR_CLONES
double mr_entropy_renorm(const float *w, int n)
{
    double ws = 0.0;
    for (int i = 0; i < n; i++) ws += w[i];
    return ws > 0.0 ? entropy_blocks(w, n, 1, ws) : 0.0;
}

/* Blocks of 64 in three vector loops: zeros replaced by ones (1 log 1 = 0 stands for
 * 0 log 0, and no lane takes logf(0)), the logs (libmvec), p log p summed in double;
 * the order of the sum is fixed by the loop shape, as in softmax_prefix. */
MR_VECTOR_CLONES
double mr_entropy_fast(const float *p, int n)
{
    float u[64], t[64];
    double h = 0.0;
    for (int i0 = 0; i0 < n; i0 += 64) {
        int m = n - i0 < 64 ? n - i0 : 64;
        const float *q = p + i0;
#pragma omp simd
        for (int i = 0; i < m; i++) u[i] = q[i] > 0.0f ? q[i] : 1.0f;
#pragma omp simd
        for (int i = 0; i < m; i++) t[i] = logf(u[i]);
#pragma omp simd reduction(+ : h)
        for (int i = 0; i < m; i++) h -= (double)(u[i] * t[i]);
    }
    return h;
}
