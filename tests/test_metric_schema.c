/* The metrics schema (metrics/mr_metric.h): its rows are consistent, docs/metrics.md
 * lists every one, and a cell written from a pass, a comparison and a paired test reads
 * back with every metric of the schema equal to what mr_metric_value took from them
 * (derived ones, bpc, computed from their source). */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "analysis/mr_model.h"
#include "io/mr_cellio.h"
#include "metrics/mr_metric.h"
#include "mr_test_tmp.h"
#include "mr_test_util.h"

START_TEST(rows_are_consistent)
{
    for (int i = 0; i < MR_METRIC_N; i++) {
        const mr_metric *m = &mr_metric_table[i];
        ck_assert_msg(m->key && m->key[0], "row %d has no key", i);
        ck_assert_ptr_eq(mr_metric_lookup(m->key), m);
        ck_assert_msg(m->id && m->label && m->tex && m->unit && m->display_unit, "%s: a text is missing", m->key);
        ck_assert_msg(m->scale > 0, "%s: scale", m->key);
        for (int j = 0; j < i; j++) {
            const mr_metric *o = &mr_metric_table[j];
            ck_assert_msg(strcmp(m->key, o->key) != 0, "key %s twice", m->key);
            ck_assert_msg(!m->dataset || !o->dataset || strcmp(m->dataset, o->dataset) != 0 ||
                              (m->part == MR_PART_GROUP) != (o->part == MR_PART_GROUP),
                          "dataset %s twice", m->dataset);
            ck_assert_msg(!m->samples || !o->samples || strcmp(m->samples, o->samples) != 0,
                          "samples %s twice", m->samples);
        }
        if (m->derive >= 0) {
            ck_assert_msg(m->derive < MR_METRIC_N && m->derive != i, "%s: derive", m->key);
            ck_assert_msg(!m->dataset && m->divisor != 0, "%s: a derived metric is not stored", m->key);
        } else {
            ck_assert_msg(m->derive == -1, "%s: derive must be -1 or a metric", m->key);
            ck_assert_msg(m->dataset, "%s: neither stored nor derived", m->key);
            ck_assert_msg(m->part == MR_PART_GROUP || m->from != MR_FROM_NONE,
                          "%s: a stored cell metric needs a source", m->key);
        }
        ck_assert_msg(m->csv == 0 || m->csv == 1 || (m->csv == 3 && m->kind == MR_KIND_CI),
                      "%s: csv", m->key);
        ck_assert_msg(m->task == -1 || m->task == MR_TASK_CLASSIFY || m->task == MR_TASK_LM, "%s: task", m->key);
        ck_assert_msg(m->primary == -1 || m->primary == MR_TASK_CLASSIFY || m->primary == MR_TASK_LM,
                      "%s: primary", m->key);
        ck_assert_msg(!m->paired || m->samples, "%s: paired needs per-sample vectors", m->key);
        ck_assert_msg(!(m->report & ~(MR_REPORT_GROUP | MR_REPORT_PERCORR)) || m->samples || m->derive >= 0,
                      "%s: report columns over samples need per-sample vectors", m->key);
        ck_assert_msg(m->kind != MR_KIND_EXPERTS || m->per_layer, "%s: per expert is per layer", m->key);
        ck_assert_msg(m->kind != MR_KIND_PERCORR || m->part == MR_PART_GROUP, "%s: per corruption", m->key);
    }
    /* exactly one primary metric per task */
    for (int task = 0; task < 2; task++) {
        int n = 0;
        for (int i = 0; i < MR_METRIC_N; i++) n += mr_metric_table[i].primary == task;
        ck_assert_int_eq(n, 1);
    }
    ck_assert_ptr_null(mr_metric_lookup("no_such_metric"));
}
END_TEST

/* The gate's quantum per metric, as docs/ci.md ("Near ties") and docs/metrics.md state it:
 * the change one sample's outcome can make over n samples and E experts. */
START_TEST(quantum_as_documented)
{
    const int n = 50, E = 8;
    const double q = 1.0 / n;
    ck_assert_double_eq_tol(mr_metric_quantum(&mr_metric_table[MR_M_ACCURACY], n, E), q, 1e-15);
    ck_assert_double_eq_tol(mr_metric_quantum(&mr_metric_table[MR_M_ENTROPY_NORM], n, E), q, 1e-15);
    ck_assert_double_eq_tol(mr_metric_quantum(&mr_metric_table[MR_M_ENTROPY], n, E), log(8.0) / n,
                            1e-15);
    ck_assert_double_eq_tol(mr_metric_quantum(&mr_metric_table[MR_M_LOAD_CV], n, E),
                            2.0 * sqrt(8.0) / n, 1e-15);
    ck_assert_double_eq_tol(mr_metric_quantum(&mr_metric_table[MR_M_IMPORTANCE_CV], n, E),
                            2.0 * sqrt(8.0) / n, 1e-15);
    ck_assert_double_eq_tol(mr_metric_quantum(&mr_metric_table[MR_M_AUX_LOSS], n, E), 4.0 * 8 / n,
                            1e-15);
    ck_assert_double_eq(mr_metric_quantum(&mr_metric_table[MR_M_LOSS], n, E), 0.0);
    ck_assert_double_eq(mr_metric_quantum(&mr_metric_table[MR_M_MCE], n, E), 0.0);
}
END_TEST

START_TEST(docs_list_every_metric)
{
    FILE *fp = fopen("docs/metrics.md", "r");
    ck_assert_ptr_nonnull(fp);
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    const char *table = strstr(text, "## The schema");
    ck_assert_ptr_nonnull(table);
    for (int i = 0; i < MR_METRIC_N; i++) {
        char want[96];
        snprintf(want, sizeof want, "`%s`", mr_metric_table[i].key);
        ck_assert_msg(strstr(table, want), "docs/metrics.md, \"The schema\", lacks %s", want);
    }
}
END_TEST

enum { N = 5, L = 2, E = 3 };

/* a pass, a comparison and a paired test filled with distinct numbers */
typedef struct fake {
    double correct[N], loss[N], entropy[N * L], top1[N * L], set[N * L], jac[N * L], sat[N * L], pred[N];
    int64_t counts[L][E];
    mr_layer_routing layers[L];
    mr_routing_acc acc;
    mr_pass_metrics pass;
    mr_ci top1_ci[L], set_ci[L], jac_ci[L], sat_ci[L];
    mr_flip_metrics flips;
    mr_paired drop;
} fake;

static mr_ci ci(double x) { return (mr_ci){x, x - 0.01, x + 0.02}; }

static void fill(fake *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < N; i++) {
        f->correct[i] = i % 2;
        f->loss[i] = 1.0 + 0.1 * i;
        f->pred[i] = 0.05 * i;
    }
    for (int i = 0; i < N * L; i++) {
        f->entropy[i] = 0.3 + 0.01 * i;
        f->top1[i] = 0.02 * i;
        f->set[i] = 0.03 * i;
        f->jac[i] = 0.04 * i;
        f->sat[i] = 1.0 - 0.05 * i;
    }
    for (int l = 0; l < L; l++) {
        mr_layer_routing *r = &f->layers[l];
        r->entropy = ci(0.5 + l);
        r->entropy_norm = ci(0.4 + l);
        r->wentropy = ci(0.3 + l);
        r->load_entropy_norm = 0.9 - 0.1 * l;
        r->cv = 0.2 + l;
        r->max_over_mean = 1.5 + l;
        r->dead = l;
        r->aux_loss = 1.1 + l;
        for (int e = 0; e < E; e++) f->counts[l][e] = 1 + e + l;
        r->load_counts = f->counts[l];
        r->load_total = 0;
        for (int e = 0; e < E; e++) r->load_total += (double)f->counts[l][e];
        f->top1_ci[l] = ci(0.11 + l);
        f->set_ci[l] = ci(0.12 + l);
        f->jac_ci[l] = ci(0.13 + l);
        f->sat_ci[l] = ci(0.8 - 0.1 * l);
    }
    f->acc.entropy = f->entropy;
    f->pass = (mr_pass_metrics){.correct = f->correct, .loss = f->loss, .routing = &f->acc,
                                .accuracy = ci(0.6), .loss_ci = ci(1.2), .layers = f->layers};
    f->flips = (mr_flip_metrics){.top1 = f->top1, .set = f->set, .jaccard = f->jac,
                                 .pred = f->pred, .top1_ci = f->top1_ci, .set_ci = f->set_ci,
                                 .jaccard_ci = f->jac_ci, .pred_ci = ci(0.07),
                                 .sat = f->sat, .sat_ci = f->sat_ci};
    f->drop = (mr_paired){.diff = ci(0.03), .p_value = 0.25};
}

START_TEST(cells_round_trip_every_metric)
{
    static fake f;
    fill(&f);
    char path[] = "/tmp/mr-test-schema-XXXXXX";
    mr_test_temp_file(path);
    for (int task = 0; task < 2; task++) {
        mr_cell_meta meta = {.k = 2, .kind = MR_CELL_CORRUPT, .severity = 3, .task = task,
                             .n = N, .T = 4, .n_moe = L, .E = E, .config_hash = 42};
        snprintf(meta.id, sizeof meta.id, "m/r@k2/c/s3");
        snprintf(meta.corruption, sizeof meta.corruption, "c");
        int layers[L];
        for (int l = 0; l < L; l++) layers[l] = 2 * l + 1;
        meta.layers = layers; /* the model's, not owned by the cell */
        f.drop.p_bound = task; /* the p-value's qualifier travels beside the schema rows */
        ck_assert_int_eq(mr_cell_write(path, &meta, &f.pass, &f.flips, &f.drop), MR_OK);
        mr_cell_summary s;
        ck_assert_int_eq(mr_cell_read_summary(path, &s), MR_OK);
        ck_assert(s.has_pass && s.has_flips && s.has_drop);
        ck_assert_int_eq(s.acc_drop_p_bound, task);
        for (int l = 0; l < L; l++) ck_assert_int_eq(s.meta.layers[l], 2 * l + 1);
        mr_metric_src src = {.pass = &f.pass, .flips = &f.flips, .drop = &f.drop, .task = task,
                             .n_moe = L, .E = E};
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *m = &mr_metric_table[i];
            double want[64];
            int has = m->part != MR_PART_GROUP && mr_metric_value(want, m, &src);
            ck_assert_msg(has == (s.value[i] != NULL), "%s: present %d, read back %d", m->key,
                          has, s.value[i] != NULL);
            for (size_t j = 0; has && j < mr_metric_len(m, L, E, 0); j++)
                ck_assert_msg(s.value[i][j] == want[j], "%s[%zu]: %.17g, wrote %.17g", m->key, j,
                              s.value[i][j], want[j]);
            const double *x = mr_metric_samples(m, &src);
            if (!m->samples) continue;
            ck_assert_ptr_nonnull(x);
            size_t n = (size_t)N * (m->per_layer ? L : 1);
            double *back = mr_cell_read_vector(path, m->samples, n);
            ck_assert_msg(back != NULL, "%s: %s", m->samples, mr_error_message());
            ck_assert_int_eq(memcmp(back, x, n * sizeof *x), 0);
            free(back);
        }
        /* bpc exactly where the task is an LM's, as loss / ln 2 */
        ck_assert_int_eq(s.value[MR_M_BPC] != NULL, task == MR_TASK_LM);
        if (s.value[MR_M_BPC]) ck_assert(s.value[MR_M_BPC][0] == 1.2 / log(2.0));
        ck_assert(s.value[MR_M_DEAD][1] == 1.0);
        ck_assert(s.value[MR_M_LOAD][E + 2] == 4.0 / 9.0);
        mr_cell_summary_free(&s);
    }
    unlink(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metric_schema");
    TCase *tc = tcase_create("schema");
    tcase_add_test(tc, rows_are_consistent);
    tcase_add_test(tc, docs_list_every_metric);
    tcase_add_test(tc, quantum_as_documented);
    tcase_add_test(tc, cells_round_trip_every_metric);
    suite_add_tcase(s, tc);
    return mr_test_run(s);
}
