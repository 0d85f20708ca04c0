/* Unit test of buffer/post.c against a tiny HTTP server in this process: the URL and headers of
 * each payload kind (write, Prometheus remote write, query), that no environment proxy is used,
 * the per-request timeout and the "sent" mark, a redirect answer, gzip (chunked, inflating to
 * exactly the parts, wire bytes counted) and the output's own credentials. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zlib.h>

#include "buffer/post.h"
#include "check.h"
#include "util/clock.h"

/* The largest request the server keeps (head and body). */
#define SRV_MAX (1 << 20)

/* One listening socket served by one thread, one connection at a time. */
struct srv {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    char *req;          /* guarded by mu: the last request, head and body (SRV_MAX + 1) */
    size_t req_len;     /* guarded by mu */
    int requests;       /* guarded by mu */
    const char *answer; /* immutable while a request runs: the whole response */
    int delay_ms;       /* immutable while a request runs: wait before answering */
};

/* Whether buf[0..n) holds a whole request whose head ends at end: its Content-Length body,
 * or a chunked body up to its last chunk. */
static bool
request_complete(const char *buf, size_t n, const char *end)
{
    size_t head = (size_t)(end + 4 - buf);
    if (strstr(buf, "\r\nTransfer-Encoding: chunked\r\n") != NULL) {
        return n >= head + 5 && memcmp(buf + n - 5, "0\r\n\r\n", 5) == 0;
    }
    const char *cl = strstr(buf, "Content-Length: ");
    size_t body = cl != NULL ? strtoul(cl + 16, NULL, 10) : 0;
    return n >= head + body;
}

/* Reads one request (head + Content-Length or chunked body) into s->req; false at EOF. */
static bool
read_request(struct srv *s, int c)
{
    char *buf = malloc(SRV_MAX + 1);
    size_t n = 0;
    char *end = NULL;
    bool ok = true;
    while (ok && (end == NULL || !request_complete(buf, n, end))) {
        ssize_t r = read(c, buf + n, SRV_MAX - n);
        ok = r > 0;
        n += ok ? (size_t)r : 0;
        buf[n] = '\0';
        end = end != NULL ? end : strstr(buf, "\r\n\r\n");
    }
    if (ok) {
        pthread_mutex_lock(&s->mu);
        memcpy(s->req, buf, n + 1);
        s->req_len = n;
        s->requests++;
        pthread_mutex_unlock(&s->mu);
    }
    free(buf);
    return ok;
}

static void *
srv_main(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            return NULL; /* shut down */
        }
        while (read_request(s, c)) {
            if (s->delay_ms > 0) {
                poll(NULL, 0, s->delay_ms);
            }
            if (write(c, s->answer, strlen(s->answer)) < 0) {
                break;
            }
        }
        close(c);
    }
}

static void
srv_start(struct srv *s, const char *answer)
{
    memset(s, 0, sizeof(*s));
    s->req = calloc(1, SRV_MAX + 1);
    pthread_mutex_init(&s->mu, NULL);
    s->answer = answer;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(bind(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(s->fd, 8) == 0);
    CHECK(getsockname(s->fd, (struct sockaddr *)&a, &len) == 0);
    s->port = ntohs(a.sin_port);
    CHECK(pthread_create(&s->thread, NULL, srv_main, s) == 0);
}

static void
srv_stop(struct srv *s)
{
    shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(s->thread, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s->req);
}

/* Copies the last request (NUL-terminated, binary bytes included; *len gets its length when
 * len is not NULL) and returns how many requests came. */
static int
srv_last_n(struct srv *s, char *out, size_t n, size_t *len)
{
    pthread_mutex_lock(&s->mu);
    size_t k = s->req_len < n - 1 ? s->req_len : n - 1;
    memcpy(out, s->req, k);
    out[k] = '\0';
    int count = s->requests;
    pthread_mutex_unlock(&s->mu);
    if (len != NULL) {
        *len = k;
    }
    return count;
}

static int
srv_last(struct srv *s, char *out, size_t n)
{
    return srv_last_n(s, out, n, NULL);
}

#define ANSWER_204 "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"

/* A post to http://127.0.0.1:<s's port><path>; loc (n bytes) holds the location, which the post
 * borrows. */
static struct post *
new_post(const struct srv *s, const char *path, int64_t timeout_ms, char *loc, size_t n)
{
    snprintf(loc, n, "http://127.0.0.1:%d%s", s->port, path);
    struct post_conf c = {.location = loc, .timeout_ms = timeout_ms};
    struct ir_err err = {0};
    struct post *p = post_new(&c, &err);
    CHECK(p != NULL);
    return p;
}

/* Starts a backend and a "proxy" that must see nothing; purl gets the proxy's URL. */
static void
start_with_proxy(struct srv *s, struct srv *proxy, char *purl, size_t n)
{
    srv_start(s, ANSWER_204);
    srv_start(proxy, ANSWER_204);
    snprintf(purl, n, "http://127.0.0.1:%d", proxy->port);
}

static void
test_url_of(void)
{
    static const struct {
        const char *location;
        enum payload_kind k;
        const char *want;
    } cases[] = {
            {"http://h:8086/write", PAYLOAD_WRITE, "http://h:8086/write"},
            {"http://h:8086/write", PAYLOAD_PROM, "http://h:8086/api/v1/prom/write"},
            {"http://h:8086/write", PAYLOAD_QUERY, "http://h:8086/query"},
            {"https://h/influx/write", PAYLOAD_QUERY, "https://h/influx/query"},
            {"https://h/influx/write", PAYLOAD_PROM, "https://h/influx/api/v1/prom/write"},
            {"http://h:8086", PAYLOAD_QUERY, "http://h:8086/query"},
            {"http://h:8086/", PAYLOAD_QUERY, "http://h:8086/query"},
            {"http://h/write?x=1", PAYLOAD_QUERY, "http://h/query"},
            {"http://h/write?x=1", PAYLOAD_WRITE, "http://h/write?x=1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *u = post_url_of(cases[i].location, cases[i].k);
        CHECK_STREQ(u, cases[i].want);
        free(u);
    }
}

/* Sends body as a payload of kind k to the server; checks the request line and headers. */
static void
check_kind(struct srv *s, struct post *p, enum payload_kind k, const char *line, const char *ctype,
           bool snappy)
{
    const char *body = "body bytes";
    struct post_part part = {.data = body, .len = strlen(body)};
    struct post_request req = {
            .kind = k, .query = "db=a", .auth = "Basic eA==", .parts = &part, .n_parts = 1};
    struct post_result res;
    CHECK(post_write(p, &req, &res) == 0);
    CHECK_EQ_I64(res.status, 204);
    CHECK(res.sent);
    post_result_cleanup(&res);
    char got[8192];
    srv_last(s, got, sizeof(got));
    CHECK(strncmp(got, line, strlen(line)) == 0);
    CHECK(strstr(got, ctype) != NULL);
    CHECK((strstr(got, "\r\nContent-Encoding: snappy\r\n") != NULL) == snappy);
    CHECK(strstr(got, "\r\nAuthorization: Basic eA==\r\n") != NULL);
    CHECK(strstr(got, "\r\nAccept:") == NULL && strstr(got, "\r\nExpect:") == NULL);
    CHECK(strstr(got, "\r\n\r\nbody bytes") != NULL);
}

/* Every kind goes to its own path with its own Content-Type; an environment proxy (which would
 * get every write and its credentials) is never used. */
static void
test_kinds_and_no_proxy(void)
{
    struct srv s;
    struct srv proxy;
    char purl[64];
    start_with_proxy(&s, &proxy, purl, sizeof(purl));
    setenv("http_proxy", purl, 1);
    setenv("HTTPS_PROXY", purl, 1);
    setenv("ALL_PROXY", purl, 1);
    char loc[96];
    struct post *p = new_post(&s, "/influx/write", 5000, loc, sizeof(loc));
    check_kind(&s, p, PAYLOAD_WRITE, "POST /influx/write?db=a HTTP/1.1\r\n",
               "\r\nContent-Type: text/plain; charset=utf-8\r\n", false);
    check_kind(&s, p, PAYLOAD_PROM, "POST /influx/api/v1/prom/write?db=a HTTP/1.1\r\n",
               "\r\nContent-Type: application/x-protobuf\r\n", true);
    check_kind(&s, p, PAYLOAD_QUERY, "POST /influx/query?db=a HTTP/1.1\r\n",
               "\r\nContent-Type: application/x-www-form-urlencoded\r\n", false);
    struct post_result res;
    CHECK(post_ping(p, &res) == 0);
    CHECK_EQ_I64(res.status, 204);
    post_result_cleanup(&res);
    char got[8192];
    CHECK_EQ_I64(srv_last(&s, got, sizeof(got)), 4);
    CHECK(strncmp(got, "GET /influx/ping HTTP/1.1\r\n", 27) == 0);
    CHECK_EQ_I64(srv_last(&proxy, got, sizeof(got)), 0);
    post_free(p);
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    srv_stop(&s);
    srv_stop(&proxy);
}

/* Each proxy variable alone (curl picks http_proxy for http:, ALL_PROXY for any scheme). */
static void
test_each_proxy_variable(void)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"};
    struct srv s;
    struct srv proxy;
    char purl[64];
    start_with_proxy(&s, &proxy, purl, sizeof(purl));
    char loc[96];
    struct post_part part = {.data = "m v=1\n", .len = 6};
    struct post_request req = {.kind = PAYLOAD_WRITE, .parts = &part, .n_parts = 1};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        setenv(vars[i], purl, 1);
        struct post *p = new_post(&s, "/write", 5000, loc, sizeof(loc));
        struct post_result res;
        CHECK(post_write(p, &req, &res) == 0);
        CHECK_EQ_I64(res.status, 204);
        post_result_cleanup(&res);
        post_free(p);
        unsetenv(vars[i]);
    }
    char got[8192];
    CHECK_EQ_I64(srv_last(&s, got, sizeof(got)), 4);
    CHECK_EQ_I64(srv_last(&proxy, got, sizeof(got)), 0);
    srv_stop(&s);
    srv_stop(&proxy);
}

/* A request's own timeout (shorter than the configured one) ends it; the body was handed to the
 * backend, so it is marked sent (it may have been stored). A connection refused is not sent. */
static void
test_timeout_and_sent(void)
{
    struct srv s;
    srv_start(&s, ANSWER_204);
    s.delay_ms = 1500;
    char loc[96];
    struct post *p = new_post(&s, "/write", 10000, loc, sizeof(loc));
    struct post_part part = {.data = "m v=1\n", .len = 6};
    struct post_request req = {
            .kind = PAYLOAD_WRITE, .timeout_ms = 200, .parts = &part, .n_parts = 1};
    struct post_result res;
    int64_t t0 = clock_mono_ms();
    CHECK(post_write(p, &req, &res) == -1);
    CHECK(clock_mono_ms() - t0 < 1200);
    CHECK_EQ_I64(res.status, 0);
    CHECK(res.sent);
    post_result_cleanup(&res);
    post_free(p);
    srv_stop(&s);
    /* Nobody listens there any more. */
    struct post_conf c = {.location = loc, .timeout_ms = 10000};
    struct ir_err err = {0};
    p = post_new(&c, &err);
    CHECK(post_write(p, &req, &res) == -1);
    CHECK(!res.sent);
    post_result_cleanup(&res);
    post_free(p);
}

/* A 3xx is an answer (the relay follows no redirect); the result says where it points. */
static void
test_redirect(void)
{
    struct srv s;
    srv_start(&s, "HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere/write\r\n"
                  "Content-Length: 0\r\n\r\n");
    char loc[96];
    struct post *p = new_post(&s, "/write", 5000, loc, sizeof(loc));
    struct post_part part = {.data = "m v=1\n", .len = 6};
    struct post_request req = {.kind = PAYLOAD_WRITE, .parts = &part, .n_parts = 1};
    struct post_result res;
    CHECK(post_write(p, &req, &res) == 0);
    CHECK_EQ_I64(res.status, 301);
    CHECK_STREQ(res.error, "redirects to http://elsewhere/write");
    post_result_cleanup(&res);
    post_free(p);
    srv_stop(&s);
}

/* Joins the chunks of the chunked body at body[0..n) into out (room n); returns its length,
 * or -1 when the framing is wrong. */
static long
dechunk(const char *body, size_t n, char *out)
{
    size_t o = 0;
    size_t i = 0;
    for (;;) {
        char *e = NULL;
        unsigned long len = strtoul(body + i, &e, 16);
        if (e == body + i || (size_t)(e - body) + 2 > n || memcmp(e, "\r\n", 2) != 0) {
            return -1;
        }
        i = (size_t)(e - body) + 2;
        if (len == 0) {
            return i + 2 == n ? (long)o : -1;
        }
        if (i + len + 2 > n) {
            return -1;
        }
        memcpy(out + o, body + i, len);
        o += len;
        i += len + 2;
    }
}

/* Inflates the gzip stream in[0..n) into out (room max); returns its length, or -1. */
static long
gunzip(const char *in, size_t n, char *out, size_t max)
{
    z_stream z = {0};
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        return -1;
    }
    z.next_in = (const Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)max;
    int rc = inflate(&z, Z_FINISH);
    long len = rc == Z_STREAM_END && z.avail_in == 0 ? (long)z.total_out : -1;
    inflateEnd(&z);
    return len;
}

/* A gzipping output: a batch of several parts (400 KiB of line protocol) goes compressed and
 * chunked, inflates to exactly the parts, and the wire bytes are the compressed ones; a
 * Prometheus body goes as it is. */
static void
test_gzip(void)
{
    struct srv s;
    srv_start(&s, ANSWER_204);
    char loc[96];
    snprintf(loc, sizeof(loc), "http://127.0.0.1:%d/write", s.port);
    struct post_conf c = {.location = loc, .timeout_ms = 5000, .gzip = true};
    struct ir_err err = {0};
    struct post *p = post_new(&c, &err);
    size_t total = 400 * 1024;
    char *lp = malloc(total);
    for (size_t i = 0; i < total; i++) {
        lp[i] = (i % 41 == 40) ? '\n' : (char)('a' + (i * 7 + i / 41) % 26);
    }
    struct post_part parts[3] = {{lp, 1000},
                                 {lp + 1000, 300 * 1024},
                                 {lp + 1000 + 300 * 1024, total - 1000 - 300 * 1024}};
    struct post_request req = {
            .kind = PAYLOAD_WRITE, .query = "db=a", .parts = parts, .n_parts = 3};
    struct post_result res;
    CHECK(post_write(p, &req, &res) == 0);
    CHECK_EQ_I64(res.status, 204);
    CHECK(res.sent);
    char *got = malloc(SRV_MAX + 1);
    size_t len = 0;
    srv_last_n(&s, got, SRV_MAX + 1, &len);
    CHECK(strstr(got, "\r\nContent-Encoding: gzip\r\n") != NULL);
    CHECK(strstr(got, "\r\nTransfer-Encoding: chunked\r\n") != NULL);
    CHECK(strstr(got, "\r\nContent-Length:") == NULL);
    char *head_end = strstr(got, "\r\n\r\n");
    char *body = malloc(SRV_MAX);
    long zlen = dechunk(head_end + 4, len - (size_t)(head_end + 4 - got), body);
    CHECK(zlen > 0 && zlen < (long)total / 4);
    CHECK_EQ_I64(res.wire_bytes, zlen);
    char *plain = malloc(total + 1);
    CHECK_EQ_I64(gunzip(body, (size_t)zlen, plain, total + 1), total);
    CHECK(memcmp(plain, lp, total) == 0);
    post_result_cleanup(&res);
    /* Again on the same handle: the stream starts afresh. */
    CHECK(post_write(p, &req, &res) == 0);
    CHECK_EQ_I64(res.wire_bytes, zlen);
    post_result_cleanup(&res);
    /* Prometheus remote write: snappy already, sent as it is, with its length. */
    req.kind = PAYLOAD_PROM;
    req.n_parts = 1;
    CHECK(post_write(p, &req, &res) == 0);
    CHECK_EQ_I64(res.wire_bytes, 1000);
    post_result_cleanup(&res);
    srv_last_n(&s, got, SRV_MAX + 1, &len);
    CHECK(strstr(got, "Content-Encoding: gzip") == NULL);
    CHECK(strstr(got, "\r\nContent-Length: 1000\r\n") != NULL);
    free(plain);
    free(body);
    free(got);
    free(lp);
    post_free(p);
    srv_stop(&s);
}

/* An output with its own credentials: Basic with them, never the client's Authorization, u or
 * p; the other query parameters kept in order. */
static void
test_credentials(void)
{
    struct srv s;
    srv_start(&s, ANSWER_204);
    char loc[96];
    snprintf(loc, sizeof(loc), "http://127.0.0.1:%d/write", s.port);
    struct post_conf c = {
            .location = loc, .timeout_ms = 5000, .username = "relay", .password = "s3cret"};
    struct ir_err err = {0};
    struct post *p = post_new(&c, &err);
    struct post_part part = {.data = "m v=1\n", .len = 6};
    static const char *const queries[][2] = {
            {"db=a&rp=r&precision=s&u=me&p=mine&consistency=one",
             "db=a&rp=r&precision=s&consistency=one"},
            {"u=me&p=mine&db=a", "db=a"},
            {"db=a&u=me", "db=a"},
            {"db=up&rp=pp", "db=up&rp=pp"},
    };
    char got[8192];
    char want[256];
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        struct post_request req = {.kind = PAYLOAD_WRITE,
                                   .query = queries[i][0],
                                   .auth = "Token me:mine",
                                   .parts = &part,
                                   .n_parts = 1};
        struct post_result res;
        CHECK(post_write(p, &req, &res) == 0);
        post_result_cleanup(&res);
        srv_last(&s, got, sizeof(got));
        snprintf(want, sizeof(want), "POST /write?%s HTTP/1.1\r\n", queries[i][1]);
        CHECK(strncmp(got, want, strlen(want)) == 0);
        CHECK(strstr(got, "\r\nAuthorization: Basic cmVsYXk6czNjcmV0\r\n") != NULL);
        CHECK(strstr(got, "mine") == NULL);
    }
    post_free(p);
    srv_stop(&s);
}

int
main(void)
{
    CHECK(post_global_init() == 0);
    test_url_of();
    test_kinds_and_no_proxy();
    test_each_proxy_variable();
    test_timeout_and_sent();
    test_redirect();
    test_gzip();
    test_credentials();
    post_global_cleanup();
    return CHECK_DONE();
}
