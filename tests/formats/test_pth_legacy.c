/* sr_pth_load on legacy torch.save streams built here byte by byte (magic,
 * protocol 1001, sys_info, the object pickle with 6-tuple persistent ids,
 * the key list, counted raw storages): what loads, old view_metadata, the
 * hostile headers, counts and key lists of docs/formats.md section 6 (cases
 * 19-21), and how a state dict is found inside a training checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../testutil.h"
#include "../pickle_bytes.h"
#include "formats/pth.h"

/* ---- Legacy streams --------------------------------------------------------- */

static const char magic[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";

/* Magic, protocol version and sys_info, as _legacy_save writes them. */
static void header(buf *b, int64_t protocol, bool little_endian)
{
    lit(b, magic);
    lit(b, "\x80\x02");
    integer(b, protocol);
    lit(b, ".\x80\x02}q\x00(");
    str(b, "protocol_version");
    integer(b, 1001);
    str(b, "little_endian");
    if (little_endian)
        lit(b, "\x88");
    else
        lit(b, "\x89");
    str(b, "type_sizes");
    lit(b, "}q\x01(");
    str(b, "short");
    integer(b, 2);
    str(b, "int");
    integer(b, 4);
    str(b, "long");
    integer(b, 8);
    lit(b, "uu.");
}

typedef struct lspec {
    const char *type, *key; /* type: "FloatStorage", ... */
    int64_t numel;          /* of the root storage */
    int64_t offset;
    int ndim;
    int64_t size[4], stride[4];
    const char *view_key; /* non-NULL: view_metadata (view_key, view_offset, view_numel) */
    int64_t view_offset, view_numel;
    int pid_len; /* 0: 6 */
} lspec;

/* _rebuild_tensor_v2(('storage', T, key, 'cpu', numel, view), offset,
 * size, stride, False, OrderedDict()) */
static void tensor(buf *b, const lspec *t)
{
    global(b, "torch._utils", "_rebuild_tensor_v2");
    lit(b, "((");
    str(b, "storage");
    global(b, "torch", t->type);
    str(b, t->key);
    str(b, "cpu");
    integer(b, t->numel);
    if (t->pid_len != 5) {
        if (t->view_key) {
            lit(b, "(");
            str(b, t->view_key);
            integer(b, t->view_offset);
            integer(b, t->view_numel);
            lit(b, "t");
        } else {
            lit(b, "N");
        }
    }
    lit(b, "tQ");
    integer(b, t->offset);
    lit(b, "(");
    for (int i = 0; i < t->ndim; i++)
        integer(b, t->size[i]);
    lit(b, "t(");
    for (int i = 0; i < t->ndim; i++)
        integer(b, t->stride[i]);
    lit(b, "t\x89");
    global(b, "collections", "OrderedDict");
    lit(b, ")RtR");
}

/* A 1-d tensor of n floats at `offset` of storage `key` (numel elements). */
static lspec vec(const char *key, int64_t numel, int64_t offset, int64_t n)
{
    return (lspec){.type = "FloatStorage", .key = key, .numel = numel, .offset = offset,
                   .ndim = 1, .size = {n}, .stride = {1}};
}

/* OrderedDict() with `n` name -> tensor items: no STOP. */
static void state_dict(buf *b, const char *const *names, const lspec *t, int n)
{
    global(b, "collections", "OrderedDict");
    lit(b, ")R(");
    for (int i = 0; i < n; i++) {
        str(b, names[i]);
        tensor(b, &t[i]);
    }
    lit(b, "u");
}

typedef struct record {
    const char *key;
    int64_t count;
    const void *data;
    size_t size;
} record;

/* STOP of the object pickle, the key list, the counted storages. */
static void tail(buf *b, const char *const *keys, int n_keys, const record *r, int n)
{
    lit(b, ".\x80\x02](");
    for (int i = 0; i < n_keys; i++)
        str(b, keys[i]);
    lit(b, "e.");
    for (int i = 0; i < n; i++) {
        le(b, (uint64_t)r[i].count, 8);
        put(b, r[i].data, r[i].size);
    }
}

static sr_status load(const buf *b, sr_weights *w, sr_error *err)
{
    sr_mapped_file f = {b->data, b->len};
    return sr_pth_load(&f, 0, w, err);
}

static void expect(buf *b, sr_status status, const char *needle)
{
    sr_weights w = {0};
    sr_error err = {{0}};
    sr_status s = load(b, &w, &err);
    if (s != status || !strstr(err.message, needle))
        fail_msg("expected status %d with '%s', got %d: '%s'", status, needle, s, err.message);
    assert_int_equal(w.n_items, 0);
    free(b->data);
    *b = (buf){0};
}

/* One float storage "140" of 20 elements, its record, and a file holding
 * `t` (names "a", "b", ...) over it. */
static float s20[20];

static void simple_file(buf *b, const lspec *t, int n, const char *const *keys, int n_keys,
                        const record *r, int n_records)
{
    static const char *const names[] = {"a", "b", "c", "d"};
    header(b, 1001, true);
    lit(b, "\x80\x02");
    state_dict(b, names, t, n);
    tail(b, keys, n_keys, r, n_records);
}

static void setup_data(void)
{
    test_rng rng = {42};
    test_fill(&rng, s20, 20, -1.0f, 1.0f);
}

/* ---- Loading ------------------------------------------------------------------ */

static void test_legacy_loads(void **state)
{
    (void)state;
    setup_data();
    static const uint16_t h[3] = {0x3c00, 0xc000, 0x3555};
    lspec t[] = {
        {.type = "FloatStorage", .key = "140", .numel = 20, .ndim = 2, .size = {4, 3},
         .stride = {3, 1}},
        vec("140", 20, 12, 4),
        {.type = "HalfStorage", .key = "99", .numel = 3, .ndim = 1, .size = {3}, .stride = {1}},
        {.type = "FloatStorage", .key = "140", .numel = 20, .offset = 1, .ndim = 2,
         .size = {2, 3}, .stride = {1, 2}}, /* a transpose */
    };
    static const char *const keys[] = {"140", "99"}; /* sorted as strings */
    record r[] = {{"140", 20, s20, sizeof s20}, {"99", 3, h, sizeof h}};
    buf b = {0};
    simple_file(&b, t, 4, keys, 2, r, 2);
    sr_weights w = {0};
    sr_error err = {{0}};
    if (load(&b, &w, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_int_equal(w.n_items, 4);
    const sr_weight *a = sr_weights_find(&w, "a"), *bias = sr_weights_find(&w, "b"),
                    *c = sr_weights_find(&w, "c"), *d = sr_weights_find(&w, "d");
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 4);
    assert_int_equal(a->shape[1], 3);
    assert_memory_equal(a->data, s20, 12 * sizeof(float));
    assert_memory_equal(bias->data, s20 + 12, 4 * sizeof(float));
    /* Packed float32 is used in place when the stream left it aligned. */
    const uint8_t *at = (const uint8_t *)a->data;
    if ((uintptr_t)at % 4 == 0) {
        assert_null(a->owned);
        assert_true(at > b.data && at < b.data + b.len);
    }
    const float hw[3] = {1.0f, -2.0f, 0.333251953125f};
    assert_memory_equal(c->data, hw, sizeof hw);
    const float dw[6] = {s20[1], s20[3], s20[5], s20[2], s20[4], s20[6]};
    assert_memory_equal(d->data, dw, sizeof dw);
    sr_weights_free(&w);
    free(b.data);
}

/* Before PyTorch 1.0 a tensor could name a view of a storage:
 * (view_key, offset, numel) in elements of the root. */
static void test_legacy_view_metadata(void **state)
{
    (void)state;
    setup_data();
    lspec t[] = {vec("100", 20, 2, 3), vec("100", 20, 0, 4)};
    t[0].view_key = "7";
    t[0].view_offset = 4;
    t[0].view_numel = 8;
    static const char *const keys[] = {"100"};
    record r[] = {{"100", 20, s20, sizeof s20}};
    buf b = {0};
    simple_file(&b, t, 2, keys, 1, r, 1);
    sr_weights w = {0};
    sr_error err = {{0}};
    if (load(&b, &w, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_memory_equal(sr_weights_find(&w, "a")->data, s20 + 6, 3 * sizeof(float));
    assert_memory_equal(sr_weights_find(&w, "b")->data, s20, 4 * sizeof(float));
    sr_weights_free(&w);
    free(b.data);
    b = (buf){0};

    t[0].view_offset = 15; /* 15 + 8 > 20 */
    simple_file(&b, t, 2, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "storage view '7' of 8 elements at 15 lies outside storage '100' of 20");
    t[0].view_offset = 4;
    t[0].offset = 6; /* 6 + 3 > 8: beyond the view though inside the root */
    simple_file(&b, t, 2, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "tensor 'a' needs 12 bytes at offset 24; storage '7' has 32");
    t[0].offset = 0;
    t[1].view_key = "7"; /* the same view key as another range */
    t[1].view_offset = 0;
    t[1].view_numel = 8;
    simple_file(&b, t, 2, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "storage '7' is referenced as two different storages");
    t[1].view_key = "100"; /* a view key naming its root, but not all of it */
    simple_file(&b, t, 2, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "storage '100' is referenced as two different storages");
}

/* ---- Hostile streams (cases 19-21) --------------------------------------------- */

static void test_legacy_bad_header(void **state)
{
    (void)state;
    setup_data();
    lspec t[] = {vec("1", 20, 0, 4)};
    static const char *const keys[] = {"1"};
    record r[] = {{"1", 20, s20, sizeof s20}};
    buf b = {0};
    simple_file(&b, t, 1, keys, 1, r, 1);
    b.data[7] ^= 1;
    expect(&b, SR_ERR_FORMAT, "bad legacy magic number");
    lit(&b, "\x80\x02\x8a\x0a\x6c\xfc");
    expect(&b, SR_ERR_FORMAT, "bad legacy magic number");

    header(&b, 1000, true);
    expect(&b, SR_ERR_UNSUPPORTED, "unsupported legacy protocol version 1000");
    lit(&b, magic);
    lit(&b, "\x80\x02");
    str(&b, "1001");
    lit(&b, ".");
    expect(&b, SR_ERR_FORMAT, "bad legacy header: protocol version is a str");
    lit(&b, magic);
    lit(&b, "\x80\x02M\xe9\x03.\x80\x02]."); /* sys_info a list */
    expect(&b, SR_ERR_FORMAT, "bad legacy header: sys_info is a list");
    lit(&b, magic); /* nothing after the magic */
    expect(&b, SR_ERR_FORMAT, "stream ends without STOP");

    header(&b, 1001, false);
    lit(&b, "\x80\x02}.\x80\x02].");
    expect(&b, SR_ERR_UNSUPPORTED, "big-endian legacy checkpoint is not supported");

    /* The object pickle goes through the same allowlist. */
    header(&b, 1001, true);
    lit(&b, "\x80\x02");
    global(&b, "posix", "system");
    lit(&b, "\xff garbage");
    expect(&b, SR_ERR_UNSAFE, "global 'posix.system' is not allowed");
    header(&b, 1001, true);
    lit(&b, "\x80\x02");
    global(&b, "argparse", "Namespace");
    expect(&b, SR_ERR_UNSAFE, "global 'argparse.Namespace' is not allowed");

    /* The zip file's 5-tuple and refused dtypes. */
    t[0].pid_len = 5;
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "bad storage reference in the checkpoint");
    t[0].pid_len = 0;
    t[0].type = "ComplexFloatStorage";
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_UNSUPPORTED, "storage '1' holds complex64 (ComplexFloatStorage)");
}

static void test_legacy_counts(void **state)
{
    (void)state;
    setup_data();
    lspec t[] = {vec("168206592", 20, 0, 4)};
    static const char *const keys[] = {"168206592"};
    record r[] = {{"168206592", INT64_C(1) << 61, s20, sizeof s20}};
    buf b = {0};
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT,
           "storage '168206592' declares 2305843009213693952 elements but 80 bytes remain");
    r[0].count = INT64_C(1) << 62; /* x 4 bytes overflows 64 bits */
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "declares 4611686018427387904 elements but 80 bytes remain");
    r[0].count = -1;
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "declares -1 elements but 80 bytes remain");
    r[0].count = 21;
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "declares 21 elements but 80 bytes remain");

    /* The count disagrees with the pickle: both ways. */
    r[0].count = 16;
    r[0].size = 64;
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "storage '168206592' holds 16 elements in the file but 20 in the pickle");
    t[0].numel = 10;
    r[0].count = 20;
    r[0].size = sizeof s20;
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "holds 20 elements in the file but 10 in the pickle");
    t[0].numel = 20;

    /* The file ends inside the count. */
    simple_file(&b, t, 1, keys, 1, r, 0);
    lit(&b, "\x14\x00\x00");
    expect(&b, SR_ERR_FORMAT, "file ends before storage '168206592'");

    /* A huge pid numel is refused before anything is sized from it. */
    t[0].numel = INT64_C(1) << 62;
    simple_file(&b, t, 1, keys, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "storage '168206592' size overflows");
}

static void test_legacy_key_list(void **state)
{
    (void)state;
    setup_data();
    lspec t[] = {vec("11", 20, 0, 4), vec("2", 20, 0, 4)};
    record r[] = {{"11", 20, s20, sizeof s20}, {"2", 20, s20, sizeof s20}};
    static const char *const both[] = {"11", "2"}, *const one[] = {"11"},
                             *const twice[] = {"11", "2", "11"},
                             *const extra[] = {"11", "2", "5"};
    buf b = {0};
    simple_file(&b, t, 2, both, 2, r, 2);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load(&b, &w, &err), SR_OK);
    sr_weights_free(&w);
    free(b.data);
    b = (buf){0};

    simple_file(&b, t, 2, one, 1, r, 1);
    expect(&b, SR_ERR_FORMAT, "storage '2' is missing from the key list");
    simple_file(&b, t, 2, twice, 3, r, 2);
    expect(&b, SR_ERR_FORMAT, "storage '11' is listed twice");
    simple_file(&b, t, 2, extra, 3, r, 2);
    expect(&b, SR_ERR_FORMAT, "storage '5' is in the key list but not in the checkpoint");
    simple_file(&b, t, 2, both, 2, r, 2);
    lit(&b, "abc");
    expect(&b, SR_ERR_FORMAT, "3 trailing bytes after the last storage");
    simple_file(&b, t, 2, both, 2, r, 1);
    expect(&b, SR_ERR_FORMAT, "file ends before storage '2'");

    header(&b, 1001, true);
    lit(&b, "\x80\x02}.\x80\x02}.");
    expect(&b, SR_ERR_FORMAT, "storage key list is a dict, not a list");
    header(&b, 1001, true);
    lit(&b, "\x80\x02}.\x80\x02](K\x01" "e.");
    expect(&b, SR_ERR_FORMAT, "storage key list entry 0 is not a storage key");
    header(&b, 1001, true);
    lit(&b, "\x80\x02}."); /* no key list at all */
    expect(&b, SR_ERR_FORMAT, "stream ends without STOP");
}

/* ---- Training checkpoints -------------------------------------------------------- */

/* A checkpoint: top-level dict of `n` entries, each a name and either a
 * state dict of tensors (names[] over storage "1") or a plain value. */
typedef struct entry {
    const char *key;
    const char *const *tensors; /* NULL: a plain value (`plain` opcodes) */
    int n_tensors;
    const void *plain;
    size_t plain_len;
} entry;

#define VALUE(s) NULL, 0, s, sizeof s - 1
#define TENSORS(names) names, sizeof names / sizeof *names, NULL, 0

static void checkpoint(buf *b, const entry *e, int n)
{
    header(b, 1001, true);
    lit(b, "\x80\x02}(");
    for (int i = 0; i < n; i++) {
        str(b, e[i].key);
        if (e[i].tensors) {
            lspec t[8];
            for (int j = 0; j < e[i].n_tensors; j++)
                t[j] = vec("1", 20, 2 * j, 2);
            state_dict(b, e[i].tensors, t, e[i].n_tensors);
        } else {
            put(b, e[i].plain, e[i].plain_len);
        }
    }
    lit(b, "u");
    static const char *const keys[] = {"1"};
    record r = {"1", 20, s20, sizeof s20};
    bool any = false;
    for (int i = 0; i < n; i++)
        any = any || e[i].n_tensors > 0;
    tail(b, keys, any, &r, any);
}

/* Loads and checks the weight names, in order. */
static void expect_names(const entry *e, int n, const char *const *want, int n_want)
{
    buf b = {0};
    checkpoint(&b, e, n);
    sr_weights w = {0};
    sr_error err = {{0}};
    if (load(&b, &w, &err) != SR_OK)
        fail_msg("%s", err.message);
    assert_int_equal(w.n_items, n_want);
    for (int i = 0; i < n_want; i++)
        assert_string_equal(w.items[i].name, want[i]);
    sr_weights_free(&w);
    free(b.data);
}

static void test_wrapped_checkpoints(void **state)
{
    (void)state;
    setup_data();
    static const char *const dp[] = {"module.conv.weight", "module.conv.bias"},
                             *const plain[] = {"conv.weight", "conv.bias"},
                             *const other[] = {"x.weight"},
                             *const moment[] = {"exp_avg", "exp_avg_sq"};
    /* {'epoch': 7, 'state_dict': {'module.…'}, 'optimizer': {'state':
     * {0: {tensors}}, 'param_groups': [{'lr': 0.1, 'params': [0, 1]}]}} */
    buf opt = {0};
    lit(&opt, "}(");
    str(&opt, "state");
    lit(&opt, "}(K\x00");
    lspec t[] = {vec("1", 20, 0, 2), vec("1", 20, 2, 2)};
    state_dict(&opt, moment, t, 2);
    lit(&opt, "u");
    str(&opt, "param_groups");
    lit(&opt, "](}(");
    str(&opt, "lr");
    lit(&opt, "G\x3f\xb9\x99\x99\x99\x99\x99\x9a");
    str(&opt, "betas");
    lit(&opt, "G\x3f\xec\xcc\xcc\xcc\xcc\xcc\xcdG\x3f\xef\xf7\xce\xd9\x16\x87\x2b\x86");
    str(&opt, "foreach");
    lit(&opt, "N");
    str(&opt, "params");
    lit(&opt, "](K\x00K\x01" "eueu"); /* params, group, param_groups, optimizer */
    entry wrapped[] = {
        {"epoch", VALUE("K\x07")},
        {"state_dict", TENSORS(dp)},
        {"optimizer", NULL, 0, opt.data, opt.len},
    };
    expect_names(wrapped, 3, plain, 2);
    free(opt.data);

    /* Both state_dict and model: state_dict comes first in the order. */
    entry both[] = {{"model", TENSORS(other)}, {"state_dict", TENSORS(plain)}};
    expect_names(both, 2, plain, 2);
    /* params_ema before params, whatever the file's order. */
    entry ema[] = {{"params", TENSORS(other)}, {"params_ema", TENSORS(plain)}};
    expect_names(ema, 2, plain, 2);
    /* A candidate that is no dict of tensors is passed over. */
    entry skip[] = {{"model", VALUE("}(X\x04\x00\x00\x00nameK\x01u")},
                    {"generator", TENSORS(plain)}, {"netG", TENSORS(other)}};
    expect_names(skip, 3, plain, 2);
    entry netg[] = {{"netD", TENSORS(other)}, {"netG", TENSORS(plain)}};
    expect_names(netg, 2, plain, 2);

    /* Prefixes: stripped only when every key has them; nested ones too. */
    static const char *const mixed[] = {"module.conv.weight", "conv.bias"},
                             *const nested[] = {"_orig_mod.module.conv.weight",
                                                "_orig_mod.module.conv.bias"},
                             *const bare[] = {"module.", "module.x"};
    entry e1[] = {{"model_state_dict", TENSORS(mixed)}};
    expect_names(e1, 1, mixed, 2);
    entry e2[] = {{"params_ema", TENSORS(nested)}};
    expect_names(e2, 1, plain, 2);
    entry e3[] = {{"state_dict", TENSORS(bare)}};
    expect_names(e3, 1, bare, 2);
    /* A flat state dict is taken as it is, even with a key named 'model'. */
    static const char *const flat[] = {"module.model", "module.conv.bias"},
                             *const flat_out[] = {"model", "conv.bias"};
    buf b = {0};
    header(&b, 1001, true);
    lit(&b, "\x80\x02");
    lspec ft[] = {vec("1", 20, 0, 2), vec("1", 20, 2, 2)};
    state_dict(&b, flat, ft, 2);
    static const char *const keys[] = {"1"};
    record r = {"1", 20, s20, sizeof s20};
    tail(&b, keys, 1, &r, 1);
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load(&b, &w, &err), SR_OK);
    assert_string_equal(w.items[0].name, flat_out[0]);
    assert_string_equal(w.items[1].name, flat_out[1]);
    sr_weights_free(&w);
    free(b.data);
}

static void test_no_state_dict(void **state)
{
    (void)state;
    setup_data();
    entry none[] = {{"epoch", VALUE("K\x03")},
                    {"model", VALUE("}(X\x01\x00\x00\x00xK\x01u")},
                    {"optimizer", VALUE("}")}};
    buf b = {0};
    checkpoint(&b, none, 3);
    expect(&b, SR_ERR_FORMAT,
           "no state dict in the checkpoint: its top-level keys are 'epoch', 'model', "
           "'optimizer'; expected tensors, or a dict of tensors under params_ema, params, "
           "state_dict, model_state_dict, model, generator or netG");

    /* Many keys: the list is cut short, the message stays one line. */
    header(&b, 1001, true);
    lit(&b, "\x80\x02}(");
    for (int i = 0; i < 40; i++) {
        char key[32];
        snprintf(key, sizeof key, "hyperparameter_%d", i);
        str(&b, key);
        integer(&b, i);
    }
    lit(&b, "K\x05K\x06u.\x80\x02].");
    sr_weights w = {0};
    sr_error err = {{0}};
    assert_int_equal(load(&b, &w, &err), SR_ERR_FORMAT);
    assert_non_null(strstr(err.message, "'hyperparameter_0', 'hyperparameter_1'"));
    assert_non_null(strstr(err.message, "...; expected tensors"));
    assert_null(strchr(err.message, '\n'));
    free(b.data);

    /* A key that is no string is shown by its kind. */
    b = (buf){0};
    header(&b, 1001, true);
    lit(&b, "\x80\x02}(K\x05K\x06");
    str(&b, "epoch");
    lit(&b, "K\x03u.\x80\x02].");
    expect(&b, SR_ERR_FORMAT, "its top-level keys are <int>, 'epoch'; expected");

    /* Not a dict at all. */
    b = (buf){0};
    header(&b, 1001, true);
    lit(&b, "\x80\x02].\x80\x02].");
    expect(&b, SR_ERR_FORMAT, "the checkpoint holds a list, not a state_dict");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legacy_loads),
        cmocka_unit_test(test_legacy_view_metadata),
        cmocka_unit_test(test_legacy_bad_header),
        cmocka_unit_test(test_legacy_counts),
        cmocka_unit_test(test_legacy_key_list),
        cmocka_unit_test(test_wrapped_checkpoints),
        cmocka_unit_test(test_no_state_dict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
