/* Unit tests for udp/listener.c and udp/output.c over real loopback sockets: fan-out to two
 * outputs byte for byte, MTU splitting, a line over the MTU dropped while the rest goes out,
 * invalid lines dropped while the valid ones go out, stamping, counters, IPv6, a clean stop. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"
#include "udp/listener.h"
#include "util/clock.h"
#include "util/hostport.h"

/* s parsed as conf_load() does. */
static struct hostport
parsed(const char *s, unsigned flags)
{
    struct hostport hp;
    memset(&hp, 0, sizeof(hp));
    CHECK(hostport_parse(s, strlen(s), flags, 0, &hp) == HOSTPORT_OK);
    return hp;
}

/* A bound receiving socket (an output) or a sending one (the client). */
struct sock {
    int fd;
    int port;
};

static struct sock
sock_open(int family, bool bound)
{
    struct sock s = {socket(family, SOCK_DGRAM, 0), 0};
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    if (bound) {
        CHECK(bind(s.fd, (struct sockaddr *)&ss, len) == 0);
        CHECK(getsockname(s.fd, (struct sockaddr *)&ss, &len) == 0);
        s.port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
        struct timeval tv = {0, 300000};
        CHECK(setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    }
    return s;
}

/* A port free right now (bound then released). */
static int
free_port(int family)
{
    struct sock s = sock_open(family, true);
    close(s.fd);
    return s.port;
}

static void
send_to(int family, int port, const char *data)
{
    struct sock s = sock_open(family, false);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(struct sockaddr_in);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((uint16_t)port);
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons((uint16_t)port);
    }
    CHECK(sendto(s.fd, data, strlen(data), 0, (struct sockaddr *)&ss, len) ==
          (ssize_t)strlen(data));
    close(s.fd);
}

/* Receives datagrams until want bytes arrived or a 300 ms silence; concatenates them into out.
 * Returns the number of datagrams; *max_len gets the largest. */
static int
recv_all(struct sock *s, char *out, size_t cap, size_t want, size_t *max_len)
{
    size_t used = 0;
    int n = 0;
    *max_len = 0;
    out[0] = '\0';
    while (used < want) {
        ssize_t r = recv(s->fd, out + used, cap - used - 1, 0);
        if (r < 0) {
            break;
        }
        n++;
        used += (size_t)r;
        *max_len = (size_t)r > *max_len ? (size_t)r : *max_len;
        out[used] = '\0';
    }
    return n;
}

/* A relay with two outputs of the given MTUs; the caller frees the conf arrays. */
struct rig {
    struct conf_udp c;
    struct conf_udp_output o[2];
    char bind[64];
    char loc[2][64];
    char names[3][8];
    struct sock out[2];
    struct udp_listener *l;
    int port;
};

/* A relay started with fault(ctx) run before each receive (NULL: none). */
static void
rig_start_fault(struct rig *g, int family, enum conf_precision prec, int64_t mtu0, int64_t mtu1,
                int (*fault)(void *), void *ctx)
{
    memset(g, 0, sizeof(*g));
    const char *host = family == AF_INET6 ? "[::1]" : "127.0.0.1";
    g->port = free_port(family);
    snprintf(g->bind, sizeof(g->bind), "%s:%d", host, g->port);
    int64_t mtus[2] = {mtu0, mtu1};
    for (int i = 0; i < 2; i++) {
        g->out[i] = sock_open(family, true);
        snprintf(g->loc[i], sizeof(g->loc[i]), "%s:%d", host, g->out[i].port);
        snprintf(g->names[i], sizeof(g->names[i]), "o%d", i + 1);
        g->o[i].name = g->names[i];
        g->o[i].line = 10 + i;
        g->o[i].location = g->loc[i];
        g->o[i].dest = parsed(g->loc[i], 0);
        g->o[i].mtu = mtus[i];
    }
    snprintf(g->names[2], sizeof(g->names[2]), "u1");
    g->c.name = g->names[2];
    g->c.line = 5;
    g->c.bind_addr = g->bind;
    g->c.bind = parsed(g->bind, HOSTPORT_EMPTY_HOST);
    g->c.read_buffer = 1 << 20;
    g->c.precision = prec;
    g->c.outputs = g->o;
    g->c.n_outputs = 2;
    struct ir_err err = {0, ""};
    g->l = udp_listener_new(&g->c, &err);
    CHECK(g->l != NULL);
    if (fault != NULL) {
        udp_listener_inject_fault(g->l, fault, ctx);
    }
    CHECK(udp_listener_start(g->l, &err) == 0);
}

static void
rig_start(struct rig *g, int family, enum conf_precision prec, int64_t mtu0, int64_t mtu1)
{
    rig_start_fault(g, family, prec, mtu0, mtu1, NULL, NULL);
}

static void
rig_stop(struct rig *g)
{
    udp_listener_free(g->l);
    close(g->out[0].fd);
    close(g->out[1].fd);
}

/* Waits (bounded) until *v reaches want; returns its value. */
static uint64_t
wait_counter(const _Atomic uint64_t *v, uint64_t want)
{
    for (int i = 0; i < 200 && atomic_load(v) < want; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(v);
}

static void
test_fan_out(int family)
{
    struct rig g;
    rig_start(&g, family, CONF_PREC_N, 1024, 1024);
    const char *a = "cpu,host=a value=1 1000\ncpu,host=b value=2 2000\n";
    const char *b = "mem free=3i 3000\n";
    send_to(family, g.port, a);
    send_to(family, g.port, b);
    char want[256];
    snprintf(want, sizeof(want), "%s%s", a, b);
    for (int i = 0; i < 2; i++) {
        char got[4096];
        size_t max = 0;
        CHECK_EQ_I64(recv_all(&g.out[i], got, sizeof(got), strlen(want), &max), 2);
        CHECK_STREQ(got, want);
    }
    const struct udp_stats *st = udp_listener_stats(g.l);
    CHECK_EQ_I64(wait_counter(&st->datagrams_received, 2), 2);
    CHECK_EQ_I64(wait_counter(&st->points_received, 3), 3);
    const char *name = NULL;
    const struct udp_output_stats *os = udp_listener_output(g.l, 1, &name);
    CHECK_STREQ(name, "o2");
    CHECK_EQ_I64(wait_counter(&os->datagrams_sent, 2), 2);
    CHECK_EQ_I64(wait_counter(&os->points_sent, 3), 3);
    CHECK(udp_listener_output(g.l, 2, &name) == NULL);
    CHECK_STREQ(udp_listener_name(g.l), "u1");
    rig_stop(&g);
}

static void
test_mtu(void)
{
    struct rig g;
    rig_start(&g, AF_INET, CONF_PREC_N, 64, 4096);
    char in[2048] = "";
    size_t used = 0;
    for (int i = 0; i < 20; i++) {
        used += (size_t)snprintf(in + used, sizeof(in) - used, "m,t=%02d value=%d %d\n", i, i, i);
    }
    /* One line longer than 64 bytes in the middle: output 1 drops it, output 2 keeps it. */
    char long_line[128];
    snprintf(long_line, sizeof(long_line), "m,t=long,%s value=1 99\n",
             "padpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpad=x");
    char in2[8192];
    snprintf(in2, sizeof(in2), "%s%s%s", in, long_line, in);
    send_to(AF_INET, g.port, in2);
    char want0[4096];
    snprintf(want0, sizeof(want0), "%s%s", in, in);
    char got[8192];
    size_t max = 0;
    int n0 = recv_all(&g.out[0], got, sizeof(got), strlen(want0), &max);
    CHECK_STREQ(got, want0);
    CHECK(max <= 64);
    CHECK(n0 >= (int)(strlen(want0) / 64));
    CHECK_EQ_I64(recv_all(&g.out[1], got, sizeof(got), strlen(in2), &max), 1);
    CHECK_STREQ(got, in2);
    const struct udp_stats *st = udp_listener_stats(g.l);
    CHECK_EQ_I64(wait_counter(&st->lines_dropped_mtu, 1), 1);
    const struct udp_output_stats *os = udp_listener_output(g.l, 0, NULL);
    CHECK_EQ_I64(wait_counter(&os->points_sent, 40), 40);
    CHECK_EQ_I64(atomic_load(&os->lines_dropped_mtu), 1);
    CHECK_EQ_I64(wait_counter(&os->datagrams_sent, (uint64_t)n0), (uint64_t)n0);
    rig_stop(&g);
}

static void
test_invalid_and_stamp(void)
{
    struct rig g;
    rig_start(&g, AF_INET, CONF_PREC_S, 1024, 1024);
    int64_t before = clock_real_ns() / 1000000000;
    send_to(AF_INET, g.port, "cpu value=1 7\ngarbage\ncpu value=2\n");
    char got[4096];
    size_t max = 0;
    CHECK_EQ_I64(recv_all(&g.out[0], got, sizeof(got), 25, &max), 1);
    int64_t after = clock_real_ns() / 1000000000;
    long long ts = 0;
    CHECK(sscanf(got, "cpu value=1 7\ncpu value=2 %lld\n", &ts) == 1);
    CHECK(ts >= before && ts <= after);
    char got2[4096];
    recv_all(&g.out[1], got2, sizeof(got2), strlen(got), &max);
    CHECK_STREQ(got2, got);
    const struct udp_stats *st = udp_listener_stats(g.l);
    CHECK_EQ_I64(wait_counter(&st->lines_dropped_invalid, 1), 1);
    CHECK_EQ_I64(atomic_load(&st->points_received), 2);
    /* A datagram with no valid line sends nothing. */
    send_to(AF_INET, g.port, "garbage\n");
    send_to(AF_INET, g.port, "cpu value=3 9\n");
    CHECK_EQ_I64(recv_all(&g.out[0], got, sizeof(got), 14, &max), 1);
    CHECK_STREQ(got, "cpu value=3 9\n");
    rig_stop(&g);
}

static void
test_errors(void)
{
    char oname[] = "o1";
    char rname[] = "u1";
    char bad_host[] = "no-such-host.invalid:1";
    char good[] = "127.0.0.1:9";
    char unbindable[] = "192.0.2.1:1";
    char bind[] = "127.0.0.1:1";
    struct conf_udp_output o = {.name = oname, .line = 12, .location = bad_host, .mtu = 1024};
    o.dest = parsed(bad_host, 0);
    struct conf_udp c = {.name = rname, .line = 3, .bind_addr = bind, .precision = CONF_PREC_N};
    c.bind = parsed(bind, HOSTPORT_EMPTY_HOST);
    c.outputs = &o;
    c.n_outputs = 1;
    struct ir_err err = {0, ""};
    CHECK(udp_listener_new(&c, &err) == NULL);
    CHECK_EQ_I64(err.line, 12);
    CHECK(strstr(err.msg, "[udp.u1.output.o1] location") != NULL);
    /* A bind that fails reports the relay's line; stop and free stay safe. */
    o.location = good;
    o.dest = parsed(good, 0);
    c.bind_addr = unbindable;
    c.bind = parsed(unbindable, HOSTPORT_EMPTY_HOST);
    struct udp_listener *l = udp_listener_new(&c, &err);
    CHECK(l != NULL);
    CHECK(udp_listener_start(l, &err) != 0);
    CHECK_EQ_I64(err.line, 3);
    udp_listener_stop(l);
    udp_listener_free(l);
    udp_listener_free(NULL);
}

static void
test_stop_is_prompt(void)
{
    struct rig g;
    rig_start(&g, AF_INET, CONF_PREC_N, 1024, 1024);
    int64_t t0 = clock_mono_ms();
    udp_listener_stop(g.l);
    udp_listener_stop(g.l);
    CHECK(clock_mono_ms() - t0 < 1000);
    rig_stop(&g);
}

/* sock_open() on a given port. */
static struct sock
sock_open_port(int port)
{
    struct sock s = {socket(AF_INET, SOCK_DGRAM, 0), port};
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    CHECK(bind(s.fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    struct timeval tv = {0, 300000};
    CHECK(setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0);
    return s;
}

/* An output that was down (ICMP port unreachable on its connected socket) gets the first
 * datagram sent after it comes back: the ECONNREFUSED left by the ICMP is absorbed by a re-send. */
static void
test_output_back_after_refused(void)
{
    struct rig g;
    rig_start(&g, AF_INET, CONF_PREC_N, 1024, 1024);
    int port = g.out[0].port;
    close(g.out[0].fd); /* output 1 goes down */
    for (int i = 0; i < 3; i++) {
        send_to(AF_INET, g.port, "cpu value=1 1\n");
    }
    char got[256];
    size_t max = 0;
    CHECK_EQ_I64(recv_all(&g.out[1], got, sizeof(got), 42, &max), 3);
    g.out[0] = sock_open_port(port); /* and comes back */
    send_to(AF_INET, g.port, "cpu value=2 2\n");
    CHECK_EQ_I64(recv_all(&g.out[0], got, sizeof(got), 14, &max), 1);
    CHECK_STREQ(got, "cpu value=2 2\n");
    const struct udp_output_stats *os = udp_listener_output(g.l, 0, NULL);
    CHECK_EQ_I64(atomic_load(&os->send_errors), 0);
    CHECK_EQ_I64(wait_counter(&os->datagrams_sent, 4), 4);
    rig_stop(&g);
}

/* Errors injected before the receives: the first `left` ones fail with err. */
struct faults {
    _Atomic int left;
    int err;
    _Atomic int calls;
};

static int
inject(void *ctx)
{
    struct faults *f = ctx;
    atomic_fetch_add(&f->calls, 1);
    if (atomic_load(&f->left) > 0) {
        atomic_fetch_sub(&f->left, 1);
        return f->err;
    }
    return 0;
}

/* Failed receives are counted, backed off (never a busy loop), and the relay keeps receiving;
 * a stop during a backoff wait is not delayed by it. */
static void
test_receive_errors(void)
{
    struct faults f = {5, EIO, 0};
    struct rig g;
    rig_start_fault(&g, AF_INET, CONF_PREC_N, 1024, 1024, inject, &f);
    const struct udp_stats *st = udp_listener_stats(g.l);
    CHECK_EQ_I64(wait_counter(&st->receive_errors, 5), 5);
    send_to(AF_INET, g.port, "cpu value=1 1\n");
    char got[256];
    size_t max = 0;
    CHECK_EQ_I64(recv_all(&g.out[0], got, sizeof(got), 14, &max), 1);
    CHECK_STREQ(got, "cpu value=1 1\n");
    CHECK_EQ_I64(atomic_load(&st->receiver_up), 1);
    CHECK_EQ_I64(atomic_load(&st->receive_errors), 5);
    /* A persistent error: the waits double from 1 ms, so 8 failures take at least
     * 1 + 2 + ... + 64 = 127 ms (a lower bound that load cannot break). */
    atomic_store(&f.left, 1000000);
    send_to(AF_INET, g.port, "cpu value=2 2\n"); /* wakes the receive blocked in recvmmsg */
    int64_t t0 = clock_mono_ms();
    for (int i = 0; i < 400 && atomic_load(&st->receive_errors) < 5 + 8; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&st->receive_errors) >= 5 + 8);
    CHECK(clock_mono_ms() - t0 >= 127);
    CHECK(atomic_load(&f.calls) < 5 + 1 + 8 + 4); /* no extra tries between the waits */
    CHECK_EQ_I64(atomic_load(&st->receiver_up), 1);
    udp_listener_stop(g.l); /* wakes the backoff wait */
    CHECK_EQ_I64(atomic_load(&st->receiver_up), 0);
    rig_stop(&g);
}

/* A socket that can never work again ends the receiver, and receiver_up shows it. */
static void
test_receiver_dies(void)
{
    struct faults f = {1, EBADF, 0};
    struct rig g;
    rig_start_fault(&g, AF_INET, CONF_PREC_N, 1024, 1024, inject, &f);
    const struct udp_stats *st = udp_listener_stats(g.l);
    for (int i = 0; i < 400 && atomic_load(&st->receiver_up) != 0; i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ_I64(atomic_load(&st->receiver_up), 0);
    CHECK_EQ_I64(atomic_load(&st->receive_errors), 1);
    udp_listener_stop(g.l); /* joins the ended thread */
    rig_stop(&g);
}

static bool
have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

int
main(void)
{
    test_fan_out(AF_INET);
    if (have_ipv6()) {
        test_fan_out(AF_INET6);
    } else {
        fprintf(stderr, "no IPv6 loopback: IPv6 test skipped\n");
    }
    test_mtu();
    test_invalid_and_stamp();
    test_errors();
    test_stop_is_prompt();
    test_output_back_after_refused();
    test_receive_errors();
    test_receiver_dies();
    return CHECK_DONE();
}
