/* report.md, the index of a report: sources and settings, per model the summary table
 * inline and every figure with its data and script, then the gallery. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "mr_report_impl.h"

void mr_rep_index_fig(rep *R, FILE *fp, const char *name)
{
    for (int i = 0; i < R->n_figs; i++) {
        const fig *f = &R->figs[i];
        if (strcmp(f->name, name) != 0) continue;
        fprintf(fp, "### %c%s\n\n", toupper((unsigned char)f->title[0]), f->title + 1);
        if (strcmp(R->fmt, "pdf") == 0)
            fprintf(fp, "[%s.pdf](%s.pdf)", name, name);
        else
            fprintf(fp, "![%s](%s.%s)", name, name, R->fmt);
        if (!f->rendered) fprintf(fp, " (not rendered yet: run the script with gnuplot)");
        fprintf(fp, "\n\ndata: [%s.dat](%s.dat) · script: [%s.gp](%s.gp)\n\n", name, name, name, name);
    }
}

int mr_rep_append_file(FILE *fp, const char *dir, const char *name)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *in = fopen(path, "r");
    if (!in) return 0;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, fp);
    fclose(in);
    return 1;
}

/* docs/routers.md, `momentum`: with gamma = 1 (the default and every shipped momentum
 * model's) the first two MoE blocks route exactly as softmax, so on a model with at most
 * two MoE blocks every routing metric of a momentum row equals softmax's by construction,
 * and on a deeper one only the blocks from the third on can differ. Said under the tables
 * wherever momentum rows appear. */
void mr_rep_momentum_note(FILE *fp, const mr_results *r, int model)
{
    const mr_res_model *m = &r->models[model];
    int any = 0;
    for (int g = m->first_group; g < m->first_group + m->n_groups; g++)
        any |= strcmp(r->groups[g].router_type, "momentum") == 0;
    if (!any) return;
    if (m->n_moe <= 2)
        fprintf(fp, "Note on the momentum rows: this model has %d MoE block%s; with `gamma = 1` (the "
                    "default, and the value the shipped momentum models store) momentum routes the "
                    "first two MoE blocks exactly as softmax, so its routing metrics (entropy, load, "
                    "routing flips, fluctuation) equal softmax's on the same model by construction; "
                    "only accuracy, loss and prediction flips can differ (docs/routers.md, "
                    "`momentum`).\n\n",
                m->n_moe, m->n_moe == 1 ? "" : "s");
    else
        fprintf(fp, "Note on the momentum rows: this model has %d MoE blocks; with `gamma = 1` (the "
                    "default) momentum routes the first two (layers %d and %d of the per-layer tables "
                    "and figures) exactly as softmax, and from the third on (layer %d) the "
                    "accumulated momentum changes the input of every later router, so routing "
                    "entropy, load, routing flips and fluctuation differ there (docs/routers.md, "
                    "`momentum`).\n\n",
                m->n_moe, m->layers[0], m->layers[1], m->layers[2]);
}

int mr_rep_index(rep *R)
{
    const mr_results *r = R->r;
    mr_textbuf t;
    MR_TRY(mr_textbuf_open(&t));
    FILE *fp = t.fp;
    char src[1200];
    mr_rep_clean_str(src, sizeof src, r->file);
    fprintf(fp, "# moe-robust report\n\n");
    fprintf(fp, "Source: `%s` (config hash `%s`, %d cells). Confidence intervals: %g%% "
                "percentile bootstrap over samples, B = %d, seed %llu. Reference router (CE, entropy "
                "ratio): `%s`.\n\n",
            src, r->config_hash, r->n_cells, 100 * r->level, r->bootstrap,
            (unsigned long long)r->seed, r->reference);
    if (R->info->gnuplot_missing)
        fprintf(fp, "**Figures were not rendered: gnuplot is not installed** (Debian: `apt-get "
                    "install gnuplot-nox`). Data, scripts and tables are complete; render with "
                    "`gnuplot FIG.gp` in this directory.\n\n");
    fprintf(fp, "Every figure has its data (`.dat`) and gnuplot script (`.gp`) beside it: restyle "
                "the script and run `gnuplot -e \"fmt='pdf'\" NAME.gp` here (`png`, `pdf` or "
                "`svg`).\n\n");
    if (R->n_kept) {
        fprintf(fp, "**Restyled scripts kept:** these scripts were edited after an earlier report "
                    "wrote them, so they were not overwritten (and were rendered with the new "
                    "data); the scripts this report would have written are beside them:");
        for (int i = 0; i < R->n_kept; i++)
            fprintf(fp, "%s `%s.gp` (new: `%s.new.gp`)", i ? "," : "", R->kept[i], R->kept[i]);
        fprintf(fp, ".\n\n");
    }
    if (R->info->figures_pdf)
        fprintf(fp, "Every figure on one page each: [figures.pdf](figures.pdf).\n\n");
    else if (R->o->render && !R->info->gnuplot_missing)
        fprintf(fp, "No figures.pdf: poppler's `pdfunite` is not installed (Debian: `apt-get "
                    "install poppler-utils`); every figure renders as PDF with `gnuplot -e "
                    "\"fmt='pdf'\" NAME.gp`.\n\n");
    const char *font = mr_rep_pdf_font();
    if (strcmp(font, "Times") == 0)
        fprintf(fp, "PDF font: the scripts ask for Times, but no Times-metric font is installed, so "
                    "fontconfig substitutes its default serif (DejaVu Serif on a bare Debian); "
                    "`apt-get install fonts-liberation` (scripts/bootstrap does) gives Liberation "
                    "Serif.\n\n");
    else
        fprintf(fp, "PDF font: %s (Times-metric), 8 pt; PNG and SVG: Helvetica as fontconfig "
                    "resolves it.\n\n", font);
    fprintf(fp, "Contents: [comparison](#comparison) ·");
    for (int mi = 0; mi < r->n_models; mi++) fprintf(fp, " [model %s](#model-%s) ·", r->models[mi].name, r->models[mi].name);
    fprintf(fp, "%s", R->n_compress ? " [compression](#compression) ·" : "");
    fprintf(fp, " [corruption gallery](#corruption-gallery)\n\n");
    mr_report_compare_index(R, fp);
    for (int mi = 0; mi < r->n_models; mi++) {
        const mr_res_model *m = &r->models[mi];
        fprintf(fp, "## Model %s\n\n", m->name);
        char mp[1100];
        mr_rep_clean_str(mp, sizeof mp, m->path);
        fprintf(fp, "`%s`: %s, %d samples, MoE blocks", mp[0] ? mp : m->name,
                m->task == MR_TASK_LM ? "char-level LM (primary metric: bits per character)"
                                      : "classifier (primary metric: accuracy)", m->n);
        for (int l = 0; l < m->n_moe; l++) fprintf(fp, "%s%d", l ? ", " : " ", m->layers[l]);
        fprintf(fp, ", %d experts; %d router@k groups; %d corruptions.\n\n", m->E, m->n_groups, r->n_corr);
        fprintf(fp, "### Summary\n\nMean ± half-width of the %g%% CI. Clean = on clean data; "
                    "corrupted = mean over every corruption and severity; Δ = degradation from clean "
                    "to corrupted (%s); ckpt = between consecutive checkpoints; per-layer metrics "
                    "(entropy, flips) are means over MoE layers, flips compare clean with corrupted "
                    "input; mCE against `%s` (100 = as robust as it). Best per column in bold "
                    "(entropy has no better direction; only with two rows or more; never a row "
                    "marked †, a collapsed router whose clean error or bpc is more than twice "
                    "the reference's).\n\n",
                100 * r->level, m->task == MR_TASK_LM ? "corrupted − clean bpc" : "clean − corrupted accuracy",
                r->reference);
        char name[200];
        snprintf(name, sizeof name, "table-%s-summary.md", m->name);
        mr_rep_append_file(fp, R->dir, name);
        fprintf(fp, "\n");
        mr_rep_momentum_note(fp, r, mi);
        fprintf(fp, "\nLaTeX: [table-%s-summary.tex](table-%s-summary.tex) · per corruption: "
                    "[table-%s-corruptions.md](table-%s-corruptions.md), "
                    "[table-%s-corruptions.tex](table-%s-corruptions.tex)\n\n",
                m->name, m->name, m->name, m->name, m->name, m->name);
        snprintf(name, sizeof name, "table-%s-families.md", m->name);
        if (r->n_corr) {
            fprintf(fp, "### Per corruption family\n\nMeans over the family's corruptions "
                        "(docs/corruptions.md, \"Families\") of their means over severities; CE "
                        "against `%s`.\n\n", r->reference);
            mr_rep_append_file(fp, R->dir, name);
            fprintf(fp, "\nLaTeX: [table-%s-families.tex](table-%s-families.tex)\n\n", m->name, m->name);
        }
        static const char *const order[] = {"severity-mean", "severity", "families", "flip",
                                            "entropy", "fluct", "saturation", "coact", "class",
                                            "layers", "load", "k"};
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            snprintf(name, sizeof name, "fig-%s-%s", m->name, order[i]);
            mr_rep_index_fig(R, fp, name);
        }
        mr_report_attack_index(R, fp, mi);
    }
    mr_report_compress_index(R, fp);
    fprintf(fp, "## Corruption gallery\n\n");
    const char *g = R->info->gallery;
    if (strcmp(g, "fig-gallery.png") == 0)
        fprintf(fp, "Sample 0 of the data under every image corruption (rows) at severities 1..%d "
                    "(columns; the first is clean), seed %llu:\n\n![corruption gallery](fig-gallery.png)\n",
                MR_SEVERITY_MAX, (unsigned long long)r->seed);
    else if (strcmp(g, "gallery.txt") == 0) {
        fprintf(fp, "The first characters of sample 0 under every text corruption and severity "
                    "(seed %llu; ↵ = newline):\n\n```\n", (unsigned long long)r->seed);
        mr_rep_append_file(fp, R->dir, "gallery.txt");
        fprintf(fp, "```\n");
    } else {
        fprintf(fp, "Gallery %s\n", g);
    }
    return mr_textbuf_commit(&t, R->dir, "report.md");
}
