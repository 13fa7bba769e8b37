/* mr_file.h — the one way the suite writes an output file: atomically.
 *
 * Every output (cells, results.h5, summaries, reports, PNGs, corrupted data, routing
 * traces, configs) is written under a temporary name PATH.tmp-PID in the same directory,
 * flushed to disk (fsync) and renamed onto PATH only when complete, so PATH holds either
 * the whole new file or what it held before, never a half-written one; a killed run
 * leaves only *.tmp-* files, which the next process holding the run directory's lock
 * removes (they are never complete). A failed write is MR_EIO naming PATH and the OS
 * error ("No space left on device"); an existing PATH that is not a regular file (a
 * device, a FIFO, a directory) is MR_EINPUT, never replaced. HDF5 files are assembled in
 * memory and written through mr_file_write (io/mr_h5.h, mr_h5_mem_commit).
 *
 * Ownership: mr_atomic and mr_textbuf are caller-owned structs (no allocation outside
 * the text buffer, which mr_textbuf_commit/_discard release).
 */
#ifndef MR_FILE_H
#define MR_FILE_H

#include <stddef.h>
#include <stdio.h>

#define MR_PATH_MAX 2048

/* An output file being written: `tmp` is the name to create and write, `path` where it
 * goes. Use: mr_atomic_begin, create and write a.tmp (fopen, H5Fcreate, ...), close it,
 * then mr_atomic_commit (or mr_atomic_abort on any failure). */
typedef struct mr_atomic {
    char path[MR_PATH_MAX];
    char tmp[MR_PATH_MAX + 32];
} mr_atomic;

/* Names the temporary file (creates nothing). MR_EINPUT if `path` is too long or exists
 * and is not a regular file. For outputs another program writes (gnuplot). */
int mr_atomic_begin(mr_atomic *a, const char *path);
/* Renames tmp onto path; on failure removes tmp: MR_EIO "PATH: cannot write (...)". */
int mr_atomic_commit(mr_atomic *a);
/* Removes tmp (if it exists). */
void mr_atomic_abort(mr_atomic *a);

/* Writes `len` bytes to `path` atomically (MR_EIO naming the file on failure). */
int mr_file_write(const char *path, const void *data, size_t len);
/* The same, of head_len bytes of head followed by tail_len bytes of tail. */
int mr_file_write2(const char *path, const void *head, size_t head_len, const void *tail,
                   size_t tail_len);
/* The same for the file `name` inside directory `dir`. */
int mr_file_write_in(const char *dir, const char *name, const void *data, size_t len);
/* Copies the file `src` (a regular file: io/mr_fs.h) to `dst` atomically. */
int mr_file_copy(const char *src, const char *dst);
/* Creates `dir` and its missing parents (like mkdir -p). MR_EIO naming the directory. */
int mr_mkdir_p(const char *dir);

/* An in-memory text file (open_memstream) that is written atomically when complete:
 * print to t.fp, then mr_textbuf_commit (writes dir/name and frees) or
 * mr_textbuf_discard (frees only). */
typedef struct mr_textbuf {
    FILE *fp;
    char *buf;
    size_t len;
} mr_textbuf;

int mr_textbuf_open(mr_textbuf *t);
/* Writes the text to dir/name atomically (dir may be NULL: `name` is the path). */
int mr_textbuf_commit(mr_textbuf *t, const char *dir, const char *name);
void mr_textbuf_discard(mr_textbuf *t);

#endif
