/* Figures of the primary metric (accuracy, bits per character) against corruption
 * severity: mean over corruptions (fig-MODEL-severity-mean) and one panel per corruption
 * (fig-MODEL-severity). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

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
    double lo = NAN, hi = NAN;
    FOR_SEL(j, g) {
        const gagg *a = &R->agg[g];
        fprintf(dat.fp, "%s# block %d: %s\n", j ? "\n\n" : "", j, R->r->groups[R->g0 + g].label);
        const double *cl = a->clean[R->prim];
        if (a->has_clean) fprintf(dat.fp, "0 %.8g %.8g %.8g\n", cl[0], cl[1], cl[2]);
        for (int s = 0; s < MR_SEVERITY_MAX; s++)
            if (a->sev_n[s]) {
                const double *v = a->sev[R->prim][s];
                fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, v[0], v[1], v[2]);
                if (mr_rep_collapsed(R, g)) continue; /* off scale (noted) */
                mr_rep_minmax(&lo, &hi, v[1]);
                mr_rep_minmax(&lo, &hi, v[2]);
            }
        if (mr_rep_collapsed(R, g)) continue;
        mr_rep_minmax(&lo, &hi, cl[1]);
        mr_rep_minmax(&lo, &hi, cl[2]);
    }
    mr_rep_range_pad(&lo, &hi);
    mr_rep_gp_header(R, gp.fp, name, what, 900, 560, 12, 3.4, 2.5, 8);
    mr_rep_gp_groups(R, gp.fp);
    fprintf(gp.fp, "set title \"%s: %s, mean over %d corruptions\"\n", R->m->name,
            mr_rep_prim_label(R), R->r->n_corr);
    fprintf(gp.fp, "set xlabel \"severity (0 = clean)\"\nset ylabel \"%s\"\n", mr_rep_prim_label(R));
    fprintf(gp.fp, "set xrange [-0.2:%g]\nset xtics 0,1,%d\nset yrange [%.6g:%.6g]\n",
            MR_SEVERITY_MAX + 0.2, MR_SEVERITY_MAX, lo, hi);
    mr_rep_gp_offscale(R, gp.fp);
    /* the key below the plot: beside it, it took a third of a single-column figure */
    fprintf(gp.fp, "set key below center horizontal samplen 2.5 maxrows %d\n", (R->ns + 3) / 4 > 0 ? (R->ns + 3) / 4 : 1);
    fprintf(gp.fp, "plot for [i=1:G] datafile index (i-1) using 1:3:4 with filledcurves ls i "
                   "fs transparent solid 0.12 noborder notitle, \\\n"
                   "     for [i=1:G] datafile index (i-1) using 1:2 with linespoints ls i title label[i]\n");
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
    double lo = NAN, hi = NAN;
    for (int c = 0; c < C; c++)
        FOR_SEL(j, g) {
            int b = c * R->ns + j;
            const mr_res_group *gr = &r->groups[R->g0 + g];
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
                if (mr_rep_collapsed(R, g)) continue; /* off scale (noted) */
                mr_rep_minmax(&lo, &hi, v[1]);
                mr_rep_minmax(&lo, &hi, v[2]);
            }
            if (mr_rep_collapsed(R, g)) continue;
            mr_rep_minmax(&lo, &hi, cl[1]);
            mr_rep_minmax(&lo, &hi, cl[2]);
        }
    mr_rep_range_pad(&lo, &hi);
    int cols = C <= 2 ? C : C <= 4 ? 2 : C <= 9 ? 3 : C <= 16 ? 4 : C <= 36 ? 6 : 8;
    int rows = (C + cols - 1) / cols;
    int head = 46 + 21 * mr_rep_key_rows(R->ns);
    int pw = cols * 260 + 20, ph = rows * 215 + head + 10;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 11, 7.0, rows * 1.3 + 0.25 + 0.14 * mr_rep_key_rows(R->ns), 7);
    mr_rep_gp_groups(R, gp.fp);
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
    mr_rep_gp_offscale(R, gp.fp);
    fprintf(gp.fp, "set xrange [-0.3:%g]\nset xtics 0,1,%d scale 0.5\nset ytics scale 0.5\n"
                   "set yrange [%.6g:%.6g]\nset lmargin 6\nset rmargin 1.5\nset tmargin 1.6\nset bmargin 1.6\n",
            MR_SEVERITY_MAX + 0.3, MR_SEVERITY_MAX, lo, hi);
    fprintf(gp.fp, "do for [c=1:C] {\n    eval panel(c)\n    set title corr[c] offset 0,-0.7\n"
                   "    plot for [g=1:G] datafile index ((c-1)*G + g-1) using 1:3:4 with filledcurves ls g "
                   "fs transparent solid 0.12 noborder notitle, \\\n"
                   "         for [g=1:G] datafile index ((c-1)*G + g-1) using 1:2 with linespoints ls g "
                   "lw 1.5 ps 0.5 notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
