/* mr_cellio.h — one grid cell's results as one HDF5 file (DIR/cells/<id>.h5).
 *
 * A cell is the unit of work, resume, sharding and merging: it is written to a
 * temporary name and renamed into place when complete, so a file that exists is whole.
 * Its attribute config_hash ties it to the configuration that produced it.
 * Layout (docs/results.md): attributes id, model, router, router_type, k, kind (clean |
 * corrupt | fluct), corruption, severity, checkpoints, task, n, T, n_moe, E,
 * config_hash; dataset `layers`; then one dataset per metric of the schema
 * (metrics/mr_metric.h) that the cell has, in its shape ([3] = mean, lo, hi; per-layer
 * arrays), and the per-sample vectors for later paired tests.
 */
#ifndef MR_CELLIO_H
#define MR_CELLIO_H

#include <hdf5.h>
#include <stdint.h>

#include "../analysis/mr_model.h"
#include "../metrics/mr_metric.h"

/* attack cells (docs/attacks.md): corruption = the method, "METHOD-transfer" when crafted
 * through the reference router; severity = eps in grey levels (eps = severity / 255) */
enum mr_cell_kind { MR_CELL_CLEAN = 0, MR_CELL_CORRUPT = 1, MR_CELL_FLUCT = 2, MR_CELL_ATTACK = 3 };

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
 * the flips only. acc_drop may be NULL. Every metric of the schema whose source is given
 * is written (mr_metric_value, mr_metric_samples). */
int mr_cell_write(const char *path, const mr_cell_meta *meta, const mr_pass_metrics *pass,
                  const mr_flip_metrics *flips, const mr_paired *acc_drop);
/* The same, written by the file queue q (io/mr_file_queue.h; NULL: at once): the cell is
 * on disk once the queue drains. */
struct mr_file_queue;
int mr_cell_write_queued(struct mr_file_queue *q, const char *path, const mr_cell_meta *meta,
                         const mr_pass_metrics *pass, const mr_flip_metrics *flips,
                         const mr_paired *acc_drop);

/* Whether `path` holds a complete cell of this configuration. */
int mr_cell_done(const char *path, uint64_t config_hash);

/* What the summary needs of a cell (owned by the caller, mr_cell_summary_free): every
 * metric of the schema it holds, in the shape of mr_metric_len (NULL where it has none;
 * derived metrics such as bpc computed for the cell's task). */
typedef struct mr_cell_summary {
    mr_cell_meta meta;
    int has_pass, has_flips, has_drop;   /* which parts (enum mr_metric_part) it holds */
    double *value[MR_METRIC_N];
    /* the qualifier of the paired test's p-value (MR_M_ACC_DROP_P): 1 when no resample
     * crossed 0, so the p-value is below the stored 1/B (mr_paired.p_bound) */
    int acc_drop_p_bound;
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
/* The same from an open cell file f (named `file` in messages). */
double *mr_cell_vector_at(hid_t f, const char *file, const char *dataset, size_t n);

/* A routing-structure matrix of a pass cell ("coactivation", "class_usage",
 * "domain_usage": [n_moe, R, E], docs/results.md) and its shape in dims; NULL (no message)
 * when the cell has none. The caller frees it. */
double *mr_cell_read_matrix(const char *path, const char *dataset, int dims[3]);
/* The same for the dataset at `path` of an open file (`file` names it in messages). */
double *mr_cell_matrix_at(hid_t f, const char *file, const char *path, int dims[3]);

#endif
