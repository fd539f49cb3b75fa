/* A whole file mapped read-only into memory. Model files are used in place:
 * float32 weights stay views into the mapping. */
#ifndef SR_FORMATS_FILE_H
#define SR_FORMATS_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "srrun.h"

typedef struct sr_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;
} sr_mapped_file;

sr_status sr_file_map(const char *path, sr_mapped_file *file, sr_error *err);
void sr_file_unmap(sr_mapped_file *file);

/* Writes the contents of a new file into the stream it is given. */
typedef sr_status (*sr_file_writer)(FILE *file, void *user, sr_error *err);

/* Creates path through a temporary file beside it (mode 0644), renamed over
 * path only when write succeeds and the data is flushed: a failure leaves
 * no new file and any old one intact. Messages do not name the path. */
sr_status sr_file_write_atomic(const char *path, sr_file_writer write, void *user,
                               sr_error *err);

#endif
