/* buffer/fetch.c against a tiny HTTP/1.1 server run by this test (one thread per connection,
 * keep-alive): fixed, chunked, echoed, 1xx-then-200, silent, stalling and 100 MB answers.
 * Checks byte-exact streaming, the headers passed both ways, that a body read slowly (or not at
 * all) keeps at most the bound buffered while the server is held back, aborts mid-stream (the
 * server sees the connection close), many concurrent fetches over 4 consumer threads, idle and
 * connect failures, release from inside notify, and stop with fetches running. Every wait is
 * bounded and driven by notify or a server event. Run it under ASan and TSan too. */
#define _DEFAULT_SOURCE /* MSG_NOSIGNAL, MSG_DONTWAIT */

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer/fetch.h"
#include "buffer/post.h"
#include "check.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define WAIT_MS     20000
#define MAX_THREADS 1024

/* ------------------------------------------------------------------ the server */

struct server {
    int fd;
    int port;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t conns[MAX_THREADS]; /* guarded by mu */
    int n_conns;                  /* guarded by mu */
    int closed_by_peer;           /* guarded by mu: stall/huge connections the client closed */
    int huge_blocked;             /* guarded by mu: a huge send waited 200 ms for room */
    uint64_t huge_sent;           /* guarded by mu: bytes of the last huge answer sent so far */
};

static struct server srv;

static char
pat(uint64_t i)
{
    return (char)('0' + (i * 7 + i / 4099) % 75);
}

static int
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void
server_event(int *counter)
{
    pthread_mutex_lock(&srv.mu);
    (*counter)++;
    pthread_cond_broadcast(&srv.cv);
    pthread_mutex_unlock(&srv.mu);
}

/* Waits until *counter >= want (bounded); returns whether it got there. */
static bool
server_wait(const int *counter, int want)
{
    struct timespec ts;
    clock_deadline(&ts, WAIT_MS);
    bool ok = true;
    pthread_mutex_lock(&srv.mu);
    while (*counter < want && ok) {
        ok = pthread_cond_timedwait(&srv.cv, &srv.mu, &ts) == 0;
    }
    ok = *counter >= want;
    pthread_mutex_unlock(&srv.mu);
    return ok;
}

/* Blocks until the client closes the connection. */
static void
wait_close(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    server_event(&srv.closed_by_peer);
}

static uint64_t
query_num(const char *path, const char *key, uint64_t dflt)
{
    const char *p = strstr(path, key);
    return p != NULL ? strtoull(p + strlen(key), NULL, 10) : dflt;
}

static void
reply_fixed(int fd, uint64_t n)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Test:  yes \r\n"
                      "Content-Length: %llu\r\n\r\n",
                      (unsigned long long)n);
    char *body = xmalloc(n + 1);
    for (uint64_t i = 0; i < n; i++) {
        body[i] = pat(i);
    }
    (void)(send_all(fd, head, (size_t)hl) == 0 && send_all(fd, body, n) == 0);
    free(body);
}

static void
reply_chunked(int fd, uint64_t n, uint64_t piece)
{
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    if (send_all(fd, head, strlen(head)) != 0) {
        return;
    }
    char buf[70000];
    for (uint64_t off = 0; off < n; off += piece) {
        uint64_t k = n - off < piece ? n - off : piece;
        int hl = snprintf(buf, sizeof(buf), "%llx\r\n", (unsigned long long)k);
        for (uint64_t i = 0; i < k; i++) {
            buf[hl + (int)i] = pat(off + i);
        }
        memcpy(buf + hl + k, "\r\n", 2);
        if (send_all(fd, buf, (size_t)hl + k + 2) != 0) {
            return;
        }
    }
    (void)send_all(fd, "0\r\n\r\n", 5);
}

/* 100 MB (or ?mb=N) with a Content-Length, through a small send buffer; notes when a send had to
 * wait for room (the client holds it back) and when the client went away. */
static void
reply_huge(int fd, uint64_t mb)
{
    uint64_t n = mb * 1024 * 1024;
    int sndbuf = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    char head[128];
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                      (unsigned long long)n);
    pthread_mutex_lock(&srv.mu);
    srv.huge_sent = 0;
    pthread_mutex_unlock(&srv.mu);
    if (send_all(fd, head, (size_t)hl) != 0) {
        return;
    }
    char buf[16384];
    bool noted = false;
    for (uint64_t off = 0; off < n;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 200) == 0 && !noted) {
            noted = true;
            server_event(&srv.huge_blocked);
            continue;
        }
        size_t k = n - off < sizeof(buf) ? (size_t)(n - off) : sizeof(buf);
        for (size_t i = 0; i < k; i++) {
            buf[i] = pat(off + i);
        }
        ssize_t w = send(fd, buf, k, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (p.revents & (POLLERR | POLLHUP)) != 0) {
            server_event(&srv.closed_by_peer);
            return;
        }
        off += w > 0 ? (uint64_t)w : 0;
        pthread_mutex_lock(&srv.mu);
        srv.huge_sent = off;
        pthread_mutex_unlock(&srv.mu);
    }
}

/* The request head and body, echoed as the answer body. */
static void
reply_echo(int fd, const char *req, size_t n)
{
    char head[128];
    int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    (void)(send_all(fd, head, (size_t)hl) == 0 && send_all(fd, req, n) == 0);
}

/* Serves one request; returns false when the connection is over. */
static bool
serve_one(int fd, char *req, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while ((end = len > 0 ? strstr(req, "\r\n\r\n") : NULL) == NULL) {
        ssize_t r = len + 1 < cap ? recv(fd, req + len, cap - 1 - len, 0) : -1;
        if (r <= 0) {
            return false;
        }
        len += (size_t)r;
        req[len] = '\0';
    }
    size_t head_len = (size_t)(end + 4 - req);
    const char *cl = strstr(req, "\r\nContent-Length:") /* as curl spells it */;
    size_t body = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    while (len < head_len + body && len + 1 < cap) {
        ssize_t r = recv(fd, req + len, cap - 1 - len, 0);
        if (r <= 0) {
            return false;
        }
        len += (size_t)r;
    }
    req[len] = '\0';
    char path[512] = "";
    sscanf(req, "%*s %511s", path);
    if (strncmp(path, "/fixed", 6) == 0) {
        reply_fixed(fd, query_num(path, "n=", 1000));
    } else if (strncmp(path, "/chunked", 8) == 0) {
        reply_chunked(fd, query_num(path, "n=", 1000), query_num(path, "piece=", 100));
    } else if (strncmp(path, "/echo", 5) == 0) {
        reply_echo(fd, req, head_len + body);
    } else if (strncmp(path, "/status", 7) == 0) {
        const char *a = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                        "Content-Length: 23\r\n\r\n{\"error\":\"not found\"}\r\n";
        (void)send_all(fd, a, strlen(a));
    } else if (strncmp(path, "/continue", 9) == 0) {
        const char *a = "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\nHTTP/1.1 200 OK\r\n"
                        "Content-Length: 2\r\nX-Late: 2\r\n\r\nok";
        (void)send_all(fd, a, strlen(a));
    } else if (strncmp(path, "/stall", 6) == 0) {
        uint64_t n = query_num(path, "n=", 1000);
        char head[128];
        int hl = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                          (unsigned long long)(2 * n));
        char *b = xmalloc(n + 1);
        for (uint64_t i = 0; i < n; i++) {
            b[i] = pat(i);
        }
        (void)(send_all(fd, head, (size_t)hl) == 0 && send_all(fd, b, n) == 0);
        free(b);
        wait_close(fd);
        return false;
    } else if (strncmp(path, "/silent", 7) == 0) {
        wait_close(fd);
        return false;
    } else if (strncmp(path, "/huge", 5) == 0) {
        reply_huge(fd, query_num(path, "mb=", 100));
    }
    return true;
}

static void *
conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    size_t cap = 256 * 1024;
    char *req = xmalloc(cap);
    while (serve_one(fd, req, cap)) {
    }
    free(req);
    close(fd);
    return NULL;
}

static void *
accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        pthread_mutex_lock(&srv.mu);
        if (srv.n_conns < MAX_THREADS) {
            pthread_create(&srv.conns[srv.n_conns++], NULL, conn_main, (void *)(intptr_t)c);
        } else {
            close(c);
        }
        pthread_mutex_unlock(&srv.mu);
    }
}

static void
server_start(void)
{
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int one = 1;
    setsockopt(srv.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(srv.fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv.fd, 512) != 0 ||
        getsockname(srv.fd, (struct sockaddr *)&a, &al) != 0) {
        perror("server");
        exit(2);
    }
    srv.port = ntohs(a.sin_port);
    pthread_mutex_init(&srv.mu, NULL);
    clock_cond_init(&srv.cv);
    pthread_create(&srv.accept_thread, NULL, accept_main, NULL);
}

/* After the fetcher is freed (its connections are closed): every server thread ends. */
static void
server_stop(void)
{
    shutdown(srv.fd, SHUT_RDWR);
    pthread_join(srv.accept_thread, NULL);
    close(srv.fd);
    for (int i = 0; i < srv.n_conns; i++) {
        pthread_join(srv.conns[i], NULL);
    }
}

/* ------------------------------------------------------------------ the consumer side */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;    /* notifications not yet waited for */
    int duplicates; /* a notify while one was pending: never expected for one fetch */
    int total;      /* notifications */
};

static void
waiter_init(struct waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    clock_cond_init(&w->cv);
    w->pending = 0;
    w->duplicates = 0;
    w->total = 0;
}

static void
waiter_cleanup(struct waiter *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static void
on_notify(void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->duplicates += w->pending > 0 ? 1 : 0;
    w->pending++;
    w->total++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits for one notification; false at the bound. */
static bool
waiter_wait(struct waiter *w)
{
    struct timespec ts;
    clock_deadline(&ts, WAIT_MS);
    pthread_mutex_lock(&w->mu);
    while (w->pending == 0) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) {
            break;
        }
    }
    bool ok = w->pending > 0;
    w->pending -= ok ? 1 : 0;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static char url_buf[256];

static const char *
url(const char *path)
{
    snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", srv.port, path);
    return url_buf;
}

static struct fetch *
start_get(struct fetcher *fr, const char *path, struct waiter *w)
{
    struct fetch_request req = {.url = url(path), .notify = on_notify, .notify_arg = w};
    return fetch_start(fr, &req);
}

/* Waits for the head: FETCH_OK or FETCH_ERROR. */
static enum fetch_status
get_head(struct fetch *f, struct waiter *w, struct fetch_head *h)
{
    enum fetch_status st;
    while ((st = fetch_head(f, h)) == FETCH_AGAIN) {
        if (!waiter_wait(w)) {
            fprintf(stderr, "no notify for the head\n");
            return FETCH_ERROR;
        }
    }
    return st;
}

/* Reads the body (step bytes at a time), checking each byte against pat() from 0 when check,
 * and that the buffered bytes never pass bound. Returns the final status; *got the bytes. */
static enum fetch_status
read_body(struct fetch *f, struct waiter *w, size_t step, bool check, size_t bound, uint64_t *got)
{
    char *buf = xmalloc(step);
    uint64_t off = 0;
    enum fetch_status st;
    size_t n = 0;
    bool same = true;
    while ((st = fetch_read(f, buf, step, &n)) != FETCH_END && st != FETCH_ERROR) {
        if (st == FETCH_AGAIN) {
            if (!waiter_wait(w)) {
                fprintf(stderr, "no notify for the body at %llu\n", (unsigned long long)off);
                st = FETCH_ERROR;
                break;
            }
            continue;
        }
        for (size_t i = 0; check && i < n; i++) {
            same = same && buf[i] == pat(off + i);
        }
        off += n;
        if (bound > 0 && fetch_buffered(f) > bound) {
            fprintf(stderr, "buffered %zu > %zu\n", fetch_buffered(f), bound);
            same = false;
        }
    }
    free(buf);
    CHECK(same);
    *got = off;
    return st;
}

static const char *
header(const struct fetch_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++) {
        if (strcasecmp(h->headers[i].name, name) == 0) {
            return h->headers[i].value;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ tests */

static void
test_fixed_and_chunked(struct fetcher *fr)
{
    static const char *paths[] = {"/fixed?n=1000", "/fixed?n=1048576", "/fixed?n=0",
                                  "/chunked?n=300000&piece=1000", "/chunked?n=70000&piece=1"};
    static const uint64_t sizes[] = {1000, 1048576, 0, 300000, 70000};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct waiter w;
        waiter_init(&w);
        struct fetch *f = start_get(fr, paths[i], &w);
        struct fetch_head h;
        CHECK_EQ_I64(get_head(f, &w, &h), FETCH_OK);
        CHECK_EQ_I64(h.status, 200);
        bool chunked = strncmp(paths[i], "/chunked", 8) == 0;
        CHECK_EQ_I64(h.content_length, chunked ? -1 : (int64_t)sizes[i]);
        CHECK_STREQ(header(&h, "Content-Type"), "application/json");
        CHECK(header(&h, "Content-Length") == NULL);
        CHECK(header(&h, "Transfer-Encoding") == NULL);
        if (!chunked) {
            CHECK_STREQ(header(&h, "X-Test"), "yes");
        }
        uint64_t got = 0;
        CHECK_EQ_I64(read_body(f, &w, 7000, true, FETCH_BUFFER_DEFAULT, &got), FETCH_END);
        CHECK_EQ_I64(got, sizes[i]);
        CHECK_STREQ(fetch_error(f), "");
        CHECK_EQ_I64(w.duplicates, 0);
        fetch_release(f);
        waiter_cleanup(&w);
    }
}

/* Reads the whole body into a NUL-terminated string. */
static char *
read_text(struct fetch *f, struct waiter *w, struct fetch_head *h)
{
    CHECK_EQ_I64(get_head(f, w, h), FETCH_OK);
    size_t cap = 65536;
    char *s = xcalloc(1, cap + 1);
    size_t len = 0;
    size_t n = 0;
    enum fetch_status st;
    while ((st = fetch_read(f, s + len, cap - len, &n)) != FETCH_END && st != FETCH_ERROR) {
        if (st == FETCH_AGAIN && !waiter_wait(w)) {
            break;
        }
        len += st == FETCH_OK ? n : 0;
    }
    CHECK_EQ_I64(st, FETCH_END);
    return s;
}

static void
test_request_shape(struct fetcher *fr)
{
    struct waiter w;
    waiter_init(&w);
    static const char form[] = "q=SHOW+DATABASES&db=x";
    struct fetch_request req = {
            .url = url("/echo?db=x&u=a"),
            .body = form,
            .body_len = sizeof(form) - 1,
            .ctype = "application/x-www-form-urlencoded",
            .auth = "Basic dTpw",
            .accept = "application/csv",
            .encoding = "gzip",
            .notify = on_notify,
            .notify_arg = &w,
    };
    struct fetch *f = fetch_start(fr, &req);
    struct fetch_head h;
    char *echo = read_text(f, &w, &h);
    CHECK(strncmp(echo, "POST /echo?db=x&u=a HTTP/1.1\r\n", 30) == 0);
    CHECK(strstr(echo, "\r\nAuthorization: Basic dTpw\r\n") != NULL);
    CHECK(strstr(echo, "\r\nContent-Type: application/x-www-form-urlencoded\r\n") != NULL);
    CHECK(strstr(echo, "\r\nAccept: application/csv\r\n") != NULL);
    CHECK(strstr(echo, "\r\nAccept-Encoding: gzip\r\n") != NULL);
    CHECK(strstr(echo, "Expect") == NULL);
    CHECK(strstr(echo, "\r\nContent-Length: 21\r\n") != NULL);
    size_t el = strlen(echo);
    CHECK(el > sizeof(form) && strcmp(echo + el - (sizeof(form) - 1), form) == 0);
    free(echo);
    fetch_release(f);

    /* A GET carries none of them, not even curl's default Accept. */
    f = start_get(fr, "/echo?q=SHOW", &w);
    echo = read_text(f, &w, &h);
    CHECK(strncmp(echo, "GET /echo?q=SHOW HTTP/1.1\r\n", 27) == 0);
    CHECK(strstr(echo, "Accept") == NULL);
    CHECK(strstr(echo, "Authorization") == NULL);
    CHECK(strstr(echo, "Content-Type") == NULL);
    free(echo);
    fetch_release(f);

    /* A status other than 200 and a 1xx before the answer. */
    f = start_get(fr, "/status", &w);
    echo = read_text(f, &w, &h);
    CHECK_EQ_I64(h.status, 404);
    CHECK_STREQ(echo, "{\"error\":\"not found\"}\r\n");
    free(echo);
    fetch_release(f);
    f = start_get(fr, "/continue", &w);
    echo = read_text(f, &w, &h);
    CHECK_EQ_I64(h.status, 200);
    CHECK(header(&h, "X-Early") == NULL);
    CHECK_STREQ(header(&h, "X-Late"), "2");
    CHECK_STREQ(echo, "ok");
    free(echo);
    fetch_release(f);
    CHECK_EQ_I64(w.duplicates, 0);
    waiter_cleanup(&w);
}

static void
test_failures(struct fetcher *fr)
{
    struct waiter w;
    waiter_init(&w);
    /* Connection refused: a port nobody listens on. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", ntohs(a.sin_port));
    struct fetch_request req = {.url = u, .notify = on_notify, .notify_arg = &w};
    struct fetch *f = fetch_start(fr, &req);
    struct fetch_head h;
    CHECK_EQ_I64(get_head(f, &w, &h), FETCH_ERROR);
    CHECK(strlen(fetch_error(f)) > 0);
    fprintf(stderr, "refused: %s\n", fetch_error(f));
    fetch_release(f);

    /* Idle before the head, and mid-body. */
    int closed = srv.closed_by_peer;
    req.url = url("/silent");
    req.idle_timeout_ms = 300;
    int64_t t0 = clock_mono_ms();
    f = fetch_start(fr, &req);
    CHECK_EQ_I64(get_head(f, &w, &h), FETCH_ERROR);
    CHECK(strstr(fetch_error(f), "timeout") != NULL);
    CHECK(clock_mono_ms() - t0 >= 290);
    fetch_release(f);
    req.url = url("/stall?n=5000");
    f = fetch_start(fr, &req);
    CHECK_EQ_I64(get_head(f, &w, &h), FETCH_OK);
    uint64_t got = 0;
    CHECK_EQ_I64(read_body(f, &w, 1000, true, 0, &got), FETCH_ERROR);
    CHECK_EQ_I64(got, 5000); /* every byte that came, then the failure */
    CHECK(strstr(fetch_error(f), "timeout") != NULL);
    fetch_release(f);
    CHECK(server_wait(&srv.closed_by_peer, closed + 2)); /* both connections were closed */
    CHECK_EQ_I64(w.duplicates, 0);
    waiter_cleanup(&w);
}

struct self_release {
    struct fetch *f;
    struct waiter w;
};

static void
release_in_notify(void *arg)
{
    struct self_release *s = arg;
    fetch_release(s->f);
    on_notify(&s->w);
}

static void
test_abort(struct fetcher *fr)
{
    struct waiter w;
    waiter_init(&w);
    /* Mid-stream: 1 MB read of 100 MB, then given up: the server sees the close. */
    int closed = srv.closed_by_peer;
    struct fetch *f = start_get(fr, "/huge?mb=100", &w);
    struct fetch_head h;
    CHECK_EQ_I64(get_head(f, &w, &h), FETCH_OK);
    CHECK_EQ_I64(h.content_length, 100LL * 1024 * 1024);
    char buf[16384];
    uint64_t off = 0;
    size_t n = 0;
    while (off < 1024 * 1024) {
        enum fetch_status st = fetch_read(f, buf, sizeof(buf), &n);
        if (st == FETCH_AGAIN && !waiter_wait(&w)) {
            break;
        }
        off += st == FETCH_OK ? n : 0;
    }
    fetch_release(f);
    CHECK(server_wait(&srv.closed_by_peer, closed + 1));

    /* Before the head: at once, and from inside notify. */
    f = start_get(fr, "/silent", &w);
    fetch_release(f);
    struct self_release s;
    waiter_init(&s.w);
    struct fetch_request req = {
            .url = url("/fixed?n=100"), .notify = release_in_notify, .notify_arg = &s};
    s.f = fetch_start(fr, &req);
    CHECK_EQ_I64(fetch_head(s.f, &h), FETCH_AGAIN);
    CHECK(waiter_wait(&s.w)); /* notify ran, released the fetch and returned */
    waiter_cleanup(&s.w);
    waiter_cleanup(&w);
}

/* ASan keeps freed blocks in a quarantine (256 MB by default) and curl allocates and frees a
 * block at each pause: the RSS check would measure the quarantine, not the engine. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
    return "quarantine_size_mb=4";
}

static long
rss_kb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (fp != NULL) {
        fclose(fp);
    }
    return kb;
}

/* 100 MB read slowly: not at all until the server is held back, then 4 KiB at a time. */
static void
test_backpressure(struct fetcher *fr)
{
    struct waiter w;
    waiter_init(&w);
    long rss0 = rss_kb();
    int blocked = srv.huge_blocked;
    struct fetch *f = start_get(fr, "/huge?mb=100", &w);
    struct fetch_head h;
    CHECK_EQ_I64(get_head(f, &w, &h), FETCH_OK);
    CHECK(server_wait(&srv.huge_blocked, blocked + 1));
    pthread_mutex_lock(&srv.mu);
    uint64_t sent = srv.huge_sent;
    pthread_mutex_unlock(&srv.mu);
    /* Held back: the buffer's 64 KiB plus curl's and the kernel's socket buffers. */
    fprintf(stderr, "backpressure: server sent %llu bytes before blocking, %zu buffered\n",
            (unsigned long long)sent, fetch_buffered(f));
    CHECK(sent < 16ULL * 1024 * 1024);
    CHECK(fetch_buffered(f) <= FETCH_BUFFER_DEFAULT);
    uint64_t got = 0;
    CHECK_EQ_I64(read_body(f, &w, 4096, true, FETCH_BUFFER_DEFAULT, &got), FETCH_END);
    CHECK_EQ_I64(got, 100ULL * 1024 * 1024);
    long grown = rss_kb() - rss0;
    fprintf(stderr, "backpressure: RSS grew %ld KiB over the 100 MB stream\n", grown);
    CHECK(grown < 48 * 1024);
    CHECK_EQ_I64(w.duplicates, 0);
    fetch_release(f);
    waiter_cleanup(&w);
}

#define CONSUMERS 4
#define PER       50

struct consumer {
    struct fetcher *fr;
    int ok;
};

/* One consumer thread: PER fetches at once, read round-robin, waiting on notify only when every
 * one of them said FETCH_AGAIN. */
static void *
consumer_main(void *arg)
{
    struct consumer *c = arg;
    struct waiter w;
    waiter_init(&w);
    struct fetch *f[PER];
    uint64_t want[PER];
    uint64_t off[PER] = {0};
    int state[PER] = {0}; /* 0 head, 1 body, 2 done */
    char path[64];
    for (int i = 0; i < PER; i++) {
        want[i] = (uint64_t)(i * 997 % 200000);
        snprintf(path, sizeof(path), i % 2 ? "/fixed?n=%llu" : "/chunked?n=%llu&piece=4000",
                 (unsigned long long)want[i]);
        char u[128];
        snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", srv.port, path);
        struct fetch_request req = {.url = u, .notify = on_notify, .notify_arg = &w};
        f[i] = fetch_start(c->fr, &req);
    }
    int left = PER;
    int agains = 0;
    char buf[8192];
    while (left > 0) {
        int again = 0;
        for (int i = 0; i < PER; i++) {
            struct fetch_head h;
            size_t n = 0;
            enum fetch_status st = state[i] == 2   ? FETCH_END
                                   : state[i] == 0 ? fetch_head(f[i], &h)
                                                   : fetch_read(f[i], buf, sizeof(buf), &n);
            if (state[i] == 2) {
                continue;
            }
            if (st == FETCH_AGAIN) {
                again++;
                agains++;
            } else if (st == FETCH_ERROR || (state[i] == 1 && st == FETCH_END)) {
                c->ok += st == FETCH_END && off[i] == want[i];
                state[i] = 2;
                left--;
            } else if (state[i] == 0) {
                state[i] = 1;
            } else {
                for (size_t k = 0; k < n; k++) {
                    c->ok -= buf[k] != pat(off[i] + k) ? 1000 : 0;
                }
                off[i] += n;
            }
        }
        if (again == left && left > 0 && !waiter_wait(&w)) {
            break;
        }
    }
    for (int i = 0; i < PER; i++) {
        fetch_release(f[i]);
    }
    c->ok -= w.total > agains ? 1000 : 0; /* at most one notify per FETCH_AGAIN */
    waiter_cleanup(&w);
    return NULL;
}

static void
test_many(struct fetcher *fr)
{
    pthread_t t[CONSUMERS];
    struct consumer c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        c[i] = (struct consumer){.fr = fr};
        pthread_create(&t[i], NULL, consumer_main, &c[i]);
    }
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_I64(c[i].ok, PER);
    }
}

/* Stop with a fetch mid-body and one waiting for its head: both fail, later fetches fail at
 * once. */
static void
test_stop(void)
{
    struct ir_err err;
    struct fetcher *fr = fetcher_new(&err);
    CHECK(fr != NULL && fetcher_start(fr, &err) == 0);
    struct waiter w;
    waiter_init(&w);
    struct waiter wb;
    waiter_init(&wb);
    struct fetch *a = start_get(fr, "/stall?n=100", &w);
    struct fetch_head h;
    CHECK_EQ_I64(get_head(a, &w, &h), FETCH_OK);
    char buf[200];
    size_t got = 0;
    while (got < 100) { /* the 100 bytes the server sends before it stalls */
        size_t n = 0;
        enum fetch_status st = fetch_read(a, buf + got, sizeof(buf) - got, &n);
        if (st == FETCH_AGAIN && !waiter_wait(&w)) {
            break;
        }
        got += st == FETCH_OK ? n : 0;
    }
    CHECK_EQ_I64(got, 100);
    struct fetch *b = start_get(fr, "/silent", &wb);
    CHECK_EQ_I64(fetch_head(b, &h), FETCH_AGAIN);
    CHECK_EQ_I64(fetch_read(a, buf, sizeof(buf), &got), FETCH_AGAIN);
    fetcher_stop(fr);
    CHECK(waiter_wait(&w) && waiter_wait(&wb)); /* each owed one notify */
    CHECK_EQ_I64(fetch_head(b, &h), FETCH_ERROR);
    CHECK_STREQ(fetch_error(b), "relay shutting down");
    CHECK_EQ_I64(fetch_read(a, buf, sizeof(buf), &got), FETCH_ERROR);
    CHECK_STREQ(fetch_error(a), "relay shutting down");
    struct fetch *c = start_get(fr, "/fixed", &w);
    CHECK_EQ_I64(fetch_head(c, &h), FETCH_ERROR);
    CHECK_EQ_I64(fetcher_active(fr), 0);
    fetch_release(a);
    fetch_release(b);
    fetch_release(c);
    fetcher_free(fr);
    waiter_cleanup(&w);
    waiter_cleanup(&wb);
}

int
main(void)
{
    if (post_global_init() != 0) {
        return 2;
    }
    server_start();
    struct ir_err err;
    struct fetcher *fr = fetcher_new(&err);
    CHECK(fr != NULL && fetcher_start(fr, &err) == 0);
    test_fixed_and_chunked(fr);
    test_request_shape(fr);
    test_failures(fr);
    test_abort(fr);
    test_backpressure(fr);
    test_many(fr);
    fetcher_stop(fr);
    fetcher_free(fr);
    test_stop();
    server_stop();
    post_global_cleanup();
    return CHECK_DONE();
}
