/* mr_routing_io.h — `--save-routing` output: the engine's routing as traces of format v1
 * (docs/trace-format.md), the format `moe-robust analyze` reads from any framework, so a
 * run can be cross-checked against its own traces.
 *
 * One file per pass (v1 holds one condition per file): FILE holds the main pass; with
 * two passes (`eval --corruption`, a clean and a corrupted one) FILE holds the corrupted
 * pass (pass 1) and its sibling mr_routing_clean_path(FILE) the clean one (pass 0), so
 * that flips can be computed from the files (`analyze FILE SIBLING`).
 * Written per file: root attributes (format, version, model, router, checkpoint, step,
 * condition, task, source), /sample_id (the dataset index), /labels or /targets, the
 * per-sample /logits (classify) or /token_loss and /predictions (lm), and per MoE block L
 * /layers/L/probs [N,T,E] float32 (attributes top_k, score = "softmax", norm_topk),
 * /layers/L/topk [N,T,k] and /layers/L/weights [N,T,k] (the router's own choice and
 * weights: some routers do not take the top-k of probs).
 * The files are assembled in memory and written (atomically, io/mr_h5.h mr_h5_mem_commit)
 * only by mr_routing_writer_close(), so a failed or killed run never leaves a
 * half-written file. Not thread-safe: callers serialize put().
 */
#ifndef MR_ROUTING_IO_H
#define MR_ROUTING_IO_H

#include <stddef.h>

#include "../analysis/mr_engine.h"
#include "mr_data.h"

/* The trace's labels (docs/trace-format.md, root attributes); `condition` is the main
 * pass's ("NAME:S" with two passes; the clean pass is "clean"). */
typedef struct mr_trace_meta {
    const char *model, *router, *checkpoint, *condition, *source;
    long long step;
} mr_trace_meta;

typedef struct mr_routing_writer mr_routing_writer;

/* Traces of the first n samples of d (labels or targets written here) with T positions
 * and k experts per token; two_passes: the clean pass to the sibling file as well. */
int mr_routing_writer_open(mr_routing_writer **out, const char *path, const mr_model *m,
                           const mr_dataset *d, int n, int T, int k, const mr_trace_meta *meta,
                           int two_passes);
/* Write rows s0 .. s0+tr->B-1 of pass `pass` (0: the only pass, or the clean one of two;
 * 1: the corrupted one); token_loss [B, T] for lm models (else NULL). */
int mr_routing_writer_put(mr_routing_writer *w, int pass, const mr_trace *tr, int s0,
                          const float *token_loss);
int mr_routing_writer_close(mr_routing_writer *w);
/* Discard the files (accepts NULL). */
void mr_routing_writer_abort(mr_routing_writer *w);

/* The clean pass's file beside `path`: "DIR/NAME.clean.h5" for "DIR/NAME.h5" (".clean"
 * appended when the name has no extension). MR_EINPUT if it does not fit buf[cap]. */
int mr_routing_clean_path(char *buf, size_t cap, const char *path);

#endif
