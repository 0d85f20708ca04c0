/* sendmmsg() and struct mmsghdr are GNU extensions of glibc. */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "udp/output.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include "lp/lp.h"
#include "util/clock.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/xalloc.h"

/* Chunks sent per sendmmsg call at most. */
#define OUTPUT_BATCH 128
/* The largest UDP payload over IPv4 and over IPv6 (without jumbograms): mtu is clamped to it,
 * since a larger datagram can never be sent. */
#define UDP4_MAX_PAYLOAD 65507
#define UDP6_MAX_PAYLOAD 65527
/* Repeated drops and send errors log at most once per period, with a count. */
#define OUTPUT_LOG_PERIOD_MS 10000

/* The send socket is connected to the output: the kernel then skips the route lookup and the
 * address copy of every datagram (about 10 % of the relay's CPU on loopback). The price: an ICMP
 * "port unreachable" answering an earlier datagram makes the next send fail once with
 * ECONNREFUSED (the error is consumed, the datagram not sent). udp_output_flush() then sends that
 * datagram again, so nothing is lost because of it, and logs (rate-limited) that the output
 * refuses datagrams: what reached a closed port is lost, as with any UDP sender. */
struct udp_output {
    const struct conf_udp_output *c; /* borrowed; immutable */
    char who[160];                   /* "relay/output" for logs; immutable after new */
    char section[180];               /* "[udp.relay.output.name]"; immutable after new */
    struct hostport_addr addr;       /* immutable after new */
    size_t mtu;                      /* immutable after new, clamped to the family's max */
    int fd;                          /* owned; receiving thread only after open */
    struct udp_output_stats stats;   /* atomic */
    /* The batch: receiving thread only. msgs[i] sends iov[i], which holds points[i] points. */
    size_t n_queued;
    struct mmsghdr msgs[OUTPUT_BATCH];
    struct iovec iov[OUTPUT_BATCH];
    size_t points[OUTPUT_BATCH];
    struct ratelimit mtu_rl;     /* receiving thread only */
    size_t mtu_last_line_bytes;  /* receiving thread only: the last line dropped */
    struct ratelimit send_rl;    /* receiving thread only */
    struct ratelimit refused_rl; /* receiving thread only */
    int send_last_errno;         /* receiving thread only */
};

struct udp_output *
udp_output_new(const char *relay, const struct conf_udp_output *c, struct ir_err *err)
{
    char why[200];
    struct hostport_addrs addrs;
    if (hostport_resolve(&c->dest, false, SOCK_DGRAM, &addrs, why, sizeof(why)) != 0) {
        ir_err_set(err, c->line, "[udp.%s.output.%s] location: cannot resolve \"%s\": %s", relay,
                   c->name, c->location, why);
        return NULL;
    }
    /* The first candidate: a name's first IPv4 address when it has one, as the Go relay. */
    struct hostport_addr addr = addrs.a[0];
    struct udp_output *o = xcalloc(1, sizeof(*o));
    o->c = c;
    o->addr = addr;
    o->fd = -1;
    snprintf(o->who, sizeof(o->who), "%s/%s", relay, c->name);
    snprintf(o->section, sizeof(o->section), "[udp.%s.output.%s]", relay, c->name);
    size_t max = addr.ss.ss_family == AF_INET6 ? UDP6_MAX_PAYLOAD : UDP4_MAX_PAYLOAD;
    o->mtu = c->mtu > 0 && (uint64_t)c->mtu < max ? (size_t)c->mtu : max;
    return o;
}

int
udp_output_open(struct udp_output *o, struct ir_err *err)
{
    o->fd = socket(o->addr.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (o->fd < 0) {
        int e = errno;
        char buf[128];
        ir_err_set(err, o->c->line, "%s cannot create a socket: %s", o->section,
                   ir_strerror(e, buf, sizeof(buf)));
        return -1;
    }
    if (connect(o->fd, (const struct sockaddr *)&o->addr.ss, o->addr.len) != 0) {
        int e = errno;
        char buf[128];
        ir_err_set(err, o->c->line, "%s location: cannot use \"%s\": %s", o->section,
                   o->c->location, ir_strerror(e, buf, sizeof(buf)));
        return -1;
    }
    return 0;
}

void
udp_output_free(struct udp_output *o)
{
    if (o == NULL) {
        return;
    }
    if (o->fd >= 0) {
        close(o->fd);
    }
    free(o);
}

const char *
udp_output_name(const struct udp_output *o)
{
    return o->c->name;
}

const struct udp_output_stats *
udp_output_stats(const struct udp_output *o)
{
    return &o->stats;
}

static size_t
count_lines(const char *p, size_t len)
{
    size_t n = 0;
    const char *end = p + len;
    const char *nl = memchr(p, '\n', len);
    while (nl != NULL) {
        n++;
        p = nl + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
    }
    return n;
}

static void
output_log_mtu(struct udp_output *o, uint64_t lines)
{
    log_error(o->who, "payload larger than MTU, line dropped lines=%llu line_bytes=%zu mtu=%zu",
              (unsigned long long)lines, o->mtu_last_line_bytes, o->mtu);
}

static void
output_drop_line(struct udp_output *o, size_t line_len)
{
    atomic_fetch_add_explicit(&o->stats.lines_dropped_mtu, 1, memory_order_relaxed);
    o->mtu_last_line_bytes = line_len;
    uint64_t n = ratelimit_hit(&o->mtu_rl, 1, clock_mono_ms(), OUTPUT_LOG_PERIOD_MS);
    if (n > 0) {
        output_log_mtu(o, n);
    }
}

static void
output_push(struct udp_output *o, char *data, size_t len, size_t points)
{
    if (o->n_queued == OUTPUT_BATCH) {
        udp_output_flush(o);
    }
    size_t i = o->n_queued++;
    o->iov[i].iov_base = data;
    o->iov[i].iov_len = len;
    o->points[i] = points;
    memset(&o->msgs[i], 0, sizeof(o->msgs[i]));
    o->msgs[i].msg_hdr.msg_iov = &o->iov[i];
    o->msgs[i].msg_hdr.msg_iovlen = 1;
}

size_t
udp_output_queue(struct udp_output *o, char *data, size_t len, size_t points)
{
    size_t dropped = 0;
    while (len > 0) {
        size_t line_len = 0;
        size_t n = lp_split(data, len, o->mtu, &line_len);
        if (n == 0) {
            if (line_len == 0 || line_len > len) {
                break; /* cannot happen with lp_split's contract; never loop forever */
            }
            output_drop_line(o, line_len);
            dropped++;
            points -= points > 0 ? 1 : 0;
            n = line_len;
        } else {
            /* The common case (the whole datagram fits) needs no counting. */
            size_t pts = n == len ? points : count_lines(data, n);
            pts = pts < points ? pts : points;
            output_push(o, data, n, pts);
            points -= pts;
        }
        data += n;
        len -= n;
    }
    return dropped;
}

static void
output_send_failed(struct udp_output *o, int e)
{
    atomic_fetch_add_explicit(&o->stats.send_errors, 1, memory_order_relaxed);
    o->send_last_errno = e;
    uint64_t n = ratelimit_hit(&o->send_rl, 1, clock_mono_ms(), OUTPUT_LOG_PERIOD_MS);
    if (n > 0) {
        char buf[128];
        log_error(o->who, "cannot send datagram to %s: %s datagrams=%llu", o->c->location,
                  ir_strerror(e, buf, sizeof(buf)), (unsigned long long)n);
    }
}

static void
output_log_refused(struct udp_output *o, uint64_t n)
{
    log_warn(o->who,
             "output refuses datagrams (ICMP port unreachable), nothing listening at %s? "
             "count=%llu",
             o->c->location, (unsigned long long)n);
}

static void
output_refused(struct udp_output *o)
{
    uint64_t n = ratelimit_hit(&o->refused_rl, 1, clock_mono_ms(), OUTPUT_LOG_PERIOD_MS);
    if (n > 0) {
        output_log_refused(o, n);
    }
}

void
udp_output_flush(struct udp_output *o)
{
    size_t off = 0;
    size_t refused_at = SIZE_MAX; /* the message already re-sent after ECONNREFUSED */
    uint64_t sent = 0;
    uint64_t points = 0;
    while (off < o->n_queued) {
        int r = sendmmsg(o->fd, o->msgs + off, (unsigned)(o->n_queued - off), 0);
        if (r < 0) {
            int e = errno;
            if (e == ECONNREFUSED && refused_at != off) {
                /* An earlier datagram's ICMP error: this one was not sent; send it again. */
                refused_at = off;
                output_refused(o);
            } else if (e != EINTR) {
                /* sendmmsg reports an error only for the first message: skip that one. */
                output_send_failed(o, e);
                off++;
            }
            continue;
        }
        for (size_t i = off; i < off + (size_t)r; i++) {
            points += o->points[i];
        }
        sent += (uint64_t)r;
        off += (size_t)r;
    }
    o->n_queued = 0;
    atomic_fetch_add_explicit(&o->stats.datagrams_sent, sent, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->stats.points_sent, points, memory_order_relaxed);
}

void
udp_output_log_pending(struct udp_output *o)
{
    uint64_t n = ratelimit_flush(&o->mtu_rl);
    if (n > 0) {
        output_log_mtu(o, n);
    }
    n = ratelimit_flush(&o->refused_rl);
    if (n > 0) {
        output_log_refused(o, n);
    }
    n = ratelimit_flush(&o->send_rl);
    if (n > 0) {
        char buf[128];
        log_error(o->who, "cannot send datagram to %s: %s datagrams=%llu", o->c->location,
                  ir_strerror(o->send_last_errno, buf, sizeof(buf)), (unsigned long long)n);
    }
}
