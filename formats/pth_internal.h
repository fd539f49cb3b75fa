/* What the two torch.save containers share, inside formats/ only: pth.c
 * (the zip container, the unpickler hooks and allowlist, tensor checks and
 * the walk from a checkpoint to its state dict) and pth_legacy.c (the
 * legacy container of PyTorch < 1.6). A container's job is to find each
 * storage's bytes; everything from the pickle's values on is common. */
#ifndef SR_FORMATS_PTH_INTERNAL_H
#define SR_FORMATS_PTH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "formats/file.h"
#include "formats/pickle.h"
#include "formats/zip.h"
#include "base/weights.h"

/* Storage keys are decimal: counters in zip files, addresses in legacy. */
#define SR_PTH_MAX_KEY_LEN 20

typedef enum sr_pth_elem {
    SR_PTH_F32, SR_PTH_F16, SR_PTH_BF16, SR_PTH_F64,
    SR_PTH_INT,     /* parsed, never a weight */
    SR_PTH_REFUSED, /* refused by name */
} sr_pth_elem;

typedef struct sr_pth_dtype {
    const char *storage; /* the class name in the pickle */
    const char *name;
    int elem_size;
    sr_pth_elem kind;
} sr_pth_dtype;

typedef struct sr_pth_storage {
    const char *key;
    const sr_pth_dtype *dtype;
    int64_t numel;
    const uint8_t *bytes; /* numel * elem_size; NULL until the container finds them */
    void *owned;          /* an inflated copy to free, or NULL */
    /* zip: the record data/<key>, read only when a weight needs its bytes,
     * so a storage no weight uses (optimizer state) is never inflated. */
    const sr_zip_entry *record;
    bool in_file;         /* bytes lie in the mapped file, which outlives the weights */
    /* Legacy view_metadata: this storage is `numel` elements of `root`
     * from `root_offset` on. */
    struct sr_pth_storage *root;
    int64_t root_offset;
    bool listed; /* legacy: seen in the key list */
    struct sr_pth_storage *next;
} sr_pth_storage;

typedef struct sr_pth_loader {
    const sr_mapped_file *file;
    sr_pickle *pickle;
    sr_pth_storage *storages; /* newest first, in the pickle's arena */
    /* The storages by key, open addressing (a file may name 10^5 of them);
     * NULL slots are free. */
    sr_pth_storage **by_key;
    uint64_t by_key_cap;
    uint64_t by_key_seed; /* base/hash.h */
    int64_t n_storages;
    uint64_t copy_budget; /* bytes converted copies may still take */
    int n_threads;        /* the NaN check's at most; 0: the default */
    /* zip only */
    sr_zip *zip;
    char prefix[512]; /* "archive/" or "<name>/", with the slash */
} sr_pth_loader;

/* The storage class torch.<name> (or torch.cuda.<name>); NULL if unknown. */
const sr_pth_dtype *sr_pth_dtype_by_class(const char *module, const char *name);

/* A non-empty string of at most max_len printable ASCII (or digits). */
bool sr_pth_plain_string(const sr_pickle_value *v, uint64_t max_len, bool digits);

/* Unpickler hooks with the allowlist of docs/formats.md 1.6 and the tensor
 * rebuilders; the container supplies persistent_load. */
sr_pickle_hooks sr_pth_hooks(sr_pth_loader *L,
                             sr_status (*persistent_load)(void *, sr_pickle *,
                                                          const sr_pickle_value *,
                                                          sr_pickle_value **, sr_error *));

/* The storage called `key`, or NULL. */
sr_pth_storage *sr_pth_find_storage(const sr_pth_loader *L, const char *key);

/* A new storage (bytes not yet set) in the pickle's arena, linked into L.
 * Refuses refused dtypes by name and sizes that overflow. */
sr_status sr_pth_new_storage(sr_pth_loader *L, const char *key, const sr_pth_dtype *dt,
                             int64_t numel, sr_pth_storage **out, sr_error *err);

/* The pickle value standing for a storage (what BINPERSID pushes). */
sr_status sr_pth_storage_value(sr_pickle *p, sr_pth_storage *s,
                               sr_pickle_value **result, sr_error *err);

/* Finds the state dict in an unpickled checkpoint (flat, or wrapped in a
 * training checkpoint), strips a 'module.' / '_orig_mod.' prefix that every
 * key carries, checks every tensor against its storage and adds the float
 * ones to `w`. `what` names the pickle in messages ("data.pkl"). Each
 * storage has its bytes set, or a zip record to read them from. */
sr_status sr_pth_add_checkpoint(sr_pth_loader *L, const sr_pickle_value *root,
                                const char *what, sr_weights *w, sr_error *err);

/* The legacy container (docs/formats.md 1.3), from its magic number on. */
sr_status sr_pth_load_legacy(sr_pth_loader *L, sr_weights *w, sr_error *err);

#endif
