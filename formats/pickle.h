/* A restricted pickle virtual machine for untrusted streams. It knows the
 * opcodes torch.save emits (protocol 2, plus the five protocol-4 additions)
 * and nothing about torch: every GLOBAL is put to the caller's find_class
 * hook before anything is built, and REDUCE, BUILD and BINPERSID only call
 * the caller's hooks, so nothing in a stream can run code.
 *
 * Values live in an arena owned by the sr_pickle and are released all at
 * once by sr_pickle_free. A container records its nesting depth when it is
 * built; the VM refuses depth beyond SR_PICKLE_MAX_DEPTH and refuses to
 * change a container once another value holds it, so recorded depths stay
 * exact and no value can contain itself. Code that walks values therefore
 * never meets a cycle or more than SR_PICKLE_MAX_DEPTH levels. */
#ifndef SR_FORMATS_PICKLE_H
#define SR_FORMATS_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srrun.h"

#define SR_PICKLE_MAX_DEPTH 256

/* What one sr_pickle may build over all its runs (SR_ERR_LIMIT beyond).
 * A state dict needs about 25 values and 25 container items per tensor,
 * so these admit some 20,000 tensors (Real-ESRGAN has 700), optimizer
 * state included, while a hostile stream of one-byte opcodes stops at
 * some tens of MB instead of 56 bytes per input byte. */
#define SR_PICKLE_MAX_VALUES (1 << 19)       /* values built, 48 bytes each */
#define SR_PICKLE_MAX_ITEMS (1 << 19)        /* slots of tuples, lists, dicts */
#define SR_PICKLE_MAX_STACK (1 << 17)        /* stack height */
#define SR_PICKLE_MAX_STRING_BYTES (1 << 22) /* bytes of all strings */

typedef enum sr_pickle_kind {
    SR_PICKLE_NONE,
    SR_PICKLE_BOOL,
    SR_PICKLE_INT,    /* BININT*, LONG1 up to 8 bytes */
    SR_PICKLE_FLOAT,
    SR_PICKLE_STRING, /* BINUNICODE and Python 2 BINSTRING alike */
    SR_PICKLE_TUPLE,
    SR_PICKLE_LIST,
    SR_PICKLE_DICT,   /* insertion order; duplicate keys are kept */
    SR_PICKLE_GLOBAL, /* a class or function find_class allowed */
    SR_PICKLE_OBJECT, /* made by a hook; tag and ptr belong to the hook */
    SR_PICKLE_KIND_COUNT
} sr_pickle_kind;

typedef struct sr_pickle_value sr_pickle_value;
struct sr_pickle_value {
    sr_pickle_kind kind;
    int depth;   /* 0 for scalars; a container is 1 + its deepest item */
    bool sealed; /* held by another value: the VM will not change it */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *s; /* NUL-terminated; may hold NULs before len */
            uint64_t len;
        } str;
        struct {
            sr_pickle_value **items;
            int64_t n, cap;
        } seq; /* TUPLE, LIST */
        struct {
            sr_pickle_value **keys, **values;
            int64_t n, cap;
        } dict;
        struct {
            const char *module, *name;
        } global;
        struct {
            int tag;
            void *ptr;
        } object;
    } u;
};

typedef struct sr_pickle sr_pickle;

/* What the caller allows and how it builds objects. `user` is passed to
 * each hook. A NULL hook refuses what it would handle. Hooks that fail fill
 * err and return the status; sr_pickle_offset tells them where they are. */
typedef struct sr_pickle_hooks {
    void *user;
    /* May module.name appear at all? On refusal *why may name a reason,
     * appended to the VM's "global 'm.n' is not allowed (byte N)". */
    bool (*find_class)(void *user, const char *module, const char *name,
                       const char **why);
    /* REDUCE: the result of calling an allowed GLOBAL with a tuple. */
    sr_status (*reduce)(void *user, sr_pickle *p, const sr_pickle_value *callable,
                        const sr_pickle_value *args, sr_pickle_value **result,
                        sr_error *err);
    /* BINPERSID: the object a persistent id stands for. */
    sr_status (*persistent_load)(void *user, sr_pickle *p,
                                 const sr_pickle_value *pid,
                                 sr_pickle_value **result, sr_error *err);
    /* BUILD: apply state to obj (e.g. an OrderedDict's __dict__). */
    sr_status (*build)(void *user, sr_pickle *p, sr_pickle_value *obj,
                       const sr_pickle_value *state, sr_error *err);
} sr_pickle_hooks;

/* `hooks` is copied. */
sr_status sr_pickle_new(sr_pickle **p, const sr_pickle_hooks *hooks,
                        sr_error *err);

/* Frees the VM and every value it or its hooks made. NULL is fine. */
void sr_pickle_free(sr_pickle *p);

/* Runs one pickle from the start of `data` up to its STOP. Values from
 * earlier runs stay valid (the memo does not carry over). `consumed`
 * (may be NULL) receives the bytes used, STOP included. Offsets in
 * messages count from `data`. */
sr_status sr_pickle_load(sr_pickle *p, const uint8_t *data, uint64_t size,
                         sr_pickle_value **result, uint64_t *consumed,
                         sr_error *err);

/* For hooks: the offset of the opcode being run. */
uint64_t sr_pickle_offset(const sr_pickle *p);

/* For hooks: zeroed memory in the arena, NULL when out of memory. */
void *sr_pickle_alloc(sr_pickle *p, size_t size);

/* For hooks: a new empty value of `kind` (its payload zeroed), NULL when out
 * of memory. A DICT or LIST made here can be filled by the stream. */
sr_pickle_value *sr_pickle_value_new(sr_pickle *p, sr_pickle_kind kind);

/* "dict", "tuple", ... for messages. */
const char *sr_pickle_kind_name(sr_pickle_kind kind);

#endif
