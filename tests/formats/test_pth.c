/* sr_pth_load on .pth files built here, torch style (a stored zip with
 * 64-byte aligned records, data descriptors, a hand-assembled data.pkl):
 * views versus converted copies, shared storages, dtype conversion, the
 * hostile tensor geometries and pickles of docs/formats.md section 6.
 * Archive layouts, sniffing, costs and the real torch.save fixtures:
 * test_pth_archive.c. */
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

/* Builds a file from tensor specs and records, loads it, expects `status`
 * with `needle` in the message (needle NULL: success, weights kept). */
static void expect(const tspec *t, int n, const record *r, int n_records,
                   sr_status status, const char *needle)
{
    buf pkl = {0};
    zip_writer z;
    state_dict_pickle(&pkl, t, n);
    make_pth(&z, &pkl, r, n_records);
    sr_weights w = {0};
    sr_error err = {{0}};
    sr_status s = load_bytes(z.out.data, z.out.len, &w, &err);
    if (s != status || (needle && !strstr(err.message, needle)))
        fail_msg("expected status %d with '%s', got %d: '%s'", status,
                 needle ? needle : "", s, err.message);
    if (s != SR_OK)
        assert_int_equal(w.n_items, 0);
    sr_weights_free(&w);
    free(pkl.data);
    free(z.out.data);
}

static void expect_pickle(const buf *pkl, sr_status status, const char *needle)
{
    zip_writer z;
    make_pth(&z, pkl, NULL, 0);
    sr_weights w = {0};
    sr_error err = {{0}};
    sr_status s = load_bytes(z.out.data, z.out.len, &w, &err);
    if (s != status || !strstr(err.message, needle))
        fail_msg("expected status %d with '%s', got %d: '%s'", status, needle, s, err.message);
    free(z.out.data);
}

/* ---- Loading --------------------------------------------------------------- */

static void test_f32_views(void **state)
{
    (void)state;
    float w0[12], b0[4];
    fill_random(w0, 12, 1);
    fill_random(b0, 4, 2);
    tspec t[] = {
        {.name = "conv.weight", .type = "FloatStorage", .key = "0", .numel = 12,
         .ndim = 2, .size = {4, 3}, .stride = {3, 1}},
        {.name = "conv.bias", .type = "FloatStorage", .key = "1", .numel = 4,
         .ndim = 1, .size = {4}, .stride = {1}, .parameter = true},
    };
    record r[] = {{"0", w0, sizeof w0}, {"1", b0, sizeof b0}};
    buf pkl = {0};
    zip_writer z;
    state_dict_pickle(&pkl, t, 2);
    make_pth(&z, &pkl, r, 2);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_OK);
    assert_int_equal(w.n_items, 2);
    const sr_weight *a = &w.items[0], *b = &w.items[1];
    assert_string_equal(a->name, "conv.weight");
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 4);
    assert_int_equal(a->shape[1], 3);
    assert_null(a->owned);
    assert_true((const uint8_t *)a->data > z.out.data &&
                (const uint8_t *)a->data < z.out.data + z.out.len);
    assert_memory_equal(a->data, w0, sizeof w0);
    assert_string_equal(b->name, "conv.bias");
    assert_null(b->owned);
    assert_memory_equal(b->data, b0, sizeof b0);
    sr_weights_free(&w);
    free(pkl.data);
    free(z.out.data);
}

static void test_shared_storage_and_strides(void **state)
{
    (void)state;
    float s[20];
    fill_random(s, 20, 3);
    tspec t[] = {
        {.name = "a", .type = "FloatStorage", .key = "0", .numel = 20, .offset = 2,
         .ndim = 2, .size = {2, 3}, .stride = {3, 1}},
        {.name = "b", .type = "FloatStorage", .key = "0", .numel = 20, .offset = 10,
         .ndim = 1, .size = {6}, .stride = {1}, .parameter = true},
        {.name = "t", .type = "FloatStorage", .key = "0", .numel = 20, .offset = 1,
         .ndim = 2, .size = {3, 2}, .stride = {1, 3}}, /* a transpose */
        {.name = "e", .type = "FloatStorage", .key = "0", .numel = 20, .offset = 0,
         .ndim = 2, .size = {0, 5}, .stride = {5, 1}},
    };
    record r[] = {{"0", s, sizeof s}};
    buf pkl = {0};
    zip_writer z;
    state_dict_pickle(&pkl, t, 4);
    make_pth(&z, &pkl, r, 1);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_OK);
    assert_int_equal(w.n_items, 4);
    assert_null(w.items[0].owned);
    assert_memory_equal(w.items[0].data, s + 2, 6 * sizeof(float));
    assert_null(w.items[1].owned);
    assert_memory_equal(w.items[1].data, s + 10, 6 * sizeof(float));
    assert_ptr_equal(w.items[1].data, w.items[0].data + 8);
    const sr_weight *tr = &w.items[2];
    assert_non_null(tr->owned);
    const float want[6] = {s[1], s[4], s[2], s[5], s[3], s[6]};
    assert_memory_equal(tr->data, want, sizeof want);
    assert_int_equal(sr_weight_numel(&w.items[3]), 0);
    sr_weights_free(&w);
    free(pkl.data);
    free(z.out.data);
}

static void test_conversions(void **state)
{
    (void)state;
    static const uint16_t f16[6] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x3555, 0x8000};
    static const float f16_want[6] = {1.0f, -2.0f, 5.9604644775390625e-8f, 65504.0f,
                                      0.333251953125f, -0.0f};
    static const uint16_t bf16[4] = {0x3f80, 0xc0a0, 0x3e20, 0x0001};
    static const float bf16_want[4] = {1.0f, -5.0f, 0.15625f, 9.18354961579912e-41f};
    static const double f64[3] = {1.0 / 3, -1e10, 1e-3};
    static const int64_t counter[1] = {1234};
    tspec t[] = {
        {.name = "h", .type = "HalfStorage", .key = "0", .numel = 6, .ndim = 2,
         .size = {2, 3}, .stride = {3, 1}},
        {.name = "bf", .type = "BFloat16Storage", .key = "1", .numel = 4, .ndim = 1,
         .size = {4}, .stride = {1}},
        {.name = "bn.num_batches_tracked", .type = "LongStorage", .key = "2", .numel = 1},
        {.name = "d", .type = "DoubleStorage", .key = "3", .numel = 3, .ndim = 1,
         .size = {3}, .stride = {1}},
    };
    record r[] = {{"0", f16, sizeof f16}, {"1", bf16, sizeof bf16},
                  {"2", counter, sizeof counter}, {"3", f64, sizeof f64}};
    buf pkl = {0};
    zip_writer z;
    state_dict_pickle(&pkl, t, 4);
    make_pth(&z, &pkl, r, 4);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_OK);
    assert_int_equal(w.n_items, 3); /* the int64 counter is no weight */
    assert_null(sr_weights_find(&w, "bn.num_batches_tracked"));
    const sr_weight *h = sr_weights_find(&w, "h"), *bf = sr_weights_find(&w, "bf"),
                    *d = sr_weights_find(&w, "d");
    assert_non_null(h->owned);
    assert_memory_equal(h->data, f16_want, sizeof f16_want); /* bitwise: -0 too */
    assert_non_null(bf->owned);
    assert_memory_equal(bf->data, bf16_want, sizeof bf16_want);
    assert_non_null(d->owned);
    for (int i = 0; i < 3; i++)
        assert_true(d->data[i] == (float)f64[i]);
    sr_weights_free(&w);
    free(pkl.data);
    free(z.out.data);
}

static void test_nan_inf(void **state)
{
    (void)state;
    float x[3] = {0.5f, NAN, 1.0f};
    static const uint16_t inf16[2] = {0x3c00, 0x7c00};
    static const double big[1] = {1e300};
    tspec t = {.name = "x", .type = "FloatStorage", .key = "0", .numel = 3, .ndim = 1,
               .size = {3}, .stride = {1}};
    record r = {"0", x, sizeof x};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'x' holds NaN or Inf");
    x[1] = -INFINITY;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'x' holds NaN or Inf");
    t.type = "HalfStorage";
    t.numel = 2;
    t.size[0] = 2;
    r = (record){"0", inf16, sizeof inf16};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'x' holds NaN or Inf");
    t.type = "DoubleStorage";
    t.numel = 1;
    t.size[0] = 1;
    r = (record){"0", big, sizeof big};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "beyond float32 range");
}

/* The tensors are checked together, on all threads: the message still
 * names the first in the file's order that fails. */
static void test_nan_names_the_first(void **state)
{
    (void)state;
    enum { N = 40 };
    static float x[N][2];
    tspec t[N];
    record r[N];
    static char names[N][8], keys[N][8];
    for (int i = 0; i < N; i++) {
        x[i][0] = 1.0f;
        x[i][1] = i == 17 || i == 30 ? NAN : 2.0f;
        snprintf(names[i], sizeof names[i], "w%d", i);
        snprintf(keys[i], sizeof keys[i], "%d", i);
        t[i] = (tspec){.name = names[i], .type = "FloatStorage", .key = keys[i], .numel = 2,
                       .ndim = 1, .size = {2}, .stride = {1}};
        r[i] = (record){keys[i], x[i], sizeof x[i]};
    }
    expect(t, N, r, N, SR_ERR_FORMAT, "tensor 'w17' holds NaN or Inf");
}

/* ---- Hostile geometry (cases 22-26) ------------------------------------- */

static void test_geometry(void **state)
{
    (void)state;
    float s[16];
    fill_random(s, 16, 4);
    record r = {"0", s, sizeof s};
    tspec t = {.name = "block1.0.weight", .type = "FloatStorage", .key = "0", .numel = 16,
               .ndim = 4, .size = {64, 3, 9, 9}, .stride = {243, 81, 9, 1}};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT,
           "tensor 'block1.0.weight' needs 62208 bytes at offset 0; storage '0' has 64");

    tspec base = {.name = "w", .type = "FloatStorage", .key = "0", .numel = 16,
                  .ndim = 1, .size = {4}, .stride = {1}};
    expect(&base, 1, &r, 1, SR_OK, NULL);
    t = base;
    t.offset = 13; /* last element 16: one past the end */
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' needs 16 bytes at offset 52; storage '0' has 64");
    t = base;
    t.stride[0] = -1;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' has negative stride");
    t = base;
    t.size[0] = -4;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' has negative size");
    t = base;
    t.offset = -1;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' has negative storage offset");

    t = (tspec){.name = "w", .type = "FloatStorage", .key = "0", .numel = 16, .ndim = 2,
                .size = {INT64_C(1) << 62, 4}, .stride = {4, 1}};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' size overflows");
    t = base;
    t.size[0] = 3;
    t.stride[0] = INT64_C(1) << 62;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' size overflows");
    t = base;
    t.size[0] = 1;
    t.offset = INT64_MAX;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT,
           "tensor 'w' has storage offset 9223372036854775807 beyond storage '0' of 16 elements");
    t = (tspec){.name = "w", .type = "FloatStorage", .key = "0", .numel = 16, .ndim = 3,
                .size = {INT64_C(1) << 32, INT64_C(1) << 32, 0}, .stride = {1, 1, 1}};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' size overflows");

    t = (tspec){.name = "w", .type = "FloatStorage", .key = "0", .numel = 16, .ndim = 9,
                .size = {1, 1, 1, 1, 1, 1, 1, 1, 1}, .stride = {1, 1, 1, 1, 1, 1, 1, 1, 1}};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' has 9 dimensions (limit 8)");
    t.ndim = 5;
    expect(&t, 1, &r, 1, SR_ERR_MODEL, "5 dimensions");
    t = base;
    t.n_strides = 2;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "tensor 'w' has 1 sizes but 2 strides");

    /* A stride-0 view may not multiply the file into gigabytes. */
    t = base;
    t.size[0] = INT64_C(1) << 40;
    t.stride[0] = 0;
    t.type = "HalfStorage";
    t.numel = 32;
    expect(&t, 1, &r, 1, SR_ERR_LIMIT, "converted copies would exceed");
}

/* An empty tensor reads nothing, but it too starts inside its storage (at
 * its end at most): an offset of 2^62 overflowed once it was in bytes. */
static void test_empty_tensor_offset(void **state)
{
    (void)state;
    float s[16];
    fill_random(s, 16, 4);
    record r = {"0", s, sizeof s};
    /* "v" has the storage read, as a float32 view into the file. */
    tspec t[] = {{.name = "v", .type = "FloatStorage", .key = "0", .numel = 16,
                  .ndim = 1, .size = {16}, .stride = {1}},
                 {.name = "w", .type = "FloatStorage", .key = "0", .numel = 16,
                  .ndim = 1, .size = {0}, .stride = {1}, .offset = INT64_C(1) << 62}};
    expect(t, 2, &r, 1, SR_ERR_FORMAT,
           "tensor 'w' has storage offset 4611686018427387904 beyond storage '0' of 16 elements");
    t[1].offset = 17;
    expect(t, 2, &r, 1, SR_ERR_FORMAT, "tensor 'w' has storage offset 17 beyond storage '0'");
    t[1].offset = 16;
    expect(t, 2, &r, 1, SR_OK, NULL);
}

static void test_storage_records(void **state)
{
    (void)state;
    float s[65];
    fill_random(s, 65, 5);
    tspec t = {.name = "w", .type = "FloatStorage", .key = "5", .numel = 64, .ndim = 1,
               .size = {64}, .stride = {1}};
    record r = {"5", s, 257};
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "storage '5' size mismatch: 257 bytes, expected 256");
    r.size = 256;
    t.numel = 128;
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "storage '5' size mismatch: 256 bytes, expected 512");
    t.numel = 64;
    t.key = "3";
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "missing storage record 'data/3'");

    tspec two[] = {t, t};
    two[0].key = two[1].key = "5";
    two[1].name = "v";
    two[1].type = "IntStorage";
    expect(two, 2, &r, 1, SR_ERR_FORMAT, "storage '5' is referenced as two different storages");
}

static void test_refused_dtypes(void **state)
{
    (void)state;
    float s[8];
    fill_random(s, 8, 6);
    record r = {"0", s, sizeof s};
    tspec t = {.name = "w", .type = "ComplexFloatStorage", .key = "0", .numel = 4, .ndim = 1,
               .size = {4}, .stride = {1}};
    expect(&t, 1, &r, 1, SR_ERR_UNSUPPORTED, "storage '0' holds complex64 (ComplexFloatStorage)");
    t.type = "QInt8Storage";
    t.numel = 32;
    expect(&t, 1, &r, 1, SR_ERR_UNSUPPORTED, "qint8 (QInt8Storage)");
    t.type = "UntypedStorage";
    expect(&t, 1, &r, 1, SR_ERR_UNSUPPORTED, "UntypedStorage");
    t.type = "ComplexHalfStorage";
    expect(&t, 1, &r, 1, SR_ERR_UNSAFE, "global 'torch.ComplexHalfStorage' is not allowed");
}

static void test_bad_pid(void **state)
{
    (void)state;
    float s[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    record r = {"0", s, sizeof s};
    tspec t = {.name = "w", .type = "FloatStorage", .key = "0", .numel = 4, .ndim = 1,
               .size = {4}, .stride = {1}};
    const enum pid_kind bad[] = {PID_MODULE, PID_3TUPLE, PID_INT_KEY, PID_NOT_STORAGE};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        t.pid = bad[i];
        expect(&t, 1, &r, 1, SR_ERR_FORMAT, "bad storage reference in data.pkl");
    }
    t.pid = PID_OK;
    t.key = "../0";
    expect(&t, 1, &r, 1, SR_ERR_FORMAT, "bad storage reference in data.pkl");
    t.key = "0";
    t.type = "FooStorage";
    expect(&t, 1, &r, 1, SR_ERR_UNSAFE, "global 'torch.FooStorage' is not allowed");
}

/* ---- Hostile pickles inside a valid zip (cases 12-14) ------------------- */

static void test_payloads(void **state)
{
    (void)state;
    char marker[64];
    snprintf(marker, sizeof marker, "/tmp/srrun_test_pth_marker_%ld", (long)getpid());
    char payload[160];
    int n = snprintf(payload, sizeof payload, "\x80\x02" "cposix\nsystem\nq%cX%c%c%c%ctouch %sq%c\x85q%cRq%c.",
                     0, (int)(6 + strlen(marker)), 0, 0, 0, marker, 1, 2, 3);
    buf pkl = {0};
    put(&pkl, payload, (size_t)n);
    expect_pickle(&pkl, SR_ERR_UNSAFE, "global 'posix.system' is not allowed (byte 2)");
    assert_int_not_equal(access(marker, F_OK), 0);
    free(pkl.data);

    static const char *const bad[][2] = {
        {"builtins", "eval"}, {"subprocess", "Popen"}, {"torch", "load"},
        {"numpy.core.multiarray", "_reconstruct"}, {"argparse", "Namespace"},
        {"torch._utils", "_rebuild_from_type_v2"}, {"torch.cuda", "FloatTensor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[128];
        snprintf(want, sizeof want, "global '%s.%s' is not allowed (byte 2)", bad[i][0], bad[i][1]);
        pkl = (buf){0};
        lit(&pkl, "\x80\x02");
        global(&pkl, bad[i][0], bad[i][1]);
        lit(&pkl, "\xff\xfe garbage after the global");
        expect_pickle(&pkl, SR_ERR_UNSAFE, want);
        free(pkl.data);
    }

    pkl = (buf){0};
    lit(&pkl, "\x80\x02");
    global(&pkl, "torch.nn.modules.conv", "Conv2d");
    lit(&pkl, "q\x00)\x81q\x01.");
    expect_pickle(&pkl, SR_ERR_UNSAFE, "file holds a pickled model class; save state_dict instead");
    free(pkl.data);
}

static void test_not_a_state_dict(void **state)
{
    (void)state;
    buf pkl = {0};
    lit(&pkl, "\x80\x02]q\x00.");
    expect_pickle(&pkl, SR_ERR_FORMAT, "data.pkl holds a list, not a state_dict");
    free(pkl.data);

    pkl = (buf){0};
    lit(&pkl, "\x80\x02}q\x00(");
    str(&pkl, "epoch");
    integer(&pkl, 3);
    str(&pkl, "model");
    str(&pkl, "srpgan");
    lit(&pkl, "u.");
    expect_pickle(&pkl, SR_ERR_FORMAT,
                  "no state dict in data.pkl: its top-level keys are 'epoch', 'model'; ");
    free(pkl.data);

    pkl = (buf){0};
    lit(&pkl, "\x80\x02}q\x00(K\x01");
    lit(&pkl, "}u.");
    expect_pickle(&pkl, SR_ERR_FORMAT, "no state dict in data.pkl: its top-level keys are <int>; ");
    free(pkl.data);

    /* OrderedDict{1: tensor} */
    float x[2] = {1.0f, 2.0f};
    tspec t = {.type = "FloatStorage", .key = "0", .numel = 2, .ndim = 1, .size = {2},
               .stride = {1}};
    record r = {"0", x, sizeof x};
    pkl = (buf){0};
    lit(&pkl, "\x80\x02");
    global(&pkl, "collections", "OrderedDict");
    lit(&pkl, "q\x00)Rq\x01(K\x01");
    emit_tensor(&pkl, &t);
    lit(&pkl, "u.");
    zip_writer z;
    make_pth(&z, &pkl, &r, 1);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load_bytes(z.out.data, z.out.len, &w, &err), SR_ERR_FORMAT);
    assert_string_equal(err.message, "state_dict key 0 is not a printable string");
    free(z.out.data);
    free(pkl.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_views),
        cmocka_unit_test(test_shared_storage_and_strides),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_nan_inf),
        cmocka_unit_test(test_nan_names_the_first),
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_empty_tensor_offset),
        cmocka_unit_test(test_storage_records),
        cmocka_unit_test(test_refused_dtypes),
        cmocka_unit_test(test_bad_pid),
        cmocka_unit_test(test_payloads),
        cmocka_unit_test(test_not_a_state_dict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
