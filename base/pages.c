/* sr_pages_alloc and sr_pages_free: anonymous private mappings; the pool
 * that reuses them. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, mremap */
#include "base/pages.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) /* GCC */
#define SR_UNDER_ASAN 1
#elif defined(__has_feature) /* clang */
#define SR_UNDER_ASAN __has_feature(address_sanitizer)
#else
#define SR_UNDER_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__) /* GCC */
#define SR_UNDER_TSAN 1
#elif defined(__has_feature) /* clang */
#define SR_UNDER_TSAN __has_feature(thread_sanitizer)
#else
#define SR_UNDER_TSAN 0
#endif

void *sr_pages_alloc(int64_t bytes)
{
    if (bytes <= 0 || (uint64_t)bytes > SIZE_MAX)
        return NULL;
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* No MADV_HUGEPAGE: where the VM hands freed memory back to its host
     * (virtio-balloon free page reporting), the 2 MB pages are the ones it
     * handed back, and a run's first touch of them took 3-4 times the
     * system time (SRPGAN x4 700x700: 2.3-3.1 s against 0.6-0.8 s), more
     * than the fewer faults and TLB misses saved. */
    return p;
}

void sr_pages_free(void *p, int64_t bytes)
{
    if (p)
        munmap(p, (size_t)bytes);
}

void sr_page_pool_put(sr_page_pool *pool, void *p, int64_t bytes)
{
    if (!p)
        return;
    if (pool->n == SR_PAGE_POOL_MAX) {
        sr_pages_free(p, bytes);
        return;
    }
    pool->pages[pool->n] = p;
    pool->bytes[pool->n++] = bytes;
}

/* Whether a mapping of a bytes serves a need of want better than one of b:
 * the smallest that is large enough, else the largest. */
static bool better_fit(int64_t a, int64_t b, int64_t want)
{
    if ((a >= want) != (b >= want))
        return a >= want;
    return a >= want ? a < b : a > b;
}

void *sr_page_pool_take(sr_page_pool *pool, int64_t bytes)
{
    if (pool->n == 0 || bytes <= 0)
        return NULL;
    int best = 0;
    for (int i = 1; i < pool->n; i++)
        if (better_fit(pool->bytes[i], pool->bytes[best], bytes))
            best = i;
    const int64_t page = sysconf(_SC_PAGESIZE);
    const int64_t had = (pool->bytes[best] + page - 1) / page * page;
    const int64_t want = (bytes + page - 1) / page * page;
    char *p = pool->pages[best];
    if (want < had)
        munmap(p + want, (size_t)(had - want));
    else if (want > had) {
        /* Grown: only the pages beyond its old end are new. ThreadSanitizer
         * does not follow mremap: pages it moved would keep the history of
         * what was mapped there before, read as races; there the caller
         * maps new pages instead. */
        void *q = SR_UNDER_TSAN ? MAP_FAILED
                                : mremap(p, (size_t)had, (size_t)want, MREMAP_MAYMOVE);
        if (q == MAP_FAILED)
            return NULL;
        p = q;
    }
    pool->pages[best] = pool->pages[--pool->n];
    pool->bytes[best] = pool->bytes[pool->n];
#if SR_UNDER_ASAN
    /* NaNs, so that the tests catch code that takes these pages for new
     * (zeroed) ones. */
    memset(p, 0xff, (size_t)bytes);
#endif
    return p;
}

void sr_page_pool_drain(sr_page_pool *pool)
{
    for (int i = 0; i < pool->n; i++)
        sr_pages_free(pool->pages[i], pool->bytes[i]);
    pool->n = 0;
}
