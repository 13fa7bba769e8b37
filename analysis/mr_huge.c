#define _DEFAULT_SOURCE /* MADV_HUGEPAGE: glibc declares it only beyond POSIX */
#include "mr_huge.h"

#include <stdlib.h>
#include <sys/mman.h>

void *mr_huge_alloc(size_t n)
{
    size_t huge = (size_t)2 << 20;
    if (n < huge) return malloc(n);
    size_t len = (n + huge - 1) / huge * huge;
    void *m = aligned_alloc(huge, len);
#ifdef MADV_HUGEPAGE
    if (m) (void)madvise(m, len, MADV_HUGEPAGE); /* advice only: 4 KiB pages where refused */
#endif
    return m;
}
