/* Known-answer tests of the forward kernels (analysis/mr_ops.c). */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS: the guard pages of gemm_avx2_same_bits */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gsl/gsl_cblas.h>

#include "analysis/mr_ops.h"
#include "analysis/mr_ops_grad.h"
#include "analysis/mr_lanes.h"
#include "analysis/mr_router.h"
#include "analysis/mr_simd.h"
#include "mr_test_util.h"

START_TEST(layernorm_normalizes)
{
    float in[2 * 4] = {1, 2, 3, 4, -5, 0, 5, 10};
    float w[4] = {1, 1, 1, 1}, b[4] = {0, 0, 0, 0}, out[8];
    mr_layernorm_forward(out, in, w, b, 2, 4, 1e-5f);
    for (int n = 0; n < 2; n++) {
        double mean = 0, var = 0;
        for (int i = 0; i < 4; i++) mean += out[n * 4 + i];
        mean /= 4;
        for (int i = 0; i < 4; i++) var += (out[n * 4 + i] - mean) * (out[n * 4 + i] - mean);
        var /= 4;
        ck_assert_double_le(fabs(mean), 1e-6);
        ck_assert_double_le(fabs(var - 1.0), 1e-4);
    }
    /* row 0: x - 2.5 over std sqrt(1.25 + eps) */
    ck_assert_float_eq_tol(out[0], (float)(-1.5 / sqrt(1.25 + 1e-5)), 1e-6f);
    /* affine part */
    float w2[4] = {2, 2, 2, 2}, b2[4] = {1, 1, 1, 1}, out2[8];
    mr_layernorm_forward(out2, in, w2, b2, 2, 4, 1e-5f);
    for (int i = 0; i < 8; i++) ck_assert_float_eq_tol(out2[i], 2 * out[i] + 1, 1e-6f);
}
END_TEST

START_TEST(linear_matches_naive)
{
    enum { N = 5, C = 7, OC = 3 };
    float in[N * C], w[OC * C], bias[OC], out[N * OC];
    for (int i = 0; i < N * C; i++) in[i] = sinf((float)i);
    for (int i = 0; i < OC * C; i++) w[i] = cosf((float)i * 0.7f);
    for (int i = 0; i < OC; i++) bias[i] = (float)i - 1.0f;
    mr_linear_forward(out, in, w, bias, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = bias[o];
            for (int c = 0; c < C; c++) s += (double)in[n * C + c] * w[o * C + c];
            ck_assert_double_le(fabs(out[n * OC + o] - s), 1e-5);
        }
}
END_TEST

/* The bias as the GEMM's C (mr_linear_forward, up to 128 input features) gives the floats
 * of the product and then the bias added, bit for bit, at the demo models' layer widths
 * (5 images of 32 tokens: 160 rows) and around the threshold (a threshold of 256 fails
 * here under OpenBLAS's Prescott kernels); above it the bias is added after the product. */
START_TEST(linear_bias_in_gemm_is_bit_identical)
{
    /* OpenBLAS's path (the micro-kernels: linear_avx512_kernel, linear_avx2_same_bits) */
    mr_simd_avx512_set(0);
    mr_simd_avx2_set(0);
    static const int Ns[] = {1, 7, 50, 160}, Cs[] = {1, 16, 64, 96, 127, 128, 129, 256},
                     OCs[] = {1, 10, 16, 64, 192};
    enum { MAXN = 160, MAXC = 256, MAXO = 192 };
    float *in = malloc(sizeof(float) * MAXN * MAXC), *w = malloc(sizeof(float) * MAXO * MAXC),
          *bias = malloc(sizeof(float) * MAXO), *out = malloc(sizeof(float) * MAXN * MAXO),
          *ref = malloc(sizeof(float) * MAXN * MAXO);
    ck_assert(in && w && bias && out && ref);
    for (int i = 0; i < MAXN * MAXC; i++) in[i] = sinf(0.37f * (float)i) * (i % 7 ? 1.0f : 50.0f);
    for (int i = 0; i < MAXO * MAXC; i++) w[i] = cosf(0.91f * (float)i) * 0.3f;
    for (int i = 0; i < MAXO; i++) bias[i] = sinf((float)i) * 2.0f;
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t c = 0; c < sizeof Cs / sizeof *Cs; c++)
            for (size_t o = 0; o < sizeof OCs / sizeof *OCs; o++) {
                int N = Ns[a], C = Cs[c], OC = OCs[o];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, in, C, w, C,
                            0.0f, ref, OC);
                for (int n = 0; n < N; n++)
                    for (int j = 0; j < OC; j++) ref[(size_t)n * OC + j] += bias[j];
                mr_linear_forward(out, in, w, bias, N, C, OC);
                if (memcmp(out, ref, sizeof(float) * N * OC) != 0)
                    ck_abort_msg("N=%d C=%d OC=%d: not the product plus the bias bit for bit", N,
                                 C, OC);
            }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    free(in);
    free(w);
    free(bias);
    free(out);
    free(ref);
}
END_TEST

/* mr_linear_forward and mr_linear_backward on all three paths (the micro-kernel of
 * mr_simd.h up to 512 input features, resp. 1024 outputs: mr_gemm_micro on CPUs with
 * AVX-512, mr_gemm_micro8 on CPUs with AVX2 and FMA; OpenBLAS otherwise, and
 * MR_SIMD=portable's path) against the sums in double: within the float rounding of a chain of C
 * fused multiply-adds (C x 6e-8 of the sum of the terms' magnitudes; rows in and at the
 * end of the 8-row blocks); row counts around
 * the kernel's 8-row blocks, column counts around its 16- and 32-column blocks, input
 * widths past both limits, with and without the bias; and in the kernel every row's bits
 * the same whether it is computed alone or with the others (OpenBLAS blocks rows). */
START_TEST(linear_avx512_kernel)
{
    int cpu = mr_simd_avx512();
    static const int Ns[] = {1, 7, 9, 50, 160}, Cs[] = {1, 16, 96, 129, 512, 600},
                     OCs[] = {1, 10, 17, 32, 33, 64, 192, 1030};
    enum { MAXN = 160, MAXC = 600, MAXO = 1030 };
    float *in = malloc(sizeof(float) * MAXN * MAXC), *w = malloc(sizeof(float) * MAXO * MAXC),
          *bias = malloc(sizeof(float) * MAXO), *out = malloc(sizeof(float) * MAXN * MAXO),
          *one = malloc(sizeof(float) * MAXO), *dout = malloc(sizeof(float) * MAXN * MAXO),
          *dinp = malloc(sizeof(float) * MAXN * MAXC), *dref = malloc(sizeof(float) * MAXC);
    ck_assert(in && w && bias && out && one && dout && dinp && dref);
    for (int i = 0; i < MAXN * MAXC; i++) in[i] = sinf(0.37f * (float)i) * (i % 7 ? 1.0f : 50.0f);
    for (int i = 0; i < MAXO * MAXC; i++) w[i] = cosf(0.91f * (float)i) * 0.3f;
    for (int i = 0; i < MAXO; i++) bias[i] = sinf((float)i) * 2.0f;
    for (int i = 0; i < MAXN * MAXO; i++) dout[i] = cosf(0.53f * (float)i) * (i % 5 ? 1.0f : 9.0f);
    for (int path = 0; path < 3; path++) { /* AVX-512 (where the CPU has it), AVX2, portable */
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path < 2);
        int kernel = mr_simd_avx512() || mr_simd_avx2(); /* not OpenBLAS */
        for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
            for (size_t c = 0; c < sizeof Cs / sizeof *Cs; c++)
                for (size_t o = 0; o < sizeof OCs / sizeof *OCs; o++) {
                    int N = Ns[a], C = Cs[c], OC = OCs[o];
                    if ((OC == 1030 && (N > 9 || C > 16)) || (N == 160 && (C > 96 || OC > 64)))
                        continue; /* the widest cases: small */
                    const float *b = (a + c + o) % 3 ? bias : NULL;
                    mr_linear_forward(out, in, w, b, N, C, OC);
                    for (int n = 0; n < N; n++) {
                        if (n % 8 != 1 && n % 8 != 7 && n != N - 1) continue; /* rows of both */
                        for (int j = 0; j < OC; j++) {
                            double s = b ? b[j] : 0.0, mag = b ? fabs(b[j]) : 0.0;
                            for (int k = 0; k < C; k++) {
                                double t = (double)in[(size_t)n * C + k] * w[(size_t)j * C + k];
                                s += t;
                                mag += fabs(t);
                            }
                            double got = out[(size_t)n * OC + j];
                            if (!(fabs(got - s) <= (C + 1) * 6e-8 * mag + 1e-30))
                                ck_abort_msg("path %d N=%d C=%d OC=%d: out[%d][%d] = %.9g, "
                                             "expected %.9g", path, N, C, OC, n, j, got, s);
                        }
                        if (!(kernel && C <= 512)) continue;
                        mr_linear_forward(one, in + (size_t)n * C, w, b, 1, C, OC);
                        if (memcmp(one, out + (size_t)n * OC, sizeof(float) * OC) != 0)
                            ck_abort_msg("path %d N=%d C=%d OC=%d: row %d alone differs", path, N,
                                         C, OC, n);
                    }
                    /* the backward: dinp[N, C] += dout[N, OC] w[OC, C] */
                    for (int i = 0; i < N * C; i++) dinp[i] = (float)(i % 3) - 1.0f;
                    mr_linear_backward(dinp, dout, w, N, C, OC);
                    for (int n = 0; n < N; n++) {
                        if (n % 8 != 1 && n % 8 != 7 && n != N - 1) continue;
                        for (int k = 0; k < C; k++) {
                            double s = (double)((n * C + k) % 3) - 1.0, mag = fabs(s);
                            for (int j = 0; j < OC; j++) {
                                double t = (double)dout[(size_t)n * OC + j] * w[(size_t)j * C + k];
                                s += t;
                                mag += fabs(t);
                            }
                            double got = dinp[(size_t)n * C + k];
                            if (!(fabs(got - s) <= (OC + 1) * 6e-8 * mag + 1e-30))
                                ck_abort_msg("path %d N=%d C=%d OC=%d: dinp[%d][%d] = %.9g, "
                                             "expected %.9g", path, N, C, OC, n, k, got, s);
                        }
                        if (!(kernel && OC <= 1024)) continue;
                        for (int k = 0; k < C; k++) dref[k] = (float)((n * C + k) % 3) - 1.0f;
                        mr_linear_backward(dref, dout + (size_t)n * OC, w, 1, C, OC);
                        if (memcmp(dref, dinp + (size_t)n * C, sizeof(float) * C) != 0)
                            ck_abort_msg("path %d N=%d C=%d OC=%d: backward row %d alone differs",
                                         path, N, C, OC, n);
                    }
                }
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    ck_assert(cpu == mr_simd_avx512());
    free(in);
    free(w);
    free(bias);
    free(out);
    free(one);
    free(dout);
    free(dinp);
    free(dref);
}
END_TEST

/* The micro-kernels' arithmetic written out: each output one chain of fused multiply-adds
 * over k = 0..K-1 from 0 (A's element (r, k) at A[r lda + k aks], B[K, OC] with row stride
 * ldb), then one rounding with its addend: fmaf(alpha, acc, add ? out : bias or 0). */
static void gemm_fma_ref(float *out, int ldo, const float *A, int lda, int aks, const float *B,
                         int ldb, int N, int K, int OC, float alpha, const float *bias, int add)
{
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OC; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc = fmaf(A[(size_t)n * lda + (size_t)k * aks], B[(size_t)k * ldb + j], acc);
            float *o = out + (size_t)n * ldo + j;
            *o = fmaf(alpha, acc, add ? *o : bias ? bias[j] : 0.0f);
        }
}

#ifdef MR_AVX2
/* n floats that end where an unreadable page begins, in a mapping of its own (g->map) */
typedef struct {
    void *map;
    size_t size;
} guarded;

static float *at_guard(size_t n, guarded *g)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), data = (n * sizeof(float) + pg - 1) / pg * pg;
    g->size = data + pg;
    g->map = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(g->map != MAP_FAILED);
    ck_assert(mprotect((char *)g->map + data, pg, PROT_NONE) == 0);
    return (float *)((char *)g->map + data) - n;
}
#endif

/* mr_gemm_avx2 (mr_gemm_micro8: 6 rows x 16 columns) gives the bits of gemm_fma_ref and of
 * mr_gemm_avx512 (8 rows x 32 columns) where the CPU has AVX-512, memcmp: row counts
 * 1 to 14 and 20 (the remainders of both kernels' row blocks), column counts 1 to 17 and
 * around 24, 32, 48, 64 (full and masked last vectors of one and two), K of 1, 7 and 50,
 * row-major and transposed A, the three epilogues (add the output, add a bias, neither)
 * with alpha 1 and not; the outputs' columns past OC (NaN in the bias's and B's) are
 * neither written nor read into an output, and with B, the bias and the output ending at
 * an unreadable page no load or store touches a float past their last column. */
START_TEST(gemm_avx2_same_bits)
{
#ifdef MR_AVX2
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return;
    static const int Ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 20},
                     OCs[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                              17, 23, 24, 25, 31, 32, 33, 40, 47, 48, 49, 64, 72},
                     Ks[] = {1, 7, 50};
    enum { MAXN = 20, MAXK = 50, LD = 80 };
    float *A = malloc(sizeof(float) * MAXN * MAXK), *B = malloc(sizeof(float) * MAXK * LD),
          *bias = malloc(sizeof(float) * LD), *o[3];
    for (int p = 0; p < 3; p++) o[p] = malloc(sizeof(float) * MAXN * LD);
    ck_assert(A && B && bias && o[0] && o[1] && o[2]);
    for (int i = 0; i < MAXN * MAXK; i++) A[i] = sinf(0.37f * (float)i) * (i % 7 ? 1.0f : 50.0f);
    int cpu = mr_simd_avx512();
    (void)cpu; /* a build without the AVX-512 kernels (-DMR_AVX512=OFF) has no mr_gemm_avx512 */
    for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
        for (size_t oi = 0; oi < sizeof OCs / sizeof *OCs; oi++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                for (int trans = 0; trans < 2; trans++)
                    for (int form = 0; form < 3; form++) { /* add, bias, neither */
                        int N = Ns[ni], OC = OCs[oi], K = Ks[ki], add = form == 0;
                        int lda = trans ? 1 : K, aks = trans ? N : 1;
                        float alpha = (form + trans) % 2 ? 0.25f : 1.0f;
                        for (int k = 0; k < K; k++)
                            for (int j = 0; j < LD; j++)
                                B[k * LD + j] = j < OC ? cosf(0.91f * (float)(k * OC + j)) * 0.3f
                                                       : NAN;
                        for (int j = 0; j < LD; j++) bias[j] = j < OC ? sinf((float)j) * 2.0f : NAN;
                        for (int i = 0; i < N * LD; i++)
                            o[0][i] = o[1][i] = o[2][i] =
                                i % LD < OC ? cosf(0.53f * (float)i) : 1234.5f + (float)i;
                        const float *bs = form == 1 ? bias : NULL;
                        gemm_fma_ref(o[0], LD, A, lda, aks, B, LD, N, K, OC, alpha, bs, add);
                        mr_gemm_avx2(o[1], LD, A, lda, aks, B, LD, N, K, OC, alpha, bs, add);
#ifdef MR_AVX512
                        if (cpu)
                            mr_gemm_avx512(o[2], LD, A, lda, aks, B, LD, N, K, OC, alpha, bs, add);
                        else
#endif
                            memcpy(o[2], o[0], sizeof(float) * N * LD);
                        for (int p = 1; p < 3; p++)
                            if (memcmp(o[p], o[0], sizeof(float) * N * LD) != 0)
                                ck_abort_msg("%s N=%d OC=%d K=%d trans %d form %d: not the bits "
                                             "of the fused multiply-add chain",
                                             p == 1 ? "mr_gemm_avx2" : "mr_gemm_avx512", N, OC,
                                             K, trans, form);
                    }
    /* the operands' last columns against an unreadable page (B's rows and the output's
     * unpadded, ldb = ldo = OC): the masked loads and stores touch no float past them */
    for (int OC = 1; OC <= 17; OC++)
        for (int N = 1; N <= 7; N += 6)
            for (int form = 0; form < 3; form++) {
                int K = 3, add = form == 0;
                guarded gd[5];
                float *og[3], *Bg, *bg;
                for (int p = 0; p < 3; p++) og[p] = at_guard((size_t)N * OC, &gd[p]);
                Bg = at_guard((size_t)K * OC, &gd[3]);
                bg = at_guard((size_t)OC, &gd[4]);
                for (int p = 0; p < 3; p++)
                    for (int i = 0; i < N * OC; i++) og[p][i] = cosf(0.53f * (float)i);
                for (int i = 0; i < K * OC; i++) Bg[i] = cosf(0.91f * (float)i) * 0.3f;
                for (int j = 0; j < OC; j++) bg[j] = sinf((float)j) * 2.0f;
                const float *bs = form == 1 ? bg : NULL;
                gemm_fma_ref(og[0], OC, A, K, 1, Bg, OC, N, K, OC, 1.0f, bs, add);
                mr_gemm_avx2(og[1], OC, A, K, 1, Bg, OC, N, K, OC, 1.0f, bs, add);
#ifdef MR_AVX512
                if (cpu)
                    mr_gemm_avx512(og[2], OC, A, K, 1, Bg, OC, N, K, OC, 1.0f, bs, add);
                else
#endif
                    memcpy(og[2], og[0], sizeof(float) * N * OC);
                for (int p = 1; p < 3; p++)
                    if (memcmp(og[p], og[0], sizeof(float) * N * OC) != 0)
                        ck_abort_msg("against the guard page: kernel %d N=%d OC=%d form %d", p, N,
                                     OC, form);
                for (int p = 0; p < 5; p++) munmap(gd[p].map, gd[p].size);
            }
    free(A), free(B), free(bias), free(o[0]), free(o[1]), free(o[2]);
#endif
}
END_TEST

/* mr_linear_forward and mr_linear_backward(_set) on the AVX2 path (mr_simd_avx2: the
 * panel of 16 columns, transpose8, mr_gemm_micro8) give the bits of gemm_fma_ref on the
 * transposed weights (forward) and on the weights (backward), and of the AVX-512 path
 * where the CPU has it, memcmp: row counts around both kernels' row blocks, input widths
 * around the 8 x 8 transposes and up to the kernel's 512, output counts around its 8- and
 * 16-column vectors (the backward: up to its 1024), with the bias and without, the
 * backward adding to dinp and setting it. */
START_TEST(linear_avx2_same_bits)
{
    int cpu = mr_simd_avx512();
    mr_simd_avx512_set(0);
    int avx2 = mr_simd_avx2();
    mr_simd_avx512_set(1);
    if (!avx2) return; /* no such path on this compiler or CPU */
    static const int Ns[] = {1, 2, 5, 6, 7, 8, 9, 13, 50, 160},
                     Cs[] = {1, 7, 8, 9, 16, 17, 64, 96, 129, 512},
                     OCs[] = {1, 7, 8, 9, 10, 15, 16, 17, 24, 33, 64, 192, 1024};
    enum { MAXN = 160, MAXC = 512, MAXO = 1024 };
    float *in = malloc(sizeof(float) * MAXN * MAXC), *w = malloc(sizeof(float) * MAXO * MAXC),
          *wt = malloc(sizeof(float) * MAXO * MAXC), *bias = malloc(sizeof(float) * MAXO),
          *dout = malloc(sizeof(float) * MAXN * MAXO), *o[3], *d[3];
    for (int p = 0; p < 3; p++) {
        o[p] = malloc(sizeof(float) * MAXN * MAXO);
        d[p] = malloc(sizeof(float) * MAXN * MAXC);
    }
    ck_assert(in && w && wt && bias && dout && o[0] && o[1] && o[2] && d[0] && d[1] && d[2]);
    for (int i = 0; i < MAXN * MAXC; i++) in[i] = sinf(0.37f * (float)i) * (i % 7 ? 1.0f : 50.0f);
    for (int i = 0; i < MAXO * MAXC; i++) w[i] = cosf(0.91f * (float)i) * 0.3f;
    for (int i = 0; i < MAXO; i++) bias[i] = sinf((float)i) * 2.0f;
    for (int i = 0; i < MAXN * MAXO; i++) dout[i] = cosf(0.53f * (float)i) * (i % 5 ? 1.0f : 9.0f);
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t c = 0; c < sizeof Cs / sizeof *Cs; c++)
            for (size_t oc = 0; oc < sizeof OCs / sizeof *OCs; oc++) {
                int N = Ns[a], C = Cs[c], OC = OCs[oc];
                if ((N > 9 && (C > 96 || OC > 192)) || (OC > 192 && C > 17))
                    continue; /* the widest cases: small */
                const float *b = (a + c + oc) % 2 ? bias : NULL;
                for (int j = 0; j < OC; j++)
                    for (int k = 0; k < C; k++) wt[(size_t)k * OC + j] = w[(size_t)j * C + k];
                gemm_fma_ref(o[0], OC, in, C, 1, wt, OC, N, C, OC, 1.0f, b, 0);
                for (int i = 0; i < N * C; i++) d[0][i] = (float)(i % 3) - 1.0f;
                gemm_fma_ref(d[0], C, dout, OC, 1, w, C, N, OC, C, 1.0f, NULL, 1);
                for (int p = 1; p < 3; p++) {
                    if (p == 2 && !cpu) break;
                    mr_simd_avx512_set(p == 2);
                    mr_linear_forward(o[p], in, w, b, N, C, OC);
                    for (int i = 0; i < N * C; i++) d[p][i] = (float)(i % 3) - 1.0f;
                    mr_linear_backward(d[p], dout, w, N, C, OC);
                    const char *name = p == 1 ? "AVX2" : "AVX-512";
                    if (memcmp(o[p], o[0], sizeof(float) * N * OC) != 0)
                        ck_abort_msg("%s N=%d C=%d OC=%d bias %d: forward not the bits of the "
                                     "fused multiply-add chain", name, N, C, OC, b != NULL);
                    if (memcmp(d[p], d[0], sizeof(float) * N * C) != 0)
                        ck_abort_msg("%s N=%d C=%d OC=%d: backward not the bits of the fused "
                                     "multiply-add chain", name, N, C, OC);
                    for (int i = 0; i < N * C; i++) d[p][i] = NAN; /* _set: never read */
                    mr_linear_backward_set(d[p], dout, w, N, C, OC);
                    gemm_fma_ref(d[0], C, dout, OC, 1, w, C, N, OC, C, 1.0f, NULL, 0);
                    if (memcmp(d[p], d[0], sizeof(float) * N * C) != 0)
                        ck_abort_msg("%s N=%d C=%d OC=%d: backward_set not the bits of the "
                                     "fused multiply-add chain", name, N, C, OC);
                    for (int i = 0; i < N * C; i++) d[0][i] = (float)(i % 3) - 1.0f;
                    gemm_fma_ref(d[0], C, dout, OC, 1, w, C, N, OC, C, 1.0f, NULL, 1);
                }
                mr_simd_avx512_set(1);
            }
    ck_assert(cpu == mr_simd_avx512());
    free(in), free(w), free(wt), free(bias), free(dout);
    for (int p = 0; p < 3; p++) free(o[p]), free(d[p]);
}
END_TEST

START_TEST(gelu_and_relu_values)
{
    /* exact GELU: x * Phi(x); Phi(1) = 0.841344746, Phi(-1) = 0.158655254 */
    float x[4] = {0.0f, 1.0f, -1.0f, 3.0f};
    mr_gelu_forward(x, 4);
    ck_assert_float_eq_tol(x[0], 0.0f, 1e-7f);
    ck_assert_float_eq_tol(x[1], 0.841344746f, 1e-6f);
    ck_assert_float_eq_tol(x[2], -0.158655254f, 1e-6f);
    ck_assert_float_eq_tol(x[3], 2.995950f, 1e-5f);
    float y[3] = {-2.0f, 0.0f, 2.5f};
    mr_relu_forward(y, 3);
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_float_eq(y[2], 2.5f);
}
END_TEST

START_TEST(erf_within_3e7_of_libm)
{
    /* A&S 7.1.28 promises |error| <= 3e-7; float rounding adds a few 1e-8 */
    double worst = 0.0;
    for (int i = -80000; i <= 80000; i++) {
        float x = i * 1e-4f;
        worst = fmax(worst, fabs((double)mr_erf(x) - erf((double)x)));
    }
    printf("max |mr_erf - erf| on [-8, 8]: %.3g\n", worst);
    ck_assert_double_le(worst, 4e-7);
    ck_assert_float_eq(mr_erf(0.0f), 0.0f);
    ck_assert_float_eq(mr_erf(100.0f), 1.0f);
    ck_assert_float_eq(mr_erf(-100.0f), -1.0f);
    /* GELU against the exact double formula */
    float g[1] = {0};
    for (int i = -600; i <= 600; i++) {
        g[0] = i * 0.01f;
        double x = g[0], want = 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
        mr_gelu_forward(g, 1);
        ck_assert_double_le(fabs(g[0] - want), 2e-7 * fabs(x) + 1e-7);
    }
}
END_TEST

/* n floats ending where an unreadable page begins (at_guard) where the suite has its
 * intrinsics, else plain memory; *map and *size for guard_unbuf */
static float *guard_buf(size_t n, void **map, size_t *size)
{
#ifdef MR_AVX2
    guarded g;
    float *p = at_guard(n, &g);
    *map = g.map, *size = g.size;
    return p;
#else
    *size = 0;
    return *map = malloc((n ? n : 1) * sizeof(float));
#endif
}

static void guard_unbuf(void *map, size_t size)
{
#ifdef MR_AVX2
    munmap(map, size);
#else
    (void)size;
    free(map);
#endif
}

/* LayerNorm as the AVX-512 clone of layernorm_rows sums (analysis/mr_ops.c): 16 double
 * lanes, lane j the elements i = j mod 16 of the first C - C % 16, the rest added to lane
 * 0 in order, then 0 + lane 0 + ... + lane 15; the statistics as mr_layernorm_forward_keep
 * keeps them */
static void layernorm_ref16(float *y, double *st, const float *x, const float *w,
                            const float *b, int N, int C, float eps)
{
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        int C16 = C - C % 16;
        double l[16] = {0}, s = 0.0;
        for (int i = 0; i < C16; i++) l[i % 16] += (double)xr[i];
        for (int i = C16; i < C; i++) l[0] += (double)xr[i];
        for (int j = 0; j < 16; j++) s += l[j];
        double mean = s / (double)C;
        memset(l, 0, sizeof l);
        for (int i = 0; i < C16; i++) {
            double d = (double)xr[i] - mean;
            l[i % 16] += d * d;
        }
        for (int i = C16; i < C; i++) {
            double d = (double)xr[i] - mean;
            l[0] += d * d;
        }
        s = 0.0;
        for (int j = 0; j < 16; j++) s += l[j];
        double rstd = 1.0 / sqrt(s / (double)C + (double)eps);
        st[2 * n] = mean, st[2 * n + 1] = rstd;
        for (int i = 0; i < C; i++)
            y[(size_t)n * C + i] = (float)((xr[i] - mean) * rstd) * w[i] + b[i];
    }
}

/* mr_layernorm_forward and mr_layernorm_forward_keep on every path this CPU has give the
 * floats (and statistics) of layernorm_ref16, memcmp: the AVX2 kernel (four rows at a
 * time; it runs on AVX-512 CPUs too) always, the compiler's loops where their AVX-512
 * clone runs in an optimized build (elsewhere, and at -O0 where GCC does not vectorize
 * them: within 4 ulp, their own order). 1 to 9 rows (the groups of four
 * and their remainders), widths around the 16 lanes and the 8-float blocks, rows of a
 * large mean and small spread, constant rows (where eps is the variance), inputs,
 * weights, biases and outputs ending where an unreadable page begins. */
START_TEST(layernorm_kernels_same_bits)
{
    static const int Cs[] = {1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 96, 100, 128, 200};
    enum { MAXN = 9, MAXC = 200 };
    float *ref = malloc(sizeof(float) * MAXN * MAXC);
    double *sref = malloc(sizeof(double) * 2 * MAXN), *st = malloc(sizeof(double) * 2 * MAXN);
    ck_assert(ref && sref && st);
    int clone512 = 0; /* the compiler's loops sum in that order: their AVX-512 clone, optimized */
#if defined(MR_AVX512) && defined(__OPTIMIZE__)
    clone512 = __builtin_cpu_supports("avx512f");
#endif
    for (size_t ci = 0; ci < sizeof Cs / sizeof *Cs; ci++)
        for (int N = 1; N <= MAXN; N++) {
            int C = Cs[ci];
            size_t n = (size_t)N * C;
            void *mp[5];
            size_t sz[5];
            float *x = guard_buf(n, &mp[0], &sz[0]), *y = guard_buf(n, &mp[1], &sz[1]),
                  *yk = guard_buf(n, &mp[2], &sz[2]), *w = guard_buf((size_t)C, &mp[3], &sz[3]),
                  *b = guard_buf((size_t)C, &mp[4], &sz[4]);
            for (size_t i = 0; i < n; i++) {
                int r = (int)(i / (size_t)C);
                x[i] = r % 3 == 2 ? 1000.0f + 1e-3f * sinf(0.9f * (float)i)
                                  : sinf(0.731f * (float)i) * (i % 11 ? 3.0f : 9.0f) + 0.25f * (float)r;
                if (r == 4) x[i] = -2.5f; /* a constant row */
            }
            for (int i = 0; i < C; i++) w[i] = 0.5f + cosf((float)i), b[i] = sinf(2.0f * (float)i);
            layernorm_ref16(ref, sref, x, w, b, N, C, 1e-5f);
            for (int path = 0; path < 3; path++) {
                mr_simd_avx512_set(path == 0);
                mr_simd_avx2_set(path < 2);
                if ((path == 0 && !mr_simd_avx512()) || (path == 1 && !mr_simd_avx2())) continue;
                int exact = path < 2 ? (mr_simd_avx512() || mr_simd_avx2()) : clone512;
#ifndef MR_AVX2
                exact = 0; /* no intrinsics: the compiler's own loops everywhere */
#endif
                mr_layernorm_forward(y, x, w, b, N, C, 1e-5f);
                mr_layernorm_forward_keep(yk, st, x, w, b, N, C, 1e-5f);
                ck_assert_msg(memcmp(y, yk, n * sizeof *y) == 0,
                              "layernorm path %d N=%d C=%d: keep differs", path, N, C);
                for (size_t i = 0; i < n; i++) {
                    int same = memcmp(&y[i], &ref[i], sizeof *y) == 0;
                    if (exact ? !same : !(fabsf(y[i] - ref[i]) <= 5e-7f * fabsf(ref[i]) + 1e-6f))
                        ck_abort_msg("layernorm path %d N=%d C=%d: y[%zu] = %a, want %a", path,
                                     N, C, i, (double)y[i], (double)ref[i]);
                }
                if (exact && memcmp(st, sref, 2 * (size_t)N * sizeof *st) != 0)
                    ck_abort_msg("layernorm path %d N=%d C=%d: the statistics differ", path, N, C);
            }
            for (int k = 0; k < 5; k++) guard_unbuf(mp[k], sz[k]);
        }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    free(ref), free(sref), free(st);
}
END_TEST

/* The kept-statistics kernels of the input gradient (mr_grad.c) against the kernels
 * they replace there: GELU forward + its backward with the forward's Phi, LayerNorm
 * forward + its backward with the forward's mean and 1 / std. The same floats, every
 * length around the vector widths (whichever clone this CPU runs). */
START_TEST(kept_statistics_same_bits)
{
    enum { MAXN = 7, MAXC = 200 };
    static const int Cs[] = {1, 2, 7, 8, 15, 16, 17, 31, 33, 48, 63, 64, 65, 96, 127, 128, 130, 200};
    float *x = malloc(sizeof(float) * MAXN * MAXC), *y = malloc(sizeof(float) * MAXN * MAXC),
          *yk = malloc(sizeof(float) * MAXN * MAXC), *cdf = malloc(sizeof(float) * MAXN * MAXC),
          *d = malloc(sizeof(float) * MAXN * MAXC), *dk = malloc(sizeof(float) * MAXN * MAXC),
          *w = malloc(sizeof(float) * MAXC), *b = malloc(sizeof(float) * MAXC);
    double *st = malloc(sizeof(double) * 2 * MAXN);
    ck_assert(x && y && yk && cdf && d && dk && w && b && st);
    for (int i = 0; i < MAXN * MAXC; i++)
        x[i] = sinf(0.731f * (float)i) * (i % 11 ? 3.0f : 9.0f) + (i % 5 == 0 ? 0.5f : 0.0f);
    x[3] = 0.0f, x[4] = -0.0f, x[5] = 40.0f, x[6] = -40.0f, x[7] = 1e-30f;
    for (int i = 0; i < MAXC; i++) w[i] = 0.5f + cosf((float)i), b[i] = sinf(2.0f * (float)i);
    for (size_t ci = 0; ci < sizeof Cs / sizeof *Cs; ci++) {
        int C = Cs[ci];
        for (int N = 1; N <= MAXN; N += 3) {
            size_t n = (size_t)N * C;
            /* GELU */
            memcpy(y, x, n * sizeof *y);
            mr_gelu_forward(y, n);
            mr_gelu_forward_keep(yk, cdf, x, n);
            if (memcmp(y, yk, n * sizeof *y) != 0)
                ck_abort_msg("gelu keep: n=%zu: the forward differs", n);
            for (size_t i = 0; i < n; i++) d[i] = dk[i] = cosf(0.29f * (float)i) - 0.25f;
            mr_activation_backward(d, x, n, MR_ACT_GELU);
            mr_gelu_backward_cdf(dk, x, cdf, n);
            if (memcmp(d, dk, n * sizeof *d) != 0)
                ck_abort_msg("gelu backward with the kept Phi: n=%zu: differs", n);
            /* LayerNorm */
            mr_layernorm_forward(y, x, w, b, N, C, 1e-5f);
            mr_layernorm_forward_keep(yk, st, x, w, b, N, C, 1e-5f);
            if (memcmp(y, yk, n * sizeof *y) != 0)
                ck_abort_msg("layernorm keep: N=%d C=%d: the forward differs", N, C);
            for (size_t i = 0; i < n; i++) d[i] = dk[i] = sinf(0.17f * (float)i);
            mr_layernorm_backward(d, y, x, w, N, C, 1e-5f);
            mr_layernorm_backward_stats(dk, y, x, w, st, N, C);
            if (memcmp(d, dk, n * sizeof *d) != 0)
                ck_abort_msg("layernorm backward with the kept statistics: N=%d C=%d: differs",
                             N, C);
        }
    }
    free(x), free(y), free(yk), free(cdf), free(d), free(dk), free(w), free(b), free(st);
}
END_TEST

START_TEST(softmax_rows_sum_to_one)
{
    float x[2 * 3] = {1000.0f, 1000.0f, 1000.0f, 0.0f, 1.0f, 2.0f};
    mr_softmax_rows(x, 2, 3);
    for (int i = 0; i < 3; i++) ck_assert_float_eq_tol(x[i], 1.0f / 3, 1e-7f);
    double e0 = 1, e1 = exp(1.0), e2 = exp(2.0), s = e0 + e1 + e2;
    ck_assert_float_eq_tol(x[3], (float)(e0 / s), 1e-7f);
    ck_assert_float_eq_tol(x[5], (float)(e2 / s), 1e-7f);
}
END_TEST

/* mr_softmax_square on both paths: the loops vectorized with libmvec's expf (at most 4
 * ulp) and a vector sum, and on CPUs with AVX-512 the kernel with its inline exp that
 * takes four rows at a time in registers up to 64 columns and rows in memory beyond;
 * every length from 1 to 70 (and 130, 150) covers whole vectors, every tail length of
 * the 4-, 8- and 16-wide variants, the row counts around the four-row groups, causal and
 * full rows. Reference: the same softmax in double with libm's exp; a NaN in a row makes
 * that row NaN and leaves the others. */
START_TEST(softmax_matches_double_reference)
{
    enum { MAXN = 150 };
    static float x[MAXN * MAXN], ref_in[MAXN * MAXN];
    unsigned state = 12345u;
    for (int path = 0; path < 3; path++) { /* AVX-512, AVX2 (as the CPU has them), portable */
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path != 2);
        double worst = 0.0;
        for (int n = 1; n <= MAXN; n += n < 70 ? 1 : n < 130 ? 60 : 20)
            for (int causal = 0; causal < 2; causal++) {
                for (int i = 0; i < n * n; i++) {
                    state = state * 1664525u + 1013904223u;
                    x[i] = ((float)(state >> 8) / 16777216.0f - 0.5f) * 60.0f; /* [-30, 30) */
                }
                memcpy(ref_in, x, sizeof(float) * (size_t)n * n);
                mr_softmax_square(x, n, causal); /* causal row t: its first t + 1 entries */
                for (int t = 0; t < n; t++) {
                    const float *in = ref_in + (size_t)t * n;
                    int last = causal ? t : n - 1;
                    /* the max and the difference in float, as the kernel (and PyTorch) */
                    float mx = in[0];
                    for (int i = 1; i <= last; i++) mx = in[i] > mx ? in[i] : mx;
                    double sum = 0.0;
                    for (int i = 0; i <= last; i++) sum += exp((double)(in[i] - mx));
                    for (int i = 0; i < n; i++) {
                        double want = i <= last ? exp((double)(in[i] - mx)) / sum : 0.0;
                        double got = x[(size_t)t * n + i];
                        if (i > last)
                            if (got != 0.0)
                                ck_abort_msg("path %d: masked entry %d of row %d of %d is %g",
                                             path, i, t, n, got);
                        double rel = fabs(got - want) / (want > 1e-30 ? want : 1e-30);
                        if (want > 1e-30 && rel > worst) worst = rel;
                    }
                }
            }
        /* a few ulp of float (1.2e-7 each) from the exp, the float inputs and the scaling */
        if (!(worst < 1e-6))
            ck_abort_msg("path %d: worst relative error %g", path, worst);
        for (int n = 3; n <= 130; n += 127) { /* registers (n <= 64) and memory */
            for (int i = 0; i < n * n; i++) x[i] = (float)(i % 7) / 4;
            x[(size_t)2 * n + 1] = NAN; /* row 2, a column causal row 1 does not read */
            mr_softmax_square(x, n, 1);
            for (int i = 0; i < 3; i++) {
                if (!(isfinite(x[i]) && isfinite(x[n + i])))
                    ck_abort_msg("path %d n %d: row 0 or 1 "
                                 "not finite", path, n);
                if (!(i > 2 || isnan(x[(size_t)2 * n + i])))
                    ck_abort_msg("path %d n %d: row 2 entry %d "
                                 "is %g, not NaN", path, n, i, x[(size_t)2 * n + i]);
            }
        }
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
}
END_TEST

/* a[0..n-1] and b[0..n-1] hold the same bits, or NaN both (a NaN's sign and payload
 * follow the operand order of the additions, which the compiler may swap) */
static int same_floats(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
    return 1;
}

/* The AVX2 kernels' inputs: uniform in [lo, lo + span), with a NaN, +-Inf and signed
 * zeros sprinkled in where `special` */
static void fill_scores(float *x, size_t n, uint64_t *state, float lo, float span, int special)
{
    for (size_t i = 0; i < n; i++) {
        *state ^= *state << 13, *state ^= *state >> 7, *state ^= *state << 17;
        double u = (double)(*state >> 11) / 9007199254740992.0;
        x[i] = lo + (float)u * span;
        if (special && (*state >> 3) % 97 == 0)
            x[i] = (*state >> 9) % 4 == 0 ? NAN : (*state >> 9) % 4 == 1 ? INFINITY
                   : (*state >> 9) % 4 == 2 ? -INFINITY : -0.0f;
    }
}

/* mr_softmax_square's AVX2 kernel (rows in registers up to 64 columns, in memory beyond)
 * gives the AVX-512 kernel's bits, on CPUs that have both: every length 1 to 70 (each
 * tail of the 8- and 16-lane halves and blocks, the 4- and 2-row groups), 100, 130,
 * causal and full, inputs over [-30, 30), over [-120, 0] (exponentials down into
 * subnormals and 0: the two products of mr_exp_ps8 against vscalefps), constant rows (the
 * maximum's ties, signed zeros) and rows with NaN and infinities (NaN where it gives NaN). */
START_TEST(softmax_square_avx2_same_bits)
{
    enum { MAXN = 130 };
    static float a[MAXN * MAXN], b[MAXN * MAXN];
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    if (!mr_simd_avx512()) return; /* no AVX-512 kernel to compare with here */
    mr_simd_avx512_set(0);
    int avx2 = mr_simd_avx2();
    mr_simd_avx512_set(1);
    if (!avx2) return;
    uint64_t state = 0x853c49e6748fea9bULL;
    for (int n = 1; n <= MAXN; n += n < 70 ? 1 : 30)
        for (int causal = 0; causal < 2; causal++)
            for (int kind = 0; kind < 4; kind++) {
                if (kind == 2) {
                    for (int i = 0; i < n * n; i++) a[i] = i % 3 ? 0.0f : -0.0f;
                } else {
                    fill_scores(a, (size_t)n * n, &state, kind == 1 ? -120.0f : -30.0f,
                                kind == 1 ? 120.0f : 60.0f, kind == 3);
                }
                memcpy(b, a, sizeof(float) * (size_t)n * n);
                mr_softmax_square(a, n, causal);
                mr_simd_avx512_set(0);
                mr_softmax_square(b, n, causal);
                mr_simd_avx512_set(1);
                ck_assert_msg(same_floats(a, b, (size_t)n * n),
                              "n %d causal %d kind %d: the AVX2 kernel's bits differ", n, causal, kind);
            }
}
END_TEST

/* mr_softmax_entropy on both paths (the AVX-512 kernel with its inline exp where the CPU
 * has it, and the loops with libmvec's expf) against softmax and entropies in double, on
 * lengths around the 16-lane blocks, logits spread up to 130 apart (probabilities
 * underflowing to subnormals and 0), ties, and non-finite logits (a NaN result). */
START_TEST(softmax_entropy_both_paths)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    float s[80], p[80];
    double ref[80];
    int idx[16];
    int cpu = mr_simd_avx512();
    mr_simd_avx512_set(0);
    int cpu2 = mr_simd_avx2();
    for (int path = 0; path < 3; path++) { /* AVX-512, AVX2 (as the CPU has them), portable */
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path != 2);
        /* the AVX-512 and AVX2 paths' exp is within about 1 ulp, libmvec's within 4 */
        double tol = (path == 0 && cpu) || (path == 1 && cpu2) ? 4e-7 : 8e-7;
        for (int n = 1; n <= 80; n++)
            for (int kind = 0; kind < 5; kind++) {
                for (int i = 0; i < n; i++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    double u = (double)(x >> 11) / 9007199254740992.0;
                    s[i] = kind == 0 ? (float)(u * 8 - 4) : kind == 1 ? (float)(u * 130 - 120)
                           : kind == 2 ? (float)(int)(u * 3) : kind == 3 ? (float)(u * 1e-3)
                           : (float)(u * 4 - 2);
                }
                if (kind == 4) s[(n * 7) / 11] += 12.0f; /* one dominant expert: H ~ 1e-4 */
                int k = n < 8 ? n : 8;
                mr_route_topk(idx, s, n, k); /* as the trace reader passes them */
                float mx = s[0];
                double z = 0, zk = 0;
                for (int i = 0; i < n; i++) mx = s[i] > mx ? s[i] : mx;
                /* the difference in float, as every softmax here computes it */
                for (int i = 0; i < n; i++) z += ref[i] = exp((double)(s[i] - mx));
                double h = 0, hk = 0;
                for (int i = 0; i < n; i++)
                    if (ref[i] > 0) h -= ref[i] / z * log(ref[i] / z);
                for (int j = 0; j < k; j++) zk += ref[idx[j]];
                for (int j = 0; j < k; j++)
                    if (ref[idx[j]] > 0) hk -= ref[idx[j]] / zk * log(ref[idx[j]] / zk);
                double got_hk = -1, acc[80];
                for (int i = 0; i < n; i++) acc[i] = (double)i / 4;
                double got = mr_softmax_entropy(p, s, n, idx, k, &got_hk, acc);
                /* the probability sums folded into the pass: mr_routing_psum_add's bits */
                for (int i = 0; i < n; i++)
                    ck_assert_msg(acc[i] == (double)i / 4 + (double)p[i], "path %d n %d kind %d: "
                                  "acc[%d] = %.17g, p = %.9g", path, n, kind, i, acc[i], p[i]);
                for (int i = 0; i < n; i++) {
                    double want = ref[i] / z;
                    if (want >= 1e-30)
                        ck_assert_msg(fabs(p[i] - want) <= tol * want, "path %d n %d kind %d: "
                                      "p[%d] = %.9g, expected %.9g", path, n, kind, i, p[i], want);
                    else
                        ck_assert_double_le(fabs(p[i] - want), 1e-30);
                }
                ck_assert_msg(fabs(got - h) <= 1e-6 * h + 5e-7, "path %d n %d kind %d: H %.12g, "
                              "expected %.12g", path, n, kind, got, h);
                /* a small entropy to 1e-6 relative too: Z's rounding must not swamp it */
                if (kind == 4 && n > 1)
                    ck_assert_msg(fabs(got - h) <= 1e-6 * h, "path %d n %d: small H %.12g, "
                                  "expected %.12g", path, n, got, h);
                ck_assert_msg(fabs(got_hk - hk) <= 1e-6 * hk + 5e-7, "path %d n %d kind %d: "
                              "H_k %.12g, expected %.12g", path, n, kind, got_hk, hk);
                ck_assert_double_eq(mr_softmax_entropy(p, s, n, NULL, 0, NULL, NULL), got);
            }
        /* a NaN or an infinite logit: a NaN entropy (the trace reader refuses the row first) */
        for (int bad = 0; bad < 3; bad++) {
            for (int i = 0; i < 40; i++) s[i] = (float)i / 8;
            s[17] = bad == 0 ? NAN : bad == 1 ? INFINITY : -INFINITY;
            double hk = 0;
            idx[0] = 3;
            double h = mr_softmax_entropy(p, s, 40, idx, 1, &hk, NULL);
            ck_assert_msg(isnan(h), "path %d bad %d: H = %g", path, bad, h);
        }
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
}
END_TEST

/* mr_softmax_entropy_tokens (the trace reader's 8-token kernel on CPUs with AVX-512, rows of
 * at most 64 logits) and mr_softmax_entropy (the same kernel for one token) give the
 * bits of the general path, token by token: entropies, probabilities and the sums of the
 * real tokens' probabilities in token order; lengths around the 16-lane blocks and past
 * 64, token counts around the 8-token batches, k up to 16 and past it, with and without
 * the top-k's entropy, on both paths. */
START_TEST(softmax_entropy_tokens_same_bits)
{
    enum { NT = 19, N = 70 };
    static float s[NT * N], p[NT * N], pr[NT * N];
    static int idx[NT * 17];
    double h[NT], hk[NT], hr[NT], hkr[NT], acc[N + 16], accr[N];
    unsigned char real[NT];
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (int path = 0; path < 3; path++) { /* AVX-512, AVX2 (as the CPU has them), portable */
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path != 2);
        for (int n = 1; n <= N; n += n < 20 ? 1 : 7)
            for (int nt = 1; nt <= NT; nt += 3)
                for (int kk = 0; kk < 3; kk++) {
                    int k = kk == 0 ? 1 : kk == 1 ? (n < 8 ? n : 8) : (n < 17 ? n : 17);
                    int topk = (nt + kk) % 4 != 0;
                    for (int i = 0; i < nt * n; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        double u = (double)(x >> 11) / 9007199254740992.0;
                        s[i] = i % 5 == 0 ? (float)(u * 130 - 120) : (float)(u * 8 - 4);
                    }
                    for (int t = 0; t < nt; t++) {
                        mr_route_topk(idx + t * k, s + t * n, n, k);
                        real[t] = (unsigned char)(t % 3 != 1);
                    }
                    for (int i = 0; i < n; i++) acc[i] = accr[i] = (double)i / 8;
                    for (int i = n; i < n + 16; i++) acc[i] = -1.5; /* past the sums: untouched */
                    mr_softmax_entropy_tokens(h, topk ? hk : NULL, p, s, nt, n, idx, k, acc, real);
                    for (int i = n; i < n + 16; i++)
                        ck_assert_msg(acc[i] == -1.5, "path %d n %d nt %d: acc[%d] written", path, n,
                                      nt, i);
                    for (int t = 0; t < nt; t++) {
                        hr[t] = mr_softmax_entropy_general(pr + t * n, s + t * n, n, idx + t * k, k,
                                                           topk ? &hkr[t] : NULL,
                                                           real[t] ? accr : NULL);
                        double h1 = 0, hk1 = 0;
                        float p1[N];
                        h1 = mr_softmax_entropy(p1, s + t * n, n, idx + t * k, k,
                                                topk ? &hk1 : NULL, NULL);
                        ck_assert_msg(h1 == hr[t] && memcmp(p1, pr + t * n, sizeof(float) * n) == 0,
                                      "path %d n %d k %d: one token's bits differ", path, n, k);
                        ck_assert_msg(!topk || hk1 == hkr[t], "path %d n %d k %d: H_k", path, n, k);
                    }
                    ck_assert_msg(memcmp(h, hr, sizeof(double) * nt) == 0, "path %d n %d nt %d k %d: "
                                  "H differs", path, n, nt, k);
                    ck_assert_msg(!topk || memcmp(hk, hkr, sizeof(double) * nt) == 0,
                                  "path %d n %d nt %d k %d: H_k differs", path, n, nt, k);
                    ck_assert_msg(memcmp(p, pr, sizeof(float) * nt * n) == 0,
                                  "path %d n %d nt %d k %d: p differs", path, n, nt, k);
                    ck_assert_msg(memcmp(acc, accr, sizeof(double) * n) == 0,
                                  "path %d n %d nt %d k %d: sums differ", path, n, nt, k);
                }
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
}
END_TEST

/* doubles: the same bits, or NaN both */
static int same_doubles(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof(double)) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
    return 1;
}

/* The AVX2 kernels of mr_softmax_entropy, mr_softmax_entropy_general and
 * mr_softmax_entropy_tokens give the AVX-512 kernels' bits (entropies, probabilities, the
 * real tokens' probability sums), on CPUs that have both: lengths 1 to 70 and 100, 130
 * (each 8- and 16-lane tail, past the AVX-512 token kernel's 64), 1 to 19 tokens, k 1, 8,
 * 16 (the gathers' halves) and 17 (the scalar top-k sums), with and without the top-k's
 * entropy; logits over [-4, 4), spread over 130 (exponentials in subnormals and 0), small
 * integers (ties at the maximum), one dominant (a small entropy), and NaN, infinities and
 * signed zeros (NaN where the AVX-512 kernel gives NaN). */
START_TEST(softmax_entropy_avx2_same_bits)
{
    enum { NT = 19, N = 130 };
    static float s[NT * N], p[NT * N], pr[NT * N];
    static int idx[NT * 17];
    double h[NT], hk[NT], hr[NT], hkr[NT], acc[N], accr[N];
    unsigned char real[NT];
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    if (!mr_simd_avx512()) return; /* no AVX-512 kernel to compare with here */
    mr_simd_avx512_set(0);
    int avx2 = mr_simd_avx2();
    mr_simd_avx512_set(1);
    if (!avx2) return;
    uint64_t x = 0x6a09e667f3bcc909ULL;
    for (int n = 1; n <= N; n += n < 70 ? 1 : 30)
        for (int nt = 1; nt <= NT; nt += 6)
            for (int kk = 0; kk < 4; kk++)
                for (int kind = 0; kind < 5; kind++) {
                    int k = kk == 0 ? 1 : kk == 1 ? 8 : kk == 2 ? 16 : 17;
                    k = k < n ? k : n;
                    int topk = (nt + kk + kind) % 3 != 0;
                    if (kind == 2) {
                        for (int i = 0; i < nt * n; i++) {
                            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                            s[i] = (float)(int)(x % 3);
                        }
                    } else {
                        fill_scores(s, (size_t)nt * n, &x, kind == 1 ? -120.0f : -4.0f,
                                    kind == 1 ? 130.0f : 8.0f, kind == 4);
                    }
                    if (kind == 3)
                        for (int t = 0; t < nt; t++) s[t * n + (t * 7) % n] += 12.0f;
                    for (int t = 0; t < nt; t++) {
                        mr_route_topk(idx + t * k, s + t * n, n, k);
                        real[t] = (unsigned char)(t % 3 != 1);
                    }
                    for (int path = 0; path < 2; path++) {
                        mr_simd_avx512_set(path == 0);
                        float *pp = path ? p : pr;
                        double *hh = path ? h : hr, *hhk = path ? hk : hkr, *aa = path ? acc : accr;
                        for (int i = 0; i < n; i++) aa[i] = (double)i / 8;
                        if ((n + nt) % 2) {
                            mr_softmax_entropy_tokens(hh, topk ? hhk : NULL, pp, s, nt, n, idx, k, aa,
                                                      real);
                        } else {
                            for (int t = 0; t < nt; t++)
                                hh[t] = (t % 2 ? mr_softmax_entropy_general : mr_softmax_entropy)(
                                    pp + t * n, s + t * n, n, idx + t * k, k, topk ? hhk + t : NULL,
                                    real[t] ? aa : NULL);
                        }
                    }
                    mr_simd_avx512_set(1);
                    ck_assert_msg(same_doubles(h, hr, nt), "n %d nt %d k %d kind %d: H differs", n,
                                  nt, k, kind);
                    ck_assert_msg(!topk || same_doubles(hk, hkr, nt), "n %d nt %d k %d kind %d: "
                                  "H_k differs", n, nt, k, kind);
                    ck_assert_msg(same_floats(p, pr, (size_t)nt * n), "n %d nt %d k %d kind %d: "
                                  "p differs", n, nt, k, kind);
                    ck_assert_msg(same_doubles(acc, accr, n), "n %d nt %d k %d kind %d: sums differ",
                                  n, nt, k, kind);
                }
}
END_TEST

/* A 16-bit score widened as the trace reader widens it (float16 exactly, bfloat16 as the
 * top half of a float) */
static float widen16(uint16_t h, int bf16)
{
    uint32_t bits;
    if (bf16) {
        bits = (uint32_t)h << 16;
    } else {
        uint32_t sg = (uint32_t)(h >> 15) << 31, ex = (uint32_t)(h >> 10 & 31), man = h & 1023u;
        if (ex == 31) {
            bits = sg | 0x7f800000u | man << 13;
        } else if (ex) {
            bits = sg | (ex + 112) << 23 | man << 13;
        } else { /* subnormal or zero: man 2^-24, exact */
            float f = ldexpf((float)man, -24);
            memcpy(&bits, &f, 4);
            bits |= sg;
        }
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* mr_route_lanes16 (tokens across the lanes) against the kernels it replaces in analyze:
 * the top-k of mr_route_topk_portable (and mr_route_topk), the entropies and the row's
 * probability sums of mr_softmax_entropy_tokens, bit for bit, for float16 and bfloat16
 * logits, E 2, 3, 5, 7 to 9, 15 to 17, 24, 31, 33, 48, 60, 63 and 64 (each block count,
 * whole and partial blocks), k 1 to 8, rows of 37 tokens (16 + 16 + 5: a partial last
 * call), real-token masks (and none), on realistic, tie-heavy (signed zeros,
 * subnormals, rows of one value) and arbitrary finite bit patterns; a NaN or Inf is
 * reported (1) by the call that holds it only; nothing is written past the tokens and
 * experts; the kernel is refused where it does not apply. Both kernels the CPU has: the
 * AVX-512 one (16 tokens a call) and the AVX2 one (8 tokens, as two halves of a call;
 * with the AVX-512 kernels off, MR_SIMD=avx2's path, on a CPU that has both), each
 * against the same references (the default path's row kernels: the AVX2 and AVX-512 row
 * kernels give the same bits); with the logits of a call ending at an unreadable page
 * (whole and partial blocks of experts), the AVX2 kernel reads nothing past them. */
START_TEST(lanes_kernel_same_bits)
{
    int has512 = mr_simd_avx512(); /* the kernels this CPU (and build) has */
    mr_simd_avx512_set(0);
    int has2 = mr_simd_avx2();
    mr_simd_avx2_set(0); /* MR_SIMD=portable: neither kernel */
    ck_assert(!mr_route_lanes_ok(64, 8) && !mr_route_lanes_ok(2, 1));
    mr_simd_avx2_set(1);
    mr_simd_avx512_set(1);
    if (!has512 && !has2) {
        ck_assert(!mr_route_lanes_ok(64, 8));
        return;
    }
    for (int path = 0; path < 2; path++) { /* 0: AVX-512, 1: AVX2 */
        if (path == 0 ? !has512 : !has2) continue;
        mr_simd_avx512_set(path == 0);
        ck_assert(mr_route_lanes_ok(64, 8) && mr_route_lanes_ok(2, 2) && mr_route_lanes_ok(1, 1));
        ck_assert(!mr_route_lanes_ok(65, 8) && !mr_route_lanes_ok(64, 9) && !mr_route_lanes_ok(4, 5) &&
                  !mr_route_lanes_ok(8, 0));
    }
    mr_simd_avx512_set(1);
    enum { T = 37, EM = 64 };
    static const int Es[] = {2, 3, 5, 7, 8, 9, 15, 16, 17, 24, 31, 33, 48, 60, 63, 64};
    static const uint16_t pool[2][9] = {
        {0x0000, 0x8000, 0x3c00, 0xbc00, 0x3800, 0x4000, 0xc200, 0x0001, 0x8001},
        {0x0000, 0x8000, 0x3f80, 0xbf80, 0x3f00, 0x4000, 0xc040, 0x0001, 0x8001}};
    static uint16_t raw[T * EM], ids[T * 8 + 64];
    static float s[T * EM], p[T * EM];
    static int idx[T * 8], idx2[T * 8];
    double h[T + 8], hk[T + 8], hr[T], hkr[T], acc[EM + 8], accr[EM], acc0[EM];
    unsigned char real[T];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
#define NEXT() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int ei = 0; ei < (int)(sizeof Es / sizeof *Es); ei++)
            for (int k = 1, E = Es[ei]; k <= 8 && k <= E; k++)
                for (int kind = 0; kind < 4; kind++) {
                    for (int t = 0; t < T; t++) {
                        uint16_t one = pool[bf16][NEXT() % 9];
                        for (int i = 0; i < E; i++) {
                            uint64_t r = NEXT();
                            uint16_t v;
                            if (kind == 0) { /* magnitudes 2^-5 .. 8, either sign */
                                uint16_t ex = (uint16_t)(bf16 ? 122 + r % 8 : 10 + r % 8);
                                uint16_t man = (uint16_t)((r >> 8) & (bf16 ? 0x7f : 0x3ff));
                                v = (uint16_t)((r >> 20 & 1) << 15 | ex << (bf16 ? 7 : 10) | man);
                            } else if (kind == 1) {
                                v = pool[bf16][r % 9];
                            } else if (kind == 2) { /* any finite value */
                                v = (uint16_t)r;
                                uint16_t em = bf16 ? 0x7f80 : 0x7c00;
                                if ((v & em) == em) v &= (uint16_t)~(bf16 ? 0x0080 : 0x0400);
                            } else { /* a row of one value, now and then another */
                                v = r % 7 ? one : pool[bf16][r % 9];
                            }
                            raw[t * E + i] = v;
                            s[t * E + i] = widen16(v, bf16);
                        }
                        real[t] = (unsigned char)(NEXT() % 4 != 0);
                    }
                    unsigned char *rl = kind == 3 && k == 2 ? NULL : real;
                    for (int t = 0; t < T; t++) {
                        mr_route_topk_portable(idx + t * k, s + t * E, E, k);
                        mr_route_topk(idx2 + t * k, s + t * E, E, k);
                    }
                    ck_assert(memcmp(idx, idx2, sizeof(int) * T * k) == 0);
                    for (int i = 0; i < E; i++) acc0[i] = accr[i] = (double)i / 16;
                    mr_softmax_entropy_tokens(hr, hkr, p, s, T, E, idx, k, accr, rl);
                    for (int path = 0; path < 2; path++) {
                        if (path == 0 ? !has512 : !has2) continue;
                        mr_simd_avx512_set(path == 0);
                        for (int j = T * k; j < T * 8 + 64; j++) ids[j] = 0xffff;
                        for (int t = T; t < T + 8; t++) h[t] = hk[t] = -7.0;
                        memcpy(acc, acc0, sizeof(double) * E);
                        for (int i = E; i < E + 8; i++) acc[i] = -2.5;
                        for (int t0 = 0; t0 < T; t0 += 16) {
                            int nt = T - t0 < 16 ? T - t0 : 16;
                            int bad = mr_route_lanes16(raw + t0 * E, nt, E, k, bf16, ids + t0 * k,
                                                       h + t0, hk + t0, acc, rl ? rl + t0 : NULL);
                            ck_assert_msg(bad == 0, "path %d bf16 %d E %d k %d kind %d: flagged",
                                          path, bf16, E, k, kind);
                        }
                        for (int j = 0; j < T * k; j++)
                            ck_assert_msg(ids[j] == idx[j], "path %d bf16 %d E %d k %d kind %d: "
                                          "top-k [%d][%d] %d, want %d", path, bf16, E, k, kind,
                                          j / k, j % k, ids[j], idx[j]);
                        for (int t = 0; t < T; t++) {
                            ck_assert_msg(memcmp(&h[t], &hr[t], sizeof(double)) == 0 &&
                                              memcmp(&hk[t], &hkr[t], sizeof(double)) == 0,
                                          "path %d bf16 %d E %d k %d kind %d token %d: H %.17g / "
                                          "%.17g, H_k %.17g / %.17g", path, bf16, E, k, kind, t,
                                          h[t], hr[t], hk[t], hkr[t]);
                        }
                        ck_assert_msg(memcmp(acc, accr, sizeof(double) * E) == 0, "path %d bf16 "
                                      "%d E %d k %d kind %d: sums differ", path, bf16, E, k, kind);
                        for (int i = E; i < E + 8; i++) ck_assert(acc[i] == -2.5);
                        for (int t = T; t < T + 8; t++)
                            ck_assert_msg(h[t] == -7.0 && hk[t] == -7.0, "path %d E %d k %d: "
                                          "entropies written past the tokens", path, E, k);
                        for (int j = T * k; j < T * 8 + 64; j++)
                            ck_assert_msg(ids[j] == 0xffff, "path %d E %d k %d: top-k written "
                                          "past its tokens", path, E, k);
#ifdef MR_AVX2
                        /* tokens 0 .. 6 (a partial first half), 0 .. 14 (a partial second
                         * half) and 0 .. 31 (two whole calls), their logits ending at an
                         * unreadable page: the same outputs */
                        if (path == 1 && kind == 0) {
                            static const int nts[] = {7, 15, 32};
                            for (int ni = 0; ni < 3; ni++) {
                                int nt = nts[ni];
                                guarded gd;
                                size_t n = (size_t)nt * E;
                                uint16_t *g = (uint16_t *)(void *)(at_guard((n + 1) / 2, &gd) + (n + 1) / 2) - n;
                                memcpy(g, raw, n * sizeof *g);
                                uint16_t gi[32 * 8];
                                double gh[32], ghk[32], ga[EM];
                                memset(gi, 0xff, sizeof gi);
                                memset(gh, 0, sizeof gh);
                                memset(ghk, 0, sizeof ghk);
                                memcpy(ga, acc0, sizeof(double) * E);
                                for (int t0 = 0; t0 < nt; t0 += 16)
                                    ck_assert(mr_route_lanes16(g + t0 * E, nt - t0 < 16 ? nt - t0 : 16,
                                                               E, k, bf16, gi + t0 * k, gh + t0,
                                                               ghk + t0, ga, rl ? rl + t0 : NULL) == 0);
                                ck_assert(memcmp(gi, ids, sizeof *gi * (size_t)nt * k) == 0);
                                ck_assert(memcmp(gh, h, sizeof *gh * (size_t)nt) == 0);
                                ck_assert(memcmp(ghk, hk, sizeof *ghk * (size_t)nt) == 0);
                                munmap(gd.map, gd.size);
                            }
                        }
#endif
                        /* a NaN or an Inf: flagged by its call only */
                        if (kind != 2) continue;
                        int at = (int)(NEXT() % (uint64_t)(T * E));
                        uint16_t keep = raw[at];
                        raw[at] = bf16 ? (at & 2 ? 0x7fc0 : 0xff80) : (at & 1 ? 0x7e00 : 0xfc00);
                        for (int t0 = 0; t0 < T; t0 += 16) {
                            int nt = T - t0 < 16 ? T - t0 : 16;
                            int bad = mr_route_lanes16(raw + t0 * E, nt, E, k, bf16, ids + t0 * k,
                                                       h + t0, hk + t0, acc, real + t0);
                            ck_assert_int_eq(bad, at / E >= t0 && at / E < t0 + nt);
                        }
                        raw[at] = keep;
                    }
                    mr_simd_avx512_set(1);
                }
#undef NEXT
}
END_TEST

#if defined(MR_AVX512) || defined(MR_AVX2)
/* libm's ln in double, ulps apart from got (both finite, positive) */
static double ulps_apart(double got, double want)
{
    return fabs(got - want) / (nextafter(fabs(want), INFINITY) - fabs(want));
}
#endif

#ifdef MR_AVX512

/* out[0] = ln a, out[1] = ln b by mr_log_pd2 (compiled for the extensions it needs) */
MR_AVX512_TARGET static void log_pd2(double *out, double a, double b)
{
    _mm_storeu_pd(out, mr_log_pd2(_mm_set_pd(b, a)));
}
#endif
#ifdef MR_AVX2
/* out[0 .. 3] = ln x[0 .. 3] by mr_log_pd4 (AVX2) */
MR_AVX2_TARGET static void log_pd4(double *out, const double *x)
{
    _mm256_storeu_pd(out, mr_log_pd4(_mm256_loadu_pd(x)));
}
/* out[0 .. 7] = exp x[0 .. 7] by mr_exp_ps8 (AVX2) */
MR_AVX2_TARGET static void exp_ps8(float *out, const float *x)
{
    _mm256_storeu_ps(out, mr_exp_ps8(_mm256_loadu_ps(x)));
}
#endif
#ifdef MR_AVX512
/* the same by mr_log_pd8 and mr_exp_ps16 (AVX-512) */
MR_AVX512_TARGET static void log_pd8(double *out, const double *x)
{
    _mm512_storeu_pd(out, mr_log_pd8(_mm512_loadu_pd(x)));
}
MR_AVX512_TARGET static void exp_ps16(float *out, const float *x)
{
    _mm512_storeu_ps(out, mr_exp_ps16(_mm512_loadu_ps(x)));
}
#endif

/* mr_log_pd2 (analysis/mr_simd.h, the softmax's two entropies per token) within 1 ulp of
 * libm's log: both lanes, around the [sqrt(2)/2, sqrt(2)) split and 1, over the exponent
 * range (subnormals and the largest double included), and NaN for NaN. */
START_TEST(vector_log_within_one_ulp)
{
#ifdef MR_AVX512
    if (!mr_simd_avx512()) return; /* the CPU lacks the extensions: no such path runs */
    uint64_t x = 0x243f6a8885a308d3ULL;
    double worst = 0;
    const double special[] = {1.0, 2.0, 0.5, 1.4142135623730951, 1.4142135623730949,
                              0.7071067811865476, 0.7071067811865475, nextafter(1.0, 2.0),
                              nextafter(1.0, 0.0), 64.0, 1e-310, 4.9e-324, DBL_MIN, DBL_MAX, 3.0};
    int ns = (int)(sizeof special / sizeof *special);
    for (int i = 0; i < 200000 + ns; i++) {
        double a, b;
        if (i < ns) {
            a = special[i];
            b = special[ns - 1 - i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double u = (double)(x >> 11) / 9007199254740992.0;
            /* the sums a softmax gives (1 .. 64) and the whole exponent range */
            a = i % 2 ? 1.0 + 63.0 * u : ldexp(0.5 + u, (int)(x % 2000) - 1000);
            b = 0.6 + u;
        }
        double got[2];
        log_pd2(got, a, b);
        double d0 = ulps_apart(got[0], log(a)), d1 = ulps_apart(got[1], log(b));
        worst = d0 > worst ? d0 : worst;
        worst = d1 > worst ? d1 : worst;
        ck_assert_msg(d0 <= 1.0 && d1 <= 1.0, "ln(%.17g) = %.17g (libm %.17g), ln(%.17g) = "
                      "%.17g (libm %.17g)", a, got[0], log(a), b, got[1], log(b));
    }
    double nan2[2];
    log_pd2(nan2, NAN, 2.0);
    ck_assert(isnan(nan2[0]));
    ck_assert_double_eq_tol(nan2[1], log(2.0), 1e-15);
#else
    ck_assert(!mr_simd_avx512()); /* no such path on this compiler or CPU */
#endif
}
END_TEST

/* mr_log_pd4 and mr_exp_ps8 (the AVX2 kernels' log and exp, analysis/mr_simd.h) where
 * the CPU has AVX2: the log within 1 ulp of libm's over the whole exponent range
 * (subnormals, through their 2^54 scaling, included) and around its [sqrt(2)/2, sqrt(2))
 * split, NaN for NaN; the exp within 2.5 ulp of exp in double (2 of the correctly rounded
 * float) over [-110, 0] (results down through the subnormals, where the ulp is 2^-149, to
 * 0), at 0, -0, -Inf, NaN, and up to 43 (2^n up to 2^63). On CPUs with AVX-512 too, both
 * give mr_log_pd8's and mr_exp_ps16's bits (there vscalefps rounds a subnormal once). */
START_TEST(vector_log_exp_avx2_same_bits)
{
#ifdef MR_AVX2
    mr_simd_avx512_set(0);
    mr_simd_avx2_set(1);
    int avx2 = mr_simd_avx2();
    mr_simd_avx512_set(1);
    int avx512 = mr_simd_avx512();
    (void)avx512; /* read where the AVX-512 kernels are compiled (not with -DMR_AVX512=OFF) */
    if (!avx2) return; /* the CPU lacks AVX2 or FMA: no such path runs */
    uint64_t x = 0x510e527fade682d1ULL;
    const double special[] = {1.0, 2.0, 0.5, 1.4142135623730951, 1.4142135623730949,
                              0.7071067811865476, 0.7071067811865475, nextafter(1.0, 2.0),
                              nextafter(1.0, 0.0), 64.0, 1e-310, 4.9e-324, DBL_MIN,
                              nextafter(DBL_MIN, 0.0), DBL_MAX, NAN};
    enum { NS = sizeof special / sizeof *special };
    for (int i = 0; i < 20000; i++) {
        double in[8], b[8];
        for (int j = 0; j < 8; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double u = (double)(x >> 11) / 9007199254740992.0;
            in[j] = i < 2 ? special[(8 * i + j) % NS]
                    : j % 2 ? 1.0 + 63.0 * u : ldexp(0.5 + u, (int)(x % 2097) - 1073);
        }
        log_pd4(b, in);
        log_pd4(b + 4, in + 4);
        for (int j = 0; j < 8; j++)
            ck_assert_msg(isnan(in[j]) ? isnan(b[j]) : ulps_apart(b[j], log(in[j])) <= 1.0,
                          "mr_log_pd4(%.17g) = %.17g, libm %.17g", in[j], b[j], log(in[j]));
#ifdef MR_AVX512
        if (avx512) {
            double a[8];
            log_pd8(a, in);
            ck_assert_msg(same_doubles(a, b, 8), "mr_log_pd4 differs from mr_log_pd8 at %.17g "
                          "%.17g %.17g %.17g ...", in[0], in[1], in[2], in[3]);
        }
#endif
    }
    float fin[16], fb[16];
    for (int i = 0; i < 40000; i++) {
        for (int j = 0; j < 16; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            double u = (double)(x >> 11) / 9007199254740992.0;
            fin[j] = i % 4 == 3 ? (float)(43.0 * u) : (float)(-110.0 * u);
        }
        if (i == 0) {
            fin[0] = 0.0f, fin[1] = -0.0f, fin[2] = -INFINITY, fin[3] = NAN, fin[4] = -104.0f;
            fin[5] = -87.33654f, fin[6] = -103.27893f, fin[7] = 43.0f;
        }
        exp_ps8(fb, fin);
        exp_ps8(fb + 8, fin + 8);
        for (int j = 0; j < 16; j++) {
            double want = exp((double)fin[j]);
            double ulp = want >= FLT_MIN ? ldexp(1.0, ilogb(want) - 23) : 0x1p-149;
            ck_assert_msg(isnan(fin[j]) ? isnan(fb[j]) : fabs(fb[j] - want) <= 2.5 * ulp,
                          "mr_exp_ps8(%.9g) = %.9g, exp %.9g", fin[j], fb[j], want);
        }
#ifdef MR_AVX512
        if (avx512) {
            float fa[16];
            exp_ps16(fa, fin);
            for (int j = 0; j < 16; j++)
                ck_assert_msg(memcmp(fa + j, fb + j, 4) == 0 || (isnan(fa[j]) && isnan(fb[j])),
                              "mr_exp_ps8(%.9g) = %.9g, mr_exp_ps16 %.9g", fin[j], fb[j], fa[j]);
        }
#endif
    }
#else
    ck_assert_int_eq(mr_simd_avx2(), 0); /* no AVX2 kernel on this compiler */
#endif
}
END_TEST

START_TEST(attention_causal_and_full)
{
    /* one sequence, T = 3, C = 2, one head; Q = K = 0 gives uniform attention over
     * the visible tokens, so the output is the mean of the visible V rows */
    enum { T = 3, C = 2 };
    float qkv[T * 3 * C] = {0}, out[T * C], att[T * T];
    float v[T][C] = {{1, 10}, {2, 20}, {6, 60}};
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) qkv[t * 3 * C + 2 * C + c] = v[t][c];
    mr_attention_forward(out, att, qkv, 1, T, C, 1, 1);
    ck_assert_float_eq_tol(out[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(out[2], 1.5f, 1e-6f);
    ck_assert_float_eq_tol(out[4], 3.0f, 1e-6f);
    ck_assert_float_eq(att[1], 0.0f); /* row 0 cannot see token 1 */
    ck_assert_float_eq(att[2], 0.0f);
    mr_attention_forward(out, att, qkv, 1, T, C, 1, 0);
    for (int t = 0; t < T; t++) ck_assert_float_eq_tol(out[t * C + 1], 30.0f, 1e-5f);
}
END_TEST

START_TEST(attention_heads_are_independent)
{
    /* two heads of width 1: head 0 has a large score for token 1, head 1 is uniform */
    enum { T = 2, C = 2 };
    float qkv[T * 3 * C] = {0}, out[T * C], att[2 * T * T];
    qkv[0 * 6 + 0] = 10.0f; /* q of token 0, head 0 */
    qkv[1 * 6 + 0] = 10.0f; /* q of token 1, head 0 */
    qkv[1 * 6 + 2] = 10.0f; /* k of token 1, head 0 */
    qkv[0 * 6 + 4] = 1.0f;  /* v token 0 head 0 */
    qkv[1 * 6 + 4] = 3.0f;  /* v token 1 head 0 */
    qkv[0 * 6 + 5] = 5.0f;  /* v token 0 head 1 */
    qkv[1 * 6 + 5] = 7.0f;  /* v token 1 head 1 */
    mr_attention_forward(out, att, qkv, 1, T, C, 2, 0);
    /* head 0 row 0: scores (0, 100) -> nearly all weight on token 1 */
    ck_assert_float_gt(att[1], 0.999f);
    ck_assert_float_eq_tol(out[0], 3.0f, 1e-3f);
    /* head 1 uniform */
    ck_assert_float_eq_tol(att[4], 0.5f, 1e-7f);
    ck_assert_float_eq_tol(out[1], 6.0f, 1e-6f);
}
END_TEST

START_TEST(rmsnorm_known_values)
{
    float x[4] = {1, -2, 3, -4}, w[4] = {1, 2, 0.5f, 1}, y[4];
    double rms = sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6);
    mr_rmsnorm_forward(y, x, w, 1, 4, 1e-6f);
    for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(y[i], w[i] * x[i] / rms, 1e-6);
    mr_rmsnorm_forward(x, x, w, 1, 4, 1e-6f); /* in place */
    for (int i = 0; i < 4; i++) ck_assert_float_eq(x[i], y[i]);
}
END_TEST

START_TEST(swiglu_in_place_equals_out_of_place)
{
    enum { N = 5, H = 7 };
    float in[N * 2 * H], keep[N * 2 * H], out[N * H];
    for (int i = 0; i < N * 2 * H; i++) keep[i] = in[i] = (float)sin(0.7 * i) * 3.0f;
    mr_swiglu_forward(out, keep, N, H);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < H; j++) {
            double g = keep[n * 2 * H + j], u = keep[n * 2 * H + H + j];
            ck_assert_float_eq_tol(out[n * H + j], g / (1 + exp(-g)) * u, 1e-5);
        }
    mr_swiglu_forward(in, in, N, H); /* rows compacted in place */
    ck_assert_int_eq(memcmp(in, out, sizeof out), 0);
}
END_TEST

/* RoPE: position 0 is the identity, every pair keeps its norm, and q.k after rotation
 * depends only on the distance of the positions (the point of rotary embeddings). */
START_TEST(rope_rotates_by_relative_position)
{
    enum { T = 6, HD = 8 };
    float c[T * HD / 2], s[T * HD / 2];
    mr_rope_tables(c, s, T, HD, 10000.0, 1.0);
    float q[T * HD], k[T * HD], q0[HD], k0[HD];
    for (int i = 0; i < HD; i++) {
        q0[i] = (float)cos(1.3 * i + 0.2);
        k0[i] = (float)sin(0.9 * i - 0.4);
    }
    for (int t = 0; t < T; t++) {
        memcpy(q + t * HD, q0, sizeof q0);
        memcpy(k + t * HD, k0, sizeof k0);
    }
    mr_rope_forward(q, 1, T, 1, HD, HD, c, s);
    mr_rope_forward(k, 1, T, 1, HD, HD, c, s);
    for (int i = 0; i < HD; i++) ck_assert_float_eq(q[i], q0[i]);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < HD / 2; i++)
            ck_assert_float_eq_tol(hypot(q[t * HD + i], q[t * HD + i + HD / 2]),
                                   hypot(q0[i], q0[i + HD / 2]), 1e-5);
    double d1 = 0, d2 = 0; /* q at 3, k at 1 vs q at 5, k at 3 */
    for (int i = 0; i < HD; i++) {
        d1 += (double)q[3 * HD + i] * k[1 * HD + i];
        d2 += (double)q[5 * HD + i] * k[3 * HD + i];
    }
    ck_assert_double_eq_tol(d1, d2, 1e-5);
}
END_TEST

/* Grouped-query attention equals multi-head attention with each key/value head repeated
 * for its query heads (transformers' repeat_kv). */
START_TEST(gqa_equals_repeated_kv)
{
    enum { T = 5, NH = 4, NKV = 2, HD = 3 };
    float qkv[T * (NH + 2 * NKV) * HD], full[T * 3 * NH * HD];
    for (int i = 0; i < T * (NH + 2 * NKV) * HD; i++) qkv[i] = (float)sin(0.37 * i);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < HD; i++) {
                const float *row = qkv + t * (NH + 2 * NKV) * HD;
                float *f = full + t * 3 * NH * HD;
                int g = h / (NH / NKV);
                f[h * HD + i] = row[h * HD + i];
                f[NH * HD + h * HD + i] = row[NH * HD + g * HD + i];
                f[2 * NH * HD + h * HD + i] = row[(NH + NKV) * HD + g * HD + i];
            }
    float a[T * NH * HD], b[T * NH * HD], att_a[NH * T * T], att_b[NH * T * T];
    mr_attention_gqa_forward(a, att_a, qkv, 1, T, NH, NKV, HD, 1);
    mr_attention_forward(b, att_b, full, 1, T, NH * HD, NH, 1);
    for (int i = 0; i < T * NH * HD; i++) ck_assert_float_eq_tol(a[i], b[i], 1e-6);
    for (int i = 0; i < NH * T * T; i++) ck_assert_float_eq_tol(att_a[i], att_b[i], 1e-6);
}
END_TEST

/* The attention forward (mr_attention_gqa_forward) and backward (mr_attention_backward)
 * on the micro-kernels (mr_gemm_avx512 on CPUs with AVX-512, mr_gemm_avx2 on CPUs with
 * AVX2 and FMA, up to 128 positions and head dimensions of 64) against OpenBLAS's path
 * (MR_SIMD=portable's): positions around the kernels' row blocks and 16-column blocks and
 * past their limit, head dimensions of 8 to 24, grouped-query heads, causal and full, the
 * router's extra attention gradient or none; within the rounding of two sums in another
 * order (the outputs' scale: their largest magnitude). */
START_TEST(attention_avx512_matches_blas)
{
    static const int Ts[] = {1, 5, 8, 9, 17, 50, 64, 129}, HDs[] = {8, 16, 24};
    enum { MAXT = 129, MAXR = 12 * 24 }; /* (NH + 2 NKV) hd floats a position */
    size_t nq = (size_t)MAXT * MAXR, na = (size_t)4 * MAXT * MAXT, no = (size_t)MAXT * 4 * 24;
    float *qkv = malloc(sizeof(float) * nq), *out[3], *att[3], *dq[3],
          *dout = malloc(sizeof(float) * no), *dex = malloc(sizeof(float) * na),
          *scr = malloc(sizeof(float) * MAXT * MAXT);
    for (int p = 0; p < 3; p++) {
        out[p] = malloc(sizeof(float) * no);
        att[p] = malloc(sizeof(float) * na);
        dq[p] = malloc(sizeof(float) * 3 * no);
    }
    for (size_t i = 0; i < nq; i++) qkv[i] = sinf(0.37f * (float)i) * 1.5f;
    for (size_t i = 0; i < no; i++) dout[i] = cosf(0.29f * (float)i);
    for (size_t i = 0; i < na; i++) dex[i] = sinf(0.11f * (float)i) * 0.1f;
    int cpu = mr_simd_avx512();
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
        for (size_t hi = 0; hi < sizeof HDs / sizeof *HDs; hi++)
            for (int causal = 0; causal < 2; causal++)
                for (int gqa = 0; gqa < 2; gqa++) {
                    int T = Ts[ti], hd = HDs[hi], NH = 4, NKV = gqa ? 2 : 4, C = NH * hd;
                    for (int p = 0; p < 3; p++) { /* AVX-512, AVX2, portable (the reference) */
                        mr_simd_avx512_set(p == 0);
                        mr_simd_avx2_set(p < 2);
                        mr_attention_gqa_forward(out[p], att[p], qkv, 1, T, NH, NKV, hd, causal);
                        if (gqa) continue; /* the backward is multi-head only */
                        for (size_t i = 0; i < (size_t)T * 3 * C; i++) dq[p][i] = 0.25f;
                        mr_attention_backward(dq[p], dout, qkv, att[p], causal ? dex : NULL, 1,
                                              T, C, NH, scr);
                    }
                    double mo = 0, ma = 0, md = 0;
                    for (int i = 0; i < T * C; i++) mo = fmax(mo, fabs(out[2][i]));
                    for (int i = 0; i < NH * T * T; i++) ma = fmax(ma, fabs(att[2][i]));
                    for (int p = 0; p < 2; p++) {
                        for (int i = 0; i < T * C; i++)
                            if (!(fabs(out[p][i] - out[2][i]) <= 2e-6 * mo))
                                ck_abort_msg("path %d T %d hd %d causal %d gqa %d: out[%d] %.9g "
                                             "vs %.9g", p, T, hd, causal, gqa, i, out[p][i],
                                             out[2][i]);
                        for (int i = 0; i < NH * T * T; i++)
                            if (!(fabs(att[p][i] - att[2][i]) <= 2e-6 * ma &&
                                  (att[2][i] != 0.0f || att[p][i] == 0.0f)))
                                ck_abort_msg("path %d T %d hd %d causal %d gqa %d: att[%d] %.9g "
                                             "vs %.9g", p, T, hd, causal, gqa, i, att[p][i],
                                             att[2][i]);
                    }
                    if (gqa) continue;
                    for (int i = 0; i < T * 3 * C; i++) md = fmax(md, fabs(dq[2][i]));
                    for (int p = 0; p < 2; p++)
                        for (int i = 0; i < T * 3 * C; i++)
                            if (!(fabs(dq[p][i] - dq[2][i]) <= 1e-5 * md))
                                ck_abort_msg("path %d T %d hd %d causal %d: dqkv[%d] %.9g vs %.9g",
                                             p, T, hd, causal, i, dq[p][i], dq[2][i]);
                }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    ck_assert(cpu == mr_simd_avx512());
    free(qkv);
    free(dout);
    free(dex);
    free(scr);
    for (int p = 0; p < 3; p++) {
        free(out[p]);
        free(att[p]);
        free(dq[p]);
    }
}
END_TEST

/* mr_attention_gqa_forward on the AVX2 path: the bits of its two GEMMs per head written
 * out (gemm_fma_ref) around the same softmax (mr_softmax_square under the same settings),
 * memcmp; mr_attention_backward and mr_attention_backward_row0 on the AVX2 path: the bits
 * of the AVX-512 path where the CPU has it (their other steps, the softmax's backward and
 * the router's extra gradient, do not depend on mr_simd_avx512). Positions and head
 * dimensions as attention_avx512_matches_blas's up to the kernels' 128. */
START_TEST(attention_avx2_same_bits)
{
    int cpu = mr_simd_avx512();
    mr_simd_avx512_set(0);
    int avx2 = mr_simd_avx2();
    mr_simd_avx512_set(1);
    if (!avx2) return; /* no such path on this compiler or CPU */
    static const int Ts[] = {1, 5, 6, 7, 8, 9, 17, 50, 64, 128}, HDs[] = {8, 16, 24, 64};
    enum { NH = 4, MAXT = 128, MAXR = 12 * 64 };
    size_t nq = (size_t)MAXT * MAXR, na = (size_t)NH * MAXT * MAXT, no = (size_t)MAXT * NH * 64;
    float *qkv = malloc(sizeof(float) * nq), *out[2], *att[2], *dq[2], *d0[2],
          *dout = malloc(sizeof(float) * no), *dex = malloc(sizeof(float) * na),
          *scr = malloc(sizeof(float) * MAXT * MAXT), *kt = malloc(sizeof(float) * MAXT * 64);
    for (int p = 0; p < 2; p++) {
        out[p] = malloc(sizeof(float) * no);
        att[p] = malloc(sizeof(float) * na);
        dq[p] = malloc(sizeof(float) * 3 * no);
        d0[p] = malloc(sizeof(float) * 3 * no);
    }
    for (size_t i = 0; i < nq; i++) qkv[i] = sinf(0.37f * (float)i) * 1.5f;
    for (size_t i = 0; i < no; i++) dout[i] = cosf(0.29f * (float)i);
    for (size_t i = 0; i < na; i++) dex[i] = sinf(0.11f * (float)i) * 0.1f;
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
        for (size_t hi = 0; hi < sizeof HDs / sizeof *HDs; hi++)
            for (int causal = 0; causal < 2; causal++)
                for (int gqa = 0; gqa < 2; gqa++) {
                    int T = Ts[ti], hd = HDs[hi], NKV = gqa ? 2 : NH, C = NH * hd;
                    int row = (NH + 2 * NKV) * hd, group = NH / NKV;
                    float scale = 1.0f / sqrtf((float)hd);
                    mr_simd_avx512_set(0);
                    mr_attention_gqa_forward(out[0], att[0], qkv, 1, T, NH, NKV, hd, causal);
                    for (int h = 0; h < NH; h++) { /* the reference, same softmax */
                        const float *k = qkv + C + (h / group) * hd;
                        float *a = att[1] + (size_t)h * T * T;
                        for (int t = 0; t < T; t++)
                            for (int i = 0; i < hd; i++) kt[i * T + t] = k[(size_t)t * row + i];
                        gemm_fma_ref(a, T, qkv + h * hd, row, 1, kt, T, T, hd, T, scale, NULL, 0);
                        mr_softmax_square(a, T, causal);
                        gemm_fma_ref(out[1] + h * hd, C, a, T, 1, qkv + C + NKV * hd + (h / group) * hd,
                                     row, T, T, hd, 1.0f, NULL, 0);
                    }
                    if (memcmp(out[0], out[1], sizeof(float) * T * C) != 0 ||
                        memcmp(att[0], att[1], sizeof(float) * NH * T * T) != 0)
                        ck_abort_msg("T %d hd %d causal %d gqa %d: the AVX2 forward is not the "
                                     "bits of its GEMMs' fused multiply-add chains", T, hd,
                                     causal, gqa);
                    if (gqa || !cpu) continue; /* the backward: multi-head, against AVX-512 */
                    for (int p = 0; p < 2; p++) { /* AVX2, AVX-512 */
                        mr_simd_avx512_set(p == 1);
                        for (size_t i = 0; i < (size_t)T * 3 * C; i++) dq[p][i] = d0[p][i] = 0.25f;
                        mr_attention_backward(dq[p], dout, qkv, att[0], causal ? dex : NULL, 1,
                                              T, C, NH, scr);
                        mr_attention_backward_row0(d0[p], dout, qkv, att[0], 1, T, C, NH, scr);
                    }
                    if (memcmp(dq[0], dq[1], sizeof(float) * T * 3 * C) != 0)
                        ck_abort_msg("T %d hd %d causal %d: the AVX2 backward differs from the "
                                     "AVX-512 one", T, hd, causal);
                    if (memcmp(d0[0], d0[1], sizeof(float) * T * 3 * C) != 0)
                        ck_abort_msg("T %d hd %d causal %d: the AVX2 backward of row 0 differs "
                                     "from the AVX-512 one", T, hd, causal);
                }
    mr_simd_avx512_set(1);
    ck_assert(cpu == mr_simd_avx512());
    free(qkv), free(dout), free(dex), free(scr), free(kt);
    for (int p = 0; p < 2; p++) free(out[p]), free(att[p]), free(dq[p]), free(d0[p]);
}
END_TEST

/* mr_attention_backward_row0 (a dout nonzero in each sequence's first row only) against
 * mr_attention_backward given the zeros: the same values (either zero sign), on all three
 * paths; on the kernels' paths (AVX-512, AVX2) its other rows of dout are never read (NaN
 * there changes nothing). */
START_TEST(attention_backward_row0_same_values)
{
    static const int Ts[] = {1, 2, 9, 17, 50, 64, 129}, HDs[] = {8, 16, 24};
    enum { B = 2, NH = 4, MAXT = 129, MAXC = NH * 24 };
    size_t nq = (size_t)B * MAXT * 3 * MAXC, na = (size_t)B * NH * MAXT * MAXT,
           no = (size_t)B * MAXT * MAXC;
    float *qkv = malloc(sizeof(float) * nq), *att = malloc(sizeof(float) * na),
          *out = malloc(sizeof(float) * no), *d0 = malloc(sizeof(float) * no),
          *dn = malloc(sizeof(float) * no), *g[2], *scr = malloc(sizeof(float) * MAXT * MAXT);
    g[0] = malloc(sizeof(float) * nq), g[1] = malloc(sizeof(float) * nq);
    ck_assert(qkv && att && out && d0 && dn && g[0] && g[1] && scr);
    for (size_t i = 0; i < nq; i++) qkv[i] = sinf(0.41f * (float)i) * 1.5f;
    int cpu = mr_simd_avx512();
    for (int path = 0; path < 3; path++) { /* AVX-512, AVX2 (where the CPU has them), portable */
        mr_simd_avx512_set(path == 0);
        mr_simd_avx2_set(path < 2);
        int kernel = mr_simd_avx512() || mr_simd_avx2(); /* not OpenBLAS */
        for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
            for (size_t hi = 0; hi < sizeof HDs / sizeof *HDs; hi++) {
                int T = Ts[ti], hd = HDs[hi], C = NH * hd;
                size_t n3 = (size_t)B * T * 3 * C;
                mr_attention_forward(out, att, qkv, B, T, C, NH, 0);
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < T; t++)
                        for (int j = 0; j < C; j++) {
                            size_t i = ((size_t)b * T + t) * C + j;
                            d0[i] = t == 0 ? cosf(0.23f * (float)i) : 0.0f;
                            /* the kernels' path (up to 128 positions) must not read them */
                            dn[i] = t == 0 ? d0[i] : (kernel && T <= 128 ? NAN : 0.0f);
                        }
                for (size_t i = 0; i < n3; i++) g[0][i] = g[1][i] = 0.125f * (float)(i % 5);
                mr_attention_backward(g[0], d0, qkv, att, NULL, B, T, C, NH, scr);
                mr_attention_backward_row0(g[1], dn, qkv, att, B, T, C, NH, scr);
                for (size_t i = 0; i < n3; i++)
                    if (!(g[0][i] == g[1][i]))
                        ck_abort_msg("path %d T %d hd %d: dqkv[%zu] %.9g vs %.9g", path, T, hd,
                                     i, g[1][i], g[0][i]);
            }
    }
    mr_simd_avx512_set(1);
    mr_simd_avx2_set(1);
    ck_assert(cpu == mr_simd_avx512());
    free(qkv), free(att), free(out), free(d0), free(dn), free(g[0]), free(g[1]), free(scr);
}
END_TEST

START_TEST(entropy_known_values)
{
    float u[8];
    for (int i = 0; i < 8; i++) u[i] = 0.125f;
    ck_assert_double_le(fabs(mr_entropy(u, 8) - log(8.0)), 1e-7);
    float one[3] = {0.0f, 1.0f, 0.0f};
    ck_assert_double_eq(mr_entropy(one, 3), 0.0);
    ck_assert_double_eq(mr_entropy_fast(one, 3), 0.0);
    /* the vector version against the double one for every length (vector tails) with
     * zeros (causal rows) and tiny entries */
    float p[70];
    for (int n = 1; n <= 70; n++) {
        double z = 0.0;
        for (int i = 0; i < n; i++) {
            p[i] = (i % 5 == 3) ? 0.0f : (i % 7 == 1 ? 1e-30f : expf(sinf(1.3f * i) * 4.0f));
            z += p[i];
        }
        for (int i = 0; i < n; i++) p[i] = (float)(p[i] / z);
        double ref = mr_entropy(p, n), fast = mr_entropy_fast(p, n);
        ck_assert_msg(isfinite(fast) && fabs(fast - ref) <= 1e-6 * fmax(1.0, ref),
                      "n=%d: %.9g vs %.9g", n, fast, ref);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, layernorm_normalizes);
    tcase_add_test(tc, linear_matches_naive);
    tcase_add_test(tc, linear_bias_in_gemm_is_bit_identical);
    tcase_add_test(tc, linear_avx512_kernel);
    tcase_add_test(tc, gemm_avx2_same_bits);
    tcase_add_test(tc, linear_avx2_same_bits);
    tcase_add_test(tc, gelu_and_relu_values);
    tcase_add_test(tc, erf_within_3e7_of_libm);
    tcase_add_test(tc, layernorm_kernels_same_bits);
    tcase_add_test(tc, kept_statistics_same_bits);
    tcase_add_test(tc, softmax_rows_sum_to_one);
    tcase_add_test(tc, softmax_matches_double_reference);
    tcase_add_test(tc, softmax_square_avx2_same_bits);
    tcase_add_test(tc, softmax_entropy_both_paths);
    tcase_add_test(tc, softmax_entropy_tokens_same_bits);
    tcase_add_test(tc, softmax_entropy_avx2_same_bits);
    tcase_add_test(tc, vector_log_exp_avx2_same_bits);
    tcase_add_test(tc, lanes_kernel_same_bits);
    tcase_add_test(tc, vector_log_within_one_ulp);
    tcase_add_test(tc, attention_causal_and_full);
    tcase_add_test(tc, attention_heads_are_independent);
    tcase_add_test(tc, entropy_known_values);
    tcase_add_test(tc, rmsnorm_known_values);
    tcase_add_test(tc, swiglu_in_place_equals_out_of_place);
    tcase_add_test(tc, rope_rotates_by_relative_position);
    tcase_add_test(tc, gqa_equals_repeated_kv);
    tcase_add_test(tc, attention_avx512_matches_blas);
    tcase_add_test(tc, attention_avx2_same_bits);
    tcase_add_test(tc, attention_backward_row0_same_values);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
