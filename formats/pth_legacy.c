/* The legacy torch.save container (PyTorch < 1.6, or
 * _use_new_zipfile_serialization=False): five pickles back to back (magic
 * number, protocol version, sys_info, the object, the sorted storage keys),
 * then for each listed key an int64 little-endian element count and the raw
 * little-endian elements, up to the end of the file (docs/formats.md 1.3). This
 * file finds each storage's bytes in the mapped file; the pickles run in
 * the same restricted unpickler as data.pkl, and what they hold is turned
 * into weights by pth.c. */
#include <string.h>

#include "formats/pth_internal.h"
#include "base/error.h"

#define LEGACY_PROTOCOL 1001

/* pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2) */
static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

/* The root storage `key` as the pid describes it, made on first sight. */
static sr_status root_storage(sr_pth_loader *L, const char *key, const sr_pth_dtype *dt,
                              int64_t numel, sr_pth_storage **out, sr_error *err)
{
    sr_pth_storage *s = sr_pth_find_storage(L, key);
    if (!s) {
        sr_status st = sr_pth_new_storage(L, key, dt, numel, &s, err);
        if (st != SR_OK)
            return st;
        s->in_file = true;
    } else if (s->root || s->dtype != dt || s->numel != numel) {
        return sr_fail(err, SR_ERR_FORMAT, "storage '%s' is referenced as two different storages",
                       key);
    }
    *out = s;
    return SR_OK;
}

/* view_metadata (view_key, offset, view_numel) of files before PyTorch 1.0:
 * elements [offset, offset + view_numel) of the root storage. */
static sr_status view_storage(sr_pth_loader *L, sr_pth_storage *root,
                              const sr_pickle_value *meta, sr_pth_storage **out,
                              sr_pickle *p, sr_error *err)
{
    sr_pickle_value *const *m = meta->u.seq.items;
    if (meta->kind != SR_PICKLE_TUPLE || meta->u.seq.n != 3 ||
        !sr_pth_plain_string(m[0], SR_PTH_MAX_KEY_LEN, true) || m[1]->kind != SR_PICKLE_INT ||
        m[2]->kind != SR_PICKLE_INT || m[1]->u.i < 0 || m[2]->u.i < 0)
        return sr_fail(err, SR_ERR_FORMAT, "bad storage view in the checkpoint (byte %llu)",
                       (unsigned long long)sr_pickle_offset(p));
    const char *key = m[0]->u.str.s;
    int64_t offset = m[1]->u.i, numel = m[2]->u.i, end;
    if (__builtin_add_overflow(offset, numel, &end) || end > root->numel)
        return sr_fail(err, SR_ERR_FORMAT,
                       "storage view '%s' of %lld elements at %lld lies outside storage '%s' of %lld",
                       key, (long long)numel, (long long)offset, root->key, (long long)root->numel);
    sr_pth_storage *s = sr_pth_find_storage(L, key);
    if (!s) {
        sr_status st = sr_pth_new_storage(L, key, root->dtype, numel, &s, err);
        if (st != SR_OK)
            return st;
        s->root = root;
        s->root_offset = offset;
        s->in_file = true;
    } else if (s == root ? offset != 0 || numel != root->numel
                         : s->root != root || s->root_offset != offset || s->numel != numel) {
        return sr_fail(err, SR_ERR_FORMAT, "storage '%s' is referenced as two different storages",
                       key);
    }
    *out = s;
    return SR_OK;
}

/* BINPERSID: ('storage', torch.<T>Storage, root_key, location, numel,
 * view_metadata or None). Bytes come later, from the stream's tail. */
static sr_status persistent_load(void *user, sr_pickle *p, const sr_pickle_value *pid,
                                 sr_pickle_value **result, sr_error *err)
{
    sr_pth_loader *L = user;
    sr_pickle_value *const *a = pid->u.seq.items;
    const sr_pth_dtype *dt = NULL;
    if (pid->kind != SR_PICKLE_TUPLE || pid->u.seq.n != 6 ||
        a[0]->kind != SR_PICKLE_STRING || strcmp(a[0]->u.str.s, "storage") != 0 ||
        a[1]->kind != SR_PICKLE_GLOBAL ||
        !(dt = sr_pth_dtype_by_class(a[1]->u.global.module, a[1]->u.global.name)) ||
        !sr_pth_plain_string(a[2], SR_PTH_MAX_KEY_LEN, true) ||
        !sr_pth_plain_string(a[3], 64, false) || a[4]->kind != SR_PICKLE_INT ||
        a[4]->u.i < 0 || (a[5]->kind != SR_PICKLE_NONE && a[5]->kind != SR_PICKLE_TUPLE))
        return sr_fail(err, SR_ERR_FORMAT, "bad storage reference in the checkpoint (byte %llu)",
                       (unsigned long long)sr_pickle_offset(p));
    sr_pth_storage *s = NULL;
    sr_status st = root_storage(L, a[2]->u.str.s, dt, a[4]->u.i, &s, err);
    if (st == SR_OK && a[5]->kind == SR_PICKLE_TUPLE)
        st = view_storage(L, s, a[5], &s, p, err);
    return st != SR_OK ? st : sr_pth_storage_value(p, s, result, err);
}

/* Runs the pickle at *pos and moves past it. */
static sr_status next_pickle(sr_pth_loader *L, uint64_t *pos, sr_pickle_value **v,
                             sr_error *err)
{
    uint64_t used = 0;
    sr_status st = sr_pickle_load(L->pickle, L->file->data + *pos, L->file->size - *pos, v,
                                  &used, err);
    *pos += used;
    return st;
}

/* The header pickles after the magic: protocol version, then sys_info. */
static sr_status check_header(sr_pth_loader *L, uint64_t *pos, sr_error *err)
{
    sr_pickle_value *v;
    sr_status st = next_pickle(L, pos, &v, err);
    if (st != SR_OK)
        return st;
    if (v->kind != SR_PICKLE_INT)
        return sr_fail(err, SR_ERR_FORMAT, "bad legacy header: protocol version is a %s",
                       sr_pickle_kind_name(v->kind));
    if (v->u.i != LEGACY_PROTOCOL)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "unsupported legacy protocol version %lld",
                       (long long)v->u.i);
    if ((st = next_pickle(L, pos, &v, err)) != SR_OK)
        return st;
    if (v->kind != SR_PICKLE_DICT)
        return sr_fail(err, SR_ERR_FORMAT, "bad legacy header: sys_info is a %s",
                       sr_pickle_kind_name(v->kind));
    /* Only the byte order matters. PyTorch has written little-endian bytes
     * whatever the machine since 1.x, but a file that says otherwise came
     * from an old PyTorch on a big-endian machine: refused rather than
     * guessed at. */
    for (int64_t i = 0; i < v->u.dict.n; i++) {
        const sr_pickle_value *k = v->u.dict.keys[i], *x = v->u.dict.values[i];
        if (k->kind == SR_PICKLE_STRING && strcmp(k->u.str.s, "little_endian") == 0 &&
            ((x->kind == SR_PICKLE_BOOL && !x->u.b) || (x->kind == SR_PICKLE_INT && !x->u.i)))
            return sr_fail(err, SR_ERR_UNSUPPORTED,
                           "big-endian legacy checkpoint is not supported; "
                           "re-save it on a little-endian machine");
    }
    return SR_OK;
}

/* The key list: each key once, each a storage the object pickle named, and
 * every storage it named listed. Checked before any storage byte is used. */
static sr_status check_key_list(sr_pth_loader *L, const sr_pickle_value *keys, sr_error *err)
{
    if (keys->kind != SR_PICKLE_LIST)
        return sr_fail(err, SR_ERR_FORMAT, "storage key list is a %s, not a list",
                       sr_pickle_kind_name(keys->kind));
    for (int64_t i = 0; i < keys->u.seq.n; i++) {
        const sr_pickle_value *k = keys->u.seq.items[i];
        if (!sr_pth_plain_string(k, SR_PTH_MAX_KEY_LEN, true))
            return sr_fail(err, SR_ERR_FORMAT, "storage key list entry %lld is not a storage key",
                           (long long)i);
        sr_pth_storage *s = sr_pth_find_storage(L, k->u.str.s);
        if (!s || s->root)
            return sr_fail(err, SR_ERR_FORMAT,
                           "storage '%s' is in the key list but not in the checkpoint",
                           k->u.str.s);
        if (s->listed)
            return sr_fail(err, SR_ERR_FORMAT, "storage '%s' is listed twice", s->key);
        s->listed = true;
    }
    for (sr_pth_storage *s = L->storages; s; s = s->next)
        if (!s->root && !s->listed)
            return sr_fail(err, SR_ERR_FORMAT, "storage '%s' is missing from the key list",
                           s->key);
    return SR_OK;
}

/* The storages' raw bytes, in key-list order, up to the end of the file. */
static sr_status read_storages(sr_pth_loader *L, const sr_pickle_value *keys, uint64_t pos,
                               sr_error *err)
{
    const uint8_t *d = L->file->data;
    const uint64_t size = L->file->size;
    for (int64_t i = 0; i < keys->u.seq.n; i++) {
        sr_pth_storage *s = sr_pth_find_storage(L, keys->u.seq.items[i]->u.str.s);
        if (size - pos < 8)
            return sr_fail(err, SR_ERR_FORMAT, "file ends before storage '%s'", s->key);
        uint64_t count = 0, nbytes, left = size - pos - 8;
        for (int b = 7; b >= 0; b--)
            count = count << 8 | d[pos + (uint64_t)b];
        if ((int64_t)count < 0 ||
            __builtin_mul_overflow(count, (uint64_t)s->dtype->elem_size, &nbytes) ||
            nbytes > left)
            return sr_fail(err, SR_ERR_FORMAT, "storage '%s' declares %lld elements but %llu bytes remain",
                           s->key, (long long)count, (unsigned long long)left);
        if ((int64_t)count != s->numel)
            return sr_fail(err, SR_ERR_FORMAT,
                           "storage '%s' holds %lld elements in the file but %lld in the pickle",
                           s->key, (long long)count, (long long)s->numel);
        s->bytes = d + pos + 8;
        pos += 8 + nbytes;
    }
    if (pos != size)
        return sr_fail(err, SR_ERR_FORMAT, "%llu trailing bytes after the last storage",
                       (unsigned long long)(size - pos));
    /* Views in bounds of their roots were checked when they were named. */
    for (sr_pth_storage *s = L->storages; s; s = s->next)
        if (s->root)
            s->bytes = s->root->bytes + s->root_offset * s->dtype->elem_size;
    return SR_OK;
}

sr_status sr_pth_load_legacy(sr_pth_loader *L, sr_weights *w, sr_error *err)
{
    if (L->file->size < sizeof magic || memcmp(L->file->data, magic, sizeof magic) != 0)
        return sr_fail(err, SR_ERR_FORMAT, "bad legacy magic number");
    uint64_t pos = sizeof magic;
    const sr_pickle_hooks hooks = sr_pth_hooks(L, persistent_load);
    sr_pickle_value *root = NULL, *keys = NULL;
    sr_status st = sr_pickle_new(&L->pickle, &hooks, err);
    if (st == SR_OK)
        st = check_header(L, &pos, err);
    if (st == SR_OK)
        st = next_pickle(L, &pos, &root, err);
    if (st == SR_OK)
        st = next_pickle(L, &pos, &keys, err);
    if (st == SR_OK)
        st = check_key_list(L, keys, err);
    if (st == SR_OK)
        st = read_storages(L, keys, pos, err);
    if (st == SR_OK)
        st = sr_pth_add_checkpoint(L, root, "the checkpoint", w, err);
    return st;
}
