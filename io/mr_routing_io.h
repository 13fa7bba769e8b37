/* mr_routing_writer.h — `--save-routing` output: per-sample logits or token losses and
 * per MoE block the routing distribution, top-k experts and weights; with two passes
 * (a clean and a corrupted one, `eval --corruption`) each under its own group, /clean
 * and /corrupted, so that flips can be computed from the file.
 *
 * The file is assembled in memory and written (atomically, io/mr_fs.h) only by
 * mr_routing_writer_close(), so a failed or killed run never leaves a half-written OUT.
 * Not thread-safe: callers serialize put().
 */
#ifndef MR_ROUTING_IO_H
#define MR_ROUTING_IO_H

#include "../analysis/mr_engine.h"

typedef struct mr_routing_writer mr_routing_writer;

/* two_passes = 0: one pass at the file's root; 1: /clean (pass 0) and /corrupted (pass 1). */
int mr_routing_writer_open(mr_routing_writer **out, const char *path, const mr_model *m, int n,
                           int T, int k, int two_passes);
/* Write rows s0 .. s0+tr->B-1 of pass `pass`; token_loss [B, T] for lm models (else NULL). */
int mr_routing_writer_put(mr_routing_writer *w, int pass, const mr_trace *tr, int s0,
                          const float *token_loss);
int mr_routing_writer_close(mr_routing_writer *w);
/* Discard the temporary file (accepts NULL). */
void mr_routing_writer_abort(mr_routing_writer *w);

#endif
