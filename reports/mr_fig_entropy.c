/* fig-MODEL-entropy: per-layer routing entropy on clean data and its ratio to the
 * reference router's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

int mr_fig_entropy(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe;
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
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
            const double *e = r->cells[gr->clean].value[MR_M_ENTROPY] + 3 * l;
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
                double den = r->cells[r->groups[gr->ref].clean].value[MR_M_ENTROPY][3 * l];
                if (den > 0) v = r->cells[gr->clean].value[MR_M_ENTROPY][3 * l] / den;
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
    int ph = 440 + 46 + 21 * mr_rep_key_rows(R->ns);
    int pw = 2 * (110 + L * (R->ns * 18 + 24));
    if (pw < 1100) pw = 1100;
    if (pw > 2400) pw = 2400;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, 2.5 + 0.14 * mr_rep_key_rows(R->ns), 8);
    mr_rep_gp_groups(R, gp.fp);
    mr_rep_gp_layer_note(R, gp.fp);
    char title[300];
    snprintf(title, sizeof title, "%s: routing entropy per MoE layer on clean data", R->m->name);
    mr_rep_gp_multi_begin(R, gp.fp, title, 1, 2, 1, 0.0, 1.0, 0, ph);
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
