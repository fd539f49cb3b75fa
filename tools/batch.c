/* srrun with several inputs or a folder: the files are listed first
 * (folders walked in name order), then upscaled one after another by one
 * session, each written as its rows are computed. While the network runs
 * on an image, a helper thread decodes the next input, when the memory
 * the plan leaves free holds it; otherwise that waits its turn. The steps
 * of one image are upscale.c's, as for a single file. */
#define _POSIX_C_SOURCE 200809L
#include "batch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sys/stat.h>

#include "report.h"
#include "upscale.h"

/* ---- What a file is ------------------------------------------------- */

/* 1 when the file starts as a PNG or a JPEG does, 0 when not, -1 when it
 * cannot be read (errno says why). Only the signature: whether the rest is
 * an image is for the decoder to say. */
static int starts_as_image(const char *path)
{
    /* O_NONBLOCK: a FIFO put in place meanwhile is not waited on. */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    unsigned char head[8];
    const ssize_t n = read(fd, head, sizeof head);
    const int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    return (n == 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0) ||
           (n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF);
}

static int named_as_image(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && !strchr(dot, '/') &&
           (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
            strcasecmp(dot, ".jpeg") == 0);
}

static int is_folder(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int batch_split_args(cli *c)
{
    c->model = NULL;
    c->input = NULL;
    if (c->n_inputs >= 2 && !is_folder(c->inputs[0]) && !named_as_image(c->inputs[0]) &&
        starts_as_image(c->inputs[0]) != 1) {
        c->model = c->inputs[0];
        c->inputs++;
        c->n_inputs--;
    }
    if (c->n_inputs == 1 && !is_folder(c->inputs[0])) {
        c->input = c->inputs[0];
        return 0;
    }
    return 1;
}

/* ---- The list of files ---------------------------------------------- */

typedef enum file_state {
    FILE_PENDING,  /* listed */
    FILE_CHECKED,  /* header read, output's shape and limits checked */
    FILE_DECODED,  /* pixels in `in` */
    FILE_DONE,     /* the rest are final */
    FILE_SKIPPED,
    FILE_FAILED,
} file_state;

typedef struct batch_file {
    char *input, *output;
    file_state state;
    char *message; /* FILE_FAILED: the line that says why */
    sr_image in, shape;
} batch_file;

/* A file as the file system knows it, whatever its name. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

typedef struct batch {
    const cli *c;
    const char *folder;     /* OUT; NULL: the current folder */
    const char *model_path; /* NULL: the default model */
    int scale, jpeg;
    batch_file *files;
    size_t n, cap, reported;
    file_id *inputs; /* of every file listed, sorted: what no output may replace */
    size_t n_ids, ids_cap;
    file_id out_id; /* OUT, left out of the walk */
    int show_progress; /* a bar on stderr, a terminal */
    progress_bar bar;
    char label[48]; /* the bar's "3/8 ": the file it shows of how many */
    int n_done, n_skipped, n_failed;
} batch;

static int compare_ids(const void *a, const void *b)
{
    const file_id *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static char *join(const char *folder, const char *name)
{
    const size_t n = strlen(folder) + strlen(name) + 2;
    char *path = malloc(n);
    if (path)
        snprintf(path, n, "%s%s%s", folder,
                 *folder && folder[strlen(folder) - 1] != '/' ? "/" : "", name);
    return path;
}

static void note(const batch *b, const char *path, const char *what)
{
    char shown[SHOWN_MAX];
    if (!b->c->quiet)
        fprintf(stderr, "srrun: note: %s: %s; skipped\n", printable(shown, sizeof shown, path),
                what);
}

/* Lists input, whose output goes to OUT/below/<stem>_x<scale>.<ext>.
 * -1: out of memory. */
static int add_file(batch *b, const char *input, const char *below)
{
    if (b->n == b->cap) {
        const size_t cap = b->cap ? 2 * b->cap : 64;
        batch_file *files = realloc(b->files, cap * sizeof *files);
        if (!files)
            return -1;
        b->files = files;
        b->cap = cap;
    }
    char *folder = *below ? join(b->folder ? b->folder : "", below) : NULL;
    const char *out_folder = *below ? folder : b->folder;
    const size_t n = output_name(NULL, 0, out_folder, input, b->scale, b->jpeg) + 1;
    batch_file f = {.input = strdup(input), .output = malloc(n)};
    if ((*below && !folder) || !f.input || !f.output) {
        free(folder);
        free(f.input);
        free(f.output);
        return -1;
    }
    output_name(f.output, n, out_folder, input, b->scale, b->jpeg);
    free(folder);
    b->files[b->n++] = f;

    struct stat st;
    if (stat(input, &st) == 0) {
        if (b->n_ids == b->ids_cap) {
            const size_t cap = b->ids_cap ? 2 * b->ids_cap : 64;
            file_id *ids = realloc(b->inputs, cap * sizeof *ids);
            if (!ids)
                return -1;
            b->inputs = ids;
            b->ids_cap = cap;
        }
        b->inputs[b->n_ids++] = (file_id){st.st_dev, st.st_ino};
    }
    return 0;
}

/* The folders from the walk's start down to the one being walked: a
 * bind mount of one of them inside it would be walked for ever. */
typedef struct ancestor {
    file_id id;
    const struct ancestor *up;
} ancestor;

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(batch *b, const char *folder, const char *below, const ancestor *up);

/* One entry of a folder being walked. -1: out of memory. */
static int walk_entry(batch *b, const char *path, const char *below, const char *name,
                      const ancestor *up)
{
    struct stat st;
    bool link = false;
    if (lstat(path, &st) != 0 || ((link = S_ISLNK(st.st_mode)) && stat(path, &st) != 0)) {
        note(b, path, strerror(errno));
        return 0;
    }
    const file_id id = {st.st_dev, st.st_ino};
    if (S_ISDIR(st.st_mode)) {
        /* As find(1), links to folders are not followed: two links a level
         * to the next level would make 2^levels paths to walk. */
        if (link) {
            note(b, path, "a link to a folder (not followed)");
            return 0;
        }
        for (const ancestor *a = up; a; a = a->up)
            if (compare_ids(&a->id, &id) == 0) {
                note(b, path, "a folder that holds itself (a bind mount)");
                return 0;
            }
        if (compare_ids(&id, &b->out_id) == 0)
            return 0; /* the outputs of an earlier run */
        char *sub = join(below, name);
        if (!sub)
            return -1;
        const int rc = walk(b, path, sub, &(ancestor){id, up});
        free(sub);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        note(b, path, "not a regular file");
        return 0;
    }
    const int image = starts_as_image(path);
    if (image < 0)
        note(b, path, strerror(errno));
    else if (!image)
        note(b, path, "not a PNG or JPEG image");
    return image == 1 ? add_file(b, path, below) : 0;
}

/* Lists the images in folder and its subfolders, in name order (bytes,
 * not the locale's), leaving out hidden entries (named .*). */
static int walk(batch *b, const char *folder, const char *below, const ancestor *up)
{
    DIR *d = opendir(folder);
    if (!d) {
        note(b, folder, strerror(errno));
        return 0;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    errno = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)); errno = 0) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **more = realloc(names, cap * sizeof *names);
            if (!more) {
                rc = -1;
                break;
            }
            names = more;
        }
        if (!(names[n] = strdup(e->d_name)))
            rc = -1;
        else
            n++;
    }
    if (rc == 0 && errno != 0)
        note(b, folder, strerror(errno)); /* what was read is still walked */
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        char *path = rc == 0 ? join(folder, names[i]) : NULL;
        if (rc == 0)
            rc = path ? walk_entry(b, path, below, names[i], up) : -1;
        free(path);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* The file that comes later of two with one output fails, naming the other. */
static int compare_outputs(const void *a, const void *b)
{
    const batch_file *x = *(batch_file *const *)a, *y = *(batch_file *const *)b;
    const int order = strcmp(x->output, y->output);
    return order ? order : x < y ? -1 : x > y;
}

static void failed(batch_file *f, const char *fmt, ...);

static int mark_shared_outputs(batch *b)
{
    if (b->n == 0)
        return 0;
    batch_file **order = malloc(b->n * sizeof *order);
    if (!order)
        return -1;
    for (size_t i = 0; i < b->n; i++)
        order[i] = &b->files[i];
    qsort(order, b->n, sizeof *order, compare_outputs);
    for (size_t i = 1; i < b->n; i++)
        if (strcmp(order[i]->output, order[i - 1]->output) == 0)
            failed(order[i], "%s: its output %s is also %s's; skipped", order[i]->input,
                   order[i]->output, order[i - 1]->input);
    free(order);
    if (b->n_ids)
        qsort(b->inputs, b->n_ids, sizeof *b->inputs, compare_ids);
    return 0;
}

/* ---- One file's steps ----------------------------------------------- */

static void failed(batch_file *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    free(f->message);
    f->message = malloc((size_t)n + 1);
    if (f->message) {
        va_start(ap, fmt);
        vsnprintf(f->message, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    f->state = FILE_FAILED;
    sr_image_free(&f->in);
}

static int64_t image_bytes(const sr_image *image)
{
    static const int sample_bytes[] = {1, 2, 4};
    return image->width * image->height * image->channels * sample_bytes[image->type];
}

/* Whether writing to output would replace a file the run reads. */
static const char *replaces(const batch *b, const char *output)
{
    struct stat st;
    if (stat(output, &st) != 0)
        return NULL;
    const file_id id = {st.st_dev, st.st_ino};
    if (b->n_ids && bsearch(&id, b->inputs, b->n_ids, sizeof id, compare_ids))
        return "an input of this run";
    struct stat model;
    if (b->model_path && stat(b->model_path, &model) == 0 && model.st_dev == id.dev &&
        model.st_ino == id.ino)
        return "the model";
    return NULL;
}

/* PENDING -> CHECKED: the header, and the output's shape and limits; or
 * SKIPPED when the output exists (without --overwrite), or FAILED. */
static void check_file(batch *b, batch_file *f)
{
    struct stat st;
    if (!b->c->overwrite && lstat(f->output, &st) == 0) {
        f->state = FILE_SKIPPED;
        return;
    }
    sr_error err = {0};
    if (sr_image_read_info(f->input, &b->c->read_options, &f->in, &err) != SR_OK)
        return failed(f, "%s", err.message);
    f->shape = output_shape(b->c, &f->in, b->scale, b->jpeg);
    if (sr_image_check_output(f->output, b->jpeg ? SR_IMAGE_JPEG : SR_IMAGE_PNG, &f->shape,
                              &err) != SR_OK)
        return failed(f, "%s", err.message);
    const char *is = replaces(b, f->output);
    if (is)
        return failed(f, "%s: is %s; the output must be another file", f->output, is);
    f->state = FILE_CHECKED;
}

/* CHECKED -> DECODED, no more pixels than the header promised (the file
 * may have changed since). */
static void decode_file(const batch *b, batch_file *f)
{
    sr_image_read_options planned = b->c->read_options;
    planned.max_pixels = f->in.width * f->in.height;
    sr_error err = {0};
    if (sr_image_read(f->input, &planned, &f->in, &err) != SR_OK)
        return failed(f, "%s", err.message);
    f->state = FILE_DECODED;
}

/* Makes the folders above path (OUT and those below it) that are missing. */
static int make_folders_above(const char *path, sr_error *err)
{
    char *folder = strdup(path);
    if (!folder) {
        snprintf(err->message, sizeof err->message, "%s: out of memory", path);
        return -1;
    }
    int rc = 0;
    for (char *slash = strchr(folder + 1, '/'); slash && rc == 0; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        struct stat st;
        if (stat(folder, &st) != 0 && mkdir(folder, 0777) != 0 && errno != EEXIST) {
            snprintf(err->message, sizeof err->message, "%s: cannot make the folder: %s",
                     folder, strerror(errno));
            rc = -1;
        } else if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err->message, sizeof err->message, "%s: not a folder", folder);
            rc = -1;
        }
        *slash = '/';
    }
    free(folder);
    return rc;
}

/* From file i on: checks each file until one is to be upscaled, and
 * decodes it when its pixels take at most `room` bytes. Returns its index
 * (the file CHECKED or DECODED), or b->n when none is left. */
static size_t next_file(batch *b, size_t i, int64_t room)
{
    for (; i < b->n; i++) {
        batch_file *f = &b->files[i];
        if (f->state == FILE_PENDING)
            check_file(b, f);
        if (f->state == FILE_CHECKED && image_bytes(&f->in) <= room)
            decode_file(b, f);
        if (f->state == FILE_CHECKED || f->state == FILE_DECODED)
            return i;
    }
    return b->n;
}

/* The helper thread's work while the network runs: make the next file
 * ready. */
typedef struct helper_work {
    batch *b;
    size_t next;
    int64_t room; /* bytes the next file's pixels may take */
} helper_work;

static void *helper_main(void *arg)
{
    helper_work *w = arg;
    next_file(w->b, w->next, w->room);
    return NULL;
}

/* Prints the outcome of each file that has one, in the files' order. */
static void report(batch *b)
{
    char shown[SHOWN_MAX];
    for (; b->reported < b->n && b->files[b->reported].state >= FILE_DONE; b->reported++) {
        const batch_file *f = &b->files[b->reported];
        if (f->state == FILE_DONE) {
            b->n_done++;
            if (!b->c->quiet)
                printf("%s\n", printable(shown, sizeof shown, f->output));
        } else if (f->state == FILE_SKIPPED) {
            b->n_skipped++;
            if (b->c->verbose)
                fprintf(stderr, "srrun: %s: exists; skipped\n",
                        printable(shown, sizeof shown, f->output));
        } else {
            b->n_failed++;
            fprintf(stderr, "srrun: %s\n",
                    f->message ? printable(shown, sizeof shown, f->message) : "out of memory");
        }
    }
    fflush(stdout);
}

/* Upscales file i (CHECKED or DECODED) into its output, DONE or FAILED,
 * with the helper meanwhile readying the next file. */
static void upscale_file(batch *b, sr_session *session, size_t i)
{
    batch_file *f = &b->files[i];
    sr_plan_info plan = SR_PLAN_INFO_INIT;
    if (sr_session_plan_rows(session, &f->in, &f->shape, &plan) != SR_OK)
        return failed(f, "%s: %s", f->input, sr_session_last_error(session));
    if (f->state == FILE_CHECKED && (decode_file(b, f), f->state != FILE_DECODED))
        return;
    sr_error err = {0};
    if (make_folders_above(f->output, &err) != 0)
        return failed(f, "%s", err.message);

    /* What the plan leaves of max_memory holds the next input, or it waits. */
    const int64_t room = sr_session_backend(session) == SR_BACKEND_CUDA /* the device's */
                             ? INT64_MAX
                             : plan.max_memory - plan.predicted_peak;
    helper_work work = {b, i + 1, room};
    pthread_t helper;
    const int threaded = pthread_create(&helper, NULL, helper_main, &work) == 0;
    if (!threaded)
        helper_main(&work);

    if (b->show_progress) {
        snprintf(b->label, sizeof b->label, "%zu/%zu ", i + 1, b->n);
        progress_bar_start(&b->bar, stderr);
        b->bar.label = b->label;
    }
    const sr_status st = upscale_to_file(b->c, session, &f->in, &f->shape, f->output);
    if (b->show_progress)
        progress_bar_finish(&b->bar);
    if (threaded)
        pthread_join(helper, NULL);
    if (st != SR_OK) {
        /* A file's own failure names it; the run's names the input. */
        const char *message = sr_session_last_error(session);
        if (strncmp(message, f->output, strlen(f->output)) == 0)
            return failed(f, "%s", message);
        return failed(f, "%s: %s", f->input, message);
    }
    sr_image_free(&f->in);
    f->state = FILE_DONE;
}

/* ---- The run -------------------------------------------------------- */

/* Makes OUT (and the folders above it) when missing; 1 after saying why
 * not. */
static int make_out_folder(batch *b)
{
    sr_error err = {0};
    char *probe = join(b->folder, "x"); /* make_folders_above makes OUT too */
    struct stat st;
    if (probe && make_folders_above(probe, &err) == 0 && stat(b->folder, &st) != 0)
        snprintf(err.message, sizeof err.message, "%s: %s", b->folder, strerror(errno));
    if (!probe || err.message[0]) {
        fprintf(stderr, "srrun: %s\n", probe ? err.message : "out of memory");
        free(probe);
        return 1;
    }
    free(probe);
    b->out_id = (file_id){st.st_dev, st.st_ino};
    return 0;
}

static int list_files(batch *b)
{
    for (int i = 0; i < b->c->n_inputs; i++) {
        const char *input = b->c->inputs[i];
        struct stat st;
        int rc;
        if (stat(input, &st) == 0 && S_ISDIR(st.st_mode))
            rc = walk(b, input, "", &(ancestor){{st.st_dev, st.st_ino}, NULL});
        else /* a file named on the command line is tried whatever it is */
            rc = add_file(b, input, "");
        if (rc != 0)
            return -1;
    }
    return mark_shared_outputs(b);
}

static int upscale_all(batch *b, const sr_model *model)
{
    sr_session_options options = b->c->options;
    options.progress = run_progress;
    options.progress_user = b->show_progress ? &b->bar : NULL;
    sr_session *session;
    sr_error err = {0};
    if (sr_session_new(model, &options, &session, &err) != SR_OK) {
        fprintf(stderr, "srrun: %s\n", err.message);
        return 1;
    }
    if (b->c->verbose && sr_session_backend_note(session))
        fprintf(stderr, "srrun: %s; running on the CPU%s\n", sr_session_backend_note(session),
                b->c->options.precision != SR_PRECISION_FP32 ? " in fp32" : "");
    for (size_t i = next_file(b, 0, -1); i < b->n; i = next_file(b, i + 1, -1)) {
        upscale_file(b, session, i);
        report(b);
    }
    report(b);
    sr_session_free(session);
    return 0;
}

int batch_run(const cli *c)
{
    if (c->plan_only || c->stats || (c->output && strcmp(c->output, "-") == 0)) {
        fprintf(stderr, "srrun: %s needs a single INPUT; with several, -o names a folder\n"
                        "Try 'srrun --help'.\n",
                c->plan_only ? "--plan" : c->stats ? "--stats" : "-o -");
        return 2;
    }
    batch b = {
        .c = c,
        .folder = c->output ? c->output : ".",
        .model_path = model_file(c),
        .jpeg = c->format == OUTPUT_JPEG,
        .show_progress = !c->quiet && isatty(2),
    };
    sr_model *model;
    sr_model_info info = SR_MODEL_INFO_INIT;
    if (load_model(c, b.model_path, &model, &info) != 0)
        return 1;
    b.scale = info.scale;
    int rc = make_out_folder(&b);
    if (rc == 0 && strcmp(b.folder, ".") == 0)
        b.folder = NULL; /* "a_x4.png", not "./a_x4.png" */
    if (rc == 0 && list_files(&b) != 0) {
        fprintf(stderr, "srrun: out of memory listing the inputs\n");
        rc = 1;
    }
    if (rc == 0)
        rc = upscale_all(&b, model);
    if (rc == 0 && (!c->quiet || b.n_failed))
        fprintf(stderr, "srrun: %d done, %d skipped, %d failed\n", b.n_done, b.n_skipped,
                b.n_failed);
    for (size_t i = 0; i < b.n; i++) {
        free(b.files[i].input);
        free(b.files[i].output);
        free(b.files[i].message);
        sr_image_free(&b.files[i].in);
    }
    free(b.files);
    free(b.inputs);
    sr_model_free(model);
    return rc ? rc : b.n_failed ? 1 : 0;
}
