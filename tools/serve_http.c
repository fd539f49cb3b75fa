/* The server's HTTP side, on libmicrohttpd with a thread per connection:
 * a request that waits for a job (a sync upscale, an event stream) waits
 * on its own thread, and the connections are bounded in number. Every
 * request goes through on_request, called first with the headers, then
 * with each piece of the body, then once more to answer; on_completed
 * logs it and lets go of what it held. */
#define _GNU_SOURCE /* recv's MSG_DONTWAIT, open_memstream */
#include "serve_http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "report.h"

/* One request's state, from its headers to its end. */
typedef struct request {
    server *srv;
    double start;
    char method[8], path[128];
    int status;
    uint64_t bytes;
    /* A POST's body: read into body, counted against the budget. */
    int reading, async, jpeg;
    const served_model *model;
    cli opts;
    uint8_t *body;
    size_t size, cap;
    /* A job the request waits for or streams. */
    job *job;
} request;

/* ---- Responses ---------------------------------------------------------- */

static enum MHD_Result queue(struct MHD_Connection *c, request *r, int status,
                             struct MHD_Response *response, uint64_t bytes)
{
    if (!response)
        return MHD_NO;
    r->status = status;
    r->bytes = bytes;
    const enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, response);
    MHD_destroy_response(response);
    return ok;
}

static enum MHD_Result respond(struct MHD_Connection *c, request *r, int status,
                               const char *type, const char *text, size_t size)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(size, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (response)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return queue(c, r, status, response, size);
}

/* Appends s to out as a JSON string's characters (without the quotes). */
static void json_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
}

/* A JSON body built with fprintf into memory; NULL when out of memory. */
typedef struct text {
    FILE *out;
    char *data;
    size_t size;
} text;

static int text_open(text *t)
{
    t->data = NULL;
    t->size = 0;
    t->out = open_memstream(&t->data, &t->size);
    return t->out ? 0 : -1;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, request *r, int status,
                                    const char *type, text *t)
{
    if (fclose(t->out) != 0) {
        free(t->data);
        return MHD_NO;
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(t->size, t->data, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(t->data);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return queue(c, r, status, response, t->size);
}

/* {"error": message}; a 503 says when to try again. */
static enum MHD_Result respond_error(struct MHD_Connection *c, request *r, int status,
                                     const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    text t;
    if (text_open(&t) != 0)
        return MHD_NO;
    fputs("{\"error\": \"", t.out);
    json_escape(t.out, message);
    fputs("\"}\n", t.out);
    if (fclose(t.out) != 0) {
        free(t.data);
        return MHD_NO;
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(t.size, t.data, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(t.data);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == 503)
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, "2");
    return queue(c, r, status, response, t.size);
}

static enum MHD_Result respond_method(struct MHD_Connection *c, request *r, const char *allow)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (response)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allow);
    return queue(c, r, 405, response, 0);
}

/* ---- The web page ---------------------------------------------------------- */

/* tools/serve_page.*, built in by cmake/embed.cmake. */
extern const unsigned char serve_page_html[], serve_page_js[], serve_page_css[];
extern const size_t serve_page_html_size, serve_page_js_size, serve_page_css_size;

/* The page at /, its script and style sheet, or NULL for another path. */
static const unsigned char *page_file(const char *url, size_t *size, const char **type)
{
    if (strcmp(url, "/") == 0) {
        *size = serve_page_html_size;
        *type = "text/html; charset=utf-8";
        return serve_page_html;
    }
    if (strcmp(url, "/app.js") == 0) {
        *size = serve_page_js_size;
        *type = "text/javascript; charset=utf-8";
        return serve_page_js;
    }
    if (strcmp(url, "/app.css") == 0) {
        *size = serve_page_css_size;
        *type = "text/css; charset=utf-8";
        return serve_page_css;
    }
    return NULL;
}

/* One of the page's files. Its policy lets it load only from this server
 * (images also from the blob: URLs the script makes), and no other site
 * may frame it. */
static enum MHD_Result respond_page(struct MHD_Connection *c, request *r,
                                    const unsigned char *data, size_t size, const char *type)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(size, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_SECURITY_POLICY,
                            "default-src 'self'; img-src 'self' blob: data:; "
                            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    MHD_add_response_header(response, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS, "nosniff");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return queue(c, r, 200, response, size);
}

/* ---- Results and event streams ------------------------------------------ */

/* The result's bytes, read out of the job, which the response holds a
 * reference to: a job done never changes its result. */
static ssize_t read_result(void *cls, uint64_t pos, char *buf, size_t max)
{
    const job *j = cls;
    if (pos >= j->result_size)
        return MHD_CONTENT_READER_END_OF_STREAM;
    const size_t n = j->result_size - pos < max ? (size_t)(j->result_size - pos) : max;
    memcpy(buf, (const char *)j->result + pos, n);
    return (ssize_t)n;
}

static void release_job(void *cls)
{
    jobs_unref(cls);
}

static int job_finished(const job *j)
{
    return j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
}

/* A finished job's answer: its image, or why there is none. */
static enum MHD_Result respond_job(struct MHD_Connection *c, request *r, job *j)
{
    server *srv = r->srv;
    pthread_mutex_lock(&srv->lock);
    const job_state state = j->state;
    const int draining = srv->draining;
    if (state == JOB_DONE)
        jobs_ref(j); /* the response's */
    pthread_mutex_unlock(&srv->lock);
    if (state == JOB_FAILED)
        return respond_error(c, r, j->http_status, "%s", j->message);
    if (state == JOB_CANCELLED)
        return draining ? respond_error(c, r, 503, "the server is shutting down")
                        : respond_error(c, r, 410, "the job was cancelled");
    struct MHD_Response *response =
        MHD_create_response_from_callback(j->result_size, 65536, read_result, j, release_job);
    if (!response) {
        jobs_unref(j);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            j->jpeg ? "image/jpeg" : "image/png");
    return queue(c, r, 200, response, j->result_size);
}

/* An event stream: what it has sent of its job. */
typedef struct events {
    request *r;
    job *job;
    uint64_t seen;
    int started, ended;
    double last_write;
} events;

/* Formats the event that tells what changed since the last one (the lock
 * held); 0 when nothing did. */
static int format_event(events *e, char *buf, size_t max)
{
    job *j = e->job;
    const int final = job_finished(j);
    if (e->started && (j->version == e->seen || (final && e->ended)))
        return 0;
    /* The first event is always the job's progress: a client that comes
     * late learns where it is before how it ended. */
    if (!e->started || !final) {
        const double now = seconds_now();
        const double elapsed = j->state == JOB_QUEUED ? 0
                               : final                ? j->finished - j->started
                                                      : now - j->started;
        const char *state = j->state == JOB_QUEUED ? "queued" : final ? "finished" : "running";
        char eta[32] = "null";
        if (j->state == JOB_RUNNING && j->fraction > 0)
            snprintf(eta, sizeof eta, "%.3f", elapsed * (1 - j->fraction) / j->fraction);
        e->started = 1;
        if (!final)
            e->seen = j->version;
        return snprintf(buf, max,
                        "event: progress\ndata: {\"fraction\": %.4f, \"elapsed_s\": %.3f, "
                        "\"eta_s\": %s, \"state\": \"%s\"}\n\n",
                        j->state == JOB_DONE ? 1.0 : j->fraction, elapsed < 0 ? 0 : elapsed, eta,
                        state);
    }
    e->seen = j->version;
    e->ended = 1;
    if (j->state == JOB_DONE)
        return snprintf(buf, max,
                        "event: done\ndata: {\"result\": \"/v1/jobs/%s/result\", \"bytes\": %zu, "
                        "\"seconds\": %.3f}\n\n",
                        j->id, j->result_size, j->finished - j->started);
    if (j->state == JOB_CANCELLED)
        return snprintf(buf, max, "event: cancelled\ndata: {}\n\n");
    text t;
    if (text_open(&t) != 0)
        return -1;
    fprintf(t.out, "event: error\ndata: {\"error\": \"");
    json_escape(t.out, j->message);
    fprintf(t.out, "\", \"status\": %d}\n\n", j->http_status);
    if (fclose(t.out) != 0 || t.size >= max) {
        free(t.data);
        return -1;
    }
    memcpy(buf, t.data, t.size);
    free(t.data);
    return (int)t.size;
}

/* The content reader of an event stream: blocks (its connection's thread)
 * until there is something to send, a comment every 15 s meanwhile so that
 * a client gone is noticed. */
static ssize_t read_events(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    events *e = cls;
    server *srv = e->r->srv;
    pthread_mutex_lock(&srv->lock);
    int n;
    while ((n = format_event(e, buf, max)) == 0 && !e->ended) {
        if (seconds_now() - e->last_write >= 15) {
            n = snprintf(buf, max, ": waiting\n\n");
            break;
        }
        serve_timed_wait(&e->job->changed, &srv->lock, 1.0);
    }
    pthread_mutex_unlock(&srv->lock);
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    e->last_write = seconds_now();
    e->r->bytes += (uint64_t)n;
    return n;
}

static void free_events(void *cls)
{
    events *e = cls;
    jobs_unref(e->job);
    free(e);
}

static enum MHD_Result respond_events(struct MHD_Connection *c, request *r, job *j)
{
    events *e = calloc(1, sizeof *e);
    if (!e) {
        jobs_unref(j);
        return MHD_NO;
    }
    *e = (events){.r = r, .job = j, .last_write = seconds_now()};
    struct MHD_Response *response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, read_events, e, free_events);
    if (!response) {
        free_events(e);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return queue(c, r, 200, response, 0);
}

/* ---- The small endpoints -------------------------------------------------- */

static enum MHD_Result respond_models(struct MHD_Connection *c, request *r)
{
    const server *srv = r->srv;
    text t;
    if (text_open(&t) != 0)
        return MHD_NO;
    fputc('[', t.out);
    for (int i = 0; i < srv->n_models; i++) {
        const served_model *m = &srv->models[i];
        fprintf(t.out, "%s{\"name\": \"", i ? ", " : "");
        json_escape(t.out, m->name);
        fprintf(t.out, "\", \"architecture\": \"");
        json_escape(t.out, m->info.architecture);
        fprintf(t.out, "\", \"scale\": %d}", m->info.scale);
    }
    fputs("]\n", t.out);
    return respond_text(c, r, 200, "application/json", &t);
}

static enum MHD_Result respond_metrics(struct MHD_Connection *c, request *r)
{
    server *srv = r->srv;
    text t;
    if (text_open(&t) != 0)
        return MHD_NO;
    FILE *f = t.out;
    pthread_mutex_lock(&srv->lock);
    const serve_metrics m = srv->metrics;
    const int running = srv->n_running, queued = srv->n_queued;
    const int64_t committed = srv->committed;
    pthread_mutex_unlock(&srv->lock);
    fputs("# HELP srrun_requests_total HTTP requests answered, by status.\n"
          "# TYPE srrun_requests_total counter\n", f);
    for (int s = 100; s < 600; s++)
        if (m.requests[s])
            fprintf(f, "srrun_requests_total{code=\"%d\"} %llu\n", s,
                    (unsigned long long)m.requests[s]);
    fprintf(f, "# HELP srrun_jobs_running Jobs upscaling now.\n# TYPE srrun_jobs_running gauge\n"
               "srrun_jobs_running %d\n", running);
    fprintf(f, "# HELP srrun_jobs_queued Jobs waiting for memory or a worker.\n"
               "# TYPE srrun_jobs_queued gauge\nsrrun_jobs_queued %d\n", queued);
    fprintf(f, "# HELP srrun_jobs_total Jobs ended, by outcome.\n# TYPE srrun_jobs_total counter\n"
               "srrun_jobs_total{outcome=\"done\"} %llu\n"
               "srrun_jobs_total{outcome=\"failed\"} %llu\n"
               "srrun_jobs_total{outcome=\"cancelled\"} %llu\n",
            (unsigned long long)m.jobs_done, (unsigned long long)m.jobs_failed,
            (unsigned long long)m.jobs_cancelled);
    fputs("# HELP srrun_job_seconds Seconds from a job's start to its end.\n"
          "# TYPE srrun_job_seconds histogram\n", f);
    for (int b = 0; b < SERVE_JOB_BUCKETS; b++) {
        if (b < SERVE_JOB_BUCKETS - 1)
            fprintf(f, "srrun_job_seconds_bucket{le=\"%g\"} %llu\n", serve_job_bucket_bounds[b],
                    (unsigned long long)m.job_seconds_buckets[b]);
        else
            fprintf(f, "srrun_job_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)m.job_seconds_buckets[b]);
    }
    fprintf(f, "srrun_job_seconds_sum %.6f\nsrrun_job_seconds_count %llu\n", m.job_seconds_sum,
            (unsigned long long)m.job_seconds_count);
    fprintf(f, "# HELP srrun_memory_planned_bytes Bytes counted against the budget: the program, "
               "weights, bodies, planned jobs, results.\n"
               "# TYPE srrun_memory_planned_bytes gauge\nsrrun_memory_planned_bytes %lld\n"
               "# HELP srrun_memory_budget_bytes The budget (-m).\n"
               "# TYPE srrun_memory_budget_bytes gauge\nsrrun_memory_budget_bytes %lld\n",
            (long long)committed, (long long)srv->budget);
    fputs("# HELP srrun_model_load_seconds Seconds each model took to load.\n"
          "# TYPE srrun_model_load_seconds gauge\n", f);
    for (int i = 0; i < srv->n_models; i++)
        fprintf(f, "srrun_model_load_seconds{model=\"%s\"} %.6f\n", srv->models[i].name,
                srv->models[i].load_seconds);
    return respond_text(c, r, 200, "text/plain; version=0.0.4", &t);
}

/* ---- Upscaling requests ---------------------------------------------------- */

/* The query's model, alpha, depth and quality and the Accept header into
 * r: NULL, or the reason they are refused. */
static const char *read_options(struct MHD_Connection *c, request *r, char *why, size_t size)
{
    const server *srv = r->srv;
    const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    r->model = &srv->models[0];
    if (name) {
        r->model = NULL;
        for (int i = 0; i < srv->n_models && !r->model; i++)
            if (strcmp(srv->models[i].name, name) == 0)
                r->model = &srv->models[i];
        if (!r->model) {
            snprintf(why, size, "no model named '%s' (GET /v1/models lists them)", name);
            return why;
        }
    }
    const char *alpha = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "alpha");
    const char *depth = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "depth");
    const char *quality = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "quality");
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    r->jpeg = accept && strstr(accept, "image/jpeg") && !strstr(accept, "image/png");
    if (alpha && strcmp(alpha, "white") != 0 && strcmp(alpha, "keep") != 0)
        return "alpha needs white or keep";
    r->opts.keep_alpha = alpha && strcmp(alpha, "keep") == 0;
    if (depth && strcmp(depth, "8") != 0 && strcmp(depth, "16") != 0)
        return "depth needs 8 or 16";
    r->opts.depth = depth ? atoi(depth) : 0;
    if (quality) {
        char *end;
        const long q = strtol(quality, &end, 10);
        if (!*quality || *end || q < 1 || q > 100)
            return "quality needs a number from 1 to 100";
        r->opts.quality = (int)q;
    }
    if (r->jpeg && r->opts.keep_alpha)
        return "alpha=keep needs a PNG result (JPEG has no alpha)";
    if (r->jpeg && r->opts.depth == 16)
        return "depth=16 needs a PNG result (JPEG is 8-bit)";
    return NULL;
}

/* The start of a POST: refuses what it can from the headers alone, before
 * a byte of the body is read. */
static enum MHD_Result start_upload(struct MHD_Connection *c, request *r)
{
    server *srv = r->srv;
    char why[256];
    const char *refused = read_options(c, r, why, sizeof why);
    if (refused)
        return respond_error(c, r, 400, "%s", refused);
    const char *length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end;
        errno = 0;
        const unsigned long long n = strtoull(length, &end, 10);
        if (errno || *end || n > (unsigned long long)srv->max_body)
            return respond_error(c, r, 413, "the body is over the %lldM this server reads",
                                 (long long)(srv->max_body >> 20));
        if (n > 0 && jobs_reserve(srv, (int64_t)n) != 0)
            return respond_error(c, r, 503, "the server's memory is taken; try again later");
        r->cap = (size_t)n;
        if (n > 0 && !(r->body = malloc(r->cap))) {
            jobs_release(srv, (int64_t)n);
            r->cap = 0;
            return respond_error(c, r, 503, "out of memory");
        }
    }
    r->reading = 1;
    return MHD_YES;
}

/* A piece of the body. A body without a length (chunked) grows its
 * reservation as it comes; past the limit the connection is closed, as
 * an answer cannot be sent before the body's end. */
static enum MHD_Result receive(request *r, const char *data, size_t size)
{
    server *srv = r->srv;
    if (size > r->cap - r->size) {
        const size_t cap = r->size + size > 2 * r->cap ? r->size + size : 2 * r->cap;
        if (cap > (size_t)srv->max_body || jobs_reserve(srv, (int64_t)(cap - r->cap)) != 0)
            return MHD_NO;
        uint8_t *body = realloc(r->body, cap);
        if (!body) {
            jobs_release(srv, (int64_t)(cap - r->cap));
            return MHD_NO;
        }
        r->body = body;
        r->cap = cap;
    }
    memcpy(r->body + r->size, data, size);
    r->size += size;
    return MHD_YES;
}

/* Whether the client closed its connection (a sync request's, whose job
 * is then cancelled). */
static int client_gone(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return 0;
    char byte;
    const ssize_t n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The body is in: a job for it, answered at once (async) or when done. */
static enum MHD_Result finish_upload(struct MHD_Connection *c, request *r)
{
    server *srv = r->srv;
    if (r->size == 0) {
        jobs_release(srv, (int64_t)r->cap);
        r->cap = 0;
        return respond_error(c, r, 400, "the body is empty: POST the image's bytes");
    }
    int status;
    char message[1024];
    /* The body and its reservation pass to the job, which is given the
     * capacity counted: a shorter body's slack is returned with it. */
    uint8_t *body = r->body;
    const size_t counted = r->cap;
    r->body = NULL;
    r->cap = 0;
    jobs_release(srv, (int64_t)(counted - r->size));
    job *j = jobs_submit(srv, r->model, &r->opts, r->jpeg, body, r->size, r->async, &status,
                         message, sizeof message);
    if (!j)
        return respond_error(c, r, status, "%s", message);
    if (r->async) {
        text t;
        if (text_open(&t) != 0) {
            jobs_unref(j);
            return MHD_NO;
        }
        fprintf(t.out,
                "{\"id\": \"%s\", \"events\": \"/v1/jobs/%s/events\", "
                "\"result\": \"/v1/jobs/%s/result\"}\n",
                j->id, j->id, j->id);
        jobs_unref(j);
        return respond_text(c, r, 202, "application/json", &t);
    }
    r->job = j;
    pthread_mutex_lock(&srv->lock);
    int cancelled = 0;
    while (!job_finished(j)) {
        serve_timed_wait(&j->changed, &srv->lock, 0.25);
        if (!cancelled && client_gone(c)) {
            pthread_mutex_unlock(&srv->lock);
            jobs_cancel(j, 0);
            pthread_mutex_lock(&srv->lock);
            cancelled = 1;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    if (cancelled)
        return MHD_NO;
    return respond_job(c, r, j);
}

/* ---- Routing ------------------------------------------------------------- */

/* /v1/jobs/ID[/what]: the job (with a reference) and what, or NULL. */
static job *job_of(server *srv, const char *url, const char **what)
{
    const char *prefix = "/v1/jobs/";
    if (strncmp(url, prefix, strlen(prefix)) != 0)
        return NULL;
    const char *id = url + strlen(prefix);
    const size_t n = strcspn(id, "/");
    char key[33];
    if (n != 32)
        return NULL;
    memcpy(key, id, n);
    key[n] = '\0';
    *what = id + n;
    return jobs_find(srv, key);
}

static enum MHD_Result route_job(struct MHD_Connection *c, request *r, const char *url,
                                 const char *method)
{
    const char *what = "";
    job *j = job_of(r->srv, url, &what);
    if (!j)
        return respond_error(c, r, 404, "no such job (unknown, or its result expired)");
    const int get = strcmp(method, "GET") == 0;
    if (strcmp(what, "/events") == 0 && get)
        return respond_events(c, r, j); /* which takes the reference */
    enum MHD_Result ok;
    if (strcmp(what, "/result") == 0 && get) {
        pthread_mutex_lock(&r->srv->lock);
        const int running = !job_finished(j);
        pthread_mutex_unlock(&r->srv->lock);
        ok = running ? respond_error(c, r, 409, "the job is not finished") : respond_job(c, r, j);
    } else if (strcmp(what, "") == 0 && strcmp(method, "DELETE") == 0) {
        jobs_cancel(j, 1);
        ok = queue(c, r, 204, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT),
                   0);
    } else if (strcmp(what, "") == 0 || strcmp(what, "/events") == 0 ||
               strcmp(what, "/result") == 0) {
        ok = respond_method(c, r, *what ? "GET" : "DELETE");
    } else {
        ok = respond_error(c, r, 404, "no such resource");
    }
    jobs_unref(j);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **state)
{
    (void)cls;
    (void)version;
    request *r = *state;
    if (!r)
        return MHD_NO; /* on_uri found no memory for it */
    if (!r->method[0]) {
        snprintf(r->method, sizeof r->method, "%s", method);
        printable(r->path, sizeof r->path, url); /* for the log: the URL is the client's */
        const int post = strcmp(method, "POST") == 0;
        const int upscale = strcmp(url, "/v1/upscale") == 0, jobs = strcmp(url, "/v1/jobs") == 0;
        if (upscale || jobs) {
            if (!post)
                return respond_method(c, r, "POST");
            r->async = jobs;
            return start_upload(c, r);
        }
        const int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        size_t size;
        const char *type;
        const unsigned char *page = page_file(url, &size, &type);
        if (page)
            return get ? respond_page(c, r, page, size, type) : respond_method(c, r, "GET");
        if (strcmp(url, "/healthz") == 0)
            return get ? respond(c, r, 200, "text/plain", "ok\n", 3) : respond_method(c, r, "GET");
        if (strcmp(url, "/v1/models") == 0)
            return get ? respond_models(c, r) : respond_method(c, r, "GET");
        if (strcmp(url, "/metrics") == 0)
            return get ? respond_metrics(c, r) : respond_method(c, r, "GET");
        return route_job(c, r, url, method);
    }
    if (!r->reading)
        return MHD_NO; /* a body where none was asked for */
    if (*upload_size) {
        const enum MHD_Result ok = receive(r, upload_data, *upload_size);
        *upload_size = 0;
        return ok;
    }
    r->reading = 0;
    return finish_upload(c, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    server *srv = cls;
    request *r = *state;
    if (!r)
        return;
    if (r->job) {
        jobs_cancel(r->job, 0); /* a no-op once it has finished */
        jobs_unref(r->job);
    }
    if (r->cap)
        jobs_release(srv, (int64_t)r->cap);
    free(r->body);
    if (!srv->quiet) {
        char status[8];
        snprintf(status, sizeof status, "%d", r->status);
        fprintf(stderr, "srrun: %s %s %s %llu bytes %.3f s%s\n", r->method, r->path,
                r->status ? status : "-", (unsigned long long)r->bytes, seconds_now() - r->start,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (timed out)"
                                                                : " (cut short)");
    }
    pthread_mutex_lock(&srv->lock);
    if (r->status >= 100 && r->status < 600)
        srv->metrics.requests[r->status]++;
    srv->requests_in_flight--;
    pthread_cond_broadcast(&srv->work);
    pthread_mutex_unlock(&srv->lock);
    free(r);
    *state = NULL;
}

/* A request's state, made when its first line is read (before
 * on_request), and counted in flight: the shutdown waits for those to be
 * answered. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)uri;
    (void)c;
    server *srv = cls;
    request *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    *r = (request){.srv = srv, .start = seconds_now()};
    pthread_mutex_lock(&srv->lock);
    srv->requests_in_flight++;
    pthread_mutex_unlock(&srv->lock);
    return r;
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    const server *srv = cls;
    if (srv->quiet)
        return;
    fputs("srrun: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

struct MHD_Daemon *serve_http_start(server *srv, int listen_fd, unsigned max_connections,
                                    unsigned timeout_seconds)
{
    return MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        timeout_seconds, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_END);
}
