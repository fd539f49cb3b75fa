/* model.bin's layout: every corruption of docs/formats.md section 6 case
 * 28 and section 1.8, each with its status and message, read from memory
 * that ends at an unmapped page so that any read past the end of the file
 * crashes the test; the hyper-parameter table and the checks made when a
 * model loads; names a file cannot store; version 1 files (unnamed
 * hyper-parameters) still loading. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "../testutil.h"
#include "formats/modelbin.h"
#include "modelbin_files.h"
#include "srrun.h"

/* ---- Memory that ends where the file ends ---------------------------------- */

/* `size` bytes whose last byte is followed by an unmapped page. */
typedef struct guarded {
    uint8_t *base;
    size_t total;
    sr_mapped_file file;
} guarded;

static guarded guard(const uint8_t *bytes, uint64_t size)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t pages = ((size_t)size + page - 1) / page;
    guarded g = {0};
    g.total = (pages + 1) * page;
    g.base = mmap(NULL, g.total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.base != MAP_FAILED);
    assert_int_equal(mprotect(g.base + pages * page, page, PROT_NONE), 0);
    uint8_t *start = g.base + pages * page - size;
    memcpy(start, bytes, (size_t)size);
    g.file.data = start;
    g.file.size = size;
    return g;
}

static void unguard(guarded *g) { munmap(g->base, g->total); }

/* ---- Editing a file in memory -------------------------------------------- */

/* Version 2's hyper-parameter entry i: after the tensor table. */
static uint8_t *hparam_at(image *im, int i)
{
    return im->data + 128 + 128 * (uint64_t)get32(im->data + 40) + 32 * i;
}

static void write_image(const image *im, const char *path)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(im->data, 1, im->size, f), im->size);
    fclose(f);
}

/* sr_model_load of the bytes (written to a file): wants `status` and, when
 * not OK, a message that is the path, ": " and `message`. */
static void expect_load(const image *im, sr_status status, const char *message)
{
    char path[512], want[1024];
    tmp_path(path, sizeof path, "edited.bin");
    write_image(im, path);
    sr_error err = {0};
    sr_model *m = NULL;
    const sr_status st = sr_model_load(path, NULL, &m, &err);
    snprintf(want, sizeof want, "%s: %s", path, message);
    if (st != status || (st != SR_OK && strcmp(err.message, want) != 0))
        fail_msg("status %d '%s'; wanted %d '%s'", st, err.message, status, want);
    assert_true((m != NULL) == (status == SR_OK));
    sr_model_free(m);
}

/* Recomputes both CRCs, as a careful forger would: only the structural
 * checks can then catch the edit. */
static void fix_crcs(image *im)
{
    uint64_t start = get64(im->data + 24);
    if (start > im->size)
        start = im->size;
    put32(im->data + 16, (uint32_t)crc32(0, im->data + 24, (uInt)(start - 24)));
    put32(im->data + 20, (uint32_t)crc32(0, im->data + start, (uInt)(im->size - start)));
}

/* Loads the bytes through the guarded mapping: wants `status` and a
 * message containing `message`, and the weights left empty. */
static void expect(const image *im, sr_status status, const char *message)
{
    guarded g = guard(im->data, im->size);
    sr_weights w = {0};
    sr_modelbin_info info;
    sr_error err = {0};
    sr_status st = sr_modelbin_load(&g.file, true, &w, &info, &err);
    if (st != status || !strstr(err.message, message))
        fail_msg("status %d '%s'; wanted %d '%s'", st, err.message, status, message);
    assert_int_equal(w.n_items, status == SR_OK ? (int64_t)get32(im->data + 40) : 0);
    assert_null(strchr(err.message, '\n'));
    sr_weights_free(&w);
    unguard(&g);
}

static image good_x2(void)
{
    char bin[512];
    convert("srpgan_x2.pth", "good_x2.bin", 0, bin, sizeof bin);
    return read_image(bin);
}

/* ---- Corruptions ----------------------------------------------------------- */

static void test_bad_magic_version_byte_order(void **state)
{
    (void)state;
    image im = good_x2();
    expect(&im, SR_OK, ""); /* the untouched file loads */

    im.data[1] = 'X';
    expect(&im, SR_ERR_FORMAT, "bad magic: not a srrun model.bin");
    im.data[1] = 'S';
    im.data[4] = '\n'; /* "\r\n" became "\n" */
    expect(&im, SR_ERR_FORMAT, "bad magic: not a srrun model.bin (damaged by a text-mode transfer?)");
    im.data[4] = '\r';

    put32(im.data + 8, 3);
    expect(&im, SR_ERR_UNSUPPORTED, "model.bin version 3 is newer than this srrun reads (2)");
    put32(im.data + 8, 0);
    expect(&im, SR_ERR_FORMAT, "bad model.bin version 0");
    put32(im.data + 8, 1); /* version 1 has no hyper-parameter table */
    expect(&im, SR_ERR_FORMAT, "does not fit 16 tensors and 0 hyper-parameters");
    put32(im.data + 8, 2);

    put32(im.data + 12, 0x01000000);
    expect(&im, SR_ERR_UNSUPPORTED, "big-endian model.bin");
    put32(im.data + 12, 7);
    expect(&im, SR_ERR_FORMAT, "bad byte-order flag 0x00000007");
    put32(im.data + 12, 1);

    image small = {im.data, 100};
    expect(&small, SR_ERR_FORMAT, "truncated header: 100 bytes, model.bin needs 128");
    small.size = 1;
    expect(&small, SR_ERR_FORMAT, "bad magic");
    small.size = 0;
    expect(&small, SR_ERR_FORMAT, "empty file");
    free(im.data);
}

static void test_crc_mismatch(void **state)
{
    (void)state;
    image im = good_x2();
    const uint64_t start = get64(im.data + 24);
    /* One flipped bit in the middle of the data. */
    im.data[start + (im.size - start) / 2] ^= 0x10;
    expect(&im, SR_ERR_FORMAT, "data checksum mismatch (stored 0x");
    /* Even when the flip makes an infinity, the file is called damaged. */
    im.data[start + (im.size - start) / 2] ^= 0x10;
    uint8_t *w = im.data + get64(entry_at(&im, 0) + 104);
    memcpy(w, "\x00\x00\x80\x7f", 4);
    expect(&im, SR_ERR_FORMAT, "data checksum mismatch");
    /* With the CRC made to match, the infinity itself is named. */
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor 'block1.0.weight' holds NaN or Inf");
    free(im.data);

    im = good_x2();
    entry_at(&im, 3)[0] ^= 1; /* a name in the table */
    expect(&im, SR_ERR_FORMAT, "header checksum mismatch");
    entry_at(&im, 3)[0] ^= 1;
    hparam_at(&im, 0)[24] ^= 1; /* a hyper-parameter's value */
    expect(&im, SR_ERR_FORMAT, "header checksum mismatch");
    free(im.data);
}

static void test_header_lengths(void **state)
{
    (void)state;
    image im = good_x2();
    const uint64_t start = get64(im.data + 24);
    put64(im.data + 24, UINT64_C(1) << 40);
    expect(&im, SR_ERR_FORMAT, "header length 1099511627776 exceeds the file size");
    put64(im.data + 24, UINT64_MAX);
    expect(&im, SR_ERR_FORMAT, "header length 18446744073709551615 exceeds the file size");
    put64(im.data + 24, start + 64);
    expect(&im, SR_ERR_FORMAT, "does not fit");
    put64(im.data + 24, start);

    const uint32_t n = get32(im.data + 40);
    put32(im.data + 40, 0);
    expect(&im, SR_ERR_FORMAT, "0 tensors");
    put32(im.data + 40, UINT32_MAX);
    expect(&im, SR_ERR_FORMAT, "4294967295 tensors");
    put32(im.data + 40, n + 1);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "does not fit");
    put32(im.data + 40, n);

    /* Truncated: the data section is shorter than declared. */
    image half = {im.data, start + (im.size - start) / 2};
    expect(&half, SR_ERR_FORMAT, "truncated: the header declares");
    image tiny = {im.data, start - 10};
    expect(&tiny, SR_ERR_FORMAT, "exceeds the file size");
    free(im.data);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    image im = good_x2();
    im.data = realloc(im.data, im.size + 10);
    memset(im.data + im.size, 0, 10);
    im.size += 10;
    expect(&im, SR_ERR_FORMAT, "10 trailing bytes after the data");
    /* Declared in the header too: still not part of any tensor. */
    put64(im.data + 32, get64(im.data + 32) + 10);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "10 trailing bytes after the last tensor");
    free(im.data);
}

static void test_table_entries(void **state)
{
    (void)state;
    image im = good_x2();
    const uint32_t n = get32(im.data + 40);
    uint8_t *last = entry_at(&im, (int)n - 1), *e1 = entry_at(&im, 1), *e2 = entry_at(&im, 2);
    const uint64_t last_off = get64(last + 104), off1 = get64(e1 + 104), off2 = get64(e2 + 104);

    /* Past EOF, by a little and by a lot (no wrap-around). */
    put64(last + 104, last_off + 1024);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "extends past the end of the file");
    put64(last + 104, UINT64_MAX - 63);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "extends past the end of the file");
    put64(last + 104, last_off);
    /* A shape of 2^40 elements with a consistent byte count. */
    const uint64_t shape0 = get64(e1 + 72), nbytes1 = get64(e1 + 112);
    put64(e1 + 72, UINT64_C(1) << 40);
    put64(e1 + 112, (UINT64_C(1) << 40) * (nbytes1 / shape0));
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "extends past the end of the file");
    put64(e1 + 72, UINT64_C(1) << 62);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "overflows");
    put64(e1 + 72, shape0);
    put64(e1 + 112, nbytes1 + 4);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor 'block1.0.bias': 260 bytes, but float32 [64] needs 256");
    put64(e1 + 112, nbytes1);

    put64(e1 + 104, off1 + 4);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor 'block1.0.bias': offset");
    expect(&im, SR_ERR_FORMAT, "is not 64-byte aligned");

    /* block1.0.weight is 64x3x9x9 floats: entry 1 moved into it. */
    const uint64_t off0 = get64(entry_at(&im, 0) + 104);
    put64(e1 + 104, off0 + 64);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensors 'block1.0.weight' and 'block1.0.bias' overlap");

    put64(e1 + 104, off2);
    put64(e2 + 104, off1);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor offsets are not sorted: 'block1.1.weight' at");
    put64(e1 + 104, off1);
    put64(e2 + 104, off2);

    put64(entry_at(&im, 0) + 104, 64);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor 'block1.0.weight': offset 64 lies inside the header");
    put64(entry_at(&im, 0) + 104, off0);

    /* Duplicate names. */
    memcpy(e2, entry_at(&im, 0), 64);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "duplicate tensor 'block1.0.weight'");
    free(im.data);

    im = good_x2();
    e1 = entry_at(&im, 1);
    put32(e1 + 64, 9);
    fix_crcs(&im);
    expect(&im, SR_ERR_UNSUPPORTED, "tensor 'block1.0.bias': unknown dtype 9");
    put32(e1 + 64, 0);
    put32(e1 + 68, 5);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor 'block1.0.bias' has 5 dimensions (at most 4)");
    put32(e1 + 68, 1);
    memset(e1 + 10, 'x', 54); /* no NUL left in the name field */
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "tensor 1: bad name");
    free(im.data);

    /* Non-zero padding after block1.1.weight (one PReLU slope, 4 bytes). */
    im = good_x2();
    assert_string_equal((char *)entry_at(&im, 2), "block1.1.weight");
    const uint64_t pad = get64(entry_at(&im, 2) + 104) + get64(entry_at(&im, 2) + 112);
    assert_true(pad % 64 != 0);
    im.data[pad] = 1;
    fix_crcs(&im);
    char msg[128];
    snprintf(msg, sizeof msg, "padding before tensor '%s' is not zero", (char *)entry_at(&im, 3));
    expect(&im, SR_ERR_FORMAT, msg);
    free(im.data);
}

/* The header's architecture name and hyper-parameter table, as the format
 * checks them (names, not meanings: the format knows no architecture). */
static void test_hyper_parameter_table(void **state)
{
    (void)state;
    image im = good_x2();
    assert_int_equal(get32(im.data + 44), 3);
    assert_string_equal((char *)hparam_at(&im, 0), "scale");
    assert_int_equal(get64(hparam_at(&im, 0) + 24), 2);
    assert_string_equal((char *)hparam_at(&im, 2), "width");
    assert_int_equal(get64(hparam_at(&im, 2) + 24), 64);

    memcpy(hparam_at(&im, 1), "scale", 6);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "duplicate hyper-parameter 'scale'");
    memset(hparam_at(&im, 1), 0, 24);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "hyper-parameter 1: bad name (1 to 23 printable ASCII bytes");
    memcpy(hparam_at(&im, 1), "two words", 10);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "hyper-parameter 1: bad name");
    memset(hparam_at(&im, 1), 'x', 24); /* no NUL */
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "hyper-parameter 1: bad name");
    memset(hparam_at(&im, 1), 0, 24);
    memcpy(hparam_at(&im, 1), "blocks", 6);

    put32(im.data + 44, 17);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "17 hyper-parameters (model.bin holds 0 to 16)");
    put32(im.data + 44, 2);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "does not fit 16 tensors and 2 hyper-parameters");
    put32(im.data + 44, 3);

    /* Three entries end 32 bytes short of a 64-byte boundary: the first
     * tensor starts after 32 bytes of padding, which must be zero. */
    const uint64_t start = get64(im.data + 24);
    assert_int_equal(start % 64, 32);
    assert_int_equal(get64(entry_at(&im, 0) + 104), start + 32);
    im.data[start + 31] = 1;
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "padding before tensor 'block1.0.weight' is not zero");
    im.data[start + 31] = 0;

    im.data[100] = 1;
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "reserved header bytes are not zero");
    im.data[100] = 0;
    memset(im.data + 48, 0, 16);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "bad architecture name");
    /* An architecture this srrun does not know is a valid file: loading
     * the model refuses it, naming those it knows. */
    memcpy(im.data + 48, "esrgan", 6);
    fix_crcs(&im);
    expect(&im, SR_OK, "");
    expect_load(&im, SR_ERR_MODEL,
                "unknown architecture 'esrgan' (srrun knows srpgan, rrdbnet, srvgg, edsr, msrresnet)");
    free(im.data);
}

/* Through sr_model_load: the weights are the truth, and recorded
 * hyper-parameters that disagree with them are refused by name. */
static void test_model_load_checks(void **state)
{
    (void)state;
    image im = good_x2();
    expect_load(&im, SR_OK, "");
    put64(hparam_at(&im, 0) + 24, 4); /* the weights have one upsample block: x2 */
    fix_crcs(&im);
    expect_load(&im, SR_ERR_MODEL, "header says scale 4, the weights have 2");
    put64(hparam_at(&im, 0) + 24, 2);
    put64(hparam_at(&im, 2) + 24, 32);
    fix_crcs(&im);
    expect_load(&im, SR_ERR_MODEL, "header says width 32, the weights have 64");
    put64(hparam_at(&im, 2) + 24, UINT64_MAX);
    fix_crcs(&im);
    expect_load(&im, SR_ERR_MODEL, "header says width -1, the weights have 64");
    put64(hparam_at(&im, 2) + 24, 64);
    /* The order is free, the names are not. */
    uint8_t first[32];
    memcpy(first, hparam_at(&im, 0), 32);
    memcpy(hparam_at(&im, 0), hparam_at(&im, 2), 32);
    memcpy(hparam_at(&im, 2), first, 32);
    fix_crcs(&im);
    expect_load(&im, SR_OK, "");
    memcpy(hparam_at(&im, 1), "depth\0", 6); /* was "blocks" */
    fix_crcs(&im);
    expect_load(&im, SR_ERR_MODEL, "header lacks blocks (the weights have 1)");
    free(im.data);

    /* A file that names srpgan over weights of another layout. */
    sr_weights w = {0};
    float one = 1.0f;
    assert_int_equal(sr_weights_add(&w, "conv_first.weight", 1, (int64_t[]){1}, &one, NULL, NULL),
                     SR_OK);
    sr_hparams hparams = {0};
    char path[512];
    tmp_path(path, sizeof path, "other.bin");
    sr_error err = {0};
    assert_int_equal(sr_modelbin_save(path, &w, "srpgan", &hparams, false, NULL, &err), SR_OK);
    sr_weights_free(&w);
    im = read_image(path);
    expect_load(&im, SR_ERR_MODEL,
                "the file says architecture 'srpgan', but its weights are not laid out as "
                "srpgan's (keys like 'conv_first.weight')");
    free(im.data);

    /* A damaged file through the API, and an empty one. */
    im = good_x2();
    im.data[im.size - 1] ^= 0xff;
    write_image(&im, path);
    sr_model *m = NULL;
    assert_int_equal(sr_model_load(path, NULL, &m, &err), SR_ERR_FORMAT);
    char want[600];
    snprintf(want, sizeof want, "%s: data checksum mismatch", path);
    assert_memory_equal(err.message, want, strlen(want));
    free(im.data);
}

/* What the writer refuses to store: names the reader would refuse. */
static void test_unstorable_names(void **state)
{
    (void)state;
    sr_weights w = {0};
    float one = 1.0f;
    assert_int_equal(sr_weights_add(&w, "x", 1, (int64_t[]){1}, &one, NULL, NULL), SR_OK);
    char path[512];
    tmp_path(path, sizeof path, "names.bin");
    sr_error err = {0};
    sr_hparams h = {0};
    assert_int_equal(sr_modelbin_save(path, &w, "a_sixteen_bytes_", &h, false, NULL, &err),
                     SR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "architecture name 'a_sixteen_bytes_' cannot be stored"));
    assert_int_equal(sr_modelbin_save(path, &w, "", &h, false, NULL, &err), SR_ERR_UNSUPPORTED);
    sr_hparams_add(&h, "scale", 2);
    sr_hparams_add(&h, "scale", 4);
    assert_int_equal(sr_modelbin_save(path, &w, "srpgan", &h, false, NULL, &err),
                     SR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "duplicate hyper-parameter 'scale'"));
    h = (sr_hparams){0};
    sr_hparams_add(&h, "two words", 2);
    assert_int_equal(sr_modelbin_save(path, &w, "srpgan", &h, false, NULL, &err),
                     SR_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.message, "hyper-parameter name 'two words' cannot be stored"));
    assert_int_equal(access(path, F_OK), -1);
    /* 16 named values, the most there is room for, and none: both fine. */
    h = (sr_hparams){0};
    for (int i = 0; i < SR_HPARAMS_MAX; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        assert_true(sr_hparams_add(&h, name, -i));
    }
    sr_modelbin_info written, read;
    for (int k = 0; k < 2; k++) {
        if (k)
            h.n = 0;
        assert_int_equal(sr_modelbin_save(path, &w, "any", &h, false, &written, &err), SR_OK);
        sr_mapped_file f;
        assert_int_equal(sr_file_map(path, 0, &f, &err), SR_OK);
        sr_weights got = {0};
        if (sr_modelbin_load(&f, true, &got, &read, &err) != SR_OK)
            fail_msg("%s", err.message);
        assert_string_equal(read.arch.name, "any");
        assert_int_equal(read.arch.hparams.n, h.n);
        for (int i = 0; i < h.n; i++) {
            assert_string_equal(read.arch.hparams.items[i].name, h.items[i].name);
            assert_int_equal(read.arch.hparams.items[i].value, -i);
        }
        assert_int_equal(read.header_crc, written.header_crc);
        assert_int_equal(read.data_crc, written.data_crc);
        /* The one tensor at the first 64-byte boundary after the table. */
        assert_int_equal((uintptr_t)(got.items[0].data) % 64, 0);
        sr_weights_free(&got);
        sr_file_unmap(&f);
    }
    sr_weights_free(&w);
}

/* Version 1 files, as srrun 0.5 wrote them (the shipped default models
 * among them): eight unnamed hyper-parameters in the header, checked by
 * position against what the weights imply. They load, and convert to the
 * current version with the same weights. */
static void test_version_1_files(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int scale;
        const char *dtype;
    } files[] = {{"tiny_x2.v1.bin", 2, "float32"}, {"tiny_x4_f16.v1.bin", 4, "float16"}};
    for (int k = 0; k < 2; k++) {
        char path[512], out[512];
        fixture(path, sizeof path, files[k].name);
        image im = read_image(path);
        assert_int_equal(get32(im.data + 8), 1);
        expect(&im, SR_OK, "");
        sr_model *m = load(path);
        sr_model_info info = SR_MODEL_INFO_INIT;
        assert_int_equal(sr_model_get_info(m, &info), SR_OK);
        assert_string_equal(info.architecture, "srpgan");
        assert_string_equal(info.dtype, files[k].dtype);
        assert_int_equal(info.scale, files[k].scale);
        int64_t value = 0;
        assert_string_equal(sr_model_hparam(m, 0, &value), "scale");
        assert_int_equal(value, files[k].scale);
        assert_string_equal(sr_model_hparam(m, 2, &value), "width");
        assert_int_equal(value, 2);
        assert_null(sr_model_hparam(m, 3, &value));
        tmp_path(out, sizeof out, "from_v1.bin");
        sr_error err = {0};
        assert_int_equal(sr_model_save(m, out, k, &err), SR_OK);
        sr_model_free(m);

        /* Same tensors (names, shapes and bytes), now named hyper-parameters. */
        image v2 = read_image(out);
        assert_int_equal(get32(v2.data + 8), 2);
        assert_string_equal((char *)hparam_at(&v2, 1), "blocks");
        assert_int_equal(get64(hparam_at(&v2, 1) + 24), 1);
        const uint32_t n = get32(im.data + 40);
        assert_int_equal(get32(v2.data + 40), n);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *a = entry_at(&im, (int)i), *b = entry_at(&v2, (int)i);
            assert_memory_equal(a, b, 104); /* name, dtype, ndim, shape */
            assert_int_equal(get64(a + 112), get64(b + 112));
            assert_memory_equal(im.data + get64(a + 104), v2.data + get64(b + 104),
                                (size_t)get64(a + 112));
        }
        free(v2.data);

        /* Its values are compared by position; unused slots must be 0. */
        put32(im.data + 64, 8);
        fix_crcs(&im);
        char msg[64];
        snprintf(msg, sizeof msg, "header says scale 8, the weights have %d", files[k].scale);
        expect_load(&im, SR_ERR_MODEL, msg);
        put32(im.data + 64, (uint32_t)files[k].scale);
        put32(im.data + 72, 3);
        fix_crcs(&im);
        expect_load(&im, SR_ERR_MODEL, "header says width 3, the weights have 2");
        put32(im.data + 72, 2);
        put32(im.data + 84, 1);
        fix_crcs(&im);
        expect_load(&im, SR_ERR_MODEL, "header says hyper-parameter 5 is 1, must be 0");
        put32(im.data + 84, 0);
        put32(im.data + 44, 1); /* reserved in version 1 */
        fix_crcs(&im);
        expect(&im, SR_ERR_FORMAT, "reserved header bytes are not zero");
        put32(im.data + 44, 0);
        im.data[100] = 1;
        fix_crcs(&im);
        expect(&im, SR_ERR_FORMAT, "reserved header bytes are not zero");
        im.data[100] = 0;
        fix_crcs(&im);
        expect_load(&im, SR_OK, "");
        free(im.data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_magic_version_byte_order),
        cmocka_unit_test(test_crc_mismatch),
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_table_entries),
        cmocka_unit_test(test_hyper_parameter_table),
        cmocka_unit_test(test_model_load_checks),
        cmocka_unit_test(test_unstorable_names),
        cmocka_unit_test(test_version_1_files),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
