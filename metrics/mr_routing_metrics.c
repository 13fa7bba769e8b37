#include "mr_routing_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_ops.h"

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

int mr_routing_acc_add(mr_routing_acc *a, const mr_trace *tr, int s0)
{
    MR_REQUIRE(tr->n_moe == a->n_moe && tr->E == a->E && tr->k == a->k, MR_EINPUT,
               "routing trace does not match the accumulator");
    MR_REQUIRE(s0 >= 0 && s0 + tr->B <= a->n, MR_EINPUT, "samples %d..%d outside 0..%d", s0,
               s0 + tr->B - 1, a->n - 1);
    int B = tr->B, T = tr->T, E = a->E, k = a->k;
    int64_t *cnt = malloc((size_t)E * 2 * sizeof *cnt);
    uint64_t *ps = malloc((size_t)E * sizeof *ps);
    if (!cnt || !ps) {
        free(cnt);
        free(ps);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int mi = 0; mi < a->n_moe; mi++) {
        memset(cnt, 0, (size_t)E * 2 * sizeof *cnt);
        memset(ps, 0, (size_t)E * sizeof *ps);
        for (int b = 0; b < B; b++) {
            double h = 0.0, hw = 0.0;
            for (int t = 0; t < T; t++) {
                size_t tok = (size_t)mi * B * T + (size_t)b * T + t;
                const float *p = tr->probs + tok * E;
                const int *idx = tr->topk + tok * k;
                const float *w = tr->weights + tok * k;
                h += mr_entropy(p, E);
                double ws = 0.0, hk = 0.0;
                for (int j = 0; j < k; j++) ws += w[j];
                for (int j = 0; j < k; j++) {
                    double q = ws > 0.0 ? w[j] / ws : 0.0;
                    if (q > 0.0) hk -= q * log(q);
                    cnt[idx[j]]++;
                }
                hw += hk;
                cnt[E + idx[0]]++;
                /* llround of p * 2^32 >= 0: p (24 significant bits) times 2^32 plus 0.5 is
                 * exact in double, so truncating it is llround, without its call */
                for (int e = 0; e < E; e++) ps[e] += (uint64_t)((double)p[e] * FIX_ONE + 0.5);
            }
            a->entropy[(size_t)(s0 + b) * a->n_moe + mi] = h / T;
            a->wentropy[(size_t)(s0 + b) * a->n_moe + mi] = hw / T;
        }
        for (int e = 0; e < E; e++) {
            size_t i = (size_t)mi * E + e;
#pragma omp atomic
            a->load[i] += cnt[e];
#pragma omp atomic
            a->top1[i] += cnt[E + e];
#pragma omp atomic
            a->psum[i] += ps[e];
        }
    }
#pragma omp atomic
    a->n_tokens += (int64_t)B * T;
    free(cnt);
    free(ps);
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
