#include "mr_pass.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

void mr_pass_free(mr_pass_metrics *p)
{
    if (!p) return;
    free(p->correct);
    free(p->loss);
    free(p->pred);
    free(p->layers);
    free(p->struct_layers);
    mr_routing_acc_free(p->routing);
    mr_struct_acc_free(p->structure);
    memset(p, 0, sizeof *p);
}

void mr_flips_free(mr_flip_metrics *f)
{
    if (!f) return;
    free(f->top1);
    free(f->set);
    free(f->jaccard);
    free(f->pred);
    free(f->top1_ci);
    free(f->set_ci);
    free(f->jaccard_ci);
    free(f->sat);
    free(f->sat_ci);
    memset(f, 0, sizeof *f);
}

int mr_pass_alloc(mr_pass_metrics *p, int n, int n_moe, int E, int k)
{
    p->correct = malloc((size_t)n * sizeof *p->correct);
    p->loss = malloc((size_t)n * sizeof *p->loss);
    p->pred = malloc((size_t)n * sizeof *p->pred);
    p->layers = calloc((size_t)n_moe + 1, sizeof *p->layers);
    p->struct_layers = calloc((size_t)n_moe + 1, sizeof *p->struct_layers);
    if (!p->correct || !p->loss || !p->pred || !p->layers || !p->struct_layers)
        return mr_error_set(MR_ENOMEM, "out of memory");
    MR_TRY(mr_struct_acc_alloc(&p->structure, n_moe, E, k));
    return mr_routing_acc_alloc(&p->routing, n, n_moe, E, k);
}

int mr_flips_alloc(mr_flip_metrics *f, int n, int n_moe)
{
    size_t ps = (size_t)n * n_moe + 1;
    f->top1 = malloc(ps * sizeof(double));
    f->set = malloc(ps * sizeof(double));
    f->jaccard = malloc(ps * sizeof(double));
    f->pred = malloc((size_t)n * sizeof(double));
    f->top1_ci = calloc((size_t)n_moe + 1, sizeof(mr_ci));
    f->set_ci = calloc((size_t)n_moe + 1, sizeof(mr_ci));
    f->jaccard_ci = calloc((size_t)n_moe + 1, sizeof(mr_ci));
    if (!f->top1 || !f->set || !f->jaccard || !f->pred || !f->top1_ci || !f->set_ci ||
        !f->jaccard_ci)
        return mr_error_set(MR_ENOMEM, "out of memory");
    return MR_OK;
}

int mr_flips_alloc_sat(mr_flip_metrics *f, int n, int n_moe)
{
    f->sat = malloc(((size_t)n * n_moe + 1) * sizeof(double));
    f->sat_ci = calloc((size_t)n_moe + 1, sizeof(mr_ci));
    if (!f->sat || !f->sat_ci) return mr_error_set(MR_ENOMEM, "out of memory");
    return MR_OK;
}

int mr_pass_ci(mr_ci *out, const double *x, int n, int stride, const mr_ci_opts *o,
               const char *purpose)
{
    if (o->bootstrap <= 0) {
        out->mean = out->lo = out->hi = mr_stats_mean(x, (size_t)n, (size_t)stride);
        return MR_OK;
    }
    return mr_stats_bootstrap_mean(out, x, (size_t)n, (size_t)stride, o->bootstrap, o->level,
                                   o->seed, purpose, NULL, o->cache);
}

/* the suite's one paired test (metrics/mr_stats.h) */
int mr_pass_paired(mr_paired *out, const double *x, const double *y, int n,
                   const mr_ci_opts *o, const char *purpose)
{
    return mr_stats_paired_test(out, x, y, (size_t)n, 1, o->bootstrap, o->level, o->seed,
                                purpose, o->cache);
}

int mr_pass_summarize(mr_pass_metrics *p, int n, const mr_ci_opts *o, const char *name)
{
    char purpose[64];
    snprintf(purpose, sizeof purpose, "bootstrap/accuracy/%s", name);
    MR_TRY(mr_pass_ci(&p->accuracy, p->correct, n, 1, o, purpose));
    snprintf(purpose, sizeof purpose, "bootstrap/loss/%s", name);
    MR_TRY(mr_pass_ci(&p->loss_ci, p->loss, n, 1, o, purpose));
    if (p->structure && p->struct_layers) mr_struct_summarize(p->struct_layers, p->structure);
    return mr_routing_summarize(p->layers, p->routing, o->bootstrap, o->level, o->seed,
                                o->cache);
}

int mr_flips_summarize(mr_flip_metrics *f, int n, int n_moe, const mr_ci_opts *o,
                       const char *name)
{
    char purpose[64];
    for (int mi = 0; mi < n_moe; mi++) {
        snprintf(purpose, sizeof purpose, "bootstrap/flip-top1/%s/%d", name, mi);
        MR_TRY(mr_pass_ci(&f->top1_ci[mi], f->top1 + mi, n, n_moe, o, purpose));
        snprintf(purpose, sizeof purpose, "bootstrap/flip-set/%s/%d", name, mi);
        MR_TRY(mr_pass_ci(&f->set_ci[mi], f->set + mi, n, n_moe, o, purpose));
        snprintf(purpose, sizeof purpose, "bootstrap/flip-jaccard/%s/%d", name, mi);
        MR_TRY(mr_pass_ci(&f->jaccard_ci[mi], f->jaccard + mi, n, n_moe, o, purpose));
        if (!f->sat) continue;
        snprintf(purpose, sizeof purpose, "bootstrap/saturation/%s/%d", name, mi);
        MR_TRY(mr_pass_ci(&f->sat_ci[mi], f->sat + mi, n, n_moe, o, purpose));
    }
    snprintf(purpose, sizeof purpose, "bootstrap/flip-pred/%s", name);
    return mr_pass_ci(&f->pred_ci, f->pred, n, 1, o, purpose);
}
