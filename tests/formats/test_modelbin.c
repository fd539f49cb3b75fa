/* model.bin round trips: .pth -> .bin gives the same weights bit for bit
 * (float32 views 64-byte aligned into the mapping, the architecture and its
 * named hyper-parameters) and the same network output; float16 within a
 * stated tolerance, with exact float16 rounding; what sr_model_get_info
 * says; saving's errors; convert keeps only the tensors the network uses.
 * The file's layout and its corruptions: test_modelbin_layout.c. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "../pickle_bytes.h"
#include "../testutil.h"
#include "../tolerance.h"
#include "../zip_bytes.h"
#include "formats/modelbin.h"
#include "formats/pth.h"
#include "formats/zip.h"
#include "modelbin_files.h"
#include "srrun.h"

/* ---- Round trips --------------------------------------------------------- */

static sr_weights pth_weights(const char *name, sr_mapped_file *file)
{
    char path[512];
    fixture(path, sizeof path, name);
    sr_error err = {0};
    assert_int_equal(sr_file_map(path, 0, file, &err), SR_OK);
    sr_weights w = {0};
    if (sr_pth_load(file, 0, &w, &err) != SR_OK)
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
    assert_int_equal(sr_file_map(bin, 0, &bf, &err), SR_OK);
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
    assert_int_equal(sr_file_map(path, 0, &f, &err), SR_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_same_weights),
        cmocka_unit_test(test_round_trip_same_output),
        cmocka_unit_test(test_fp16_rounding),
        cmocka_unit_test(test_info_and_save_errors),
        cmocka_unit_test(test_convert_keeps_only_used_tensors),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
