/* fuzz_h5.h — the HDF5 harnesses' closing property (fuzz_model.c, fuzz_trace.c).
 *
 * Every path, error paths included, closes what it opened: an open object keeps its file,
 * and HDF5's memory for it, alive for the rest of the process. The only identifiers
 * allowed to stay are those whose close libhdf5 itself failed on a corrupt file
 * (mr_h5_unreleased(), io/mr_h5.h: libhdf5 1.10 keeps them, HDFFV-11052). A violation
 * lists what is still open, so the finding says which object was forgotten.
 */
#ifndef MR_FUZZ_H5_H
#define MR_FUZZ_H5_H

#include <hdf5.h>

#include "fuzz_util.h"
#include "io/mr_h5.h"

static inline void fuzz_check_h5_closed(void)
{
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    long unreleased = mr_h5_unreleased();
    if (open_ids > unreleased) {
        hid_t ids[16];
        ssize_t n = H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_ALL, 16, ids);
        for (ssize_t i = 0; i < n; i++) {
            char name[256] = "?";
            H5Iget_name(ids[i], name, sizeof name);
            fprintf(stderr, "open: HDF5 id of type %d, %s\n", (int)H5Iget_type(ids[i]), name);
        }
    }
    FUZZ_CHECK(open_ids <= unreleased, "%zd HDF5 objects left open (%ld that libhdf5 failed to close)",
               open_ids, unreleased);
}

#endif
