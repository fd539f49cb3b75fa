/* serve_load: `srrun serve` under load, on loopback. Starts the server
 * (SRRUN serve [MODEL] --listen 127.0.0.1:0 -m BUDGET -q), times its cold
 * start (from exec to the first 200 on a 64x64 upscale), then sends
 * REQUESTS POST /v1/upscale from CLIENTS threads at once, square crops of
 * IMAGE at SIZES in turn, each on its own connection, and reports requests
 * per second, latency percentiles, statuses, and the server's peak RSS
 * (VmHWM) against the budget; then SIGTERM and its exit status. Bounded:
 * no request starts after --seconds.
 *
 *   serve_load SRRUN IMAGE [--model M] [--requests 200] [--clients 16]
 *              [--sizes 64,128,256,400,700] [-m 1G] [--seconds 900]
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "srrun.h"

typedef struct crop {
    int size;
    void *png;
    size_t bytes;
} crop;

typedef struct result {
    int status, size_index;
    double seconds;
} result;

static struct {
    int port, n_requests, n_crops;
    crop *crops;
    result *results;
    atomic_int next;
    double deadline;
} load;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "serve_load: %s\n", what);
    exit(1);
}

/* One POST /v1/upscale of c on a new connection: the status, or 0 when the
 * connection failed; a 200 must be a PNG. */
static int post(const crop *c)
{
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)load.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    char head[256];
    const int n = snprintf(head, sizeof head,
                           "POST /v1/upscale HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           c->bytes);
    int ok = send(fd, head, (size_t)n, MSG_NOSIGNAL) == n;
    for (size_t sent = 0; ok && sent < c->bytes;) {
        const ssize_t k = send(fd, (const char *)c->png + sent, c->bytes - sent, MSG_NOSIGNAL);
        ok = k > 0;
        sent += ok ? (size_t)k : 0;
    }
    char first[4096];
    size_t got = 0;
    ssize_t k;
    while ((k = recv(fd, first + got, sizeof first - got, 0)) > 0 && got < sizeof first) {
        got += (size_t)k;
        if (got == sizeof first)
            break;
    }
    char sink[65536];
    while (k > 0 && (k = recv(fd, sink, sizeof sink, 0)) > 0)
        ;
    close(fd);
    int status = 0;
    if (got < 12 || sscanf(first, "HTTP/1.1 %d", &status) != 1)
        return 0;
    const char *body = memmem(first, got, "\r\n\r\n", 4);
    if (status == 200 && (!body || (size_t)(body + 4 - first) + 8 > got ||
                          memcmp(body + 4, "\x89PNG\r\n\x1a\n", 8) != 0))
        return -200; /* a 200 that is not a PNG */
    return status;
}

static void *client(void *arg)
{
    (void)arg;
    int i;
    while ((i = atomic_fetch_add(&load.next, 1)) < load.n_requests && now() < load.deadline) {
        const int s = i % load.n_crops;
        const double t = now();
        load.results[i].status = post(&load.crops[s]);
        load.results[i].seconds = now() - t;
        load.results[i].size_index = s;
    }
    return NULL;
}

static int by_seconds(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *sorted, int n, double p)
{
    int k = (int)(p * (n - 1) + 0.5);
    return n ? sorted[k] : 0;
}

/* A square crop of side size from the middle of img, as a PNG. */
static crop make_crop(const sr_image *img, int size)
{
    if (size > img->width || size > img->height)
        die("a size is larger than IMAGE");
    const int64_t sample = img->type == SR_PIXEL_U16 ? 2 : 1;
    sr_image view = *img;
    memset(&view.meta, 0, sizeof view.meta);
    view.width = view.height = size;
    view.data = (char *)img->data + (img->height - size) / 2 * img->stride +
                (img->width - size) / 2 * img->channels * sample;
    crop c = {.size = size};
    sr_error err = {0};
    if (sr_image_write_memory(&view, SR_IMAGE_PNG, 0, &c.png, &c.bytes, &err) != SR_OK)
        die(err.message);
    return c;
}

static long vm_hwm_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        die("usage: serve_load SRRUN IMAGE [--model M] [--requests N] [--clients N] "
            "[--sizes A,B,...] [-m SIZE] [--seconds S]");
    const char *srrun = argv[1], *image = argv[2], *model = NULL, *budget = "1G";
    const char *sizes = "64,128,256,400,700";
    int n_clients = 16;
    double seconds = 900;
    load.n_requests = 200;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--model") == 0) model = argv[i + 1];
        else if (strcmp(argv[i], "--requests") == 0) load.n_requests = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--clients") == 0) n_clients = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--sizes") == 0) sizes = argv[i + 1];
        else if (strcmp(argv[i], "-m") == 0) budget = argv[i + 1];
        else if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[i + 1]);
        else die("unknown option");
    }
    if (load.n_requests < 1 || n_clients < 1)
        die("--requests and --clients need positive numbers");

    sr_image img;
    sr_error err = {0};
    if (sr_image_read(image, NULL, &img, &err) != SR_OK)
        die(err.message);
    load.crops = calloc(64, sizeof *load.crops);
    const crop tiny = make_crop(&img, 64);
    for (const char *p = sizes; *p && load.n_crops < 64; p += strcspn(p, ","), p += *p == ',')
        load.crops[load.n_crops++] = make_crop(&img, atoi(p));
    sr_image_free(&img);

    /* Cold start: exec to the first 200 on a 64x64 upscale. */
    int out[2];
    if (pipe(out) != 0)
        die("pipe");
    const double t0 = now();
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        const char *args[] = {srrun, "serve", "--listen", "127.0.0.1:0", "-m", budget, "-q",
                              model, NULL};
        execv(srrun, (char *const *)args);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[256];
    if (!fgets(line, sizeof line, f) || sscanf(line, "listening on http://127.0.0.1:%d",
                                               &load.port) != 1)
        die("the server did not start");
    const double listening = now() - t0;
    int status;
    while ((status = post(&tiny)) != 200) {
        if (now() - t0 > 60)
            die("no 200 within a minute");
        if (status != 0)
            fprintf(stderr, "serve_load: cold start answered %d\n", status);
    }
    const double cold = now() - t0;

    load.results = calloc((size_t)load.n_requests, sizeof *load.results);
    pthread_t *threads = calloc((size_t)n_clients, sizeof *threads);
    const double start = now();
    load.deadline = start + seconds;
    for (int i = 0; i < n_clients; i++)
        pthread_create(&threads[i], NULL, client, NULL);
    for (int i = 0; i < n_clients; i++)
        pthread_join(threads[i], NULL);
    const double wall = now() - start;
    const long hwm = vm_hwm_kib(pid);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);

    int sent = 0, ok = 0, by_status[600] = {0}, failed_connections = 0, bad_png = 0;
    double *lat = calloc((size_t)load.n_requests, sizeof *lat);
    for (int i = 0; i < load.n_requests; i++) {
        const result *r = &load.results[i];
        if (r->seconds == 0 && r->status == 0)
            continue; /* not sent: past the deadline */
        sent++;
        if (r->status == 0)
            failed_connections++;
        else if (r->status == -200)
            bad_png++;
        else
            by_status[r->status]++;
        if (r->status == 200)
            lat[ok++] = r->seconds;
    }
    qsort(lat, (size_t)ok, sizeof *lat, by_seconds);
    printf("cold start: listening after %.3f s, first 200 (64x64) after %.3f s\n", listening,
           cold);
    printf("load: %d of %d requests sent by %d clients, sizes %s, -m %s: %.1f s\n", sent,
           load.n_requests, n_clients, sizes, budget, wall);
    printf("  %.2f requests/s (200s only); latency of the 200s p50 %.2f s, p99 %.2f s, max "
           "%.2f s\n",
           ok / wall, percentile(lat, ok, 0.5), percentile(lat, ok, 0.99),
           ok ? lat[ok - 1] : 0);
    printf("  statuses:");
    for (int s = 100; s < 600; s++)
        if (by_status[s])
            printf(" %d x%d", s, by_status[s]);
    printf("; connections failed %d; 200s not a PNG %d\n", failed_connections, bad_png);
    for (int c = 0; c < load.n_crops; c++) {
        int n = 0;
        double sum = 0;
        for (int i = 0; i < load.n_requests; i++)
            if (load.results[i].status == 200 && load.results[i].size_index == c) {
                n++;
                sum += load.results[i].seconds;
            }
        printf("  %dx%d: %d done, mean latency %.2f s\n", load.crops[c].size, load.crops[c].size,
               n, n ? sum / n : 0);
    }
    printf("server: peak RSS %.1f MiB (budget %s); exit status %d after SIGTERM\n",
           (double)hwm / 1024, budget, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return ok == load.n_requests && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
