/* Per corruption family (docs/corruptions.md "Families"): fig-MODEL-families, the primary
 * metric vs severity with one panel per family of the run's corruptions and the
 * router@k groups as lines, and table-MODEL-families.{md,tex}, family x router@k with the
 * corrupted primary metric, its degradation and the top-1 flips (means over the family's
 * corruptions of their per-corruption means over severities) and the family's CE. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

/* the families of the run's corruptions, in enum order; their count */
static int run_families(const mr_results *r, int *fam)
{
    int n = 0;
    for (int f = 0; f < MR_FAMILY_N; f++)
        for (int c = 0; c < r->n_corr; c++)
            if (mr_corruption_family(r->corr[c]) == f) {
                fam[n++] = f;
                break;
            }
    return n;
}

/* mean over family f's corruptions of the cell means of group g at severity s (1..5), or
 * of the clean cell (s = 0); NaN without cells */
static double family_sev(rep *R, int g, int f, int s)
{
    const mr_results *r = R->r;
    const mr_res_group *gr = &r->groups[R->g0 + g];
    double scale = mr_metric_table[R->prim].scale, sum = 0;
    int n = 0;
    if (s == 0) return gr->clean >= 0 ? scale * r->cells[gr->clean].value[R->prim][0] : NAN;
    for (int c = 0; c < r->n_corr; c++) {
        int cell = gr->corrupt[c * MR_SEVERITY_MAX + s - 1];
        if (mr_corruption_family(r->corr[c]) != f || cell < 0) continue;
        sum += scale * r->cells[cell].value[R->prim][0];
        n++;
    }
    return n ? sum / n : NAN;
}

int mr_fig_family(rep *R, const char *name)
{
    const mr_results *r = R->r;
    int fam[MR_FAMILY_N], F = run_families(r, fam);
    if (!F) return MR_OK;
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    char what[300];
    snprintf(what, sizeof what, "%s vs severity per corruption family, per router@k",
             mr_rep_prim_label(R));
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# severity 0 = clean; the mean over the family's corruptions of the cell "
                    "means.\n# Block f*G + g: family f, router@k g (G = %d; names in the .gp):\n"
                    "# severity  mean\n", R->ns);
    double lo = NAN, hi = NAN, clo = NAN, chi = NAN; /* y ranges: others, collapsed */
    for (int f = 0; f < F; f++)
        FOR_SEL(j, g) {
            int b = f * R->ns + j, coll = mr_rep_collapsed(R, g);
            fprintf(dat.fp, "%s# block %d: %s / %s\n", b ? "\n\n" : "", b, mr_family_name(fam[f]),
                    r->groups[R->g0 + g].label);
            for (int s = 0; s <= MR_SEVERITY_MAX; s++) {
                double v = family_sev(R, g, fam[f], s);
                if (!isfinite(v)) continue;
                fprintf(dat.fp, "%d %.8g\n", s, v);
                mr_rep_minmax(coll ? &clo : &lo, coll ? &chi : &hi, v);
            }
        }
    /* accuracy is drawn from 0 (a zero-based axis); bpc from its smallest value */
    if (!R->lm && isfinite(hi)) lo = 0;
    int right = mr_rep_right_axis(&lo, &hi, clo, chi);
    if (!R->lm) lo = 0;
    mr_rep_range_pad(&lo, &hi);
    if (!R->lm) lo = 0;
    int cols = F <= 2 ? F : F <= 4 ? 2 : 3, rows = (F + cols - 1) / cols;
    int pw = cols * 300 + 20, krows = mr_rep_key_rows(R, pw, 7.0);
    int ph = rows * 250 + 46 + 21 * krows + 10;
    mr_rep_gp_header(R, gp.fp, name, what, pw, ph, 12, 7.0, rows * 1.7 + 0.3 + 0.16 * krows, 8);
    mr_rep_gp_groups(R, gp.fp);
    if (right) mr_rep_gp_right_groups(R, gp.fp);
    fprintf(gp.fp, "array family[%d] = [", F);
    for (int f = 0; f < F; f++) fprintf(gp.fp, "%s\"%s\"", f ? ", " : "", mr_family_name(fam[f]));
    fprintf(gp.fp, "]\nF = %d\n", F);
    char title[300];
    snprintf(title, sizeof title, "%s: %s vs severity (0 = clean) per corruption family",
             R->m->name, mr_rep_prim_label(R));
    mr_rep_gp_multi_begin(R, gp.fp, title, 0, cols, rows, 0.0, 1.0, 10, ph);
    fprintf(gp.fp, "set xrange [-0.3:%g]\nset xtics 0,1,%d scale 0.5\nset ytics scale 0.5\n"
                   "set yrange [%.6g:%.6g]\nset xlabel \"severity\" offset 0,0.5\n",
            MR_SEVERITY_MAX + 0.3, MR_SEVERITY_MAX, lo, hi);
    if (!R->lm) fprintf(gp.fp, "set ytics 0, 20, 100\n"); /* every 10 crowds a small panel */
    if (right) mr_rep_gp_right_axis(R, gp.fp, lo, hi, clo, chi, 0);
    mr_rep_gp_panel_margins(gp.fp, 7, right ? 5 : 1.5, 1);
    fprintf(gp.fp, "do for [f=1:F] {\n    eval panel(f)\n    set title family[f]\n    plot ");
    for (int pass = right ? 0 : -1; pass < 2; pass++) {
        char c2[40];
        fprintf(gp.fp, "%sfor [g=1:G] datafile index ((f-1)*G + g-1) using 1:%s%s with linespoints "
                       "ls g lw 1.5 ps 0.6 notitle%s\n",
                pass > (right ? 0 : -1) ? "         " : "", mr_rep_gp_col(c2, sizeof c2, pass, "g", 2),
                pass == 0 ? " axes x1y2" : "", pass == 0 ? ", \\" : "");
        if (pass < 0) break;
    }
    fprintf(gp.fp, "}\nunset multiplot\n");
    return mr_rep_emit(R, name, what, &dat, &gp);
}

/* ------------------------------------------------------------------ the table */

enum { FC_CORR, FC_DELTA, FC_FLIP, FC_CE, NFC };

/* mean over family f's corruptions of group g's per-corruption value of column c */
static double family_value(rep *R, int g, int f, int c)
{
    const mr_results *r = R->r;
    const gagg *a = &R->agg[g];
    const mr_res_group *gr = &r->groups[R->g0 + g];
    double sum = 0;
    int n = 0;
    for (int ci = 0; ci < r->n_corr; ci++) {
        if (mr_corruption_family(r->corr[ci]) != f || !a->pc_n[ci]) continue;
        double v = c == FC_CORR    ? PC(a, ci, R->prim, 0)[0]
                   : c == FC_DELTA ? PC(a, ci, R->prim, 1)[0]
                   : c == FC_FLIP  ? PC(a, ci, MR_M_FLIP_TOP1, 0)[0]
                   : gr->has_ce    ? mr_metric_table[MR_M_CE].scale * gr->value[MR_M_CE][ci]
                                   : NAN;
        sum += v;
        n++;
    }
    return n ? sum / n : NAN;
}

int mr_rep_family_table(rep *R)
{
    const mr_results *r = R->r;
    int fam[MR_FAMILY_N], F = run_families(r, fam), G = R->G;
    if (!F) return MR_OK;
    double *v = malloc(((size_t)F * G * NFC + 1) * sizeof *v);
    MR_REQUIRE(v, MR_ENOMEM, "out of memory");
    for (int f = 0; f < F; f++)
        for (int g = 0; g < G; g++)
            for (int c = 0; c < NFC; c++) v[((size_t)f * G + g) * NFC + c] = family_value(R, g, fam[f], c);
    /* best per family and column: a better direction and at least two rows */
    const int better[NFC] = {mr_metric_table[R->prim].better, MR_BETTER_LOWER, MR_BETTER_LOWER,
                             MR_BETTER_LOWER};
    const int dec[NFC] = {mr_metric_table[R->prim].decimals, mr_metric_table[R->prim].decimals,
                          mr_metric_table[MR_M_FLIP_TOP1].decimals, mr_metric_table[MR_M_CE].decimals};
    char md_h[NFC][96], tex_h[NFC][128];
    const char *u = R->lm ? "" : " (%)", *ut = R->lm ? "" : " (\\%)";
    snprintf(md_h[FC_CORR], 96, "corrupted %s%s", mr_metric_table[R->prim].label, u);
    snprintf(md_h[FC_DELTA], 96, "Δ %s%s", mr_metric_table[R->prim].label, R->lm ? "" : " (pp)");
    snprintf(md_h[FC_FLIP], 96, "flip top-1 (%%)");
    snprintf(md_h[FC_CE], 96, "CE (%%)");
    snprintf(tex_h[FC_CORR], 128, "Corr.\\ %s%s", mr_metric_table[R->prim].tex, ut);
    snprintf(tex_h[FC_DELTA], 128, "$\\Delta$ %s%s", mr_metric_table[R->prim].tex, R->lm ? "" : " (pp)");
    snprintf(tex_h[FC_FLIP], 128, "Flip top-1 (\\%%)");
    snprintf(tex_h[FC_CE], 128, "CE (\\%%)");
    int st = MR_OK;
    for (int tex = 0; st == MR_OK && tex < 2; tex++) {
        mr_textbuf t;
        MR_TRY(mr_textbuf_open(&t));
        FILE *fp = t.fp;
        if (tex) {
            fprintf(fp, "%% family table: written by moe-robust report; needs \\usepackage{booktabs}\n"
                        "\\begin{table}[t]\n\\centering\n\\small\n\\caption{");
            mr_rep_tex_str(fp, R->m->name);
            fprintf(fp, ": robustness per corruption family (means over the family's corruptions "
                        "of their means over severities, whose %g\\%% bootstrap CI the "
                        "per-corruption table gives; best per family in bold where a column "
                        "has two rows or more).}\n\\label{tab:", 100 * r->level);
            mr_rep_tex_str(fp, R->m->name);
            fprintf(fp, "-families}\n\\begin{tabular}{llrrrr}\n\\toprule\nFamily & Router");
            for (int c = 0; c < NFC; c++) fprintf(fp, " & %s", tex_h[c]);
            fprintf(fp, " \\\\\n");
        } else {
            fprintf(fp, "| family | router |");
            for (int c = 0; c < NFC; c++) fprintf(fp, " %s |", md_h[c]);
            fprintf(fp, "\n|---|---|---:|---:|---:|---:|\n");
        }
        for (int f = 0; f < F; f++) {
            if (tex) fprintf(fp, "\\midrule\n");
            double best[NFC];
            int cand[NFC] = {0};
            for (int c = 0; c < NFC; c++) {
                best[c] = NAN;
                for (int g = 0; g < G; g++) {
                    double x = v[((size_t)f * G + g) * NFC + c];
                    if (!isfinite(x)) continue;
                    cand[c]++;
                    char s[64];
                    snprintf(s, sizeof s, "%.*f", dec[c], x);
                    x = atof(s);
                    if (!isfinite(best[c]) || (better[c] == MR_BETTER_HIGHER ? x > best[c] : x < best[c]))
                        best[c] = x;
                }
            }
            for (int g = 0; g < G; g++) {
                fprintf(fp, tex ? "" : "| ");
                if (!tex || g == 0) fprintf(fp, "%s", mr_family_name(fam[f]));
                fprintf(fp, tex ? " & " : " | ");
                (tex ? mr_rep_tex_str : mr_rep_md_str)(fp, r->groups[R->g0 + g].label);
                fprintf(fp, tex ? "" : " |");
                for (int c = 0; c < NFC; c++) {
                    double x = v[((size_t)f * G + g) * NFC + c];
                    char s[64];
                    mr_report_fmt(s, sizeof s, x, dec[c]);
                    int b = cand[c] >= 2 && isfinite(x) && atof(s) == best[c];
                    if (tex)
                        fprintf(fp, " & %s%s%s", b ? "\\textbf{" : "", isfinite(x) ? s : "--", b ? "}" : "");
                    else
                        fprintf(fp, " %s%s%s |", b ? "**" : "", isfinite(x) ? s : "—", b ? "**" : "");
                }
                fprintf(fp, tex ? " \\\\\n" : "\n");
            }
        }
        if (tex) fprintf(fp, "\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        char name[200];
        snprintf(name, sizeof name, "table-%s-families.%s", R->m->name, tex ? "tex" : "md");
        st = mr_textbuf_commit(&t, R->dir, name);
        if (st == MR_OK) R->info->n_tables++;
    }
    free(v);
    return st;
}
