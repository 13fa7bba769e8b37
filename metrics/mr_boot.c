#include "mr_boot.h"

#include <stdlib.h>
#include <string.h>

#include "../analysis/mr_error.h"
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

/* The draws of gsl_rng_uniform_int(r, n) on GSL's mt19937, `total` of them in bulk: one
 * function call and one 64-bit division per draw were 2.5x the time of the generator's
 * own work (a 10,000-image grid drew 23 plans of 10^7 indices). Each block of 624 words
 * is tempered, divided by GSL's scale = (2^32 - 1) / n and the values >= n rejected, as
 * gsl_rng_uniform_int does word by word, so the indices are the same in the same order.
 * Draws on a copy of r's state (mr_mt_load): returns 0 (nothing drawn) when r is not
 * GSL's mt19937 of the layout mr_rng.h reads, and the caller draws word by word; r itself
 * is not advanced. */
static int draw_bulk(uint16_t *idx16, uint32_t *idx32, size_t total, unsigned long n,
                     gsl_rng *r)
{
    mr_mt m;
    if (n > 0xffffffffUL || !mr_mt_load(&m, r)) return 0;
    uint32_t w[624];
    const uint32_t scale = (uint32_t)(0xffffffffUL / n), nn = (uint32_t)n;
#ifdef __SIZEOF_INT128__
    /* y / scale as a multiplication: for 32-bit y, floor(y / d) = (y c) >> 64 with
     * c = ceil(2^64 / d) (Lemire, Kaser & Kurz 2019, "Faster remainder by direct
     * computation", Theorem 1 with F = 64 >= 32 + log2 d); a division per draw was most
     * of the plans' time. d = 1 (n near 2^32) keeps the division. */
    const uint64_t c = scale > 1 ? UINT64_MAX / scale + 1 : 0;
#define MR_DIV(y) (c ? (uint32_t)(((unsigned __int128)(y) * c) >> 64) : (y) / scale)
#else
#define MR_DIV(y) ((y) / scale)
#endif
    size_t k = 0;
    while (k < total) {
        if (m.mti >= 624) {
            mr_mt_twist(m.mt);
            m.mti = 0;
        }
        int cnt = 624 - m.mti;
        for (int i = 0; i < cnt; i++) /* tempering, then GSL's division */
            w[i] = MR_DIV(mr_mt_temper(m.mt[m.mti + i]));
        m.mti = 624;
        for (int i = 0; i < cnt && k < total; i++)
            if (w[i] < nn) {
                if (idx16)
                    idx16[k++] = (uint16_t)w[i];
                else
                    idx32[k++] = w[i];
            }
    }
    return 1;
}
#undef MR_DIV

/* The stream's B x n draws, as mr_stats.c's resampling loop draws them. */
static int draw(plan **out, uint64_t seed, const char *purpose, size_t n, int B)
{
    plan *p = calloc(1, sizeof *p);
    gsl_rng *r = mr_rng_alloc(seed, purpose, 0);
    int narrow = n <= 65536;
    if (p) {
        p->purpose = strdup(purpose);
        if (narrow)
            p->idx16 = malloc((size_t)B * n * sizeof *p->idx16);
        else
            p->idx32 = malloc((size_t)B * n * sizeof *p->idx32);
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
