/* mr_data_write.h — write an evaluation dataset in the data format (docs/model-format.md,
 * "Data files"): /images [N,H,W,C] uint8 + /labels [N] int32, or /tokens [N, T+1] int32,
 * chunked along the samples and deflated, plus scalar root attributes saying how it was
 * made (a corruption, an attack). Written to PATH.tmp-PID and renamed into place when
 * complete (io/mr_file.h): a failed write leaves nothing at PATH. No timestamps: the
 * same content gives the same bytes. */
#ifndef MR_DATA_WRITE_H
#define MR_DATA_WRITE_H

#include "mr_data.h"

typedef struct mr_data_attr {
    const char *name;
    const char *str; /* a string attribute, or NULL: */
    int is_real;     /* 1: a float64 attribute `real`, 0: an int64 attribute `integer` */
    long long integer;
    double real;
} mr_data_attr;

/* The samples of `like` (its kind, n, image shape or columns, labels) with `data` in place
 * of its images or tokens; MR_EINPUT if PATH cannot be created, MR_EIO if the write fails. */
int mr_dataset_write(const char *path, const mr_dataset *like, const void *data,
                     const mr_data_attr *attrs, int n_attrs);

#endif
