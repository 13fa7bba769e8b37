#include "mr_data_write.h"

#include <hdf5.h>

#include "../analysis/mr_error.h"
#include "mr_file.h"
#include "mr_h5.h"

/* one dataset, chunked along the samples and deflated */
static int put(hid_t f, const char *path, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
               const void *buf)
{
    hsize_t chunk[4];
    for (int i = 0; i < rank; i++) chunk[i] = dims[i];
    chunk[0] = dims[0] < 256 ? dims[0] : 256;
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, chunk);
    H5Pset_obj_track_times(pl, 0); /* same content, same bytes */
    H5Pset_shuffle(pl);
    H5Pset_deflate(pl, 4);
    int st = mr_h5_write_dataset(f, path, ftype, mtype, rank, dims, buf, pl);
    H5Pclose(pl);
    return st != MR_OK;
}

int mr_dataset_write(const char *path, const mr_dataset *d, const void *data,
                     const mr_data_attr *attrs, int n_attrs)
{
    /* built in memory and written by the atomic writer (io/mr_h5.h): a full disk is one
     * message naming the file and the OS error, never a crash in libhdf5 */
    size_t bytes = d->kind == MR_DATA_IMAGES ? (size_t)d->n * d->h * d->w * d->c
                                             : (size_t)d->n * d->cols * sizeof(int32_t);
    hid_t f;
    MR_TRY(mr_h5_mem_create(&f, path, bytes + ((size_t)1 << 16)));
    int bad = 0;
    if (d->kind == MR_DATA_IMAGES) {
        hsize_t dims[4] = {(hsize_t)d->n, (hsize_t)d->h, (hsize_t)d->w, (hsize_t)d->c};
        bad |= put(f, "/images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, dims, data);
        bad |= put(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dims, d->labels);
    } else {
        hsize_t dims[2] = {(hsize_t)d->n, (hsize_t)d->cols};
        bad |= put(f, "/tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, dims, data);
    }
    for (int i = 0; i < n_attrs; i++) {
        const mr_data_attr *at = &attrs[i];
        bad |= (at->str ? mr_h5_write_attr_string(f, at->name, at->str)
                : at->is_real ? mr_h5_write_attr_double(f, at->name, at->real)
                              : mr_h5_write_attr_int(f, at->name, at->integer)) != MR_OK;
    }
    if (bad) {
        mr_h5_mem_discard(f);
        return mr_error_set(MR_ENOMEM, "%s: cannot assemble the file in memory (out of memory?)",
                            path);
    }
    return mr_h5_mem_commit(f, path);
}
