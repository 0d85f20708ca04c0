/* Connections of one HTTP relay: admission, the gauge, and the read-timeout.
 *
 * Admission. libmicrohttpd's own connection limit is split evenly between its worker threads,
 * and a worker at its share stops accepting, so connections beyond it would wait in the listen
 * backlog instead of being refused. server.c gives libmicrohttpd a limit it never reaches and
 * the accept policy callback (conn_admit()) counts every connection against max-connections for
 * the whole relay: one beyond it is closed at once and counted as refused. The count drops in
 * conn_close(). (A connection that libmicrohttpd fails to set up after the accept policy
 * admitted it, out of memory, is never closed through conn_close() and keeps its slot.)
 *
 * Read timeout. libmicrohttpd's connection timeout is an inactivity timeout: a client sending a
 * byte every few seconds never trips it. libmicrohttpd 0.9.75 has no hook per byte received, so
 * the first byte of a request is known in two ways: the request line's arrival (the URI log
 * callback, server.c, calls conn_request_begin()), and for a request line that trickles in, a
 * TCP_INFO probe of the socket from the timer thread (tcpi_last_data_recv: data arrived since
 * the connection went idle). The deadline is read-timeout after the request line, or after the
 * probe that first saw data (probes run every read-timeout / 4 while a connection is idle), so a
 * request is closed between read-timeout and 1.25 x read-timeout after its first byte, exactly
 * read-timeout after its request line. (A fresh HTTPS connection's handshake is data as well:
 * there the first probe is the baseline, so a trickled first request is closed within
 * 1.5 x read-timeout.) It ends when the request is read (conn_request_read(),
 * the access handler's last upload call, or an early answer).
 *
 * Closing from the timer thread. libmicrohttpd closes a connection only from the worker thread
 * that owns it. The timer thread writes a 408 on a plain HTTP socket (libmicrohttpd writes
 * nothing while a request is being read, apart from a "100 Continue" sent as soon as the headers
 * are in) and shuts the socket down (shutdown(2), SHUT_RDWR): the worker's next read sees the end
 * of the stream and libmicrohttpd closes the connection itself. HTTPS connections are only shut
 * down (a TLS record cannot be written from outside the TLS session). The socket is not reused
 * under the timer's feet: libmicrohttpd calls the connection-closed notification (conn_close())
 * before it closes the socket, and conn_close() waits for a check running on the connection
 * (timer_cancel_sync()).
 *
 * State. One atomic word per connection: the phase in the low 2 bits, a monotonic ms time above
 * them (IDLE: since when; READING: the deadline). Worker and timer threads change it with
 * compare-and-swap, so a request completed by the worker and a deadline enforced by the timer
 * never both win: a killed request is neither acted on nor answered (conn_request_read() is
 * false). The timer re-arms a connection's entry lazily: a phase change on the worker thread is
 * one atomic operation, never a timer call. */
/* TCP_INFO and struct tcp_info are Linux extensions of <netinet/tcp.h>. */
#define _DEFAULT_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "http/conn.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/xalloc.h"

#define PROBE_MIN_MS 250
#define PROBE_MAX_MS 10000
/* jiffies granularity of tcpi_last_data_recv, plus margin. */
#define DATA_SLACK_MS 10

enum phase { PH_IDLE = 0, PH_READING = 1, PH_BUSY = 2, PH_KILLED = 3 };

/* The settings a connection keeps from its opening to its close (a reload changes those of
 * later connections only). */
struct conn_limits {
    int64_t read_timeout_ms;
    int64_t probe_ms;
    bool tls;
};

struct conn_set {
    struct conn_set_conf c;          /* immutable after new, but for the three below */
    _Atomic int64_t max_connections; /* atomic: a reload may change it */
    _Atomic int64_t read_timeout_ms; /* atomic: a reload may change it (new connections) */
    _Atomic bool tls;                /* atomic: a reload may change it (new connections) */
    unsigned probe_lane; /* immutable after new: entries due about probe_ms from their arming */
    unsigned read_lane;  /* immutable after new: entries due at a read deadline */
};

struct conn {
    struct timer_entry te;  /* first member: the timer hands &te back; guarded by the timer */
    struct conn_set *s;     /* immutable */
    struct conn_limits l;   /* immutable */
    int fd;                 /* immutable: valid until conn_close() returns */
    _Atomic uint64_t state; /* atomic: phase | ms << 2 */
    _Atomic bool requested; /* atomic: a request line arrived once */
    bool tls_based;         /* timer thread only: tls_base_ms is set */
    int64_t tls_base_ms;    /* timer thread only: when data last came at the first probe */
};

static const char TIMEOUT_408[] = "HTTP/1.1 408 Request Timeout\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Connection: close\r\n"
                                  "Content-Length: 53\r\n"
                                  "\r\n"
                                  "{\"error\":\"request not complete within read-timeout\"}\n";

static uint64_t
st_pack(enum phase p, int64_t ms)
{
    return ((uint64_t)ms << 2) | (uint64_t)p;
}

static enum phase
st_phase(uint64_t st)
{
    return (enum phase)(st & 3);
}

static int64_t
st_ms(uint64_t st)
{
    return (int64_t)(st >> 2);
}

struct conn_set *
conn_set_new(const struct conn_set_conf *c)
{
    struct conn_set *s = xcalloc(1, sizeof(*s));
    s->c = *c;
    conn_set_reconfigure(s, c);
    s->probe_lane = timer_lane_new(c->timer);
    s->read_lane = timer_lane_new(c->timer);
    return s;
}

void
conn_set_free(struct conn_set *s)
{
    free(s);
}

void
conn_set_reconfigure(struct conn_set *s, const struct conn_set_conf *c)
{
    atomic_store(&s->max_connections, c->max_connections);
    atomic_store(&s->read_timeout_ms, c->read_timeout_ms);
    atomic_store(&s->tls, c->tls);
}

bool
conn_admit(struct conn_set *s)
{
    _Atomic uint64_t *open = &s->c.stats->connections;
    uint64_t n = atomic_load(open);
    uint64_t max = (uint64_t)atomic_load_explicit(&s->max_connections, memory_order_relaxed);
    do {
        if (n >= max) {
            atomic_fetch_add_explicit(&s->c.stats->connections_refused, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak(open, &n, n + 1));
    return true;
}

static void conn_check(struct timer_entry *e);

struct conn *
conn_open(struct conn_set *s, int fd)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->s = s;
    c->fd = fd;
    c->l.read_timeout_ms = atomic_load(&s->read_timeout_ms);
    int64_t p = c->l.read_timeout_ms / 4;
    c->l.probe_ms = p < PROBE_MIN_MS ? PROBE_MIN_MS : p > PROBE_MAX_MS ? PROBE_MAX_MS : p;
    c->l.tls = atomic_load(&s->tls);
    int64_t now = clock_mono_ms();
    atomic_init(&c->state, st_pack(PH_IDLE, now));
    if (c->l.read_timeout_ms > 0) {
        timer_arm(s->c.timer, s->probe_lane, &c->te, now + c->l.probe_ms, conn_check);
    }
    return c;
}

void
conn_close(struct conn *c)
{
    timer_cancel_sync(c->s->c.timer, &c->te);
    atomic_fetch_sub(&c->s->c.stats->connections, 1);
    free(c);
}

bool
conn_request_begin(struct conn *c)
{
    atomic_store_explicit(&c->requested, true, memory_order_relaxed);
    uint64_t st = atomic_load(&c->state);
    for (;;) {
        enum phase p = st_phase(st);
        if (p == PH_KILLED) {
            return false;
        }
        if (p == PH_READING) {
            return true; /* a probe saw its first byte earlier: that deadline stays */
        }
        uint64_t want = st_pack(PH_READING, clock_mono_ms() + c->l.read_timeout_ms);
        if (atomic_compare_exchange_weak(&c->state, &st, want)) {
            return true;
        }
    }
}

bool
conn_request_read(struct conn *c)
{
    uint64_t st = atomic_load(&c->state);
    while (st_phase(st) != PH_KILLED) {
        if (atomic_compare_exchange_weak(&c->state, &st, st_pack(PH_BUSY, 0))) {
            return true;
        }
    }
    return false;
}

void
conn_request_done(struct conn *c)
{
    uint64_t st = atomic_load(&c->state);
    while (st_phase(st) != PH_KILLED) {
        if (atomic_compare_exchange_weak(&c->state, &st, st_pack(PH_IDLE, clock_mono_ms()))) {
            return;
        }
    }
}

/* ------------------------------------------------------------------ timer thread */

/* Timer thread: did data of a request arrive on c's socket after since_ms? (The previous
 * request's last byte came before since_ms: it was complete before the connection went idle.)
 * On a fresh HTTPS connection the TLS handshake is data too: the first probe only notes when
 * data last came, later data is the request's. */
static bool
conn_got_data(struct conn *c, int64_t since_ms, int64_t now)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
        return false; /* not TCP, or closing: libmicrohttpd's own timeout applies */
    }
    int64_t data_at = now - (int64_t)ti.tcpi_last_data_recv;
    if (c->l.tls && !atomic_load_explicit(&c->requested, memory_order_relaxed)) {
        if (!c->tls_based) {
            c->tls_based = true;
            c->tls_base_ms = data_at;
            return false;
        }
        since_ms = since_ms > c->tls_base_ms ? since_ms : c->tls_base_ms;
    }
    return data_at > since_ms + DATA_SLACK_MS;
}

/* Timer thread, the request's deadline passed and this thread won it: answer 408 where a plain
 * HTTP answer can still be written, then end the stream for the worker to close. */
static void
conn_kill(struct conn *c)
{
    atomic_fetch_add_explicit(&c->s->c.stats->read_timeouts, 1, memory_order_relaxed);
    if (!c->l.tls) {
        (void)send(c->fd, TIMEOUT_408, sizeof(TIMEOUT_408) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    (void)shutdown(c->fd, SHUT_RDWR);
}

/* Timer thread: one look at an idle connection. Returns the next state to install (or st when
 * nothing changes) and sets *due / *lane for the next check. */
static uint64_t
conn_idle_step(struct conn *c, uint64_t st, int64_t now, int64_t *due, unsigned *lane)
{
    const struct conn_set *s = c->s;
    int64_t since = st_ms(st);
    *lane = s->probe_lane;
    if (now < since + c->l.probe_ms) {
        *due = since + c->l.probe_ms;
        return st;
    }
    if (!conn_got_data(c, since, now)) {
        *due = now + c->l.probe_ms;
        return st;
    }
    /* A request started since the last probe: its first byte is at most now. */
    *due = now + c->l.read_timeout_ms;
    *lane = s->read_lane;
    return st_pack(PH_READING, *due);
}

static void
conn_check(struct timer_entry *e)
{
    struct conn *c = (struct conn *)e;
    const struct conn_set *s = c->s;
    uint64_t st = atomic_load(&c->state);
    for (;;) {
        int64_t now = clock_mono_ms();
        int64_t due = now + c->l.probe_ms;
        unsigned lane = s->probe_lane;
        uint64_t next = st;
        if (st_phase(st) == PH_KILLED) {
            return; /* the worker closes it */
        }
        if (st_phase(st) == PH_READING && now >= st_ms(st)) {
            next = st_pack(PH_KILLED, 0);
        } else if (st_phase(st) == PH_READING) {
            due = st_ms(st);
            lane = s->read_lane;
        } else if (st_phase(st) == PH_IDLE) {
            next = conn_idle_step(c, st, now, &due, &lane);
        }
        if (next != st && !atomic_compare_exchange_strong(&c->state, &st, next)) {
            continue; /* the worker moved it meanwhile: look again */
        }
        if (st_phase(next) == PH_KILLED) {
            conn_kill(c);
            return;
        }
        timer_arm(s->c.timer, lane, &c->te, due, conn_check);
        return;
    }
}
