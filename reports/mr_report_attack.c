/* The adversarial-attack figure and table of `moe-robust report` (docs/reports.md,
 * docs/attacks.md): for the attack cells of a run with [attack], accuracy and the top-1
 * expert flip rate between clean and attacked routing vs eps, one panel column per attack
 * (METHOD white-box, METHOD-transfer crafted through the reference router), one line per
 * router@k. Accuracy bands are the cells' stored CIs; flip bands a bootstrap over samples
 * of the per-sample flip rate averaged over the MoE layers (the run's settings). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

/* "array NAME[n] = [...]": n strings stored `stride` bytes apart from `first` */
static void gp_str_array(FILE *fp, const char *name, const char *first, size_t stride, int n)
{
    fprintf(fp, "array %s[%d] = [", name, n);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", fp);
        mr_rep_gp_str(fp, first + (size_t)i * stride);
    }
    fprintf(fp, "]\n");
}

/* The attack names (cell `corruption`: METHOD or METHOD-transfer) of the shown groups, in
 * the groups' order (by name); returns how many (at most cap). */
static int attack_names(rep *R, char names[][MR_RES_NAME], int cap)
{
    int A = 0;
    FOR_SEL(j, g) {
        const mr_res_group *gr = &R->r->groups[R->g0 + g];
        for (int i = 0; i < gr->n_attack; i++) {
            const char *a = R->r->cells[gr->attack[i]].meta.corruption;
            int k = 0;
            while (k < A && strcmp(names[k], a) != 0) k++;
            if (k == A && A < cap) snprintf(names[A++], MR_RES_NAME, "%s", a);
        }
    }
    for (int i = 1; i < A; i++) /* one order for every model: by name */
        for (int k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            char t[MR_RES_NAME];
            memcpy(t, names[k], sizeof t);
            memcpy(names[k], names[k - 1], sizeof t);
            memcpy(names[k - 1], t, sizeof t);
        }
    return A;
}

/* top-1 flip rate (%) of an attack cell, mean over MoE layers, with its bootstrap CI */
static int attack_flip(rep *R, int cell, double *x, double *tmp, double out[3])
{
    size_t n = R->n, L = (size_t)R->m->n_moe;
    MR_TRY(mr_results_samples(R->r, cell, "sample_flip_top1", tmp, n * L));
    for (size_t i = 0; i < n; i++) {
        double a = 0;
        for (size_t l = 0; l < L; l++) a += tmp[i * L + l];
        x[i] = L ? 100.0 * a / (double)L : 0.0;
    }
    return mr_results_ci(R->r, x, n, R->r->cells[cell].meta.id, out);
}

/* The eps values (grey levels 1..255) of the shown groups' attack cells, ascending, into
 * ladder[]; pos[eps] = its x position 1..n (0: not used). Returns n. */
static int eps_ladder(rep *R, int pos[256], int ladder[256])
{
    int seen[256] = {0}, n = 0;
    FOR_SEL(j, g) {
        const mr_res_group *gr = &R->r->groups[R->g0 + g];
        for (int i = 0; i < gr->n_attack; i++) seen[R->r->cells[gr->attack[i]].meta.severity] = 1;
    }
    for (int e = 1; e < 256; e++)
        if (seen[e]) {
            ladder[n] = e;
            pos[e] = ++n;
        }
    return n;
}

/* The gnuplot script of the figure: panel(a) accuracy, panel(A + a) flips of attack a,
 * the x axis the eps ladder, the flips' y range up to `hi`. */
static void attack_gp(rep *R, FILE *fp, const char *name, const char *what,
                      char an[][MR_RES_NAME], int A, int n_eps, const int *ladder, double hi)
{
    /* A columns x 2 rows, or for one attack the two side by side */
    int cols = A == 1 ? 2 : A, rows = A == 1 ? 1 : 2;
    int pw = cols * 330 + 40;
    if (pw < 900) pw = 900; /* room for the title and the key */
    int krows = mr_rep_key_rows(R, pw, 2.2 * cols + 0.6), ph = rows * 260 + 46 + 21 * krows + 10;
    mr_rep_gp_header(R, fp, name, what, pw, ph, 11, 2.2 * cols + 0.6, 2.5 * rows + 0.14 * krows, 7);
    mr_rep_gp_groups(R, fp);
    gp_str_array(fp, "attack", an[0], sizeof an[0], A);
    fprintf(fp, "A = %d\n", A);
    char title[300];
    snprintf(title, sizeof title, "%s: accuracy and clean-vs-attacked top-1 routing flips vs "
             "eps per attack; bands: %g%% CI", R->m->name, 100 * R->r->level);
    mr_rep_gp_multi_begin(R, fp, title, 0, cols, rows, 0.0, 1.0, 10, ph);
    fprintf(fp, "set xrange [-0.4:%.1f]\nset xtics scale 0.5 (\"clean\" 0", n_eps + 0.4);
    for (int i = 0; i < n_eps; i++) fprintf(fp, ", \"%d\" %d", ladder[i], i + 1);
    fprintf(fp, ")\nset ytics scale 0.5\nset xlabel \"eps (grey levels, /255)\" offset 0,0.5\n");
    mr_rep_gp_panel_margins(fp, 7, 1.5, 1);
    fprintf(fp, "do for [a=1:A] {\n    eval panel(a)\n    set title attack[a]\n"
                "    set yrange [0:100]\n    set ylabel \"accuracy (%%)\"\n"
                "    plot for [g=1:G] datafile index ((a-1)*G + g-1) using 1:4:5 with filledcurves ls g "
                "fs transparent solid 0.12 noborder notitle, \\\n"
                "         for [g=1:G] datafile index ((a-1)*G + g-1) using 1:3 with linespoints ls g "
                "lw 1.5 ps 0.5 notitle\n}\n");
    fprintf(fp, "do for [a=1:A] {\n    eval panel(A + a)\n    set title (A == 1 ? attack[a] . \" (top-1 routing flips)\" : \"\")\n"
                "    set yrange [0:%.6g]\n    set ylabel \"top-1 flip (%%)\"\n"
                "    plot for [g=1:G] datafile index ((A + a-1)*G + g-1) using 1:4:5 with filledcurves ls g "
                "fs transparent solid 0.12 noborder notitle, \\\n"
                "         for [g=1:G] datafile index ((A + a-1)*G + g-1) using 1:3 with linespoints ls g "
                "lw 1.5 ps 0.5 notitle\n}\nunset multiplot\n",
            hi > 0 ? hi * 1.08 : 1.0);
}

/* ---- accuracy and top-1 routing flips vs eps, per attack and router@k; and its table ---- */
int mr_report_attack(rep *R, const char *name)
{
    const mr_results *r = R->r;
    enum { MAXA = 16 };
    char an[MAXA][MR_RES_NAME];
    int A = attack_names(R, an, MAXA);
    size_t n = R->n, L = (size_t)R->m->n_moe;
    double *x = malloc((n + n * (L ? L : 1) + 1) * sizeof *x);
    MR_REQUIRE(x, MR_ENOMEM, "out of memory");
    mr_textbuf dat, gp, tb;
    int st = mr_textbuf_open(&dat);
    if (st == MR_OK && (st = mr_textbuf_open(&gp)) != MR_OK) mr_textbuf_discard(&dat);
    if (st == MR_OK && (st = mr_textbuf_open(&tb)) != MR_OK) {
        mr_textbuf_discard(&dat);
        mr_textbuf_discard(&gp);
    }
    if (st != MR_OK) {
        free(x);
        return st;
    }
    char what[300];
    snprintf(what, sizeof what, "accuracy and top-1 routing flips vs attack eps, per attack and "
             "router@k");
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# Panels: row 0 accuracy (%%; eps 0 = clean), row 1 clean-vs-attacked top-1 "
                    "expert flip (%%, mean over the MoE layers), one column per attack.\n"
                    "# Block (p*A + a)*G + g: row p, attack a, router@k g (A = %d, G = %d; names "
                    "in the .gp); bands: %g%% bootstrap CI.\n"
                    "# x (0 = clean, i = the i-th eps of the ladder: evenly spaced, a doubling\n"
                    "# ladder reads best so)  eps (grey levels, /255)  mean  ci_lo  ci_hi\n",
            A, R->ns, 100 * r->level);
    fprintf(tb.fp, "| attack | router@k | clean |");
    int pos[256] = {0}, ladder[256];
    int n_eps = eps_ladder(R, pos, ladder);
    for (int e = 0; e < n_eps; e++) fprintf(tb.fp, " %d/255 |", ladder[e]);
    fprintf(tb.fp, "\n|---|---|---|");
    for (int e = 0; e < n_eps; e++) fprintf(tb.fp, "---|");
    fprintf(tb.fp, "\n");
    double hi = 0;
    for (int p = 0; st == MR_OK && p < 2; p++)
        for (int a = 0; st == MR_OK && a < A; a++)
            FOR_SEL(j, g) {
                if (st != MR_OK) break;
                const mr_res_group *gr = &r->groups[R->g0 + g];
                int b = (p * A + a) * R->ns + j;
                fprintf(dat.fp, "%s# block %d: %s / %s / %s\n", b ? "\n\n" : "", b,
                        p ? "top-1 flip" : "accuracy", an[a], gr->label);
                if (p == 0 && R->agg[g].has_clean)
                    fprintf(dat.fp, "0 0 %.8g %.8g %.8g\n", R->agg[g].clean[R->prim][0], R->agg[g].clean[R->prim][1],
                            R->agg[g].clean[R->prim][2]);
                int row = 0;
                for (int i = 0; st == MR_OK && i < gr->n_attack; i++) {
                    int cell = gr->attack[i];
                    const mr_cell_summary *cs = &r->cells[cell];
                    if (strcmp(cs->meta.corruption, an[a]) != 0) continue;
                    double v[3], f[3];
                    for (int k = 0; k < 3; k++) v[k] = mr_metric_table[R->prim].scale * cs->value[R->prim][k];
                    st = attack_flip(R, cell, x, x + n, f);
                    if (st != MR_OK) break;
                    const double *w = p ? f : v;
                    fprintf(dat.fp, "%d %d %.8g %.8g %.8g\n", pos[cs->meta.severity],
                            cs->meta.severity, w[0], w[1], w[2]);
                    if (p == 1 && isfinite(f[2]) && f[2] > hi) hi = f[2];
                    if (p == 1) row++;
                    if (p == 0) {
                        if (!row++) {
                            char lab[200];
                            mr_rep_clean_str(lab, sizeof lab, gr->label);
                            fprintf(tb.fp, "| %s | ", an[a]);
                            mr_rep_md_str(tb.fp, lab);
                            fprintf(tb.fp, " | %.1f |", R->agg[g].clean[R->prim][0]);
                        }
                        fprintf(tb.fp, " %.1f (%.1f) |", v[0], f[0]);
                    }
                }
                if (p == 0 && row) fprintf(tb.fp, "\n");
                /* gnuplot merges an empty block into the next: keep it a block */
                if (!row && !(p == 0 && R->agg[g].has_clean)) fprintf(dat.fp, "NaN NaN NaN NaN NaN\n");
            }
    free(x);
    if (st != MR_OK) {
        mr_textbuf_discard(&dat);
        mr_textbuf_discard(&gp);
        mr_textbuf_discard(&tb);
        return st;
    }
    char tname[200];
    snprintf(tname, sizeof tname, "table-%s-attacks.md", R->m->name);
    st = mr_textbuf_commit(&tb, R->dir, tname);
    if (st != MR_OK) {
        mr_textbuf_discard(&dat);
        mr_textbuf_discard(&gp);
        return st;
    }
    attack_gp(R, gp.fp, name, what, an, A, n_eps, ladder, hi);
    return mr_rep_emit(R, name, what, &dat, &gp);
}

void mr_report_attack_index(rep *R, FILE *fp, int mi)
{
    const mr_results *r = R->r;
    const mr_res_model *m = &r->models[mi];
    char name[200];
    int attacked = 0;
    for (int g = 0; g < m->n_groups; g++) attacked |= r->groups[m->first_group + g].n_attack > 0;
    if (attacked) {
        fprintf(fp, "### Adversarial attacks\n\nAccuracy (%%) and, in parentheses, the top-1 "
                    "expert flip rate between clean and attacked input (%%, mean over the MoE "
                    "layers) per eps in grey levels (eps/255); `METHOD` attacks each router@k "
                    "white-box, `METHOD-transfer` scores it on images crafted through `%s` "
                    "(docs/attacks.md).\n\n", r->reference);
        snprintf(name, sizeof name, "table-%s-attacks.md", m->name);
        mr_rep_append_file(fp, R->dir, name);
        fprintf(fp, "\n");
        snprintf(name, sizeof name, "fig-%s-attack", m->name);
        mr_rep_index_fig(R, fp, name);
    }
}
