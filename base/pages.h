/* Large buffers straight from the kernel (mmap): the kept tensors, the band
 * arenas, the input tensor, backend workspaces. munmap returns their pages
 * at once, so the resident memory follows the plan; malloc would keep freed
 * chunks below its (moving) mmap threshold resident in the heap. Zero-filled
 * and page-aligned. */
#ifndef SR_BASE_PAGES_H
#define SR_BASE_PAGES_H

#include <stdint.h>

void *sr_pages_alloc(int64_t bytes); /* NULL on failure or bytes <= 0 */
void sr_pages_free(void *p, int64_t bytes);

/* Mappings that one stage of a run gives back for the next to reuse. New
 * pages cost a fault and a zero fill each, and a run would map several
 * times its peak (2.46 GB for the 676 MB peak of a 700x700 x4 image; with
 * the pool, 0.8 GB). Reused pages are not zero. */
#define SR_PAGE_POOL_MAX 16

typedef struct sr_page_pool {
    int n;
    void *pages[SR_PAGE_POOL_MAX];
    int64_t bytes[SR_PAGE_POOL_MAX];
} sr_page_pool;

/* Keeps p (NULL: nothing) for reuse, or unmaps it when the pool is full. */
void sr_page_pool_put(sr_page_pool *pool, void *p, int64_t bytes);
/* The smallest kept mapping of at least bytes, its pages beyond them
 * unmapped, else the largest one grown to bytes; NULL if none is kept. */
void *sr_page_pool_take(sr_page_pool *pool, int64_t bytes);
/* Unmaps every kept mapping. */
void sr_page_pool_drain(sr_page_pool *pool);

#endif
