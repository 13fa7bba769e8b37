/* fig-MODEL-k: the primary metric against the number of active experts k per router
 * variant (the self-slimmable curve), clean and mean over corruptions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

#define MAX_CURVES 64

/* the curves: one per router variant (type and options), in group order */
typedef struct curves {
    int nv, first_group[MAX_CURVES], npts[MAX_CURVES];
    char names[MAX_CURVES][200];
    int any_corrupt;         /* some curve has corrupted values at two k or more */
    int kmin, kmax;
    char kt[400];            /* the ks, " k " each */
    double lo, hi, clo, chi; /* y ranges: clean, corrupted */
} curves;

static void k_variants(rep *R, curves *K)
{
    const mr_results *r = R->r;
    /* curves: distinct variants in group order */
    K->nv = 0;
    K->kmax = 1;
    K->kmin = 1 << 30;
    for (int g = 0; g < R->G && K->nv < MAX_CURVES; g++) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        int v = 0;
        while (v < K->nv && strcmp(r->groups[R->g0 + K->first_group[v]].variant, gr->variant) != 0) v++;
        if (v == K->nv) {
            K->first_group[K->nv] = g;
            snprintf(K->names[K->nv++], sizeof K->names[0], "%s", gr->router);
        } else if (!strstr(K->names[v], gr->router) &&
                   strlen(K->names[v]) + strlen(gr->router) + 4 < sizeof K->names[0]) {
            strcat(K->names[v], " / ");
            strcat(K->names[v], gr->router);
        }
    }
}

/* one block per curve: its groups by increasing k */
static void k_data(rep *R, curves *K, FILE *fp)
{
    const mr_results *r = R->r;
    K->lo = K->hi = K->clo = K->chi = NAN;
    K->kt[0] = '\0';
    K->any_corrupt = 0;
    for (int v = 0; v < K->nv; v++) {
        int ncorr = 0;
        K->npts[v] = 0;
        fprintf(fp, "%s# block %d: %s\n", v ? "\n\n" : "", v, K->names[v]);
        const char *var = r->groups[R->g0 + K->first_group[v]].variant;
        int last_k = 0;
        for (;;) { /* the variant's groups by increasing k */
            int best = -1;
            for (int g = 0; g < R->G; g++) {
                const mr_res_group *gr = &r->groups[R->g0 + g];
                if (strcmp(gr->variant, var) == 0 && gr->k > last_k &&
                    (best < 0 || gr->k < r->groups[R->g0 + best].k))
                    best = g;
            }
            if (best < 0) break;
            const mr_res_group *gr = &r->groups[R->g0 + best];
            const gagg *a = &R->agg[best];
            last_k = gr->k;
            const double *cl = a->clean[R->prim], *co = a->all[R->prim];
            fprintf(fp, "%d %.8g %.8g %.8g %.8g %.8g %.8g\n", gr->k, cl[0], cl[1], cl[2], co[0],
                    co[1], co[2]);
            for (int j = 0; j < 3; j++) {
                mr_rep_minmax(&K->lo, &K->hi, cl[j]);
                mr_rep_minmax(&K->clo, &K->chi, co[j]);
            }
            ncorr += isfinite(co[0]);
            K->npts[v]++;
            if (gr->k > K->kmax) K->kmax = gr->k;
            if (gr->k < K->kmin) K->kmin = gr->k;
            char t[32];
            snprintf(t, sizeof t, " %d ", gr->k);
            if (!strstr(K->kt, t) && strlen(K->kt) + strlen(t) < sizeof K->kt - 1) strcat(K->kt, t);
        }
        K->any_corrupt |= ncorr >= 2;
    }
    mr_rep_range_pad(&K->lo, &K->hi);
    mr_rep_range_pad(&K->clo, &K->chi);
}

/* the curves' names and colours (the colour of the variant's default-k group) */
static void k_styles(rep *R, const curves *K, FILE *fp)
{
    const mr_results *r = R->r;
    fprintf(fp, "# one line per router variant (colour as in the other figures)\narray router[%d] = [", K->nv);
    for (int v = 0; v < K->nv; v++) {
        if (v) fputs(", ", fp);
        mr_rep_gp_str(fp, K->names[v]);
    }
    fprintf(fp, "]\n");
    for (int v = 0; v < K->nv; v++) {
        /* the colour of the variant's default-k group */
        int sg = K->first_group[v];
        for (int g = 0; g < R->G; g++)
            if (!strcmp(r->groups[R->g0 + g].variant, r->groups[R->g0 + sg].variant) && R->sty[g].dt == 1) {
                sg = g;
                break;
            }
        fprintf(fp, "set style line %d lc rgb \"%s\" dt 1 lw 2 pt %d ps 1.0\n", v + 1,
                R->sty[sg].rgb, R->sty[sg].pt);
    }
}

static void k_script(rep *R, const curves *K, FILE *fp)
{
    /* side-by-side slots at a shared k: the curve with most points in the middle */
    int centre = 0;
    for (int v = 1; v < K->nv; v++)
        if (K->npts[v] > K->npts[centre]) centre = v;
    fprintf(fp, "array dx[%d] = [", K->nv);
    for (int v = 0, slot = 0; v < K->nv; v++) {
        int d = 0;
        if (v != centre) {
            slot++;
            d = slot % 2 ? (slot + 1) / 2 : -(slot / 2);
        }
        fprintf(fp, "%s%d", v ? ", " : "", d);
    }
    fprintf(fp, "]\n");
    fprintf(fp, "NR = %d\n", K->nv);
    if (K->any_corrupt)
        fprintf(fp, "# two panels over the full width; the key in a strip below both\n"
                    "set multiplot layout 1,2 margins 0.07,0.97,%.3f,0.9 spacing 0.08,0.1\n",
                0.13 + 0.05 * ((K->nv + 3) / 4));
    if (K->kmax > K->kmin)
        fprintf(fp, "set logscale x 2\nset xrange [%g:%g]\n", K->kmin / 1.3, K->kmax * 1.3);
    else
        fprintf(fp, "set xrange [%g:%g]\n", K->kmin - 1.0, K->kmin + 1.0);
    fprintf(fp, "set xtics (");
    int first = 1;
    for (const char *p = K->kt; *p;) {
        int k, used;
        if (sscanf(p, " %d %n", &k, &used) != 1) break;
        fprintf(fp, "%s\"%d\" %d", first ? "" : ", ", k, k);
        first = 0;
        p += used;
    }
    fprintf(fp, ")\nset xlabel \"active experts k\"\nset ylabel \"%s\"\n", mr_rep_prim_label(R));
    fprintf(fp, "# curves side by side at a shared k, so their error bars do not hide each other\n"
                   "kx(k, i) = k * (1 + 0.03 * dx[i])\n");
    if (K->any_corrupt) {
        fprintf(fp, "unset key\nset title \"%s: clean\"\nset yrange [%.6g:%.6g]\n"
                       "plot for [i=1:NR] datafile index (i-1) using (kx($1, i)):2:3:4 with yerrorlines ls i title router[i]\n",
                R->m->name, K->lo, K->hi);
        fprintf(fp, "set key at screen 0.5, screen 0.01 center bottom horizontal maxcols 4 samplen 2.5 width 2\n"
                    "set title \"mean over corruptions\"\n"
                       "set yrange [%.6g:%.6g]\n"
                       "plot for [i=1:NR] datafile index (i-1) using (kx($1, i)):5:6:7 with yerrorlines ls i title router[i]\n"
                       "unset multiplot\n", K->clo, K->chi);
    } else {
        fprintf(fp, "# (no router ran under corruptions at two k or more: the corrupted columns are\n"
                       "# not plotted; plot using 1:5:6:7 to see them)\n");
        fprintf(fp, "set key below center horizontal maxcols 4 samplen 2.5 width 2\nset title \"%s: clean data\"\n"
                       "set yrange [%.6g:%.6g]\n"
                       "plot for [i=1:NR] datafile index (i-1) using (kx($1, i)):2:3:4 with yerrorlines ls i title router[i]\n",
                R->m->name, K->lo, K->hi);
    }
}

int mr_fig_k(rep *R, const char *name)
{
    mr_textbuf dat, gp;
    MR_TRY(mr_rep_fig_open(&dat, &gp));
    char what[300];
    snprintf(what, sizeof what, "%s vs the number of active experts k per router (the "
             "self-slimmable curve): clean, and mean over corruptions", mr_rep_prim_label(R));
    mr_rep_dat_header(R, dat.fp, name, what);
    fprintf(dat.fp, "# One block per router variant (type and options; routers with the same ones,\n"
                    "# e.g. a k-sweep under another name, share a curve); rows sorted by k:\n"
                    "# k  clean mean ci_lo ci_hi  corrupted mean ci_lo ci_hi\n"
                    "# (corrupted: mean over every corruption and severity, NaN if not run; %g%% "
                    "bootstrap CI)\n", 100 * R->r->level);
    curves *K = malloc(sizeof *K);
    if (!K) {
        mr_textbuf_discard(&dat);
        mr_textbuf_discard(&gp);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    k_variants(R, K);
    k_data(R, K, dat.fp);
    mr_rep_gp_header(R, gp.fp, name, what, K->any_corrupt ? 1200 : 900, 520, 12,
                     K->any_corrupt ? 7.0 : 3.4, K->any_corrupt ? 2.6 : 2.4, 8);
    k_styles(R, K, gp.fp);
    k_script(R, K, gp.fp);
    free(K);
    return mr_rep_emit(R, name, what, &dat, &gp);
}
