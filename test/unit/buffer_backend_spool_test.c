/* Unit test of a backend with a spool (buffer/backend.c + buffer/spool.c): writes of every
 * payload kind (line protocol, Prometheus remote write, a query) queued while the backend is
 * down survive the backend's stop and come out of the spool of a new backend on the same
 * directory, in order, each with its own path, query string, Authorization and body, and are
 * acknowledged once delivered; writes read back while an earlier one waits for a retry go behind
 * it. The test thread is the HTTP server: it accepts, reads each request and answers 204. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer/backend.h"
#include "check.h"
#include "util/clock.h"
#include "util/xalloc.h"

/* A listening socket on 127.0.0.1; *port gets its port. */
static int
listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(fd, 8) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Reads one whole request from c into buf (head and Content-Length body), within 10 s.
 * Returns its length, or 0 when the connection ended first. */
static size_t
one_request(int c, char *buf, size_t cap)
{
    size_t n = 0;
    int64_t until = clock_mono_ms() + 10000;
    for (;;) {
        buf[n] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end != NULL) {
            size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
            if (n >= want) {
                return n;
            }
        }
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (clock_mono_ms() > until || poll(&p, 1, 100) < 0 || n + 1 >= cap) {
            return 0;
        }
        ssize_t r = p.revents != 0 ? read(c, buf + n, cap - 1 - n) : 1;
        if (r <= 0) {
            return 0;
        }
        n += p.revents != 0 ? (size_t)r : 0;
    }
}

/* Serves n requests on lfd (reconnections allowed), answering 204; req[i] gets each. */
static int
serve(int lfd, char req[][4096], int n)
{
    int got = 0;
    while (got < n) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) {
            break;
        }
        int c = accept(lfd, NULL, NULL);
        while (got < n && one_request(c, req[got], sizeof(req[got])) > 0) {
            static const char ok[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
            CHECK(write(c, ok, sizeof(ok) - 1) == (ssize_t)(sizeof(ok) - 1));
            got++;
        }
        close(c);
    }
    return got;
}

/* Submits a payload of kind k (nobody waits for it). */
static enum backend_submit
submit(struct backend *b, enum payload_kind k, const char *body, const char *query,
       const char *auth)
{
    char *buf = xstrdup(body);
    struct payload *p = payload_new(k, buf, buf, strlen(buf), k == PAYLOAD_WRITE ? 1 : 0,
                                    xstrdup(query), auth != NULL ? xstrdup(auth) : NULL);
    enum backend_submit st = backend_submit(b, p, NULL, 0);
    payload_unref(p);
    return st;
}

static struct backend *
backend_on(struct conf_http_output *o, const char *dir, char *loc, int port)
{
    snprintf(loc, 64, "http://127.0.0.1:%d/write", port);
    *o = (struct conf_http_output){.name = (char *)(uintptr_t) "b",
                                   .location = loc,
                                   .timeout_ms = 2000,
                                   .max_batch_bytes = 512 * 1024,
                                   .max_delay_ms = 100,
                                   .spool_bytes = 8 << 20,
                                   .spool_max_age_ms = 0,
                                   .spool_sync_ms = 1000};
    struct ir_err err = {0, ""};
    struct backend *b = backend_new("r", o, &err);
    CHECK(b != NULL && backend_spool_open(b, dir, &err) == 0 && backend_start(b, &err) == 0);
    return b;
}

/* Waits up to 10 s for the backend's snapshot to show want writes in memory. */
static bool
wait_queue_writes(struct backend *b, uint64_t want)
{
    struct backend_snapshot s;
    for (int64_t until = clock_mono_ms() + 10000; clock_mono_ms() < until; poll(NULL, 0, 5)) {
        backend_snapshot(b, &s);
        if (s.queue_writes == want) {
            return true;
        }
    }
    return false;
}

/* 3. The backend down (a port bound but not listening: refused), nobody waiting, no buffer:
 * write 1 is left in the spool by a first backend; a second one reads it back alone and fails to
 * send it; write 2 is spooled meanwhile (the sender is in its backoff) and read back behind
 * write 1 (a relay under load once aborted here, putting it ahead); once the port listens both
 * go in one batch, in order. */
static void
test_read_back_behind_read_back(const char *dir)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    int port = ntohs(a.sin_port);
    char loc[64];
    struct conf_http_output o;
    struct backend *b = backend_on(&o, dir, loc, port);
    CHECK_EQ_I64(submit(b, PAYLOAD_WRITE, "m v=1i 1\n", "db=d", NULL), BACKEND_QUEUED);
    backend_stop(b, clock_mono_ms() + 5000);
    backend_free(b);
    b = backend_on(&o, dir, loc, port);
    struct backend_snapshot s;
    backend_snapshot(b, &s);
    for (int64_t until = clock_mono_ms() + 10000;
         atomic_load(&s.stats->retries) == 0 && clock_mono_ms() < until; poll(NULL, 0, 5)) {
    }
    CHECK(atomic_load(&s.stats->retries) >= 1); /* write 1 read back, failed, put back */
    CHECK(wait_queue_writes(b, 1));
    CHECK_EQ_I64(submit(b, PAYLOAD_WRITE, "m v=2i 2\n", "db=d", NULL), BACKEND_QUEUED);
    CHECK(wait_queue_writes(b, 2)); /* write 2 read back (at the retry, after the backoff) */
    CHECK(listen(lfd, 8) == 0);
    static char req[1][4096];
    CHECK_EQ_I64(serve(lfd, req, 1), 1);
    CHECK(strstr(req[0], "\r\n\r\nm v=1i 1\nm v=2i 2\n") != NULL);
    backend_stop(b, clock_mono_ms() + 5000);
    backend_free(b);
    close(lfd);
}

int
main(void)
{
    char dir[] = "/tmp/backend_spool_test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL && backend_global_init() == 0);
    /* 1. Down (a port nobody listens on): every kind is spooled, then the backend stops. */
    int port = 0;
    close(listener(&port));
    char loc[64];
    struct conf_http_output o;
    struct backend *b = backend_on(&o, dir, loc, port);
    CHECK_EQ_I64(submit(b, PAYLOAD_WRITE, "m v=1i 1\n", "db=d", "Basic YTpi"), BACKEND_QUEUED);
    CHECK_EQ_I64(submit(b, PAYLOAD_PROM, "\x01\x02snappy", "db=d", NULL), BACKEND_QUEUED);
    CHECK_EQ_I64(submit(b, PAYLOAD_QUERY, "q=CREATE+DATABASE+x", "", NULL), BACKEND_QUEUED);
    backend_stop(b, clock_mono_ms() + 5000);
    struct backend_snapshot s;
    backend_snapshot(b, &s);
    CHECK(s.spooled && s.spool_writes == 3);
    backend_free(b);
    /* 2. A new backend on the same spool, the server up: the three come out, in order. */
    int lfd = listener(&port);
    b = backend_on(&o, dir, loc, port);
    static char req[3][4096];
    CHECK_EQ_I64(serve(lfd, req, 3), 3);
    CHECK(strncmp(req[0], "POST /write?db=d HTTP/1.1\r\n", 27) == 0);
    CHECK(strstr(req[0], "Authorization: Basic YTpi\r\n") != NULL);
    CHECK(strstr(req[0], "\r\n\r\nm v=1i 1\n") != NULL);
    CHECK(strncmp(req[1], "POST /api/v1/prom/write?db=d HTTP/1.1\r\n", 39) == 0);
    CHECK(strstr(req[1], "Content-Encoding: snappy\r\n") != NULL);
    CHECK(strstr(req[1], "Authorization:") == NULL);
    CHECK(strstr(req[1], "\r\n\r\n\x01\x02snappy") != NULL);
    CHECK(strncmp(req[2], "POST /query", 11) == 0);
    CHECK(strstr(req[2], "\r\n\r\nq=CREATE+DATABASE+x") != NULL);
    for (int i = 0; i < 200; i++) { /* acknowledged after the answer, then counted */
        backend_snapshot(b, &s);
        if (s.spool_writes == 0 && atomic_load(&s.stats->batches_sent) == 3) {
            break;
        }
        poll(NULL, 0, 10);
    }
    CHECK_EQ_I64(s.spool_writes, 0);
    CHECK_EQ_I64(atomic_load(&s.stats->batches_sent), 3);
    backend_stop(b, clock_mono_ms() + 5000);
    backend_free(b);
    close(lfd);
    char dir3[160];
    snprintf(dir3, sizeof(dir3), "%s/3", dir);
    test_read_back_behind_read_back(dir3);
    backend_global_cleanup();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return CHECK_DONE();
}
