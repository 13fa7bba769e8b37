/* Figures of the routing-structure metrics (docs/metrics.md "Routing structure") and of
 * router saturation:
 *   fig-MODEL-coact       co-activation P(j | i) heatmaps, one panel per MoE layer, of the
 *                         model's reference-router group (its first group without one)
 *   fig-MODEL-class       class x expert usage heatmaps of the same group (classifiers)
 *   fig-MODEL-layers      per router@k: NMI(label, top-1) (LMs: vocabulary
 *                         specialization) per MoE layer, and the layer consistency
 *                         NMI(previous MoE layer, this one) per consecutive pair, as bars
 *   fig-MODEL-saturation  router saturation against the last checkpoint per MoE layer,
 *                         one line per router@k (OLMoE, Muennighoff et al. 2024, Sec. 5)
 * All on clean data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

/* the group whose matrices are drawn, among those with a clean cell: the reference
 * router's at its smallest k >= 2, else the first group at k >= 2, else (every group at
 * k = 1, where co-activation is the identity by definition) the reference router's, else
 * the first; -1 if none */
static int matrix_group(rep *R)
{
    int best = -1, best_rank = 5;
    for (int g = 0; g < R->G; g++) {
        const mr_res_group *gr = &R->r->groups[R->g0 + g];
        if (gr->clean < 0) continue;
        int ref = strcmp(gr->router, R->r->reference) == 0;
        int rank = gr->k >= 2 ? (ref ? 0 : 1) : (ref ? 2 : 3);
        if (rank < best_rank || (rank == 0 && gr->k < R->r->groups[R->g0 + best].k)) {
            best = g;
            best_rank = rank;
        }
    }
    return best;
}

/* Heatmaps of m[L][rows][E], one panel per MoE layer: rows on y (labelled by number),
 * experts on x; values printed in the cells when the matrix is small; `offdiag`: the
 * colour scale ends at the largest value off the diagonal (the diagonal saturates). */
static int heatmaps(rep *R, const char *name, const char *what, const char *title,
                    const double *m, int L, int rows, int E, const char *ylabel, int offdiag)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Block l: MoE layer position l (blocks");
    for (int l = 0; l < L; l++) fprintf(dat.fp, " %d", R->m->layers[l]);
    fprintf(dat.fp, "). Rows: expert  %s  value (%%)\n", ylabel);
    double hi = 0;
    for (int l = 0; l < L; l++) {
        fprintf(dat.fp, "%s# block %d: MoE block %d\n", l ? "\n\n" : "", l, R->m->layers[l]);
        for (int y = 0; y < rows; y++) {
            for (int e = 0; e < E; e++) {
                double v = 100 * m[((size_t)l * rows + y) * E + e];
                fprintf(dat.fp, "%d %d %.6g\n", e, y, v);
                if (isfinite(v) && v > hi && !(offdiag && e == y)) hi = v;
            }
            if (y + 1 < rows) fputc('\n', dat.fp);
        }
    }
    int cols = L <= 4 ? L : 4, nrow = (L + cols - 1) / cols;
    int cell = E <= 16 && rows <= 16 ? 34 : 12;
    int panel_w = E * cell + 110, panel_h = rows * cell + 100, cbar = 110;
    int pw = cols * panel_w + cbar, ph = nrow * panel_h + 40;
    /* PDF: 7 in wide at most, values in 7 pt (legible in a paper) */
    double pdf_w = fmin(7.0, 0.6 + cols * (0.25 + 0.16 * E));
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, pdf_w,
                     0.3 + nrow * (0.45 + 0.16 * rows) * pdf_w / (0.6 + cols * (0.25 + 0.16 * E)), 8);
    fprintf(gp.fp, "E = %d\nROWS = %d\nL = %d\narray block[%d] = [", E, rows, L, L);
    for (int l = 0; l < L; l++) fprintf(gp.fp, "%s%d", l ? ", " : "", R->m->layers[l]);
    fprintf(gp.fp, "]\nNCOL = %d\nNROW = %d\nRIGHT = %.4f\nTOP = %.4f\n", cols, nrow,
            1.0 - (double)cbar / pw, 1.0 - 36.0 / ph);
    fprintf(gp.fp, "PW = RIGHT / NCOL\nPH = TOP / NROW\n"
                   "panel(i) = sprintf(\"set origin %%g, %%g; set size %%g, %%g\", ((i-1) %% NCOL) * PW, "
                   "(NROW - 1 - (i-1) / NCOL) * PH, PW, PH)\n"
                   "set multiplot\nset label 99 ");
    mr_rep_gp_str(gp.fp, title);
    fprintf(gp.fp, " at screen 0.5, screen %.4f center\n", 1.0 - 18.0 / ph);
    fprintf(gp.fp, "set palette defined (0 \"#ffffff\", 1 \"#fdd49e\", 2 \"#fc8d59\", 3 \"#b30000\")\n"
                   "cbmax = %.6g\nset cbrange [0:cbmax]\nset format cb \"%%g%%%%\"\n"
                   "set colorbox user origin screen %.4f, screen 0.1 size screen %.4f, screen %.4f\n"
                   "set cbtics scale 0.5\n",
            hi > 0 ? hi : 1.0, 1.0 - 0.7 * cbar / pw, 18.0 / pw, 1.0 - 0.1 - 60.0 / ph);
    fprintf(gp.fp, "set xrange [-0.5:E-0.5]\nset yrange [ROWS-0.5:-0.5]\n"
                   "set xlabel \"expert\" offset 0,0.5\nset ylabel \"%s\" offset 1,0\n"
                   "set xtics 0,%d,E-1 scale 0\nset ytics 0,%d,ROWS-1 scale 0\nunset grid\nunset key\n"
                   "valfont = fmt eq \"pdf\" ? \",7\" : \",9\"\n",
            ylabel, E <= 16 ? 1 : 8, rows <= 16 ? 1 : 8);
    mr_rep_gp_panel_margins(gp.fp, 8, 1, 1);
    int show = E <= 16 && rows <= 16;
    fprintf(gp.fp, "do for [l=1:L] {\n    eval panel(l)\n    set title sprintf(\"MoE block %%d\", block[l])\n"
                   "    plot datafile index (l-1) using 1:2:3 with image%s\n    unset label 99\n}\n"
                   "unset multiplot\n",
            show ? ", \\\n         '' index (l-1) using 1:2:(sprintf(\"%.0f\", $3)):($3 > 0.6 * cbmax ? "
                   "0xffffff : 0x222222) with labels font valfont tc rgb variable"
                 : "");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* fig-MODEL-coact and fig-MODEL-class */
int mr_fig_struct_maps(rep *R, const char *coact_name, const char *class_name)
{
    int g = matrix_group(R);
    if (g < 0) return MR_OK;
    const mr_res_group *gr = &R->r->groups[R->g0 + g];
    int d[3], st = MR_OK;
    char what[300], title[300];
    double *m = mr_results_matrix(R->r, gr->clean, "coactivation", d);
    /* at k = 1 every token has one expert: P(j | i) is the identity, nothing to draw */
    if (m && d[0] == R->m->n_moe && d[1] == d[2] && R->m->E > 1 && gr->k >= 2) {
        snprintf(what, sizeof what, "expert co-activation P(column expert in top-k | row expert "
                                    "in top-k) on clean data, %s", gr->label);
        snprintf(title, sizeof title, "%s, %s: co-activation P(j in top-k | i in top-k), %%",
                 R->m->name, gr->label);
        /* the colour scale over the off-diagonal cells: P(i | i) = 100 % by definition */
        st = heatmaps(R, coact_name, what, title, m, d[0], d[1], d[2], "expert i (row)", 1);
    }
    free(m);
    m = st == MR_OK ? mr_results_matrix(R->r, gr->clean, "class_usage", d) : NULL;
    if (m && d[0] == R->m->n_moe) {
        snprintf(what, sizeof what, "class x expert usage on clean data: share of a class's top-k "
                                    "assignments per expert, %s", gr->label);
        snprintf(title, sizeof title, "%s, %s: share of each class's top-k assignments, %%",
                 R->m->name, gr->label);
        st = heatmaps(R, class_name, what, title, m, d[0], d[1], d[2], "class", 0);
    }
    free(m);
    return st;
}

/* fig-MODEL-layers: specialization per layer and consistency per layer pair */
int mr_fig_layers(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe, spec = R->lm ? MR_M_VOCAB_SPEC : MR_M_CLASS_NMI;
    int has_spec = 0, has_cons = 0;
    FOR_SEL(j, g) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        if (gr->clean < 0) continue;
        has_spec |= r->cells[gr->clean].value[spec] != NULL;
        has_cons |= r->cells[gr->clean].value[MR_M_LAYER_NMI] != NULL && L > 1;
    }
    if (!has_spec && !has_cons) return MR_OK;
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    const char *sl = R->lm ? "vocabulary specialization (%)" : "NMI(class, top-1 expert)";
    char what[300];
    snprintf(what, sizeof what, "%s per MoE layer and NMI of consecutive MoE layers' top-1 "
                                "experts, clean data, per router@k", sl);
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Block 0: per MoE block, %s of every router@k (label order of the .gp)\n"
                    "# Block 1: per consecutive pair of MoE blocks, their NMI (NaN: none)\n", sl);
    double scale = mr_metric_table[spec].scale;
    for (int b = 0; b < 2; b++) {
        fprintf(dat.fp, "%s# block %d\n", b ? "\n\n" : "", b);
        for (int l = b; l < L; l++) {
            if (b)
                fprintf(dat.fp, "\"%d-%d\"", R->m->layers[l - 1], R->m->layers[l]);
            else
                fprintf(dat.fp, "\"block %d\"", R->m->layers[l]);
            FOR_SEL(j, g) {
                const mr_res_group *gr = &r->groups[R->g0 + g];
                const double *v = gr->clean >= 0 ? r->cells[gr->clean].value[b ? MR_M_LAYER_NMI : spec] : NULL;
                fprintf(dat.fp, " %.6g", v ? (b ? v[l] : scale * v[l]) : NAN);
            }
            fputc('\n', dat.fp);
        }
    }
    int panels = has_spec + has_cons;
    int pw = panels * (160 + L * (R->ns * 16 + 30));
    if (pw < 800) pw = 800;
    double pdf_w = panels > 1 ? 7.0 : 3.4;
    int krows = mr_rep_key_rows(R, pw, pdf_w), ph = 420 + 21 * krows;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, pdf_w, 2.4 + 0.14 * krows, 8);
    mr_rep_gp_groups(R, gp.fp);
    char title[300];
    snprintf(title, sizeof title, "%s: specialization and layer-to-layer consistency (clean)",
             R->m->name);
    mr_rep_gp_multi_begin(R, gp.fp, title, 1, panels, 1, 0.0, 1.0, 10, ph);
    fprintf(gp.fp, "set style data histogram\nset style histogram cluster gap 1\n"
                   "set style fill solid 0.85 border rgb \"#333333\"\nset boxwidth 0.9\n"
                   "set xtics scale 0\nset grid ytics\nunset key\n");
    mr_rep_gp_panel_margins(gp.fp, 8, 2, 0);
    int p = 1;
    if (has_spec) {
        fprintf(gp.fp, "eval panel(%d)\nset title \"%s per MoE block\"\nset yrange [0:%s]\n"
                       "plot for [g=1:G] datafile index 0 using (column(g+1)):xtic(1) ls g dt 1\n",
                p++, sl, R->lm ? "100" : "1");
    }
    if (has_cons)
        fprintf(gp.fp, "eval panel(%d)\nset title \"NMI(top-1 at block a, top-1 at block b)\"\n"
                       "set yrange [0:1]\nplot for [g=1:G] datafile index 1 using (column(g+1)):xtic(1) "
                       "ls g dt 1\n",
                p);
    fprintf(gp.fp, "unset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* fig-MODEL-saturation: saturation of each checkpoint against the last, per MoE layer */
int mr_fig_saturation(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int L = R->m->n_moe, P = 0, gref = -1;
    FOR_SEL(j, g) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        if (gr->n_fluct > P && r->cells[gr->fluct[0]].value[MR_M_SATURATION]) {
            P = gr->n_fluct;
            gref = g;
        }
    }
    if (P == 0) return MR_OK;
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    char what[300];
    snprintf(what, sizeof what, "router saturation: share of a token's top-k experts at a "
                                "checkpoint also chosen at the last checkpoint (%%), clean data");
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Block l: MoE block l. Rows: checkpoint index (the last = %d, 100 by "
                    "definition), then mean ci_lo ci_hi of every router@k (label order; NaN: "
                    "none)\n# checkpoints:", P);
    char ck[MR_RES_MAX_FLUCT + 1][200];
    const mr_res_group *rg = &r->groups[R->g0 + gref];
    for (int p = 0; p < P; p++) mr_rep_ckpt_name(ck[p], sizeof ck[p], r->cells[rg->fluct[p]].meta.checkpoints, 0);
    mr_rep_ckpt_name(ck[P], sizeof ck[P], r->cells[rg->fluct[P - 1]].meta.checkpoints, 1);
    for (int p = 0; p <= P; p++) fprintf(dat.fp, " %d = %s%s", p, ck[p], p < P ? "," : "\n");
    /* tick labels: the names without their common prefix ("-ep10", "-ep11", "final") */
    size_t pre = strlen(ck[0]);
    for (int p = 1; p <= P; p++) {
        size_t i = 0;
        while (i < pre && ck[p][i] == ck[0][i]) i++;
        pre = i;
    }
    char tick[MR_RES_MAX_FLUCT + 1][200];
    for (int p = 0; p <= P; p++) {
        const char *t = ck[p] + pre;
        while (*t == '-' || *t == '_') t++;
        snprintf(tick[p], sizeof tick[p], "%s", *t ? t : "final");
    }
    double lo = 100;
    for (int l = 0; l < L; l++) {
        fprintf(dat.fp, "%s# block %d: MoE block %d\n", l ? "\n\n" : "", l, R->m->layers[l]);
        for (int p = 0; p <= P; p++) {
            fprintf(dat.fp, "%d", p);
            FOR_SEL(j, g) {
                const mr_res_group *gr = &r->groups[R->g0 + g];
                const double *v = p < gr->n_fluct ? r->cells[gr->fluct[p]].value[MR_M_SATURATION] : NULL;
                if (p == P && gr->n_fluct == P)
                    fprintf(dat.fp, " 100 100 100");
                else if (v)
                    fprintf(dat.fp, " %.6g %.6g %.6g", 100 * v[3 * l], 100 * v[3 * l + 1], 100 * v[3 * l + 2]);
                else
                    fprintf(dat.fp, " NaN NaN NaN");
                if (v && 100 * v[3 * l + 1] < lo) lo = 100 * v[3 * l + 1];
            }
            fputc('\n', dat.fp);
        }
    }
    int cols = L <= 4 ? L : 4, rows = (L + cols - 1) / cols;
    int pw = cols * 360 + 20;
    double pdf_w = cols > 1 ? 7.0 : 3.4;
    int krows = mr_rep_key_rows(R, pw, pdf_w), ph = rows * 300 + 46 + 21 * krows;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, pdf_w, rows * 1.9 + 0.3 + 0.14 * krows, 8);
    mr_rep_gp_groups(R, gp.fp);
    fprintf(gp.fp, "array block[%d] = [", L);
    for (int l = 0; l < L; l++) fprintf(gp.fp, "%s%d", l ? ", " : "", R->m->layers[l]);
    fprintf(gp.fp, "]\nL = %d\n", L);
    char title[300];
    snprintf(title, sizeof title, "%s: router saturation against the last checkpoint (%%)", R->m->name);
    mr_rep_gp_multi_begin(R, gp.fp, title, 0, cols, rows, 0.0, 1.0, 10, ph);
    fprintf(gp.fp, "set xtics (");
    for (int p = 0; p <= P; p++) {
        fprintf(gp.fp, "%s", p ? ", " : "");
        mr_rep_gp_str(gp.fp, tick[p]);
        fprintf(gp.fp, " %d", p);
    }
    fprintf(gp.fp, ") scale 0.5\n");
    /* a zero-based axis unless every value is high: then the break is said in the label */
    double ylo = lo > 50 ? 10 * floor((lo - 5) / 10) : 0;
    fprintf(gp.fp, "set xrange [-0.2:%g]\nset yrange [%g:101]\nset ylabel \"%s\"\n",
            P + 0.2, ylo, ylo > 0 ? "saturation (%; axis cut)" : "saturation (%)");
    if (ylo > 0) mr_rep_gp_axis_cut(gp.fp);
    mr_rep_gp_panel_margins(gp.fp, 8, 3, 0);
    fprintf(gp.fp, "do for [l=1:L] {\n    eval panel(l)\n    set title sprintf(\"MoE block %%d\", block[l])\n"
                   "    plot for [g=1:G] datafile index (l-1) using 1:(column(3*g-1)):(column(3*g)):(column(3*g+1)) "
                   "with yerrorlines ls g lw 1.5 ps 0.6 notitle\n}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}
