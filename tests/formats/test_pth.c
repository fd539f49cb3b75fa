/* sr_pth_load on .pth files built here, torch style (a stored zip with
 * 64-byte aligned records, data descriptors, a hand-assembled data.pkl),
 * and on the real torch.save fixtures: views versus converted copies,
 * shared storages, dtype conversion, the hostile tensor geometries and
 * archive layouts of docs/formats.md section 6, and container sniffing. */
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

/* ---- Pickles and zips ---------------------------------------------------- */

enum pid_kind { PID_OK, PID_MODULE, PID_3TUPLE, PID_INT_KEY, PID_NOT_STORAGE };

typedef struct tspec {
    const char *name, *type, *key; /* type: "FloatStorage", ... */
    int64_t numel;                 /* of the storage */
    int64_t offset;
    int ndim, n_strides;           /* n_strides 0: same as ndim */
    int64_t size[10], stride[10];
    bool parameter;
    enum pid_kind pid;
} tspec;

static void emit_pid(buf *b, const tspec *t)
{
    lit(b, "(");
    str(b, t->pid == PID_MODULE ? "module" : "storage");
    if (t->pid == PID_NOT_STORAGE)
        global(b, "collections", "OrderedDict");
    else
        global(b, "torch", t->type);
    if (t->pid == PID_INT_KEY)
        integer(b, 0);
    else
        str(b, t->key);
    if (t->pid != PID_3TUPLE) {
        str(b, "cpu");
        integer(b, t->numel);
    }
    lit(b, "tQ");
}

static void emit_tensor(buf *b, const tspec *t)
{
    if (t->parameter)
        global(b, "torch._utils", "_rebuild_parameter");
    global(b, "torch._utils", "_rebuild_tensor_v2");
    lit(b, "(");
    emit_pid(b, t);
    integer(b, t->offset);
    lit(b, "(");
    for (int i = 0; i < t->ndim; i++)
        integer(b, t->size[i]);
    lit(b, "t(");
    for (int i = 0; i < (t->n_strides ? t->n_strides : t->ndim); i++)
        integer(b, t->stride[i]);
    lit(b, "t\x89h\x00)RtR");
    if (t->parameter) /* (data, requires_grad=True, OrderedDict()) */
        lit(b, "\x88h\x00)R\x87R");
}

/* A state_dict pickle as torch writes it, with the _metadata BUILD. */
static void state_dict_pickle(buf *b, const tspec *t, int n)
{
    lit(b, "\x80\x02");
    global(b, "collections", "OrderedDict");
    lit(b, "q\x00)Rq\x01(");
    for (int i = 0; i < n; i++) {
        str(b, t[i].name);
        emit_tensor(b, &t[i]);
    }
    lit(b, "u}");
    str(b, "_metadata");
    lit(b, "h\x00)R");
    str(b, "");
    lit(b, "}");
    str(b, "version");
    integer(b, 1);
    lit(b, "sssb.");
}

typedef struct record {
    const char *key;
    const void *data;
    size_t size;
} record;

/* archive/data.pkl, then archive/data/<key> for each record, then version. */
static void make_pth(zip_writer *z, const buf *pkl, const record *r, int n)
{
    memset(z, 0, sizeof *z);
    zip_add(z, "archive/data.pkl", pkl->data, pkl->len);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "archive/data/%s", r[i].key);
        zip_add(z, name, r[i].data, r[i].size);
    }
    zip_add(z, "archive/version", "3\n", 2);
    zip_finish(z);
}

static sr_status load_bytes(const uint8_t *data, size_t size, sr_weights *w, sr_error *err)
{
    sr_mapped_file f = {data, size};
    return sr_pth_load(&f, w, err);
}

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

static void fill_random(float *x, int n, uint64_t seed)
{
    test_rng rng = {seed};
    test_fill(&rng, x, n, -1.0f, 1.0f);
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
    assert_int_equal(sr_pth_load(&empty, &w, &err), SR_ERR_FORMAT);
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
    if (sr_file_map(path, &f, &err) != SR_OK)
        fail_msg("%s: %s", path, err.message);
    sr_weights w = {0};
    if (sr_pth_load(&f, &w, &err) != SR_OK)
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
        cmocka_unit_test(test_f32_views),
        cmocka_unit_test(test_shared_storage_and_strides),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_nan_inf),
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_empty_tensor_offset),
        cmocka_unit_test(test_storage_records),
        cmocka_unit_test(test_refused_dtypes),
        cmocka_unit_test(test_bad_pid),
        cmocka_unit_test(test_payloads),
        cmocka_unit_test(test_not_a_state_dict),
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
