/* The comparison table of a report (docs/reports.md, "Comparison"): every (model,
 * router@k) of the run side by side, training-free router swaps and trained variants
 * together, in the columns router papers use — clean and corrupted accuracy (LMs: bits
 * per character), mCE and relative mCE, top-1 routing flips and prediction flips under
 * corruption, clean routing entropy, top-1 flips between consecutive checkpoints, clean
 * load CV — each as mean ± half-width of its bootstrap CI, in Markdown and LaTeX
 * (booktabs, no siunitx).
 *
 * Bold marks the best value of a column only where that means something: a column with a
 * better direction (not entropy), at least two rows with a value, and never a collapsed
 * row (clean error, or bpc, more than twice its reference's: a router that breaks the
 * model must not win a relative column). A star marks a value that differs from the
 * reference router's row (the config's `reference`, same k where it runs, else on the
 * first model running it — the rows summary.json pairs) at the run's level after Holm's
 * correction across the rows of its column: McNemar's exact test for clean accuracy,
 * a paired bootstrap of the per-sample differences (the suite's paired test,
 * mr_stats_paired_test) for the other columns with per-sample values. mCE, relative mCE
 * and load CV have no per-sample values and no test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../metrics/mr_stats.h"
#include "mr_report_impl.h"

/* the metric whose formatting (scale, decimals, direction, labels) each column uses */
static int col_metric(int c, int prim)
{
    static const int id[NCMP] = {-1, -1, MR_M_MCE, MR_M_RELATIVE_MCE, MR_M_FLIP_TOP1,
                                 MR_M_PRED_FLIP, MR_M_ENTROPY, MR_M_FLIP_TOP1, MR_M_LOAD_CV};
    return id[c] < 0 ? prim : id[c];
}

static const char *const col_md[NCMP] = {"clean", "corrupted", "mCE", "rel. mCE",
                                         "flip top-1", "pred. flip", "entropy",
                                         "ckpt flip top-1", "load CV"};
static const char *const col_tex[NCMP] = {"Clean", "Corr.", "mCE", "Rel.\\ mCE",
                                          "Flip top-1", "Pred.\\ flip", "Entropy",
                                          "Ckpt.\\ flip", "Load CV"};

static int keep_vec(rep *R, cmp_row *row, int c, const double *src, double div)
{
    if (!src || !(div > 0)) return MR_OK;
    row->vec[c] = malloc(R->n * sizeof(double) + 1);
    MR_REQUIRE(row->vec[c], MR_ENOMEM, "out of memory");
    for (size_t i = 0; i < R->n; i++) row->vec[c][i] = src[i] / div;
    return MR_OK;
}

#define VEC(base, id) ((base) + (size_t)(id) * R->n)

int mr_report_compare_keep(rep *R, int gl, const double *cq, const double *all,
                           const double *fl)
{
    cmp_row *row = &R->cmp[R->g0 + gl];
    const gagg *a = &R->agg[gl];
    row->n = R->n;
    row->task = R->m->task;
    row->prim = R->prim;
    if (a->has_clean) {
        MR_TRY(keep_vec(R, row, CMP_CLEAN, VEC(cq, R->prim), 1.0));
        MR_TRY(keep_vec(R, row, CMP_ENT, VEC(cq, MR_M_ENTROPY), 1.0));
    }
    if (a->all_n) {
        MR_TRY(keep_vec(R, row, CMP_CORR, VEC(all, R->prim), a->all_n));
        MR_TRY(keep_vec(R, row, CMP_FLIP1, VEC(all, MR_M_FLIP_TOP1), a->all_n));
        MR_TRY(keep_vec(R, row, CMP_PRED, VEC(all, MR_M_PRED_FLIP), a->all_n));
    }
    if (a->fluct_n) MR_TRY(keep_vec(R, row, CMP_FLUCT, VEC(fl, MR_M_FLIP_TOP1), a->fluct_n));
    return MR_OK;
}

/* the column values of the current model's groups, after their CIs are computed */
static void fill_values(rep *R)
{
    const mr_results *r = R->r;
    for (int gl = 0; gl < R->G; gl++) {
        cmp_row *row = &R->cmp[R->g0 + gl];
        const gagg *a = &R->agg[gl];
        const mr_res_group *gr = &r->groups[R->g0 + gl];
        for (int c = 0; c < NCMP; c++) row->v[c][0] = row->v[c][1] = row->v[c][2] = NAN;
        memcpy(row->v[CMP_CLEAN], a->clean[R->prim], sizeof row->v[0]);
        memcpy(row->v[CMP_CORR], a->all[R->prim], sizeof row->v[0]);
        memcpy(row->v[CMP_FLIP1], a->all[MR_M_FLIP_TOP1], sizeof row->v[0]);
        memcpy(row->v[CMP_PRED], a->all[MR_M_PRED_FLIP], sizeof row->v[0]);
        memcpy(row->v[CMP_ENT], a->clean[MR_M_ENTROPY], sizeof row->v[0]);
        memcpy(row->v[CMP_FLUCT], a->fluct[MR_M_FLIP_TOP1], sizeof row->v[0]);
        if (gr->has_ce && a->all_n) {
            row->v[CMP_MCE][0] = mr_metric_table[MR_M_MCE].scale * gr->value[MR_M_MCE][0];
            row->v[CMP_RMCE][0] =
                mr_metric_table[MR_M_RELATIVE_MCE].scale * gr->value[MR_M_RELATIVE_MCE][0];
        }
        /* load CV of the clean pass: mean over MoE layers (no per-sample value, no CI) */
        const double *cv = gr->clean >= 0 ? r->cells[gr->clean].value[MR_M_LOAD_CV] : NULL;
        if (cv && R->m->n_moe > 0) {
            double s = 0;
            for (int l = 0; l < R->m->n_moe; l++) s += cv[l];
            row->v[CMP_LOADCV][0] = s / R->m->n_moe;
        }
    }
}

void mr_report_compare_values(rep *R) { fill_values(R); }

void mr_report_compare_free(rep *R)
{
    for (int g = 0; R->cmp && g < R->r->n_groups; g++)
        for (int c = 0; c < NCMP; c++) free(R->cmp[g].vec[c]);
    free(R->cmp);
    R->cmp = NULL;
}

/* ------------------------------------------------------------------ reference, tests */

/* The reference row of group g: its results reference (same model), else the reference
 * router on the first model running it (same k if it has one), else -1. */
static int ref_of(const mr_results *r, int g)
{
    if (r->groups[g].ref >= 0) return r->groups[g].ref;
    int any = -1;
    for (int h = 0; h < r->n_groups; h++) {
        if (strcmp(r->groups[h].router, r->reference)) continue;
        if (r->groups[h].k == r->groups[g].k) return h;
        if (any < 0) any = h;
    }
    return any;
}

/* Holm's step-down adjustment of p[m] in place (NaN: no test, left out). */
static void holm(double *p, int m)
{
    int *ix = malloc((size_t)(m + 1) * sizeof *ix), k = 0;
    if (!ix) return;
    for (int i = 0; i < m; i++)
        if (isfinite(p[i])) ix[k++] = i;
    for (int i = 1; i < k; i++) /* insertion sort by p, ascending */
        for (int j = i; j > 0 && p[ix[j]] < p[ix[j - 1]]; j--) {
            int t = ix[j];
            ix[j] = ix[j - 1];
            ix[j - 1] = t;
        }
    double run = 0.0;
    for (int i = 0; i < k; i++) {
        double adj = fmin(1.0, (double)(k - i) * p[ix[i]]);
        run = fmax(run, adj);
        p[ix[i]] = run;
    }
    free(ix);
}

/* p-values of every row's column c against its reference row (NaN: none) */
static int column_tests(rep *R, const int *rows, int nr, int c, double *p)
{
    const mr_results *r = R->r;
    for (int i = 0; i < nr; i++) {
        int g = rows[i], f = ref_of(r, g);
        const cmp_row *a = &R->cmp[g];
        p[i] = NAN;
        if (f < 0 || f == g || !a->vec[c] || !R->cmp[f].vec[c] || R->cmp[f].n != a->n)
            continue;
        const double *x = a->vec[c], *y = R->cmp[f].vec[c];
        if (c == CMP_CLEAN && a->task == MR_TASK_CLASSIFY) {
            long only_a = 0, only_b = 0; /* per-sample correctness in %: 0 or 100 */
            for (size_t s = 0; s < a->n; s++) {
                only_a += x[s] > 50 && y[s] < 50;
                only_b += x[s] < 50 && y[s] > 50;
            }
            p[i] = mr_stats_mcnemar_exact(only_a, only_b);
            continue;
        }
        if (r->bootstrap < 2) continue;
        mr_paired pt;
        char purpose[300];
        snprintf(purpose, sizeof purpose, "report/compare/%d/%s/%s", c,
                 r->models[r->groups[g].model].name, r->groups[g].label);
        MR_TRY(mr_stats_paired_test(&pt, x, y, a->n, 1, r->bootstrap, r->level, r->seed,
                                    purpose, NULL));
        p[i] = pt.p_value;
    }
    holm(p, nr);
    return MR_OK;
}

/* ------------------------------------------------------------------ the table */

/* clean error of a row, larger = worse: 100 - accuracy (%) or bpc */
static double clean_error(const cmp_row *w)
{
    double v = w->v[CMP_CLEAN][0];
    return w->task == MR_TASK_LM ? v : 100.0 - v;
}

static int collapsed(rep *R, int g)
{
    int f = ref_of(R->r, g);
    if (f < 0 || f == g) return 0;
    double e = clean_error(&R->cmp[g]), er = clean_error(&R->cmp[f]);
    return isfinite(e) && isfinite(er) && er > 0 && e > 2.0 * er;
}

/* load CV of a row that routes every token to every expert (k = E) is 0 by construction:
 * no "best" there */
static int all_experts(rep *R, int g, int c)
{
    const mr_res_group *gr = &R->r->groups[g];
    return c == CMP_LOADCV && gr->k >= R->r->models[gr->model].E;
}

static int better_of(int c, int prim)
{
    if (c == CMP_ENT) return MR_BETTER_EITHER;
    return mr_metric_table[col_metric(c, prim)].better;
}

/* bold[i * NCMP + c]: the best displayed value of column c among the rows that may win */
static void best(rep *R, const int *rows, int nr, const int *shown, char *bold)
{
    memset(bold, 0, (size_t)nr * NCMP);
    int prim = R->cmp[rows[0]].prim;
    for (int c = 0; c < NCMP; c++) {
        int dir = better_of(c, prim), dec = mr_metric_table[col_metric(c, prim)].decimals;
        if (!shown[c] || dir == MR_BETTER_EITHER) continue;
        double b = NAN;
        int cand = 0;
        for (int i = 0; i < nr; i++) {
            double x = R->cmp[rows[i]].v[c][0];
            if (!isfinite(x) || collapsed(R, rows[i]) || all_experts(R, rows[i], c)) continue;
            char s[64];
            snprintf(s, sizeof s, "%.*f", dec, x);
            x = atof(s); /* what is displayed: ties are all bold */
            cand++;
            if (!isfinite(b) || (dir == MR_BETTER_HIGHER ? x > b : x < b)) b = x;
        }
        if (cand < 2) continue;
        for (int i = 0; i < nr; i++) {
            double x = R->cmp[rows[i]].v[c][0];
            char s[64];
            snprintf(s, sizeof s, "%.*f", dec, x);
            bold[i * NCMP + c] = isfinite(x) && !collapsed(R, rows[i]) &&
                                 !all_experts(R, rows[i], c) && atof(s) == b;
        }
    }
}

static void value(FILE *fp, const double *v, int dec, int bold, int star, int tex)
{
    char m[64], h[64];
    mr_report_fmt(m, sizeof m, v[0], dec);
    int ci = isfinite(v[0]) && isfinite(v[1]) && isfinite(v[2]) && v[2] > v[1];
    if (ci) mr_report_fmt(h, sizeof h, (v[2] - v[1]) / 2, dec);
    if (tex) {
        if (!isfinite(v[0])) {
            fprintf(fp, " & --");
            return;
        }
        fprintf(fp, " & %s%s%s", bold ? "\\textbf{" : "", m, bold ? "}" : "");
        if (ci) fprintf(fp, " $\\pm$ %s", h);
        if (star) fprintf(fp, "$^{*}$");
        return;
    }
    fprintf(fp, " %s%s%s", bold ? "**" : "", isfinite(v[0]) ? m : "—", bold ? "**" : "");
    if (ci) fprintf(fp, " ± %s", h);
    fprintf(fp, "%s |", star ? " \\*" : "");
}

static void header_unit(char *buf, size_t cap, int c, int prim, int tex)
{
    const mr_metric *m = &mr_metric_table[col_metric(c, prim)];
    const char *u = m->display_unit;
    const char *name = tex ? col_tex[c] : col_md[c];
    if (c <= CMP_CORR) {
        if (tex)
            snprintf(buf, cap, "%s %s%s%s%s", name, m->tex, u[0] ? " (" : "",
                     strcmp(u, "%") ? u : "\\%", u[0] ? ")" : "");
        else
            snprintf(buf, cap, "%s %s%s%s%s", name, m->label, u[0] ? " (" : "", u, u[0] ? ")" : "");
    } else if (u[0]) {
        snprintf(buf, cap, "%s (%s)", name, tex && !strcmp(u, "%") ? "\\%" : u);
    } else {
        snprintf(buf, cap, "%s", name);
    }
}

static void caption(rep *R, FILE *fp, int task, int any_test, int any_collapsed, int tex)
{
    const mr_results *r = R->r;
    double alpha = 1 - r->level;
    fprintf(fp, "%sEvery model and router@k of the run. Mean %s half-width of the %g%s "
                "percentile bootstrap CI over samples (B = %d); corrupted = mean over every "
                "corruption and severity; flips compare corrupted with clean input, ckpt flips "
                "consecutive checkpoints on clean data; mCE against ",
            tex ? "" : "", tex ? "$\\pm$" : "±", 100 * r->level, tex ? "\\%" : "%", r->bootstrap);
    if (tex) {
        fprintf(fp, "\\texttt{");
        mr_rep_tex_str(fp, r->reference);
        fprintf(fp, "}");
    } else {
        fprintf(fp, "`%s`", r->reference);
    }
    fprintf(fp, " (100 = as robust); per-layer metrics are means over MoE layers. Bold: best of "
                "a column with a better direction (not entropy) and at least two rows (load CV: "
                "not k = E, 0 by construction)");
    if (any_collapsed)
        fprintf(fp, "; rows marked %s collapsed (clean %s more than twice the reference's) "
                    "never count as best",
                tex ? "$\\dagger$" : "†", task == MR_TASK_LM ? "bpc" : "error");
    fprintf(fp, ". ");
    if (any_test)
        fprintf(fp, "%s: differs from the reference router's row at %sp < %g%s after Holm's "
                    "correction across the rows of its column (%s; paired bootstrap of the "
                    "per-sample differences for the other columns with per-sample values; "
                    "mCE, relative mCE and load CV untested).",
                tex ? "$^{*}$" : "\\*", tex ? "$" : "", alpha, tex ? "$" : "",
                task == MR_TASK_CLASSIFY ? "McNemar's exact test for clean accuracy"
                                         : "paired bootstrap for clean bpc");
    else
        fprintf(fp, "No significance markers: no row has a reference row on the same samples%s.",
                r->bootstrap < 2 ? " or the run has no bootstrap" : "");
}

static void row_label(FILE *fp, rep *R, int g, int tex)
{
    const mr_results *r = R->r;
    const mr_res_group *gr = &r->groups[g];
    void (*str)(FILE *, const char *) = tex ? mr_rep_tex_str : mr_rep_md_str;
    str(fp, r->models[gr->model].name);
    fprintf(fp, tex ? " & " : " | ");
    str(fp, gr->label);
    int f = ref_of(r, g);
    if (f == g) fprintf(fp, tex ? " (ref.)" : " (ref.)");
    if (collapsed(R, g)) fprintf(fp, tex ? "$^{\\dagger}$" : " †");
}

static int write_task(rep *R, int task)
{
    const mr_results *r = R->r;
    int *rows = malloc(((size_t)r->n_groups + 1) * sizeof *rows), nr = 0;
    MR_REQUIRE(rows, MR_ENOMEM, "out of memory");
    for (int g = 0; g < r->n_groups; g++)
        if (R->cmp[g].n && R->cmp[g].task == task) rows[nr++] = g;
    if (!nr) {
        free(rows);
        return MR_OK;
    }
    int prim = R->cmp[rows[0]].prim, shown[NCMP] = {0}, any_test = 0, any_coll = 0;
    for (int i = 0; i < nr; i++) {
        for (int c = 0; c < NCMP; c++) shown[c] |= isfinite(R->cmp[rows[i]].v[c][0]);
        any_coll |= collapsed(R, rows[i]);
    }
    double *p = malloc(((size_t)nr * NCMP + 1) * sizeof *p);
    char *bold = malloc((size_t)nr * NCMP + 1), *star = malloc((size_t)nr * NCMP + 1);
    double *pc = malloc(((size_t)nr + 1) * sizeof *pc);
    int st = p && bold && star && pc ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int c = 0; st == MR_OK && c < NCMP; c++) {
        st = column_tests(R, rows, nr, c, pc);
        for (int i = 0; i < nr; i++) {
            star[i * NCMP + c] = shown[c] && isfinite(pc[i]) && pc[i] < 1 - r->level;
            any_test |= shown[c] && isfinite(pc[i]);
        }
    }
    if (st == MR_OK) best(R, rows, nr, shown, bold);
    const char *stem = task == MR_TASK_LM ? "table-comparison-lm" : "table-comparison";
    char name[64], h[160];
    mr_textbuf t;
    for (int tex = 0; st == MR_OK && tex < 2; tex++) {
        if ((st = mr_textbuf_open(&t)) != MR_OK) break;
        FILE *fp = t.fp;
        if (tex) {
            fprintf(fp, "%% comparison table: written by moe-robust report; needs "
                        "\\usepackage{booktabs}\n\\begin{table*}[t]\n\\centering\n\\small\n"
                        "\\caption{");
            caption(R, fp, task, any_test, any_coll, 1);
            fprintf(fp, "}\n\\label{tab:%s}\n\\begin{tabular}{ll", stem);
            for (int c = 0; c < NCMP; c++)
                if (shown[c]) fputc('r', fp);
            fprintf(fp, "}\n\\toprule\nModel & Router");
        } else {
            fprintf(fp, "| model | router |");
        }
        for (int c = 0; c < NCMP; c++) {
            if (!shown[c]) continue;
            header_unit(h, sizeof h, c, prim, tex);
            fprintf(fp, tex ? " & %s" : " %s |", h);
        }
        if (tex) {
            fprintf(fp, " \\\\\n\\midrule\n");
        } else {
            fprintf(fp, "\n|---|---|");
            for (int c = 0; c < NCMP; c++)
                if (shown[c]) fprintf(fp, "---:|");
            fputc('\n', fp);
        }
        for (int i = 0; i < nr; i++) {
            fprintf(fp, tex ? "" : "| ");
            row_label(fp, R, rows[i], tex);
            fprintf(fp, tex ? "" : " |");
            for (int c = 0; c < NCMP; c++)
                if (shown[c])
                    value(fp, R->cmp[rows[i]].v[c], mr_metric_table[col_metric(c, prim)].decimals,
                          bold[i * NCMP + c], star[i * NCMP + c], tex);
            fprintf(fp, tex ? " \\\\\n" : "\n");
        }
        if (tex) {
            fprintf(fp, "\\bottomrule\n\\end{tabular}\n\\end{table*}\n");
        } else {
            fputc('\n', fp);
            caption(R, fp, task, any_test, any_coll, 0);
            fputc('\n', fp);
        }
        snprintf(name, sizeof name, "%s.%s", stem, tex ? "tex" : "md");
        st = mr_textbuf_commit(&t, R->dir, name);
        if (st == MR_OK) R->info->n_tables++;
    }
    free(rows);
    free(p);
    free(bold);
    free(star);
    free(pc);
    return st;
}

int mr_report_compare(rep *R)
{
    MR_TRY(write_task(R, MR_TASK_CLASSIFY));
    return write_task(R, MR_TASK_LM);
}

void mr_report_compare_index(rep *R, FILE *fp)
{
    static const struct {
        int task;
        const char *stem, *what;
    } t[] = {{MR_TASK_CLASSIFY, "table-comparison", "classifiers"},
             {MR_TASK_LM, "table-comparison-lm", "language models"}};
    int any = 0;
    for (int g = 0; g < R->r->n_groups; g++) any |= R->cmp && R->cmp[g].n;
    if (!any) return;
    fprintf(fp, "## Comparison\n\n");
    for (size_t i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.md", t[i].stem);
        int has = 0;
        for (int g = 0; g < R->r->n_groups; g++) has |= R->cmp[g].n && R->cmp[g].task == t[i].task;
        if (!has) continue;
        fprintf(fp, "### All %s\n\n", t[i].what);
        mr_rep_append_file(fp, R->dir, name);
        fprintf(fp, "\nLaTeX: [%s.tex](%s.tex)\n\n", t[i].stem, t[i].stem);
    }
}
