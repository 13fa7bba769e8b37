/* mr_data.h — evaluation data: images with labels, or token sequences
 * (docs/model-format.md, "Data files").
 *
 * Sources: an HDF5 file with /images [N,H,W,C] (or [N,H,W]) uint8 + /labels [N],
 * or /tokens int32 [N, T+1]; or a (Fashion-)MNIST IDX images file (.gz or raw)
 * whose labels file sits beside it.
 * Ownership: the caller owns *out (mr_dataset_free). On error nothing leaks.
 */
#ifndef MR_DATA_H
#define MR_DATA_H

#include <stdint.h>

#include "../analysis/mr_model.h"

enum mr_data_kind { MR_DATA_IMAGES = 0, MR_DATA_TOKENS = 1 };

/* Limits on what a file may declare, shared by the HDF5 and IDX readers: headers are
 * untrusted, and a few bytes can declare billions of samples (sample counts are int). */
#define MR_DATA_MAX_SAMPLES 100000000L        /* 1e8: far beyond any evaluation set */
#define MR_DATA_MAX_BYTES ((size_t)1 << 34)   /* 16 GiB of samples */

/* Domains a dataset may name (/domains values 0 .. this - 1). */
#define MR_DATA_MAX_DOMAINS 4096

typedef struct mr_dataset {
    int kind;
    int n;                /* samples */
    int h, w, c;          /* images */
    uint8_t *images;      /* [n, h, w, c] */
    int32_t *labels;      /* [n] */
    int cols;             /* tokens: T + 1 */
    int32_t *tokens;      /* [n, cols] */
    int32_t *domains;     /* [n] domain of each sample (HDF5 /domains), or NULL */
    int n_domains;        /* 1 + the largest domain (0: none) */
    char path[1024];
} mr_dataset;

/* The files a data path stands for: the path itself and, for an IDX images file, the
 * labels file beside it (*labels malloc'd, the caller frees it; NULL for HDF5). */
int mr_dataset_files(const char *path, char **labels);

/* Load the first `limit` samples (limit <= 0: all). */
int mr_dataset_load(mr_dataset **out, const char *path, long limit);
/* Check the data fit the model: image size and channels, labels < n_classes,
 * token ids < vocab_size, T <= max_seq_len. */
int mr_dataset_check_model(const mr_dataset *d, const mr_model *m);
void mr_dataset_free(mr_dataset *d);

/* SHA-256 (hex, 64 characters + NUL) of the model inputs of d: the uint8 images
 * [n, h, w, c] in row-major order, or the int32 tokens [n, cols] as little-endian bytes
 * (labels excluded). The same samples hash the same from an IDX or an HDF5 file. */
void mr_dataset_sha256(const mr_dataset *d, char hex[65]);

/* IDX (LeCun) files, gzip or raw: images [n, rows, cols] uint8, labels [n] uint8. */
int mr_idx_read_images(const char *path, long limit, uint8_t **out, int *n, int *rows,
                       int *cols);
int mr_idx_read_labels(const char *path, long limit, uint8_t **out, int *n);

#endif
