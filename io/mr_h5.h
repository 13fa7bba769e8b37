/* mr_h5.h — small, validating HDF5 helpers shared by every file format in io/ (model,
 * data, cells, results, routing traces).
 *
 * Every function reports problems as MR_EINPUT with a message of the form
 * "FILE: PATH: what is wrong", never prints the HDF5 error stack, and never
 * crashes on a malformed, truncated or hostile file.
 */
#ifndef MR_H5_H
#define MR_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#define MR_H5_MAX_RANK 8

/* Silence HDF5's automatic error printing for the calling thread (libhdf5 is built
 * thread-safe: the setting is per thread). Idempotent and cheap. The process's first
 * call, made before any other HDF5 call (main does), also takes over libhdf5's teardown
 * at exit, which crashes after a failed close (mr_h5_close). */
void mr_h5_quiet(void);

/* Close an HDF5 identifier of any kind (file, group, dataset, attribute, datatype,
 * dataspace, property list); a negative id is ignored. Returns 0, or -1 when libhdf5's
 * close itself failed: libhdf5 1.10 then keeps the identifier, with nothing left that
 * could release it (HDFGroup/hdf5 HDFFV-11052: a corrupt file can make its own close
 * fail; fixed in 1.14.1). Such identifiers are counted, process-wide, by
 * mr_h5_unreleased(): open objects beyond that count are a close this code forgot. */
int mr_h5_close(hid_t id);
long mr_h5_unreleased(void);

/* Close a file opened by mr_h5_open_read after a read that ended with status `st`:
 * returns `st`, or, when the read succeeded but libhdf5 could not close the file
 * (inconsistent metadata it found on the way out), MR_EINPUT naming the file. */
int mr_h5_close_read(hid_t f, const char *file, int st);

/* Open an existing file read-only; MR_EINPUT if missing, unreadable, not a regular
 * file or not HDF5. External links in it are never followed. */
int mr_h5_open_read(hid_t *out, const char *file);
/* The path of the last HDF5 file mr_h5_open_read was asked to open, NULL before the
 * first: for the CLI's fatal-signal message (harness/mr_fatal.c), since libhdf5 1.10
 * crashes on some corrupt files (docs/reliability.md). A static buffer owned here,
 * readable from a signal handler. */
const char *mr_h5_last_input(void);

/* Every HDF5 file this tool writes is built in memory (the core driver, no backing
 * store) and written by mr_h5_mem_commit with the project's atomic writer: libhdf5 never
 * writes to disk itself, so a full disk is one message naming the file and the OS error,
 * never an HDF5 error stack or a crash in libhdf5's shutdown. (The one exception is
 * `import`'s model file, too large to hold twice: libhdf5 streams it, into disk space
 * reserved beforehand, io/mr_hf_import.c.) Object modification times
 * are not recorded (the same content gives the same bytes). The memory cost is the
 * file's size, once: the commit writes the core driver's buffer in place. `path` names
 * the file; size_hint: its expected size (0: small). */
int mr_h5_mem_create(hid_t *f, const char *path, size_t size_hint);
/* Write the file to `path` atomically and close f (in every case). */
int mr_h5_mem_commit(hid_t f, const char *path);
/* The same through a file queue (io/mr_file_queue.h; q NULL: mr_h5_mem_commit): a copy
 * of the file's bytes is queued and f closed; a write error surfaces at the queue's next
 * put or drain. */
struct mr_file_queue;
int mr_h5_mem_commit_queued(hid_t f, const char *path, struct mr_file_queue *q);
/* Tests: the file's bytes as H5Fget_file_image copies them (malloc'd; *n bytes; NULL if
 * none), and what mr_h5_mem_commit writes instead (the same code): the core driver's
 * buffer in place from byte MR_H5_IMAGE_HEAD on, its first bytes in `head` (the
 * superblock's consistency flags cleared); NULL where the commit falls back to the copy.
 * To show the two the same. */
#define MR_H5_IMAGE_HEAD 24
void *mr_h5_mem_image_copy(hid_t f, size_t *n);
const void *mr_h5_mem_image_in_place(hid_t f, unsigned char head[MR_H5_IMAGE_HEAD]);
/* Close without writing (accepts -1). */
void mr_h5_mem_discard(hid_t f);
/* A group without modification times (close with H5Gclose); -1 on failure. */
hid_t mr_h5_create_group(hid_t loc, const char *name);
/* Every group along "a/b/c" that does not exist yet (a and a/b), made without times
 * (HDF5's create_intermediate_group would record them). MR_OK or MR_EIO/MR_ENOMEM. */
int mr_h5_make_parents(hid_t loc, const char *name);

/* Root (or any object's) attributes. `found` may be NULL, then absence is an error. */
int mr_h5_attr_int(hid_t loc, const char *file, const char *name, long long *out, int *found);
int mr_h5_attr_double(hid_t loc, const char *file, const char *name, double *out, int *found);
/* Reads a string attribute into buf[cap]; longer strings are an error. */
int mr_h5_attr_string(hid_t loc, const char *file, const char *name, char *buf, size_t cap,
                      int *found);
/* 1-D integer array (or scalar) attribute; *out is malloc'd, caller frees. */
int mr_h5_attr_int_array(hid_t loc, const char *file, const char *name, int max_n,
                         long long **out, int *n);

/* Whether a full path resolves to an object (every group along it exists). Every link
 * along it must be a hard link: a soft or external link is MR_EINPUT naming it. */
int mr_h5_find(hid_t f, const char *file, const char *path, int *found);
/* The same as a yes/no (a link other than a hard link counts as absent). */
int mr_h5_exists(hid_t f, const char *path);

typedef struct mr_h5_info {
    int rank;
    hsize_t dims[MR_H5_MAX_RANK];
    H5T_class_t cls;
    size_t type_size;
    int is_signed;
} mr_h5_info;

/* Shape and type of a dataset; MR_EINPUT naming the path if it is missing, reached
 * through a soft or external link, stored outside the file (external storage, a virtual
 * dataset), or if some of its elements were never written (they would read as fill
 * values). */
int mr_h5_dataset_info(hid_t f, const char *file, const char *path, mr_h5_info *info);

/* Require a float32 dataset of exactly the given shape. */
int mr_h5_expect_float(hid_t f, const char *file, const char *path, int rank,
                       const hsize_t *dims);

/* Read a whole float32 dataset into dst (sized by the caller from the checked shape)
 * and reject NaN or Inf. */
int mr_h5_read_float(hid_t f, const char *file, const char *path, float *dst, size_t n);

/* Read a whole integer dataset as int32/uint8 into dst (n elements). */
int mr_h5_read_int32(hid_t f, const char *file, const char *path, int32_t *dst, size_t n);
int mr_h5_read_uint8(hid_t f, const char *file, const char *path, uint8_t *dst, size_t n);

/* Read a whole numeric dataset as doubles into dst, which must hold exactly n values;
 * MR_EINPUT naming the file and path if it is missing, not numeric, or of another size. */
int mr_h5_read_f64(hid_t f, const char *file, const char *path, double *dst, size_t n);

/* The one place datasets are created: `name` of type ftype and shape dims[rank] under
 * `loc`, missing groups along the path created, with dataset-creation properties dcpl
 * (H5P_DEFAULT for contiguous; copied, not changed) and no modification time recorded,
 * so the same content gives the same bytes. The open dataset (the caller closes it), or
 * -1. */
hid_t mr_h5_create_dataset(hid_t loc, const char *name, hid_t ftype, int rank,
                           const hsize_t *dims, hid_t dcpl);
/* Write a whole dataset `name` of rank 1..MR_H5_MAX_RANK under `loc` (missing groups
 * along the path are created): file type ftype from memory of type mtype, with
 * dataset-creation properties dcpl (H5P_DEFAULT for contiguous). No object records a
 * modification time. MR_EIO naming the dataset on failure. */
int mr_h5_write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                        const hsize_t *dims, const void *data, hid_t dcpl);
/* float64 dataset of rank 1 [d0] or 2 [d0, d1]. */
int mr_h5_write_f64(hid_t loc, const char *name, const double *x, int rank, hsize_t d0,
                    hsize_t d1);

/* Write a scalar attribute (string, int64, float64); MR_EIO on failure. */
int mr_h5_write_attr_string(hid_t loc, const char *name, const char *value);
int mr_h5_write_attr_int(hid_t loc, const char *name, long long value);
int mr_h5_write_attr_double(hid_t loc, const char *name, double value);

/* Format dims as "[a,b,c]" into buf. */
const char *mr_h5_dims_str(char *buf, size_t cap, int rank, const hsize_t *dims);

#endif
