/* Host allocation failures, SQLite style: every allocation the library
 * makes in a load, a read, a session, a plan, a run (CPU and reference
 * backends, a first run and a run on a kept plan) and a write fails in
 * turn. Each step then fails with SR_ERR_NO_MEMORY and leaves nothing
 * behind (ASan's leak check; anonymous pages counted here, which it does
 * not see; no output file), or succeeds with the same result as without
 * the failure (the allocation was optional); and whatever failed works
 * when tried again: the session's next run gives the same bytes.
 *
 * How the failures get in: the test links with -Wl,--wrap=malloc,... (see
 * tests/CMakeLists.txt), so the library's objects, linked statically into
 * this program, call the __wrap_ functions here, which count down and
 * fail the Nth (the rest go on to __real_malloc, ASan's when sanitized).
 * Shared libraries (libc's own, libpng, OpenBLAS, ASan) keep the real
 * allocator. The other way, sr_malloc/sr_free wrappers with a compile-time
 * hook, would touch every allocation in the library and need a hook that
 * is either a global (the library has none) or threaded through every
 * context; wrapping at link time changes no library code and covers
 * whatever it calls, strdup and the page mappings included. The counters
 * are atomic: the CPU backend allocates under OpenMP. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, mremap */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "srrun.h"
#include "testutil.h"

/* ---- the allocator's countdown ---- */

static atomic_bool counting;      /* count (and maybe fail) the library's allocations */
static atomic_long n_allocs;      /* since counting began */
static atomic_long countdown;     /* the allocation from now to fail (1: the next); 0: none */
static atomic_llong live_pages;   /* bytes of anonymous mappings the library holds */

/* File mappings (the model's), whose unmapping is not a page freed. */
#define MAX_FILE_MAPS 8
static struct {
    char *p;
    size_t n;
} file_maps[MAX_FILE_MAPS];

static bool fail_this_one(void)
{
    if (!atomic_load(&counting))
        return false;
    atomic_fetch_add(&n_allocs, 1);
    long c = atomic_load(&countdown);
    while (c > 0 && !atomic_compare_exchange_weak(&countdown, &c, c - 1))
        ;
    if (c != 1)
        return false;
    errno = ENOMEM;
    return true;
}

static size_t page_round(size_t n)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off);
void *__real_mremap(void *p, size_t old_n, size_t new_n, int flags, ...);
int __real_munmap(void *p, size_t n);

void *__wrap_malloc(size_t n) { return fail_this_one() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size)
{
    return fail_this_one() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) { return fail_this_one() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_this_one() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n)
{
    return fail_this_one() ? NULL : __real_strndup(s, n);
}
int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return fail_this_one() ? ENOMEM : __real_posix_memalign(p, align, n);
}

void *__wrap_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off)
{
    const bool anonymous = flags & MAP_ANONYMOUS;
    if (anonymous && fail_this_one())
        return MAP_FAILED;
    void *p = __real_mmap(addr, n, prot, flags, fd, off);
    if (p != MAP_FAILED && anonymous)
        atomic_fetch_add(&live_pages, (long long)page_round(n));
    for (int i = 0; p != MAP_FAILED && !anonymous && i < MAX_FILE_MAPS; i++)
        if (!file_maps[i].p) {
            file_maps[i].p = p;
            file_maps[i].n = n;
            break;
        }
    return p;
}

void *__wrap_mremap(void *p, size_t old_n, size_t new_n, int flags, ...)
{
    if (fail_this_one())
        return MAP_FAILED;
    void *q = __real_mremap(p, old_n, new_n, flags);
    if (q != MAP_FAILED)
        atomic_fetch_add(&live_pages, (long long)page_round(new_n) - (long long)page_round(old_n));
    return q;
}

int __wrap_munmap(void *p, size_t n)
{
    bool file = false;
    for (int i = 0; i < MAX_FILE_MAPS; i++)
        if (file_maps[i].p == p && file_maps[i].n == n) {
            file_maps[i].p = NULL;
            file = true;
        }
    const int r = __real_munmap(p, n);
    if (r == 0 && !file)
        atomic_fetch_sub(&live_pages, (long long)page_round(n));
    return r;
}

/* Counts the allocations from here, failing the nth (0: none). */
static void arm(long n)
{
    atomic_store(&n_allocs, 0);
    atomic_store(&countdown, n);
    atomic_store(&counting, true);
}

/* Stops counting; returns whether the failure asked for happened. */
static bool disarm(void)
{
    atomic_store(&counting, false);
    return atomic_load(&countdown) == 0;
}

/* ---- the steps, and what each must give ---- */

#define SEEDS SR_FIXTURES_DIR "/../../fuzz/seeds/"

typedef enum step {
    LOAD_PTH,
    LOAD_BIN,
    LOAD_BIN_F16, /* float16 weights, converted when loading */
    READ_PNG,
    READ_JPEG,
    SESSION_NEW,
    PLAN,
    RUN_CPU,
    RUN_AGAIN, /* on a session that has run this size: its plan kept */
    RUN_REFERENCE,
    RUN_RGBA, /* the alpha upscaled beside the network */
    WRITE_PNG,
    WRITE_JPEG,
    SAVE_BIN,
    STEP_COUNT
} step;

static const char *const step_names[] = {
    "load .pth",        "load model.bin",      "load f16 model.bin", "read PNG",  "read JPEG",
    "session new",      "plan",                "run (cpu)", "run again (cpu)",
    "run (reference)",  "run (RGBA out)",      "write PNG", "write JPEG",
    "save model.bin",
};
_Static_assert(sizeof step_names / sizeof *step_names == STEP_COUNT, "one name per step");

/* What the steps make without failures, to compare with. */
typedef struct world {
    sr_model *model;
    sr_model_info info[3]; /* of the three loads */
    sr_image png, jpeg;    /* the inputs as read */
    sr_image want;         /* the output of the PNG input */
    sr_image want_rgba;    /* the same with its alpha (opaque) */
    sr_plan_info plan;
    char dir[64];          /* for the written files */
    char out_path[128];
    void *png_bytes, *jpeg_bytes, *bin_bytes;
    int64_t png_size, jpeg_size, bin_size;
} world;

static bool same_image(const sr_image *a, const sr_image *b)
{
    if (a->width != b->width || a->height != b->height || a->channels != b->channels ||
        a->type != b->type || a->stride != b->stride)
        return false;
    return memcmp(a->data, b->data, (size_t)(a->stride * a->height)) == 0;
}

static bool same_info(const sr_model_info *a, const sr_model_info *b)
{
    return strcmp(a->architecture, b->architecture) == 0 && a->scale == b->scale &&
           a->n_blocks == b->n_blocks && a->n_params == b->n_params &&
           a->n_input_pixel_flops == b->n_input_pixel_flops && strcmp(a->format, b->format) == 0 &&
           strcmp(a->dtype, b->dtype) == 0 && a->file_size == b->file_size &&
           a->header_crc32 == b->header_crc32 && a->data_crc32 == b->data_crc32;
}

static sr_session *new_session(const world *w, sr_backend backend)
{
    sr_session_options opt = SR_SESSION_OPTIONS_INIT;
    opt.backend = backend;
    opt.n_threads = 2; /* OpenMP's threads allocate too */
    sr_session *s = NULL;
    sr_error err = {0};
    if (sr_session_new(w->model, &opt, &s, &err) != SR_OK)
        fail_msg("session: %s", err.message);
    return s;
}

/* A run of the PNG input into a fresh output of 3 or 4 channels, checked
 * against w's; with the nth allocation of the run failing when n >= 0. */
static sr_status run_checked(world *w, sr_session *s, int channels, const char *what, long n)
{
    sr_image out;
    const int scale = sr_model_scale(w->model);
    assert_int_equal(sr_image_alloc(&out, w->png.width * scale, w->png.height * scale, channels,
                                    SR_PIXEL_U8, NULL),
                     SR_OK);
    sr_image *want = channels == 4 ? &w->want_rgba : &w->want;
    if (n >= 0)
        arm(n);
    const sr_status st = sr_session_run(s, &w->png, &out);
    if (n >= 0)
        disarm();
    if (st == SR_OK && want->data && !same_image(&out, want))
        fail_msg("%s: a run gave other pixels", what);
    if (st == SR_OK && !want->data)
        *want = out;
    else
        sr_image_free(&out);
    return st;
}

/* Whether dir holds no file (a failed write leaves no temporary). */
static bool dir_empty(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
    return system(cmd) == 0;
}

static bool file_is(const char *path, const void *bytes, int64_t size)
{
    int64_t n;
    void *got = test_read_file(path, &n);
    const bool same = got && n == size && memcmp(got, bytes, (size_t)n) == 0;
    free(got);
    return same;
}

/* Step s with the nth allocation failing (0: none; then it fills w's
 * expectations where they are not set). Returns its status, after
 * checking what it made and, on a failure, that trying again works. */
static sr_status do_step(world *w, step s, long n, long *n_allocs_seen)
{
    char path[512];
    sr_error err = {0};
    sr_status st = SR_OK;
    sr_session *session = NULL;
    const char *name = step_names[s];
    if (s == PLAN || s == RUN_CPU || s == RUN_AGAIN || s == RUN_RGBA)
        session = new_session(w, SR_BACKEND_CPU);
    if (s == RUN_REFERENCE)
        session = new_session(w, SR_BACKEND_REFERENCE);
    if (s == RUN_AGAIN && run_checked(w, session, 3, name, -1) != SR_OK)
        fail_msg("%s: the first run failed: %s", name, sr_session_last_error(session));
    switch (s) {
    case LOAD_PTH:
    case LOAD_BIN:
    case LOAD_BIN_F16: {
        snprintf(path, sizeof path, SEEDS "%s",
                 s == LOAD_PTH ? "tiny_x2.pth" : s == LOAD_BIN ? "tiny_x2.bin" : "tiny_x4_f16.bin");
        sr_model *m = (sr_model *)1;
        arm(n);
        st = sr_model_load(path, NULL, &m, &err);
        disarm();
        sr_model_info *want = &w->info[s - LOAD_PTH];
        if (st == SR_OK && !want->architecture)
            sr_model_get_info(m, want);
        sr_model_info got = SR_MODEL_INFO_INIT;
        sr_model_get_info(m, &got);
        if (st == SR_OK && !same_info(want, &got))
            fail_msg("%s, allocation %ld failing: the model's information differs (%lld FLOPs "
                     "per pixel, not %lld)",
                     name, n, (long long)got.n_input_pixel_flops,
                     (long long)want->n_input_pixel_flops);
        if (st != SR_OK && m)
            fail_msg("%s: a model handed out on failure", name);
        sr_model_free(m);
        break;
    }
    case READ_PNG:
    case READ_JPEG: {
        snprintf(path, sizeof path, SEEDS "%s", s == READ_PNG ? "rgb_16x16.png" : "rgb_24x16.jpg");
        sr_image image;
        arm(n);
        st = sr_image_read(path, 0, &image, &err);
        disarm();
        sr_image *want = s == READ_PNG ? &w->png : &w->jpeg;
        if (st == SR_OK && !want->data) {
            *want = image;
            break;
        }
        if (st == SR_OK && !same_image(want, &image))
            fail_msg("%s: other pixels", name);
        if (st != SR_OK && image.data)
            fail_msg("%s: pixels handed out on failure", name);
        sr_image_free(&image);
        break;
    }
    case SESSION_NEW: {
        sr_session_options opt = SR_SESSION_OPTIONS_INIT;
        opt.backend = SR_BACKEND_CPU;
        arm(n);
        st = sr_session_new(w->model, &opt, &session, &err);
        disarm();
        if (st != SR_OK && session)
            fail_msg("%s: a session handed out on failure", name);
        break;
    }
    case PLAN: {
        sr_plan_info info = SR_PLAN_INFO_INIT;
        arm(n);
        st = sr_session_plan(session, w->png.width, w->png.height, &info);
        disarm();
        snprintf(err.message, sizeof err.message, "%s", sr_session_last_error(session));
        if (st != SR_OK)
            assert_int_equal(sr_session_plan(session, w->png.width, w->png.height, &info), SR_OK);
        if (!w->plan.width)
            w->plan = info;
        if (info.predicted_peak != w->plan.predicted_peak || info.flops != w->plan.flops ||
            info.n_stages != w->plan.n_stages)
            fail_msg("%s: another plan", name);
        break;
    }
    case RUN_CPU:
    case RUN_AGAIN:
    case RUN_REFERENCE:
    case RUN_RGBA: {
        const int channels = s == RUN_RGBA ? 4 : 3;
        st = run_checked(w, session, channels, name, n);
        snprintf(err.message, sizeof err.message, "%s", sr_session_last_error(session));
        if (st != SR_OK && run_checked(w, session, channels, name, -1) != SR_OK)
            fail_msg("%s: a run after the failed one failed: %s", name,
                     sr_session_last_error(session));
        break;
    }
    case WRITE_PNG:
    case WRITE_JPEG:
    case SAVE_BIN: {
        arm(n);
        st = s == WRITE_PNG    ? sr_image_write_png(w->out_path, &w->want, &err)
             : s == WRITE_JPEG ? sr_image_write_jpeg(w->out_path, &w->want, 90, &err)
                               : sr_model_save(w->model, w->out_path, 0, &err);
        disarm();
        void **bytes = s == WRITE_PNG ? &w->png_bytes : s == WRITE_JPEG ? &w->jpeg_bytes
                                                                       : &w->bin_bytes;
        int64_t *size = s == WRITE_PNG ? &w->png_size : s == WRITE_JPEG ? &w->jpeg_size
                                                                       : &w->bin_size;
        if (st == SR_OK && !*bytes)
            *bytes = test_read_file(w->out_path, size);
        else if (st == SR_OK && !file_is(w->out_path, *bytes, *size))
            fail_msg("%s: another file", name);
        unlink(w->out_path);
        if (!dir_empty(w->dir))
            fail_msg("%s: a file left behind", name);
        break;
    }
    case STEP_COUNT:
        break;
    }
    *n_allocs_seen = atomic_load(&n_allocs);
    sr_session_free(session);
    if (st != SR_OK && st != SR_ERR_NO_MEMORY)
        fail_msg("%s, allocation %ld failing: status %s: %s", name, n, sr_status_string(st),
                 err.message);
    if (st == SR_ERR_NO_MEMORY && !err.message[0])
        fail_msg("%s, allocation %ld failing: no message", name, n);
    if (atomic_load(&live_pages) != 0)
        fail_msg("%s, allocation %ld failing: %lld bytes of pages left mapped", name, n,
                 (long long)atomic_load(&live_pages));
    return st;
}

/* Past this many allocations a step's failures are sampled with a stride. */
#define EVERY_ONE_UP_TO 3000

static void test_each_allocation_fails_in_turn(void **state)
{
    (void)state;
    world w = {0};
    snprintf(w.dir, sizeof w.dir, "/tmp/test_alloc_faults.XXXXXX");
    assert_non_null(mkdtemp(w.dir));
    snprintf(w.out_path, sizeof w.out_path, "%s/out", w.dir);
    sr_error err = {0};
    if (sr_model_load(SEEDS "tiny_x2.pth", NULL, &w.model, &err) != SR_OK)
        fail_msg("%s", err.message);
    long counts[STEP_COUNT];
    /* Clean passes: what each step makes, and how many allocations. The
     * PNG's output is made before the runs check against it. */
    for (step s = 0; s < STEP_COUNT; s++) {
        assert_int_equal(do_step(&w, s, 0, &counts[s]), SR_OK);
        if (s == READ_JPEG) {
            const int scale = sr_model_scale(w.model);
            assert_int_equal(sr_image_alloc(&w.want, w.png.width * scale, w.png.height * scale, 3,
                                            SR_PIXEL_U8, NULL),
                             SR_OK);
            sr_session *session = new_session(&w, SR_BACKEND_REFERENCE);
            assert_int_equal(sr_session_run(session, &w.png, &w.want), SR_OK);
            sr_session_free(session);
        }
    }
    for (step s = 0; s < STEP_COUNT; s++) {
        const long stride = counts[s] > EVERY_ONE_UP_TO ? counts[s] / EVERY_ONE_UP_TO + 1 : 1;
        int n_failed = 0, n_optional = 0;
        for (long n = 1; n <= counts[s]; n += n > EVERY_ONE_UP_TO ? stride : 1) {
            long seen;
            const sr_status st = do_step(&w, s, n, &seen);
            n_failed += st == SR_ERR_NO_MEMORY;
            n_optional += st == SR_OK;
        }
        printf("%-18s %5ld allocations: %d fail the step, %d optional\n", step_names[s], counts[s],
               n_failed, n_optional);
        assert_true(counts[s] > 0);
        assert_true(n_failed > 0);
    }
    free(w.png_bytes);
    free(w.jpeg_bytes);
    free(w.bin_bytes);
    sr_image_free(&w.want_rgba);
    sr_image_free(&w.png);
    sr_image_free(&w.jpeg);
    sr_image_free(&w.want);
    sr_model_free(w.model);
    rmdir(w.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_allocation_fails_in_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
