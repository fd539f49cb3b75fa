/* Files as srrun uses them: inputs opened only when they are regular files
 * and read whole into memory (or copied there from the caller's buffer), and outputs written so that a failed or
 * killed write leaves nothing: an unnamed temporary (O_TMPFILE) linked into
 * place when complete, or where the file system has none, a named one
 * renamed into place. What a path names is decided here: a symbolic link is
 * written through (its target replaced, the link kept), a FIFO or character
 * device written straight into. */
#define _GNU_SOURCE /* O_TMPFILE */
#include "formats/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/threads.h"

/* What a reading thread takes at a time. */
#define READ_CHUNK (INT64_C(8) << 20)

typedef struct read_job {
    int fd;
    uint8_t *data;
    int64_t size;
    atomic_int_fast64_t next; /* the next chunk to read */
    pthread_mutex_t lock;     /* over the two below */
    int failed;               /* errno where a chunk failed first, -1: the file ended there */
    int64_t shrunk_to;
} read_job;

static void read_chunks(void *arg)
{
    read_job *job = arg;
    for (int64_t k; (k = atomic_fetch_add(&job->next, 1)) * READ_CHUNK < job->size;) {
        const int64_t end = job->size - k * READ_CHUNK < READ_CHUNK ? job->size : (k + 1) * READ_CHUNK;
        for (int64_t done = k * READ_CHUNK; done < end;) {
            const ssize_t n = pread(job->fd, job->data + done, (size_t)(end - done), (off_t)done);
            if (n > 0) {
                done += n;
            } else if (n == 0 || errno != EINTR) {
                pthread_mutex_lock(&job->lock);
                if (!job->failed || done < job->shrunk_to) {
                    job->failed = n == 0 ? -1 : errno;
                    job->shrunk_to = done;
                }
                pthread_mutex_unlock(&job->lock);
                break;
            }
        }
    }
}

sr_status sr_file_open_regular(const char *path, FILE **file, int64_t *size, sr_error *err)
{
    *file = NULL;
    /* Non-blocking: opening a FIFO would otherwise wait for a writer forever. */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    struct stat st;
    const char *problem = NULL;
    if (fstat(fd, &st) != 0)
        problem = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        problem = strerror(EISDIR);
    else if (!S_ISREG(st.st_mode))
        problem = "not a regular file";
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
             !(*file = fdopen(fd, "rb")))
        problem = strerror(errno);
    if (problem) {
        close(fd);
        return sr_fail(err, SR_ERR_IO, "%s", problem);
    }
    if (size)
        *size = (int64_t)st.st_size;
    return SR_OK;
}

sr_status sr_file_map(const char *path, int n_threads, sr_mapped_file *file, sr_error *err)
{
    file->data = NULL;
    file->size = 0;
    FILE *f;
    int64_t size;
    sr_status st = sr_file_open_regular(path, &f, &size, err);
    if (st != SR_OK || size == 0) {
        if (st == SR_OK)
            fclose(f);
        return st;
    }
    const int fd = fileno(f);
    /* Read, not mapped: weights are used in place for the model's whole
     * life, and a mapped file that someone truncates meanwhile (a training
     * script saving it again) kills the process with SIGBUS. 64-aligned as
     * model.bin's tensors are in the file. */
    void *data = NULL;
    if ((uint64_t)size > SIZE_MAX || posix_memalign(&data, 64, (size_t)size) != 0) {
        fclose(f);
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for a file of %lld bytes",
                       (long long)size);
    }
    /* In chunks, on threads of its own (base/threads.h): a read costs a
     * core its copy out of the page cache and the faults of the fresh
     * pages, not the disk's time (RealESRGAN_x4plus's 67 MB took 37-44 ms
     * on one core, 20-26 ms on two). */
    read_job job = {.fd = fd, .data = data, .size = size, .shrunk_to = size};
    atomic_init(&job.next, 0);
    pthread_mutex_init(&job.lock, NULL);
    const int threads = sr_threads_for((size + READ_CHUNK - 1) / READ_CHUNK, n_threads);
    sr_run_threads(threads, read_chunks, &job);
    pthread_mutex_destroy(&job.lock);
    if (job.failed < 0)
        st = sr_fail(err, SR_ERR_IO, "file shrank to %lld bytes while being read (was %lld)",
                     (long long)job.shrunk_to, (long long)size);
    else if (job.failed)
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(job.failed));
    fclose(f);
    if (st != SR_OK) {
        free(data);
        return st;
    }
    file->data = data;
    file->size = (uint64_t)size;
    return SR_OK;
}

sr_status sr_file_copy(const void *data, size_t size, sr_mapped_file *file, sr_error *err)
{
    file->data = NULL;
    file->size = 0;
    if (size == 0)
        return SR_OK;
    void *copy = NULL;
    if (posix_memalign(&copy, 64, size) != 0)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory for a copy of %zu bytes", size);
    memcpy(copy, data, size);
    file->data = copy;
    file->size = size;
    return SR_OK;
}

void sr_file_unmap(sr_mapped_file *file)
{
    free((void *)file->data);
    file->data = NULL;
    file->size = 0;
}

/* What an output path names, once symbolic links are followed. */
typedef enum output_kind {
    OUTPUT_NEW,     /* nothing yet: a new file */
    OUTPUT_REPLACE, /* a regular file, replaced whole */
    OUTPUT_THROUGH, /* a FIFO or character device (/dev/null), written into */
} output_kind;

typedef struct output {
    output_kind kind;
    char *path;      /* path, or the regular file a symbolic link leads to */
    struct stat old; /* OUTPUT_REPLACE: the file being replaced */
} output;

static sr_status find_output(const char *path, output *out, sr_error *err)
{
    out->kind = OUTPUT_NEW;
    out->path = NULL;
    struct stat st;
    const bool exists = lstat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (exists) {
        const bool link = S_ISLNK(st.st_mode);
        if (link && stat(path, &st) != 0)
            return sr_fail(err, SR_ERR_IO, "%s",
                           errno == ENOENT ? "symbolic link to nothing" : strerror(errno));
        if (S_ISDIR(st.st_mode))
            return sr_fail(err, SR_ERR_IO, "%s", strerror(EISDIR));
        if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
            return sr_fail(err, SR_ERR_IO, "not a regular file, FIFO or character device");
        out->kind = S_ISREG(st.st_mode) ? OUTPUT_REPLACE : OUTPUT_THROUGH;
        out->old = st;
        /* A link's target is replaced, not the link: the temporary goes
         * beside the target, where rename can put it. */
        if (link && out->kind == OUTPUT_REPLACE && !(out->path = realpath(path, NULL)))
            return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    }
    if (!out->path && !(out->path = strdup(path)))
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    return SR_OK;
}

/* The umask, read without changing it where Linux shows it (4.7 and
 * later): reading it with umask() sets it for a moment, which a thread
 * creating a file at that moment would see. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    unsigned mask = 0;
    bool found = false;
    for (char line[256]; f && !found && fgets(line, sizeof line, f);)
        found = sscanf(line, "Umask: %o", &mask) == 1;
    if (f)
        fclose(f);
    if (found)
        return (mode_t)mask;
    const mode_t m = umask(022);
    umask(m);
    return m;
}

/* An unnamed file in dir (mode 0666 less the umask, as a new file's), or
 * -1 where the file system or the kernel has none. Linked into place
 * through /proc/self/fd, so that must be there too. */
static int open_unnamed(const char *dir)
{
#ifdef O_TMPFILE
    if (access("/proc/self/fd", X_OK) == 0)
        return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#else
    (void)dir;
#endif
    return -1;
}

/* A fresh hidden name beside path, made by mkstemp (the file it creates is
 * returned open in *fd): short whatever path's own name is, which may be
 * as long as a name can be (path + a suffix would then be too long). */
static char *make_temp(const char *path, int *fd)
{
    static const char name[] = ".srrun-XXXXXX";
    const char *slash = strrchr(path, '/');
    const size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    char *temp = malloc(dir_len + sizeof name);
    if (!temp)
        return NULL;
    memcpy(temp, path, dir_len);
    memcpy(temp + dir_len, name, sizeof name);
    if ((*fd = mkstemp(temp)) < 0) {
        free(temp);
        return NULL;
    }
    return temp;
}

/* Gives the unnamed file fd the name path. linkat cannot replace a file:
 * an existing one is replaced by linking under a fresh temporary name and
 * renaming that over it (a named file exists only between the two calls). */
static sr_status link_unnamed(int fd, const char *path, bool replace, sr_error *err)
{
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    if (!replace && linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
        return SR_OK;
    if (!replace && errno != EEXIST) /* EEXIST: made meanwhile; replace it */
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    for (int tries = 0; tries < 100; tries++) {
        int temp_fd;
        char *temp = make_temp(path, &temp_fd);
        if (!temp)
            return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
        close(temp_fd);
        unlink(temp); /* only its fresh name was wanted */
        sr_status st = SR_OK;
        if (linkat(AT_FDCWD, self, AT_FDCWD, temp, AT_SYMLINK_FOLLOW) != 0) {
            const int e = errno;
            free(temp);
            if (e == EEXIST)
                continue;
            return sr_fail(err, SR_ERR_IO, "%s", strerror(e));
        }
        if (rename(temp, path) != 0) {
            st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
            unlink(temp);
        }
        free(temp);
        return st;
    }
    return sr_fail(err, SR_ERR_IO, "no free temporary name beside the output");
}

/* The new file's mode and owner: an old file's (its owner only where the
 * process may give files away, as root can), else 0666 less the umask. */
static sr_status set_mode(int fd, const output *out, bool unnamed, sr_error *err)
{
    if (out->kind == OUTPUT_NEW) {
        if (!unnamed && fchmod(fd, 0666 & ~current_umask()) != 0) /* mkstemp's is 0600 */
            return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
        return SR_OK;
    }
    const struct stat *old = &out->old;
    if ((old->st_uid != geteuid() || old->st_gid != getegid()) &&
        fchown(fd, old->st_uid, old->st_gid) != 0 && errno != EPERM)
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (fchmod(fd, old->st_mode & 07777) != 0)
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    return SR_OK;
}

static sr_status write_replacing(const output *out, sr_file_writer write, void *user,
                                 sr_error *err)
{
    const char *slash = strrchr(out->path, '/');
    char *dir = slash ? strndup(out->path, slash == out->path ? 1 : (size_t)(slash - out->path))
                      : strdup(".");
    if (!dir)
        return sr_fail(err, SR_ERR_NO_MEMORY, "out of memory");
    char *temp = NULL;
    int fd = open_unnamed(dir);
    const bool unnamed = fd >= 0;
    free(dir);
    if (!unnamed && !(temp = make_temp(out->path, &fd)))
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    sr_status st = set_mode(fd, out, unnamed, err);
    FILE *file = st == SR_OK ? fdopen(fd, "wb") : NULL;
    if (st == SR_OK && !file)
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (st == SR_OK)
        st = write(file, user, err);
    /* The flush: a full disk often shows up only here. */
    if (st == SR_OK && fflush(file) != 0)
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (st == SR_OK && unnamed)
        st = link_unnamed(fd, out->path, out->kind == OUTPUT_REPLACE, err);
    if ((file ? fclose(file) : close(fd)) != 0 && st == SR_OK)
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (st == SR_OK && temp && rename(temp, out->path) != 0)
        st = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (st != SR_OK && temp)
        unlink(temp);
    free(temp);
    return st;
}

static sr_status write_through(const output *out, sr_file_writer write, void *user,
                               sr_error *err)
{
    /* Blocks on a FIFO until a reader comes, as writing to one should. */
    const int fd = open(out->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    struct stat st;
    FILE *file = NULL;
    sr_status status = SR_OK;
    if (fstat(fd, &st) != 0 || (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)))
        status = sr_fail(err, SR_ERR_IO, "changed while being opened");
    else if (!(file = fdopen(fd, "wb")))
        status = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    if (status == SR_OK)
        status = write(file, user, err);
    if ((file ? fclose(file) : close(fd)) != 0 && status == SR_OK)
        status = sr_fail(err, SR_ERR_IO, "%s", strerror(errno));
    return status;
}

sr_status sr_file_write_atomic(const char *path, sr_file_writer write, void *user,
                               sr_error *err)
{
    output out = {0};
    sr_status st = find_output(path, &out, err);
    if (st == SR_OK)
        st = out.kind == OUTPUT_THROUGH ? write_through(&out, write, user, err)
                                        : write_replacing(&out, write, user, err);
    free(out.path);
    return st;
}
