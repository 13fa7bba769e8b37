#include "mr_prefix_cache.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_engine.h"
#include "../analysis/mr_error.h"

struct mr_prefix_cache {
    size_t budget;
    int used;          /* whether kept holds a key */
    mr_prefix_kept kept;
};

int mr_prefix_cache_alloc(mr_prefix_cache **out, size_t budget_bytes)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return mr_error_set(MR_ENOMEM, "out of memory (prefix cache)");
    (*out)->budget = budget_bytes;
    return MR_OK;
}

void mr_prefix_cache_drop(mr_prefix_cache *c)
{
    if (!c) return;
    free(c->kept.x);
    free(c->kept.att);
    free(c->kept.filled);
    memset(&c->kept, 0, sizeof c->kept);
    c->used = 0;
}

void mr_prefix_cache_free(mr_prefix_cache *c)
{
    mr_prefix_cache_drop(c);
    free(c);
}

mr_prefix_kept *mr_prefix_cache_get(mr_prefix_cache *c, const mr_model *m, const void *input,
                                    int severity, int n, int T, int batch)
{
    if (!c || n < 1 || batch < 1) return NULL;
    mr_prefix_kept *k = &c->kept;
    if (c->used && k->m == m && k->input == input && k->severity == severity &&
        k->batch == batch)
        return k;
    size_t xf, af;
    mr_engine_prefix_sizes(m, T, &xf, &af);
    size_t per = (xf + af) * sizeof(float);
    size_t fit = per ? c->budget / per : 0;
    /* whole micro-batches only (the last one may be short) */
    int n_keep = fit >= (size_t)n ? n : (int)(fit / (size_t)batch) * batch;
    if (n_keep < 1) return NULL;
    if (!c->used || k->n_keep != n_keep || k->xf != xf || k->af != af) {
        mr_prefix_cache_drop(c);
        k->x = malloc((size_t)n_keep * xf * sizeof(float));
        k->att = af ? malloc((size_t)n_keep * af * sizeof(float)) : NULL;
        k->filled = malloc((size_t)n_keep);
        if (!k->x || (af && !k->att) || !k->filled) {
            mr_prefix_cache_drop(c);
            return NULL; /* no room: computed as usual */
        }
    }
    c->used = 1;
    k->m = m;
    k->input = input;
    k->severity = severity;
    k->batch = batch;
    k->n_keep = n_keep;
    k->xf = xf;
    k->af = af;
    memset(k->filled, 0, (size_t)n_keep);
    return k;
}

int mr_prefix_kept_has(const mr_prefix_kept *k, int first, int n)
{
    if (first < 0 || n < 1 || first > k->n_keep - n) return 0;
    for (int i = 0; i < n; i++)
        if (!k->filled[first + i]) return 0;
    return 1;
}

void mr_prefix_kept_load(const mr_prefix_kept *k, float *x, float *att, int first, int n)
{
    memcpy(x, k->x + (size_t)first * k->xf, (size_t)n * k->xf * sizeof(float));
    if (k->af) memcpy(att, k->att + (size_t)first * k->af, (size_t)n * k->af * sizeof(float));
}

void mr_prefix_kept_store(mr_prefix_kept *k, const float *x, const float *att, int first, int n)
{
    if (first < 0 || n < 1 || first > k->n_keep - n) return;
    memcpy(k->x + (size_t)first * k->xf, x, (size_t)n * k->xf * sizeof(float));
    if (k->af) memcpy(k->att + (size_t)first * k->af, att, (size_t)n * k->af * sizeof(float));
    memset(k->filled + first, 1, (size_t)n);
}
