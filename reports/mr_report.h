/* mr_report.h — `moe-robust report`: figures and tables from a run's results.h5 alone
 * (docs/reports.md). Nothing is re-evaluated.
 *
 * For every model of the run it writes, into the output directory (default DIR/report):
 *   fig-MODEL-severity-mean   accuracy (lm: bits per char) vs severity, mean over corruptions
 *   fig-MODEL-severity        the same per corruption (one panel each)
 *   fig-MODEL-flip            flip rates vs severity (top-1, top-k set, prediction)
 *   fig-MODEL-entropy         per-layer routing entropy and its ratio to the reference router
 *   fig-MODEL-fluct           per-layer checkpoint-to-checkpoint top-1 flip (if checkpoints)
 *   fig-MODEL-load            expert-load heatmaps (layer x expert), one panel per router@k
 *   fig-MODEL-k               accuracy vs active experts k (the self-slimmable curve)
 * and, for a model that other models of the run compress (`compress = METHOD:K`):
 *   fig-compress-MODEL-accuracy   accuracy vs experts kept, clean and corrupted, per method
 *   fig-compress-MODEL-stability  routing entropy and flip rates vs experts kept
 *   table-compress-MODEL.md       the numbers of both
 * each as .dat (data) + .gp (gnuplot script) + the rendered .png/.pdf/.svg; tables
 * table-MODEL-summary.{md,tex} and table-MODEL-corruptions.{md,tex}; the corruption
 * gallery (fig-gallery.png for image data, gallery.txt for text); figures.pdf, every
 * rendered figure as one page (pdfcairo pages joined by poppler's pdfunite, when it is
 * installed); and report.md, the index. Every file is written atomically.
 * Confidence intervals of aggregates (means over corruptions, severities, layers) are
 * bootstrap CIs over samples from the per-sample vectors in results.h5, with the run's
 * seed, B and level.
 */
#ifndef MR_REPORT_H
#define MR_REPORT_H

#include "../io/mr_results.h"

typedef struct mr_report_opts {
    const char *format;  /* "png" (default), "pdf" or "svg" */
    const char *out;     /* output directory; NULL: DIR/report */
    int render;          /* run gnuplot (1) or only write data, scripts and tables (0) */
    int gallery;         /* draw the corruption gallery (needs the run's data file) */
    int quiet;           /* no progress lines on stderr */
} mr_report_opts;

/* One row of the comparison table (docs/reports.md "Comparison"): a (model, router@k) of
 * a run and its columns [mean, lo, hi] in display units, NaN where it has none: clean and
 * corrupted primary metric, mCE, relative mCE, flip top-1, prediction flip, entropy,
 * checkpoint flip top-1, load CV. */
#define MR_REPORT_NCOL 9
typedef struct mr_report_row {
    char model[128], router[160];
    int task;
    double v[MR_REPORT_NCOL][3];
} mr_report_row;

typedef struct mr_report_info {
    char out[1100];        /* the output directory */
    int n_figures;         /* gnuplot figures written (.dat + .gp) */
    int n_rendered;        /* of which rendered */
    int gnuplot_missing;   /* no gnuplot: nothing rendered, everything else written */
    int n_tables;
    char gallery[1200];    /* what happened to the gallery, for the index and the CLI */
    int figures_pdf;       /* figures.pdf, every figure as one page: 1 written, 0 not
                              (nothing rendered, or no pdfunite: poppler-utils) */
    mr_report_row *rows;   /* the comparison table's rows (mr_report_info_free) */
    int n_rows;
} mr_report_info;

/* Write the report of `r`. MR_OK also when gnuplot is missing (info->gnuplot_missing);
 * MR_EFAILED when gnuplot failed on a script (everything else is still written). */
int mr_report_write(const mr_results *r, const mr_report_opts *o, mr_report_info *info);

void mr_report_info_free(mr_report_info *info);

/* `moe-robust report DIR1 DIR2 ... --out OUT`: every run's own report in OUT/run-I-NAME/
 * and, in OUT, table-runs.{md,tex} (the comparison columns with one row per (run, model,
 * router@k)), table-seeds.{md,tex} (mean ± std over runs whose configs differ only by
 * seed) and report.md. o->out is required. info sums the runs' figures and tables. */
int mr_report_runs(const char *const *dirs, int n, const mr_report_opts *o,
                   mr_report_info *info);

/* Formatting shared with the tests: "%.2f" of v (or "n/a" for NaN) */
void mr_report_fmt(char *buf, size_t cap, double v, int decimals);

#endif
