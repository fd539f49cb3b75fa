/* The scratch file (see scratch.h). */
#define _GNU_SOURCE /* O_TMPFILE */
#include "base/scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <linux/magic.h>

const char *sr_scratch_dir(const char *dir)
{
    if (dir)
        return dir;
    /* /var/tmp, not /tmp: where large temporary files belong, on disk
     * where /tmp is a tmpfs (Debian 13, Fedora, Arch). */
    const char *tmp = getenv("TMPDIR");
    return tmp && tmp[0] ? tmp : "/var/tmp";
}

/* Whether the file lives in memory (tmpfs, ramfs): a spill there takes the
 * memory it was meant to save, and no budget counts it. */
static bool in_memory(int fd)
{
    struct statfs fs;
    return fstatfs(fd, &fs) == 0 &&
           ((unsigned long)fs.f_type == TMPFS_MAGIC || (unsigned long)fs.f_type == RAMFS_MAGIC);
}

/* A file in dir with no name: O_TMPFILE, or where the file system has
 * none, a file made and unlinked at once. -1 and errno on failure. */
static int open_unnamed(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/.srrun-scratch-XXXXXX", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

sr_status sr_scratch_open(const char *dir, int64_t bytes, int *fd, sr_error *err)
{
    const bool named = dir != NULL;
    dir = sr_scratch_dir(dir);
    *fd = open_unnamed(dir);
    if (*fd < 0)
        return sr_fail(err, SR_ERR_IO, "cannot use scratch directory %s: %s", dir,
                       strerror(errno));
    if (!named && in_memory(*fd)) { /* one named is the caller's choice */
        close(*fd);
        *fd = -1;
        return sr_fail(err, SR_ERR_IO, "scratch directory %s is in memory (tmpfs)", dir);
    }
    struct statvfs vfs;
    if (fstatvfs(*fd, &vfs) != 0) {
        const int e = errno;
        close(*fd);
        *fd = -1;
        return sr_fail(err, SR_ERR_IO, "cannot use scratch directory %s: %s", dir, strerror(e));
    }
    const int64_t free_bytes = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
    if (free_bytes < bytes) {
        close(*fd);
        *fd = -1;
        return sr_fail(err, SR_ERR_IO,
                       "scratch directory %s has %lldM free, the plan spills %lldM there",
                       dir, (long long)(free_bytes >> 20), (long long)((bytes >> 20) + 1));
    }
    return SR_OK;
}

sr_status sr_scratch_write(int fd, const void *p, int64_t bytes, int64_t offset, sr_error *err)
{
    const char *at = p;
    while (bytes > 0) {
        const ssize_t n = pwrite(fd, at, (size_t)bytes, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sr_fail(err, SR_ERR_IO, "cannot write the scratch file: %s",
                           n < 0 ? strerror(errno) : "nothing written");
        at += n;
        offset += n;
        bytes -= n;
    }
    return SR_OK;
}

sr_status sr_scratch_read(int fd, void *p, int64_t bytes, int64_t offset, sr_error *err)
{
    char *at = p;
    while (bytes > 0) {
        const ssize_t n = pread(fd, at, (size_t)bytes, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return sr_fail(err, SR_ERR_IO, "cannot read the scratch file: %s",
                           n < 0 ? strerror(errno) : "it is shorter than written");
        at += n;
        offset += n;
        bytes -= n;
    }
    return SR_OK;
}

void sr_scratch_discard(int fd, int64_t offset, int64_t bytes)
{
    (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)bytes);
}
