/* Model loading and validation: good fixtures load with the documented shapes;
 * every malformed file of tests/bad/MANIFEST.tsv is refused with MR_EINPUT and a
 * message naming the file and the offending path or attribute. */
#include <stdio.h>
#include <string.h>

#include "analysis/mr_error.h"
#include "io/mr_model_io.h"
#include "mr_test_util.h"

START_TEST(tiny_classify_loads)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, "tests/fixtures/tiny-classify.h5") == MR_OK, "%s",
                  mr_error_message());
    const mr_config *c = &m->cfg;
    ck_assert_int_eq(c->task, MR_TASK_CLASSIFY);
    ck_assert_int_ge(c->n_moe, 1);
    ck_assert_int_eq(c->n_pos, c->n_patches + (c->pool == MR_POOL_CLS));
    ck_assert_uint_eq(m->n_params, mr_config_param_count(c));
    for (int i = 0; i < c->n_moe; i++) ck_assert(m->layers[c->moe_layers[i]].is_moe);
    mr_model_free(m);
}
END_TEST

START_TEST(tiny_lm_loads_with_vocab)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, "tests/fixtures/tiny-lm.h5") == MR_OK, "%s",
                  mr_error_message());
    ck_assert_int_eq(m->cfg.task, MR_TASK_LM);
    ck_assert_ptr_nonnull(m->vocab);
    ck_assert_ptr_nonnull(m->tok);
    mr_model_free(m);
}
END_TEST

START_TEST(missing_gate_bias_is_zero)
{
    mr_model *m;
    ck_assert_msg(mr_model_load(&m, "tests/fixtures/tiny-classify-rgb.h5") == MR_OK, "%s",
                  mr_error_message());
    int checked = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const mr_layer *L = &m->layers[l];
        if (!L->is_moe || L->has_gate_b) continue;
        for (int e = 0; e < m->cfg.n_experts; e++) ck_assert_float_eq(L->gate_b[e], 0.0f);
        checked++;
    }
    ck_assert_int_ge(checked, 1);
    mr_model_free(m);
}
END_TEST

START_TEST(bad_models_are_refused)
{
    FILE *fp = fopen("tests/bad/MANIFEST.tsv", "r");
    ck_assert_ptr_nonnull(fp);
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, fp)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *tab = strchr(line, '\t');
        ck_assert_msg(tab != NULL, "malformed manifest line: %s", line);
        *tab = '\0';
        if (strcmp(line, "file") == 0) continue; /* header */
        char path[1100];
        snprintf(path, sizeof path, "tests/bad/%s", line);
        char *needle = tab + 1; /* columns: file, must_mention, defect */
        needle[strcspn(needle, "\t")] = '\0';
        mr_model *m = (mr_model *)1;
        int st = mr_model_load(&m, path);
        ck_assert_msg(st == MR_EINPUT, "%s: loaded (status %d), expected a refusal", path, st);
        ck_assert_ptr_null(m);
        const char *msg = mr_error_message();
        ck_assert_msg(strstr(msg, path) != NULL, "%s: message does not name the file: %s", path,
                      msg);
        ck_assert_msg(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", path, needle,
                      msg);
        cases++;
    }
    fclose(fp);
    ck_assert_int_ge(cases, 12);
}
END_TEST

START_TEST(missing_file_is_input_error)
{
    mr_model *m;
    ck_assert_int_eq(mr_model_load(&m, "tests/fixtures/no-such-model.h5"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no-such-model.h5"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_io");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, tiny_classify_loads);
    tcase_add_test(tc, tiny_lm_loads_with_vocab);
    tcase_add_test(tc, missing_gate_bias_is_zero);
    tcase_add_test(tc, bad_models_are_refused);
    tcase_add_test(tc, missing_file_is_input_error);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
