/* util/hostport.c: parsing (Go's SplitHostPort shapes, numeric ports), resolution order (every
 * interface = [::] then 0.0.0.0; IPv4 first for names), formatting, the fallback of
 * hostport_open_first() with injected failures, and real listeners on the wildcard. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "util/hostport.h"

static bool
parses(const char *s, unsigned flags, const char *host, int port, enum hostport_kind kind)
{
    struct hostport hp;
    if (hostport_parse(s, strlen(s), flags, 80, &hp) != HOSTPORT_OK) {
        return false;
    }
    return strcmp(hp.host, host) == 0 && hp.port == port && hp.kind == kind;
}

static enum hostport_status
st(const char *s, unsigned flags)
{
    struct hostport hp;
    return hostport_parse(s, strlen(s), flags, 80, &hp);
}

static void
test_parse(void)
{
    const unsigned E = HOSTPORT_EMPTY_HOST;
    const unsigned P = HOSTPORT_PORT_OPTIONAL;
    CHECK(parses("127.0.0.1:9096", 0, "127.0.0.1", 9096, HOSTPORT_IPV4));
    CHECK(parses("[::1]:9096", 0, "::1", 9096, HOSTPORT_IPV6));
    CHECK(parses("[fe80::1%eth0]:1", 0, "fe80::1%eth0", 1, HOSTPORT_IPV6));
    CHECK(parses("influxdb-1.example.com:65535", 0, "influxdb-1.example.com", 65535,
                 HOSTPORT_NAME));
    CHECK(parses(":9096", E, "", 9096, HOSTPORT_ANY));
    CHECK(parses("0.0.0.0:8089", 0, "0.0.0.0", 8089, HOSTPORT_IPV4));
    CHECK(parses("[::]:8089", 0, "::", 8089, HOSTPORT_IPV6));
    CHECK(parses("1.2.3:1", 0, "1.2.3", 1, HOSTPORT_NAME)); /* not a dotted quad: a name */
    /* URLs: the port may be left out. */
    CHECK(parses("h", P, "h", 80, HOSTPORT_NAME));
    CHECK(parses("[::1]", P, "::1", 80, HOSTPORT_IPV6));
    CHECK(parses("h:8086", P, "h", 8086, HOSTPORT_NAME));
    CHECK_EQ_I64(st(":9096", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st(":9096", P), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("127.0.0.1", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("127.0.0.1:", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("h:", P), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("127.0.0.1:0", 0), HOSTPORT_RANGE);
    CHECK_EQ_I64(st("127.0.0.1:65536", 0), HOSTPORT_RANGE);
    CHECK_EQ_I64(st("127.0.0.1:123456", 0), HOSTPORT_RANGE);
    CHECK_EQ_I64(st("127.0.0.1:99999999999999999999", 0), HOSTPORT_RANGE);
    CHECK_EQ_I64(st("127.0.0.1:http", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("127.0.0.1:-1", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("::1:9096", E), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("a:b:80", E), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("[::1]", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("[::1]x:80", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("[::1:80", 0), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("[]:80", E), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("[1.2.3.4]:80", E), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("a b:80", E), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("http://a:80", E), HOSTPORT_INVALID);
    CHECK_EQ_I64(st("", E), HOSTPORT_INVALID);
    char longhost[400];
    memset(longhost, 'a', 300);
    snprintf(longhost + 300, 100, ":80");
    CHECK_EQ_I64(st(longhost, 0), HOSTPORT_INVALID);
}

/* Resolves s and formats the candidates, comma-separated; "" when resolution fails. */
static const char *
resolved(const char *s, bool passive, char *out, size_t len)
{
    struct hostport hp;
    struct hostport_addrs a;
    char why[200];
    out[0] = '\0';
    if (hostport_parse(s, strlen(s), HOSTPORT_EMPTY_HOST, 0, &hp) != HOSTPORT_OK ||
        hostport_resolve(&hp, passive, SOCK_DGRAM, &a, why, sizeof(why)) != 0) {
        return out;
    }
    for (size_t i = 0; i < a.n; i++) {
        char t[HOSTPORT_TEXT];
        hostport_format((const struct sockaddr *)&a.a[i].ss, a.a[i].len, t, sizeof(t));
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i > 0 ? "," : "", t);
    }
    return out;
}

static void
test_resolve(void)
{
    char t[512];
    CHECK_STREQ(resolved("127.0.0.1:8089", false, t, sizeof(t)), "127.0.0.1:8089");
    CHECK_STREQ(resolved("[::1]:8089", false, t, sizeof(t)), "[::1]:8089");
    /* A name with IPv4 and IPv6 addresses lists IPv4 first, as the Go relay picks it. */
    CHECK(strncmp(resolved("localhost:1", false, t, sizeof(t)), "127.0.0.1:1", 11) == 0);
    /* Every interface: dual-stack [::] first, then 0.0.0.0 for hosts without IPv6. */
    CHECK_STREQ(resolved(":8089", true, t, sizeof(t)), "[::]:8089,0.0.0.0:8089");
    CHECK_STREQ(resolved(":8089", false, t, sizeof(t)), "");
    CHECK_STREQ(resolved("no-such-host.invalid:8089", false, t, sizeof(t)), "");
    struct hostport hp;
    struct hostport_addrs a;
    char why[200];
    CHECK(hostport_parse(":1", 2, HOSTPORT_EMPTY_HOST, 0, &hp) == HOSTPORT_OK);
    CHECK_EQ_I64(hostport_resolve(&hp, false, SOCK_DGRAM, &a, why, sizeof(why)), -1);
    CHECK_STREQ(why, "missing host");
}

static void
test_format(void)
{
    char t[HOSTPORT_TEXT];
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(65535);
    CHECK(inet_pton(AF_INET6, "2001:db8::5", &a6.sin6_addr) == 1);
    CHECK_STREQ(hostport_format((const struct sockaddr *)&a6, sizeof(a6), t, sizeof(t)),
                "[2001:db8::5]:65535");
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof(a4));
    a4.sin_family = AF_INET;
    a4.sin_port = htons(1);
    a4.sin_addr.s_addr = htonl(0x7f000001);
    CHECK_STREQ(hostport_format((const struct sockaddr *)&a4, sizeof(a4), t, sizeof(t)),
                "127.0.0.1:1");
}

/* A fake opener: fails the families listed with the given errno, records the order tried. */
struct fake {
    int fail_family[2];
    int fail_errno[2];
    int *tried; /* families in call order */
    size_t *n_tried;
};

static int
fake_open(const struct hostport_addr *a, const void *ctx)
{
    const struct fake *f = ctx;
    f->tried[(*f->n_tried)++] = a->ss.ss_family;
    for (int i = 0; i < 2; i++) {
        if (f->fail_family[i] == a->ss.ss_family) {
            errno = f->fail_errno[i];
            return -1;
        }
    }
    return 100 + (int)*f->n_tried;
}

static void
any_addrs(struct hostport_addrs *a)
{
    struct hostport hp;
    char why[100];
    CHECK(hostport_parse(":9096", 5, HOSTPORT_EMPTY_HOST, 0, &hp) == HOSTPORT_OK);
    CHECK(hostport_resolve(&hp, true, SOCK_STREAM, a, why, sizeof(why)) == 0);
}

static void
test_fallback(void)
{
    struct hostport_addrs a;
    any_addrs(&a);
    int tried[8];
    size_t n = 0;
    size_t which = 99;
    int err = 0;
    /* A host with IPv6: the dual-stack socket, one try. */
    struct fake ok = {{-1, -1}, {0, 0}, tried, &n};
    CHECK_EQ_I64(hostport_open_first(&a, fake_open, &ok, &which, &err), 101);
    CHECK_EQ_I64(which, 0);
    CHECK_EQ_I64(n, 1);
    CHECK_EQ_I64(tried[0], AF_INET6);
    /* A host without IPv6 (socket(AF_INET6) fails): 0.0.0.0, as Go. */
    n = 0;
    struct fake no6 = {{AF_INET6, -1}, {EAFNOSUPPORT, 0}, tried, &n};
    CHECK_EQ_I64(hostport_open_first(&a, fake_open, &no6, &which, &err), 102);
    CHECK_EQ_I64(which, 1);
    CHECK_EQ_I64(n, 2);
    CHECK(tried[0] == AF_INET6 && tried[1] == AF_INET);
    /* Both fail: the error worth reporting is the real one, not the missing family. */
    n = 0;
    struct fake busy = {{AF_INET6, AF_INET}, {EAFNOSUPPORT, EADDRINUSE}, tried, &n};
    CHECK_EQ_I64(hostport_open_first(&a, fake_open, &busy, &which, &err), -1);
    CHECK_EQ_I64(err, EADDRINUSE);
    n = 0;
    struct fake busy6 = {{AF_INET6, AF_INET}, {EADDRINUSE, EADDRNOTAVAIL}, tried, &n};
    CHECK_EQ_I64(hostport_open_first(&a, fake_open, &busy6, &which, &err), -1);
    CHECK_EQ_I64(err, EADDRINUSE);
    n = 0;
    struct fake none = {{AF_INET6, AF_INET}, {EAFNOSUPPORT, EAFNOSUPPORT}, tried, &n};
    CHECK_EQ_I64(hostport_open_first(&a, fake_open, &none, &which, &err), -1);
    CHECK_EQ_I64(err, EAFNOSUPPORT);
}

/* A port free on 127.0.0.1 for TCP and UDP right now. */
static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t len = sizeof(a);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ":PORT" takes IPv4 clients: a TCP connect and a UDP datagram to 127.0.0.1 arrive. */
static void
test_listen_wildcard(void)
{
    struct hostport hp;
    char why[200] = "";
    struct hostport_listen_opts tcp = {SOCK_STREAM, 0, false};
    struct hostport_addr bound;
    int lfd = -1;
    /* A port free a moment ago may be taken by another process meanwhile: try a few. */
    for (int i = 0; i < 5 && lfd < 0; i++) {
        char spec[32];
        snprintf(spec, sizeof(spec), ":%d", free_port());
        CHECK(hostport_parse(spec, strlen(spec), HOSTPORT_EMPTY_HOST, 0, &hp) == HOSTPORT_OK);
        lfd = hostport_listen(&hp, &tcp, &bound, why, sizeof(why));
    }
    CHECK(lfd >= 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)hp.port);
    to.sin_addr.s_addr = htonl(0x7f000001);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&to, sizeof(to)) == 0);
    int a = accept(lfd, NULL, NULL);
    CHECK(a >= 0);
    close(a);
    close(c);
    struct hostport_listen_opts udp = {SOCK_DGRAM, 1 << 16, false};
    int ufd = hostport_listen(&hp, &udp, NULL, why, sizeof(why));
    CHECK(ufd >= 0);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(sendto(s, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) == 1);
    char got[4];
    CHECK(recv(ufd, got, sizeof(got), 0) == 1);
    close(s);
    close(ufd);
    /* The port is taken now: the error names the reason. */
    int again = hostport_listen(&hp, &tcp, NULL, why, sizeof(why));
    CHECK_EQ_I64(again, -1);
    CHECK_STREQ(why, "Address already in use");
    close(lfd);
}

int
main(void)
{
    test_parse();
    test_resolve();
    test_format();
    test_fallback();
    test_listen_wildcard();
    return CHECK_DONE();
}
