/* The zip container of torch.save files. This file owns finding the
 * (zip64) end of central directory, checking every central-directory entry
 * against the file bounds and its local header, and reading entries back
 * (stored in place, or deflated into a capped buffer). What the entries
 * mean (the archive folder, data.pkl, storages) is left to formats/pth.c.
 *
 * The central directory is the authority, as in PyTorch's reader (miniz);
 * local headers are only checked to agree with it. */
#include "formats/zip.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include "base/bytes.h"
#include "base/error.h"

enum {
    EOCD_SIZE = 22,
    EOCD_MAX_COMMENT = 65535,
    ZIP64_LOCATOR_SIZE = 20,
    ZIP64_EOCD_SIZE = 56,
    CD_HEADER_SIZE = 46,
    LOCAL_HEADER_SIZE = 30,
    ZIP64_EXTRA_ID = 0x0001,
    /* Traditional encryption, strong encryption, masked central directory. */
    ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000,
};

/* Deflate cannot expand data by more than 1032:1, so a zip64 size beyond
 * that multiple of the file size cannot be real. */
#define DEFLATE_MAX_RATIO UINT64_C(1032)

struct sr_zip {
    const uint8_t *data;
    uint64_t size;
    int64_t n_entries;
    sr_zip_entry *entries;        /* in central-directory order */
    const sr_zip_entry **by_name; /* sorted by name, for sr_zip_find */
    char *names;                  /* every name, NUL-terminated */
};

/* Where the central directory is, and where it must end at the latest. */
typedef struct cd_info {
    uint64_t offset, size, n_entries, limit;
} cd_info;

/* The bytes of the file an entry claims: local header through data. */
typedef struct span {
    uint64_t start, end;
    const char *name;
} span;

/* Whether [off, off + len) lies inside [0, limit), with no overflow. */
static int fits(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

static sr_status find_zip64_end(const uint8_t *data, uint64_t size,
                                uint64_t locator, cd_info *cd, sr_error *err)
{
    uint64_t record = sr_le64(data + locator + 8);
    if (record > size)
        return sr_fail(err, SR_ERR_FORMAT, "zip64 field out of range");
    if (!fits(record, ZIP64_EOCD_SIZE, locator) ||
        memcmp(data + record, "PK\6\6", 4) != 0)
        return sr_fail(err, SR_ERR_FORMAT,
                       "zip64 end-of-central-directory record not found");
    const uint8_t *r = data + record;
    if (sr_le32(r + 16) != 0 || sr_le32(r + 20) != 0)
        return sr_fail(err, SR_ERR_FORMAT, "multi-disk zip is not supported");
    cd->n_entries = sr_le64(r + 32);
    cd->size = sr_le64(r + 40);
    cd->offset = sr_le64(r + 48);
    cd->limit = record;
    if (cd->n_entries > size / CD_HEADER_SIZE || cd->size > size ||
        cd->offset > size)
        return sr_fail(err, SR_ERR_FORMAT, "zip64 field out of range");
    return SR_OK;
}

static sr_status find_central_directory(const uint8_t *data, uint64_t size,
                                        cd_info *cd, sr_error *err)
{
    if (size < EOCD_SIZE)
        return sr_fail(err, SR_ERR_FORMAT,
                       "truncated zip: end-of-central-directory not found");
    /* The EOCD is followed only by its comment; a signature whose comment
     * would run past the end is a stray one, so keep looking. */
    uint64_t eocd = size - EOCD_SIZE;
    uint64_t lowest = eocd > EOCD_MAX_COMMENT ? eocd - EOCD_MAX_COMMENT : 0;
    while (memcmp(data + eocd, "PK\5\6", 4) != 0 ||
           sr_le16(data + eocd + 20) > size - eocd - EOCD_SIZE) {
        if (eocd == lowest)
            return sr_fail(err, SR_ERR_FORMAT,
                           "truncated zip: end-of-central-directory not found");
        eocd--;
    }
    const uint8_t *e = data + eocd;
    if (eocd >= ZIP64_LOCATOR_SIZE &&
        memcmp(e - ZIP64_LOCATOR_SIZE, "PK\6\7", 4) == 0) {
        sr_status st = find_zip64_end(data, size, eocd - ZIP64_LOCATOR_SIZE,
                                      cd, err);
        if (st != SR_OK)
            return st;
    } else {
        if (sr_le16(e + 4) != 0 || sr_le16(e + 6) != 0)
            return sr_fail(err, SR_ERR_FORMAT,
                           "multi-disk zip is not supported");
        cd->n_entries = sr_le16(e + 10);
        cd->size = sr_le32(e + 12);
        cd->offset = sr_le32(e + 16);
        cd->limit = eocd;
    }
    if (!fits(cd->offset, cd->size, cd->limit))
        return sr_fail(err, SR_ERR_FORMAT,
                       "zip central directory lies outside the file");
    /* Bounds the allocations below by the file size. */
    if (cd->n_entries > cd->size / CD_HEADER_SIZE)
        return sr_fail(err, SR_ERR_FORMAT,
                       "zip central directory too small for %" PRIu64
                       " entries", cd->n_entries);
    return SR_OK;
}

/* Replaces the fields saturated at 0xFFFFFFFF with the 64-bit values of the
 * zip64 extra field, which stores just those, in this order. */
static sr_status read_zip64_extra(const uint8_t *extra, uint32_t n_extra,
                                  sr_zip_entry *entry, uint64_t *lh_off,
                                  uint64_t file_size, sr_error *err)
{
    if (entry->size != UINT32_MAX && entry->comp_size != UINT32_MAX &&
        *lh_off != UINT32_MAX)
        return SR_OK;
    uint64_t *fields[3] = {&entry->size, &entry->comp_size, lh_off};
    uint64_t size_bound = file_size > UINT64_MAX / DEFLATE_MAX_RATIO
                              ? UINT64_MAX
                              : file_size * DEFLATE_MAX_RATIO;
    uint64_t bounds[3] = {size_bound, file_size, file_size};

    const uint8_t *record = NULL;
    uint32_t record_len = 0;
    for (uint32_t pos = 0; n_extra - pos >= 4;) {
        uint32_t id = sr_le16(extra + pos), len = sr_le16(extra + pos + 2);
        if (len > n_extra - pos - 4)
            return sr_fail(err, SR_ERR_FORMAT,
                           "bad extra field in entry '%s'", entry->name);
        if (id == ZIP64_EXTRA_ID) {
            record = extra + pos + 4;
            record_len = len;
            break;
        }
        pos += 4 + len;
    }
    if (!record)
        return sr_fail(err, SR_ERR_FORMAT,
                       "entry '%s' lacks its zip64 extra field", entry->name);
    uint32_t at = 0;
    for (int i = 0; i < 3; i++) {
        if (*fields[i] != UINT32_MAX)
            continue;
        if (record_len - at < 8)
            return sr_fail(err, SR_ERR_FORMAT,
                           "short zip64 extra field in entry '%s'",
                           entry->name);
        *fields[i] = sr_le64(record + at);
        at += 8;
        if (*fields[i] > bounds[i])
            return sr_fail(err, SR_ERR_FORMAT, "zip64 field out of range");
    }
    return SR_OK;
}

/* Checks that the local header agrees with the central directory and that
 * the data lies before the central directory; sets data_offset. */
static sr_status check_local_header(const sr_zip *zip, sr_zip_entry *entry,
                                    uint64_t lh_off, uint64_t cd_start,
                                    span *claimed, sr_error *err)
{
    if (!fits(lh_off, LOCAL_HEADER_SIZE, zip->size))
        return sr_fail(err, SR_ERR_FORMAT,
                       "entry '%s' extends past end of file", entry->name);
    const uint8_t *lh = zip->data + lh_off;
    size_t name_len = strlen(entry->name);
    uint64_t name_end = lh_off + LOCAL_HEADER_SIZE;
    if (memcmp(lh, "PK\3\4", 4) != 0 || sr_le16(lh + 26) != name_len ||
        !fits(name_end, name_len, zip->size) ||
        memcmp(lh + LOCAL_HEADER_SIZE, entry->name, name_len) != 0)
        return sr_fail(err, SR_ERR_FORMAT,
                       "local header mismatch for entry '%s'", entry->name);
    name_end += name_len;
    uint64_t extra_len = sr_le16(lh + 28);
    if (!fits(name_end, extra_len, zip->size) ||
        !fits(name_end + extra_len, entry->comp_size, zip->size))
        return sr_fail(err, SR_ERR_FORMAT,
                       "entry '%s' extends past end of file", entry->name);
    entry->data_offset = name_end + extra_len;
    if (!fits(entry->data_offset, entry->comp_size, cd_start))
        return sr_fail(err, SR_ERR_FORMAT,
                       "entry '%s' overlaps the central directory",
                       entry->name);
    claimed->start = lh_off;
    claimed->end = entry->data_offset + entry->comp_size;
    claimed->name = entry->name;
    return SR_OK;
}

/* Parses the central-directory entry at *pos into zip->entries[index],
 * copying its name to *names and advancing both. */
static sr_status parse_entry(sr_zip *zip, const cd_info *cd, int64_t index,
                             uint64_t *pos, char **names, span *claimed,
                             sr_error *err)
{
    uint64_t cd_end = cd->offset + cd->size;
    if (!fits(*pos, CD_HEADER_SIZE, cd_end) ||
        memcmp(zip->data + *pos, "PK\1\2", 4) != 0)
        return sr_fail(err, SR_ERR_FORMAT,
                       "bad central directory entry %" PRId64, index);
    const uint8_t *h = zip->data + *pos;
    uint32_t flags = sr_le16(h + 8), method = sr_le16(h + 10);
    uint32_t name_len = sr_le16(h + 28), extra_len = sr_le16(h + 30);
    uint64_t var_len = (uint64_t)name_len + extra_len + sr_le16(h + 32);
    if (!fits(*pos + CD_HEADER_SIZE, var_len, cd_end))
        return sr_fail(err, SR_ERR_FORMAT,
                       "bad central directory entry %" PRId64, index);
    *pos += CD_HEADER_SIZE + var_len;

    /* Control bytes (NUL above all) would let two names compare equal
     * here but differ elsewhere, and would break one-line messages. */
    char *name = *names;
    for (uint32_t i = 0; i < name_len; i++) {
        uint8_t c = h[CD_HEADER_SIZE + i];
        if (c < 0x20 || c == 0x7f)
            return sr_fail(err, SR_ERR_FORMAT,
                           "entry %" PRId64 " has a control byte in its name",
                           index);
        name[i] = (char)c;
    }
    name[name_len] = '\0';
    *names += name_len + 1;

    sr_zip_entry *entry = &zip->entries[index];
    entry->name = name;
    entry->crc32 = sr_le32(h + 16);
    entry->comp_size = sr_le32(h + 20);
    entry->size = sr_le32(h + 24);
    entry->method = (int)method;
    uint64_t lh_off = sr_le32(h + 42);
    sr_status st = read_zip64_extra(h + CD_HEADER_SIZE + name_len, extra_len,
                                    entry, &lh_off, zip->size, err);
    if (st != SR_OK)
        return st;
    if (flags & ENCRYPTION_FLAGS)
        return sr_fail(err, SR_ERR_FORMAT, "encrypted entry '%s'", name);
    if (method != 0 && method != 8)
        return sr_fail(err, SR_ERR_FORMAT,
                       "unsupported zip compression method %" PRIu32, method);
    if (method == 0 && entry->comp_size != entry->size)
        return sr_fail(err, SR_ERR_FORMAT,
                       "stored entry '%s' has compressed size %" PRIu64
                       " but size %" PRIu64,
                       name, entry->comp_size, entry->size);
    return check_local_header(zip, entry, lh_off, cd->offset, claimed, err);
}

static int compare_by_name(const void *a, const void *b)
{
    const sr_zip_entry *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int compare_spans(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

/* Sorts by_name and refuses duplicates: a reader that picks the first and
 * one that picks the last would otherwise see different models. */
static sr_status check_unique(sr_zip *zip, sr_error *err)
{
    size_t n = (size_t)zip->n_entries;
    qsort(zip->by_name, n, sizeof *zip->by_name, compare_by_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(zip->by_name[i - 1]->name, zip->by_name[i]->name) == 0)
            return sr_fail(err, SR_ERR_FORMAT, "duplicate entry '%s'",
                           zip->by_name[i]->name);
    return SR_OK;
}

/* Entries sharing bytes are how overlapping-file zip bombs work. */
static sr_status check_disjoint(span *spans, size_t n, sr_error *err)
{
    qsort(spans, n, sizeof *spans, compare_spans);
    for (size_t i = 1; i < n; i++)
        if (spans[i].start < spans[i - 1].end)
            return sr_fail(err, SR_ERR_FORMAT,
                           "zip entries overlap: '%s' and '%s'",
                           spans[i - 1].name, spans[i].name);
    return SR_OK;
}

sr_status sr_zip_open(sr_zip **out, const uint8_t *data, uint64_t size,
                      sr_error *err)
{
    if (!out || (!data && size))
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "sr_zip_open: no data");
    *out = NULL;
    cd_info cd = {0};
    sr_status st = find_central_directory(data, size, &cd, err);
    if (st != SR_OK)
        return st;

    /* n <= cd.size / 46 and cd.size <= size: all bounded by the file,
     * and every name plus its NUL fits in its 46-byte header's share. */
    size_t n = (size_t)cd.n_entries;
    sr_zip *zip = calloc(1, sizeof *zip);
    span *spans = malloc((n ? n : 1) * sizeof *spans);
    if (zip) {
        zip->data = data;
        zip->size = size;
        zip->entries = calloc(n ? n : 1, sizeof *zip->entries);
        zip->by_name = malloc((n ? n : 1) * sizeof *zip->by_name);
        zip->names = malloc(cd.size ? (size_t)cd.size : 1);
    }
    if (!zip || !spans || !zip->entries || !zip->by_name || !zip->names) {
        st = sr_fail(err, SR_ERR_NO_MEMORY,
                     "out of memory for %zu zip entries", n);
        goto fail;
    }

    uint64_t pos = cd.offset;
    char *names = zip->names;
    for (size_t i = 0; i < n; i++) {
        st = parse_entry(zip, &cd, (int64_t)i, &pos, &names, &spans[i], err);
        if (st != SR_OK)
            goto fail;
        zip->by_name[i] = &zip->entries[i];
        zip->n_entries++;
    }
    if (pos != cd.offset + cd.size) {
        st = sr_fail(err, SR_ERR_FORMAT,
                     "zip central directory size does not match its entries");
        goto fail;
    }
    if ((st = check_unique(zip, err)) != SR_OK ||
        (st = check_disjoint(spans, n, err)) != SR_OK)
        goto fail;
    free(spans);
    *out = zip;
    return SR_OK;

fail:
    free(spans);
    sr_zip_close(zip);
    return st;
}

void sr_zip_close(sr_zip *zip)
{
    if (!zip)
        return;
    free(zip->entries);
    free(zip->by_name);
    free(zip->names);
    free(zip);
}

int64_t sr_zip_count(const sr_zip *zip)
{
    return zip ? zip->n_entries : 0;
}

const sr_zip_entry *sr_zip_entry_at(const sr_zip *zip, int64_t index)
{
    if (!zip || index < 0 || index >= zip->n_entries)
        return NULL;
    return &zip->entries[index];
}

static int compare_name_key(const void *key, const void *element)
{
    const sr_zip_entry *const *e = element;
    return strcmp(key, (*e)->name);
}

const sr_zip_entry *sr_zip_find(const sr_zip *zip, const char *name)
{
    if (!zip || !name)
        return NULL;
    const sr_zip_entry **found =
        bsearch(name, zip->by_name, (size_t)zip->n_entries,
                sizeof *zip->by_name, compare_name_key);
    return found ? *found : NULL;
}

/* zlib counts in uInt; feed it at most this much at a time. */
static uInt chunk(uint64_t left)
{
    return left > UINT_MAX ? UINT_MAX : (uInt)left;
}

static uint32_t crc_of(const uint8_t *p, uint64_t n)
{
    uLong crc = crc32(0, Z_NULL, 0);
    while (n) {
        uInt len = chunk(n);
        crc = crc32(crc, p, len);
        p += len;
        n -= len;
    }
    return (uint32_t)crc;
}

/* Inflates a raw deflate stream into exactly n_dst bytes. Once dst is
 * full, one spare byte of room tells a finished stream from one that
 * would write more. */
static sr_status inflate_entry(const sr_zip_entry *entry, const uint8_t *src,
                               uint8_t *dst, sr_error *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for inflate");
    uint64_t in_left = entry->comp_size, out_left = entry->size;
    uint8_t spare;
    int probing = 0;
    sr_status st = SR_OK;
    zs.next_in = src;
    zs.next_out = dst;
    for (;;) {
        if (zs.avail_in == 0) {
            zs.avail_in = chunk(in_left);
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.avail_out = chunk(out_left);
            out_left -= zs.avail_out;
        } else if (zs.avail_out == 0) {
            zs.next_out = &spare;
            zs.avail_out = 1;
            probing = 1;
        }
        int ret = inflate(&zs, Z_NO_FLUSH);
        if (probing && zs.avail_out == 0) {
            st = sr_fail(err, SR_ERR_FORMAT,
                         "entry '%s' inflates beyond declared size",
                         entry->name);
            break;
        }
        if (ret == Z_STREAM_END) {
            if (!probing && (zs.avail_out || out_left))
                st = sr_fail(err, SR_ERR_FORMAT,
                             "entry '%s' inflates to less than declared size",
                             entry->name);
            break;
        }
        if (ret == Z_MEM_ERROR) {
            st = sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for inflate");
            break;
        }
        /* Both buffers always have room, so no progress means no input. */
        if (ret == Z_BUF_ERROR) {
            st = sr_fail(err, SR_ERR_FORMAT,
                         "truncated deflate data in entry '%s'", entry->name);
            break;
        }
        if (ret != Z_OK) {
            st = sr_fail(err, SR_ERR_FORMAT,
                         "corrupt deflate data in entry '%s'", entry->name);
            break;
        }
    }
    inflateEnd(&zs);
    return st;
}

sr_status sr_zip_read(const sr_zip *zip, const sr_zip_entry *entry,
                      uint64_t max_size, int check_crc,
                      const uint8_t **bytes, void **owned, sr_error *err)
{
    if (!zip || !entry || !bytes || !owned)
        return sr_fail(err, SR_ERR_INVALID_ARGUMENT, "sr_zip_read: no entry");
    *bytes = NULL;
    *owned = NULL;
    const uint8_t *src = zip->data + entry->data_offset;
    uint8_t *buffer = NULL;
    if (entry->size > max_size)
        return sr_fail(err, SR_ERR_LIMIT,
                       "entry '%s' is %" PRIu64 " bytes, over the limit of %"
                       PRIu64, entry->name, entry->size, max_size);
    if (entry->method == 8) {
        if (entry->size >= SIZE_MAX ||
            !(buffer = malloc(entry->size ? (size_t)entry->size : 1)))
            return sr_fail(err, SR_ERR_NO_MEMORY,
                           "out of memory for entry '%s'", entry->name);
        sr_status st = inflate_entry(entry, src, buffer, err);
        if (st != SR_OK) {
            free(buffer);
            return st;
        }
        src = buffer;
    }
    if (check_crc && crc_of(src, entry->size) != entry->crc32) {
        free(buffer);
        return sr_fail(err, SR_ERR_FORMAT, "crc mismatch in entry '%s'",
                       entry->name);
    }
    *bytes = src;
    *owned = buffer;
    return SR_OK;
}
