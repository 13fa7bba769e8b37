/* fig-MODEL-load: expert-load heatmaps (layer x expert), one panel per router@k. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

int mr_fig_load(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe, E = R->m->E;
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
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
                double v = gr->clean >= 0 ? r->cells[gr->clean].value[MR_M_LOAD][l * E + e] * E : NAN;
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
    mr_rep_gp_groups(R, gp.fp);
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
    fprintf(gp.fp, ")\nunset key\nvalfont = fmt eq \"pdf\" ? \",7\" : \",9\"\n");
    mr_rep_gp_panel_margins(gp.fp, 9, 2, 1);
    int show_vals = E <= 16 && L <= 8;
    fprintf(gp.fp, "do for [g=1:G] {\n    eval panel(g)\n    set title label[g]\n"
                   "    plot datafile index (g-1) using 1:2:3 with image%s\n    unset label 99\n}\nunset multiplot\n",
            show_vals ? ", \\\n         '' index (g-1) using 1:2:(sprintf(\"%.2f\", $3)):($3 > 0.6 * "
                        "cbmax ? 0xffffff : 0x222222) with labels font valfont tc rgb variable" : "");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
