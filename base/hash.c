/* Seeds for base/hash.h's string hash. */
#define _GNU_SOURCE /* getrandom */
#include "base/hash.h"

#include <sys/random.h>
#include <time.h>

uint64_t sr_hash_seed(const void *table)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_nsec * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)(uintptr_t)table ^
           (uint64_t)t.tv_sec;
}
