/* `srrun serve` (tools/serve*.c) as a client sees it: the server started on
 * a free loopback port with the fixture model, every endpoint asked over a
 * plain socket (HTTP/1.1, one request a connection), the web page's files
 * and headers (test_web.py runs the page in a browser), results compared
 * byte for byte with the CLI's, hostile bodies posted one after another,
 * the limits (413), a full queue (503), jobs' events, results and
 * cancellation, a client gone, and SIGTERM. Skipped (77) in a build
 * without libmicrohttpd. */
#define _GNU_SOURCE /* memmem, wait4 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <zlib.h>

#include "cli_run.h"
#include "srrun.h"
#include "testutil.h"

static char basedir[128], workdir[256], model_path[512];

/* ---- The server ----------------------------------------------------------- */

typedef struct server_proc {
    pid_t pid;
    int port;
    char log[512]; /* its stderr */
} server_proc;

static server_proc main_server;
/* Every server started, so that a failed test leaves none running. */
static pid_t started[8];
static int n_started;

/* Starts `srrun serve MODEL --listen 127.0.0.1:0 args...` and reads its
 * first line for the port. */
static server_proc start_server(const char *name, const char *const *args)
{
    server_proc s = {0};
    snprintf(s.log, sizeof s.log, "%s/%s.log", basedir, name);
    int out[2];
    assert_int_equal(pipe(out), 0);
    const char *argv[32] = {"srrun", "serve", model_path, "--listen", "127.0.0.1:0"};
    int n = 5;
    for (; args[n - 5] && n < 29; n++)
        argv[n] = args[n - 5];
#ifdef SR_TEST_ONE_THREAD_PER_JOB
    /* Under ThreadSanitizer, which cannot see libgomp's barriers: as many
     * threads as workers, each job on one, so no OpenMP team is formed. */
    const char *workers = "1";
    for (int i = 5; i + 1 < n; i++)
        if (strcmp(argv[i], "--workers") == 0)
            workers = argv[i + 1];
    argv[n++] = "--threads";
    argv[n++] = workers;
#endif
    argv[n] = NULL;
    s.pid = fork();
    assert_true(s.pid >= 0);
    if (s.pid == 0) {
        const int e = open(s.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e < 0 || chdir(workdir) != 0)
            _exit(99);
        dup2(out[1], 1);
        dup2(e, 2);
        close(out[0]);
        execv(SR_CLI_PATH, (char *const *)argv);
        _exit(98);
    }
    close(out[1]);
    started[n_started++] = s.pid;
    FILE *f = fdopen(out[0], "r");
    char line[256] = "";
    if (!fgets(line, sizeof line, f))
        fail_msg("the server wrote no line (see %s)", s.log);
    fclose(f);
    if (sscanf(line, "listening on http://127.0.0.1:%d\n", &s.port) != 1)
        fail_msg("first line: '%s'", line);
    return s;
}

/* SIGTERM; the exit status. */
static int stop_server(server_proc *s)
{
    assert_int_equal(kill(s->pid, SIGTERM), 0);
    int status;
    assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* ---- A small HTTP client ---------------------------------------------------- */

typedef struct response {
    int status;
    char headers[4096];
    char *body;
    size_t size;
} response;

static int connect_to(int port)
{
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static void send_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        const ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server answered early and closed: read what it said */
        p += n;
        size -= (size_t)n;
    }
}

/* Sends a request (body may be NULL; extra: header lines, each ending
 * "\r\n"), without reading the answer. */
static int send_request(int port, const char *method, const char *path, const char *extra,
                        const void *body, size_t size)
{
    const int fd = connect_to(port);
    char head[1024];
    const int n = snprintf(head, sizeof head,
                           "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s",
                           method, path, extra ? extra : "", body ? "" : "\r\n");
    send_all(fd, head, (size_t)n);
    if (body) {
        char length[64];
        send_all(fd, length, (size_t)snprintf(length, sizeof length,
                                              "Content-Length: %zu\r\n\r\n", size));
        send_all(fd, body, size);
    }
    return fd;
}

/* Reads the answer to the end of the connection, chunks joined. */
static response read_response(int fd)
{
    size_t cap = 1 << 16, size = 0;
    char *raw = malloc(cap);
    assert_non_null(raw);
    ssize_t n;
    while ((n = recv(fd, raw + size, cap - size, 0)) > 0) {
        size += (size_t)n;
        if (size == cap)
            assert_non_null(raw = realloc(raw, cap *= 2));
    }
    close(fd);
    response r = {0};
    char *end = memmem(raw, size, "\r\n\r\n", 4);
    if (!end)
        fail_msg("no complete answer (%zu bytes)", size);
    const size_t head = (size_t)(end - raw) + 4;
    snprintf(r.headers, sizeof r.headers, "%.*s", (int)head, raw);
    assert_int_equal(sscanf(raw, "HTTP/1.1 %d", &r.status), 1);
    r.body = malloc(size - head + 1);
    assert_non_null(r.body);
    if (strstr(r.headers, "Transfer-Encoding: chunked")) {
        const char *p = raw + head;
        for (;;) {
            const size_t chunk = strtoul(p, NULL, 16);
            p = strstr(p, "\r\n") + 2;
            if (chunk == 0)
                break;
            memcpy(r.body + r.size, p, chunk);
            r.size += chunk;
            p += chunk + 2;
        }
    } else {
        memcpy(r.body, raw + head, size - head);
        r.size = size - head;
    }
    r.body[r.size] = '\0';
    free(raw);
    return r;
}

/* Waits, without consuming it, until what fd has received holds `text`:
 * a stream request's answer has begun, so the server has found its job. */
static void wait_received(int fd, const char *text)
{
    char peek[4096];
    for (int tries = 0; tries < 3000; tries++) {
        const ssize_t n = recv(fd, peek, sizeof peek - 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) {
            peek[n] = '\0';
            if (strstr(peek, text))
                return;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    fail_msg("'%s' not received in 30 s", text);
}

static response request(int port, const char *method, const char *path, const char *extra,
                        const void *body, size_t size)
{
    return read_response(send_request(port, method, path, extra, body, size));
}

static response get(const char *path)
{
    return request(main_server.port, "GET", path, NULL, NULL, 0);
}

static response post(const char *path, const char *extra, const void *body, size_t size)
{
    return request(main_server.port, "POST", path, extra, body, size);
}

static void expect_status(const response *r, int status)
{
    if (r->status != status)
        fail_msg("status %d, not %d: %s", r->status, status, r->body);
}

static void expect_in(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' not in '%s'", part, text);
}

/* ---- Files ----------------------------------------------------------------- */

static void *fixture(const char *name, size_t *size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SR_FIXTURES_DIR, name);
    int64_t n;
    void *data = test_read_file(path, &n);
    if (!data)
        fail_msg("%s: missing", path);
    *size = (size_t)n;
    return data;
}

static void *work_file(const char *name, size_t *size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", workdir, name);
    int64_t n;
    void *data = test_read_file(path, &n);
    if (!data)
        fail_msg("%s: missing", path);
    *size = (size_t)n;
    return data;
}

/* A size x size PNG of noise in the work folder: seconds of work for the
 * fixture model, so that its job is still running when asked about. */
static void *noise_png(int size, size_t *bytes)
{
    sr_image img;
    sr_error err = {0};
    assert_int_equal(sr_image_alloc(&img, size, size, 3, SR_PIXEL_U8, &err), SR_OK);
    test_rng rng = {42};
    for (int64_t i = 0; i < (int64_t)size * size * 3; i++)
        ((uint8_t *)img.data)[i] = (uint8_t)test_rng_next(&rng);
    void *data;
    assert_int_equal(sr_image_write_memory(&img, SR_IMAGE_PNG, 0, &data, bytes, &err), SR_OK);
    sr_image_free(&img);
    return data;
}

/* A PNG of width x height whose pixels are not there: only its header is
 * read before the server refuses it. */
static size_t png_header_only(uint8_t *buf, uint32_t width, uint32_t height)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(buf, signature, 8);
    n += 8;
    const uint8_t ihdr[4 + 4 + 13] = {
        0, 0, 0, 13, 'I', 'H', 'D', 'R',
        (uint8_t)(width >> 24), (uint8_t)(width >> 16), (uint8_t)(width >> 8), (uint8_t)width,
        (uint8_t)(height >> 24), (uint8_t)(height >> 16), (uint8_t)(height >> 8), (uint8_t)height,
        8, 2, 0, 0, 0};
    memcpy(buf + n, ihdr, sizeof ihdr);
    n += sizeof ihdr;
    const uLong crc = crc32(0, ihdr + 4, sizeof ihdr - 4);
    const uint8_t crc_bytes[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                                  (uint8_t)crc};
    memcpy(buf + n, crc_bytes, 4);
    n += 4;
    static const uint8_t idat[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e};
    memcpy(buf + n, idat, sizeof idat);
    return n + sizeof idat;
}

/* The CLI's output for the fixture input with these options. */
static void *cli_output(const char *input, const char *const *options, const char *output,
                        size_t *size)
{
    char in_path[512];
    snprintf(in_path, sizeof in_path, "%s/%s", SR_FIXTURES_DIR, input);
    const char *args[16] = {"-q", "-b", "cpu", "-o", output};
    int n = 5;
#ifdef SR_TEST_ONE_THREAD_PER_JOB
    args[n++] = "--threads";
    args[n++] = "1";
#endif
    for (; *options; options++)
        args[n++] = *options;
    args[n++] = model_path;
    args[n++] = in_path;
    args[n] = NULL;
    cli_result r = cli_run(workdir, args);
    if (r.exit_code != 0)
        fail_msg("srrun: %s", r.err);
    return work_file(output, size);
}

/* A counter or gauge from /metrics; -1 when absent. */
static double metric(int port, const char *name)
{
    response r = request(port, "GET", "/metrics", NULL, NULL, 0);
    expect_status(&r, 200);
    double value = -1;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        const size_t n = strlen(name);
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            value = strtod(line + n + 1, NULL);
    }
    free(r.body);
    return value;
}

/* Waits (up to a minute: the machine may be loaded) for a metric. */
static void wait_metric(int port, const char *name, double value)
{
    for (int i = 0; i < 600 && metric(port, name) != value; i++)
        nanosleep(&(struct timespec){0, 100000000}, NULL);
    if (metric(port, name) != value)
        fail_msg("%s never became %g", name, value);
}

/* "id" of a 202's JSON. */
static void job_id(const response *r, char id[33])
{
    const char *p = strstr(r->body, "\"id\": \"");
    assert_non_null(p);
    snprintf(id, 33, "%s", p + 7);
}

/* ---- Tests ---------------------------------------------------------------- */

static void test_small_endpoints(void **state)
{
    (void)state;
    response r = get("/healthz");
    expect_status(&r, 200);
    assert_string_equal(r.body, "ok\n");
    free(r.body);
    r = get("/v1/models");
    expect_status(&r, 200);
    assert_string_equal(r.body,
                        "[{\"name\": \"srpgan_x2\", \"architecture\": \"srpgan\", \"scale\": 2}]\n");
    free(r.body);
    r = get("/nowhere");
    expect_status(&r, 404);
    free(r.body);
    r = get("/v1/upscale");
    expect_status(&r, 405);
    expect_in(r.headers, "Allow: POST");
    free(r.body);
    r = get("/metrics");
    expect_status(&r, 200);
    expect_in(r.body, "srrun_requests_total{code=\"200\"}");
    expect_in(r.body, "srrun_memory_budget_bytes 268435456\n");
    expect_in(r.body, "srrun_model_load_seconds{model=\"srpgan_x2\"}");
    expect_in(r.body, "srrun_jobs_running 0\n");
    free(r.body);
}

/* The web page (tools/serve_page.*) and its script and style sheet: each
 * with its type, a policy that keeps it to this server, and nosniff; HEAD
 * the same headers; other methods 405. None names another site. */
static void test_page(void **state)
{
    (void)state;
    static const struct {
        const char *path, *type, *part;
    } files[] = {
        {"/", "text/html; charset=utf-8", "<script src=\"/app.js\""},
        {"/app.js", "text/javascript; charset=utf-8", "new EventSource("},
        {"/app.css", "text/css; charset=utf-8", "#compare"},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char type[128];
        snprintf(type, sizeof type, "Content-Type: %s\r\n", files[i].type);
        response r = get(files[i].path);
        expect_status(&r, 200);
        expect_in(r.headers, type);
        expect_in(r.headers, "Content-Security-Policy: default-src 'self'; "
                             "img-src 'self' blob: data:;");
        expect_in(r.headers, "X-Content-Type-Options: nosniff\r\n");
        expect_in(r.body, files[i].part);
        assert_null(strstr(r.body, "://"));
        const size_t size = r.size;
        free(r.body);
        r = request(main_server.port, "HEAD", files[i].path, NULL, NULL, 0);
        expect_status(&r, 200);
        expect_in(r.headers, type);
        char length[64];
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", size);
        expect_in(r.headers, length);
        assert_int_equal(r.size, 0);
        free(r.body);
        r = post(files[i].path, NULL, "x", 1);
        expect_status(&r, 405);
        expect_in(r.headers, "Allow: GET");
        free(r.body);
    }
}

/* The same bytes as the CLI, for each kind of input and option. */
static void test_upscale_matches_cli(void **state)
{
    (void)state;
    static const struct {
        const char *input, *query, *accept;
        const char *options[4];
    } cases[] = {
        {"leaves_37x29.png", "", NULL, {NULL}},
        {"kite_41x27.jpg", "?quality=80", "Accept: image/jpeg\r\n", {"--quality", "80", NULL}},
        {"path_rgba_30x21.png", "?alpha=keep&model=srpgan_x2", NULL, {"--alpha", "keep", NULL}},
        {"water_gray_23x31.png", "?depth=16", NULL, {"--depth", "16", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t in_size, cli_size;
        void *in = fixture(cases[i].input, &in_size);
        char path[128];
        snprintf(path, sizeof path, "/v1/upscale%s", cases[i].query);
        response r = post(path, cases[i].accept, in, in_size);
        expect_status(&r, 200);
        const int jpeg = cases[i].accept != NULL;
        expect_in(r.headers, jpeg ? "Content-Type: image/jpeg" : "Content-Type: image/png");
        void *expected = cli_output(cases[i].input, cases[i].options, jpeg ? "cli.jpg" : "cli.png",
                                    &cli_size);
        if (r.size != cli_size || memcmp(r.body, expected, cli_size) != 0)
            fail_msg("%s: the server's %zu bytes are not the CLI's %zu", cases[i].input, r.size,
                     cli_size);
        free(expected);
        free(r.body);
        free(in);
    }
}

/* Options refused before the body is read. */
static void test_bad_options(void **state)
{
    (void)state;
    size_t size;
    void *in = fixture("leaves_37x29.png", &size);
    static const struct {
        const char *path, *accept, *message;
    } cases[] = {
        {"/v1/upscale?model=nope", NULL, "no model named 'nope'"},
        {"/v1/upscale?alpha=black", NULL, "alpha needs white or keep"},
        {"/v1/upscale?depth=12", NULL, "depth needs 8 or 16"},
        {"/v1/jobs?quality=0", NULL, "quality needs a number from 1 to 100"},
        {"/v1/upscale?alpha=keep", "Accept: image/jpeg\r\n", "needs a PNG result"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        response r = post(cases[i].path, cases[i].accept, in, size);
        expect_status(&r, 400);
        expect_in(r.headers, "Content-Type: application/json");
        expect_in(r.body, cases[i].message);
        free(r.body);
    }
    free(in);
}

/* Every file of tests/crashers, and a few more, posted one after another:
 * each refused with a JSON error, the server alive after each. */
static void test_hostile_bodies(void **state)
{
    (void)state;
    char folder[512];
    snprintf(folder, sizeof folder, "%s/../crashers", SR_FIXTURES_DIR);
    DIR *dir = opendir(folder);
    assert_non_null(dir);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char name[600];
        snprintf(name, sizeof name, "../crashers/%s", e->d_name);
        size_t size;
        void *data = fixture(name, &size);
        response r = size ? post("/v1/upscale", NULL, data, size)
                          : post("/v1/jobs", NULL, data, size);
        if (r.status != 400 && r.status != 413)
            fail_msg("%s: status %d: %s", e->d_name, r.status, r.body);
        expect_in(r.body, "{\"error\": \"");
        free(r.body);
        free(data);
        r = get("/healthz");
        expect_status(&r, 200);
        free(r.body);
        n++;
    }
    closedir(dir);
    assert_true(n > 20);
    static const char garbage[] = "\x89PNG\r\n\x1a\nnot really";
    response r = post("/v1/upscale", NULL, garbage, sizeof garbage - 1);
    expect_status(&r, 400);
    free(r.body);
    r = post("/v1/upscale", NULL, "", 0);
    expect_status(&r, 400);
    expect_in(r.body, "the body is empty");
    free(r.body);
}

/* 413: a body over the limit, answered from its Content-Length without
 * reading it; an image over --max-pixels and one no plan fits under -m,
 * both from their headers. */
static void test_too_large(void **state)
{
    (void)state;
    response r = request(main_server.port, "POST", "/v1/upscale",
                         "Content-Length: 100000000000\r\n\r\n", NULL, 0);
    expect_status(&r, 413);
    expect_in(r.body, "the body is over the 64M this server reads");
    free(r.body);

    uint8_t png[64];
    size_t n = png_header_only(png, 5000, 5000);
    r = post("/v1/upscale", NULL, png, n);
    expect_status(&r, 413);
    expect_in(r.body, "image 5000x5000 exceeds the 20000000-pixel limit");
    free(r.body);

    /* Its images alone take 48M in and 192M out. */
    n = png_header_only(png, 4000, 4000);
    r = post("/v1/jobs", NULL, png, n);
    expect_status(&r, 413);
    expect_in(r.body, "a 4000x4000 image needs a max memory of at least");
    free(r.body);
}

/* A job: 202 with its links, its events (progress, then done), its
 * result as the sync request's, then forgotten after DELETE. */
static void test_job_events_and_result(void **state)
{
    (void)state;
    size_t size;
    void *in = fixture("kite_41x27.jpg", &size);
    response r = post("/v1/jobs", NULL, in, size);
    expect_status(&r, 202);
    char id[33], path[128];
    job_id(&r, id);
    snprintf(path, sizeof path, "\"events\": \"/v1/jobs/%s/events\"", id);
    expect_in(r.body, path);
    free(r.body);

    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    r = get(path);
    expect_status(&r, 200);
    expect_in(r.headers, "Content-Type: text/event-stream");
    expect_in(r.body, "event: progress\ndata: {\"fraction\": ");
    expect_in(r.body, "\"elapsed_s\": ");
    expect_in(r.body, "\"eta_s\": ");
    const char *done = strstr(r.body, "event: done\n");
    assert_non_null(done);
    assert_null(strstr(done + 1, "event: "));
    assert_null(strstr(r.body, "event: error"));
    free(r.body);
    /* A client that comes late: where the job is, then how it ended. */
    r = get(path);
    expect_in(r.body, "event: progress\ndata: {\"fraction\": 1.0000");
    expect_in(r.body, "event: done\n");
    free(r.body);

    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    response result = get(path);
    expect_status(&result, 200);
    response sync = post("/v1/upscale", NULL, in, size);
    expect_status(&sync, 200);
    assert_int_equal(result.size, sync.size);
    assert_memory_equal(result.body, sync.body, sync.size);
    free(result.body);
    free(sync.body);

    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    r = request(main_server.port, "DELETE", path, NULL, NULL, 0);
    expect_status(&r, 204);
    free(r.body);
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    r = get(path);
    expect_status(&r, 404);
    free(r.body);
    r = get("/v1/jobs/0123456789abcdef0123456789abcdef/events");
    expect_status(&r, 404);
    free(r.body);
    free(in);
}

/* A long job (800x800: still running when cancelled, even on a fast
 * machine): 409 for its result while it runs; DELETE stops it, and its
 * event stream, open meanwhile, ends with `cancelled`. With --max-jobs 1
 * a third job finds the queue full: 503 with Retry-After. */
static void test_cancel_and_full_queue(void **state)
{
    (void)state;
    size_t size;
    void *in = noise_png(800, &size);
    response r = post("/v1/jobs", NULL, in, size);
    expect_status(&r, 202);
    char id[33], path[128];
    job_id(&r, id);
    free(r.body);
    wait_metric(main_server.port, "srrun_jobs_running", 1);

    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    r = get(path);
    expect_status(&r, 409);
    free(r.body);

    r = post("/v1/jobs", NULL, in, size); /* waits behind the first */
    expect_status(&r, 202);
    char second[33];
    job_id(&r, second);
    free(r.body);
    r = post("/v1/upscale", NULL, in, size);
    expect_status(&r, 503);
    expect_in(r.headers, "Retry-After: ");
    expect_in(r.body, "too many jobs waiting");
    free(r.body);

    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    const int stream = send_request(main_server.port, "GET", path, NULL, NULL, 0);
    wait_received(stream, "event: progress"); /* or the DELETE below may come first */
    snprintf(path, sizeof path, "/v1/jobs/%s", second);
    r = request(main_server.port, "DELETE", path, NULL, NULL, 0);
    expect_status(&r, 204);
    free(r.body);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    r = request(main_server.port, "DELETE", path, NULL, NULL, 0);
    expect_status(&r, 204);
    free(r.body);
    r = read_response(stream);
    const char *cancelled = strstr(r.body, "event: cancelled\n");
    if (!cancelled)
        fail_msg("no cancelled event in '%s'", r.body);
    assert_null(strstr(r.body, "event: done"));
    free(r.body);
    wait_metric(main_server.port, "srrun_jobs_running", 0);
    free(in);
}

/* A sync request whose client goes away: its job is cancelled. */
static void test_client_gone_cancels(void **state)
{
    (void)state;
    const double before = metric(main_server.port, "srrun_jobs_total{outcome=\"cancelled\"}");
    size_t size;
    void *in = noise_png(300, &size);
    const int fd = send_request(main_server.port, "POST", "/v1/upscale", NULL, in, size);
    wait_metric(main_server.port, "srrun_jobs_running", 1);
    close(fd);
    wait_metric(main_server.port, "srrun_jobs_total{outcome=\"cancelled\"}", before + 1);
    free(in);
    response r = get("/healthz");
    expect_status(&r, 200);
    free(r.body);
}

/* Two workers (--workers 2 of 4 threads) and room in -m for both: two jobs
 * run side by side, the bytes planned for them counted under the budget. */
static void test_jobs_side_by_side(void **state)
{
    (void)state;
    server_proc s = start_server(
        "side", (const char *[]){"-m", "1G", "--threads", "4", "--workers", "2", NULL});
    const double at_rest = metric(s.port, "srrun_memory_planned_bytes");
    size_t size;
    void *in = noise_png(300, &size);
    char ids[2][33];
    for (int i = 0; i < 2; i++) {
        response r = request(s.port, "POST", "/v1/jobs", NULL, in, size);
        expect_status(&r, 202);
        job_id(&r, ids[i]);
        free(r.body);
    }
    wait_metric(s.port, "srrun_jobs_running", 2);
    const double planned = metric(s.port, "srrun_memory_planned_bytes");
    assert_true(planned > at_rest && planned <= 1024.0 * 1024 * 1024);
    for (int i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
        response r = request(s.port, "DELETE", path, NULL, NULL, 0);
        expect_status(&r, 204);
        free(r.body);
    }
    wait_metric(s.port, "srrun_jobs_running", 0);
    wait_metric(s.port, "srrun_memory_planned_bytes", at_rest);
    assert_int_equal(stop_server(&s), 0);
    free(in);
}

/* SIGTERM while a job runs: it finishes (or, past the grace period, is
 * cancelled), its client answered, and the server exits 0. The log has a
 * line per request. */
static void test_sigterm(void **state)
{
    (void)state;
    server_proc s = start_server("sigterm", (const char *[]){"-m", "256M", NULL});
    size_t size;
    void *in = noise_png(800, &size); /* still running when polled, on a fast machine too */
    const int fd = send_request(s.port, "POST", "/v1/upscale", NULL, in, size);
    wait_metric(s.port, "srrun_jobs_running", 1);
    assert_int_equal(stop_server(&s), 0);
    response r = read_response(fd);
    if (r.status != 200 && r.status != 503)
        fail_msg("status %d: %s", r.status, r.body);
    free(r.body);
    free(in);
    static char log[16384];
    cli_slurp(s.log, log, sizeof log);
    expect_in(log, "srrun: GET /metrics 200 ");
    expect_in(log, "srrun: serve: Terminated: finishing the jobs running");
}

static void test_usage(void **state)
{
    (void)state;
    cli_result r = cli_run(workdir, (const char *[]){"serve", "--listen", "nowhere", NULL});
    assert_int_equal(r.exit_code, 1);
    expect_in(r.err, "--listen needs ADDR:PORT");
    r = cli_run(workdir, (const char *[]){"serve", "--max-jobs", "0", NULL});
    assert_int_equal(r.exit_code, 2);
    expect_in(r.err, "--max-jobs needs a number");
    r = cli_run(workdir, (const char *[]){"serve", "--threads", "2", "--workers", "3", NULL});
    assert_int_equal(r.exit_code, 2);
    expect_in(r.err, "--workers 3 needs at least as many threads, not 2");
    r = cli_run(workdir, (const char *[]){"serve", "missing.pth", NULL});
    assert_int_equal(r.exit_code, 1);
    expect_in(r.err, "missing.pth: No such file or directory");
    r = cli_run(workdir, (const char *[]){"serve", "--help", NULL});
    assert_int_equal(r.exit_code, 0);
    expect_in(r.out, "POST   /v1/upscale");
}

static int setup(void **state)
{
    (void)state;
    snprintf(basedir, sizeof basedir, "/tmp/srrun-serve-XXXXXX");
    if (!mkdtemp(basedir))
        return -1;
    snprintf(workdir, sizeof workdir, "%s/work", basedir);
    snprintf(model_path, sizeof model_path, "%s/srpgan_x2.pth", SR_FIXTURES_DIR);
    if (mkdir(workdir, 0755) != 0)
        return -1;
    /* One job at a time, one waiting: the queue fills at the third. */
    main_server = start_server("main", (const char *[]){"-m", "256M", "--threads", "2",
                                                         "--max-jobs", "1", "--max-pixels",
                                                         "20000000", NULL});
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const int status = stop_server(&main_server);
    for (int i = 0; i < n_started; i++)
        if (waitpid(started[i], NULL, WNOHANG) == 0) { /* still running: a test failed */
            kill(started[i], SIGKILL);
            waitpid(started[i], NULL, 0);
        }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", basedir);
    return status == 0 && system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
#ifndef SR_HAVE_SERVE
    puts("srrun was built without serve (no libmicrohttpd): skipped");
    return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_endpoints),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_upscale_matches_cli),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_hostile_bodies),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_job_events_and_result),
        cmocka_unit_test(test_cancel_and_full_queue),
        cmocka_unit_test(test_client_gone_cancels),
        cmocka_unit_test(test_jobs_side_by_side),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_usage),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
