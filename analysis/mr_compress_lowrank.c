/* MC-SMoE's low-rank + sparse step (mr_compress_impl.h). */
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mr_compress_impl.h"
#include "mr_error.h"

typedef struct row_score {
    double score;
    int len;
} row_score;

static int by_score(const void *a, const void *b)
{
    double x = ((const row_score *)a)->score, y = ((const row_score *)b)->score;
    return (x > y) - (x < y);
}

/* lr[rows, cols] = the best rank-r approximation of w (Eckart-Young; GSL's one-sided
 * Jacobi SVD on the taller orientation). */
static int low_rank(double *lr, const float *w, int rows, int cols, int r)
{
    int tall = rows >= cols, M = tall ? rows : cols, N = tall ? cols : rows;
    gsl_matrix *A = gsl_matrix_alloc((size_t)M, (size_t)N), *V = gsl_matrix_alloc((size_t)N, (size_t)N);
    gsl_vector *S = gsl_vector_alloc((size_t)N);
    if (!A || !V || !S) {
        gsl_matrix_free(A), gsl_matrix_free(V), gsl_vector_free(S);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            gsl_matrix_set(A, tall ? (size_t)i : (size_t)j, tall ? (size_t)j : (size_t)i,
                           w[(size_t)i * cols + j]);
    int e = gsl_linalg_SV_decomp_jacobi(A, V, S); /* A <- U; singular values descending */
    if (e == 0)
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                double s = 0.0;
                for (int k = 0; k < r; k++) {
                    /* W = U S V^T (tall) or W = V S U^T (wide) */
                    double a = tall ? gsl_matrix_get(A, (size_t)i, (size_t)k) : gsl_matrix_get(V, (size_t)i, (size_t)k);
                    double b = tall ? gsl_matrix_get(V, (size_t)j, (size_t)k) : gsl_matrix_get(A, (size_t)j, (size_t)k);
                    s += a * gsl_vector_get(S, (size_t)k) * b;
                }
                lr[(size_t)i * cols + j] = s;
            }
    gsl_matrix_free(A), gsl_matrix_free(V), gsl_vector_free(S);
    return e == 0 ? MR_OK : mr_error_set(MR_EFAILED, "SVD of an expert matrix failed");
}

int mr_lowrank_sparse(float **mats, const int *rows, const int *cols, int n,
                      const mr_lowrank_opts *o, double *ratio)
{
    size_t total = 0, nrows = 0;
    for (int i = 0; i < n; i++) total += (size_t)rows[i] * cols[i], nrows += (size_t)rows[i];
    double *lr = malloc(total * sizeof *lr);
    row_score *sc = malloc(nrows * sizeof *sc), *sorted = malloc(nrows * sizeof *sorted);
    int st = lr && sc && sorted ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    /* pass 1: L R of every matrix and the row scores of its sparse part S = W - L R */
    size_t off = 0, ri = 0;
    for (int i = 0; st == MR_OK && i < n; i++) {
        int r = o->rank < rows[i] && o->rank < cols[i] ? o->rank : (rows[i] < cols[i] ? rows[i] : cols[i]);
        st = low_rank(lr + off, mats[i], rows[i], cols[i], r);
        for (int a = 0; st == MR_OK && a < rows[i]; a++, ri++) {
            double s = 0.0;
            for (int b = 0; b < cols[i]; b++) {
                size_t p = (size_t)a * cols[i] + b;
                s += fabs((double)mats[i][p] - lr[off + p]);
            }
            sc[ri] = (row_score){s / cols[i], cols[i]};
        }
        off += (size_t)rows[i] * cols[i];
    }
    /* one threshold over every matrix: the kth smallest broadcast score */
    double thr = -INFINITY;
    size_t k = (size_t)floor((double)total * (1.0 - o->sparse_keep));
    if (st == MR_OK && k >= 1) {
        memcpy(sorted, sc, nrows * sizeof *sorted);
        qsort(sorted, nrows, sizeof *sorted, by_score);
        size_t cum = 0;
        for (size_t j = 0; j < nrows; j++)
            if ((cum += (size_t)sorted[j].len) >= k) {
                thr = sorted[j].score;
                break;
            }
    }
    /* pass 2: W = L R + S, rows of S scoring below the threshold removed */
    double kept = 0.0;
    off = 0, ri = 0;
    for (int i = 0; st == MR_OK && i < n; i++) {
        int r = o->rank < rows[i] && o->rank < cols[i] ? o->rank : (rows[i] < cols[i] ? rows[i] : cols[i]);
        kept += (double)r * (rows[i] + cols[i]);
        for (int a = 0; a < rows[i]; a++, ri++) {
            int keep = !(sc[ri].score < thr);
            kept += keep ? cols[i] : 0;
            for (int b = 0; b < cols[i]; b++) {
                size_t p = (size_t)a * cols[i] + b;
                double s = (double)mats[i][p] - lr[off + p];
                mats[i][p] = (float)(lr[off + p] + (keep ? s : 0.0));
            }
        }
        off += (size_t)rows[i] * cols[i];
    }
    if (st == MR_OK) *ratio = total ? kept / (double)total : 1.0;
    free(lr), free(sc), free(sorted);
    return st;
}
