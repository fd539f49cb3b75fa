/* A whole file mapped read-only into memory. Model files are used in place:
 * float32 weights stay views into the mapping. */
#ifndef SR_FORMATS_FILE_H
#define SR_FORMATS_FILE_H

#include <stdint.h>

#include "srrun.h"

typedef struct sr_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;
} sr_mapped_file;

sr_status sr_file_map(const char *path, sr_mapped_file *file, sr_error *err);
void sr_file_unmap(sr_mapped_file *file);

#endif
