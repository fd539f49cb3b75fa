/* The string hash of srrun's name tables (weights by name, .pth storages
 * by key). Names come from untrusted files, so each table hashes with its
 * own random seed: without one, a file could hold 65536 names made to fall
 * in one bucket (FNV-1a's low bits depend only on the low bits of its
 * state) and turn every lookup into a scan of them all. */
#ifndef SR_BASE_HASH_H
#define SR_BASE_HASH_H

#include <stdint.h>

/* A seed for one table: from the kernel's random source, or, should that
 * fail, from the clock and the caller's address. */
uint64_t sr_hash_seed(const void *table);

/* FNV-1a from the seed, then a full avalanche (MurmurHash3's finaliser) so
 * that the low bits, which pick the bucket, depend on every byte. */
static inline uint64_t sr_hash_string(const char *s, uint64_t seed)
{
    uint64_t h = UINT64_C(14695981039346656037) ^ seed;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        h = (h ^ *c) * UINT64_C(1099511628211);
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h *= UINT64_C(0xc4ceb9fe1a85ec53);
    h ^= h >> 33;
    return h;
}

#endif
