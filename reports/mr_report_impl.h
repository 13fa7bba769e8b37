/* mr_report_impl.h — what the files of `moe-robust report` share (internal to reports/):
 * the report state, the aggregates of every (model, router, k) group, and the helpers
 * of each job:
 *   mr_report.c          the driver (one model after the other) and the styles
 *   mr_report_agg.c      aggregates over samples, corruptions and severities (schema)
 *   mr_report_tables.c   summary and per-corruption tables (schema)
 *   mr_report_fig.c      what every figure shares: gnuplot headers, keys, emit/render
 *   mr_report_axes.c     panel margins, a collapsed router's broken axis, axis cuts
 *   mr_fig_*.c           one file per figure family (mr_fig_family.c: per corruption
 *                        family, figure and table)
 *   mr_report_gallery.c  the corruption gallery
 *   mr_report_index.c    report.md, the index
 *   mr_report_text.c     quoting for gnuplot, Markdown and LaTeX
 *   mr_report_compress.c the compression figures and table across models
 *   mr_report_attack.c   the adversarial attack figure and table
 *   mr_report_compare.c  the comparison table of every (model, router@k) of the run
 * Ownership: everything hangs off `rep`, released by the driver.
 */
#ifndef MR_REPORT_IMPL_H
#define MR_REPORT_IMPL_H

#include <stdint.h>
#include <stdio.h>

#include "../io/mr_file.h"
#include "mr_report.h"

/* Aggregates of one group, per metric of the schema (metrics/mr_metric.h), each a
 * [mean, lo, hi] triple in display units (the metric's `scale`), NaN where undefined. */
typedef struct gagg {
    double clean[MR_METRIC_N][3];  /* MR_REPORT_CLEAN */
    double all[MR_METRIC_N][3];    /* MR_REPORT_CORRUPT: mean over corruptions and severities */
    double delta[MR_METRIC_N][3];  /* MR_REPORT_DELTA: degradation, clean -> corrupted */
    double fluct[MR_METRIC_N][3];  /* MR_REPORT_FLUCT: mean over checkpoint pairs */
    double sev[MR_METRIC_N][MR_SEVERITY_MAX][3]; /* MR_REPORT_SEV, per severity */
    int sev_n[MR_SEVERITY_MAX];     /* corrupted cells per severity */
    double *pc;                    /* [n_corr][MR_METRIC_N][2][3]: MR_REPORT_PERCORR, mean
                                      over the corruption's severities, and its delta */
    int *pc_n;                     /* [n_corr] cells per corruption */
    int all_n, fluct_n, has_clean;
} gagg;

/* pc's triple of corruption c, metric id, d = 0 (value) or 1 (delta) */
#define PC(a, c, id, d) ((a)->pc + ((((size_t)(c) * MR_METRIC_N + (id)) * 2 + (d)) * 3))

/* overall aggregates of a group kept for the compression figures (R->summary) */
enum { SUM_CLEAN, SUM_CORR, SUM_DELTA, SUM_ENT, SUM_FLIP1, SUM_FLIPK, SUM_PRED, NSUM };

/* What the comparison table (mr_report_compare.c) keeps of every group of the run, in
 * display units: the per-sample vectors of its columns with a paired test (means per
 * sample over the cells the column aggregates; NULL where the group has none) and the
 * column values [mean, lo, hi]. */
enum { CMP_CLEAN, CMP_CORR, CMP_MCE, CMP_RMCE, CMP_FLIP1, CMP_PRED, CMP_ENT, CMP_FLUCT,
       CMP_LOADCV, NCMP };
typedef struct cmp_row {
    double v[NCMP][3];
    double *vec[NCMP];
    size_t n;
    int task, prim;
} cmp_row;

typedef struct style {
    char rgb[8];
    int dt, pt;
} style;

typedef struct fig {
    char name[160];
    char title[200];
    int rendered;
} fig;

/* one CI to compute: x is owned and freed after the run */
typedef struct ci_job {
    double *x;
    double *out;
    char purpose[200];
} ci_job;

/* the groups a figure shows: j-th shown group g = R->sel[j] */
#define FOR_SEL(j, g) for (int j = 0, g = 0; j < R->ns && ((g = R->sel[j]), 1); j++)

typedef struct rep {
    const mr_results *r;
    const mr_report_opts *o;
    mr_report_info *info;
    const char *dir;
    const char *fmt;
    /* the model being reported */
    int mi;
    const mr_res_model *m;
    int g0, G;
    int lm;
    int prim;     /* the schema id of its primary metric (accuracy, bpc) */
    size_t n;
    style *sty;   /* [G] */
    int *sel, ns; /* groups shown by the current figure */
    gagg *agg;    /* [G] */
    /* CI queue */
    ci_job *jobs;
    int n_jobs, cap_jobs;
    /* figures of all models, for the index */
    fig *figs;
    int n_figs, cap_figs;
    int render_failed;
    char render_error[1024];
    /* every group's overall aggregates, for the cross-model compression figures:
     * summary[global group][SUM_*][mean, lo, hi] (NaN where not run) */
    double (*summary)[NSUM][3];
    int n_compress;  /* compression families drawn (index section) */
    cmp_row *cmp;    /* [r->n_groups] the comparison table's rows (global group index) */
    /* checksums of the .gp scripts written (mr_report_gpsum.c) and the edited ones kept */
    struct gp_sum {
        char name[220];
        uint64_t h;
    } *sums;
    int n_sums, cap_sums;
    char (*kept)[200];
    int n_kept, cap_kept;
    /* the size of the figure being written (mr_rep_gp_header), for its key strip */
    int png_w;
    double pdf_w;
} rep;

/* ---- mr_report_agg.c ---- */
/* Whether the report shows metric id for the current model (its `report` columns, its
 * task, and for primary metrics only the model's own). */
int mr_rep_shows(const rep *R, int id);
/* Aggregate every group of the current model (R->agg) and compute the queued CIs. */
int mr_rep_aggregate(rep *R);
void mr_rep_agg_free(rep *R);

/* ---- mr_report_tables.c ---- */
int mr_rep_tables(rep *R);
/* group g of the current model collapsed: clean error (bpc) > 2x its reference's */
int mr_rep_collapsed(const rep *R, int g);

/* ---- mr_report_fig.c ---- */
const char *mr_rep_pdf_font(void);
void mr_rep_gp_header(rep *R, FILE *fp, const char *name, const char *what, int png_w,
                      int png_h, int font, double pdf_w, double pdf_h, int pdf_font);
void mr_rep_gp_groups(rep *R, FILE *fp);
void mr_rep_gp_layer_note(rep *R, FILE *fp);
void mr_rep_dat_header(rep *R, FILE *fp, const char *name, const char *what);
void mr_rep_gp_multi_begin(rep *R, FILE *fp, const char *title, int boxes, int ncol, int nrow,
                           double left, double right, double bottom_px, double height_px);
/* open the data and script texts of a figure */
int mr_rep_fig_open(mr_textbuf *dat, mr_textbuf *gp);
/* write NAME.dat and NAME.gp, list the figure for the index, render it */
int mr_rep_emit(rep *R, const char *name, const char *title, mr_textbuf *dat, mr_textbuf *gp);
const char *mr_rep_prim_label(const rep *R);
void mr_rep_range_pad(double *lo, double *hi);
void mr_rep_minmax(double *lo, double *hi, double v);
/* rows of the key strip of a multi-panel figure png_w px and pdf_w in wide */
int mr_rep_key_rows(const rep *R, int png_w, double pdf_w);
/* figures.pdf: every rendered figure as a page (pdfcairo, joined by pdfunite) when
 * pdfunite is installed; R->info->figures_pdf says whether it was written */
int mr_rep_figures_pdf(rep *R);
/* checkpoint A (which = 0) or B (1) of a fluct cell's "A -> B", as a basename without .h5 */
void mr_rep_ckpt_name(char *out, size_t cap, const char *ck, int which);

/* ---- mr_report_axes.c ---- */
/* The margins of a panel of a multi-panel figure (characters): the panel's title sits in
 * its own top margin (MR_REP_TMARGIN; titles are never offset down onto the plot), the
 * bottom margin holds the tick labels, and the x label when `xlabel`, with a gap, so that
 * a title does not read as the x label of the panel above. */
#define MR_REP_TMARGIN 2.0
void mr_rep_gp_panel_margins(FILE *fp, double left, double right, int xlabel);
/* Collapsed routers (mr_rep_collapsed) on a separate axis. lo/hi: the y range of the
 * figure's other groups, clo/chi that of its collapsed ones (unpadded; NaN: none). Returns
 * 1 when the collapsed groups lie outside the others' range and get their own axis; else
 * 0, and their range is merged into lo/hi (one axis). With 1, the figure calls
 * mr_rep_gp_right_groups after mr_rep_gp_groups (array right[], "(right axis)" in their
 * key labels, main() and alt()), mr_rep_gp_right_axis instead of setting its y range (lo/hi
 * padded): a broken axis, the others in a band on the left axis, the collapsed groups in
 * a band of their own on the right axis (above them for bpc, below for accuracy), ticks
 * only over each band, a dashed break between, the right ticks in the colour of a single
 * collapsed router and a y2 label when `ylabel`; then it plots every layer twice: pass 0
 * through alt() `axes x1y2`, pass 1 through main(). */
int mr_rep_right_axis(double *lo, double *hi, double clo, double chi);
void mr_rep_gp_right_groups(const rep *R, FILE *fp);
void mr_rep_gp_right_axis(const rep *R, FILE *fp, double lo, double hi, double clo, double chi,
                          int ylabel);
/* break marks at the foot of the left y axis of a figure whose y axis does not start at 0 */
void mr_rep_gp_axis_cut(FILE *fp);
/* the `using` column `col` of group variable g: plain (pass -1: no right axis), or
 * through alt() (pass 0) or main() (pass 1) */
const char *mr_rep_gp_col(char *buf, size_t cap, int pass, const char *g, int col);

/* ---- figure families (mr_fig_*.c): each writes fig-MODEL-<family>.* ---- */
int mr_fig_severity_mean(rep *R, const char *name);
int mr_fig_severity_grid(rep *R, const char *name);
int mr_fig_flip(rep *R, const char *name);
int mr_fig_entropy(rep *R, const char *name);
int mr_fig_fluct(rep *R, const char *name);
int mr_fig_load(rep *R, const char *name);
int mr_fig_k(rep *R, const char *name);
/* mr_fig_family.c: fig-MODEL-families and table-MODEL-families.{md,tex} (nothing without
 * corruptions) */
int mr_fig_family(rep *R, const char *name);
int mr_rep_family_table(rep *R);
/* mr_fig_struct.c: routing structure (fig-MODEL-coact, -class, -layers) and saturation */
int mr_fig_struct_maps(rep *R, const char *coact_name, const char *class_name);
int mr_fig_layers(rep *R, const char *name);
int mr_fig_saturation(rep *R, const char *name);

/* ---- mr_report_gallery.c, mr_report_index.c ---- */
void mr_rep_gallery(rep *R);
int mr_rep_index(rep *R);
void mr_rep_index_fig(rep *R, FILE *fp, const char *name); /* a figure's entry in report.md */
int mr_rep_append_file(FILE *fp, const char *dir, const char *name); /* 0 if unreadable */
/* why momentum rows equal softmax's in routing on a model with at most two MoE blocks,
 * and from which block they differ on a deeper one */
void mr_rep_momentum_note(FILE *fp, const mr_results *r, int model);

/* ---- mr_report_compress.c: for every model of the run that others compress
 * (`compress = METHOD:K` on its path), accuracy and routing stability against the experts
 * kept; R->summary must hold every group's aggregates. Nothing is written for a run
 * without compressed models. ---- */
int mr_report_compress(rep *R);
/* the index section of the compression figures (none: nothing written) */
void mr_report_compress_index(rep *R, FILE *fp);

/* ---- mr_report_gpsum.c: a user's edited NAME.gp is kept, the new one written beside it
 * as NAME.new.gp (checksums in the directory's marker file) ---- */
int mr_rep_sums_load(rep *R, const char *marker_path);
int mr_rep_sums_text(const rep *R, mr_textbuf *t); /* the marker's new content */
/* write NAME.gp (or NAME.new.gp next to an edited NAME.gp) from gp */
int mr_rep_gp_commit(rep *R, const char *name, mr_textbuf *gp);

/* ---- mr_report_text.c: user strings inside gnuplot, Markdown and LaTeX ---- */
void mr_rep_clean_str(char *dst, size_t cap, const char *src);
void mr_rep_gp_str(FILE *fp, const char *s);
void mr_rep_tex_str(FILE *fp, const char *s);
void mr_rep_md_str(FILE *fp, const char *s);
const char *mr_rep_basename(const char *p);

/* ---- mr_report_compare.c: the comparison table of every (model, router@k) of the run
 * (table-comparison.{md,tex}), from R->cmp ---- */
/* keep group gl's column values and vectors (the aggregates of the current model are
 * done; cq/all/fl: its clean, summed-corrupted and summed-fluct per-sample vectors by
 * metric id, V(base, id)) */
int mr_report_compare_keep(rep *R, int gl, const double *cq, const double *all,
                           const double *fl);
/* the column values of the current model's groups (after mr_rep_aggregate) */
void mr_report_compare_values(rep *R);
int mr_report_compare(rep *R);
void mr_report_compare_index(rep *R, FILE *fp);
/* the reference row of group g (global index): the reference router on its model (same
 * k if it ran there), else on the first model running it; -1 if none */
int mr_rep_ref_group(const mr_results *r, int g);
/* R->info->rows: every comparison row of the run */
int mr_report_compare_rows(rep *R);
void mr_report_compare_free(rep *R);

/* ---- mr_report_attack.c ---- */
/* the attack figure and table of the current model: accuracy and top-1 routing flips vs
 * eps per attack and router@k, for the shown groups (R->sel: those with attack cells);
 * fig-M-attack and table-M-attacks.md */
int mr_report_attack(rep *R, const char *name);
/* its section in report.md for model mi (nothing when the model has no attack cells) */
void mr_report_attack_index(rep *R, FILE *fp, int mi);

#endif
