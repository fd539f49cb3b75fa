/* model.bin: the fast CRC-32 against zlib's; .pth -> .bin round trips
 * (the same weights bit for bit, float32 views 64-byte aligned into the
 * mapping, the same network output; float16 within a stated tolerance,
 * with exact float16 rounding); what sr_model_get_info says; and every
 * corruption of docs/formats.md section 6 case 28 and 1.8, each with
 * its status and message, read from memory that ends at an unmapped page
 * so that any read past the end of the file crashes the test. */
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

#include "../pickle_bytes.h"
#include "../testutil.h"
#include "../tolerance.h"
#include "../zip_bytes.h"
#include "formats/crc32.h"
#include "formats/modelbin.h"
#include "formats/pth.h"
#include "formats/zip.h"
#include "srrun.h"

static char tmpdir[64];

static void fixture(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", SR_FIXTURES_DIR, name);
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static sr_model *load(const char *path)
{
    sr_error err = {0};
    sr_model *m = NULL;
    if (sr_model_load(path, NULL, &m, &err) != SR_OK)
        fail_msg("%s", err.message);
    return m;
}

/* Converts a fixture .pth to a .bin in tmpdir; returns the .bin's path. */
static void convert(const char *pth_name, const char *bin_name, int fp16, char *bin, size_t size)
{
    char pth[512];
    fixture(pth, sizeof pth, pth_name);
    tmp_path(bin, size, bin_name);
    sr_model *m = load(pth);
    sr_error err = {0};
    if (sr_model_save(m, bin, fp16, &err) != SR_OK)
        fail_msg("%s", err.message);
    sr_model_free(m);
}

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

typedef struct image {
    uint8_t *data;
    uint64_t size;
} image;

static image read_image(const char *path)
{
    int64_t size;
    image im = {test_read_file(path, &size), 0};
    assert_non_null(im.data);
    im.size = (uint64_t)size;
    return im;
}

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t *entry_at(image *im, int i) { return im->data + 128 + 128 * i; }

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

/* ---- CRC-32 -------------------------------------------------------------- */

static void test_crc32_matches_zlib(void **state)
{
    (void)state;
    const size_t n = (1 << 20) + 100;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    test_rng r = {7};
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)test_rng_next(&r);
    /* Every length around the 16- and 64-byte fold steps, at every
     * misalignment, continuing from a non-zero CRC. */
    for (size_t len = 0; len < 300; len++)
        for (size_t off = 0; off < 16; off += 5) {
            uint32_t want = (uint32_t)crc32(12345, buf + off, (uInt)len);
            assert_int_equal(sr_crc32(12345, buf + off, len), want);
        }
    assert_int_equal(sr_crc32(0, buf + 3, n - 3), (uint32_t)crc32(0, buf + 3, (uInt)(n - 3)));
    /* Chained in uneven pieces equals one call. */
    uint32_t c = 0;
    for (size_t at = 0; at < n;) {
        size_t len = (size_t)test_rng_int(&r, 0, 5000);
        len = len > n - at ? n - at : len;
        c = sr_crc32(c, buf + at, len);
        at += len;
    }
    assert_int_equal(c, (uint32_t)crc32(0, buf, (uInt)n));
    memset(buf, 0, 4096);
    assert_int_equal(sr_crc32(0, buf, 4096), (uint32_t)crc32(0, buf, 4096));
    free(buf);
}

/* ---- Round trips --------------------------------------------------------- */

static sr_weights pth_weights(const char *name, sr_mapped_file *file)
{
    char path[512];
    fixture(path, sizeof path, name);
    sr_error err = {0};
    assert_int_equal(sr_file_map(path, file, &err), SR_OK);
    sr_weights w = {0};
    if (sr_pth_load(file, &w, &err) != SR_OK)
        fail_msg("%s", err.message);
    return w;
}

static void check_same_weights(const char *pth_name, int fp16)
{
    char bin[512];
    convert(pth_name, fp16 ? "w16.bin" : "w32.bin", fp16, bin, sizeof bin);
    sr_mapped_file pf, bf;
    sr_weights want = pth_weights(pth_name, &pf), got = {0};
    sr_error err = {0};
    assert_int_equal(sr_file_map(bin, &bf, &err), SR_OK);
    sr_modelbin_info info;
    if (sr_modelbin_load(&bf, true, &got, &info, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_string_equal(info.arch.name, "srpgan");
    assert_int_equal(info.version, 1);
    assert_int_equal(info.n_tensors[fp16 ? SR_MODELBIN_F16 : SR_MODELBIN_F32], want.n_items);
    assert_int_equal(got.n_items, want.n_items);
    for (int64_t i = 0; i < want.n_items; i++) {
        const sr_weight *a = &want.items[i], *b = &got.items[i];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->ndim, b->ndim);
        for (int d = 0; d < a->ndim; d++)
            assert_int_equal(a->shape[d], b->shape[d]);
        const int64_t n = sr_weight_numel(a);
        if (!fp16) {
            /* A view, 64-byte aligned, into the mapping: no copy. */
            assert_null(b->owned);
            assert_true((const uint8_t *)b->data >= bf.data &&
                        (const uint8_t *)(b->data + n) <= bf.data + bf.size);
            assert_int_equal((uintptr_t)b->data % 64, 0);
            assert_memory_equal(a->data, b->data, (size_t)n * sizeof(float));
        } else {
            assert_non_null(b->owned);
            for (int64_t k = 0; k < n; k++) {
                /* float16 keeps 11 significant bits: half a unit in the last
                 * place is 2^-11 relative; subnormals below 2^-14 step by 2^-24. */
                float tol = fabsf(a->data[k]) * 0x1p-11f + 0x1p-25f;
                if (!(fabsf(a->data[k] - b->data[k]) <= tol))
                    fail_msg("%s[%lld]: %g became %g", a->name, (long long)k, a->data[k], b->data[k]);
            }
        }
    }
    sr_weights_free(&want);
    sr_weights_free(&got);
    sr_file_unmap(&pf);
    sr_file_unmap(&bf);
}

static void test_round_trip_same_weights(void **state)
{
    (void)state;
    check_same_weights("srpgan_x2.pth", 0);
    check_same_weights("srpgan_x4.pth", 0);
    check_same_weights("srpgan_x2.pth", 1);
    check_same_weights("srpgan_x4.pth", 1);
}

/* The network's float output on the leaves photo. */
static float *upscale(const char *model_path, sr_backend backend, int64_t *n)
{
    sr_model *m = load(model_path);
    char photo[512];
    fixture(photo, sizeof photo, "leaves_37x29.png");
    sr_image in = {0}, out = {0};
    assert_int_equal(sr_image_read(photo, 0, &in, NULL), SR_OK);
    const int s = sr_model_scale(m);
    assert_int_equal(sr_image_alloc(&out, in.width * s, in.height * s, 3, SR_PIXEL_F32, NULL), SR_OK);
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = backend;
    opt.n_threads = 1;
    sr_session *session;
    assert_int_equal(sr_session_new(m, &opt, &session, NULL), SR_OK);
    if (sr_session_run(session, &in, &out) != SR_OK)
        fail_msg("%s", sr_session_last_error(session));
    sr_session_free(session);
    sr_model_free(m);
    sr_image_free(&in);
    *n = out.width * out.height * 3;
    return out.data; /* packed, so it can be freed with free() */
}

static void test_round_trip_same_output(void **state)
{
    (void)state;
    static const char *const models[] = {"srpgan_x2", "srpgan_x4"};
    for (int m = 0; m < 2; m++) {
        char pth[512], name[64], b32[512], b16[512];
        snprintf(name, sizeof name, "%s.pth", models[m]);
        fixture(pth, sizeof pth, name);
        convert(name, "out32.bin", 0, b32, sizeof b32);
        convert(name, "out16.bin", 1, b16, sizeof b16);
        for (int b = 0; b < (m == 0 ? 2 : 1); b++) { /* the slow reference: x2 only */
            const sr_backend backend = b ? SR_BACKEND_REFERENCE : SR_BACKEND_CPU;
            int64_t n, n32, n16;
            float *want = upscale(pth, backend, &n);
            float *got32 = upscale(b32, backend, &n32);
            float *got16 = upscale(b16, backend, &n16);
            assert_int_equal(n, n32);
            assert_int_equal(n, n16);
            /* float32: the same weights, so exactly the same output. */
            assert_memory_equal(want, got32, (size_t)n * sizeof(float));
            float d = test_max_abs_diff(want, got16, n);
            if (!(d <= SR_TOL_FP16_WEIGHTS_ABS))
                fail_msg("%s fp16 on %s: max |diff| %g", models[m], sr_backend_name(backend), d);
            free(want);
            free(got32);
            free(got16);
        }
    }
}

/* A float16 model stores each finite float16 exactly, and rounds other
 * values to the nearest one, ties to even. */
static float half_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e ? ldexpf((float)(m | 0x400), e - 25) : ldexpf((float)m, -24);
    return h & 0x8000 ? -v : v;
}

static void test_fp16_rounding(void **state)
{
    (void)state;
    /* All finite float16 values, then midpoints between neighbours. */
    float *vals = malloc(2 * 65536 * sizeof *vals);
    float *expect_vals = malloc(2 * 65536 * sizeof *expect_vals);
    int64_t n = 0;
    for (uint32_t h = 0; h < 65536; h++)
        if (((h >> 10) & 0x1f) != 0x1f) {
            vals[n] = expect_vals[n] = half_value((uint16_t)h);
            n++;
        }
    for (uint32_t h = 0; h < 0x7bff; h++) { /* positive neighbours h, h+1 */
        float lo = half_value((uint16_t)h), hi = half_value((uint16_t)(h + 1));
        vals[n] = (lo + hi) / 2; /* exact: one more bit than float16 */
        expect_vals[n] = (h & 1) ? hi : lo;
        n++;
    }
    sr_weights w = {0};
    int64_t shape[1] = {n};
    assert_int_equal(sr_weights_add(&w, "values", 1, shape, vals, vals, NULL), SR_OK);
    sr_modelbin_arch arch = {"srpgan", {2, 0, 64}};
    char path[512];
    tmp_path(path, sizeof path, "round.bin");
    sr_error err = {0};
    if (sr_modelbin_save(path, &w, &arch, true, NULL, &err) != SR_OK)
        fail_msg("%s", err.message);
    sr_mapped_file f;
    assert_int_equal(sr_file_map(path, &f, &err), SR_OK);
    sr_weights got = {0};
    sr_modelbin_info info;
    if (sr_modelbin_load(&f, true, &got, &info, &err) != SR_OK)
        fail_msg("%s", err.message);
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got.items[0].data[i], &expect_vals[i], 4) != 0)
            fail_msg("value %.9g became %.9g, want %.9g", vals[i], got.items[0].data[i], expect_vals[i]);
    sr_weights_free(&got);
    sr_file_unmap(&f);

    /* 65520 rounds to infinity in float16: refused, and no file is left. */
    w.items[0].owned[5] = 65520.0f;
    unlink(path);
    assert_int_equal(sr_modelbin_save(path, &w, &arch, true, NULL, &err), SR_ERR_LIMIT);
    assert_non_null(strstr(err.message, "tensor 'values': value 65520 does not fit float16"));
    assert_int_equal(access(path, F_OK), -1);
    w.items[0].owned[5] = 65519.0f; /* rounds down to 65504 */
    assert_int_equal(sr_modelbin_save(path, &w, &arch, true, NULL, &err), SR_OK);
    sr_weights_free(&w);
    free(expect_vals);
}

static void test_info_and_save_errors(void **state)
{
    (void)state;
    char pth[512], b32[512], b16[512];
    fixture(pth, sizeof pth, "srpgan_x4.pth");
    convert("srpgan_x4.pth", "info32.bin", 0, b32, sizeof b32);
    convert("srpgan_x4.pth", "info16.bin", 1, b16, sizeof b16);

    sr_model *m = load(pth);
    sr_model_info a = SR_MODEL_INFO_INIT;
    sr_model_get_info(m, &a);
    assert_string_equal(a.format, "pth");
    assert_string_equal(a.dtype, "float32");
    assert_int_equal(a.has_checksum, 0);
    image im = read_image(pth);
    assert_int_equal(a.file_size, im.size);
    free(im.data);

    /* Saving where no file can be made fails naming the path. */
    sr_error err = {0};
    assert_int_equal(sr_model_save(m, "/nonexistent/dir/x.bin", 0, &err), SR_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/dir/x.bin: "));
    assert_int_equal(sr_model_save(m, "", 0, &err), SR_ERR_INVALID_ARGUMENT);
    sr_model_free(m);

    const char *paths[] = {b32, b16};
    for (int k = 0; k < 2; k++) {
        m = load(paths[k]);
        sr_model_info b = SR_MODEL_INFO_INIT;
        sr_model_get_info(m, &b);
        im = read_image(paths[k]);
        assert_string_equal(b.format, "model.bin");
        assert_string_equal(b.dtype, k ? "float16" : "float32");
        assert_string_equal(b.architecture, "srpgan");
        assert_int_equal(b.scale, a.scale);
        assert_int_equal(b.n_blocks, a.n_blocks);
        assert_int_equal(b.n_params, a.n_params);
        assert_int_equal(b.n_input_pixel_flops, a.n_input_pixel_flops);
        assert_int_equal(b.file_size, im.size);
        assert_int_equal(b.has_checksum, 1);
        const uint64_t start = get64(im.data + 24);
        assert_int_equal(b.header_crc32, (uint32_t)crc32(0, im.data + 24, (uInt)(start - 24)));
        assert_int_equal(b.data_crc32, (uint32_t)crc32(0, im.data + start, (uInt)(im.size - start)));
        free(im.data);
        sr_model_free(m);
    }
}

/* srpgan_x2.pth with one more tensor, named `name`, viewing one element of
 * storage 0: its state dict gains an entry just before the _metadata. */
static void write_pth_with_extra_key(const char *path, const char *name)
{
    char src[512];
    fixture(src, sizeof src, "srpgan_x2.pth");
    image in = read_image(src);
    sr_zip *zip = NULL;
    assert_int_equal(sr_zip_open(&zip, in.data, in.size, NULL), SR_OK);
    zip_writer z = {0};
    for (int64_t i = 0; i < sr_zip_count(zip); i++) {
        const sr_zip_entry *e = sr_zip_entry_at(zip, i);
        const uint8_t *bytes;
        void *owned;
        assert_int_equal(sr_zip_read(zip, e, e->size, 1, &bytes, &owned, NULL), SR_OK);
        assert_null(owned); /* torch stores entries */
        if (!strstr(e->name, "/data.pkl")) {
            zip_add(&z, e->name, bytes, (size_t)e->size);
            continue;
        }
        /* ... u } BINPUT n X '_metadata': the extra entry goes before the u. */
        static const char meta[] = "X\x09\x00\x00\x00_metadata";
        const uint8_t *at = NULL;
        for (size_t k = 4; !at && k + sizeof meta - 1 <= e->size; k++)
            if (memcmp(bytes + k, meta, sizeof meta - 1) == 0)
                at = bytes + k;
        assert_non_null(at);
        assert_memory_equal(at - 4, "u}q", 3);
        const size_t cut = (size_t)(at - 4 - bytes);
        buf pkl = {0};
        put(&pkl, bytes, cut);
        str(&pkl, name);
        global(&pkl, "torch._utils", "_rebuild_tensor_v2");
        lit(&pkl, "((");
        str(&pkl, "storage");
        global(&pkl, "torch", "FloatStorage");
        str(&pkl, "0");
        str(&pkl, "cpu");
        char data0[256];
        snprintf(data0, sizeof data0, "%.*sdata/0", (int)(strchr(e->name, '/') - e->name + 1), e->name);
        integer(&pkl, (int64_t)sr_zip_find(zip, data0)->size / 4);
        lit(&pkl, "tQK\x00(K\x01t(K\x01t\x89h\x00)RtR"); /* 1 element at offset 0 */
        put(&pkl, bytes + cut, (size_t)e->size - cut);
        zip_add(&z, e->name, pkl.data, pkl.len);
        free(pkl.data);
    }
    zip_finish(&z);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(z.out.data, 1, z.out.len, f), z.out.len);
    fclose(f);
    free(z.out.data);
    sr_zip_close(zip);
    free(in.data);
}

/* A checkpoint's tensor the network does not use is only noticed, and
 * convert leaves it out: model.bin could not hold its name (long, with
 * spaces), and the converted model runs the same. */
static void test_convert_keeps_only_used_tensors(void **state)
{
    (void)state;
    static const char extra[] =
        "discriminator.features.0.a long name with spaces that model.bin cannot hold.weight";
    char pth[512], bin[512], orig[512];
    tmp_path(pth, sizeof pth, "extra_key.pth");
    tmp_path(bin, sizeof bin, "extra_key.bin");
    write_pth_with_extra_key(pth, extra);

    sr_model *m = load(pth);
    char notice[256];
    snprintf(notice, sizeof notice, "ignoring unexpected key '%s'", extra);
    assert_non_null(sr_model_notices(m));
    assert_non_null(strstr(sr_model_notices(m), notice));
    sr_error err = {0};
    if (sr_model_save(m, bin, 0, &err) != SR_OK)
        fail_msg("%s", err.message);
    sr_model_free(m);

    /* The .bin holds the fixture's tensors alone, and computes the same. */
    fixture(orig, sizeof orig, "srpgan_x2.pth");
    char plain[512];
    convert("srpgan_x2.pth", "plain_x2.bin", 0, plain, sizeof plain);
    image a = read_image(bin), b = read_image(plain);
    assert_int_equal(a.size, b.size);
    assert_memory_equal(a.data, b.data, (size_t)a.size);
    free(a.data);
    free(b.data);
    int64_t n, n_bin;
    float *want = upscale(pth, SR_BACKEND_CPU, &n);
    float *got = upscale(bin, SR_BACKEND_CPU, &n_bin);
    assert_int_equal(n, n_bin);
    assert_memory_equal(want, got, (size_t)n * sizeof(float));
    free(want);
    free(got);
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

    put32(im.data + 8, 2);
    expect(&im, SR_ERR_UNSUPPORTED, "model.bin version 2 is newer than this srrun reads (1)");
    put32(im.data + 8, 0);
    expect(&im, SR_ERR_FORMAT, "bad model.bin version 0");
    put32(im.data + 8, 1);

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
    im.data[70] ^= 1; /* a hyper-parameter */
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

static void test_hyper_parameters(void **state)
{
    (void)state;
    image im = good_x2();
    static const struct {
        int slot;
        uint32_t value;
        const char *message;
    } cases[] = {
        {0, 3, "srpgan scale 3 out of range (2, 4 or 8)"},
        {0, 16, "srpgan scale 16 out of range"},
        {0, 0, "srpgan scale 0 out of range"},
        {1, 1025, "srpgan residual blocks 1025 out of range (0 to 1024)"},
        {2, 0, "srpgan width 0 out of range (1 to 4096)"},
        {2, UINT32_MAX, "srpgan width 4294967295 out of range"},
        {5, 1, "srpgan hyper-parameter 5 is 1, must be 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *slot = im.data + 64 + 4 * cases[i].slot;
        const uint32_t saved = get32(slot);
        put32(slot, cases[i].value);
        fix_crcs(&im);
        expect(&im, SR_ERR_FORMAT, cases[i].message);
        put32(slot, saved);
    }
    memcpy(im.data + 48, "esrgan\0", 7);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "unknown architecture 'esrgan'");
    memset(im.data + 48, 0, 16);
    fix_crcs(&im);
    expect(&im, SR_ERR_FORMAT, "bad architecture name");
    free(im.data);
}

/* Through sr_model_load: the message names the file, and hyper-parameters
 * that are in range but disagree with the weights are refused. */
static void test_model_load_checks(void **state)
{
    (void)state;
    image im = good_x2();
    put32(im.data + 64, 4); /* the weights have one upsample block: x2 */
    fix_crcs(&im);
    char path[512];
    tmp_path(path, sizeof path, "lying.bin");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(im.data, 1, im.size, f), im.size);
    fclose(f);
    sr_error err = {0};
    sr_model *m = NULL;
    assert_int_equal(sr_model_load(path, NULL, &m, &err), SR_ERR_MODEL);
    assert_null(m);
    char want[600];
    snprintf(want, sizeof want, "%s: header says scale 4, the weights have 2", path);
    assert_string_equal(err.message, want);

    put32(im.data + 64, 2);
    put32(im.data + 72, 32); /* width */
    fix_crcs(&im);
    f = fopen(path, "wb");
    assert_int_equal(fwrite(im.data, 1, im.size, f), im.size);
    fclose(f);
    assert_int_equal(sr_model_load(path, NULL, &m, &err), SR_ERR_MODEL);
    assert_non_null(strstr(err.message, "header says width 32, the weights have 64"));

    /* A damaged file through the API, and an empty one. */
    put32(im.data + 72, 64);
    fix_crcs(&im);
    im.data[im.size - 1] ^= 0xff;
    f = fopen(path, "wb");
    assert_int_equal(fwrite(im.data, 1, im.size, f), im.size);
    fclose(f);
    assert_int_equal(sr_model_load(path, NULL, &m, &err), SR_ERR_FORMAT);
    snprintf(want, sizeof want, "%s: data checksum mismatch", path);
    assert_memory_equal(err.message, want, strlen(want));
    free(im.data);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/srrun-modelbin-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_matches_zlib),
        cmocka_unit_test(test_round_trip_same_weights),
        cmocka_unit_test(test_round_trip_same_output),
        cmocka_unit_test(test_fp16_rounding),
        cmocka_unit_test(test_info_and_save_errors),
        cmocka_unit_test(test_convert_keeps_only_used_tensors),
        cmocka_unit_test(test_bad_magic_version_byte_order),
        cmocka_unit_test(test_crc_mismatch),
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_table_entries),
        cmocka_unit_test(test_hyper_parameters),
        cmocka_unit_test(test_model_load_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
