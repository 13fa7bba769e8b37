/* mr_grid.h — the evaluation grid of `moe-robust run` (docs/config.md).
 *
 * Cells: for every model, router and k (a "group"), one clean cell, one cell per
 * corruption x severity, one per attack x eps ([attack], docs/attacks.md; with transfer
 * = yes one more per attack x eps crafted through the reference router), and one
 * fluctuation cell per pair of consecutive checkpoints.
 * A group runs its clean pass once and reuses it (a routing cache) for all its cells.
 * Groups are the unit of distribution: process i of n (a --shard or an MPI rank) runs
 * the groups g with g % n == i, model by model: a model's groups are open at once, and
 * each input set (clean, or one corruption and severity) runs through all of them back to
 * back, sharing the router-independent prefix of its forward (mr_prefix_cache.h). Every
 * cell's numbers depend only on the configuration, never on threads, shards, ranks or
 * that order.
 * Ownership: mr_grid_build() loads the data and models into the grid; mr_grid_free().
 */
#ifndef MR_GRID_H
#define MR_GRID_H

#include "../analysis/attacks/mr_attack.h"
#include "../corruptions/mr_corruption.h"
#include "../io/mr_cellio.h"
#include "../io/mr_data.h"
#include "mr_runcfg.h"

typedef struct mr_grid_cell {
    mr_cell_meta meta;
    int group;
    const mr_corruption_type *corr; /* corrupt cells */
    const mr_attack_type *attack;   /* attack cells: eps = meta.severity / 255 */
    int transfer;                   /* attack cells: crafted through the reference router */
    int objective;                  /* attack cells: enum mr_attack_objective */
    int ckpt;                       /* fluct cells: compares checkpoints ckpt and ckpt+1 */
    char file[300];                 /* name inside DIR/cells/ */
} mr_grid_cell;

typedef struct mr_grid_group {
    int model, router, k;
    int first_cell, n_cells;
} mr_grid_group;

typedef struct mr_grid {
    const mr_run_config *cfg;
    uint64_t hash;
    mr_dataset *data;
    mr_dataset *calib;                   /* [data] calib, when a model compresses */
    mr_model *models[MR_CFG_MAX_MODELS]; /* a `compress` model: its source until
                                            mr_grid_prepare_models() */
    int n_experts[MR_CFG_MAX_MODELS];    /* experts per MoE block of each evaluated model */
    int n_corr;
    const mr_corruption_type *corr[MR_CFG_MAX_CORR];
    int n_groups;
    mr_grid_group *groups;
    int n_cells;
    mr_grid_cell *cells;
    mr_boot_cache *boot_cache;           /* resample plans every cell shares (the CIs of
                                            every cell draw the same streams) */
    struct mr_corrupt_cache *corrupt_cache; /* corrupted inputs every group shares */
    struct mr_file_queue *writes;           /* while mr_grid_run runs: the cell files'
                                               writer (io/mr_file_queue.h) */
    struct mr_prefix_cache *prefix_cache;   /* the router-independent prefix of the input
                                               set a model's groups are running */
} mr_grid;

/* Load the data and models and check everything the run will need (checkpoints load and
 * match, every router can run on every model, every k <= E, corruptions exist and fit
 * the data); errors name the config file and line. Nothing is written. */
int mr_grid_build(mr_grid *g, const mr_run_config *cfg);
void mr_grid_free(mr_grid *g);

/* Compressed models (`compress = METHOD:K`): computed once per run into
 * DIR/models/NAME.h5 (kept across --resume: the directory belongs to this configuration)
 * and loaded in place of their source. `log` (may be NULL) gets one line per model
 * compressed. Call after the output directory is accepted, before mr_grid_run(). */
int mr_grid_prepare_models(mr_grid *g, const char *dir, FILE *log);

typedef struct mr_grid_progress mr_grid_progress;

typedef struct mr_grid_run_opts {
    const char *dir;  /* output directory (cells go to DIR/cells/) */
    int threads;
    int shard, n_shards;
    mr_grid_progress *progress; /* may be NULL */
} mr_grid_run_opts;

/* Run the groups of this shard, skipping cells already complete for this config. */
int mr_grid_run(mr_grid *g, const mr_grid_run_opts *o);

/* Assemble the finished grid's cells in `dir` into results.h5, summary.json and
 * summary.csv (io/mr_summary.h); MR_EINPUT naming the first missing cells if the grid is
 * not complete. */
int mr_grid_write_summary(const mr_grid *g, const char *dir);

/* `run --dry-run`: the time each group would take, estimated from a short calibration
 * on the first samples (a few micro-batches per thread): every group's clean pass, and
 * every corruption once (its middle severity, in the first group that runs it) as a
 * multiple of that group's clean pass. A group costs its clean pass, one pass per
 * corrupted cell and one clean pass per checkpoint; costs scale with the sample count.
 * Nothing is written. Ownership: group_seconds [n_groups], mr_grid_estimate_free(). */
typedef struct mr_grid_estimate_out {
    double *group_seconds;
    double total_seconds;
    int calib_samples;
    double calib_seconds;
    double cpu_per_wall;   /* CPU seconds per wall second during the calibration (threads
                              busy: below the thread count when other work shares cores) */
} mr_grid_estimate_out;
int mr_grid_estimate(mr_grid *g, int threads, mr_grid_estimate_out *out);
void mr_grid_estimate_free(mr_grid_estimate_out *e);

/* Path of a cell's file: DIR/cells/<file>. */
void mr_grid_cell_path(char *buf, size_t cap, const char *dir, const mr_grid_cell *c);

/* Progress on stderr: a live bar on a terminal, one line per cell otherwise. */
mr_grid_progress *mr_grid_progress_start(int total, int already_done, int quiet);
void mr_grid_progress_cell(mr_grid_progress *p, const mr_grid_cell *c, long long samples,
                           int skipped);
void mr_grid_progress_end(mr_grid_progress *p);

#endif
