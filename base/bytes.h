/* Little-endian integers in byte buffers, as the zip and model.bin formats
 * store them: byte by byte, so that neither the buffer's alignment nor the
 * host's byte order matters. */
#ifndef SR_BASE_BYTES_H
#define SR_BASE_BYTES_H

#include <stdint.h>

static inline uint16_t sr_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static inline uint32_t sr_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t sr_le64(const uint8_t *p) { return sr_le32(p) | (uint64_t)sr_le32(p + 4) << 32; }

static inline void sr_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void sr_put_le64(uint8_t *p, uint64_t v)
{
    sr_put_le32(p, (uint32_t)v);
    sr_put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
