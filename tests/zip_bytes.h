/* Building zip archives in tests, the way torch.save writes them (stored
 * entries whose data starts 64-aligned, sizes only in the data descriptor
 * and the central directory), or deflated as `zip -r` repacks them.
 * Header-only, for the cmocka programs; include pickle_bytes.h (buf) and
 * zlib.h first. */
#ifndef SR_TESTS_ZIP_BYTES_H
#define SR_TESTS_ZIP_BYTES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ZIP_METHOD_STORED 0
#define ZIP_METHOD_DEFLATE 8

typedef struct zip_writer {
    buf out;
    struct {
        char name[128];
        uint64_t offset, size, comp_size;
        uint32_t crc;
        int method;
    } e[64];
    int n;
} zip_writer;

/* An entry whose (compressed) bytes are given as they are, so that a test
 * can store a deflate stream that fails to inflate. Returns the offset of
 * its data. */
static inline size_t zip_add_raw(zip_writer *z, const char *name, int method, const void *bytes,
                                 size_t n_bytes, size_t size, uint32_t crc)
{
    assert_true(z->n < (int)(sizeof z->e / sizeof *z->e));
    size_t name_len = strlen(name);
    uint64_t offset = z->out.len;
    size_t pad = 64 - (offset + 30 + name_len + 4) % 64;
    lit(&z->out, "PK\x03\x04");
    le(&z->out, 20, 2);
    le(&z->out, 0x0808, 2);
    le(&z->out, (uint64_t)method, 2);
    le(&z->out, 0, 2 + 2 + 4 + 4 + 4);
    le(&z->out, name_len, 2);
    le(&z->out, 4 + pad, 2);
    put(&z->out, name, name_len);
    lit(&z->out, "FB");
    le(&z->out, pad, 2);
    for (size_t i = 0; i < pad; i++)
        lit(&z->out, "Z");
    size_t data_offset = z->out.len;
    put(&z->out, bytes, n_bytes);
    lit(&z->out, "PK\x07\x08");
    le(&z->out, crc, 4);
    le(&z->out, n_bytes, 4);
    le(&z->out, size, 4);
    snprintf(z->e[z->n].name, sizeof z->e[z->n].name, "%s", name);
    z->e[z->n].offset = offset;
    z->e[z->n].size = size;
    z->e[z->n].comp_size = n_bytes;
    z->e[z->n].crc = crc;
    z->e[z->n].method = method;
    z->n++;
    return data_offset;
}

/* A stored entry; returns the offset of its data. */
static inline size_t zip_add(zip_writer *z, const char *name, const void *data, size_t size)
{
    return zip_add_raw(z, name, ZIP_METHOD_STORED, data, size, size,
                       (uint32_t)crc32(0, data, (uInt)size));
}

/* A deflated entry (raw deflate, as zip has it). */
static inline void zip_add_deflated(zip_writer *z, const char *name, const void *data, size_t size)
{
    z_stream s = {0};
    assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uLong bound = deflateBound(&s, (uLong)size);
    uint8_t *packed = malloc(bound);
    assert_non_null(packed);
    s.next_in = (Bytef *)(uintptr_t)data; /* zlib without ZLIB_CONST: not written to */
    s.avail_in = (uInt)size;
    s.next_out = packed;
    s.avail_out = (uInt)bound;
    assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
    zip_add_raw(z, name, ZIP_METHOD_DEFLATE, packed, s.total_out, size,
                (uint32_t)crc32(0, data, (uInt)size));
    deflateEnd(&s);
    free(packed);
}

static inline void zip_finish(zip_writer *z)
{
    uint64_t cd = z->out.len;
    for (int i = 0; i < z->n; i++) {
        lit(&z->out, "PK\x01\x02");
        le(&z->out, 20, 2);
        le(&z->out, 20, 2);
        le(&z->out, 0x0808, 2);
        le(&z->out, (uint64_t)z->e[i].method, 2);
        le(&z->out, 0, 2 + 2);
        le(&z->out, z->e[i].crc, 4);
        le(&z->out, z->e[i].comp_size, 4);
        le(&z->out, z->e[i].size, 4);
        le(&z->out, strlen(z->e[i].name), 2);
        le(&z->out, 0, 2 + 2 + 2 + 2 + 4);
        le(&z->out, z->e[i].offset, 4);
        put(&z->out, z->e[i].name, strlen(z->e[i].name));
    }
    uint64_t cd_size = z->out.len - cd;
    lit(&z->out, "PK\x05\x06");
    le(&z->out, 0, 2 + 2);
    le(&z->out, (uint64_t)z->n, 2);
    le(&z->out, (uint64_t)z->n, 2);
    le(&z->out, cd_size, 4);
    le(&z->out, cd, 4);
    le(&z->out, 0, 2);
}

#endif
