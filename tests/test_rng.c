/* Random streams: a pure function of (seed, purpose, index). */
#include <stdlib.h>
#include <string.h>

#include "analysis/mr_ops.h"
#include "analysis/mr_rng.h"
#include "mr_test_util.h"

START_TEST(same_key_same_stream)
{
    gsl_rng *a = mr_rng_alloc(42, "corrupt/shot_noise", 7);
    gsl_rng *b = gsl_rng_alloc(gsl_rng_mt19937);
    for (int i = 0; i < 5; i++) gsl_rng_get(b); /* state before reseed must not matter */
    mr_rng_reseed(b, 42, "corrupt/shot_noise", 7);
    for (int i = 0; i < 1000; i++) ck_assert_uint_eq(gsl_rng_get(a), gsl_rng_get(b));
    gsl_rng_free(a);
    gsl_rng_free(b);
}
END_TEST

START_TEST(any_component_changes_the_stream)
{
    uint64_t k = mr_rng_key(42, "bootstrap", 0);
    ck_assert_uint_ne(k, mr_rng_key(43, "bootstrap", 0));
    ck_assert_uint_ne(k, mr_rng_key(42, "bootstrap2", 0));
    ck_assert_uint_ne(k, mr_rng_key(42, "bootstrap", 1));
    /* neighbouring indices give unrelated first draws (no shared prefix) */
    gsl_rng *a = mr_rng_alloc(1, "x", 0), *b = mr_rng_alloc(1, "x", 1);
    int equal = 0;
    for (int i = 0; i < 100; i++) equal += gsl_rng_get(a) == gsl_rng_get(b);
    ck_assert_int_lt(equal, 3);
    gsl_rng_free(a);
    gsl_rng_free(b);
}
END_TEST

/* Two equal fog streams, both `skip` words in, and *a's state loaded into *m: *m is
 * checked against *b, which GSL alone advances. */
static void twin_streams(gsl_rng **a, gsl_rng **b, mr_mt *m, uint64_t seed, uint64_t idx,
                         int skip)
{
    *a = mr_rng_alloc(seed, "corrupt/fog", idx);
    *b = mr_rng_alloc(seed, "corrupt/fog", idx);
    for (int i = 0; i < skip; i++) {
        gsl_rng_get(*a);
        gsl_rng_get(*b);
    }
    ck_assert_int_eq(mr_mt_load(m, *a), 1);
}

START_TEST(inline_draws_are_gsls)
{
    /* mr_mt (analysis/mr_rng.h) gives gsl_rng_get's words and gsl_rng_uniform's doubles
     * across several twists, from a fresh stream and from one part-way through a block,
     * and r continues after them once stored back */
    for (int skip = 0; skip < 700; skip += 233) {
        gsl_rng *a, *b;
        mr_mt m;
        twin_streams(&a, &b, &m, 9, 3, skip);
        for (int i = 0; i < 3 * 624 + 5; i++) {
            if (i % 2)
                ck_assert_uint_eq(mr_mt_next(&m), gsl_rng_get(b));
            else
                ck_assert(mr_mt_uniform(&m) == gsl_rng_uniform(b));
        }
        mr_mt_store(a, &m);
        for (int i = 0; i < 1000; i++) ck_assert_uint_eq(gsl_rng_get(a), gsl_rng_get(b));
        gsl_rng_free(a);
        gsl_rng_free(b);
    }
    /* another generator is refused: its caller draws from it */
    gsl_rng *t = gsl_rng_alloc(gsl_rng_taus2);
    mr_mt m;
    ck_assert_int_eq(mr_mt_load(&m, t), 0);
    gsl_rng_free(t);
}
END_TEST

START_TEST(bulk_uniforms_are_gsls)
{
    /* mr_mt_uniforms (fog's plasma draws a pass at a time) gives gsl_rng_uniform's doubles
     * in runs shorter than, equal to and across the state's 624 words, from a fresh stream
     * and from one part-way through a block; the vectorized twist gives GSL's words */
    static const size_t runs[] = {1, 7, 616, 624, 1500, 3, 4096};
    double u[4096];
    for (int skip = 0; skip < 700; skip += 233) {
        gsl_rng *a, *b;
        mr_mt m;
        twin_streams(&a, &b, &m, 5, 8, skip);
        for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
            mr_mt_uniforms(&m, u, runs[r]);
            for (size_t i = 0; i < runs[r]; i++)
                ck_assert_msg(u[i] == gsl_rng_uniform(b), "run %zu draw %zu", r, i);
        }
        mr_mt_store(a, &m);
        for (int i = 0; i < 1000; i++) ck_assert_uint_eq(gsl_rng_get(a), gsl_rng_get(b));
        gsl_rng_free(a);
        gsl_rng_free(b);
    }
}
END_TEST

START_TEST(bulk_uniform_ints_are_gsls)
{
    /* mr_mt_uniform_ints (the bootstrap's B x n resample indices) gives
     * gsl_rng_uniform_int's values in its order, into 16- and 32-bit outputs, on the
     * AVX-512 path and the scalar one: bounds with few rejections (300), many (2^31 + 1:
     * nearly half the words rejected), a power of two, 1, 65,536 and above, and the largest
     * (2^32 - 1: GSL's scale 1, division kept); runs shorter than a vector, across the
     * state's 624 words, ending part-way through a run of 16 words (the next call and r,
     * once stored back, continue right after the last word taken) */
    static const uint32_t ns[] = {300, 10000, 1, 2, 65536, 65537, 1u << 16 | 3, 2147483649u,
                                  4294967295u, 1024, 1431655766u, 98304};
    /* 1431655766 (GSL's scale 2): a third of the words rejected, inside runs of 16;
     * 98304: a value equal to n before its rejection (y / scale = n) in 1 of ~100,000 draws,
     * hence the long run */
    static const size_t runs[] = {1, 15, 16, 17, 700, 624, 3, 5000, 400000};
    uint32_t *o32 = malloc(400000 * sizeof *o32);
    uint16_t *o16 = malloc(400000 * sizeof *o16);
    ck_assert(o32 && o16);
    int cpu = mr_simd_avx512();
    for (int path = 0; path < 2; path++) {
        mr_simd_avx512_set(path == 0 && cpu);
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (int skip = 0; skip < 700; skip += 311) {
                gsl_rng *a, *b;
                mr_mt m;
                twin_streams(&a, &b, &m, 11, ni, skip);
                int narrow = ns[ni] <= 65536;
                for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
                    if (runs[r] > 5000 && ns[ni] != 98304) continue; /* the long run: one n */
                    mr_mt_uniform_ints(&m, narrow ? o16 : NULL, narrow ? NULL : o32, runs[r], ns[ni]);
                    size_t bad = runs[r]; /* the first draw that differs (one check a run:
                                               * Check writes to its pipe at every assert) */
                    unsigned long want = 0, got = 0;
                    for (size_t i = 0; i < runs[r]; i++) {
                        unsigned long w = gsl_rng_uniform_int(b, ns[ni]), g = narrow ? o16[i] : o32[i];
                        if (g != w && bad == runs[r]) bad = i, want = w, got = g;
                    }
                    ck_assert_msg(bad == runs[r], "path %d n %u run %zu draw %zu: %lu, GSL %lu",
                                  path, ns[ni], r, bad, got, want);
                }
                mr_mt_store(a, &m);
                for (int i = 0; i < 1000; i++) ck_assert_uint_eq(gsl_rng_get(a), gsl_rng_get(b));
                gsl_rng_free(a);
                gsl_rng_free(b);
            }
    }
    mr_simd_avx512_set(cpu);
    free(o32);
    free(o16);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("streams");
    tcase_add_test(tc, same_key_same_stream);
    tcase_add_test(tc, any_component_changes_the_stream);
    tcase_add_test(tc, inline_draws_are_gsls);
    tcase_add_test(tc, bulk_uniforms_are_gsls);
    tcase_add_test(tc, bulk_uniform_ints_are_gsls);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
