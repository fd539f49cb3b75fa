/* The restricted pickle VM: opcode decoding, the stack, the mark stack, the
 * memo and the value arena. What globals mean, and what REDUCE, BUILD and
 * persistent ids build, is the caller's business (see pickle.h); this file
 * only guarantees that a stream cannot read outside its bytes, build more
 * than the SR_PICKLE_MAX_* limits allow, nest without limit, or reach
 * anything the hooks did not allow. */
#include "formats/pickle.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* Longest module or name a GLOBAL may carry; real ones are far shorter. */
#define MAX_GLOBAL_NAME 256
/* A LONG1 wider than this cannot be an int64 (the 10-byte legacy magic is
 * matched by its bytes, not parsed). */
#define MAX_LONG1_BYTES 8
#define ARENA_BLOCK (64 * 1024)
/* A pickler numbers its memo from 0, one PUT per value it has just built,
 * so an index stays below the values built so far; the slack covers hooks
 * that return a value they were given (torch.Size). The memo is an array
 * of 8 bytes a slot, so this bounds it by what was built, not by what an
 * index claims. */
#define MEMO_SLACK 1024

enum opcode {
    OP_MARK = '(', OP_STOP = '.', OP_BINFLOAT = 'G', OP_BININT = 'J',
    OP_BININT1 = 'K', OP_BININT2 = 'M', OP_NONE = 'N', OP_BINPERSID = 'Q',
    OP_REDUCE = 'R', OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U',
    OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c',
    OP_APPENDS = 'e', OP_BINGET = 'h', OP_LONG_BINGET = 'j',
    OP_EMPTY_LIST = ']', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r',
    OP_SETITEM = 's', OP_TUPLE = 't', OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u',
    OP_EMPTY_DICT = '}',
    OP_PROTO = 0x80, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a,
    /* protocol 4 */
    OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94, OP_FRAME = 0x95,
};

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    max_align_t data[];
} arena_block;

struct sr_pickle {
    sr_pickle_hooks hooks;
    arena_block *arena;

    /* The run in progress. */
    const uint8_t *data;
    uint64_t size, pos, op_start;
    sr_pickle_value **stack;
    int64_t n_stack, stack_cap;
    int64_t marks[SR_PICKLE_MAX_DEPTH]; /* stack heights at each MARK */
    int n_marks;
    sr_pickle_value **memo; /* a slot is NULL until PUT */
    uint64_t memo_cap, n_memo;

    /* What all runs have built, against the SR_PICKLE_MAX_* limits. */
    int64_t n_values, n_items;
    uint64_t string_bytes;
    bool values_exhausted; /* sr_pickle_value_new refused one */
};

static const char *const kind_names[] = {
    [SR_PICKLE_NONE] = "None",    [SR_PICKLE_BOOL] = "bool",
    [SR_PICKLE_INT] = "int",      [SR_PICKLE_FLOAT] = "float",
    [SR_PICKLE_STRING] = "str",   [SR_PICKLE_TUPLE] = "tuple",
    [SR_PICKLE_LIST] = "list",    [SR_PICKLE_DICT] = "dict",
    [SR_PICKLE_GLOBAL] = "global", [SR_PICKLE_OBJECT] = "object",
};
_Static_assert(sizeof kind_names / sizeof *kind_names == SR_PICKLE_KIND_COUNT,
               "one name per kind");

const char *sr_pickle_kind_name(sr_pickle_kind kind)
{
    if ((unsigned)kind >= SR_PICKLE_KIND_COUNT)
        return "unknown";
    return kind_names[kind];
}

/* ---- Arena ------------------------------------------------------------ */

void *sr_pickle_alloc(sr_pickle *p, size_t size)
{
    size_t align = alignof(max_align_t);
    if (size > SIZE_MAX - align - sizeof(arena_block))
        return NULL;
    size = (size + align - 1) / align * align;
    arena_block *b = p->arena;
    if (!b || b->size - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = calloc(1, sizeof *b + cap);
        if (!b)
            return NULL;
        b->size = cap;
        if (p->arena && size > ARENA_BLOCK) {
            /* Keep filling the current block; park the big one behind it. */
            b->next = p->arena->next;
            p->arena->next = b;
        } else {
            b->next = p->arena;
            p->arena = b;
        }
    }
    void *out = (char *)b->data + b->used;
    b->used += size;
    return out;
}

sr_pickle_value *sr_pickle_value_new(sr_pickle *p, sr_pickle_kind kind)
{
    if (p->n_values >= SR_PICKLE_MAX_VALUES) {
        p->values_exhausted = true; /* reported by sr_pickle_load */
        return NULL;
    }
    sr_pickle_value *v = sr_pickle_alloc(p, sizeof *v);
    if (v) {
        v->kind = kind;
        p->n_values++;
    }
    return v;
}

sr_status sr_pickle_new(sr_pickle **out, const sr_pickle_hooks *hooks,
                        sr_error *err)
{
    sr_pickle *p = calloc(1, sizeof *p);
    if (!p)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    if (hooks)
        p->hooks = *hooks;
    *out = p;
    return SR_OK;
}

void sr_pickle_free(sr_pickle *p)
{
    if (!p)
        return;
    while (p->arena) {
        arena_block *next = p->arena->next;
        free(p->arena);
        p->arena = next;
    }
    free(p->stack);
    free(p->memo);
    free(p);
}

uint64_t sr_pickle_offset(const sr_pickle *p)
{
    return p->op_start;
}

/* ---- Errors and input -------------------------------------------------- */

static sr_status malformed(sr_pickle *p, sr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sr_status malformed(sr_pickle *p, sr_error *err, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sr_fail(err, SR_ERR_FORMAT, "malformed pickle at offset %llu: %s",
                   (unsigned long long)p->op_start, what);
}

static sr_status no_memory(sr_error *err)
{
    return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
}

static sr_status over_limit(sr_pickle *p, sr_error *err, const char *what,
                            long long limit)
{
    return sr_fail(err, SR_ERR_LIMIT,
                   "pickle has more than %lld %s (limit; byte %llu); no state dict needs so many",
                   limit, what, (unsigned long long)p->op_start);
}

static sr_status too_deep(sr_error *err)
{
    return sr_fail(err, SR_ERR_FORMAT, "pickle nested too deep (limit %d)",
                   SR_PICKLE_MAX_DEPTH);
}

/* A little-endian unsigned operand of n <= 8 bytes. */
static sr_status take_le(sr_pickle *p, int n, uint64_t *out, sr_error *err)
{
    if ((uint64_t)n > p->size - p->pos)
        return malformed(p, err, "%d-byte operand but only %llu bytes remain", n,
                         (unsigned long long)(p->size - p->pos));
    *out = 0;
    for (int i = n - 1; i >= 0; i--)
        *out = *out << 8 | p->data[p->pos + (uint64_t)i];
    p->pos += (uint64_t)n;
    return SR_OK;
}

/* ---- Stack, marks, memo ------------------------------------------------ */

static sr_status push(sr_pickle *p, sr_pickle_value *v, sr_error *err)
{
    if (!v)
        return no_memory(err);
    if (p->n_stack == SR_PICKLE_MAX_STACK)
        return over_limit(p, err, "items on its stack", SR_PICKLE_MAX_STACK);
    if (p->n_stack == p->stack_cap) {
        int64_t cap = p->stack_cap ? 2 * p->stack_cap : 64;
        sr_pickle_value **s = realloc(p->stack, (size_t)cap * sizeof *s);
        if (!s)
            return no_memory(err);
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->n_stack++] = v;
    return SR_OK;
}

/* Items below the newest MARK belong to an enclosing construction and are
 * out of reach, as in CPython's unpickler. */
static int64_t fence(const sr_pickle *p)
{
    return p->n_marks ? p->marks[p->n_marks - 1] : 0;
}

static sr_status pop(sr_pickle *p, sr_pickle_value **v, sr_error *err)
{
    if (p->n_stack <= fence(p))
        return malformed(p, err, "pop from empty stack");
    *v = p->stack[--p->n_stack];
    return SR_OK;
}

static sr_status top(sr_pickle *p, sr_pickle_value **v, sr_error *err)
{
    if (p->n_stack <= fence(p))
        return malformed(p, err, "empty stack");
    *v = p->stack[p->n_stack - 1];
    return SR_OK;
}

static sr_status pop_mark(sr_pickle *p, int64_t *mark, sr_error *err)
{
    if (p->n_marks == 0)
        return malformed(p, err, "no MARK on the mark stack");
    *mark = p->marks[--p->n_marks];
    return SR_OK;
}

static sr_status memo_put(sr_pickle *p, uint64_t index, sr_error *err)
{
    sr_pickle_value *v = NULL;
    sr_status s = top(p, &v, err);
    if (s != SR_OK)
        return s;
    if (index >= (uint64_t)p->n_values + MEMO_SLACK)
        return sr_fail(err, SR_ERR_LIMIT,
                       "pickle memo index %llu is beyond the %lld values built so far "
                       "(limit; byte %llu)",
                       (unsigned long long)index, (long long)p->n_values,
                       (unsigned long long)p->op_start);
    if (index >= p->memo_cap) {
        /* Doubling, but never past what the values built allow. */
        const uint64_t most = (uint64_t)SR_PICKLE_MAX_VALUES + MEMO_SLACK;
        uint64_t cap = p->memo_cap ? 2 * p->memo_cap : 64;
        if (cap > most)
            cap = most;
        if (cap <= index)
            cap = index + 1;
        sr_pickle_value **m = realloc(p->memo, (size_t)cap * sizeof *m);
        if (!m)
            return no_memory(err);
        memset(m + p->memo_cap, 0, (size_t)(cap - p->memo_cap) * sizeof *m);
        p->memo = m;
        p->memo_cap = cap;
    }
    if (!p->memo[index])
        p->n_memo++;
    p->memo[index] = v;
    return SR_OK;
}

static sr_status memo_get(sr_pickle *p, uint64_t index, sr_error *err)
{
    if (index >= p->memo_cap || !p->memo[index])
        return malformed(p, err, "memo slot %llu is empty",
                         (unsigned long long)index);
    return push(p, p->memo[index], err);
}

/* ---- Values ------------------------------------------------------------ */

/* Counts n more container slots against SR_PICKLE_MAX_ITEMS. */
static sr_status take_items(sr_pickle *p, int64_t n, sr_error *err)
{
    if (n > SR_PICKLE_MAX_ITEMS - p->n_items)
        return over_limit(p, err, "items in its tuples, lists and dicts",
                          SR_PICKLE_MAX_ITEMS);
    p->n_items += n;
    return SR_OK;
}

/* Records that `holder` now holds `item`: seals the item and raises the
 * holder's depth, refusing past the limit. Only an unsealed holder can
 * change, so the one cycle left to refuse is a container holding itself. */
static sr_status hold(sr_pickle *p, sr_pickle_value *holder,
                      sr_pickle_value *item, sr_error *err)
{
    if (item == holder)
        return malformed(p, err, "a %s cannot contain itself",
                         sr_pickle_kind_name(item->kind));
    item->sealed = true;
    if (item->depth + 1 > holder->depth)
        holder->depth = item->depth + 1;
    if (holder->depth > SR_PICKLE_MAX_DEPTH)
        return too_deep(err);
    return SR_OK;
}

/* Grows an arena array of pointers; the old copy is simply abandoned,
 * which at most doubles the arena use of a container. */
static sr_pickle_value **grow(sr_pickle *p, sr_pickle_value **old, int64_t n,
                              int64_t cap)
{
    sr_pickle_value **a = sr_pickle_alloc(p, (size_t)cap * sizeof *a);
    if (a && n)
        memcpy(a, old, (size_t)n * sizeof *a);
    return a;
}

/* Moves the stack items from `from` to the top into a new tuple. */
static sr_status make_tuple(sr_pickle *p, int64_t from, sr_error *err)
{
    int64_t n = p->n_stack - from;
    sr_status s = take_items(p, n, err);
    if (s != SR_OK)
        return s;
    sr_pickle_value *t = sr_pickle_value_new(p, SR_PICKLE_TUPLE);
    if (!t || (n && !(t->u.seq.items = grow(p, NULL, 0, n))))
        return no_memory(err);
    for (int64_t i = 0; i < n; i++) {
        if ((s = hold(p, t, p->stack[from + i], err)) != SR_OK)
            return s;
        t->u.seq.items[i] = p->stack[from + i];
    }
    t->u.seq.n = t->u.seq.cap = n;
    p->n_stack = from;
    return push(p, t, err);
}

static sr_status tuple_n(sr_pickle *p, int64_t n, sr_error *err)
{
    if (p->n_stack - fence(p) < n)
        return malformed(p, err, "pop from empty stack");
    return make_tuple(p, p->n_stack - n, err);
}

/* The container at stack index `at`, which APPEND(S)/SETITEM(S) change. */
static sr_status target(sr_pickle *p, int64_t at, sr_pickle_kind kind,
                        const char *op, sr_pickle_value **out, sr_error *err)
{
    if (at < fence(p))
        return malformed(p, err, "%s on empty stack", op);
    sr_pickle_value *v = p->stack[at];
    if (v->kind != kind)
        return malformed(p, err, "%s on a %s", op, sr_pickle_kind_name(v->kind));
    if (v->sealed)
        return malformed(p, err, "%s on a %s already stored elsewhere", op,
                         sr_pickle_kind_name(v->kind));
    *out = v;
    return SR_OK;
}

/* APPEND/APPENDS: moves stack[from..] into the list at stack[from - 1]. */
static sr_status append(sr_pickle *p, int64_t from, const char *op,
                        sr_error *err)
{
    sr_pickle_value *list = NULL;
    sr_status s = target(p, from - 1, SR_PICKLE_LIST, op, &list, err);
    if (s != SR_OK)
        return s;
    int64_t n = p->n_stack - from, have = list->u.seq.n;
    if ((s = take_items(p, n, err)) != SR_OK)
        return s;
    if (have + n > list->u.seq.cap) {
        int64_t cap = 2 * list->u.seq.cap > have + n ? 2 * list->u.seq.cap : have + n;
        list->u.seq.items = grow(p, list->u.seq.items, have, cap);
        if (!list->u.seq.items)
            return no_memory(err);
        list->u.seq.cap = cap;
    }
    for (int64_t i = 0; i < n; i++) {
        if ((s = hold(p, list, p->stack[from + i], err)) != SR_OK)
            return s;
        list->u.seq.items[have + i] = p->stack[from + i];
    }
    list->u.seq.n = have + n;
    p->n_stack = from;
    return SR_OK;
}

/* SETITEM/SETITEMS: moves key/value pairs from stack[from..] into the dict
 * at stack[from - 1]. */
static sr_status set_items(sr_pickle *p, int64_t from, const char *op,
                           sr_error *err)
{
    int64_t n = p->n_stack - from;
    if (n % 2)
        return malformed(p, err, "%s with an odd number of items", op);
    sr_pickle_value *d = NULL;
    sr_status s = target(p, from - 1, SR_PICKLE_DICT, op, &d, err);
    if (s != SR_OK)
        return s;
    int64_t have = d->u.dict.n;
    if ((s = take_items(p, n, err)) != SR_OK)
        return s;
    if (have + n / 2 > d->u.dict.cap) {
        int64_t cap = 2 * d->u.dict.cap > have + n / 2 ? 2 * d->u.dict.cap : have + n / 2;
        d->u.dict.keys = grow(p, d->u.dict.keys, have, cap);
        d->u.dict.values = grow(p, d->u.dict.values, have, cap);
        if (!d->u.dict.keys || !d->u.dict.values)
            return no_memory(err);
        d->u.dict.cap = cap;
    }
    for (int64_t i = 0; i < n / 2; i++) {
        sr_pickle_value *k = p->stack[from + 2 * i], *v = p->stack[from + 2 * i + 1];
        if ((s = hold(p, d, k, err)) != SR_OK || (s = hold(p, d, v, err)) != SR_OK)
            return s;
        d->u.dict.keys[have + i] = k;
        d->u.dict.values[have + i] = v;
    }
    d->u.dict.n = have + n / 2;
    p->n_stack = from;
    return SR_OK;
}

static sr_status push_int(sr_pickle *p, int64_t i, sr_error *err)
{
    sr_pickle_value *v = sr_pickle_value_new(p, SR_PICKLE_INT);
    if (v)
        v->u.i = i;
    return push(p, v, err);
}

/* A string whose length takes `len_bytes` bytes (a signed int32 for
 * BINSTRING). The length is checked against the bytes left before anything
 * is allocated. */
static sr_status push_string(sr_pickle *p, int len_bytes, bool is_signed,
                             sr_error *err)
{
    uint64_t len = 0;
    sr_status s = take_le(p, len_bytes, &len, err);
    if (s != SR_OK)
        return s;
    if (is_signed && len >> 31)
        return malformed(p, err, "negative string length");
    if (len > p->size - p->pos)
        return malformed(p, err, "string of %llu bytes but only %llu remain",
                         (unsigned long long)len,
                         (unsigned long long)(p->size - p->pos));
    if (len + 1 > SR_PICKLE_MAX_STRING_BYTES - p->string_bytes)
        return over_limit(p, err, "bytes of strings", SR_PICKLE_MAX_STRING_BYTES);
    p->string_bytes += len + 1;
    const uint8_t *bytes = p->data + p->pos;
    p->pos += len;
    sr_pickle_value *v = sr_pickle_value_new(p, SR_PICKLE_STRING);
    char *copy = v ? sr_pickle_alloc(p, (size_t)len + 1) : NULL;
    if (!copy)
        return no_memory(err);
    memcpy(copy, bytes, (size_t)len);
    v->u.str.s = copy;
    v->u.str.len = len;
    return push(p, v, err);
}

/* Module and attribute names: dotted Python identifiers, ASCII only. */
static bool plain_name(const char *s, size_t len)
{
    if (len == 0 || len > MAX_GLOBAL_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Asks find_class before building anything: a refused global fails here,
 * whatever follows it in the stream. */
static sr_status push_global(sr_pickle *p, const char *module, size_t module_len,
                             const char *name, size_t name_len, sr_error *err)
{
    if (!plain_name(module, module_len) || !plain_name(name, name_len))
        return malformed(p, err, "bad name in global");
    char m[MAX_GLOBAL_NAME + 1], n[MAX_GLOBAL_NAME + 1];
    memcpy(m, module, module_len);
    m[module_len] = '\0';
    memcpy(n, name, name_len);
    n[name_len] = '\0';
    const char *why = NULL;
    if (!p->hooks.find_class || !p->hooks.find_class(p->hooks.user, m, n, &why))
        return sr_fail(err, SR_ERR_UNSAFE, "global '%s.%s' is not allowed (byte %llu)%s%s",
                       m, n, (unsigned long long)p->op_start, why ? ": " : "",
                       why ? why : "");
    sr_pickle_value *v = sr_pickle_value_new(p, SR_PICKLE_GLOBAL);
    char *ms = v ? sr_pickle_alloc(p, module_len + 1) : NULL;
    char *ns = ms ? sr_pickle_alloc(p, name_len + 1) : NULL;
    if (!ns)
        return no_memory(err);
    memcpy(ms, m, module_len + 1);
    memcpy(ns, n, name_len + 1);
    v->u.global.module = ms;
    v->u.global.name = ns;
    return push(p, v, err);
}

/* GLOBAL: "module\nname\n". */
static sr_status op_global(sr_pickle *p, sr_error *err)
{
    const char *parts[2];
    size_t lens[2];
    for (int i = 0; i < 2; i++) {
        const uint8_t *start = p->data + p->pos;
        uint64_t left = p->size - p->pos;
        uint64_t limit = left < MAX_GLOBAL_NAME + 1 ? left : MAX_GLOBAL_NAME + 1;
        const uint8_t *nl = memchr(start, '\n', (size_t)limit);
        if (!nl)
            return malformed(p, err, "global name not terminated");
        parts[i] = (const char *)start;
        lens[i] = (size_t)(nl - start);
        p->pos += lens[i] + 1;
    }
    return push_global(p, parts[0], lens[0], parts[1], lens[1], err);
}

static sr_status op_stack_global(sr_pickle *p, sr_error *err)
{
    sr_pickle_value *module = NULL, *name = NULL;
    sr_status s;
    if ((s = pop(p, &name, err)) != SR_OK || (s = pop(p, &module, err)) != SR_OK)
        return s;
    if (module->kind != SR_PICKLE_STRING || name->kind != SR_PICKLE_STRING)
        return malformed(p, err, "STACK_GLOBAL needs two strings");
    return push_global(p, module->u.str.s, (size_t)module->u.str.len,
                       name->u.str.s, (size_t)name->u.str.len, err);
}

static sr_status op_reduce(sr_pickle *p, sr_error *err)
{
    sr_pickle_value *fn = NULL, *args = NULL, *result = NULL;
    sr_status s;
    if ((s = pop(p, &args, err)) != SR_OK || (s = pop(p, &fn, err)) != SR_OK)
        return s;
    if (fn->kind != SR_PICKLE_GLOBAL || args->kind != SR_PICKLE_TUPLE)
        return malformed(p, err, "REDUCE needs a global and a tuple, not %s and %s",
                         sr_pickle_kind_name(fn->kind),
                         sr_pickle_kind_name(args->kind));
    args->sealed = true;
    if (!p->hooks.reduce)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "cannot call '%s.%s' (byte %llu)",
                       fn->u.global.module, fn->u.global.name,
                       (unsigned long long)p->op_start);
    s = p->hooks.reduce(p->hooks.user, p, fn, args, &result, err);
    if (s != SR_OK)
        return s;
    return push(p, result, err);
}

static sr_status op_build(sr_pickle *p, sr_error *err)
{
    sr_pickle_value *state = NULL, *obj = NULL;
    sr_status s;
    if ((s = pop(p, &state, err)) != SR_OK || (s = top(p, &obj, err)) != SR_OK)
        return s;
    state->sealed = true;
    if (!p->hooks.build)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "pickle BUILD not supported (byte %llu)",
                       (unsigned long long)p->op_start);
    return p->hooks.build(p->hooks.user, p, obj, state, err);
}

static sr_status op_binpersid(sr_pickle *p, sr_error *err)
{
    sr_pickle_value *pid = NULL, *result = NULL;
    sr_status s = pop(p, &pid, err);
    if (s != SR_OK)
        return s;
    pid->sealed = true;
    if (!p->hooks.persistent_load)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "pickle persistent id not supported (byte %llu)",
                       (unsigned long long)p->op_start);
    s = p->hooks.persistent_load(p->hooks.user, p, pid, &result, err);
    if (s != SR_OK)
        return s;
    return push(p, result, err);
}

/* LONG1: n-byte two's complement, little-endian. */
static sr_status op_long1(sr_pickle *p, sr_error *err)
{
    uint64_t n = 0, bits = 0;
    sr_status s = take_le(p, 1, &n, err);
    if (s != SR_OK)
        return s;
    if (n > MAX_LONG1_BYTES)
        return malformed(p, err, "LONG1 of %llu bytes (limit %d)",
                         (unsigned long long)n, MAX_LONG1_BYTES);
    if ((s = take_le(p, (int)n, &bits, err)) != SR_OK)
        return s;
    if (n > 0 && n < 8 && (bits >> (8 * n - 1)) & 1)
        bits |= ~UINT64_C(0) << (8 * n); /* sign-extend */
    int64_t v;
    memcpy(&v, &bits, sizeof v);
    return push_int(p, v, err);
}

static sr_status op_binfloat(sr_pickle *p, sr_error *err)
{
    uint64_t bits = 0;
    sr_status s = take_le(p, 8, &bits, err);
    if (s != SR_OK)
        return s;
    bits = __builtin_bswap64(bits); /* big-endian, unlike everything else */
    sr_pickle_value *v = sr_pickle_value_new(p, SR_PICKLE_FLOAT);
    if (v)
        memcpy(&v->u.f, &bits, sizeof v->u.f);
    return push(p, v, err);
}

static sr_status push_scalar(sr_pickle *p, sr_pickle_kind kind, bool b,
                             sr_error *err)
{
    sr_pickle_value *v = sr_pickle_value_new(p, kind);
    if (v)
        v->u.b = b;
    return push(p, v, err);
}

/* One opcode. Sets *done at STOP. */
static sr_status step(sr_pickle *p, bool *done, sr_error *err)
{
    uint64_t u = 0;
    int64_t mark = 0;
    sr_status s;
    p->op_start = p->pos;
    if (p->pos >= p->size)
        return malformed(p, err, "stream ends without STOP");
    uint8_t op = p->data[p->pos++];
    switch (op) {
    case OP_PROTO:
        if ((s = take_le(p, 1, &u, err)) != SR_OK)
            return s;
        if (u < 2 || u > 5)
            return sr_fail(err, SR_ERR_UNSUPPORTED, "pickle protocol %llu is not supported",
                           (unsigned long long)u);
        return SR_OK;
    case OP_FRAME: /* a buffering hint; the bytes follow inline */
        if ((s = take_le(p, 8, &u, err)) != SR_OK)
            return s;
        if (u > p->size - p->pos)
            return malformed(p, err, "frame of %llu bytes but only %llu remain",
                             (unsigned long long)u,
                             (unsigned long long)(p->size - p->pos));
        return SR_OK;
    case OP_STOP:
        if (p->n_marks || p->n_stack != 1)
            return malformed(p, err, "STOP with %lld items and %d marks left",
                             (long long)p->n_stack, p->n_marks);
        *done = true;
        return SR_OK;
    case OP_BINPUT:
    case OP_LONG_BINPUT:
        if ((s = take_le(p, op == OP_BINPUT ? 1 : 4, &u, err)) != SR_OK)
            return s;
        return memo_put(p, u, err);
    case OP_MEMOIZE:
        return memo_put(p, p->n_memo, err);
    case OP_BINGET:
    case OP_LONG_BINGET:
        if ((s = take_le(p, op == OP_BINGET ? 1 : 4, &u, err)) != SR_OK)
            return s;
        return memo_get(p, u, err);
    case OP_MARK:
        if (p->n_marks == SR_PICKLE_MAX_DEPTH)
            return too_deep(err);
        p->marks[p->n_marks++] = p->n_stack;
        return SR_OK;
    case OP_TUPLE:
        if ((s = pop_mark(p, &mark, err)) != SR_OK)
            return s;
        return make_tuple(p, mark, err);
    case OP_EMPTY_TUPLE:
        return tuple_n(p, 0, err);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3:
        return tuple_n(p, op - OP_TUPLE1 + 1, err);
    case OP_EMPTY_DICT:
        return push(p, sr_pickle_value_new(p, SR_PICKLE_DICT), err);
    case OP_EMPTY_LIST:
        return push(p, sr_pickle_value_new(p, SR_PICKLE_LIST), err);
    case OP_SETITEM:
        if (p->n_stack - fence(p) < 2)
            return malformed(p, err, "SETITEM without a key and a value");
        return set_items(p, p->n_stack - 2, "SETITEM", err);
    case OP_SETITEMS:
        if ((s = pop_mark(p, &mark, err)) != SR_OK)
            return s;
        return set_items(p, mark, "SETITEMS", err);
    case OP_APPEND:
        if (p->n_stack - fence(p) < 2)
            return malformed(p, err, "APPEND without a list and an item");
        return append(p, p->n_stack - 1, "APPEND", err);
    case OP_APPENDS:
        if ((s = pop_mark(p, &mark, err)) != SR_OK)
            return s;
        return append(p, mark, "APPENDS", err);
    case OP_NONE:
        return push_scalar(p, SR_PICKLE_NONE, false, err);
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        return push_scalar(p, SR_PICKLE_BOOL, op == OP_NEWTRUE, err);
    case OP_BININT:
        if ((s = take_le(p, 4, &u, err)) != SR_OK)
            return s;
        return push_int(p, (int32_t)(uint32_t)u, err);
    case OP_BININT1:
    case OP_BININT2:
        if ((s = take_le(p, op == OP_BININT1 ? 1 : 2, &u, err)) != SR_OK)
            return s;
        return push_int(p, (int64_t)u, err);
    case OP_LONG1:
        return op_long1(p, err);
    case OP_BINFLOAT:
        return op_binfloat(p, err);
    case OP_SHORT_BINSTRING:
    case OP_SHORT_BINUNICODE:
        return push_string(p, 1, false, err);
    case OP_BINSTRING:
        return push_string(p, 4, true, err);
    case OP_BINUNICODE:
        return push_string(p, 4, false, err);
    case OP_BINUNICODE8:
        return push_string(p, 8, false, err);
    case OP_GLOBAL:
        return op_global(p, err);
    case OP_STACK_GLOBAL:
        return op_stack_global(p, err);
    case OP_REDUCE:
        return op_reduce(p, err);
    case OP_BUILD:
        return op_build(p, err);
    case OP_BINPERSID:
        return op_binpersid(p, err);
    default:
        return sr_fail(err, SR_ERR_FORMAT, "unsupported pickle opcode 0x%02x at offset %llu",
                       op, (unsigned long long)p->op_start);
    }
}

sr_status sr_pickle_load(sr_pickle *p, const uint8_t *data, uint64_t size,
                         sr_pickle_value **result, uint64_t *consumed,
                         sr_error *err)
{
    p->data = data;
    p->size = size;
    p->pos = p->op_start = 0;
    p->n_stack = 0;
    p->n_marks = 0;
    p->n_memo = 0;
    if (p->memo)
        memset(p->memo, 0, (size_t)p->memo_cap * sizeof *p->memo);
    bool done = false;
    sr_status s = SR_OK;
    while (!done && s == SR_OK)
        s = step(p, &done, err);
    /* The VM or a hook met sr_pickle_value_new's refusal as a NULL. */
    if (s == SR_ERR_NO_MEMORY && p->values_exhausted)
        return over_limit(p, err, "values", SR_PICKLE_MAX_VALUES);
    if (s != SR_OK)
        return s;
    *result = p->stack[0];
    if (consumed)
        *consumed = p->pos;
    return SR_OK;
}
