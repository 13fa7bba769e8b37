#include "mr_eval_print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../metrics/mr_metric.h"

static void pci(FILE *fp, const mr_ci *c)
{
    fprintf(fp, "%.4f [%.4f, %.4f]", c->mean, c->lo, c->hi);
}

/* A value of metric m (layer l of a per-layer one) as text: mean [lo, hi] for CIs. */
static void value_str(char *buf, size_t cap, const mr_metric *m, const double *v, int l)
{
    if (m->kind == MR_KIND_CI)
        snprintf(buf, cap, "%.4f [%.4f, %.4f]", v[3 * l], v[3 * l + 1], v[3 * l + 2]);
    else if (isnan(v[l])) /* undefined here (layer_nmi of the first MoE layer) */
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.*f", m->decimals ? 4 : 0, v[l]);
}

static int col_width(const mr_metric *m)
{
    int w = m->kind == MR_KIND_CI ? 24 : 7, l = (int)strlen(m->key);
    return l > w ? l : w;
}

/* One row per metric of the schema that the pass (or comparison) has and that is not
 * per layer, clean and corrupted side by side; the task's primary metric first. */
static void overall_rows(FILE *fp, const mr_metric_src *clean, const mr_metric_src *corrupt,
                         int part)
{
    double a[3], b[3];
    char x[64], y[64];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *m = &mr_metric_table[i];
            if (m->part != part || m->per_layer || (m->primary == clean->task) != (pass == 0) ||
                !mr_metric_value(a, m, clean))
                continue;
            if (m->from == MR_FROM_DROP_P) /* "p < 1/B" when bounded, "no p-value" at B = 0 */
                mr_stats_p_format(x, sizeof x, clean->drop);
            else
                value_str(x, sizeof x, m, a, 0);
            if (corrupt && mr_metric_value(b, m, corrupt)) {
                value_str(y, sizeof y, m, b, 0);
                fprintf(fp, "%-16s%-27s   %s\n", m->key, x, y);
            } else {
                fprintf(fp, "%-16s%s\n", m->key, x);
            }
        }
}

/* Per MoE layer, one column per per-layer metric of the schema of this part (per-expert
 * metrics as a block below). */
static void layer_table(FILE *fp, const mr_metric_src *src, const mr_config *c, int part,
                        const char *what)
{
    double *v = malloc(((size_t)c->n_moe * (3 + (size_t)c->n_experts) + 1) * sizeof *v);
    if (!v) return;
    char buf[64];
    fprintf(fp, "%s:\n  layer", what);
    for (int i = 0; i < MR_METRIC_N; i++) {
        const mr_metric *m = &mr_metric_table[i];
        if (m->part == part && m->per_layer && m->kind != MR_KIND_EXPERTS)
            fprintf(fp, "  %*s", col_width(m), m->key);
    }
    fputc('\n', fp);
    for (int l = 0; l < c->n_moe; l++) {
        fprintf(fp, "  %5d", c->moe_layers[l]);
        for (int i = 0; i < MR_METRIC_N; i++) {
            const mr_metric *m = &mr_metric_table[i];
            if (m->part != part || !m->per_layer || m->kind == MR_KIND_EXPERTS) continue;
            if (mr_metric_value(v, m, src))
                value_str(buf, sizeof buf, m, v, l);
            else
                snprintf(buf, sizeof buf, "-");
            fprintf(fp, "  %*s", col_width(m), buf);
        }
        fputc('\n', fp);
    }
    for (int i = 0; i < MR_METRIC_N; i++) {
        const mr_metric *m = &mr_metric_table[i];
        if (m->part != part || m->kind != MR_KIND_EXPERTS || !mr_metric_value(v, m, src))
            continue;
        fprintf(fp, "  %s per expert (%s):\n", m->key, m->unit);
        for (int l = 0; l < c->n_moe; l++) {
            fprintf(fp, "  %5d ", c->moe_layers[l]);
            for (int e = 0; e < c->n_experts; e++) fprintf(fp, " %.3f", v[l * c->n_experts + e]);
            fputc('\n', fp);
        }
    }
    free(v);
}

void mr_eval_print(FILE *fp, const mr_eval_result *r, const mr_model *m, const mr_dataset *d,
                   const mr_eval_opts *o, const mr_eval_labels *l)
{
    const mr_config *c = &m->cfg;
    const mr_eval_pass *cp = r->has_corrupt ? &r->corrupt : NULL;
    fprintf(fp, "model        %s\n", m->path);
    fprintf(fp, "data         %s (%d samples)\n", d->path, d->n);
    fprintf(fp, "router       %s (top-%d), %d threads\n", l->router, r->k, l->threads);
    if (o->bootstrap > 0)
        fprintf(fp, "intervals    %.0f%% percentile bootstrap over samples, B = %d, seed %llu\n",
                100.0 * o->level, o->bootstrap, (unsigned long long)o->seed);
    else
        fprintf(fp, "intervals    none (--bootstrap 0)\n");
    if (l->corruption) fprintf(fp, "corruption   %s\n", l->corruption);
    if (l->compare) fprintf(fp, "checkpoint   %s\n", l->compare);
    mr_metric_src cs = {.pass = &r->clean, .task = c->task, .n_moe = c->n_moe,
                        .E = c->n_experts};
    mr_metric_src xs = cs, fs = cs, ks = cs;
    xs.pass = cp;
    fs.pass = NULL;
    fs.flips = &r->flip_corrupt;
    ks.pass = NULL;
    ks.flips = &r->flip_ckpt;
    if (cp) fprintf(fp, "%-16s%-27s   %s\n", "", "clean", "corrupted");
    overall_rows(fp, &cs, cp ? &xs : NULL, MR_PART_PASS);
    if (c->task == MR_TASK_LM) fprintf(fp, "%-16s%lld tokens per pass\n", "", r->n_scored);
    if (cp) {
        mr_metric_src ds = {.drop = &r->acc_drop, .task = c->task, .n_moe = c->n_moe,
                            .E = c->n_experts};
        overall_rows(fp, &ds, NULL, MR_PART_DROP);
        fprintf(fp, "%-16s", "loss rise");
        pci(fp, &r->loss_rise.diff);
        fprintf(fp, " nats (paired bootstrap)\n");
    }
    layer_table(fp, &cs, c, MR_PART_PASS, "routing per MoE layer (clean)");
    if (cp) layer_table(fp, &xs, c, MR_PART_PASS, "routing per MoE layer (corrupted)");
    if (cp) {
        layer_table(fp, &fs, c, MR_PART_FLIPS, "flip rate per MoE layer, clean vs corrupted");
        overall_rows(fp, &fs, NULL, MR_PART_FLIPS);
    }
    if (r->has_compare) {
        char what[1200];
        snprintf(what, sizeof what, "checkpoint flip rate per MoE layer, %s vs %s on %s inputs",
                 m->path, l->compare, cp ? "corrupted" : "clean");
        layer_table(fp, &ks, c, MR_PART_FLIPS, what);
        overall_rows(fp, &ks, NULL, MR_PART_FLIPS);
    }
}
