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

/* GSL's mt19937 generator state (gsl/rng/mt.c, mt_state_t): the 624-word MT19937 state
 * of Matsumoto & Nishimura (1998, ACM TOMACS 8(1):3-30) and the position in it. */
typedef struct mt_state {
    unsigned long mt[624];
    int mti;
} mt_state;

enum { MT_N = 624, MT_M = 397 };

/* MT19937's twist of the whole state (Matsumoto & Nishimura 1998, eq. 2.1; the
 * reference genrand_int32's block recurrence, which GSL's mt_get runs when mti >= N) */
static void mt_twist(uint32_t *mt)
{
    int k;
#define MT_Y(a, b) (((a) & 0x80000000u) | ((b) & 0x7fffffffu))
#define MT_NEXT(z, y) ((z) ^ ((y) >> 1) ^ (-((y) & 1u) & 0x9908b0dfu))
    for (k = 0; k < MT_N - MT_M; k++) mt[k] = MT_NEXT(mt[k + MT_M], MT_Y(mt[k], mt[k + 1]));
    for (; k < MT_N - 1; k++) mt[k] = MT_NEXT(mt[k + MT_M - MT_N], MT_Y(mt[k], mt[k + 1]));
    mt[MT_N - 1] = MT_NEXT(mt[MT_M - 1], MT_Y(mt[MT_N - 1], mt[0]));
#undef MT_Y
#undef MT_NEXT
}

/* The draws of gsl_rng_uniform_int(r, n) on GSL's mt19937, `total` of them in bulk: one
 * function call and one 64-bit division per draw were 2.5x the time of the generator's
 * own work (a 10,000-image grid drew 23 plans of 10^7 indices). Each block of 624 words
 * is tempered, divided by GSL's scale = (2^32 - 1) / n and the values >= n rejected, as
 * gsl_rng_uniform_int does word by word, so the indices are the same in the same order.
 * Reads GSL's state layout: returns 0 (nothing drawn, r untouched) when r is not an
 * mt19937 of that layout or the first draws disagree with GSL's own (checked on a clone),
 * and the caller draws word by word. */
static int draw_bulk(uint16_t *idx16, uint32_t *idx32, size_t total, unsigned long n,
                     gsl_rng *r)
{
    if (r->type != gsl_rng_mt19937 || gsl_rng_size(r) != sizeof(mt_state) || n > 0xffffffffUL)
        return 0;
    const mt_state *st = gsl_rng_state(r);
    if (st->mti < 0 || st->mti > MT_N) return 0;
    uint32_t mt[MT_N], w[MT_N];
    for (int i = 0; i < MT_N; i++) mt[i] = (uint32_t)st->mt[i];
    int mti = st->mti;
    const uint32_t scale = (uint32_t)(0xffffffffUL / n), nn = (uint32_t)n;
    size_t k = 0;
    while (k < total) {
        if (mti >= MT_N) {
            mt_twist(mt);
            mti = 0;
        }
        int m = MT_N - mti;
        for (int i = 0; i < m; i++) { /* tempering, then GSL's division */
            uint32_t y = mt[mti + i];
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c5680u;
            y ^= (y << 15) & 0xefc60000u;
            y ^= y >> 18;
            w[i] = y / scale;
        }
        mti = MT_N;
        for (int i = 0; i < m && k < total; i++)
            if (w[i] < nn) {
                if (idx16)
                    idx16[k++] = (uint16_t)w[i];
                else
                    idx32[k++] = w[i];
            }
    }
    /* the layout is GSL's internal one: a clone drawn word by word must agree */
    gsl_rng *check = gsl_rng_clone(r);
    int same = check != NULL;
    for (size_t i = 0; same && i < total && i < 2 * MT_N; i++)
        same = gsl_rng_uniform_int(check, n) == (idx16 ? (unsigned long)idx16[i] : idx32[i]);
    if (check) gsl_rng_free(check);
    return same;
}

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
