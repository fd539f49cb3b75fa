/* What the .pth tests share (test_pth.c, test_pth_archive.c): state-dict
 * pickles and torch-style zips built from tensor specs, and loading them
 * from memory. Header-only, after cmocka.h, testutil.h, pickle_bytes.h and
 * zip_bytes.h. */
#ifndef SR_TESTS_FORMATS_PTH_FILES_H
#define SR_TESTS_FORMATS_PTH_FILES_H

#include "formats/pth.h"

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

static inline void emit_pid(buf *b, const tspec *t)
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

static inline void emit_tensor(buf *b, const tspec *t)
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
static inline void state_dict_pickle(buf *b, const tspec *t, int n)
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
static inline void make_pth(zip_writer *z, const buf *pkl, const record *r, int n)
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

static inline sr_status load_bytes(const uint8_t *data, size_t size, sr_weights *w, sr_error *err)
{
    sr_mapped_file f = {data, size};
    return sr_pth_load(&f, 0, w, err);
}

static inline void fill_random(float *x, int n, uint64_t seed)
{
    test_rng rng = {seed};
    test_fill(&rng, x, n, -1.0f, 1.0f);
}

#endif
