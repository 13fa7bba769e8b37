/* moe-robust run --dry-run: the grid a config makes, and how long it would take. */
#include <stdio.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../corruptions/mr_corruption.h" /* MR_SEVERITY_MAX */
#include "mr_cli.h"
#include "mr_grid.h"

static void duration(char *buf, size_t cap, double s)
{
    if (s < 60)
        snprintf(buf, cap, "%.1f s", s);
    else if (s < 3600)
        snprintf(buf, cap, "%d min %02d s", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, cap, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
}

int mr_cmd_run_dry(mr_grid *g, const char *out_dir, int threads, FILE *fp)
{
    const mr_run_config *c = g->cfg;
    mr_grid_estimate_out est;
    MR_TRY(mr_grid_estimate(g, threads, &est));
    const mr_dataset *d = g->data;
    fprintf(fp, "config       %s (config_hash %016llx)%s\n", c->file,
            (unsigned long long)g->hash, c->n_set ? ", with --set:" : "");
    for (int i = 0; i < c->n_set; i++) fprintf(fp, "               --set %s\n", c->set[i]);
    int done = 0;
    char path[1400];
    for (int i = 0; out_dir[0] && i < g->n_cells; i++) {
        mr_grid_cell_path(path, sizeof path, out_dir, &g->cells[i]);
        done += mr_cell_done(path, g->hash);
    }
    fprintf(fp, "output       %s", out_dir[0] ? out_dir : "none yet: a run needs --out DIR or [run] out");
    if (done) fprintf(fp, " (%d of the cells are done there: --resume keeps them)", done);
    fprintf(fp, "\n");
    if (d->kind == MR_DATA_IMAGES)
        fprintf(fp, "data         %s: %d images %dx%dx%d per cell%s\n", c->data, d->n, d->h, d->w,
                d->c, c->limit ? " (limit)" : "");
    else
        fprintf(fp, "data         %s: %d sequences of %d tokens per cell%s\n", c->data, d->n,
                d->cols - 1, c->limit ? " (limit)" : "");
    for (int i = 0; i < c->n_models; i++) {
        const mr_cfg_model *cm = &c->models[i];
        const mr_config *mc = &g->models[i]->cfg;
        fprintf(fp, "model        %s: %s (%s, %d MoE of %d blocks, %d experts, top-%d), %d checkpoints\n",
                cm->name, cm->path, mc->task == MR_TASK_LM ? "lm" : "classify", mc->n_moe,
                mc->n_layers, mc->n_experts, mc->top_k, cm->n_ckpt);
    }
    fprintf(fp, "corruptions ");
    for (int i = 0; i < g->n_corr; i++) fprintf(fp, " %s", g->corr[i]->name);
    if (!g->n_corr) fprintf(fp, " none");
    fprintf(fp, "; severities");
    for (int s = 1; s <= MR_SEVERITY_MAX; s++)
        if (c->sev_mask & (1 << s)) fprintf(fp, " %d", s);
    fprintf(fp, "\nbootstrap    %d resamples per interval, level %g, seed %llu, batch %d\n\n",
            c->bootstrap, c->level, (unsigned long long)c->seed, c->batch);

    int w = (int)strlen("model/router@k");
    for (int gi = 0; gi < g->n_groups; gi++) {
        const mr_grid_group *gr = &g->groups[gi];
        char id[200];
        int l = snprintf(id, sizeof id, "%s/%s@k%d", c->models[gr->model].name,
                         c->routers[gr->router].name, gr->k);
        if (l > w) w = l;
    }
    fprintf(fp, "%-*s  %5s  %9s  %6s  %5s  %5s  %9s  %10s\n", w, "model/router@k", "clean",
            "corrupted", "attack", "fluct", "cells", "samples", "est. time");
    int tot[5] = {0};
    long long tot_samples = 0;
    for (int gi = 0; gi < g->n_groups; gi++) {
        const mr_grid_group *gr = &g->groups[gi];
        int k[4] = {0}; /* by enum mr_cell_kind */
        for (int i = 0; i < gr->n_cells; i++) k[g->cells[gr->first_cell + i].meta.kind]++;
        char id[200], t[32];
        snprintf(id, sizeof id, "%s/%s@k%d", c->models[gr->model].name,
                 c->routers[gr->router].name, gr->k);
        duration(t, sizeof t, est.group_seconds[gi]);
        long long samples = (long long)gr->n_cells * d->n;
        fprintf(fp, "%-*s  %5d  %9d  %6d  %5d  %5d  %9lld  %10s\n", w, id, k[MR_CELL_CLEAN],
                k[MR_CELL_CORRUPT], k[MR_CELL_ATTACK], k[MR_CELL_FLUCT], gr->n_cells, samples, t);
        for (int j = 0; j < 4; j++) tot[j] += k[j];
        tot[4] += gr->n_cells;
        tot_samples += samples;
    }
    char t[32];
    duration(t, sizeof t, est.total_seconds);
    fprintf(fp, "%-*s  %5d  %9d  %6d  %5d  %5d  %9lld  %10s\n", w, "total", tot[MR_CELL_CLEAN],
            tot[MR_CELL_CORRUPT], tot[MR_CELL_ATTACK], tot[MR_CELL_FLUCT], tot[4], tot_samples, t);
    if (g->n_corr) {
        fprintf(fp, "\ncorrupted cells per corruption:");
        for (int ci = 0; ci < g->n_corr; ci++) {
            int n = 0;
            for (int i = 0; i < g->n_cells; i++) n += g->cells[i].corr == g->corr[ci];
            fprintf(fp, " %s %d%s", g->corr[ci]->name, n, ci + 1 < g->n_corr ? "," : "");
        }
        fprintf(fp, "\n");
    }
    char cal[32], idle[32];
    duration(cal, sizeof cal, est.calib_seconds);
    fprintf(fp, "\nestimated time: %s on %d thread%s (calibrated on the first %d samples of every "
                "group and corruption in %s)",
            t, threads, threads == 1 ? "" : "s", est.calib_samples, cal);
    /* threads got the CPU only part of the time: other work shared the cores */
    if (est.calib_seconds >= 0.5 && est.cpu_per_wall > 0 && est.cpu_per_wall < 0.8 * threads) {
        duration(idle, sizeof idle, est.total_seconds * est.cpu_per_wall / threads);
        fprintf(fp, ";\n  its threads ran %.0f %% of that time (the cores are shared with other "
                    "work): about %s on an idle machine",
                100.0 * est.cpu_per_wall / threads, idle);
    }
    fprintf(fp, "; nothing was written\n");
    mr_grid_estimate_free(&est);
    return MR_OK;
}
