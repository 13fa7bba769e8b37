/* mr_gate.h — the CI gate: `moe-robust baseline` freezes metrics of a run's results.h5
 * into a versioned JSON file; `moe-robust check` compares a new run against it with
 * per-metric tolerances (docs/ci.md has both file formats).
 *
 * A metric is named "CELL_ID:METRIC" for cell metrics, e.g.
 *   vit/softmax@k2/clean:accuracy
 *   vit/softmax@k2/gaussian_noise/s3:layer1/flip_top1   (layerB = MoE block B)
 * and "MODEL/ROUTER@kK:mce" for a group's mean corruption error. Each has the direction
 * of its schema row (metrics/mr_metric.h): higher is better (accuracy), lower is better
 * (loss, flips, mCE, ...), or either (entropy: a change beyond tolerance in either
 * direction is reported as a regression, since neither is better by itself).
 * Ownership: every struct filled here is released by its _free function.
 */
#ifndef MR_GATE_H
#define MR_GATE_H

#include <stdint.h>
#include <stdio.h>

#include "../io/mr_results.h"

typedef struct mr_gate_metric {
    char key[420];
    double mean, lo, hi;
    int has_ci;
    int better;
    /* the most one sample's outcome can move this metric in the run it came from
     * (1/n for rates and normalized entropies over n samples, ln(E)/n for entropy,
     * 2 sqrt(E)/n for load_cv, 4E/n for aux_loss; 0 where no bound exists: loss, bpc,
     * mce, relative_mce). Not stored in baseline files. */
    double quantum;
} mr_gate_metric;

typedef struct mr_gate_set {
    int n, cap;
    mr_gate_metric *v;
    char source[1100];
    char config_hash[40];
    double level;
} mr_gate_set;

/* Metric selection: a comma-separated list of the keys of the metrics the schema marks
 * `gate` (metrics/mr_metric.h; docs/ci.md lists them), "primary" (accuracy for
 * classifiers, bpc for LMs), "default" (primary, prediction_flip, flip_top1,
 * flip_topk_set, entropy, mce) or "all". Bit i of a mask is metric i of the schema. */
int mr_gate_parse_metrics(const char *list, uint64_t *mask);
uint64_t mr_gate_default_metrics(void);
uint64_t mr_gate_all_metrics(void);

/* The selected metrics of a run, in grid order: per group its clean, corrupted, fluct
 * and attack cells, then its group metrics. */
int mr_gate_collect(const mr_results *r, uint64_t mask, mr_gate_set *out);
/* The baseline JSON text (malloc'd, ends with a newline). */
char *mr_gate_baseline_json(const mr_gate_set *s);
/* Read a baseline file; MR_EINPUT naming FILE[:LINE:COL] and the key at fault. */
int mr_gate_load_baseline(const char *path, mr_gate_set *out);
void mr_gate_set_free(mr_gate_set *s);

enum { MR_MODE_FIXED = 0, MR_MODE_CI = 1 };

typedef struct mr_gate_rule {
    char match[400];   /* fnmatch(3) glob over the metric name ("*" matches "/" too) */
    double abs, rel;   /* allowed worsening: max(abs, rel * |baseline|, samples * quantum) */
    double samples;    /* samples whose outcome may change (a near tie decided otherwise) */
    int mode;          /* MR_MODE_FIXED / MR_MODE_CI */
    int ignore;
} mr_gate_rule;

typedef struct mr_gate_tol {
    mr_gate_rule def;  /* "default" */
    int n;
    mr_gate_rule *rules; /* first match wins */
} mr_gate_tol;

/* Built-in default: fixed, abs 1e-5, rel 1e-5, samples 1: floating-point noise across
 * BLAS kernels and vector widths (docs/ci.md, "Default tolerance"), nothing more. */
void mr_gate_tol_default(mr_gate_tol *t);
int mr_gate_load_tolerance(const char *path, mr_gate_tol *t);
/* Every rule must match some metric of the baseline or the run: a glob that matches
 * nothing (a typo such as "*:acuracy") would silently guard nothing. MR_EINPUT naming
 * FILE, the rule and its glob. */
int mr_gate_check_rules(const mr_gate_tol *t, const mr_gate_set *base, const mr_gate_set *now,
                        const char *path);
void mr_gate_tol_free(mr_gate_tol *t);

enum { MR_GATE_UNCHANGED, MR_GATE_MOVED, MR_GATE_IMPROVED, MR_GATE_REGRESSED, MR_GATE_MISSING,
       MR_GATE_IGNORED, MR_GATE_NSTATUS };

typedef struct mr_gate_row {
    const mr_gate_metric *base;
    const mr_gate_metric *now;  /* NULL: missing from the new run */
    int status;
    double allowed;             /* the tolerance that applied */
    int mode;
    char rule[400];             /* "default" or the matching glob */
} mr_gate_row;

typedef struct mr_gate_report {
    int n;
    mr_gate_row *rows;          /* in baseline order */
    int count[MR_GATE_NSTATUS];
    int n_new;                  /* metrics of the run the baseline does not have */
    int hash_differs;
} mr_gate_report;

int mr_gate_compare(const mr_gate_set *base, const mr_gate_set *now, const mr_gate_tol *tol,
                    mr_gate_report *out);
/* The table of what moved (every regression and missing metric; improvements and moves
 * within tolerance up to 20 lines each unless `all`), then a one-line verdict. */
void mr_gate_print(FILE *fp, const mr_gate_report *rep, int all);
/* One line describing a row: "KEY: rose from A to B (+D), allowed +T (abs 0.01 ...)". */
void mr_gate_describe(char *buf, size_t cap, const mr_gate_row *row);
/* JUnit XML: one testcase per guarded metric, written atomically. */
int mr_gate_write_junit(const char *path, const mr_gate_report *rep, const char *suite);
/* JUnit XML for a gate that could not run (bad input, exit 2): one testcase with an
 * <error> element carrying the message. */
int mr_gate_write_junit_error(const char *path, const char *suite, const char *message);
void mr_gate_report_free(mr_gate_report *r);

#endif
