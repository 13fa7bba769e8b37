#include "mr_assign.h"

#include <math.h>
#include <stdlib.h>

#include "mr_error.h"

struct mr_assign_workspace {
    int n_max;
    double *u, *v, *minv; /* [n+1] dual potentials of rows, columns; path lengths */
    int *row_of, *way;    /* [n+1] row matched to column j (0: none); predecessor column */
    char *used;           /* [n+1] column on the current shortest-path tree */
};

int mr_assign_workspace_alloc(mr_assign_workspace **out, int n_max)
{
    *out = NULL;
    MR_REQUIRE(n_max >= 1, MR_EINPUT, "assignment of size %d", n_max);
    mr_assign_workspace *w = calloc(1, sizeof *w);
    if (!w) return mr_error_set(MR_ENOMEM, "out of memory");
    size_t m = (size_t)n_max + 1;
    w->n_max = n_max;
    w->u = malloc(m * sizeof *w->u);
    w->v = malloc(m * sizeof *w->v);
    w->minv = malloc(m * sizeof *w->minv);
    w->row_of = malloc(m * sizeof *w->row_of);
    w->way = malloc(m * sizeof *w->way);
    w->used = malloc(m);
    if (!w->u || !w->v || !w->minv || !w->row_of || !w->way || !w->used) {
        mr_assign_workspace_free(w);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    *out = w;
    return MR_OK;
}

void mr_assign_workspace_free(mr_assign_workspace *w)
{
    if (!w) return;
    free(w->u);
    free(w->v);
    free(w->minv);
    free(w->row_of);
    free(w->way);
    free(w->used);
    free(w);
}

int mr_assign_solve(int *col, double *total, const double *cost, int n, int maximize,
                    mr_assign_workspace *w)
{
    MR_REQUIRE(n >= 1 && n <= w->n_max, MR_EINPUT, "assignment of size %d (workspace for %d)",
               n, w->n_max);
    for (long i = 0; i < (long)n * n; i++)
        MR_REQUIRE(isfinite(cost[i]), MR_EINPUT, "assignment cost [%ld][%ld] is not finite",
                   i / n, i % n);
    const double sign = maximize ? -1.0 : 1.0; /* maximize = minimize the negated costs */
    double *u = w->u, *v = w->v, *minv = w->minv;
    int *row_of = w->row_of, *way = w->way;
    char *used = w->used;
    /* 1-based rows and columns; column 0 is the virtual start of every search */
    for (int j = 0; j <= n; j++) {
        u[j] = v[j] = 0.0;
        row_of[j] = 0;
        way[j] = 0;
    }
    for (int i = 1; i <= n; i++) {
        row_of[0] = i;
        int j0 = 0;
        for (int j = 0; j <= n; j++) {
            minv[j] = INFINITY;
            used[j] = 0;
        }
        /* grow a shortest-path tree from row i until it reaches a free column */
        do {
            used[j0] = 1;
            int i0 = row_of[j0], j1 = 0;
            double delta = INFINITY;
            const double *crow = cost + (size_t)(i0 - 1) * n;
            for (int j = 1; j <= n; j++) {
                if (used[j]) continue;
                double cur = sign * crow[j - 1] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) { /* strict: ties go to the lower column */
                    delta = minv[j];
                    j1 = j;
                }
            }
            /* keep reduced costs >= 0 on the tree and shorten the remaining paths */
            for (int j = 0; j <= n; j++) {
                if (used[j]) {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (row_of[j0] != 0);
        /* augment: flip the matching along the path back to the start */
        do {
            int j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
        } while (j0 != 0);
    }
    double sum = 0.0;
    for (int j = 1; j <= n; j++) {
        col[row_of[j] - 1] = j - 1;
        sum += cost[(size_t)(row_of[j] - 1) * n + (j - 1)];
    }
    if (total) *total = sum;
    return MR_OK;
}
