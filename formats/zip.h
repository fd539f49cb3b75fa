/* Read-only zip archive over bytes in memory (a mapped file): what
 * torch.save writes (stored entries, zip64 records, data descriptors) and
 * what `zip -r` repacks produce (deflated entries). Every offset and size
 * from the file is checked before use; nothing is read outside the bytes. */
#ifndef SR_FORMATS_ZIP_H
#define SR_FORMATS_ZIP_H

#include <stdint.h>

#include "srrun.h"

typedef struct sr_zip sr_zip;

typedef struct sr_zip_entry {
    const char *name;      /* NUL-terminated, as in the central directory */
    uint64_t data_offset;  /* of the entry's (compressed) bytes in the file */
    uint64_t comp_size;
    uint64_t size;         /* uncompressed */
    uint32_t crc32;
    int method;            /* 0 stored, 8 deflate */
} sr_zip_entry;

/* Parses the central directory of `size` bytes at `data`, which must stay
 * valid until sr_zip_close. */
sr_status sr_zip_open(sr_zip **zip, const uint8_t *data, uint64_t size,
                      sr_error *err);
void sr_zip_close(sr_zip *zip);

int64_t sr_zip_count(const sr_zip *zip);
const sr_zip_entry *sr_zip_entry_at(const sr_zip *zip, int64_t index);
const sr_zip_entry *sr_zip_find(const sr_zip *zip, const char *name);

/* The uncompressed bytes of an entry. Stored entries point into the file
 * and set *owned = NULL; deflated ones are inflated into a new buffer
 * returned in *owned (free it), refused when the stream inflates past the
 * declared size. Any entry whose declared size exceeds max_size is refused
 * (SR_ERR_LIMIT). With check_crc the CRC-32 is verified. */
sr_status sr_zip_read(const sr_zip *zip, const sr_zip_entry *entry,
                      uint64_t max_size, int check_crc,
                      const uint8_t **bytes, void **owned, sr_error *err);

#endif
