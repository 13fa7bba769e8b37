/* mr_summary.h — assemble a finished run's cells into DIR/results.h5, DIR/summary.json
 * and DIR/summary.csv (docs/results.md), each written atomically. The corruption error
 * CE and mCE (ImageNet-C definitions, with the reference router as the reference model)
 * and the paired comparisons with the reference router's cells are computed here from
 * the cells.
 *
 * The run is described by plain data (mr_summary_run) that the driver fills from its
 * grid (harness/mr_grid.c, mr_grid_write_summary); nothing here knows the driver.
 * Ownership: the caller owns everything in mr_summary_run; nothing is kept.
 */
#ifndef MR_SUMMARY_H
#define MR_SUMMARY_H

#include <stdint.h>

#include "mr_cellio.h"

/* Which summaries to write besides results.h5 (a run config's `formats`). */
enum { MR_OUT_JSON = 1, MR_OUT_CSV = 2 };

/* One (model, router, k) group: its cells are cells[first_cell .. first_cell + n_cells). */
typedef struct mr_summary_group {
    int model;                 /* index into mr_summary_run.models */
    const char *router;        /* router section name */
    int k;
    int first_cell, n_cells;
} mr_summary_group;

typedef struct mr_summary_cell {
    const mr_cell_meta *meta;
    int group;
    int ckpt;                  /* fluct cells: compares checkpoints ckpt and ckpt + 1 */
    const char *file;          /* file name inside DIR/cells/ */
} mr_summary_cell;

typedef struct mr_summary_run {
    uint64_t hash;             /* config hash every cell must carry */
    const char *config;        /* the resolved config text, stored in the outputs */
    int formats;               /* MR_OUT_* bits */
    const char *reference;     /* the reference router's name */
    int bootstrap;             /* paired comparisons: resamples (<= 0: 1000), level, seed */
    double level;
    uint64_t seed;
    int n_models;
    const char *const *models; /* model names in config order */
    int n_corr;
    const char *const *corr;   /* corruption names in grid order */
    int n_groups;
    const mr_summary_group *groups;
    int n_cells;
    const mr_summary_cell *cells;
} mr_summary_run;

/* MR_EINPUT listing the first missing cells if the run is not complete in `dir`. */
int mr_summary_write(const mr_summary_run *run, const char *dir);

#endif
