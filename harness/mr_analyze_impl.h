/* mr_analyze_impl.h — what the files of `moe-robust analyze` share: mr_analyze.c (the
 * driver, the computation of the cells), mr_analyze_load.c (trace files into logical
 * traces, models and series) and mr_analyze_plan.c (the reference router, the output's
 * models, corruptions and groups, the synthesized config). Internal to harness/; the API
 * is mr_analyze.h.
 */
#ifndef MR_ANALYZE_IMPL_H
#define MR_ANALYZE_IMPL_H

#include <stdint.h>

#include "../io/mr_cellio.h"
#include "../metrics/mr_boot.h"
#include "../io/mr_summary.h"
#include "../io/mr_trace_io.h"
#include "mr_analyze.h"

#define NAME MR_TRACE_NAME

/* The shards of one (model, router, k, checkpoint, condition), merged by sample id. */
typedef struct ltrace {
    mr_trace_file **files; /* [n_files], files[0] carries the labels and shape */
    int n_files;
    int model;             /* index into az.models */
    int n;                 /* samples over all shards */
    int64_t *ids;          /* [n] sorted */
    int *file, *row;       /* [n] where each id lives */
    int *loc_file, *loc_row; /* [canonical n] of the model's samples */
} ltrace;

typedef struct amodel {
    const char *name;
    int n;                 /* canonical samples */
    int64_t *ids;
    int dropped;           /* samples not in every trace (allow_missing) */
} amodel;

/* One (model, router, k) series: checkpoints ordered by step. */
typedef struct unit {
    int *layers;           /* [n_moe] block indices (the cells' meta point here) */
    int model, k;
    const char *router;
    int n_ckpt;
    ltrace **clean;        /* [n_ckpt] */
    int *first_corr, *n_corr; /* corrupted ltraces of checkpoint c: corr[first..first+n) */
    ltrace **corr;
    int n_corr_total;
} unit;

typedef struct analyzer {
    const mr_analyze_opts *o;
    int n_files;
    mr_trace_file **files;
    int n_lt;
    ltrace *lt;
    int n_models;
    amodel *models;
    int n_units;
    unit *units;
    /* output */
    char out_models[64][NAME * 2 + 2];
    int n_out_models;
    const char *corr_names[64];
    int n_corr_names;
    int n_groups;
    mr_summary_group *groups;
    int n_cells;
    mr_cell_meta *metas;
    mr_summary_cell *cells;
    char (*cell_files)[300];
    char reference[NAME];
    uint64_t hash;
    char *config;
    mr_boot_cache *boot;   /* resample plans shared by every cell's CIs (metrics/mr_boot.h) */
} analyzer;

/* mr_analyze_load.c: the trace files of `paths` opened and grouped into logical traces
 * (shards merged by sample id); each model's canonical samples (allow_missing); the
 * (model, router, k) series with their checkpoints and corrupted conditions. */
int mr_analyze_group(analyzer *az, const char *const *paths, int n);
int mr_analyze_build_models(analyzer *az);
int mr_analyze_build_units(analyzer *az);
/* mr_analyze_plan.c: the reference router; the output models, corruptions and the
 * storage of groups and cells; the configuration stored in results.h5 and its hash. */
int mr_analyze_pick_reference(analyzer *az);
int mr_analyze_plan(analyzer *az);
int mr_analyze_make_config(analyzer *az, const char *const *paths, int n);

#endif
