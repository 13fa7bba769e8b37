/* C engine vs PyTorch: every tests/fixtures/ref-*.h5 holds what tools/moe_model.py
 * computed for a model and a few inputs with the softmax router (docs/model-format.md,
 * "Reference state files"). The engine must reproduce logits and routing probabilities
 * with normalized MSE < 1e-6 and the same top-k sets, except at tokens where PyTorch's
 * own top-k margin is below 1e-5 (a tie within float rounding); see tests/mr_parity.h.
 * The other routers: tests/test_parity_routers.c. */
#include <glob.h>

#include "mr_parity.h"

START_TEST(engine_matches_pytorch)
{
    glob_t g;
    ck_assert_int_eq(glob("tests/fixtures/ref-*.h5", 0, NULL, &g), 0);
    int tasks[2] = {0, 0};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        mr_parity_result res;
        mr_parity_check(g.gl_pathv[i], "softmax", NULL, &res, 1);
        tasks[res.task]++;
    }
    /* the reference set must cover both tasks, shipped and tiny models alike */
    ck_assert_int_ge(tasks[MR_TASK_CLASSIFY], 2);
    ck_assert_int_ge(tasks[MR_TASK_LM], 2);
    globfree(&g);
}
END_TEST

int main(void)
{
    mr_engine_blas_single_thread();
    Suite *s = suite_create("parity");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, engine_matches_pytorch);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
