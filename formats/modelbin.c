/* model.bin, srrun's own weight file: reading (every header and table
 * field validated before any tensor byte is used, then one pass over the
 * data that checks the CRC-32, refuses NaN/Inf and converts float16),
 * writing (through formats/file.c's temporary file), and the mapping
 * between a built model and the header's hyper-parameters. The byte layout is
 * specified in docs/model-bin.md; this file follows it field by field. */
#include "formats/modelbin.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "formats/crc32.h"
#include "base/error.h"

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
    H_RESERVED1 = 44,
    H_ARCH = 48,
    H_HPARAMS = 64,
    H_RESERVED2 = 96,
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
_Static_assert(H_RESERVED2 + 32 == SR_MODELBIN_HEADER_SIZE, "header layout");
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

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

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

/* Round to nearest, ties to even; false when the value rounds beyond the
 * largest float16 (65504) or is not finite. */
static bool float_to_half(float f, uint16_t *out)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t a = bits & 0x7fffffffu;
    if (a >= 0x477ff000u) /* 65520 and up round to infinity; also Inf, NaN */
        return false;
    if (a < 0x38800000u) { /* below 2^-14: a subnormal (or zero) float16 */
        *out = sign | (uint16_t)nearbyintf(fabsf(f) * 0x1p24f);
        return true;
    }
    a += 0xc8000fffu + ((a >> 13) & 1); /* rebias the exponent, round */
    *out = sign | (uint16_t)(a >> 13);
    return true;
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

/* ---- Architectures ------------------------------------------------------- */

enum { SRPGAN_SCALE, SRPGAN_BLOCKS, SRPGAN_WIDTH, SRPGAN_N_HPARAMS };

static sr_status check_arch(const sr_modelbin_arch *a, sr_error *err)
{
    if (strcmp(a->name, "srpgan") != 0)
        return sr_fail(err, SR_ERR_FORMAT, "unknown architecture '%s' (srrun knows srpgan)", a->name);
    const uint32_t *h = a->hparams;
    if (h[SRPGAN_SCALE] != 2 && h[SRPGAN_SCALE] != 4 && h[SRPGAN_SCALE] != 8)
        return sr_fail(err, SR_ERR_FORMAT, "srpgan scale %u out of range (2, 4 or 8)",
                       (unsigned)h[SRPGAN_SCALE]);
    if (h[SRPGAN_BLOCKS] > 1024)
        return sr_fail(err, SR_ERR_FORMAT, "srpgan residual blocks %u out of range (0 to 1024)",
                       (unsigned)h[SRPGAN_BLOCKS]);
    if (h[SRPGAN_WIDTH] < 1 || h[SRPGAN_WIDTH] > 4096)
        return sr_fail(err, SR_ERR_FORMAT, "srpgan width %u out of range (1 to 4096)",
                       (unsigned)h[SRPGAN_WIDTH]);
    for (int i = SRPGAN_N_HPARAMS; i < SR_MODELBIN_N_HPARAMS; i++)
        if (h[i])
            return sr_fail(err, SR_ERR_FORMAT, "srpgan hyper-parameter %d is %u, must be 0", i,
                           (unsigned)h[i]);
    return SR_OK;
}

sr_status sr_modelbin_arch_of(const sr_model_info *info, const sr_weights *weights,
                              sr_modelbin_arch *arch, sr_error *err)
{
    memset(arch, 0, sizeof *arch);
    if (!info->architecture || strcmp(info->architecture, "srpgan") != 0)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "model.bin cannot store architecture '%s'",
                       info->architecture ? info->architecture : "(none)");
    const sr_weight *first = sr_weights_find(weights, "block1.0.weight");
    if (!first || first->ndim < 1 || first->shape[0] < 1 || first->shape[0] > UINT32_MAX ||
        info->scale < 1 || info->n_blocks < 0)
        return sr_fail(err, SR_ERR_MODEL, "srpgan model without a usable block1.0.weight");
    snprintf(arch->name, sizeof arch->name, "%s", info->architecture);
    arch->hparams[SRPGAN_SCALE] = (uint32_t)info->scale;
    arch->hparams[SRPGAN_BLOCKS] = (uint32_t)info->n_blocks;
    arch->hparams[SRPGAN_WIDTH] = (uint32_t)first->shape[0];
    return SR_OK;
}

sr_status sr_modelbin_check_model(const sr_modelbin_arch *stored, const sr_model_info *info,
                                  const sr_weights *weights, sr_error *err)
{
    sr_modelbin_arch built;
    sr_status st = sr_modelbin_arch_of(info, weights, &built, err);
    if (st != SR_OK)
        return st;
    if (strcmp(stored->name, built.name) != 0)
        return sr_fail(err, SR_ERR_MODEL, "header says architecture '%s', weights are '%s'",
                       stored->name, built.name);
    static const char *const names[] = {"scale", "residual blocks", "width"};
    for (int i = 0; i < SR_MODELBIN_N_HPARAMS; i++)
        if (stored->hparams[i] != built.hparams[i])
            return sr_fail(err, SR_ERR_MODEL, "header says %s %u, the weights have %u",
                           i < SRPGAN_N_HPARAMS ? names[i] : "hyper-parameter",
                           (unsigned)stored->hparams[i], (unsigned)built.hparams[i]);
    return SR_OK;
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

static sr_status read_header(const sr_mapped_file *f, bool verify_crc, uint32_t *n_tensors,
                             sr_modelbin_info *info, sr_error *err)
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
    const uint32_t version = rd32(h + H_VERSION);
    if (version > SR_MODELBIN_VERSION)
        return sr_fail(err, SR_ERR_UNSUPPORTED,
                       "model.bin version %u is newer than this srrun reads (%d); upgrade srrun",
                       (unsigned)version, SR_MODELBIN_VERSION);
    if (version < 1)
        return sr_fail(err, SR_ERR_FORMAT, "bad model.bin version %u", (unsigned)version);
    const uint32_t order = rd32(h + H_BYTE_ORDER);
    if (order == UINT32_C(0x01000000))
        return sr_fail(err, SR_ERR_UNSUPPORTED, "big-endian model.bin: srrun reads little-endian files only");
    if (order != BYTE_ORDER_LITTLE)
        return sr_fail(err, SR_ERR_FORMAT, "bad byte-order flag 0x%08x", (unsigned)order);

    const uint64_t data_start = rd64(h + H_DATA_START), data_size = rd64(h + H_DATA_SIZE);
    const uint32_t n = rd32(h + H_N_TENSORS);
    if (data_start > f->size)
        return sr_fail(err, SR_ERR_FORMAT, "header length %llu exceeds the file size (%llu bytes)",
                       (unsigned long long)data_start, (unsigned long long)f->size);
    if (n < 1 || n > SR_MODELBIN_MAX_TENSORS)
        return sr_fail(err, SR_ERR_FORMAT, "%u tensors (model.bin holds 1 to %u)", (unsigned)n,
                       (unsigned)SR_MODELBIN_MAX_TENSORS);
    const uint64_t want_start = SR_MODELBIN_HEADER_SIZE + (uint64_t)n * SR_MODELBIN_ENTRY_SIZE;
    if (data_start != want_start)
        return sr_fail(err, SR_ERR_FORMAT, "header length %llu does not fit %u tensors (expected %llu)",
                       (unsigned long long)data_start, (unsigned)n, (unsigned long long)want_start);
    /* data_start <= size here, so the subtraction cannot wrap. */
    if (data_size < f->size - data_start)
        return sr_fail(err, SR_ERR_FORMAT, "%llu trailing bytes after the data",
                       (unsigned long long)(f->size - data_start - data_size));
    if (data_size > f->size - data_start)
        return sr_fail(err, SR_ERR_FORMAT, "truncated: the header declares %llu bytes of data, the file has %llu",
                       (unsigned long long)data_size, (unsigned long long)(f->size - data_start));

    info->version = version;
    info->header_crc = rd32(h + H_HEADER_CRC);
    info->data_crc = rd32(h + H_DATA_CRC);
    if (verify_crc) {
        uint32_t crc = sr_crc32(0, h + H_DATA_START, data_start - H_DATA_START);
        if (crc != info->header_crc)
            return sr_fail(err, SR_ERR_FORMAT,
                           "header checksum mismatch (stored 0x%08x, computed 0x%08x): the file is damaged",
                           (unsigned)info->header_crc, (unsigned)crc);
    }
    if (rd32(h + H_RESERVED1) || !all_zero(h + H_RESERVED2, SR_MODELBIN_HEADER_SIZE - H_RESERVED2))
        return sr_fail(err, SR_ERR_FORMAT, "reserved header bytes are not zero");
    if (!valid_name(h + H_ARCH, SR_MODELBIN_ARCH_SIZE))
        return sr_fail(err, SR_ERR_FORMAT, "bad architecture name in the header");
    memcpy(info->arch.name, h + H_ARCH, SR_MODELBIN_ARCH_SIZE);
    for (int i = 0; i < SR_MODELBIN_N_HPARAMS; i++)
        info->arch.hparams[i] = rd32(h + H_HPARAMS + 4 * i);
    sr_status st = check_arch(&info->arch, err);
    if (st != SR_OK)
        return st;
    *n_tensors = n;
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
    const uint32_t dtype = rd32(p + E_DTYPE), ndim = rd32(p + E_NDIM);
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
        uint64_t s = rd64(p + E_SHAPE + 8 * d);
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
    e->offset = rd64(p + E_OFFSET);
    e->nbytes = rd64(p + E_NBYTES);
    if (e->nbytes != numel * esize)
        return sr_fail(err, SR_ERR_FORMAT, "tensor '%s': %llu bytes, but %s %s needs %llu", name,
                       (unsigned long long)e->nbytes, dtype_names[dtype], shape,
                       (unsigned long long)(numel * esize));
    if (rd64(p + E_RESERVED))
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
 * (each starts at the first 64-byte boundary after the one before), each
 * rule checked over the whole table before the next so that the error
 * names the first rule broken. */
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
        const uint64_t want = i ? align_up(e[i - 1].offset + e[i - 1].nbytes) : data_start;
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
 * bits all set; their converted values are never used).
 * Branch-free so that it vectorises: a normal h is h's exponent and
 * mantissa moved into float position and rebiased; a subnormal one is
 * made normal with an implicit 2^-14 that is then subtracted, exactly. */
static bool halves_to_floats(const uint8_t *src, uint64_t n, float *dst)
{
    const uint16_t *h = (const uint16_t *)(const void *)src; /* 64-aligned in the mapping */
    uint32_t any = 0;
    for (uint64_t i = 0; i < n; i++) {
        const uint32_t em = h[i] & 0x7fffu, sign = (uint32_t)(h[i] & 0x8000u) << 16;
        any |= (em & 0x7c00u) == 0x7c00u;
        const uint32_t normal = (em << 13) + (UINT32_C(112) << 23);
        float fn, fs;
        const uint32_t sub = normal + (UINT32_C(1) << 23);
        memcpy(&fn, &normal, 4);
        memcpy(&fs, &sub, 4);
        fs -= 0x1p-14f;
        float f = em < 0x400 ? fs : fn;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        bits |= sign;
        memcpy(&dst[i], &bits, 4);
    }
    return any != 0;
}

/* One pass over the data, in order: CRC-32 of every byte, the padding
 * between tensors must be zero, no tensor may hold NaN or Inf, and float16
 * tensors are converted to float32 (into converted[i]). A damaged file is
 * named as damaged even where the damage made a NaN. */
static sr_status scan_data(const sr_mapped_file *f, bool verify_crc, const entry *entries,
                           uint32_t n, float **converted, uint32_t stored_crc, sr_error *err)
{
    uint32_t crc = 0;
    int64_t bad = -1;
    const char *bad_padding = NULL;
    uint64_t pos = entries[0].offset;
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
    sr_status st = read_header(f, verify_crc, &n, info, err);
    if (st != SR_OK)
        return st;
    *n_out = n;
    const uint64_t data_start = SR_MODELBIN_HEADER_SIZE + (uint64_t)n * SR_MODELBIN_ENTRY_SIZE;
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
    st = scan_data(f, verify_crc, entries, n, converted, info->data_crc, err);
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
            if (!float_to_half(w->data[done + k], &buf[k]))
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

sr_status sr_modelbin_write(FILE *out, const sr_weights *weights, const sr_modelbin_arch *arch,
                            bool fp16, sr_modelbin_info *info, sr_error *err)
{
    if (!out || !weights || !arch)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "sr_modelbin_write: no file, weights or architecture");
    const int64_t n = weights->n_items;
    if (n < 1 || n > (int64_t)SR_MODELBIN_MAX_TENSORS)
        return sr_fail(err, SR_ERR_UNSUPPORTED, "model.bin holds 1 to %u tensors, not %lld",
                       (unsigned)SR_MODELBIN_MAX_TENSORS, (long long)n);
    sr_modelbin_arch a = *arch;
    a.name[SR_MODELBIN_ARCH_SIZE - 1] = '\0';
    sr_status st = check_arch(&a, err);
    if (st != SR_OK)
        return st;

    const uint64_t data_start = SR_MODELBIN_HEADER_SIZE + (uint64_t)n * SR_MODELBIN_ENTRY_SIZE;
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
        wr32(p + E_DTYPE, (uint32_t)dtype);
        wr32(p + E_NDIM, (uint32_t)w->ndim);
        for (int d = 0; d < w->ndim; d++)
            wr64(p + E_SHAPE + 8 * d, (uint64_t)w->shape[d]);
        const uint64_t nbytes = (uint64_t)sr_weight_numel(w) * (uint64_t)dtype_sizes[dtype];
        offset = align_up(end);
        wr64(p + E_OFFSET, offset);
        wr64(p + E_NBYTES, nbytes);
        end = offset + nbytes;
    }
    if (st != SR_OK) {
        free(head);
        return st;
    }
    memcpy(head + H_MAGIC, SR_MODELBIN_MAGIC, 8);
    wr32(head + H_VERSION, SR_MODELBIN_VERSION);
    wr32(head + H_BYTE_ORDER, BYTE_ORDER_LITTLE);
    wr64(head + H_DATA_START, data_start);
    wr64(head + H_DATA_SIZE, end - data_start);
    wr32(head + H_N_TENSORS, (uint32_t)n);
    memcpy(head + H_ARCH, a.name, SR_MODELBIN_ARCH_SIZE);
    for (int i = 0; i < SR_MODELBIN_N_HPARAMS; i++)
        wr32(head + H_HPARAMS + 4 * i, a.hparams[i]);
    const uint32_t header_crc = sr_crc32(0, head + H_DATA_START, data_start - H_DATA_START);
    wr32(head + H_HEADER_CRC, header_crc);

    /* The header (data CRC still 0), the tensors, then the data CRC. */
    uint32_t data_crc = 0;
    static const uint8_t zeros[SR_MODELBIN_ALIGN];
    st = write_bytes(out, head, (size_t)data_start, NULL, err);
    uint64_t pos = data_start;
    for (int64_t i = 0; i < n && st == SR_OK; i++) {
        const uint8_t *p = head + SR_MODELBIN_HEADER_SIZE + i * SR_MODELBIN_ENTRY_SIZE;
        const uint64_t at = rd64(p + E_OFFSET);
        st = write_bytes(out, zeros, (size_t)(at - pos), &data_crc, err);
        if (st == SR_OK)
            st = write_tensor(out, &weights->items[i], fp16, &data_crc, err);
        pos = at + rd64(p + E_NBYTES);
    }
    free(head);
    uint8_t crc_bytes[4];
    wr32(crc_bytes, data_crc);
    if (st == SR_OK && fseek(out, H_DATA_CRC, SEEK_SET) != 0)
        st = sr_fail(err, SR_ERR_IO, "cannot seek: %s", strerror(errno));
    if (st == SR_OK)
        st = write_bytes(out, crc_bytes, 4, NULL, err);
    if (st == SR_OK && info) {
        memset(info, 0, sizeof *info);
        info->n_tensors[dtype] = n;
        info->arch = a;
        info->version = SR_MODELBIN_VERSION;
        info->header_crc = header_crc;
        info->data_crc = data_crc;
    }
    return st;
}

typedef struct save_job {
    const sr_weights *weights;
    const sr_modelbin_arch *arch;
    bool fp16;
    sr_modelbin_info *info;
} save_job;

static sr_status write_job(FILE *file, void *user, sr_error *err)
{
    const save_job *job = user;
    return sr_modelbin_write(file, job->weights, job->arch, job->fp16, job->info, err);
}

sr_status sr_modelbin_save(const char *path, const sr_weights *weights,
                           const sr_modelbin_arch *arch, bool fp16,
                           sr_modelbin_info *info, sr_error *err)
{
    if (!path || !*path)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "no output path");
    save_job job = {weights, arch, fp16, info};
    return sr_file_write_atomic(path, write_job, &job, err);
}
