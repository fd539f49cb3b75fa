/* sr_pth_load on the archive: the layouts of docs/formats.md section 6
 * (cases 1, 2, 10, 11), container sniffing, what a file costs (storages
 * never read, inflated ones budgeted, many of them, the tensor count limit,
 * rollback), and the real torch.save fixtures. */
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
#include "../zip_bytes.h"
#include "formats/pth.h"
#include "formats/pth_internal.h"
#include "pth_files.h"

/* ---- Archive layout and sniffing (cases 1, 2, 10, 11) -------------------- */

static void expect_zip(zip_writer *z, sr_status status, const char *needle)
{
    zip_finish(z);
    sr_weights w = {0};
    sr_error err = {{0}};
    sr_status s = load_bytes(z->out.data, z->out.len, &w, &err);
    if (s != status || !strstr(err.message, needle))
        fail_msg("expected status %d with '%s', got %d: '%s'", status, needle, s, err.message);
    free(z->out.data);
    memset(z, 0, sizeof *z);
}

static void test_archive_layout(void **state)
{
    (void)state;
    buf pkl = {0};
    lit(&pkl, "\x80\x02}.");
    zip_writer z = {0};

    zip_add(&z, "archive/data.pkl", pkl.data, pkl.len);
    zip_add(&z, "archive/constants.pkl", pkl.data, pkl.len);
    expect_zip(&z, SR_ERR_UNSUPPORTED, "TorchScript archive; save model.state_dict() instead");
    zip_add(&z, "model/data.pkl", pkl.data, pkl.len);
    zip_add(&z, "model/code/__torch__.py", "x", 1);
    expect_zip(&z, SR_ERR_UNSUPPORTED, "TorchScript archive");
    zip_add(&z, "archive/version", "3\n", 2);
    expect_zip(&z, SR_ERR_FORMAT, "missing data.pkl");
    zip_add(&z, "archive/data.pkl", pkl.data, pkl.len);
    zip_add(&z, "other/data/0", "abcd", 4);
    expect_zip(&z, SR_ERR_FORMAT, "entries outside archive folder");
    zip_add(&z, "data.pkl", pkl.data, pkl.len);
    expect_zip(&z, SR_ERR_FORMAT, "entries outside archive folder");
    zip_add(&z, "archive/data.pkl", pkl.data, pkl.len);
    zip_add(&z, "archive/byteorder", "big", 3);
    expect_zip(&z, SR_ERR_UNSUPPORTED, "big-endian");

    /* The prefix follows the file name; byteorder 'little' is fine. */
    zip_add(&z, "srpgan_x4/data.pkl", pkl.data, pkl.len);
    zip_add(&z, "srpgan_x4/byteorder", "little", 6);
    zip_finish(&z);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_OK);
    assert_int_equal(w.n_items, 0);
    free(z.out.data);
    memset(&z, 0, sizeof z);

    /* data.pkl's CRC is checked. */
    size_t at = zip_add(&z, "archive/data.pkl", pkl.data, pkl.len);
    zip_finish(&z);
    z.out.data[at + 2] = '{';
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_ERR_FORMAT);
    assert_non_null(strstr(err.message, "crc"));
    free(z.out.data);
    free(pkl.data);
}

static void expect_sniff(const void *data, size_t size, sr_status status, const char *want)
{
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load_bytes(data, size, &w, &err), status);
    assert_string_equal(err.message, want);
}

static void test_sniffing(void **state)
{
    (void)state;
    sr_mapped_file empty = {NULL, 0};
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(sr_pth_load(&empty, 0, &w, &err), SR_ERR_FORMAT);
    assert_string_equal(err.message, "empty file");

    uint8_t noise[4096];
    test_rng rng = {7};
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)test_rng_next(&rng);
    noise[0] = 'Q';
    expect_sniff(noise, sizeof noise, SR_ERR_FORMAT, "not a PyTorch checkpoint (unrecognised header)");
    expect_sniff("PK", 2, SR_ERR_FORMAT, "not a PyTorch checkpoint (unrecognised header)");

    /* Legacy streams have their own tests (test_pth_legacy.c). */
    expect_sniff("\x80\x02}q\x00.", 6, SR_ERR_FORMAT,
                 "a bare pickle stream, not a torch.save checkpoint");
    expect_sniff("PYTORCH1\x01\x02", 10, SR_ERR_UNSUPPORTED,
                 "unsupported preview format (PYTORCH1 container)");
    uint8_t tar[512];
    memcpy(tar, noise, sizeof tar);
    memcpy(tar + 257, "ustar", 5);
    expect_sniff(tar, sizeof tar, SR_ERR_UNSUPPORTED, "tar checkpoint of PyTorch 0.1 is too old to load");
    expect_sniff("\x1f\x8b\x08\x00\x00", 5, SR_ERR_FORMAT, "gzip file, not a PyTorch checkpoint");
    expect_sniff("7z\xbc\xaf\x27\x1c\x00\x04", 8, SR_ERR_FORMAT, "7z archive, not a PyTorch checkpoint");
}

/* ---- What a file costs (issue 14) ---------------------------------------- */

/* A training checkpoint: the weights under "state_dict", Adam's moments
 * under "optimizer". A storage no weight uses is never read: here its
 * record is a deflate stream that cannot inflate, once a bomb. */
static void test_unused_storage_never_read(void **state)
{
    (void)state;
    float s[4] = {1, 2, 3, 4};
    tspec w = {.name = "w", .type = "FloatStorage", .key = "0", .numel = 4,
               .ndim = 1, .size = {4}, .stride = {1}};
    tspec m = w;
    m.name = "exp_avg";
    m.key = "1";
    for (int used = 0; used <= 1; used++) {
        buf pkl = {0};
        lit(&pkl, "\x80\x02");
        global(&pkl, "collections", "OrderedDict"); /* memo 0, as emit_tensor wants */
        lit(&pkl, "q\x00)R(");
        str(&pkl, "state_dict");
        lit(&pkl, "}(");
        str(&pkl, w.name);
        emit_tensor(&pkl, used ? &m : &w);
        lit(&pkl, "u");
        str(&pkl, "optimizer");
        lit(&pkl, "}(");
        str(&pkl, m.name);
        emit_tensor(&pkl, &m);
        lit(&pkl, "uu.");
        zip_writer z = {0};
        zip_add(&z, "archive/data.pkl", pkl.data, pkl.len);
        zip_add(&z, "archive/data/0", s, sizeof s);
        static const uint8_t not_deflate[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        zip_add_raw(&z, "archive/data/1", ZIP_METHOD_DEFLATE, not_deflate, sizeof not_deflate,
                    sizeof s, 0);
        zip_finish(&z);
        sr_weights ws = {0};
        sr_error err = {{0}};
        sr_status st = load_bytes(z.out.data, z.out.len, &ws, &err);
        if (used) {
            /* The same record, once a weight needs it, is read and refused. */
            assert_int_equal(st, SR_ERR_FORMAT);
        } else {
            if (st != SR_OK)
                fail_msg("%s", err.message);
            assert_int_equal(ws.n_items, 1);
            assert_memory_equal(sr_weights_find(&ws, "w")->data, s, sizeof s);
        }
        sr_weights_free(&ws);
        free(pkl.data);
        free(z.out.data);
    }
}

/* A deflated record is a copy when inflated, charged to the copy budget:
 * a 1-element tensor naming a 64 MB storage of zeros (64 KB deflated)
 * once made a small file cost its full size. */
static void test_inflated_storage_is_budgeted(void **state)
{
    (void)state;
    float s[4] = {1, 2, 3, 4};
    const int64_t big_numel = INT64_C(16) << 20;
    tspec w = {.name = "w", .type = "FloatStorage", .key = "0", .numel = 4,
               .ndim = 1, .size = {4}, .stride = {1}};
    tspec x = {.name = "extra", .type = "FloatStorage", .key = "1", .numel = big_numel,
               .ndim = 1, .size = {1}, .stride = {1}};
    float *zeros = calloc((size_t)big_numel, sizeof *zeros);
    assert_non_null(zeros);
    for (int big = 0; big <= 1; big++) {
        x.numel = big ? big_numel : 4;
        buf pkl = {0};
        lit(&pkl, "\x80\x02");
        global(&pkl, "collections", "OrderedDict"); /* memo 0, as emit_tensor wants */
        lit(&pkl, "q\x00)R(");
        str(&pkl, w.name);
        emit_tensor(&pkl, &w);
        str(&pkl, x.name);
        emit_tensor(&pkl, &x);
        lit(&pkl, "u.");
        zip_writer z = {0};
        zip_add(&z, "archive/data.pkl", pkl.data, pkl.len);
        zip_add(&z, "archive/data/0", s, sizeof s);
        zip_add_deflated(&z, "archive/data/1", zeros, (size_t)x.numel * sizeof *zeros);
        zip_finish(&z);
        sr_weights ws = {0};
        sr_error err = {{0}};
        sr_status st = load_bytes(z.out.data, z.out.len, &ws, &err);
        if (big) {
            assert_true(z.out.len < (1 << 20));
            assert_int_equal(st, SR_ERR_LIMIT);
            assert_non_null(strstr(err.message, "storage '1'"));
        } else {
            if (st != SR_OK)
                fail_msg("%s", err.message);
            assert_int_equal(ws.n_items, 2);
        }
        sr_weights_free(&ws);
        free(pkl.data);
        free(z.out.data);
    }
    free(zeros);
}

/* Storages are found by a hash of their keys: 2^18 of them, each looked up
 * twice, once took minutes (a linear search each); the alarm stops a
 * regression long before the suite's timeout. */
static void test_many_storages(void **state)
{
    (void)state;
    const int n = 1 << 18;
    sr_pth_loader L = {0};
    sr_error err = {{0}};
    assert_int_equal(sr_pickle_new(&L.pickle, NULL, &err), SR_OK);
    const sr_pth_dtype *f32 = sr_pth_dtype_by_class("torch", "FloatStorage");
    alarm(60);
    for (int i = 0; i < n; i++) {
        char *key = sr_pickle_alloc(L.pickle, 12);
        snprintf(key, 12, "%d", i);
        sr_pth_storage *s = NULL;
        assert_null(sr_pth_find_storage(&L, key));
        assert_int_equal(sr_pth_new_storage(&L, key, f32, i, &s, &err), SR_OK);
    }
    for (int i = n - 1; i >= 0; i--) {
        char key[12];
        snprintf(key, sizeof key, "%d", i);
        const sr_pth_storage *s = sr_pth_find_storage(&L, key);
        assert_non_null(s);
        assert_int_equal(s->numel, i);
    }
    alarm(0);
    assert_null(sr_pth_find_storage(&L, "262144"));
    free(L.by_key);
    sr_pickle_free(L.pickle);
}

/* A state dict naming the one tensor under n names (1 value a name). */
static void shared_tensor_dict(buf *b, int n)
{
    tspec t = {.name = "t0", .type = "FloatStorage", .key = "0", .numel = 1,
               .ndim = 1, .size = {1}, .stride = {1}};
    lit(b, "\x80\x02");
    global(b, "collections", "OrderedDict"); /* memo 0, as emit_tensor wants */
    lit(b, "q\x00)R(");
    str(b, "t0");
    emit_tensor(b, &t);
    lit(b, "q\x01");
    for (int i = 1; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        if (i % 1000 == 0)
            lit(b, "u(");
        str(b, name);
        lit(b, "h\x01");
    }
    lit(b, "u.");
}

/* More tensors than any network needs are refused before their names
 * cost much; as many as the limit load, in linear time. */
static void test_tensor_count_limit(void **state)
{
    (void)state;
    float one = 1.0f;
    record r = {"0", &one, sizeof one};
    for (int extra = 0; extra <= 1; extra++) {
        buf pkl = {0};
        zip_writer z;
        shared_tensor_dict(&pkl, SR_WEIGHTS_MAX_COUNT + extra);
        make_pth(&z, &pkl, &r, 1);
        sr_weights w = {0};
        sr_error err = {{0}};
        alarm(60);
        sr_status st = load_bytes(z.out.data, z.out.len, &w, &err);
        alarm(0);
        if (extra) {
            assert_int_equal(st, SR_ERR_LIMIT);
            assert_non_null(strstr(err.message, "more than 65536 tensors (limit)"));
            assert_int_equal(w.n_items, 0);
        } else {
            if (st != SR_OK)
                fail_msg("%s", err.message);
            assert_int_equal(w.n_items, SR_WEIGHTS_MAX_COUNT);
            assert_non_null(sr_weights_find(&w, "t65535"));
        }
        sr_weights_free(&w);
        free(pkl.data);
        free(z.out.data);
    }
}

/* A failure leaves the caller's collection as it was. */
static void test_rollback(void **state)
{
    (void)state;
    float s[8];
    fill_random(s, 8, 8);
    record r = {"0", s, sizeof s};
    tspec t[] = {
        {.name = "ok", .type = "FloatStorage", .key = "0", .numel = 8, .ndim = 1,
         .size = {2}, .stride = {1}},
        {.name = "copy", .type = "FloatStorage", .key = "0", .numel = 8, .ndim = 1,
         .size = {2}, .stride = {2}},
        {.name = "bad", .type = "FloatStorage", .key = "0", .numel = 8, .ndim = 1,
         .size = {9}, .stride = {1}},
    };
    buf pkl = {0};
    zip_writer z;
    state_dict_pickle(&pkl, t, 3);
    make_pth(&z, &pkl, &r, 1);
    sr_weights w = {0};
    sr_error err = {{0}};
    const int64_t shape[1] = {2};
    assert_int_equal(sr_weights_add(&w, "mine", 1, shape, s, NULL, &err), SR_OK);
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_ERR_FORMAT);
    assert_non_null(strstr(err.message, "tensor 'bad' needs 36 bytes"));
    assert_int_equal(w.n_items, 1);
    assert_string_equal(w.items[0].name, "mine");
    sr_weights_free(&w);
    free(pkl.data);
    free(z.out.data);
}

/* ---- Real torch.save files (PyTorch 1.13) -------------------------------- */

static void check_fixture(const char *file, int64_t n_tensors, float first0, float first1)
{
    char path[512];
#ifdef SR_FIXTURES_DIR
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, file);
#else /* built by hand: the fixtures sit beside this file's folder */
    const char *slash = strrchr(__FILE__, '/');
    snprintf(path, sizeof path, "%.*s/../fixtures/%s",
             slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".", file);
#endif
    sr_mapped_file f;
    sr_error err = {{0}};
    if (sr_file_map(path, 0, &f, &err) != SR_OK)
        fail_msg("%s: %s", path, err.message);
    sr_weights w = {0};
    if (sr_pth_load(&f, 0, &w, &err) != SR_OK)
        fail_msg("%s: %s", path, err.message);
    assert_int_equal(w.n_items, n_tensors);
    const sr_weight *c = sr_weights_find(&w, "block1.0.weight");
    assert_non_null(c);
    assert_string_equal(w.items[0].name, "block1.0.weight");
    assert_int_equal(c->ndim, 4);
    const int64_t shape[4] = {64, 3, 9, 9};
    assert_memory_equal(c->shape, shape, sizeof shape);
    assert_true(c->data[0] == first0 && c->data[1] == first1);
    for (int64_t i = 0; i < w.n_items; i++) /* all packed float32: views */
        assert_null(w.items[i].owned);
    assert_non_null(sr_weights_find(&w, "res_blocks.0.conv1.weight"));
    assert_string_equal(w.items[w.n_items - 1].name, "block4.bias");
    sr_weights_free(&w);
    sr_file_unmap(&f);
}

static void test_real_files(void **state)
{
    (void)state;
    /* torch.load(path)['block1.0.weight'].flatten()[:2] */
    check_fixture("srpgan_x2.pth", 16, 0.014715383760631084f, -0.0152660571038723f);
    check_fixture("srpgan_x4.pth", 24, 0.007651638239622116f, 0.007581558544188738f);
}
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archive_layout),
        cmocka_unit_test(test_sniffing),
        cmocka_unit_test(test_unused_storage_never_read),
        cmocka_unit_test(test_inflated_storage_is_budgeted),
        cmocka_unit_test(test_many_storages),
        cmocka_unit_test(test_tensor_count_limit),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_real_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
