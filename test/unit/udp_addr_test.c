/* Unit tests for udp/addr.c (host:port split, resolution, formatting) and udp/ratelimit.c. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "check.h"
#include "udp/addr.h"

/* Resolves s and formats it back; "" when resolution fails (why then holds the reason). */
static const char *
round_trip(const char *s, bool passive, char *out, size_t len)
{
    struct udp_addr a;
    char why[200];
    if (udp_addr_resolve(s, passive, &a, why, sizeof(why)) != 0) {
        CHECK(why[0] != '\0');
        out[0] = '\0';
        return out;
    }
    return udp_addr_format((const struct sockaddr *)&a.ss, a.len, out, len);
}

static void
test_resolve(void)
{
    char t[UDP_ADDR_TEXT];
    CHECK_STREQ(round_trip("127.0.0.1:8089", false, t, sizeof(t)), "127.0.0.1:8089");
    CHECK_STREQ(round_trip("[::1]:8089", false, t, sizeof(t)), "[::1]:8089");
    /* A name with IPv4 and IPv6 addresses resolves to IPv4, as in the Go relay. */
    CHECK_STREQ(round_trip("localhost:1", false, t, sizeof(t)), "127.0.0.1:1");
    CHECK_STREQ(round_trip("127.0.0.1:65535", false, t, sizeof(t)), "127.0.0.1:65535");
    /* An empty host is "any address", for binding only. */
    CHECK(round_trip(":8089", true, t, sizeof(t))[0] != '\0');
    CHECK_STREQ(round_trip(":8089", false, t, sizeof(t)), "");
    /* Refusals. */
    CHECK_STREQ(round_trip("127.0.0.1", false, t, sizeof(t)), "");
    CHECK_STREQ(round_trip("127.0.0.1:", false, t, sizeof(t)), "");
    CHECK_STREQ(round_trip("::1:8089", false, t, sizeof(t)), "");
    CHECK_STREQ(round_trip("[::1:8089", false, t, sizeof(t)), "");
    CHECK_STREQ(round_trip("127.0.0.1:http", false, t, sizeof(t)), "");
    CHECK_STREQ(round_trip("no-such-host.invalid:8089", false, t, sizeof(t)), "");
}

static void
test_format(void)
{
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof(a4));
    a4.sin_family = AF_INET;
    a4.sin_port = htons(5555);
    a4.sin_addr.s_addr = htonl(0x0a000001);
    char t[UDP_ADDR_TEXT];
    CHECK_STREQ(udp_addr_format((const struct sockaddr *)&a4, sizeof(a4), t, sizeof(t)),
                "10.0.0.1:5555");
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(1);
    CHECK(inet_pton(AF_INET6, "2001:db8::5", &a6.sin6_addr) == 1);
    CHECK_STREQ(udp_addr_format((const struct sockaddr *)&a6, sizeof(a6), t, sizeof(t)),
                "[2001:db8::5]:1");
}

int
main(void)
{
    test_resolve();
    test_format();
    return CHECK_DONE();
}
