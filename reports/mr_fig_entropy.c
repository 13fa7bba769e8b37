/* fig-MODEL-entropy: per-layer routing entropy on clean data and its change against the
 * reference router's (its own model's reference group, or the reference router on the
 * first model running it, for a trained variant with the same MoE blocks); the change
 * panel is dropped, with a note, when no group has a reference. */
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
                    "# change against the reference router, 100 (mean / reference mean - 1) %%\n"
                    "# (Graph of Tokens, Fig. 2 right, as a ratio): block, then one value per\n"
                    "# router@k (NaN: no reference).\n",
            100 * r->level);
    fprintf(dat.fp, "# block 0: entropy\n");
    double hi = 0, rhi = 0, rlo = 0;
    int any_ratio = 0;
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
    fprintf(dat.fp, "\n\n# block 1: change against the reference router (%%)\n");
    for (int l = 0; l < L; l++) {
        fprintf(dat.fp, "\"block %d\"", R->m->layers[l]);
        FOR_SEL(j, g) {
            const mr_res_group *gr = &r->groups[R->g0 + g];
            double v = NAN;
            int f = mr_rep_ref_group(r, R->g0 + g);
            const mr_res_group *rg = f >= 0 ? &r->groups[f] : NULL;
            if (gr->clean >= 0 && rg && rg->clean >= 0 &&
                r->models[rg->model].n_moe == R->m->n_moe) {
                double den = r->cells[rg->clean].value[MR_M_ENTROPY][3 * l];
                if (den > 0) v = 100 * (r->cells[gr->clean].value[MR_M_ENTROPY][3 * l] / den - 1);
            }
            if (isfinite(v)) {
                any_ratio = 1;
                fprintf(dat.fp, " %.8g", v);
                if (v > rhi) rhi = v;
                if (v < rlo) rlo = v;
            } else {
                fprintf(dat.fp, " NaN");
            }
        }
        fputc('\n', dat.fp);
    }
    int pw = 2 * (110 + L * (R->ns * 18 + 24));
    if (pw < 1100) pw = 1100;
    if (pw > 2400) pw = 2400;
    int krows = mr_rep_key_rows(R, pw, 7.0), ph = 440 + 46 + 21 * krows;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, 2.5 + 0.14 * krows, 8);
    mr_rep_gp_groups(R, gp.fp);
    mr_rep_gp_layer_note(R, gp.fp);
    char title[300];
    snprintf(title, sizeof title, "%s: routing entropy per MoE layer on clean data%s", R->m->name,
             any_ratio ? "" : " (no reference router to compare with: one panel)");
    int panels = any_ratio ? 2 : 1;
    mr_rep_gp_multi_begin(R, gp.fp, title, 1, panels, 1, 0.0, 1.0, 0, ph);
    fprintf(gp.fp, "set style data histograms\nset style fill solid 0.85 border rgb \"#333333\"\n"
                   "set boxwidth 0.9 relative\nset grid noxtics ytics\nset xtics scale 0\n"
                   "set xrange [-0.55:%d.45]\n",
            L - 1);
    mr_rep_gp_panel_margins(gp.fp, 8, 2, 0);
    fprintf(gp.fp, "eval panel(1)\nset title \"entropy (nats; error bars: %g%% CI)\"\n"
                   "set ylabel \"entropy (nats)\"\nset yrange [0:%.6g]\n",
            100 * r->level, hi > 0 ? hi * 1.12 : 1.0);
    fprintf(gp.fp, "set style histogram errorbars gap 1 lw 1\n");
    fprintf(gp.fp, "plot for [g=1:G] datafile index 0 using (column(3*g-1)):(column(3*g)):(column(3*g+1)):xtic(1) "
                   "ls g dt 1 lw 1 notitle\n");
    if (any_ratio) {
        /* the change in %, bars from 0 (a zero-based axis, never a cut one) */
        double ylo = rlo < 0 ? rlo : 0, yhi = rhi > 0 ? rhi : 0;
        if (yhi - ylo < 2) yhi = ylo + 2;
        mr_rep_range_pad(&ylo, &yhi);
        if (rlo >= 0) ylo = 0;
        fprintf(gp.fp, "eval panel(2)\nset style histogram clustered gap 1\n"
                       "set title \"change against the reference router %s (%%)\"\n"
                       "set ylabel \"entropy change (%%)\"\nset yrange [%.6g:%.6g]\n",
                r->reference, ylo, yhi);
        fprintf(gp.fp, "set arrow 1 from graph 0, first 0 to graph 1, first 0 nohead lc rgb \"#555555\" front\n");
        fprintf(gp.fp, "plot for [g=1:G] datafile index 1 using (column(g+1)):xtic(1) ls g dt 1 lw 1 notitle\n");
    }
    fprintf(gp.fp, "unset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
