/* The server's jobs: planned before they are admitted, run on worker
 * threads while their planned peaks fit the budget, kept for a while when
 * a client will fetch the result later.
 *
 * The budget's accounting (server.committed) counts what the process
 * holds: at rest the program and every model's weights; then each body
 * being received or waiting to be decoded; for each running job, the
 * larger of its plan's peak (images included) and its encoding's; each
 * result kept. A job is admitted at the head of
 * the queue (first come, first served: a large image is not overtaken for
 * ever by small ones) by planning it for what the budget leaves, less
 * room for one more request's body (admit_head): the session's max_memory
 * is the whole process's, so it is given the budget less what the others
 * hold. When no plan fits that, the job waits for
 * memory to be given back; when none would fit even alone, it failed
 * already at its request (jobs_submit), from its header. */
#define _GNU_SOURCE /* getrandom */
#include "serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/random.h>

#include "report.h"
#include "upscale.h"

/* Finished async jobs are kept this long, and this many at most (the
 * oldest go first). */
#define KEPT_SECONDS 600.0
#define MAX_KEPT 64

const double serve_job_bucket_bounds[SERVE_JOB_BUCKETS - 1] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static int64_t image_bytes(const sr_image *shape)
{
    const int64_t sample = shape->type == SR_PIXEL_U8 ? 1 : shape->type == SR_PIXEL_U16 ? 2 : 4;
    return shape->width * shape->height * shape->channels * sample;
}

/* The bytes of the encoding phase, after the network: the output image
 * and its file growing in memory. A PNG of incompressible pixels is their
 * size, a filter byte a row and a little framing; the memory stream grows
 * by reallocating, so twice that. The plan's buffers are gone by then:
 * a job holds the larger of the two phases, not their sum. */
static int64_t encoding_bytes(const sr_image *shape)
{
    const int64_t pixels = image_bytes(shape);
    return pixels + 2 * (pixels + shape->height + pixels / 1000 + 65536);
}

void serve_timed_wait(pthread_cond_t *cond, pthread_mutex_t *lock, double seconds)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    const double s = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec + seconds;
    t.tv_sec = (time_t)s;
    t.tv_nsec = (long)((s - (double)t.tv_sec) * 1e9);
    pthread_cond_timedwait(cond, lock, &t);
}

/* ---- References and the table ----------------------------------------- */

void jobs_ref(job *j)
{
    j->refs++;
}

void jobs_unref_locked(job *j)
{
    if (--j->refs > 0)
        return;
    server *srv = j->srv;
    srv->committed -= j->cost;
    srv->admit_epoch++;
    pthread_cond_broadcast(&srv->work);
    free(j->body);
    sr_free(j->result);
    pthread_cond_destroy(&j->changed);
    free(j);
}

void jobs_unref(job *j)
{
    server *srv = j->srv;
    pthread_mutex_lock(&srv->lock);
    jobs_unref_locked(j);
    pthread_mutex_unlock(&srv->lock);
}

static int finished(const job *j)
{
    return j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
}

static void forget(server *srv, job *j)
{
    for (job **p = &srv->kept; *p; p = &(*p)->next_kept) {
        if (*p == j) {
            *p = j->next_kept;
            srv->n_kept--;
            jobs_unref_locked(j);
            return;
        }
    }
}

/* Drops finished jobs past their time or beyond the count kept. */
static void expire(server *srv)
{
    const double now = seconds_now();
    int n_finished = 0;
    job **p = &srv->kept;
    while (*p) {
        job *j = *p;
        if (finished(j) && (++n_finished > MAX_KEPT || now - j->finished > KEPT_SECONDS)) {
            *p = j->next_kept;
            srv->n_kept--;
            jobs_unref_locked(j);
        } else {
            p = &j->next_kept;
        }
    }
}

/* The oldest finished job with a result kept, dropped to make room; 0
 * when there is none. */
static int drop_oldest_result(server *srv)
{
    job *oldest = NULL;
    for (job *j = srv->kept; j; j = j->next_kept)
        if (finished(j) && j->result)
            oldest = j;
    if (oldest)
        forget(srv, oldest);
    return oldest != NULL;
}

job *jobs_find(server *srv, const char *id)
{
    pthread_mutex_lock(&srv->lock);
    expire(srv);
    job *found = NULL;
    for (job *j = srv->kept; j && !found; j = j->next_kept)
        if (strcmp(j->id, id) == 0)
            found = j;
    if (found)
        jobs_ref(found);
    pthread_mutex_unlock(&srv->lock);
    return found;
}

/* ---- State changes (the lock held) ------------------------------------- */

static void changed(job *j)
{
    j->version++;
    pthread_cond_broadcast(&j->changed);
}

/* The job's end: its memory but the result's given back, the counters. */
static void finish(server *srv, job *j, job_state state)
{
    const int was_running = j->state == JOB_RUNNING;
    j->state = state;
    j->finished = seconds_now();
    srv->committed += (int64_t)j->result_size - j->cost;
    j->cost = (int64_t)j->result_size;
    srv->admit_epoch++;
    serve_metrics *m = &srv->metrics;
    if (state == JOB_DONE)
        m->jobs_done++;
    else if (state == JOB_FAILED)
        m->jobs_failed++;
    else
        m->jobs_cancelled++;
    if (was_running) {
        srv->n_running--;
        const double seconds = j->finished - j->started;
        for (int b = 0; b < SERVE_JOB_BUCKETS; b++)
            if (b == SERVE_JOB_BUCKETS - 1 || seconds <= serve_job_bucket_bounds[b])
                m->job_seconds_buckets[b]++;
        m->job_seconds_sum += seconds;
        m->job_seconds_count++;
    }
    changed(j);
    pthread_cond_broadcast(&srv->work);
}

static void fail_job(server *srv, job *j, int http_status, const char *message)
{
    j->http_status = http_status;
    snprintf(j->message, sizeof j->message, "%s", message);
    finish(srv, j, JOB_FAILED);
}

static void enqueue_front(server *srv, job *j)
{
    j->next_queued = srv->queue_head;
    srv->queue_head = j;
    if (!srv->queue_tail)
        srv->queue_tail = j;
    srv->n_queued++;
}

static job *dequeue(server *srv)
{
    job *j = srv->queue_head;
    srv->queue_head = j->next_queued;
    if (!srv->queue_head)
        srv->queue_tail = NULL;
    j->next_queued = NULL;
    srv->n_queued--;
    return j;
}

/* Takes j off the queue wherever it is; 0 when it was not there. */
static int unqueue(server *srv, job *j)
{
    job *prev = NULL;
    for (job *q = srv->queue_head; q; prev = q, q = q->next_queued) {
        if (q != j)
            continue;
        *(prev ? &prev->next_queued : &srv->queue_head) = q->next_queued;
        if (srv->queue_tail == q)
            srv->queue_tail = prev;
        srv->n_queued--;
        return 1;
    }
    return 0;
}

void jobs_cancel(job *j, int forget_it)
{
    server *srv = j->srv;
    pthread_mutex_lock(&srv->lock);
    if (j->state == JOB_QUEUED && unqueue(srv, j)) {
        finish(srv, j, JOB_CANCELLED);
        jobs_unref_locked(j); /* the queue's */
    } else if (!finished(j)) {
        j->cancel = 1; /* running, or being admitted */
    }
    if (forget_it && j->id[0])
        forget(srv, j);
    pthread_mutex_unlock(&srv->lock);
}

int jobs_reserve(server *srv, int64_t bytes)
{
    pthread_mutex_lock(&srv->lock);
    const int fits = srv->committed + bytes <= srv->budget;
    if (fits)
        srv->committed += bytes;
    pthread_mutex_unlock(&srv->lock);
    return fits ? 0 : -1;
}

void jobs_release(server *srv, int64_t bytes)
{
    pthread_mutex_lock(&srv->lock);
    srv->committed -= bytes;
    srv->admit_epoch++;
    pthread_cond_broadcast(&srv->work);
    pthread_mutex_unlock(&srv->lock);
}

/* ---- Planning ----------------------------------------------------------- */

static sr_image output_of(const job *j)
{
    return output_shape(&j->opts, &j->header, j->model->info.scale, j->jpeg);
}

/* A session for j whose plans fit max_memory (the whole process's, as the
 * library counts it), planned for j's images: SR_OK, or the planner's
 * status with its message in msg. */
static sr_status plan_job(const server *srv, const job *j, int64_t max_memory,
                          sr_session_options *options, sr_session **session,
                          int64_t *predicted_peak, char *msg, size_t msg_size)
{
    sr_error err = {0};
    *session = NULL;
    *predicted_peak = 0;
    if (max_memory < 1)
        max_memory = 1; /* nothing fits; the planner still says what would */
    options->backend = SR_BACKEND_CPU;
    options->n_threads = srv->threads_per_job;
    options->max_memory = max_memory;
    /* Never spill: a spilling plan is the cheapest for the memory given,
     * which for a job is all the server has free, so it would leave none
     * for the requests behind it. */
    options->scratch_dir = "";
    sr_status st = sr_session_new(j->model->model, options, session, &err);
    if (st != SR_OK) {
        snprintf(msg, msg_size, "%s", err.message);
        return st;
    }
    const sr_image shape = output_of(j);
    sr_plan_info plan = SR_PLAN_INFO_INIT;
    st = sr_session_plan_images(*session, &j->header, &shape, &plan);
    *predicted_peak = plan.predicted_peak;
    if (st != SR_OK) {
        snprintf(msg, msg_size, "%s", sr_session_last_error(*session));
        sr_session_free(*session);
        *session = NULL;
    }
    return st;
}

static void new_id(char id[33])
{
    unsigned char bytes[16] = {0};
    size_t got = 0;
    while (got < sizeof bytes) {
        const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(id + 2 * i, 3, "%02x", bytes[i]);
}

job *jobs_submit(server *srv, const served_model *model, const cli *opts, int jpeg,
                 uint8_t *body, size_t body_size, int async, int *status, char *msg,
                 size_t msg_size)
{
    job *j = calloc(1, sizeof *j);
    if (!j) {
        free(body);
        jobs_release(srv, (int64_t)body_size);
        *status = 503;
        snprintf(msg, msg_size, "out of memory");
        return NULL;
    }
    *j = (job){.srv = srv, .refs = 1, .model = model, .opts = *opts, .jpeg = jpeg,
               .body = body, .body_size = body_size, .cost = (int64_t)body_size};
    pthread_cond_init(&j->changed, NULL);

    /* The header: the image's size, and whether it is one at all. */
    sr_error err = {0};
    sr_image_read_options read = SR_IMAGE_READ_OPTIONS_INIT;
    read.max_pixels = srv->max_pixels;
    sr_status st = sr_image_read_info_memory(body, body_size, &read, &j->header, &err);
    const sr_image shape = st == SR_OK ? output_of(j) : (sr_image){0};
    if (st == SR_OK)
        st = sr_image_check_output("the result", jpeg ? SR_IMAGE_JPEG : SR_IMAGE_PNG, &shape,
                                   &err);
    if (st != SR_OK) {
        *status = st == SR_ERR_LIMIT ? 413 : 400;
        snprintf(msg, msg_size, "%s", err.message);
        jobs_unref(j);
        return NULL;
    }
    /* Alone: the budget less the server at rest (but this model's share,
     * which the plan counts) and this body; the CLI's plan under -m but
     * for those. */
    const int64_t others = srv->at_rest - model->shared_bytes + (int64_t)body_size;
    const int64_t alone = srv->budget - others;
    sr_session *session;
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    char why[512];
    int64_t peak;
    st = plan_job(srv, j, alone, &options, &session, &peak, why, sizeof why);
    sr_session_free(session);
    if (st == SR_OK && encoding_bytes(&shape) > srv->budget - srv->at_rest - (int64_t)body_size) {
        st = SR_ERR_LIMIT;
        snprintf(why, sizeof why, "a %lldx%lld result needs %lldM to be encoded (%lldM given)",
                 (long long)shape.width, (long long)shape.height,
                 (long long)(encoding_bytes(&shape) >> 20) + 1, (long long)(alone >> 20));
    }
    if (st != SR_OK) {
        *status = st == SR_ERR_LIMIT ? 413 : 500;
        snprintf(msg, msg_size, "%s", why);
        if (st == SR_ERR_LIMIT && others >= (1 << 20))
            snprintf(msg + strlen(msg), msg_size - strlen(msg),
                     ": the server's -m %lldM less %lldM for its other models and this body",
                     (long long)(srv->budget >> 20), (long long)(others >> 20));
        jobs_unref(j);
        return NULL;
    }

    pthread_mutex_lock(&srv->lock);
    if (srv->draining || srv->n_queued >= srv->max_queued) {
        *status = 503;
        snprintf(msg, msg_size, srv->draining ? "the server is shutting down"
                                              : "too many jobs waiting; try again later");
        jobs_unref_locked(j);
        pthread_mutex_unlock(&srv->lock);
        return NULL;
    }
    j->state = JOB_QUEUED;
    j->refs++; /* the queue's, then its worker's */
    j->next_queued = NULL;
    if (srv->queue_tail)
        srv->queue_tail->next_queued = j;
    else
        srv->queue_head = j;
    srv->queue_tail = j;
    srv->n_queued++;
    if (async) {
        new_id(j->id);
        j->refs++; /* the table's */
        j->next_kept = srv->kept;
        srv->kept = j;
        srv->n_kept++;
        expire(srv);
    }
    srv->admit_epoch++; /* a head waiting on bodies queued behind it gives up */
    pthread_cond_broadcast(&srv->work);
    pthread_mutex_unlock(&srv->lock);
    return j;
}

/* ---- Running ------------------------------------------------------------ */

static int on_progress(void *user, double fraction)
{
    job *j = user;
    server *srv = j->srv;
    pthread_mutex_lock(&srv->lock);
    j->fraction = fraction;
    changed(j);
    const int stop = j->cancel || srv->cancel_all;
    pthread_mutex_unlock(&srv->lock);
    return stop;
}

/* Decodes, upscales and encodes j on this thread with the session its
 * admission planned; returns the job's end state, with the message of a
 * failure in j (the lock not held). */
static job_state run_job(server *srv, job *j, sr_session *session)
{
    sr_error err = {0};
    sr_image in = {0}, out = {0};
    /* Only the size planned: the header was read from the same bytes. */
    sr_image_read_options read = SR_IMAGE_READ_OPTIONS_INIT;
    read.max_pixels = j->header.width * j->header.height;
    sr_status st = sr_image_read_memory(j->body, j->body_size, &read, &in, &err);
    pthread_mutex_lock(&srv->lock);
    free(j->body);
    j->body = NULL;
    srv->committed -= (int64_t)j->body_size;
    j->cost -= (int64_t)j->body_size;
    pthread_mutex_unlock(&srv->lock);
    if (st != SR_OK) {
        j->http_status = st == SR_ERR_LIMIT ? 413 : 400;
        snprintf(j->message, sizeof j->message, "%s", err.message);
        return JOB_FAILED;
    }
    const sr_image shape = output_of(j);
    j->http_status = 500;
    st = sr_image_alloc(&out, shape.width, shape.height, shape.channels, shape.type, &err);
    if (st == SR_OK)
        st = sr_image_copy_meta(&out, &in, &err);
    if (st == SR_OK && (st = sr_session_run(session, &in, &out)) != SR_OK)
        snprintf(err.message, sizeof err.message, "%s", sr_session_last_error(session));
    sr_image_free(&in);
    void *result = NULL;
    size_t size = 0;
    if (st == SR_OK)
        st = sr_image_write_memory(&out, j->jpeg ? SR_IMAGE_JPEG : SR_IMAGE_PNG,
                                   j->opts.quality ? j->opts.quality : 90, &result, &size, &err);
    sr_image_free(&out);
    if (st == SR_ERR_CANCELLED)
        return JOB_CANCELLED;
    if (st != SR_OK) {
        snprintf(j->message, sizeof j->message, "%s", err.message);
        return JOB_FAILED;
    }
    pthread_mutex_lock(&srv->lock);
    j->result = result;
    j->result_size = size;
    pthread_mutex_unlock(&srv->lock);
    return JOB_DONE;
}

/* Admits the queue's head if its plan fits what the budget leaves (the
 * lock held, released while planning and running). */
static void admit_head(server *srv)
{
    job *j = dequeue(srv);
    srv->admitting = 1;
    const sr_image shape = output_of(j);
    const int64_t max_memory = srv->budget - srv->committed + j->model->shared_bytes;
    const uint64_t epoch = srv->admit_epoch;
    pthread_mutex_unlock(&srv->lock);

    sr_session *session;
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    options.progress = on_progress;
    options.progress_user = j;
    char why[512];
    int64_t peak;
    /* Planned for what the budget leaves less room for one more body, so
     * that requests are still received while it runs (the cheapest plan
     * takes all the memory it is given: fewer bands cost less); for all of
     * it only where that is the only way it fits. */
    sr_status st = SR_ERR_LIMIT;
    if (max_memory - (int64_t)srv->max_body > 0)
        st = plan_job(srv, j, max_memory - (int64_t)srv->max_body, &options, &session, &peak,
                      why, sizeof why);
    if (st == SR_ERR_LIMIT)
        st = plan_job(srv, j, max_memory, &options, &session, &peak, why, sizeof why);
    /* What it adds to the count: the larger phase, the plan's (less what
     * the server holds once) or the encoding's. */
    const int64_t planned = peak - j->model->shared_bytes, encoding = encoding_bytes(&shape);
    const int64_t bytes = planned > encoding ? planned : encoding;

    pthread_mutex_lock(&srv->lock);
    srv->admitting = 0;
    if (j->cancel) {
        sr_session_free(session);
        finish(srv, j, JOB_CANCELLED);
        jobs_unref_locked(j);
        return;
    }
    if (st == SR_OK && srv->committed + bytes <= srv->budget) {
        srv->committed += bytes;
        j->cost += bytes;
        j->state = JOB_RUNNING;
        j->started = seconds_now();
        srv->n_running++;
        changed(j);
        pthread_cond_broadcast(&srv->work); /* the next may fit beside it */
        pthread_mutex_unlock(&srv->lock);
        const job_state end = run_job(srv, j, session);
        sr_session_free(session);
        pthread_mutex_lock(&srv->lock);
        finish(srv, j, end); /* a failure's message is in j */
        jobs_unref_locked(j); /* the worker's */
        return;
    }
    sr_session_free(session);
    if (st != SR_OK && st != SR_ERR_LIMIT) {
        fail_job(srv, j, 500, why);
        jobs_unref_locked(j);
        return;
    }
    /* It does not fit now: it waits for memory, making room from kept
     * results when no running job will give any back. When only the bodies
     * queued behind it hold what it needs, rather than wait for them for
     * ever, it fails, to be asked again. */
    int64_t queued_bodies = (int64_t)j->body_size;
    for (const job *q = srv->queue_head; q; q = q->next_queued)
        queued_bodies += (int64_t)q->body_size;
    if (srv->n_running == 0 && srv->admit_epoch == epoch && !drop_oldest_result(srv) &&
        srv->committed - srv->at_rest <= queued_bodies) {
        fail_job(srv, j, 503, "the server's memory is taken by the requests waiting; try again "
                              "later");
        jobs_unref_locked(j);
        return;
    }
    enqueue_front(srv, j);
    srv->blocked_epoch = epoch;
}

static void *worker_main(void *arg)
{
    server *srv = arg;
    pthread_mutex_lock(&srv->lock);
    while (!srv->stopping) {
        expire(srv);
        if (srv->queue_head && !srv->admitting && srv->admit_epoch != srv->blocked_epoch)
            admit_head(srv);
        else
            serve_timed_wait(&srv->work, &srv->lock, 1.0); /* also for expiry */
    }
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

int jobs_start(server *srv)
{
    srv->blocked_epoch = UINT64_MAX;
    srv->workers = calloc((size_t)srv->n_workers, sizeof *srv->workers);
    if (!srv->workers)
        return -1;
    for (int i = 0; i < srv->n_workers; i++) {
        const int e = pthread_create(&srv->workers[i], NULL, worker_main, srv);
        if (e != 0) {
            jobs_stop(srv, 0);
            errno = e;
            return -1;
        }
        srv->n_started++;
    }
    return 0;
}

void jobs_stop(server *srv, double grace_seconds)
{
    pthread_mutex_lock(&srv->lock);
    srv->draining = 1;
    const double deadline = seconds_now() + grace_seconds;
    for (;;) {
        while (srv->queue_head) { /* also one put back for want of memory */
            job *j = dequeue(srv);
            finish(srv, j, JOB_CANCELLED);
            jobs_unref_locked(j);
        }
        if (srv->n_running == 0 && !srv->admitting)
            break;
        if (seconds_now() >= deadline)
            srv->cancel_all = 1;
        serve_timed_wait(&srv->work, &srv->lock, srv->cancel_all ? 1.0 : deadline - seconds_now());
    }
    srv->stopping = 1;
    pthread_cond_broadcast(&srv->work);
    pthread_mutex_unlock(&srv->lock);
    for (int i = 0; i < srv->n_started; i++)
        pthread_join(srv->workers[i], NULL);
    free(srv->workers);
    srv->workers = NULL;
    srv->n_started = 0;
}
