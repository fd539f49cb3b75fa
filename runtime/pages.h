/* Large buffers straight from the kernel (mmap): the kept tensors, the band
 * arenas, the input tensor, backend workspaces. munmap returns their pages
 * at once, so the resident memory follows the plan; malloc would keep freed
 * chunks below its (moving) mmap threshold resident in the heap. Zero-filled
 * and page-aligned. */
#ifndef SR_RUNTIME_PAGES_H
#define SR_RUNTIME_PAGES_H

#include <stdint.h>

void *sr_pages_alloc(int64_t bytes); /* NULL on failure or bytes <= 0 */
void sr_pages_free(void *p, int64_t bytes);

#endif
