/* mr_huge.h — large buffers on transparent huge pages.
 * Ownership: the caller free()s what mr_huge_alloc returns.
 */
#ifndef MR_HUGE_H
#define MR_HUGE_H

#include <stddef.h>

/* n bytes (uninitialized), like malloc; from 2 MiB on, 2 MiB-aligned and advised as huge
 * pages (MADV_HUGEPAGE: /sys/kernel/mm/transparent_hugepage/enabled = madvise, Debian's
 * default, gives them only on request), so that first writes fault a 2 MiB page at a
 * time instead of 4 KiB: on paravirtualized VMs a page fault costs microseconds, and
 * writing a fresh 20 MB buffer (a 10,000-sample bootstrap plan) was mostly faults. NULL
 * when out of memory. */
void *mr_huge_alloc(size_t n);

#endif
