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

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("streams");
    tcase_add_test(tc, same_key_same_stream);
    tcase_add_test(tc, any_component_changes_the_stream);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
