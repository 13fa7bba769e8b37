/* Figures of the primary metric (accuracy, bits per character) against corruption
 * severity: mean over corruptions (fig-MODEL-severity-mean) and one panel per corruption
 * (fig-MODEL-severity). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

/* The plot elements of every group (variable g) at data block `index`: its CI band
 * (columns 3, 4), then its line (column 2) with `lines` options and, when `titled`, its
 * key title; with a right axis (mr_rep_right_axis) the collapsed groups first, on it. */
static void plot_bands(FILE *fp, int right, const char *g, const char *index, const char *lines,
                       int titled, const char *indent)
{
    for (int pass = right ? 0 : -1; pass < 2; pass++) {
        char c2[40], c3[40], c4[40];
        const char *ax = pass == 0 ? " axes x1y2" : "";
        fprintf(fp, "%sfor [%s=1:G] datafile index %s using 1:%s:%s%s with filledcurves ls %s "
                    "fs transparent solid 0.12 noborder notitle, \\\n",
                pass > (right ? 0 : -1) ? indent : "", g, index, mr_rep_gp_col(c3, sizeof c3, pass, g, 3),
                mr_rep_gp_col(c4, sizeof c4, pass, g, 4), ax, g);
        fprintf(fp, "%sfor [%s=1:G] datafile index %s using 1:%s%s with linespoints ls %s%s ", indent, g,
                index, mr_rep_gp_col(c2, sizeof c2, pass, g, 2), ax, g, lines);
        if (titled && pass)
            fprintf(fp, "title label[%s]", g);
        else
            fprintf(fp, "notitle");
        fprintf(fp, "%s\n", pass == 0 ? ", \\" : "");
        if (pass < 0) break;
    }
}

int mr_fig_severity_mean(rep *R, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    char what[300];
    snprintf(what, sizeof what, "%s vs corruption severity, mean over %d corruptions, per router@k",
             mr_rep_prim_label(R), R->r->n_corr);
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# severity 0 = clean. Bands: %g%% bootstrap CI over samples.\n"
                    "# One block per router@k (index i = label[i+1] in the .gp):\n"
                    "# severity  mean  ci_lo  ci_hi\n", 100 * R->r->level);
    double lo = NAN, hi = NAN, clo = NAN, chi = NAN; /* y ranges: others, collapsed */
    FOR_SEL(j, g) {
        const gagg *a = &R->agg[g];
        fprintf(dat.fp, "%s# block %d: %s\n", j ? "\n\n" : "", j, R->r->groups[R->g0 + g].label);
        const double *cl = a->clean[R->prim];
        int coll = mr_rep_collapsed(R, g);
        double *ylo = coll ? &clo : &lo, *yhi = coll ? &chi : &hi;
        if (a->has_clean) fprintf(dat.fp, "0 %.8g %.8g %.8g\n", cl[0], cl[1], cl[2]);
        for (int s = 0; s < MR_SEVERITY_MAX; s++)
            if (a->sev_n[s]) {
                const double *v = a->sev[R->prim][s];
                fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, v[0], v[1], v[2]);
                mr_rep_minmax(ylo, yhi, v[1]);
                mr_rep_minmax(ylo, yhi, v[2]);
            }
        mr_rep_minmax(ylo, yhi, cl[1]);
        mr_rep_minmax(ylo, yhi, cl[2]);
    }
    int right = mr_rep_right_axis(&lo, &hi, clo, chi);
    mr_rep_range_pad(&lo, &hi);
    mr_rep_gp_header(R, gp.fp, name, what, 900, 560, 12, 3.4, 2.5, 8);
    mr_rep_gp_groups(R, gp.fp);
    if (right) mr_rep_gp_right_groups(R, gp.fp);
    fprintf(gp.fp, "set title \"%s: %s, mean over %d corruptions\"\n", R->m->name,
            mr_rep_prim_label(R), R->r->n_corr);
    fprintf(gp.fp, "set xlabel \"severity (0 = clean)\"\nset ylabel \"%s\"\n", mr_rep_prim_label(R));
    fprintf(gp.fp, "set xrange [-0.2:%g]\nset xtics 0,1,%d\nset yrange [%.6g:%.6g]\n",
            MR_SEVERITY_MAX + 0.2, MR_SEVERITY_MAX, lo, hi);
    if (right) mr_rep_gp_right_axis(R, gp.fp, lo, hi, clo, chi, 1);
    /* the key below the plot: beside it, it took a third of a single-column figure */
    fprintf(gp.fp, "set key below center horizontal samplen 2.5 maxrows %d\n", (R->ns + 3) / 4 > 0 ? (R->ns + 3) / 4 : 1);
    fprintf(gp.fp, "plot ");
    plot_bands(gp.fp, right, "i", "(i-1)", "", 1, "     ");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

int mr_fig_severity_grid(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int C = r->n_corr;
    double scale = mr_metric_table[R->prim].scale;
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    char what[300];
    snprintf(what, sizeof what, "%s vs severity per corruption, per router@k", mr_rep_prim_label(R));
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# severity 0 = clean. Cell CIs (%g%% bootstrap) as stored in results.h5.\n"
                    "# Block c*G + g: corruption c, router@k g (G = %d; names in the .gp):\n"
                    "# severity  mean  ci_lo  ci_hi\n", 100 * r->level, R->ns);
    double lo = NAN, hi = NAN, clo = NAN, chi = NAN; /* y ranges: others, collapsed */
    for (int c = 0; c < C; c++)
        FOR_SEL(j, g) {
            int b = c * R->ns + j;
            const mr_res_group *gr = &r->groups[R->g0 + g];
            int coll = mr_rep_collapsed(R, g);
            double *ylo = coll ? &clo : &lo, *yhi = coll ? &chi : &hi;
            fprintf(dat.fp, "%s# block %d: %s / %s\n", b ? "\n\n" : "", b, r->corr[c], gr->label);
            const double *cl = R->agg[g].clean[R->prim];
            if (R->agg[g].has_clean) fprintf(dat.fp, "0 %.8g %.8g %.8g\n", cl[0], cl[1], cl[2]);
            for (int s = 0; s < MR_SEVERITY_MAX; s++) {
                int cell = gr->corrupt[c * MR_SEVERITY_MAX + s];
                if (cell < 0) continue;
                const mr_cell_summary *cs = &r->cells[cell];
                double v[3];
                for (int j = 0; j < 3; j++) v[j] = scale * cs->value[R->prim][j];
                fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, v[0], v[1], v[2]);
                mr_rep_minmax(ylo, yhi, v[1]);
                mr_rep_minmax(ylo, yhi, v[2]);
            }
            mr_rep_minmax(ylo, yhi, cl[1]);
            mr_rep_minmax(ylo, yhi, cl[2]);
        }
    int right = mr_rep_right_axis(&lo, &hi, clo, chi);
    mr_rep_range_pad(&lo, &hi);
    int cols = C <= 2 ? C : C <= 4 ? 2 : C <= 9 ? 3 : C <= 16 ? 4 : C <= 36 ? 6 : 8;
    int rows = (C + cols - 1) / cols;
    int pw = cols * 260 + 20, krows = mr_rep_key_rows(R, pw, 7.0);
    int ph = rows * 225 + 46 + 21 * krows + 10;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 11, 7.0, rows * 1.45 + 0.25 + 0.14 * krows, 7);
    mr_rep_gp_groups(R, gp.fp);
    if (right) mr_rep_gp_right_groups(R, gp.fp);
    fprintf(gp.fp, "array corr[%d] = [", C);
    for (int c = 0; c < C; c++) {
        if (c) fputs(", ", gp.fp);
        mr_rep_gp_str(gp.fp, r->corr[c]);
    }
    fprintf(gp.fp, "]\nC = %d\n", C);
    char title[300];
    snprintf(title, sizeof title, "%s: %s vs severity (0 = clean) per corruption; bands: %g%% CI",
             R->m->name, mr_rep_prim_label(R), 100 * r->level);
    mr_rep_gp_multi_begin(R, gp.fp, title, 0, cols, rows, 0.0, 1.0, 10, ph);
    fprintf(gp.fp, "set xrange [-0.3:%g]\nset xtics 0,1,%d scale 0.5\nset ytics scale 0.5\n"
                   "set yrange [%.6g:%.6g]\n",
            MR_SEVERITY_MAX + 0.3, MR_SEVERITY_MAX, lo, hi);
    if (right) mr_rep_gp_right_axis(R, gp.fp, lo, hi, clo, chi, 0);
    mr_rep_gp_panel_margins(gp.fp, 6, right ? 5 : 1.5, 0);
    fprintf(gp.fp, "do for [c=1:C] {\n    eval panel(c)\n    set title corr[c]\n    plot ");
    plot_bands(gp.fp, right, "g", "((c-1)*G + g-1)", " lw 1.5 ps 0.5", 0, "         ");
    fprintf(gp.fp, "}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
