/* mr_file_queue.h — atomic file writes (io/mr_file.h) done by a background thread, in
 * the order they were queued.
 *
 * Why: every output is fsync'd before it is renamed into place (io/mr_file.h), and a
 * grid writes one cell file per cell. On the project's VM an fsync of a 28 KB cell took
 * about 4 ms, with both compute threads idle meanwhile: some 7 s of the demo grid's 1692
 * cells (docs/performance.md). Queued, the writes overlap the next cells' work; each file
 * is still written whole under a temporary name, fsync'd and renamed, so what a crash
 * leaves is the same as before: complete files or none (a queued cell that is not yet on
 * disk is computed again by `run --resume`).
 *
 * Use: mr_file_queue_alloc, then mr_file_queue_put for each file (the queue takes
 * ownership of `data`, malloc'd), then mr_file_queue_drain wherever the files must be on
 * disk (before reading them back, before a fault-injection kill), and mr_file_queue_free
 * (drains first). A write that fails is reported by the next put or drain: its MR_EIO
 * naming the file (mr_error_message); the files queued after a failed one are not
 * written. At most `max_bytes` wait at once: a put beyond that waits for the thread.
 *
 * Thread safety: one producer thread (put, drain, free); the queue's own thread does the
 * writes and touches nothing but the queued buffers and the file system (no libhdf5). */
#ifndef MR_FILE_QUEUE_H
#define MR_FILE_QUEUE_H

#include <stddef.h>

typedef struct mr_file_queue mr_file_queue;

/* A queue and its writer thread. MR_ENOMEM or MR_EIO (the thread could not start). */
int mr_file_queue_alloc(mr_file_queue **out, size_t max_bytes);
/* Queues `len` bytes of `data` (malloc'd; the queue frees it, also on failure) to be
 * written atomically to `path`. Returns the first error of an earlier write, if any
 * (then `data` is freed unwritten). */
int mr_file_queue_put(mr_file_queue *q, const char *path, void *data, size_t len);
/* Waits until every queued file is written; the first write error, if any. */
int mr_file_queue_drain(mr_file_queue *q);
/* Drains (ignoring errors: call drain first to see them), stops the thread, frees. */
void mr_file_queue_free(mr_file_queue *q);

#endif
