/* mr_lanes.c — 16 tokens' routing with the tokens across the vector lanes (mr_lanes.h):
 * the AVX-512 kernel (16 tokens in zmm registers) and the dispatch to its AVX2 + FMA + F16C
 * form for CPUs without AVX-512 (mr_lanes_avx2.c: 8 tokens in ymm registers, the same
 * bits).
 *
 * The 16 x E logits (E <= 64) are widened and transposed (16 x 16 blocks of floats) so
 * that X[i] holds logit i of the 16 tokens, lane t token t. Then, lane-wise, every step of
 * mr_softmax_entropy_tokens's kernel (analysis/mr_ops.c, softmax_tokens_reg) for its token,
 * in its order:
 *  - the maximum: lane j of its vector maximum over blocks of 16 experts is the chain
 *    vm_j = max(x_{16b+j}, vm_j) over b, here 16 vectors vm_j; then GCC's
 *    _mm512_reduce_max_ps tree over j (lanes 8 apart, 4 apart, 2, 1), the same operands in
 *    the same places (max is not commutative for signed zeros);
 *  - d_i = x_i - max and e_i = mr_exp_ps16(d_i) (the same exponential), the count of
 *    d_i == 0 (whose e_i = 1 is added as an integer), the float sums zf_j (e_i where
 *    d_i != 0) and dot_j (fused multiply-adds e_i d_i) in block order for each j, then
 *    both sums' tree of _mm512_reduce_add_pd in double over j: j + 8, then 4, 2, 1 apart;
 *  - the top-k's e_j and e_j d_j, recomputed from the chosen logits (the same inputs, so
 *    the same bits as the kernel's picks from its registers), summed by the same tree with
 *    the k <= 8 chosen in lanes 0..k-1 and zeros in the others;
 *  - both entropies by mr_log_pd8 and one division, 1 / Z in double rounded to float, the
 *    probabilities e_i (1 / Z), transposed back (token-major) and added to the row's sums
 *    acc in token order, as the kernel does.
 * The top-k: keys that order the scores exactly as mr_route_topk (analysis/mr_topk.c):
 * value descending, equal values (+0 and -0 included) to the lower index. A float widened
 * from 16 bits has its low 13 bits zero; the key is the float made ordered as a signed
 * integer (x + 0, which turns -0 into +0, with its magnitude bits flipped when negative),
 * with 63 - i in bits 0..5 (equal values: the lower index larger). A chosen logit is read
 * back from its key as +0 where it was -0: its difference to the maximum may then be +0
 * where the kernel's was -0, and e d with it, which the sums' first addition (+ 0 from
 * lanes 8..15) turns into +0 either way, so the sums keep their bits. The keys are unique, so each lane's top k is a sorting network's: groups of K = k rounded up
 * to a power of two sorted (19 compare-exchanges, vpmaxsd / vpminsd, for K = 8), each
 * merged into the running top K (the elementwise maximum of one sorted list and the other
 * reversed is bitonic and holds the top K; a bitonic sorter orders it). */
#include "mr_lanes.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "mr_lanes_impl.h"
#include "mr_ops.h" /* mr_simd_avx512, mr_simd_avx2 */
#include "mr_simd.h"

/* The kernel is instantiated for run-time E too, where GCC cannot see that the experts
 * it reads (i < E) are the ones it wrote: -Wmaybe-uninitialized is a false positive
 * there (tests/test_ops.c checks every E from 2 to 64 bit for bit). */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning (and would warn of the pragma) */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

int mr_route_lanes_ok(int E, int k)
{
    if (k < 1 || k > 8 || k > E || E > 64) return 0;
#ifdef MR_AVX512
    if (mr_simd_avx512()) return 1;
#endif
#ifdef MR_AVX2
    if (mr_simd_avx2()) return 1; /* the AVX2 kernel: 8 tokens at a time */
#endif
    return 0;
}

#ifdef MR_AVX512
#define KMAX _mm512_max_epi32
#define KMIN _mm512_min_epi32

/* r[i] lane j -> r[j] lane i: a 16 x 16 transpose of floats (64 shuffles) */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void transpose16(__m512 *r)
{
    __m512 u[16];
    _Pragma("GCC unroll 4")
    for (int g = 0; g < 4; g++) { /* u[4g + m] lane L: column 4L + m of rows 4g .. 4g+3 */
        __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]));
        __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]));
        __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]));
        __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]));
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    _Pragma("GCC unroll 4")
    for (int m = 0; m < 4; m++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44);
        __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xee);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44);
        __m512 v3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xee);
        r[m] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + m] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        r[8 + m] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
    }
}

/* 8 lanes (half 0: 0..7, 1: 8..15) to doubles */
#define HALF_PD(v, hh)                                                                     \
    _mm512_cvtps_pd((hh) ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)) \
                         : _mm512_castps512_ps256(v))

/* The key of logit i (x: widened from 16 bits) as described above */
MR_AVX512_TARGET static inline __attribute__((always_inline)) __m512i score_key(__m512 x, int i)
{
    __m512i c = _mm512_castps_si512(_mm512_add_ps(x, _mm512_setzero_ps())); /* -0: +0 */
    __m512i key = _mm512_ternarylogic_epi32(c, _mm512_srai_epi32(c, 31),
                                            _mm512_set1_epi32(0x7fffe000), 0x78); /* c ^ (s & M) */
    return _mm512_or_si512(key, _mm512_set1_epi32(63 - i)); /* the index below the value */
}

/* K keys sorted in descending order, lane-wise (K = 2, 4, 8) */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void sort_keys(__m512i *v, const int K)
{
    SORT_NET(v, K);
}

/* run[K] = the top K of sorted run[K] and sorted g[K], sorted */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void merge_keys(__m512i *run,
                                                                             const __m512i *g,
                                                                             const int K)
{
    MERGE_NET(run, g, K);
}

/* the ids of 16 tokens' top 8 (ids[j] lane t: the j-th of token t, 16-bit lanes 0..15
 * of a 256-bit half) into out[t * 8 + j], t < nt: two-table permutes (vpermt2w) */
MR_AVX512_TARGET static inline __attribute__((always_inline)) void store_ids8(uint16_t *out,
                                                                             const __m512i *id,
                                                                             int nt)
{
    __m512i P[4]; /* P[m]: ids 2m (16-bit lanes 0..15) and 2m + 1 (16..31) */
    for (int m = 0; m < 4; m++)
        P[m] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(id[2 * m])),
                                  _mm512_cvtepi32_epi16(id[2 * m + 1]), 1);
    /* element e of output o: token 4o + e / 8, id j = e % 8: P[j / 2] lane 16 (j % 2) + t,
     * of the pair (P0, P1) for j < 4 (index 32 (j / 2) + ...), (P2, P3) for j >= 4 */
    const __m512i base = _mm512_set_epi16(
        51, 35, 19, 3, 51, 35, 19, 3, 50, 34, 18, 2, 50, 34, 18, 2,
        49, 33, 17, 1, 49, 33, 17, 1, 48, 32, 16, 0, 48, 32, 16, 0);
    for (int o = 0; o < 4; o++) {
        int left = 8 * (nt - 4 * o);
        if (left <= 0) break;
        __m512i ix = _mm512_add_epi16(base, _mm512_set1_epi16((short)(4 * o)));
        __m512i v = _mm512_mask_blend_epi16((__mmask32)0xf0f0f0f0u, _mm512_permutex2var_epi16(P[0], ix, P[1]),
                                            _mm512_permutex2var_epi16(P[2], ix, P[3]));
        __mmask32 m = left >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << left) - 1u);
        _mm512_mask_storeu_epi16(out + 32 * o, m, v);
    }
}

/* _mm512_reduce_add_pd(_mm512_add_pd(CVT_LO(v), CVT_HI(v))) of analysis/mr_ops.c's
 * kernel, lane-wise: v[j] lane t is lane j of token t's float sum; the double sums of
 * the tokens of half hh (8 hh .. 8 hh + 7): lanes j and j + 8 added, then GCC's tree
 * (4 apart, 2, 1) */
MR_AVX512_TARGET static inline __attribute__((always_inline)) __m512d sum_tree(const __m512 *v,
                                                                              const int hh)
{
    __m512d w[8];
    _Pragma("GCC unroll 8")
    for (int i = 0; i < 8; i++) w[i] = _mm512_add_pd(HALF_PD(v[i], hh), HALF_PD(v[i + 8], hh));
    _Pragma("GCC unroll 4")
    for (int s = 4; s >= 1; s >>= 1)
        _Pragma("GCC unroll 4")
        for (int i = 0; i < s; i++) w[i] = _mm512_add_pd(w[i + s], w[i]);
    return w[0];
}

/* The kernel: NB blocks of 16 experts, K = k rounded up to a power of two, EC = E where
 * E is a constant (0: E at run time) */
MR_AVX512_TARGET static inline __attribute__((always_inline)) int
lanes_kernel(const uint16_t *raw, int nt, int E_, int k, int bf16, uint16_t *topk, double *h,
             double *h_topk, double *acc, const unsigned char *real, const int NB, const int K,
             const int EC)
{
    const int E = EC ? EC : E_;
    const __m512 zero = _mm512_setzero_ps(), ninf = _mm512_set1_ps(-INFINITY);
    __m512 X[64], Ev[64]; /* X[i] lane t: logit i of token t (16 tokens read: from nt on, 0s) */
    __m512 vm[16];        /* the maxima's chains per j = i mod 16 */
    __mmask16 bad = 0;
    _Pragma("GCC unroll 16")
    for (int j = 0; j < 16; j++) vm[j] = ninf;
    _Pragma("GCC unroll 4")
    for (int b = 0; b < NB; b++) {
        int left = E - 16 * b;
        /* run-time E (EC = 0) takes NB = 4: the blocks past E are not read (a shift by
         * left <= 0 is undefined and its mask would load past the token's row) */
        if (left <= 0) break;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512 R[16];
        _Pragma("GCC unroll 16")
        for (int t = 0; t < 16; t++) {
            __m256i hv = _mm256_maskz_loadu_epi16(m, raw + (size_t)t * E + 16 * b);
            R[t] = bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hv), 16))
                        : _mm512_cvtph_ps(hv);
        }
        transpose16(R);
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 16; j++) {
            if (16 * b + j >= E) break;
            bad |= _mm512_fpclass_ps_mask(R[j], 0x99); /* NaN, Inf */
            vm[j] = _mm512_max_ps(R[j], vm[j]);
            X[16 * b + j] = R[j];
        }
    }
    /* the maximum: _mm512_reduce_max_ps's tree over j */
    _Pragma("GCC unroll 8")
    for (int i = 0; i < 8; i++) vm[i] = _mm512_max_ps(vm[i + 8], vm[i]);
    _Pragma("GCC unroll 4")
    for (int i = 0; i < 4; i++) vm[i] = _mm512_max_ps(vm[i + 4], vm[i]);
    const __m512 mx = _mm512_max_ps(_mm512_max_ps(vm[0], vm[2]), _mm512_max_ps(vm[1], vm[3]));
    /* the exponentials and their two sums per j, in block order */
    __m512 zf[16], dt[16];
    __m512i top = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    _Pragma("GCC unroll 1") /* a loop: unrolled, GCC spilled the constants and sums */
    for (int j = 0; j < 16; j++) {
        __m512 z = zero, dd = zero;
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            int i = 16 * b + j;
            if (i >= E) break;
            __m512 d = _mm512_sub_ps(X[i], mx);
            __m512 e = mr_exp_ps16(d);
            __mmask16 at = _mm512_cmp_ps_mask(d, zero, _CMP_EQ_OQ);
            top = _mm512_mask_add_epi32(top, at, top, one);
            z = _mm512_mask_add_ps(z, (__mmask16)~at, z, e);
            dd = _mm512_fmadd_ps(e, d, dd);
            Ev[i] = e;
        }
        zf[j] = z;
        dt[j] = dd;
    }
    /* the top-k: each lane's k largest keys */
    __m512i run[8], grp[8];
    const __m512i kmin = _mm512_set1_epi32(INT32_MIN);
    _Pragma("GCC unroll 8")
    for (int q = 0; q < K; q++) run[q] = q < E ? score_key(X[q], q) : kmin;
    if (K > 1) sort_keys(run, K);
    _Pragma("GCC unroll 64")
    for (int g0 = K; g0 < E; g0 += K) {
        _Pragma("GCC unroll 8")
        for (int q = 0; q < K; q++) grp[q] = g0 + q < E ? score_key(X[g0 + q], g0 + q) : kmin;
        if (K == 1) {
            run[0] = _mm512_max_epi32(run[0], grp[0]);
        } else {
            sort_keys(grp, K);
            merge_keys(run, grp, K);
        }
    }
    /* their ids, and their e and e d from their logits (lanes k .. 7: 0, as the kernel's) */
    __m512i id[8];
    __m512 ek[16], edk[16]; /* lanes 8 .. 15 of the kernel's sums: 0 (k <= 8) */
    _Pragma("GCC unroll 16")
    for (int j = 0; j < 16; j++) ek[j] = edk[j] = zero;
    _Pragma("GCC unroll 8")
    for (int j = 0; j < 8; j++) {
        id[j] = _mm512_setzero_si512();
        if (j >= k) continue;
        __m512i key = run[j];
        id[j] = _mm512_andnot_si512(key, _mm512_set1_epi32(63)); /* 63 - (63 - i) */
        __m512i kb = _mm512_and_si512(key, _mm512_set1_epi32(~63));
        __m512 x = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(kb, _mm512_srai_epi32(kb, 31),
                                                                 _mm512_set1_epi32(0x7fffe000), 0x78));
        __m512 dd = _mm512_sub_ps(x, mx);
        ek[j] = mr_exp_ps16(dd);
        edk[j] = _mm512_mul_ps(ek[j], dd);
    }
    if (k == 8) {
        store_ids8(topk, id, nt);
    } else {
        int32_t ids[8][16] __attribute__((aligned(64)));
        for (int j = 0; j < k; j++) _mm512_store_si512(ids[j], id[j]);
        for (int t = 0; t < nt; t++)
            for (int j = 0; j < k; j++) topk[(size_t)t * k + j] = (uint16_t)ids[j][t];
    }
    /* per half of 8 tokens: the sums' trees in double, the entropies, 1 / Z */
    const __m512d one_pd = _mm512_set1_pd(1.0);
    __m256 inv[2];
    _Pragma("GCC unroll 2")
    for (int hh = 0; hh < 2; hh++) {
        __m256i th = hh ? _mm512_extracti64x4_epi64(top, 1) : _mm512_castsi512_si256(top);
        __m512d z = _mm512_add_pd(_mm512_cvtepi32_pd(th), sum_tree(zf, hh));
        int left = nt - 8 * hh;
        __mmask8 tm = left >= 8 ? (__mmask8)0xff : left > 0 ? (__mmask8)((1u << left) - 1u) : 0;
        _mm512_mask_storeu_pd(h + 8 * hh, tm,
                              _mm512_sub_pd(mr_log_pd8(z), _mm512_div_pd(sum_tree(dt, hh), z)));
        __m512d zk = sum_tree(ek, hh);
        __mmask8 pos = _mm512_cmp_pd_mask(zk, _mm512_setzero_pd(), _CMP_GT_OQ);
        zk = _mm512_mask_blend_pd(pos, one_pd, zk);
        _mm512_mask_storeu_pd(h_topk + 8 * hh, tm,
                              _mm512_maskz_sub_pd(pos, mr_log_pd8(zk), _mm512_div_pd(sum_tree(edk, hh), zk)));
        inv[hh] = _mm512_cvtpd_ps(_mm512_div_pd(one_pd, z));
    }
    /* the probabilities, back to token-major, added to acc in token order */
    if (acc) {
        unsigned add = 0; /* the tokens added: t < nt, real */
        for (int t = 0; t < nt; t++) add |= (unsigned)(!real || real[t]) << t;
        const __m512 vinv = _mm512_insertf32x8(_mm512_castps256_ps512(inv[0]), inv[1], 1);
        _Pragma("GCC unroll 4")
        for (int b = 0; b < NB; b++) {
            int left = E - 16 * b;
            if (left <= 0) break; /* run-time E: as in the loads above */
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
            __m512 R[16];
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 16; j++)
                R[j] = 16 * b + j < E ? _mm512_mul_ps(Ev[16 * b + j], vinv) : zero;
            transpose16(R);
            __m512d a0 = _mm512_maskz_loadu_pd((__mmask8)m, acc + 16 * b);
            __m512d a1 = _mm512_maskz_loadu_pd((__mmask8)(m >> 8), acc + 16 * b + 8);
            _Pragma("GCC unroll 16")
            for (int t = 0; t < 16; t++) {
                __mmask8 on = (__mmask8)-(int)(add >> t & 1u);
                a0 = _mm512_mask_add_pd(a0, on, a0, HALF_PD(R[t], 0));
                a1 = _mm512_mask_add_pd(a1, on, a1, HALF_PD(R[t], 1));
            }
            _mm512_mask_storeu_pd(acc + 16 * b, (__mmask8)m, a0);
            _mm512_mask_storeu_pd(acc + 16 * b + 8, (__mmask8)(m >> 8), a1);
        }
    }
    return bad != 0;
}

/* lanes_kernel with its constants: E = 64 (OLMoE, DeepSeek-MoE) a constant, other E at
 * run time (each instantiation is large: these 8 take some 20 s of GCC on the Zen 5 VM) */
#define LANES_K(K)                                                                         \
    MR_AVX512_TARGET static int lanes_k##K(const uint16_t *raw, int nt, int E, int k, int bf16, \
                                           uint16_t *topk, double *h, double *h_topk,     \
                                           double *acc, const unsigned char *real)        \
    {                                                                                      \
        if (E == 64) return lanes_kernel(raw, nt, E, k, bf16, topk, h, h_topk, acc, real, 4, K, 64); \
        return lanes_kernel(raw, nt, E, k, bf16, topk, h, h_topk, acc, real, 4, K, 0);     \
    }
LANES_K(1)
LANES_K(2)
LANES_K(4)
LANES_K(8)
#undef LANES_K
#undef KMAX
#undef KMIN
#undef HALF_PD
#endif

int mr_route_lanes16(const uint16_t *raw, int nt, int E, int k, int bf16, uint16_t *topk,
                     double *h, double *h_topk, double *acc, const unsigned char *real)
{
#ifdef MR_AVX512
    if (mr_simd_avx512()) {
        uint16_t pad[16 * 64];
        raw = mr_lanes_pad(pad, raw, nt, E, 16);
        if (k <= 1) return lanes_k1(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
        if (k <= 2) return lanes_k2(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
        if (k <= 4) return lanes_k4(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
        return lanes_k8(raw, nt, E, k, bf16, topk, h, h_topk, acc, real);
    }
#endif
#ifdef MR_AVX2
    if (mr_simd_avx2()) { /* tokens 0 .. 7, then 8 .. 15: acc in token order */
        int bad = mr_route_lanes8_avx2(raw, nt < 8 ? nt : 8, E, k, bf16, topk, h, h_topk, acc, real);
        if (nt > 8)
            bad |= mr_route_lanes8_avx2(raw + (size_t)8 * E, nt - 8, E, k, bf16,
                                        topk + (size_t)8 * k, h + 8, h_topk + 8, acc,
                                        real ? real + 8 : NULL);
        return bad;
    }
#endif
    (void)raw, (void)nt, (void)E, (void)k, (void)bf16, (void)topk;
    (void)h, (void)h_topk, (void)acc, (void)real;
    return 1; /* never called (mr_route_lanes_ok): the caller's checked path */
}
