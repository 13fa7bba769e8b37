#include "mr_corrupt_cache.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"

struct mr_corrupt_cache {
    int n;
    size_t bytes, budget, used;
    int n_kept, cap;
    mr_corrupt_kept *kept; /* [cap] */
};

int mr_corrupt_cache_alloc(mr_corrupt_cache **out, int n, size_t bytes, size_t budget_bytes)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return mr_error_set(MR_ENOMEM, "out of memory (corruption cache)");
    (*out)->n = n;
    (*out)->bytes = bytes;
    (*out)->budget = budget_bytes;
    return MR_OK;
}

void mr_corrupt_cache_free(mr_corrupt_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_kept; i++) {
        free(c->kept[i].data);
        free(c->kept[i].filled);
    }
    free(c->kept);
    free(c);
}

static int same_vocab(const mr_corrupt_kept *k, const int32_t *vocab, int V)
{
    if (k->V != V || !k->vocab != !vocab) return 0;
    return k->vocab == vocab || memcmp(k->vocab, vocab, (size_t)V * sizeof *vocab) == 0;
}

mr_corrupt_kept *mr_corrupt_cache_get(mr_corrupt_cache *c, const mr_corruption_type *t,
                                      int severity, const int32_t *vocab, int V)
{
    if (!c || t->modality == MR_MOD_EMBED) return NULL;
    for (int i = 0; i < c->n_kept; i++)
        if (c->kept[i].t == t && c->kept[i].severity == severity &&
            same_vocab(&c->kept[i], vocab, V))
            return &c->kept[i];
    size_t size = (size_t)c->n * c->bytes;
    if (c->used + size > c->budget) return NULL;
    if (c->n_kept == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        mr_corrupt_kept *k = realloc(c->kept, (size_t)cap * sizeof *k);
        if (!k) return NULL; /* no room to keep it: corrupted as usual */
        c->kept = k;
        c->cap = cap;
    }
    mr_corrupt_kept *k = &c->kept[c->n_kept];
    k->t = t;
    k->severity = severity;
    k->vocab = vocab;
    k->V = V;
    k->bytes = c->bytes;
    k->data = malloc(size);
    k->filled = calloc((size_t)c->n, 1);
    if (!k->data || !k->filled) {
        free(k->data);
        free(k->filled);
        return NULL;
    }
    c->n_kept++;
    c->used += size;
    return k;
}

int mr_corrupt_kept_load(const mr_corrupt_kept *k, void *out, uint64_t first, int n)
{
    for (int i = 0; i < n; i++)
        if (!k->filled[first + (uint64_t)i]) return 0;
    memcpy(out, k->data + first * k->bytes, (size_t)n * k->bytes);
    return 1;
}

void mr_corrupt_kept_store(mr_corrupt_kept *k, const void *in, uint64_t first, int n)
{
    memcpy(k->data + first * k->bytes, in, (size_t)n * k->bytes);
    memset(k->filled + first, 1, (size_t)n);
}
