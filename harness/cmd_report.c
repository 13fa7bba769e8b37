/* moe-robust report DIR... — figures and tables from runs' results.h5 (docs/reports.md). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../reports/mr_report.h"
#include "../io/mr_results.h"
#include "mr_cli.h"

static void usage(FILE *fp); /* --help, at the end of this file */

int mr_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        MR_OPT("format", 'f'), MR_OPT("out", 'o'), MR_FLAG("no-render", 'n'),
        MR_FLAG("no-gallery", 'g'), MR_FLAG("quiet", 'q'), MR_CLI_OPTS_END};
    mr_report_opts o = {.format = "png", .render = 1, .gallery = 1};
    int st = MR_OK, c;
    mr_cli_getopt_start();
    while (st == MR_OK && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o.format = optarg;
            if (strcmp(optarg, "png") && strcmp(optarg, "pdf") && strcmp(optarg, "svg"))
                st = mr_error_set(MR_EINPUT, "--format %s: expected png, pdf or svg", optarg);
            break;
        case 'o': o.out = optarg; break;
        case 'n': o.render = 0; break;
        case 'g': o.gallery = 0; break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': return mr_cli_version();
        default: st = mr_cli_option_error(c, argv);
        }
    }
    int n = argc - optind;
    if (st == MR_OK && n < 1) st = mr_error_set(MR_EINPUT, "DIR is required");
    if (st == MR_OK && n > 1 && !o.out)
        st = mr_error_set(MR_EINPUT, "%d run directories need --out OUTDIR", n);
    if (st != MR_OK) return mr_cli_usage_error("report", st);
    mr_report_info info = {0};
    if (n > 1) {
        st = mr_report_runs((const char *const *)argv + optind, n, &o, &info);
    } else {
        mr_results r;
        st = mr_results_load(&r, argv[optind]);
        if (st == MR_OK) st = mr_report_write(&r, &o, &info);
        mr_results_free(&r);
    }
    mr_report_info_free(&info);
    if (st != MR_OK) {
        fprintf(stderr, "moe-robust report: %s\n", mr_error_message());
        return mr_error_exit_code(st);
    }
    if (strncmp(info.gallery, "not drawn", 9) == 0 && o.gallery)
        fprintf(stderr, "moe-robust report: note: corruption gallery %s\n", info.gallery);
    if (info.gnuplot_missing) {
        fprintf(stderr,
                "moe-robust report: gnuplot is not installed: wrote %d figure data files and "
                "scripts, %d tables and report.md to %s, but rendered no figure.\n"
                "Install gnuplot (Debian: apt-get install gnuplot-nox) and run this command again, "
                "or run `gnuplot NAME.gp` in that directory.\n",
                info.n_figures, info.n_tables, info.out);
        return 3;
    }
    if (!o.quiet)
        fprintf(stderr, "moe-robust report: %d figures (%d rendered), %d tables; index %s/report.md\n",
                info.n_figures, info.n_rendered, info.n_tables, info.out);
    return 0;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: moe-robust report DIR [--format png|pdf|svg] [--out OUTDIR] [--no-render]\n"
            "                             [--no-gallery] [--quiet]\n"
            "       moe-robust report DIR1 DIR2 ... --out OUTDIR [options]\n"
            "\n"
            "Renders figures and tables from DIR/results.h5 alone (written by `moe-robust run`;\n"
            "nothing is re-evaluated) into DIR/report/: report.md (the index), fig-*.png|pdf|svg\n"
            "each with its data (fig-*.dat) and gnuplot script (fig-*.gp) beside it, tables\n"
            "table-*.md and table-*.tex (booktabs) — first the comparison of every (model,\n"
            "router@k) of the run —, the corruption gallery and figures.pdf (every figure, with\n"
            "poppler-utils' pdfunite). With several run directories: each run's report in\n"
            "OUTDIR/run-I-NAME/, and in OUTDIR the comparison columns with one row per (run,\n"
            "model, router@k) and mean +- std over runs that differ only by seed. See\n"
            "docs/reports.md.\n"
            "\n"
            "  --format F     png (default), pdf (pdfcairo, paper fonts) or svg\n"
            "  --out OUTDIR   output directory (default: DIR/report): new, empty or an earlier\n"
            "                 report's; never a directory holding other files\n"
            "  --no-render    write data, scripts and tables only; do not run gnuplot\n"
            "  --no-gallery   do not draw the corruption gallery (it reads the run's data file)\n"
            "  --quiet        no progress lines\n"
            "  -h, --help     this text\n"
            "  --version      the version\n"
            "\n"
            "Exit status: 0 done, 2 bad input (no or malformed results.h5, bad option),\n"
            "1 runtime failure (gnuplot failed on a script), 3 gnuplot is not installed (data,\n"
            "scripts and tables are still written).\n");
}
