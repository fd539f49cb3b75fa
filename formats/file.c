/* Files as srrun uses them: whole inputs mapped read-only, and outputs
 * written through a temporary so that a failed write leaves nothing. */
#define _POSIX_C_SOURCE 200809L
#include "formats/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/error.h"

sr_status sr_file_map(const char *path, sr_mapped_file *file, sr_error *err)
{
    file->data = NULL;
    file->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sr_fail(err, SR_ERR_IO, "%s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sr_fail(err, SR_ERR_IO, "not a regular file");
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sr_fail(err, SR_ERR_IO, "cannot map file: %s", strerror(e));
        }
        file->data = p;
        file->size = (uint64_t)st.st_size;
    }
    close(fd);
    return SR_OK;
}

void sr_file_unmap(sr_mapped_file *file)
{
    if (file->data)
        munmap((void *)file->data, (size_t)file->size);
    file->data = NULL;
    file->size = 0;
}

sr_status sr_file_write_atomic(const char *path, sr_file_writer write, void *user,
                               sr_error *err)
{
    const size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".XXXXXX");
    if (!tmp)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".XXXXXX", sizeof ".XXXXXX");
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        const int e = errno;
        free(tmp);
        return sr_fail(err, SR_ERR_IO, "%s", strerror(e));
    }
    sr_status st = SR_OK;
    FILE *file = NULL;
    /* mkstemp makes the file 0600; give it the usual mode of an output. */
    if (fchmod(fd, 0644) != 0 || !(file = fdopen(fd, "wb"))) {
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
        close(fd);
    } else {
        st = write(file, user, err);
        /* fclose flushes: a full disk often shows up only here. */
        if (fclose(file) != 0 && st == SR_OK)
            st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    }
    if (st == SR_OK && rename(tmp, path) != 0)
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (st != SR_OK)
        unlink(tmp);
    free(tmp);
    return st;
}
