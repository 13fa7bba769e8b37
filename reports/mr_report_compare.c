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
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "../io/mr_fs.h"
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
static int ref_of(const mr_results *r, int g);
int mr_rep_ref_group(const mr_results *r, int g) { return ref_of(r, g); }

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

/* The header row of a table with the comparison's columns: `first` (NULL: none), model
 * and router, then every column c with shown[c] (shown NULL: all) with its unit, and the
 * rule under it (the comparison, runs and seeds tables share it). */
static void columns_header(FILE *fp, int tex, int prim, const int *shown, const char *first)
{
    char h[160];
    if (tex)
        fprintf(fp, "%s%sModel & Router", first ? first : "", first ? " & " : "");
    else
        fprintf(fp, "| %s%smodel | router |", first ? first : "", first ? " | " : "");
    int nc = 0;
    for (int c = 0; c < NCMP; c++) {
        if (shown && !shown[c]) continue;
        nc++;
        header_unit(h, sizeof h, c, prim, tex);
        fprintf(fp, tex ? " & %s" : " %s |", h);
    }
    if (tex) {
        fprintf(fp, " \\\\\n\\midrule\n");
    } else {
        fprintf(fp, "\n|---|---|%s", first ? "---|" : "");
        for (int c = 0; c < nc; c++) fprintf(fp, "---:|");
        fputc('\n', fp);
    }
}

static void caption(rep *R, FILE *fp, int task, int any_test, int any_collapsed, int tex)
{
    const mr_results *r = R->r;
    double alpha = 1 - r->level;
    fprintf(fp, "%sEvery model and router@k of the run. Mean %s half-width of the %g%s "
                "bootstrap CI (percentile, over samples, B = %d); corrupted = mean over every "
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
    char name[64];
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
            fprintf(fp, "}\n\\toprule\n");
        }
        columns_header(fp, tex, prim, shown, NULL);
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
        for (int mi = 0; mi < R->r->n_models; mi++) {
            if (R->r->models[mi].task != t[i].task) continue;
            mr_textbuf nb; /* the model's momentum note, named after the model */
            if (mr_textbuf_open(&nb) != MR_OK) continue;
            mr_rep_momentum_note(nb.fp, R->r, mi);
            fflush(nb.fp);
            if (nb.len) fprintf(fp, "`%s` — %.*s", R->r->models[mi].name, (int)nb.len, nb.buf);
            mr_textbuf_discard(&nb);
        }
    }
}

int mr_report_compare_rows(rep *R)
{
    const mr_results *r = R->r;
    _Static_assert(MR_REPORT_NCOL == NCMP, "one column per comparison column");
    R->info->rows = calloc((size_t)r->n_groups + 1, sizeof *R->info->rows);
    MR_REQUIRE(R->info->rows, MR_ENOMEM, "out of memory");
    for (int g = 0; g < r->n_groups; g++) {
        if (!R->cmp[g].n) continue;
        mr_report_row *w = &R->info->rows[R->info->n_rows++];
        snprintf(w->model, sizeof w->model, "%s", r->models[r->groups[g].model].name);
        snprintf(w->router, sizeof w->router, "%s", r->groups[g].label);
        w->task = R->cmp[g].task;
        memcpy(w->v, R->cmp[g].v, sizeof w->v);
    }
    return MR_OK;
}

/* ------------------------------------------------------------------ several runs */

/* A run's config with what may differ between seeds of one experiment taken out: `seed`
 * and `out` lines, and the digits of model paths and checkpoints (model-seed1.h5 vs
 * model-seed2.h5). Runs with equal keys differ only by seed. */
static void seed_key(char *out, size_t cap, const char *config)
{
    size_t j = 0;
    const char *p = config;
    while (*p && j + 1 < cap) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        char key[64] = "";
        sscanf(line, " %63[A-Za-z_]", key);
        int paths = strcmp(key, "path") == 0 || strcmp(key, "checkpoint") == 0;
        if (strcmp(key, "seed") && strcmp(key, "out")) {
            for (size_t i = 0; line[i] && j + 2 < cap; i++) {
                if (paths && line[i] >= '0' && line[i] <= '9') {
                    while (line[i + 1] >= '0' && line[i + 1] <= '9') i++;
                    out[j++] = '#';
                } else {
                    out[j++] = line[i];
                }
            }
            out[j++] = '\n';
        }
        p += n + (e != NULL);
    }
    out[j] = '\0';
}

static const char *run_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    static char buf[4][256];
    static int at;
    char *b = buf[at++ % 4];
    snprintf(b, 256, "%.*s", (int)n, dir);
    const char *s = strrchr(b, '/');
    return s && s[1] ? s + 1 : b;
}

typedef struct run_rows {
    const char *name;
    int seed_group;
    mr_report_row *rows;
    int n;
} run_rows;

/* table-runs: every row of every run, mean ± CI half-width */
static int write_runs_table(const char *dir, const run_rows *rr, int n, int task, int tex)
{
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    int prim = task == MR_TASK_LM ? MR_M_BPC : MR_M_ACCURACY;
    if (tex)
        fprintf(fp, "%% runs table: written by moe-robust report; needs \\usepackage{booktabs}\n"
                    "\\begin{table*}[t]\n\\centering\n\\small\n\\caption{Every (run, model, "
                    "router@k): mean $\\pm$ half-width of each run's bootstrap CI (columns as in "
                    "each run's comparison table).}\n\\label{tab:runs}\n\\begin{tabular}{lll"
                    "rrrrrrrrr}\n\\toprule\n");
    columns_header(fp, tex, prim, NULL, tex ? "Run" : "run");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < rr[i].n; j++) {
            const mr_report_row *w = &rr[i].rows[j];
            if (w->task != task) continue;
            void (*str)(FILE *, const char *) = tex ? mr_rep_tex_str : mr_rep_md_str;
            fprintf(fp, tex ? "" : "| ");
            str(fp, rr[i].name);
            fprintf(fp, tex ? " & " : " | ");
            str(fp, w->model);
            fprintf(fp, tex ? " & " : " | ");
            str(fp, w->router);
            fprintf(fp, tex ? "" : " |");
            for (int c = 0; c < NCMP; c++)
                value(fp, w->v[c], mr_metric_table[col_metric(c, prim)].decimals, 0, 0, tex);
            fprintf(fp, tex ? " \\\\\n" : "\n");
        }
    if (tex) fprintf(fp, "\\bottomrule\n\\end{tabular}\n\\end{table*}\n");
    char name[64];
    snprintf(name, sizeof name, "table-runs%s.%s", task == MR_TASK_LM ? "-lm" : "", tex ? "tex" : "md");
    return mr_textbuf_commit(&t, dir, name);
}

/* table-seeds: per group of runs that differ only by seed and (model, router@k) present
 * in each, mean ± sample std over the runs of each column's mean; 0 rows: not written */
static int write_seeds_table(const char *dir, const run_rows *rr, int n, int task, int tex,
                             int *written)
{
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    int prim = task == MR_TASK_LM ? MR_M_BPC : MR_M_ACCURACY, rows = 0;
    if (tex)
        fprintf(fp, "%% seeds table: written by moe-robust report; needs \\usepackage{booktabs}\n"
                    "\\begin{table*}[t]\n\\centering\n\\small\n\\caption{Mean $\\pm$ standard "
                    "deviation over runs that differ only by seed (of each run's mean).}\n"
                    "\\label{tab:seeds}\n\\begin{tabular}{lll"
                    "rrrrrrrrr}\n\\toprule\n");
    columns_header(fp, tex, prim, NULL, tex ? "Runs" : "runs");
    for (int i = 0; i < n; i++) {
        int first = 1, members = 0;
        for (int h = 0; h < n; h++) {
            first &= !(rr[h].seed_group == rr[i].seed_group && h < i);
            members += rr[h].seed_group == rr[i].seed_group;
        }
        if (!first || members < 2) continue;
        for (int j = 0; j < rr[i].n; j++) {
            const mr_report_row *w = &rr[i].rows[j];
            if (w->task != task) continue;
            double sum[NCMP] = {0}, sq[NCMP] = {0};
            int cnt[NCMP] = {0}, m = 0;
            char names[512] = "";
            for (int h = 0; h < n; h++) {
                if (rr[h].seed_group != rr[i].seed_group) continue;
                for (int q = 0; q < rr[h].n; q++) {
                    const mr_report_row *x = &rr[h].rows[q];
                    if (strcmp(x->model, w->model) || strcmp(x->router, w->router)) continue;
                    m++;
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                             names[0] ? ", " : "", rr[h].name);
                    for (int c = 0; c < NCMP; c++)
                        if (isfinite(x->v[c][0])) {
                            sum[c] += x->v[c][0];
                            sq[c] += x->v[c][0] * x->v[c][0];
                            cnt[c]++;
                        }
                }
            }
            if (m < 2) continue;
            rows++;
            void (*str)(FILE *, const char *) = tex ? mr_rep_tex_str : mr_rep_md_str;
            fprintf(fp, tex ? "" : "| ");
            str(fp, names);
            fprintf(fp, tex ? " & " : " | ");
            str(fp, w->model);
            fprintf(fp, tex ? " & " : " | ");
            str(fp, w->router);
            fprintf(fp, tex ? "" : " |");
            for (int c = 0; c < NCMP; c++) {
                double mean = cnt[c] ? sum[c] / cnt[c] : NAN;
                double var = cnt[c] > 1 ? (sq[c] - cnt[c] * mean * mean) / (cnt[c] - 1) : NAN;
                double sd = isfinite(var) ? sqrt(var > 0 ? var : 0) : NAN;
                double v3[3] = {mean, mean - sd, mean + sd}; /* printed as mean ± sd */
                value(fp, v3, mr_metric_table[col_metric(c, prim)].decimals, 0, 0, tex);
            }
            fprintf(fp, tex ? " \\\\\n" : "\n");
        }
    }
    if (tex) fprintf(fp, "\\bottomrule\n\\end{tabular}\n\\end{table*}\n");
    *written = rows > 0;
    if (!rows) {
        mr_textbuf_discard(&t);
        return MR_OK;
    }
    char name[64];
    snprintf(name, sizeof name, "table-seeds%s.%s", task == MR_TASK_LM ? "-lm" : "", tex ? "tex" : "md");
    return mr_textbuf_commit(&t, dir, name);
}

int mr_report_runs(const char *const *dirs, int n, const mr_report_opts *o, mr_report_info *info)
{
    memset(info, 0, sizeof *info);
    MR_REQUIRE(o->out, MR_EINPUT, "report: several runs need --out OUTDIR");
    snprintf(info->out, sizeof info->out, "%s", o->out);
    MR_TRY(mr_fs_check_own_dir(o->out, ".moe-robust-report", "report.md", "moe-robust report"));
    MR_TRY(mr_mkdir_p(o->out));
    char marker[1200];
    snprintf(marker, sizeof marker, "%s/.moe-robust-report", o->out);
    MR_TRY(mr_file_write(marker, "", 0));
    run_rows *rr = calloc((size_t)n + 1, sizeof *rr);
    char (*keys)[16384] = calloc((size_t)n + 1, sizeof *keys);
    char (*sub)[1300] = calloc((size_t)n + 1, sizeof *sub);
    int st = rr && keys && sub ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < n; i++) {
        mr_results r;
        if ((st = mr_results_load(&r, dirs[i])) != MR_OK) break;
        rr[i].name = run_name(dirs[i]);
        snprintf(sub[i], sizeof sub[i], "%s/run-%d-%s", o->out, i + 1, rr[i].name);
        seed_key(keys[i], sizeof keys[i], r.config ? r.config : "");
        rr[i].seed_group = i;
        for (int h = 0; h < i; h++)
            if (strcmp(keys[h], keys[i]) == 0) {
                rr[i].seed_group = rr[h].seed_group;
                break;
            }
        mr_report_opts so = *o;
        so.out = sub[i];
        mr_report_info si;
        st = mr_report_write(&r, &so, &si);
        mr_results_free(&r);
        rr[i].rows = si.rows;
        rr[i].n = si.n_rows;
        info->n_figures += si.n_figures;
        info->n_rendered += si.n_rendered;
        info->n_tables += si.n_tables;
        info->gnuplot_missing |= si.gnuplot_missing;
        if (st == MR_OK && si.gnuplot_missing) st = MR_OK;
    }
    int seeds[2] = {0, 0};
    for (int task = 0; st == MR_OK && task < 2; task++) {
        int tk = task ? MR_TASK_LM : MR_TASK_CLASSIFY, any = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < rr[i].n; j++) any |= rr[i].rows[j].task == tk;
        if (!any) continue;
        for (int tex = 0; st == MR_OK && tex < 2; tex++) {
            st = write_runs_table(o->out, rr, n, tk, tex);
            if (st == MR_OK) st = write_seeds_table(o->out, rr, n, tk, tex, &seeds[task]);
            if (st == MR_OK) info->n_tables += 1 + seeds[task];
        }
    }
    if (st == MR_OK) {
        mr_textbuf t;
        st = mr_textbuf_open(&t);
        if (st == MR_OK) {
            FILE *fp = t.fp;
            fprintf(fp, "# moe-robust report of %d runs\n\n", n);
            for (int i = 0; i < n; i++) {
                char d[1100];
                mr_rep_clean_str(d, sizeof d, dirs[i]);
                fprintf(fp, "- run `%s` (`%s`): [its report](run-%d-%s/report.md)\n", rr[i].name, d,
                        i + 1, rr[i].name);
            }
            fprintf(fp, "\nRuns whose configs differ only by seed (the `seed` lines and the digits "
                        "of model paths and checkpoints): ");
            int groups = 0;
            for (int i = 0; i < n; i++) {
                int members = 0, first = 1;
                for (int h = 0; h < n; h++) {
                    members += rr[h].seed_group == rr[i].seed_group;
                    first &= !(h < i && rr[h].seed_group == rr[i].seed_group);
                }
                if (!first || members < 2) continue;
                fprintf(fp, "%s{", groups++ ? "; " : "");
                for (int h = 0, k = 0; h < n; h++)
                    if (rr[h].seed_group == rr[i].seed_group) fprintf(fp, "%s%s", k++ ? ", " : "", rr[h].name);
                fprintf(fp, "}");
            }
            fprintf(fp, "%s.\n\n", groups ? "" : "none");
            static const char *const sfx[2] = {"", "-lm"};
            static const char *const what[2] = {"classifiers", "language models"};
            for (int task = 0; task < 2; task++) {
                char name[64];
                snprintf(name, sizeof name, "table-runs%s.md", sfx[task]);
                char path[1400];
                snprintf(path, sizeof path, "%s/%s", o->out, name);
                if (access(path, R_OK) != 0) continue;
                fprintf(fp, "## Every run side by side (%s)\n\nOne row per (run, model, router@k); "
                            "mean ± half-width of the run's bootstrap CI.\n\n", what[task]);
                mr_rep_append_file(fp, o->out, name);
                fprintf(fp, "\nLaTeX: [table-runs%s.tex](table-runs%s.tex)\n\n", sfx[task], sfx[task]);
                if (!seeds[task]) continue;
                fprintf(fp, "## Over seeds (%s)\n\nMean ± standard deviation over the runs that "
                            "differ only by seed, of each run's mean.\n\n", what[task]);
                snprintf(name, sizeof name, "table-seeds%s.md", sfx[task]);
                mr_rep_append_file(fp, o->out, name);
                fprintf(fp, "\nLaTeX: [table-seeds%s.tex](table-seeds%s.tex)\n\n", sfx[task], sfx[task]);
            }
            st = mr_textbuf_commit(&t, o->out, "report.md");
        }
    }
    for (int i = 0; rr && i < n; i++) free(rr[i].rows);
    free(rr);
    free(keys);
    free(sub);
    return st;
}
