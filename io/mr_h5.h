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

/* Silence HDF5's automatic error printing (idempotent). */
void mr_h5_quiet(void);

/* Open an existing file read-only; MR_EINPUT if missing or not HDF5. */
int mr_h5_open_read(hid_t *out, const char *file);

/* Root (or any object's) attributes. `found` may be NULL, then absence is an error. */
int mr_h5_attr_int(hid_t loc, const char *file, const char *name, long long *out, int *found);
int mr_h5_attr_double(hid_t loc, const char *file, const char *name, double *out, int *found);
/* Reads a string attribute into buf[cap]; longer strings are an error. */
int mr_h5_attr_string(hid_t loc, const char *file, const char *name, char *buf, size_t cap,
                      int *found);
/* 1-D integer array (or scalar) attribute; *out is malloc'd, caller frees. */
int mr_h5_attr_int_array(hid_t loc, const char *file, const char *name, int max_n,
                         long long **out, int *n);

/* Whether a full path resolves to an object (every group along it exists). */
int mr_h5_exists(hid_t f, const char *path);

typedef struct mr_h5_info {
    int rank;
    hsize_t dims[MR_H5_MAX_RANK];
    H5T_class_t cls;
    size_t type_size;
    int is_signed;
} mr_h5_info;

/* Shape and type of a dataset; MR_EINPUT naming the path if it is missing, or if some
 * of its elements were never written (they would read as fill values). */
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

/* Write a whole dataset `name` of rank 1..MR_H5_MAX_RANK under `loc` (missing groups
 * along the path are created): file type ftype from memory of type mtype, with
 * dataset-creation properties dcpl (H5P_DEFAULT for contiguous). MR_EIO naming the
 * dataset on failure. */
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
