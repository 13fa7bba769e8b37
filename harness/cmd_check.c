/* moe-robust baseline DIR / moe-robust check DIR --baseline FILE — the CI gate
 * (docs/ci.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../io/mr_fs.h"
#include "../reports/mr_gate.h"
#include "../io/mr_file.h"
#include "../io/mr_results.h"
#include "mr_cli.h"

/* the --help texts, at the end of this file */
static void baseline_usage(FILE *fp);
static void check_usage(FILE *fp);

int mr_cmd_baseline(int argc, char **argv)
{
    static const struct option opts[] = {
        MR_OPT("metrics", 'm'), MR_OPT("out", 'o'), MR_CLI_OPTS_END};
    uint64_t mask = mr_gate_default_metrics();
    const char *out = NULL;
    int st = MR_OK, c;
    mr_cli_getopt_start();
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': st = mr_gate_parse_metrics(optarg, &mask); break;
        case 'o': out = optarg; break;
        case 'h': baseline_usage(stdout); return 0;
        case 'V': return mr_cli_version();
        default: st = mr_cli_option_error(c, argv);
        }
    }
    if (st == MR_OK) st = mr_cli_one_operand(argc, argv, optind, "DIR");
    if (st != MR_OK) return mr_cli_usage_error("baseline", st);
    mr_results r;
    mr_gate_set s = {0};
    char *text = NULL;
    st = mr_results_load(&r, argv[optind]);
    if (st == MR_OK && out) {
        const char *inputs[1] = {r.file};
        st = mr_fs_check_output(out, "--out", inputs, 1);
    }
    if (st == MR_OK) st = mr_gate_collect(&r, mask, &s);
    if (st == MR_OK && s.n == 0)
        st = mr_error_set(MR_EINPUT, "%s: none of the selected metrics exist in this run", r.file);
    if (st == MR_OK && !(text = mr_gate_baseline_json(&s))) st = mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        if (out) {
            const char *slash = strrchr(out, '/');
            st = (slash ? slash[1] : out[0]) ? mr_file_write(out, text, strlen(text))
                                             : mr_error_set(MR_EINPUT, "--out %s: not a file name", out);
        } else if (fputs(text, stdout) < 0 || fflush(stdout) != 0) {
            st = mr_error_set(MR_EIO, "cannot write to stdout");
        }
    }
    if (st == MR_OK)
        fprintf(stderr, "moe-robust baseline: %d metrics of %d cells frozen%s%s\n", s.n, r.n_cells,
                out ? " in " : "", out ? out : "");
    else
        fprintf(stderr, "moe-robust baseline: %s\n", mr_error_message());
    free(text);
    mr_gate_set_free(&s);
    mr_results_free(&r);
    return mr_error_exit_code(st);
}

int mr_cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        MR_OPT("baseline", 'b'), MR_OPT("tolerance", 't'), MR_OPT("junit", 'j'),
        MR_FLAG("all", 'a'), MR_FLAG("quiet", 'q'), MR_CLI_OPTS_END};
    const char *base_path = NULL, *tol_path = NULL, *junit = NULL;
    int all = 0, quiet = 0, st = MR_OK, c;
    mr_cli_getopt_start();
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': base_path = optarg; break;
        case 't': tol_path = optarg; break;
        case 'j': junit = optarg; break;
        case 'a': all = 1; break;
        case 'q': quiet = 1; break;
        case 'h': check_usage(stdout); return 0;
        case 'V': return mr_cli_version();
        default: st = mr_cli_option_error(c, argv);
        }
    }
    if (st == MR_OK) st = mr_cli_one_operand(argc, argv, optind, "DIR");
    if (st == MR_OK && !base_path) st = mr_error_set(MR_EINPUT, "--baseline FILE is required");
    if (st != MR_OK) return mr_cli_usage_error("check", st);
    mr_gate_set base = {0}, now = {0};
    mr_gate_tol tol;
    mr_gate_tol_default(&tol);
    mr_results r;
    memset(&r, 0, sizeof r);
    r.h5 = -1;
    mr_gate_report rep = {0};
    /* every input is checked before anything is compared or written */
    const char *inputs[3] = {base_path, tol_path, NULL};
    int junit_ok = !junit || mr_fs_check_output(junit, "--junit", inputs, 2) == MR_OK;
    st = junit_ok ? MR_OK : MR_EINPUT;
    if (st == MR_OK) st = mr_gate_load_baseline(base_path, &base);
    if (st == MR_OK && tol_path) st = mr_gate_load_tolerance(tol_path, &tol);
    if (st == MR_OK) st = mr_results_load(&r, argv[optind]);
    if (st == MR_OK && junit) {
        inputs[2] = r.file;
        junit_ok = mr_fs_check_output(junit, "--junit", inputs, 3) == MR_OK;
        st = junit_ok ? MR_OK : MR_EINPUT;
    }
    if (st == MR_OK) st = mr_gate_collect(&r, mr_gate_all_metrics(), &now);
    if (st == MR_OK && tol_path) st = mr_gate_check_rules(&tol, &base, &now, tol_path);
    if (st == MR_OK) st = mr_gate_compare(&base, &now, &tol, &rep);
    if (st == MR_OK) {
        if (quiet) {
            for (int i = 0; i < rep.n; i++)
                if (rep.rows[i].status == MR_GATE_REGRESSED || rep.rows[i].status == MR_GATE_MISSING) {
                    char msg[1200];
                    mr_gate_describe(msg, sizeof msg, &rep.rows[i]);
                    printf("%s: %s\n", rep.rows[i].status == MR_GATE_MISSING ? "MISSING" : "REGRESSION", msg);
                }
            printf("check: %d metrics, %d regressed, %d missing -> %s\n", rep.n,
                   rep.count[MR_GATE_REGRESSED], rep.count[MR_GATE_MISSING],
                   rep.count[MR_GATE_REGRESSED] + rep.count[MR_GATE_MISSING] ? "FAIL" : "PASS");
        } else {
            mr_gate_print(stdout, &rep, all);
        }
        fflush(stdout);
    }
    if (st == MR_OK && junit) {
        char suite[1300];
        snprintf(suite, sizeof suite, "moe-robust check %s", argv[optind]);
        st = mr_gate_write_junit(junit, &rep, suite);
    }
    int failed = st == MR_OK && rep.count[MR_GATE_REGRESSED] + rep.count[MR_GATE_MISSING] > 0;
    if (st != MR_OK) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", mr_error_message());
        fprintf(stderr, "moe-robust check: %s\n", msg);
        /* CI shows why the gate did not run: a JUnit file with one error (never written
         * over one of the inputs) */
        if (junit && junit_ok) {
            char suite[1300];
            snprintf(suite, sizeof suite, "moe-robust check %s", argv[optind]);
            if (mr_gate_write_junit_error(junit, suite, msg) != MR_OK)
                fprintf(stderr, "moe-robust check: %s\n", mr_error_message());
        }
    }
    mr_gate_report_free(&rep);
    mr_gate_set_free(&base);
    mr_gate_set_free(&now);
    mr_gate_tol_free(&tol);
    mr_results_free(&r);
    if (st != MR_OK) return mr_error_exit_code(st);
    return failed ? 1 : 0;
}

static void baseline_usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust baseline DIR [--metrics LIST] [--out FILE]\n"
            "\n"
            "Freezes metrics of DIR/results.h5 (mean and bootstrap CI) as JSON on stdout (or\n"
            "FILE, written atomically), for `moe-robust check` (docs/ci.md):\n"
            "  moe-robust baseline out/run > baseline.json\n"
            "\n"
            "  --metrics LIST  comma-separated metrics to freeze (default: default):\n"
            "                  accuracy, loss, bpc, prediction_flip, accuracy_drop, flip_top1,\n"
            "                  flip_topk_set, flip_jaccard, saturation, entropy, entropy_norm,\n"
            "                  load_cv, aux_loss, mce, relative_mce; primary (accuracy, or bpc\n"
            "                  for an LM);\n"
            "                  default (primary, prediction_flip, flip_top1, flip_topk_set,\n"
            "                  entropy, mce); all\n"
            "  --out FILE      write FILE instead of stdout\n"
            "  -h, --help      this text\n"
            "  --version       the version\n"
            "\n"
            "Exit status: 0 done, 2 bad input, 1 runtime failure.\n");
}

static void check_usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust check DIR --baseline FILE [--tolerance FILE] [--junit FILE]\n"
            "                            [--all] [--quiet]\n"
            "\n"
            "Compares the metrics frozen in a baseline (`moe-robust baseline`) with DIR/results.h5\n"
            "and prints a table of what moved. A metric regresses when it moves in its worse\n"
            "direction (accuracy down; loss, bpc, flips, mCE up; entropy either way) by more\n"
            "than its tolerance, or, in mode \"ci\", outside the baseline's bootstrap CI plus the\n"
            "tolerance. Without --tolerance the default absorbs floating-point noise only\n"
            "(other BLAS kernels, vector widths): max(1e-5, 1e-5 x |baseline|, the change\n"
            "of one sample's outcome, e.g. 1/n for a rate over n samples). See docs/ci.md.\n"
            "\n"
            "  --baseline FILE   the frozen metrics (JSON)\n"
            "  --tolerance FILE  per-metric tolerances (JSON: default + glob rules)\n"
            "  --junit FILE      also write JUnit XML, one testcase per guarded metric\n"
            "  --all             list every moved metric (default: the first 20 of each kind)\n"
            "  --quiet           print only the verdict line and the regressions\n"
            "  -h, --help        this text\n"
            "  --version         the version\n"
            "\n"
            "Exit status: 0 no regression, 1 a regression or a guarded metric missing (or a\n"
            "runtime failure), 2 bad input (malformed baseline or tolerance file, no results).\n");
}
