/* Linear assignment solver against brute force (every permutation) on small matrices,
 * with real and small-integer (tie-heavy) costs, minimizing and maximizing. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "analysis/mr_assign.h"
#include "analysis/mr_error.h"
#include "mr_test_util.h"

static uint64_t lcg = 12345;
static double uniform(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0;
}

/* Best total over all n! permutations (Heap's algorithm). */
static double brute(const double *c, int n, int maximize)
{
    int p[8], k[8] = {0};
    for (int i = 0; i < n; i++) p[i] = i;
    double best = maximize ? -INFINITY : INFINITY;
    for (int i = 0;;) {
        double s = 0.0;
        for (int r = 0; r < n; r++) s += c[r * n + p[r]];
        if (maximize ? s > best : s < best) best = s;
        while (i < n && k[i] >= i) k[i++] = 0;
        if (i >= n) break;
        int j = (i % 2) ? k[i] : 0, t = p[j];
        p[j] = p[i];
        p[i] = t;
        k[i]++;
        i = 0;
    }
    return best;
}

static void check_case(const double *c, int n, int maximize, mr_assign_workspace *w)
{
    int col[8], seen[8] = {0};
    double total;
    ck_assert_int_eq(mr_assign_solve(col, &total, c, n, maximize, w), MR_OK);
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        ck_assert(col[i] >= 0 && col[i] < n);
        ck_assert_int_eq(seen[col[i]]++, 0); /* a permutation */
        s += c[i * n + col[i]];
    }
    ck_assert_double_eq_tol(s, total, 1e-12);
    double b = brute(c, n, maximize);
    ck_assert_msg(fabs(s - b) <= 1e-9 * (1.0 + fabs(b)), "n=%d max=%d: %.17g vs brute %.17g", n,
                  maximize, s, b);
}

START_TEST(matches_brute_force)
{
    mr_assign_workspace *w;
    ck_assert_int_eq(mr_assign_workspace_alloc(&w, 8), MR_OK);
    double c[64];
    int cases = 0;
    for (int n = 1; n <= 7; n++)
        for (int rep = 0; rep < 60; rep++)
            for (int kind = 0; kind < 3; kind++) {
                for (int i = 0; i < n * n; i++)
                    c[i] = kind == 0   ? uniform() * 2.0 - 1.0              /* real */
                           : kind == 1 ? floor(uniform() * 4.0)             /* ties */
                                       : floor(uniform() * 2.0) * 1e6 - 3.0; /* scale */
                check_case(c, n, 0, w);
                check_case(c, n, 1, w);
                cases += 2;
            }
    ck_assert_int_eq(cases, 7 * 60 * 3 * 2);
    mr_assign_workspace_free(w);
}
END_TEST

/* Weight matching of a permuted copy: the inner products of the rows are largest on the
 * true permutation, which the maximizing solver recovers exactly. */
START_TEST(recovers_a_permutation)
{
    enum { N = 40, D = 12 };
    static double a[N * D], b[N * D], cost[N * N];
    int perm[N], col[N];
    for (int i = 0; i < N; i++) perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(uniform() * (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < N * D; i++) a[i] = uniform() - 0.5;
    for (int i = 0; i < N; i++) memcpy(b + perm[i] * D, a + i * D, D * sizeof(double));
    for (int r = 0; r < N; r++)
        for (int s = 0; s < N; s++) {
            double dot = 0.0;
            for (int k = 0; k < D; k++) dot += a[r * D + k] * b[s * D + k];
            cost[r * N + s] = dot;
        }
    mr_assign_workspace *w;
    ck_assert_int_eq(mr_assign_workspace_alloc(&w, N), MR_OK);
    ck_assert_int_eq(mr_assign_solve(col, NULL, cost, N, 1, w), MR_OK);
    for (int i = 0; i < N; i++) ck_assert_int_eq(col[i], perm[i]);
    /* a workspace serves smaller problems too */
    double one = 5.0;
    ck_assert_int_eq(mr_assign_solve(col, NULL, &one, 1, 0, w), MR_OK);
    ck_assert_int_eq(col[0], 0);
    mr_assign_workspace_free(w);
}
END_TEST

START_TEST(bad_input_is_refused)
{
    mr_assign_workspace *w;
    ck_assert_int_eq(mr_assign_workspace_alloc(&w, 2), MR_OK);
    double c[9] = {1, 2, 3, 4, NAN, 6, 7, 8, 9};
    int col[3];
    ck_assert_int_eq(mr_assign_solve(col, NULL, c, 3, 0, w), MR_EINPUT); /* too large */
    ck_assert_int_eq(mr_assign_solve(col, NULL, c + 3, 2, 0, w), MR_EINPUT); /* NaN */
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "not finite"));
    mr_assign_workspace_free(w);
    ck_assert_int_eq(mr_assign_workspace_alloc(&w, 0), MR_EINPUT);
    ck_assert_ptr_null(w);
    mr_assign_workspace_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("assign");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, matches_brute_force);
    tcase_add_test(tc, recovers_a_permutation);
    tcase_add_test(tc, bad_input_is_refused);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
