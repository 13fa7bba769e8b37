/* fig-MODEL-flip: clean-vs-corrupted flip rates (top-1 expert, top-k set, prediction)
 * against severity, mean over corruptions and MoE layers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

int mr_fig_flip(rep *R, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    static const char *const titles[3] = {"top-1 expert flip (%)", "top-k set flip (%)",
                                          "prediction flip (%)"};
    static const int metric[3] = {MR_M_FLIP_TOP1, MR_M_FLIP_SET, MR_M_PRED_FLIP};
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
            for (int s = 0; s < MR_SEVERITY_MAX; s++)
                if (a->sev_n[s]) {
                    const double *v = a->sev[metric[p]][s];
                    fprintf(dat.fp, "%d %.8g %.8g %.8g\n", s + 1, v[0], v[1], v[2]);
                    if (isfinite(v[2]) && v[2] > hi) hi = v[2];
                }
        }
    int krows = mr_rep_key_rows(R, 1350, 7.0), ph = 430 + 46 + 21 * krows;
    mr_rep_gp_header(R, gp.fp, name, what, 1350, ph, 12, 7.0, 2.5 + 0.14 * krows, 8);
    mr_rep_gp_groups(R, gp.fp);
    fprintf(gp.fp, "array panel_title[3] = [\"%s\", \"%s\", \"%s\"]\n", titles[0], titles[1], titles[2]);
    char title[300];
    snprintf(title, sizeof title, "%s: flip rates, clean vs corrupted input (mean over %d corruptions "
             "and the MoE layers); bands: %g%% CI", R->m->name, R->r->n_corr, 100 * R->r->level);
    mr_rep_gp_multi_begin(R, gp.fp, title, 0, 3, 1, 0.0, 1.0, 0, ph);
    fprintf(gp.fp, "set xrange [0.8:%g]\nset xtics 1,1,%d\nset xlabel \"severity\"\n"
                   "set yrange [0:%.6g]\n",
            MR_SEVERITY_MAX + 0.2, MR_SEVERITY_MAX, hi > 0 ? hi * 1.08 : 1.0);
    mr_rep_gp_panel_margins(gp.fp, 7, 2, 1);
    fprintf(gp.fp, "do for [p=1:3] {\n    eval panel(p)\n    set title panel_title[p]\n"
                   "    plot for [g=1:G] datafile index ((p-1)*G + g-1) using 1:3:4 with filledcurves ls g "
                   "fs transparent solid 0.12 noborder notitle, \\\n"
                   "         for [g=1:G] datafile index ((p-1)*G + g-1) using 1:2 with linespoints ls g "
                   "notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
