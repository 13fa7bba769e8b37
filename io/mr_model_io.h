/* mr_model_io.h — load and validate a model file (docs/model-format.md).
 *
 * Ownership: *out is owned by the caller and released with mr_model_free().
 * On error *out is NULL, nothing is leaked, and the message names the file and
 * the HDF5 path or attribute at fault.
 */
#ifndef MR_MODEL_IO_H
#define MR_MODEL_IO_H

#include <stdio.h>

#include "../analysis/mr_model.h"

int mr_model_load(mr_model **out, const char *path);

/* Architecture summary for `moe-robust inspect`. */
void mr_model_print_summary(FILE *fp, const mr_model *m);
/* Whether a root attribute name is one the format defines (docs/model-format.md);
 * every other root attribute is metadata. */
int mr_model_is_format_attr(const char *name);
/* Root attributes outside the format (training metadata), one "meta" line each. */
void mr_model_print_metadata(FILE *fp, const char *path);

#endif
