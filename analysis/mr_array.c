/* Growable arrays (mr_array.h). */
#include "mr_array.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mr_error.h"

int mr_array_grow(void *items, int *cap, int n, size_t size, int first)
{
    if (n < *cap) return MR_OK;
    MR_REQUIRE(*cap <= INT_MAX / 2, MR_ENOMEM, "out of memory: more than %d list items", *cap);
    int want = *cap ? 2 * *cap : first;
    MR_REQUIRE((size_t)want <= SIZE_MAX / size, MR_ENOMEM, "out of memory");
    /* the caller's pointer is copied in and out as bytes: it may point to any object type */
    void *old;
    memcpy(&old, items, sizeof old);
    void *p = realloc(old, (size_t)want * size);
    MR_REQUIRE(p, MR_ENOMEM, "out of memory");
    memcpy(items, &p, sizeof p);
    *cap = want;
    return MR_OK;
}
