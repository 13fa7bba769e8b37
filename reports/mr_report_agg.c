/* Aggregates of a report, for every metric of the schema the report shows (its `report`
 * columns, metrics/mr_metric.h): per (model, router, k) group, means over corruptions,
 * severities and checkpoint pairs of the metric's per-sample vector (mean over MoE layers
 * for per-layer metrics, in display units), each with a bootstrap CI over samples from
 * the run's seed, B and level. Nothing is re-evaluated: the vectors are read from
 * results.h5. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

int mr_rep_shows(const rep *R, int id)
{
    const mr_metric *m = &mr_metric_table[id];
    int task = R->m->task;
    return m->report && mr_metric_for_task(m, task) && (m->primary < 0 || m->primary == task);
}

/* ------------------------------------------------------------------ CI queue */

static int queue_ci(rep *R, const double *x, double scale_div, double *out, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* queue the CI of the mean of x[n] / scale_div (x is copied) */
static int queue_ci(rep *R, const double *x, double scale_div, double *out, const char *fmt, ...)
{
    if (R->n_jobs == R->cap_jobs) {
        int cap = R->cap_jobs ? 2 * R->cap_jobs : 256;
        void *v = realloc(R->jobs, (size_t)cap * sizeof *R->jobs);
        MR_REQUIRE(v, MR_ENOMEM, "out of memory");
        R->jobs = v;
        R->cap_jobs = cap;
    }
    ci_job *j = &R->jobs[R->n_jobs];
    j->x = malloc(R->n * sizeof *j->x + 1);
    MR_REQUIRE(j->x, MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < R->n; i++) j->x[i] = x[i] / scale_div;
    j->out = out;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->purpose, sizeof j->purpose, fmt, ap);
    va_end(ap);
    R->n_jobs++;
    return MR_OK;
}

static int run_cis(rep *R)
{
    int st = MR_OK;
    char msg[512] = "";
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < R->n_jobs; i++) {
        int my = mr_results_ci(R->r, R->jobs[i].x, R->n, R->jobs[i].purpose, R->jobs[i].out);
        if (my != MR_OK) {
#pragma omp critical(mr_report_ci)
            if (st == MR_OK) {
                st = my;
                snprintf(msg, sizeof msg, "%s", mr_error_message());
            }
        }
    }
    return st == MR_OK ? MR_OK : mr_error_set(st, "%s", msg);
}

static void free_jobs(rep *R)
{
    for (int i = 0; i < R->n_jobs; i++) free(R->jobs[i].x);
    R->n_jobs = 0;
}

/* Bootstrap stream names: "report/<aggregate>/<metric id>/...". The degradation and
 * fluctuation aggregates are named by the aggregate alone for the one metric that had
 * them first (the primary metric, flip_top1), so that their CIs stay what they were. */
static void stream(char *buf, size_t cap, const mr_metric *m, const char *agg)
{
    int plain = (strcmp(agg, "delta") == 0 && strcmp(m->id, "prim") == 0) ||
                (strcmp(agg, "fluct") == 0 && strcmp(m->id, "flip1") == 0);
    if (plain)
        snprintf(buf, cap, "%s", agg);
    else if (!agg[0])
        snprintf(buf, cap, "%s", m->id);
    else
        snprintf(buf, cap, "%s-%s", agg, m->id);
}

/* ------------------------------------------------------------------ per-sample vectors */

/* buffers of one group's aggregation: per metric id a vector [n] */
typedef struct sums {
    double *q;    /* [N][n] the current cell */
    double *cq;   /* [N][n] the clean cell */
    double *sev;  /* [N][S][n] sums per severity */
    double *pc;   /* [N][n] sums over the current corruption's severities */
    double *all;  /* [N][n] sums over every corrupted cell */
    double *fl;   /* [N][n] sums over the checkpoint pairs */
    double *tmp;  /* [n * n_moe] one per-layer dataset, or [n] a degradation */
} sums;

#define V(base, id) ((base) + (size_t)(id) * R->n)

/* Whether a cell of these parts has metric m's per-sample vector. */
static int cell_has(const mr_cell_summary *s, const mr_metric *m)
{
    return m->part == MR_PART_PASS ? s->has_pass : m->part == MR_PART_FLIPS ? s->has_flips : 0;
}

/* The per-sample vector of every shown metric a cell has into q[id] (display units;
 * per-layer metrics: mean over layers). */
static int cell_vectors(rep *R, int cell, double *q, double *tmp)
{
    const mr_cell_summary *s = &R->r->cells[cell];
    size_t n = R->n;
    for (int id = 0; id < MR_METRIC_N; id++) {
        const mr_metric *m = &mr_metric_table[id];
        const mr_metric *src = m->derive >= 0 ? &mr_metric_table[m->derive] : m;
        if (!mr_rep_shows(R, id) || !src->samples || !cell_has(s, m)) continue;
        size_t L = m->per_layer ? (size_t)R->m->n_moe : 1;
        double *dst = V(q, id);
        MR_TRY(mr_results_samples(R->r, cell, src->samples, m->per_layer ? tmp : dst, n * L));
        for (size_t i = 0; i < n; i++) {
            if (m->per_layer) {
                double a = 0;
                for (size_t l = 0; l < L; l++) a += tmp[i * L + l];
                dst[i] = L ? m->scale * a / (double)L : 0.0;
            } else {
                double x = m->derive >= 0 ? dst[i] / m->divisor : dst[i];
                dst[i] = m->scale * x;
            }
        }
    }
    return MR_OK;
}

static void add_to(double *acc, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) acc[i] += x[i];
}

/* degradation of x from the clean value c, positive = worse, times `times` */
static void degradation(double *out, const mr_metric *m, const double *x, double div,
                        const double *c, double times, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double mean = x[i] / div;
        out[i] = (m->better == MR_BETTER_HIGHER ? c[i] - mean : mean - c[i]) * times;
    }
}

/* ------------------------------------------------------------------ one group */

static void nan3(double *v, size_t n_triples)
{
    for (size_t i = 0; i < 3 * n_triples; i++) v[i] = NAN;
}

/* the clean cell: stored CIs of cell-level metrics, bootstrap of per-layer ones */
static int agg_clean(rep *R, const mr_res_group *gr, gagg *a, sums *b)
{
    const mr_cell_summary *c = &R->r->cells[gr->clean];
    a->has_clean = 1;
    MR_TRY(cell_vectors(R, gr->clean, b->cq, b->tmp));
    for (int id = 0; id < MR_METRIC_N; id++) {
        const mr_metric *m = &mr_metric_table[id];
        if (!mr_rep_shows(R, id) || !(m->report & MR_REPORT_CLEAN) || !c->value[id]) continue;
        if (!m->per_layer) {
            for (int j = 0; j < 3; j++) a->clean[id][j] = m->scale * c->value[id][j];
            continue;
        }
        char s[64];
        stream(s, sizeof s, m, "");
        MR_TRY(queue_ci(R, V(b->cq, id), 1.0, a->clean[id], "report/%s/%s/%s", s, R->m->name,
                        gr->label));
    }
    return MR_OK;
}

/* the corrupted cells of corruption c: sums per severity and overall, per-corruption CIs */
static int agg_corruption(rep *R, const mr_res_group *gr, gagg *a, sums *b, int c)
{
    size_t n = R->n;
    memset(b->pc, 0, MR_METRIC_N * n * sizeof *b->pc);
    int cnt = 0;
    for (int s = 0; s < MR_SEVERITY_MAX; s++) {
        int cell = gr->corrupt[c * MR_SEVERITY_MAX + s];
        if (cell < 0) continue;
        MR_TRY(cell_vectors(R, cell, b->q, b->tmp));
        for (int id = 0; id < MR_METRIC_N; id++) {
            int f = mr_rep_shows(R, id) ? mr_metric_table[id].report : 0;
            if (f & MR_REPORT_SEV) add_to(b->sev + ((size_t)id * MR_SEVERITY_MAX + s) * n, V(b->q, id), n);
            if (f & MR_REPORT_PERCORR) add_to(V(b->pc, id), V(b->q, id), n);
            if (f & MR_REPORT_CORRUPT) add_to(V(b->all, id), V(b->q, id), n);
        }
        a->sev_n[s]++;
        cnt++;
        a->all_n++;
    }
    a->pc_n[c] = cnt;
    if (!cnt) return MR_OK;
    const char *cn = R->r->corr[c];
    char s[64];
    for (int id = 0; id < MR_METRIC_N; id++) {
        const mr_metric *m = &mr_metric_table[id];
        if (!mr_rep_shows(R, id) || !(m->report & MR_REPORT_PERCORR)) continue;
        stream(s, sizeof s, m, "");
        MR_TRY(queue_ci(R, V(b->pc, id), cnt, PC(a, c, id, 0), "report/corr/%s/%s/%s/%s", s,
                        R->m->name, gr->label, cn));
        if (!(m->report & MR_REPORT_DELTA) || !a->has_clean) continue;
        degradation(b->tmp, m, V(b->pc, id), cnt, V(b->cq, id), cnt, n);
        stream(s, sizeof s, m, "delta");
        MR_TRY(queue_ci(R, b->tmp, cnt, PC(a, c, id, 1), "report/corr/%s/%s/%s/%s", s,
                        R->m->name, gr->label, cn));
    }
    return MR_OK;
}

/* means over every corrupted cell, per severity, and their degradation */
static int agg_overall(rep *R, const mr_res_group *gr, gagg *a, sums *b)
{
    size_t n = R->n;
    char s[64];
    for (int id = 0; id < MR_METRIC_N; id++) {
        const mr_metric *m = &mr_metric_table[id];
        if (!mr_rep_shows(R, id)) continue;
        for (int sv = 0; (m->report & MR_REPORT_SEV) && sv < MR_SEVERITY_MAX; sv++)
            if (a->sev_n[sv])
                MR_TRY(queue_ci(R, b->sev + ((size_t)id * MR_SEVERITY_MAX + sv) * n, a->sev_n[sv],
                                a->sev[id][sv], "report/sev/%s/%s/%s/s%d", m->id, R->m->name,
                                gr->label, sv + 1));
        if (!a->all_n) continue;
        if (m->report & MR_REPORT_CORRUPT)
            MR_TRY(queue_ci(R, V(b->all, id), a->all_n, a->all[id], "report/all/%s/%s/%s", m->id,
                            R->m->name, gr->label));
        if ((m->report & MR_REPORT_DELTA) && a->has_clean) {
            degradation(b->tmp, m, V(b->all, id), a->all_n, V(b->cq, id), 1.0, n);
            stream(s, sizeof s, m, "delta");
            MR_TRY(queue_ci(R, b->tmp, 1.0, a->delta[id], "report/all/%s/%s/%s", s, R->m->name,
                            gr->label));
        }
    }
    return MR_OK;
}

/* checkpoint fluctuation: mean over consecutive-checkpoint pairs */
static int agg_fluct(rep *R, const mr_res_group *gr, gagg *a, sums *b)
{
    size_t n = R->n;
    for (int f = 0; f < gr->n_fluct; f++) {
        MR_TRY(cell_vectors(R, gr->fluct[f], b->q, b->tmp));
        for (int id = 0; id < MR_METRIC_N; id++)
            if (mr_rep_shows(R, id) && (mr_metric_table[id].report & MR_REPORT_FLUCT))
                add_to(V(b->fl, id), V(b->q, id), n);
        a->fluct_n++;
    }
    char s[64];
    for (int id = 0; a->fluct_n && id < MR_METRIC_N; id++) {
        const mr_metric *m = &mr_metric_table[id];
        if (!mr_rep_shows(R, id) || !(m->report & MR_REPORT_FLUCT)) continue;
        stream(s, sizeof s, m, "fluct");
        MR_TRY(queue_ci(R, V(b->fl, id), a->fluct_n, a->fluct[id], "report/all/%s/%s/%s", s,
                        R->m->name, gr->label));
    }
    return MR_OK;
}

/* Accumulate every aggregate of group gl of the model, queueing their CIs. */
static int aggregate_group(rep *R, int gl)
{
    const mr_results *r = R->r;
    const mr_res_group *gr = &r->groups[R->g0 + gl];
    gagg *a = &R->agg[gl];
    size_t n = R->n, L = (size_t)R->m->n_moe, N = MR_METRIC_N;
    nan3(&a->clean[0][0], N);
    nan3(&a->all[0][0], N);
    nan3(&a->delta[0][0], N);
    nan3(&a->fluct[0][0], N);
    nan3(&a->sev[0][0][0], N * MR_SEVERITY_MAX);
    a->pc = malloc(((size_t)r->n_corr * N * 2 * 3 + 1) * sizeof *a->pc);
    a->pc_n = calloc((size_t)r->n_corr + 1, sizeof *a->pc_n);
    size_t need = N * n * (5 + MR_SEVERITY_MAX) + n * (L > 1 ? L : 1); /* 5: q cq pc all fl */
    double *buf = calloc(need + 1, sizeof *buf);
    int st = a->pc && a->pc_n && buf ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) {
        nan3(a->pc, (size_t)r->n_corr * N * 2);
        sums b = {.q = buf, .cq = buf + N * n, .pc = buf + 2 * N * n, .all = buf + 3 * N * n,
                  .fl = buf + 4 * N * n, .sev = buf + 5 * N * n};
        b.tmp = b.sev + N * MR_SEVERITY_MAX * n;
        if (gr->clean >= 0) st = agg_clean(R, gr, a, &b);
        for (int c = 0; st == MR_OK && c < r->n_corr; c++) st = agg_corruption(R, gr, a, &b, c);
        if (st == MR_OK) st = agg_overall(R, gr, a, &b);
        if (st == MR_OK) st = agg_fluct(R, gr, a, &b);
        if (st == MR_OK && R->cmp) st = mr_report_compare_keep(R, gl, b.cq, b.all, b.fl);
    }
    free(buf);
    return st;
}

int mr_rep_aggregate(rep *R)
{
    int st = MR_OK;
    for (int g = 0; st == MR_OK && g < R->G; g++) st = aggregate_group(R, g);
    if (st == MR_OK) st = run_cis(R);
    free_jobs(R);
    return st;
}

void mr_rep_agg_free(rep *R)
{
    for (int g = 0; R->agg && g < R->G; g++) {
        free(R->agg[g].pc);
        free(R->agg[g].pc_n);
    }
}
