/* mr_safetensors.h — safetensors files (the format of Hugging Face checkpoints; the
 * huggingface/safetensors README, "Format"): 8 bytes little-endian header length N, N bytes
 * of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the tensor bytes (offsets relative to the first byte after the header).
 *
 * The header is parsed with cJSON and every field bounds-checked here before any tensor
 * is read: header length within the file and at most 100 MB (the safetensors library's
 * own limit), a JSON object of objects, known keys of the right types, integer shapes of
 * rank <= 8 whose byte size equals end - begin, offsets inside the data section, no two
 * tensors overlapping, no name twice. Every error is MR_EINPUT naming the file and, where
 * there is one, the tensor.
 *
 * Ownership: mr_st_open() returns a file the caller closes with mr_st_close(); tensor
 * names belong to it. Tensor data are read on demand (pread), so an open file costs its
 * header only.
 */
#ifndef MR_SAFETENSORS_H
#define MR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define MR_ST_MAX_RANK 8
#define MR_ST_MAX_HEADER ((uint64_t)100 << 20)
#define MR_ST_MAX_NAME 512

/* The dtypes converted to float32 exactly; others are refused naming the dtype. */
enum mr_st_dtype { MR_ST_F32 = 0, MR_ST_F16 = 1, MR_ST_BF16 = 2 };

typedef struct mr_st_tensor {
    char *name;
    int dtype;                       /* enum mr_st_dtype */
    int rank;
    int64_t shape[MR_ST_MAX_RANK];
    uint64_t numel;
    uint64_t begin, end;             /* bytes, relative to the data section */
} mr_st_tensor;

typedef struct mr_st_file {
    char path[1024];
    int fd;                          /* -1 for a header parsed from memory */
    uint64_t data_start;             /* 8 + header length */
    uint64_t data_size;              /* bytes after the header */
    int n;
    mr_st_tensor *tensors;           /* [n], sorted by name */
} mr_st_file;

/* Parse and check a header (the N JSON bytes, not NUL-terminated) for a data section of
 * data_size bytes; `path` names the file in messages. *out is NULL on error. This is the
 * whole of what is read from an untrusted file before its tensors (tests/fuzz). */
int mr_st_parse_header(mr_st_file **out, const char *path, const char *json, size_t len,
                       uint64_t data_size);

/* Open a file: length, header, checks. */
int mr_st_open(mr_st_file **out, const char *path);

/* The tensor called `name`, or NULL. */
const mr_st_tensor *mr_st_find(const mr_st_file *f, const char *name);

/* Read tensor t into dst[t->numel] as float32: F32 as stored, BF16 and F16 widened
 * exactly. MR_EINPUT naming the file and tensor if the file is shorter than its header
 * says, or on a NaN or infinite value. */
int mr_st_read(const mr_st_file *f, const mr_st_tensor *t, float *dst);
/* The same for elements first .. first+n-1 of t (flattened, row-major) into dst[n]. */
int mr_st_read_range(const mr_st_file *f, const mr_st_tensor *t, uint64_t first, uint64_t n,
                     float *dst);

const char *mr_st_dtype_name(int dtype);
/* "[a,b,c]" into buf. */
const char *mr_st_shape_str(char *buf, size_t cap, const mr_st_tensor *t);

void mr_st_close(mr_st_file *f);

/* Exact conversions, exposed for tests. */
float mr_st_bf16_to_f32(uint16_t h);
float mr_st_f16_to_f32(uint16_t h);

#endif
