/* `srrun serve`: upscaling over HTTP. The command (serve.c) loads the
 * models and owns the process; jobs (serve_jobs.c) are admitted under one
 * memory budget and run on worker threads; the HTTP side (serve_http.c,
 * libmicrohttpd) turns requests into jobs and jobs into responses. All of
 * it is a client of include/srrun.h only. */
#ifndef SR_TOOLS_SERVE_H
#define SR_TOOLS_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "srrun.h"

/* `srrun serve ...` (argv[0] is "serve"): the exit code. */
int serve_main(int argc, char **argv);

typedef struct served_model {
    char *name; /* the file's stem, e.g. "srpgan_x4" */
    sr_model *model;
    sr_model_info info;
    double load_seconds;
    /* What a plan of this model counts that the whole server holds once:
     * the program and the model's weights (fixed_bytes less the images). */
    int64_t shared_bytes;
} served_model;

typedef enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state;

typedef struct server server;

/* One image to upscale: a sync request's or an async job's. Guarded by
 * the server's lock, but for what only its worker touches while running
 * (body, the images). Freed when its last reference goes. */
typedef struct job {
    server *srv;
    struct job *next_queued, *next_kept; /* the queue; the async table */
    char id[33];                         /* async jobs: 32 hex digits; "" for sync */
    int refs;
    const served_model *model;
    cli opts;            /* the request's alpha, depth and quality, as the CLI's */
    int jpeg;            /* the result's format */
    sr_image header;     /* the input as its header tells */
    uint8_t *body;       /* the input file's bytes, until decoded */
    size_t body_size;
    job_state state;
    int cancel;          /* asked to stop (DELETE, client gone, shutdown) */
    double fraction;
    double started, finished; /* seconds_now() */
    uint64_t version;    /* bumped at every change a stream shows */
    int64_t cost;        /* bytes counted against the budget for it now */
    void *result;        /* the encoded image (sr_free) */
    size_t result_size;
    int http_status;     /* JOB_FAILED: 400, 413 or 500 */
    char message[512];   /* JOB_FAILED: why */
    pthread_cond_t changed;
} job;

/* Counters for /metrics, under the server's lock. */
#define SERVE_JOB_BUCKETS 9
typedef struct serve_metrics {
    uint64_t requests[600]; /* by status */
    uint64_t jobs_done, jobs_failed, jobs_cancelled;
    uint64_t job_seconds_buckets[SERVE_JOB_BUCKETS]; /* cumulative, + the +Inf one */
    double job_seconds_sum;
    uint64_t job_seconds_count;
} serve_metrics;

extern const double serve_job_bucket_bounds[SERVE_JOB_BUCKETS - 1];

struct server {
    served_model *models;
    int n_models;
    int quiet;
    int64_t budget;        /* -m: bytes for the whole process */
    int64_t max_pixels;    /* --max-pixels (0: the library's default) */
    int64_t max_body;      /* largest request body read */
    int max_queued;        /* --max-jobs: jobs waiting to run */
    int n_workers, threads_per_job;

    pthread_mutex_t lock;
    pthread_cond_t work;   /* a worker may have something to do */
    int64_t at_rest;       /* bytes counted with no request: the program and weights */
    int64_t committed;     /* bytes counted: at_rest, bodies, jobs, results */
    uint64_t admit_epoch;  /* bumped whenever memory is given back */
    uint64_t blocked_epoch; /* the queue's head did not fit at this epoch */
    int admitting;         /* a worker is planning the head: the others wait */
    int cancel_all;        /* the grace period is over: running jobs stop */
    job *queue_head, *queue_tail;
    int n_queued, n_running;
    uint64_t n_finished;   /* jobs ended so far: admission waits for this to move */
    job *kept;             /* async jobs, newest first */
    int n_kept;
    int draining;          /* shutting down: no new jobs */
    int stopping;          /* workers end */
    pthread_t *workers;
    int n_started;
    int requests_in_flight; /* read, not yet answered and logged */
    serve_metrics metrics;
};

/* ---- Jobs (serve_jobs.c) --------------------------------------------- */

/* pthread_cond_timedwait for at most seconds from now. */
void serve_timed_wait(pthread_cond_t *cond, pthread_mutex_t *lock, double seconds);

/* Starts the workers; 0, or -1 with errno. */
int jobs_start(server *srv);
/* Cancels queued jobs, lets running ones finish for up to grace seconds,
 * then cancels them; returns when every worker has ended. */
void jobs_stop(server *srv, double grace_seconds);

/* Counts bytes (a body being received) against the budget: 0, or -1 when
 * they do not fit now. jobs_release gives them back. Locks. */
int jobs_reserve(server *srv, int64_t bytes);
void jobs_release(server *srv, int64_t bytes);

/* A new job for the image in body (taken over, with its reservation of
 * body_size bytes, whatever happens). Reads the header and plans it alone
 * before anything is decoded: NULL with *status (400, 413, 503) and the
 * message in msg when it cannot be served or queued. An async job gets an
 * id and stays in the table; the caller holds one reference either way. */
job *jobs_submit(server *srv, const served_model *model, const cli *opts, int jpeg,
                 uint8_t *body, size_t body_size, int async, int *status, char *msg,
                 size_t msg_size);

/* The async job with this id, with a reference taken; NULL when unknown
 * or expired. */
job *jobs_find(server *srv, const char *id);
void jobs_ref(job *j);   /* with the lock held */
void jobs_unref(job *j); /* locks */
void jobs_unref_locked(job *j);
/* Asks the job to stop (queued: at once; running: at its next band);
 * removes it from the table. Locks. */
void jobs_cancel(job *j, int forget);

#endif
