#include "mr_boot.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
#include "../analysis/mr_huge.h"
#include "../analysis/mr_rng.h"

typedef struct plan {
    uint64_t seed;
    size_t n;
    int B;
    char *purpose;
    uint16_t *idx16; /* [B, n] when n <= 65536 */
    uint32_t *idx32; /* [B, n] otherwise */
    struct plan *next;
} plan;

struct mr_boot_cache {
    size_t budget, used;
    plan *head;
};

int mr_boot_cache_alloc(mr_boot_cache **out, size_t budget_bytes)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return mr_error_set(MR_ENOMEM, "out of memory (bootstrap cache)");
    (*out)->budget = budget_bytes;
    return MR_OK;
}

static void plan_free(plan *p)
{
    if (!p) return;
    free(p->purpose);
    free(p->idx16);
    free(p->idx32);
    free(p);
}

void mr_boot_cache_free(mr_boot_cache *c)
{
    if (!c) return;
    for (plan *p = c->head, *next; p; p = next) {
        next = p->next;
        plan_free(p);
    }
    free(c);
}

size_t mr_boot_cache_bytes(const mr_boot_cache *c)
{
    return c ? c->used : 0;
}

static plan *find(const mr_boot_cache *c, uint64_t seed, const char *purpose, size_t n, int B)
{
    for (plan *p = c->head; p; p = p->next)
        if (p->seed == seed && p->n == n && p->B == B && strcmp(p->purpose, purpose) == 0)
            return p;
    return NULL;
}

/* The draws of gsl_rng_uniform_int(r, n) on GSL's mt19937, `total` of them in bulk
 * (mr_mt_uniform_ints: the same indices in the same order, without a call and a 64-bit
 * division per draw). Draws on a copy of r's state (mr_mt_load): returns 0 (nothing
 * drawn) when r is not GSL's mt19937 of the layout mr_rng.h reads, and the caller draws
 * word by word; r itself is not advanced. */
static int draw_bulk(uint16_t *idx16, uint32_t *idx32, size_t total, unsigned long n,
                     gsl_rng *r)
{
    mr_mt m;
    if (n > 0xffffffffUL || !mr_mt_load(&m, r)) return 0;
    mr_mt_uniform_ints(&m, idx16, idx32, total, (uint32_t)n);
    return 1;
}

/* The stream's B x n draws, as mr_stats.c's resampling loop draws them. */
static int draw(plan **out, uint64_t seed, const char *purpose, size_t n, int B)
{
    plan *p = calloc(1, sizeof *p);
    gsl_rng *r = mr_rng_alloc(seed, purpose, 0);
    int narrow = n <= 65536;
    if (p) {
        p->purpose = strdup(purpose);
        /* huge pages: a 10,000-sample plan is 20 MB written once (mr_huge.h) */
        if (narrow)
            p->idx16 = mr_huge_alloc((size_t)B * n * sizeof *p->idx16);
        else
            p->idx32 = mr_huge_alloc((size_t)B * n * sizeof *p->idx32);
    }
    if (!p || !r || !p->purpose || !(p->idx16 || p->idx32)) {
        plan_free(p);
        if (r) gsl_rng_free(r);
        return mr_error_set(MR_ENOMEM, "out of memory (bootstrap plan)");
    }
    p->seed = seed;
    p->n = n;
    p->B = B;
    size_t total = (size_t)B * n;
    for (size_t k = draw_bulk(p->idx16, p->idx32, total, (unsigned long)n, r) ? total : 0;
         k < total; k++) {
        unsigned long j = gsl_rng_uniform_int(r, (unsigned long)n);
        if (narrow)
            p->idx16[k] = (uint16_t)j;
        else
            p->idx32[k] = (uint32_t)j;
    }
    gsl_rng_free(r);
    *out = p;
    return MR_OK;
}

static mr_boot_plan_view view_of(const plan *p)
{
    return (mr_boot_plan_view){.idx16 = p ? p->idx16 : NULL, .idx32 = p ? p->idx32 : NULL};
}

int mr_boot_plan(mr_boot_plan_view *out, mr_boot_cache *c, uint64_t seed,
                 const char *purpose, size_t n, int B)
{
    *out = view_of(NULL);
    if (!c || B < 1 || n == 0 || n > UINT32_MAX) return MR_OK;
    size_t bytes = (size_t)B * n * (n <= 65536 ? sizeof(uint16_t) : sizeof(uint32_t));
    plan *p;
    int fits;
#pragma omp critical(mr_boot_cache)
    {
        p = find(c, seed, purpose, n, B);
        fits = c->used + bytes <= c->budget;
    }
    if (p) {
        *out = view_of(p);
        return MR_OK;
    }
    if (!fits) return MR_OK;
    /* drawn outside the lock: two threads may draw the same plan at once; the first kept
     * wins and the other is dropped (they are identical) */
    MR_TRY(draw(&p, seed, purpose, n, B));
    plan *kept;
#pragma omp critical(mr_boot_cache)
    {
        kept = find(c, seed, purpose, n, B);
        if (!kept && c->used + bytes <= c->budget) {
            p->next = c->head;
            c->head = p;
            c->used += bytes;
            kept = p;
            p = NULL;
        }
    }
    plan_free(p);
    /* over budget after all (another plan took the room): the caller draws itself */
    *out = view_of(kept);
    return MR_OK;
}
