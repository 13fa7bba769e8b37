/* The report's tables, Markdown and LaTeX (booktabs), their columns taken from the
 * metrics schema (metrics/mr_metric.h), never by position:
 *   table-MODEL-summary       router@k x, for every metric the report shows, its columns
 *                             (clean, corrupted, degradation, checkpoint fluctuation) and
 *                             the group metrics (mCE, relative mCE)
 *   table-MODEL-corruptions   corruption x router@k: per metric with per-corruption
 *                             columns the mean over the corruption's severities (after its
 *                             clean value when it has a degradation, then that), and the
 *                             per-corruption group metrics (CE)
 * Values are means with the half-width of their CI; the best of every column is bold
 * (by the metric's better direction; degradations: lower) where that means something: two
 * rows or more, and never a collapsed router (mr_rep_collapsed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

enum { BEST_NONE, BEST_MAX, BEST_MIN };
#define MAX_COLS 64

typedef struct col {
    int id;       /* metric */
    int agg;      /* MR_REPORT_CLEAN, _CORRUPT, _DELTA, _FLUCT, _GROUP or _PERCORR */
    char md[128], tex[192];
    int best, decimals, has_ci;
} col;

/* header texts of a column: aggregate prefix, label, unit */
static void col_init(col *c, int id, int agg)
{
    const mr_metric *m = &mr_metric_table[id];
    static const struct {
        int agg;
        const char *md, *tex;
    } pre[] = {{MR_REPORT_CLEAN, "clean ", "Clean "},      {MR_REPORT_CORRUPT, "corrupted ", "Corr.\\ "},
               {MR_REPORT_PERCORR, "corrupted ", "Corr.\\ "}, {MR_REPORT_DELTA, "Δ ", "$\\Delta$ "},
               {MR_REPORT_FLUCT, "ckpt ", "Ckpt.\\ "}};
    const char *pm = "", *pt = "";
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++)
        if (pre[i].agg == agg && m->part != MR_PART_GROUP) {
            pm = pre[i].md;
            pt = pre[i].tex;
        }
    const char *u = agg == MR_REPORT_DELTA && !strcmp(m->display_unit, "%") ? "pp" : m->display_unit;
    int dot = m->tex[0] && m->tex[strlen(m->tex) - 1] == '.';
    c->id = id;
    c->agg = agg;
    if (u[0]) {
        snprintf(c->md, sizeof c->md, "%s%s (%s)", pm, m->label, u);
        snprintf(c->tex, sizeof c->tex, "%s%s%s(%s)", pt, m->tex, dot ? "\\ " : " ",
                 strcmp(u, "%") ? u : "\\%");
    } else {
        snprintf(c->md, sizeof c->md, "%s%s", pm, m->label);
        snprintf(c->tex, sizeof c->tex, "%s%s", pt, m->tex);
    }
    c->best = agg == MR_REPORT_DELTA                ? BEST_MIN
              : m->better == MR_BETTER_HIGHER ? BEST_MAX
              : m->better == MR_BETTER_LOWER  ? BEST_MIN
                                              : BEST_NONE;
    c->decimals = m->decimals;
    c->has_ci = m->part != MR_PART_GROUP;
}

/* Whether group g of the current model collapsed: its clean error (100 - accuracy %, or
 * bpc) more than twice its reference's (docs/reports.md). Such a row is never "best". */
int mr_rep_collapsed(const rep *R, int g)
{
    int f = R->r->groups[R->g0 + g].ref - R->g0;
    if (f < 0 || f >= R->G || f == g) return 0;
    double e = R->agg[g].clean[R->prim][0], er = R->agg[f].clean[R->prim][0];
    if (!R->lm) e = 100 - e, er = 100 - er;
    return isfinite(e) && isfinite(er) && er > 0 && e > 2 * er;
}

/* v[row][col][3]; bold the best displayed value of every column: only with a better
 * direction, at least two rows with a value, and never a collapsed row (rows are the
 * model's groups, or with per_corr one corruption's) */
static void table_best(const rep *R, const double *v, int rows, const col *cols, int nc, char *bold)
{
    for (int c = 0; c < nc; c++) {
        double best = NAN;
        int cand = 0;
        for (int i = 0; i < rows; i++) {
            double x = v[((size_t)i * nc + c) * 3];
            if (!isfinite(x) || cols[c].best == BEST_NONE || mr_rep_collapsed(R, i)) continue;
            char s[64];
            snprintf(s, sizeof s, "%.*f", cols[c].decimals, x);
            x = atof(s); /* compare what is displayed: ties are all bold */
            cand++;
            if (!isfinite(best) || (cols[c].best == BEST_MAX ? x > best : x < best)) best = x;
        }
        for (int i = 0; i < rows; i++) {
            double x = v[((size_t)i * nc + c) * 3];
            char s[64];
            snprintf(s, sizeof s, "%.*f", cols[c].decimals, x);
            bold[i * nc + c] = cand >= 2 && isfinite(x) && isfinite(best) && atof(s) == best &&
                               !mr_rep_collapsed(R, i);
        }
    }
}

static void cell_md(FILE *fp, const double *v, const col *c, int bold)
{
    char m[64], h[64];
    mr_report_fmt(m, sizeof m, v[0], c->decimals);
    fprintf(fp, " %s%s%s", bold ? "**" : "", m, bold ? "**" : "");
    if (c->has_ci && isfinite(v[1]) && isfinite(v[2]) && v[2] > v[1]) {
        mr_report_fmt(h, sizeof h, (v[2] - v[1]) / 2, c->decimals);
        fprintf(fp, " ± %s", h);
    }
    fprintf(fp, " |");
}

static void cell_tex(FILE *fp, const double *v, const col *c, int bold)
{
    char m[64], h[64];
    mr_report_fmt(m, sizeof m, v[0], c->decimals);
    if (!isfinite(v[0]))
        fprintf(fp, " & --");
    else
        fprintf(fp, " & %s%s%s", bold ? "\\textbf{" : "", m, bold ? "}" : "");
    if (isfinite(v[0]) && c->has_ci && isfinite(v[1]) && isfinite(v[2]) && v[2] > v[1]) {
        mr_report_fmt(h, sizeof h, (v[2] - v[1]) / 2, c->decimals);
        fprintf(fp, " $\\pm$ %s", h);
    }
}

static void copy3(double *dst, const double *src) { memcpy(dst, src, 3 * sizeof *dst); }

/* ------------------------------------------------------------------ columns */

static int summary_cols(rep *R, col *cols)
{
    int has_fluct = 0, nc = 0;
    for (int g = 0; g < R->G; g++) has_fluct |= R->agg[g].fluct_n > 0;
    static const int aggs[] = {MR_REPORT_CLEAN, MR_REPORT_CORRUPT, MR_REPORT_DELTA, MR_REPORT_FLUCT,
                               MR_REPORT_GROUP};
    for (int id = 0; id < MR_METRIC_N; id++) {
        if (!mr_rep_shows(R, id)) continue;
        for (size_t k = 0; k < sizeof aggs / sizeof aggs[0] && nc < MAX_COLS; k++)
            if ((mr_metric_table[id].report & aggs[k]) && (aggs[k] != MR_REPORT_FLUCT || has_fluct))
                col_init(&cols[nc++], id, aggs[k]);
    }
    return nc;
}

static int corruption_cols(rep *R, col *cols)
{
    int nc = 0;
    for (int id = 0; id < MR_METRIC_N && nc + 3 <= MAX_COLS; id++) {
        int f = mr_metric_table[id].report;
        if (!mr_rep_shows(R, id) || !(f & MR_REPORT_PERCORR)) continue;
        if (f & MR_REPORT_DELTA) col_init(&cols[nc++], id, MR_REPORT_CLEAN);
        col_init(&cols[nc++], id, MR_REPORT_PERCORR);
        if (f & MR_REPORT_DELTA) col_init(&cols[nc++], id, MR_REPORT_DELTA);
    }
    return nc;
}

/* the value of column c for group g (corruption ci, or -1 for the summary) */
static void col_value(rep *R, const col *c, int g, int ci, double *out)
{
    const gagg *a = &R->agg[g];
    const mr_res_group *gr = &R->r->groups[R->g0 + g];
    const mr_metric *m = &mr_metric_table[c->id];
    out[0] = out[1] = out[2] = NAN;
    if (c->agg == MR_REPORT_CLEAN) copy3(out, a->clean[c->id]);
    if (m->part == MR_PART_GROUP) {
        int ok = ci < 0 ? gr->has_ce && a->all_n : a->pc_n[ci] > 0;
        if (ok) out[0] = m->scale * gr->value[c->id][ci < 0 ? 0 : ci];
        return;
    }
    if (ci < 0) {
        if (c->agg == MR_REPORT_CORRUPT) copy3(out, a->all[c->id]);
        if (c->agg == MR_REPORT_DELTA) copy3(out, a->delta[c->id]);
        if (c->agg == MR_REPORT_FLUCT) copy3(out, a->fluct[c->id]);
    } else if (a->pc_n[ci]) {
        if (c->agg == MR_REPORT_PERCORR) copy3(out, PC(a, ci, c->id, 0));
        if (c->agg == MR_REPORT_DELTA) copy3(out, PC(a, ci, c->id, 1));
    }
}

/* ------------------------------------------------------------------ writers */

static int md_table(rep *R, const char *name, const col *cols, int nc, const double *v,
                    const char *bold, int per_corr)
{
    const mr_results *r = R->r;
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    fprintf(t.fp, "|%s router |", per_corr ? " corruption |" : "");
    for (int c = 0; c < nc; c++) fprintf(t.fp, " %s |", cols[c].md);
    fprintf(t.fp, "\n|---|%s", per_corr ? "---|" : "");
    for (int c = 0; c < nc; c++) fprintf(t.fp, "---:|");
    fputc('\n', t.fp);
    int C = per_corr ? r->n_corr : 1;
    for (int ci = 0; ci < C; ci++)
        for (int g = 0; g < R->G; g++) {
            if (per_corr && !R->agg[g].pc_n[ci]) continue;
            size_t row = (size_t)ci * R->G + g;
            fprintf(t.fp, "| ");
            if (per_corr) {
                mr_rep_md_str(t.fp, r->corr[ci]);
                fprintf(t.fp, " | ");
            }
            mr_rep_md_str(t.fp, r->groups[R->g0 + g].label);
            fprintf(t.fp, "%s |", mr_rep_collapsed(R, g) ? " †" : "");
            for (int c = 0; c < nc; c++)
                cell_md(t.fp, v + (row * nc + c) * 3, &cols[c], bold[row * nc + c]);
            fputc('\n', t.fp);
        }
    R->info->n_tables++;
    return mr_textbuf_commit(&t, R->dir, name);
}

static void tex_caption(rep *R, FILE *fp, int per_corr)
{
    const char *mn = R->m->name;
    fprintf(fp, "\\begin{table*}[t]\n\\centering\n\\small\n\\caption{");
    mr_rep_tex_str(fp, mn);
    if (per_corr)
        fprintf(fp, ": robustness per corruption (mean over severities $\\pm$ half-width of the "
                    "%g\\%% bootstrap CI; CE relative to ", 100 * R->r->level);
    else
        fprintf(fp, ": robustness per router (mean $\\pm$ half-width of the %g\\%% bootstrap CI "
                    "over %zu samples; corrupted = mean over %d corruptions and their severities; "
                    "mCE relative to ", 100 * R->r->level, R->n, R->r->n_corr);
    mr_rep_tex_str(fp, R->r->reference);
    fprintf(fp, "; best per %s in bold, with two rows or more; $\\dagger$: collapsed, clean "
                "%s more than twice the reference's, never best).}\n\\label{tab:",
            per_corr ? "corruption" : "column", R->lm ? "bpc" : "error");
    mr_rep_tex_str(fp, mn);
    fprintf(fp, "-%s}\n", per_corr ? "corruptions" : "summary");
}

static int tex_table(rep *R, const char *name, const col *cols, int nc, const double *v,
                     const char *bold, int per_corr)
{
    const mr_results *r = R->r;
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    if (per_corr)
        fprintf(t.fp, "%% router x corruption table: written by moe-robust report; needs "
                      "\\usepackage{booktabs} (and longtable-style splitting if it runs long)\n");
    else
        fprintf(t.fp, "%% summary table: written by moe-robust report; needs \\usepackage{booktabs}\n");
    tex_caption(R, t.fp, per_corr);
    fprintf(t.fp, "\\begin{tabular}{l%s", per_corr ? "l" : "");
    for (int c = 0; c < nc; c++) fputc('r', t.fp);
    fprintf(t.fp, "}\n\\toprule\n%sRouter", per_corr ? "Corruption & " : "");
    for (int c = 0; c < nc; c++) fprintf(t.fp, " & %s", cols[c].tex);
    fprintf(t.fp, " \\\\\n%s", per_corr ? "" : "\\midrule\n");
    int C = per_corr ? r->n_corr : 1;
    for (int ci = 0; ci < C; ci++) {
        if (per_corr) fprintf(t.fp, "\\midrule\n");
        int first = 1;
        for (int g = 0; g < R->G; g++) {
            if (per_corr && !R->agg[g].pc_n[ci]) continue;
            size_t row = (size_t)ci * R->G + g;
            if (per_corr && first) mr_rep_tex_str(t.fp, r->corr[ci]);
            if (per_corr) fprintf(t.fp, " & ");
            first = 0;
            mr_rep_tex_str(t.fp, r->groups[R->g0 + g].label);
            if (mr_rep_collapsed(R, g)) fprintf(t.fp, "$^{\\dagger}$");
            for (int c = 0; c < nc; c++)
                cell_tex(t.fp, v + (row * nc + c) * 3, &cols[c], bold[row * nc + c]);
            fprintf(t.fp, " \\\\\n");
        }
    }
    fprintf(t.fp, "\\bottomrule\n\\end{tabular}\n\\end{table*}\n");
    R->info->n_tables++;
    return mr_textbuf_commit(&t, R->dir, name);
}

/* One table (summary: per_corr = 0; per corruption: 1) as .md and .tex. */
static int table(rep *R, int per_corr)
{
    col cols[MAX_COLS];
    int nc = per_corr ? corruption_cols(R, cols) : summary_cols(R, cols);
    int C = per_corr ? R->r->n_corr : 1, G = R->G;
    if (C == 0) return MR_OK;
    double *v = malloc(((size_t)C * G * nc * 3 + 1) * sizeof *v);
    char *bold = malloc((size_t)C * G * nc + 1);
    int st = v && bold ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int ci = 0; st == MR_OK && ci < C; ci++) {
        size_t at = (size_t)ci * G * nc;
        for (int g = 0; g < G; g++)
            for (int c = 0; c < nc; c++)
                col_value(R, &cols[c], g, per_corr ? ci : -1, v + (at + (size_t)g * nc + c) * 3);
        table_best(R, v + at * 3, G, cols, nc, bold + at); /* best per corruption */
    }
    char name[200];
    const char *kind = per_corr ? "corruptions" : "summary";
    snprintf(name, sizeof name, "table-%s-%s.md", R->m->name, kind);
    if (st == MR_OK) st = md_table(R, name, cols, nc, v, bold, per_corr);
    snprintf(name, sizeof name, "table-%s-%s.tex", R->m->name, kind);
    if (st == MR_OK) st = tex_table(R, name, cols, nc, v, bold, per_corr);
    free(v);
    free(bold);
    return st;
}

int mr_rep_tables(rep *R)
{
    MR_TRY(table(R, 0));
    return table(R, 1);
}
