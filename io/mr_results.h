/* mr_results.h — a finished run's DIR/results.h5 (docs/results.md), read back for
 * `moe-robust report`, `baseline` and `check`: every cell's summary, the cells grouped
 * by (model, router, k), the corruption errors, and the few config settings the
 * readers need (seed, bootstrap, level, reference router, data and model paths).
 *
 * Nothing is re-evaluated: per-sample vectors are read on demand from the open file
 * (mr_results_samples) to compute confidence intervals of aggregates.
 * Every problem is MR_EINPUT with a message naming the file and the HDF5 path.
 * Ownership: mr_results_load fills a caller-owned struct; mr_results_free releases it
 * (and accepts a zeroed or half-loaded struct).
 */
#ifndef MR_RESULTS_H
#define MR_RESULTS_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */
#include "mr_cellio.h"

#define MR_RES_MAX_FLUCT 16
#define MR_RES_MAX_MODELS 16
#define MR_RES_NAME 64
#define MR_RES_MAX_ATTACK 256

typedef struct mr_res_model {
    char name[MR_RES_NAME];
    char path[1024];          /* from the config ("" if unknown); a compressed model's source */
    char compress[MR_RES_NAME]; /* `compress = METHOD:K` of the config: the method, "" if none */
    int compress_k;           /* its K (0 if none) */
    int task;                 /* MR_TASK_CLASSIFY / MR_TASK_LM */
    int n, n_moe, E;
    const int *layers;        /* [n_moe] MoE block indices (the first cell's; owned by it) */
    int first_group, n_groups;
} mr_res_model;

typedef struct mr_res_group {
    int model;                /* index into models */
    char router[MR_RES_NAME], router_type[MR_RES_NAME];
    int k;
    char label[MR_RES_NAME + 16]; /* ROUTER@kK */
    int router_order;         /* position of [router NAME] in the config */
    char variant[512];        /* type and options (not top_k): groups of one variant at
                                 several k form one self-slimmable curve */
    int clean;                /* cell index or -1 */
    int *corrupt;             /* [n_corr * MR_SEVERITY_MAX]: cell of corruption c, severity s at
                               * c * MR_SEVERITY_MAX + s - 1, or -1 */
    int n_fluct;
    int fluct[MR_RES_MAX_FLUCT]; /* fluct cells in checkpoint order */
    int n_attack;
    int attack[MR_RES_MAX_ATTACK]; /* attack cells (docs/attacks.md), by attack name (the
                                      cell's `corruption`) then eps (its `severity`) */
    int ref;                  /* the reference router's group (same model, same k if any), -1 */
    int has_ce;               /* results.h5 has its /ce group */
    double *value[MR_METRIC_N]; /* group metrics (MR_PART_GROUP: mCE, CE per corruption in
                                   corr order, ...) in the shape of mr_metric_len; NaN where
                                   undefined; NULL for the other metrics */
} mr_res_group;

typedef struct mr_results {
    char file[1100];          /* DIR/results.h5 */
    hid_t h5;
    char *config;             /* the resolved config text */
    char config_hash[40];
    /* from the config */
    uint64_t seed;
    int bootstrap;
    double level;
    char reference[MR_RES_NAME];
    char data[1024];
    /* cells in /cells, by name */
    int n_cells;
    mr_cell_summary *cells;
    char (*stem)[300];        /* group name under /cells */
    int *cell_group;
    /* corruptions in grid order */
    int n_corr;
    char (*corr)[MR_RES_NAME];
    int n_models;
    mr_res_model models[MR_RES_MAX_MODELS];
    int n_groups;
    mr_res_group *groups;     /* ordered by model, router (config order), k */
} mr_results;

/* Load DIR/results.h5 (`dir` may also name the file itself). */
int mr_results_load(mr_results *r, const char *dir);
void mr_results_free(mr_results *r);

/* Per-sample dataset `name` (e.g. "sample_correct", "sample_flip_top1") of a cell into
 * dst, which must hold exactly `n` values (MR_EINPUT if the shape differs). */
int mr_results_samples(const mr_results *r, int cell, const char *name, double *dst, size_t n);

/* A routing-structure matrix of a cell ("coactivation", "class_usage", "domain_usage",
 * [n_moe, R, E]) and its shape; NULL when the cell has none. The caller frees it. */
double *mr_results_matrix(const mr_results *r, int cell, const char *name, int dims[3]);

/* The corruption index of `name`, or -1. */
int mr_results_corr_index(const mr_results *r, const char *name);

/* CI of the mean of x[0..n) with the run's bootstrap settings and a stream named by
 * `purpose` (lo = hi = mean when the run used bootstrap = 0). */
int mr_results_ci(const mr_results *r, const double *x, size_t n, const char *purpose,
                  double out[3]);

#endif
