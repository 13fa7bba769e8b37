#include "mr_ops_grad.h"

#include <gsl/gsl_cblas.h>
#include <math.h>

#include "mr_model.h"
#include "mr_ops.h"
#include "mr_simd.h"

/* One row of LayerNorm's input gradient given the row's mean and 1 / std: with
 * xhat = (x - mean) rstd and g = dy w (the gradient of xhat):
 * dx += rstd (g - mean(g) - xhat mean(g xhat)). Inlined into both backward kernels. */
static inline __attribute__((always_inline)) void
layernorm_backward_row(float *dx, const float *dy, const float *x, const float *w, double mean,
                       double rstd, int C)
{
    double mg = 0.0, mgx = 0.0;
#pragma omp simd reduction(+ : mg, mgx)
    for (int i = 0; i < C; i++) {
        double g = (double)dy[i] * w[i];
        mg += g;
        mgx += g * (x[i] - mean) * rstd;
    }
    mg /= C;
    mgx /= C;
#pragma omp simd
    for (int i = 0; i < C; i++) {
        double xh = (x[i] - mean) * rstd, g = (double)dy[i] * w[i];
        dx[i] += (float)(rstd * (g - mg - xh * mgx));
    }
}

/* The sums as vector reductions in double (an AVX-512 clone too: the scalar loops were
 * 8 % of a PGD attack's CPU time, docs/performance.md); their order is fixed by the loop
 * shape and the CPU, never by threads. */
MR_VECTOR_CLONES_512
void mr_layernorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                           int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        /* the forward's statistics (mr_layernorm_forward), recomputed the same way */
        double mean = 0.0, var = 0.0;
#pragma omp simd reduction(+ : mean)
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= C;
#pragma omp simd reduction(+ : var)
        for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= C;
        double rstd = 1.0 / sqrt(var + (double)eps);
        layernorm_backward_row(dinp + (size_t)n * C, dout + (size_t)n * C, x, w, mean, rstd, C);
    }
}

/* mr_layernorm_backward from the forward's statistics (mr_layernorm_forward_keep): its
 * last two passes only, the same floats (its first two recomputed the mean and the
 * variance: about half of LayerNorm's backward, 6 % of a PGD attack, docs/performance.md;
 * test_ops compares the two) */
MR_VECTOR_CLONES_512
void mr_layernorm_backward_stats(float *dinp, const float *dout, const float *inp,
                                 const float *w, const double *stats, int N, int C)
{
    for (int n = 0; n < N; n++)
        layernorm_backward_row(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C,
                               w, stats[2 * (size_t)n], stats[2 * (size_t)n + 1], C);
}

static void linear_backward(float *dinp, const float *dout, const float *weight, int N, int C,
                            int OC, int add)
{
    if (N == 0) return;
    /* dinp[N, C] (+)= dout[N, OC] weight[OC, C]: weight's rows are the micro-kernel's B
     * as they are (no packing); up to 1024 outputs (rows of B), beyond them OpenBLAS */
#ifdef MR_AVX512
    if (OC <= 1024 && mr_simd_avx512()) {
        mr_gemm_avx512(dinp, C, dout, OC, 1, weight, C, N, OC, C, 1.0f, NULL, add);
        return;
    }
#endif
#ifdef MR_AVX2
    if (OC <= 1024 && mr_simd_avx2()) { /* the same bits on CPUs without AVX-512 */
        mr_gemm_avx2(dinp, C, dout, OC, 1, weight, C, N, OC, C, 1.0f, NULL, add);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                add ? 1.0f : 0.0f, dinp, C);
}

void mr_linear_backward(float *dinp, const float *dout, const float *weight, int N, int C,
                        int OC)
{
    linear_backward(dinp, dout, weight, N, C, OC, 1);
}

/* the memset before each mr_linear_backward of a fresh buffer was 3.8 % of a PGD cell */
void mr_linear_backward_set(float *dinp, const float *dout, const float *weight, int N, int C,
                            int OC)
{
    linear_backward(dinp, dout, weight, N, C, OC, 0);
}

/* each element alone (no reduction): an AVX-512 clone as mr_gelu_forward's */
MR_VECTOR_CLONES_512
static void gelu_backward(float *d, const float *pre, size_t n)
{
    /* d/dx [x Phi(x)] = Phi(x) + x phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2, with the
     * forward's erf (float: within 1e-7 relative of the exact derivative) */
    const float inv_sqrt2 = 0.70710678118654752440f, inv_sqrt2pi = 0.39894228040143267794f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = pre[i];
        float cdf = 0.5f * (1.0f + erf_as(x * inv_sqrt2));
        d[i] *= cdf + x * (inv_sqrt2pi * expf(-0.5f * x * x));
    }
}

/* gelu_backward with Phi(x) from the forward (mr_gelu_forward_keep): the same floats
 * without the erf (its double polynomial and division were most of gelu_backward's
 * time, 5.7 % of a PGD attack grid, docs/performance.md) */
MR_VECTOR_CLONES_512
void mr_gelu_backward_cdf(float *restrict d, const float *restrict pre,
                          const float *restrict cdf, size_t n)
{
    const float inv_sqrt2pi = 0.39894228040143267794f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = pre[i];
        d[i] *= cdf[i] + x * (inv_sqrt2pi * expf(-0.5f * x * x));
    }
}

void mr_activation_backward(float *d, const float *pre, size_t n, int act)
{
    if (act == MR_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            if (!(pre[i] > 0.0f)) d[i] = 0.0f;
        return;
    }
    gelu_backward(d, pre, n);
}

void mr_softmax_rows_backward(float *dx, const float *dy, const float *y, int N, int C)
{
    for (int n = 0; n < N; n++) {
        const float *yr = y + (size_t)n * C, *g = dy + (size_t)n * C;
        float *o = dx + (size_t)n * C;
        double s = 0.0;
        for (int i = 0; i < C; i++) s += (double)g[i] * yr[i];
        for (int i = 0; i < C; i++) o[i] += (float)(yr[i] * (g[i] - s));
    }
}

MR_VECTOR_CLONES_512
static void add_rows(float *restrict a, const float *restrict b, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

/* g[t] = y[t] * (g[t] - sum_j g[t][j] y[t][j]) per row of the first `rows` rows of
 * [T, T], the sum in double as a vector reduction (the scalar loops were 4 % of a PGD
 * attack, docs/performance.md) */
MR_VECTOR_CLONES_512
static void softmax_square_backward(float *restrict dA, const float *restrict a, int rows,
                                    int T)
{
    for (int t = 0; t < rows; t++) {
        float *g = dA + (size_t)t * T;
        const float *y = a + (size_t)t * T;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < T; j++) s += (double)g[j] * y[j];
#pragma omp simd
        for (int j = 0; j < T; j++) g[j] = (float)(y[j] * (g[j] - s));
    }
}

/* mr_attention_backward by the forward's micro-kernel `gemm` (mr_attention_gemm,
 * mr_simd.h: up to the forward's sizes) */
static void attention_backward_kernel(mr_gemm_fn *gemm, float *dqkv, const float *dout,
                                      const float *qkv, const float *att,
                                      const float *datt_extra, int B, int T, int C, int NH,
                                      float scale, float *dA)
{
    int hs = C / NH;
    float vt[MR_ATT_KERNEL_MAX_HD * MR_ATT_KERNEL_MAX_T] __attribute__((aligned(64)));
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * 3 * C;
        float *dbase = dqkv + (size_t)b * T * 3 * C;
        for (int h = 0; h < NH; h++) {
            const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
            float *dq = dbase + h * hs, *dk = dbase + C + h * hs, *dv = dbase + 2 * C + h * hs;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dO = dout + (size_t)b * T * C + h * hs; /* [T, hs], stride C */
            for (int t = 0; t < T; t++)
                for (int i = 0; i < hs; i++) vt[i * T + t] = v[(size_t)t * 3 * C + i];
            /* out = A V: dA = dO V^T, dV += A^T dO (A^T: lda 1, k stride T) */
            gemm(dA, T, dO, C, 1, vt, T, T, hs, T, 1.0f, NULL, 0);
            if (datt_extra)
                add_rows(dA, datt_extra + ((size_t)b * NH + h) * T * T, (size_t)T * T);
            gemm(dv, 3 * C, a, 1, T, dO, C, T, T, hs, 1.0f, NULL, 1);
            softmax_square_backward(dA, a, T, T);
            /* S = scale Q K^T: dQ += scale dA K, dK += scale dA^T Q */
            gemm(dq, 3 * C, dA, T, 1, k, 3 * C, T, T, hs, scale, NULL, 1);
            gemm(dk, 3 * C, dA, 1, T, q, 3 * C, T, T, hs, scale, NULL, 1);
        }
    }
}

/* attention_backward_kernel for a dout whose rows other than each sequence's first are
 * zero: dA = dO V^T and its softmax backward of row 0 only, dV += A^T dO and
 * dK += scale dA^T Q over t = 0 only (the other terms are products with zeros), dQ of
 * row 0 only (the other rows' are zero). The same floats as the whole products (each
 * output the same chain of fused multiply-adds less its trailing exact zeros), up to
 * the sign of a zero. */
static void attention_backward_row0_kernel(mr_gemm_fn *gemm, float *dqkv, const float *dout,
                                           const float *qkv, const float *att, int B, int T,
                                           int C, int NH, float scale, float *dA)
{
    int hs = C / NH;
    float vt[MR_ATT_KERNEL_MAX_HD * MR_ATT_KERNEL_MAX_T] __attribute__((aligned(64)));
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * 3 * C;
        float *dbase = dqkv + (size_t)b * T * 3 * C;
        for (int h = 0; h < NH; h++) {
            const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
            float *dq = dbase + h * hs, *dk = dbase + C + h * hs, *dv = dbase + 2 * C + h * hs;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dO = dout + (size_t)b * T * C + h * hs; /* row 0 of [T, hs] */
            for (int t = 0; t < T; t++)
                for (int i = 0; i < hs; i++) vt[i * T + t] = v[(size_t)t * 3 * C + i];
            gemm(dA, T, dO, C, 1, vt, T, 1, hs, T, 1.0f, NULL, 0);
            gemm(dv, 3 * C, a, 1, T, dO, C, T, 1, hs, 1.0f, NULL, 1);
            softmax_square_backward(dA, a, 1, T);
            gemm(dq, 3 * C, dA, T, 1, k, 3 * C, 1, T, hs, scale, NULL, 1);
            gemm(dk, 3 * C, dA, 1, T, q, 3 * C, T, 1, hs, scale, NULL, 1);
        }
    }
}

void mr_attention_backward_row0(float *dqkv, const float *dout, const float *qkv,
                                const float *att, int B, int T, int C, int NH, float *scratch)
{
    int hs = C / NH;
    mr_gemm_fn *gemm = mr_attention_gemm(T, hs);
    if (gemm) {
        attention_backward_row0_kernel(gemm, dqkv, dout, qkv, att, B, T, C, NH,
                                       1.0f / sqrtf((float)hs), scratch);
        return;
    }
    mr_attention_backward(dqkv, dout, qkv, att, NULL, B, T, C, NH, scratch);
}

void mr_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                           const float *datt_extra, int B, int T, int C, int NH,
                           float *scratch)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs); /* as the forward computes it */
    float *dA = scratch;                   /* [T, T] */
    mr_gemm_fn *gemm = mr_attention_gemm(T, hs);
    if (gemm) {
        attention_backward_kernel(gemm, dqkv, dout, qkv, att, datt_extra, B, T, C, NH, scale, dA);
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * 3 * C;
        float *dbase = dqkv + (size_t)b * T * 3 * C;
        for (int h = 0; h < NH; h++) {
            const float *q = base + h * hs, *k = base + C + h * hs, *v = base + 2 * C + h * hs;
            float *dq = dbase + h * hs, *dk = dbase + C + h * hs, *dv = dbase + 2 * C + h * hs;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dO = dout + (size_t)b * T * C + h * hs; /* [T, hs], stride C */
            /* out = A V: dA = dO V^T, dV += A^T dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, v,
                        3 * C, 0.0f, dA, T);
            if (datt_extra)
                add_rows(dA, datt_extra + ((size_t)b * NH + h) * T * T, (size_t)T * T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, dO, C,
                        1.0f, dv, 3 * C);
            /* A = softmax(scale Q K^T) per row (masked entries are 0 and stay 0) */
            softmax_square_backward(dA, a, T, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, dA, T, k,
                        3 * C, 1.0f, dq, 3 * C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, dA, T, q,
                        3 * C, 1.0f, dk, 3 * C);
        }
    }
}
