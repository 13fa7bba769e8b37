/* mr_simd.h — what the elementwise kernels of mr_ops.c and mr_ops_grad.c share: the
 * function-multiversioning macro, the vectorizable erf, and the libmvec declarations.
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
 * order fixed per machine (the routing statistics), get an AVX-512 clone as well. */
#define MR_VECTOR_CLONES_512 __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MR_VECTOR_CLONES
#define MR_VECTOR_CLONES_512
#endif

/* Kernels written with AVX-512 intrinsics (the top-k search, the softmax and its
 * entropies, float16 widening): compiled for these extensions only, called only where
 * mr_simd_avx512() (analysis/mr_ops.h) says the CPU has them; every such kernel keeps a
 * portable path for other CPUs, and the unit tests run both. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MR_AVX512 1
#define MR_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma,f16c")))
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
