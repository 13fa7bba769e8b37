/* mr_compress_setup.h — compress a model file into another (docs/compression.md): load
 * the model and calibration data, run the model's own router over the calibration
 * samples, group/prune/merge with a method of analysis/mr_compress.h, and save the
 * result with its provenance as metadata attributes:
 *   compress_method, compress_experts, compress_experts_before, compress_layers,
 *   compress_form (experts | slots), compress_groups, compress_source, compress_router,
 *   compress_calib, compress_calib_samples, compress_calib_tokens, compress_calib_sha256,
 *   mc-smoe: compress_rank, compress_sparse_keep, compress_param_ratio;
 *   compress_command when given; and the source's own metadata as source_NAME.
 * Used by `moe-robust compress` and by the grid's `[model] compress = METHOD:K`.
 */
#ifndef MR_COMPRESS_SETUP_H
#define MR_COMPRESS_SETUP_H

#include <stdio.h>

#include "../analysis/mr_compress.h"

#define MR_COMPRESS_DEFAULT_CALIB_LIMIT 256

typedef struct mr_compress_request {
    const char *model;     /* source model file */
    const char *calib;     /* calibration data (as `eval --data`) */
    long calib_limit;      /* first N samples (<= 0: all) */
    const char *method;    /* a name of mr_compress_types */
    const char *out;       /* output model file (written atomically) */
    int batch;             /* micro-batch of the calibration forward */
    mr_compress_opts opts; /* experts, layers, rank, sparse_keep */
    const char *command;   /* recorded as compress_command, or NULL */
} mr_compress_request;

void mr_compress_request_init(mr_compress_request *rq);

/* Do it. `log` (may be NULL) receives a summary: groups, frequencies, output.
 * MR_EINPUT for bad input (unknown method, K, layers, data of the wrong shape or kind, a
 * model without MoE layers), nothing written then. */
int mr_compress_file(const mr_compress_request *rq, FILE *log);

#endif
