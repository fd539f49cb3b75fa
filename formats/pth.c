/* torch.save checkpoints: tells the container formats apart, walks the zip
 * layout torch >= 1.6 writes, and gives the restricted unpickler
 * (pickle.c) the torch knowledge it lacks: which globals may appear, how
 * storages, tensors and OrderedDicts are rebuilt. Finds the state dict in
 * a training checkpoint. Every tensor's geometry is checked against its
 * storage before a byte of it is read; packed float32 tensors become views
 * into the mapped file, everything else an owned float32 copy. The zip
 * structure itself is zip.c's, the legacy container pth_legacy.c's. */
#include "formats/pth.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pth_internal.h"
#include "base/error.h"
#include "base/half.h"
#include "base/hash.h"
#include "base/threads.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pth.c reads little-endian storages in place"
#endif

#define MAX_DIMS 8                       /* torch allows more; srrun needs 4 */
/* data.pkl inflated: some 150 bytes a tensor, so room for 50,000 tensors,
 * more than pickle.h's limits let it build. What it builds within them
 * (some 40 MB at worst) is counted by pickle.c; this bounds the rest. */
#define MAX_PICKLE_SIZE (UINT64_C(1) << 23)
/* Converted copies may use this many times the file's size (f16 doubles;
 * a stride-0 view could otherwise ask for terabytes). */
#define COPY_BUDGET_FACTOR 4

enum { TAG_STORAGE = 1, TAG_TENSOR };

typedef sr_pth_storage storage;
typedef sr_pth_loader loader;

static const sr_pth_dtype dtypes[] = {
    {"FloatStorage", "float32", 4, SR_PTH_F32},
    {"HalfStorage", "float16", 2, SR_PTH_F16},
    {"BFloat16Storage", "bfloat16", 2, SR_PTH_BF16},
    {"DoubleStorage", "float64", 8, SR_PTH_F64},
    /* Parsed, never weights: num_batches_tracked, counters, masks. */
    {"LongStorage", "int64", 8, SR_PTH_INT},
    {"IntStorage", "int32", 4, SR_PTH_INT},
    {"ShortStorage", "int16", 2, SR_PTH_INT},
    {"CharStorage", "int8", 1, SR_PTH_INT},
    {"ByteStorage", "uint8", 1, SR_PTH_INT},
    {"BoolStorage", "bool", 1, SR_PTH_INT},
    {"ComplexFloatStorage", "complex64", 8, SR_PTH_REFUSED},
    {"ComplexDoubleStorage", "complex128", 16, SR_PTH_REFUSED},
    {"QInt8Storage", "qint8", 1, SR_PTH_REFUSED},
    {"QUInt8Storage", "quint8", 1, SR_PTH_REFUSED},
    {"QInt32Storage", "qint32", 4, SR_PTH_REFUSED},
    {"UntypedStorage", "untyped bytes", 1, SR_PTH_REFUSED},
};

typedef struct tensor {
    storage *storage;
    int64_t offset;                     /* in elements */
    const sr_pickle_value *size, *stride; /* tuples, checked when named */
} tensor;

/* ---- Globals and what they build --------------------------------------- */

const sr_pth_dtype *sr_pth_dtype_by_class(const char *module, const char *name)
{
    if (strcmp(module, "torch") != 0 && strcmp(module, "torch.cuda") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (strcmp(name, dtypes[i].storage) == 0)
            return &dtypes[i];
    return NULL;
}

static bool is_global(const sr_pickle_value *v, const char *module, const char *name)
{
    return v->kind == SR_PICKLE_GLOBAL && strcmp(v->u.global.module, module) == 0 &&
           strcmp(v->u.global.name, name) == 0;
}

static bool find_class(void *user, const char *module, const char *name,
                       const char **why)
{
    (void)user;
    static const char *const allowed[][2] = {
        {"collections", "OrderedDict"},
        {"torch._utils", "_rebuild_tensor_v2"},
        {"torch._utils", "_rebuild_tensor"},
        {"torch._utils", "_rebuild_parameter"},
        {"torch._utils", "_rebuild_parameter_with_state"},
        {"torch", "Size"},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (strcmp(module, allowed[i][0]) == 0 && strcmp(name, allowed[i][1]) == 0)
            return true;
    if (sr_pth_dtype_by_class(module, name))
        return true;
    if (strncmp(module, "torch.nn.modules", 16) == 0 && (module[16] == '\0' || module[16] == '.'))
        *why = "file holds a pickled model class; save state_dict instead";
    return false;
}

static bool is_tensor(const sr_pickle_value *v)
{
    return v->kind == SR_PICKLE_OBJECT && v->u.object.tag == TAG_TENSOR;
}

static bool is_storage(const sr_pickle_value *v)
{
    return v->kind == SR_PICKLE_OBJECT && v->u.object.tag == TAG_STORAGE;
}

static sr_pickle_value *new_object(sr_pickle *p, int tag, size_t size)
{
    sr_pickle_value *v = sr_pickle_value_new(p, SR_PICKLE_OBJECT);
    if (!v || !(v->u.object.ptr = sr_pickle_alloc(p, size)))
        return NULL;
    v->u.object.tag = tag;
    return v;
}

/* _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...), with
 * argument kinds already checked. */
static sr_pickle_value *make_tensor(sr_pickle *p, sr_pickle_value *const *a)
{
    sr_pickle_value *v = new_object(p, TAG_TENSOR, sizeof(tensor));
    if (v) {
        tensor *t = v->u.object.ptr;
        t->storage = a[0]->u.object.ptr;
        t->offset = a[1]->u.i;
        t->size = a[2];
        t->stride = a[3];
    }
    return v;
}

static sr_status reduce(void *user, sr_pickle *p, const sr_pickle_value *fn,
                        const sr_pickle_value *args, sr_pickle_value **result,
                        sr_error *err)
{
    (void)user;
    sr_pickle_value *const *a = args->u.seq.items;
    int64_t n = args->u.seq.n;
    bool shape_ok = true;
    if (is_global(fn, "collections", "OrderedDict")) {
        shape_ok = n == 0;
        *result = shape_ok ? sr_pickle_value_new(p, SR_PICKLE_DICT) : NULL;
    } else if (is_global(fn, "torch", "Size")) {
        shape_ok = n == 1 && a[0]->kind == SR_PICKLE_TUPLE;
        *result = shape_ok ? a[0] : NULL;
    } else if (is_global(fn, "torch._utils", "_rebuild_tensor_v2") ||
               is_global(fn, "torch._utils", "_rebuild_tensor")) {
        bool v2 = strcmp(fn->u.global.name, "_rebuild_tensor_v2") == 0;
        /* v2 adds requires_grad, backward_hooks and (newer) metadata, all
         * irrelevant to inference. */
        shape_ok = (v2 ? n == 6 || n == 7 : n == 4) && is_storage(a[0]) &&
                   a[1]->kind == SR_PICKLE_INT && a[2]->kind == SR_PICKLE_TUPLE &&
                   a[3]->kind == SR_PICKLE_TUPLE;
        *result = shape_ok ? make_tensor(p, a) : NULL;
    } else if (is_global(fn, "torch._utils", "_rebuild_parameter") ||
               is_global(fn, "torch._utils", "_rebuild_parameter_with_state")) {
        /* A Parameter is its data tensor; the state only holds Python
         * attributes. */
        int64_t want = strcmp(fn->u.global.name, "_rebuild_parameter") == 0 ? 3 : 4;
        shape_ok = n == want && is_tensor(a[0]);
        *result = shape_ok ? a[0] : NULL;
    } else {
        return sr_fail(err, SR_ERR_FORMAT, "%s.%s cannot be called (byte %llu)",
                       fn->u.global.module, fn->u.global.name,
                       (unsigned long long)sr_pickle_offset(p));
    }
    if (!shape_ok)
        return sr_fail(err, SR_ERR_FORMAT, "bad arguments to %s.%s (byte %llu)",
                       fn->u.global.module, fn->u.global.name,
                       (unsigned long long)sr_pickle_offset(p));
    if (!*result)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    return SR_OK;
}

/* BUILD appears once, giving the state dict's OrderedDict its _metadata
 * (module versions). Inference has no use for it. */
static sr_status build(void *user, sr_pickle *p, sr_pickle_value *obj,
                       const sr_pickle_value *state, sr_error *err)
{
    (void)user;
    (void)state;
    if (obj->kind != SR_PICKLE_DICT)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "pickle sets state on a %s (byte %llu); only dicts are supported",
                       sr_pickle_kind_name(obj->kind),
                       (unsigned long long)sr_pickle_offset(p));
    return SR_OK;
}

/* ---- Storages ---------------------------------------------------------- */

bool sr_pth_plain_string(const sr_pickle_value *v, uint64_t max_len, bool digits)
{
    if (v->kind != SR_PICKLE_STRING || v->u.str.len == 0 || v->u.str.len > max_len)
        return false;
    for (uint64_t i = 0; i < v->u.str.len; i++) {
        unsigned char c = (unsigned char)v->u.str.s[i];
        if (digits ? !(c >= '0' && c <= '9') : (c < 0x20 || c > 0x7e))
            return false;
    }
    return true;
}

/* The slot of `key` in L->by_key: where it is, or the free slot it would
 * take. The table is never full. */
static storage **key_slot(storage **table, uint64_t cap, uint64_t seed, const char *key)
{
    uint64_t i = sr_hash_string(key, seed) & (cap - 1);
    while (table[i] && strcmp(table[i]->key, key) != 0)
        i = (i + 1) & (cap - 1);
    return &table[i];
}

sr_pth_storage *sr_pth_find_storage(const loader *L, const char *key)
{
    return L->by_key ? *key_slot(L->by_key, L->by_key_cap, L->by_key_seed, key) : NULL;
}

/* Adds `s` (whose key is new) to L->by_key, kept at most half full. */
static bool index_storage(loader *L, storage *s)
{
    if ((uint64_t)(L->n_storages + 1) * 2 > L->by_key_cap) {
        uint64_t cap = L->by_key_cap ? 2 * L->by_key_cap : 64;
        storage **table = calloc((size_t)cap, sizeof *table);
        if (!table)
            return false;
        if (!L->by_key)
            L->by_key_seed = sr_hash_seed(table);
        for (uint64_t i = 0; i < L->by_key_cap; i++)
            if (L->by_key[i])
                *key_slot(table, cap, L->by_key_seed, L->by_key[i]->key) = L->by_key[i];
        free(L->by_key);
        L->by_key = table;
        L->by_key_cap = cap;
    }
    *key_slot(L->by_key, L->by_key_cap, L->by_key_seed, s->key) = s;
    L->n_storages++;
    return true;
}

sr_status sr_pth_new_storage(loader *L, const char *key, const sr_pth_dtype *dt,
                             int64_t numel, storage **out, sr_error *err)
{
    uint64_t nbytes;
    if (dt->kind == SR_PTH_REFUSED)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "storage '%s' holds %s (%s), which srrun cannot load",
                       key, dt->name, dt->storage);
    if (numel < 0 || __builtin_mul_overflow((uint64_t)numel, (uint64_t)dt->elem_size, &nbytes) ||
        nbytes > INT64_MAX)
        return sr_fail(err, SR_ERR_FORMAT, "storage '%s' size overflows", key);
    storage *s = sr_pickle_alloc(L->pickle, sizeof *s);
    if (!s)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    s->key = key;
    s->dtype = dt;
    s->numel = numel;
    if (!index_storage(L, s))
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    s->next = L->storages;
    L->storages = s;
    *out = s;
    return SR_OK;
}

sr_status sr_pth_storage_value(sr_pickle *p, storage *s, sr_pickle_value **result,
                               sr_error *err)
{
    *result = sr_pickle_value_new(p, SR_PICKLE_OBJECT);
    if (!*result)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    (*result)->u.object.tag = TAG_STORAGE;
    (*result)->u.object.ptr = s;
    return SR_OK;
}

sr_pickle_hooks sr_pth_hooks(loader *L,
                             sr_status (*persistent_load)(void *, sr_pickle *,
                                                          const sr_pickle_value *,
                                                          sr_pickle_value **, sr_error *))
{
    return (sr_pickle_hooks){L, find_class, reduce, persistent_load, build};
}

/* Finds data/<key> and checks its size against the pid; its bytes are
 * read by read_record, when a weight needs them. */
static sr_status find_storage_record(loader *L, storage *s, sr_error *err)
{
    uint64_t nbytes = (uint64_t)s->numel * (uint64_t)s->dtype->elem_size; /* checked */
    char name[sizeof L->prefix + 32];
    snprintf(name, sizeof name, "%sdata/%s", L->prefix, s->key);
    const sr_zip_entry *e = sr_zip_find(L->zip, name);
    if (!e)
        return sr_fail(err, SR_ERR_FORMAT, "missing storage record 'data/%s'", s->key);
    if (e->size != nbytes)
        return sr_fail(err, SR_ERR_FORMAT, "storage '%s' size mismatch: %llu bytes, expected %llu",
                       s->key, (unsigned long long)e->size, (unsigned long long)nbytes);
    s->record = e;
    return SR_OK;
}

/* Maps (stored) or inflates (deflated) the storage's record, once. An
 * inflated record is a copy, so it is charged to the copy budget: deflate
 * reaches about 1000:1, and a tensor the network will not use may still
 * name the record. */
static sr_status read_record(loader *L, storage *s, sr_error *err)
{
    if (s->bytes || !s->record)
        return SR_OK;
    if (s->record->method != 0) {
        if (s->record->size > L->copy_budget)
            return sr_fail(err, SR_ERR_LIMIT,
                           "storage '%s': inflated records and converted copies would exceed "
                           "%d times the file size",
                           s->key, COPY_BUDGET_FACTOR);
        L->copy_budget -= s->record->size;
    }
    sr_status st = sr_zip_read(L->zip, s->record, s->record->size, 0, &s->bytes, &s->owned, err);
    s->in_file = st == SR_OK && !s->owned;
    return st;
}

/* BINPERSID in data.pkl: ('storage', torch.<T>Storage, key, location, numel). */
static sr_status persistent_load(void *user, sr_pickle *p, const sr_pickle_value *pid,
                                 sr_pickle_value **result, sr_error *err)
{
    loader *L = user;
    sr_pickle_value *const *a = pid->u.seq.items;
    const sr_pth_dtype *dt = NULL;
    if (pid->kind != SR_PICKLE_TUPLE || pid->u.seq.n != 5 ||
        a[0]->kind != SR_PICKLE_STRING || strcmp(a[0]->u.str.s, "storage") != 0 ||
        a[1]->kind != SR_PICKLE_GLOBAL ||
        !(dt = sr_pth_dtype_by_class(a[1]->u.global.module, a[1]->u.global.name)) ||
        !sr_pth_plain_string(a[2], SR_PTH_MAX_KEY_LEN, true) ||
        !sr_pth_plain_string(a[3], 64, false) || a[4]->kind != SR_PICKLE_INT || a[4]->u.i < 0)
        return sr_fail(err, SR_ERR_FORMAT, "bad storage reference in data.pkl (byte %llu)",
                       (unsigned long long)sr_pickle_offset(p));
    const char *key = a[2]->u.str.s;
    int64_t numel = a[4]->u.i;
    storage *s = sr_pth_find_storage(L, key);
    sr_status st = SR_OK;
    if (s && (s->dtype != dt || s->numel != numel))
        return sr_fail(err, SR_ERR_FORMAT, "storage '%s' is referenced as two different storages",
                       key);
    if (!s && (st = sr_pth_new_storage(L, key, dt, numel, &s, err)) == SR_OK)
        st = find_storage_record(L, s, err);
    return st != SR_OK ? st : sr_pth_storage_value(p, s, result, err);
}

/* ---- Tensors ----------------------------------------------------------- */

/* Whether no value is NaN or infinite (exponent bits all ones). A loop
 * without an early exit, which the compiler vectorises: one isfinite() at
 * a time took some 117M instructions for RealESRGAN_x4plus's 16.7M
 * weights. */
static bool all_finite(const float *x, int64_t n)
{
    const uint32_t exponent = UINT32_C(0x7f800000);
    uint32_t special = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        special |= (bits & exponent) == exponent;
    }
    return !special;
}

typedef struct geometry {
    int ndim;
    int64_t size[MAX_DIMS], stride[MAX_DIMS];
    int64_t numel;
    bool packed; /* row-major without gaps */
} geometry;

/* The checks of docs/formats.md 1.7, in checked 64-bit arithmetic: afterwards
 * every element the tensor names lies inside its storage. */
static sr_status check_geometry(const char *name, const tensor *t, geometry *g,
                                sr_error *err)
{
    const sr_pickle_value *size = t->size, *stride = t->stride;
    const storage *s = t->storage;
    if (size->u.seq.n > MAX_DIMS)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has %lld dimensions (limit %d)",
                       name, (long long)size->u.seq.n, MAX_DIMS);
    if (stride->u.seq.n != size->u.seq.n)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has %lld sizes but %lld strides",
                       name, (long long)size->u.seq.n, (long long)stride->u.seq.n);
    g->ndim = (int)size->u.seq.n;
    for (int i = 0; i < g->ndim; i++) {
        const sr_pickle_value *n = size->u.seq.items[i], *st = stride->u.seq.items[i];
        if (n->kind != SR_PICKLE_INT || st->kind != SR_PICKLE_INT)
            return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has a non-integer size or stride",
                           name);
        g->size[i] = n->u.i;
        g->stride[i] = st->u.i;
        if (g->size[i] < 0)
            return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has negative size", name);
        if (g->stride[i] < 0)
            return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has negative stride", name);
    }
    if (t->offset < 0)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has negative storage offset", name);
    /* Even an empty tensor starts inside its storage (at its end at most),
     * so the offset in bytes cannot overflow. */
    if (t->offset > s->numel)
        return sr_fail(err, SR_ERR_FORMAT,
                       "tensor '%s' has storage offset %lld beyond storage '%s' of %lld elements",
                       name, (long long)t->offset, s->key, (long long)s->numel);

    /* numel multiplies only the non-zero sizes so that no product of the
     * shape, in any order, overflows later on. */
    int64_t numel = 1, last = t->offset, expect = 1;
    bool empty = false;
    g->packed = true;
    for (int i = g->ndim - 1; i >= 0; i--) {
        int64_t reach;
        if (g->size[i] == 0) {
            empty = true;
            continue;
        }
        if (__builtin_mul_overflow(numel, g->size[i], &numel) ||
            __builtin_mul_overflow(g->size[i] - 1, g->stride[i], &reach) ||
            __builtin_add_overflow(last, reach, &last))
            return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' size overflows", name);
        /* A dimension of size 1 may carry any stride. */
        if (g->size[i] != 1 && g->stride[i] != expect)
            g->packed = false;
        expect = numel;
    }
    if (empty)
        numel = 0;
    g->numel = numel;
    if (numel > 0 && last >= s->numel) {
        int64_t esize = s->dtype->elem_size, need, at;
        /* In bytes the same span can still overflow. */
        if (__builtin_mul_overflow(last - t->offset + 1, esize, &need) ||
            __builtin_mul_overflow(t->offset, esize, &at))
            return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' size overflows", name);
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' needs %lld bytes at offset %lld; storage '%s' has %lld",
                       name, (long long)need, (long long)at, s->key,
                       (long long)(s->numel * esize));
    }
    return SR_OK;
}

/* Element `i` of storage bytes as float; memcpy because a repacked or
 * inflated storage need not be aligned. */
static float load_elem(const uint8_t *bytes, sr_pth_elem kind, int64_t i)
{
    switch (kind) {
    case SR_PTH_F16:
    case SR_PTH_BF16: {
        uint16_t h;
        memcpy(&h, bytes + 2 * i, 2);
        if (kind == SR_PTH_F16)
            return sr_half_to_float(h);
        uint32_t bits = (uint32_t)h << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    case SR_PTH_F64: {
        double d;
        memcpy(&d, bytes + 8 * i, 8);
        return (float)d;
    }
    default: {
        float f;
        memcpy(&f, bytes + 4 * i, 4);
        return f;
    }
    }
}

/* Copies the tensor's elements in row-major order, walking the strides
 * with an odometer (every position was bounds-checked by check_geometry). */
static void gather(const tensor *t, const geometry *g, float *out)
{
    const storage *s = t->storage;
    int64_t idx[MAX_DIMS] = {0}, pos = t->offset;
    for (int64_t k = 0; k < g->numel; k++) {
        out[k] = load_elem(s->bytes, s->dtype->kind, pos);
        for (int d = g->ndim - 1; d >= 0; d--) {
            if (idx[d] + 1 < g->size[d]) {
                idx[d]++;
                pos += g->stride[d];
                break;
            }
            pos -= (g->size[d] - 1) * g->stride[d];
            idx[d] = 0;
        }
    }
}

static sr_status add_tensor(loader *L, const char *name, const tensor *t,
                            sr_weights *w, sr_error *err)
{
    geometry g;
    sr_status st = check_geometry(name, t, &g, err);
    const storage *s = t->storage;
    if (st != SR_OK || s->dtype->kind == SR_PTH_INT)
        return st;
    if (g.numel > 0 && (st = read_record(L, t->storage, err)) != SR_OK)
        return st;
    const float *data = NULL;
    float *owned = NULL;
    bool view = s->dtype->kind == SR_PTH_F32 && g.packed && s->in_file &&
                (uintptr_t)(s->bytes + 4 * t->offset) % alignof(float) == 0;
    if (view && g.numel > 0) {
        data = (const float *)(const void *)(s->bytes + 4 * t->offset);
    } else if (g.numel > 0) {
        uint64_t nbytes = (uint64_t)g.numel * sizeof(float); /* numel <= 2^62 here */
        if (g.numel > INT64_MAX / 4 || nbytes > L->copy_budget)
            return sr_fail(err, SR_ERR_LIMIT, "tensor '%s': converted copies would exceed %d times the file size",
                           name, COPY_BUDGET_FACTOR);
        L->copy_budget -= nbytes;
        if (!(owned = malloc((size_t)nbytes)))
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for tensor '%s'", name);
        gather(t, &g, owned);
        data = owned;
    }
    return sr_weights_add(w, name, g.ndim, g.size, data, owned, err);
}

typedef struct finite_job {
    const sr_weights *w;
    atomic_int_fast64_t next;  /* the next weight to check */
    atomic_int_fast64_t first; /* the first found not finite, or n_items */
} finite_job;

static void check_finite(void *arg)
{
    finite_job *job = arg;
    for (int64_t i; (i = atomic_fetch_add(&job->next, 1)) < job->w->n_items;) {
        const sr_weight *x = &job->w->items[i];
        int_fast64_t first = atomic_load(&job->first);
        if (i < first && !all_finite(x->data, sr_weight_numel(x)))
            while (i < first && !atomic_compare_exchange_weak(&job->first, &first, i))
                ;
    }
}

/* The first of the weights from `from` on that holds NaN or Inf, or -1.
 * On threads of its own (base/threads.h): it reads every weight again,
 * RealESRGAN_x4plus's 67 MB in some 8 ms on one core. */
static int64_t first_not_finite(const sr_weights *w, int64_t from, int n_threads)
{
    finite_job job = {.w = w};
    atomic_init(&job.next, from);
    atomic_init(&job.first, w->n_items);
    sr_run_threads(sr_threads_for(w->n_items - from, n_threads), check_finite, &job);
    const int64_t first = atomic_load(&job.first);
    return first < w->n_items ? first : -1;
}

/* ---- Checkpoints ------------------------------------------------------- */

/* Where training code keeps the weights beside epochs and optimizer state,
 * in order of preference: BasicSR's exponential moving average
 * (params_ema) before the raw weights (params); then the names of
 * Lightning, the PyTorch tutorials and GAN scripts. The first that holds a
 * dict of tensors wins; everything else in the checkpoint is skipped. */
static const char *const wrapper_keys[] = {
    "params_ema", "params", "state_dict", "model_state_dict", "model", "generator", "netG",
};

static bool is_tensor_dict(const sr_pickle_value *v)
{
    if (v->kind != SR_PICKLE_DICT)
        return false;
    for (int64_t i = 0; i < v->u.dict.n; i++)
        if (!is_tensor(v->u.dict.values[i]))
            return false;
    return true;
}

static const sr_pickle_value *dict_get(const sr_pickle_value *d, const char *key)
{
    for (int64_t i = 0; i < d->u.dict.n; i++) {
        const sr_pickle_value *k = d->u.dict.keys[i];
        if (k->kind == SR_PICKLE_STRING && k->u.str.len == strlen(key) &&
            memcmp(k->u.str.s, key, k->u.str.len) == 0)
            return d->u.dict.values[i];
    }
    return NULL;
}

static sr_status no_state_dict(const sr_pickle_value *root, const char *what, sr_error *err)
{
    char keys[200];
    size_t len = 0;
    keys[0] = '\0';
    for (int64_t i = 0; i < root->u.dict.n && len < sizeof keys; i++) {
        const sr_pickle_value *k = root->u.dict.keys[i];
        bool named = sr_pth_plain_string(k, 64, false);
        len += (size_t)snprintf(keys + len, sizeof keys - len, "%s%s%s%s", i ? ", " : "",
                                named ? "'" : "<", named ? k->u.str.s : sr_pickle_kind_name(k->kind),
                                named ? "'" : ">");
    }
    if (len >= sizeof keys)
        strcpy(keys + sizeof keys - 4, "...");
    return sr_fail(err, SR_ERR_FORMAT,
                   "no state dict in %s: its top-level keys are %s; expected tensors, or a dict "
                   "of tensors under params_ema, params, state_dict, model_state_dict, model, "
                   "generator or netG",
                   what, keys);
}

/* nn.DataParallel saves 'module.<key>', torch.compile '_orig_mod.<key>':
 * the prefix goes when every key carries it (they may nest). */
static size_t common_prefix(const sr_pickle_value *dict)
{
    static const char *const prefixes[] = {"module.", "_orig_mod."};
    size_t skip = 0;
    for (bool again = dict->u.dict.n > 0; again;) {
        again = false;
        for (size_t j = 0; j < sizeof prefixes / sizeof *prefixes && !again; j++) {
            size_t len = strlen(prefixes[j]);
            bool all = true;
            for (int64_t i = 0; i < dict->u.dict.n && all; i++) {
                const sr_pickle_value *k = dict->u.dict.keys[i];
                all = sr_pth_plain_string(k, 1024, false) && k->u.str.len > skip + len &&
                      memcmp(k->u.str.s + skip, prefixes[j], len) == 0;
            }
            if (all) {
                skip += len;
                again = true;
            }
        }
    }
    return skip;
}

sr_status sr_pth_add_checkpoint(loader *L, const sr_pickle_value *root, const char *what,
                                sr_weights *w, sr_error *err)
{
    if (root->kind != SR_PICKLE_DICT)
        return sr_fail(err, SR_ERR_FORMAT, "%s holds a %s, not a state_dict", what,
                       sr_pickle_kind_name(root->kind));
    const sr_pickle_value *dict = is_tensor_dict(root) ? root : NULL;
    for (size_t i = 0; !dict && i < sizeof wrapper_keys / sizeof *wrapper_keys; i++) {
        const sr_pickle_value *v = dict_get(root, wrapper_keys[i]);
        dict = v && is_tensor_dict(v) ? v : NULL;
    }
    if (!dict)
        return no_state_dict(root, what, err);
    size_t skip = common_prefix(dict);
    const int64_t from = w->n_items;
    for (int64_t i = 0; i < dict->u.dict.n; i++) {
        const sr_pickle_value *k = dict->u.dict.keys[i];
        if (!sr_pth_plain_string(k, 1024, false))
            return sr_fail(err, SR_ERR_FORMAT, "state_dict key %lld is not a printable string",
                           (long long)i);
        sr_status st = add_tensor(L, k->u.str.s + skip, dict->u.dict.values[i]->u.object.ptr,
                                  w, err);
        if (st != SR_OK)
            return st;
    }
    const int64_t bad = first_not_finite(w, from, L->n_threads);
    if (bad < 0)
        return SR_OK;
    const char *name = w->items[bad].name;
    bool f64 = false; /* then the value may be finite but beyond float32's range */
    for (int64_t i = 0; i < dict->u.dict.n; i++)
        if (strcmp(dict->u.dict.keys[i]->u.str.s + skip, name) == 0) {
            const tensor *t = dict->u.dict.values[i]->u.object.ptr;
            f64 = t->storage->dtype->kind == SR_PTH_F64;
            break;
        }
    return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' holds NaN or Inf%s", name,
                   f64 ? " (or a value beyond float32 range)" : "");
}

/* ---- The zip archive --------------------------------------------------- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The prefix is the first entry's folder; every entry must share it. */
static sr_status check_layout(loader *L, sr_error *err)
{
    int64_t n = sr_zip_count(L->zip);
    if (n == 0)
        return sr_fail(err, SR_ERR_FORMAT, "missing data.pkl (empty archive)");
    const char *first = sr_zip_entry_at(L->zip, 0)->name, *slash = strchr(first, '/');
    size_t len = slash ? (size_t)(slash - first) + 1 : 0; /* with the slash */
    if (len < 2 || len >= sizeof L->prefix)
        return sr_fail(err, SR_ERR_FORMAT, "entries outside archive folder ('%s')", first);
    memcpy(L->prefix, first, len);
    L->prefix[len] = '\0';
    bool torchscript = false;
    for (int64_t i = 0; i < n; i++) {
        const char *name = sr_zip_entry_at(L->zip, i)->name;
        if (!has_prefix(name, L->prefix))
            return sr_fail(err, SR_ERR_FORMAT, "entries outside archive folder '%.*s' ('%s')",
                           (int)len - 1, L->prefix, name);
        const char *rest = name + len;
        if (strcmp(rest, "constants.pkl") == 0 || has_prefix(rest, "code/"))
            torchscript = true;
    }
    if (torchscript)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "TorchScript archive; save model.state_dict() instead");
    return SR_OK;
}

static const sr_zip_entry *find_record(const loader *L, const char *record)
{
    char name[1024];
    if ((size_t)snprintf(name, sizeof name, "%s%s", L->prefix, record) >= sizeof name)
        return NULL;
    return sr_zip_find(L->zip, name);
}

static sr_status load_zip(loader *L, sr_weights *w, sr_error *err)
{
    sr_status st = sr_zip_open(&L->zip, L->file->data, L->file->size, err);
    if (st != SR_OK || (st = check_layout(L, err)) != SR_OK)
        return st;

    /* Absent in older files, which are little-endian. */
    const sr_zip_entry *order = find_record(L, "byteorder");
    if (order) {
        const uint8_t *bytes;
        void *owned;
        if ((st = sr_zip_read(L->zip, order, 16, 1, &bytes, &owned, err)) != SR_OK)
            return st;
        bool little = order->size == 6 && memcmp(bytes, "little", 6) == 0;
        bool big = order->size == 3 && memcmp(bytes, "big", 3) == 0;
        free(owned);
        if (big)
            return sr_fail(err, SR_ERR_UNSUPPORTED, "big-endian checkpoint is not supported");
        if (!little)
            return sr_fail(err, SR_ERR_FORMAT, "bad byteorder record");
    }

    const sr_zip_entry *pkl = find_record(L, "data.pkl");
    if (!pkl)
        return sr_fail(err, SR_ERR_FORMAT, "missing data.pkl");
    const uint8_t *bytes;
    void *owned_pkl;
    if ((st = sr_zip_read(L->zip, pkl, MAX_PICKLE_SIZE, 1, &bytes, &owned_pkl, err)) != SR_OK)
        return st;
    const sr_pickle_hooks hooks = sr_pth_hooks(L, persistent_load);
    sr_pickle_value *root = NULL;
    st = sr_pickle_new(&L->pickle, &hooks, err);
    if (st == SR_OK)
        st = sr_pickle_load(L->pickle, bytes, pkl->size, &root, NULL, err);
    if (st == SR_OK)
        st = sr_pth_add_checkpoint(L, root, "data.pkl", w, err);
    free(owned_pkl);
    return st;
}

/* ---- Entry point ------------------------------------------------------- */

static sr_status unsupported_container(const sr_mapped_file *f, sr_error *err)
{
    static const uint8_t sevenzip[] = {'7', 'z', 0xbc, 0xaf, 0x27, 0x1c};
    const uint8_t *d = f->data;
    uint64_t n = f->size;
    if (n >= 8 && memcmp(d, "PYTORCH1", 8) == 0)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "unsupported preview format (PYTORCH1 container)");
    if (n >= 262 && memcmp(d + 257, "ustar", 5) == 0)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "tar checkpoint of PyTorch 0.1 is too old to load");
    if (n >= 2 && d[0] == 0x1f && d[1] == 0x8b)
        return sr_fail(err, SR_ERR_FORMAT, "gzip file, not a PyTorch checkpoint");
    if (n >= sizeof sevenzip && memcmp(d, sevenzip, sizeof sevenzip) == 0)
        return sr_fail(err, SR_ERR_FORMAT, "7z archive, not a PyTorch checkpoint");
    if (n >= 3 && d[0] == 0x80 && d[1] >= 2 && d[1] <= 5)
        return sr_fail(err, SR_ERR_FORMAT, "a bare pickle stream, not a torch.save checkpoint");
    return sr_fail(err, SR_ERR_FORMAT, "not a PyTorch checkpoint (unrecognised header)");
}

sr_status sr_pth_load(const sr_mapped_file *file, int n_threads, sr_weights *weights,
                      sr_error *err)
{
    if (!file || !weights)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "sr_pth_load: no file or weights");
    if (file->size == 0)
        return sr_fail(err, SR_ERR_FORMAT, "empty file");
    const uint8_t *d = file->data;
    bool zip = file->size >= 4 && memcmp(d, "PK\x03\x04", 4) == 0;
    /* The legacy stream opens with PROTO 2 and a LONG1: its magic number,
     * checked by the legacy reader. */
    bool legacy = file->size >= 3 && d[0] == 0x80 && d[1] == 0x02 && d[2] == 0x8a;
    if (!zip && !legacy)
        return unsupported_container(file, err);

    loader L = {.file = file, .n_threads = n_threads};
    L.copy_budget = file->size > UINT64_MAX / COPY_BUDGET_FACTOR
                        ? UINT64_MAX
                        : file->size * COPY_BUDGET_FACTOR;
    int64_t n_before = weights->n_items;
    sr_status st = zip ? load_zip(&L, weights, err) : sr_pth_load_legacy(&L, weights, err);
    for (storage *s = L.storages; s; s = s->next)
        free(s->owned);
    free(L.by_key);
    sr_pickle_free(L.pickle);
    sr_zip_close(L.zip);
    if (st != SR_OK)
        sr_weights_truncate(weights, n_before); /* as the caller gave it */
    return st;
}
