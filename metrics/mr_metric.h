/* mr_metric.h — the metrics schema: one table (mr_metric_table) that names every metric
 * the suite stores and reports, with how it is stored, printed, guarded and tabulated
 * (docs/metrics.md, docs/architecture.md "Adding a metric").
 *
 * Every writer and reader loops over this table: the cell files (io/mr_cellio),
 * results.h5, summary.json and summary.csv (io/mr_summary), the results reader
 * (io/mr_results), `moe-robust eval`'s printout (harness/mr_eval_print), the CI gate
 * (reports/mr_gate) and the report tables (reports/mr_tables). Adding a metric is its
 * accumulator (a field that the pass or comparison structs of metrics/mr_pass.h carry)
 * plus one row here (an id in enum mr_metric_id and its row in mr_metric.c).
 *
 * A metric's stored value has the shape of its kind, times n_moe when per_layer:
 *   MR_KIND_CI      mean, lo, hi    ([3] or [n_moe, 3])
 *   MR_KIND_SCALAR  one number      ([1] or [n_moe])
 *   MR_KIND_EXPERTS one per expert  ([n_moe, E]; always per layer)
 *   MR_KIND_PERCORR one per corruption of the run ([n_corr]; group metrics)
 * and, where it has one, a per-sample vector ([n] or [n, n_moe]) for paired tests and
 * report CIs.
 * Ownership: the table is static and constant.
 */
#ifndef MR_METRIC_H
#define MR_METRIC_H

#include <stddef.h>

#include "mr_pass.h"

/* Which part of the results holds a metric, i.e. which cells have it. */
enum mr_metric_part {
    MR_PART_PASS,   /* clean and corrupted cells: one evaluation pass */
    MR_PART_FLIPS,  /* corrupted and fluct cells: routing compared with another trace */
    MR_PART_DROP,   /* corrupted cells: paired comparison with the clean pass */
    MR_PART_SAT,    /* fluct cells: the routing of their first checkpoint compared with the
                       last checkpoint of the series (router saturation) */
    MR_PART_GROUP   /* one per (model, router, k) group: corruption errors (results.h5 /ce) */
};

enum mr_metric_kind { MR_KIND_CI, MR_KIND_SCALAR, MR_KIND_EXPERTS, MR_KIND_PERCORR };

/* Which direction is better: a worse value beyond tolerance is a regression for the
 * CI gate; "either" means any change beyond tolerance is one; bold in tables. */
enum { MR_BETTER_EITHER = 0, MR_BETTER_HIGHER = 1, MR_BETTER_LOWER = -1 };

/* Columns of the report tables (bits of mr_metric.report), each a bootstrap CI over
 * samples of the metric's per-sample vector (mean over MoE layers for per-layer metrics):
 *   CLEAN    on clean data (the cell's stored CI when not per-layer)
 *   CORRUPT  mean over every corruption and severity (summary) / over severities
 *            (per-corruption table); SEV: the same per severity, for figures
 *   DELTA    degradation clean -> corrupted (positive = worse)
 *   FLUCT    mean over consecutive-checkpoint pairs
 * Group metrics (PERCORR or SCALAR of MR_PART_GROUP) have a column when REPORT_GROUP. */
enum {
    MR_REPORT_CLEAN = 1, MR_REPORT_CORRUPT = 2, MR_REPORT_DELTA = 4, MR_REPORT_FLUCT = 8,
    MR_REPORT_SEV = 16, MR_REPORT_PERCORR = 32, MR_REPORT_GROUP = 64
};

/* How far one sample's outcome can move a metric over n samples of a model with E experts
 * (mr_metric_quantum; the CI gate's `samples` tolerance, docs/ci.md): a mean of values in
 * [0, 1] (accuracy, flips, normalized entropy) 1/n, routing entropy ln(E)/n; a sample
 * holds 1/n of the top-k assignments and of the router mass, so load fractions and mean
 * probabilities move by at most 2/n in L1: a coefficient of variation (load_cv,
 * importance_cv) by 2 sqrt(E)/n, the Switch aux loss by 4E/n. NONE: no such bound (loss,
 * bpc, corruption errors). */
enum { MR_QUANTUM_NONE, MR_QUANTUM_SAMPLE, MR_QUANTUM_ENTROPY, MR_QUANTUM_CV, MR_QUANTUM_AUX };

/* Every metric. The order is the order of every output (cell datasets, JSON keys, CSV
 * columns, gate keys, table columns): new metrics go where they belong, and the outputs
 * of the others do not change. */
enum mr_metric_id {
    MR_M_ACCURACY, MR_M_LOSS, MR_M_BPC, MR_M_ACC_DROP, MR_M_ACC_DROP_P, MR_M_PRED_FLIP,
    MR_M_ENTROPY, MR_M_ENTROPY_NORM, MR_M_WENTROPY, MR_M_LOAD_ENTROPY_NORM, MR_M_LOAD_CV,
    MR_M_LOAD_MAX_OVER_MEAN, MR_M_DEAD, MR_M_AUX_LOSS, MR_M_IMPORTANCE_CV, MR_M_LOAD,
    MR_M_COACT_TOP10, MR_M_CLASS_NMI, MR_M_VOCAB_SPEC, MR_M_DOMAIN_NMI, MR_M_LAYER_NMI,
    MR_M_FLIP_TOP1, MR_M_FLIP_SET, MR_M_FLIP_JACCARD, MR_M_SATURATION,
    MR_M_MCE, MR_M_RELATIVE_MCE, MR_M_CE, MR_M_RELATIVE_CE,
    MR_METRIC_N
};

/* Where a stored value comes from (mr_metric_value): a field of one of the structs of
 * metrics/mr_pass.h, at a byte offset. */
enum mr_metric_from {
    MR_FROM_NONE,      /* derived (`derive`) or computed by the summary (group metrics) */
    MR_FROM_PASS_CI,   /* mr_ci in mr_pass_metrics */
    MR_FROM_LAYER_CI,  /* mr_ci in mr_layer_routing (per layer) */
    MR_FROM_LAYER_D,   /* double in mr_layer_routing (per layer) */
    MR_FROM_LAYER_I,   /* int in mr_layer_routing (per layer) */
    MR_FROM_LAYER_LOAD,/* load_counts / load_total of mr_layer_routing (per layer, per expert) */
    MR_FROM_STRUCT_D,  /* double in mr_struct_layer (per layer; absent when NaN in every
                          layer: no labels, targets or domains, k = 1, one MoE layer) */
    MR_FROM_FLIPS_CI,  /* mr_ci in mr_flip_metrics */
    MR_FROM_FLIPS_CIS, /* mr_ci array [n_moe] in mr_flip_metrics (per layer; absent when
                          the array is NULL) */
    MR_FROM_DROP_CI,   /* the mr_ci of the paired comparison (mr_paired.diff) */
    MR_FROM_DROP_P     /* its p-value */
};
/* Where a per-sample vector comes from: a double * field at a byte offset. */
enum mr_metric_sample_from { MR_SAMPLES_NONE, MR_SAMPLES_PASS, MR_SAMPLES_ROUTING, MR_SAMPLES_FLIPS };

typedef struct mr_metric {
    const char *key;      /* summary.json key, summary.csv column, gate and --metrics name */
    const char *dataset;  /* dataset in a cell file; NULL: not stored (derived) */
    int part, kind, per_layer;
    const char *unit;     /* of the stored value: "fraction", "nats", "bits/char", ... */
    int better;           /* MR_BETTER_* */
    int csv;              /* summary.csv: 0 absent, 1 the mean, 3 mean, lo and hi */
    int gate;             /* guarded by `moe-robust baseline` / `check` */
    int quantum;          /* MR_QUANTUM_*: one sample's effect, for the gate */
    int task;             /* -1: every model; MR_TASK_*: only that task's models have it */
    int primary;          /* -1, or the task whose primary metric this is (reports, gate) */
    int paired;           /* summary.json compares it with the reference router's cell
                             (paired bootstrap of its per-sample vectors, "KEY_diff") */
    int optional;         /* a cell of its part may lack it (the data carry no labels,
                             targets or domains; cells written before the metric existed):
                             readers take it where the dataset exists */
    /* derived metrics: value = value of metric `derive` / `divisor` (bpc = loss / ln 2) */
    int derive;
    double divisor;
    /* the stored value and the per-sample vector, in the structs of metrics/mr_pass.h */
    int from;
    size_t offset;
    int samples_from;
    size_t samples_offset;
    const char *samples;  /* per-sample dataset in a cell file, NULL if none */
    /* reports: MR_REPORT_* columns, display scale (100: fractions shown in %), labels */
    int report;
    double scale;
    int decimals;
    const char *id;       /* short name in bootstrap stream names and figure data */
    const char *label;    /* table header, Markdown and `eval` ("flip top-1") */
    const char *tex;      /* table header, LaTeX ("Flip top-1") */
    const char *display_unit; /* after scaling: "%", "nats", "" (none) */
} mr_metric;

extern const mr_metric mr_metric_table[MR_METRIC_N];

/* The metric named `key`, or NULL. */
const mr_metric *mr_metric_lookup(const char *key);
/* Numbers in a stored value ([3], [n_moe, 3], [n_moe, E], ... as above). */
size_t mr_metric_len(const mr_metric *m, int n_moe, int E, int n_corr);
/* One sample's largest effect on the metric over n samples with E experts (0: none). */
double mr_metric_quantum(const mr_metric *m, int n, int E);
/* Whether a model of `task` has the metric. */
int mr_metric_for_task(const mr_metric *m, int task);

/* What one cell's metric values come from: a pass, a routing comparison and a paired
 * comparison with the clean pass (each may be NULL), of a model of `task`. */
typedef struct mr_metric_src {
    const mr_pass_metrics *pass;
    const mr_flip_metrics *flips;
    const mr_paired *drop;
    int task, n_moe, E;
} mr_metric_src;

/* Fill out[mr_metric_len] with the metric's value from `src` (derived metrics of src's
 * task from their source); 0 if src does not have it (its part is absent, another task,
 * or a group metric), 1 if filled. */
int mr_metric_value(double *out, const mr_metric *m, const mr_metric_src *src);
/* The metric's per-sample vector in `src` ([n] or [n, n_moe]), or NULL. */
const double *mr_metric_samples(const mr_metric *m, const mr_metric_src *src);

#endif
