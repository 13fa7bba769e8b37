/* mr_rundir.h — the output directory of `moe-robust run` and `merge` (docs/config.md,
 * "Output directory"; docs/reliability.md, "Promises").
 *
 * - Only an empty (or new) directory, or one a previous run of this tool made, is ever
 *   written to: a directory holding anything else (e.g. a user's own results.h5) is
 *   refused before anything is touched.
 * - DIR/config.ini is written first and atomically (the resolved config, its hash and a
 *   fingerprint of every input: size, modification time, SHA-256 of the content), and
 *   only then DIR/cells/: a directory never holds cells without the config that made
 *   them, and one holding only the lock file or temporary files counts as empty.
 * - DIR/.lock is held with flock(2) for the whole run: exclusive for a run, a --resume
 *   and merge; shared for --shard runs (which write disjoint cells). A second process is
 *   refused (exit 2) naming the holder. The exclusive holder removes every temporary
 *   file (NAME.tmp-PID) a killed process left in DIR and DIR/cells.
 * - Resuming (or merging) is refused, naming the file, when an input's content differs
 *   from its fingerprint: old and new cells would be mixed.
 * Ownership: mr_rundir_close releases everything mr_rundir_inputs/open took.
 */
#ifndef MR_RUNDIR_H
#define MR_RUNDIR_H

#include <stdint.h>

#include "../io/mr_fs.h"
#include "mr_runcfg.h"

typedef struct mr_run_input {
    char role[96];       /* data, labels, model.NAME, checkpoint.NAME.J */
    char *path;
    mr_fingerprint fp;
} mr_run_input;

typedef struct mr_rundir {
    char *dir;
    mr_dir_lock lock;
    int n_inputs;
    mr_run_input *inputs;
} mr_rundir;

enum {
    MR_RUNDIR_NEW = 0,    /* a fresh run: an existing run of this config needs --resume */
    MR_RUNDIR_RESUME = 1, /* create, or continue the run of this config */
    MR_RUNDIR_SHARD = 2,  /* like RESUME, with a shared lock (other shards run alongside) */
    MR_RUNDIR_MERGE = 3   /* the run must exist; exclusive */
};

/* Fingerprint every input of the configuration (before they are loaded). */
int mr_rundir_inputs(mr_rundir *rd, const mr_run_config *cfg);

/* Create or open `dir` for a grid of config hash `hash` under `mode`, taking the lock;
 * writes DIR/config.ini and DIR/cells/ for a new run. MR_EINPUT (nothing changed) when
 * the directory may not be used. */
int mr_rundir_open(mr_rundir *rd, const char *dir, const mr_run_config *cfg, uint64_t hash,
                   int mode);

/* Inputs unchanged since mr_rundir_inputs (a quick size and time check, then the content
 * hash if those moved): call after loading them and before the summary. */
int mr_rundir_check_unchanged(const mr_rundir *rd);

/* MR_EINPUT naming the file when `other_dir`'s config.ini records other input
 * fingerprints than this run (merge of shards run elsewhere). */
int mr_rundir_check_other(const mr_rundir *rd, const char *other_dir);

/* The hash recorded in DIR/config.ini, or 0 if there is none. */
uint64_t mr_rundir_recorded_hash(const char *dir);

void mr_rundir_close(mr_rundir *rd);

#endif
