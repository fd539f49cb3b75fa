/* Tests of formats/zip.c on archives built here byte by byte: the layout
 * torch.save writes (stored entries, flags 0x0808, zero CRC and sizes in
 * the local header, "FB" padding to 64, data descriptors, zip64 end
 * records), deflated entries as `zip -r` writes them, and the hostile
 * cases of docs/formats.md section 6 (3 to 9) made by patching valid
 * archives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "formats/zip.h"

/* ---- An archive writer that mimics torch.save ------------------------ */

typedef struct tentry {
    const char *name;
    const uint8_t *data;
    size_t n;
    int deflate;             /* method 8, raw deflate */
    int zip64_extra;         /* CD sizes and offset in a 0x0001 extra */
    uint64_t declared_size;  /* 0: the real size */
    size_t lh_off, cd_off;   /* filled in by build_zip */
} tentry;

typedef struct tzip {
    uint8_t *p;
    size_t len, cap;
    size_t cd_start, zip64_eocd, eocd;
} tzip;

static void put(tzip *z, const void *src, size_t n)
{
    if (z->len + n > z->cap) {
        z->cap = (z->len + n) * 2;
        z->p = realloc(z->p, z->cap);
        assert_non_null(z->p);
    }
    memcpy(z->p + z->len, src, n);
    z->len += n;
}

static void put16(tzip *z, uint64_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(z, b, 2);
}

static void put32(tzip *z, uint64_t v)
{
    put16(z, v & 0xffff);
    put16(z, v >> 16 & 0xffff);
}

static void put64(tzip *z, uint64_t v)
{
    put32(z, v & 0xffffffff);
    put32(z, v >> 32);
}

static void wr16(uint8_t *p, uint64_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint64_t v)
{
    wr16(p, v & 0xffff);
    wr16(p + 2, v >> 16 & 0xffff);
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, v & 0xffffffff);
    wr32(p + 4, v >> 32);
}

/* Raw deflate (windowBits -15), as zip stores it. */
static uint8_t *deflate_raw(const uint8_t *src, size_t n, size_t *out_n)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8,
                                  Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, n);
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_n = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Writes the entries the way PyTorchStreamWriter (miniz) does. With
 * zip64 == 0 it ends like a plain `zip` archive: a classic EOCD only. */
static tzip build_zip(tentry *entries, size_t n, int zip64)
{
    tzip z = {0};
    uint32_t *crcs = calloc(n, sizeof *crcs);
    size_t *comps = calloc(n, sizeof *comps);
    assert_true(crcs && comps);
    for (size_t i = 0; i < n; i++) {
        tentry *e = &entries[i];
        size_t comp_n = e->n;
        uint8_t *comp = e->deflate ? deflate_raw(e->data, e->n, &comp_n) : NULL;
        crcs[i] = (uint32_t)crc32(0, e->data, (uInt)e->n);
        comps[i] = comp_n;
        size_t name_len = strlen(e->name);
        e->lh_off = z.len;
        put(&z, "PK\3\4", 4);
        put16(&z, 0);                  /* version needed */
        put16(&z, 0x0808);             /* descriptor follows; UTF-8 names */
        put16(&z, e->deflate ? 8 : 0);
        put32(&z, 0);                  /* time, date */
        put32(&z, 0);                  /* crc, sizes: in the descriptor */
        put32(&z, 0);
        put32(&z, 0);
        /* detail::getPadding: an "FB" record of 'Z's up to a 64 boundary. */
        size_t start = z.len + 4 + name_len + 4;
        size_t pad = (64 - start % 64) % 64;
        put16(&z, name_len);
        put16(&z, 4 + pad);
        put(&z, e->name, name_len);
        put(&z, "FB", 2);
        put16(&z, pad);
        for (size_t k = 0; k < pad; k++)
            put(&z, "Z", 1);
        put(&z, comp ? comp : e->data, comp_n);
        put(&z, "PK\7\10", 4);
        put32(&z, crcs[i]);
        put32(&z, comp_n);
        put32(&z, e->n);
        free(comp);
    }
    z.cd_start = z.len;
    for (size_t i = 0; i < n; i++) {
        tentry *e = &entries[i];
        uint64_t size = e->declared_size ? e->declared_size : e->n;
        e->cd_off = z.len;
        put(&z, "PK\1\2", 4);
        put16(&z, 0);                  /* version made by */
        put16(&z, 0);                  /* version needed */
        put16(&z, 0x0808);
        put16(&z, e->deflate ? 8 : 0);
        put32(&z, 0);                  /* time, date */
        put32(&z, crcs[i]);
        put32(&z, e->zip64_extra ? 0xffffffff : comps[i]);
        put32(&z, e->zip64_extra ? 0xffffffff : size);
        put16(&z, strlen(e->name));
        put16(&z, e->zip64_extra ? 28 : 0);
        put16(&z, 0);                  /* comment */
        put16(&z, 0);                  /* disk */
        put16(&z, 0);                  /* internal attributes */
        put32(&z, 0);                  /* external attributes */
        put32(&z, e->zip64_extra ? 0xffffffff : e->lh_off);
        put(&z, e->name, strlen(e->name));
        if (e->zip64_extra) {
            put16(&z, 0x0001);
            put16(&z, 24);
            put64(&z, size);
            put64(&z, comps[i]);
            put64(&z, e->lh_off);
        }
    }
    size_t cd_size = z.len - z.cd_start;
    if (zip64) {
        z.zip64_eocd = z.len;
        put(&z, "PK\6\6", 4);
        put64(&z, 44);                 /* size of the rest of the record */
        put16(&z, 0x031e);             /* made by, as in real files */
        put16(&z, 0x2d);
        put32(&z, 0);                  /* disk, disk of the CD */
        put32(&z, 0);
        put64(&z, n);
        put64(&z, n);
        put64(&z, cd_size);
        put64(&z, z.cd_start);
        put(&z, "PK\6\7", 4);
        put32(&z, 0);
        put64(&z, z.zip64_eocd);
        put32(&z, 1);                  /* total disks */
    }
    z.eocd = z.len;
    put(&z, "PK\5\6", 4);
    put32(&z, 0);                      /* disk, disk of the CD */
    put16(&z, n);
    put16(&z, n);
    put32(&z, cd_size);
    put32(&z, z.cd_start);
    put16(&z, 0);                      /* comment */
    free(crcs);
    free(comps);
    return z;
}

/* ---- Content: patterned bytes, never all zeros ----------------------- */

static uint8_t pickle[300], storage0[1000], storage1[257], storage3[64];
static uint8_t text[4000];

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 37 + seed * 101 + (i >> 8) + 1);
}

static int setup_content(void **state)
{
    (void)state;
    fill(pickle, sizeof pickle, 1);
    pickle[0] = 0x80;
    pickle[1] = 0x02;
    fill(storage0, sizeof storage0, 2);
    fill(storage1, sizeof storage1, 3);
    fill(storage3, sizeof storage3, 4);
    /* Compressible but not trivial. */
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (uint8_t)("the quick brown fox "[i % 20] + (i / 997));
    return 0;
}

/* The entries of a small torch.save of a state dict. */
enum { N_TORCH = 5 };
static void torch_entries(tentry e[N_TORCH])
{
    memset(e, 0, N_TORCH * sizeof *e);
    e[0] = (tentry){.name = "arch/data.pkl", .data = pickle, .n = sizeof pickle};
    e[1] = (tentry){.name = "arch/data/0", .data = storage0, .n = sizeof storage0};
    e[2] = (tentry){.name = "arch/data/1", .data = storage1, .n = sizeof storage1};
    e[3] = (tentry){.name = "arch/data/3", .data = storage3, .n = sizeof storage3};
    e[4] = (tentry){.name = "arch/version", .data = (const uint8_t *)"3\n", .n = 2};
}

/* Opens z and expects failure with `status` and `needle` in the message. */
static void expect_open_fails(const tzip *z, sr_status status,
                              const char *needle)
{
    /* An exact-size copy, so that ASan sees any read past the end. */
    uint8_t *copy = malloc(z->len ? z->len : 1);
    assert_non_null(copy);
    memcpy(copy, z->p, z->len);
    sr_error err = {{0}};
    sr_zip *zip = (sr_zip *)1;
    assert_int_equal(sr_zip_open(&zip, copy, z->len, &err), status);
    assert_null(zip);
    if (!strstr(err.message, needle))
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    free(copy);
}

static sr_zip *open_ok(const tzip *z)
{
    sr_error err = {{0}};
    sr_zip *zip = NULL;
    sr_status st = sr_zip_open(&zip, z->p, z->len, &err);
    if (st != SR_OK)
        fail_msg("open failed: %s", err.message);
    return zip;
}

/* Reads `name` and expects failure with `status` and `needle`. */
static void expect_read_fails(const tzip *z, const char *name,
                              uint64_t max_size, sr_status status,
                              const char *needle)
{
    sr_zip *zip = open_ok(z);
    const sr_zip_entry *e = sr_zip_find(zip, name);
    assert_non_null(e);
    sr_error err = {{0}};
    const uint8_t *bytes = (const uint8_t *)1;
    void *owned = (void *)1;
    assert_int_equal(sr_zip_read(zip, e, max_size, 1, &bytes, &owned, &err),
                     status);
    assert_null(bytes);
    assert_null(owned);
    if (!strstr(err.message, needle))
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    sr_zip_close(zip);
}

static void check_entry(const sr_zip *zip, const tentry *t)
{
    const sr_zip_entry *e = sr_zip_find(zip, t->name);
    assert_non_null(e);
    assert_string_equal(e->name, t->name);
    assert_int_equal(e->size, t->n);
    assert_int_equal(e->method, t->deflate ? 8 : 0);
    assert_int_equal(e->crc32, (uint32_t)crc32(0, t->data, (uInt)t->n));
    sr_error err = {{0}};
    const uint8_t *bytes = NULL;
    void *owned = NULL;
    sr_status st = sr_zip_read(zip, e, 1 << 20, 1, &bytes, &owned, &err);
    if (st != SR_OK)
        fail_msg("read '%s': %s", t->name, err.message);
    assert_memory_equal(bytes, t->data, t->n);
    if (t->deflate) {
        assert_ptr_equal(bytes, owned);
    } else {
        assert_null(owned);
        assert_int_equal(e->data_offset % 64, 0);
    }
    free(owned);
}

/* ---- Valid archives --------------------------------------------------- */

static void test_torch_layout(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    tzip z = build_zip(e, N_TORCH, 1);
    sr_zip *zip = open_ok(&z);
    assert_int_equal(sr_zip_count(zip), N_TORCH);
    for (int i = 0; i < N_TORCH; i++) {
        assert_string_equal(sr_zip_entry_at(zip, i)->name, e[i].name);
        check_entry(zip, &e[i]);
    }
    /* Stored entries are views into the archive, past the padding. */
    const sr_zip_entry *d0 = sr_zip_find(zip, "arch/data/0");
    const uint8_t *bytes;
    void *owned;
    assert_int_equal(sr_zip_read(zip, d0, sizeof storage0, 1, &bytes, &owned,
                                 NULL), SR_OK);
    assert_ptr_equal(bytes, z.p + d0->data_offset);
    assert_true(d0->data_offset - e[1].lh_off < 30 + strlen(e[1].name) + 4 + 64);
    assert_int_equal(z.p[d0->data_offset - 1], 'Z');
    /* The caller's limit holds for stored entries too. */
    assert_int_equal(sr_zip_read(zip, d0, sizeof storage0 - 1, 1, &bytes,
                                 &owned, NULL), SR_ERR_LIMIT);
    assert_null(sr_zip_entry_at(zip, -1));
    assert_null(sr_zip_entry_at(zip, N_TORCH));
    assert_null(sr_zip_find(zip, "arch/data/2"));
    assert_null(sr_zip_find(zip, "arch/data"));
    sr_zip_close(zip);
    free(z.p);
}

static void test_classic_eocd_and_zip64_extra(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    e[1].zip64_extra = 1;
    e[2].zip64_extra = 1;
    for (int zip64 = 0; zip64 <= 1; zip64++) {
        tzip z = build_zip(e, N_TORCH, zip64);
        sr_zip *zip = open_ok(&z);
        assert_int_equal(sr_zip_count(zip), N_TORCH);
        for (int i = 0; i < N_TORCH; i++)
            check_entry(zip, &e[i]);
        sr_zip_close(zip);
        free(z.p);
    }
}

static void test_deflated(void **state)
{
    (void)state;
    tentry e[3] = {
        {.name = "arch/data.pkl", .data = text, .n = sizeof text, .deflate = 1},
        {.name = "arch/data/0", .data = storage0, .n = sizeof storage0},
        {.name = "arch/data/1", .data = storage1, .n = sizeof storage1,
         .deflate = 1, .zip64_extra = 1},
    };
    tzip z = build_zip(e, 3, 0);
    sr_zip *zip = open_ok(&z);
    for (int i = 0; i < 3; i++)
        check_entry(zip, &e[i]);
    assert_true(sr_zip_find(zip, "arch/data.pkl")->comp_size < sizeof text);
    sr_zip_close(zip);
    free(z.p);
}

/* A comment holding a stray EOCD signature is skipped over: the real
 * EOCD is the one whose comment reaches exactly to the end. */
static void test_eocd_comment(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    tzip z = build_zip(e, N_TORCH, 1);
    static const uint8_t comment[30] = "note PK\5\6\xff\xff\xff\xff\xff\xff"
                                       "\xff\xff\xff\xff\xff\xff\xff\xff"
                                       "\xff\xff\xff\xff";
    wr16(z.p + z.eocd + 20, sizeof comment);
    put(&z, comment, sizeof comment);
    sr_zip *zip = open_ok(&z);
    assert_int_equal(sr_zip_count(zip), N_TORCH);
    check_entry(zip, &e[0]);
    sr_zip_close(zip);
    free(z.p);
}

static void test_empty_archive(void **state)
{
    (void)state;
    tzip z = build_zip(NULL, 0, 1);
    sr_zip *zip = open_ok(&z);
    assert_int_equal(sr_zip_count(zip), 0);
    assert_null(sr_zip_find(zip, "arch/data.pkl"));
    sr_zip_close(zip);
    free(z.p);
}

static void test_crc(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    tzip z = build_zip(e, N_TORCH, 1);
    sr_zip *zip = open_ok(&z);
    const sr_zip_entry *d1 = sr_zip_find(zip, "arch/data/1");
    z.p[d1->data_offset + 100] ^= 0x10;
    sr_error err = {{0}};
    const uint8_t *bytes;
    void *owned;
    assert_int_equal(sr_zip_read(zip, d1, 1 << 20, 1, &bytes, &owned, &err),
                     SR_ERR_FORMAT);
    assert_non_null(strstr(err.message, "crc mismatch in entry 'arch/data/1'"));
    /* Without the check the (changed) bytes come back. */
    assert_int_equal(sr_zip_read(zip, d1, 1 << 20, 0, &bytes, &owned, &err),
                     SR_OK);
    assert_int_equal(bytes[100], storage1[100] ^ 0x10);
    sr_zip_close(zip);
    free(z.p);
}

/* ---- Hostile archives: docs/formats.md section 6, cases 3 to 9 -------- */

static void test_truncated(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    tzip z = build_zip(e, N_TORCH, 1);
    size_t full = z.len;
    const char *msg = "truncated zip: end-of-central-directory not found";
    z.len = full / 2;
    expect_open_fails(&z, SR_ERR_FORMAT, msg);
    z.len = full - 1;
    expect_open_fails(&z, SR_ERR_FORMAT, msg);
    z.len = 0;
    expect_open_fails(&z, SR_ERR_FORMAT, msg);
    /* Cut into the entries while keeping the end records: the central
     * directory then points past the end. */
    z.len = full;
    memmove(z.p + 100, z.p + 200, full - 200);
    z.len = full - 100;
    expect_open_fails(&z, SR_ERR_FORMAT, "zip");
    free(z.p);
}

static void test_past_end_of_file(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    tzip z = build_zip(e, N_TORCH, 1);
    uint8_t *cd3 = z.p + e[3].cd_off;
    wr32(cd3 + 42, z.len + 10);
    expect_open_fails(&z, SR_ERR_FORMAT,
                      "entry 'arch/data/3' extends past end of file");
    wr32(cd3 + 42, e[3].lh_off);
    wr32(cd3 + 20, 0x7fffffff);
    wr32(cd3 + 24, 0x7fffffff);
    expect_open_fails(&z, SR_ERR_FORMAT,
                      "entry 'arch/data/3' extends past end of file");
    /* Inside the file but running into the central directory. */
    wr32(cd3 + 20, z.cd_start - e[3].lh_off);
    wr32(cd3 + 24, z.cd_start - e[3].lh_off);
    expect_open_fails(&z, SR_ERR_FORMAT, "overlaps the central directory");
    free(z.p);
}

static void test_zip64_out_of_range(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    e[2].zip64_extra = 1;
    const char *msg = "zip64 field out of range";
    /* Offsets into the zip64 EOCD: entries, CD size, CD offset; then the
     * locator's record offset. */
    size_t fields[] = {32, 40, 48};
    uint64_t absurd[] = {UINT64_C(1) << 62, UINT64_C(1) << 63, UINT64_MAX};
    for (size_t f = 0; f < 3; f++) {
        for (size_t a = 0; a < 3; a++) {
            tzip z = build_zip(e, N_TORCH, 1);
            wr64(z.p + z.zip64_eocd + fields[f], absurd[a]);
            expect_open_fails(&z, SR_ERR_FORMAT, msg);
            free(z.p);
        }
    }
    tzip z = build_zip(e, N_TORCH, 1);
    wr64(z.p + z.eocd - 20 + 8, UINT64_C(1) << 63);
    expect_open_fails(&z, SR_ERR_FORMAT, msg);
    free(z.p);
    /* The 0x0001 extra of 'arch/data/1': size, compressed size, offset. */
    for (size_t f = 0; f < 3; f++) {
        z = build_zip(e, N_TORCH, 1);
        uint8_t *extra = z.p + e[2].cd_off + 46 + strlen(e[2].name) + 4;
        wr64(extra + 8 * f, UINT64_C(1) << 62);
        expect_open_fails(&z, SR_ERR_FORMAT, msg);
        free(z.p);
    }
    /* Too short a zip64 extra for the saturated fields. */
    z = build_zip(e, N_TORCH, 1);
    wr16(z.p + e[2].cd_off + 46 + strlen(e[2].name) + 2, 16);
    expect_open_fails(&z, SR_ERR_FORMAT, "zip64 extra");
    free(z.p);
}

static void test_entry_count_capped(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    /* Classic EOCD, no zip64: 65535 entries cannot fit in this CD. */
    tzip z = build_zip(e, N_TORCH, 0);
    wr16(z.p + z.eocd + 10, 0xffff);
    expect_open_fails(&z, SR_ERR_FORMAT, "too small for 65535 entries");
    /* One entry fewer than the CD holds. */
    wr16(z.p + z.eocd + 10, N_TORCH - 1);
    expect_open_fails(&z, SR_ERR_FORMAT, "size does not match");
    free(z.p);
}

static void test_overlap(void **state)
{
    (void)state;
    /* Fifield's construction: 'arch/a' claims bytes through the end of
     * 'arch/b', so b's local header and data lie inside a's data. */
    tentry e[2] = {
        {.name = "arch/a", .data = storage0, .n = 100},
        {.name = "arch/b", .data = storage1, .n = 50},
    };
    tzip z = build_zip(e, 2, 1);
    sr_zip *zip = open_ok(&z);
    uint64_t a_data = sr_zip_find(zip, "arch/a")->data_offset;
    uint64_t b_end = sr_zip_find(zip, "arch/b")->data_offset + 50;
    sr_zip_close(zip);
    wr32(z.p + e[0].cd_off + 20, b_end - a_data);
    wr32(z.p + e[0].cd_off + 24, b_end - a_data);
    expect_open_fails(&z, SR_ERR_FORMAT, "zip entries overlap");
    free(z.p);
}

static void test_duplicate_name(void **state)
{
    (void)state;
    tentry e[3] = {
        {.name = "arch/data/0", .data = storage0, .n = sizeof storage0},
        {.name = "arch/data/1", .data = storage1, .n = sizeof storage1},
        {.name = "arch/data/0", .data = storage3, .n = sizeof storage3},
    };
    tzip z = build_zip(e, 3, 1);
    expect_open_fails(&z, SR_ERR_FORMAT, "duplicate entry 'arch/data/0'");
    free(z.p);
}

static void test_deflate_bomb(void **state)
{
    (void)state;
    size_t n = 10u << 20;
    uint8_t *zeros = calloc(n, 1);
    assert_non_null(zeros);
    tentry e[2] = {
        {.name = "arch/data.pkl", .data = zeros, .n = n, .deflate = 1,
         .declared_size = 100},
        {.name = "arch/data/0", .data = text, .n = sizeof text, .deflate = 1,
         .declared_size = 100000},
    };
    tzip z = build_zip(e, 2, 1);
    expect_read_fails(&z, "arch/data.pkl", 1 << 20, SR_ERR_FORMAT,
                      "entry 'arch/data.pkl' inflates beyond declared size");
    /* A declared size over the caller's limit is refused before inflating. */
    expect_read_fails(&z, "arch/data/0", 4096, SR_ERR_LIMIT,
                      "over the limit of 4096");
    /* A stream that ends short of the declared size. */
    expect_read_fails(&z, "arch/data/0", 1 << 20, SR_ERR_FORMAT,
                      "inflates to less than declared size");
    free(z.p);
    free(zeros);
}

static void test_bad_deflate_stream(void **state)
{
    (void)state;
    tentry e[1] = {
        {.name = "arch/data.pkl", .data = text, .n = sizeof text, .deflate = 1},
    };
    tzip z = build_zip(e, 1, 1);
    sr_zip *zip = open_ok(&z);
    uint64_t data = sr_zip_find(zip, "arch/data.pkl")->data_offset;
    uint64_t comp = sr_zip_find(zip, "arch/data.pkl")->comp_size;
    sr_zip_close(zip);
    /* Block type 3 is reserved. */
    uint8_t first = z.p[data];
    z.p[data] = first | 0x06;
    expect_read_fails(&z, "arch/data.pkl", 1 << 20, SR_ERR_FORMAT,
                      "corrupt deflate data in entry 'arch/data.pkl'");
    z.p[data] = first;
    /* Half of the compressed bytes. */
    wr32(z.p + e[0].cd_off + 20, comp / 2);
    expect_read_fails(&z, "arch/data.pkl", 1 << 20, SR_ERR_FORMAT,
                      "truncated deflate data");
    free(z.p);
}

static void test_method_and_flags(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    tzip z = build_zip(e, N_TORCH, 1);
    uint8_t *cd1 = z.p + e[1].cd_off;
    wr16(cd1 + 10, 14);
    expect_open_fails(&z, SR_ERR_FORMAT, "unsupported zip compression method 14");
    wr16(cd1 + 10, 0);
    wr16(cd1 + 8, 0x0809);
    expect_open_fails(&z, SR_ERR_FORMAT, "encrypted entry 'arch/data/0'");
    wr16(cd1 + 8, 0x0808);
    wr32(cd1 + 24, sizeof storage0 + 1);
    expect_open_fails(&z, SR_ERR_FORMAT, "stored entry 'arch/data/0'");
    free(z.p);
}

static void test_local_header_mismatch(void **state)
{
    (void)state;
    tentry e[N_TORCH];
    torch_entries(e);
    const char *msg = "local header mismatch for entry 'arch/version'";
    /* Wrong signature, a different name, a name length past the end. */
    size_t offsets[] = {0, 3, 30 + 5, 26, 27};
    uint8_t flips[] = {0x01, 0x01, 0x20, 0x01, 0xff};
    for (size_t i = 0; i < sizeof offsets / sizeof *offsets; i++) {
        tzip z = build_zip(e, N_TORCH, 1);
        z.p[e[4].lh_off + offsets[i]] ^= flips[i];
        expect_open_fails(&z, SR_ERR_FORMAT, msg);
        free(z.p);
    }
    /* An extra length that pushes the data past the end. */
    tzip z = build_zip(e, N_TORCH, 1);
    wr16(z.p + e[4].lh_off + 28, 0xffff);
    expect_open_fails(&z, SR_ERR_FORMAT, "'arch/version' extends past end");
    free(z.p);
}

static void test_control_byte_in_name(void **state)
{
    (void)state;
    tentry e[2] = {
        {.name = "arch/data.pkl", .data = pickle, .n = sizeof pickle},
        {.name = "arch/data.pkl!", .data = storage1, .n = sizeof storage1},
    };
    tzip z = build_zip(e, 2, 1);
    /* "arch/data.pkl\0" would read as a second data.pkl in C. */
    z.p[e[1].cd_off + 46 + 13] = 0;
    expect_open_fails(&z, SR_ERR_FORMAT, "control byte");
    free(z.p);
}

/* Records that end close to the end of the file, where checking only
 * their first bytes would let the rest be read past it. */
static void test_records_near_end(void **state)
{
    (void)state;
    tentry e[1] = {{.name = "arch/a", .data = storage0, .n = 100}};
    tzip z = build_zip(e, 1, 0);
    /* The central directory is the one entry, a comment, then 11 forged
     * bytes that start like a second header; 92 bytes allow two entries. */
    wr16(z.p + e[0].cd_off + 32, 92 - 52 - 11);
    z.len = e[0].cd_off + 52;
    for (int i = 0; i < 92 - 52 - 11; i++)
        put(&z, "c", 1);
    put(&z, "PK\1\2forged!", 11);
    put(&z, "PK\5\6", 4);
    put32(&z, 0);
    put16(&z, 2);
    put16(&z, 2);
    put32(&z, 92);
    put32(&z, z.cd_start);
    put16(&z, 0);
    expect_open_fails(&z, SR_ERR_FORMAT, "bad central directory entry 1");
    free(z.p);

    /* A zip64 extra whose length runs past the entry's extra field. */
    e[0].zip64_extra = 1;
    z = build_zip(e, 1, 0);
    size_t extra = e[0].cd_off + 52;
    wr16(z.p + e[0].cd_off + 30, 4);
    memmove(z.p + extra + 4, z.p + z.eocd, 22);
    z.len -= 24;
    wr32(z.p + z.len - 22 + 12, 52 + 4);      /* CD size */
    expect_open_fails(&z, SR_ERR_FORMAT, "bad extra field in entry 'arch/a'");
    free(z.p);

    /* A locator pointing at a zip64 record signature in the EOCD comment. */
    z = build_zip(e, 1, 1);
    wr64(z.p + z.eocd - 20 + 8, z.len + 2);
    wr16(z.p + z.eocd + 20, 6);
    put(&z, "..PK\6\6", 6);
    expect_open_fails(&z, SR_ERR_FORMAT,
                      "zip64 end-of-central-directory record not found");
    free(z.p);
}

/* ---- Every truncation and many byte flips: no crash, sane results ----- */

static void open_and_read_all(const uint8_t *data, size_t len)
{
    /* An exact-size copy, so that ASan sees any read past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    sr_error err = {{0}};
    sr_zip *zip = NULL;
    sr_status st = sr_zip_open(&zip, copy, len, &err);
    assert_true(st == SR_OK || st == SR_ERR_FORMAT);
    if (st != SR_OK) {
        assert_null(zip);
        assert_true(err.message[0] != '\0' && !strchr(err.message, '\n'));
        free(copy);
        return;
    }
    for (int64_t i = 0; i < sr_zip_count(zip); i++) {
        const sr_zip_entry *e = sr_zip_entry_at(zip, i);
        assert_ptr_equal(sr_zip_find(zip, e->name), e);
        assert_true(e->data_offset <= len && e->comp_size <= len - e->data_offset);
        for (int crc = 0; crc <= 1; crc++) {
            const uint8_t *bytes;
            void *owned;
            memset(&err, 0, sizeof err);
            st = sr_zip_read(zip, e, 1 << 16, crc, &bytes, &owned, &err);
            assert_true(st == SR_OK || st == SR_ERR_FORMAT ||
                        st == SR_ERR_LIMIT);
            if (st == SR_OK && e->method == 0)
                assert_ptr_equal(bytes, copy + e->data_offset);
            else if (st == SR_OK)
                assert_ptr_equal(bytes, owned);
            else
                assert_true(err.message[0] != '\0');
            free(owned);
        }
    }
    sr_zip_close(zip);
    free(copy);
}

static void test_sweep(void **state)
{
    (void)state;
    tentry e[4] = {
        {.name = "a/data.pkl", .data = text, .n = 600, .deflate = 1},
        {.name = "a/data/0", .data = storage1, .n = 70},
        {.name = "a/data/1", .data = storage3, .n = 64, .zip64_extra = 1},
        {.name = "a/version", .data = (const uint8_t *)"3\n", .n = 2},
    };
    for (int zip64 = 0; zip64 <= 1; zip64++) {
        tzip z = build_zip(e, 4, zip64);
        for (size_t len = 0; len <= z.len; len++)
            open_and_read_all(z.p, len);
        static const uint8_t flips[] = {0x01, 0x80, 0xff};
        for (size_t i = 0; i < z.len; i++) {
            for (size_t f = 0; f < sizeof flips; f++) {
                z.p[i] ^= flips[f];
                open_and_read_all(z.p, z.len);
                z.p[i] ^= flips[f];
            }
        }
        /* The untouched archive still reads back exactly. */
        sr_zip *zip = open_ok(&z);
        for (int i = 0; i < 4; i++)
            check_entry(zip, &e[i]);
        sr_zip_close(zip);
        free(z.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_layout),
        cmocka_unit_test(test_classic_eocd_and_zip64_extra),
        cmocka_unit_test(test_deflated),
        cmocka_unit_test(test_eocd_comment),
        cmocka_unit_test(test_empty_archive),
        cmocka_unit_test(test_crc),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_past_end_of_file),
        cmocka_unit_test(test_zip64_out_of_range),
        cmocka_unit_test(test_entry_count_capped),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_deflate_bomb),
        cmocka_unit_test(test_bad_deflate_stream),
        cmocka_unit_test(test_method_and_flags),
        cmocka_unit_test(test_local_header_mismatch),
        cmocka_unit_test(test_control_byte_in_name),
        cmocka_unit_test(test_records_near_end),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, setup_content, NULL);
}
