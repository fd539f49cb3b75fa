/* sr_pages_alloc and sr_pages_free: anonymous private mappings. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "runtime/pages.h"

#include <stddef.h>
#include <sys/mman.h>

void *sr_pages_alloc(int64_t bytes)
{
    if (bytes <= 0 || (uint64_t)bytes > SIZE_MAX)
        return NULL;
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    /* Fresh buffers are written once per run: with 2 MB pages the kernel
     * takes one fault where it took 512 (a tenth of a second per 256 MB). */
    madvise(p, (size_t)bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void sr_pages_free(void *p, int64_t bytes)
{
    if (p)
        munmap(p, (size_t)bytes);
}
