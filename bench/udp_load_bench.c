/* Load generator for the UDP relay benchmark (see bench/README.md): sends datagrams of N
 * line-protocol lines to the relay at a fixed rate with sendmmsg, receives what the relay
 * forwards on one or more sink sockets (the relay's outputs) with recvmmsg, and prints what was
 * sent against what each sink received. Sender and receiver are two threads of this process. */

/* sendmmsg(), recvmmsg() and SO_RCVBUFFORCE are GNU/Linux extensions. */
#define _GNU_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/strconv.h"

#define MAX_SINKS  8
#define SEND_BATCH 16
#define RECV_BATCH 256
#define RECV_BUF   2048
#define DGRAM_MAX  8192

struct opts {
    int target_port;
    int sink_ports[MAX_SINKS];
    int n_sinks;
    int64_t rate;    /* datagrams per second */
    int64_t seconds; /* sending time */
    int64_t lines;   /* lines per datagram */
    bool stamped;    /* lines carry a timestamp */
};

struct sink {
    int fd;
    _Atomic uint64_t datagrams;
    _Atomic uint64_t lines;
    _Atomic uint64_t bytes;
};

struct bench {
    struct opts o;
    struct sink sinks[MAX_SINKS];
    _Atomic bool stop_recv;
    _Atomic int64_t last_rx_ns;
    uint64_t sent;
    uint64_t send_errors;
    int64_t send_ns;
};

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
wait_until_ns(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static struct sockaddr_in
loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int
sink_open(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sz = 32 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0) {
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    struct sockaddr_in a = loopback(port);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("bind sink");
        exit(2);
    }
    return fd;
}

static uint64_t
count_lines(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n;
    const char *nl = memchr(p, '\n', n);
    while (nl != NULL) {
        c++;
        p = nl + 1;
        nl = memchr(p, '\n', (size_t)(end - p));
    }
    return c;
}

static void
recv_drain(struct bench *b, struct sink *s, struct mmsghdr *msgs, char *bufs)
{
    for (;;) {
        int n = recvmmsg(s->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) {
            return;
        }
        uint64_t lines = 0;
        uint64_t bytes = 0;
        for (int i = 0; i < n; i++) {
            lines += count_lines(bufs + (size_t)i * RECV_BUF, msgs[i].msg_len);
            bytes += msgs[i].msg_len;
        }
        atomic_fetch_add(&s->datagrams, (uint64_t)n);
        atomic_fetch_add(&s->lines, lines);
        atomic_fetch_add(&s->bytes, bytes);
        atomic_store(&b->last_rx_ns, now_ns());
    }
}

/* The sinks sleep 1 ms between drains instead of blocking in poll(): a receiver that sleeps on
 * the socket's wait queue makes every datagram the relay sends wake it (an inter-processor
 * interrupt, charged to the relay's sendmmsg), which would measure the sink, not the relay.
 * The sinks' 32 MiB buffers hold far more than 1 ms of traffic. */
static void *
recv_run(void *arg)
{
    struct bench *b = arg;
    static struct mmsghdr msgs[RECV_BATCH];
    static struct iovec iov[RECV_BATCH];
    char *bufs = malloc((size_t)RECV_BATCH * RECV_BUF);
    for (int i = 0; i < RECV_BATCH; i++) {
        iov[i].iov_base = bufs + (size_t)i * RECV_BUF;
        iov[i].iov_len = RECV_BUF;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (!atomic_load(&b->stop_recv)) {
        wait_until_ns(now_ns() + 1000000);
        for (int k = 0; k < b->o.n_sinks; k++) {
            recv_drain(b, &b->sinks[k], msgs, bufs);
        }
    }
    for (int k = 0; k < b->o.n_sinks; k++) {
        recv_drain(b, &b->sinks[k], msgs, bufs);
    }
    free(bufs);
    return NULL;
}

/* Datagram i: `lines` lines of about 85 bytes (stamped), unique per datagram: 10 lines fit the
 * default mtu of 1024, so each input datagram leaves as one datagram per output. */
static size_t
make_datagram(const struct opts *o, uint64_t i, char *out, size_t cap)
{
    size_t used = 0;
    for (int64_t j = 0; j < o->lines && used < cap; j++) {
        int n = snprintf(out + used, cap - used,
                         "cpu,host=server%02d,region=uswest,cpu=cpu%" PRId64
                         " idle=98.5,user=1.25,seq=%" PRIu64 "i",
                         (int)(i % 64), j, i);
        used += (size_t)n;
        if (o->stamped) {
            used += (size_t)snprintf(out + used, cap - used, " %" PRIu64,
                                     (uint64_t)1700000000000000000ULL + i * 100 + (uint64_t)j);
        }
        out[used++] = '\n';
    }
    return used;
}

static void
send_all(struct bench *b)
{
    const struct opts *o = &b->o;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sz = 8 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
    struct sockaddr_in to = loopback(o->target_port);
    static char bufs[SEND_BATCH][DGRAM_MAX];
    struct mmsghdr msgs[SEND_BATCH];
    struct iovec iov[SEND_BATCH];
    uint64_t total = (uint64_t)(o->rate * o->seconds);
    int64_t period = (int64_t)(1e9 * SEND_BATCH / (double)o->rate);
    int64_t t0 = now_ns();
    uint64_t i = 0;
    for (uint64_t k = 0; i < total; k++) {
        wait_until_ns(t0 + (int64_t)k * period);
        unsigned n = 0;
        for (; n < SEND_BATCH && i < total; n++, i++) {
            iov[n].iov_base = bufs[n];
            iov[n].iov_len = make_datagram(o, i, bufs[n], DGRAM_MAX);
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].msg_hdr.msg_name = &to;
            msgs[n].msg_hdr.msg_namelen = sizeof(to);
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
        }
        unsigned off = 0;
        while (off < n) {
            int r = sendmmsg(fd, msgs + off, n - off, 0);
            if (r < 0) {
                b->send_errors++;
                off++;
                continue;
            }
            off += (unsigned)r;
            b->sent += (uint64_t)r;
        }
    }
    b->send_ns = now_ns() - t0;
    close(fd);
}

static uint64_t
snmp_udp(const char *field)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    char names[1024];
    char values[1024];
    uint64_t out = 0;
    while (f != NULL && fgets(names, sizeof(names), f) != NULL &&
           fgets(values, sizeof(values), f) != NULL) {
        if (strncmp(names, "Udp:", 4) != 0) {
            continue;
        }
        char *sn = NULL;
        char *sv = NULL;
        char *n = strtok_r(names, " \n", &sn);
        char *v = strtok_r(values, " \n", &sv);
        while (n != NULL && v != NULL) {
            if (strcmp(n, field) == 0) {
                out = strtoull(v, NULL, 10);
            }
            n = strtok_r(NULL, " \n", &sn);
            v = strtok_r(NULL, " \n", &sv);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return out;
}

static int64_t
arg_int(const char *s)
{
    int64_t v = 0;
    if (strconv_i64z(s, 0, INT64_MAX, &v) != 0) {
        fprintf(stderr, "bad number: %s\n", s);
        exit(2);
    }
    return v;
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.rate = 10000, .seconds = 3, .lines = 10, .stamped = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--unstamped") == 0) {
            o->stamped = false;
            continue;
        }
        i++;
        if (strcmp(a, "--target") == 0) {
            o->target_port = (int)arg_int(v);
        } else if (strcmp(a, "--sink") == 0 && o->n_sinks < MAX_SINKS) {
            o->sink_ports[o->n_sinks++] = (int)arg_int(v);
        } else if (strcmp(a, "--rate") == 0) {
            o->rate = arg_int(v);
        } else if (strcmp(a, "--seconds") == 0) {
            o->seconds = arg_int(v);
        } else if (strcmp(a, "--lines") == 0) {
            o->lines = arg_int(v);
        } else {
            fprintf(stderr, "usage: udp_load_bench --target PORT --sink PORT [--sink PORT...] "
                            "[--rate N] [--seconds N] [--lines N] [--unstamped]\n");
            exit(2);
        }
    }
    if (o->target_port == 0 || o->n_sinks == 0 || o->rate <= 0) {
        fprintf(stderr, "need --target, --sink and a positive --rate\n");
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    static struct bench b;
    parse_args(argc, argv, &b.o);
    for (int k = 0; k < b.o.n_sinks; k++) {
        b.sinks[k].fd = sink_open(b.o.sink_ports[k]);
    }
    uint64_t rcvbuf_errors0 = snmp_udp("RcvbufErrors");
    pthread_t rt;
    pthread_create(&rt, NULL, recv_run, &b);
    atomic_store(&b.last_rx_ns, now_ns());
    send_all(&b);
    /* Wait for the tail: until every sink has everything or 500 ms pass without a datagram. */
    for (;;) {
        bool all = true;
        for (int k = 0; k < b.o.n_sinks; k++) {
            all = all && atomic_load(&b.sinks[k].lines) >= b.sent * (uint64_t)b.o.lines;
        }
        if (all || now_ns() - atomic_load(&b.last_rx_ns) > 500000000) {
            break;
        }
        wait_until_ns(now_ns() + 10000000);
    }
    atomic_store(&b.stop_recv, true);
    pthread_join(rt, NULL);
    double secs = (double)b.send_ns / 1e9;
    printf("target_rate=%" PRId64 " sent=%" PRIu64 " send_s=%.3f sent_rate=%.0f lines=%" PRId64
           " send_errors=%" PRIu64 " rcvbuf_errors=%" PRIu64 "\n",
           b.o.rate, b.sent, secs, (double)b.sent / secs, b.o.lines, b.send_errors,
           snmp_udp("RcvbufErrors") - rcvbuf_errors0);
    for (int k = 0; k < b.o.n_sinks; k++) {
        uint64_t want = b.sent * (uint64_t)b.o.lines;
        uint64_t got = atomic_load(&b.sinks[k].lines);
        printf("sink=%d datagrams=%" PRIu64 " lines=%" PRIu64 " bytes=%" PRIu64
               " lost_lines=%" PRId64 "\n",
               b.o.sink_ports[k], atomic_load(&b.sinks[k].datagrams), got,
               atomic_load(&b.sinks[k].bytes), (int64_t)(want - got));
        close(b.sinks[k].fd);
    }
    return 0;
}
