/* The restricted unpickler on hand-assembled streams: the state_dict shape
 * torch writes, every value opcode, and the hostile cases of docs/formats.md
 * section 6 (code-execution globals, nullifAI, deep nesting, malformed VM
 * use, huge lengths). The hooks here are a small stand-in for pth.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../pickle_bytes.h"
#include "formats/pickle.h"

/* ---- More emitters ------------------------------------------------------ */

static void op(buf *b, uint8_t c)
{
    put(b, &c, 1);
}

static void ops(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void small_int(buf *b, uint8_t v)
{
    op(b, 'K');
    op(b, v);
}

/* ---- Hooks: a miniature torch ------------------------------------------ */

enum { TAG_STORAGE = 1, TAG_TENSOR };

typedef struct calls {
    int n_reduce, n_persid, n_build;
    const sr_pickle_value *build_state;
} calls;

static bool allow(void *user, const char *module, const char *name, const char **why)
{
    (void)user;
    if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
        return true;
    if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0)
        return true;
    if (strcmp(module, "torch") == 0 && strcmp(name, "FloatStorage") == 0)
        return true;
    if (strcmp(module, "because") == 0)
        *why = "a reason";
    return false;
}

static sr_status reduce(void *user, sr_pickle *p, const sr_pickle_value *fn,
                        const sr_pickle_value *args, sr_pickle_value **result,
                        sr_error *err)
{
    calls *c = user;
    c->n_reduce++;
    (void)err;
    if (strcmp(fn->u.global.name, "OrderedDict") == 0) {
        *result = sr_pickle_value_new(p, SR_PICKLE_DICT);
        return SR_OK;
    }
    /* A "tensor" that keeps its argument tuple. */
    *result = sr_pickle_value_new(p, SR_PICKLE_OBJECT);
    (*result)->u.object.tag = TAG_TENSOR;
    (*result)->u.object.ptr = (void *)args;
    return SR_OK;
}

static sr_status persistent_load(void *user, sr_pickle *p, const sr_pickle_value *pid,
                                 sr_pickle_value **result, sr_error *err)
{
    calls *c = user;
    c->n_persid++;
    (void)err;
    int *numel = sr_pickle_alloc(p, sizeof *numel);
    *numel = (int)pid->u.seq.items[4]->u.i;
    *result = sr_pickle_value_new(p, SR_PICKLE_OBJECT);
    (*result)->u.object.tag = TAG_STORAGE;
    (*result)->u.object.ptr = numel;
    return SR_OK;
}

static sr_status build(void *user, sr_pickle *p, sr_pickle_value *obj,
                       const sr_pickle_value *state, sr_error *err)
{
    calls *c = user;
    (void)p;
    (void)obj;
    (void)err;
    c->n_build++;
    c->build_state = state;
    return SR_OK;
}

static sr_status run(buf *b, calls *c, sr_pickle_value **result, sr_pickle **out,
                     sr_error *err)
{
    sr_pickle_hooks hooks = {c, allow, reduce, persistent_load, build};
    sr_pickle *p = NULL;
    assert_int_equal(sr_pickle_new(&p, &hooks, err), SR_OK);
    sr_pickle_value *dummy;
    sr_status s = sr_pickle_load(p, b->data, b->len, result ? result : &dummy, NULL, err);
    if (out)
        *out = p;
    else
        sr_pickle_free(p);
    return s;
}

/* Runs `b`, expects failure with `status` and a message containing `needle`. */
static void expect_fail(buf *b, sr_status status, const char *needle)
{
    calls c = {0};
    sr_error err = {{0}};
    sr_status s = run(b, &c, NULL, NULL, &err);
    if (s != status || !strstr(err.message, needle))
        fail_msg("expected status %d with '%s', got %d: '%s'", status, needle, s,
                 err.message);
    free(b->data);
    *b = (buf){0};
}

/* ---- The torch state_dict shape (docs/formats.md 1.4) -------------------- */

static void emit_tensor(buf *b, const char *name, const char *key, uint8_t numel,
                        uint8_t d0, uint8_t d1)
{
    str(b, name);
    global(b, "torch._utils", "_rebuild_tensor_v2");
    lit(b, "((");
    str(b, "storage");
    global(b, "torch", "FloatStorage");
    str(b, key);
    str(b, "cpu");
    small_int(b, numel);
    lit(b, "tQ");
    small_int(b, 0);
    small_int(b, d0);
    small_int(b, d1);
    op(b, 0x86); /* TUPLE2 */
    small_int(b, d1);
    small_int(b, 1);
    op(b, 0x86);
    op(b, 0x89);              /* NEWFALSE */
    lit(b, "h\x00)R");        /* OrderedDict() backward hooks */
    lit(b, "tR");
}

static void test_state_dict_shape(void **state)
{
    (void)state;
    buf b = {0};
    lit(&b, "\x80\x02");
    global(&b, "collections", "OrderedDict");
    lit(&b, "q\x00)Rq\x01(");
    emit_tensor(&b, "block1.0.weight", "0", 12, 4, 3);
    emit_tensor(&b, "block1.0.bias", "1", 4, 2, 2);
    lit(&b, "u}q\x02");
    str(&b, "_metadata");
    lit(&b, "}");
    str(&b, "version");
    small_int(&b, 7);
    lit(&b, "ssb.");

    calls c = {0};
    sr_error err = {{0}};
    sr_pickle_value *root = NULL;
    sr_pickle *p = NULL;
    assert_int_equal(run(&b, &c, &root, &p, &err), SR_OK);
    assert_int_equal(root->kind, SR_PICKLE_DICT);
    assert_int_equal(root->u.dict.n, 2);
    assert_string_equal(root->u.dict.keys[0]->u.str.s, "block1.0.weight");
    assert_string_equal(root->u.dict.keys[1]->u.str.s, "block1.0.bias");
    const sr_pickle_value *t = root->u.dict.values[0];
    assert_int_equal(t->kind, SR_PICKLE_OBJECT);
    assert_int_equal(t->u.object.tag, TAG_TENSOR);
    const sr_pickle_value *args = t->u.object.ptr;
    assert_int_equal(args->u.seq.n, 6);
    assert_int_equal(*(int *)args->u.seq.items[0]->u.object.ptr, 12);
    assert_int_equal(args->u.seq.items[2]->u.seq.items[0]->u.i, 4);
    assert_int_equal(args->u.seq.items[2]->u.seq.items[1]->u.i, 3);
    assert_int_equal(args->u.seq.items[4]->kind, SR_PICKLE_BOOL);
    assert_int_equal(c.n_persid, 2);
    assert_int_equal(c.n_reduce, 5); /* OrderedDict x3, tensor x2 */
    assert_int_equal(c.n_build, 1);
    assert_int_equal(c.build_state->kind, SR_PICKLE_DICT);
    assert_string_equal(c.build_state->u.dict.keys[0]->u.str.s, "_metadata");
    sr_pickle_free(p);
    free(b.data);
}

/* ---- Scalars and containers ---------------------------------------------- */

static void test_values(void **state)
{
    (void)state;
    buf b = {0};
    lit(&b, "\x80\x02]q\x05(");
    op(&b, 'J'); le(&b, (uint64_t)-5, 4);                    /* BININT -5 */
    op(&b, 'M'); le(&b, 54321, 2);                           /* BININT2 */
    lit(&b, "\x8a\x01\xff");                                  /* LONG1 -1 */
    lit(&b, "\x8a\x08"); le(&b, UINT64_C(0x0123456789abcdef), 8);
    lit(&b, "\x8a\x00");                                      /* LONG1 0 */
    lit(&b, "G\x3f\xf8\x00\x00\x00\x00\x00\x00");             /* 1.5, big-endian */
    lit(&b, "N\x88\x89");
    lit(&b, "U\x03" "abc");                                    /* SHORT_BINSTRING */
    op(&b, 'T'); le(&b, 2, 4); lit(&b, "py");                 /* BINSTRING */
    small_int(&b, 9);
    lit(&b, "e.");

    calls c = {0};
    sr_error err = {{0}};
    sr_pickle_value *root = NULL;
    sr_pickle *p = NULL;
    assert_int_equal(run(&b, &c, &root, &p, &err), SR_OK);
    assert_int_equal(root->kind, SR_PICKLE_LIST);
    assert_int_equal(root->u.seq.n, 12);
    sr_pickle_value **v = root->u.seq.items;
    assert_int_equal(v[0]->u.i, -5);
    assert_int_equal(v[1]->u.i, 54321);
    assert_int_equal(v[2]->u.i, -1);
    assert_int_equal(v[3]->u.i, INT64_C(0x0123456789abcdef));
    assert_int_equal(v[4]->u.i, 0);
    assert_true(v[5]->kind == SR_PICKLE_FLOAT && v[5]->u.f == 1.5);
    assert_int_equal(v[6]->kind, SR_PICKLE_NONE);
    assert_true(v[7]->u.b);
    assert_false(v[8]->u.b);
    assert_string_equal(v[9]->u.str.s, "abc");
    assert_string_equal(v[10]->u.str.s, "py");
    assert_int_equal(v[11]->u.i, 9);
    assert_int_equal(root->depth, 1);
    sr_pickle_free(p);
    free(b.data);
}

static void test_memo_and_consumed(void **state)
{
    (void)state;
    buf b = {0};
    lit(&b, "\x80\x02");
    str(&b, "shared");
    op(&b, 'r'); le(&b, 3, 4);                 /* LONG_BINPUT 3 */
    op(&b, 'j'); le(&b, 3, 4);                 /* LONG_BINGET 3 */
    lit(&b, "\x86.trailing");
    sr_pickle_hooks hooks = {0};
    sr_pickle *p = NULL;
    sr_error err = {{0}};
    assert_int_equal(sr_pickle_new(&p, &hooks, &err), SR_OK);
    sr_pickle_value *root = NULL;
    uint64_t used = 0;
    assert_int_equal(sr_pickle_load(p, b.data, b.len, &root, &used, &err), SR_OK);
    assert_int_equal(used, b.len - strlen("trailing"));
    assert_ptr_equal(root->u.seq.items[0], root->u.seq.items[1]);

    /* A second run keeps the first one's values but not its memo. */
    static const uint8_t again[] = "\x80\x02h\x03.";
    sr_pickle_value *other;
    assert_int_equal(sr_pickle_load(p, again, 5, &other, NULL, &err), SR_ERR_FORMAT);
    assert_non_null(strstr(err.message, "memo slot 3 is empty"));
    assert_string_equal(root->u.seq.items[0]->u.str.s, "shared");
    sr_pickle_free(p);
    free(b.data);
}

static void test_protocol4(void **state)
{
    (void)state;
    buf b = {0};
    lit(&b, "\x80\x04\x95"); le(&b, 33, 8);
    lit(&b, "\x8c\x0b" "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R");
    lit(&b, "\x8d"); le(&b, 1, 8); lit(&b, "k");
    lit(&b, "h\x00s.");
    calls c = {0};
    sr_error err = {{0}};
    sr_pickle_value *root = NULL;
    sr_pickle *p = NULL;
    assert_int_equal(run(&b, &c, &root, &p, &err), SR_OK);
    assert_int_equal(root->kind, SR_PICKLE_DICT);
    assert_string_equal(root->u.dict.keys[0]->u.str.s, "k");
    assert_string_equal(root->u.dict.values[0]->u.str.s, "collections");
    sr_pickle_free(p);
    free(b.data);
    b = (buf){0};

    /* STACK_GLOBAL goes through the same allowlist. */
    lit(&b, "\x80\x04\x8c\x05posix\x8c\x06system\x93");
    expect_fail(&b, SR_ERR_UNSAFE, "global 'posix.system' is not allowed (byte 17)");
}

/* ---- Hostile streams ------------------------------------------------------ */

static void test_reduce_payloads(void **state)
{
    (void)state;
    /* pickle.dumps of a class whose __reduce__ is os.system, on Linux. */
    static const char payload[] =
        "\x80\x02" "cposix\nsystem\nq\x00X\x0c\x00\x00\x00touch markerq\x01\x85q\x02Rq\x03.";
    buf b = {0};
    put(&b, payload, sizeof payload - 1);
    expect_fail(&b, SR_ERR_UNSAFE, "global 'posix.system' is not allowed (byte 2)");

    static const char *const bad[][2] = {
        {"builtins", "eval"}, {"__builtin__", "exec"}, {"os", "system"},
        {"nt", "system"}, {"subprocess", "Popen"}, {"torch", "load"},
        {"numpy.core.multiarray", "_reconstruct"},
        {"torch.nn.modules.conv", "Conv2d"}, {"builtins", "getattr"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[128];
        snprintf(want, sizeof want, "global '%s.%s' is not allowed (byte 6)", bad[i][0], bad[i][1]);
        lit(&b, "\x80\x02]q\x00(");
        global(&b, bad[i][0], bad[i][1]);
        str(&b, "echo pwned");
        lit(&b, "\x85Ra.");
        expect_fail(&b, SR_ERR_UNSAFE, want);
    }

    /* The hook may say why. */
    lit(&b, "\x80\x02");
    global(&b, "because", "Model");
    expect_fail(&b, SR_ERR_UNSAFE, "global 'because.Model' is not allowed (byte 2): a reason");

    /* Without a find_class hook every global is refused. */
    lit(&b, "\x80\x02");
    global(&b, "collections", "OrderedDict");
    lit(&b, ")R.");
    sr_pickle_hooks none = {0};
    sr_pickle *p = NULL;
    sr_error err = {{0}};
    sr_pickle_value *root = NULL;
    assert_int_equal(sr_pickle_new(&p, &none, &err), SR_OK);
    assert_int_equal(sr_pickle_load(p, b.data, b.len, &root, NULL, &err), SR_ERR_UNSAFE);
    sr_pickle_free(p);
    free(b.data);
}

/* nullifAI: the payload global first, then bytes no pickle VM can parse. */
static void test_nullifai(void **state)
{
    (void)state;
    buf b = {0};
    lit(&b, "\x80\x02");
    global(&b, "os", "system");
    for (int i = 0; i < 64; i++)
        op(&b, (uint8_t)(0xf0 + i % 7));
    expect_fail(&b, SR_ERR_UNSAFE, "global 'os.system' is not allowed (byte 2)");
}

static void repeat(buf *b, const char *s, int n)
{
    for (int i = 0; i < n; i++)
        ops(b, s);
}

/* BINGET 0, n times (its operand is a NUL, which repeat would stop at). */
static void get0(buf *b, int n)
{
    for (int i = 0; i < n; i++)
        put(b, "h", 2);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    const int n = 50000; /* deep, but within the other limits */
    buf b = {0};
    lit(&b, "\x80\x02K\x01");
    repeat(&b, "\x85", n); /* TUPLE1 around TUPLE1 around ... */
    op(&b, '.');
    expect_fail(&b, SR_ERR_FORMAT, "pickle nested too deep (limit 256)");

    lit(&b, "\x80\x02");
    repeat(&b, "](", n);
    op(&b, '.');
    expect_fail(&b, SR_ERR_FORMAT, "pickle nested too deep (limit 256)");

    lit(&b, "\x80\x02");
    repeat(&b, "]", n);
    repeat(&b, "a", n - 1); /* each list into the one below it */
    op(&b, '.');
    expect_fail(&b, SR_ERR_FORMAT, "pickle nested too deep (limit 256)");

    lit(&b, "\x80\x02");
    repeat(&b, "}K\x01", n); /* dict, key, dict, key, ... */
    op(&b, 'N');
    repeat(&b, "s", n);
    op(&b, '.');
    expect_fail(&b, SR_ERR_FORMAT, "pickle nested too deep (limit 256)");

    /* 256 levels are fine. */
    lit(&b, "\x80\x02K\x01");
    repeat(&b, "\x85", 256);
    op(&b, '.');
    calls c = {0};
    sr_error err = {{0}};
    sr_pickle_value *root = NULL;
    sr_pickle *p = NULL;
    assert_int_equal(run(&b, &c, &root, &p, &err), SR_OK);
    assert_int_equal(root->depth, 256);
    sr_pickle_free(p);
    free(b.data);
}

static void expect_ok(buf *b)
{
    calls c = {0};
    sr_error err = {{0}};
    if (run(b, &c, NULL, NULL, &err) != SR_OK)
        fail_msg("%s", err.message);
    free(b->data);
    *b = (buf){0};
}

/* What a stream may build is bounded whatever its length: each limit is
 * reached exactly, then passed by one, with one-byte opcodes that each
 * cost far more than a byte to build (docs/formats.md section 6, case 17). */
static void test_limits(void **state)
{
    (void)state;
    buf b = {0};
    /* Values: each None is built, then dropped by BUILD. */
    lit(&b, "\x80\x02}");
    repeat(&b, "Nb", SR_PICKLE_MAX_VALUES - 1);
    op(&b, '.');
    expect_ok(&b);
    lit(&b, "\x80\x02}");
    repeat(&b, "Nb", SR_PICKLE_MAX_VALUES);
    op(&b, '.');
    expect_fail(&b, SR_ERR_LIMIT, "pickle has more than 524288 values (limit; byte");

    /* The stack: a run of empty lists. */
    lit(&b, "\x80\x02");
    repeat(&b, "]", SR_PICKLE_MAX_STACK);
    op(&b, '.');
    expect_fail(&b, SR_ERR_FORMAT, "STOP with 131072 items");
    lit(&b, "\x80\x02");
    repeat(&b, "]", SR_PICKLE_MAX_STACK + 1);
    op(&b, '.');
    expect_fail(&b, SR_ERR_LIMIT, "pickle has more than 131072 items on its stack (limit; byte 131074)");

    /* Container slots: one None shared by BINGET, 1000 to an APPENDS as
     * Python batches them; two values in all. */
    for (int extra = 0; extra <= 1; extra++) {
        lit(&b, "\x80\x02](Nq\x00");
        get0(&b, 999);
        op(&b, 'e');
        int left = SR_PICKLE_MAX_ITEMS - 1000 + extra;
        for (; left > 0; left -= 1000) {
            op(&b, '(');
            get0(&b, left < 1000 ? left : 1000);
            op(&b, 'e');
        }
        op(&b, '.');
        if (extra)
            expect_fail(&b, SR_ERR_LIMIT,
                        "pickle has more than 524288 items in its tuples, lists and dicts");
        else
            expect_ok(&b);
    }
    /* A dict's keys and values count alike (None: None, duplicates kept). */
    lit(&b, "\x80\x02}(Nq\x00");
    get0(&b, 999);
    op(&b, 'u');
    for (int left = SR_PICKLE_MAX_ITEMS - 1000 + 2; left > 0; left -= 1000) {
        op(&b, '(');
        get0(&b, left < 1000 ? left : 1000);
        op(&b, 'u');
    }
    op(&b, '.');
    expect_fail(&b, SR_ERR_LIMIT, "pickle has more than 524288 items in its tuples, lists and dicts");
    /* Strings: 4 MB in all, NUL terminators counted. */
    const uint32_t mb = 1 << 20;
    for (int extra = 0; extra <= 1; extra++) {
        lit(&b, "\x80\x02](");
        for (int i = 0; i < 4; i++) {
            uint32_t len = i < 3 ? mb - 1 : SR_PICKLE_MAX_STRING_BYTES - 3 * mb - 1 + (uint32_t)extra;
            op(&b, 'X');
            le(&b, len, 4);
            for (uint32_t k = 0; k < len; k++)
                op(&b, 'a');
        }
        lit(&b, "e.");
        if (extra)
            expect_fail(&b, SR_ERR_LIMIT, "pickle has more than 4194304 bytes of strings");
        else
            expect_ok(&b);
    }

    /* Memo indices stay near the values built: a sparse index 268M used
     * to cost 2 GB of slots. */
    lit(&b, "\x80\x02N");
    op(&b, 'r'); le(&b, 1024, 4); /* one value built: indices below 1025 */
    op(&b, '.');
    expect_ok(&b);
    lit(&b, "\x80\x02N");
    op(&b, 'r'); le(&b, 1025, 4);
    op(&b, '.');
    expect_fail(&b, SR_ERR_LIMIT, "pickle memo index 1025 is beyond the 1 values built so far");
    lit(&b, "\x80\x02N");
    op(&b, 'r'); le(&b, 268435456, 4);
    op(&b, '.');
    expect_fail(&b, SR_ERR_LIMIT, "pickle memo index 268435456 is beyond the 1 values built");
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *needle;
    } cases[] = {
#define CASE(s, needle) {s, sizeof s - 1, needle}
        CASE("\x80\x02R.", "malformed pickle at offset 2: pop from empty stack"),
        CASE("\x80\x02t.", "malformed pickle at offset 2: no MARK"),
        CASE("\x80\x02K\x01(\x85.", "malformed pickle at offset 5: pop from empty stack"),
        CASE("\x80\x02}(K\x01K\x02K\x03u.", "malformed pickle at offset 10: SETITEMS with an odd number"),
        CASE("\x80\x02]K\x01K\x02s.", "malformed pickle at offset 7: SETITEM on a list"),
        CASE("\x80\x02](K\x01K\x02u.", "SETITEMS on a list"),
        CASE("\x80\x02}K\x01" "a.", "malformed pickle at offset 5: APPEND on a dict"),
        CASE("\x80\x02)(K\x01" "e.", "APPENDS on a tuple"),
        CASE("\x80\x02K\x01s.", "SETITEM without a key and a value"),
        CASE("\x80\x02h\x07.", "malformed pickle at offset 2: memo slot 7 is empty"),
        CASE("\x80\x02q\x00.", "empty stack"),
        CASE("\x80\x02]q\x00h\x00" "a.", "a list cannot contain itself"),
        CASE("\x80\x02]q\x00]h\x00" "ah\x00K\x01" "a.", "APPEND on a list already stored elsewhere"),
        CASE("\x80\x02K\x01K\x02.", "STOP with 2 items"),
        CASE("\x80\x02(K\x01.", "STOP with 1 items and 1 marks"),
        CASE("\x80\x02K\x01", "malformed pickle at offset 4: stream ends without STOP"),
        CASE("\x80\x02J\x01\x02", "malformed pickle at offset 2: 4-byte operand but only 2"),
        CASE("\x80\x02K\x01K\x02R.", "REDUCE needs a global and a tuple"),
        CASE("\x80\x02" "cos\nsys", "global name not terminated"),
        CASE("\x80\x02" "cos;rm\nsystem\n.", "bad name in global"),
        CASE("\x80\x02\x8c\x01" "a\x8c\x00\x93.", "bad name in global"),
        CASE("\x80\x02K\x01\x8c\x01" "a\x93.", "STACK_GLOBAL needs two strings"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buf b = {0};
        put(&b, cases[i].bytes, cases[i].len);
        expect_fail(&b, SR_ERR_FORMAT, cases[i].needle);
    }
}

static void test_huge_lengths(void **state)
{
    (void)state;
    buf b = {0};
    lit(&b, "\x80\x02X\xff\xff\xff\xff");
    repeat(&b, "A", 94);
    expect_fail(&b, SR_ERR_FORMAT, "string of 4294967295 bytes but only 94 remain");

    lit(&b, "\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\x7f.");
    expect_fail(&b, SR_ERR_FORMAT, "string of 9223372036854775807 bytes");

    lit(&b, "\x80\x02T\xfe\xff\xff\xff.");
    expect_fail(&b, SR_ERR_FORMAT, "negative string length");

    lit(&b, "\x80\x02N");
    op(&b, 'r'); le(&b, 0xFFFFFFF0u, 4);
    op(&b, '.');
    expect_fail(&b, SR_ERR_LIMIT, "pickle memo index 4294967280 is beyond the 1 values built so far");

    lit(&b, "\x80\x02\x8a\xff");
    repeat(&b, "\x01", 255);
    op(&b, '.');
    expect_fail(&b, SR_ERR_FORMAT, "LONG1 of 255 bytes (limit 8)");

    lit(&b, "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x80N.");
    expect_fail(&b, SR_ERR_FORMAT, "frame of 9223372036854775808 bytes");
}

static void test_unsupported_opcodes(void **state)
{
    (void)state;
    /* NEWOBJ, INST, OBJ, EXT1, PERSID, POP, DUP, BINBYTES. */
    static const uint8_t codes[] = {0x81, 'i', 'o', 0x82, 'P', '0', '2', 'B'};
    for (size_t i = 0; i < sizeof codes; i++) {
        buf b = {0};
        lit(&b, "\x80\x02N");
        op(&b, codes[i]);
        op(&b, '.');
        char want[64];
        snprintf(want, sizeof want, "unsupported pickle opcode 0x%02x at offset 3", codes[i]);
        expect_fail(&b, SR_ERR_FORMAT, want);
    }
    buf b = {0};
    lit(&b, "\x80\x01N.");
    expect_fail(&b, SR_ERR_UNSUPPORTED, "pickle protocol 1 is not supported");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_dict_shape),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_memo_and_consumed),
        cmocka_unit_test(test_protocol4),
        cmocka_unit_test(test_reduce_payloads),
        cmocka_unit_test(test_nullifai),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_unsupported_opcodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
