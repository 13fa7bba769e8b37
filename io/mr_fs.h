/* mr_fs.h — the file-system rules every input and output of moe-robust follows
 * (docs/reliability.md, "Promises"); outputs themselves are written by io/mr_file.h.
 *
 * Inputs: only regular files are read. A FIFO, a device (/dev/zero, /dev/urandom) or a
 * directory is bad input, refused before anything could block or spin; a missing or
 * unreadable file gets a message naming it and the OS reason ("permission denied").
 * Outputs: ".tmp-PID" marks what a killed process left, so that the next run holding the
 * directory lock can remove it; an output that is the same file as an input (same device
 * and inode, whatever the path), or not a regular file, is refused before any work.
 * Run directories are locked (flock) for the whole run; the lock file names its holder.
 * Ownership: functions returning char * return malloc'd strings the caller frees.
 */
#ifndef MR_FS_H
#define MR_FS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ inputs */

/* MR_OK if `path` is an existing, readable regular file (stat into *st if not NULL);
 * else MR_EINPUT "PATH: no such file" / "permission denied" / "not a regular file (a
 * FIFO)" ... */
int mr_fs_check_input(const char *path, struct stat *st);

/* Open an input for reading (O_NONBLOCK while opening, so a FIFO is refused rather than
 * waited on); *fd is the caller's to close. */
int mr_fs_open_input(const char *path, int *fd, struct stat *st);
int mr_fs_fopen_input(const char *path, FILE **fp);

/* Read a whole input of at most `max` bytes (larger: MR_EINPUT naming the size) into a
 * NUL-terminated malloc'd buffer; *len excludes the NUL. `what` names the kind of file
 * in the message ("config file"). */
int mr_fs_read_input(const char *path, size_t max, const char *what, char **buf, size_t *len);

/* ------------------------------------------------------------------ outputs */
/* (Outputs are written with io/mr_file.h; these are the rules around them.) */

/* "dir/name" (malloc'd, NULL when out of memory). */
char *mr_fs_join(const char *dir, const char *name);

/* Whether a directory entry is a temporary file of this tool (NAME.tmp-PID). */
int mr_fs_is_tmp_name(const char *name);
/* Remove every temporary file directly inside `dir` (missing dir: nothing to do) whose
 * PID is not a running process of this host: what killed processes left. */
int mr_fs_remove_tmp(const char *dir);

/* MR_EINPUT when output `out` (which may not exist yet) exists and is not a regular
 * file, or is the same file as one of inputs[0..n) (same device and inode: also through
 * links), naming both. NULL inputs are skipped. `what` names the option, e.g. "--out".
 * Commands call it before any work. */
int mr_fs_check_output(const char *out, const char *what, const char *const *inputs, int n);

/* mr_fs_check_output where the inputs are every file of directory `dir` (a checkpoint
 * directory, whose shards the index may name freely): an output that is any of them is
 * refused. A missing or unreadable `dir` is left to the reader to name. */
int mr_fs_check_output_in_dir(const char *out, const char *what, const char *dir);

/* MR_OK if `dir` does not exist, is empty (but for temporaries and a lock file), or
 * holds `marker` or `marker2` (files only `who` writes there; marker2 may be NULL): a
 * directory this tool made; else MR_EINPUT naming the directory and one of its entries. */
int mr_fs_check_own_dir(const char *dir, const char *marker, const char *marker2,
                        const char *who);

/* Reserve `bytes` of disk for the file at `path` (created if missing) without changing
 * its size (Linux fallocate, FALLOC_FL_KEEP_SIZE): a writer that cannot build its output
 * in memory (import streams gigabytes) learns of a full disk before it writes, as MR_EIO
 * "NAME: cannot write (No space left on device)" naming `name`. MR_OK where the file
 * system cannot reserve (nothing is promised there). Truncating the file at its end
 * releases what was not used. */
int mr_fs_reserve(const char *path, const char *name, long long bytes);
/* Give back what mr_fs_reserve reserved beyond the file's end (the file is unchanged). */
int mr_fs_release(const char *path, const char *name);

/* ------------------------------------------------------------------ directory lock */

/* flock(2) on DIR/.lock: exclusive (a run, merge) or shared (--shard runs, which write
 * disjoint cells into one directory). Held until release or exit; a killed holder
 * releases it. Busy: MR_EINPUT naming the directory and the holder(s) the file records.
 * mr_dir_lock_record writes "PID HOST WHAT" once the holder has accepted the directory
 * (a refused process changes nothing: a lock file it had to create is removed again on
 * release unless recorded). */
typedef struct mr_dir_lock {
    int fd;
    int exclusive, created;
    char *path;
} mr_dir_lock;

#define MR_DIR_LOCK_NAME ".lock"

int mr_dir_lock_take(mr_dir_lock *l, const char *dir, int exclusive);
int mr_dir_lock_record(mr_dir_lock *l, const char *what);
void mr_dir_lock_release(mr_dir_lock *l);

/* ------------------------------------------------------------------ fingerprints */

/* What identifies an input's content: size, modification time and the SHA-256 of every
 * byte (Nettle). */
typedef struct mr_fingerprint {
    long long size;
    long long mtime_s;
    long mtime_ns;
    char sha256[65]; /* hex */
} mr_fingerprint;

int mr_fs_fingerprint(const char *path, mr_fingerprint *fp);

/* ------------------------------------------------------------------ OS errors */

/* "No space left on device" etc. for errno value `e`. */
const char *mr_fs_strerror(int e);
/* "a FIFO", "a character device", "a directory", ... for a stat mode. */
const char *mr_fs_kind(mode_t m);

#endif
