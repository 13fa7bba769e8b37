#include "mr_attack_setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

static int do_images(void *ctx, uint8_t *out, const uint8_t *in, int n, int H, int W, int C,
                     uint64_t first, int thread)
{
    (void)H, (void)W, (void)C;
    mr_attack_setup *s = ctx;
    return mr_attack_run_batch(s->ws[thread], out, in, s->labels + first, n, first, NULL, NULL);
}

int mr_attack_setup_init(mr_attack_setup *s, const mr_attack_type *t, const mr_attack_opts *o,
                         const mr_model *m, const mr_router *attacked, const mr_dataset *d,
                         const mr_engine_opts *engine, int threads)
{
    memset(s, 0, sizeof *s);
    MR_REQUIRE(d->kind == MR_DATA_IMAGES, MR_EINPUT,
               "attack %s: %s holds tokens (attacks perturb images)", t->name, d->path);
    s->t = t;
    s->o = *o;
    s->o.batch = engine->batch;
    s->o.top_k = engine->top_k;
    s->labels = d->labels;
    s->threads = threads;
    s->ws = calloc((size_t)threads, sizeof *s->ws);
    if (!s->ws) return mr_error_set(MR_ENOMEM, "out of memory");
    for (int i = 0; i < threads; i++) {
        int st = mr_attack_ws_alloc(&s->ws[i], t, &s->o, m, attacked);
        if (st != MR_OK) {
            mr_attack_setup_free(s);
            return st;
        }
    }
    snprintf(s->label, sizeof s->label, "%s eps %g/255", t->name, o->eps * 255.0);
    s->ec = (mr_eval_corruption){.label = s->label, .images = do_images, .ctx = s};
    return MR_OK;
}

void mr_attack_setup_free(mr_attack_setup *s)
{
    for (int i = 0; s->ws && i < s->threads; i++) mr_attack_ws_free(s->ws[i]);
    free(s->ws);
    s->ws = NULL;
}
