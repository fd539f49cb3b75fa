/* Read-only mmap of a whole file. Owns nothing but the mapping. */
#define _POSIX_C_SOURCE 200809L
#include "formats/file.h"

#include <errno.h>
#include <fcntl.h>
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
