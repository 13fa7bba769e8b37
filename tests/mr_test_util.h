/* Helpers shared by the Check tests (header-only, test code only). */
#ifndef MR_TEST_UTIL_H
#define MR_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Normalized mean squared error sum((a-b)^2) / sum(b^2), b the reference. */
static inline double mr_test_nmse(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0.0 ? num / den : num;
}

/* Fail fast, for scripts/mutate (docs/testing.md#mutation-testing): with
 * MR_TEST_FAIL_FAST=FILE in the environment, every test case made by tcase_create below
 * writes FILE before each test (a checked fixture, in the test's own process) and removes
 * it after each test that passes; a failed assertion, a crash or a timeout ends the
 * test's process before its teardown, so FILE stays, and every later test of the run
 * fails at once without running. A mutant's verdict needs only its first failing test;
 * the rest of a kernel test's run was most of a caught mutant's time. Without the
 * variable (ctest, scripts/test) nothing is added. */
static inline const char *mr_test_fail_fast_file(void)
{
    const char *f = getenv("MR_TEST_FAIL_FAST");
    return f && *f ? f : NULL;
}

static inline void mr_test_fail_fast_setup(void)
{
    const char *f = mr_test_fail_fast_file();
    FILE *fp = fopen(f, "r");
    if (fp) {
        fclose(fp);
        ck_abort_msg("not run: an earlier test of this run failed (MR_TEST_FAIL_FAST=%s)", f);
    }
    fp = fopen(f, "w"); /* where it cannot be made, the run only loses its early stop */
    if (fp) fclose(fp);
}

static inline void mr_test_fail_fast_teardown(void) { remove(mr_test_fail_fast_file()); }

static inline TCase *mr_test_tcase_create(const char *name)
{
    TCase *tc = (tcase_create)(name); /* Check's own, not the macro below */
    if (mr_test_fail_fast_file())
        tcase_add_checked_fixture(tc, mr_test_fail_fast_setup, mr_test_fail_fast_teardown);
    return tc;
}
#define tcase_create(name) mr_test_tcase_create(name)

/* Run one suite and return the process exit status ctest reads. */
static inline int mr_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
