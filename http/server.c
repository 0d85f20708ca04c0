/* One libmicrohttpd daemon per HTTP relay: `workers` threads, each with its own epoll set and its
 * share of the connections; no thread per connection or per request.
 *
 * A /write waiting for its backends suspends its connection (MHD_suspend_connection()), so the
 * worker serves other connections meanwhile; the rendezvous wakes it: whoever reaches the
 * verdict (a sender reporting, the deadline timer at write-timeout) calls httpd_wake(), which
 * resumes the connection, and libmicrohttpd calls the access handler again on its worker, which
 * sends the answer. One worker wake-up serves every connection resumed meanwhile. A /query
 * parks its connection the same way (httpd_park(), then httpd_wake() once per park) while a
 * change waits for its verdict, or a read for its backend's head or next bytes (then it is the
 * response's content reader that parks, and libmicrohttpd calls it again after the wake).
 *
 * Suspend and resume, as libmicrohttpd 0.9.75 implements them (src/microhttpd/daemon.c,
 * internal_suspend_connection_(), MHD_resume_connection(), resume_suspended_connections()):
 * suspending must happen on the worker that owns the connection (the access handler is), and it
 * moves the connection to the suspended list at once, under the daemon's cleanup mutex. Resuming
 * may come from any thread: it only marks the connection "resuming" under that mutex and signals
 * the worker's inter-thread channel; the worker moves it back on its next loop and calls the
 * access handler again (state FULL_REQ_RECEIVED: the "final" call, repeated until a response is
 * queued). Resuming a connection that is not suspended is undefined (in that code, a later
 * suspend would then be cancelled and the resume lost). So the order here is: suspend first, then
 * register the wake-up with the rendezvous (rdv_notify()); a verdict reached before the
 * registration makes rdv_notify() return false and the handler resumes the connection itself.
 * Every resume therefore follows its suspend, and exactly one resume is called per suspend.
 * MHD_stop_daemon() aborts the process when a connection is still suspended and not resumed:
 * httpd_stop() first answers every waiting write (the timer lane of write deadlines is flushed)
 * and waits until each has been resumed (h->waiting == 0).
 *
 * Choices:
 * - The listening socket is created and bound here (then handed to MHD), so a bind failure names
 *   the address and the system's reason.
 * - Connections: see http/conn.c (max-connections counted by the accept policy callback, the
 *   read-timeout enforced from the timer thread). idle-timeout is libmicrohttpd's inactivity
 *   timeout (whole seconds, rounded up): a keep-alive connection with no byte for that long is
 *   closed. A suspended connection has no timeout (write-timeout bounds it).
 * - Every answer except an early one (413 for a Content-Length above max-body-mb, or 503 for one
 *   above what max-inflight-mb has left, when the client waits for "100 Continue") is sent after
 *   the whole upload has been consumed, so the keep-alive connection stays usable after 4xx.
 * - Shutdown: httpd_quiesce() closes the listening socket; httpd_stop() stops forwarding writes
 *   (a write whose upload ends from then on gets 503 and is not forwarded: it could not be
 *   answered), waits until the requests being answered are done or the shutdown deadline, then
 *   answers the writes still waiting, then stops MHD. Answers sent while stopping carry
 *   "Connection: close". */
#include "http/server.h"

#include <errno.h>
#include <limits.h>
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

#include "http/answer.h"
#include "http/conn.h"
#include "http/h_health.h"
#include "http/h_metrics.h"
#include "http/h_ping.h"
#include "http/h_query.h"
#include "http/h_write.h"
#include "http/reply.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/pem.h"
#include "util/xalloc.h"

/* MHD's per-connection buffer: bounds each upload chunk handed to the /write handler. */
#define HTTPD_CONN_MEMORY ((size_t)16 * 1024)
/* At most one "max-connections reached" warning this often, per relay. */
#define HTTPD_REFUSED_LOG_MS 10000

struct httpd {
    /* Immutable after start. */
    const struct conf_http *c; /* borrowed */
    struct backend **backends; /* borrowed */
    struct httpd_env env;      /* copied; the pointers borrowed */
    struct h_write_ctx wctx;
    struct h_query_ctx qctx;
    struct conn_set *conns; /* owned */
    unsigned write_lane;    /* the timer lane of write-timeout deadlines */
    unsigned workers;
    char *tls_cert; /* owned PEM: the certificate chain, or NULL (plain HTTP) */
    char *tls_key;  /* owned PEM: the private key */
    /* Main thread only. */
    struct MHD_Daemon *d;
    int listen_fd;
    /* Shared. */
    struct httpd_stats stats;       /* atomics */
    _Atomic unsigned in_flight;     /* atomic: requests read in full and not completed */
    _Atomic unsigned waiting;       /* atomic: suspended connections not resumed yet */
    _Atomic bool stopping;          /* atomic: answers carry Connection: close */
    _Atomic bool closing;           /* atomic: no write is forwarded any more */
    _Atomic int64_t stop_deadline;  /* atomic: httpd_stop()'s deadline (httpd_hurry() moves it) */
    _Atomic bool hurried;           /* atomic: httpd_hurry() was called (no grace any more) */
    _Atomic int64_t refused_log_ms; /* atomic: when "max-connections reached" was last logged */
    pthread_mutex_t mu;             /* guards nothing but the waits of httpd_stop() */
    pthread_cond_t idle;            /* CLOCK_MONOTONIC; signalled when in_flight or waiting drops
                                     * to 0 while closing, and by httpd_hurry() */
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
    ROUTE_QUERY,
    ROUTE_QUERY_BAD_METHOD,
    ROUTE_NOT_FOUND,
};

/* Per-request state, owned by the connection's worker thread: allocated when the request line
 * arrives (URI log callback), freed in httpd_completed(). Only httpd_wake() runs elsewhere, and
 * it reads h and mc only, which are immutable. */
struct req {
    struct httpd *h;           /* borrowed */
    struct MHD_Connection *mc; /* borrowed */
    struct conn *conn;         /* borrowed: the connection's state (NULL if unknown) */
    enum route route;
    enum httpd_endpoint ep;
    enum h_write_api api; /* ROUTE_WRITE* only: which write endpoint */
    struct h_write *w;    /* owned, ROUTE_WRITE only */
    struct h_query *qq;   /* owned, ROUTE_QUERY only */
    int64_t start_ns;
    bool headers;   /* the first access-handler call happened */
    bool in_flight; /* counted in h->in_flight */
    bool waiting;   /* suspended until the backends' verdict */
    bool querying;  /* ROUTE_QUERY: read in full, h_query_step() drives the rest */
};

static bool
method_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

/* The write endpoints: one write path (http/h_write.c) for the three. */
static const struct {
    const char *path;
    enum httpd_endpoint ep;
    enum h_write_api api;
} WRITE_PATHS[] = {
        {"/write", EP_WRITE, H_WRITE_V1},
        {"/api/v2/write", EP_WRITE_V2, H_WRITE_V2},
        {"/api/v1/prom/write", EP_PROM_WRITE, H_WRITE_PROM},
};

static enum route
httpd_route(const struct httpd *h, const char *url, const char *m, struct req *q)
{
    bool get = method_is(m, "GET") || method_is(m, "HEAD");
    enum httpd_endpoint *ep = &q->ep;
    if (strcmp(url, "/query") == 0) {
        *ep = EP_QUERY;
        if (h->c->query == CONF_QUERY_OFF) {
            return ROUTE_NOT_FOUND; /* as the Go relay */
        }
        return method_is(m, "GET") || method_is(m, "POST") ? ROUTE_QUERY : ROUTE_QUERY_BAD_METHOD;
    }
    for (size_t i = 0; i < IR_ARRAY_LEN(WRITE_PATHS); i++) {
        if (strcmp(url, WRITE_PATHS[i].path) == 0) {
            *ep = WRITE_PATHS[i].ep;
            q->api = WRITE_PATHS[i].api;
            return method_is(m, "POST")      ? ROUTE_WRITE
                   : method_is(m, "OPTIONS") ? ROUTE_WRITE_OPTIONS
                                             : ROUTE_WRITE_BAD_METHOD;
        }
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
    char *text = h->env.metrics(h->env.world, &len);
    if (text == NULL) {
        reply_error(r, 500, "out of memory");
        return;
    }
    reply_body(r, 200, text, len, H_METRICS_CONTENT_TYPE);
}

/* /health renders a snapshot of this relay's own backends and of the process's UDP relays. */
static void
httpd_render_health(struct httpd *h, struct reply *r)
{
    size_t n = h->c->n_outputs;
    size_t n_udp = h->env.udp_health(h->env.world, NULL, 0);
    struct backend_snapshot *snaps = calloc(n ? n : 1, sizeof(*snaps));
    struct h_health_udp *udp = calloc(n_udp ? n_udp : 1, sizeof(*udp));
    size_t len = 0;
    int status = 500;
    char *text = NULL;
    if (snaps != NULL && udp != NULL) {
        for (size_t i = 0; i < n; i++) {
            backend_snapshot(h->backends[i], &snaps[i]);
        }
        n_udp = h->env.udp_health(h->env.world, udp, n_udp);
        text = h_health_render_snapshots(h->c, snaps, n, udp, n_udp, &status, &len);
    }
    free(snaps);
    free(udp);
    if (text == NULL) {
        reply_error(r, 500, "out of memory");
        return;
    }
    reply_body(r, status, text, len, "application/json");
}

/* The answer to a request other than POST /write whose upload (if any) is complete. */
static void
httpd_dispatch(struct httpd *h, struct MHD_Connection *c, struct req *q, const char *method,
               struct reply *r)
{
    switch (q->route) {
    case ROUTE_WRITE:
    case ROUTE_QUERY:
        break; /* httpd_final() */
    case ROUTE_QUERY_BAD_METHOD:
        reply_error(r, 405, "method not allowed");
        r->allow = "GET, POST";
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
httpd_answer(struct httpd *h, struct req *q, struct reply *r)
{
    if (q->ep == EP_WRITE_V2) {
        answer_v2_shape(r); /* every answer of /api/v2/write, whoever made it */
    }
    int status = r->status;
    r->close = r->close || atomic_load(&h->stopping);
    enum MHD_Result ret = reply_queue(q->mc, r);
    if (status >= 0 && status < HTTPD_MAX_CODE) {
        atomic_fetch_add_explicit(&h->stats.requests[q->ep][status], 1, memory_order_relaxed);
    }
    if (q->route == ROUTE_WRITE) {
        /* Wall clock (the only sub-millisecond clock in util/clock.h); a clock step is clamped. */
        int64_t us = (clock_real_ns() - q->start_ns) / 1000;
        histo_observe(&h->stats.request_duration, us > 0 ? (uint64_t)us : 0);
        log_debug(h->c->name, "write answered status=%d duration_ms=%.3f", status,
                  (double)(us > 0 ? us : 0) / 1000.0);
    }
    return ret;
}

/* Wakes httpd_stop() when a count it waits for dropped to 0. */
static void
httpd_signal_idle(struct httpd *h)
{
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
}

/* The rendezvous reached the verdict of q's write (any thread: a sender, the timer, or q's own
 * worker): resume the connection; its worker then calls the access handler with the answer to
 * send. q may be freed by that worker as soon as the connection is resumed. */
static void
httpd_wake(void *arg)
{
    struct req *q = arg;
    struct httpd *h = q->h;
    MHD_resume_connection(q->mc);
    /* seq_cst pairs with httpd_stop(): either it sees the decrement or we see `closing`. */
    if (atomic_fetch_sub(&h->waiting, 1) == 1 && atomic_load(&h->closing)) {
        httpd_signal_idle(h);
    }
}

/* The write is with the backends: suspend the connection until the verdict. */
static enum MHD_Result
httpd_wait(struct httpd *h, struct req *q)
{
    atomic_fetch_add(&h->waiting, 1);
    MHD_suspend_connection(q->mc);
    q->waiting = true;
    if (!h_write_notify(q->w, h->env.timer, h->write_lane, httpd_wake, q)) {
        httpd_wake(q); /* decided meanwhile: the next call (after the resume) answers */
    }
    return MHD_YES;
}

/* h_query's parking (h_query.h): suspend on the worker that owns the connection; the wake is
 * httpd_wake(), one per suspend. */
static void
httpd_park(void *arg)
{
    struct req *q = arg;
    atomic_fetch_add(&q->h->waiting, 1);
    MHD_suspend_connection(q->mc);
}

/* Queues a streamed response (a /query read) and counts it. */
static enum MHD_Result
httpd_answer_stream(struct httpd *h, struct req *q, struct MHD_Response *resp, int status)
{
    if (atomic_load(&h->stopping)) {
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    enum MHD_Result ret = MHD_queue_response(q->mc, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (status >= 0 && status < HTTPD_MAX_CODE) {
        atomic_fetch_add_explicit(&h->stats.requests[q->ep][status], 1, memory_order_relaxed);
    }
    return ret;
}

/* /query: the next step of a request read in full (first call, or after a wake). */
static enum MHD_Result
httpd_query(struct httpd *h, struct req *q)
{
    struct reply r = {0};
    struct MHD_Response *resp = NULL;
    int status = 0;
    switch (h_query_step(q->qq, &r, &resp, &status)) {
    case H_QUERY_WAIT:
        return MHD_YES;
    case H_QUERY_RESPOND:
        return httpd_answer_stream(h, q, resp, status);
    case H_QUERY_ANSWER:
    default:
        return httpd_answer(h, q, &r);
    }
}

/* The last upload call: the request is read in full. */
static enum MHD_Result
httpd_final(struct httpd *h, struct req *q, const char *method)
{
    if (q->conn != NULL && !conn_request_read(q->conn)) {
        return MHD_NO; /* read-timeout closed it first: nothing of it is acted on */
    }
    q->in_flight = true;
    atomic_fetch_add(&h->in_flight, 1);
    struct reply r = {0};
    if (q->route != ROUTE_WRITE && q->route != ROUTE_QUERY) {
        httpd_dispatch(h, q->mc, q, method, &r);
        return httpd_answer(h, q, &r);
    }
    /* seq_cst pairs with httpd_stop(): it waits for this request, or we see `closing`. */
    if (atomic_load(&h->closing)) {
        reply_error(&r, 503, "the relay is shutting down");
        r.retry_after_s = 1;
        r.close = true;
        return httpd_answer(h, q, &r);
    }
    if (q->route == ROUTE_QUERY) {
        q->querying = true;
        return httpd_query(h, q);
    }
    if (h_write_start(q->w, &r) == H_WRITE_WAIT) {
        return httpd_wait(h, q);
    }
    return httpd_answer(h, q, &r);
}

/* The first access-handler call (headers received): route, and refuse at once what must not be
 * read. */
static enum MHD_Result
httpd_headers(struct httpd *h, struct req *q, const char *url, const char *method)
{
    q->headers = true;
    q->start_ns = clock_real_ns();
    q->route = httpd_route(h, url, method, q);
    struct reply now = {0};
    if (q->route == ROUTE_QUERY) {
        struct h_query_park park = {httpd_park, httpd_wake, q};
        q->qq = h_query_new(&h->qctx, q->mc, method, &park);
        return MHD_YES;
    }
    if (q->route != ROUTE_WRITE) {
        return MHD_YES;
    }
    q->w = h_write_new(&h->wctx, q->api, q->mc, &now);
    if (now.status == 0) {
        return MHD_YES;
    }
    if (q->conn != NULL && !conn_request_read(q->conn)) {
        reply_cleanup(&now);
        return MHD_NO;
    }
    return httpd_answer(h, q, &now);
}

static struct req *
req_new(struct httpd *h, struct MHD_Connection *c)
{
    struct req *q = xcalloc(1, sizeof(*q));
    q->h = h;
    q->mc = c;
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    q->conn = ci != NULL ? ci->socket_context : NULL;
    return q;
}

/* libmicrohttpd's URI log callback: the request line arrived. Starts the request's state (it
 * becomes *con_cls) and its read deadline. */
static void *
httpd_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)uri;
    struct req *q = req_new(cls, c);
    if (q->conn != NULL) {
        (void)conn_request_begin(q->conn);
    }
    return q;
}

static enum MHD_Result
httpd_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
             const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct httpd *h = cls;
    struct req *q = *con_cls;
    if (q == NULL) {
        q = req_new(h, c); /* the URI log callback always made it; this is a safety net */
        *con_cls = q;
    }
    if (!q->headers) {
        return httpd_headers(h, q, url, method);
    }
    if (*upload_size > 0) {
        if (q->w != NULL) {
            h_write_feed(q->w, upload, *upload_size);
        } else if (q->qq != NULL) {
            h_query_feed(q->qq, upload, *upload_size);
        }
        *upload_size = 0; /* consumed (or discarded) */
        return MHD_YES;
    }
    if (q->waiting) {
        /* Resumed by httpd_wake(): the verdict is in. */
        q->waiting = false;
        struct reply r = {0};
        h_write_finish(q->w, &r);
        return httpd_answer(h, q, &r);
    }
    if (q->querying) {
        return httpd_query(h, q); /* woken: the next step of the /query */
    }
    return httpd_final(h, q, method);
}

static void
httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                enum MHD_RequestTerminationCode toe)
{
    (void)c;
    struct httpd *h = cls;
    struct req *q = *con_cls;
    if (q == NULL) {
        return;
    }
    *con_cls = NULL;
    if (q->conn != NULL && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        conn_request_done(q->conn);
    }
    h_write_free(q->w);
    h_query_free(q->qq); /* no wake for q after this */
    bool counted = q->in_flight;
    free(q);
    /* seq_cst pairs with httpd_stop(): either it sees the decrement or we see `closing`. */
    if (counted && atomic_fetch_sub(&h->in_flight, 1) == 1 && atomic_load(&h->closing)) {
        httpd_signal_idle(h);
    }
}

/* Accept policy: max-connections for the whole relay (see http/conn.c). */
static enum MHD_Result
httpd_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    struct httpd *h = cls;
    if (conn_admit(h->conns)) {
        return MHD_YES;
    }
    /* Clients are being turned away: worth a warning, at most one per HTTPD_REFUSED_LOG_MS
     * whatever the number of workers refusing at once (the compare-and-swap elects one). */
    int64_t now = clock_mono_ms();
    int64_t last = atomic_load_explicit(&h->refused_log_ms, memory_order_relaxed);
    if ((last == 0 || now - last >= HTTPD_REFUSED_LOG_MS) &&
        atomic_compare_exchange_strong(&h->refused_log_ms, &last, now)) {
        log_warn(h->c->name,
                 "max-connections reached, refusing new connections max_connections=%lld "
                 "refused_total=%llu",
                 (long long)h->c->max_connections,
                 (unsigned long long)atomic_load(&h->stats.connections_refused));
    }
    return MHD_NO;
}

static void
httpd_notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    struct httpd *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = conn_open(h->conns, ci->connect_fd);
    } else if (*socket_context != NULL) {
        conn_close(*socket_context); /* before libmicrohttpd closes the socket */
        *socket_context = NULL;
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

unsigned
httpd_workers(const struct conf_http *c)
{
    if (c->workers > 0) {
        return (unsigned)c->workers;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

struct httpd *
httpd_new(const struct conf_http *c, struct backend **backends, const struct httpd_env *env,
          struct ir_err *err)
{
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->c = c;
    h->backends = backends;
    h->env = *env;
    h->listen_fd = -1;
    h->workers = httpd_workers(c);
    h->wctx = (struct h_write_ctx){c, backends, &h->stats, env->inflight};
    struct conn_set_conf cc = {c->max_connections, c->read_timeout_ms, c->ssl_combined_pem != NULL,
                               env->timer, &h->stats};
    h->conns = conn_set_new(&cc);
    h->write_lane = timer_lane_new(env->timer);
    h->qctx = (struct h_query_ctx){c,          backends,     &h->stats, env->inflight, env->fetcher,
                                   env->timer, h->write_lane};
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

/* libmicrohttpd's connection limit: never reached, so that the accept policy (conn_admit())
 * decides, for the whole relay, instead of each worker's even share of it. */
static unsigned
httpd_mhd_limit(const struct httpd *h)
{
    uint64_t n = (uint64_t)h->c->max_connections * h->workers + 16;
    return n > UINT_MAX / 2 ? UINT_MAX / 2 : (unsigned)n;
}

/* Hands the bound socket to a new MHD daemon; NULL when MHD refuses. */
static struct MHD_Daemon *
httpd_start_daemon(struct httpd *h)
{
    /* epoll: one set per worker, no FD_SETSIZE limit, no thread per connection. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (h->tls_cert != NULL) {
        flags |= MHD_USE_TLS;
    }
    int64_t idle_ms = h->c->idle_timeout_ms;
    unsigned idle_s = idle_ms / 1000 >= UINT_MAX ? UINT_MAX : (unsigned)((idle_ms + 999) / 1000);
    /* The logger comes first so MHD reports option problems through it. */
    struct MHD_OptionItem opts[16] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)httpd_mhd_log, h},
            {MHD_OPTION_LISTEN_SOCKET, h->listen_fd, NULL},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)httpd_mhd_limit(h), NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)idle_s, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_CONN_MEMORY, NULL},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)httpd_completed, h},
            {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)httpd_notify_conn, h},
            {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)httpd_uri_log, h},
    };
    size_t n = 8;
    if (h->workers > 1) {
        /* One worker is libmicrohttpd's single polling thread (a pool of 1 is refused). */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, h->workers, NULL};
    }
    if (h->tls_cert != NULL) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(flags, 0, httpd_admit, h, httpd_access, h, MHD_OPTION_ARRAY, opts,
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
    log_info(h->c->name, "serving workers=%u max_connections=%lld", h->workers,
             (long long)h->c->max_connections);
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

/* Waits until *count is 0, or until the stop deadline when bounded. Returns the count left. */
static unsigned
httpd_wait_zero(struct httpd *h, _Atomic unsigned *count, bool bounded)
{
    pthread_mutex_lock(&h->mu);
    while (atomic_load(count) > 0) {
        int64_t deadline = atomic_load(&h->stop_deadline);
        if (!bounded) {
            pthread_cond_wait(&h->idle, &h->mu);
        } else if (clock_mono_ms() >= deadline) {
            break;
        } else {
            struct timespec ts;
            clock_mono_to_ts(&ts, deadline);
            (void)pthread_cond_timedwait(&h->idle, &h->mu, &ts);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return atomic_load(count);
}

/* Moves the stop deadline to deadline_ms when that is earlier (0 = none yet). */
static void
httpd_deadline_min(struct httpd *h, int64_t deadline_ms)
{
    int64_t cur = atomic_load(&h->stop_deadline);
    while ((cur == 0 || deadline_ms < cur) &&
           !atomic_compare_exchange_weak(&h->stop_deadline, &cur, deadline_ms)) {
    }
    httpd_signal_idle(h);
}

void
httpd_stop(struct httpd *h, int64_t deadline_ms)
{
    if (h->d == NULL) {
        return;
    }
    httpd_deadline_min(h, deadline_ms);
    atomic_store(&h->stopping, true);
    atomic_store(&h->closing, true);
    /* 1. Answers in progress finish while the backends are still sending, until the deadline. */
    unsigned left = httpd_wait_zero(h, &h->in_flight, true);
    if (left > 0) {
        log_warn(h->c->name, "shutdown: answering the writes still waiting count=%u", left);
    }
    /* 2. Writes still waiting for their backends are answered now, as at write-timeout (503);
     * every suspended connection must be resumed before MHD_stop_daemon(). The flushed lane
     * fires each waiting write's deadline at once, so this wait is short. */
    timer_flush_lane(h->env.timer, h->write_lane);
    /* Reads still streaming or waiting for a backend end now (fetch engine stopped): each parked
     * connection is woken and its answer cut (or 503 before its head). */
    if (h->env.fetcher != NULL) {
        fetcher_stop(h->env.fetcher);
    }
    (void)httpd_wait_zero(h, &h->waiting, false);
    /* 3. A moment for those answers to be sent (none after a second signal). */
    if (!atomic_load(&h->hurried)) {
        atomic_store(&h->stop_deadline, clock_mono_ms() + 1000);
    }
    left = httpd_wait_zero(h, &h->in_flight, true);
    if (left > 0) {
        log_warn(h->c->name, "shutdown: closing connections with requests in flight count=%u",
                 left);
    }
    MHD_stop_daemon(h->d);
    h->d = NULL;
}

void
httpd_hurry(struct httpd *h, int64_t deadline_ms)
{
    atomic_store(&h->hurried, true);
    httpd_deadline_min(h, deadline_ms);
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
    conn_set_free(h->conns);
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
