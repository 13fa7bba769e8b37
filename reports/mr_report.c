/* `moe-robust report` (mr_report.h): the driver. For every model of the run, the line
 * styles of its router@k groups, the aggregates (mr_report_agg.c), one figure per family
 * (mr_fig_*.c) and the tables (mr_report_tables.c); then the gallery and the index. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../io/mr_file.h"
#include "../io/mr_fs.h"
#include "mr_report_impl.h"

/* written first into a report directory: what `report --out` may write into again */
#define MR_REPORT_MARKER ".moe-robust-report"

static void mix_white(char *out, const char *hex, double t)
{
    unsigned rgb = (unsigned)strtoul(hex + 1, NULL, 16);
    int c[3] = {(int)(rgb >> 16) & 255, (int)(rgb >> 8) & 255, (int)rgb & 255};
    for (int i = 0; i < 3; i++) c[i] = (int)lround(c[i] + (255 - c[i]) * t);
    snprintf(out, 8, "#%02x%02x%02x", c[0] & 255, c[1] & 255, c[2] & 255);
}

/* colour per router (Okabe-Ito), lighter shades and other dash types for its other k */
static void make_styles(rep *R)
{
    static const char *const pal[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#000000", "#882255", "#999999", "#56B4E9", "#117733"};
    static const int pts[] = {7, 5, 9, 11, 13, 4, 6, 8, 10, 12};
    const mr_results *r = R->r;
    /* the most common k = the "default" k: solid lines */
    int best_k = 0, best_n = 0;
    for (int g = 0; g < R->G; g++) {
        int cnt = 0;
        for (int h = 0; h < R->G; h++) cnt += r->groups[R->g0 + h].k == r->groups[R->g0 + g].k;
        if (cnt > best_n || (cnt == best_n && r->groups[R->g0 + g].k < best_k)) {
            best_n = cnt;
            best_k = r->groups[R->g0 + g].k;
        }
    }
    int nvar = 0;
    for (int g = 0; g < R->G; g++) {
        const mr_res_group *gr = &r->groups[R->g0 + g];
        /* one colour per router variant (type + options: a k-sweep under another name
         * shares its router's colour), numbered in order of first appearance */
        int router = -1;
        for (int h = 0; h < g && router < 0; h++)
            if (strcmp(r->groups[R->g0 + h].variant, gr->variant) == 0) router = R->sel[h];
        if (router < 0) router = nvar++;
        R->sel[g] = router; /* scratch: the colour index of group g */
        /* rank of this k among the variant's other ks */
        int rank = 0, others = 0;
        for (int h = 0; h < R->G; h++) {
            const mr_res_group *o = &r->groups[R->g0 + h];
            if (strcmp(o->variant, gr->variant) != 0 || o->k == best_k) continue;
            others++;
            rank += o->k < gr->k;
        }
        style *s = &R->sty[g];
        const char *base = pal[router % 10];
        if (gr->k == best_k) {
            /* the reference router solid, every other router its own dash pattern, so
             * that lines that coincide (momentum exactly on softmax) stay visible */
            snprintf(s->rgb, sizeof s->rgb, "%s", base);
            s->dt = strcmp(gr->router, r->reference) == 0 ? 1 : 2 + router % 4;
        } else {
            mix_white(s->rgb, base, 0.2 + 0.55 * rank / (others > 1 ? others - 1 : 1));
            s->dt = 2 + rank % 4;
        }
        s->pt = pts[router % 10];
    }
}

enum { SEL_ALL, SEL_CORRUPT, SEL_FLUCT, SEL_ATTACK };

/* choose the groups the next figure shows, the reference router's last (drawn on top);
 * 0 if none */
static int select_groups(rep *R, int kind)
{
    R->ns = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int g = 0; g < R->G; g++) {
            const mr_res_group *gr = &R->r->groups[R->g0 + g];
            if ((strcmp(gr->router, R->r->reference) == 0) != pass) continue;
            if (kind == SEL_ALL || (kind == SEL_CORRUPT && R->agg[g].all_n > 0) ||
                (kind == SEL_FLUCT && gr->n_fluct > 0) || (kind == SEL_ATTACK && gr->n_attack > 0))
                R->sel[R->ns++] = g;
        }
    return R->ns;
}

/* whether some router variant of the model ran at two k or more (else accuracy vs k is
 * one point per curve: no figure) */
static int several_k(const rep *R)
{
    for (int g = 0; g < R->G; g++)
        for (int h = 0; h < R->G; h++) {
            const mr_res_group *a = &R->r->groups[R->g0 + g], *b = &R->r->groups[R->g0 + h];
            if (a->k != b->k && strcmp(a->variant, b->variant) == 0) return 1;
        }
    return 0;
}

static int report_model(rep *R, int mi)
{
    const mr_results *r = R->r;
    R->mi = mi;
    R->m = &r->models[mi];
    R->g0 = R->m->first_group;
    R->G = R->m->n_groups;
    R->lm = R->m->task == MR_TASK_LM;
    R->prim = 0;
    while (R->prim < MR_METRIC_N - 1 && mr_metric_table[R->prim].primary != R->m->task) R->prim++;
    R->n = (size_t)R->m->n;
    R->sty = calloc((size_t)R->G, sizeof *R->sty);
    R->agg = calloc((size_t)R->G, sizeof *R->agg);
    R->sel = calloc((size_t)R->G, sizeof *R->sel);
    int st = R->sty && R->agg && R->sel ? MR_OK : mr_error_set(MR_ENOMEM, "out of memory");
    if (st == MR_OK) make_styles(R);
    if (st == MR_OK) st = mr_rep_aggregate(R);
    if (st == MR_OK) mr_report_compare_values(R);
    /* what the compression figures need of every group, in display units */
    for (int g = 0; st == MR_OK && g < R->G; g++) {
        const gagg *a = &R->agg[g];
        const double *from[NSUM] = {a->clean[R->prim],        a->all[R->prim],
                                    a->delta[R->prim],        a->clean[MR_M_ENTROPY],
                                    a->all[MR_M_FLIP_TOP1],   a->all[MR_M_FLIP_SET],
                                    a->all[MR_M_PRED_FLIP]};
        for (int k = 0; k < NSUM; k++)
            for (int j = 0; j < 3; j++) R->summary[R->g0 + g][k][j] = from[k][j];
    }
    char name[200];
    const char *mn = R->m->name;
    if (st == MR_OK && select_groups(R, SEL_CORRUPT)) {
        snprintf(name, sizeof name, "fig-%s-severity-mean", mn);
        st = mr_fig_severity_mean(R, name);
        snprintf(name, sizeof name, "fig-%s-severity", mn);
        if (st == MR_OK) st = mr_fig_severity_grid(R, name);
        snprintf(name, sizeof name, "fig-%s-flip", mn);
        if (st == MR_OK) st = mr_fig_flip(R, name);
        snprintf(name, sizeof name, "fig-%s-families", mn);
        if (st == MR_OK) st = mr_fig_family(R, name);
    }
    snprintf(name, sizeof name, "fig-%s-attack", mn);
    if (st == MR_OK && select_groups(R, SEL_ATTACK)) st = mr_report_attack(R, name);
    snprintf(name, sizeof name, "fig-%s-entropy", mn);
    if (st == MR_OK && select_groups(R, SEL_ALL)) st = mr_fig_entropy(R, name);
    snprintf(name, sizeof name, "fig-%s-fluct", mn);
    if (st == MR_OK && select_groups(R, SEL_FLUCT)) st = mr_fig_fluct(R, name);
    char name2[200];
    snprintf(name, sizeof name, "fig-%s-saturation", mn);
    if (st == MR_OK && select_groups(R, SEL_FLUCT)) st = mr_fig_saturation(R, name);
    snprintf(name, sizeof name, "fig-%s-coact", mn);
    snprintf(name2, sizeof name2, "fig-%s-class", mn);
    if (st == MR_OK) st = mr_fig_struct_maps(R, name, name2);
    snprintf(name, sizeof name, "fig-%s-layers", mn);
    if (st == MR_OK && select_groups(R, SEL_ALL)) st = mr_fig_layers(R, name);
    snprintf(name, sizeof name, "fig-%s-load", mn);
    if (st == MR_OK && select_groups(R, SEL_ALL)) st = mr_fig_load(R, name);
    snprintf(name, sizeof name, "fig-%s-k", mn);
    if (st == MR_OK && several_k(R) && select_groups(R, SEL_ALL)) st = mr_fig_k(R, name);
    if (st == MR_OK) st = mr_rep_tables(R);
    if (st == MR_OK) st = mr_rep_family_table(R);
    mr_rep_agg_free(R);
    free(R->agg);
    free(R->sty);
    free(R->sel);
    R->agg = NULL;
    R->sty = NULL;
    R->sel = NULL;
    return st;
}

void mr_report_info_free(mr_report_info *info)
{
    free(info->rows);
    info->rows = NULL;
    info->n_rows = 0;
}

int mr_report_write(const mr_results *r, const mr_report_opts *o, mr_report_info *info)
{
    memset(info, 0, sizeof *info);
    const char *fmt = o->format ? o->format : "png";
    MR_REQUIRE(strcmp(fmt, "png") == 0 || strcmp(fmt, "pdf") == 0 || strcmp(fmt, "svg") == 0,
               MR_EINPUT, "--format %s: expected png, pdf or svg", fmt);
    if (o->out) {
        snprintf(info->out, sizeof info->out, "%s", o->out);
    } else {
        /* DIR/report beside results.h5 */
        char d[1000];
        snprintf(d, sizeof d, "%.990s", r->file);
        char *slash = strrchr(d, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(d, sizeof d, ".");
        snprintf(info->out, sizeof info->out, "%s/report", d);
    }
    /* only into a new or empty directory or an earlier report's (its marker, written
     * first, or report.md): never over a user's own files of the same names */
    MR_TRY(mr_fs_check_own_dir(info->out, MR_REPORT_MARKER, "report.md", "moe-robust report"));
    MR_TRY(mr_mkdir_p(info->out));
    rep R = {.r = r, .o = o, .info = info, .dir = info->out, .fmt = fmt};
    /* the marker claims the directory first; it keeps the checksums of the scripts an
     * earlier report wrote (a restyled script is never overwritten: mr_report_gpsum.c) */
    char *marker = mr_fs_join(info->out, MR_REPORT_MARKER);
    int mst = marker ? mr_rep_sums_load(&R, marker) : mr_error_set(MR_ENOMEM, "out of memory");
    mr_textbuf mt;
    if (mst == MR_OK) mst = mr_rep_sums_text(&R, &mt);
    if (mst == MR_OK) mst = mr_textbuf_commit(&mt, NULL, marker);
    if (mst != MR_OK) {
        free(marker);
        free(R.sums);
        return mst;
    }
    mr_fs_remove_tmp(info->out); /* what a killed report left half-written */
    R.summary = calloc((size_t)r->n_groups + 1, sizeof *R.summary);
    R.cmp = calloc((size_t)r->n_groups + 1, sizeof *R.cmp);
    if (!R.summary || !R.cmp) {
        free(R.summary);
        free(R.cmp);
        free(R.sums);
        free(marker);
        return mr_error_set(MR_ENOMEM, "out of memory");
    }
    int st = MR_OK;
    for (int mi = 0; st == MR_OK && mi < r->n_models; mi++) st = report_model(&R, mi);
    if (st == MR_OK) st = mr_report_compare(&R);
    if (st == MR_OK) st = mr_report_compress(&R);
    if (st == MR_OK) mr_rep_gallery(&R);
    if (st == MR_OK) st = mr_rep_figures_pdf(&R);
    if (st == MR_OK) st = mr_rep_index(&R);
    if (st == MR_OK) st = mr_report_compare_rows(&R);
    if (st == MR_OK && (st = mr_rep_sums_text(&R, &mt)) == MR_OK)
        st = mr_textbuf_commit(&mt, NULL, marker);
    free(marker);
    free(R.jobs);
    free(R.figs);
    free(R.summary);
    free(R.sums);
    free(R.kept);
    mr_report_compare_free(&R);
    if (st == MR_OK && R.render_failed)
        st = mr_error_set(MR_EFAILED, "%d figure(s) failed to render; first: %s", R.render_failed,
                          R.render_error);
    return st;
}
