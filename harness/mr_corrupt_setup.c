#include "mr_corrupt_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

static const char *modality_name(int m)
{
    return m == MR_MOD_IMAGE ? "image" : m == MR_MOD_TEXT ? "text" : "embedding";
}

static int do_images(void *ctx, uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                     uint64_t first, int thread)
{
    mr_corrupt_setup *s = ctx;
    if (s->kept && mr_corrupt_kept_load(s->kept, out, first, n)) return MR_OK;
    MR_TRY(mr_corrupt_images(out, in, n, H, W, C, s->t, s->severity, s->seed, first,
                             s->ws[thread]));
    if (s->kept) mr_corrupt_kept_store(s->kept, out, first, n);
    return MR_OK;
}

static int do_tokens(void *ctx, int32_t *out, const int32_t *in, int n, int cols,
                     uint64_t first, int thread)
{
    mr_corrupt_setup *s = ctx;
    if (s->kept && mr_corrupt_kept_load(s->kept, out, first, n)) return MR_OK;
    MR_TRY(mr_corrupt_tokens(out, in, n, cols, s->vocab, s->V, s->t, s->severity, s->seed,
                             first, s->ws[thread]));
    if (s->kept) mr_corrupt_kept_store(s->kept, out, first, n);
    return MR_OK;
}

static int do_embed(void *ctx, float *x, int n, int T, int d, uint64_t first, int thread)
{
    (void)thread;
    mr_corrupt_setup *s = ctx;
    return mr_corrupt_embeddings(x, n, T, d, s->feature_std, s->t, s->severity, s->seed, first);
}

/* Per-feature std of the clean input embeddings of the whole dataset, in sample order. */
static int embedding_std(mr_corrupt_setup *s, const mr_model *m, const mr_router *r,
                         const mr_dataset *d, const mr_engine_opts *engine)
{
    const mr_config *c = &m->cfg;
    mr_engine_opts eo = *engine;
    int T = c->task == MR_TASK_LM ? d->cols - 1 : c->n_pos;
    if (c->task == MR_TASK_LM) eo.seq_len = T;
    if (eo.batch > d->n) eo.batch = d->n; /* a workspace for the samples there are */
    mr_workspace *ws = NULL;
    mr_embed_stats *st = NULL;
    int rc = mr_workspace_alloc(&ws, m, r, &eo);
    if (rc == MR_OK) rc = mr_embed_stats_alloc(&st, c->d_model);
    if (rc == MR_OK && !(s->feature_std = malloc((size_t)c->d_model * sizeof(float))))
        rc = mr_error_set(MR_ENOMEM, "out of memory");
    for (int s0 = 0; rc == MR_OK && s0 < d->n; s0 += eo.batch) {
        int nb = d->n - s0 < eo.batch ? d->n - s0 : eo.batch;
        const float *x;
        rc = c->task == MR_TASK_CLASSIFY
                 ? mr_engine_embed_images(ws, d->images + (size_t)s0 * d->h * d->w * d->c, nb, &x)
                 : mr_engine_embed_tokens(ws, d->tokens + (size_t)s0 * d->cols, nb, T, d->cols,
                                          &x);
        if (rc == MR_OK) mr_embed_stats_add(st, x, (long long)nb * T);
    }
    if (rc == MR_OK) rc = mr_embed_stats_std(st, s->feature_std);
    mr_embed_stats_free(st);
    mr_workspace_free(ws);
    return rc;
}

int mr_corrupt_setup_init(mr_corrupt_setup *s, const mr_corruption_type *t, int severity,
                          uint64_t seed, const mr_model *m, const mr_router *r,
                          const mr_dataset *d, const mr_engine_opts *engine, int threads)
{
    memset(s, 0, sizeof *s);
    MR_TRY(mr_corruption_check_severity(t, severity));
    int want = d->kind == MR_DATA_IMAGES ? MR_MOD_IMAGE : MR_MOD_TEXT;
    MR_REQUIRE(t->modality == MR_MOD_EMBED || t->modality == want, MR_EINPUT,
               "corruption %s is a%s %s corruption but %s holds %s", t->name,
               t->modality == MR_MOD_IMAGE ? "n" : "", modality_name(t->modality), d->path,
               d->kind == MR_DATA_IMAGES ? "images" : "token sequences");
    s->t = t;
    s->severity = severity;
    s->seed = seed;
    s->threads = threads;
    snprintf(s->label, sizeof s->label, "%s:%d (seed %llu)", t->name, severity,
             (unsigned long long)seed);
    s->ec.label = s->label;
    s->ec.ctx = s;
    int rc = MR_OK;
    if (t->modality == MR_MOD_EMBED) {
        s->ec.embeddings = do_embed;
        rc = embedding_std(s, m, r, d, engine);
    } else {
        s->ws = calloc((size_t)threads, sizeof *s->ws);
        if (!s->ws) rc = mr_error_set(MR_ENOMEM, "out of memory");
        for (int i = 0; rc == MR_OK && i < threads; i++)
            rc = t->modality == MR_MOD_IMAGE ? mr_corrupt_ws_alloc(&s->ws[i], d->h, d->w, d->c, 0)
                                             : mr_corrupt_ws_alloc(&s->ws[i], 0, 0, 0, d->cols);
        if (t->modality == MR_MOD_IMAGE) s->ec.images = do_images;
        if (t->modality == MR_MOD_TEXT) {
            MR_REQUIRE(m->vocab || t->ids_only, MR_EINPUT,
                       "corruption %s works on characters and needs the model's /vocab; %s has "
                       "token ids only (an imported model: text-level corruptions need a "
                       "tokenizer, docs/import.md)", t->name, m->path);
            s->vocab = m->vocab;
            s->V = m->cfg.vocab_size;
            s->ec.tokens = do_tokens;
        }
    }
    if (rc != MR_OK) mr_corrupt_setup_free(s);
    return rc;
}

void mr_corrupt_setup_free(mr_corrupt_setup *s)
{
    if (!s) return;
    for (int i = 0; s->ws && i < s->threads; i++) mr_corrupt_ws_free(s->ws[i]);
    free(s->ws);
    free(s->feature_std);
    memset(s, 0, sizeof *s);
}
