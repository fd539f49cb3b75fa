/* Whole input files held in memory, and outputs written whole or not at
 * all. Model files are used in place: float32 weights stay views into the
 * file's bytes (read into memory, not mapped: see sr_file_map). */
#ifndef SR_FORMATS_FILE_H
#define SR_FORMATS_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "srrun.h"

typedef struct sr_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;
} sr_mapped_file;

/* Opens path for reading ("rb") when it is a regular file; anything else (a
 * FIFO, which open() would wait on, a device) is "not a regular file" (a
 * folder "Is a directory"). size (may be NULL): the file's size. Messages do not name the path. */
sr_status sr_file_open_regular(const char *path, FILE **file, int64_t *size, sr_error *err);

/* Reads a whole regular file into memory (64-byte aligned), so that a file
 * truncated or rewritten while in use cannot hurt the process, on at most
 * n_threads threads (0: sr_threads_for's default). Messages do not name the
 * path. */
sr_status sr_file_map(const char *path, int n_threads, sr_mapped_file *file, sr_error *err);
/* The same for bytes already in memory: a 64-byte aligned copy, so that
 * the caller may free its buffer at once. */
sr_status sr_file_copy(const void *data, size_t size, sr_mapped_file *file, sr_error *err);
void sr_file_unmap(sr_mapped_file *file);

/* Writes the contents of a new file into the stream it is given. */
typedef sr_status (*sr_file_writer)(FILE *file, void *user, sr_error *err);

/* Writes a file at path whole or not at all: through an unnamed temporary
 * file beside it (O_TMPFILE) that is linked into place only when write
 * succeeds and the data is flushed, so that a failure, or the process
 * killed meanwhile, leaves no new file and any old one intact. Where the
 * file system has no O_TMPFILE, the temporary is named path.XXXXXX (and a
 * killed process leaves it). A new file gets mode 0666 less the umask; a
 * replaced one keeps its mode, and its owner where the process may give
 * files away (root). A symbolic link is written through: its target is
 * replaced, the link kept. A FIFO or character device (/dev/null) is
 * written into directly; a folder or other special file is refused.
 * Messages do not name the path. */
sr_status sr_file_write_atomic(const char *path, sr_file_writer write, void *user,
                               sr_error *err);

#endif
