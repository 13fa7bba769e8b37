/* Known answers of the routing-structure metrics (metrics/mr_routing_struct.h,
 * docs/metrics.md "Routing structure"): hand-built routings whose co-activation matrix,
 * usage matrices, NMIs and vocabulary specialization are worked out in the comments. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "analysis/mr_ops.h" /* mr_simd_avx512_set */
#include "metrics/mr_routing_struct.h"
#include "mr_test_util.h"

/* A trace of B samples of T tokens and L layers with the given top-k (probs unused). */
static mr_trace make(int B, int T, int L, int E, int k, int *topk)
{
    return (mr_trace){.B = B, .T = T, .E = E, .k = k, .n_moe = L, .topk = topk};
}

START_TEST(coactivation_matrix_and_top_share)
{
    /* one layer, E = 4, k = 2, four tokens: {0,1} {1,0} {0,2} {3,1}
     * single: e0 3, e1 3, e2 1, e3 1; pairs: (0,1) 2, (0,2) 1, (1,3) 1
     * P(1|0) = 2/3, P(2|0) = 1/3, P(0|1) = 2/3, P(3|1) = 1/3, P(0|2) = 1, P(1|3) = 1
     * unordered pair counts {2, 1, 1, 0, 0, 0}: the top ceil(0.6) = 1 pair holds 2 of 4 */
    int topk[] = {0, 1, 1, 0, 0, 2, 3, 1};
    mr_trace tr = make(1, 4, 1, 4, 2, topk);
    mr_struct_acc *a;
    ck_assert_int_eq(mr_struct_acc_alloc(&a, 1, 4, 2), MR_OK);
    ck_assert_int_eq(mr_struct_acc_add(a, &tr, NULL), MR_OK);
    double m[16];
    mr_struct_coact(m, a, 0);
    const double want[16] = {1, 2.0 / 3, 1.0 / 3, 0, 2.0 / 3, 1, 0, 1.0 / 3,
                             1, 0, 1, 0, 0, 1, 0, 1};
    for (int i = 0; i < 16; i++) ck_assert_double_eq_tol(m[i], want[i], 1e-15);
    mr_struct_layer s;
    mr_struct_summarize(&s, a);
    ck_assert_double_eq_tol(s.coact_top10, 0.5, 1e-15);
    ck_assert(isnan(s.class_nmi) && isnan(s.vocab_spec) && isnan(s.domain_nmi));
    ck_assert(isnan(s.layer_nmi)); /* the first MoE layer has no previous one */
    mr_struct_acc_free(a);
}
END_TEST

START_TEST(top_one_has_no_pairs)
{
    int topk[] = {0, 1, 2};
    mr_trace tr = make(1, 3, 1, 4, 1, topk);
    mr_struct_acc *a;
    ck_assert_int_eq(mr_struct_acc_alloc(&a, 1, 4, 1), MR_OK);
    ck_assert_int_eq(mr_struct_acc_add(a, &tr, NULL), MR_OK);
    mr_struct_layer s;
    mr_struct_summarize(&s, a);
    ck_assert(isnan(s.coact_top10));
    mr_struct_acc_free(a);
}
END_TEST

/* NMI by hand for contingency [[2, 0], [1, 1]] (N = 4): marginals a = (2, 2), b = (3, 1)
 * MI = 2/4 ln(4*2/(2*3)) + 1/4 ln(4*1/(2*3)) + 1/4 ln(4*1/(2*1))
 * H_U = ln 2, H_V = -(3/4 ln 3/4 + 1/4 ln 1/4); NMI = MI / ((H_U + H_V) / 2) */
static double nmi_2011(void)
{
    double mi = 0.5 * log(4.0 / 3) + 0.25 * log(2.0 / 3) + 0.25 * log(2.0);
    double hu = log(2.0), hv = -(0.75 * log(0.75) + 0.25 * log(0.25));
    return mi / (0.5 * (hu + hv));
}

START_TEST(nmi_known_answers)
{
    const int64_t perfect[4] = {5, 0, 0, 5}, indep[4] = {3, 3, 3, 3}, mixed[4] = {2, 0, 1, 1};
    ck_assert_double_eq_tol(mr_struct_nmi(perfect, 2, 2, 2, 1), 1.0, 1e-15);
    ck_assert_double_eq_tol(mr_struct_nmi(indep, 2, 2, 2, 1), 0.0, 1e-15);
    ck_assert_double_eq_tol(mr_struct_nmi(mixed, 2, 2, 2, 1), nmi_2011(), 1e-14);
    /* symmetric: the transposed table */
    ck_assert_double_eq_tol(mr_struct_nmi(mixed, 2, 2, 1, 2), nmi_2011(), 1e-14);
    /* both sides one cluster: 1 (scikit-learn's rule); only one side: 0; empty: NaN */
    const int64_t one[4] = {7, 0, 0, 0}, onerow[4] = {3, 4, 0, 0}, none[4] = {0};
    ck_assert_double_eq(mr_struct_nmi(one, 2, 2, 2, 1), 1.0);
    ck_assert_double_eq(mr_struct_nmi(onerow, 2, 2, 2, 1), 0.0);
    ck_assert(isnan(mr_struct_nmi(none, 2, 2, 2, 1)));
}
END_TEST

START_TEST(class_usage_and_nmi)
{
    /* E = 2, k = 1, samples of 2 tokens: class 0 -> tokens {0, 0}, class 1 -> {0, 1}
     * label x top-1 contingency [[2, 0], [1, 1]]: NMI as nmi_2011(); a third class with
     * no sample keeps a zero row (reserved) and changes nothing */
    int topk[] = {0, 0, 0, 1};
    int32_t labels[] = {0, 1};
    mr_trace tr = make(2, 2, 1, 2, 1, topk);
    mr_struct_acc *a;
    ck_assert_int_eq(mr_struct_acc_alloc(&a, 1, 2, 1), MR_OK);
    ck_assert_int_eq(mr_struct_acc_reserve(a, 3, 0, 0), MR_OK);
    mr_struct_side side = {.labels = labels};
    ck_assert_int_eq(mr_struct_acc_add(a, &tr, &side), MR_OK);
    ck_assert_int_eq(a->C, 3);
    double u[6];
    mr_struct_class_usage(u, a, 0);
    const double want[6] = {1, 0, 0.5, 0.5, 0, 0};
    for (int i = 0; i < 6; i++) ck_assert_double_eq_tol(u[i], want[i], 1e-15);
    mr_struct_layer s;
    mr_struct_summarize(&s, a);
    ck_assert_double_eq_tol(s.class_nmi, nmi_2011(), 1e-14);
    mr_struct_acc_free(a);
}
END_TEST

START_TEST(domains_grow_and_match_classes)
{
    /* the same routing with the labels given as domains: the same NMI; domain 4 appears
     * without a reservation and grows the table */
    int topk[] = {0, 0, 0, 1, 1, 1};
    int32_t dom[] = {0, 1, 4};
    mr_trace tr = make(3, 2, 1, 2, 1, topk);
    mr_struct_acc *a;
    ck_assert_int_eq(mr_struct_acc_alloc(&a, 1, 2, 1), MR_OK);
    mr_struct_side side = {.domains = dom};
    ck_assert_int_eq(mr_struct_acc_add(a, &tr, &side), MR_OK);
    ck_assert_int_eq(a->D, 5);
    double u[10];
    mr_struct_domain_usage(u, a, 0);
    ck_assert_double_eq(u[8], 0.0);
    ck_assert_double_eq(u[9], 1.0);
    /* contingency rows (2,0) (1,1) (0,2): N = 6, a = (2,2,2), b = (3,3)
     * MI = 2/6 ln(6*2/(2*3)) * 2 + 4 * 1/6 ln(6*1/(2*3)) = 2/3 ln 2; H_U = ln 3, H_V = ln 2 */
    mr_struct_layer s;
    mr_struct_summarize(&s, a);
    ck_assert_double_eq_tol(s.domain_nmi, (2.0 / 3 * log(2.0)) / (0.5 * (log(3.0) + log(2.0))),
                            1e-14);
    mr_struct_acc_free(a);
}
END_TEST

START_TEST(layer_consistency)
{
    /* 2 layers, E = 3, k = 1, 6 tokens; layer 1 = a permutation of layer 0: NMI 1;
     * layer 2 constant: NMI 0 (one side a single cluster) */
    int topk[18] = {0, 1, 2, 0, 1, 2, /* layer 0 */ 2, 0, 1, 2, 0, 1, /* layer 1 */
                    1, 1, 1, 1, 1, 1 /* layer 2 */};
    mr_trace tr = make(2, 3, 3, 3, 1, topk);
    mr_struct_acc *a;
    ck_assert_int_eq(mr_struct_acc_alloc(&a, 3, 3, 1), MR_OK);
    ck_assert_int_eq(mr_struct_acc_add(a, &tr, NULL), MR_OK);
    mr_struct_layer s[3];
    mr_struct_summarize(s, a);
    ck_assert(isnan(s[0].layer_nmi));
    ck_assert_double_eq_tol(s[1].layer_nmi, 1.0, 1e-15);
    ck_assert_double_eq(s[2].layer_nmi, 0.0);
    mr_struct_acc_free(a);
}
END_TEST

START_TEST(vocabulary_specialization)
{
    /* k = 1, E = 3: id 5 occurs 20 times (15 x expert 2, 5 x expert 0): m = 15; id 7 19
     * times (below 20: left out); id 9 40 times, always expert 1: m = 40; id -1 skipped.
     * VS = (15 + 40) / (20 + 40). Samples of 10 tokens, targets with stride 11 (the
     * engine's [n, T + 1] token rows, shifted by one). */
    enum { T = 10, S = 8 };
    int topk[S * T];
    int32_t tg[S * (T + 1)];
    int n = 0;
    for (int i = 0; i < 20; i++, n++) topk[n] = i < 15 ? 2 : 0, tg[n / T * (T + 1) + n % T] = 5;
    for (int i = 0; i < 40; i++, n++) topk[n] = 1, tg[n / T * (T + 1) + n % T] = 9;
    for (int i = 0; i < 19; i++, n++) topk[n] = i % 3, tg[n / T * (T + 1) + n % T] = 7;
    topk[n] = 0, tg[n / T * (T + 1) + n % T] = -1;
    mr_struct_acc *a;
    ck_assert_int_eq(mr_struct_acc_alloc(&a, 1, 3, 1), MR_OK);
    /* in two micro-batches, the second first: counts do not depend on the order */
    mr_trace t2 = make(S / 2, T, 1, 3, 1, topk + S / 2 * T);
    mr_trace t1 = make(S / 2, T, 1, 3, 1, topk);
    mr_struct_side s2 = {.targets = tg + S / 2 * (T + 1), .target_stride = T + 1};
    mr_struct_side s1 = {.targets = tg, .target_stride = T + 1};
    ck_assert_int_eq(mr_struct_acc_add(a, &t2, &s2), MR_OK);
    ck_assert_int_eq(mr_struct_acc_add(a, &t1, &s1), MR_OK);
    mr_struct_layer s;
    mr_struct_summarize(&s, a);
    ck_assert_double_eq_tol(s.vocab_spec, 55.0 / 60.0, 1e-15);
    ck_assert_int_eq(a->voc_n[7], 19);
    mr_struct_acc_free(a);
}
END_TEST

/* mr_struct_acc_add_sample's private counts (by expert masks and popcounts for long
 * samples, with the AVX-512 kernels where the CPU has them (for E <= 64 the masks built
 * in registers and transposed with GFNI) and without; by increments for short ones),
 * merged, equal the full accumulator's (mr_struct_acc_add) on random routings with
 * padding, for E around the 8-lane blocks, T across blocks of 64 tokens, k 4, and also
 * k 8 at E 64 and k 12 at E 40 (ids 8 at a time). */
START_TEST(sample_counts_match_full_counts)
{
    uint64_t x = 0x2545f4914f6cdd1dULL;
    static const int Es[] = {2, 5, 8, 9, 17, 40, 64, 70};
    for (size_t ie = 0; ie < sizeof Es / sizeof *Es; ie++)
        for (int path = 0; path < 2; path++)
            for (int T = 1; T <= 200; T += 49)
                for (int kk = 4; kk <= 12; kk += 4) {
                int E = Es[ie], k = E < kk ? E : kk, L = 2;
                if ((kk == 8 && E != 64) || (kk == 12 && E != 40)) continue;
                mr_simd_avx512_set(path == 0);
                int *topk = malloc((size_t)L * T * k * sizeof *topk);
                uint8_t *mask = malloc((size_t)T);
                for (int t = 0; t < T; t++) {
                    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                    mask[t] = (x >> 20) % 5 != 0;
                }
                for (int l = 0; l < L; l++)
                    for (int t = 0; t < T; t++) { /* k distinct experts */
                        int *sel = topk + ((size_t)l * T + t) * k;
                        for (int j = 0; j < k; j++) {
                            int e, dup;
                            do {
                                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                                e = (int)((x >> 33) % (uint64_t)E);
                                dup = 0;
                                for (int i = 0; i < j; i++) dup |= sel[i] == e;
                            } while (dup);
                            sel[j] = e;
                        }
                    }
                /* the full accumulator sees the real tokens only, as a trace of one sample */
                int real = 0;
                for (int t = 0; t < T; t++) real += mask[t];
                int *dense = malloc(((size_t)L * real * k + 1) * sizeof *dense);
                for (int l = 0, o = 0; l < L; l++)
                    for (int t = 0; t < T; t++)
                        if (mask[t]) {
                            memcpy(dense + (size_t)o * k, topk + ((size_t)l * T + t) * k,
                                   (size_t)k * sizeof *dense);
                            o++;
                        }
                mr_struct_acc *full, *priv, *merged;
                ck_assert_int_eq(mr_struct_acc_alloc(&full, L, E, k), MR_OK);
                ck_assert_int_eq(mr_struct_acc_alloc(&priv, L, E, k), MR_OK);
                ck_assert_int_eq(mr_struct_acc_alloc(&merged, L, E, k), MR_OK);
                mr_trace tr = make(1, real, L, E, k, dense);
                if (real) ck_assert_int_eq(mr_struct_acc_add(full, &tr, NULL), MR_OK);
                /* add_sample reads the trace reader's 16-bit ids */
                uint16_t *topk16 = malloc(((size_t)L * T * k + 1) * sizeof *topk16);
                for (size_t i = 0; i < (size_t)L * T * k; i++) topk16[i] = (uint16_t)topk[i];
                ck_assert_int_eq(mr_struct_acc_add_sample(priv, topk16, mask, T, (size_t)T, -1,
                                                          NULL, -1), MR_OK);
                free(topk16);
                ck_assert_int_eq(mr_struct_acc_merge(merged, priv), MR_OK);
                size_t le = (size_t)L * E, lee = le * E;
                for (size_t i = 0; i < le; i++) ck_assert(merged->single[i] == full->single[i]);
                for (size_t i = 0; i < lee; i++) {
                    ck_assert_msg(merged->pair[i] == full->pair[i], "E %d T %d path %d: pair %zu",
                                  E, T, path, i);
                    ck_assert(merged->chain[i] == full->chain[i]);
                }
                mr_struct_acc_free(full);
                mr_struct_acc_free(priv);
                mr_struct_acc_free(merged);
                free(dense);
                free(mask);
                free(topk);
                }
    mr_simd_avx512_set(1);
}
END_TEST

START_TEST(top_share_rounds_up)
{
    const int64_t x[] = {1, 9, 3, 7, 5, 0, 0, 0, 0, 0, 0}; /* 11: top ceil(1.1) = 2 */
    ck_assert_double_eq_tol(mr_struct_top_share(x, 11, 0.10), 16.0 / 25.0, 1e-15);
    const int64_t z[] = {0, 0};
    ck_assert(isnan(mr_struct_top_share(z, 2, 0.10)));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("routing_struct");
    TCase *tc = tcase_create("known answers");
    tcase_add_test(tc, coactivation_matrix_and_top_share);
    tcase_add_test(tc, top_one_has_no_pairs);
    tcase_add_test(tc, sample_counts_match_full_counts);
    tcase_add_test(tc, nmi_known_answers);
    tcase_add_test(tc, class_usage_and_nmi);
    tcase_add_test(tc, domains_grow_and_match_classes);
    tcase_add_test(tc, layer_consistency);
    tcase_add_test(tc, vocabulary_specialization);
    tcase_add_test(tc, top_share_rounds_up);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
