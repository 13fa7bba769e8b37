#include "mr_routing_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_ops.h"
#include "../analysis/mr_simd.h"

#define FIX_ONE 4294967296.0 /* 2^32: probabilities summed as exact integers */

int mr_routing_acc_alloc(mr_routing_acc **out, int n, int n_moe, int E, int k)
{
    *out = NULL;
    MR_REQUIRE(n >= 1 && n_moe >= 0 && E >= 1 && k >= 1 && k <= E, MR_EINPUT,
               "routing accumulator: bad sizes n=%d n_moe=%d E=%d k=%d", n, n_moe, E, k);
    /* the struct and its five arrays in one zeroed block (every element is 8 bytes) */
    size_t ps = (size_t)n * n_moe + 1, ls = (size_t)n_moe * E + 1;
    _Static_assert(sizeof(double) == 8 && sizeof(int64_t) == 8 && sizeof(uint64_t) == 8,
                   "8-byte elements");
    size_t head = (sizeof(mr_routing_acc) + 7) / 8;
    uint64_t *block = calloc(head + 2 * ps + 3 * ls, 8);
    if (!block) return mr_error_set(MR_ENOMEM, "out of memory");
    mr_routing_acc *a = (mr_routing_acc *)block;
    *a = (mr_routing_acc){.n = n, .n_moe = n_moe, .E = E, .k = k};
    a->entropy = (double *)(block + head);
    a->wentropy = a->entropy + ps;
    a->load = (int64_t *)(a->wentropy + ps);
    a->top1 = a->load + ls;
    a->psum = (uint64_t *)(a->top1 + ls);
    *out = a;
    return MR_OK;
}

void mr_routing_acc_free(mr_routing_acc *a) { free(a); }

MR_VECTOR_CLONES_512
void mr_routing_psum_add(double *restrict acc, const float *restrict p, int E)
{
#pragma omp simd
    for (int e = 0; e < E; e++) acc[e] += (double)p[e];
}

void mr_routing_psum_fix(uint64_t *ps, const double *acc, int E)
{
    for (int e = 0; e < E; e++) ps[e] = (uint64_t)llround(acc[e] * FIX_ONE);
}

/* Top-k and top-1 counts of the real tokens of one layer of one sample into cnt[2E]:
 * from int ids (mr_trace) and from the 16-bit ids of a read trace (io/mr_trace_io.h). */
#define COUNT_LAYER(NAME, ID)                                                                  \
    static void NAME(int64_t *cnt, const ID *topk, const uint8_t *mask, int T, int E, int k)  \
    {                                                                                          \
        for (int t = 0; t < T; t++) {                                                          \
            if (mask && !mask[t]) continue;                                                    \
            const ID *idx = topk + (size_t)t * k;                                              \
            for (int j = 0; j < k; j++) cnt[idx[j]]++;                                         \
            cnt[E + idx[0]]++;                                                                 \
        }                                                                                      \
    }
COUNT_LAYER(count_layer, int)
COUNT_LAYER(count_layer16, uint16_t)

/* Layer mi's counts and probability sums of one sample into the layer totals. */
static void merge_layer(mr_routing_acc *a, int mi, const int64_t *cnt, const uint64_t *ps)
{
    for (int e = 0; e < a->E; e++) {
        size_t i = (size_t)mi * a->E + e;
#pragma omp atomic
        a->load[i] += cnt[e];
#pragma omp atomic
        a->top1[i] += cnt[a->E + e];
#pragma omp atomic
        a->psum[i] += ps[e];
    }
}

static int real_tokens(const uint8_t *mask, int T)
{
    int real = T;
    if (mask) {
        real = 0;
        for (int t = 0; t < T; t++) real += mask[t] != 0;
    }
    return real;
}

/* One MoE layer of one sample: the sums over its real tokens. Every per-token statistic
 * of a layer is computed here, in one pass over the tokens (new per-layer metrics hook in
 * beside the entropy); `moe-robust analyze` computes the same sums while it reads a
 * trace (io/mr_trace_io.c) and adds them with mr_routing_acc_add_sums. */
static void layer_sample(double *h_out, double *hw_out, double *acc, const float *probs,
                         const float *weights, const uint8_t *mask, int T, int E, int k)
{
    double h = 0.0, hw = 0.0;
    for (int t = 0; t < T; t++) {
        if (mask && !mask[t]) continue;
        const float *p = probs + (size_t)t * E;
        h += mr_entropy(p, E);
        hw += mr_entropy_renorm(weights + (size_t)t * k, k);
        mr_routing_psum_add(acc, p, E);
    }
    *h_out = h;
    *hw_out = hw;
}

int mr_routing_acc_add_sample(mr_routing_acc *a, int s, const float *probs, const int *topk,
                              const float *weights, const uint8_t *mask, int T,
                              size_t layer_stride)
{
    MR_REQUIRE(s >= 0 && s < a->n, MR_EINPUT, "sample %d outside 0..%d", s, a->n - 1);
    int E = a->E, k = a->k, real = real_tokens(mask, T);
    MR_REQUIRE(real >= 1, MR_EINPUT, "sample %d has no real token", s);
    int64_t *cnt = malloc((size_t)E * 2 * sizeof *cnt);
    uint64_t *ps = malloc((size_t)E * sizeof *ps);
    double *acc = malloc((size_t)E * sizeof *acc);
    if (!cnt || !ps || !acc) {
        free(cnt);
        free(ps);
        free(acc);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int mi = 0; mi < a->n_moe; mi++) {
        memset(cnt, 0, (size_t)E * 2 * sizeof *cnt);
        memset(acc, 0, (size_t)E * sizeof *acc);
        size_t tok = (size_t)mi * layer_stride;
        double h, hw;
        layer_sample(&h, &hw, acc, probs + tok * E, weights + tok * k, mask, T, E, k);
        count_layer(cnt, topk + tok * k, mask, T, E, k);
        mr_routing_psum_fix(ps, acc, E);
        a->entropy[(size_t)s * a->n_moe + mi] = h / real;
        a->wentropy[(size_t)s * a->n_moe + mi] = hw / real;
        merge_layer(a, mi, cnt, ps);
    }
#pragma omp atomic
    a->n_tokens += real;
    free(cnt);
    free(ps);
    free(acc);
    return MR_OK;
}

int mr_routing_acc_add_sums(mr_routing_acc *a, int s, const double *h, const double *hw,
                            size_t stride, const uint64_t *psum, size_t pstride,
                            const uint16_t *topk, const uint8_t *mask, int T, size_t layer_stride)
{
    MR_REQUIRE(s >= 0 && s < a->n, MR_EINPUT, "sample %d outside 0..%d", s, a->n - 1);
    int E = a->E, k = a->k, real = real_tokens(mask, T);
    MR_REQUIRE(real >= 1, MR_EINPUT, "sample %d has no real token", s);
    int64_t *cnt = malloc((size_t)E * 2 * sizeof *cnt);
    if (!cnt) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int mi = 0; mi < a->n_moe; mi++) {
        memset(cnt, 0, (size_t)E * 2 * sizeof *cnt);
        count_layer16(cnt, topk + (size_t)mi * layer_stride * k, mask, T, E, k);
        a->entropy[(size_t)s * a->n_moe + mi] = h[mi * stride] / real;
        a->wentropy[(size_t)s * a->n_moe + mi] = hw[mi * stride] / real;
        merge_layer(a, mi, cnt, psum + mi * pstride);
    }
#pragma omp atomic
    a->n_tokens += real;
    free(cnt);
    return MR_OK;
}

int mr_routing_acc_add(mr_routing_acc *a, const mr_trace *tr, int s0)
{
    MR_REQUIRE(tr->n_moe == a->n_moe && tr->E == a->E && tr->k == a->k, MR_EINPUT,
               "routing trace does not match the accumulator");
    MR_REQUIRE(s0 >= 0 && s0 + tr->B <= a->n, MR_EINPUT, "samples %d..%d outside 0..%d", s0,
               s0 + tr->B - 1, a->n - 1);
    size_t T = (size_t)tr->T, stride = (size_t)tr->B * T;
    for (int b = 0; b < tr->B; b++)
        MR_TRY(mr_routing_acc_add_sample(a, s0 + b, tr->probs + b * T * a->E,
                                         tr->topk + b * T * a->k, tr->weights + b * T * a->k,
                                         NULL, tr->T, stride));
    return MR_OK;
}

void mr_load_balance(const int64_t *load, int E, double *entropy, double *cv,
                     double *max_over_mean, int *dead)
{
    double total = 0.0, mx = 0.0;
    int nd = 0;
    for (int e = 0; e < E; e++) {
        total += (double)load[e];
        mx = (double)load[e] > mx ? (double)load[e] : mx;
        nd += load[e] == 0;
    }
    double mean = total / E, var = 0.0, h = 0.0;
    for (int e = 0; e < E; e++) {
        double f = total > 0 ? load[e] / total : 0.0;
        if (f > 0.0) h -= f * log(f);
        var += ((double)load[e] - mean) * ((double)load[e] - mean);
    }
    var = E > 1 ? var / (E - 1) : 0.0;
    *entropy = h;
    *cv = mean > 0 ? sqrt(var) / mean : 0.0;
    *max_over_mean = mean > 0 ? mx / mean : 0.0;
    *dead = nd;
}

int mr_routing_summarize(mr_layer_routing *out, const mr_routing_acc *a, int B, double level,
                         uint64_t seed, mr_boot_cache *cache)
{
    double lnE = log((double)a->E);
    double *scratch = B > 0 ? malloc((size_t)B * sizeof *scratch) : NULL;
    double *norm = malloc((size_t)a->n * sizeof *norm);
    if ((B > 0 && !scratch) || !norm) {
        free(scratch);
        free(norm);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    int st = MR_OK;
    for (int mi = 0; mi < a->n_moe && st == MR_OK; mi++) {
        mr_layer_routing *o = &out[mi];
        memset(o, 0, sizeof *o);
        const double *h = a->entropy + mi, *hw = a->wentropy + mi;
        for (int s = 0; s < a->n; s++) norm[s] = a->E > 1 ? h[(size_t)s * a->n_moe] / lnE : 0.0;
        if (B > 0) {
            char purpose[64];
            snprintf(purpose, sizeof purpose, "bootstrap/entropy/%d", mi);
            st = mr_stats_bootstrap_mean(&o->entropy, h, (size_t)a->n, (size_t)a->n_moe, B,
                                         level, seed, purpose, scratch, cache);
            /* the normalized entropy is a fixed rescaling: same resamples, same purpose */
            if (st == MR_OK)
                st = mr_stats_bootstrap_mean(&o->entropy_norm, norm, (size_t)a->n, 1, B, level,
                                             seed, purpose, scratch, cache);
            snprintf(purpose, sizeof purpose, "bootstrap/wentropy/%d", mi);
            if (st == MR_OK)
                st = mr_stats_bootstrap_mean(&o->wentropy, hw, (size_t)a->n, (size_t)a->n_moe, B,
                                             level, seed, purpose, scratch, cache);
        } else {
            o->entropy.mean = o->entropy.lo = o->entropy.hi =
                mr_stats_mean(h, (size_t)a->n, (size_t)a->n_moe);
            o->entropy_norm.mean = o->entropy_norm.lo = o->entropy_norm.hi =
                mr_stats_mean(norm, (size_t)a->n, 1);
            o->wentropy.mean = o->wentropy.lo = o->wentropy.hi =
                mr_stats_mean(hw, (size_t)a->n, (size_t)a->n_moe);
        }
        const int64_t *load = a->load + (size_t)mi * a->E;
        mr_load_balance(load, a->E, &o->load_entropy, &o->cv, &o->max_over_mean, &o->dead);
        o->load_entropy_norm = a->E > 1 ? o->load_entropy / lnE : 0.0;
        double total = 0.0, aux = 0.0;
        for (int e = 0; e < a->E; e++) total += (double)load[e];
        o->load_counts = load;
        o->load_total = total;
        for (int e = 0; e < a->E && a->n_tokens > 0; e++) {
            double f1 = (double)a->top1[(size_t)mi * a->E + e] / (double)a->n_tokens;
            double P = (double)a->psum[(size_t)mi * a->E + e] / FIX_ONE / (double)a->n_tokens;
            aux += f1 * P;
        }
        o->aux_loss = a->E * aux;
        /* importance = summed routing probability per expert; its coefficient of variation
         * (unbiased std, as load_cv) is the importance loss of Shazeer et al. 2017, Sec. 4 */
        const uint64_t *imp = a->psum + (size_t)mi * a->E;
        double imp_mean = 0.0, imp_var = 0.0;
        for (int e = 0; e < a->E; e++) imp_mean += (double)imp[e] / FIX_ONE;
        imp_mean /= a->E;
        for (int e = 0; e < a->E; e++) {
            double d = (double)imp[e] / FIX_ONE - imp_mean;
            imp_var += d * d;
        }
        imp_var = a->E > 1 ? imp_var / (a->E - 1) : 0.0;
        o->importance_cv = imp_mean > 0 ? sqrt(imp_var) / imp_mean : 0.0;
    }
    free(scratch);
    free(norm);
    return st;
}

void mr_flip_compare(mr_flip_sums *out, const int *topk_a, const int *topk_b, int N, int k)
{
    out->top1 = out->set = out->jaccard = out->overlap = 0.0;
    for (int n = 0; n < N; n++) {
        const int *a = topk_a + (size_t)n * k, *b = topk_b + (size_t)n * k;
        int inter = 0;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) inter += a[i] == b[j];
        out->top1 += a[0] != b[0];
        out->set += inter != k;
        out->jaccard += 1.0 - (double)inter / (double)(2 * k - inter);
        out->overlap += (double)inter / (double)k;
    }
}
