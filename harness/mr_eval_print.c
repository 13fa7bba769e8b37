#include "mr_eval_print.h"

#include <math.h>

static void pci(FILE *fp, const mr_ci *c)
{
    fprintf(fp, "%.4f [%.4f, %.4f]", c->mean, c->lo, c->hi);
}

static void row(FILE *fp, const char *name, const mr_ci *clean, const mr_ci *corrupt,
                double scale)
{
    mr_ci a = {clean->mean * scale, clean->lo * scale, clean->hi * scale};
    fprintf(fp, "%-13s", name);
    pci(fp, &a);
    if (corrupt) {
        mr_ci b = {corrupt->mean * scale, corrupt->lo * scale, corrupt->hi * scale};
        fprintf(fp, "   ");
        pci(fp, &b);
    }
    fprintf(fp, "\n");
}

static void routing_table(FILE *fp, const mr_eval_pass *p, const mr_config *c, const char *what)
{
    fprintf(fp, "routing per MoE layer (%s):\n", what);
    fprintf(fp, "  layer  entropy nats [CI]          H/lnE   top-k w H  load H/lnE  load CV  max/mean  dead  aux loss\n");
    for (int i = 0; i < c->n_moe; i++) {
        const mr_layer_routing *l = &p->layers[i];
        fprintf(fp, "  %5d  ", c->moe_layers[i]);
        pci(fp, &l->entropy);
        fprintf(fp, "  %6.4f  %9.4f  %10.4f  %7.4f  %8.4f  %4d  %8.4f\n", l->entropy_norm.mean,
                l->wentropy.mean, l->load_entropy_norm, l->cv, l->max_over_mean, l->dead,
                l->aux_loss);
    }
    fprintf(fp, "  expert load (share of top-k assignments):\n");
    for (int i = 0; i < c->n_moe; i++) {
        const mr_layer_routing *l = &p->layers[i];
        fprintf(fp, "  %5d ", c->moe_layers[i]);
        for (int e = 0; e < c->n_experts; e++)
            fprintf(fp, " %.3f", l->load_total > 0 ? l->load_counts[e] / l->load_total : 0.0);
        fprintf(fp, "\n");
    }
}

static void flip_table(FILE *fp, const mr_eval_flips *f, const mr_config *c, const char *what)
{
    fprintf(fp, "%s:\n", what);
    fprintf(fp, "  layer  top-1 flip [CI]            top-k set flip [CI]        Jaccard distance [CI]\n");
    for (int i = 0; i < c->n_moe; i++) {
        fprintf(fp, "  %5d  ", c->moe_layers[i]);
        pci(fp, &f->top1_ci[i]);
        fprintf(fp, "  ");
        pci(fp, &f->set_ci[i]);
        fprintf(fp, "  ");
        pci(fp, &f->jaccard_ci[i]);
        fprintf(fp, "\n");
    }
    fprintf(fp, "  prediction flip rate ");
    pci(fp, &f->pred_ci);
    fprintf(fp, "\n");
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
    if (cp) fprintf(fp, "%-13s%-27s   %s\n", "", "clean", "corrupted");
    mr_ci ca = r->clean.accuracy, cl = r->clean.loss_ci;
    const mr_ci *xa = cp ? &cp->accuracy : NULL, *xl = cp ? &cp->loss_ci : NULL;
    if (c->task == MR_TASK_CLASSIFY) {
        row(fp, "accuracy", &ca, xa, 1.0);
        row(fp, "loss", &cl, xl, 1.0);
    } else {
        row(fp, "loss", &cl, xl, 1.0);
        row(fp, "bpc", &cl, xl, 1.0 / log(2.0));
        row(fp, "accuracy", &ca, xa, 1.0);
        fprintf(fp, "%-13s%lld tokens per pass\n", "", r->n_scored);
    }
    if (cp) {
        double rel = ca.mean > 0 ? 100.0 * r->acc_drop.diff.mean / ca.mean : NAN;
        fprintf(fp, "accuracy drop ");
        pci(fp, &r->acc_drop.diff);
        char pv[64];
        fprintf(fp, " absolute, %.2f%% relative, paired bootstrap %s\n", rel,
                mr_stats_p_format(pv, sizeof pv, &r->acc_drop));
        fprintf(fp, "loss rise     ");
        pci(fp, &r->loss_rise.diff);
        fprintf(fp, " nats\n");
    }
    routing_table(fp, &r->clean, c, "clean");
    if (cp) routing_table(fp, cp, c, "corrupted");
    if (cp) flip_table(fp, &r->flip_corrupt, c, "flip rate per MoE layer, clean vs corrupted");
    if (r->has_compare) {
        char what[1200];
        snprintf(what, sizeof what, "checkpoint flip rate per MoE layer, %s vs %s on %s inputs",
                 m->path, l->compare, cp ? "corrupted" : "clean");
        flip_table(fp, &r->flip_ckpt, c, what);
    }
}
