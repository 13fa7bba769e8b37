/* mr_trace_io.h — routing trace format v1 (docs/trace-format.md): the reader and
 * validator that `moe-robust analyze` uses on traces written by any framework
 * (tools/mr_trace.py, `eval --save-routing`, or a user's own code).
 *
 * mr_trace_open() checks every root attribute, every dataset's presence, rank, shape
 * and dtype, the per-layer attributes and the sample ids (unique) before anything is
 * read; mr_trace_read_rows() then streams rows (samples) in chunks, so memory is bounded
 * by the chunk, not the trace, and checks each chunk's values (NaN/Inf scores, top-k
 * ids out of range or repeated, mask values, labels) as it reads them. Every problem is
 * MR_EINPUT with a one-line message "FILE: DATASET: what is wrong".
 *
 * Scores: float32, IEEE float16 or bfloat16 (a 16-bit HDF5 float type with bfloat16's
 * fields, or uint16 with attribute dtype = "bfloat16"); 16-bit scores are read as raw
 * bits and widened here (exact), not by HDF5's soft conversion.
 * Derived values (docs/trace-format.md, "Derived values"): probs = softmax(logits) or
 * the normalized sigmoid scores; top-k from the scores when /layers/L/topk is absent
 * (ties to the lower index); weights = probs of the top-k (renormalized when norm_topk)
 * when /layers/L/weights is absent.
 * Ownership: mr_trace_open allocates the mr_trace_file (mr_trace_close);
 * mr_trace_rows_alloc fills a caller-owned struct (mr_trace_rows_free).
 */
#ifndef MR_TRACE_IO_H
#define MR_TRACE_IO_H

#include <hdf5.h>
#include <stdint.h>

#define MR_TRACE_VERSION 1
#define MR_TRACE_NAME 64
#define MR_TRACE_MAX_LAYERS 256

enum mr_trace_task { MR_TRACE_CLASSIFY = 0, MR_TRACE_LM = 1, MR_TRACE_NONE = 2 };
enum mr_trace_score { MR_TRACE_SOFTMAX = 0, MR_TRACE_SIGMOID = 1 };
enum mr_trace_dtype { MR_TRACE_F32 = 0, MR_TRACE_F16 = 1, MR_TRACE_BF16 = 2, MR_TRACE_BF16_U16 = 3 };

typedef struct mr_trace_layer {
    int index;        /* L of /layers/L */
    int is_logits;    /* scores are router_logits (else probs) */
    int dtype;        /* enum mr_trace_dtype of the scores */
    int score;        /* enum mr_trace_score */
    int norm_topk;    /* 0/1 */
    int top_k;        /* k of this layer (the same for every layer) */
    int has_topk, has_weights;
    hid_t scores_ds, topk_ds, weights_ds; /* open datasets (-1 if absent) */
    long long file_off; /* file offset of the scores when they lie in the file as they are
                           used (contiguous, uncompressed, native byte order): read
                           directly (pread, a piece at a time, on the routing threads);
                           -1: through libhdf5 */
} mr_trace_layer;

typedef struct mr_trace_file {
    char path[2048];
    hid_t h5;
    char model[MR_TRACE_NAME], router[MR_TRACE_NAME], checkpoint[MR_TRACE_NAME];
    char condition[MR_TRACE_NAME]; /* "clean" or "NAME:S" */
    char corruption[MR_TRACE_NAME];/* NAME ("" when clean) */
    int severity;                  /* S (0 when clean) */
    char source[256];
    long long step;
    int task;                      /* enum mr_trace_task */
    int N, T, E, k, C;             /* samples, positions, experts, top-k, classes (0: none) */
    int n_layers;
    mr_trace_layer *layers;        /* [n_layers] in increasing L */
    int64_t *ids;                  /* [N] /sample_id */
    int has_mask, has_labels, has_out, has_pred;
    hid_t mask_ds, labels_ds, out_ds, pred_ds; /* /mask, /labels|/targets,
                                                  /logits|/token_loss, /predictions */
    int fd;                        /* the file, for the scores read directly (-1: none) */
} mr_trace_file;

int mr_trace_open(mr_trace_file **out, const char *path);
void mr_trace_close(mr_trace_file *t);

/* Rows of one or more traces of the same shape, in caller-chosen slots. */
typedef struct mr_trace_rows {
    int cap, T, E, k, C, n_layers;
    int threads;      /* OpenMP threads deriving probs / top-k (set by the caller; default 1) */
    uint8_t *mask;    /* [cap, T] (all ones when the trace has no /mask) */
    int32_t *labels;  /* classify: [cap] (-1 when absent) */
    float *out;       /* classify: logits [cap, C]; lm: token_loss [cap, T] */
    int32_t *pred;    /* lm: /predictions [cap, T] */
    float *probs;     /* [n_layers, cap, T, E] (NULL: not kept, mr_trace_rows_alloc) */
    uint16_t *topk;   /* [n_layers, cap, T, k] expert ids (E <= 65,536): half the bytes of
                         int, a third of what analyze wrote to memory (docs/performance.md) */
    int32_t *topk_in; /* [n_layers, cap, T, k] a trace's stored /layers/L/topk as read, to be
                         checked (allocated at the first such read) */
    float *weights;   /* [n_layers, cap, T, k] (NULL while not kept and no trace read so
                         far stored /weights: mr_trace_rows_alloc) */
    uint16_t *raw;    /* [n_layers, cap, T, E] 16-bit scores read through libhdf5 */
    float *scratch;   /* [n_layers, cap, T, E] float32 scores read through libhdf5 (both
                         allocated at the first such read: NULL while every layer read so
                         far was read directly) */
    int64_t *iscratch;/* [cap, T, max(k, 1)] the integer datasets as read */
    /* per row (sample) and layer, over its real tokens, for mr_routing_acc_add_sums
     * (metrics/mr_routing_metrics.h): computed while the scores are turned into routes,
     * so analyze needs not keep the probabilities */
    double *h_sum;    /* [n_layers, cap] sum of the routing entropy */
    double *hw_sum;   /* [n_layers, cap] sum of the entropy of the renormalized weights */
    uint64_t *psum;   /* [n_layers, cap, E] probability sums (mr_routing_psum_fix) */
    /* per slot, from mr_trace_load_rows: the trace and the row of it read there */
    const mr_trace_file **row_file; /* [cap] */
    int *row_index;                 /* [cap] */
    /* per layer and slot, from mr_trace_load_rows: the file offset of the row's scores,
     * read directly while the unit is routed (-1: read into raw / scratch) */
    long long *src_off; /* [n_layers, cap] */
} mr_trace_rows;

/* Rows for `cap` samples of traces shaped as t; want_probs = 0 keeps neither probs nor
 * the weights (both NULL; a trace's own /weights are still read and checked, into
 * weights allocated then); the top-k and the sums above are always filled. */
int mr_trace_rows_alloc(mr_trace_rows *r, const mr_trace_file *t, int cap, int want_probs);
/* Bytes a row (sample) of t takes in mr_trace_rows while it is routed (without probs):
 * scores buffers (none for scores read directly), top-k and weights, the per-token
 * datasets: for sizing chunks. */
size_t mr_trace_row_bytes(const mr_trace_file *t);
void mr_trace_rows_free(mr_trace_rows *r);

/* Read rows r0 .. r0+nb-1 of t into slots slot .. slot+nb-1 of `rows` (allocated for a
 * trace of the same T, E, k, C and layers), validating their values: mr_trace_load_rows,
 * then every (layer, slot) routed on rows->threads threads (the first error in (layer,
 * token) order reported). */
int mr_trace_read_rows(const mr_trace_file *t, int r0, int nb, mr_trace_rows *rows, int slot);

/* The same in steps, for a caller that routes in its own parallel loop (analyze: while
 * one thread loads the next chunk, the others route this one):
 * mr_trace_load_rows reads the rows' datasets and the scores not read directly (libhdf5
 * calls: one thread at a time, like every libhdf5 call here); slots of several loads may
 * be pending at once. mr_trace_route_unit routes layer li of slot b (thread-safe for
 * distinct (li, b); ws: one thread's buffers, mr_trace_ws_alloc), reading its scores
 * first where they are read directly (pread: no libhdf5 call; MR_EIO naming the file
 * when the file has shrunk since it was opened): its probabilities (when kept), top-k,
 * weights and the slot's sums; the first error in its token order. */
int mr_trace_load_rows(const mr_trace_file *t, int r0, int nb, mr_trace_rows *rows, int slot);
typedef struct mr_trace_ws mr_trace_ws;
mr_trace_ws *mr_trace_ws_alloc(int E); /* NULL: out of memory (mr_error set) */
void mr_trace_ws_free(mr_trace_ws *ws);
int mr_trace_route_unit(mr_trace_rows *rows, int li, int b, mr_trace_ws *ws);

/* Whether two traces can be compared token by token (same T, E, k, layers, task and
 * classes); MR_EINPUT naming both and what differs otherwise. */
int mr_trace_check_same_shape(const mr_trace_file *a, const mr_trace_file *b);

/* 16-bit scores raw[n] of dtype MR_TRACE_F16 (IEEE half) or bfloat16 (the other
 * 16-bit kinds) as floats in dst[n], exact (mr_half_to_float's values, bit for bit, in a
 * vector loop; vcvtph2ps on CPUs with AVX-512; a NaN stays a NaN, its payload may be
 * quieted); bad[e % 16] |= 1 where raw[e] is Inf or NaN (bad[16], the caller's). */
void mr_trace_widen(float *restrict dst, const uint16_t *restrict raw, int n, int dtype,
                    uint32_t *restrict bad);
/* IEEE half and bfloat16 bits to float (exact). */
float mr_half_to_float(uint16_t h);
float mr_bf16_to_float(uint16_t h);

#endif
