/* The scratch file: where a run keeps the tensors its plan spills instead
 * of holding them in memory (runtime/plan.h). One per run, with no name
 * (O_TMPFILE, or a file unlinked as soon as it is made), so it is gone
 * when its descriptor closes, on every exit path, SIGKILL included. */
#ifndef SR_BASE_SCRATCH_H
#define SR_BASE_SCRATCH_H

#include <stdint.h>

#include "base/error.h"

/* The directory a NULL one means: $TMPDIR, else /var/tmp. */
const char *sr_scratch_dir(const char *dir);

/* Opens a scratch file in dir (NULL: sr_scratch_dir's) into *fd, checking
 * that the file system has `bytes` free for it: SR_ERR_IO, one line naming
 * the directory (and the bytes needed and free, when short). The default
 * directory is refused where it lives in memory (tmpfs, ramfs); a named
 * one is used wherever it is. */
sr_status sr_scratch_open(const char *dir, int64_t bytes, int *fd, sr_error *err);

/* bytes at offset of the file, from or to p, whole or SR_ERR_IO (the disk
 * full, a read short of what was written). */
sr_status sr_scratch_write(int fd, const void *p, int64_t bytes, int64_t offset, sr_error *err);
sr_status sr_scratch_read(int fd, void *p, int64_t bytes, int64_t offset, sr_error *err);

/* Drops bytes at offset that will not be read again (their pages need
 * not reach the disk); nothing where the file system cannot. */
void sr_scratch_discard(int fd, int64_t offset, int64_t bytes);

#endif
