/* The axes and margins of the report's figures: the panels' margins (titles above the
 * plot), a collapsed router on a broken axis of its own (a band with the right y axis),
 * and the break marks of a cut axis (mr_report_impl.h says how a figure uses them). */
#include <math.h>
#include <stdio.h>

#include "mr_report_impl.h"

void mr_rep_gp_panel_margins(FILE *fp, double left, double right, int xlabel)
{
    fprintf(fp, "# panel margins (characters): each title in its panel's top margin, above the plot\n"
                "set lmargin %g\nset rmargin %g\nset tmargin %g\nset bmargin %g\n",
            left, right, MR_REP_TMARGIN, xlabel ? 3.4 : 2.4);
}

int mr_rep_right_axis(double *lo, double *hi, double clo, double chi)
{
    if (!isfinite(clo) || !isfinite(chi)) return 0;
    if (isfinite(*lo) && isfinite(*hi) && (clo < *lo || chi > *hi)) return 1;
    mr_rep_minmax(lo, hi, clo); /* within the others' range, or nothing else: one axis */
    mr_rep_minmax(lo, hi, chi);
    return 0;
}

/* the single collapsed group shown (its index in the selection), or -1 when several */
static int single_collapsed(const rep *R)
{
    int one = -1, n = 0;
    FOR_SEL(j, g)
        if (mr_rep_collapsed(R, g)) {
            one = j;
            n++;
        }
    return n == 1 ? one : -1;
}

void mr_rep_gp_right_groups(const rep *R, FILE *fp)
{
    fprintf(fp, "# routers that collapsed (clean error or bpc more than twice the reference's) are\n"
                "# drawn on the right y axis, on their own scale, so that they do not squash the\n"
                "# others: right[g] = 1; main() and alt() keep a group's values on its own axis\n");
    fprintf(fp, "array right[%d] = [", R->ns);
    FOR_SEL(j, g) fprintf(fp, "%s%d", j ? ", " : "", mr_rep_collapsed(R, g));
    fprintf(fp, "]\n");
    FOR_SEL(j, g)
        if (mr_rep_collapsed(R, g)) fprintf(fp, "label[%d] = label[%d] . \" (right axis)\"\n", j + 1, j + 1);
    fprintf(fp, "main(g, y) = right[g] ? NaN : y\nalt(g, y) = right[g] ? y : NaN\n");
}

/* a tick step giving about n ticks over span: 1, 2 or 5 times a power of ten */
static double nice_step(double span, int n)
{
    double raw = span > 0 ? span / n : 1, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

/* `set NAMEtics` from the first multiple of the step at or above lo up to hi only (about
 * n ticks) */
static void band_tics(FILE *fp, const char *axis, double lo, double hi, int n, const char *extra)
{
    double step = nice_step(hi - lo, n), start = ceil(lo / step - 1e-9) * step;
    fprintf(fp, "set %stics %.6g, %.6g, %.6g nomirror scale 0.5%s\n", axis, start, step, hi, extra);
}

void mr_rep_gp_right_axis(const rep *R, FILE *fp, double lo, double hi, double clo, double chi,
                          int ylabel)
{
    /* one plot, two bands: the others on the left axis and the collapsed groups on the
     * right one, each with ticks over its own band only, a dashed break between them;
     * the collapsed band on the side where its values lie (above for bpc, below for
     * accuracy) */
    const double main_f = 0.68, gap_f = 0.06, coll_f = 1 - main_f - gap_f;
    mr_rep_range_pad(&clo, &chi);
    int top = clo + chi > lo + hi;
    double span = (hi - lo) / main_f, span2 = (chi - clo) / coll_f;
    double y0 = top ? lo : hi - span, y2lo = top ? chi - span2 : clo;
    double cut = top ? main_f + gap_f / 2 : coll_f + gap_f / 2;
    int one = single_collapsed(R);
    char tc[40] = "";
    if (one >= 0) snprintf(tc, sizeof tc, " tc rgb \"%s\"", R->sty[R->sel[one]].rgb);
    fprintf(fp, "# two bands: left axis for the others, right axis (%s) for the collapsed routers\n",
            top ? "top" : "bottom");
    fprintf(fp, "set yrange [%.6g:%.6g]\nset y2range [%.6g:%.6g]\n", y0, y0 + span, y2lo, y2lo + span2);
    band_tics(fp, "y", lo, hi, 4, "");
    band_tics(fp, "y2", clo, chi, 2, tc);
    fprintf(fp, "set grid y2tics\n");
    fprintf(fp, "set arrow 90 from graph 0, graph %.3f to graph 1, graph %.3f nohead dt 2 lc rgb \"#888888\"\n"
                "set arrow 91 from graph -0.012, graph %.3f to graph 0.012, graph %.3f nohead lc rgb \"#444444\"\n"
                "set arrow 92 from graph 0.988, graph %.3f to graph 1.012, graph %.3f nohead lc rgb \"#444444\"\n",
            cut, cut, cut - 0.015, cut + 0.015, cut - 0.015, cut + 0.015);
    if (!ylabel) return;
    char l[400];
    if (one >= 0)
        snprintf(l, sizeof l, "%s (collapsed): %s", R->r->groups[R->g0 + R->sel[one]].label,
                 mr_rep_prim_label(R));
    else
        snprintf(l, sizeof l, "collapsed routers: %s", mr_rep_prim_label(R));
    fprintf(fp, "set y2label ");
    mr_rep_gp_str(fp, l);
    fprintf(fp, "%s\n", tc);
}

void mr_rep_gp_axis_cut(FILE *fp)
{
    fprintf(fp, "# the y axis does not start at 0: two strokes across its foot say so\n"
                "set arrow 93 from graph -0.018, graph 0.015 to graph 0.018, graph 0.045 nohead lc rgb \"#444444\" front\n"
                "set arrow 94 from graph -0.018, graph 0.045 to graph 0.018, graph 0.075 nohead lc rgb \"#444444\" front\n");
}

const char *mr_rep_gp_col(char *buf, size_t cap, int pass, const char *g, int col)
{
    if (pass < 0)
        snprintf(buf, cap, "%d", col);
    else
        snprintf(buf, cap, "(%s(%s,$%d))", pass ? "main" : "alt", g, col);
    return buf;
}
