/* Reports and the CI gate on a real run of tests/configs/tiny-grid.ini (built once in
 * main): results.h5 read back, the tables hold the numbers of results.h5 (read here
 * independently with the HDF5 API), baseline JSON round trip, tolerance semantics, and
 * clear messages for malformed files. Rendering is tested by tests/cli_report.sh. */
#include <check.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analysis/mr_error.h"
#include "harness/mr_grid.h"
#include "harness/mr_runcfg.h"
#include "reports/mr_gate.h"
#include "reports/mr_report.h"
#include "io/mr_h5.h"
#include "io/mr_results.h"
#include "mr_test_util.h"

static char g_dir[256];

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, fp) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    fclose(fp);
    return s;
}

static void spit(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
}

/* read /cells/<stem>/<ds>[0] straight from results.h5 */
static double h5_first(hid_t f, const char *stem, const char *ds)
{
    char path[512];
    snprintf(path, sizeof path, "/cells/%s/%s", stem, ds);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    ck_assert_msg(d >= 0, "%s missing", path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    double *v = malloc((size_t)n * sizeof *v);
    ck_assert_int_ge(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), 0);
    double x = v[0];
    free(v);
    H5Sclose(sp);
    H5Dclose(d);
    return x;
}

static double h5_attr(hid_t f, const char *group, const char *name)
{
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    ck_assert_msg(g >= 0, "%s missing", group);
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    double x = NAN;
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_DOUBLE, &x), 0);
    H5Aclose(a);
    H5Gclose(g);
    return x;
}

static void assert_contains(const char *text, const char *what, const char *file)
{
    ck_assert_msg(strstr(text, what) != NULL, "%s does not contain \"%s\"", file, what);
}

START_TEST(results_read_back)
{
    mr_results r;
    ck_assert_int_eq(mr_results_load(&r, g_dir), MR_OK);
    ck_assert_int_eq(r.n_cells, 88);
    ck_assert_int_eq(r.n_models, 1);
    ck_assert_int_eq(r.n_groups, 4); /* softmax@k1, softmax@k2, sim@k2, attention@k2 */
    ck_assert_str_eq(r.groups[0].label, "softmax@k1");
    ck_assert_str_eq(r.groups[2].label, "sim@k2");
    ck_assert_str_eq(r.reference, "softmax");
    ck_assert_int_eq(r.n_corr, 4);
    ck_assert_str_eq(r.corr[0], "shot_noise"); /* grid order */
    ck_assert_int_eq(r.bootstrap, 100);
    ck_assert_int_eq((int)r.seed, 3);
    for (int g = 0; g < r.n_groups; g++) {
        const mr_res_group *gr = &r.groups[g];
        ck_assert_int_ge(gr->clean, 0);
        ck_assert_int_eq(gr->n_fluct, 1);
        for (int i = 0; i < 4 * 5; i++) ck_assert_int_ge(gr->corrupt[i], 0);
        ck_assert(gr->has_ce);
        /* the reference of every group is softmax at the same k */
        ck_assert_str_eq(r.groups[gr->ref].router, "softmax");
        ck_assert_int_eq(r.groups[gr->ref].k, gr->k);
    }
    ck_assert_double_eq_tol(r.groups[0].value[MR_M_MCE][0], 1.0, 1e-12);
    mr_results_free(&r);
    /* not a results dir */
    ck_assert_int_eq(mr_results_load(&r, "tests/configs"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "no results.h5"));
    mr_results_free(&r);
    ck_assert_int_eq(mr_results_load(&r, "tests/fixtures/tiny-classify.h5"), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "not a moe-robust results file"));
    mr_results_free(&r);
}
END_TEST

/* results.h5's config attribute is an input too: a damaged [run] number (overflow,
 * negative, not a number, NaN) is refused naming the file and the key, never read as a
 * wrapped or huge bootstrap count (issue #23: one overflow-checked number parser) */
START_TEST(damaged_run_settings)
{
    char src[300], dir[300], dst[320], cmd[800];
    snprintf(src, sizeof src, "%s/results.h5", g_dir);
    snprintf(dir, sizeof dir, "%s/damaged", g_dir);
    snprintf(dst, sizeof dst, "%s/results.h5", dir);
    mkdir(dir, 0755);
    static const char *cases[][2] = {
        {"bootstrap", "99999999999"}, {"bootstrap", "-5"}, {"bootstrap", "1e3"},
        {"bootstrap", "2147483648"},  {"seed", "18446744073709551617"}, {"seed", "x"},
        {"level", "nan"},             {"level", "2"},    {"level", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
        ck_assert_int_eq(system(cmd), 0);
        /* the config with the one [run] value replaced */
        hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
        ck_assert_int_ge(f, 0);
        static char text[1 << 20];
        ck_assert_int_eq(mr_h5_attr_string(f, dst, "config", text, sizeof text, NULL), MR_OK);
        char key[40], *edited = malloc(strlen(text) + 200);
        snprintf(key, sizeof key, "\n%s = ", cases[i][0]);
        const char *at = strstr(text, key);
        ck_assert_msg(at, "no [run] %s in the config", cases[i][0]);
        const char *eol = strchr(at + 1, '\n');
        sprintf(edited, "%.*s%s%s", (int)(at - text) + (int)strlen(key), text, cases[i][1],
                eol ? eol : "");
        ck_assert_int_ge(H5Adelete(f, "config"), 0);
        ck_assert_int_eq(mr_h5_write_attr_string(f, "config", edited), MR_OK);
        H5Fclose(f);
        free(edited);
        mr_results r;
        ck_assert_int_eq(mr_results_load(&r, dir), MR_EINPUT);
        char want[80];
        snprintf(want, sizeof want, "[run] %s", cases[i][0]);
        ck_assert_msg(strstr(mr_error_message(), dst) && strstr(mr_error_message(), want),
                      "%s = '%s': %s", cases[i][0], cases[i][1], mr_error_message());
        mr_results_free(&r);
    }
}
END_TEST

START_TEST(tables_hold_the_numbers)
{
    mr_results r;
    ck_assert_int_eq(mr_results_load(&r, g_dir), MR_OK);
    char out[300];
    snprintf(out, sizeof out, "%s/rep", g_dir);
    mr_report_opts o = {.format = "png", .out = out, .render = 0, .gallery = 0, .quiet = 1};
    mr_report_info info;
    ck_assert_int_eq(mr_report_write(&r, &o, &info), MR_OK);
    ck_assert_int_eq(info.n_figures, 12); /* + families, saturation, coact, class, layers */
    ck_assert_int_eq(info.n_rendered, 0);
    ck_assert_int_eq(info.n_tables, 8); /* + comparison, families (.md, .tex) */
    char path[400];
    const char *tabs[4] = {"table-tiny-summary.md", "table-tiny-summary.tex",
                           "table-tiny-corruptions.md", "table-tiny-corruptions.tex"};
    char *text[4];
    for (int t = 0; t < 4; t++) {
        snprintf(path, sizeof path, "%s/%s", out, tabs[t]);
        text[t] = slurp(path);
        ck_assert_msg(text[t] != NULL, "%s missing", path);
    }
    ck_assert_ptr_nonnull(strstr(text[1], "\\toprule"));
    ck_assert_ptr_nonnull(strstr(text[1], "\\bottomrule"));
    ck_assert_ptr_nonnull(strstr(text[1], "\\textbf{"));
    ck_assert_ptr_nonnull(strstr(text[1], "$\\pm$"));
    /* independent reading of results.h5 */
    char h5[300];
    snprintf(h5, sizeof h5, "%s/results.h5", g_dir);
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    static const char *const groups[4] = {"softmax@k1", "softmax@k2", "sim@k2", "attention@k2"};
    static const char *const corr[4] = {"shot_noise", "rotate", "contrast", "embed_gaussian"};
    char want[64], stem[300];
    for (int g = 0; g < 4; g++) {
        /* clean accuracy, in every table */
        snprintf(stem, sizeof stem, "tiny~%s~clean", groups[g]);
        mr_report_fmt(want, sizeof want, 100 * h5_first(f, stem, "accuracy"), 2);
        for (int t = 0; t < 4; t++) assert_contains(text[t], want, tabs[t]);
        /* mCE from /ce, in the summaries */
        char ce[300];
        snprintf(ce, sizeof ce, "/ce/tiny~%s", groups[g]);
        mr_report_fmt(want, sizeof want, 100 * h5_attr(f, ce, "mce"), 2);
        assert_contains(text[0], want, tabs[0]);
        assert_contains(text[1], want, tabs[1]);
        /* per corruption: mean corrupted accuracy over the severities */
        for (int c = 0; c < 4; c++) {
            double sum = 0;
            for (int s = 1; s <= 5; s++) {
                snprintf(stem, sizeof stem, "tiny~%s~%s~s%d", groups[g], corr[c], s);
                sum += h5_first(f, stem, "accuracy");
            }
            mr_report_fmt(want, sizeof want, 100 * sum / 5, 2);
            assert_contains(text[2], want, tabs[2]);
            assert_contains(text[3], want, tabs[3]);
        }
    }
    H5Fclose(f);
    /* every figure has its data and script, and the index links them */
    snprintf(path, sizeof path, "%s/report.md", out);
    char *index = slurp(path);
    ck_assert_ptr_nonnull(index);
    static const char *const figs[7] = {"severity-mean", "severity", "flip", "entropy", "fluct",
                                        "load", "k"};
    for (int i = 0; i < 7; i++) {
        char name[100];
        struct stat sb;
        snprintf(name, sizeof name, "fig-tiny-%s.png", figs[i]);
        assert_contains(index, name, "report.md");
        snprintf(path, sizeof path, "%s/fig-tiny-%s.dat", out, figs[i]);
        ck_assert_msg(stat(path, &sb) == 0 && sb.st_size > 0, "%s", path);
        snprintf(path, sizeof path, "%s/fig-tiny-%s.gp", out, figs[i]);
        ck_assert_msg(stat(path, &sb) == 0 && sb.st_size > 0, "%s", path);
    }
    assert_contains(index, "table-tiny-summary.tex", "report.md");
    free(index);
    for (int t = 0; t < 4; t++) free(text[t]);
    mr_report_info_free(&info); /* the comparison rows it holds */
    mr_results_free(&r);
}
END_TEST

static mr_gate_metric metric(const char *key, double mean, double lo, double hi, int better)
{
    mr_gate_metric m = {.mean = mean, .lo = lo, .hi = hi, .has_ci = lo < hi, .better = better};
    snprintf(m.key, sizeof m.key, "%s", key);
    return m;
}

static int status_of(const char *tolerance_json, mr_gate_metric base, mr_gate_metric now)
{
    mr_gate_set b = {.n = 1, .v = &base}, n = {.n = 1, .v = &now};
    mr_gate_tol t;
    mr_gate_tol_default(&t);
    if (tolerance_json) {
        char path[300];
        snprintf(path, sizeof path, "%s/tol.json", g_dir);
        spit(path, tolerance_json);
        ck_assert_int_eq(mr_gate_load_tolerance(path, &t), MR_OK);
    }
    mr_gate_report rep;
    ck_assert_int_eq(mr_gate_compare(&b, &n, &t, &rep), MR_OK);
    int s = rep.rows[0].status;
    mr_gate_report_free(&rep);
    mr_gate_tol_free(&t);
    return s;
}

START_TEST(tolerance_semantics)
{
    const char *acc = "m/r@k2/clean:accuracy", *flip = "m/r@k2/fog/s3:layer1/flip_top1",
               *ent = "m/r@k2/clean:layer1/entropy";
    mr_gate_metric b = metric(acc, 0.80, 0.75, 0.85, MR_BETTER_HIGHER);
    /* default: exact up to 1e-9 */
    ck_assert_int_eq(status_of(NULL, b, metric(acc, 0.80, 0.75, 0.85, 1)), MR_GATE_UNCHANGED);
    ck_assert_int_eq(status_of(NULL, b, metric(acc, 0.80 - 1e-12, 0, 0, 1)), MR_GATE_MOVED);
    ck_assert_int_eq(status_of(NULL, b, metric(acc, 0.79, 0, 0, 1)), MR_GATE_REGRESSED);
    ck_assert_int_eq(status_of(NULL, b, metric(acc, 0.81, 0, 0, 1)), MR_GATE_IMPROVED);
    /* absolute and relative tolerances: max(abs, rel*|base|) */
    const char *t1 = "{\"default\": {\"abs\": 0.02}}";
    ck_assert_int_eq(status_of(t1, b, metric(acc, 0.79, 0, 0, 1)), MR_GATE_MOVED);
    ck_assert_int_eq(status_of(t1, b, metric(acc, 0.77, 0, 0, 1)), MR_GATE_REGRESSED);
    const char *t2 = "{\"rules\": [{\"match\": \"*:accuracy\", \"rel\": 0.05}]}";
    ck_assert_int_eq(status_of(t2, b, metric(acc, 0.765, 0, 0, 1)), MR_GATE_MOVED);
    ck_assert_int_eq(status_of(t2, b, metric(acc, 0.755, 0, 0, 1)), MR_GATE_REGRESSED);
    /* lower is better for flips: a rise regresses, a fall improves */
    mr_gate_metric f = metric(flip, 0.10, 0.08, 0.12, MR_BETTER_LOWER);
    ck_assert_int_eq(status_of(t1, f, metric(flip, 0.13, 0, 0, -1)), MR_GATE_REGRESSED);
    ck_assert_int_eq(status_of(t1, f, metric(flip, 0.05, 0, 0, -1)), MR_GATE_IMPROVED);
    /* mode ci: inside the baseline CI (+ tolerance) is not a regression */
    const char *t3 = "{\"default\": {\"mode\": \"ci\"}}";
    ck_assert_int_eq(status_of(t3, f, metric(flip, 0.119, 0, 0, -1)), MR_GATE_MOVED);
    ck_assert_int_eq(status_of(t3, f, metric(flip, 0.121, 0, 0, -1)), MR_GATE_REGRESSED);
    /* entropy: either direction beyond tolerance */
    mr_gate_metric e = metric(ent, 1.0, 0.9, 1.1, MR_BETTER_EITHER);
    ck_assert_int_eq(status_of(t1, e, metric(ent, 1.05, 0, 0, 0)), MR_GATE_REGRESSED);
    ck_assert_int_eq(status_of(t1, e, metric(ent, 0.95, 0, 0, 0)), MR_GATE_REGRESSED);
    ck_assert_int_eq(status_of(t1, e, metric(ent, 0.99, 0, 0, 0)), MR_GATE_MOVED);
    /* first matching rule wins; ignore */
    const char *t4 = "{\"rules\": [{\"match\": \"*/fog/*\", \"ignore\": true},"
                     " {\"match\": \"*flip*\", \"abs\": 0.5}]}";
    ck_assert_int_eq(status_of(t4, f, metric(flip, 0.9, 0, 0, -1)), MR_GATE_IGNORED);
    const char *t5 = "{\"rules\": [{\"match\": \"*flip*\", \"abs\": 0.5},"
                     " {\"match\": \"*/fog/*\", \"ignore\": true}]}";
    ck_assert_int_eq(status_of(t5, f, metric(flip, 0.55, 0, 0, -1)), MR_GATE_MOVED);
    /* a metric missing from the run fails */
    mr_gate_set bs = {.n = 1, .v = &b}, ns = {0};
    mr_gate_tol t;
    mr_gate_tol_default(&t);
    mr_gate_report rep;
    ck_assert_int_eq(mr_gate_compare(&bs, &ns, &t, &rep), MR_OK);
    ck_assert_int_eq(rep.rows[0].status, MR_GATE_MISSING);
    mr_gate_report_free(&rep);
}
END_TEST

START_TEST(baseline_round_trip)
{
    mr_results r;
    ck_assert_int_eq(mr_results_load(&r, g_dir), MR_OK);
    mr_gate_set s, back;
    ck_assert_int_eq(mr_gate_collect(&r, mr_gate_default_metrics(), &s), MR_OK);
    /* 4 groups: clean acc + entropy; 20 corrupt cells x (acc, pred flip, entropy, 2 flips);
     * 1 fluct cell x (pred flip, 2 flips); mce */
    ck_assert_int_eq(s.n, 4 * (2 + 20 * 5 + 3 + 1));
    char *json = mr_gate_baseline_json(&s);
    char path[300];
    snprintf(path, sizeof path, "%s/baseline.json", g_dir);
    spit(path, json);
    free(json);
    ck_assert_int_eq(mr_gate_load_baseline(path, &back), MR_OK);
    ck_assert_int_eq(back.n, s.n);
    for (int i = 0; i < s.n; i++) {
        ck_assert_str_eq(back.v[i].key, s.v[i].key);
        ck_assert(back.v[i].mean == s.v[i].mean); /* bit-exact */
        ck_assert(back.v[i].lo == s.v[i].lo && back.v[i].hi == s.v[i].hi);
        ck_assert_int_eq(back.v[i].better, s.v[i].better);
    }
    mr_gate_tol t;
    mr_gate_tol_default(&t);
    mr_gate_report rep;
    ck_assert_int_eq(mr_gate_compare(&back, &s, &t, &rep), MR_OK);
    ck_assert_int_eq(rep.count[MR_GATE_UNCHANGED], s.n);
    char junit[300];
    snprintf(junit, sizeof junit, "%s/junit.xml", g_dir);
    ck_assert_int_eq(mr_gate_write_junit(junit, &rep, "suite <&>"), MR_OK);
    char *x = slurp(junit);
    ck_assert_ptr_nonnull(strstr(x, "name=\"suite &lt;&amp;&gt;\""));
    ck_assert_ptr_nonnull(strstr(x, "<testcase classname=\"tiny/sim@k2/rotate/s3\" name=\"layer1/flip_top1\""));
    ck_assert_ptr_null(strstr(x, "<failure"));
    free(x);
    mr_gate_report_free(&rep);
    /* --metrics */
    uint64_t mask;
    ck_assert_int_eq(mr_gate_parse_metrics("flip_top1,mce", &mask), MR_OK);
    mr_gate_set_free(&back);
    ck_assert_int_eq(mr_gate_collect(&r, mask, &back), MR_OK);
    ck_assert_int_eq(back.n, 4 * (20 + 1 + 1));
    ck_assert_int_eq(mr_gate_parse_metrics("accuracy,flips", &mask), MR_EINPUT);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "unknown metric 'flips'"));
    mr_gate_set_free(&back);
    mr_gate_set_free(&s);
    mr_results_free(&r);
}
END_TEST

static void expect_bad(int baseline, const char *text, const char *msg)
{
    char path[300];
    snprintf(path, sizeof path, "%s/bad.json", g_dir);
    spit(path, text);
    int st;
    if (baseline) {
        mr_gate_set s;
        st = mr_gate_load_baseline(path, &s);
    } else {
        mr_gate_tol t;
        st = mr_gate_load_tolerance(path, &t);
    }
    ck_assert_int_eq(st, MR_EINPUT);
    ck_assert_msg(strstr(mr_error_message(), msg) != NULL, "message \"%s\" lacks \"%s\"",
                  mr_error_message(), msg);
    ck_assert_ptr_nonnull(strstr(mr_error_message(), "bad.json"));
}

START_TEST(malformed_files)
{
    const char *ok_head = "{\"format\": \"moe-robust-baseline\", \"version\": 1, \"metrics\": ";
    char buf[512];
    expect_bad(1, "{\"format\": \"moe-robust-baseline\",\n  \"version\": 1,\n  \"metrics\": {\"a:accuracy\": {\"mean\": 0.5,}}}",
               "bad.json:3:");
    expect_bad(1, "{\"format\": \"moe-robust-baseline\", \"version\": 1, \"metrics\": {", "unexpected end of file");
    expect_bad(1, "[1, 2]", "top level must be a JSON object");
    expect_bad(1, "{\"format\": \"something\", \"version\": 1, \"metrics\": {}}", "\"format\" must be \"moe-robust-baseline\"");
    expect_bad(1, "{\"format\": \"moe-robust-baseline\", \"version\": 2, \"metrics\": {}}", "version 2 is not supported");
    snprintf(buf, sizeof buf, "%s{}}", ok_head);
    expect_bad(1, buf, "\"metrics\" is empty");
    snprintf(buf, sizeof buf, "%s{\"a:accuracy\": {\"mean\": \"high\"}}}", ok_head);
    expect_bad(1, buf, "metrics[\"a:accuracy\"]: \"mean\" must be a finite number");
    snprintf(buf, sizeof buf, "%s{\"a:accuracy\": {\"mean\": 1, \"lo\": 0.5}}}", ok_head);
    expect_bad(1, buf, "\"lo\" and \"hi\" come together");
    snprintf(buf, sizeof buf, "%s{\"a:speed\": {\"mean\": 1}}}", ok_head);
    expect_bad(1, buf, "unknown metric name and no \"better\"");
    snprintf(buf, sizeof buf, "%s{\"a:accuracy\": {\"mean\": 1, \"better\": \"up\"}}}", ok_head);
    expect_bad(1, buf, "\"better\" is \"up\"");
    snprintf(buf, sizeof buf, "%s{\"a:accuracy\": {\"mean\": 1}, \"a:accuracy\": {\"mean\": 2}}}", ok_head);
    expect_bad(1, buf, "appears twice");
    expect_bad(0, "{\"default\": {\"abs\": -1}}", "\"abs\" must be a number >= 0");
    expect_bad(0, "{\"default\": {\"relative\": 0.1}}", "unknown key \"relative\"");
    expect_bad(0, "{\"rules\": [{\"abs\": 0.1}]}", "rules[0]: missing \"match\"");
    expect_bad(0, "{\"default\": {\"mode\": \"loose\"}}", "\"mode\" must be \"fixed\" or \"ci\"");
    expect_bad(0, "{\"tolerances\": []}", "unknown key \"tolerances\"");
}
END_TEST

/* the fixture: one run of the tiny grid through the library */
static int make_run(const char *dir)
{
    static mr_run_config cfg;
    mr_grid g = {0};
    int st = mr_runcfg_load(&cfg, "tests/configs/tiny-grid.ini");
    snprintf(cfg.out, sizeof cfg.out, "%s", dir);
    if (st == MR_OK) st = mr_grid_build(&g, &cfg);
    char cells[400];
    snprintf(cells, sizeof cells, "%s/cells", dir);
    if (st == MR_OK && mkdir(cells, 0777) != 0) st = MR_EIO;
    mr_grid_run_opts ro = {.dir = dir, .threads = 2, .shard = 0, .n_shards = 1, .progress = NULL};
    if (st == MR_OK) st = mr_grid_run(&g, &ro);
    if (st == MR_OK) st = mr_grid_write_summary(&g, dir);
    if (st != MR_OK) fprintf(stderr, "test_report: fixture run failed: %s\n", mr_error_message());
    mr_grid_free(&g);
    return st;
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/mr-test-report-XXXXXX");
    if (!mkdtemp(g_dir)) return EXIT_FAILURE;
    /* the run uses OpenMP: do it in a child, so that the tests (forked by Check) start
     * from a process whose OpenMP runtime was never started (libgomp and fork do not mix) */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(make_run(g_dir) == MR_OK ? 0 : 1);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, results_read_back);
    tcase_add_test(tc, tables_hold_the_numbers);
    tcase_add_test(tc, tolerance_semantics);
    tcase_add_test(tc, baseline_round_trip);
    tcase_add_test(tc, malformed_files);
    tcase_add_test(tc, damaged_run_settings);
    suite_add_tcase(s, tc);
    int rc = mr_test_run(s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "test_report: could not remove %s\n", g_dir);
    return rc;
}
