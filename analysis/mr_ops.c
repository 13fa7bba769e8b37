#include "mr_ops.h"

#include "mr_simd.h"

#include <gsl/gsl_cblas.h>
#include <math.h>

MR_VECTOR_CLONES
void mr_layernorm_forward(float *out, const float *in, const float *w, const float *b,
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
#pragma omp simd
        for (int i = 0; i < C; i++) y[i] = (float)((x[i] - mean) * rstd) * w[i] + b[i];
    }
}

void mr_linear_forward(float *out, const float *in, const float *weight, const float *bias,
                       int N, int C, int OC)
{
    if (N == 0) return;
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

MR_VECTOR_CLONES
void mr_gelu_forward(float *x, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf_as(x[i] * inv_sqrt2));
}

void mr_relu_forward(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* softmax of x[0..n-1], entries n..len-1 set to 0 (the causal mask). Three loops with no
 * dependency between iterations but the reductions, so each vectorizes; the reductions'
 * order is fixed by the loop shape, so results do not depend on threads. */
MR_VECTOR_CLONES
static void softmax_prefix(float *x, int n, int len)
{
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] = expf(x[i] - mx);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < n; i++) sum += x[i];
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
    for (int i = n; i < len; i++) x[i] = 0.0f;
}

void mr_softmax_square(float *x, int T, int causal)
{
    for (int t = 0; t < T; t++) softmax_prefix(x + (size_t)t * T, causal ? t + 1 : T, T);
}

void mr_softmax_rows(float *x, int N, int C)
{
    for (int n = 0; n < N; n++) softmax_prefix(x + (size_t)n * C, C, C);
}

void mr_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C,
                          int NH, int causal)
{
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * 3 * C;
        for (int h = 0; h < NH; h++) {
            const float *q = base + h * hs;         /* [T, hs], row stride 3C */
            const float *k = base + C + h * hs;     /* [T, hs] */
            const float *v = base + 2 * C + h * hs; /* [T, hs] */
            float *a = att + ((size_t)b * NH + h) * T * T; /* [T, T] */
            /* scores = scale * Q K^T; the masked upper triangle is overwritten below */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, 3 * C, k,
                        3 * C, 0.0f, a, T);
            mr_softmax_square(a, T, causal);
            float *o = out + (size_t)b * T * C + h * hs; /* [T, hs], row stride C */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v,
                        3 * C, 0.0f, o, C);
        }
    }
}

double mr_entropy(const float *p, int n)
{
    double h = 0.0;
    for (int i = 0; i < n; i++)
        if (p[i] > 0.0f) h -= (double)p[i] * log((double)p[i]);
    return h;
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
