/* recvmmsg(), struct mmsghdr and MSG_WAITFORONE are GNU extensions of glibc. */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "udp/listener.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include "lp/lp.h"
#include "udp/output.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/xalloc.h"

/* DESIGN. The receiving thread loops: one recvmmsg() takes up to RECV_BATCH datagrams
 * (MSG_WAITFORONE: it blocks for the first only, so a lone datagram is not delayed); each goes
 * through lp_process() with its own "now"; then, output by output, every valid chunk of the
 * whole batch is queued and sent with as few sendmmsg() calls as possible. The lp results live
 * until every output has sent, so unchanged datagrams are forwarded from the receive buffer
 * without a copy.
 *
 * Stop: the main thread sets `stopping` and calls shutdown(SHUT_RD) on the socket. On Linux this
 * returns ENOTCONN for an unbound-peer UDP socket but still marks it shut down and wakes a
 * recvmmsg() blocked on it (which then returns at once, also when entered later), so the thread
 * sees the flag within one batch: no timeout, no polling. The main thread then joins it and
 * closes the socket.
 *
 * Receive errors: the thread never ends because of one. Each failed recvmmsg() is counted
 * (receive_errors) and logged, rate-limited with the count; then the thread waits before the
 * next try, 1 ms doubling to RECV_BACKOFF_MAX_MS while the errors persist (reset by a success),
 * on a condvar the stop broadcasts, so a persistent error neither busy-loops nor delays a stop.
 * Only a socket that can never work again (EBADF, ENOTSOCK) ends the thread: logged as an
 * error, and receiver_up drops to 0 for /metrics and /health. */

#define RECV_BATCH     64
#define RECV_DGRAM_MAX 65536 /* above the largest UDP payload: nothing is ever truncated */
/* Repeated invalid datagrams log at most once per period, with a count. */
#define LISTENER_LOG_PERIOD_MS 10000
/* The longest wait between two receives that keep failing. */
#define RECV_BACKOFF_MAX_MS 1000

/* Receive buffers and per-datagram results of one recvmmsg(). */
struct recv_batch {
    char *bufs; /* owned: RECV_BATCH * RECV_DGRAM_MAX bytes; buffer i at i * RECV_DGRAM_MAX */
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_storage from[RECV_BATCH];
    struct lp_result res[RECV_BATCH];
};

struct udp_listener {
    const struct conf_udp *c;    /* borrowed; immutable */
    enum lp_prec prec;           /* immutable after new */
    struct udp_output **outputs; /* owned, in conf order; receiving thread only after start */
    size_t n_outputs;            /* immutable after new */
    int fd;                      /* owned; main thread opens and closes it around the thread */
    pthread_t thread;            /* main thread only */
    bool running;                /* main thread only */
    _Atomic bool stopping;       /* atomic: set by the main thread, read by the receiver */
    struct udp_stats stats;      /* atomic */
    struct recv_batch *rb;       /* owned; receiving thread only after start */
    struct ratelimit invalid_rl; /* receiving thread only */
    struct ratelimit error_rl;   /* receiving thread only: recvmmsg and memory errors */
    int64_t backoff_ms;          /* receiving thread only: next wait after a failed receive */
    pthread_mutex_t mu;          /* guards nothing but the backoff wait */
    pthread_cond_t wake;         /* broadcast by stop */
    int (*fault)(void *ctx);     /* immutable after start: tests' error injection, or NULL */
    void *fault_ctx;             /* immutable after start */
};

static enum lp_prec
listener_prec(enum conf_precision p)
{
    switch (p) {
    case CONF_PREC_N:
        return LP_PREC_NS;
    case CONF_PREC_U:
        return LP_PREC_US;
    case CONF_PREC_MS:
        return LP_PREC_MS;
    case CONF_PREC_S:
        return LP_PREC_S;
    case CONF_PREC_M:
        return LP_PREC_M;
    case CONF_PREC_H:
        return LP_PREC_H;
    }
    return LP_PREC_NS;
}

struct udp_listener *
udp_listener_new(const struct conf_udp *c, struct ir_err *err)
{
    struct udp_listener *l = xcalloc(1, sizeof(*l));
    l->c = c;
    l->fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    clock_cond_init(&l->wake);
    l->prec = listener_prec(c->precision);
    l->outputs = xcalloc(c->n_outputs ? c->n_outputs : 1, sizeof(struct udp_output *));
    for (size_t i = 0; i < c->n_outputs; i++) {
        l->outputs[i] = udp_output_new(c->name, &c->outputs[i], err);
        if (l->outputs[i] == NULL) {
            goto fail;
        }
        l->n_outputs++;
    }
    return l;
fail:
    udp_listener_free(l);
    return NULL;
}

/* Creates and binds the socket with its read buffer (the address was parsed at load; [::]
 * falls back to 0.0.0.0 on a host without IPv6); logs what the kernel granted. */
static int
listener_bind(struct udp_listener *l, struct ir_err *err)
{
    char why[200];
    struct hostport_addrs addrs;
    int line = l->c->bind_line > 0 ? l->c->bind_line : l->c->line;
    if (hostport_resolve(&l->c->bind, true, SOCK_DGRAM, &addrs, why, sizeof(why)) != 0) {
        ir_err_set(err, line, "[udp.%s] bind-addr: cannot resolve \"%s\": %s", l->c->name,
                   l->c->bind_addr, why);
        return -1;
    }
    int want = l->c->read_buffer > INT_MAX ? INT_MAX : (int)l->c->read_buffer;
    struct hostport_listen_opts o = {.socktype = SOCK_DGRAM, .rcvbuf = want, .nonblock = false};
    size_t which = 0;
    l->fd = hostport_listen_addrs(&addrs, &o, &which, why, sizeof(why));
    if (l->fd < 0) {
        ir_err_set(err, line, "[udp.%s] bind-addr: cannot listen on \"%s\": %s", l->c->name,
                   l->c->bind_addr, why);
        return -1;
    }
    int granted = 0;
    socklen_t glen = sizeof(granted);
    if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &granted, &glen) != 0) {
        granted = -1;
    }
    log_info(l->c->name, "listening on udp addr=%s read_buffer=%d read_buffer_granted=%d",
             l->c->bind_addr, want, granted);
    if (want > 0 && granted < want) {
        log_warn(l->c->name,
                 "read-buffer capped by the kernel (Linux doubles the request and caps it at "
                 "net.core.rmem_max) read_buffer=%d read_buffer_granted=%d",
                 want, granted);
    }
    return 0;
}

/* Reports invalid lines of datagram i (rate-limited), naming the sender and the first reason. */
static void
listener_report_invalid(struct udp_listener *l, size_t i, uint64_t lines)
{
    uint64_t n = ratelimit_hit(&l->invalid_rl, lines, clock_mono_ms(), LISTENER_LOG_PERIOD_MS);
    if (n == 0) {
        return;
    }
    const struct lp_result *r = &l->rb->res[i];
    const struct mmsghdr *m = &l->rb->msgs[i];
    char from[HOSTPORT_TEXT];
    hostport_format(m->msg_hdr.msg_name, m->msg_hdr.msg_namelen, from, sizeof(from));
    /* errors is "unable to parse '<line>': <reason>\n...": log the reason of the first one,
     * never the line itself (it is client data). */
    const char *reason = "invalid line";
    size_t reason_len = strlen(reason);
    if (r->errors != NULL) {
        const char *end = memchr(r->errors, '\n', r->errors_len);
        size_t first = end != NULL ? (size_t)(end - r->errors) : r->errors_len;
        for (size_t k = first; k >= 3; k--) {
            if (memcmp(r->errors + k - 3, "': ", 3) == 0) {
                reason = r->errors + k;
                reason_len = first - k;
                break;
            }
        }
    }
    log_warn(l->c->name, "invalid lines dropped: %.*s sender=%s lines=%llu", (int)reason_len,
             reason, from, (unsigned long long)n);
}

static void
listener_report_error(struct udp_listener *l, const char *what, int e)
{
    uint64_t n = ratelimit_hit(&l->error_rl, 1, clock_mono_ms(), LISTENER_LOG_PERIOD_MS);
    if (n > 0) {
        char buf[128];
        log_error(l->c->name, "%s: %s count=%llu", what, ir_strerror(e, buf, sizeof(buf)),
                  (unsigned long long)n);
    }
}

/* Validates and stamps the n datagrams received. Fills rb->res[0..n). */
static void
listener_parse(struct udp_listener *l, size_t n)
{
    struct recv_batch *rb = l->rb;
    uint64_t points = 0;
    uint64_t invalid = 0;
    for (size_t i = 0; i < n; i++) {
        const char *in = rb->bufs + i * RECV_DGRAM_MAX;
        struct lp_result *r = &rb->res[i];
        if (lp_process(in, rb->msgs[i].msg_len, l->prec, clock_real_ns(), r) != 0) {
            listener_report_error(l, "out of memory, datagram dropped", ENOMEM);
            continue;
        }
        points += r->points;
        invalid += r->dropped;
        if (r->dropped > 0) {
            listener_report_invalid(l, i, r->dropped);
        }
    }
    atomic_fetch_add_explicit(&l->stats.datagrams_received, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->stats.points_received, points, memory_order_relaxed);
    atomic_fetch_add_explicit(&l->stats.lines_dropped_invalid, invalid, memory_order_relaxed);
}

/* Sends the valid lines of rb->res[0..n) to every output, then releases the results. */
static void
listener_forward(struct udp_listener *l, size_t n)
{
    struct recv_batch *rb = l->rb;
    uint64_t mtu_dropped = 0;
    for (size_t k = 0; k < l->n_outputs; k++) {
        for (size_t i = 0; i < n; i++) {
            struct lp_result *r = &rb->res[i];
            if (r->points == 0) {
                continue;
            }
            /* The mutable pointer to the same bytes (data is the receive buffer or r->buf). */
            char *base = rb->bufs + i * RECV_DGRAM_MAX;
            char *data = r->buf != NULL ? r->buf : base + (r->data - base);
            mtu_dropped += udp_output_queue(l->outputs[k], data, r->len, r->points);
        }
        udp_output_flush(l->outputs[k]);
    }
    for (size_t i = 0; i < n; i++) {
        lp_result_cleanup(&rb->res[i]);
    }
    atomic_fetch_add_explicit(&l->stats.lines_dropped_mtu, mtu_dropped, memory_order_relaxed);
}

/* Waits backoff_ms (doubling it for next time, up to RECV_BACKOFF_MAX_MS), or less when a stop
 * comes: the wait is on a condvar udp_listener_stop() broadcasts, never a sleep. */
static void
listener_backoff(struct udp_listener *l)
{
    l->backoff_ms = l->backoff_ms <= 0 ? 1 : l->backoff_ms;
    struct timespec ts;
    clock_deadline(&ts, l->backoff_ms);
    pthread_mutex_lock(&l->mu);
    while (!atomic_load(&l->stopping)) {
        if (pthread_cond_timedwait(&l->wake, &l->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    l->backoff_ms =
            l->backoff_ms * 2 > RECV_BACKOFF_MAX_MS ? RECV_BACKOFF_MAX_MS : l->backoff_ms * 2;
}

/* One recvmmsg(). Returns the number of datagrams, 0 to try again, -1 when the thread must end
 * (stop, or a socket that can never work again). */
static int
listener_receive(struct udp_listener *l)
{
    struct recv_batch *rb = l->rb;
    for (size_t i = 0; i < RECV_BATCH; i++) {
        rb->msgs[i].msg_hdr.msg_namelen = sizeof(rb->from[i]);
        rb->msgs[i].msg_hdr.msg_flags = 0;
        rb->msgs[i].msg_len = 0;
    }
    int e = l->fault != NULL ? l->fault(l->fault_ctx) : 0;
    int n = e != 0 ? -1 : recvmmsg(l->fd, rb->msgs, RECV_BATCH, MSG_WAITFORONE, NULL);
    e = n < 0 && e == 0 ? errno : e;
    if (atomic_load(&l->stopping)) {
        return -1;
    }
    if (n >= 0 || e == EINTR) {
        l->backoff_ms = n >= 0 ? 0 : l->backoff_ms;
        return n >= 0 ? n : 0;
    }
    atomic_fetch_add_explicit(&l->stats.receive_errors, 1, memory_order_relaxed);
    if (e == EBADF || e == ENOTSOCK) {
        char buf[128];
        log_error(l->c->name, "receive failed, relay stopped receiving: %s",
                  ir_strerror(e, buf, sizeof(buf)));
        return -1;
    }
    listener_report_error(l, "receive failed", e);
    listener_backoff(l);
    return 0;
}

static void *
listener_run(void *arg)
{
    struct udp_listener *l = arg;
    for (;;) {
        int n = listener_receive(l);
        if (n < 0) {
            break;
        }
        listener_parse(l, (size_t)n);
        listener_forward(l, (size_t)n);
    }
    atomic_store(&l->stats.receiver_up, 0);
    uint64_t pending = ratelimit_flush(&l->invalid_rl);
    if (pending > 0) {
        log_warn(l->c->name, "invalid lines dropped lines=%llu", (unsigned long long)pending);
    }
    pending = ratelimit_flush(&l->error_rl);
    if (pending > 0) {
        log_error(l->c->name, "receive failed count=%llu", (unsigned long long)pending);
    }
    for (size_t k = 0; k < l->n_outputs; k++) {
        udp_output_log_pending(l->outputs[k]);
    }
    return NULL;
}

static struct recv_batch *
recv_batch_new(void)
{
    struct recv_batch *rb = xcalloc(1, sizeof(*rb));
    rb->bufs = xmalloc((size_t)RECV_BATCH * RECV_DGRAM_MAX);
    for (size_t i = 0; i < RECV_BATCH; i++) {
        rb->iov[i].iov_base = rb->bufs + i * RECV_DGRAM_MAX;
        rb->iov[i].iov_len = RECV_DGRAM_MAX;
        rb->msgs[i].msg_hdr.msg_iov = &rb->iov[i];
        rb->msgs[i].msg_hdr.msg_iovlen = 1;
        rb->msgs[i].msg_hdr.msg_name = &rb->from[i];
    }
    return rb;
}

int
udp_listener_start(struct udp_listener *l, struct ir_err *err)
{
    if (listener_bind(l, err) != 0) {
        goto fail;
    }
    for (size_t k = 0; k < l->n_outputs; k++) {
        if (udp_output_open(l->outputs[k], err) != 0) {
            goto fail;
        }
    }
    if (l->rb == NULL) {
        l->rb = recv_batch_new();
    }
    atomic_store(&l->stopping, false);
    atomic_store(&l->stats.receiver_up, 1);
    int rc = pthread_create(&l->thread, NULL, listener_run, l);
    if (rc != 0) {
        atomic_store(&l->stats.receiver_up, 0);
        char buf[128];
        ir_err_set(err, l->c->line, "[udp.%s] cannot start the receiving thread: %s", l->c->name,
                   ir_strerror(rc, buf, sizeof(buf)));
        goto fail;
    }
    l->running = true;
    return 0;
fail:
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    return -1;
}

void
udp_listener_stop(struct udp_listener *l)
{
    if (l == NULL || !l->running) {
        return;
    }
    atomic_store(&l->stopping, true);
    pthread_mutex_lock(&l->mu);
    pthread_cond_broadcast(&l->wake); /* a receiver backing off after errors */
    pthread_mutex_unlock(&l->mu);
    /* Fails with ENOTCONN on an unconnected UDP socket, yet wakes the receiver (see DESIGN). */
    (void)shutdown(l->fd, SHUT_RD);
    pthread_join(l->thread, NULL);
    close(l->fd);
    l->fd = -1;
    l->running = false;
    log_info(l->c->name, "udp relay stopped datagrams_received=%llu",
             (unsigned long long)atomic_load(&l->stats.datagrams_received));
}

void
udp_listener_free(struct udp_listener *l)
{
    if (l == NULL) {
        return;
    }
    udp_listener_stop(l);
    for (size_t k = 0; k < l->n_outputs; k++) {
        udp_output_free(l->outputs[k]);
    }
    free(l->outputs);
    if (l->rb != NULL) {
        free(l->rb->bufs);
        free(l->rb);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    free(l);
}

void
udp_listener_inject_fault(struct udp_listener *l, int (*fault)(void *ctx), void *ctx)
{
    l->fault = fault;
    l->fault_ctx = ctx;
}

const char *
udp_listener_name(const struct udp_listener *l)
{
    return l->c->name;
}

const struct udp_stats *
udp_listener_stats(const struct udp_listener *l)
{
    return &l->stats;
}

const struct udp_output_stats *
udp_listener_output(const struct udp_listener *l, size_t i, const char **name)
{
    if (i >= l->n_outputs) {
        return NULL;
    }
    if (name != NULL) {
        *name = udp_output_name(l->outputs[i]);
    }
    return udp_output_stats(l->outputs[i]);
}
