/* mr_cellio.h — one grid cell's results as one HDF5 file (DIR/cells/<id>.h5).
 *
 * A cell is the unit of work, resume, sharding and merging: it is written to a
 * temporary name and renamed into place when complete, so a file that exists is whole.
 * Its attribute config_hash ties it to the configuration that produced it.
 * Layout (docs/results.md): attributes id, model, router, router_type, k, kind (clean |
 * corrupt | fluct), corruption, severity, checkpoints, task, n, T, n_moe, E,
 * config_hash; summary datasets ([3] = mean, lo, hi); per-layer arrays; per-sample
 * vectors for later paired tests.
 */
#ifndef MR_CELLIO_H
#define MR_CELLIO_H

#include <hdf5.h>
#include <stdint.h>

#include "../analysis/mr_model.h"
#include "../metrics/mr_pass.h"

enum mr_cell_kind { MR_CELL_CLEAN = 0, MR_CELL_CORRUPT = 1, MR_CELL_FLUCT = 2 };

typedef struct mr_cell_meta {
    char id[256];
    char model[64], router[64], router_type[64];
    int k, kind;
    char corruption[64];
    int severity;
    char checkpoints[2100]; /* fluct: "A -> B" */
    int task, n, T, n_moe, E;
    int *layers;            /* [n_moe] MoE block indices: a grid cell points at its model's
                               moe_layers (not owned); a summary read from a file owns its
                               copy (freed by mr_cell_summary_free) */
    uint64_t config_hash;
} mr_cell_meta;

const char *mr_cell_kind_name(int kind);

/* Write a cell: clean/corrupt cells take the pass (and flips for corrupt), fluct cells
 * the flips only. acc_drop may be NULL. */
int mr_cell_write(const char *path, const mr_cell_meta *meta, const mr_pass_metrics *pass,
                  const mr_flip_metrics *flips, const mr_paired *acc_drop);

/* Whether `path` holds a complete cell of this configuration. */
int mr_cell_done(const char *path, uint64_t config_hash);

/* What the summary needs of a cell (owned by the caller, mr_cell_summary_free). */
typedef struct mr_cell_summary {
    mr_cell_meta meta;
    int has_pass, has_flips, has_drop;
    double accuracy[3], loss[3];
    double acc_drop[3], acc_drop_p;
    int acc_drop_p_bound;    /* 1: no resample crossed 0, the p-value is below acc_drop_p = 1/B */
    double pred_flip[3];
    double *entropy, *entropy_norm, *wentropy;       /* [n_moe, 3] */
    double *load_entropy_norm, *load_cv, *load_max_over_mean, *dead, *aux_loss; /* [n_moe] */
    double *load;                                    /* [n_moe, E] fractions */
    double *flip_top1, *flip_set, *flip_jaccard;     /* [n_moe, 3] */
} mr_cell_summary;

int mr_cell_read_summary(const char *path, mr_cell_summary *s);
/* The same from a cell stored as a group of an open file, e.g. "/cells/<stem>" of
 * DIR/results.h5 (group "" = the file's root). `path` names the file in messages. */
int mr_cell_read_summary_at(hid_t file, const char *path, const char *group, mr_cell_summary *s);
void mr_cell_summary_free(mr_cell_summary *s);

/* A per-sample dataset of a cell file (e.g. "sample_correct" [n], "sample_entropy"
 * [n, L]) with exactly n values; NULL with a message if absent or of another size.
 * The caller frees it. */
double *mr_cell_read_vector(const char *path, const char *dataset, size_t n);

#endif
