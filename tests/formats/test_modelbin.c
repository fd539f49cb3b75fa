/* model.bin: the fast CRC-32 against zlib's; .pth -> .bin round trips
 * (the same weights bit for bit, float32 views 64-byte aligned into the
 * mapping, the architecture and its named hyper-parameters, the same
 * network output; float16 within a stated tolerance, with exact float16
 * rounding); what sr_model_get_info says; version 1 files (unnamed
 * hyper-parameters) still loading; and every corruption of docs/formats.md
 * section 6 case 28 and section 1.8, each with its status and message,
 * read from memory that ends at an unmapped page so that any read past the
 * end of the file crashes the test. */
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
    assert_int_equal(info.version, 2);
    /* The hyper-parameters the builder derived, by name, in its order. */
    static const char *const names[] = {"scale", "blocks", "width"};
    const bool x2 = strstr(pth_name, "x2") != NULL;
    const int64_t values[] = {x2 ? 2 : 4, x2 ? 1 : 2, 64};
    assert_int_equal(info.arch.hparams.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(info.arch.hparams.items[i].name, names[i]);
        assert_int_equal(info.arch.hparams.items[i].value, values[i]);
    }
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
    sr_hparams hparams = {0};
    sr_hparams_add(&hparams, "scale", 2);
    char path[512];
    tmp_path(path, sizeof path, "round.bin");
    sr_error err = {0};
    if (sr_modelbin_save(path, &w, "srpgan", &hparams, true, NULL, &err) != SR_OK)
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
    assert_int_equal(sr_modelbin_save(path, &w, "srpgan", &hparams, true, NULL, &err), SR_ERR_LIMIT);
    assert_non_null(strstr(err.message, "tensor 'values': value 65520 does not fit float16"));
    assert_int_equal(access(path, F_OK), -1);
    w.items[0].owned[5] = 65519.0f; /* rounds down to 65504 */
    assert_int_equal(sr_modelbin_save(path, &w, "srpgan", &hparams, true, NULL, &err), SR_OK);
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
        assert_int_equal(sr_file_map(path, &f, &err), SR_OK);
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
        cmocka_unit_test(test_hyper_parameter_table),
        cmocka_unit_test(test_model_load_checks),
        cmocka_unit_test(test_unstorable_names),
        cmocka_unit_test(test_version_1_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
