/* Random streams: a pure function of (seed, purpose, index). */
#include <string.h>

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

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("streams");
    tcase_add_test(tc, same_key_same_stream);
    tcase_add_test(tc, any_component_changes_the_stream);
    tcase_add_test(tc, inline_draws_are_gsls);
    tcase_add_test(tc, bulk_uniforms_are_gsls);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
