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

#include "conf/conf_diff.h"
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
 * Reload: what the thread reads of the configuration (precision, outputs) is a generation,
 * struct udp_gen. A reload prepares the next one on the main thread (outputs whose settings did
 * not change are shared with the current one, with their sockets and counters; the others are
 * resolved and opened) and hands it over through an atomic pointer; the thread takes it after its
 * next receive, before handling those datagrams, and drops the old one (closing the sockets of
 * the outputs no longer used). /metrics reads the newest generation (latest, under mu). A changed
 * bind-addr instead ends the thread, closes the old socket and starts a thread on the new one
 * (bound during the prepare step).
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

/* One output shared by the generations that keep it unchanged (its socket and counters stay). */
struct udp_slot {
    _Atomic unsigned refs;  /* atomic: one per generation holding it */
    struct udp_output *out; /* owned: used by the receiving thread only after start */
    struct conf *tree;      /* owned reference: the tree out's settings come from */
};

/* What the receiving thread reads of the configuration: immutable, reference-counted. */
struct udp_gen {
    _Atomic unsigned refs;    /* atomic */
    struct conf *tree;        /* owned reference (NULL for a section built by hand) */
    const struct conf_udp *c; /* borrowed from tree */
    enum lp_prec prec;
    struct udp_slot **slots; /* owned array of c->n_outputs, a reference on each */
    size_t n;                /* slots made so far (c->n_outputs once complete) */
};

struct udp_listener {
    _Atomic unsigned refs;          /* atomic: the service's, plus one per view (relay/world.c) */
    char *name;                     /* immutable: owned copy of the relay's name */
    struct udp_gen *cur;            /* receiving thread only after start: the generation in use */
    _Atomic(struct udp_gen *) next; /* atomic: handed over by a reload, taken by the receiver */
    struct udp_gen *latest;         /* guarded by mu: the newest generation (/metrics shows it) */
    struct udp_gen *plan;           /* main thread: a reload being prepared */
    int plan_fd;                    /* main thread: the socket of a changed bind-addr, or -1 */
    int fd;                         /* owned; main thread opens and closes it around the thread */
    pthread_t thread;               /* main thread only */
    bool running;                   /* main thread only */
    _Atomic bool stopping;          /* atomic: set by the main thread, read by the receiver */
    struct udp_stats stats;         /* atomic */
    struct recv_batch *rb;          /* owned; receiving thread only after start */
    struct ratelimit invalid_rl;    /* receiving thread only */
    struct ratelimit error_rl;      /* receiving thread only: recvmmsg and memory errors */
    int64_t backoff_ms;             /* receiving thread only: next wait after a failed receive */
    pthread_mutex_t mu;             /* guards latest, and the backoff wait */
    pthread_cond_t wake;            /* broadcast by stop */
    int (*fault)(void *ctx);        /* immutable after start: tests' error injection, or NULL */
    void *fault_ctx;                /* immutable after start */
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

static void
slot_unref(struct udp_slot *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    udp_output_free(s->out);
    conf_unref(s->tree);
    free(s);
}

static void
gen_unref(struct udp_gen *g)
{
    if (g == NULL || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        slot_unref(g->slots[i]);
    }
    free(g->slots);
    conf_unref(g->tree);
    free(g);
}

static struct udp_gen *
gen_ref(struct udp_gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

/* The output of prev (NULL: none) named like o whose settings are o's, or NULL. */
static struct udp_slot *
gen_find_same(const struct udp_gen *prev, const struct conf_udp_output *o)
{
    for (size_t i = 0; prev != NULL && i < prev->n; i++) {
        const struct conf_udp_output *was = &prev->c->outputs[i];
        if (strcmp(was->name, o->name) == 0 && conf_section_equal(CONF_SEC_UDP_OUTPUT, was, o)) {
            return prev->slots[i];
        }
    }
    return NULL;
}

/* A generation for c: the outputs of prev with unchanged settings are shared, the others are
 * resolved (and their sockets made when open). NULL with *err filled when one cannot be. */
static struct udp_gen *
gen_new(const struct conf_udp *c, const struct udp_gen *prev, bool open, struct ir_err *err)
{
    struct udp_gen *g = xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    g->tree = conf_ref(c->tree);
    g->c = c;
    g->prec = listener_prec(c->precision);
    g->slots = xcalloc(c->n_outputs ? c->n_outputs : 1, sizeof(struct udp_slot *));
    for (size_t i = 0; i < c->n_outputs; i++) {
        struct udp_slot *same = gen_find_same(prev, &c->outputs[i]);
        if (same != NULL) {
            atomic_fetch_add_explicit(&same->refs, 1, memory_order_relaxed);
            g->slots[g->n++] = same;
            continue;
        }
        struct udp_output *out = udp_output_new(c->name, &c->outputs[i], err);
        if (out != NULL && open && udp_output_open(out, err) != 0) {
            udp_output_free(out);
            out = NULL;
        }
        if (out == NULL) {
            gen_unref(g);
            return NULL;
        }
        struct udp_slot *s = xcalloc(1, sizeof(*s));
        atomic_init(&s->refs, 1);
        s->out = out;
        s->tree = conf_ref(c->tree);
        g->slots[g->n++] = s;
    }
    return g;
}

struct udp_listener *
udp_listener_new(const struct conf_udp *c, struct ir_err *err)
{
    struct udp_gen *g = gen_new(c, NULL, false, err);
    if (g == NULL) {
        return NULL;
    }
    struct udp_listener *l = xcalloc(1, sizeof(*l));
    atomic_init(&l->refs, 1);
    l->name = xstrdup(c->name);
    l->fd = -1;
    l->plan_fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    clock_cond_init(&l->wake);
    l->cur = g;
    l->latest = gen_ref(g);
    return l;
}

/* Logs the read buffer the kernel granted fd against what c asked. */
static void
listener_note_rcvbuf(const struct conf_udp *c, int fd)
{
    int want = c->read_buffer > INT_MAX ? INT_MAX : (int)c->read_buffer;
    int granted = 0;
    socklen_t glen = sizeof(granted);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &glen) != 0) {
        granted = -1;
    }
    log_info(c->name, "listening on udp addr=%s read_buffer=%d read_buffer_granted=%d",
             c->bind_addr, want, granted);
    if (want > 0 && granted < want) {
        log_warn(c->name,
                 "read-buffer capped by the kernel (Linux doubles the request and caps it at "
                 "net.core.rmem_max) read_buffer=%d read_buffer_granted=%d",
                 want, granted);
    }
}

/* Creates and binds c's socket with its read buffer (the address was parsed at load; [::]
 * falls back to 0.0.0.0 on a host without IPv6); logs what the kernel granted. The socket, or
 * -1 with *err filled. */
static int
listener_bind(const struct conf_udp *c, struct ir_err *err)
{
    char why[200];
    struct hostport_addrs addrs;
    int line = c->bind_line > 0 ? c->bind_line : c->line;
    if (hostport_resolve(&c->bind, true, SOCK_DGRAM, &addrs, why, sizeof(why)) != 0) {
        ir_err_set(err, line, "[udp.%s] bind-addr: cannot resolve \"%s\": %s", c->name,
                   c->bind_addr, why);
        return -1;
    }
    int want = c->read_buffer > INT_MAX ? INT_MAX : (int)c->read_buffer;
    struct hostport_listen_opts o = {.socktype = SOCK_DGRAM, .rcvbuf = want, .nonblock = false};
    size_t which = 0;
    int fd = hostport_listen_addrs(&addrs, &o, &which, why, sizeof(why));
    if (fd < 0) {
        ir_err_set(err, line, "[udp.%s] bind-addr: cannot listen on \"%s\": %s", c->name,
                   c->bind_addr, why);
        return -1;
    }
    listener_note_rcvbuf(c, fd);
    return fd;
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
    log_warn(l->name, "invalid lines dropped: %.*s sender=%s lines=%llu", (int)reason_len, reason,
             from, (unsigned long long)n);
}

static void
listener_report_error(struct udp_listener *l, const char *what, int e)
{
    uint64_t n = ratelimit_hit(&l->error_rl, 1, clock_mono_ms(), LISTENER_LOG_PERIOD_MS);
    if (n > 0) {
        char buf[128];
        log_error(l->name, "%s: %s count=%llu", what, ir_strerror(e, buf, sizeof(buf)),
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
        if (lp_process(in, rb->msgs[i].msg_len, l->cur->prec, clock_real_ns(), r) != 0) {
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
    const struct udp_gen *g = l->cur;
    uint64_t mtu_dropped = 0;
    for (size_t k = 0; k < g->n; k++) {
        for (size_t i = 0; i < n; i++) {
            struct lp_result *r = &rb->res[i];
            if (r->points == 0) {
                continue;
            }
            /* The mutable pointer to the same bytes (data is the receive buffer or r->buf). */
            char *base = rb->bufs + i * RECV_DGRAM_MAX;
            char *data = r->buf != NULL ? r->buf : base + (r->data - base);
            mtu_dropped += udp_output_queue(g->slots[k]->out, data, r->len, r->points);
        }
        udp_output_flush(g->slots[k]->out);
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
        log_error(l->name, "receive failed, relay stopped receiving: %s",
                  ir_strerror(e, buf, sizeof(buf)));
        return -1;
    }
    listener_report_error(l, "receive failed", e);
    listener_backoff(l);
    return 0;
}

/* Receiving thread: takes the generation a reload handed over. The outputs it drops log what
 * they still had to report, and close (unless another generation keeps them). */
static void
listener_take_next(struct udp_listener *l)
{
    struct udp_gen *next = atomic_exchange(&l->next, NULL);
    if (next == NULL) {
        return;
    }
    struct udp_gen *was = l->cur;
    for (size_t k = 0; k < was->n; k++) {
        bool kept = false;
        for (size_t j = 0; j < next->n && !kept; j++) {
            kept = next->slots[j] == was->slots[k];
        }
        if (!kept) {
            udp_output_log_pending(was->slots[k]->out);
        }
    }
    l->cur = next;
    gen_unref(was);
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
        listener_take_next(l);
        listener_parse(l, (size_t)n);
        listener_forward(l, (size_t)n);
    }
    atomic_store(&l->stats.receiver_up, 0);
    uint64_t pending = ratelimit_flush(&l->invalid_rl);
    if (pending > 0) {
        log_warn(l->name, "invalid lines dropped lines=%llu", (unsigned long long)pending);
    }
    pending = ratelimit_flush(&l->error_rl);
    if (pending > 0) {
        log_error(l->name, "receive failed count=%llu", (unsigned long long)pending);
    }
    listener_take_next(l);
    for (size_t k = 0; k < l->cur->n; k++) {
        udp_output_log_pending(l->cur->slots[k]->out);
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

/* Starts the receiving thread on l->fd. 0, or -1 with *err filled. */
static int
listener_run_thread(struct udp_listener *l, struct ir_err *err)
{
    if (l->rb == NULL) {
        l->rb = recv_batch_new();
    }
    atomic_store(&l->stopping, false);
    atomic_store(&l->stats.receiver_up, 1);
    int rc = pthread_create(&l->thread, NULL, listener_run, l);
    if (rc != 0) {
        atomic_store(&l->stats.receiver_up, 0);
        char buf[128];
        ir_err_set(err, l->cur->c->line, "[udp.%s] cannot start the receiving thread: %s", l->name,
                   ir_strerror(rc, buf, sizeof(buf)));
        return -1;
    }
    l->running = true;
    return 0;
}

int
udp_listener_bind(struct udp_listener *l, struct ir_err *err)
{
    if (l->plan_fd < 0) {
        l->plan_fd = listener_bind(l->cur->c, err);
    }
    return l->plan_fd >= 0 ? 0 : -1;
}

int
udp_listener_start(struct udp_listener *l, struct ir_err *err)
{
    l->fd = l->plan_fd >= 0 ? l->plan_fd : listener_bind(l->cur->c, err);
    l->plan_fd = -1;
    if (l->fd < 0) {
        goto fail;
    }
    for (size_t k = 0; k < l->cur->n; k++) {
        if (udp_output_open(l->cur->slots[k]->out, err) != 0) {
            goto fail;
        }
    }
    if (listener_run_thread(l, err) != 0) {
        goto fail;
    }
    return 0;
fail:
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
    return -1;
}

/* Ends the receiving thread and closes the socket. */
static void
listener_halt(struct udp_listener *l)
{
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
}

void
udp_listener_stop(struct udp_listener *l)
{
    if (l == NULL || !l->running) {
        return;
    }
    listener_halt(l);
    log_info(l->name, "udp relay stopped datagrams_received=%llu",
             (unsigned long long)atomic_load(&l->stats.datagrams_received));
}

int
udp_listener_prepare(struct udp_listener *l, const struct conf_udp *c, struct ir_err *err)
{
    udp_listener_abort(l);
    if (strcmp(c->bind_addr, l->latest->c->bind_addr) != 0) {
        l->plan_fd = listener_bind(c, err);
        if (l->plan_fd < 0) {
            return -1;
        }
    }
    l->plan = gen_new(c, l->latest, true, err);
    if (l->plan == NULL) {
        udp_listener_abort(l);
        return -1;
    }
    return 0;
}

void
udp_listener_abort(struct udp_listener *l)
{
    gen_unref(l->plan);
    l->plan = NULL;
    if (l->plan_fd >= 0) {
        close(l->plan_fd);
        l->plan_fd = -1;
    }
}

/* A changed bind-addr: the thread ends, the new socket replaces the old one (which closes), and
 * a new thread receives on it with the new generation. */
static void
listener_rebind(struct udp_listener *l, struct udp_gen *g)
{
    listener_halt(l);
    l->fd = l->plan_fd;
    l->plan_fd = -1;
    struct udp_gen *was = l->cur;
    l->cur = g;
    gen_unref(was);
    struct ir_err err = {0, ""};
    if (listener_run_thread(l, &err) != 0) {
        log_error(l->name, "%s", err.msg);
    }
}

void
udp_listener_commit(struct udp_listener *l)
{
    struct udp_gen *g = l->plan;
    l->plan = NULL;
    const struct conf_udp *c = g->c;
    pthread_mutex_lock(&l->mu);
    struct udp_gen *was = l->latest;
    l->latest = gen_ref(g);
    pthread_mutex_unlock(&l->mu);
    bool rcvbuf = was->c->read_buffer != c->read_buffer;
    gen_unref(was);
    if (l->plan_fd >= 0 && l->running) {
        listener_rebind(l, g);
        return;
    }
    if (rcvbuf && l->fd >= 0) {
        int want = c->read_buffer > INT_MAX ? INT_MAX : (int)c->read_buffer;
        if (want > 0) {
            (void)setsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
        }
        listener_note_rcvbuf(c, l->fd);
    }
    if (!l->running) {
        struct udp_gen *prev = l->cur;
        l->cur = g;
        gen_unref(prev);
        return;
    }
    /* The receiver takes it before the next datagrams it handles; one it never took is
     * replaced. */
    gen_unref(atomic_exchange(&l->next, g));
}

struct udp_listener *
udp_listener_ref(struct udp_listener *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

void
udp_listener_free(struct udp_listener *l)
{
    udp_listener_unref(l);
}

void
udp_listener_unref(struct udp_listener *l)
{
    if (l == NULL || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    udp_listener_stop(l);
    udp_listener_abort(l);
    gen_unref(atomic_load(&l->next));
    gen_unref(l->cur);
    gen_unref(l->latest);
    if (l->rb != NULL) {
        free(l->rb->bufs);
        free(l->rb);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    free(l->name);
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
    return l->name;
}

struct udp_gen *
udp_listener_gen_get(struct udp_listener *l)
{
    pthread_mutex_lock(&l->mu);
    struct udp_gen *g = gen_ref(l->latest);
    pthread_mutex_unlock(&l->mu);
    return g;
}

void
udp_gen_put(struct udp_gen *g)
{
    gen_unref(g);
}

const struct udp_output_stats *
udp_gen_output(const struct udp_gen *g, size_t i, const char **name)
{
    if (i >= g->n) {
        return NULL;
    }
    if (name != NULL) {
        *name = udp_output_name(g->slots[i]->out);
    }
    return udp_output_stats(g->slots[i]->out);
}

const struct udp_stats *
udp_listener_stats(const struct udp_listener *l)
{
    return &l->stats;
}

const struct udp_output_stats *
udp_listener_output(const struct udp_listener *l, size_t i, const char **name)
{
    return udp_gen_output(l->latest, i, name);
}
