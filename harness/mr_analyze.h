/* mr_analyze.h — `moe-robust analyze`: the metrics of `run` from routing traces
 * (docs/traces.md, docs/trace-format.md) recorded by any framework.
 *
 * Traces are grouped by (model, router, k, checkpoint, condition); the shards (ranks)
 * of one group are merged by sample id. Per (model, router, k) the last checkpoint (the
 * highest step) gives a clean cell and one cell per corrupted condition (paired with the
 * clean trace of the same checkpoint by sample id), and each pair of consecutive
 * checkpoints a fluctuation cell — the cells `run` writes, through the same code
 * (metrics/mr_pass.h: per-sample values, bootstrap streams), into DIR/cells/ and
 * DIR/results.h5, summary.json, summary.csv (io/mr_summary.h), so `report`, `baseline`
 * and `check` read them unchanged. Corrupted traces of an earlier checkpoint become the
 * cells of model "MODEL@CHECKPOINT".
 *
 * Samples: the ids common to every trace of a model, in increasing id order (the
 * engine's traces use the dataset index, so the order, and hence every bootstrap CI, is
 * run's). A trace missing some of them is an error unless allow_missing (then the
 * samples not in every trace are dropped, counted and reported).
 * Memory: chunks of rows (a few tens of MB) plus per-sample values; never a whole trace.
 * Results do not depend on the thread count.
 */
#ifndef MR_ANALYZE_H
#define MR_ANALYZE_H

#include <stdint.h>
#include <stdio.h>

typedef struct mr_analyze_opts {
    const char *out;        /* output directory (created) */
    const char *reference;  /* reference router for CE / mCE and paired comparisons;
                               NULL: "softmax" if every model has it, else the first router
                               (by name) every model has */
    int bootstrap;          /* resamples (0: none) */
    double level;
    uint64_t seed;
    int threads;
    int allow_missing;
    int formats;            /* MR_OUT_* of io/mr_summary.h */
    FILE *log;              /* one line per cell and the sample counts (NULL: quiet) */
} mr_analyze_opts;

void mr_analyze_opts_init(mr_analyze_opts *o);

/* Analyze the traces `files[0..n)`; MR_EINPUT naming the file and dataset for a bad
 * trace or a bad combination of traces. */
int mr_analyze_run(const char *const *files, int n, const mr_analyze_opts *o);

#endif
