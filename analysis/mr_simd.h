/* mr_simd.h — what the elementwise kernels of mr_ops.c and mr_ops_grad.c share: the
 * function-multiversioning macro, the vectorizable erf, the two-lane vector log and the
 * libmvec declarations.
 * Internal to analysis/, the kernels of metrics/ and the trace reader of io/ (static
 * inline: each kernel file gets its own copy). */
#ifndef MR_SIMD_H
#define MR_SIMD_H

#include <math.h>

/* Elementwise kernels are compiled twice, for AVX2 and for the x86-64 baseline, and the
 * loader picks one by CPU (GCC function multiversioning): the same C, wider vectors.
 * -std=c11 keeps floating-point contraction off, so both clones round identically
 * except for the order of the vectorized reductions (softmax sum; fixed per machine). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MR_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
/* Kernels whose results do not depend on the vector width, or only through a reduction
 * order fixed per machine (the routing statistics), get an AVX-512 clone as well (not in
 * a build with -DMR_AVX512=OFF, CMakeLists.txt: an AVX2-class binary). */
#ifdef MR_NO_AVX512
#define MR_VECTOR_CLONES_512 MR_VECTOR_CLONES
#else
#define MR_VECTOR_CLONES_512 __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#else
#define MR_VECTOR_CLONES
#define MR_VECTOR_CLONES_512
#endif

/* Kernels written with AVX-512 intrinsics (the top-k search, the softmax and its
 * entropies, float16 widening): compiled for these extensions only, called only where
 * mr_simd_avx512() (analysis/mr_ops.h) says the CPU has them; every such kernel keeps a
 * portable path for other CPUs, and the unit tests run both. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MR_NO_AVX512)
#define MR_AVX512 1
#define MR_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,f16c")))
#include <immintrin.h>

/* ln x in the 8 lanes of a double vector, for the softmax's two entropies of 8 tokens at
 * once (ln Z and ln of the top-k's sum: two scalar log calls per token were 7 % of
 * `moe-robust analyze`, docs/performance.md; one vector per token left them on each
 * token's chain of dependent latencies). The method of fdlibm's e_log.c (Sun Microsystems, 1993): x =
 * 2^e m with m in [sqrt(2)/2, sqrt(2)) (vgetexppd / vgetmantpd), f = m - 1,
 * s = f / (2 + f), ln(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with its degree-14 even
 * minimax R (coefficients Lg1..Lg7) and ln 2 in two parts: within 1 ulp of the exact ln
 * for positive finite x (subnormals included); NaN for NaN; callers pass x > 0 only
 * (tests/test_ops.c checks it against libm's log). */
MR_AVX512_TARGET static inline __attribute__((always_inline)) __m512d mr_log_pd8(__m512d x)
{
    __m512d m = _mm512_getmant_pd(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src); /* [1, 2) */
    __m512d e = _mm512_getexp_pd(x);                                          /* floor(log2 x) */
    __mmask8 hi = _mm512_cmp_pd_mask(m, _mm512_set1_pd(1.41421356237309504880), _CMP_GT_OQ);
    m = _mm512_mask_mul_pd(m, hi, m, _mm512_set1_pd(0.5)); /* exact */
    e = _mm512_mask_add_pd(e, hi, e, _mm512_set1_pd(1.0));
    __m512d f = _mm512_sub_pd(m, _mm512_set1_pd(1.0)); /* exact (Sterbenz) */
    __m512d s = _mm512_div_pd(f, _mm512_add_pd(_mm512_set1_pd(2.0), f));
    __m512d z = _mm512_mul_pd(s, s), w = _mm512_mul_pd(z, z);
    __m512d t1 = _mm512_fmadd_pd(w, _mm512_set1_pd(1.531383769920937332e-01), _mm512_set1_pd(2.222219843214978396e-01));
    t1 = _mm512_fmadd_pd(w, t1, _mm512_set1_pd(3.999999999940941908e-01));
    t1 = _mm512_mul_pd(w, t1);
    __m512d t2 = _mm512_fmadd_pd(w, _mm512_set1_pd(1.479819860511658591e-01), _mm512_set1_pd(1.818357216161805012e-01));
    t2 = _mm512_fmadd_pd(w, t2, _mm512_set1_pd(2.857142874366239149e-01));
    t2 = _mm512_fmadd_pd(w, t2, _mm512_set1_pd(6.666666666666735130e-01));
    t2 = _mm512_mul_pd(z, t2);
    __m512d R = _mm512_add_pd(t1, t2);
    __m512d hfsq = _mm512_mul_pd(_mm512_set1_pd(0.5), _mm512_mul_pd(f, f));
    /* e ln2_hi - ((hfsq - (s (hfsq + R) + e ln2_lo)) - f) */
    __m512d lo = _mm512_fmadd_pd(s, _mm512_add_pd(hfsq, R), _mm512_mul_pd(e, _mm512_set1_pd(1.90821492927058770002e-10)));
    __m512d r = _mm512_sub_pd(_mm512_sub_pd(hfsq, lo), f);
    return _mm512_fmsub_pd(e, _mm512_set1_pd(6.93147180369123816490e-01), r);
}

/* The GEMM micro-kernel of mr_linear_forward, mr_linear_backward and the attention on
 * CPUs with AVX-512 (the machine's environment, or OpenBLAS's own choice, may give
 * OpenBLAS's AVX2 kernels, and OpenBLAS packs both operands for every call: at the demo
 * models' shapes, K of 16 to 256, it ran at 40-90 GFLOP/s where this runs at 115-195,
 * docs/performance.md): out[MR rows, NV x 16 columns] from A (element (r, k) at
 * A[r lda + k aks]: aks = 1 a row-major A, lda = 1 and aks = its row length a transposed
 * one) and B[K, NV x 16] (row stride ldb, vector v at + 16 v; the last vector's columns
 * masked by `last`), each output a chain of fused multiply-adds over k = 0..K-1 from 0,
 * then one rounding with its addend: add = 0: out = alpha acc + bias[column] (bias NULL:
 * alpha acc); add = 1: out = alpha acc + out (alpha = 1: acc + addend, as a separate
 * addition). The same bits for a row whichever rows share its call (MR). */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void
mr_gemm_micro(float *out, int ldo, const float *A, int lda, int aks, const float *B, int ldb,
              int K, float alpha, const float *bias, int add, const int MR, const int NV,
              __mmask16 last)
{
    __m512 acc[8][2];
    _Pragma("GCC unroll 8")
    for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2")
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 b[2];
        _Pragma("GCC unroll 2")
        for (int v = 0; v < NV; v++)
            b[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? last : (__mmask16)0xffff,
                                         B + (size_t)k * ldb + 16 * v);
        _Pragma("GCC unroll 8")
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(A[(size_t)r * lda + (size_t)k * aks]);
            _Pragma("GCC unroll 2")
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    _Pragma("GCC unroll 8")
    for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2")
        for (int v = 0; v < NV; v++) {
            __mmask16 m = v == NV - 1 ? last : (__mmask16)0xffff;
            float *o = out + (size_t)r * ldo + 16 * v;
            __m512 c = add ? _mm512_maskz_loadu_ps(m, o)
                           : bias ? _mm512_maskz_loadu_ps(m, bias + 16 * v) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(va, acc[r][v], c));
        }
}

/* mr_gemm_micro over all N rows of one block of NV x 16 columns: eight rows at a time,
 * the rest (1 to 7) in one call */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void
mr_gemm_rows(float *out, int ldo, const float *A, int lda, int aks, const float *B, int ldb,
             int K, float alpha, const float *bias, int add, int N, const int NV,
             __mmask16 last)
{
    int n = 0;
    for (; n + 8 <= N; n += 8)
        mr_gemm_micro(out + (size_t)n * ldo, ldo, A + (size_t)n * lda, lda, aks, B, ldb, K,
                      alpha, bias, add, 8, NV, last);
    float *o = out + (size_t)n * ldo;
    const float *a = A + (size_t)n * lda;
    switch (N - n) {
#define MR_GEMM_REST(R)                                                                     \
    case R: mr_gemm_micro(o, ldo, a, lda, aks, B, ldb, K, alpha, bias, add, R, NV, last); break;
        MR_GEMM_REST(1) MR_GEMM_REST(2) MR_GEMM_REST(3) MR_GEMM_REST(4) MR_GEMM_REST(5)
        MR_GEMM_REST(6) MR_GEMM_REST(7)
#undef MR_GEMM_REST
    default: break;
    }
}

/* out[N, OC] = alpha A B + (add ? out : bias) for A as mr_gemm_micro's ([N, K]) and
 * B[K, OC] (row strides ldb, ldo), in blocks of 32 columns (the last block 16 or fewer,
 * masked) */
MR_AVX512_TARGET static inline void mr_gemm_avx512(float *out, int ldo, const float *A,
                                                   int lda, int aks, const float *B, int ldb,
                                                   int N, int K, int OC, float alpha,
                                                   const float *bias, int add)
{
    for (int j = 0; j < OC; j += 32) {
        int left = OC - j, nv = left > 16 ? 2 : 1, lc = left - 16 * (nv - 1);
        __mmask16 last = lc >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << lc) - 1u);
        const float *bj = bias ? bias + j : NULL;
        if (nv == 2)
            mr_gemm_rows(out + j, ldo, A, lda, aks, B + j, ldb, K, alpha, bj, add, N, 2, last);
        else
            mr_gemm_rows(out + j, ldo, A, lda, aks, B + j, ldb, K, alpha, bj, add, N, 1, last);
    }
}

/* exp(x) in 16 float lanes, for the softmax kernels (analysis/mr_ops.c, analysis/mr_lanes.c): x = n ln 2 + r with n = round(x / ln 2)
 * and ln 2 in two parts (Cody & Waite 1980, "Software Manual for the Elementary
 * Functions"), so |r| <= ln 2 / 2 exactly; e^r = 1 + r + r^2 P(r) with Cephes' degree-5
 * minimax P (S. L. Moshier, Cephes Math Library, expf.c), in fused multiply-adds; then
 * 2^n by vscalefps, which rounds once, into subnormals and to 0 alike. For x <= 0 (the
 * softmax's s - max s) or NaN: x is clamped to x >= -104, below which float's exp is 0 (a
 * NaN stays NaN). Within 2 ulp of the correctly rounded exp (tests/test_ops.c measures it
 * against double exp; libmvec's expf is within 4 ulp). */
MR_AVX512_TARGET static inline __attribute__((always_inline)) __m512 mr_exp_ps16(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x); /* max(c, NaN) = NaN */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 q = _mm512_set1_ps(1.9875691500e-4f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.3981999507e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3334519073e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1665795894e-2f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666665459e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(5.0000001201e-1f));
    q = _mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r);
    return _mm512_scalef_ps(_mm512_add_ps(q, _mm512_set1_ps(1.0f)), n);
}

/* mr_log_pd8 in two lanes (the upper six lanes zero, their results unused) */
MR_AVX512_TARGET static inline __attribute__((always_inline)) __m128d mr_log_pd2(__m128d x)
{
    return _mm512_castpd512_pd128(mr_log_pd8(_mm512_zextpd128_pd512(x)));
}
#endif

/* Kernels written with AVX2 and FMA intrinsics for CPUs without AVX-512 (issue 17's
 * machine class: the AVX2 forms of the GEMM micro-kernel, the attention and the softmax
 * kernels): compiled for these extensions only, called only where mr_simd_avx2()
 * (analysis/mr_ops.h) says so, i.e. the CPU has AVX2 and FMA and the AVX-512 kernels do
 * not run; each keeps the portable path, and the unit tests run all paths. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MR_AVX2 1
#define MR_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#include <immintrin.h>

/* _mm256_maskload_ps / _mm256_maskstore_ps's mask of the first n lanes (1 <= n <= 8) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256i mr_mask8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* mr_gemm_micro in registers of 8 floats, for CPUs with AVX2 and FMA but not AVX-512
 * (issue 17's machine class): out[MR rows, NV x 8 columns] from the same operands (A's
 * element (r, k) at A[r lda + k aks], B[K, NV x 8] with row stride ldb), each output the
 * same chain of fused multiply-adds over k = 0..K-1 from 0 and the same one rounding with
 * its addend (alpha acc + bias[column], alpha acc, or alpha acc + out): the same bits as
 * mr_gemm_micro, whose tiles (8 rows x 32 columns) differ only in which outputs share a
 * register file; here 6 rows x 16 columns, 12 accumulators, 2 vectors of B and a
 * broadcast of A in the 16 ymm registers. The last vector's columns are those of `last`
 * (mr_mask8): MB masks its loads of B (0 where B has columns to spare, as the linear
 * layers' zero-padded panels), MS its loads of the bias or the addend and its stores. */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
mr_gemm_micro8(float *out, int ldo, const float *A, int lda, int aks, const float *B, int ldb,
               int K, float alpha, const float *bias, int add, const int MR, const int NV,
               const int MB, const int MS, __m256i last)
{
    __m256 acc[6][2];
    _Pragma("GCC unroll 6")
    for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2")
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m256 b[2];
        const float *bk = B + (size_t)k * ldb;
        _Pragma("GCC unroll 2")
        for (int v = 0; v < NV; v++)
            b[v] = MB && v == NV - 1 ? _mm256_maskload_ps(bk + 8 * v, last)
                                     : _mm256_loadu_ps(bk + 8 * v);
        _Pragma("GCC unroll 6")
        for (int r = 0; r < MR; r++) {
            __m256 a = _mm256_broadcast_ss(A + (size_t)r * lda + (size_t)k * aks);
            _Pragma("GCC unroll 2")
            for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha);
    _Pragma("GCC unroll 6")
    for (int r = 0; r < MR; r++)
        _Pragma("GCC unroll 2")
        for (int v = 0; v < NV; v++) {
            int m = MS && v == NV - 1;
            float *o = out + (size_t)r * ldo + 8 * v;
            const float *c = add ? o : bias ? bias + 8 * v : NULL;
            __m256 y = c ? (m ? _mm256_maskload_ps(c, last) : _mm256_loadu_ps(c))
                         : _mm256_setzero_ps();
            y = _mm256_fmadd_ps(va, acc[r][v], y);
            if (m)
                _mm256_maskstore_ps(o, last, y);
            else
                _mm256_storeu_ps(o, y);
        }
}

/* mr_gemm_micro8 over all N rows of one block of NV x 8 columns: six rows at a time, the
 * rest (1 to 5) in one call */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
mr_gemm_rows8(float *out, int ldo, const float *A, int lda, int aks, const float *B, int ldb,
              int K, float alpha, const float *bias, int add, int N, const int NV, const int MB,
              const int MS, __m256i last)
{
    int n = 0;
    for (; n + 6 <= N; n += 6)
        mr_gemm_micro8(out + (size_t)n * ldo, ldo, A + (size_t)n * lda, lda, aks, B, ldb, K,
                       alpha, bias, add, 6, NV, MB, MS, last);
    float *o = out + (size_t)n * ldo;
    const float *a = A + (size_t)n * lda;
    switch (N - n) {
#define MR_GEMM_REST8(R)                                                                    \
    case R:                                                                                 \
        mr_gemm_micro8(o, ldo, a, lda, aks, B, ldb, K, alpha, bias, add, R, NV, MB, MS, last); \
        break;
        MR_GEMM_REST8(1) MR_GEMM_REST8(2) MR_GEMM_REST8(3) MR_GEMM_REST8(4) MR_GEMM_REST8(5)
#undef MR_GEMM_REST8
    default: break;
    }
}

/* mr_gemm_avx512 on mr_gemm_micro8 (the same arguments, the same bits), in blocks of 16
 * columns (the last block 8 or fewer, or 9 to 15, masked) */
MR_AVX2_TARGET static inline void mr_gemm_avx2(float *out, int ldo, const float *A, int lda,
                                               int aks, const float *B, int ldb, int N, int K,
                                               int OC, float alpha, const float *bias, int add)
{
    for (int j = 0; j < OC; j += 16) {
        int left = OC - j, lc = left > 8 ? left - 8 : left;
        int full = lc >= 8;
        __m256i last = mr_mask8(full ? 8 : lc);
        const float *bj = bias ? bias + j : NULL;
        float *o = out + j;
        const float *b = B + j;
        if (left > 8) {
            if (full)
                mr_gemm_rows8(o, ldo, A, lda, aks, b, ldb, K, alpha, bj, add, N, 2, 0, 0, last);
            else
                mr_gemm_rows8(o, ldo, A, lda, aks, b, ldb, K, alpha, bj, add, N, 2, 1, 1, last);
        } else if (full) {
            mr_gemm_rows8(o, ldo, A, lda, aks, b, ldb, K, alpha, bj, add, N, 1, 0, 0, last);
        } else {
            mr_gemm_rows8(o, ldo, A, lda, aks, b, ldb, K, alpha, bj, add, N, 1, 1, 1, last);
        }
    }
}
#endif

/* The attention forward (mr_ops.c) and backward (mr_ops_grad.c) run a head's GEMMs on
 * mr_gemm_avx512 or mr_gemm_avx2 up to this many positions and head dimensions: K^T or
 * V^T of a head, [hd][T], on the stack */
#define MR_ATT_KERNEL_MAX_T 128
#define MR_ATT_KERNEL_MAX_HD 64

/* the type of mr_gemm_avx512 and mr_gemm_avx2: the attention's bodies take the one the
 * CPU runs */
typedef void mr_gemm_fn(float *out, int ldo, const float *A, int lda, int aks, const float *B,
                        int ldb, int N, int K, int OC, float alpha, const float *bias, int add);
/* mr_gemm_avx512 where mr_simd_avx512(), mr_gemm_avx2 where mr_simd_avx2() (analysis/
 * mr_ops.h), for T <= MR_ATT_KERNEL_MAX_T positions and hd <= MR_ATT_KERNEL_MAX_HD head
 * dimensions; else NULL (OpenBLAS's path). In analysis/mr_ops.c. */
mr_gemm_fn *mr_attention_gemm(int T, int hd);

/* The softmax kernels' AVX2 helpers (analysis/mr_ops.c): an AVX-512 vector of 16 lanes
 * is held as two 8-lane halves, and every lane sees the operations the AVX-512 kernels
 * apply, in their order, so the AVX2 kernels give the AVX-512 kernels' bits
 * (tests/test_ops.c compares them with memcmp on CPUs that have both). */
#ifdef MR_AVX2
/* mr_exp_ps16 in 8 lanes, the same bits for x <= 43 or NaN (the softmax's s - max s <= 0):
 * the same clamp, Cody-Waite reduction and polynomial; 2^n (n = -150 .. 63) without
 * vscalefps as two products, q 2^(n + 64) (exact: a normal float, q in [0.7, 1.5)) and
 * then 2^-64, which rounds once, as vscalefps does, where the result is subnormal (or 0).
 * A NaN x: n's conversion gives 2^64 and the NaN passes through both products. */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256 mr_exp_ps8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x); /* max(c, NaN) = NaN */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 q = _mm256_set1_ps(1.9875691500e-4f);
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.3981999507e-3f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.3334519073e-3f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.1665795894e-2f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.6666665459e-1f));
    q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(5.0000001201e-1f));
    q = _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r);
    __m256 y = _mm256_add_ps(q, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127 + 64)), 23);
    return _mm256_mul_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), _mm256_set1_ps(0x1p-64f));
}

/* GCC's _mm512_reduce_max_ps of the 16-lane vector (lo, hi): the same operands in the
 * same places (max is not commutative for signed zeros and NaN) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) float mr_reduce_max_ps16(__m256 lo,
                                                                                    __m256 hi)
{
    __m256 t3 = _mm256_max_ps(hi, lo);
    __m128 t6 = _mm_max_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
    __m128 t8 = _mm_max_ps(t6, _mm_permute_ps(t6, 0x4e)); /* lanes 2, 3, 0, 1 */
    __m128 t10 = _mm_max_ps(t8, _mm_permute_ps(t8, 0x11)); /* lanes 1, 0, 1, 0 */
    return _mm_cvtss_f32(t10);
}

/* GCC's _mm512_reduce_add_pd of the 8-double vector (lo, hi) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) double mr_reduce_add_pd8(__m256d lo,
                                                                                    __m256d hi)
{
    __m256d t3 = _mm256_add_pd(hi, lo);
    __m128d t6 = _mm_add_pd(_mm256_extractf128_pd(t3, 1), _mm256_castpd256_pd128(t3));
    return _mm_cvtsd_f64(t6) + _mm_cvtsd_f64(_mm_unpackhi_pd(t6, t6));
}

/* sum + (CVT_LO(v) + CVT_HI(v)) of the AVX-512 kernels (a 16-float block v = (lo, hi)
 * widened to double and its halves added lane-wise into the 8-double sum (s0, s1)) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
mr_sum_ps16_pd8(__m256d *s0, __m256d *s1, __m256 lo, __m256 hi)
{
    *s0 = _mm256_add_pd(*s0, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(lo)),
                                           _mm256_cvtps_pd(_mm256_castps256_ps128(hi))));
    *s1 = _mm256_add_pd(*s1, _mm256_add_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)),
                                           _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1))));
}

/* reduce_add_pd(CVT_LO(v) + CVT_HI(v)) of the AVX-512 kernels for the 16-float vector
 * v = (lo, hi): lanes j and j + 8 added in double, then the 8 sums by GCC's tree */
MR_AVX2_TARGET static inline __attribute__((always_inline)) double mr_hsum_ps16(__m256 lo,
                                                                               __m256 hi)
{
    return mr_reduce_add_pd8(_mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(lo)),
                                           _mm256_cvtps_pd(_mm256_castps256_ps128(hi))),
                             _mm256_add_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1)),
                                           _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1))));
}

/* mr_log_pd8 in 4 lanes, the same bits for positive finite x (subnormals included) and
 * NaN for NaN: vgetmantpd / vgetexppd by the exponent field (a subnormal first scaled by
 * 2^54, exactly), the exponent converted to double exactly through 2^52 + e; then the
 * same operations. */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256d mr_log_pd4(__m256d x)
{
    const __m256d tiny = _mm256_cmp_pd(x, _mm256_set1_pd(0x1p-1022), _CMP_LT_OQ);
    __m256d xs = _mm256_blendv_pd(x, _mm256_mul_pd(x, _mm256_set1_pd(0x1p54)), tiny);
    __m256i b = _mm256_castpd_si256(xs);
    __m256d m = _mm256_castsi256_pd(_mm256_or_si256(
        _mm256_and_si256(b, _mm256_set1_epi64x(0x000fffffffffffffLL)), _mm256_set1_epi64x(0x3ff0000000000000LL)));
    __m256d e = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(b, 52),
                                                                  _mm256_set1_epi64x(0x4330000000000000LL))),
                              _mm256_set1_pd(0x1p52 + 1023.0)); /* the biased exponent - 1023 */
    e = _mm256_sub_pd(e, _mm256_and_pd(tiny, _mm256_set1_pd(54.0)));
    __m256d hi = _mm256_cmp_pd(m, _mm256_set1_pd(1.41421356237309504880), _CMP_GT_OQ);
    m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), hi); /* exact */
    e = _mm256_blendv_pd(e, _mm256_add_pd(e, _mm256_set1_pd(1.0)), hi);
    __m256d f = _mm256_sub_pd(m, _mm256_set1_pd(1.0)); /* exact (Sterbenz) */
    __m256d s = _mm256_div_pd(f, _mm256_add_pd(_mm256_set1_pd(2.0), f));
    __m256d z = _mm256_mul_pd(s, s), w = _mm256_mul_pd(z, z);
    __m256d t1 = _mm256_fmadd_pd(w, _mm256_set1_pd(1.531383769920937332e-01), _mm256_set1_pd(2.222219843214978396e-01));
    t1 = _mm256_fmadd_pd(w, t1, _mm256_set1_pd(3.999999999940941908e-01));
    t1 = _mm256_mul_pd(w, t1);
    __m256d t2 = _mm256_fmadd_pd(w, _mm256_set1_pd(1.479819860511658591e-01), _mm256_set1_pd(1.818357216161805012e-01));
    t2 = _mm256_fmadd_pd(w, t2, _mm256_set1_pd(2.857142874366239149e-01));
    t2 = _mm256_fmadd_pd(w, t2, _mm256_set1_pd(6.666666666666735130e-01));
    t2 = _mm256_mul_pd(z, t2);
    __m256d R = _mm256_add_pd(t1, t2);
    __m256d hfsq = _mm256_mul_pd(_mm256_set1_pd(0.5), _mm256_mul_pd(f, f));
    __m256d lo = _mm256_fmadd_pd(s, _mm256_add_pd(hfsq, R), _mm256_mul_pd(e, _mm256_set1_pd(1.90821492927058770002e-10)));
    __m256d r = _mm256_sub_pd(_mm256_sub_pd(hfsq, lo), f);
    r = _mm256_fmsub_pd(e, _mm256_set1_pd(6.93147180369123816490e-01), r);
    return _mm256_blendv_pd(r, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q)); /* NaN: NaN */
}

/* lanes i < n of 8 (n <= 0: none, n >= 8: all) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256i mr_lanes_below8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
}
#endif

/* erf(x) by Abramowitz & Stegun, Handbook of Mathematical Functions, 7.1.28:
 *   erf(x) = 1 - (1 + a1 x + a2 x^2 + ... + a6 x^6)^-16,  x >= 0,  |error| <= 3e-7
 * and erf(-x) = -erf(x). glibc's erff is scalar and was a third of the engine's time
 * (perf, docs/performance.md); this form has no branches or table lookups, so the GELU
 * loops (forward and backward) vectorize. 3e-7 absolute in erf moves a GELU output by at most 1.5e-7 |x|, far
 * inside the parity tolerance against PyTorch (tested in tests/test_ops.c). */
static inline float erf_as(float x)
{
    /* in double: the 16th power multiplies float's relative rounding error by 16, which
     * near x = 0 (where 1 - r cancels) would cost 1.7e-6 */
    const double a1 = 0.0705230784, a2 = 0.0422820123, a3 = 0.0092705272, a4 = 0.0001520143,
                 a5 = 0.0002765672, a6 = 0.0000430638;
    double t = fabs((double)x);
    double p = 1.0 + t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * (a5 + t * a6)))));
    double r = 1.0 / p;
    r = r * r; /* ^-2 */
    r = r * r; /* ^-4 */
    r = r * r; /* ^-8 */
    r = r * r; /* ^-16 */
    return (float)copysign(1.0 - r, (double)x);
}

/* glibc's libmvec provides vector versions of expf (_ZGV*_expf, at most 4 ulp, glibc
 * manual "Known Maximum Errors in Math Functions"); glibc's <math.h> declares them only
 * under -ffast-math, which this project does not use (it would defeat the NaN checks).
 * Declaring the simd variant here lets the softmax and GELU loops call them: the scalar expf was a
 * quarter of the Fashion-MNIST forward (perf, docs/performance.md). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
float expf(float) __attribute__((simd("notinbranch")));
float logf(float) __attribute__((simd("notinbranch")));
/* log in double (at most 4 ulp, the same manual): the routing entropy's 64 logs per token
 * were a quarter of `moe-robust analyze` on an OLMoE-sized trace (docs/performance.md) */
double log(double) __attribute__((simd("notinbranch")));
#endif

#endif
