/* fig-MODEL-fluct: per-layer routing fluctuation between consecutive checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

int mr_fig_fluct(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe, P = 0, gref = -1;
    for (int g = 0; g < R->G; g++)
        if (r->groups[R->g0 + g].n_fluct > P) {
            P = r->groups[R->g0 + g].n_fluct;
            gref = g;
        }
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
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
        char a[200], bb[200], raw[420];
        mr_rep_ckpt_name(a, sizeof a, ck, 0);
        mr_rep_ckpt_name(bb, sizeof bb, ck, 1);
        snprintf(raw, sizeof raw, "%s -> %s", a, bb);
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
                const double *f1 = c->value[MR_M_FLIP_TOP1] + 3 * l, *fk = c->value[MR_M_FLIP_SET] + 3 * l;
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
    int krows = mr_rep_key_rows(R, pw, 7.0), ph = rows * 400 + 46 + 21 * krows;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, rows * 2.2 + 0.3 + 0.14 * krows, 8);
    mr_rep_gp_groups(R, gp.fp);
    mr_rep_gp_layer_note(R, gp.fp);
    fprintf(gp.fp, "array pair[%d] = [", P);
    for (int p = 0; p < P; p++) {
        if (p) fputs(", ", gp.fp);
        mr_rep_gp_str(gp.fp, pairs[p]);
    }
    fprintf(gp.fp, "]\nP = %d\n", P);
    char title[300];
    snprintf(title, sizeof title, "%s: routing fluctuation between consecutive checkpoints (top-1 "
             "expert flip on clean data; error bars: %g%% CI)", R->m->name, 100 * r->level);
    mr_rep_gp_multi_begin(R, gp.fp, title, 1, cols, rows, 0.0, 1.0, 0, ph);
    fprintf(gp.fp, "set style data histograms\nset style histogram errorbars gap 1 lw 1\n"
                   "set style fill solid 0.85 border rgb \"#333333\"\nset boxwidth 0.9 relative\n"
                   "set grid noxtics ytics\nset xtics scale 0\nset xrange [-0.55:%d.45]\n"
                   "set ylabel \"top-1 flip (%%)\"\nset yrange [0:%.6g]\n",
            L - 1, hi > 0 ? hi * 1.12 : 1.0);
    mr_rep_gp_panel_margins(gp.fp, 8, 2, 0);
    fprintf(gp.fp, "do for [p=1:P] {\n    eval panel(p)\n    set title pair[p]\n"
                   "    plot for [g=1:G] datafile index (p-1) using (column(6*g-4)):(column(6*g-3)):"
                   "(column(6*g-2)):xtic(1) ls g dt 1 lw 1 notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
