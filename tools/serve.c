/* `srrun serve`: the command. Parses its options, loads the models once,
 * listens, and on SIGTERM or SIGINT stops accepting, lets the jobs finish
 * (or cancels them after a grace period), answers what is in flight and
 * exits 0. The signals are taken by sigwait on the main thread, every
 * other thread having them blocked: nothing runs in a signal handler. */
#define _GNU_SOURCE /* sched_getaffinity's CPU_COUNT */
#include "serve.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "report.h"
#include "serve_http.h"

/* Running jobs get this long to finish after SIGTERM before they are
 * cancelled; requests still being answered, this long more. */
#define GRACE_SECONDS 10.0
#define ANSWER_SECONDS 5.0
/* Connections at once (each its own thread), and how long one may idle. */
#define MAX_CONNECTIONS 128
#define CONNECTION_TIMEOUT_SECONDS 30

static const char usage_text[] =
    "usage: srrun serve [MODEL...] [options]\n"
    "\n"
    "Serves upscaling over HTTP. MODELs (torch.save files or model.bin) are\n"
    "loaded once, each named by its file's stem; without any, the default x4\n"
    "and x2 models. A request without ?model= uses the first. The first line\n"
    "written is 'listening on http://ADDR:PORT'.\n"
    "\n"
    "  GET    /                     a web page to upscale a photo with\n"
    "  GET    /healthz              ok\n"
    "  GET    /v1/models            the models: name, architecture, scale (JSON)\n"
    "  POST   /v1/upscale           body: a PNG or JPEG; answers the upscaled PNG\n"
    "                               (JPEG with Accept: image/jpeg). Query:\n"
    "                               model=NAME alpha=white|keep depth=8|16 quality=N\n"
    "  POST   /v1/jobs              the same as a job: {\"id\", \"events\", \"result\"}\n"
    "  GET    /v1/jobs/ID/events    its progress as server-sent events\n"
    "  GET    /v1/jobs/ID/result    its image (409 while it runs)\n"
    "  DELETE /v1/jobs/ID           cancels it and forgets its result\n"
    "  GET    /metrics              Prometheus metrics\n"
    "\n"
    "options:\n"
    "      --listen ADDR:PORT  where to listen (default: 127.0.0.1:8080; port 0\n"
    "                       picks a free one)\n"
    "  -m, --max-memory SIZE  memory for the whole server, e.g. 1G (default: three\n"
    "                       quarters of the machine's); jobs run at once while\n"
    "                       their plans fit it, the rest wait\n"
    "  -t, --threads N      cores to compute on (default: all)\n"
    "      --workers N      jobs that run at once, each on threads/N cores\n"
    "                       (default: one for every 4 threads, at least one)\n"
    "      --max-jobs N     jobs that may wait to run (default: 16); more: 503\n"
    "      --max-pixels N   refuse larger images, from their header (default:\n"
    "                       178956970, as Pillow)\n"
    "  -q, --quiet          no line per request on stderr\n"
    "  -h, --help           show this help\n";

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "srrun: serve: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'srrun serve --help'.\n");
    return 2;
}

static int parse_count(const char *text, long long max, long long *value)
{
    char *end;
    errno = 0;
    const long long n = strtoll(text, &end, 10);
    if (!*text || *end || errno || n < 1 || n > max)
        return -1;
    *value = n;
    return 0;
}

typedef struct serve_options {
    const char *listen;
    int64_t max_memory, max_pixels;
    int threads, workers, max_jobs, quiet;
    char **models;
    int n_models;
} serve_options;

static int parse(int argc, char **argv, serve_options *o)
{
    static const struct option longs[] = {
        {"listen", required_argument, NULL, 'L'},  {"max-memory", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'}, {"workers", required_argument, NULL, 'W'},
        {"max-jobs", required_argument, NULL, 'J'},
        {"max-pixels", required_argument, NULL, 'P'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    *o = (serve_options){.listen = "127.0.0.1:8080", .max_jobs = 16};
    optind = 1;
    long long n;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:t:qh", longs, NULL)) != -1) {
        switch (opt) {
        case 'L': o->listen = optarg; break;
        case 'm':
            if ((o->max_memory = parse_size(optarg)) < 0)
                return usage_error("--max-memory needs a size like 300M or 2G, not '%s'", optarg);
            break;
        case 't':
            if (parse_count(optarg, 1024, &n) != 0)
                return usage_error("--threads needs a number from 1 to 1024, not '%s'", optarg);
            o->threads = (int)n;
            break;
        case 'W':
            if (parse_count(optarg, 1024, &n) != 0)
                return usage_error("--workers needs a number from 1 to 1024, not '%s'", optarg);
            o->workers = (int)n;
            break;
        case 'J':
            if (parse_count(optarg, 100000, &n) != 0)
                return usage_error("--max-jobs needs a number from 1 to 100000, not '%s'",
                                   optarg);
            o->max_jobs = (int)n;
            break;
        case 'P':
            if (parse_count(optarg, INT64_MAX, &n) != 0)
                return usage_error("--max-pixels needs a positive number, not '%s'", optarg);
            o->max_pixels = n;
            break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage_error("%s", "invalid option");
        }
    }
    o->models = argv + optind;
    o->n_models = argc - optind;
    return -1;
}

/* A socket listening on ADDR:PORT ([ADDR]:PORT for IPv6); -1 after saying
 * why not. Its name, the port found, goes to bound. */
static int listen_on(const char *spec, char *bound, size_t bound_size)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    const char *h = spec;
    size_t host_len = colon ? (size_t)(colon - spec) : 0;
    if (colon && *h == '[' && host_len >= 2 && h[host_len - 1] == ']') {
        h++;
        host_len -= 2;
    }
    if (!colon || !colon[1] || host_len == 0 || host_len >= sizeof host) {
        fprintf(stderr, "srrun: serve: --listen needs ADDR:PORT, like 127.0.0.1:8080, not '%s'\n",
                spec);
        return -1;
    }
    memcpy(host, h, host_len);
    host[host_len] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    const int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "srrun: serve: --listen %s: %s\n", spec, gai_strerror(gai));
        return -1;
    }
    const int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        fprintf(stderr, "srrun: serve: cannot listen on %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char name[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        if (addr.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&addr;
            inet_ntop(AF_INET6, &a->sin6_addr, name, sizeof name);
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&addr;
            inet_ntop(AF_INET, &a->sin_addr, name, sizeof name);
            port = ntohs(a->sin_port);
        }
    }
    snprintf(bound, bound_size, addr.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", name, port);
    return fd;
}

/* "photos/srpgan_x4.pth" -> "srpgan_x4". */
static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    const size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, n);
}

/* What a plan of m counts that the server holds once (see served_model):
 * the fixed bytes of a 1x1 plan less its two images. */
static int shared_bytes(served_model *m)
{
    sr_session_options options = SR_SESSION_OPTIONS_INIT;
    options.backend = SR_BACKEND_CPU;
    options.n_threads = 1;
    sr_session *session;
    sr_error err = {0};
    if (sr_session_new(m->model, &options, &session, &err) != SR_OK) {
        fprintf(stderr, "srrun: serve: %s\n", err.message);
        return -1;
    }
    sr_plan_info plan = SR_PLAN_INFO_INIT;
    if (sr_session_plan(session, 1, 1, &plan) != SR_OK) {
        fprintf(stderr, "srrun: serve: %s\n", sr_session_last_error(session));
        sr_session_free(session);
        return -1;
    }
    sr_session_free(session);
    const int64_t s = m->info.scale;
    m->shared_bytes = plan.fixed_bytes - 3 - 3 * s * s; /* 8-bit RGB in and out */
    return 0;
}

static void free_models(server *srv)
{
    for (int i = 0; i < srv->n_models; i++) {
        sr_model_free(srv->models[i].model);
        free(srv->models[i].name);
    }
    free(srv->models);
}

/* Loads the models (the defaults, x4 then x2, when none is named): 0, or
 * 1 after saying why not. */
static int load_models(server *srv, const serve_options *o)
{
    const int n = o->n_models ? o->n_models : 2;
    if (!(srv->models = calloc((size_t)n, sizeof *srv->models)))
        return fprintf(stderr, "srrun: serve: out of memory\n"), 1;
    for (int i = 0; i < n; i++) {
        served_model *m = &srv->models[srv->n_models];
        sr_error err = {0};
        const double start = seconds_now();
        const char *path = o->n_models ? o->models[i] : NULL;
        sr_model_options options = SR_MODEL_OPTIONS_INIT;
        options.n_threads = o->threads; /* 0: all cores, as the server's */
        const int scale = i == 0 ? 4 : 2;
        const sr_status st = path ? sr_model_load(path, &options, &m->model, &err)
                                  : sr_model_load_default(scale, &options, &m->model, &err);
        if (st != SR_OK)
            return fprintf(stderr, "srrun: serve: %s\n", err.message), 1;
        m->load_seconds = seconds_now() - start;
        m->info = (sr_model_info)SR_MODEL_INFO_INIT;
        sr_model_get_info(m->model, &m->info);
        m->name = path ? stem_of(path) : strdup(i == 0 ? "srpgan_x4" : "srpgan_x2");
        srv->n_models++;
        if (!m->name)
            return fprintf(stderr, "srrun: serve: out of memory\n"), 1;
        for (int k = 0; k < srv->n_models - 1; k++)
            if (strcmp(srv->models[k].name, m->name) == 0)
                return fprintf(stderr, "srrun: serve: two models are named '%s' (by their files' "
                                       "stems); rename one\n", m->name), 1;
        if (!srv->quiet && path)
            print_notices(path, sr_model_notices(m->model));
        if (shared_bytes(m) != 0)
            return 1;
    }
    /* The program is counted once, each model's weights once. */
    srv->at_rest = srv->models[0].shared_bytes - srv->models[0].info.file_size;
    for (int i = 0; i < srv->n_models; i++)
        srv->at_rest += srv->models[i].info.file_size;
    return 0;
}

static int cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Waits for SIGTERM or SIGINT; then stops accepting, ends the jobs and
 * waits (a while) for the requests in flight to be answered. */
static void run_until_signal(server *srv, struct MHD_Daemon *daemon, const sigset_t *signals)
{
    int sig;
    while (sigwait(signals, &sig) != 0)
        ;
    /* A second signal ends the process at once, as the CLI's does. */
    pthread_sigmask(SIG_UNBLOCK, signals, NULL);
    if (!srv->quiet)
        fprintf(stderr, "srrun: serve: %s: finishing the jobs running (%.0f s at most)\n",
                strsignal(sig), GRACE_SECONDS);
    MHD_quiesce_daemon(daemon);
    jobs_stop(srv, GRACE_SECONDS);
    pthread_mutex_lock(&srv->lock);
    const double deadline = seconds_now() + ANSWER_SECONDS;
    while (srv->requests_in_flight > 0 && seconds_now() < deadline)
        serve_timed_wait(&srv->work, &srv->lock, deadline - seconds_now());
    pthread_mutex_unlock(&srv->lock);
}

int serve_main(int argc, char **argv)
{
    serve_options o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    server srv = {.quiet = o.quiet, .max_pixels = o.max_pixels, .max_queued = o.max_jobs};
    const int64_t ram = (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE);
    srv.budget = o.max_memory ? o.max_memory : ram / 4 * 3; /* the library's default */
    srv.max_body = srv.budget / 4;
    const int threads = o.threads ? o.threads : cores();
    if (o.workers > threads) {
        char why[96];
        snprintf(why, sizeof why, "--workers %d needs at least as many threads, not %d",
                 o.workers, threads);
        return usage_error("%s", why);
    }
    srv.n_workers = o.workers ? o.workers : threads / 4 > 1 ? threads / 4 : 1;
    srv.threads_per_job = threads / srv.n_workers;

    /* Blocked here, so in every thread started from now on. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = 1;
    char bound[INET6_ADDRSTRLEN + 16];
    int fd = -1;
    struct MHD_Daemon *daemon = NULL;
    pthread_mutex_init(&srv.lock, NULL);
    pthread_cond_init(&srv.work, NULL);
    if (load_models(&srv, &o) != 0)
        goto done;
    srv.committed = srv.at_rest;
    if (srv.at_rest >= srv.budget) {
        fprintf(stderr, "srrun: serve: the models take %lldM, more than the --max-memory of "
                        "%lldM\n", (long long)(srv.at_rest >> 20) + 1,
                (long long)(srv.budget >> 20));
        goto done;
    }
    if ((fd = listen_on(o.listen, bound, sizeof bound)) < 0)
        goto done;
    if (jobs_start(&srv) != 0) {
        fprintf(stderr, "srrun: serve: cannot start the workers: %s\n", strerror(errno));
        goto done;
    }
    if (!(daemon = serve_http_start(&srv, fd, MAX_CONNECTIONS, CONNECTION_TIMEOUT_SECONDS))) {
        fprintf(stderr, "srrun: serve: libmicrohttpd did not start\n");
        jobs_stop(&srv, 0);
        goto done;
    }
    printf("listening on http://%s\n", bound);
    fflush(stdout);
    run_until_signal(&srv, daemon, &signals);
    MHD_stop_daemon(daemon);
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    /* Every job was freed with its last reference; the table keeps some. */
    pthread_mutex_lock(&srv.lock);
    while (srv.kept) {
        job *j = srv.kept;
        srv.kept = j->next_kept;
        jobs_unref_locked(j);
    }
    pthread_mutex_unlock(&srv.lock);
    free_models(&srv);
    pthread_cond_destroy(&srv.work);
    pthread_mutex_destroy(&srv.lock);
    return rc;
}
