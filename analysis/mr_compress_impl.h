/* mr_compress_impl.h — internal interfaces between the compression sources. */
#ifndef MR_COMPRESS_IMPL_H
#define MR_COMPRESS_IMPL_H

typedef struct mr_lowrank_opts {
    int rank;           /* r */
    double sparse_keep; /* fraction of the sparse parts' entries kept, in whole rows */
} mr_lowrank_opts;

/* MC-SMoE's compression of merged experts (LoSparse, Li et al. 2023, arXiv 2306.11222;
 * UNITES-Lab/MC-SMoE `mcsmoe/pruning/losparse.py`), one-shot: each matrix W [rows, cols]
 * (row-major, in place) becomes L R + S with L R its best rank-r approximation (SVD) and
 * S = W - L R pruned by whole rows: a row's score is the mean |S| over the row, broadcast
 * to its entries; one threshold over every matrix, the kth smallest score with
 * k = floor(n (1 - sparse_keep)) (torch.kthvalue), and rows scoring below it are zeroed.
 * W is stored back densely as L R + S. *ratio = (sum r (rows + cols) + kept S entries) /
 * sum rows * cols. */
int mr_lowrank_sparse(float **mats, const int *rows, const int *cols, int n,
                      const mr_lowrank_opts *o, double *ratio);

#endif
