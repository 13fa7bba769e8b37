/* The metrics schema (mr_metric.h): one row per metric. */
#include "mr_metric.h"

#include <math.h>
#include <string.h>

#include "../analysis/mr_model.h"

#define LN2 0.69314718055994530942

#define PASS_CI(f) .from = MR_FROM_PASS_CI, .offset = offsetof(mr_pass_metrics, f)
#define LAYER(kind_, f) .from = MR_FROM_LAYER_##kind_, .offset = offsetof(mr_layer_routing, f)
#define STRUCT(f) .from = MR_FROM_STRUCT_D, .offset = offsetof(mr_struct_layer, f)
#define FLIPS(kind_, f) .from = MR_FROM_FLIPS_##kind_, .offset = offsetof(mr_flip_metrics, f)
#define SAMPLES(src, type, f, name) \
    .samples_from = MR_SAMPLES_##src, .samples_offset = offsetof(type, f), .samples = name

const mr_metric mr_metric_table[MR_METRIC_N] = {
    /* ---- one evaluation pass ---- */
    [MR_M_ACCURACY] = {.key = "accuracy", .dataset = "accuracy", .part = MR_PART_PASS,
                       .kind = MR_KIND_CI, .unit = "fraction", .better = MR_BETTER_HIGHER,
                       .csv = 3, .gate = 1, .quantum = MR_QUANTUM_SAMPLE, .task = -1, .primary = MR_TASK_CLASSIFY, .paired = 1,
                       .derive = -1, PASS_CI(accuracy),
                       SAMPLES(PASS, mr_pass_metrics, correct, "sample_correct"),
                       .report = MR_REPORT_CLEAN | MR_REPORT_CORRUPT | MR_REPORT_DELTA |
                                 MR_REPORT_SEV | MR_REPORT_PERCORR,
                       .scale = 100, .decimals = 2, .id = "prim", .label = "acc",
                       .tex = "acc.", .display_unit = "%"},
    [MR_M_LOSS] = {.key = "loss", .dataset = "loss", .part = MR_PART_PASS, .kind = MR_KIND_CI,
                   .unit = "nats", .better = MR_BETTER_LOWER, .csv = 3, .gate = 1, .task = -1,
                   .primary = -1, .derive = -1, PASS_CI(loss_ci),
                   SAMPLES(PASS, mr_pass_metrics, loss, "sample_loss"), .scale = 1,
                   .decimals = 4, .id = "loss", .label = "loss", .tex = "loss",
                   .display_unit = "nats"},
    /* bits per character of a char-level LM: the loss in bits */
    [MR_M_BPC] = {.key = "bpc", .part = MR_PART_PASS, .kind = MR_KIND_CI, .unit = "bits/char",
                  .better = MR_BETTER_LOWER, .csv = 3, .gate = 1, .task = MR_TASK_LM,
                  .primary = MR_TASK_LM, .derive = MR_M_LOSS, .divisor = LN2,
                  .report = MR_REPORT_CLEAN | MR_REPORT_CORRUPT | MR_REPORT_DELTA |
                            MR_REPORT_SEV | MR_REPORT_PERCORR,
                  .scale = 1, .decimals = 3, .id = "prim", .label = "bpc", .tex = "bpc",
                  .display_unit = ""},
    /* ---- paired with the clean pass (corrupted cells) ---- */
    [MR_M_ACC_DROP] = {.key = "accuracy_drop", .dataset = "acc_drop", .part = MR_PART_DROP,
                       .kind = MR_KIND_CI, .unit = "fraction", .better = MR_BETTER_LOWER,
                       .csv = 1, .gate = 1, .quantum = MR_QUANTUM_SAMPLE, .task = -1, .primary = -1, .derive = -1,
                       .from = MR_FROM_DROP_CI, .scale = 100, .decimals = 2, .id = "drop",
                       .label = "acc. drop", .tex = "acc.\\ drop", .display_unit = "pp"},
    [MR_M_ACC_DROP_P] = {.key = "accuracy_drop_p", .dataset = "acc_drop_p",
                         .part = MR_PART_DROP, .kind = MR_KIND_SCALAR, .unit = "p-value",
                         .better = MR_BETTER_EITHER, .task = -1, .primary = -1, .derive = -1,
                         .from = MR_FROM_DROP_P, .scale = 1, .decimals = 4, .id = "drop-p",
                         .label = "p", .tex = "$p$", .display_unit = ""},
    /* ---- routing compared with another trace (corrupted and fluct cells) ---- */
    [MR_M_PRED_FLIP] = {.key = "prediction_flip", .dataset = "pred_flip",
                        .part = MR_PART_FLIPS, .kind = MR_KIND_CI, .unit = "fraction",
                        .better = MR_BETTER_LOWER, .csv = 1, .gate = 1, .quantum = MR_QUANTUM_SAMPLE, .task = -1,
                        .primary = -1, .derive = -1, FLIPS(CI, pred_ci),
                        SAMPLES(FLIPS, mr_flip_metrics, pred, "sample_pred_flip"),
                        .report = MR_REPORT_CORRUPT | MR_REPORT_SEV, .scale = 100,
                        .decimals = 2, .id = "pred", .label = "pred. flip",
                        .tex = "pred.\\ flip", .display_unit = "%"},
    /* ---- per MoE layer: routing of the pass ---- */
    [MR_M_ENTROPY] = {.key = "entropy", .dataset = "entropy", .part = MR_PART_PASS,
                      .kind = MR_KIND_CI, .per_layer = 1, .unit = "nats",
                      .better = MR_BETTER_EITHER, .csv = 3, .gate = 1, .quantum = MR_QUANTUM_ENTROPY, .task = -1,
                      .primary = -1, .paired = 1, .derive = -1, LAYER(CI, entropy),
                      SAMPLES(ROUTING, mr_routing_acc, entropy, "sample_entropy"),
                      .report = MR_REPORT_CLEAN | MR_REPORT_PERCORR, .scale = 1,
                      .decimals = 3, .id = "entropy", .label = "entropy", .tex = "entropy",
                      .display_unit = "nats"},
    [MR_M_ENTROPY_NORM] = {.key = "entropy_norm", .dataset = "entropy_norm",
                           .part = MR_PART_PASS, .kind = MR_KIND_CI, .per_layer = 1,
                           .unit = "fraction of ln E", .better = MR_BETTER_EITHER, .csv = 1,
                           .gate = 1, .quantum = MR_QUANTUM_SAMPLE, .task = -1, .primary = -1, .derive = -1,
                           LAYER(CI, entropy_norm), .scale = 1, .decimals = 4,
                           .id = "entropy-norm", .label = "H/lnE", .tex = "$H/\\ln E$",
                           .display_unit = ""},
    [MR_M_WENTROPY] = {.key = "topk_weight_entropy", .dataset = "wentropy",
                       .part = MR_PART_PASS, .kind = MR_KIND_CI, .per_layer = 1,
                       .unit = "nats", .better = MR_BETTER_EITHER, .task = -1, .primary = -1,
                       .derive = -1, LAYER(CI, wentropy), .scale = 1, .decimals = 4,
                       .id = "wentropy", .label = "top-k w H", .tex = "top-$k$ weight entropy",
                       .display_unit = "nats"},
    [MR_M_LOAD_ENTROPY_NORM] = {.key = "load_entropy_norm", .dataset = "load_entropy_norm",
                                .part = MR_PART_PASS, .kind = MR_KIND_SCALAR, .per_layer = 1,
                                .unit = "fraction of ln E", .better = MR_BETTER_HIGHER,
                                .task = -1, .primary = -1, .derive = -1,
                                LAYER(D, load_entropy_norm), .scale = 1, .decimals = 4,
                                .id = "load-entropy", .label = "load H/lnE",
                                .tex = "load $H/\\ln E$", .display_unit = ""},
    [MR_M_LOAD_CV] = {.key = "load_cv", .dataset = "load_cv", .part = MR_PART_PASS,
                      .kind = MR_KIND_SCALAR, .per_layer = 1, .unit = "ratio",
                      .better = MR_BETTER_LOWER, .csv = 1, .gate = 1, .quantum = MR_QUANTUM_CV, .task = -1,
                      .primary = -1, .derive = -1, LAYER(D, cv), .scale = 1, .decimals = 4,
                      .id = "load-cv", .label = "load CV", .tex = "load CV",
                      .display_unit = ""},
    [MR_M_LOAD_MAX_OVER_MEAN] = {.key = "load_max_over_mean", .dataset = "load_max_over_mean",
                                 .part = MR_PART_PASS, .kind = MR_KIND_SCALAR, .per_layer = 1,
                                 .unit = "ratio", .better = MR_BETTER_LOWER, .task = -1,
                                 .primary = -1, .derive = -1, LAYER(D, max_over_mean),
                                 .scale = 1, .decimals = 4, .id = "load-max",
                                 .label = "max/mean", .tex = "max/mean", .display_unit = ""},
    [MR_M_DEAD] = {.key = "dead_experts", .dataset = "dead_experts", .part = MR_PART_PASS,
                   .kind = MR_KIND_SCALAR, .per_layer = 1, .unit = "experts",
                   .better = MR_BETTER_LOWER, .task = -1, .primary = -1, .derive = -1,
                   LAYER(I, dead), .scale = 1, .decimals = 0, .id = "dead", .label = "dead",
                   .tex = "dead", .display_unit = ""},
    [MR_M_AUX_LOSS] = {.key = "aux_loss", .dataset = "aux_loss", .part = MR_PART_PASS,
                       .kind = MR_KIND_SCALAR, .per_layer = 1, .unit = "",
                       .better = MR_BETTER_LOWER, .csv = 1, .gate = 1, .quantum = MR_QUANTUM_AUX, .task = -1,
                       .primary = -1, .derive = -1, LAYER(D, aux_loss), .scale = 1,
                       .decimals = 4, .id = "aux", .label = "aux loss", .tex = "aux.\\ loss",
                       .display_unit = ""},
    [MR_M_IMPORTANCE_CV] = {.key = "importance_cv", .dataset = "importance_cv",
                             .part = MR_PART_PASS, .kind = MR_KIND_SCALAR, .per_layer = 1,
                             .unit = "ratio", .better = MR_BETTER_LOWER, .gate = 1,
                             .quantum = MR_QUANTUM_CV, .task = -1, .primary = -1, .derive = -1, LAYER(D, importance_cv), .scale = 1,
                             .decimals = 4, .id = "importance-cv", .label = "importance CV",
                             .tex = "importance CV", .display_unit = ""},
    [MR_M_LOAD] = {.key = "load", .dataset = "load", .part = MR_PART_PASS,
                   .kind = MR_KIND_EXPERTS, .per_layer = 1, .unit = "fraction",
                   .better = MR_BETTER_EITHER, .task = -1, .primary = -1, .derive = -1,
                   .from = MR_FROM_LAYER_LOAD, .scale = 1, .decimals = 3, .id = "load",
                   .label = "expert load", .tex = "expert load", .display_unit = ""},
    /* ---- per MoE layer: routing structure of the pass (metrics/mr_routing_struct.h;
     * counted over tokens, no per-sample vector, no CI) ---- */
    [MR_M_COACT_TOP10] = {.key = "coactivation_top10", .dataset = "coact_top10",
                          .part = MR_PART_PASS, .kind = MR_KIND_SCALAR, .per_layer = 1,
                          .unit = "fraction", .better = MR_BETTER_EITHER, .csv = 1, .gate = 1,
                          .task = -1, .primary = -1, .optional = 1, .derive = -1,
                          STRUCT(coact_top10), .scale = 100, .decimals = 2, .id = "coact",
                          .label = "co-act. top-10%", .tex = "co-act.\\ top-10\\,\\%",
                          .display_unit = "%"},
    [MR_M_CLASS_NMI] = {.key = "class_nmi", .dataset = "class_nmi", .part = MR_PART_PASS,
                        .kind = MR_KIND_SCALAR, .per_layer = 1, .unit = "fraction",
                        .better = MR_BETTER_EITHER, .csv = 1, .gate = 1,
                        .task = MR_TASK_CLASSIFY, .primary = -1, .optional = 1, .derive = -1,
                        STRUCT(class_nmi), .scale = 1, .decimals = 4, .id = "class-nmi",
                        .label = "NMI(class,e1)", .tex = "NMI(class, $e_1$)",
                        .display_unit = ""},
    [MR_M_VOCAB_SPEC] = {.key = "vocab_specialization", .dataset = "vocab_spec",
                         .part = MR_PART_PASS, .kind = MR_KIND_SCALAR, .per_layer = 1,
                         .unit = "fraction", .better = MR_BETTER_EITHER, .csv = 1, .gate = 1,
                         .task = MR_TASK_LM, .primary = -1, .optional = 1, .derive = -1,
                         STRUCT(vocab_spec), .scale = 100, .decimals = 2, .id = "vocab-spec",
                         .label = "vocab. spec.", .tex = "vocab.\\ spec.",
                         .display_unit = "%"},
    [MR_M_DOMAIN_NMI] = {.key = "domain_nmi", .dataset = "domain_nmi", .part = MR_PART_PASS,
                         .kind = MR_KIND_SCALAR, .per_layer = 1, .unit = "fraction",
                         .better = MR_BETTER_EITHER, .csv = 1, .gate = 1, .task = -1,
                         .primary = -1, .optional = 1, .derive = -1, STRUCT(domain_nmi),
                         .scale = 1, .decimals = 4, .id = "domain-nmi",
                         .label = "NMI(domain,e1)", .tex = "NMI(domain, $e_1$)",
                         .display_unit = ""},
    [MR_M_LAYER_NMI] = {.key = "layer_nmi", .dataset = "layer_nmi", .part = MR_PART_PASS,
                        .kind = MR_KIND_SCALAR, .per_layer = 1, .unit = "fraction",
                        .better = MR_BETTER_EITHER, .csv = 1, .gate = 1, .task = -1,
                        .primary = -1, .optional = 1, .derive = -1, STRUCT(layer_nmi),
                        .scale = 1, .decimals = 4, .id = "layer-nmi",
                        .label = "NMI(prev. layer)", .tex = "NMI(prev.\\ layer)",
                        .display_unit = ""},
    /* ---- per MoE layer: routing compared with another trace ---- */
    [MR_M_FLIP_TOP1] = {.key = "flip_top1", .dataset = "flip_top1", .part = MR_PART_FLIPS,
                        .kind = MR_KIND_CI, .per_layer = 1, .unit = "fraction",
                        .better = MR_BETTER_LOWER, .csv = 3, .gate = 1, .quantum = MR_QUANTUM_SAMPLE, .task = -1,
                        .primary = -1, .paired = 1, .derive = -1, FLIPS(CIS, top1_ci),
                        SAMPLES(FLIPS, mr_flip_metrics, top1, "sample_flip_top1"),
                        .report = MR_REPORT_CORRUPT | MR_REPORT_SEV | MR_REPORT_FLUCT |
                                  MR_REPORT_PERCORR,
                        .scale = 100, .decimals = 2, .id = "flip1", .label = "flip top-1",
                        .tex = "flip top-1", .display_unit = "%"},
    [MR_M_FLIP_SET] = {.key = "flip_topk_set", .dataset = "flip_set", .part = MR_PART_FLIPS,
                       .kind = MR_KIND_CI, .per_layer = 1, .unit = "fraction",
                       .better = MR_BETTER_LOWER, .csv = 1, .gate = 1, .quantum = MR_QUANTUM_SAMPLE, .task = -1,
                       .primary = -1, .derive = -1, FLIPS(CIS, set_ci),
                       SAMPLES(FLIPS, mr_flip_metrics, set, "sample_flip_set"),
                       .report = MR_REPORT_CORRUPT | MR_REPORT_SEV, .scale = 100,
                       .decimals = 2, .id = "flipk", .label = "flip top-k",
                       .tex = "flip top-$k$", .display_unit = "%"},
    [MR_M_FLIP_JACCARD] = {.key = "flip_jaccard", .dataset = "flip_jaccard",
                           .part = MR_PART_FLIPS, .kind = MR_KIND_CI, .per_layer = 1,
                           .unit = "fraction", .better = MR_BETTER_LOWER, .csv = 1, .gate = 1, .quantum = MR_QUANTUM_SAMPLE,
                           .task = -1, .primary = -1, .derive = -1, FLIPS(CIS, jaccard_ci),
                           SAMPLES(FLIPS, mr_flip_metrics, jaccard, "sample_flip_jaccard"),
                           .scale = 100, .decimals = 2, .id = "jaccard",
                           .label = "Jaccard dist.", .tex = "Jaccard dist.",
                           .display_unit = "%"},
    /* ---- per MoE layer: a checkpoint's routing compared with the last checkpoint's (fluct
     * cells: saturation of the cell's first checkpoint; OLMoE, Muennighoff et al. 2024,
     * Sec. 5) ---- */
    [MR_M_SATURATION] = {.key = "saturation", .dataset = "saturation", .part = MR_PART_SAT,
                         .kind = MR_KIND_CI, .per_layer = 1, .unit = "fraction",
                         .better = MR_BETTER_EITHER, .csv = 1, .gate = 1,
                         .quantum = MR_QUANTUM_SAMPLE, .task = -1, .primary = -1, .derive = -1,
                         FLIPS(CIS, sat_ci),
                         SAMPLES(FLIPS, mr_flip_metrics, sat, "sample_saturation"),
                         .scale = 100, .decimals = 2, .id = "saturation", .label = "saturation",
                         .tex = "saturation", .display_unit = "%"},
    /* ---- per (model, router, k) group: corruption errors (ImageNet-C), results.h5 /ce ---- */
    [MR_M_MCE] = {.key = "mce", .dataset = "mce", .part = MR_PART_GROUP, .kind = MR_KIND_SCALAR,
                  .unit = "ratio", .better = MR_BETTER_LOWER, .gate = 1, .task = -1,
                  .primary = -1, .derive = -1, .report = MR_REPORT_GROUP, .scale = 100,
                  .decimals = 2, .id = "mce", .label = "mCE", .tex = "mCE",
                  .display_unit = "%"},
    [MR_M_RELATIVE_MCE] = {.key = "relative_mce", .dataset = "relative_mce",
                           .part = MR_PART_GROUP, .kind = MR_KIND_SCALAR, .unit = "ratio",
                           .better = MR_BETTER_LOWER, .gate = 1, .task = -1, .primary = -1,
                           .derive = -1, .report = MR_REPORT_GROUP, .scale = 100,
                           .decimals = 2, .id = "relative-mce", .label = "rel. mCE",
                           .tex = "Rel.\\ mCE", .display_unit = "%"},
    [MR_M_CE] = {.key = "ce", .dataset = "ce", .part = MR_PART_GROUP, .kind = MR_KIND_PERCORR,
                 .unit = "ratio", .better = MR_BETTER_LOWER, .task = -1, .primary = -1,
                 .derive = -1, .report = MR_REPORT_PERCORR, .scale = 100, .decimals = 2,
                 .id = "ce", .label = "CE", .tex = "CE", .display_unit = "%"},
    [MR_M_RELATIVE_CE] = {.key = "relative_ce", .dataset = "relative_ce", .part = MR_PART_GROUP,
                          .kind = MR_KIND_PERCORR, .unit = "ratio", .better = MR_BETTER_LOWER,
                          .task = -1, .primary = -1, .derive = -1, .scale = 100, .decimals = 2,
                          .id = "relative-ce", .label = "rel. CE", .tex = "Rel.\\ CE",
                          .display_unit = "%"},
};

const mr_metric *mr_metric_lookup(const char *key)
{
    for (int i = 0; i < MR_METRIC_N; i++)
        if (strcmp(mr_metric_table[i].key, key) == 0) return &mr_metric_table[i];
    return NULL;
}

size_t mr_metric_len(const mr_metric *m, int n_moe, int E, int n_corr)
{
    size_t per = m->kind == MR_KIND_CI        ? 3
                 : m->kind == MR_KIND_EXPERTS ? (size_t)E
                 : m->kind == MR_KIND_PERCORR ? (size_t)n_corr
                                              : 1;
    return m->per_layer ? per * (size_t)n_moe : per;
}

double mr_metric_quantum(const mr_metric *m, int n, int E)
{
    if (n <= 0) return 0.0;
    double q = 1.0 / n, e = E > 1 ? E : 1;
    switch (m->quantum) {
    case MR_QUANTUM_SAMPLE: return q;
    case MR_QUANTUM_ENTROPY: return q * log(e);
    case MR_QUANTUM_CV: return 2.0 * sqrt(e) * q;
    case MR_QUANTUM_AUX: return 4.0 * e * q;
    default: return 0.0;
    }
}

int mr_metric_for_task(const mr_metric *m, int task) { return m->task < 0 || m->task == task; }

static void put_ci(double *out, const mr_ci *c)
{
    out[0] = c->mean;
    out[1] = c->lo;
    out[2] = c->hi;
}

#define AT(type, base, off) ((const type *)((const char *)(base) + (off)))

int mr_metric_value(double *out, const mr_metric *m, const mr_metric_src *s)
{
    const mr_pass_metrics *p = s->pass;
    const mr_flip_metrics *f = s->flips;
    if (!mr_metric_for_task(m, s->task)) return 0;
    if (m->derive >= 0) {
        const mr_metric *from = &mr_metric_table[m->derive];
        if (!mr_metric_value(out, from, s)) return 0;
        size_t n = mr_metric_len(m, s->n_moe, s->E, 0);
        for (size_t i = 0; i < n; i++) out[i] /= m->divisor;
        return 1;
    }
    switch (m->from) {
    case MR_FROM_PASS_CI:
        if (!p) return 0;
        put_ci(out, AT(mr_ci, p, m->offset));
        return 1;
    case MR_FROM_FLIPS_CI:
        if (!f) return 0;
        put_ci(out, AT(mr_ci, f, m->offset));
        return 1;
    case MR_FROM_FLIPS_CIS:
        if (!f || !*AT(mr_ci *, f, m->offset)) return 0;
        for (int l = 0; l < s->n_moe; l++) put_ci(out + 3 * l, *AT(mr_ci *, f, m->offset) + l);
        return 1;
    case MR_FROM_DROP_CI:
        if (!s->drop) return 0;
        put_ci(out, &s->drop->diff);
        return 1;
    case MR_FROM_DROP_P:
        if (!s->drop) return 0;
        out[0] = s->drop->p_value;
        return 1;
    case MR_FROM_LAYER_CI:
    case MR_FROM_LAYER_D:
    case MR_FROM_LAYER_I:
    case MR_FROM_LAYER_LOAD:
        if (!p) return 0;
        for (int l = 0; l < s->n_moe; l++) {
            const mr_layer_routing *lr = &p->layers[l];
            if (m->from == MR_FROM_LAYER_CI) put_ci(out + 3 * l, AT(mr_ci, lr, m->offset));
            if (m->from == MR_FROM_LAYER_D) out[l] = *AT(double, lr, m->offset);
            if (m->from == MR_FROM_LAYER_I) out[l] = *AT(int, lr, m->offset);
            for (int e = 0; m->from == MR_FROM_LAYER_LOAD && e < s->E; e++)
                out[l * s->E + e] = lr->load_total > 0 ? lr->load_counts[e] / lr->load_total : 0.0;
        }
        return 1;
    case MR_FROM_STRUCT_D: {
        if (!p || !p->struct_layers || !p->structure) return 0;
        int any = 0;
        for (int l = 0; l < s->n_moe; l++) {
            out[l] = *AT(double, &p->struct_layers[l], m->offset);
            any |= !isnan(out[l]);
        }
        return any;
    }
    default:
        return 0;
    }
}

const double *mr_metric_samples(const mr_metric *m, const mr_metric_src *s)
{
    switch (m->samples_from) {
    case MR_SAMPLES_PASS: return s->pass ? *AT(double *, s->pass, m->samples_offset) : NULL;
    case MR_SAMPLES_ROUTING:
        return s->pass && s->pass->routing ? *AT(double *, s->pass->routing, m->samples_offset)
                                           : NULL;
    case MR_SAMPLES_FLIPS: return s->flips ? *AT(double *, s->flips, m->samples_offset) : NULL;
    default: return NULL;
    }
}
