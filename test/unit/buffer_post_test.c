/* Unit test of buffer/post.c against a tiny HTTP server in this process: the URL and headers of
 * each payload kind (write, Prometheus remote write, query), that no environment proxy is used,
 * the per-request timeout and the "sent" mark, and a redirect answer. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer/post.h"
#include "check.h"
#include "util/clock.h"

/* One listening socket served by one thread, one connection at a time. */
struct srv {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    char req[8192];     /* guarded by mu: the last request, head and body */
    size_t req_len;     /* guarded by mu */
    int requests;       /* guarded by mu */
    const char *answer; /* immutable while a request runs: the whole response */
    int delay_ms;       /* immutable while a request runs: wait before answering */
};

/* Reads one request (head + Content-Length body) into s->req; false at EOF. */
static bool
read_request(struct srv *s, int c)
{
    char buf[8192];
    size_t n = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0) {
            return false;
        }
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strstr(buf, "Content-Length: ");
    size_t body = cl != NULL ? strtoul(cl + 16, NULL, 10) : 0;
    size_t want = (size_t)(end + 4 - buf) + body;
    while (n < want && n < sizeof(buf) - 1) {
        ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);
        if (r <= 0) {
            return false;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    pthread_mutex_lock(&s->mu);
    memcpy(s->req, buf, n + 1);
    s->req_len = n;
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    return true;
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
}

/* Copies the last request (NUL-terminated) and returns how many requests came. */
static int
srv_last(struct srv *s, char *out, size_t n)
{
    pthread_mutex_lock(&s->mu);
    snprintf(out, n, "%s", s->req);
    int k = s->requests;
    pthread_mutex_unlock(&s->mu);
    return k;
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

int
main(void)
{
    CHECK(post_global_init() == 0);
    test_url_of();
    test_kinds_and_no_proxy();
    test_each_proxy_variable();
    test_timeout_and_sent();
    test_redirect();
    post_global_cleanup();
    return CHECK_DONE();
}
