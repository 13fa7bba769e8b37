/* Grouping of experts: which experts a method keeps, and which merge together. */
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mr_compress.h"
#include "mr_error.h"
#include "mr_rng.h"

typedef struct scored {
    double score;
    int idx;
} scored;

/* descending score, ties to the lower index */
static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* idx[0..K-1]: the K largest scores in descending order, ties to the lower index (a
 * stable order; torch.argsort in the reference is not stable, which only matters for
 * exactly equal scores). */
static int top_by(int *idx, const double *score, int E, int K)
{
    scored *v = malloc((size_t)E * sizeof *v);
    if (!v) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int e = 0; e < E; e++) v[e] = (scored){score[e], e};
    qsort(v, (size_t)E, sizeof *v, by_score_desc);
    for (int g = 0; g < K; g++) idx[g] = v[g].idx;
    free(v);
    return MR_OK;
}

static int keep_top(int *group_of, int *rep, const double *score, const mr_compress_stats *s)
{
    int *keep = malloc((size_t)s->K * sizeof *keep);
    if (!keep || top_by(keep, score, s->E, s->K) != MR_OK) {
        free(keep);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int e = 0; e < s->E; e++) group_of[e] = -1;
    for (int g = 0; g < s->K; g++) {
        rep[g] = keep[g];
        group_of[keep[g]] = g;
    }
    free(keep);
    return MR_OK;
}

/* REAP code, --prune-method frequency: tokens having the expert in their top-k. */
static int group_prune_freq(int *group_of, int *rep, const mr_compress_stats *s)
{
    return keep_top(group_of, rep, s->freq, s);
}

/* REAP: keep the largest saliency, drop the others with their router rows
 * (CerebrasResearch/reap `prune.py`: topk(saliency, largest=False) removed). */
static int group_prune_reap(int *group_of, int *rep, const mr_compress_stats *s)
{
    return keep_top(group_of, rep, s->saliency, s);
}

/* M-SMoE (MC-SMoE `group_experts_globally_from_dominant_experts`, one layer): the K most
 * used experts are dominant (labels in order of use); each other expert joins the most
 * similar dominant expert, the first in order of use on a tie (torch.argmax). */
int mr_compress_group_dominant(int *group_of, int *rep, const mr_compress_stats *s)
{
    MR_TRY(keep_top(group_of, rep, s->freq, s));
    for (int e = 0; e < s->E; e++) {
        if (group_of[e] >= 0) continue;
        int best = 0;
        for (int g = 1; g < s->K; g++)
            if (s->sim[e * s->E + rep[g]] > s->sim[e * s->E + rep[best]]) best = g;
        group_of[e] = best;
    }
    return MR_OK;
}

/* ---- spectral clustering ------------------------------------------------------- */

static double sqdist(const double *a, const double *b, int dim)
{
    double s = 0.0;
    for (int j = 0; j < dim; j++) s += (a[j] - b[j]) * (a[j] - b[j]);
    return s;
}

/* Lloyd's k-means from the given initial centers; returns the inertia. labels[n]. */
static double lloyd(int *labels, double *centers, const double *X, int n, int dim, int K)
{
    double inertia = 0.0;
    for (int it = 0; it < 300; it++) {
        int changed = 0;
        inertia = 0.0;
        for (int i = 0; i < n; i++) {
            int best = 0;
            double bd = INFINITY;
            for (int g = 0; g < K; g++) {
                double dd = sqdist(X + i * dim, centers + g * dim, dim);
                if (dd < bd) {
                    bd = dd;
                    best = g;
                }
            }
            if (it == 0 || labels[i] != best) changed = 1;
            labels[i] = best;
            inertia += bd;
        }
        if (!changed) break;
        for (int g = 0; g < K; g++) {
            int cnt = 0;
            double *c = centers + g * dim;
            for (int i = 0; i < n; i++)
                if (labels[i] == g) {
                    if (cnt++ == 0) memset(c, 0, (size_t)dim * sizeof *c);
                    for (int j = 0; j < dim; j++) c[j] += X[i * dim + j];
                }
            for (int j = 0; cnt > 0 && j < dim; j++) c[j] /= cnt;
        }
    }
    return inertia;
}

/* k-means++ seeding (Arthur & Vassilvitskii 2007), as scikit-learn's k-means. */
static void kmeanspp(double *centers, const double *X, int n, int dim, int K, gsl_rng *r,
                     double *d2)
{
    int first = (int)gsl_rng_uniform_int(r, (unsigned long)n);
    memcpy(centers, X + first * dim, (size_t)dim * sizeof *centers);
    for (int g = 1; g < K; g++) {
        double tot = 0.0;
        for (int i = 0; i < n; i++) {
            double best = INFINITY;
            for (int c = 0; c < g; c++) {
                double dd = sqdist(X + i * dim, centers + c * dim, dim);
                if (dd < best) best = dd;
            }
            d2[i] = best;
            tot += best;
        }
        int pick = n - 1;
        if (tot > 0.0) {
            double u = gsl_rng_uniform(r) * tot, acc = 0.0;
            for (int i = 0; i < n; i++)
                if ((acc += d2[i]) > u) {
                    pick = i;
                    break;
                }
        } else {
            pick = (int)gsl_rng_uniform_int(r, (unsigned long)n);
        }
        memcpy(centers + g * dim, X + pick * dim, (size_t)dim * sizeof *centers);
    }
}

/* Every group non-empty: an empty group takes the point farthest from its center among
 * groups of two or more (possible whenever K <= n). */
static void fill_empty(int *labels, const double *X, const double *centers, int n, int dim,
                       int K)
{
    for (int g = 0; g < K; g++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) cnt += labels[i] == g;
        if (cnt > 0) continue;
        int pick = -1;
        double far = -1.0;
        for (int i = 0; i < n; i++) {
            int size = 0;
            for (int j = 0; j < n; j++) size += labels[j] == labels[i];
            if (size < 2) continue;
            double dd = sqdist(X + i * dim, centers + labels[i] * dim, dim);
            if (dd > far) {
                far = dd;
                pick = i;
            }
        }
        labels[pick] = g;
    }
}

int mr_compress_spectral(int *labels, const double *sim, int E, int K, uint64_t seed_index)
{
    MR_REQUIRE(K >= 1 && K <= E, MR_EINPUT, "spectral clustering of %d experts into %d groups",
               E, K);
    if (K == E) { /* every expert its own group */
        for (int e = 0; e < E; e++) labels[e] = e;
        return MR_OK;
    }
    int st = MR_OK;
    gsl_matrix *M = gsl_matrix_alloc((size_t)E, (size_t)E);
    gsl_matrix *V = gsl_matrix_alloc((size_t)E, (size_t)E);
    gsl_vector *ev = gsl_vector_alloc((size_t)E);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc((size_t)E);
    double *deg = malloc((size_t)E * sizeof *deg), *X = malloc((size_t)E * K * sizeof *X);
    double *centers = malloc((size_t)K * K * sizeof *centers);
    double *best_c = malloc((size_t)K * K * sizeof *best_c), *d2 = malloc((size_t)E * sizeof *d2);
    int *lab = malloc((size_t)E * sizeof *lab);
    gsl_rng *r = mr_rng_alloc(0, "compress/spectral-kmeans", seed_index);
    if (!M || !V || !ev || !ws || !deg || !X || !centers || !best_c || !d2 || !lab || !r) {
        st = mr_error_set(MR_ENOMEM, "out of memory");
        goto done;
    }
    /* affinity without self-loops (scipy.sparse.csgraph.laplacian drops the diagonal);
     * M = D^-1/2 A D^-1/2, whose largest eigenvalues are the normalized Laplacian
     * I - M's smallest */
    for (int a = 0; a < E; a++) {
        deg[a] = 0.0;
        for (int b = 0; b < E; b++) deg[a] += a == b ? 0.0 : sim[a * E + b];
    }
    for (int a = 0; a < E; a++)
        for (int b = 0; b < E; b++) {
            double v = a == b ? 0.0 : sim[a * E + b];
            double s = deg[a] > 0.0 && deg[b] > 0.0 ? v / sqrt(deg[a] * deg[b]) : 0.0;
            gsl_matrix_set(M, (size_t)a, (size_t)b, s);
        }
    if (gsl_eigen_symmv(M, ev, V, ws) != 0) {
        st = mr_error_set(MR_EFAILED, "eigen-decomposition of the expert affinity failed");
        goto done;
    }
    gsl_eigen_symmv_sort(ev, V, GSL_EIGEN_SORT_VAL_DESC);
    /* embedding: the K leading eigenvectors divided by sqrt(degree) (scikit-learn's
     * spectral_embedding with norm_laplacian, drop_first=False), each with the sign that
     * makes its largest-magnitude entry positive (_deterministic_vector_sign_flip) */
    for (int g = 0; g < K; g++) {
        int amax = 0;
        for (int e = 1; e < E; e++)
            if (fabs(gsl_matrix_get(V, (size_t)e, (size_t)g)) >
                fabs(gsl_matrix_get(V, (size_t)amax, (size_t)g)))
                amax = e;
        double sign = gsl_matrix_get(V, (size_t)amax, (size_t)g) < 0.0 ? -1.0 : 1.0;
        for (int e = 0; e < E; e++)
            X[e * K + g] = sign * gsl_matrix_get(V, (size_t)e, (size_t)g) /
                           (deg[e] > 0.0 ? sqrt(deg[e]) : 1.0);
    }
    /* k-means, best of 10 k-means++ starts (scikit-learn's n_init = 10) from the stream
     * (0, "compress/spectral-kmeans", layer) */
    double best = INFINITY;
    for (int init = 0; init < 10; init++) {
        kmeanspp(centers, X, E, K, K, r, d2);
        double in = lloyd(lab, centers, X, E, K, K);
        if (in < best) {
            best = in;
            memcpy(labels, lab, (size_t)E * sizeof *labels);
            memcpy(best_c, centers, (size_t)K * K * sizeof *best_c);
        }
    }
    fill_empty(labels, X, best_c, E, K, K);
done:
    gsl_matrix_free(M);
    gsl_matrix_free(V);
    gsl_vector_free(ev);
    if (ws) gsl_eigen_symmv_free(ws);
    free(deg), free(X), free(centers), free(best_c), free(d2), free(lab);
    if (r) gsl_rng_free(r);
    return st;
}

/* UNCURL's clustering step: spectral clustering of the router-logit similarity; each
 * cluster's representative is its most used member (the lower index on a tie). */
static int group_spectral(int *group_of, int *rep, const mr_compress_stats *s)
{
    MR_TRY(mr_compress_spectral(group_of, s->sim, s->E, s->K, (uint64_t)s->layer));
    for (int g = 0; g < s->K; g++) rep[g] = -1;
    for (int e = 0; e < s->E; e++) {
        int g = group_of[e];
        if (rep[g] < 0 || s->freq[e] > s->freq[rep[g]]) rep[g] = e;
    }
    return MR_OK;
}

const mr_compress_type mr_compress_prune_freq = {
    "prune-freq", "keep the K experts most often in a token's top-k on the calibration data", 0, 0,
    0, group_prune_freq};
const mr_compress_type mr_compress_prune_reap = {
    "prune-reap", "keep the K experts with the largest mean router-weighted output norm (REAP)",
    MR_COMPRESS_NEED_REAP, 0, 0, group_prune_reap};
const mr_compress_type mr_compress_merge_msmoe = {
    "merge-msmoe",
    "M-SMoE: K most used experts dominant, the others join the most similar (router logits), "
    "aligned and frequency-weighted",
    MR_COMPRESS_NEED_SIM, 1, 0, mr_compress_group_dominant};
const mr_compress_type mr_compress_merge_uncurl = {
    "merge-uncurl",
    "UNCURL: spectral clustering of the router-logit similarity into K groups, aligned and "
    "frequency-weighted",
    MR_COMPRESS_NEED_SIM, 1, 0, group_spectral};
const mr_compress_type mr_compress_mc_smoe = {
    "mc-smoe", "merge-msmoe, then each expert matrix as low rank + sparse (MC-SMoE)",
    MR_COMPRESS_NEED_SIM, 1, 1, mr_compress_group_dominant};

const mr_compress_type *const mr_compress_types[] = {
    &mr_compress_prune_freq, &mr_compress_prune_reap, &mr_compress_merge_msmoe,
    &mr_compress_merge_uncurl, &mr_compress_mc_smoe, NULL};

const mr_compress_type *mr_compress_lookup(const char *name)
{
    for (int i = 0; mr_compress_types[i]; i++)
        if (strcmp(mr_compress_types[i]->name, name) == 0) return mr_compress_types[i];
    return NULL;
}
