/* model.bin, srrun's own weight file: reading (every header and table
 * field validated before any tensor byte is used, then one pass over the
 * data that checks the CRC-32, refuses NaN/Inf and converts float16) and
 * writing (through formats/file.c's temporary file). The architecture and
 * its hyper-parameters are stored as names and integers, never
 * interpreted here: the runtime checks them against the weights. The byte
 * layout is specified in docs/model-bin.md; this file follows it field by
 * field. */
#include "formats/modelbin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "formats/crc32.h"
#include "base/bytes.h"
#include "base/error.h"
#include "base/half.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "modelbin.c uses little-endian float32 tensors in place"
#endif

/* Header fields (byte offsets). */
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_BYTE_ORDER = 12,
    H_HEADER_CRC = 16,
    H_DATA_CRC = 20,
    H_DATA_START = 24, /* the header length; the header CRC covers [24, here) */
    H_DATA_SIZE = 32,
    H_N_TENSORS = 40,
    H_N_HPARAMS = 44, /* version 1: reserved, 0 */
    H_ARCH = 48,
    H_RESERVED = 64,     /* version 2: 64 bytes */
    H_V1_HPARAMS = 64,   /* version 1: u32[8], by position */
    H_V1_RESERVED = 96,  /* version 1: 32 bytes */
};
/* Tensor table entry fields. */
enum {
    E_NAME = 0,
    E_DTYPE = 64,
    E_NDIM = 68,
    E_SHAPE = 72,
    E_OFFSET = 104,
    E_NBYTES = 112,
    E_RESERVED = 120,
};
/* Hyper-parameter entry fields (version 2). */
enum {
    P_NAME = 0,
    P_VALUE = 24,
};
_Static_assert(H_RESERVED + 64 == SR_MODELBIN_HEADER_SIZE, "header layout");
_Static_assert(H_V1_RESERVED + 32 == SR_MODELBIN_HEADER_SIZE, "version 1 header layout");
_Static_assert(P_NAME + SR_HPARAM_NAME_SIZE == P_VALUE && P_VALUE + 8 == SR_MODELBIN_HPARAM_SIZE,
               "hyper-parameter entry layout");
_Static_assert(E_RESERVED + 8 == SR_MODELBIN_ENTRY_SIZE, "entry layout");
_Static_assert(sizeof SR_MODELBIN_MAGIC - 1 == 8, "8-byte magic");

#define BYTE_ORDER_LITTLE UINT32_C(1)
#define CHUNK (64 * 1024) /* bytes per CRC + check + convert step */

static const char *const dtype_names[] = {
    [SR_MODELBIN_F32] = "float32",
    [SR_MODELBIN_F16] = "float16",
};
static const int dtype_sizes[] = {[SR_MODELBIN_F32] = 4, [SR_MODELBIN_F16] = 2};
_Static_assert(sizeof dtype_names / sizeof *dtype_names == SR_MODELBIN_DTYPE_COUNT,
               "one name per dtype");

/* ---- Little helpers -------------------------------------------------------- */

static bool all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static uint64_t align_up(uint64_t v) { return (v + SR_MODELBIN_ALIGN - 1) & ~(uint64_t)(SR_MODELBIN_ALIGN - 1); }

/* A NUL-padded name field: 1 to size-1 printable ASCII bytes (no space),
 * then only NULs. */
static bool valid_name(const uint8_t *field, size_t size)
{
    size_t n = 0;
    while (n < size && field[n])
        n++;
    if (n == 0 || n == size)
        return false;
    for (size_t i = 0; i < n; i++)
        if (field[i] < 0x21 || field[i] > 0x7e)
            return false;
    return all_zero(field + n, size - n);
}

static void format_shape(char *buf, size_t size, int ndim, const uint64_t *shape)
{
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%llu", i ? "," : "",
                                (unsigned long long)shape[i]);
    if (len < size)
        snprintf(buf + len, size - len, "]");
}

/* ---- Reading ------------------------------------------------------------- */

/* A table entry after validation. */
typedef struct entry {
    char name[SR_MODELBIN_NAME_SIZE];
    sr_modelbin_dtype dtype;
    int ndim;
    uint64_t shape[SR_WEIGHT_MAX_DIMS];
    uint64_t offset, nbytes, numel;
} entry;

bool sr_modelbin_sniff(const sr_mapped_file *file)
{
    return file && file->size >= SR_MODELBIN_SNIFF_SIZE &&
           memcmp(file->data, SR_MODELBIN_MAGIC, SR_MODELBIN_SNIFF_SIZE) == 0;
}

/* The architecture's name and hyper-parameters, after the header CRC:
 * version 1's eight values by position, version 2's table of named ones. */
static sr_status read_arch(const uint8_t *h, uint32_t version, uint32_t n_tensors,
                           uint32_t n_hparams, sr_modelbin_arch *arch, sr_error *err)
{
    const bool v1 = version == 1;
    if ((v1 && sr_le32(h + H_N_HPARAMS)) ||
        (v1 ? !all_zero(h + H_V1_RESERVED, SR_MODELBIN_HEADER_SIZE - H_V1_RESERVED)
            : !all_zero(h + H_RESERVED, SR_MODELBIN_HEADER_SIZE - H_RESERVED)))
        return sr_fail(err, SR_ERR_FORMAT, "reserved header bytes are not zero");
    if (!valid_name(h + H_ARCH, SR_MODELBIN_ARCH_SIZE))
        return sr_fail(err, SR_ERR_FORMAT, "bad architecture name in the header");
    memcpy(arch->name, h + H_ARCH, SR_MODELBIN_ARCH_SIZE);
    sr_hparams *hp = &arch->hparams;
    if (v1) {
        hp->n = SR_MODELBIN_V1_HPARAMS;
        for (int i = 0; i < SR_MODELBIN_V1_HPARAMS; i++)
            hp->items[i].value = sr_le32(h + H_V1_HPARAMS + 4 * i);
        return SR_OK;
    }
    const uint8_t *table = h + SR_MODELBIN_HEADER_SIZE + (uint64_t)n_tensors * SR_MODELBIN_ENTRY_SIZE;
    for (uint32_t i = 0; i < n_hparams; i++) {
        const uint8_t *p = table + i * SR_MODELBIN_HPARAM_SIZE;
        sr_hparam *item = &hp->items[i];
        if (!valid_name(p + P_NAME, SR_HPARAM_NAME_SIZE))
            return sr_fail(err, SR_ERR_FORMAT,
                           "hyper-parameter %u: bad name (1 to 23 printable ASCII bytes, NUL-padded)",
                           (unsigned)i);
        memcpy(item->name, p + P_NAME, SR_HPARAM_NAME_SIZE);
        item->value = (int64_t)sr_le64(p + P_VALUE);
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(hp->items[k].name, item->name) == 0)
                return sr_fail(err, SR_ERR_FORMAT, "duplicate hyper-parameter '%s'", item->name);
        hp->n++;
    }
    return SR_OK;
}

static sr_status read_header(const sr_mapped_file *f, bool verify_crc, uint32_t *n_tensors,
                             uint64_t *data_start_out, sr_modelbin_info *info, sr_error *err)
{
    const uint8_t *h = f->data;
    if (f->size < 8 || memcmp(h, SR_MODELBIN_MAGIC, 8) != 0)
        return sr_fail(err, SR_ERR_FORMAT, "bad magic: not a srrun model.bin%s",
                       f->size >= 4 && memcmp(h, SR_MODELBIN_MAGIC, 4) == 0
                           ? " (damaged by a text-mode transfer?)"
                           : "");
    if (f->size < SR_MODELBIN_HEADER_SIZE)
        return sr_fail(err, SR_ERR_FORMAT, "truncated header: %llu bytes, model.bin needs %d",
                       (unsigned long long)f->size, SR_MODELBIN_HEADER_SIZE);
    const uint32_t version = sr_le32(h + H_VERSION);
    if (version > SR_MODELBIN_VERSION)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "model.bin version %u is newer than this srrun reads (%d); upgrade srrun",
                       (unsigned)version, SR_MODELBIN_VERSION);
    if (version < 1)
        return sr_fail(err, SR_ERR_FORMAT, "bad model.bin version %u", (unsigned)version);
    const uint32_t order = sr_le32(h + H_BYTE_ORDER);
    if (order == UINT32_C(0x01000000))
        return sr_fail(err, SR_ERR_UNSUPPORTED, "big-endian model.bin: srrun reads little-endian files only");
    if (order != BYTE_ORDER_LITTLE)
        return sr_fail(err, SR_ERR_FORMAT, "bad byte-order flag 0x%08x", (unsigned)order);

    const uint64_t data_start = sr_le64(h + H_DATA_START), data_size = sr_le64(h + H_DATA_SIZE);
    const uint32_t n = sr_le32(h + H_N_TENSORS);
    if (data_start > f->size)
        return sr_fail(err, SR_ERR_FORMAT, "header length %llu exceeds the file size (%llu bytes)",
                       (unsigned long long)data_start, (unsigned long long)f->size);
    if (n < 1 || n > SR_MODELBIN_MAX_TENSORS)
        return sr_fail(err, SR_ERR_FORMAT, "%u tensors (model.bin holds 1 to %u)", (unsigned)n,
                       (unsigned)SR_MODELBIN_MAX_TENSORS);
    const uint32_t n_hparams = version == 1 ? 0 : sr_le32(h + H_N_HPARAMS);
    if (n_hparams > SR_HPARAMS_MAX)
        return sr_fail(err, SR_ERR_FORMAT, "%u hyper-parameters (model.bin holds 0 to %d)",
                       (unsigned)n_hparams, SR_HPARAMS_MAX);
    const uint64_t want_start = SR_MODELBIN_HEADER_SIZE + (uint64_t)n * SR_MODELBIN_ENTRY_SIZE +
                                (uint64_t)n_hparams * SR_MODELBIN_HPARAM_SIZE;
    if (data_start != want_start)
        return sr_fail(err, SR_ERR_FORMAT,
                       "header length %llu does not fit %u tensors and %u hyper-parameters "
                       "(expected %llu)",
                       (unsigned long long)data_start, (unsigned)n, (unsigned)n_hparams,
                       (unsigned long long)want_start);
    /* data_start <= size here, so the subtraction cannot wrap. */
    if (data_size < f->size - data_start)
        return sr_fail(err, SR_ERR_FORMAT, "%llu trailing bytes after the data",
                       (unsigned long long)(f->size - data_start - data_size));
    if (data_size > f->size - data_start)
        return sr_fail(err, SR_ERR_FORMAT, "truncated: the header declares %llu bytes of data, the file has %llu",
                       (unsigned long long)data_size, (unsigned long long)(f->size - data_start));

    info->version = version;
    info->header_crc = sr_le32(h + H_HEADER_CRC);
    info->data_crc = sr_le32(h + H_DATA_CRC);
    if (verify_crc) {
        uint32_t crc = sr_crc32(0, h + H_DATA_START, data_start - H_DATA_START);
        if (crc != info->header_crc)
            return sr_fail(err, SR_ERR_FORMAT,
                           "header checksum mismatch (stored 0x%08x, computed 0x%08x): the file is damaged",
                           (unsigned)info->header_crc, (unsigned)crc);
    }
    sr_status st = read_arch(h, version, n, n_hparams, &info->arch, err);
    if (st != SR_OK)
        return st;
    *n_tensors = n;
    *data_start_out = data_start;
    return SR_OK;
}

/* Decodes entry i and checks it on its own: the file's bounds included. */
static sr_status read_entry(const sr_mapped_file *f, uint64_t data_start, uint32_t i, entry *e,
                            sr_error *err)
{
    const uint8_t *p = f->data + SR_MODELBIN_HEADER_SIZE + (uint64_t)i * SR_MODELBIN_ENTRY_SIZE;
    if (!valid_name(p + E_NAME, SR_MODELBIN_NAME_SIZE))
        return sr_fail(err, SR_ERR_FORMAT,
                       "tensor %u: bad name (1 to 63 printable ASCII bytes, NUL-padded)", (unsigned)i);
    memcpy(e->name, p + E_NAME, SR_MODELBIN_NAME_SIZE);
    const char *name = e->name;
    const uint32_t dtype = sr_le32(p + E_DTYPE), ndim = sr_le32(p + E_NDIM);
    if (dtype >= SR_MODELBIN_DTYPE_COUNT)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "tensor '%s': unknown dtype %u", name, (unsigned)dtype);
    if (ndim > SR_WEIGHT_MAX_DIMS)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' has %u dimensions (at most %d)", name,
                       (unsigned)ndim, SR_WEIGHT_MAX_DIMS);
    e->dtype = (sr_modelbin_dtype)dtype;
    e->ndim = (int)ndim;
    uint64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < SR_WEIGHT_MAX_DIMS; d++) {
        uint64_t s = sr_le64(p + E_SHAPE + 8 * d);
        e->shape[d] = s;
        if (d >= e->ndim) {
            if (s)
                return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': unused shape slot %d is not zero", name, d);
            continue;
        }
        if (s > (uint64_t)INT64_MAX || (s && numel > (uint64_t)INT64_MAX / s))
            overflow = true;
        else
            numel *= s;
    }
    char shape[128];
    format_shape(shape, sizeof shape, e->ndim, e->shape);
    const uint64_t esize = (uint64_t)dtype_sizes[dtype];
    if (overflow || numel > (uint64_t)INT64_MAX / esize)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': shape %s overflows", name, shape);
    e->numel = numel;
    e->offset = sr_le64(p + E_OFFSET);
    e->nbytes = sr_le64(p + E_NBYTES);
    if (e->nbytes != numel * esize)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': %llu bytes, but %s %s needs %llu", name,
                       (unsigned long long)e->nbytes, dtype_names[dtype], shape,
                       (unsigned long long)(numel * esize));
    if (sr_le64(p + E_RESERVED))
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': reserved bytes are not zero", name);
    if (e->offset > f->size || e->nbytes > f->size - e->offset)
        return sr_fail(err, SR_ERR_FORMAT,
                       "tensor '%s' (%llu bytes at offset %llu) extends past the end of the file (%llu bytes)",
                       name, (unsigned long long)e->nbytes, (unsigned long long)e->offset,
                       (unsigned long long)f->size);
    if (e->offset % SR_MODELBIN_ALIGN)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': offset %llu is not %d-byte aligned", name,
                       (unsigned long long)e->offset, SR_MODELBIN_ALIGN);
    if (e->offset < data_start)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': offset %llu lies inside the header", name,
                       (unsigned long long)e->offset);
    return SR_OK;
}

/* The tensors as a whole: sorted by offset, then disjoint, then packed
 * (each starts at the first 64-byte boundary after the one before, the
 * first at the first after the header), each rule checked over the whole
 * table before the next so that the error names the first rule broken. */
static sr_status check_layout(const entry *e, uint32_t n, uint64_t data_start, sr_error *err)
{
    for (uint32_t i = 1; i < n; i++)
        if (e[i].offset < e[i - 1].offset)
            return sr_fail(err, SR_ERR_FORMAT,
                           "tensor offsets are not sorted: '%s' at %llu follows '%s' at %llu",
                           e[i].name, (unsigned long long)e[i].offset, e[i - 1].name,
                           (unsigned long long)e[i - 1].offset);
    for (uint32_t i = 1; i < n; i++)
        if (e[i].offset < e[i - 1].offset + e[i - 1].nbytes) /* both ends are <= file size */
            return sr_fail(err, SR_ERR_FORMAT, "tensors '%s' and '%s' overlap", e[i - 1].name,
                           e[i].name);
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t want = align_up(i ? e[i - 1].offset + e[i - 1].nbytes : data_start);
        if (e[i].offset != want)
            return sr_fail(err, SR_ERR_FORMAT,
                           "gap of %llu bytes before tensor '%s' (tensors are packed, 64-byte aligned)",
                           (unsigned long long)(e[i].offset - want), e[i].name);
    }
    return SR_OK;
}

/* True when a float32 is Inf or NaN (all exponent bits set). An OR of
 * comparisons, so that it vectorises with plain SSE2 (and, andnot, cmpeq,
 * or: the unsigned max it replaced needed emulation and ran 4x slower). */
static bool f32_any_nonfinite(const uint8_t *p, uint64_t n)
{
    const uint32_t *w = (const uint32_t *)(const void *)p; /* 64-aligned in the mapping */
    uint32_t any = 0;
    for (uint64_t i = 0; i < n; i++)
        any |= (w[i] & 0x7f800000u) == 0x7f800000u;
    return any != 0;
}

/* Converts float16 to float32; true when one was Inf or NaN (exponent
 * bits all set). Vectorises: sr_half_to_float is branch-free. */
static bool halves_to_floats(const uint8_t *src, uint64_t n, float *dst)
{
    const uint16_t *h = (const uint16_t *)(const void *)src; /* 64-aligned in the mapping */
    uint32_t any = 0;
    for (uint64_t i = 0; i < n; i++) {
        any |= (h[i] & 0x7c00u) == 0x7c00u;
        dst[i] = sr_half_to_float(h[i]);
    }
    return any != 0;
}

/* One pass over the data, in order: CRC-32 of every byte, the padding
 * between tensors must be zero, no tensor may hold NaN or Inf, and float16
 * tensors are converted to float32 (into converted[i]). A damaged file is
 * named as damaged even where the damage made a NaN. */
static sr_status scan_data(const sr_mapped_file *f, bool verify_crc, uint64_t data_start,
                           const entry *entries, uint32_t n, float **converted, uint32_t stored_crc, sr_error *err)
{
    uint32_t crc = 0;
    int64_t bad = -1;
    const char *bad_padding = NULL;
    uint64_t pos = data_start;
    for (uint32_t i = 0; i < n; i++) {
        const entry *e = &entries[i];
        if (e->offset > pos) { /* alignment padding */
            if (verify_crc)
                crc = sr_crc32(crc, f->data + pos, e->offset - pos);
            if (!bad_padding && !all_zero(f->data + pos, e->offset - pos))
                bad_padding = e->name;
        }
        const uint8_t *src = f->data + e->offset;
        float *dst = converted[i];
        for (uint64_t done = 0; done < e->nbytes;) {
            uint64_t len = e->nbytes - done < CHUNK ? e->nbytes - done : CHUNK;
            if (verify_crc)
                crc = sr_crc32(crc, src + done, len);
            if (e->dtype == SR_MODELBIN_F32) {
                if (f32_any_nonfinite(src + done, len / 4) && bad < 0)
                    bad = i;
            } else if (halves_to_floats(src + done, len / 2, dst + done / 2) && bad < 0) {
                bad = i;
            }
            done += len;
        }
        pos = e->offset + e->nbytes;
    }
    if (verify_crc && crc != stored_crc)
        return sr_fail(err, SR_ERR_FORMAT,
                       "data checksum mismatch (stored 0x%08x, computed 0x%08x): the file is damaged",
                       (unsigned)stored_crc, (unsigned)crc);
    if (bad_padding)
        return sr_fail(err, SR_ERR_FORMAT, "padding before tensor '%s' is not zero", bad_padding);
    if (bad >= 0)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s' holds NaN or Inf", entries[bad].name);
    return SR_OK;
}

static sr_status load(const sr_mapped_file *f, bool verify_crc, sr_weights *weights,
                      sr_modelbin_info *info, uint32_t *n_out, entry **entries_out,
                      float ***converted_out, sr_error *err)
{
    uint32_t n = 0;
    uint64_t data_start = 0;
    sr_status st = read_header(f, verify_crc, &n, &data_start, info, err);
    if (st != SR_OK)
        return st;
    *n_out = n;
    entry *entries = calloc(n, sizeof *entries);
    float **converted = calloc(n, sizeof *converted);
    *entries_out = entries;
    *converted_out = converted;
    if (!entries || !converted)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for %u tensors", (unsigned)n);
    for (uint32_t i = 0; i < n && st == SR_OK; i++)
        st = read_entry(f, data_start, i, &entries[i], err);
    if (st == SR_OK)
        st = check_layout(entries, n, data_start, err);
    if (st != SR_OK)
        return st;
    /* Every tensor lies inside the file and before the next (checked above),
     * and the data section ends where the file ends: so does the last one. */
    const uint64_t end = entries[n - 1].offset + entries[n - 1].nbytes;
    if (end != f->size)
        return sr_fail(err, SR_ERR_FORMAT, "%llu trailing bytes after the last tensor",
                       (unsigned long long)(f->size - end));
    for (uint32_t i = 0; i < n; i++) {
        info->n_tensors[entries[i].dtype]++;
        if (entries[i].dtype == SR_MODELBIN_F32 || entries[i].numel == 0)
            continue;
        /* numel * 4 <= 2 * nbytes <= 2 * file size: no overflow. */
        if (!(converted[i] = malloc((size_t)(entries[i].numel * sizeof(float)))))
            return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for tensor '%s'", entries[i].name);
    }
    st = scan_data(f, verify_crc, data_start, entries, n, converted, info->data_crc, err);
    for (uint32_t i = 0; i < n && st == SR_OK; i++) {
        const entry *e = &entries[i];
        int64_t shape[SR_WEIGHT_MAX_DIMS];
        for (int d = 0; d < e->ndim; d++)
            shape[d] = (int64_t)e->shape[d];
        const float *data = e->dtype == SR_MODELBIN_F32 && e->numel
                                ? (const float *)(const void *)(f->data + e->offset)
                                : converted[i];
        st = sr_weights_add(weights, e->name, e->ndim, shape, data, converted[i], err);
        converted[i] = NULL; /* sr_weights_add owns it now, even on failure */
    }
    return st;
}

sr_status sr_modelbin_load(const sr_mapped_file *file, bool verify_crc, sr_weights *weights,
                           sr_modelbin_info *info, sr_error *err)
{
    if (!file || !weights || !info)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "sr_modelbin_load: no file, weights or info");
    memset(info, 0, sizeof *info);
    if (file->size == 0)
        return sr_fail(err, SR_ERR_FORMAT, "empty file");
    const int64_t n_before = weights->n_items;
    uint32_t n = 0;
    entry *entries = NULL;
    float **converted = NULL;
    sr_status st = load(file, verify_crc, weights, info, &n, &entries, &converted, err);
    for (uint32_t i = 0; converted && i < n; i++)
        free(converted[i]);
    free(converted);
    free(entries);
    if (st != SR_OK)
        sr_weights_truncate(weights, n_before); /* as the caller gave it */
    return st;
}

/* ---- Writing ------------------------------------------------------------- */

/* A name the reader accepts in a NUL-padded field of `size` bytes. */
static bool storable_name(const char *name, size_t size)
{
    const size_t len = strlen(name);
    return len < size && valid_name((const uint8_t *)name, len + 1);
}

static sr_status check_arch(const char *name, const sr_hparams *h, sr_error *err)
{
    if (!storable_name(name, SR_MODELBIN_ARCH_SIZE))
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "architecture name '%s' cannot be stored (1 to 15 printable ASCII bytes)",
                       name);
    if (h->n < 0 || h->n > SR_HPARAMS_MAX)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "%d hyper-parameters (model.bin holds 0 to %d)",
                       h->n, SR_HPARAMS_MAX);
    for (int i = 0; i < h->n; i++) {
        if (!storable_name(h->items[i].name, SR_HPARAM_NAME_SIZE))
            return sr_fail(err, SR_ERR_UNSUPPORTED,
                           "hyper-parameter name '%s' cannot be stored (1 to 23 printable ASCII "
                           "bytes)",
                           h->items[i].name);
        for (int k = 0; k < i; k++)
            if (strcmp(h->items[k].name, h->items[i].name) == 0)
                return sr_fail(err, SR_ERR_UNSUPPORTED, "duplicate hyper-parameter '%s'",
                               h->items[i].name);
    }
    return SR_OK;
}

static sr_status write_bytes(FILE *out, const void *p, size_t n, uint32_t *crc, sr_error *err)
{
    if (n && fwrite(p, 1, n, out) != n)
        return sr_fail(err, SR_ERR_IO, "write failed: %s", strerror(errno));
    if (crc)
        *crc = sr_crc32(*crc, p, n);
    return SR_OK;
}

static sr_status write_tensor(FILE *out, const sr_weight *w, bool fp16, uint32_t *crc, sr_error *err)
{
    const int64_t numel = sr_weight_numel(w);
    if (!fp16)
        return write_bytes(out, w->data, (size_t)numel * sizeof(float), crc, err);
    uint16_t buf[CHUNK / 2];
    for (int64_t done = 0; done < numel;) {
        int64_t len = numel - done < CHUNK / 2 ? numel - done : CHUNK / 2;
        for (int64_t k = 0; k < len; k++)
            if (!sr_float_to_half(w->data[done + k], &buf[k]))
                return sr_fail(err, SR_ERR_LIMIT,
                               "tensor '%s': value %g does not fit float16 (largest 65504)", w->name,
                               (double)w->data[done + k]);
        sr_status st = write_bytes(out, buf, (size_t)len * 2, crc, err);
        if (st != SR_OK)
            return st;
        done += len;
    }
    return SR_OK;
}

sr_status sr_modelbin_write(FILE *out, const sr_weights *weights, const char *arch,
                            const sr_hparams *hparams, bool fp16, sr_modelbin_info *info,
                            sr_error *err)
{
    if (!out || !weights || !arch || !hparams)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "sr_modelbin_write: no file, weights or architecture");
    const int64_t n = weights->n_items;
    if (n < 1 || n > (int64_t)SR_MODELBIN_MAX_TENSORS)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "model.bin holds 1 to %u tensors, not %lld",
                       (unsigned)SR_MODELBIN_MAX_TENSORS, (long long)n);
    sr_status st = check_arch(arch, hparams, err);
    if (st != SR_OK)
        return st;

    const uint64_t hparams_at = SR_MODELBIN_HEADER_SIZE + (uint64_t)n * SR_MODELBIN_ENTRY_SIZE;
    const uint64_t data_start = hparams_at + (uint64_t)hparams->n * SR_MODELBIN_HPARAM_SIZE;
    uint8_t *head = calloc(1, (size_t)data_start);
    if (!head)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    uint64_t offset = data_start, end = data_start;
    const sr_modelbin_dtype dtype = fp16 ? SR_MODELBIN_F16 : SR_MODELBIN_F32;
    for (int64_t i = 0; i < n && st == SR_OK; i++) {
        const sr_weight *w = &weights->items[i];
        uint8_t *p = head + SR_MODELBIN_HEADER_SIZE + i * SR_MODELBIN_ENTRY_SIZE;
        const size_t len = strlen(w->name);
        if (!valid_name((const uint8_t *)w->name, len + 1) || len >= SR_MODELBIN_NAME_SIZE) {
            st = sr_fail(err, SR_ERR_UNSUPPORTED,
                         "tensor name '%s' cannot be stored (1 to 63 printable ASCII bytes)", w->name);
            break;
        }
        memcpy(p + E_NAME, w->name, len);
        sr_put_le32(p + E_DTYPE, (uint32_t)dtype);
        sr_put_le32(p + E_NDIM, (uint32_t)w->ndim);
        for (int d = 0; d < w->ndim; d++)
            sr_put_le64(p + E_SHAPE + 8 * d, (uint64_t)w->shape[d]);
        const uint64_t nbytes = (uint64_t)sr_weight_numel(w) * (uint64_t)dtype_sizes[dtype];
        offset = align_up(end);
        sr_put_le64(p + E_OFFSET, offset);
        sr_put_le64(p + E_NBYTES, nbytes);
        end = offset + nbytes;
    }
    if (st != SR_OK) {
        free(head);
        return st;
    }
    memcpy(head + H_MAGIC, SR_MODELBIN_MAGIC, 8);
    sr_put_le32(head + H_VERSION, SR_MODELBIN_VERSION);
    sr_put_le32(head + H_BYTE_ORDER, BYTE_ORDER_LITTLE);
    sr_put_le64(head + H_DATA_START, data_start);
    sr_put_le64(head + H_DATA_SIZE, end - data_start);
    sr_put_le32(head + H_N_TENSORS, (uint32_t)n);
    sr_put_le32(head + H_N_HPARAMS, (uint32_t)hparams->n);
    memcpy(head + H_ARCH, arch, strlen(arch));
    for (int i = 0; i < hparams->n; i++) {
        uint8_t *p = head + hparams_at + (uint64_t)i * SR_MODELBIN_HPARAM_SIZE;
        memcpy(p + P_NAME, hparams->items[i].name, strlen(hparams->items[i].name));
        sr_put_le64(p + P_VALUE, (uint64_t)hparams->items[i].value);
    }
    const uint32_t header_crc = sr_crc32(0, head + H_DATA_START, data_start - H_DATA_START);
    sr_put_le32(head + H_HEADER_CRC, header_crc);

    /* The header (data CRC still 0), the tensors, then the data CRC. */
    uint32_t data_crc = 0;
    static const uint8_t zeros[SR_MODELBIN_ALIGN];
    st = write_bytes(out, head, (size_t)data_start, NULL, err);
    uint64_t pos = data_start;
    for (int64_t i = 0; i < n && st == SR_OK; i++) {
        const uint8_t *p = head + SR_MODELBIN_HEADER_SIZE + i * SR_MODELBIN_ENTRY_SIZE;
        const uint64_t at = sr_le64(p + E_OFFSET);
        st = write_bytes(out, zeros, (size_t)(at - pos), &data_crc, err);
        if (st == SR_OK)
            st = write_tensor(out, &weights->items[i], fp16, &data_crc, err);
        pos = at + sr_le64(p + E_NBYTES);
    }
    free(head);
    uint8_t crc_bytes[4];
    sr_put_le32(crc_bytes, data_crc);
    if (st == SR_OK && fseek(out, H_DATA_CRC, SEEK_SET) != 0)
        st = sr_fail(err, SR_ERR_IO, "cannot seek: %s", strerror(errno));
    if (st == SR_OK)
        st = write_bytes(out, crc_bytes, 4, NULL, err);
    if (st == SR_OK && info) {
        memset(info, 0, sizeof *info);
        info->n_tensors[dtype] = n;
        memcpy(info->arch.name, arch, strlen(arch) + 1);
        info->arch.hparams = *hparams;
        info->version = SR_MODELBIN_VERSION;
        info->header_crc = header_crc;
        info->data_crc = data_crc;
    }
    return st;
}

typedef struct save_job {
    const sr_weights *weights;
    const char *arch;
    const sr_hparams *hparams;
    bool fp16;
    sr_modelbin_info *info;
} save_job;

static sr_status write_job(FILE *file, void *user, sr_error *err)
{
    const save_job *job = user;
    return sr_modelbin_write(file, job->weights, job->arch, job->hparams, job->fp16, job->info,
                             err);
}

sr_status sr_modelbin_save(const char *path, const sr_weights *weights, const char *arch,
                           const sr_hparams *hparams, bool fp16, sr_modelbin_info *info,
                           sr_error *err)
{
    if (!path || !*path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no output path");
    save_job job = {weights, arch, hparams, fp16, info};
    return sr_file_write_atomic(path, write_job, &job, err);
}
