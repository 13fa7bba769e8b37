/* mr_model_write.h — save a model in the moe-robust HDF5 format, version 1 or 2
 * (docs/model-format.md): what mr_model_load() reads back, with identical
 * configuration and bit-identical weights.
 *
 * The file is written to PATH.tmp-PID and renamed into place when complete, so a
 * failed or interrupted save never leaves a half-written model (an existing PATH
 * is replaced only by a complete file). HDF5's error printing is off; every
 * failure is one message naming the file (and the HDF5 path being written).
 *
 * Metadata: root attributes outside the format (training or compression
 * provenance, shown by `moe-robust inspect`), kept in an mr_model_meta list.
 * Ownership: the caller owns an mr_model_meta (mr_model_meta_alloc/_free); the
 * strings passed to the setters are copied.
 */
#ifndef MR_MODEL_WRITE_H
#define MR_MODEL_WRITE_H

#include <hdf5.h>

#include "../analysis/mr_model.h"

typedef struct mr_model_meta mr_model_meta;

int mr_model_meta_alloc(mr_model_meta **out);
void mr_model_meta_free(mr_model_meta *meta);

/* Add or replace one attribute. MR_EINPUT if `name` is one of the format's own
 * attributes (those are written from the configuration) or is empty. */
int mr_model_meta_set_string(mr_model_meta *meta, const char *name, const char *value);
int mr_model_meta_set_int(mr_model_meta *meta, const char *name, long long value);
int mr_model_meta_set_double(mr_model_meta *meta, const char *name, double value);

/* Add the scalar string, integer and float root attributes of model file `path` that
 * are not format attributes (its training metadata), so a derived model keeps its
 * provenance. Non-scalar metadata attributes are skipped. */
int mr_model_meta_read(mr_model_meta *meta, const char *path);
/* The same with every name prefixed (e.g. "source_": a compressed model keeps its
 * source's clean_accuracy as source_clean_accuracy, which is not its own). */
int mr_model_meta_read_as(mr_model_meta *meta, const char *path, const char *prefix);

/* Number of attributes, and attribute i's name (for tests and listings). */
int mr_model_meta_count(const mr_model_meta *meta);
const char *mr_model_meta_name(const mr_model_meta *meta, int i);

/* The configuration's root attributes (format, version, architecture; those of version 2
 * when cfg->format_version is 2) on the open file f; MR_EIO naming `file` on failure.
 * For writers that stream their tensors (io/mr_hf_import.c). */
int mr_model_write_config(hid_t f, const char *file, const mr_config *c);

/* Write model m to `path` with the metadata attributes `meta` (may be NULL).
 * The configuration is checked (mr_config_check) and every weight must be finite
 * before anything is created: MR_EINPUT naming the tensor otherwise. MR_EINPUT if
 * the file cannot be created (missing directory, no permission), MR_EIO if a write
 * fails; in every error case nothing is left at PATH or PATH.tmp-PID. */
int mr_model_save(const mr_model *m, const char *path, const mr_model_meta *meta);

#endif
