/* mr_report_impl.h — internals of `moe-robust report` shared by its source files
 * (mr_report.c: per-model figures and tables; mr_report_compress.c: the compression
 * figures across models). Not a public interface: every pointer in `rep` is owned by
 * mr_report_write.
 */
#ifndef MR_REPORT_IMPL_H
#define MR_REPORT_IMPL_H

#include <stdio.h>

#include "../io/mr_file.h"
#include "../io/mr_results.h"
#include "mr_report.h"

/* overall aggregates of a group kept for the compression figures */
enum { SUM_CLEAN, SUM_CORR, SUM_DELTA, SUM_ENT, SUM_FLIP1, SUM_FLIPK, SUM_PRED, NSUM };

#define LN2 0.69314718055994530942

/* per-sample quantities of a cell, each a vector [n] */
enum { Q_PRIM, Q_FLIP1, Q_FLIPK, Q_PRED, Q_ENT, NQ };
/* severity aggregates (figures) */
enum { S_PRIM, S_FLIP1, S_FLIPK, S_PRED, NS };
/* per-corruption aggregates (table) */
enum { C_PRIM, C_DELTA, C_FLIP1, C_ENT, NC };
/* overall aggregates (summary table, k curve) */
enum { A_PRIM, A_DELTA, A_FLIP1, A_FLIPK, A_PRED, A_ENT, A_FLUCT, NA };

typedef struct gagg {
    double clean[3];            /* primary metric of the clean cell (its stored CI) */
    double sev[NS][MR_RES_MAX_SEV][3];
    int sev_n[MR_RES_MAX_SEV];  /* corrupted cells per severity */
    double *pc;                 /* [n_corr][NC][3] */
    int *pc_n;                  /* [n_corr] */
    double all[NA][3];
    int all_n, fluct_n, has_clean;
} gagg;

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
} rep;

/* helpers of mr_report.c */
void mr_rep_clean_str(char *dst, size_t cap, const char *src);  /* control chars -> '?' */
void mr_rep_gp_str(FILE *fp, const char *s);                    /* a gnuplot "string" */
void mr_rep_md_str(FILE *fp, const char *s);                    /* Markdown-escaped text */
void mr_rep_gp_header(rep *R, FILE *fp, const char *name, const char *what, int png_w, int png_h,
                      int font, double pdf_w, double pdf_h, int pdf_font);
void mr_rep_dat_header(rep *R, FILE *fp, const char *name, const char *what);
/* write NAME.dat and NAME.gp into the output directory, list the figure, render it */
int mr_rep_emit(rep *R, const char *name, const char *title, mr_textbuf *dat, mr_textbuf *gp);
const char *mr_rep_prim_label(const rep *R);
void mr_rep_range_pad(double *lo, double *hi);  /* finite padded range */
void mr_rep_mm(double *lo, double *hi, double v); /* widen [lo, hi] to v (NaN skipped) */
void mr_rep_index_fig(rep *R, FILE *fp, const char *name); /* a figure's entry in report.md */
int mr_rep_append_file(FILE *fp, const char *dir, const char *name); /* 0 if unreadable */

/* the compression figures and table (mr_report_compress.c): for every model of the run
 * that others compress (`compress = METHOD:K` on its path), accuracy and routing
 * stability against the experts kept; R->summary must hold every group's aggregates.
 * Nothing is written for a run without compressed models. */
int mr_report_compress(rep *R);
/* the index section of the compression figures (none: nothing written) */
void mr_report_compress_index(rep *R, FILE *fp);

#endif
