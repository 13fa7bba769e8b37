#include "mr_report.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_model.h"
#include "../corruptions/mr_corruption.h"
#include "../corruptions/mr_gallery.h"
#include "../io/mr_data.h"
#include "../io/mr_file.h"
#include "../io/mr_fs.h"
#include "../io/mr_model_io.h"
#include "../io/mr_png.h"
#include "mr_gnuplot.h"
#include "mr_report_impl.h"

/* written first into a report directory: what `report --out` may write into again */
#define MR_REPORT_MARKER ".moe-robust-report"

void mr_report_fmt(char *buf, size_t cap, double v, int decimals)
{
    if (!isfinite(v))
        snprintf(buf, cap, "n/a");
    else
        snprintf(buf, cap, "%.*f", decimals, v);
}

/* ------------------------------------------------------------------ small helpers */

/* a user-supplied string inside a comment or a gnuplot/markdown/LaTeX string: no
 * control characters */
void mr_rep_clean_str(char *dst, size_t cap, const char *src)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 1 < cap; i++)
        dst[j++] = (unsigned char)src[i] < 32 || src[i] == 127 ? '?' : src[i];
    dst[j] = '\0';
}

/* a gnuplot double-quoted string */
void mr_rep_gp_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', fp);
        fputc((unsigned char)*s < 32 ? '?' : *s, fp);
    }
    fputc('"', fp);
}

static void tex_str(FILE *fp, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '_': case '%': case '&': case '#': case '$': case '{': case '}':
            fprintf(fp, "\\%c", *s);
            break;
        case '~': fputs("\\textasciitilde{}", fp); break;
        case '^': fputs("\\textasciicircum{}", fp); break;
        case '\\': fputs("\\textbackslash{}", fp); break;
        default: fputc((unsigned char)*s < 32 ? '?' : *s, fp);
        }
    }
}

void mr_rep_md_str(FILE *fp, const char *s)
{
    for (; *s; s++) {
        if (strchr("|*`[]<>\\", *s)) fputc('\\', fp);
        fputc((unsigned char)*s < 32 ? '?' : *s, fp);
    }
}

static const char *basename_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int add_fig(rep *R, const char *name, const char *title)
{
    if (R->n_figs == R->cap_figs) {
        int cap = R->cap_figs ? 2 * R->cap_figs : 16;
        void *v = realloc(R->figs, (size_t)cap * sizeof *R->figs);
        MR_REQUIRE(v, MR_ENOMEM, "out of memory");
        R->figs = v;
        R->cap_figs = cap;
    }
    fig *f = &R->figs[R->n_figs++];
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->title, sizeof f->title, "%s", title);
    f->rendered = 0;
    return MR_OK;
}

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
    for (int i = 0; i < R->n_jobs; i++) free(R->jobs[i].x);
    R->n_jobs = 0;
    return st == MR_OK ? MR_OK : mr_error_set(st, "%s", msg);
}

/* ------------------------------------------------------------------ aggregation */

/* per-sample quantities of one cell into q[NQ][n] (those the cell has) */
static int cell_vectors(rep *R, int cell, double *q, double *tmp)
{
    const mr_cell_summary *s = &R->r->cells[cell];
    size_t n = R->n, L = (size_t)R->m->n_moe;
    double *prim = q + Q_PRIM * n;
    if (s->has_pass) {
        MR_TRY(mr_results_samples(R->r, cell, R->lm ? "sample_loss" : "sample_correct", prim, n));
        for (size_t i = 0; i < n; i++) prim[i] = R->lm ? prim[i] / LN2 : 100.0 * prim[i];
        MR_TRY(mr_results_samples(R->r, cell, "sample_entropy", tmp, n * L));
        for (size_t i = 0; i < n; i++) {
            double a = 0;
            for (size_t l = 0; l < L; l++) a += tmp[i * L + l];
            q[Q_ENT * n + i] = L ? a / (double)L : 0.0;
        }
    }
    if (s->has_flips) {
        static const char *const ds[2] = {"sample_flip_top1", "sample_flip_set"};
        for (int d = 0; d < 2; d++) {
            MR_TRY(mr_results_samples(R->r, cell, ds[d], tmp, n * L));
            double *dst = q + (d ? Q_FLIPK : Q_FLIP1) * n;
            for (size_t i = 0; i < n; i++) {
                double a = 0;
                for (size_t l = 0; l < L; l++) a += tmp[i * L + l];
                dst[i] = L ? 100.0 * a / (double)L : 0.0;
            }
        }
        MR_TRY(mr_results_samples(R->r, cell, "sample_pred_flip", q + Q_PRED * n, n));
        for (size_t i = 0; i < n; i++) q[Q_PRED * n + i] *= 100.0;
    }
    return MR_OK;
}

static void add_to(double *acc, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) acc[i] += x[i];
}

/* Accumulate per-sample sums of every aggregate of group g, then queue their CIs. */
static int aggregate_group(rep *R, int gl)
{
    const mr_results *r = R->r;
    const mr_res_group *gr = &r->groups[R->g0 + gl];
    gagg *a = &R->agg[gl];
    size_t n = R->n, L = (size_t)R->m->n_moe;
    int C = r->n_corr;
    /* buffers: q [NQ][n], tmp [n*L], clean [NQ][n], sev sums [NS][5][n], per-corruption
     * sums [NC][n], overall sums [NA][n] */
    size_t need = NQ * n + n * (L ? L : 1) + NQ * n + (size_t)NS * MR_RES_MAX_SEV * n + NC * n + NA * n;
    double *buf = calloc(need + 1, sizeof *buf);
    MR_REQUIRE(buf, MR_ENOMEM, "out of memory");
    double *q = buf, *tmp = q + NQ * n, *cq = tmp + n * (L ? L : 1);
    double *sev = cq + NQ * n, *pc = sev + (size_t)NS * MR_RES_MAX_SEV * n, *all = pc + NC * n;
    int st = MR_OK;
    for (int k = 0; k < NA; k++) a->all[k][0] = a->all[k][1] = a->all[k][2] = NAN;
    for (int k = 0; k < NS; k++)
        for (int s = 0; s < MR_RES_MAX_SEV; s++) a->sev[k][s][0] = a->sev[k][s][1] = a->sev[k][s][2] = NAN;
    a->pc = malloc(((size_t)C * NC * 3 + 1) * sizeof *a->pc);
    a->pc_n = calloc((size_t)C + 1, sizeof *a->pc_n);
    if (!a->pc || !a->pc_n) st = mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < C * NC * 3; i++) a->pc[i] = NAN;
    a->clean[0] = a->clean[1] = a->clean[2] = NAN;
    if (st == MR_OK && gr->clean >= 0) {
        const mr_cell_summary *c = &r->cells[gr->clean];
        for (int j = 0; j < 3; j++) a->clean[j] = R->lm ? c->loss[j] / LN2 : 100.0 * c->accuracy[j];
        a->has_clean = 1;
        st = cell_vectors(R, gr->clean, cq, tmp);
        if (st == MR_OK)
            st = queue_ci(R, cq + Q_ENT * n, 1.0, a->all[A_ENT], "report/entropy/%s/%s",
                          R->m->name, gr->label);
    }
    for (int c = 0; st == MR_OK && c < C; c++) {
        memset(pc, 0, NC * n * sizeof *pc);
        int cnt = 0;
        for (int s = 0; st == MR_OK && s < MR_RES_MAX_SEV; s++) {
            int cell = gr->corrupt[c * MR_RES_MAX_SEV + s];
            if (cell < 0) continue;
            st = cell_vectors(R, cell, q, tmp);
            if (st != MR_OK) break;
            add_to(sev + ((size_t)S_PRIM * MR_RES_MAX_SEV + s) * n, q + Q_PRIM * n, n);
            add_to(sev + ((size_t)S_FLIP1 * MR_RES_MAX_SEV + s) * n, q + Q_FLIP1 * n, n);
            add_to(sev + ((size_t)S_FLIPK * MR_RES_MAX_SEV + s) * n, q + Q_FLIPK * n, n);
            add_to(sev + ((size_t)S_PRED * MR_RES_MAX_SEV + s) * n, q + Q_PRED * n, n);
            a->sev_n[s]++;
            add_to(pc + C_PRIM * n, q + Q_PRIM * n, n);
            add_to(pc + C_FLIP1 * n, q + Q_FLIP1 * n, n);
            add_to(pc + C_ENT * n, q + Q_ENT * n, n);
            add_to(all + A_PRIM * n, q + Q_PRIM * n, n);
            add_to(all + A_FLIP1 * n, q + Q_FLIP1 * n, n);
            add_to(all + A_FLIPK * n, q + Q_FLIPK * n, n);
            add_to(all + A_PRED * n, q + Q_PRED * n, n);
            cnt++;
            a->all_n++;
        }
        a->pc_n[c] = cnt;
        if (st != MR_OK || !cnt) continue;
        /* degradation: clean - corrupted accuracy, or corrupted - clean bpc */
        for (size_t i = 0; a->has_clean && i < n; i++) {
            double mean = pc[C_PRIM * n + i] / cnt;
            pc[C_DELTA * n + i] = (R->lm ? mean - cq[Q_PRIM * n + i] : cq[Q_PRIM * n + i] - mean) * cnt;
        }
        double *out = a->pc + (size_t)c * NC * 3;
        const char *cn = r->corr[c];
        st = queue_ci(R, pc + C_PRIM * n, cnt, out + 3 * C_PRIM, "report/corr/prim/%s/%s/%s",
                      R->m->name, gr->label, cn);
        if (st == MR_OK && a->has_clean)
            st = queue_ci(R, pc + C_DELTA * n, cnt, out + 3 * C_DELTA, "report/corr/delta/%s/%s/%s",
                          R->m->name, gr->label, cn);
        if (st == MR_OK)
            st = queue_ci(R, pc + C_FLIP1 * n, cnt, out + 3 * C_FLIP1, "report/corr/flip1/%s/%s/%s",
                          R->m->name, gr->label, cn);
        if (st == MR_OK)
            st = queue_ci(R, pc + C_ENT * n, cnt, out + 3 * C_ENT, "report/corr/entropy/%s/%s/%s",
                          R->m->name, gr->label, cn);
    }
    static const char *const sname[NS] = {"prim", "flip1", "flipk", "pred"};
    for (int k = 0; st == MR_OK && k < NS; k++)
        for (int s = 0; st == MR_OK && s < MR_RES_MAX_SEV; s++)
            if (a->sev_n[s])
                st = queue_ci(R, sev + ((size_t)k * MR_RES_MAX_SEV + s) * n, a->sev_n[s],
                              a->sev[k][s], "report/sev/%s/%s/%s/s%d", sname[k], R->m->name,
                              gr->label, s + 1);
    if (st == MR_OK && a->all_n) {
        static const int ks[4] = {A_PRIM, A_FLIP1, A_FLIPK, A_PRED};
        static const char *const kn[4] = {"prim", "flip1", "flipk", "pred"};
        for (int j = 0; st == MR_OK && j < 4; j++)
            st = queue_ci(R, all + ks[j] * n, a->all_n, a->all[ks[j]], "report/all/%s/%s/%s",
                          kn[j], R->m->name, gr->label);
        if (st == MR_OK && a->has_clean) {
            for (size_t i = 0; i < n; i++) {
                double mean = all[A_PRIM * n + i] / a->all_n;
                all[A_DELTA * n + i] = R->lm ? mean - cq[Q_PRIM * n + i] : cq[Q_PRIM * n + i] - mean;
            }
            st = queue_ci(R, all + A_DELTA * n, 1.0, a->all[A_DELTA], "report/all/delta/%s/%s",
                          R->m->name, gr->label);
        }
    }
    /* checkpoint fluctuation: top-1 flips, mean over pairs and layers */
    memset(all + A_FLUCT * n, 0, n * sizeof *all);
    for (int f = 0; st == MR_OK && f < gr->n_fluct; f++) {
        st = cell_vectors(R, gr->fluct[f], q, tmp);
        if (st == MR_OK) add_to(all + A_FLUCT * n, q + Q_FLIP1 * n, n);
        a->fluct_n++;
    }
    if (st == MR_OK && a->fluct_n)
        st = queue_ci(R, all + A_FLUCT * n, a->fluct_n, a->all[A_FLUCT], "report/all/fluct/%s/%s",
                      R->m->name, gr->label);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------ styles */

static void mix_white(char *out, const char *hex, double t)
{
    unsigned rgb = (unsigned)strtoul(hex + 1, NULL, 16);
    int c[3] = {(int)(rgb >> 16) & 255, (int)(rgb >> 8) & 255, (int)rgb & 255};
    for (int i = 0; i < 3; i++) c[i] = (int)lround(c[i] + (255 - c[i]) * t);
    snprintf(out, 8, "#%02x%02x%02x", c[0] & 255, c[1] & 255, c[2] & 255);
}

/* colour per router (Okabe-Ito), lighter shades and other dash types for its other k */
static void make_styles(rep *R)
{
    static const char *const pal[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#000000", "#882255", "#999999", "#56B4E9", "#117733"};
    static const int pts[] = {7, 5, 9, 11, 13, 4, 6, 8, 10, 12};
    const mr_results *r = R->r;
    /* the most common k = the "default" k: solid lines */
    int best_k = 0, best_n = 0;
    for (int g = 0; g < R->G; g++) {
        int cnt = 0;
        for (int h = 0; h < R->G; h++) cnt += r->groups[R->g0 + h].k == r->groups[R->g0 + g].k;
        if (cnt > best_n || (cnt == best_n && r->groups[R->g0 + g].k < best_k)) {
            best_n = cnt;
            best_k = r->groups[R->g0 + g].k;
        }
    }
    int nvar = 0;
    for (int g = 0; g < R->G; g++) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        /* one colour per router variant (type + options: a k-sweep under another name
         * shares its router's colour), numbered in order of first appearance */
        int router = -1;
        for (int h = 0; h < g && router < 0; h++)
            if (strcmp(r->groups[R->g0 + h].variant, gr->variant) == 0) router = R->sel[h];
        if (router < 0) router = nvar++;
        R->sel[g] = router; /* scratch: the colour index of group g */
        /* rank of this k among the variant's other ks */
        int rank = 0, others = 0;
        for (int h = 0; h < R->G; h++) {
            const mr_res_group *o = &r->groups[R->g0 + h];
            if (strcmp(o->variant, gr->variant) != 0 || o->k == best_k) continue;
            others++;
            rank += o->k < gr->k;
        }
        style *s = &R->sty[g];
        const char *base = pal[router % 10];
        if (gr->k == best_k) {
            snprintf(s->rgb, sizeof s->rgb, "%s", base);
            s->dt = 1;
        } else {
            mix_white(s->rgb, base, 0.2 + 0.55 * rank / (others > 1 ? others - 1 : 1));
            s->dt = 2 + rank % 4;
        }
        s->pt = pts[router % 10];
    }
}

/* ------------------------------------------------------------------ gnuplot scripts */

void mr_rep_gp_header(rep *R, FILE *fp, const char *name, const char *what, int png_w, int png_h,
                      int font, double pdf_w, double pdf_h, int pdf_font)
{
    char src[1200];
    mr_rep_clean_str(src, sizeof src, R->r->file);
    fprintf(fp, "# %s.gp: %s\n", name, what);
    fprintf(fp, "# Written by moe-robust report from %s.\n", src);
    fprintf(fp, "# Data: %s.dat beside this script (blocks separated by two blank lines, read with\n"
                "# `index`; see its header). Restyle freely, then re-render in this directory:\n"
                "#   gnuplot %s.gp                   (PNG)\n"
                "#   gnuplot -e \"fmt='pdf'\" %s.gp    (or fmt='svg')\n",
            name, name, name);
    fprintf(fp, "if (!exists(\"fmt\")) fmt = \"png\"\n");
    fprintf(fp, "if (!exists(\"outfile\")) outfile = \"%s.\" . fmt\n", name);
    fprintf(fp, "if (fmt eq \"pdf\") {\n"
                "    set terminal pdfcairo noenhanced font \"Times,%d\" size %.2fin,%.2fin linewidth 0.7 pointscale 0.45\n"
                "} else {\n    if (fmt eq \"svg\") {\n"
                "        set terminal svg noenhanced font \"Helvetica,%d\" size %d,%d dynamic background \"white\"\n"
                "    } else {\n"
                "        set terminal pngcairo noenhanced font \"Helvetica,%d\" size %d,%d background \"white\"\n"
                "    }\n}\n",
            pdf_font, pdf_w, pdf_h, font, png_w, png_h, font, png_w, png_h);
    fprintf(fp, "set output outfile\ndatafile = \"%s.dat\"\n", name);
    fprintf(fp, "set border lc rgb \"#444444\"\nset grid lc rgb \"#e0e0e0\" lt 1\n");
}

/* the groups' labels as a gnuplot array and their line styles 1..G */
static void gp_groups(rep *R, FILE *fp)
{
    fprintf(fp, "# one line style per router@k: colour per router, lighter and dashed for its other k\n");
    fprintf(fp, "array label[%d] = [", R->ns);
    FOR_SEL(j, g) {
        if (j) fputs(", ", fp);
        mr_rep_gp_str(fp, R->r->groups[R->g0 + g].label);
    }
    fprintf(fp, "]\n");
    FOR_SEL(j, g)
        fprintf(fp, "set style line %d lc rgb \"%s\" dt %d lw 2 pt %d ps 0.8   # %s\n", j + 1,
                R->sty[g].rgb, R->sty[g].dt, R->sty[g].pt, R->r->groups[R->g0 + g].label);
    fprintf(fp, "G = %d\n", R->ns);
}

void mr_rep_dat_header(rep *R, FILE *fp, const char *name, const char *what)
{
    char src[1200];
    mr_rep_clean_str(src, sizeof src, R->r->file);
    fprintf(fp, "# %s.dat: %s\n# from %s (config hash %s)\n", name, what, src, R->r->config_hash);
}

static int render(rep *R, const char *name)
{
    if (!R->o->render || R->info->gnuplot_missing) return MR_OK;
    char script[200], out[200];
    snprintf(script, sizeof script, "%s.gp", name);
    snprintf(out, sizeof out, "%s.%s", name, R->fmt);
    int rc = mr_gnuplot_run(R->dir, script, R->fmt, out);
    if (rc == MR_GNUPLOT_MISSING) {
        R->info->gnuplot_missing = 1;
        return MR_OK;
    }
    if (rc == MR_GNUPLOT_FAILED) {
        if (!R->render_failed) snprintf(R->render_error, sizeof R->render_error, "%s", mr_error_message());
        R->render_failed++;
        fprintf(stderr, "moe-robust report: %s\n", mr_error_message());
        return MR_OK;
    }
    R->info->n_rendered++;
    R->figs[R->n_figs - 1].rendered = 1;
    if (!R->o->quiet) fprintf(stderr, "moe-robust report: %s/%s\n", R->dir, out);
    return MR_OK;
}

/* write NAME.dat and NAME.gp, then render */
int mr_rep_emit(rep *R, const char *name, const char *title, mr_textbuf *dat, mr_textbuf *gp)
{
    char fn[200];
    snprintf(fn, sizeof fn, "%s.dat", name);
    int st = mr_textbuf_commit(dat, R->dir, fn);
    snprintf(fn, sizeof fn, "%s.gp", name);
    if (st == MR_OK)
        st = mr_textbuf_commit(gp, R->dir, fn);
    else
        mr_textbuf_discard(gp);
    if (st == MR_OK) st = add_fig(R, name, title);
    if (st == MR_OK) {
        R->info->n_figures++;
        st = render(R, name);
    }
    return st;
}

const char *mr_rep_prim_label(const rep *R) { return R->lm ? "bits per character" : "accuracy (%)"; }

void mr_rep_range_pad(double *lo, double *hi)
{
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
    }
    double span = *hi - *lo;
    if (span <= 0) span = fabs(*hi) > 0 ? fabs(*hi) * 0.1 : 1.0;
    *lo -= 0.06 * span;
    *hi += 0.06 * span;
}

void mr_rep_mm(double *lo, double *hi, double v)
{
    if (!isfinite(v)) return;
    if (!isfinite(*lo) || v < *lo) *lo = v;
    if (!isfinite(*hi) || v > *hi) *hi = v;
}

/* a key of all groups at the top of a multiplot, drawn by the first panel */
static int key_cols(int G) { return G <= 8 ? G : (G + 1) / 2 < 8 ? (G + 1) / 2 : 8; }
static int key_rows(int G) { return (G + key_cols(G) - 1) / key_cols(G); }

/* A multi-panel figure: a title line and a key strip on top, then NROW x NCOL panels
 * placed by `eval panel(i)` (i = 1..) between screen x LEFT..RIGHT and y BOT..TOP.
 * `boxes`: the key shows filled boxes (bar charts) instead of lines. */
static void gp_multi_begin(rep *R, FILE *fp, const char *title, int boxes, int ncol, int nrow,
                           double left, double right, double bottom_px, double height_px)
{
    double title_px = 28, key_px = 18 + 21.0 * key_rows(R->ns);
    double top = 1.0 - (title_px + key_px) / height_px;
    fprintf(fp, "# layout: a title and a key strip on top, then %d x %d panels\n", nrow, ncol);
    fprintf(fp, "NCOL = %d\nNROW = %d\nLEFT = %.4f\nRIGHT = %.4f\nBOT = %.4f\nTOP = %.4f\n", ncol,
            nrow, left, right, bottom_px / height_px, top);
    fprintf(fp, "PW = (RIGHT - LEFT) / NCOL\nPH = (TOP - BOT) / NROW\n"
                "panel(i) = sprintf(\"set origin %%g, %%g; set size %%g, %%g\", LEFT + ((i-1) %% NCOL) * PW, "
                "BOT + (NROW - 1 - (i-1) / NCOL) * PH, PW, PH)\n");
    fprintf(fp, "set multiplot\n");
    fprintf(fp, "# the key strip (and the title)\nset origin 0, TOP + %.4f\nset size 1, %.4f\n",
            4.0 / height_px, (key_px - 4) / height_px);
    fprintf(fp, "unset border\nunset xtics\nunset ytics\nunset grid\nset xrange [0:1]\nset yrange [0:1]\n"
                "set lmargin 0\nset rmargin 0\nset tmargin 0\nset bmargin 0\n");
    fprintf(fp, "set label 99 ");
    mr_rep_gp_str(fp, title);
    fprintf(fp, " at screen 0.5, screen %.4f center\n", 1.0 - 0.5 * title_px / height_px);
    fprintf(fp, "set key center center horizontal maxcols %d samplen 2.5 width 1 spacing 1.1\n",
            key_cols(R->ns));
    if (boxes)
        fprintf(fp, "plot for [g=1:G] NaN with boxes ls g dt 1 lw 1 fs solid 0.85 border rgb \"#333333\" title label[g]\n");
    else
        fprintf(fp, "plot for [g=1:G] NaN with linespoints ls g title label[g]\n");
    fprintf(fp, "unset label 99\nunset key\nset border\nset xtics\nset ytics\nset grid\n"
                "set autoscale xy\nunset lmargin\nunset rmargin\nunset tmargin\nunset bmargin\n");
}

/* ---- accuracy (bpc) vs severity, mean over corruptions ---- */
static int fig_severity_mean(rep *R, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300];
    snprintf(what, sizeof what, "%s vs corruption severity, mean over %d corruptions, per router@k",
             mr_rep_prim_label(R), R->r->n_corr);
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# severity 0 = clean. Bands: %g%% bootstrap CI over samples.\n"
                    "# One block per router@k (index i = label[i+1] in the .gp):\n"
                    "# severity  mean  ci_lo  ci_hi\n", 100 * R->r->level);
    double lo = NAN, hi = NAN;
    FOR_SEL(j, g) {
        const gagg *a = &R->agg[g];
        fprintf(dat.fp, "%s# block %d: %s\n", j ? "\n\n" : "", j, R->r->groups[R->g0 + g].label);
        if (a->has_clean) fprintf(dat.fp, "0 %.8g %.8g %.8g\n", a->clean[0], a->clean[1], a->clean[2]);
        for (int s = 0; s < MR_RES_MAX_SEV; s++)
            if (a->sev_n[s]) {
                fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, a->sev[S_PRIM][s][0],
                        a->sev[S_PRIM][s][1], a->sev[S_PRIM][s][2]);
                mr_rep_mm(&lo, &hi, a->sev[S_PRIM][s][1]);
                mr_rep_mm(&lo, &hi, a->sev[S_PRIM][s][2]);
            }
        mr_rep_mm(&lo, &hi, a->clean[1]);
        mr_rep_mm(&lo, &hi, a->clean[2]);
    }
    mr_rep_range_pad(&lo, &hi);
    mr_rep_gp_header(R, gp.fp, name, what, 900, 560, 12, 3.4, 2.5, 8);
    gp_groups(R, gp.fp);
    fprintf(gp.fp, "set title \"%s: %s, mean over %d corruptions\"\n", R->m->name,
            mr_rep_prim_label(R), R->r->n_corr);
    fprintf(gp.fp, "set xlabel \"severity (0 = clean)\"\nset ylabel \"%s\"\n", mr_rep_prim_label(R));
    fprintf(gp.fp, "set xrange [-0.2:5.2]\nset xtics 0,1,5\nset yrange [%.6g:%.6g]\n", lo, hi);
    fprintf(gp.fp, "set key outside right center samplen 2.5\n");
    fprintf(gp.fp, "plot for [i=1:G] datafile index (i-1) using 1:3:4 with filledcurves ls i "
                   "fs transparent solid 0.12 noborder notitle, \\\n"
                   "     for [i=1:G] datafile index (i-1) using 1:2 with linespoints ls i title label[i]\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ---- accuracy (bpc) vs severity per corruption: one panel each ---- */
static int fig_severity_grid(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int C = r->n_corr;
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300];
    snprintf(what, sizeof what, "%s vs severity per corruption, per router@k", mr_rep_prim_label(R));
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# severity 0 = clean. Cell CIs (%g%% bootstrap) as stored in results.h5.\n"
                    "# Block c*G + g: corruption c, router@k g (G = %d; names in the .gp):\n"
                    "# severity  mean  ci_lo  ci_hi\n", 100 * r->level, R->ns);
    double lo = NAN, hi = NAN;
    for (int c = 0; c < C; c++)
        FOR_SEL(j, g) {
            int b = c * R->ns + j;
            const mr_res_group *gr = &r->groups[R->g0 + g];
            fprintf(dat.fp, "%s# block %d: %s / %s\n", b ? "\n\n" : "", b, r->corr[c], gr->label);
            if (R->agg[g].has_clean)
                fprintf(dat.fp, "0 %.8g %.8g %.8g\n", R->agg[g].clean[0], R->agg[g].clean[1],
                        R->agg[g].clean[2]);
            for (int s = 0; s < MR_RES_MAX_SEV; s++) {
                int cell = gr->corrupt[c * MR_RES_MAX_SEV + s];
                if (cell < 0) continue;
                const mr_cell_summary *cs = &r->cells[cell];
                double v[3];
                for (int j = 0; j < 3; j++) v[j] = R->lm ? cs->loss[j] / LN2 : 100.0 * cs->accuracy[j];
                fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, v[0], v[1], v[2]);
                mr_rep_mm(&lo, &hi, v[1]);
                mr_rep_mm(&lo, &hi, v[2]);
            }
            mr_rep_mm(&lo, &hi, R->agg[g].clean[1]);
            mr_rep_mm(&lo, &hi, R->agg[g].clean[2]);
        }
    mr_rep_range_pad(&lo, &hi);
    int cols = C <= 2 ? C : C <= 4 ? 2 : C <= 9 ? 3 : C <= 16 ? 4 : C <= 36 ? 6 : 8;
    int rows = (C + cols - 1) / cols;
    int head = 46 + 21 * key_rows(R->ns);
    int pw = cols * 260 + 20, ph = rows * 215 + head + 10;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 11, 7.0, rows * 1.3 + 0.25 + 0.14 * key_rows(R->ns), 7);
    gp_groups(R, gp.fp);
    fprintf(gp.fp, "array corr[%d] = [", C);
    for (int c = 0; c < C; c++) {
        if (c) fputs(", ", gp.fp);
        mr_rep_gp_str(gp.fp, r->corr[c]);
    }
    fprintf(gp.fp, "]\nC = %d\n", C);
    char title[300];
    snprintf(title, sizeof title, "%s: %s vs severity (0 = clean) per corruption; bands: %g%% CI",
             R->m->name, mr_rep_prim_label(R), 100 * r->level);
    gp_multi_begin(R, gp.fp, title, 0, cols, rows, 0.0, 1.0, 10, ph);
    fprintf(gp.fp, "set xrange [-0.3:5.3]\nset xtics 0,1,5 scale 0.5\nset ytics scale 0.5\n"
                   "set yrange [%.6g:%.6g]\nset lmargin 6\nset rmargin 1.5\nset tmargin 1.6\nset bmargin 1.6\n",
            lo, hi);
    fprintf(gp.fp, "do for [c=1:C] {\n    eval panel(c)\n    set title corr[c] offset 0,-0.7\n"
                   "    plot for [g=1:G] datafile index ((c-1)*G + g-1) using 1:3:4 with filledcurves ls g "
                   "fs transparent solid 0.12 noborder notitle, \\\n"
                   "         for [g=1:G] datafile index ((c-1)*G + g-1) using 1:2 with linespoints ls g "
                   "lw 1.5 ps 0.5 notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ---- flip rates vs severity ---- */
static int fig_flip(rep *R, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    static const char *const titles[3] = {"top-1 expert flip (%)", "top-k set flip (%)",
                                          "prediction flip (%)"};
    static const int metric[3] = {S_FLIP1, S_FLIPK, S_PRED};
    char what[300];
    snprintf(what, sizeof what, "clean-vs-corrupted flip rates vs severity (mean over %d "
             "corruptions and the MoE layers), per router@k", R->r->n_corr);
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Panels: 0 top-1 expert flip, 1 top-k set flip, 2 prediction flip (all in %%).\n"
                    "# Block p*G + g: panel p, router@k g (G = %d); bands: %g%% bootstrap CI.\n"
                    "# severity  mean  ci_lo  ci_hi\n", R->ns, 100 * R->r->level);
    double hi = 0;
    for (int p = 0; p < 3; p++)
        FOR_SEL(j, g) {
            int b = p * R->ns + j;
            const gagg *a = &R->agg[g];
            fprintf(dat.fp, "%s# block %d: %s / %s\n", b ? "\n\n" : "", b, titles[p],
                    R->r->groups[R->g0 + g].label);
            for (int s = 0; s < MR_RES_MAX_SEV; s++)
                if (a->sev_n[s]) {
                    const double *v = a->sev[metric[p]][s];
                    fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, v[0], v[1], v[2]);
                    if (isfinite(v[2]) && v[2] > hi) hi = v[2];
                }
        }
    int ph = 430 + 46 + 21 * key_rows(R->ns);
    mr_rep_gp_header(R, gp.fp, name, what, 1350, ph, 12, 7.0, 2.5 + 0.14 * key_rows(R->ns), 8);
    gp_groups(R, gp.fp);
    fprintf(gp.fp, "array panel_title[3] = [\"%s\", \"%s\", \"%s\"]\n", titles[0], titles[1], titles[2]);
    char title[300];
    snprintf(title, sizeof title, "%s: flip rates, clean vs corrupted input (mean over %d corruptions "
             "and the MoE layers); bands: %g%% CI", R->m->name, R->r->n_corr, 100 * R->r->level);
    gp_multi_begin(R, gp.fp, title, 0, 3, 1, 0.0, 1.0, 0, ph);
    fprintf(gp.fp, "set xrange [0.8:5.2]\nset xtics 1,1,5\nset xlabel \"severity\"\n"
                   "set yrange [0:%.6g]\nset lmargin 7\nset rmargin 2\nset tmargin 2\nset bmargin 3.5\n",
            hi > 0 ? hi * 1.08 : 1.0);
    fprintf(gp.fp, "do for [p=1:3] {\n    eval panel(p)\n    set title panel_title[p]\n"
                   "    plot for [g=1:G] datafile index ((p-1)*G + g-1) using 1:3:4 with filledcurves ls g "
                   "fs transparent solid 0.12 noborder notitle, \\\n"
                   "         for [g=1:G] datafile index ((p-1)*G + g-1) using 1:2 with linespoints ls g "
                   "notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* layer tick labels "block N" */
static void gp_layer_note(rep *R, FILE *fp)
{
    fprintf(fp, "# x: MoE blocks");
    for (int l = 0; l < R->m->n_moe; l++) fprintf(fp, " %d", R->m->layers[l]);
    fputc('\n', fp);
}

/* ---- per-layer routing entropy and its ratio to the reference router ---- */
static int fig_entropy(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe;
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300];
    snprintf(what, sizeof what, "per-layer routing entropy on clean data (nats) and its ratio to "
             "the reference router %s", r->reference);
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Block 0: entropy, per MoE block one row: block, then mean ci_lo ci_hi of\n"
                    "# every router@k in the .gp's label order (%g%% bootstrap CI). Block 1: the\n"
                    "# ratio mean / mean of the reference router at the same k (Graph of Tokens,\n"
                    "# Fig. 2 right): block, then one ratio per router@k (NaN: no reference).\n",
            100 * r->level);
    fprintf(dat.fp, "# block 0: entropy\n");
    double hi = 0, rhi = 0, rlo = 1;
    for (int l = 0; l < L; l++) {
        fprintf(dat.fp, "\"block %d\"", R->m->layers[l]);
        FOR_SEL(j, g) {
            const mr_res_group *gr = &r->groups[R->g0 + g];
            if (gr->clean < 0) {
                fprintf(dat.fp, " NaN NaN NaN");
                continue;
            }
            const double *e = r->cells[gr->clean].entropy + 3 * l;
            fprintf(dat.fp, " %.8g %.8g %.8g", e[0], e[1], e[2]);
            if (e[2] > hi) hi = e[2];
        }
        fputc('\n', dat.fp);
    }
    fprintf(dat.fp, "\n\n# block 1: ratio to the reference router\n");
    for (int l = 0; l < L; l++) {
        fprintf(dat.fp, "\"block %d\"", R->m->layers[l]);
        FOR_SEL(j, g) {
            const mr_res_group *gr = &r->groups[R->g0 + g];
            double v = NAN;
            if (gr->clean >= 0 && gr->ref >= 0 && r->groups[gr->ref].clean >= 0) {
                double den = r->cells[r->groups[gr->ref].clean].entropy[3 * l];
                if (den > 0) v = r->cells[gr->clean].entropy[3 * l] / den;
            }
            if (isfinite(v)) {
                fprintf(dat.fp, " %.8g", v);
                if (v > rhi) rhi = v;
                if (v < rlo) rlo = v;
            } else {
                fprintf(dat.fp, " NaN");
            }
        }
        fputc('\n', dat.fp);
    }
    int ph = 440 + 46 + 21 * key_rows(R->ns);
    int pw = 2 * (110 + L * (R->ns * 18 + 24));
    if (pw < 1100) pw = 1100;
    if (pw > 2400) pw = 2400;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, 2.5 + 0.14 * key_rows(R->ns), 8);
    gp_groups(R, gp.fp);
    gp_layer_note(R, gp.fp);
    char title[300];
    snprintf(title, sizeof title, "%s: routing entropy per MoE layer on clean data", R->m->name);
    gp_multi_begin(R, gp.fp, title, 1, 2, 1, 0.0, 1.0, 0, ph);
    fprintf(gp.fp, "set style data histograms\nset style fill solid 0.85 border rgb \"#333333\"\n"
                   "set boxwidth 0.9 relative\nset grid noxtics ytics\nset xtics scale 0\n"
                   "set xrange [-0.55:%d.45]\nset lmargin 8\nset rmargin 2\nset tmargin 2\nset bmargin 2.5\n",
            L - 1);
    fprintf(gp.fp, "eval panel(1)\nset title \"entropy (nats; error bars: %g%% CI)\"\n"
                   "set ylabel \"entropy (nats)\"\nset yrange [0:%.6g]\n",
            100 * r->level, hi > 0 ? hi * 1.12 : 1.0);
    fprintf(gp.fp, "set style histogram errorbars gap 1 lw 1\n");
    fprintf(gp.fp, "plot for [g=1:G] datafile index 0 using (column(3*g-1)):(column(3*g)):(column(3*g+1)):xtic(1) "
                   "ls g dt 1 lw 1 notitle\n");
    /* zoom on the ratios around 1 (bars grow from the bottom of the panel) */
    double ylo = rlo < 1 ? rlo : 1, yhi = rhi > 1 ? rhi : 1;
    if (yhi - ylo < 0.1) {
        ylo -= 0.05;
        yhi += 0.05;
    }
    mr_rep_range_pad(&ylo, &yhi);
    ylo -= 0.1 * (yhi - ylo); /* the lowest bar stays visible */
    if (ylo < 0) ylo = 0;
    fprintf(gp.fp, "eval panel(2)\nset style histogram clustered gap 1\n"
                   "set title \"entropy / entropy of the reference router %s\"\nset ylabel \"ratio\"\n"
                   "set yrange [%.6g:%.6g]\n", r->reference, ylo, yhi);
    fprintf(gp.fp, "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb \"#555555\" front\n");
    fprintf(gp.fp, "plot for [g=1:G] datafile index 1 using (column(g+1)):xtic(1) ls g dt 1 lw 1 notitle\n"
                   "unset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ---- per-layer checkpoint-to-checkpoint fluctuation ---- */
static int fig_fluct(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe, P = 0, gref = -1;
    for (int g = 0; g < R->G; g++)
        if (r->groups[R->g0 + g].n_fluct > P) {
            P = r->groups[R->g0 + g].n_fluct;
            gref = g;
        }
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300];
    snprintf(what, sizeof what, "per-layer routing fluctuation between consecutive checkpoints "
             "(top-1 expert flip, %%), per router@k");
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Block p: checkpoint pair p; per MoE block one row: block, then flip_top1\n"
                    "# mean ci_lo ci_hi and flip_topk_set mean ci_lo ci_hi (%%) of every router@k\n"
                    "# in the .gp's label order (%g%% bootstrap CI; NaN: no such cell).\n",
            100 * r->level);
    double hi = 0;
    char pairs[MR_RES_MAX_FLUCT][160];
    for (int p = 0; p < P; p++) {
        const char *ck = r->cells[r->groups[R->g0 + gref].fluct[p]].meta.checkpoints;
        /* "A -> B" as basenames without .h5 */
        char a[2200], bb[2200];
        const char *arrow = strstr(ck, " -> ");
        if (arrow) {
            snprintf(a, sizeof a, "%.*s", (int)(arrow - ck), ck);
            snprintf(bb, sizeof bb, "%s", arrow + 4);
        } else {
            snprintf(a, sizeof a, "%s", ck);
            bb[0] = '\0';
        }
        char *e;
        if ((e = strstr(a, ".h5")) && !e[3]) *e = '\0';
        if ((e = strstr(bb, ".h5")) && !e[3]) *e = '\0';
        char raw[400];
        snprintf(raw, sizeof raw, "%.180s -> %.180s", basename_of(a), basename_of(bb));
        mr_rep_clean_str(pairs[p], sizeof pairs[p], raw);
        fprintf(dat.fp, "%s# block %d: %s\n", p ? "\n\n" : "", p, pairs[p]);
        for (int l = 0; l < L; l++) {
            fprintf(dat.fp, "\"block %d\"", R->m->layers[l]);
            FOR_SEL(j, g) {
                const mr_res_group *gr = &r->groups[R->g0 + g];
                if (p >= gr->n_fluct) {
                    fprintf(dat.fp, " NaN NaN NaN NaN NaN NaN");
                    continue;
                }
                const mr_cell_summary *c = &r->cells[gr->fluct[p]];
                const double *f1 = c->flip_top1 + 3 * l, *fk = c->flip_set + 3 * l;
                fprintf(dat.fp, " %.8g %.8g %.8g %.8g %.8g %.8g", 100 * f1[0], 100 * f1[1],
                        100 * f1[2], 100 * fk[0], 100 * fk[1], 100 * fk[2]);
                if (100 * f1[2] > hi) hi = 100 * f1[2];
            }
            fputc('\n', dat.fp);
        }
    }
    int cols = P <= 3 ? P : 3, rows = (P + cols - 1) / cols;
    int pw = cols * (140 + L * (R->ns * 18 + 24));
    if (pw < 1000) pw = 1000;
    if (pw > 2400) pw = 2400;
    int ph = rows * 400 + 46 + 21 * key_rows(R->ns);
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, rows * 2.2 + 0.3 + 0.14 * key_rows(R->ns), 8);
    gp_groups(R, gp.fp);
    gp_layer_note(R, gp.fp);
    fprintf(gp.fp, "array pair[%d] = [", P);
    for (int p = 0; p < P; p++) {
        if (p) fputs(", ", gp.fp);
        mr_rep_gp_str(gp.fp, pairs[p]);
    }
    fprintf(gp.fp, "]\nP = %d\n", P);
    char title[300];
    snprintf(title, sizeof title, "%s: routing fluctuation between consecutive checkpoints (top-1 "
             "expert flip on clean data; error bars: %g%% CI)", R->m->name, 100 * r->level);
    gp_multi_begin(R, gp.fp, title, 1, cols, rows, 0.0, 1.0, 0, ph);
    fprintf(gp.fp, "set style data histograms\nset style histogram errorbars gap 1 lw 1\n"
                   "set style fill solid 0.85 border rgb \"#333333\"\nset boxwidth 0.9 relative\n"
                   "set grid noxtics ytics\nset xtics scale 0\nset xrange [-0.55:%d.45]\n"
                   "set ylabel \"top-1 flip (%%)\"\nset yrange [0:%.6g]\n"
                   "set lmargin 8\nset rmargin 2\nset tmargin 2\nset bmargin 2.5\n",
            L - 1, hi > 0 ? hi * 1.12 : 1.0);
    fprintf(gp.fp, "do for [p=1:P] {\n    eval panel(p)\n    set title pair[p]\n"
                   "    plot for [g=1:G] datafile index (p-1) using (column(6*g-4)):(column(6*g-3)):"
                   "(column(6*g-2)):xtic(1) ls g dt 1 lw 1 notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ---- expert-load heatmaps ---- */
static int fig_load(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe, E = R->m->E;
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300];
    snprintf(what, sizeof what, "expert load on clean data (share of top-k assignments x E; "
             "1 = uniform), layer x expert, per router@k");
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Block g: router@k g (label order of the .gp). Rows: expert  layer_position  "
                    "load*E\n# (layer_position 0..%d = MoE blocks", L - 1);
    for (int l = 0; l < L; l++) fprintf(dat.fp, " %d", R->m->layers[l]);
    fprintf(dat.fp, ")\n");
    double hi = 0;
    FOR_SEL(j, g) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        fprintf(dat.fp, "%s# block %d: %s\n", j ? "\n\n" : "", j, gr->label);
        for (int l = 0; l < L; l++) {
            for (int e = 0; e < E; e++) {
                double v = gr->clean >= 0 ? r->cells[gr->clean].load[l * E + e] * E : NAN;
                fprintf(dat.fp, "%d %d %.8g\n", e, l, v);
                if (isfinite(v) && v > hi) hi = v;
            }
            if (l + 1 < L) fputc('\n', dat.fp);
        }
    }
    int cols = R->ns <= 3 ? R->ns : R->ns <= 4 ? 2 : R->ns <= 9 ? 3 : 4;
    int rows = (R->ns + cols - 1) / cols;
    int cw = E <= 16 ? 46 : E <= 64 ? 14 : 6, chh = L <= 8 ? 40 : 16;
    int panel_w = E * cw + 100, panel_h = L * chh + 90;
    int cbar = 110;
    int pw = cols * panel_w + cbar, ph = rows * panel_h + 40;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, 0.35 + rows * (0.75 + 0.25 * L), 8);
    gp_groups(R, gp.fp);
    fprintf(gp.fp, "E = %d\nL = %d\n", E, L);
    fprintf(gp.fp, "# layout: %d x %d panels, the colour bar on the right\n", rows, cols);
    fprintf(gp.fp, "NCOL = %d\nNROW = %d\nLEFT = 0\nRIGHT = %.4f\nBOT = 0\nTOP = %.4f\n", cols, rows,
            1.0 - (double)cbar / pw, 1.0 - 36.0 / ph);
    fprintf(gp.fp, "PW = (RIGHT - LEFT) / NCOL\nPH = (TOP - BOT) / NROW\n"
                   "panel(i) = sprintf(\"set origin %%g, %%g; set size %%g, %%g\", LEFT + ((i-1) %% NCOL) * PW, "
                   "BOT + (NROW - 1 - (i-1) / NCOL) * PH, PW, PH)\n");
    fprintf(gp.fp, "set multiplot\n");
    fprintf(gp.fp, "set label 99 \"%s: expert load x E on clean data (1 = uniform)\" at screen 0.5, "
                   "screen %.4f center\n", R->m->name, 1.0 - 18.0 / ph);
    fprintf(gp.fp, "set palette defined (0 \"#ffffff\", 1 \"#9ecae1\", 2 \"#3182bd\", 3 \"#08306b\")\n"
                   "cbmax = %.6g\nset cbrange [0:cbmax]\n"
                   "set colorbox user origin screen %.4f, screen 0.1 size screen %.4f, screen %.4f\n"
                   "set cbtics scale 0.5\n",
            hi > 0 ? hi : 1.0, 1.0 - 0.7 * cbar / pw, 18.0 / pw, 1.0 - 0.1 - 60.0 / ph);
    fprintf(gp.fp, "set xrange [-0.5:E-0.5]\nset yrange [-0.5:L-0.5]\nset xlabel \"expert\" offset 0,0.7\n"
                   "set xtics 0,%d,E-1 scale 0\nunset grid\nset ytics scale 0 (", E <= 16 ? 1 : E <= 64 ? 4 : 16);
    for (int l = 0; l < L; l++) fprintf(gp.fp, "%s\"block %d\" %d", l ? ", " : "", R->m->layers[l], l);
    fprintf(gp.fp, ")\nunset key\nset lmargin 9\nset rmargin 2\nset tmargin 2\nset bmargin 3\n"
                   "valfont = fmt eq \"pdf\" ? \",5\" : \",9\"\n");
    int show_vals = E <= 16 && L <= 8;
    fprintf(gp.fp, "do for [g=1:G] {\n    eval panel(g)\n    set title label[g]\n"
                   "    plot datafile index (g-1) using 1:2:3 with image%s\n    unset label 99\n}\nunset multiplot\n",
            show_vals ? ", \\\n         '' index (g-1) using 1:2:(sprintf(\"%.2f\", $3)):($3 > 0.6 * "
                        "cbmax ? 0xffffff : 0x222222) with labels font valfont tc rgb variable" : "");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ---- accuracy vs active experts k ---- */
static int fig_k(rep *R, const char *name)
{
    const mr_results *r = R->r;
    mr_textbuf dat, gp;
    MR_TRY(mr_textbuf_open(&dat));
    if (mr_textbuf_open(&gp) != MR_OK) {
        mr_textbuf_discard(&dat);
        return MR_ENOMEM;
    }
    char what[300];
    snprintf(what, sizeof what, "%s vs the number of active experts k per router (the "
             "self-slimmable curve): clean, and mean over corruptions", mr_rep_prim_label(R));
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# One block per router variant (type and options; routers with the same ones,\n"
                    "# e.g. a k-sweep under another name, share a curve); rows sorted by k:\n"
                    "# k  clean mean ci_lo ci_hi  corrupted mean ci_lo ci_hi\n"
                    "# (corrupted: mean over every corruption and severity, NaN if not run; %g%% "
                    "bootstrap CI)\n", 100 * r->level);
    /* curves: distinct variants in group order */
    int nv = 0, first_group[64], npts[64], any_corrupt = 0, kmax = 1, kmin = 1 << 30;
    char names[64][200];
    for (int g = 0; g < R->G && nv < 64; g++) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        int v = 0;
        while (v < nv && strcmp(r->groups[R->g0 + first_group[v]].variant, gr->variant) != 0) v++;
        if (v == nv) {
            first_group[nv] = g;
            snprintf(names[nv++], sizeof names[0], "%s", gr->router);
        } else if (!strstr(names[v], gr->router) && strlen(names[v]) + strlen(gr->router) + 4 < sizeof names[0]) {
            strcat(names[v], " / ");
            strcat(names[v], gr->router);
        }
        any_corrupt |= R->agg[g].all_n > 0;
    }
    double lo = NAN, hi = NAN, clo = NAN, chi = NAN;
    char kt[400] = "";
    any_corrupt = 0; /* now: some curve has corrupted values at two k or more */
    for (int v = 0; v < nv; v++) {
        int ncorr = 0;
        npts[v] = 0;
        fprintf(dat.fp, "%s# block %d: %s\n", v ? "\n\n" : "", v, names[v]);
        const char *var = r->groups[R->g0 + first_group[v]].variant;
        int last_k = 0;
        for (;;) { /* the variant's groups by increasing k */
            int best = -1;
            for (int g = 0; g < R->G; g++) {
                const mr_res_group *gr = &r->groups[R->g0 + g];
                if (strcmp(gr->variant, var) == 0 && gr->k > last_k &&
                    (best < 0 || gr->k < r->groups[R->g0 + best].k))
                    best = g;
            }
            if (best < 0) break;
            const mr_res_group *gr = &r->groups[R->g0 + best];
            const gagg *a = &R->agg[best];
            last_k = gr->k;
            fprintf(dat.fp, "%d %.8g %.8g %.8g %.8g %.8g %.8g\n", gr->k, a->clean[0], a->clean[1],
                    a->clean[2], a->all[A_PRIM][0], a->all[A_PRIM][1], a->all[A_PRIM][2]);
            for (int j = 0; j < 3; j++) {
                mr_rep_mm(&lo, &hi, a->clean[j]);
                mr_rep_mm(&clo, &chi, a->all[A_PRIM][j]);
            }
            ncorr += isfinite(a->all[A_PRIM][0]);
            npts[v]++;
            if (gr->k > kmax) kmax = gr->k;
            if (gr->k < kmin) kmin = gr->k;
            char t[32];
            snprintf(t, sizeof t, " %d ", gr->k);
            if (!strstr(kt, t) && strlen(kt) + strlen(t) < sizeof kt - 1) strcat(kt, t);
        }
        any_corrupt |= ncorr >= 2;
    }
    mr_rep_range_pad(&lo, &hi);
    mr_rep_range_pad(&clo, &chi);
    mr_rep_gp_header(R, gp.fp, name, what, any_corrupt ? 1200 : 900, 520, 12, any_corrupt ? 7.0 : 3.4,
              any_corrupt ? 2.6 : 2.4, 8);
    fprintf(gp.fp, "# one line per router variant (colour as in the other figures)\narray router[%d] = [", nv);
    for (int v = 0; v < nv; v++) {
        if (v) fputs(", ", gp.fp);
        mr_rep_gp_str(gp.fp, names[v]);
    }
    fprintf(gp.fp, "]\n");
    for (int v = 0; v < nv; v++) {
        /* the colour of the variant's default-k group */
        int sg = first_group[v];
        for (int g = 0; g < R->G; g++)
            if (!strcmp(r->groups[R->g0 + g].variant, r->groups[R->g0 + sg].variant) && R->sty[g].dt == 1) {
                sg = g;
                break;
            }
        fprintf(gp.fp, "set style line %d lc rgb \"%s\" dt 1 lw 2 pt %d ps 1.0\n", v + 1,
                R->sty[sg].rgb, R->sty[sg].pt);
    }
    /* side-by-side slots at a shared k: the curve with most points in the middle */
    int centre = 0;
    for (int v = 1; v < nv; v++)
        if (npts[v] > npts[centre]) centre = v;
    fprintf(gp.fp, "array dx[%d] = [", nv);
    for (int v = 0, slot = 0; v < nv; v++) {
        int d = 0;
        if (v != centre) {
            slot++;
            d = slot % 2 ? (slot + 1) / 2 : -(slot / 2);
        }
        fprintf(gp.fp, "%s%d", v ? ", " : "", d);
    }
    fprintf(gp.fp, "]\n");
    fprintf(gp.fp, "NR = %d\n", nv);
    if (any_corrupt)
        fprintf(gp.fp, "set multiplot layout 1,2 margins 0.07,0.8,0.13,0.9 spacing 0.08,0.1\n");
    if (kmax > kmin)
        fprintf(gp.fp, "set logscale x 2\nset xrange [%g:%g]\n", kmin / 1.3, kmax * 1.3);
    else
        fprintf(gp.fp, "set xrange [%g:%g]\n", kmin - 1.0, kmin + 1.0);
    fprintf(gp.fp, "set xtics (");
    int first = 1;
    for (char *p = kt; *p;) {
        int k, used;
        if (sscanf(p, " %d %n", &k, &used) != 1) break;
        fprintf(gp.fp, "%s\"%d\" %d", first ? "" : ", ", k, k);
        first = 0;
        p += used;
    }
    fprintf(gp.fp, ")\nset xlabel \"active experts k\"\nset ylabel \"%s\"\n", mr_rep_prim_label(R));
    fprintf(gp.fp, "# curves side by side at a shared k, so their error bars do not hide each other\n"
                   "kx(k, i) = k * (1 + 0.03 * dx[i])\n");
    if (any_corrupt) {
        fprintf(gp.fp, "unset key\nset title \"%s: clean\"\nset yrange [%.6g:%.6g]\n"
                       "plot for [i=1:NR] datafile index (i-1) using (kx($1, i)):2:3:4 with yerrorlines ls i title router[i]\n",
                R->m->name, lo, hi);
        fprintf(gp.fp, "set key outside right center samplen 2.5\nset title \"mean over corruptions\"\n"
                       "set yrange [%.6g:%.6g]\n"
                       "plot for [i=1:NR] datafile index (i-1) using (kx($1, i)):5:6:7 with yerrorlines ls i title router[i]\n"
                       "unset multiplot\n", clo, chi);
    } else {
        fprintf(gp.fp, "# (no router ran under corruptions at two k or more: the corrupted columns are\n"
                       "# not plotted; plot using 1:5:6:7 to see them)\n");
        fprintf(gp.fp, "set key outside right center samplen 2.5\nset title \"%s: clean data\"\n"
                       "set yrange [%.6g:%.6g]\n"
                       "plot for [i=1:NR] datafile index (i-1) using (kx($1, i)):2:3:4 with yerrorlines ls i title router[i]\n",
                R->m->name, lo, hi);
    }
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ------------------------------------------------------------------ tables */

enum { BEST_NONE, BEST_MAX, BEST_MIN };

typedef struct col {
    const char *md, *tex;  /* headers */
    int best, decimals, has_ci;
} col;

/* v[row][col][3]; bold the best displayed value of every column */
static void table_best(const double *v, int rows, const col *cols, int nc, char *bold)
{
    for (int c = 0; c < nc; c++) {
        double best = NAN;
        for (int i = 0; i < rows; i++) {
            double x = v[((size_t)i * nc + c) * 3];
            if (!isfinite(x) || cols[c].best == BEST_NONE) continue;
            char s[64];
            snprintf(s, sizeof s, "%.*f", cols[c].decimals, x);
            x = atof(s); /* compare what is displayed: ties are all bold */
            if (!isfinite(best) || (cols[c].best == BEST_MAX ? x > best : x < best)) best = x;
        }
        for (int i = 0; i < rows; i++) {
            double x = v[((size_t)i * nc + c) * 3];
            char s[64];
            snprintf(s, sizeof s, "%.*f", cols[c].decimals, x);
            bold[i * nc + c] = isfinite(x) && isfinite(best) && atof(s) == best;
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

static int tables(rep *R)
{
    const mr_results *r = R->r;
    int G = R->G, C = r->n_corr, lm = R->lm;
    int has_fluct = 0;
    for (int g = 0; g < G; g++) has_fluct |= R->agg[g].fluct_n > 0;
    /* ---- summary: router x overall ---- */
    col sc[10] = {
        {lm ? "clean bpc" : "clean acc (%)", lm ? "Clean bpc" : "Clean acc.\\ (\\%)", lm ? BEST_MIN : BEST_MAX, lm ? 3 : 2, 1},
        {lm ? "corrupted bpc" : "corrupted acc (%)", lm ? "Corr.\\ bpc" : "Corr.\\ acc.\\ (\\%)", lm ? BEST_MIN : BEST_MAX, lm ? 3 : 2, 1},
        {lm ? "Δ bpc" : "Δ acc (pp)", lm ? "$\\Delta$ bpc" : "$\\Delta$ acc.\\ (pp)", BEST_MIN, lm ? 3 : 2, 1},
        {"mCE (%)", "mCE (\\%)", BEST_MIN, 2, 0},
        {"rel. mCE (%)", "Rel.\\ mCE (\\%)", BEST_MIN, 2, 0},
        {"flip top-1 (%)", "Flip top-1 (\\%)", BEST_MIN, 2, 1},
        {"flip top-k (%)", "Flip top-$k$ (\\%)", BEST_MIN, 2, 1},
        {"pred. flip (%)", "Pred.\\ flip (\\%)", BEST_MIN, 2, 1},
        {"entropy (nats)", "Entropy (nats)", BEST_NONE, 3, 1},
        {"ckpt flip (%)", "Ckpt.\\ flip (\\%)", BEST_MIN, 2, 1},
    };
    int nc = has_fluct ? 10 : 9;
    double *v = malloc(((size_t)G * 10 * 3 + (size_t)C * G * 6 * 3 + 1) * sizeof *v);
    char *bold = malloc((size_t)G * 10 + (size_t)C * G * 6 + 1);
    if (!v || !bold) {
        free(v);
        free(bold);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    for (int g = 0; g < G; g++) {
        const gagg *a = &R->agg[g];
        const mr_res_group *gr = &r->groups[R->g0 + g];
        double *row = v + (size_t)g * nc * 3;
        const double *src[10] = {a->clean, a->all[A_PRIM], a->all[A_DELTA], NULL, NULL,
                                 a->all[A_FLIP1], a->all[A_FLIPK], a->all[A_PRED], a->all[A_ENT],
                                 a->all[A_FLUCT]};
        for (int c = 0; c < nc; c++) {
            if (src[c])
                memcpy(row + 3 * c, src[c], 3 * sizeof *row);
            else
                row[3 * c] = row[3 * c + 1] = row[3 * c + 2] = NAN;
        }
        if (gr->has_ce) {
            row[3 * 3] = 100 * gr->mce;
            row[3 * 4] = 100 * gr->rel_mce;
        }
        if (!a->all_n)
            for (int c = 1; c < 8; c++) row[3 * c] = row[3 * c + 1] = row[3 * c + 2] = NAN;
        if (!a->fluct_n && nc > 9) row[27] = row[28] = row[29] = NAN;
    }
    table_best(v, G, sc, nc, bold);
    char name[200], cap[400];
    const char *mn = R->m->name;
    mr_textbuf t;
    int st = mr_textbuf_open(&t);
    if (st == MR_OK) {
        fprintf(t.fp, "| router |");
        for (int c = 0; c < nc; c++) fprintf(t.fp, " %s |", sc[c].md);
        fprintf(t.fp, "\n|---|");
        for (int c = 0; c < nc; c++) fprintf(t.fp, "---:|");
        fputc('\n', t.fp);
        for (int g = 0; g < G; g++) {
            fprintf(t.fp, "| ");
            mr_rep_md_str(t.fp, r->groups[R->g0 + g].label);
            fprintf(t.fp, " |");
            for (int c = 0; c < nc; c++) cell_md(t.fp, v + ((size_t)g * nc + c) * 3, &sc[c], bold[g * nc + c]);
            fputc('\n', t.fp);
        }
        snprintf(name, sizeof name, "table-%s-summary.md", mn);
        st = mr_textbuf_commit(&t, R->dir, name);
        R->info->n_tables++;
    }
    if (st == MR_OK) st = mr_textbuf_open(&t);
    if (st == MR_OK) {
        fprintf(t.fp, "%% %s: written by moe-robust report; needs \\usepackage{booktabs}\n", "summary table");
        fprintf(t.fp, "\\begin{table*}[t]\n\\centering\n\\small\n\\caption{");
        tex_str(t.fp, mn);
        snprintf(cap, sizeof cap, ": robustness per router (mean $\\pm$ half-width of the %g\\%% "
                 "bootstrap CI over %zu samples; corrupted = mean over %d corruptions and their "
                 "severities; mCE relative to ", 100 * r->level, R->n, C);
        fputs(cap, t.fp);
        tex_str(t.fp, r->reference);
        fprintf(t.fp, "; best per column in bold).}\n\\label{tab:");
        tex_str(t.fp, mn);
        fprintf(t.fp, "-summary}\n\\begin{tabular}{l");
        for (int c = 0; c < nc; c++) fputc('r', t.fp);
        fprintf(t.fp, "}\n\\toprule\nRouter");
        for (int c = 0; c < nc; c++) fprintf(t.fp, " & %s", sc[c].tex);
        fprintf(t.fp, " \\\\\n\\midrule\n");
        for (int g = 0; g < G; g++) {
            tex_str(t.fp, r->groups[R->g0 + g].label);
            for (int c = 0; c < nc; c++) cell_tex(t.fp, v + ((size_t)g * nc + c) * 3, &sc[c], bold[g * nc + c]);
            fprintf(t.fp, " \\\\\n");
        }
        fprintf(t.fp, "\\bottomrule\n\\end{tabular}\n\\end{table*}\n");
        snprintf(name, sizeof name, "table-%s-summary.tex", mn);
        st = mr_textbuf_commit(&t, R->dir, name);
        R->info->n_tables++;
    }
    /* ---- router x corruption ---- */
    col cc[6] = {
        sc[0], sc[1], sc[2],
        {"CE (%)", "CE (\\%)", BEST_MIN, 2, 0},
        sc[5],
        {"entropy (nats)", "Entropy (nats)", BEST_NONE, 3, 1},
    };
    cc[1].md = lm ? "corrupted bpc" : "corrupted acc (%)";
    double *w = v + (size_t)G * 10 * 3;
    char *wb = bold + (size_t)G * 10;
    for (int c = 0; c < C; c++)
        for (int g = 0; g < G; g++) {
            const gagg *a = &R->agg[g];
            const mr_res_group *gr = &r->groups[R->g0 + g];
            double *row = w + ((size_t)c * G + g) * 6 * 3;
            const double *pc = a->pc + (size_t)c * NC * 3;
            memcpy(row, a->clean, 3 * sizeof *row);
            memcpy(row + 3, pc + 3 * C_PRIM, 3 * sizeof *row);
            memcpy(row + 6, pc + 3 * C_DELTA, 3 * sizeof *row);
            row[9] = 100 * gr->ce[c];
            row[10] = row[11] = NAN;
            memcpy(row + 12, pc + 3 * C_FLIP1, 3 * sizeof *row);
            memcpy(row + 15, pc + 3 * C_ENT, 3 * sizeof *row);
            if (!a->pc_n[c])
                for (int j = 3; j < 18; j++) row[j] = NAN;
        }
    for (int c = 0; c < C; c++) table_best(w + (size_t)c * G * 18, G, cc, 6, wb + (size_t)c * G * 6);
    if (st == MR_OK && C > 0) st = mr_textbuf_open(&t);
    if (st == MR_OK && C > 0) {
        fprintf(t.fp, "| corruption | router |");
        for (int c = 0; c < 6; c++) fprintf(t.fp, " %s |", cc[c].md);
        fprintf(t.fp, "\n|---|---|");
        for (int c = 0; c < 6; c++) fprintf(t.fp, "---:|");
        fputc('\n', t.fp);
        for (int c = 0; c < C; c++)
            for (int g = 0; g < G; g++) {
                if (!R->agg[g].pc_n[c]) continue;
                fprintf(t.fp, "| ");
                mr_rep_md_str(t.fp, r->corr[c]);
                fprintf(t.fp, " | ");
                mr_rep_md_str(t.fp, r->groups[R->g0 + g].label);
                fprintf(t.fp, " |");
                for (int j = 0; j < 6; j++)
                    cell_md(t.fp, w + (((size_t)c * G + g) * 6 + j) * 3, &cc[j], wb[(c * G + g) * 6 + j]);
                fputc('\n', t.fp);
            }
        snprintf(name, sizeof name, "table-%s-corruptions.md", mn);
        st = mr_textbuf_commit(&t, R->dir, name);
        R->info->n_tables++;
    }
    if (st == MR_OK && C > 0) st = mr_textbuf_open(&t);
    if (st == MR_OK && C > 0) {
        fprintf(t.fp, "%% router x corruption table: written by moe-robust report; needs "
                      "\\usepackage{booktabs} (and longtable-style splitting if it runs long)\n");
        fprintf(t.fp, "\\begin{table*}[t]\n\\centering\n\\small\n\\caption{");
        tex_str(t.fp, mn);
        snprintf(cap, sizeof cap, ": robustness per corruption (mean over severities $\\pm$ "
                 "half-width of the %g\\%% bootstrap CI; CE relative to ", 100 * r->level);
        fputs(cap, t.fp);
        tex_str(t.fp, r->reference);
        fprintf(t.fp, "; best per corruption in bold).}\n\\label{tab:");
        tex_str(t.fp, mn);
        fprintf(t.fp, "-corruptions}\n\\begin{tabular}{ll");
        for (int c = 0; c < 6; c++) fputc('r', t.fp);
        fprintf(t.fp, "}\n\\toprule\nCorruption & Router");
        for (int c = 0; c < 6; c++) fprintf(t.fp, " & %s", cc[c].tex);
        fprintf(t.fp, " \\\\\n");
        for (int c = 0; c < C; c++) {
            fprintf(t.fp, "\\midrule\n");
            int first = 1;
            for (int g = 0; g < G; g++) {
                if (!R->agg[g].pc_n[c]) continue;
                if (first) tex_str(t.fp, r->corr[c]);
                first = 0;
                fprintf(t.fp, " & ");
                tex_str(t.fp, r->groups[R->g0 + g].label);
                for (int j = 0; j < 6; j++)
                    cell_tex(t.fp, w + (((size_t)c * G + g) * 6 + j) * 3, &cc[j], wb[(c * G + g) * 6 + j]);
                fprintf(t.fp, " \\\\\n");
            }
        }
        fprintf(t.fp, "\\bottomrule\n\\end{tabular}\n\\end{table*}\n");
        snprintf(name, sizeof name, "table-%s-corruptions.tex", mn);
        st = mr_textbuf_commit(&t, R->dir, name);
        R->info->n_tables++;
    }
    free(v);
    free(bold);
    return st;
}

/* ------------------------------------------------------------------ gallery */

static void utf8(FILE *fp, int cp)
{
    if (cp == '\n') {
        fputs("\xe2\x86\xb5", fp); /* ↵ */
    } else if (cp < 32 || cp == 127) {
        fputc('?', fp);
    } else if (cp < 0x80) {
        fputc(cp, fp);
    } else if (cp < 0x800) {
        fputc(0xC0 | (cp >> 6), fp);
        fputc(0x80 | (cp & 63), fp);
    } else if (cp < 0x10000) {
        fputc(0xE0 | (cp >> 12), fp);
        fputc(0x80 | ((cp >> 6) & 63), fp);
        fputc(0x80 | (cp & 63), fp);
    } else {
        fputc(0xF0 | (cp >> 18), fp);
        fputc(0x80 | ((cp >> 12) & 63), fp);
        fputc(0x80 | ((cp >> 6) & 63), fp);
        fputc(0x80 | (cp & 63), fp);
    }
}

static int text_gallery(rep *R, const mr_dataset *d)
{
    const mr_results *r = R->r;
    const char *mpath = NULL;
    for (int i = 0; i < r->n_models && !mpath; i++)
        if (r->models[i].task == MR_TASK_LM && r->models[i].path[0]) mpath = r->models[i].path;
    MR_REQUIRE(mpath, MR_EINPUT, "no language model path in the config");
    mr_model *m = NULL;
    MR_TRY(mr_model_load(&m, mpath));
    int st = MR_OK;
    if (!m->vocab) st = mr_error_set(MR_EINPUT, "%s: no /vocab", mpath);
    mr_corrupt_ws *ws = NULL;
    int cols = d->cols, show = cols < 96 ? cols : 96;
    int32_t *out = malloc((size_t)cols * sizeof *out + 1);
    if (st == MR_OK && !out) st = mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) st = mr_corrupt_ws_alloc(&ws, 0, 0, 0, cols);
    mr_textbuf t;
    if (st == MR_OK) st = mr_textbuf_open(&t);
    if (st != MR_OK) {
        free(out);
        mr_corrupt_ws_free(ws);
        mr_model_free(m);
        return st;
    }
    fprintf(t.fp, "%-22s ", "clean");
    for (int i = 0; i < show; i++) utf8(t.fp, m->vocab[d->tokens[i]]);
    fputc('\n', t.fp);
    for (int c = 0; st == MR_OK && c < r->n_corr; c++) {
        const mr_corruption_type *ty = mr_corruption_lookup(r->corr[c]);
        if (!ty || ty->modality != MR_MOD_TEXT) continue;
        for (int s = 1; st == MR_OK && s <= MR_SEVERITY_MAX; s++) {
            st = mr_corrupt_tokens(out, d->tokens, 1, cols, m->vocab, m->cfg.vocab_size, ty, s,
                                   r->seed, 0, ws);
            if (st != MR_OK) break;
            char lab[64];
            snprintf(lab, sizeof lab, "%s:%d", ty->name, s);
            fprintf(t.fp, "%-22s ", lab);
            for (int i = 0; i < show; i++) utf8(t.fp, m->vocab[out[i]]);
            fputc('\n', t.fp);
        }
    }
    if (st == MR_OK)
        st = mr_textbuf_commit(&t, R->dir, "gallery.txt");
    else
        mr_textbuf_discard(&t);
    free(out);
    mr_corrupt_ws_free(ws);
    mr_model_free(m);
    return st;
}

/* the gallery is an extra: failures are noted in info->gallery, never fatal */
static void gallery(rep *R)
{
    const mr_results *r = R->r;
    char *msg = R->info->gallery;
    size_t cap = sizeof R->info->gallery;
    if (!R->o->gallery) {
        snprintf(msg, cap, "not drawn (--no-gallery)");
        return;
    }
    if (!r->data[0]) {
        snprintf(msg, cap, "not drawn: the config names no data file");
        return;
    }
    struct stat sb;
    char data[1100];
    mr_rep_clean_str(data, sizeof data, r->data);
    if (stat(r->data, &sb) != 0) {
        snprintf(msg, cap, "not drawn: the run's data file %.900s is not here (paths in the config "
                 "are relative to where `moe-robust run` started)", data);
        return;
    }
    mr_dataset *d = NULL;
    int st = mr_dataset_load(&d, r->data, 1);
    if (st == MR_OK && d->kind == MR_DATA_IMAGES) {
        mr_gallery_opts go;
        mr_gallery_opts_init(&go);
        go.seed = r->seed;
        go.index = 0;
        char path[1300];
        snprintf(path, sizeof path, "%s/fig-gallery.png", R->dir);
        mr_gallery_image gi;
        st = mr_gallery_render(&gi, d->images, d->h, d->w, d->c, &go);
        if (st == MR_OK) st = mr_png_write(path, gi.pixels, gi.w, gi.h, gi.C);
        mr_gallery_image_free(&gi);
        if (st == MR_OK)
            snprintf(msg, cap, "fig-gallery.png");
    } else if (st == MR_OK) {
        st = text_gallery(R, d);
        if (st == MR_OK) snprintf(msg, cap, "gallery.txt");
    }
    if (st != MR_OK) {
        char why[900];
        mr_rep_clean_str(why, sizeof why, mr_error_message());
        snprintf(msg, cap, "not drawn: %s", why);
    }
    mr_dataset_free(d);
}

/* ------------------------------------------------------------------ index */

void mr_rep_index_fig(rep *R, FILE *fp, const char *name)
{
    for (int i = 0; i < R->n_figs; i++) {
        const fig *f = &R->figs[i];
        if (strcmp(f->name, name) != 0) continue;
        fprintf(fp, "### %c%s\n\n", toupper((unsigned char)f->title[0]), f->title + 1);
        if (strcmp(R->fmt, "pdf") == 0)
            fprintf(fp, "[%s.pdf](%s.pdf)", name, name);
        else
            fprintf(fp, "![%s](%s.%s)", name, name, R->fmt);
        if (!f->rendered) fprintf(fp, " (not rendered yet: run the script with gnuplot)");
        fprintf(fp, "\n\ndata: [%s.dat](%s.dat) · script: [%s.gp](%s.gp)\n\n", name, name, name, name);
    }
}

int mr_rep_append_file(FILE *fp, const char *dir, const char *name)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *in = fopen(path, "r");
    if (!in) return 0;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, fp);
    fclose(in);
    return 1;
}

/* docs/routers.md, `momentum`: with gamma = 1 (the default and every shipped momentum
 * model's) the first two MoE blocks route exactly as softmax, so on a model with at most
 * two MoE blocks every routing metric of a momentum row equals softmax's by construction.
 * Said under the tables wherever such rows appear. */
static void momentum_note(FILE *fp, const mr_results *r, int model)
{
    const mr_res_model *m = &r->models[model];
    int any = 0;
    for (int g = m->first_group; g < m->first_group + m->n_groups; g++)
        any |= strcmp(r->groups[g].router_type, "momentum") == 0;
    if (!any || m->n_moe > 2) return;
    fprintf(fp, "Note on the momentum rows: this model has %d MoE block%s; with `gamma = 1` (the "
                "default, and the value the shipped momentum models store) momentum routes the "
                "first two MoE blocks exactly as softmax, so its routing metrics (entropy, load, "
                "routing flips, fluctuation) equal softmax's on the same model by construction; "
                "only accuracy, loss and prediction flips can differ (docs/routers.md, "
                "`momentum`).\n\n",
            m->n_moe, m->n_moe == 1 ? "" : "s");
}

static int write_index(rep *R)
{
    const mr_results *r = R->r;
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    char src[1200];
    mr_rep_clean_str(src, sizeof src, r->file);
    fprintf(fp, "# moe-robust report\n\n");
    fprintf(fp, "Source: `%s` (config hash `%s`, %d cells). Confidence intervals: %g%% "
                "percentile bootstrap over samples, B = %d, seed %llu. Reference router (CE, entropy "
                "ratio): `%s`.\n\n",
            src, r->config_hash, r->n_cells, 100 * r->level, r->bootstrap,
            (unsigned long long)r->seed, r->reference);
    if (R->info->gnuplot_missing)
        fprintf(fp, "**Figures were not rendered: gnuplot is not installed** (Debian: `apt-get "
                    "install gnuplot-nox`). Data, scripts and tables are complete; render with "
                    "`gnuplot FIG.gp` in this directory.\n\n");
    fprintf(fp, "Every figure has its data (`.dat`) and gnuplot script (`.gp`) beside it: restyle "
                "the script and run `gnuplot -e \"fmt='pdf'\" NAME.gp` here (`png`, `pdf` or "
                "`svg`).\n\n");
    fprintf(fp, "Contents:");
    for (int mi = 0; mi < r->n_models; mi++) fprintf(fp, " [model %s](#model-%s) ·", r->models[mi].name, r->models[mi].name);
    fprintf(fp, "%s", R->n_compress ? " [compression](#compression) ·" : "");
    fprintf(fp, " [corruption gallery](#corruption-gallery)\n\n");
    for (int mi = 0; mi < r->n_models; mi++) {
        const mr_res_model *m = &r->models[mi];
        fprintf(fp, "## Model %s\n\n", m->name);
        char mp[1100];
        mr_rep_clean_str(mp, sizeof mp, m->path);
        fprintf(fp, "`%s`: %s, %d samples, MoE blocks", mp[0] ? mp : m->name,
                m->task == MR_TASK_LM ? "char-level LM (primary metric: bits per character)"
                                      : "classifier (primary metric: accuracy)", m->n);
        for (int l = 0; l < m->n_moe; l++) fprintf(fp, "%s%d", l ? ", " : " ", m->layers[l]);
        fprintf(fp, ", %d experts; %d router@k groups; %d corruptions.\n\n", m->E, m->n_groups, r->n_corr);
        fprintf(fp, "### Summary\n\nMean ± half-width of the %g%% CI. Corrupted = mean over every "
                    "corruption and severity; Δ = %s; mCE against `%s` (100 = as robust as it); "
                    "flips = clean vs corrupted input, mean over MoE layers; entropy = clean routing "
                    "entropy, mean over layers; ckpt flip = top-1 flip between consecutive "
                    "checkpoints. Best per column in bold (entropy has no better direction).\n\n",
                100 * r->level, m->task == MR_TASK_LM ? "corrupted − clean bpc" : "clean − corrupted accuracy",
                r->reference);
        char name[200];
        snprintf(name, sizeof name, "table-%s-summary.md", m->name);
        mr_rep_append_file(fp, R->dir, name);
        fprintf(fp, "\n");
        momentum_note(fp, r, mi);
        fprintf(fp, "\nLaTeX: [table-%s-summary.tex](table-%s-summary.tex) · per corruption: "
                    "[table-%s-corruptions.md](table-%s-corruptions.md), "
                    "[table-%s-corruptions.tex](table-%s-corruptions.tex)\n\n",
                m->name, m->name, m->name, m->name, m->name, m->name);
        static const char *const order[] = {"severity-mean", "severity", "flip", "entropy",
                                            "fluct", "load", "k"};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            snprintf(name, sizeof name, "fig-%s-%s", m->name, order[i]);
            mr_rep_index_fig(R, fp, name);
        }
    }
    mr_report_compress_index(R, fp);
    fprintf(fp, "## Corruption gallery\n\n");
    const char *g = R->info->gallery;
    if (strcmp(g, "fig-gallery.png") == 0)
        fprintf(fp, "Sample 0 of the data under every image corruption (rows) at severities 1..5 "
                    "(columns; the first is clean), seed %llu:\n\n![corruption gallery](fig-gallery.png)\n",
                (unsigned long long)r->seed);
    else if (strcmp(g, "gallery.txt") == 0) {
        fprintf(fp, "The first characters of sample 0 under every text corruption and severity "
                    "(seed %llu; ↵ = newline):\n\n```\n", (unsigned long long)r->seed);
        mr_rep_append_file(fp, R->dir, "gallery.txt");
        fprintf(fp, "```\n");
    } else {
        fprintf(fp, "Gallery %s\n", g);
    }
    return mr_textbuf_commit(&t, R->dir, "report.md");
}

/* ------------------------------------------------------------------ driver */

enum { SEL_ALL, SEL_CORRUPT, SEL_FLUCT };

/* choose the groups the next figure shows; 0 if none */
static int select_groups(rep *R, int kind)
{
    R->ns = 0;
    for (int g = 0; g < R->G; g++) {
        const mr_res_group *gr = &R->r->groups[R->g0 + g];
        if (kind == SEL_ALL || (kind == SEL_CORRUPT && R->agg[g].all_n > 0) ||
            (kind == SEL_FLUCT && gr->n_fluct > 0))
            R->sel[R->ns++] = g;
    }
    return R->ns;
}

static int report_model(rep *R, int mi)
{
    const mr_results *r = R->r;
    R->mi = mi;
    R->m = &r->models[mi];
    R->g0 = R->m->first_group;
    R->G = R->m->n_groups;
    R->lm = R->m->task == MR_TASK_LM;
    R->n = (size_t)R->m->n;
    R->sty = calloc((size_t)R->G, sizeof *R->sty);
    R->agg = calloc((size_t)R->G, sizeof *R->agg);
    R->sel = calloc((size_t)R->G, sizeof *R->sel);
    int st = R->sty && R->agg && R->sel ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) make_styles(R);
    for (int g = 0; st == MR_OK && g < R->G; g++) st = aggregate_group(R, g);
    if (st == MR_OK) st = run_cis(R);
    for (int i = 0; i < R->n_jobs; i++) free(R->jobs[i].x);
    R->n_jobs = 0;
    for (int g = 0; st == MR_OK && g < R->G; g++) {
        static const int from[NSUM] = {-1, A_PRIM, A_DELTA, A_ENT, A_FLIP1, A_FLIPK, A_PRED};
        for (int k = 0; k < NSUM; k++)
            for (int j = 0; j < 3; j++)
                R->summary[R->g0 + g][k][j] = k == SUM_CLEAN ? R->agg[g].clean[j] : R->agg[g].all[from[k]][j];
    }
    char name[200];
    const char *mn = R->m->name;
    if (st == MR_OK && select_groups(R, SEL_CORRUPT)) {
        snprintf(name, sizeof name, "fig-%s-severity-mean", mn);
        st = fig_severity_mean(R, name);
        snprintf(name, sizeof name, "fig-%s-severity", mn);
        if (st == MR_OK) st = fig_severity_grid(R, name);
        snprintf(name, sizeof name, "fig-%s-flip", mn);
        if (st == MR_OK) st = fig_flip(R, name);
    }
    snprintf(name, sizeof name, "fig-%s-entropy", mn);
    if (st == MR_OK && select_groups(R, SEL_ALL)) st = fig_entropy(R, name);
    snprintf(name, sizeof name, "fig-%s-fluct", mn);
    if (st == MR_OK && select_groups(R, SEL_FLUCT)) st = fig_fluct(R, name);
    snprintf(name, sizeof name, "fig-%s-load", mn);
    if (st == MR_OK && select_groups(R, SEL_ALL)) st = fig_load(R, name);
    snprintf(name, sizeof name, "fig-%s-k", mn);
    if (st == MR_OK && select_groups(R, SEL_ALL)) st = fig_k(R, name);
    if (st == MR_OK) st = tables(R);
    for (int g = 0; R->agg && g < R->G; g++) {
        free(R->agg[g].pc);
        free(R->agg[g].pc_n);
    }
    free(R->agg);
    free(R->sty);
    free(R->sel);
    R->agg = NULL;
    R->sty = NULL;
    R->sel = NULL;
    return st;
}

int mr_report_write(const mr_results *r, const mr_report_opts *o, mr_report_info *info)
{
    memset(info, 0, sizeof *info);
    const char *fmt = o->format ? o->format : "png";
    MR_REQUIRE(strcmp(fmt, "png") == 0 || strcmp(fmt, "pdf") == 0 || strcmp(fmt, "svg") == 0,
               MR_EINPUT, "--format %s: expected png, pdf or svg", fmt);
    if (o->out) {
        snprintf(info->out, sizeof info->out, "%s", o->out);
    } else {
        /* DIR/report beside results.h5 */
        char d[1000];
        snprintf(d, sizeof d, "%.990s", r->file);
        char *slash = strrchr(d, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(d, sizeof d, ".");
        snprintf(info->out, sizeof info->out, "%s/report", d);
    }
    /* only into a new or empty directory or an earlier report's (its marker, written
     * first, or report.md): never over a user's own files of the same names */
    MR_TRY(mr_fs_check_own_dir(info->out, MR_REPORT_MARKER, "report.md", "moe-robust report"));
    MR_TRY(mr_mkdir_p(info->out));
    char *marker = mr_fs_join(info->out, MR_REPORT_MARKER);
    int mst = marker ? mr_file_write(marker, "", 0) : mr_error_set(MR_ENOMEM, "out of memory");
    free(marker);
    MR_TRY(mst);
    mr_fs_remove_tmp(info->out); /* what a killed report left half-written */
    rep R = {.r = r, .o = o, .info = info, .dir = info->out, .fmt = fmt};
    R.summary = calloc((size_t)r->n_groups + 1, sizeof *R.summary);
    MR_REQUIRE(R.summary, MR_ENOMEM, "out of memory");
    int st = MR_OK;
    for (int mi = 0; st == MR_OK && mi < r->n_models; mi++) st = report_model(&R, mi);
    if (st == MR_OK) st = mr_report_compress(&R);
    if (st == MR_OK) gallery(&R);
    if (st == MR_OK) st = write_index(&R);
    free(R.jobs);
    free(R.figs);
    free(R.summary);
    if (st == MR_OK && R.render_failed)
        st = mr_error_set(MR_EFAILED, "%d figure(s) failed to render; first: %s", R.render_failed,
                          R.render_error);
    return st;
}
