/* mr_assign.h — the linear assignment problem (minimum- or maximum-weight perfect
 * matching of an n x n cost matrix) in O(n^3).
 *
 * Shortest augmenting paths with dual potentials (Jonker & Volgenant 1987; the
 * Hungarian method of Kuhn 1955 / Munkres 1957 in its O(n^3) form): one row at a time is
 * added to the matching along a shortest alternating path in the reduced costs
 * cost[i][j] - u[i] - v[j] >= 0, found Dijkstra-style. scipy's
 * linear_sum_assignment (used by the MC-SMoE authors for weight matching) solves the
 * same problem with the same family of algorithm (Crouse 2016); where several
 * assignments are optimal the two may return different ones, with the same total.
 *
 * Ownership: the caller owns the workspace (mr_assign_workspace_alloc/_free); a
 * workspace for n serves any size up to n, from one thread at a time.
 */
#ifndef MR_ASSIGN_H
#define MR_ASSIGN_H

typedef struct mr_assign_workspace mr_assign_workspace;

int mr_assign_workspace_alloc(mr_assign_workspace **out, int n_max);
void mr_assign_workspace_free(mr_assign_workspace *w);

/* col[i] (i = 0..n-1): the column assigned to row i, a permutation of 0..n-1 that
 * minimizes (maximize = 0) or maximizes (maximize = 1) sum_i cost[i*n + col[i]].
 * cost is row-major [n, n]. MR_EINPUT if a cost is not finite or n exceeds the
 * workspace; *total (may be NULL) receives the optimal sum. */
int mr_assign_solve(int *col, double *total, const double *cost, int n, int maximize,
                    mr_assign_workspace *w);

#endif
