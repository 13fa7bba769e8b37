/* Helpers shared by the Check tests (header-only, test code only). */
#ifndef MR_TEST_UTIL_H
#define MR_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
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
