/* mr_lanes_avx2.c — the token-lane kernel of mr_lanes.c in AVX2 + FMA + F16C, for CPUs
 * without AVX-512 (mr_lanes.h, mr_lanes_impl.h). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mr_lanes_impl.h"
#include "mr_simd.h"

/* E at run time: GCC cannot see that the experts it reads (i < E) are the ones it wrote,
 * so -Wmaybe-uninitialized is a false positive (as in mr_lanes.c) */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning (and would warn of the pragma) */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#ifdef MR_AVX2
/* The AVX2 form: AVX2 + FMA + F16C, for CPUs without AVX-512 (issue 17's machine class): 8 tokens
 * a call, token t in lane t of every ymm register, every lane doing what the AVX-512
 * kernel's lane does for its token, in its order, so the same bits. Where that kernel
 * uses an instruction AVX2 lacks: the 16-bit masked loads are whole loads of 16 logits
 * (a partial block of experts copied first, zero-padded: never a read past a token's
 * row), NaN / Inf (fpclass) are the 16-bit logits whose exponent bits are all set, the
 * masked additions are blends, the count of maxima subtracts the compare's all-ones, the
 * masked stores are vmaskmov (whose masked lanes never fault), the vpermt2w interleave of
 * the ids an 8 x 8 transpose and packs; the exponential and log are mr_exp_ps8 and
 * mr_log_pd4 (mr_simd.h: the bits of mr_exp_ps16 and mr_log_pd8 for these inputs); the
 * maximum's chains, its tree and the sums' trees are the same, per lane; the blocks of
 * 16 experts (j = i mod 16 indexes the chains and the float sums) are the same. */
#define KMAX _mm256_max_epi32
#define KMIN _mm256_min_epi32

/* r[i] lane j -> r[j] lane i: an 8 x 8 transpose of floats (24 shuffles) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void transpose8(__m256 *r)
{
    __m256 t[8], u[8];
    _Pragma("GCC unroll 4")
    for (int i = 0; i < 4; i++) { /* rows 2i, 2i + 1: columns 0, 1 | 4, 5 and 2, 3 | 6, 7 */
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    _Pragma("GCC unroll 2")
    for (int g = 0; g < 2; g++) { /* rows 4g .. 4g + 3: u[4g + m] columns m | 4 + m */
        u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
    _Pragma("GCC unroll 4")
    for (int m = 0; m < 4; m++) {
        r[m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x20);
        r[4 + m] = _mm256_permute2f128_ps(u[m], u[4 + m], 0x31);
    }
}

/* Logits 16b .. 16b + 15 of 8 tokens (rows of E at raw; the experts past E: 0) widened:
 * X[j] lane t is logit 16b + j of token t. *bad gets the 16-bit lanes that hold a NaN or
 * an Inf (exponent bits all set). The 8 x 16 block is transposed as 16-bit values (three
 * unpack stages within the 128-bit lanes: experts j and 8 + j of the 8 tokens in one
 * register), then widened (F16C, or bfloat16 as the top half of a float). */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
load_block8(__m256 *X, __m256i *bad, const uint16_t *raw, int E, int b, int bf16)
{
    __m256i A[8], B[8], C[8];
    int left = E - 16 * b; /* >= 1 */
    if (left >= 16) {
        _Pragma("GCC unroll 8")
        for (int t = 0; t < 8; t++)
            A[t] = _mm256_loadu_si256((const __m256i *)(const void *)(raw + (size_t)t * E + 16 * b));
    } else { /* a partial block: the tokens' last logits copied, never a read past them */
        uint16_t tail[8][16] __attribute__((aligned(32)));
        memset(tail, 0, sizeof tail);
        for (int t = 0; t < 8; t++)
            memcpy(tail[t], raw + (size_t)t * E + 16 * b, (size_t)left * sizeof *raw);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < 8; t++) A[t] = _mm256_load_si256((const __m256i *)(const void *)tail[t]);
    }
    const __m256i em = _mm256_set1_epi16((short)(bf16 ? 0x7f80 : 0x7c00));
    _Pragma("GCC unroll 8")
    for (int t = 0; t < 8; t++)
        *bad = _mm256_or_si256(*bad, _mm256_cmpeq_epi16(_mm256_and_si256(A[t], em), em));
    _Pragma("GCC unroll 4")
    for (int m = 0; m < 4; m++) { /* 32-bit element q: expert q (B[2m]) or 4 + q (B[2m+1]) of tokens 2m, 2m+1 */
        B[2 * m] = _mm256_unpacklo_epi16(A[2 * m], A[2 * m + 1]);
        B[2 * m + 1] = _mm256_unpackhi_epi16(A[2 * m], A[2 * m + 1]);
    }
    _Pragma("GCC unroll 2")
    for (int g = 0; g < 2; g++) /* 64-bit element q of C[4g + c]: expert 2c + q of tokens 4g .. 4g+3 */
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            C[4 * g + 2 * h] = _mm256_unpacklo_epi32(B[4 * g + h], B[4 * g + 2 + h]);
            C[4 * g + 2 * h + 1] = _mm256_unpackhi_epi32(B[4 * g + h], B[4 * g + 2 + h]);
        }
    _Pragma("GCC unroll 4")
    for (int c = 0; c < 4; c++) { /* experts 2c and 2c + 1 (and 8 + those) of the 8 tokens */
        __m256i d[2] = {_mm256_unpacklo_epi64(C[c], C[4 + c]), _mm256_unpackhi_epi64(C[c], C[4 + c])};
        _Pragma("GCC unroll 2")
        for (int q = 0; q < 2; q++) {
            __m128i lo = _mm256_castsi256_si128(d[q]), hi = _mm256_extracti128_si256(d[q], 1);
            int j = 2 * c + q;
            if (bf16) {
                X[j] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(lo), 16));
                X[8 + j] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(hi), 16));
            } else {
                X[j] = _mm256_cvtph_ps(lo);
                X[8 + j] = _mm256_cvtph_ps(hi);
            }
        }
    }
}

/* The key of logit i, as score_key's */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256i score_key8(__m256 x, int i)
{
    __m256i c = _mm256_castps_si256(_mm256_add_ps(x, _mm256_setzero_ps())); /* -0 becomes +0 */
    __m256i key = _mm256_xor_si256(c, _mm256_and_si256(_mm256_srai_epi32(c, 31),
                                                       _mm256_set1_epi32(0x7fffe000)));
    return _mm256_or_si256(key, _mm256_set1_epi32(63 - i)); /* equal values: lower i larger */
}

/* lanes q < n of 4 doubles (n <= 0: none) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256i lanes_below4(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

/* the ids of 8 tokens' top k (id[j] lane t: the j-th of token t, j < 8) into
 * out[t * k + j], t < nt, j < k: an 8 x 8 transpose, then two tokens' rows packed to 16
 * bits per register; rows of k < 8 through a buffer (each row's store overlaps the next
 * row's, which overwrites it), nothing written past out[nt * k - 1] */
MR_AVX2_TARGET static inline __attribute__((always_inline)) void
store_ids(uint16_t *out, const __m256i *id, int nt, int k)
{
    __m256 r[8];
    _Pragma("GCC unroll 8")
    for (int j = 0; j < 8; j++) r[j] = _mm256_castsi256_ps(id[j]);
    transpose8(r);
    uint16_t buf[8 * 8 + 8];
    _Pragma("GCC unroll 4")
    for (int m = 0; m < 4; m++) { /* rows of tokens 2m and 2m + 1 */
        __m256i w = _mm256_permute4x64_epi64(_mm256_packus_epi32(_mm256_castps_si256(r[2 * m]),
                                                                 _mm256_castps_si256(r[2 * m + 1])),
                                             0xd8);
        if (k == 8) {
            if (2 * m + 1 < nt)
                _mm256_storeu_si256((__m256i *)(void *)(out + 16 * m), w);
            else if (2 * m < nt)
                _mm_storeu_si128((__m128i *)(void *)(out + 16 * m), _mm256_castsi256_si128(w));
        } else {
            _mm_storeu_si128((__m128i *)(void *)(buf + 2 * m * k), _mm256_castsi256_si128(w));
            _mm_storeu_si128((__m128i *)(void *)(buf + (2 * m + 1) * k), _mm256_extracti128_si256(w, 1));
        }
    }
    if (k < 8) memcpy(out, buf, (size_t)nt * k * sizeof *out);
}

/* lanes 4 qq .. 4 qq + 3 of a float vector, in double */
#define QUARTER_PD(v, qq)                                                                  \
    _mm256_cvtps_pd((qq) ? _mm256_extractf128_ps(v, 1) : _mm256_castps256_ps128(v))

/* sum_tree for the tokens 4 qq .. 4 qq + 3: v[j] lane t the float sum's lane j of token
 * t; lanes j and j + 8 added in double, then the tree 4 apart, 2, 1 */
MR_AVX2_TARGET static inline __attribute__((always_inline)) __m256d sum_tree4(const __m256 *v,
                                                                              const int qq)
{
    __m256d w[8];
    _Pragma("GCC unroll 8")
    for (int i = 0; i < 8; i++) w[i] = _mm256_add_pd(QUARTER_PD(v[i], qq), QUARTER_PD(v[i + 8], qq));
    _Pragma("GCC unroll 3")
    for (int d = 4; d > 0; d /= 2)
        _Pragma("GCC unroll 4")
        for (int i = 0; i < d; i++) w[i] = _mm256_add_pd(w[i + d], w[i]);
    return w[0];
}

/* lanes_kernel for 8 tokens (raw: 8 rows of E, read whole), K = k rounded up to a power of
 * two; E at run time (an instance for E = 64, as the AVX-512 kernel has, was no faster in
 * bench/mr_softmax_simd.c: 68.5 ns a token with it, 64.7 without, the host loaded) */
MR_AVX2_TARGET static inline __attribute__((always_inline)) int
lanes8_kernel(const uint16_t *raw, int nt, int E, int k, int bf16, uint16_t *topk, double *h,
              double *h_topk, double *acc, const unsigned char *real, const int K)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256 X[64], Ev[64]; /* X[i] lane t: logit i of token t */
    __m256 vm[16];        /* the maxima's chains per j = i mod 16 */
    __m256i bad = _mm256_setzero_si256();
    _Pragma("GCC unroll 16")
    for (int j = 0; j < 16; j++) vm[j] = _mm256_set1_ps(-INFINITY);
    _Pragma("GCC unroll 4")
    for (int b = 0; b < 4; b++) {
        if (16 * b >= E) break; /* run-time E: the blocks past E are not read */
        load_block8(X + 16 * b, &bad, raw, E, b, bf16);
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 16; j++) {
            if (16 * b + j >= E) break;
            vm[j] = _mm256_max_ps(X[16 * b + j], vm[j]);
        }
    }
    /* the maximum: _mm512_reduce_max_ps's tree over j */
    _Pragma("GCC unroll 8")
    for (int i = 0; i < 8; i++) vm[i] = _mm256_max_ps(vm[i + 8], vm[i]);
    _Pragma("GCC unroll 4")
    for (int i = 0; i < 4; i++) vm[i] = _mm256_max_ps(vm[i + 4], vm[i]);
    const __m256 mx = _mm256_max_ps(_mm256_max_ps(vm[0], vm[2]), _mm256_max_ps(vm[1], vm[3]));
    /* the exponentials and their two sums per j, in block order */
    __m256 zf[16], dt[16];
    __m256i top = _mm256_setzero_si256();
    _Pragma("GCC unroll 1")
    for (int j = 0; j < 16; j++) {
        __m256 z = zero, dd = zero;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < 4; b++) {
            int i = 16 * b + j;
            if (i >= E) break;
            __m256 d = _mm256_sub_ps(X[i], mx);
            __m256 e = mr_exp_ps8(d);
            __m256 at = _mm256_cmp_ps(d, zero, _CMP_EQ_OQ);
            top = _mm256_sub_epi32(top, _mm256_castps_si256(at)); /* + 1 where d == 0 */
            z = _mm256_blendv_ps(_mm256_add_ps(z, e), z, at);     /* e where d != 0 */
            dd = _mm256_fmadd_ps(e, d, dd);
            Ev[i] = e;
        }
        zf[j] = z;
        dt[j] = dd;
    }
    /* the top-k: each lane's k largest keys */
    __m256i run[8], grp[8];
    const __m256i kmin = _mm256_set1_epi32(INT32_MIN);
    _Pragma("GCC unroll 8")
    for (int q = 0; q < K; q++) run[q] = q < E ? score_key8(X[q], q) : kmin;
    if (K > 1) SORT_NET(run, K);
    _Pragma("GCC unroll 64")
    for (int g0 = K; g0 < E; g0 += K) {
        _Pragma("GCC unroll 8")
        for (int q = 0; q < K; q++) grp[q] = g0 + q < E ? score_key8(X[g0 + q], g0 + q) : kmin;
        if (K == 1) {
            run[0] = _mm256_max_epi32(run[0], grp[0]);
        } else {
            SORT_NET(grp, K);
            MERGE_NET(run, grp, K);
        }
    }
    /* their ids, and their e and e d from their logits (lanes k .. 15 of the sums: 0) */
    __m256i id[8];
    __m256 ek[16], edk[16];
    _Pragma("GCC unroll 16")
    for (int j = 0; j < 16; j++) ek[j] = edk[j] = zero;
    _Pragma("GCC unroll 8")
    for (int j = 0; j < 8; j++) {
        id[j] = _mm256_setzero_si256();
        if (j >= k) continue;
        __m256i key = run[j];
        id[j] = _mm256_andnot_si256(key, _mm256_set1_epi32(63)); /* i from 63 - i */
        __m256i kb = _mm256_and_si256(key, _mm256_set1_epi32(~63));
        __m256 x = _mm256_castsi256_ps(_mm256_xor_si256(
            kb, _mm256_and_si256(_mm256_srai_epi32(kb, 31), _mm256_set1_epi32(0x7fffe000))));
        __m256 dd = _mm256_sub_ps(x, mx);
        ek[j] = mr_exp_ps8(dd);
        edk[j] = _mm256_mul_ps(ek[j], dd);
    }
    store_ids(topk, id, nt, k);
    /* per 4 tokens: the sums' trees in double, the entropies, 1 / Z */
    const __m256d one_pd = _mm256_set1_pd(1.0);
    __m128 inv[2];
    _Pragma("GCC unroll 2")
    for (int qq = 0; qq < 2; qq++) {
        __m128i tq = qq ? _mm256_extracti128_si256(top, 1) : _mm256_castsi256_si128(top);
        __m256d z = _mm256_add_pd(_mm256_cvtepi32_pd(tq), sum_tree4(zf, qq));
        __m256i tm = lanes_below4(nt - 4 * qq); /* the tokens stored */
        _mm256_maskstore_pd(h + 4 * qq, tm,
                            _mm256_sub_pd(mr_log_pd4(z), _mm256_div_pd(sum_tree4(dt, qq), z)));
        __m256d zk = sum_tree4(ek, qq);
        __m256d pos = _mm256_cmp_pd(zk, _mm256_setzero_pd(), _CMP_GT_OQ);
        zk = _mm256_blendv_pd(one_pd, zk, pos);
        _mm256_maskstore_pd(h_topk + 4 * qq, tm,
                            _mm256_and_pd(pos, _mm256_sub_pd(mr_log_pd4(zk),
                                                             _mm256_div_pd(sum_tree4(edk, qq), zk))));
        inv[qq] = _mm256_cvtpd_ps(_mm256_div_pd(one_pd, z));
    }
    /* the probabilities, back to token-major (blocks of 8 experts), added to acc in token
     * order */
    if (acc) {
        unsigned on = 0; /* the tokens added: t < nt, real */
        for (int t = 0; t < nt; t++)
            if (!real || real[t]) on |= 1u << t;
        const __m256 vinv = _mm256_set_m128(inv[1], inv[0]);
        _Pragma("GCC unroll 8")
        for (int c = 0; c < 8; c++) {
            int left = E - 8 * c;
            if (left <= 0) break;
            __m256 R[8];
            _Pragma("GCC unroll 8")
            for (int j = 0; j < 8; j++) R[j] = j < left ? _mm256_mul_ps(Ev[8 * c + j], vinv) : zero;
            transpose8(R);
            __m256i m0 = lanes_below4(left), m1 = lanes_below4(left - 4);
            double *a = acc + 8 * c;
            __m256d a0 = left >= 8 ? _mm256_loadu_pd(a) : _mm256_maskload_pd(a, m0);
            __m256d a1 = left >= 8 ? _mm256_loadu_pd(a + 4) : _mm256_maskload_pd(a + 4, m1);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < 8; t++) {
                if (!(on >> t & 1u)) continue;
                a0 = _mm256_add_pd(a0, QUARTER_PD(R[t], 0));
                a1 = _mm256_add_pd(a1, QUARTER_PD(R[t], 1));
            }
            if (left >= 8) {
                _mm256_storeu_pd(a, a0);
                _mm256_storeu_pd(a + 4, a1);
            } else {
                _mm256_maskstore_pd(a, m0, a0);
                _mm256_maskstore_pd(a + 4, m1, a1);
            }
        }
    }
    return !_mm256_testz_si256(bad, bad);
}

/* lanes8_kernel with its constant K */
#define LANES8_K(K)                                                                        \
    MR_AVX2_TARGET static int lanes8_k##K(const uint16_t *raw, int nt, int E, int k, int bf16, \
                                          uint16_t *topk, double *h, double *h_topk,      \
                                          double *acc, const unsigned char *real)         \
    {                                                                                      \
        return lanes8_kernel(raw, nt, E, k, bf16, topk, h, h_topk, acc, real, K);         \
    }
LANES8_K(1)
LANES8_K(2)
LANES8_K(4)
LANES8_K(8)
#undef LANES8_K
#undef QUARTER_PD
#undef KMAX
#undef KMIN

int mr_route_lanes8_avx2(const uint16_t *raw, int nt, int E, int k, int bf16, uint16_t *topk,
                         double *h, double *h_topk, double *acc, const unsigned char *real)
{
    uint16_t pad[8 * 64];
    raw = mr_lanes_pad(pad, raw, nt, E, 8);
    if (k <= 1) return lanes8_k1(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
    if (k <= 2) return lanes8_k2(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
    if (k <= 4) return lanes8_k4(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
    return lanes8_k8(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
}
#else
typedef int mr_lanes_avx2_unused; /* no AVX2 kernel (not GCC on x86-64): ISO C wants a declaration */
#endif
