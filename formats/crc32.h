/* CRC-32 as zlib computes it, faster on x86-64 (see crc32.c). */
#ifndef SR_FORMATS_CRC32_H
#define SR_FORMATS_CRC32_H

#include <stdint.h>

/* zlib's CRC-32 (same polynomial, same results, crc32(0, ...) to start);
 * with PCLMULQDQ on x86-64 where the CPU has it, else zlib's crc32. */
uint32_t sr_crc32(uint32_t crc, const uint8_t *data, uint64_t size);

#endif
