/* mr_array.h — growable arrays: the one doubling-realloc the file readers, writers and
 * collectors use for their lists (model plan, checkpoint pieces, metadata, gate metrics,
 * cell names).
 * Ownership: the caller owns the array (*items, free() it); mr_array_grow only moves it.
 */
#ifndef MR_ARRAY_H
#define MR_ARRAY_H

#include <stddef.h>

/* Room for element n of the array *items (elements of `size` bytes, capacity *cap): when
 * n == *cap the capacity doubles (to `first` from 0) by realloc; *items and *cap change only
 * on success. `items` is the address of the caller's element pointer (any object type).
 * MR_ENOMEM "out of memory" (and the array unchanged) when it cannot grow. */
int mr_array_grow(void *items, int *cap, int n, size_t size, int first);

#endif
