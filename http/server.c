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
 * daemon_stop() first answers every waiting write (the timer lane of write deadlines is flushed,
 * or the writes run into their write-timeout) and waits until each has been resumed
 * (dm->waiting == 0).
 *
 * Reload. A relay keeps its struct httpd (its counters, connections and timer lanes) for as long
 * as its [http.NAME] section exists. What a request reads of the configuration (its section and
 * backends) is a generation, struct httpd_gen: immutable and reference-counted; a request takes
 * the current one when its request line arrives and keeps it until libmicrohttpd's completed
 * callback, so a write finishes on the configuration it started with, and a reload only swaps
 * the pointer (httpd_commit()). Settings libmicrohttpd reads when a daemon starts (workers,
 * idle-timeout, the TLS certificate and key -- re-read from the PEM file at every reload --, the
 * listening address) need a new daemon: it starts on a duplicate of the listening socket (or on
 * the new address's socket), then the old one stops accepting (its acceptor thread is joined)
 * and its duplicate is closed. The listening socket itself never closes, so no client is
 * refused. The old daemon keeps serving its connections, every answer with "Connection: close",
 * and is stopped once they are gone, or shutdown-timeout after the reload (httpd_drain(), on the
 * service's retire thread).
 *
 * Accepting. A daemon runs without a listening socket of its own (MHD_USE_NO_LISTEN_SOCKET): one
 * acceptor thread per daemon waits in poll(2) on its duplicate of the listening socket and on an
 * eventfd, accepts and hands each connection to libmicrohttpd (MHD_add_connection(), which
 * calls the accept policy and gives it to a worker through its ITC: MHD_ALLOW_SUSPEND_RESUME
 * implies MHD_USE_ITC). Stopping to accept is waking the acceptor with the eventfd, joining it
 * and closing the duplicate. MHD_quiesce_daemon() is not used: in libmicrohttpd 0.9.75
 * (daemon.c, MHD_quiesce_daemon() and MHD_epoll()) a worker of an epoll thread pool that wakes
 * while the daemon is being quiesced removes the listening socket from its epoll set at the same
 * time as MHD_quiesce_daemon() does, and whichever comes second gets ENOENT and calls
 * MHD_PANIC(): the process aborts ("Failed to remove listen FD from epoll set"). Seen here about
 * once in 60 shutdowns under traffic.
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
 *   "Connection: close".
 *
 * Locking: h->mu guards h->gen and the list of old daemons, and is the mutex of the waits on
 * h->idle; it is held for bookkeeping only (a reference taken, a pointer swapped). */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>
#include <sys/eventfd.h>
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
/* libmicrohttpd's own connection limit per worker: above the largest max-connections, so that
 * the accept policy (conn_admit()) decides for the whole relay, and a reload changing
 * max-connections needs no new daemon. */
#define HTTPD_MHD_LIMIT_PER_WORKER (65536U + 16U)
/* After the answers of a stopping daemon are due: a moment to send them. */
#define HTTPD_SEND_GRACE_MS 1000

/* What a request reads of its relay's configuration: immutable, reference-counted. */
struct httpd_gen {
    _Atomic unsigned refs;     /* atomic */
    struct conf *tree;         /* owned reference (NULL for a section built by hand) */
    const struct conf_http *c; /* borrowed from tree */
    struct backend **backends; /* owned array of c->n_outputs, a reference on each */
    struct h_write_ctx wctx;
    struct h_query_ctx qctx;
};

/* One libmicrohttpd daemon of a relay: the current one, or an old one still answering its
 * connections after a reload handed the listening socket to a new one. */
struct httpd_daemon {
    struct httpd *h;               /* immutable */
    struct MHD_Daemon *d;          /* whoever stops it: main thread, or the thread draining it */
    int listen_fd;                 /* its duplicate of the listening socket until quiesced, else -1:
                                    * read by its acceptor, closed after the acceptor's join */
    int stop_efd;                  /* immutable: eventfd that ends the acceptor's wait */
    pthread_t acceptor;            /* the thread accepting on listen_fd (main thread joins it) */
    bool accepting;                /* main thread (or the thread stopping it): acceptor runs */
    int64_t accept_log_ms;         /* acceptor only: when a failed accept was last logged */
    char *bind_addr;               /* immutable: owned copy of the address it serves */
    char *pem_path;                /* immutable: owned copy of ssl-combined-pem, or NULL */
    char *tls_cert;                /* immutable: owned PEM of the certificate chain, or NULL */
    char *tls_key;                 /* immutable: owned PEM of the private key */
    unsigned workers;              /* immutable */
    int64_t idle_timeout_ms;       /* immutable */
    _Atomic unsigned conns;        /* atomic: its open connections */
    _Atomic unsigned in_flight;    /* atomic: requests read in full and not completed */
    _Atomic unsigned waiting;      /* atomic: suspended connections not resumed yet */
    _Atomic bool stopping;         /* atomic: answers carry Connection: close */
    _Atomic bool closing;          /* atomic: no write is forwarded any more */
    _Atomic int64_t stop_deadline; /* atomic: the deadline of its drain and stop, 0 = none */
    bool taken;                    /* guarded by h->mu: a thread is draining it */
    struct httpd_daemon *next;     /* guarded by h->mu: the list of old daemons */
};

/* A reload being prepared: what httpd_commit() will install. Main thread only. */
struct httpd_plan {
    int fd;        /* owned: a listening socket bound for a new address, or -1 */
    char *cert;    /* owned PEM read now, NULL for plain HTTP */
    char *key;     /* owned PEM */
    bool restart;  /* a new daemon is needed */
    bool prepared; /* httpd_prepare() succeeded */
};

struct httpd {
    _Atomic unsigned refs;          /* atomic: the service's, plus one per view (relay/world.c) */
    char *name;                     /* immutable: owned copy of the relay's name */
    struct httpd_env env;           /* immutable: copied; the pointers borrowed */
    struct conn_set *conns;         /* owned; locks itself */
    unsigned write_lane;            /* immutable: the timer lane of write-timeout deadlines */
    struct httpd_stats stats;       /* atomics */
    pthread_mutex_t mu;             /* see Locking */
    pthread_cond_t idle;            /* CLOCK_MONOTONIC; broadcast when a count a stop or a drain
                                     * waits for drops to 0, and when a deadline moves */
    struct httpd_gen *gen;          /* guarded by mu: the current generation (a reference) */
    struct httpd_daemon *old;       /* guarded by mu: daemons that gave their socket away */
    struct httpd_daemon *cur;       /* main thread (or the thread stopping a removed relay) */
    struct httpd_plan plan;         /* main thread only */
    _Atomic bool hurried;           /* atomic: httpd_hurry() was called (no grace any more) */
    _Atomic int64_t max_conns;      /* atomic: max-connections, for the refusal warning */
    _Atomic int64_t refused_log_ms; /* atomic: when "max-connections reached" was last logged */
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
 * it reads dm and mc only, which are immutable. */
struct req {
    struct httpd_daemon *dm;   /* borrowed */
    struct httpd_gen *gen;     /* owned reference: the configuration of this request */
    struct MHD_Connection *mc; /* borrowed */
    struct conn *conn;         /* borrowed: the connection's state (NULL if unknown) */
    enum route route;
    enum httpd_endpoint ep;
    enum h_write_api api; /* ROUTE_WRITE* only: which write endpoint */
    struct h_write *w;    /* owned, ROUTE_WRITE only */
    struct h_query *qq;   /* owned, ROUTE_QUERY only */
    int64_t start_ns;
    bool headers;   /* the first access-handler call happened */
    bool in_flight; /* counted in dm->in_flight */
    bool waiting;   /* suspended until the backends' verdict */
    bool querying;  /* ROUTE_QUERY: read in full, h_query_step() drives the rest */
};

/* ------------------------------------------------------------------ generations */

static struct httpd_gen *
gen_new(struct httpd *h, const struct conf_http *c, struct backend *const *backends)
{
    struct httpd_gen *g = xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    g->tree = conf_ref(c->tree);
    g->c = c;
    g->backends = xcalloc(c->n_outputs ? c->n_outputs : 1, sizeof(struct backend *));
    for (size_t i = 0; i < c->n_outputs; i++) {
        g->backends[i] = backend_ref(backends[i]);
    }
    g->wctx = (struct h_write_ctx){c, g->backends, &h->stats, h->env.inflight};
    g->qctx = (struct h_query_ctx){c,
                                   g->backends,
                                   &h->stats,
                                   h->env.inflight,
                                   h->env.fetcher,
                                   h->env.timer,
                                   h->write_lane};
    return g;
}

static void
gen_unref(struct httpd_gen *g)
{
    if (g == NULL || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < g->c->n_outputs; i++) {
        backend_unref(g->backends[i]);
    }
    free(g->backends);
    conf_unref(g->tree);
    free(g);
}

struct httpd_gen *
httpd_gen_get(struct httpd *h)
{
    pthread_mutex_lock(&h->mu);
    struct httpd_gen *g = h->gen;
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&h->mu);
    return g;
}

void
httpd_gen_put(struct httpd_gen *g)
{
    gen_unref(g);
}

size_t
httpd_gen_backends(const struct httpd_gen *g, struct backend *const **out)
{
    *out = g->backends;
    return g->c->n_outputs;
}

/* ------------------------------------------------------------------ routes */

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
httpd_route(const struct conf_http *c, const char *url, const char *m, struct req *q)
{
    bool get = method_is(m, "GET") || method_is(m, "HEAD");
    enum httpd_endpoint *ep = &q->ep;
    if (strcmp(url, "/query") == 0) {
        *ep = EP_QUERY;
        if (c->query == CONF_QUERY_OFF) {
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

/* /health renders a snapshot of this relay's own backends (those of the request's generation)
 * and of the process's UDP relays. */
static void
httpd_render_health(struct httpd *h, const struct httpd_gen *g, struct reply *r)
{
    size_t n = g->c->n_outputs;
    size_t n_udp = h->env.udp_health(h->env.world, NULL, 0);
    struct backend_snapshot *snaps = calloc(n ? n : 1, sizeof(*snaps));
    struct h_health_udp *udp = calloc(n_udp ? n_udp : 1, sizeof(*udp));
    size_t len = 0;
    int status = 500;
    char *text = NULL;
    if (snaps != NULL && udp != NULL) {
        for (size_t i = 0; i < n; i++) {
            backend_snapshot(g->backends[i], &snaps[i]);
        }
        n_udp = h->env.udp_health(h->env.world, udp, n_udp);
        text = h_health_render_snapshots(g->c, snaps, n, udp, n_udp, &status, &len);
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
        httpd_render_health(h, q->gen, r);
        break;
    case ROUTE_NOT_FOUND:
        reply_error(r, 404, "invalid write endpoint");
        break;
    }
}

/* ------------------------------------------------------------------ requests */

/* Queues r, counts it, and records the /write duration. */
static enum MHD_Result
httpd_answer(struct req *q, struct reply *r)
{
    struct httpd *h = q->dm->h;
    if (q->ep == EP_WRITE_V2) {
        answer_v2_shape(r); /* every answer of /api/v2/write, whoever made it */
    }
    int status = r->status;
    r->close = r->close || atomic_load(&q->dm->stopping);
    enum MHD_Result ret = reply_queue(q->mc, r);
    if (status >= 0 && status < HTTPD_MAX_CODE) {
        atomic_fetch_add_explicit(&h->stats.requests[q->ep][status], 1, memory_order_relaxed);
    }
    if (q->route == ROUTE_WRITE) {
        /* Wall clock (the only sub-millisecond clock in util/clock.h); a clock step is clamped. */
        int64_t us = (clock_real_ns() - q->start_ns) / 1000;
        histo_observe(&h->stats.request_duration, us > 0 ? (uint64_t)us : 0);
        log_debug(h->name, "write answered status=%d duration_ms=%.3f", status,
                  (double)(us > 0 ? us : 0) / 1000.0);
    }
    return ret;
}

/* Wakes the waits of daemon_stop() and httpd_drain(). */
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
    struct httpd_daemon *dm = q->dm;
    struct httpd *h = dm->h; /* outlives its daemons */
    MHD_resume_connection(q->mc);
    /* q may be gone now, and dm as soon as the decrement is seen: a daemon being stopped waits
     * for waiting == 0 and is then freed (httpd_drain() on the retire thread). So nothing of dm
     * is read after it; the stop's wait is woken whenever the count reaches 0 (it re-checks the
     * count under h->mu, so a wake-up it does not need costs one lock). */
    if (atomic_fetch_sub(&dm->waiting, 1) == 1) {
        httpd_signal_idle(h);
    }
}

/* The write is with the backends: suspend the connection until the verdict. */
static enum MHD_Result
httpd_wait(struct req *q)
{
    struct httpd *h = q->dm->h;
    atomic_fetch_add(&q->dm->waiting, 1);
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
    atomic_fetch_add(&q->dm->waiting, 1);
    MHD_suspend_connection(q->mc);
}

/* Queues a streamed response (a /query read) and counts it. */
static enum MHD_Result
httpd_answer_stream(struct req *q, struct MHD_Response *resp, int status)
{
    struct httpd *h = q->dm->h;
    if (atomic_load(&q->dm->stopping)) {
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
httpd_query(struct req *q)
{
    struct reply r = {0};
    struct MHD_Response *resp = NULL;
    int status = 0;
    switch (h_query_step(q->qq, &r, &resp, &status)) {
    case H_QUERY_WAIT:
        return MHD_YES;
    case H_QUERY_RESPOND:
        return httpd_answer_stream(q, resp, status);
    case H_QUERY_ANSWER:
    default:
        return httpd_answer(q, &r);
    }
}

/* The last upload call: the request is read in full. */
static enum MHD_Result
httpd_final(struct req *q, const char *method)
{
    struct httpd_daemon *dm = q->dm;
    if (q->conn != NULL && !conn_request_read(q->conn)) {
        return MHD_NO; /* read-timeout closed it first: nothing of it is acted on */
    }
    q->in_flight = true;
    atomic_fetch_add(&dm->in_flight, 1);
    struct reply r = {0};
    if (q->route != ROUTE_WRITE && q->route != ROUTE_QUERY) {
        httpd_dispatch(dm->h, q->mc, q, method, &r);
        return httpd_answer(q, &r);
    }
    /* seq_cst pairs with daemon_stop(): it waits for this request, or we see `closing`. */
    if (atomic_load(&dm->closing)) {
        reply_error(&r, 503, "the relay is shutting down");
        r.retry_after_s = 1;
        r.close = true;
        return httpd_answer(q, &r);
    }
    if (q->route == ROUTE_QUERY) {
        q->querying = true;
        return httpd_query(q);
    }
    if (h_write_start(q->w, &r) == H_WRITE_WAIT) {
        return httpd_wait(q);
    }
    return httpd_answer(q, &r);
}

/* The first access-handler call (headers received): route, and refuse at once what must not be
 * read. */
static enum MHD_Result
httpd_headers(struct req *q, const char *url, const char *method)
{
    q->headers = true;
    q->start_ns = clock_real_ns();
    q->route = httpd_route(q->gen->c, url, method, q);
    struct reply now = {0};
    if (q->route == ROUTE_QUERY) {
        struct h_query_park park = {httpd_park, httpd_wake, q};
        q->qq = h_query_new(&q->gen->qctx, q->mc, method, &park);
        return MHD_YES;
    }
    if (q->route != ROUTE_WRITE) {
        return MHD_YES;
    }
    q->w = h_write_new(&q->gen->wctx, q->api, q->mc, &now);
    if (now.status == 0) {
        return MHD_YES;
    }
    if (q->conn != NULL && !conn_request_read(q->conn)) {
        reply_cleanup(&now);
        return MHD_NO;
    }
    return httpd_answer(q, &now);
}

static struct req *
req_new(struct httpd_daemon *dm, struct MHD_Connection *c)
{
    struct req *q = xcalloc(1, sizeof(*q));
    q->dm = dm;
    q->gen = httpd_gen_get(dm->h);
    q->mc = c;
    const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    q->conn = ci != NULL ? ci->socket_context : NULL;
    return q;
}

/* libmicrohttpd's URI log callback: the request line arrived. Starts the request's state (it
 * becomes *con_cls), with the relay's current generation, and its read deadline. */
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
    struct req *q = *con_cls;
    if (q == NULL) {
        q = req_new(cls, c); /* the URI log callback always made it; this is a safety net */
        *con_cls = q;
    }
    if (!q->headers) {
        return httpd_headers(q, url, method);
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
        return httpd_answer(q, &r);
    }
    if (q->querying) {
        return httpd_query(q); /* woken: the next step of the /query */
    }
    return httpd_final(q, method);
}

static void
httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                enum MHD_RequestTerminationCode toe)
{
    (void)c;
    struct httpd_daemon *dm = cls;
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
    gen_unref(q->gen);
    bool counted = q->in_flight;
    free(q);
    /* seq_cst pairs with daemon_stop(): either it sees the decrement or we see `closing`. */
    if (counted && atomic_fetch_sub(&dm->in_flight, 1) == 1 && atomic_load(&dm->closing)) {
        httpd_signal_idle(dm->h);
    }
}

/* Accept policy: max-connections for the whole relay (see http/conn.c). */
static enum MHD_Result
httpd_admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    struct httpd *h = ((struct httpd_daemon *)cls)->h;
    if (conn_admit(h->conns)) {
        return MHD_YES;
    }
    /* Clients are being turned away: worth a warning, at most one per HTTPD_REFUSED_LOG_MS
     * whatever the number of workers refusing at once (the compare-and-swap elects one). */
    int64_t now = clock_mono_ms();
    int64_t last = atomic_load_explicit(&h->refused_log_ms, memory_order_relaxed);
    if ((last == 0 || now - last >= HTTPD_REFUSED_LOG_MS) &&
        atomic_compare_exchange_strong(&h->refused_log_ms, &last, now)) {
        log_warn(h->name,
                 "max-connections reached, refusing new connections max_connections=%lld "
                 "refused_total=%llu",
                 (long long)atomic_load(&h->max_conns),
                 (unsigned long long)atomic_load(&h->stats.connections_refused));
    }
    return MHD_NO;
}

static void
httpd_notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    struct httpd_daemon *dm = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        atomic_fetch_add(&dm->conns, 1);
        *socket_context = conn_open(dm->h->conns, ci->connect_fd);
    } else if (*socket_context != NULL) {
        conn_close(*socket_context); /* before libmicrohttpd closes the socket */
        *socket_context = NULL;
        /* An old daemon waits for its last connection (httpd_drain()). */
        if (atomic_fetch_sub(&dm->conns, 1) == 1 && atomic_load(&dm->stopping)) {
            httpd_signal_idle(dm->h);
        }
    }
}

/* MHD's own messages (connection limit, TLS handshake failures ...): debug level only. */
static void httpd_mhd_log(void *cls, const char *fmt, va_list ap) IR_PRINTF(2, 0);

static void
httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const struct httpd_daemon *dm = cls;
    if (!log_enabled(LOG_DEBUG)) {
        return;
    }
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) {
        msg[--n] = '\0';
    }
    log_debug(dm->h->name, "libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------ daemons */

unsigned
httpd_workers(const struct conf_http *c)
{
    if (c->workers > 0) {
        return (unsigned)c->workers;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* An accept that failed (out of descriptors or memory, or an unexpected error): logged at most
 * every 10 s; the acceptor then waits 100 ms (or its stop) before it tries again, as
 * libmicrohttpd does. False when it was stopped meanwhile. */
static bool
acceptor_backoff(struct httpd_daemon *dm, int err)
{
    int64_t now = clock_mono_ms();
    if (dm->accept_log_ms == 0 || now - dm->accept_log_ms >= HTTPD_REFUSED_LOG_MS) {
        dm->accept_log_ms = now;
        char buf[128];
        log_warn(dm->h->name, "accept failed, retrying in 100 ms error=\"%s\"",
                 ir_strerror(err, buf, sizeof(buf)));
    }
    struct pollfd p = {dm->stop_efd, POLLIN, 0};
    return poll(&p, 1, 100) == 0;
}

/* The acceptor thread: hands every connection of the listening socket to libmicrohttpd until
 * its eventfd is written. */
static void *
acceptor_main(void *arg)
{
    struct httpd_daemon *dm = arg;
    for (;;) {
        struct pollfd p[2] = {{dm->listen_fd, POLLIN, 0}, {dm->stop_efd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            return NULL;
        }
        if (p[1].revents != 0) {
            return NULL;
        }
        for (;;) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            int fd = accept(dm->listen_fd, (struct sockaddr *)&ss, &len);
            if (fd >= 0) {
                (void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* libmicrohttpd makes it non-blocking */
                (void)MHD_add_connection(dm->d, fd, (struct sockaddr *)&ss, len); /* closes fd
                                                                                   * on failure */
                continue;
            }
            int err = errno;
            if (err == EINTR || err == ECONNABORTED || err == EPROTO) {
                continue;
            }
            /* Out of descriptors or memory, or anything unexpected: wait a moment (a socket
             * that stays readable must not make this loop spin). */
            if (err != EAGAIN && err != EWOULDBLOCK && !acceptor_backoff(dm, err)) {
                return NULL; /* stopped while waiting */
            }
            break; /* wait for the next connection */
        }
    }
}

/* 0, or -1 when the acceptor cannot start. */
static int
acceptor_start(struct httpd_daemon *dm)
{
    dm->stop_efd = eventfd(0, EFD_CLOEXEC);
    if (dm->stop_efd < 0) {
        return -1;
    }
    if (pthread_create(&dm->acceptor, NULL, acceptor_main, dm) != 0) {
        close(dm->stop_efd);
        dm->stop_efd = -1;
        return -1;
    }
    dm->accepting = true;
    return 0;
}

/* Ends the acceptor (idempotent). */
static void
acceptor_stop(struct httpd_daemon *dm)
{
    if (!dm->accepting) {
        return;
    }
    uint64_t one = 1;
    while (write(dm->stop_efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(dm->acceptor, NULL);
    dm->accepting = false;
    close(dm->stop_efd);
    dm->stop_efd = -1;
}

static void
daemon_free(struct httpd_daemon *dm)
{
    if (dm == NULL) {
        return;
    }
    acceptor_stop(dm);
    if (dm->listen_fd >= 0) {
        close(dm->listen_fd);
    }
    if (dm->d != NULL) {
        MHD_stop_daemon(dm->d); /* a failed start only: a started one is stopped first */
    }
    free(dm->bind_addr);
    free(dm->pem_path);
    free(dm->tls_cert);
    free(dm->tls_key);
    free(dm);
}

/* Starts a daemon for settings c on a duplicate of listening socket fd (fd stays the caller's:
 * libmicrohttpd closes the socket it was given when it fails after taking it), taking the
 * plan's PEM. NULL when it cannot start (the PEM stays the plan's). */
static struct httpd_daemon *
daemon_start(struct httpd *h, const struct conf_http *c, int fd, struct httpd_plan *p)
{
    int mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (mine < 0) {
        return NULL;
    }
    struct httpd_daemon *dm = xcalloc(1, sizeof(*dm));
    dm->h = h;
    dm->listen_fd = mine;
    dm->stop_efd = -1;
    dm->workers = httpd_workers(c);
    dm->idle_timeout_ms = c->idle_timeout_ms;
    /* epoll: one set per worker, no FD_SETSIZE limit, no thread per connection. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    if (p->cert != NULL) {
        flags |= MHD_USE_TLS;
    }
    int64_t idle_ms = c->idle_timeout_ms;
    unsigned idle_s = idle_ms / 1000 >= UINT_MAX ? UINT_MAX : (unsigned)((idle_ms + 999) / 1000);
    uint64_t limit = (uint64_t)HTTPD_MHD_LIMIT_PER_WORKER * dm->workers;
    /* The logger comes first so MHD reports option problems through it. */
    struct MHD_OptionItem opts[16] = {
            {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)httpd_mhd_log, dm},
            {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(limit > UINT_MAX / 2 ? UINT_MAX / 2 : limit),
             NULL},
            {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)idle_s, NULL},
            {MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTPD_CONN_MEMORY, NULL},
            {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)httpd_completed, dm},
            {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)httpd_notify_conn, dm},
            {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)httpd_uri_log, dm},
    };
    size_t n = 7;
    if (dm->workers > 1) {
        /* One worker is libmicrohttpd's single polling thread (a pool of 1 is refused). */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, dm->workers, NULL};
    }
    if (p->cert != NULL) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, p->cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, p->key};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    dm->d = MHD_start_daemon(flags, 0, httpd_admit, dm, httpd_access, dm, MHD_OPTION_ARRAY, opts,
                             MHD_OPTION_END);
    if (dm->d == NULL || acceptor_start(dm) != 0) {
        if (dm->d != NULL) {
            MHD_stop_daemon(dm->d);
        }
        close(mine);
        free(dm);
        return NULL;
    }
    dm->bind_addr = xstrdup(c->bind_addr);
    dm->pem_path = c->ssl_combined_pem != NULL ? xstrdup(c->ssl_combined_pem) : NULL;
    dm->tls_cert = p->cert;
    dm->tls_key = p->key;
    p->cert = NULL;
    p->key = NULL;
    return dm;
}

/* Stops accepting on dm: its acceptor ends and its duplicate of the listening socket is closed
 * (when another daemon holds a duplicate, the socket itself stays open); its answers say
 * Connection: close. */
static void
daemon_quiesce(struct httpd_daemon *dm)
{
    atomic_store(&dm->stopping, true);
    acceptor_stop(dm);
    if (dm->listen_fd >= 0) {
        close(dm->listen_fd);
        dm->listen_fd = -1;
    }
}

/* Waits until *count is 0, or until dm's stop deadline when bounded. Returns the count left. */
static unsigned
wait_zero(struct httpd_daemon *dm, _Atomic unsigned *count, bool bounded)
{
    struct httpd *h = dm->h;
    pthread_mutex_lock(&h->mu);
    while (atomic_load(count) > 0) {
        int64_t deadline = atomic_load(&dm->stop_deadline);
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

/* Moves dm's stop deadline to deadline_ms when that is earlier (0 = none yet). */
static void
daemon_deadline_min(struct httpd_daemon *dm, int64_t deadline_ms)
{
    int64_t cur = atomic_load(&dm->stop_deadline);
    while ((cur == 0 || deadline_ms < cur) &&
           !atomic_compare_exchange_weak(&dm->stop_deadline, &cur, deadline_ms)) {
    }
}

/* Stops dm (quiesced already): no write is forwarded any more; waits until the requests being
 * answered are done or its deadline passes; the writes still waiting are then answered (flush:
 * at once, as at write-timeout; otherwise at their own write-timeout), and MHD stops. */
static void
daemon_stop(struct httpd_daemon *dm, int64_t deadline_ms, bool flush, bool cut_reads)
{
    struct httpd *h = dm->h;
    const char *what = flush ? "shutdown" : "previous server";
    daemon_deadline_min(dm, deadline_ms);
    atomic_store(&dm->stopping, true);
    atomic_store(&dm->closing, true);
    /* 1. Answers in progress finish while the backends are still sending, until the deadline. */
    unsigned left = wait_zero(dm, &dm->in_flight, true);
    if (left > 0) {
        log_warn(h->name, "%s: answering the writes still waiting count=%u", what, left);
    }
    /* 2. Every suspended connection must be resumed before MHD_stop_daemon(). The flushed lane
     * fires each waiting write's deadline at once, so this wait is short. */
    if (flush) {
        timer_flush_lane(h->env.timer, h->write_lane);
        /* Reads still streaming or waiting for a backend end now (fetch engine stopped): each
         * parked connection is woken and its answer cut (or 503 before its head). A relay a
         * reload removed lets its reads finish instead: the engine serves the others. */
        if (cut_reads && h->env.fetcher != NULL) {
            fetcher_stop(h->env.fetcher);
        }
    }
    (void)wait_zero(dm, &dm->waiting, false);
    /* 3. A moment for those answers to be sent (none after a second signal). */
    if (!atomic_load(&h->hurried)) {
        atomic_store(&dm->stop_deadline, clock_mono_ms() + HTTPD_SEND_GRACE_MS);
    }
    left = wait_zero(dm, &dm->in_flight, true);
    if (left > 0) {
        log_warn(h->name, "%s: closing connections with requests in flight count=%u", what, left);
    }
    acceptor_stop(dm); /* quiesced already; no connection is added to a stopped daemon */
    MHD_stop_daemon(dm->d);
    dm->d = NULL;
}

/* ------------------------------------------------------------------ lifecycle */

static struct conn_set_conf
conn_conf_of(struct httpd *h, const struct conf_http *c)
{
    return (struct conn_set_conf){c->max_connections, c->read_timeout_ms,
                                  c->ssl_combined_pem != NULL, h->env.timer, &h->stats};
}

/* Reads c's PEM file into p; 0, or -1 with *err filled (the line of ssl-combined-pem). */
static int
plan_read_pem(struct httpd_plan *p, const struct conf_http *c, struct ir_err *err)
{
    if (c->ssl_combined_pem == NULL) {
        return 0;
    }
    struct pem_pair pem = {NULL, NULL};
    struct ir_err pe = {0, ""};
    if (pem_load_pair(c->ssl_combined_pem, &pem, &pe) != 0) {
        ir_err_set(err, c->pem_line, "[http.%s] ssl-combined-pem: %s", c->name, pe.msg);
        return -1;
    }
    p->cert = pem.cert;
    p->key = pem.key;
    return 0;
}

static void
plan_cleanup(struct httpd_plan *p)
{
    if (p->fd >= 0) {
        close(p->fd);
    }
    free(p->cert);
    free(p->key);
    *p = (struct httpd_plan){.fd = -1};
}

struct httpd *
httpd_new(const struct conf_http *c, struct backend **backends, const struct httpd_env *env,
          struct ir_err *err)
{
    struct httpd *h = xcalloc(1, sizeof(*h));
    atomic_init(&h->refs, 1);
    h->name = xstrdup(c->name);
    h->env = *env;
    h->plan.fd = -1;
    atomic_init(&h->max_conns, c->max_connections);
    struct conn_set_conf cc = conn_conf_of(h, c);
    h->conns = conn_set_new(&cc);
    h->write_lane = timer_lane_new(env->timer);
    pthread_mutex_init(&h->mu, NULL);
    clock_cond_init(&h->idle);
    h->gen = gen_new(h, c, backends);
    if (plan_read_pem(&h->plan, c, err) != 0) {
        httpd_free(h);
        return NULL;
    }
    h->plan.restart = true;
    h->plan.prepared = true;
    return h;
}

/* Binds c's address into the plan (already bound: nothing). 0, or -1 with *err filled. */
static int
plan_bind(struct httpd_plan *p, const struct conf_http *c, struct ir_err *err)
{
    char why[128];
    if (p->fd >= 0) {
        return 0;
    }
    struct hostport_listen_opts lo = {.socktype = SOCK_STREAM, .rcvbuf = 0, .nonblock = true};
    p->fd = hostport_listen(&c->bind, &lo, NULL, why, sizeof(why));
    if (p->fd < 0) {
        ir_err_set(err, c->line, "[http.%s] cannot listen on %s: %s", c->name, c->bind_addr, why);
        return -1;
    }
    return 0;
}

int
httpd_bind(struct httpd *h, struct ir_err *err)
{
    return plan_bind(&h->plan, h->gen->c, err);
}

int
httpd_start(struct httpd *h, struct ir_err *err)
{
    const struct conf_http *c = h->gen->c;
    if (h->plan.cert != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        ir_err_set(err, c->line, "[http.%s] libmicrohttpd was built without TLS", c->name);
        return -1;
    }
    if (plan_bind(&h->plan, c, err) != 0) {
        return -1;
    }
    h->cur = daemon_start(h, c, h->plan.fd, &h->plan);
    plan_cleanup(&h->plan); /* the daemon serves a duplicate of the socket */
    if (h->cur == NULL) {
        ir_err_set(err, c->line, "[http.%s] cannot start the server on %s", c->name, c->bind_addr);
        return -1;
    }
    log_go(LOG_INFO, h->name, NULL, "Starting %s relay \"%s\" on %s",
           h->cur->tls_cert ? "HTTPS" : "HTTP", h->name, c->bind_addr);
    log_info(h->name, "serving workers=%u max_connections=%lld", h->cur->workers,
             (long long)c->max_connections);
    return 0;
}

/* ------------------------------------------------------------------ reload */

static bool
str_equal(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

int
httpd_prepare(struct httpd *h, const struct conf_http *c, struct ir_err *err)
{
    struct httpd_daemon *cur = h->cur;
    plan_cleanup(&h->plan);
    if (plan_read_pem(&h->plan, c, err) != 0) {
        return -1;
    }
    bool moved = cur == NULL || strcmp(cur->bind_addr, c->bind_addr) != 0;
    if (moved && plan_bind(&h->plan, c, err) != 0) {
        plan_cleanup(&h->plan);
        return -1;
    }
    h->plan.restart = moved || !str_equal(cur->pem_path, c->ssl_combined_pem) ||
                      !str_equal(cur->tls_cert, h->plan.cert) ||
                      !str_equal(cur->tls_key, h->plan.key) || cur->workers != httpd_workers(c) ||
                      cur->idle_timeout_ms != c->idle_timeout_ms;
    h->plan.prepared = true;
    return 0;
}

void
httpd_abort(struct httpd *h)
{
    plan_cleanup(&h->plan);
}

/* A new daemon for c takes over from h->cur: on the plan's new socket, or on a duplicate of
 * the current one. True when it runs (the old one is then on h->old, quiesced, to be drained
 * by deadline_ms); false when it could not start (logged; the old one keeps serving). */
static bool
httpd_restart(struct httpd *h, const struct conf_http *c, int64_t deadline_ms)
{
    struct httpd_daemon *old = h->cur;
    int fd = h->plan.fd >= 0 ? h->plan.fd : old->listen_fd;
    struct httpd_daemon *dm = daemon_start(h, c, fd, &h->plan);
    if (dm == NULL) {
        log_error(h->name,
                  "cannot start the server with the new settings, the previous one keeps "
                  "serving addr=%s",
                  old->bind_addr);
        return false;
    }
    daemon_quiesce(old);
    daemon_deadline_min(old, deadline_ms);
    pthread_mutex_lock(&h->mu);
    old->next = h->old;
    h->old = old;
    h->cur = dm;
    pthread_mutex_unlock(&h->mu);
    if (strcmp(old->bind_addr, c->bind_addr) != 0) {
        log_go(LOG_INFO, h->name, NULL, "Starting %s relay \"%s\" on %s",
               dm->tls_cert ? "HTTPS" : "HTTP", h->name, c->bind_addr);
    }
    log_info(h->name,
             "server restarted with the new settings, the previous one answers its connections "
             "workers=%u addr=%s previous_addr=%s",
             dm->workers, c->bind_addr, old->bind_addr);
    return true;
}

bool
httpd_commit(struct httpd *h, const struct conf_http *c, struct backend *const *backends,
             int64_t deadline_ms)
{
    struct conn_set_conf cc = conn_conf_of(h, c);
    conn_set_reconfigure(h->conns, &cc);
    atomic_store(&h->max_conns, c->max_connections);
    struct httpd_gen *g = gen_new(h, c, backends);
    pthread_mutex_lock(&h->mu);
    struct httpd_gen *was = h->gen;
    h->gen = g;
    pthread_mutex_unlock(&h->mu);
    gen_unref(was);
    bool restarted = h->plan.prepared && h->plan.restart && h->cur != NULL &&
                     httpd_restart(h, c, deadline_ms);
    plan_cleanup(&h->plan);
    return restarted;
}

/* Takes the next old daemon nobody drains yet, or NULL. */
static struct httpd_daemon *
take_old(struct httpd *h)
{
    pthread_mutex_lock(&h->mu);
    struct httpd_daemon *dm = h->old;
    while (dm != NULL && dm->taken) {
        dm = dm->next;
    }
    if (dm != NULL) {
        dm->taken = true;
    }
    pthread_mutex_unlock(&h->mu);
    return dm;
}

static void
unlink_old(struct httpd *h, struct httpd_daemon *dm)
{
    pthread_mutex_lock(&h->mu);
    struct httpd_daemon **pp = &h->old;
    while (*pp != dm) {
        pp = &(*pp)->next;
    }
    *pp = dm->next;
    pthread_mutex_unlock(&h->mu);
}

void
httpd_drain(struct httpd *h)
{
    struct httpd_daemon *dm = NULL;
    while ((dm = take_old(h)) != NULL) {
        /* Its connections end on their own (each answer said Connection: close), or at the
         * deadline; then it stops like a relay at shutdown. */
        unsigned left = wait_zero(dm, &dm->conns, true);
        log_info(h->name, "previous server stopped after a reload connections_closed=%u", left);
        daemon_stop(dm, atomic_load(&dm->stop_deadline), false, false);
        unlink_old(h, dm);
        daemon_free(dm);
    }
}

/* ------------------------------------------------------------------ shutdown */

void
httpd_refuse_writes(struct httpd *h)
{
    pthread_mutex_lock(&h->mu);
    for (struct httpd_daemon *dm = h->old; dm != NULL; dm = dm->next) {
        atomic_store(&dm->closing, true);
    }
    pthread_mutex_unlock(&h->mu);
    if (h->cur != NULL) {
        atomic_store(&h->cur->closing, true);
    }
}

void
httpd_quiesce(struct httpd *h)
{
    if (h->cur != NULL) {
        daemon_quiesce(h->cur);
    }
}

/* Moves the deadline of every old daemon to deadline_ms when earlier, and wakes their waits. */
static void
old_deadline_min(struct httpd *h, int64_t deadline_ms)
{
    pthread_mutex_lock(&h->mu);
    for (struct httpd_daemon *dm = h->old; dm != NULL; dm = dm->next) {
        daemon_deadline_min(dm, deadline_ms);
    }
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
}

void
httpd_stop(struct httpd *h, int64_t deadline_ms, bool cut_reads)
{
    old_deadline_min(h, deadline_ms);
    if (h->cur != NULL && h->cur->d != NULL) {
        daemon_stop(h->cur, deadline_ms, true, cut_reads);
    }
    httpd_drain(h); /* those no other thread drains */
}

void
httpd_hurry(struct httpd *h, int64_t deadline_ms)
{
    atomic_store(&h->hurried, true);
    if (h->cur != NULL) {
        daemon_deadline_min(h->cur, deadline_ms);
    }
    old_deadline_min(h, deadline_ms);
}

struct httpd *
httpd_ref(struct httpd *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    return h;
}

void
httpd_unref(struct httpd *h)
{
    if (h == NULL || atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    daemon_free(h->cur);
    while (h->old != NULL) {
        struct httpd_daemon *dm = h->old;
        h->old = dm->next;
        daemon_free(dm);
    }
    plan_cleanup(&h->plan);
    gen_unref(h->gen);
    conn_set_free(h->conns);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h->name);
    free(h);
}

void
httpd_free(struct httpd *h)
{
    httpd_unref(h);
}

const char *
httpd_name(const struct httpd *h)
{
    return h->name;
}

const struct httpd_stats *
httpd_stats(const struct httpd *h)
{
    return &h->stats;
}
