/* mr_compress.h — expert pruning and merging after training (docs/compression.md).
 *
 * A method is a const mr_compress_type: from per-layer calibration statistics it
 * partitions the E experts of an MoE block into K groups, each with a representative
 * (the expert whose router row the group keeps). Pruning methods keep the
 * representatives and drop every other expert; merging methods align each member's
 * hidden neurons to its representative (weight matching, a linear assignment) and
 * average the group's weights by usage frequency. MC-SMoE then factors each merged
 * expert's matrices into low rank plus sparse parts.
 *
 *   prune-freq   keep the K experts most often in a token's top-k (REAP's `frequency`)
 *   prune-reap   keep the K with the largest REAP saliency (arXiv 2510.13999)
 *   merge-msmoe  M-SMoE (Li et al., ICLR 2024; UNITES-Lab/MC-SMoE)
 *   merge-uncurl spectral clustering of the router-logit similarity (UNCURL, Sarkar et
 *                al. 2024, arXiv 2409.01483), then the same alignment and merge
 *   mc-smoe      merge-msmoe, then low-rank + sparse (LoSparse, arXiv 2306.11222)
 *
 * The result is a normal model: with every MoE block compressed it has K experts per
 * block and the representatives' router rows; with a subset of blocks (format v1 has
 * one n_experts for all blocks) it keeps E expert slots, merged groups sharing one
 * merged expert in every member's slot (the authors' slot binding, router unchanged)
 * and pruned experts masked out of the gate (gate row 0, bias -1e4).
 *
 * Ownership: the caller owns an mr_compress_result (mr_compress_result_free), including
 * its model.
 */
#ifndef MR_COMPRESS_H
#define MR_COMPRESS_H

#include <stdint.h>

#include "mr_calib.h"
#include "mr_model.h"

enum { MR_COMPRESS_NEED_SIM = 1, MR_COMPRESS_NEED_REAP = 2 };

/* What a method sees of one MoE block. */
typedef struct mr_compress_stats {
    int E, K, layer;        /* experts, groups to form, block index */
    const int64_t *counts;  /* [E] tokens whose top-k holds the expert */
    const double *freq;     /* [E] counts / sum(counts) */
    const double *sim;      /* [E, E] router-logit similarity (with NEED_SIM), else NULL */
    const double *saliency; /* [E] REAP saliency (with NEED_REAP), else NULL */
} mr_compress_stats;

typedef struct mr_compress_type {
    const char *name;
    const char *summary;   /* one line for --help */
    unsigned needs;        /* MR_COMPRESS_NEED_* */
    int merge;             /* 1: members merged into their group; 0: non-representatives dropped */
    int low_rank;          /* 1: low-rank + sparse factorization of the merged experts */
    /* group_of[E]: the group (0..K-1) of each expert, or -1 for a dropped one;
     * rep[K]: each group's representative, itself a member. Any group numbering. */
    int (*group)(int *group_of, int *rep, const mr_compress_stats *s);
} mr_compress_type;

extern const mr_compress_type mr_compress_prune_freq, mr_compress_prune_reap,
    mr_compress_merge_msmoe, mr_compress_merge_uncurl, mr_compress_mc_smoe;
/* NULL-terminated list of every method. */
extern const mr_compress_type *const mr_compress_types[];
const mr_compress_type *mr_compress_lookup(const char *name);

#define MR_COMPRESS_DEFAULT_RANK 8
#define MR_COMPRESS_DEFAULT_SPARSE_KEEP 0.10

typedef struct mr_compress_opts {
    int experts;        /* K: experts kept per compressed block */
    int n_layers;       /* 0: every MoE block; else the blocks in `layers` */
    const int *layers;  /* [n_layers] block indices (must be MoE blocks) */
    int rank;           /* mc-smoe: rank r of the low-rank part */
    double sparse_keep; /* mc-smoe: fraction of the sparse part's entries kept (whole rows) */
} mr_compress_opts;

void mr_compress_opts_init(mr_compress_opts *o);

/* Checks that need no calibration: K in top_k..E, layers are distinct MoE blocks,
 * rank and sparse_keep in range, a model with MoE blocks, and (slot form) pruning only
 * on routers that route through the gate. MR_EINPUT naming the option and the model. */
int mr_compress_check(const mr_model *m, const mr_compress_type *t, const mr_compress_opts *o);

typedef struct mr_compress_result {
    mr_model *model;     /* the compressed model (owned here) */
    int E, K, slots;     /* slots = 1: n_experts stays E (a subset of blocks compressed) */
    int n_layers;        /* compressed blocks */
    int *layers;         /* [n_layers] their indices */
    int *group_of;       /* [n_layers, E] new expert of each original one, -1 if dropped */
    int *rep;            /* [n_layers, K] original expert whose router row each new one has */
    double *freq;        /* [n_layers, E] usage frequency on the calibration tokens */
    double param_ratio;  /* mc-smoe: (r (in + out) + kept sparse entries) / (in * out) over
                            every factorized matrix; 1 for the other methods */
} mr_compress_result;

/* Compress model m with calibration statistics c (from m and its router). */
int mr_compress_run(mr_compress_result *res, const mr_model *m, const mr_calib *c,
                    const mr_compress_type *t, const mr_compress_opts *o);
void mr_compress_result_free(mr_compress_result *res);

/* "1: {2,0,5} {1} ...; 3: ..." per block, each new expert's members with its
 * representative first (malloc'd; caller frees). */
char *mr_compress_groups_string(const mr_compress_result *res);

/* Building blocks, exposed for the known-answer tests. */

/* Align expert `mem` of layer Lm to expert `ref` of layer Lr by weight matching: the
 * permutation pi of mem's hidden neurons maximizing
 *   sum_a <W1_ref[a,:], W1_mem[pi(a),:]> + b1_ref[a] b1_mem[pi(a)] + <W2_ref[:,a], W2_mem[:,pi(a)]>
 * (MC-SMoE `compute_switch_permutation_by_weight_matching`, include_wo=True, with the
 * first-layer bias as one more input column). Writes the permuted member into
 * w1[h,d], b1[h], w2[d,h] (b2 is unchanged by a permutation). */
int mr_compress_align(float *w1, float *b1, float *w2, const mr_layer *Lr, int ref,
                      const mr_layer *Lm, int mem, const mr_config *cfg);

/* The M-SMoE grouping of one block: the K most used experts are dominant, every
 * other expert joins the dominant one it is most similar to. */
int mr_compress_group_dominant(int *group_of, int *rep, const mr_compress_stats *s);

/* Spectral clustering of the similarity matrix into K groups (UNCURL's clustering step,
 * as scikit-learn's SpectralClustering with a precomputed affinity: normalized-Laplacian
 * embedding, then k-means). labels[E] in 0..K-1, every group non-empty. */
int mr_compress_spectral(int *labels, const double *sim, int E, int K, uint64_t seed_index);

#endif
