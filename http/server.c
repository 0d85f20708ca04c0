/* One libmicrohttpd daemon per HTTP relay, thread per connection: a /write handler blocks on its
 * rendezvous for at most write-timeout, which costs nothing to the other connections.
 *
 * Choices:
 * - The listening socket is created and bound here (then handed to MHD), so a bind failure names
 *   the address and the system's reason.
 * - Idle keep-alive connections are closed after HTTPD_IDLE_TIMEOUT_S (75 s, nginx's default
 *   keepalive_timeout: longer than the usual load balancer idle timeout, so the balancer, not the
 *   relay, closes idle connections). A client stalling mid-body holds one connection slot (out of
 *   max-connections) for that long, and nothing of its body is forwarded.
 * - Every answer except an early 413 (Content-Length above max-body-mb) is sent after the whole
 *   upload has been consumed, so the keep-alive connection stays usable after 4xx answers.
 * - Shutdown: httpd_quiesce() closes the listening socket; httpd_stop() waits (bounded by
 *   write-timeout + 2 s) until the requests being answered are done, then stops MHD. Answers
 *   sent while stopping carry "Connection: close". */
#include "http/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http/h_health.h"
#include "http/h_metrics.h"
#include "http/h_ping.h"
#include "http/h_write.h"
#include "http/reply.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/pem.h"
#include "util/xalloc.h"

#define HTTPD_IDLE_TIMEOUT_S 75u
/* MHD's per-connection buffer: bounds each upload chunk handed to the /write handler. */
#define HTTPD_CONN_MEMORY ((size_t)64 * 1024)

struct httpd {
    /* Immutable after start. */
    const struct conf_http *c;       /* borrowed */
    struct backend **backends;       /* borrowed */
    const struct httpd_world *world; /* borrowed */
    struct h_write_ctx wctx;
    char *tls_cert; /* owned PEM: the certificate chain, or NULL (plain HTTP) */
    char *tls_key;  /* owned PEM: the private key */
    /* Main thread only. */
    struct MHD_Daemon *d;
    int listen_fd;
    /* Shared. */
    struct httpd_stats stats;   /* atomics */
    _Atomic unsigned in_flight; /* atomic: requests being answered */
    _Atomic bool stopping;      /* atomic */
    pthread_mutex_t mu;         /* guards nothing but the wait for in_flight == 0 */
    pthread_cond_t idle;        /* signalled when in_flight drops while stopping */
};

enum route {
    ROUTE_WRITE,
    ROUTE_WRITE_OPTIONS,
    ROUTE_WRITE_BAD_METHOD,
    ROUTE_PING,
    ROUTE_PING_BAD_METHOD,
    ROUTE_METRICS,
    ROUTE_HEALTH,
    ROUTE_GET_ONLY, /* /metrics or /health with another method */
    ROUTE_NOT_FOUND,
};

/* Per-request state, MHD connection thread only: allocated on the first access-handler call,
 * freed in httpd_completed(). */
struct req {
    enum route route;
    enum httpd_endpoint ep;
    struct h_write *w; /* owned, ROUTE_WRITE only */
    int64_t start_ns;
    bool in_flight;
};

static bool
method_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

static enum route
httpd_route(const char *url, const char *m, enum httpd_endpoint *ep)
{
    bool get = method_is(m, "GET") || method_is(m, "HEAD");
    if (strcmp(url, "/write") == 0) {
        *ep = EP_WRITE;
        return method_is(m, "POST")      ? ROUTE_WRITE
               : method_is(m, "OPTIONS") ? ROUTE_WRITE_OPTIONS
                                         : ROUTE_WRITE_BAD_METHOD;
    }
    if (strcmp(url, "/ping") == 0) {
        *ep = EP_PING;
        return get ? ROUTE_PING : ROUTE_PING_BAD_METHOD;
    }
    if (strcmp(url, "/metrics") == 0) {
        *ep = EP_METRICS;
        return get ? ROUTE_METRICS : ROUTE_GET_ONLY;
    }
    if (strcmp(url, "/health") == 0) {
        *ep = EP_HEALTH;
        return get ? ROUTE_HEALTH : ROUTE_GET_ONLY;
    }
    *ep = EP_OTHER;
    return ROUTE_NOT_FOUND;
}

/* InfluxDB 1.7+: any value but "", "0" and "false" asks for the verbose ping. */
static bool
ping_verbose(struct MHD_Connection *c, const char *method)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "verbose");
    return method_is(method, "GET") && v != NULL && v[0] != '\0' && strcmp(v, "0") != 0 &&
           strcmp(v, "false") != 0;
}

static void
httpd_render_metrics(struct httpd *h, struct reply *r)
{
    size_t len = 0;
    char *text = h_metrics_render(h->world, &len);
    if (text == NULL) {
        reply_error(r, 500, "out of memory");
        return;
    }
    reply_body(r, 200, text, len, H_METRICS_CONTENT_TYPE);
}

static void
httpd_render_health(struct httpd *h, struct reply *r)
{
    size_t len = 0;
    int status = 500;
    char *text = h_health_render(h, &status, &len);
    if (text == NULL) {
        reply_error(r, 500, "out of memory");
        return;
    }
    reply_body(r, status, text, len, "application/json");
}

/* The answer to a request whose upload (if any) is complete. */
static void
httpd_dispatch(struct httpd *h, struct MHD_Connection *c, struct req *q, const char *method,
               struct reply *r)
{
    switch (q->route) {
    case ROUTE_WRITE:
        h_write_finish(q->w, r);
        break;
    case ROUTE_WRITE_OPTIONS:
        reply_empty(r, 204);
        r->allow = "POST";
        break;
    case ROUTE_WRITE_BAD_METHOD:
        reply_error(r, 405, "invalid write method");
        r->allow = "POST";
        break;
    case ROUTE_PING:
        h_ping(r, ping_verbose(c, method));
        break;
    case ROUTE_PING_BAD_METHOD:
    case ROUTE_GET_ONLY:
        reply_error(r, 405, "method not allowed");
        r->allow = "GET, HEAD";
        break;
    case ROUTE_METRICS:
        httpd_render_metrics(h, r);
        break;
    case ROUTE_HEALTH:
        httpd_render_health(h, r);
        break;
    case ROUTE_NOT_FOUND:
        reply_error(r, 404, "invalid write endpoint");
        break;
    }
}

/* Queues r, counts it, and records the /write duration. */
static enum MHD_Result
httpd_answer(struct httpd *h, struct MHD_Connection *c, struct req *q, struct reply *r)
{
    int status = r->status;
    r->close = atomic_load(&h->stopping);
    enum MHD_Result ret = reply_queue(c, r);
    if (status >= 0 && status < HTTPD_MAX_CODE) {
        atomic_fetch_add_explicit(&h->stats.requests[q->ep][status], 1, memory_order_relaxed);
    }
    if (q->route == ROUTE_WRITE) {
        /* Wall clock (the only sub-millisecond clock in util/clock.h); a clock step is clamped. */
        int64_t us = (clock_real_ns() - q->start_ns) / 1000;
        histo_observe(&h->stats.request_duration, us > 0 ? (uint64_t)us : 0);
    }
    return ret;
}

static enum MHD_Result
httpd_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
             const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct httpd *h = cls;
    struct req *q = *con_cls;
    if (q == NULL) {
        /* Headers received: route, and refuse at once what must not be read. */
        q = xcalloc(1, sizeof(*q));
        *con_cls = q;
        q->start_ns = clock_real_ns();
        q->route = httpd_route(url, method, &q->ep);
        if (q->route != ROUTE_WRITE) {
            return MHD_YES;
        }
        struct reply now = {0};
        q->w = h_write_new(&h->wctx, c, &now);
        return now.status != 0 ? httpd_answer(h, c, q, &now) : MHD_YES;
    }
    if (*upload_size > 0) {
        if (q->w != NULL) {
            h_write_feed(q->w, upload, *upload_size);
        }
        *upload_size = 0; /* consumed (or discarded) */
        return MHD_YES;
    }
    q->in_flight = true;
    atomic_fetch_add(&h->in_flight, 1);
    struct reply r = {0};
    httpd_dispatch(h, c, q, method, &r);
    return httpd_answer(h, c, q, &r);
}

static void
httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct httpd *h = cls;
    struct req *q = *con_cls;
    if (q == NULL) {
        return;
    }
    *con_cls = NULL;
    h_write_free(q->w);
    bool counted = q->in_flight;
    free(q);
    /* seq_cst pairs with httpd_stop(): either it sees the decrement or we see `stopping`. */
    if (counted && atomic_fetch_sub(&h->in_flight, 1) == 1 && atomic_load(&h->stopping)) {
        pthread_mutex_lock(&h->mu);
        pthread_cond_broadcast(&h->idle);
        pthread_mutex_unlock(&h->mu);
    }
}

/* MHD's own messages (connection limit, TLS handshake failures ...): debug level only. */
static void httpd_mhd_log(void *cls, const char *fmt, va_list ap) IR_PRINTF(2, 0);

static void
httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const struct httpd *h = cls;
    if (!log_enabled(LOG_DEBUG)) {
        return;
    }
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        msg[--n] = '\0';
    }
    log_debug(h->c->name, "libmicrohttpd: %s", msg);
}

struct httpd *
httpd_new(const struct conf_http *c, struct backend **backends, const struct httpd_world *world,
          struct ir_err *err)
{
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->c = c;
    h->backends = backends;
    h->world = world;
    h->listen_fd = -1;
    h->wctx.conf = c;
    h->wctx.backends = backends;
    h->wctx.stats = &h->stats;
    pthread_mutex_init(&h->mu, NULL);
    clock_cond_init(&h->idle);
    struct pem_pair pem = {NULL, NULL};
    struct ir_err pe = {0, ""};
    if (c->ssl_combined_pem != NULL && pem_load_pair(c->ssl_combined_pem, &pem, &pe) != 0) {
        ir_err_set(err, c->pem_line, "[http.%s] ssl-combined-pem: %s", c->name, pe.msg);
        httpd_free(h);
        return NULL;
    }
    h->tls_cert = pem.cert;
    h->tls_key = pem.key;
    return h;
}

/* Hands the bound socket to a new MHD daemon; NULL when MHD refuses. */
static struct MHD_Daemon *
httpd_start_daemon(struct httpd *h)
{
    /* poll(), not MHD's default select(): descriptors above FD_SETSIZE (1024) must work when
     * max-connections is large. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (h->tls_cert != NULL) {
        flags |= MHD_USE_TLS;
    }
    /* The logger comes first so MHD reports option problems through it. */
    struct MHD_OptionItem opts[] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)httpd_mhd_log, h},
            {MHD_OPTION_LISTEN_SOCKET, h->listen_fd, NULL},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)h->c->max_connections, NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_IDLE_TIMEOUT_S, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_CONN_MEMORY, NULL},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)httpd_completed, h},
            {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
            {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
            {MHD_OPTION_END, 0, NULL},
    };
    if (h->tls_cert == NULL) {
        opts[6].option = MHD_OPTION_END; /* plain HTTP: no certificate options */
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, httpd_access, h, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
}

int
httpd_start(struct httpd *h, struct ir_err *err)
{
    char why[128];
    if (h->tls_cert != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        ir_err_set(err, h->c->line, "[http.%s] libmicrohttpd was built without TLS", h->c->name);
        return -1;
    }
    struct hostport_listen_opts lo = {.socktype = SOCK_STREAM, .rcvbuf = 0, .nonblock = true};
    h->listen_fd = hostport_listen(&h->c->bind, &lo, NULL, why, sizeof(why));
    if (h->listen_fd < 0) {
        ir_err_set(err, h->c->line, "[http.%s] cannot listen on %s: %s", h->c->name,
                   h->c->bind_addr, why);
        return -1;
    }
    h->d = httpd_start_daemon(h);
    if (h->d == NULL) {
        close(h->listen_fd);
        h->listen_fd = -1;
        ir_err_set(err, h->c->line, "[http.%s] cannot start the server on %s", h->c->name,
                   h->c->bind_addr);
        return -1;
    }
    h->listen_fd = -1; /* MHD owns it now */
    log_go(LOG_INFO, h->c->name, NULL, "Starting %s relay \"%s\" on %s",
           h->tls_cert ? "HTTPS" : "HTTP", h->c->name, h->c->bind_addr);
    return 0;
}

void
httpd_quiesce(struct httpd *h)
{
    if (h->d == NULL) {
        return;
    }
    /* The listening socket comes back to us: closing it refuses new connections at once. */
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
    atomic_store(&h->stopping, true);
}

void
httpd_stop(struct httpd *h)
{
    if (h->d == NULL) {
        return;
    }
    atomic_store(&h->stopping, true);
    /* Answers in progress finish (each is bounded by write-timeout) before MHD closes sockets. */
    int64_t deadline = clock_mono_ms() + h->c->write_timeout_ms + 2000;
    struct timespec ts;
    clock_mono_to_ts(&ts, deadline);
    pthread_mutex_lock(&h->mu);
    while (atomic_load(&h->in_flight) > 0) {
        if (pthread_cond_timedwait(&h->idle, &h->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    unsigned left = atomic_load(&h->in_flight);
    if (left > 0) {
        log_warn(h->c->name, "shutdown: closing connections with requests in flight count=%u",
                 left);
    }
    MHD_stop_daemon(h->d);
    h->d = NULL;
}

void
httpd_free(struct httpd *h)
{
    if (h == NULL) {
        return;
    }
    if (h->d != NULL) {
        MHD_stop_daemon(h->d);
    } else if (h->listen_fd >= 0) {
        close(h->listen_fd);
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}

const char *
httpd_name(const struct httpd *h)
{
    return h->c->name;
}

size_t
httpd_backends(const struct httpd *h, struct backend *const **out)
{
    *out = h->backends;
    return h->c->n_outputs;
}

const struct httpd_stats *
httpd_stats(const struct httpd *h)
{
    return &h->stats;
}

const struct conf_http *
httpd_conf(const struct httpd *h)
{
    return h->c;
}

const struct httpd_world *
httpd_world_of(const struct httpd *h)
{
    return h->world;
}
