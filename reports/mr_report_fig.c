/* What every figure of `moe-robust report` shares: the gnuplot script header (terminal per
 * format), the router@k line styles and key, multi-panel layouts, the data file header,
 * and emit (write NAME.dat and NAME.gp atomically, then render with gnuplot). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../analysis/mr_error.h"
#include "mr_gnuplot.h"
#include "mr_report_impl.h"

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

int mr_rep_fig_open(mr_textbuf *dat, mr_textbuf *gp)
{
    MR_TRY(mr_textbuf_open(dat));
    if (mr_textbuf_open(gp) != MR_OK) {
        mr_textbuf_discard(dat);
        return MR_ENOMEM;
    }
    return MR_OK;
}

/* The PDF figures' serif font: a Times-metric font where one is installed (Debian's
 * fonts-liberation, which scripts/bootstrap installs, or fonts-texgyre), else "Times",
 * which fontconfig substitutes (on a bare Debian with DejaVu Serif). report.md names it. */
const char *mr_rep_pdf_font(void)
{
    static const char *const have[][2] = {
        {"/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf", "Liberation Serif"},
        {"/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf", "Liberation Serif"},
        {"/usr/share/fonts/opentype/texgyre/texgyretermes-regular.otf", "TeX Gyre Termes"}};
    for (size_t i = 0; i < sizeof have / sizeof have[0]; i++)
        if (access(have[i][0], R_OK) == 0) return have[i][1];
    return "Times";
}

void mr_rep_gp_header(rep *R, FILE *fp, const char *name, const char *what, int png_w, int png_h,
                      int font, double pdf_w, double pdf_h, int pdf_font)
{
    char src[1200];
    R->png_w = png_w;
    R->pdf_w = pdf_w;
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
                "    set terminal pdfcairo noenhanced font \"%s,%d\" size %.2fin,%.2fin linewidth 0.7 pointscale 0.45\n"
                "} else {\n    if (fmt eq \"svg\") {\n"
                "        set terminal svg noenhanced font \"Helvetica,%d\" size %d,%d dynamic background \"white\"\n"
                "    } else {\n"
                "        set terminal pngcairo noenhanced font \"Helvetica,%d\" size %d,%d background \"white\"\n"
                "    }\n}\n",
            mr_rep_pdf_font(), pdf_font, pdf_w, pdf_h, font, png_w, png_h, font, png_w, png_h);
    fprintf(fp, "set output outfile\ndatafile = \"%s.dat\"\n", name);
    fprintf(fp, "set border lc rgb \"#444444\"\nset grid lc rgb \"#e0e0e0\" lt 1\n");
}

/* the groups' labels as a gnuplot array and their line styles 1..G */
void mr_rep_gp_groups(rep *R, FILE *fp)
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

/* layer tick labels "block N" */
void mr_rep_gp_layer_note(rep *R, FILE *fp)
{
    fprintf(fp, "# x: MoE blocks");
    for (int l = 0; l < R->m->n_moe; l++) fprintf(fp, " %d", R->m->layers[l]);
    fputc('\n', fp);
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
    if (st == MR_OK)
        st = mr_rep_gp_commit(R, name, gp);
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

void mr_rep_minmax(double *lo, double *hi, double v)
{
    if (!isfinite(v)) return;
    if (!isfinite(*lo) || v < *lo) *lo = v;
    if (!isfinite(*hi) || v > *hi) *hi = v;
}

/* Key columns of a figure png_w pixels (12 px font) and pdf_w inches (8 pt) wide: at most
 * 8, and no more than the entries that fit across both (an entry: its label, with
 * " (right axis)" for a collapsed router, and its line sample) */
static int key_cols(const rep *R, int png_w, double pdf_w)
{
    int G = R->ns, len = 1;
    FOR_SEL(j, g) {
        int n = (int)strlen(R->r->groups[R->g0 + g].label) + (mr_rep_collapsed(R, g) ? 13 : 0);
        if (n > len) len = n;
    }
    int c = G <= 8 ? G : (G + 1) / 2 < 8 ? (G + 1) / 2 : 8;
    int fit_png = (int)((png_w - 24) / (12 * (0.55 * len + 6)));
    int fit_pdf = (int)((pdf_w * 72 - 16) / (8 * (0.55 * len + 6)));
    if (fit_png < c) c = fit_png;
    if (fit_pdf < c) c = fit_pdf;
    return c < 1 ? 1 : c;
}

int mr_rep_key_rows(const rep *R, int png_w, double pdf_w)
{
    int c = key_cols(R, png_w, pdf_w);
    return (R->ns + c - 1) / c;
}

/* A multi-panel figure: a title line and a key strip on top, then NROW x NCOL panels
 * placed by `eval panel(i)` (i = 1..) between screen x LEFT..RIGHT and y BOT..TOP.
 * `boxes`: the key shows filled boxes (bar charts) instead of lines. */
void mr_rep_gp_multi_begin(rep *R, FILE *fp, const char *title, int boxes, int ncol, int nrow,
                           double left, double right, double bottom_px, double height_px)
{
    double title_px = 28, key_px = 18 + 21.0 * mr_rep_key_rows(R, R->png_w, R->pdf_w);
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
            key_cols(R, R->png_w, R->pdf_w));
    if (boxes)
        fprintf(fp, "plot for [g=1:G] NaN with boxes ls g dt 1 lw 1 fs solid 0.85 border rgb \"#333333\" title label[g]\n");
    else
        fprintf(fp, "plot for [g=1:G] NaN with linespoints ls g title label[g]\n");
    fprintf(fp, "unset label 99\nunset key\nset border\nset xtics\nset ytics\nset grid\n"
                "set autoscale xy\nunset lmargin\nunset rmargin\nunset tmargin\nunset bmargin\n");
}

void mr_rep_ckpt_name(char *out, size_t cap, const char *ck, int which)
{
    char a[2200];
    const char *arrow = strstr(ck, " -> ");
    if (which == 0)
        snprintf(a, sizeof a, "%.*s", arrow ? (int)(arrow - ck) : (int)strlen(ck), ck);
    else
        snprintf(a, sizeof a, "%s", arrow ? arrow + 4 : "");
    char *e = strstr(a, ".h5");
    if (e && !e[3]) *e = '\0';
    char raw[200];
    snprintf(raw, sizeof raw, "%.180s", mr_rep_basename(a));
    mr_rep_clean_str(out, cap, raw); /* user text: no control characters */
}

/* whether `name` is an executable on PATH */
static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    char dir[1024], full[1400];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)(n < sizeof dir ? n : sizeof dir - 1), path);
        snprintf(full, sizeof full, "%s/%s", dir[0] ? dir : ".", name);
        if (access(full, X_OK) == 0) return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

int mr_rep_figures_pdf(rep *R)
{
    R->info->figures_pdf = 0;
    if (!R->o->render || R->info->gnuplot_missing || !on_path("pdfunite")) return MR_OK;
    int pdf = strcmp(R->fmt, "pdf") == 0, n = 0;
    const char **pages = calloc((size_t)R->n_figs + 1, sizeof *pages);
    char (*names)[200] = calloc((size_t)R->n_figs + 1, sizeof *names);
    int st = pages && names ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; st == MR_OK && i < R->n_figs; i++) {
        if (!R->figs[i].rendered) continue;
        char script[200];
        snprintf(script, sizeof script, "%s.gp", R->figs[i].name);
        snprintf(names[n], sizeof names[n], "%s.%s", R->figs[i].name, pdf ? "pdf" : "page.pdf");
        /* png or svg figures: a pdfcairo page of each, removed once joined */
        if (!pdf && mr_gnuplot_run(R->dir, script, "pdf", names[n]) != MR_GNUPLOT_OK) continue;
        pages[n] = names[n];
        n++;
    }
    if (st == MR_OK && n > 0) {
        int rc = mr_pdfunite_run(R->dir, pages, n, "figures.pdf");
        R->info->figures_pdf = rc == MR_GNUPLOT_OK;
        if (rc == MR_GNUPLOT_FAILED) fprintf(stderr, "moe-robust report: %s\n", mr_error_message());
    }
    for (int i = 0; !pdf && i < n; i++) {
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", R->dir, pages[i]);
        unlink(p);
    }
    free(pages);
    free(names);
    return st;
}
