/* The compression figures of `moe-robust report` (docs/reports.md, docs/compression.md):
 * for a model that the run also evaluates compressed (`[model NAME] compress = METHOD:K`
 * on the same path), accuracy and routing stability against the experts kept per MoE
 * block, one line per method (and router@k), every line ending at the original model's
 * E. The values are the per-model aggregates of mr_report.c (R->summary: bootstrap CIs
 * over samples), so the figures and the per-model tables agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

#define MAX_LINES 64
#define MAX_PTS 64

/* one family: a source model path, its original (if evaluated) and its compressions */
typedef struct cline {
    char method[MR_RES_NAME];
    char label[MR_RES_NAME + 16];
    int n;
    int group[MAX_PTS];  /* global group index of each point, by increasing experts */
    int experts[MAX_PTS];
} cline;

typedef struct family {
    const char *path;
    int orig;        /* model index of the original, -1 if the run has none */
    int first;       /* the first compressed model */
    char name[MR_RES_NAME];
    int nl;
    cline lines[MAX_LINES];
    int one_label;   /* every line has the same router@k: titles are the methods */
    int any_corr;
    int kmin, kmax;
} family;

static const char *const PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#000000", "#882255", "#56B4E9", "#117733", "#999999"};
static const int POINTS[] = {7, 5, 9, 11, 13, 4, 6, 8, 10, 12};

static void add_point(cline *l, int group, int experts)
{
    if (l->n == MAX_PTS) return;
    int i = l->n++;
    while (i > 0 && l->experts[i - 1] > experts) {
        l->experts[i] = l->experts[i - 1];
        l->group[i] = l->group[i - 1];
        i--;
    }
    l->experts[i] = experts;
    l->group[i] = group;
}

/* the lines of family f: (method, router@k) of every compressed model's groups */
static void build_family(rep *R, family *f)
{
    const mr_results *r = R->r;
    f->nl = 0;
    f->kmin = 1 << 30;
    f->kmax = 0;
    for (int mi = 0; mi < r->n_models; mi++) {
        const mr_res_model *m = &r->models[mi];
        if (!m->compress[0] || strcmp(m->path, f->path) != 0) continue;
        for (int g = m->first_group; g < m->first_group + m->n_groups; g++) {
            const char *label = r->groups[g].label;
            int l = 0;
            while (l < f->nl && (strcmp(f->lines[l].method, m->compress) || strcmp(f->lines[l].label, label)))
                l++;
            if (l == f->nl) {
                if (f->nl == MAX_LINES) continue;
                cline *nl = &f->lines[f->nl++];
                memset(nl, 0, sizeof *nl);
                snprintf(nl->method, sizeof nl->method, "%s", m->compress);
                snprintf(nl->label, sizeof nl->label, "%s", label);
            }
            add_point(&f->lines[l], g, m->E);
            if (m->E < f->kmin) f->kmin = m->E;
            if (m->E > f->kmax) f->kmax = m->E;
        }
    }
    f->one_label = 1;
    for (int l = 0; l < f->nl; l++) {
        cline *ln = &f->lines[l];
        f->one_label &= strcmp(ln->label, f->lines[0].label) == 0;
        if (f->orig < 0) continue;
        /* every line ends at the original under the same router@k */
        const mr_res_model *o = &r->models[f->orig];
        for (int g = o->first_group; g < o->first_group + o->n_groups; g++)
            if (strcmp(r->groups[g].label, ln->label) == 0) {
                add_point(ln, g, o->E);
                if (o->E > f->kmax) f->kmax = o->E;
            }
    }
    f->any_corr = 0;
    for (int l = 0; l < f->nl; l++)
        for (int i = 0; i < f->lines[l].n; i++) f->any_corr |= isfinite(R->summary[f->lines[l].group[i]][SUM_CORR][0]);
}

static void line_title(const family *f, const cline *l, char *buf, size_t cap)
{
    if (f->one_label)
        snprintf(buf, cap, "%s", l->method);
    else
        snprintf(buf, cap, "%s %s", l->method, l->label);
}

/* the data of both figures: one block per line, a row per point */
static void write_dat(rep *R, const family *f, FILE *fp, const char *name, const char *what)
{
    const mr_results *r = R->r;
    mr_rep_dat_header(R, fp, name, what);
    fprintf(fp, "# One block per line (index i = title[i+1] in the .gp), rows by experts kept; the\n"
                "# original model (no compression) is the row at its own E. Each value: mean ci_lo ci_hi\n"
                "# (%g%% bootstrap CI over samples; NaN if not run). Columns:\n"
                "# 1 experts  2-4 clean %s  5-7 mean over corruptions  8-10 degradation\n"
                "# 11-13 clean routing entropy (nats, mean over MoE layers)  14-16 top-1 expert flip (%%)\n"
                "# 17-19 top-k set flip (%%)  20-22 prediction flip (%%)   (flips: clean vs corrupted input)\n",
            100 * r->level, mr_rep_prim_label(R));
    for (int l = 0; l < f->nl; l++) {
        const cline *ln = &f->lines[l];
        char t[200], mn[MR_RES_NAME + 8];
        line_title(f, ln, t, sizeof t);
        mr_rep_clean_str(mn, sizeof mn, t);
        fprintf(fp, "%s# block %d: %s\n", l ? "\n\n" : "", l, mn);
        for (int i = 0; i < ln->n; i++) {
            const double (*v)[3] = R->summary[ln->group[i]];
            mr_rep_clean_str(mn, sizeof mn, r->models[r->groups[ln->group[i]].model].name);
            fprintf(fp, "# model %s\n%d", mn, ln->experts[i]);
            for (int k = 0; k < NSUM; k++) fprintf(fp, " %.8g %.8g %.8g", v[k][0], v[k][1], v[k][2]);
            fprintf(fp, "\n");
        }
    }
}

/* titles and line styles: one colour per method, one dash type per router@k */
static void gp_lines(const family *f, FILE *fp)
{
    char methods[MAX_LINES][MR_RES_NAME], labels[MAX_LINES][MR_RES_NAME + 16];
    int nm = 0, nlab = 0;
    fprintf(fp, "# one line per method%s: colour per method, dash type per router@k\n",
            f->one_label ? "" : " and router@k");
    fprintf(fp, "array title[%d] = [", f->nl);
    for (int l = 0; l < f->nl; l++) {
        char t[200];
        line_title(f, &f->lines[l], t, sizeof t);
        if (l) fputs(", ", fp);
        mr_rep_gp_str(fp, t);
    }
    fprintf(fp, "]\n");
    for (int l = 0; l < f->nl; l++) {
        const cline *ln = &f->lines[l];
        int m = 0, b = 0;
        while (m < nm && strcmp(methods[m], ln->method)) m++;
        if (m == nm) snprintf(methods[nm++], sizeof methods[0], "%s", ln->method);
        while (b < nlab && strcmp(labels[b], ln->label)) b++;
        if (b == nlab) snprintf(labels[nlab++], sizeof labels[0], "%s", ln->label);
        fprintf(fp, "set style line %d lc rgb \"%s\" dt %d lw 2 pt %d ps 1.0\n", l + 1, PALETTE[m % 10],
                1 + b % 5, POINTS[m % 10]);
    }
    fprintf(fp, "NL = %d\n", f->nl);
    /* lines side by side at a shared x so their error bars do not hide each other */
    fprintf(fp, "kx(k, i) = k + 0.05 * (i - (NL + 1) / 2.0)\n");
    fprintf(fp, "set xrange [%g:%g]\nset xtics (", f->kmin - 0.6, f->kmax + 0.6);
    int first = 1;
    for (int k = f->kmin; k <= f->kmax; k++) {
        int used = 0;
        for (int l = 0; l < f->nl && !used; l++)
            for (int i = 0; i < f->lines[l].n; i++) used |= f->lines[l].experts[i] == k;
        if (!used) continue;
        fprintf(fp, "%s\"%d\" %d", first ? "" : ", ", k, k);
        first = 0;
    }
    fprintf(fp, ")\nset xlabel \"experts kept per MoE block\"\n");
}

/* the y range over column c (mean, lo, hi) of every point */
static void yrange(rep *R, const family *f, int k, double *lo, double *hi)
{
    *lo = *hi = NAN;
    for (int l = 0; l < f->nl; l++)
        for (int i = 0; i < f->lines[l].n; i++)
            for (int j = 0; j < 3; j++) mr_rep_minmax(lo, hi, R->summary[f->lines[l].group[i]][k][j]);
    mr_rep_range_pad(lo, hi);
}

/* panels: (SUM_* index, title, y label); the key below them (at the foot of the figure);
 * flip rates from 0 */
static void gp_panels(rep *R, const family *f, FILE *fp, const int *ks, const char *const *titles,
                      const char *const *ylabels, int np, int ncol)
{
    int nrow = (np + ncol - 1) / ncol;
    if (np > 1)
        fprintf(fp, "set multiplot layout %d,%d margins 0.07,0.97,%.3f,0.92 spacing 0.08,0.12\n", nrow,
                ncol, (nrow > 1 ? 0.08 : 0.13) + (nrow > 1 ? 0.035 : 0.06) * ((f->nl + 3) / 4));
    for (int p = 0; p < np; p++) {
        double lo, hi;
        yrange(R, f, ks[p], &lo, &hi);
        if (ks[p] >= SUM_FLIP1 && lo > 0) lo = 0; /* rates: a zero-based axis */
        int col = 2 + 3 * ks[p];
        const char *key = p < np - 1 ? "unset key"
                          : np > 1   ? "set key at screen 0.5, screen 0.01 center bottom horizontal maxcols 4 samplen 2.5 width 2"
                                     : "set key below center horizontal maxcols 4 samplen 2.5 width 2";
        fprintf(fp, "%s\nset title \"%s\"\nset ylabel \"%s\"\nset yrange [%.6g:%.6g]\n", key,
                titles[p], ylabels[p], lo, hi);
        fprintf(fp, "plot for [i=1:NL] datafile index (i-1) using (kx($1, i)):%d:%d:%d with yerrorlines "
                    "ls i title title[i]\n",
                col, col + 1, col + 2);
    }
    if (np > 1) fprintf(fp, "unset multiplot\n");
}

static int fig_accuracy(rep *R, const family *f, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300], t0[200], t1[200];
    snprintf(what, sizeof what, "%s of %s and its compressions vs the experts kept: clean, and mean "
             "over corruptions, one line per method", mr_rep_prim_label(R), f->name);
    write_dat(R, f, dat.fp, name, what);
    mr_rep_gp_header(R, gp.fp, name, what, f->any_corr ? 1200 : 900, 520, 12, f->any_corr ? 7.0 : 3.4,
                     f->any_corr ? 2.6 : 2.4, 8);
    gp_lines(f, gp.fp);
    snprintf(t0, sizeof t0, "%s: clean", f->name);
    snprintf(t1, sizeof t1, "mean over %d corruptions", R->r->n_corr);
    const int ks[2] = {SUM_CLEAN, SUM_CORR};
    const char *const titles[2] = {t0, t1};
    const char *const yl[2] = {mr_rep_prim_label(R), mr_rep_prim_label(R)};
    gp_panels(R, f, gp.fp, ks, titles, yl, f->any_corr ? 2 : 1, 2);
    return mr_rep_emit(R, name, what, &dat, &gp);
}

static int fig_stability(rep *R, const family *f, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300], t0[200];
    snprintf(what, sizeof what, "routing stability of %s and its compressions vs the experts kept: "
             "clean routing entropy and clean-vs-corrupted flip rates, one line per method", f->name);
    write_dat(R, f, dat.fp, name, what);
    mr_rep_gp_header(R, gp.fp, name, what, 1200, f->any_corr ? 860 : 520, 12, 7.0,
                     f->any_corr ? 4.4 : 2.6, 8);
    gp_lines(f, gp.fp);
    snprintf(t0, sizeof t0, "%s: clean routing entropy (mean over MoE blocks)", f->name);
    const int ks[4] = {SUM_ENT, SUM_FLIP1, SUM_FLIPK, SUM_PRED};
    const char *const titles[4] = {t0, "top-1 expert flip, clean vs corrupted",
                                   "top-k set flip, clean vs corrupted", "prediction flip, clean vs corrupted"};
    const char *const yl[4] = {"entropy (nats)", "flip rate (%)", "flip rate (%)", "flip rate (%)"};
    gp_panels(R, f, gp.fp, ks, titles, yl, f->any_corr ? 4 : 1, 2);
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* table-compress-NAME.md: every point of every line, the original first */
static int table(rep *R, const family *f, const char *name)
{
    const mr_results *r = R->r;
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    fprintf(fp, "| model | method | experts | router@k | clean | corrupted | Δ | entropy | flip top-1 | "
                "flip top-k | pred flip |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < f->nl; l++) {
            const cline *ln = &f->lines[l];
            for (int i = ln->n - 1; i >= 0; i--) {
                const mr_res_group *gr = &r->groups[ln->group[i]];
                const mr_res_model *m = &r->models[gr->model];
                int is_orig = !m->compress[0];
                if (is_orig != !pass) continue;
                /* the original is on every line: once per router@k */
                int dup = 0;
                for (int l2 = 0; is_orig && l2 < l; l2++) dup |= strcmp(f->lines[l2].label, ln->label) == 0;
                if (dup) continue;
                fputs("| ", fp);
                mr_rep_md_str(fp, m->name);
                fputs(" | ", fp);
                mr_rep_md_str(fp, is_orig ? "(original)" : m->compress);
                fprintf(fp, " | %d | ", m->E);
                mr_rep_md_str(fp, gr->label);
                for (int k = 0; k < NSUM; k++) {
                    const double *v = R->summary[ln->group[i]][k];
                    int dec = k == SUM_ENT ? 3 : 2;
                    if (!isfinite(v[0]))
                        fprintf(fp, " | n/a");
                    else if (isfinite(v[1]) && isfinite(v[2]) && v[2] > v[1])
                        fprintf(fp, " | %.*f ± %.*f", dec, v[0], dec, 0.5 * (v[2] - v[1]));
                    else
                        fprintf(fp, " | %.*f", dec, v[0]);
                }
                fprintf(fp, " |\n");
            }
        }
    int st = mr_textbuf_commit(&t, R->dir, name);
    if (st == MR_OK) R->info->n_tables++;
    return st;
}

/* the families, in order of their first model; returns how many (at most cap) */
static int families(rep *R, family *fam, int cap)
{
    const mr_results *r = R->r;
    int nf = 0;
    for (int mi = 0; mi < r->n_models && nf < cap; mi++) {
        const mr_res_model *m = &r->models[mi];
        if (!m->compress[0] || !m->path[0]) continue;
        int seen = 0;
        for (int i = 0; i < nf; i++) seen |= strcmp(fam[i].path, m->path) == 0;
        if (seen) continue;
        family *f = &fam[nf++];
        f->path = m->path;
        f->first = mi;
        f->orig = -1;
        for (int o = 0; o < r->n_models && f->orig < 0; o++)
            if (!r->models[o].compress[0] && strcmp(r->models[o].path, m->path) == 0) f->orig = o;
        mr_rep_clean_str(f->name, sizeof f->name, r->models[f->orig >= 0 ? f->orig : mi].name);
    }
    return nf;
}

int mr_report_compress(rep *R)
{
    family *fam = calloc(MR_RES_MAX_MODELS, sizeof *fam);
    MR_REQUIRE(fam, MR_ENOMEM, "out of memory");
    int nf = families(R, fam, MR_RES_MAX_MODELS), st = MR_OK;
    R->n_compress = 0;
    for (int i = 0; st == MR_OK && i < nf; i++) {
        family *f = &fam[i];
        build_family(R, f);
        if (!f->nl) continue;
        R->lm = R->r->models[f->first].task == MR_TASK_LM;
        char name[200];
        snprintf(name, sizeof name, "fig-compress-%s-accuracy", f->name);
        st = fig_accuracy(R, f, name);
        snprintf(name, sizeof name, "fig-compress-%s-stability", f->name);
        if (st == MR_OK) st = fig_stability(R, f, name);
        snprintf(name, sizeof name, "table-compress-%s.md", f->name);
        if (st == MR_OK) st = table(R, f, name);
        R->n_compress++;
    }
    free(fam);
    return st;
}

void mr_report_compress_index(rep *R, FILE *fp)
{
    if (!R->n_compress) return;
    family *fam = calloc(MR_RES_MAX_MODELS, sizeof *fam);
    if (!fam) return;
    int nf = families(R, fam, MR_RES_MAX_MODELS);
    fprintf(fp, "## Compression\n\nModels compressed from another model of the run (`compress = "
                "METHOD:K`, docs/compression.md) against the experts kept per MoE block; the "
                "original is the point at its own number of experts. Mean ± half-width of the "
                "%g%% CI, as in the model summaries (corrupted, Δ and flips: over every corruption "
                "and severity; entropy: clean, mean over MoE blocks).\n\n",
            100 * R->r->level);
    for (int i = 0; i < nf; i++) {
        char name[200];
        fprintf(fp, "### %s\n\n", fam[i].name);
        snprintf(name, sizeof name, "table-compress-%s.md", fam[i].name);
        if (mr_rep_append_file(fp, R->dir, name)) fprintf(fp, "\n");
        snprintf(name, sizeof name, "fig-compress-%s-accuracy", fam[i].name);
        mr_rep_index_fig(R, fp, name);
        snprintf(name, sizeof name, "fig-compress-%s-stability", fam[i].name);
        mr_rep_index_fig(R, fp, name);
    }
    free(fam);
}
