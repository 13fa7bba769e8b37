/* Routing structure: co-activation, specialization, layer consistency
 * (mr_routing_struct.h, docs/metrics.md). */
#include "mr_routing_struct.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_ops.h" /* mr_simd_avx512 */
#include "../analysis/mr_simd.h"
#ifdef MR_AVX512
#include <immintrin.h>
#endif

int mr_struct_acc_alloc(mr_struct_acc **out, int n_moe, int E, int k)
{
    *out = NULL;
    MR_REQUIRE(n_moe >= 0 && E >= 1 && k >= 1 && k <= E, MR_EINPUT,
               "routing structure: bad sizes n_moe=%d E=%d k=%d", n_moe, E, k);
    mr_struct_acc *a = calloc(1, sizeof *a);
    if (!a) return mr_error_set(MR_ENOMEM, "out of memory");
    *a = (mr_struct_acc){.n_moe = n_moe, .E = E, .k = k};
    size_t ee = (size_t)n_moe * E * E + 1;
    a->single = calloc((size_t)n_moe * E + 1, sizeof *a->single);
    a->pair = calloc(ee, sizeof *a->pair);
    a->chain = calloc(ee, sizeof *a->chain);
    a->bits = calloc((size_t)E, sizeof *a->bits);
    if (!a->single || !a->pair || !a->chain || !a->bits) {
        mr_struct_acc_free(a);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    *out = a;
    return MR_OK;
}

void mr_struct_acc_free(mr_struct_acc *a)
{
    if (!a) return;
    free(a->single);
    free(a->pair);
    free(a->chain);
    free(a->bits);
    free(a->cls);
    free(a->voc);
    free(a->voc_n);
    free(a->dom);
    free(a);
}

/* Grow a zeroed table of rows x per int64 from *rows to `need` rows (doubling when
 * `dbl`: target ids, whose table is not reported row by row). */
static int grow(int64_t **t, int *rows, int need, size_t per, int dbl)
{
    if (need <= *rows) return MR_OK;
    int n = dbl && 2 * *rows > need ? 2 * *rows : need;
    int64_t *g = realloc(*t, (size_t)n * per * sizeof *g);
    if (!g) return mr_error_set(MR_ENOMEM, "out of memory");
    memset(g + (size_t)*rows * per, 0, (size_t)(n - *rows) * per * sizeof *g);
    *t = g;
    *rows = n;
    return MR_OK;
}

static int max_id(const int32_t *x, int n, size_t stride, int T)
{
    int m = -1;
    for (int b = 0; x && b < n; b++)
        for (int t = 0; t < T; t++) m = x[b * stride + t] > m ? x[b * stride + t] : m;
    return m;
}

/* Per-class (or per-domain) rows [rows, n_moe, 2, E]: top-k assignments, top-1 tokens. */
static void add_grouped(int64_t *tab, const int32_t *id, const mr_trace *tr, int n_moe, int E)
{
    int B = tr->B, T = tr->T, k = tr->k;
    for (int b = 0; b < B; b++) {
        if (id[b] < 0) continue;
        for (int mi = 0; mi < n_moe; mi++) {
            int64_t *row = tab + (((size_t)id[b] * n_moe + mi) * 2) * E;
            const int *sel = tr->topk + ((size_t)mi * B + b) * T * k;
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < k; j++) row[sel[t * k + j]]++;
                row[E + sel[t * k]]++;
            }
        }
    }
}

int mr_struct_acc_reserve(mr_struct_acc *a, int C, int V, int D)
{
    size_t le = (size_t)a->n_moe * a->E;
    MR_TRY(grow(&a->cls, &a->C, C, 2 * le, 0));
    MR_TRY(grow(&a->dom, &a->D, D, 2 * le, 0));
    if (V > a->V) {
        int v = a->V;
        MR_TRY(grow(&a->voc, &v, V, le, 1));
        MR_TRY(grow(&a->voc_n, &a->V, v, 1, 0));
    }
    return MR_OK;
}

/* Top-k counts of one token at layer mi: single, pair (ordered, i != j) and, from layer
 * 1 on, the chain from the previous layer's top-1 (prev: its top-k, NULL at layer 0). */
static inline void count_token(int64_t *single, int64_t *pair, int64_t *chain, const int *sel,
                               const int *prev, int mi, int E, int k)
{
    int64_t *s = single + (size_t)mi * E, *pl = pair + (size_t)mi * E * E;
    for (int i = 0; i < k; i++) {
        s[sel[i]]++;
        int64_t *row = pl + (size_t)sel[i] * E;
        for (int j = 0; j < k; j++) row[sel[j]] += j != i;
    }
    if (prev) chain[((size_t)mi * E + prev[0]) * E + sel[0]]++;
}

/* count_token with each unordered pair once, at [min][max] (mr_struct_acc.upper). */
static inline void count_token_upper(int64_t *single, int64_t *pair, int64_t *chain,
                                     const uint16_t *sel, const uint16_t *prev, int mi, int E,
                                     int k)
{
    int64_t *s = single + (size_t)mi * E, *pl = pair + (size_t)mi * E * E;
    for (int i = 0; i < k; i++) {
        int a = sel[i];
        s[a]++;
        for (int j = i + 1; j < k; j++) {
            int b = sel[j], lo = a < b ? a : b, hi = a < b ? b : a;
            pl[(size_t)lo * E + hi]++;
        }
    }
    if (prev) chain[((size_t)mi * E + prev[0]) * E + sel[0]]++;
}

/* The counts of up to 64 tokens of layer mi from their expert masks bits[E] (bit b of
 * bits[e]: token b chose expert e), which it clears: single[e] += popcount(bits[e]),
 * pair[i][j] += popcount(bits[i] & bits[j]) for i < j (count_token_upper's integers for
 * tokens whose k experts are distinct, as the trace reader checks: E^2 / 2 popcounts per
 * 64 tokens instead of 64 k (k - 1) / 2 scattered increments, 28 per token of an
 * OLMoE-sized router, 16 % of analyze; docs/performance.md). */
MR_VECTOR_CLONES
static void count_bits(int64_t *restrict single, int64_t *restrict pair,
                       uint64_t *restrict bits, int E)
{
    for (int i = 0; i < E; i++) {
        uint64_t b = bits[i];
        if (!b) continue;
        single[i] += __builtin_popcountll(b);
        int64_t *row = pair + (size_t)i * E;
        for (int j = i + 1; j < E; j++) row[j] += __builtin_popcountll(b & bits[j]);
    }
    memset(bits, 0, (size_t)E * sizeof *bits);
}

#ifdef MR_AVX512
/* count_bits with vpopcntq, 8 pairs per instruction (CPUs with AVX512_VPOPCNTDQ). */
__attribute__((target("avx512f,avx512vpopcntdq"))) static void count_bits_avx512(
    int64_t *restrict single, int64_t *restrict pair, uint64_t *restrict bits, int E)
{
    for (int i = 0; i < E; i++) {
        uint64_t b = bits[i];
        if (!b) continue;
        single[i] += __builtin_popcountll(b);
        const __m512i vb = _mm512_set1_epi64((long long)b);
        int64_t *row = pair + (size_t)i * E;
        for (int j = i + 1; j < E; j += 8) {
            __mmask8 m = E - j >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (E - j)) - 1u);
            __m512i x = _mm512_maskz_loadu_epi64(m, bits + j);
            __m512i c = _mm512_popcnt_epi64(_mm512_and_si512(x, vb));
            __m512i r = _mm512_maskz_loadu_epi64(m, row + j);
            _mm512_mask_storeu_epi64(row + j, m, _mm512_add_epi64(r, c));
        }
    }
    memset(bits, 0, (size_t)E * sizeof *bits);
}
#endif

static void count_block(int64_t *single, int64_t *pair, uint64_t *bits, int E)
{
#ifdef MR_AVX512
    if (mr_simd_avx512() && __builtin_cpu_supports("avx512vpopcntdq")) {
        count_bits_avx512(single, pair, bits, E);
        return;
    }
#endif
    count_bits(single, pair, bits, E);
}

#ifdef MR_AVX512
#define MR_GFNI_TARGET                                                                       \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,gfni")))

/* vpermb indices of transpose_bits64: TR_ROWS[8 J + 7 - r] = 8 r + J gathers byte J of
 * the 8 rows of a register into qword J (row r at byte 7 - r); TR_BYTES[8 i + I] = 8 I + i
 * transposes a register's 8 x 8 bytes. */
static const unsigned char TR_ROWS[64] = {
    56, 48, 40, 32, 24, 16, 8, 0, 57, 49, 41, 33, 25, 17, 9, 1,
    58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
    60, 52, 44, 36, 28, 20, 12, 4, 61, 53, 45, 37, 29, 21, 13, 5,
    62, 54, 46, 38, 30, 22, 14, 6, 63, 55, 47, 39, 31, 23, 15, 7,
};
static const unsigned char TR_BYTES[64] = {
    0, 8, 16, 24, 32, 40, 48, 56, 1, 9, 17, 25, 33, 41, 49, 57,
    2, 10, 18, 26, 34, 42, 50, 58, 3, 11, 19, 27, 35, 43, 51, 59,
    4, 12, 20, 28, 36, 44, 52, 60, 5, 13, 21, 29, 37, 45, 53, 61,
    6, 14, 22, 30, 38, 46, 54, 62, 7, 15, 23, 31, 39, 47, 55, 63,
};

/* bits[e] (bit t: token t of the block chose expert e), e < E <= 64, from the tokens'
 * expert masks m[64] (bit e of m[t]: token t chose expert e; tokens past the block's
 * end 0): the 64 x 64 bit matrix transposed as 8 x 8 blocks of 8 x 8 bits. Per register
 * of 8 tokens, vpermb brings each block's 8 bytes into a qword, one gf2p8affineqb
 * transposes each qword's 8 x 8 bits (result bit r of byte i = bit i of the matrix's
 * byte 7 - r, with the selector byte i = 1 << i); the blocks then change places (a
 * gather per 8 experts) and vpermb transposes each register's bytes. */
MR_GFNI_TARGET static void transpose_bits64(uint64_t *restrict bits, const uint64_t *restrict m,
                                            int E)
{
    const __m512i rows = _mm512_loadu_si512(TR_ROWS), bytes = _mm512_loadu_si512(TR_BYTES);
    const __m512i sel = _mm512_set1_epi64((long long)0x8040201008040201ULL);
    uint64_t blk[64]; /* [token block I][expert block J]: block (I, J) transposed */
    for (int I = 0; I < 8; I++) {
        __m512i y = _mm512_permutexvar_epi8(rows, _mm512_loadu_si512(m + 8 * I));
        _mm512_storeu_si512(blk + 8 * I, _mm512_gf2p8affine_epi64_epi8(sel, y, 0));
    }
    const __m512i at = _mm512_set_epi64(56, 48, 40, 32, 24, 16, 8, 0);
    for (int J = 0; 8 * J < E; J++) {
        __m512i x = _mm512_i64gather_epi64(_mm512_add_epi64(at, _mm512_set1_epi64(J)), blk, 8);
        int left = E - 8 * J;
        __mmask8 km = left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1u);
        _mm512_mask_storeu_epi64(bits + 8 * J, km, _mm512_permutexvar_epi8(bytes, x));
    }
}

/* Layer l of mr_struct_acc_add_sample's expert-mask counts for E <= 64 on CPUs with
 * AVX-512 VBMI and GFNI: a token's mask built in a register (its k ids shifted into 8
 * lanes at a time, OR-reduced), not k scattered ORs into bits[] (the same counts). */
MR_GFNI_TARGET static void add_layer_masks64(mr_struct_acc *a, const uint16_t *topk,
                                             const uint8_t *mask, int T, size_t layer_stride,
                                             int l)
{
    int E = a->E, k = a->k, nb = 0;
    int64_t *single = a->single + (size_t)l * E, *pair = a->pair + (size_t)l * E * E;
    int64_t *chain = a->chain + (size_t)l * E * E;
    uint64_t m[64];
    const __m512i one = _mm512_set1_epi64(1);
    for (int t = 0; t < T; t++) {
        if (mask && !mask[t]) continue;
        const uint16_t *sel = topk + (l * layer_stride + t) * k;
        __m512i acc = _mm512_setzero_si512();
        for (int j0 = 0; j0 < k; j0 += 8) {
            __mmask8 km = k - j0 >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (k - j0)) - 1u);
            __m512i ids = _mm512_cvtepu16_epi64(_mm_maskz_loadu_epi16(km, sel + j0));
            acc = _mm512_or_si512(acc, _mm512_maskz_sllv_epi64(km, one, ids));
        }
        m[nb] = (uint64_t)_mm512_reduce_or_epi64(acc);
        if (l) chain[(size_t)sel[-(ptrdiff_t)(layer_stride * k)] * E + sel[0]]++;
        if (++nb == 64) {
            transpose_bits64(a->bits, m, E);
            count_block(single, pair, a->bits, E);
            nb = 0;
        }
    }
    if (!nb) return;
    for (int i = nb; i < 64; i++) m[i] = 0;
    transpose_bits64(a->bits, m, E);
    count_block(single, pair, a->bits, E);
}

static int masks64_kernel(int E)
{
    return E <= 64 && mr_simd_avx512() && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("gfni");
}
#endif

/* What the samples carry besides routing (labels, domains, targets) into a. */
static int add_side(mr_struct_acc *a, const mr_trace *tr, const mr_struct_side *s)
{
    int B = tr->B, T = tr->T, E = a->E, k = a->k, L = a->n_moe;
    int mc = max_id(s->labels, B, 1, 1), md = max_id(s->domains, B, 1, 1);
    int mv = max_id(s->targets, B, s->target_stride, T);
    a->has_labels |= s->labels != NULL;
    a->has_domains |= s->domains != NULL;
    a->has_targets |= s->targets != NULL;
    MR_TRY(mr_struct_acc_reserve(a, mc + 1, mv + 1, md + 1));
    if (s->labels) add_grouped(a->cls, s->labels, tr, L, E);
    if (s->domains) add_grouped(a->dom, s->domains, tr, L, E);
    for (int b = 0; s->targets && b < B; b++)
        for (int t = 0; t < T; t++) {
            int x = s->targets[b * s->target_stride + t];
            if (x < 0) continue;
            a->voc_n[x]++;
            for (int mi = 0; mi < L; mi++) {
                const int *sel = tr->topk + (((size_t)mi * B + b) * T + t) * k;
                for (int j = 0; j < k; j++) a->voc[((size_t)x * L + mi) * E + sel[j]]++;
            }
        }
    return MR_OK;
}

int mr_struct_acc_add(mr_struct_acc *a, const mr_trace *tr, const mr_struct_side *side)
{
    MR_REQUIRE(tr->n_moe == a->n_moe && tr->E == a->E && tr->k == a->k && !a->upper, MR_EINPUT,
               "routing trace does not match the structure accumulator");
    int B = tr->B, T = tr->T, E = a->E, k = a->k, L = a->n_moe;
    size_t le = (size_t)L * E, lee = le * E;
    int64_t *loc = calloc(le + 2 * lee + 1, sizeof *loc);
    if (!loc) return mr_error_set(MR_ENOMEM, "out of memory");
    int64_t *single = loc, *pair = loc + le, *chain = pair + lee;
    for (int mi = 0; mi < L; mi++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                size_t tok = ((size_t)mi * B + b) * T + t;
                count_token(single, pair, chain, tr->topk + tok * k,
                            mi ? tr->topk + (tok - (size_t)B * T) * k : NULL, mi, E, k);
            }
    const mr_struct_side none = {0};
    int st = MR_OK;
#pragma omp critical(mr_struct_acc)
    {
        for (size_t i = 0; i < le; i++) a->single[i] += single[i];
        for (size_t i = 0; i < lee; i++) {
            a->pair[i] += pair[i];
            a->chain[i] += chain[i];
        }
        st = add_side(a, tr, side ? side : &none);
    }
    free(loc);
    return st;
}

int mr_struct_acc_add_sample(mr_struct_acc *a, const uint16_t *topk, const uint8_t *mask, int T,
                             size_t layer_stride, int32_t label, const int32_t *targets,
                             int32_t domain)
{
    int L = a->n_moe, E = a->E, k = a->k, real = 0;
    for (int t = 0; t < T; t++) real += !mask || mask[t];
    if (real == 0) return MR_OK;
    /* the counts in place, read from the rows (a is the caller's own) */
    a->upper = 1;
    /* by expert masks (count_bits) where the increments would cost more */
    int by_bits = (double)real * k * (k - 1) / 2 >= (double)E * E / 8;
    int masks64 = 0; /* the AVX-512 expert masks (add_layer_masks64) */
#ifdef MR_AVX512
    masks64 = by_bits && masks64_kernel(E);
    for (int l = 0; masks64 && l < L; l++) add_layer_masks64(a, topk, mask, T, layer_stride, l);
#endif
    for (int l = 0; !masks64 && l < L; l++) {
        int nb = 0;
        int64_t *single = a->single + (size_t)l * E, *pair = a->pair + (size_t)l * E * E;
        for (int t = 0; t < T; t++) {
            if (mask && !mask[t]) continue;
            const uint16_t *sel = topk + (l * layer_stride + t) * k;
            const uint16_t *prev = l ? sel - layer_stride * k : NULL;
            if (!by_bits) {
                count_token_upper(a->single, a->pair, a->chain, sel, prev, l, E, k);
                continue;
            }
            for (int j = 0; j < k; j++) a->bits[sel[j]] |= (uint64_t)1 << nb;
            if (prev) a->chain[((size_t)l * E + prev[0]) * E + sel[0]]++;
            if (++nb == 64) {
                count_block(single, pair, a->bits, E);
                nb = 0;
            }
        }
        if (nb) count_block(single, pair, a->bits, E);
    }
    if (label < 0 && !targets && domain < 0) return MR_OK;
    /* the real tokens' top-k, contiguous, for the labelled tables */
    int32_t *tg = targets ? malloc((size_t)real * sizeof *tg) : NULL;
    int *tk = malloc(((size_t)L * real * k + 1) * sizeof *tk);
    if (!tk || (targets && !tg)) {
        free(tk);
        free(tg);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++)
        for (int t = 0, j = 0; t < T; t++) {
            if (mask && !mask[t]) continue;
            for (int i = 0; i < k; i++)
                tk[((size_t)l * real + j) * k + i] = topk[(l * layer_stride + t) * k + i];
            if (tg && l == 0) tg[j] = targets[t];
            j++;
        }
    mr_trace tr = {.B = 1, .T = real, .E = E, .k = k, .n_moe = L, .topk = tk};
    mr_struct_side side = {.labels = label >= 0 ? &label : NULL, .targets = tg,
                           .target_stride = (size_t)real, .domains = domain >= 0 ? &domain : NULL};
    int st = add_side(a, &tr, &side);
    free(tk);
    free(tg);
    return st;
}

int mr_struct_acc_merge(mr_struct_acc *dst, const mr_struct_acc *src)
{
    MR_REQUIRE(dst->n_moe == src->n_moe && dst->E == src->E && dst->k == src->k, MR_EINPUT,
               "routing structure: merging accumulators of different shapes");
    size_t le = (size_t)dst->n_moe * dst->E, lee = le * dst->E;
    MR_TRY(mr_struct_acc_reserve(dst, src->C, src->V, src->D));
    MR_REQUIRE(!dst->upper, MR_EINPUT, "routing structure: merging into a private accumulator");
    for (size_t i = 0; i < le; i++) dst->single[i] += src->single[i];
    for (size_t i = 0; i < lee; i++) {
        dst->pair[i] += src->pair[i];
        dst->chain[i] += src->chain[i];
    }
    int E = dst->E;
    for (int l = 0; src->upper && l < dst->n_moe; l++) /* the lower triangle: pair (j, i) */
        for (int i = 0; i < E; i++)
            for (int j = i + 1; j < E; j++)
                dst->pair[((size_t)l * E + j) * E + i] += src->pair[((size_t)l * E + i) * E + j];
    for (size_t i = 0; i < (size_t)src->C * 2 * le; i++) dst->cls[i] += src->cls[i];
    for (size_t i = 0; i < (size_t)src->D * 2 * le; i++) dst->dom[i] += src->dom[i];
    for (size_t i = 0; i < (size_t)src->V * le; i++) dst->voc[i] += src->voc[i];
    for (int i = 0; i < src->V; i++) dst->voc_n[i] += src->voc_n[i];
    dst->has_labels |= src->has_labels;
    dst->has_domains |= src->has_domains;
    dst->has_targets |= src->has_targets;
    return MR_OK;
}

static double ent(const int64_t *x, int n, size_t stride, double N)
{
    double h = 0.0;
    for (int i = 0; i < n; i++) {
        double p = (double)x[i * stride] / N;
        if (p > 0.0) h -= p * log(p);
    }
    return h;
}

double mr_struct_nmi(const int64_t *n, int R, int C, size_t rs, size_t cs)
{
    /* marginals; rows and columns with no count do not change MI or the entropies */
    int64_t *a = calloc((size_t)R + 1, sizeof *a), *b = calloc((size_t)C + 1, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return NAN;
    }
    double N = 0.0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            int64_t v = n[r * rs + c * cs];
            a[r] += v;
            b[c] += v;
            N += (double)v;
        }
    double mi = 0.0, hu = N > 0 ? ent(a, R, 1, N) : 0.0, hv = N > 0 ? ent(b, C, 1, N) : 0.0;
    for (int r = 0; r < R && N > 0; r++)
        for (int c = 0; c < C; c++) {
            double v = (double)n[r * rs + c * cs];
            if (v > 0) mi += v / N * log(N * v / ((double)a[r] * (double)b[c]));
        }
    free(a);
    free(b);
    if (N <= 0) return NAN;
    if (hu <= 0.0 && hv <= 0.0) return 1.0; /* both one cluster (scikit-learn's rule) */
    double r = mi / (0.5 * (hu + hv));
    return r < 0.0 ? 0.0 : r > 1.0 ? 1.0 : r; /* rounding only */
}

static int desc(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a < b) - (a > b);
}

double mr_struct_top_share(const int64_t *x, int n, double frac)
{
    if (n <= 0) return NAN;
    int64_t *s = malloc((size_t)n * sizeof *s);
    if (!s) return NAN;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, desc);
    int m = (int)ceil(frac * n - 1e-9);
    double top = 0.0, all = 0.0;
    for (int i = 0; i < n; i++) {
        all += (double)s[i];
        if (i < m) top += (double)s[i];
    }
    free(s);
    return all > 0 ? top / all : NAN;
}

/* Top share of layer l's unordered pairs i < j. */
static double coact_top10(const mr_struct_acc *a, int l)
{
    int E = a->E, np = E * (E - 1) / 2, at = 0;
    if (np == 0) return NAN;
    int64_t *p = malloc((size_t)np * sizeof *p);
    if (!p) return NAN;
    for (int i = 0; i < E; i++)
        for (int j = i + 1; j < E; j++) p[at++] = a->pair[((size_t)l * E + i) * E + j];
    double r = mr_struct_top_share(p, np, 0.10);
    free(p);
    return r;
}

static double vocab_spec(const mr_struct_acc *a, int l)
{
    double m = 0.0, n = 0.0;
    for (int x = 0; x < a->V; x++) {
        if (a->voc_n[x] < MR_VOCAB_MIN_COUNT) continue;
        const int64_t *row = a->voc + ((size_t)x * a->n_moe + l) * a->E;
        int64_t best = 0;
        for (int e = 0; e < a->E; e++) best = row[e] > best ? row[e] : best;
        m += (double)best;
        n += (double)a->voc_n[x];
    }
    return n > 0 ? m / n : NAN;
}

void mr_struct_summarize(mr_struct_layer *out, const mr_struct_acc *a)
{
    int E = a->E, L = a->n_moe;
    size_t grp = (size_t)L * 2 * E; /* one class's (domain's) rows */
    for (int l = 0; l < L; l++) {
        mr_struct_layer *o = &out[l];
        o->coact_top10 = a->k >= 2 ? coact_top10(a, l) : NAN;
        o->class_nmi = a->has_labels && a->C > 0
                           ? mr_struct_nmi(a->cls + (size_t)l * 2 * E + E, a->C, E, grp, 1)
                           : NAN;
        o->domain_nmi = a->has_domains && a->D > 0
                            ? mr_struct_nmi(a->dom + (size_t)l * 2 * E + E, a->D, E, grp, 1)
                            : NAN;
        o->vocab_spec = a->has_targets ? vocab_spec(a, l) : NAN;
        o->layer_nmi = l > 0 ? mr_struct_nmi(a->chain + (size_t)l * E * E, E, E, (size_t)E, 1)
                             : NAN;
    }
}

void mr_struct_coact(double *out, const mr_struct_acc *a, int l)
{
    int E = a->E;
    for (int i = 0; i < E; i++) {
        double s = (double)a->single[(size_t)l * E + i];
        for (int j = 0; j < E; j++)
            out[i * E + j] = s <= 0 ? 0.0
                             : i == j ? 1.0
                                      : (double)a->pair[((size_t)l * E + i) * E + j] / s;
    }
}

/* Rows of a [rows, n_moe, 2, E] table as shares of their top-k assignments. */
static void usage(double *out, const int64_t *tab, int rows, const mr_struct_acc *a, int l)
{
    int E = a->E;
    for (int r = 0; r < rows; r++) {
        const int64_t *row = tab + (((size_t)r * a->n_moe + l) * 2) * E;
        double s = 0.0;
        for (int e = 0; e < E; e++) s += (double)row[e];
        for (int e = 0; e < E; e++) out[r * E + e] = s > 0 ? (double)row[e] / s : 0.0;
    }
}

void mr_struct_class_usage(double *out, const mr_struct_acc *a, int l)
{
    usage(out, a->cls, a->C, a, l);
}

void mr_struct_domain_usage(double *out, const mr_struct_acc *a, int l)
{
    usage(out, a->dom, a->D, a, l);
}
