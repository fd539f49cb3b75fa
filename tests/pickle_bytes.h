/* Building pickle byte streams in tests: a growable buffer and emitters for
 * the opcodes state dicts use, as Python's pickler writes them. Header-only,
 * for the cmocka programs (allocation failure fails the test). */
#ifndef SR_TESTS_PICKLE_BYTES_H
#define SR_TESTS_PICKLE_BYTES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    uint8_t *data;
    size_t len, cap;
} buf;

static inline void put(buf *b, const void *bytes, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

/* A string literal, embedded NULs included. */
#define lit(b, s) put(b, s, sizeof s - 1)

/* v as n little-endian bytes (zeros past the eighth). */
static inline void le(buf *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        const uint8_t c = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
        put(b, &c, 1);
    }
}

/* BINUNICODE */
static inline void str(buf *b, const char *s)
{
    lit(b, "X");
    le(b, strlen(s), 4);
    put(b, s, strlen(s));
}

/* GLOBAL module\nname\n */
static inline void global(buf *b, const char *module, const char *name)
{
    lit(b, "c");
    put(b, module, strlen(module));
    lit(b, "\n");
    put(b, name, strlen(name));
    lit(b, "\n");
}

/* BININT1, BININT or LONG1, as Python's pickler chooses. */
static inline void integer(buf *b, int64_t v)
{
    if (v >= 0 && v < 256) {
        lit(b, "K");
        le(b, (uint64_t)v, 1);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        lit(b, "J");
        le(b, (uint64_t)v, 4);
    } else {
        lit(b, "\x8a\x08");
        le(b, (uint64_t)v, 8);
    }
}

#endif
