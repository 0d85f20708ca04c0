/* Socket addresses of the UDP relay: splits "host:port", "[v6]:port" or ":port" and resolves it
 * with getaddrinfo (numeric addresses or host names, IPv4 and IPv6), and formats an address back
 * as "1.2.3.4:5" or "[::1]:5" for logs. No state; any thread. */
#ifndef IR_UDP_ADDR_H
#define IR_UDP_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "util/err.h"

/* A resolved address, plain data. */
struct udp_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Longest text udp_addr_format() writes, NUL included ("[v6%scope]:65535"). */
#define UDP_ADDR_TEXT 80

/* Resolves hostport into *out: the first IPv4 address of a name that has one (as the Go relay),
 * else its first address. An empty host means any address ("::", dual stack, where IPv6 is
 * configured, else 0.0.0.0) and is only valid when passive (for bind). Returns 0, or -1 with a
 * reason in why[0..why_len) such as "missing port" or getaddrinfo's message. */
int udp_addr_resolve(const char *hostport, bool passive, struct udp_addr *out, char *why,
                     size_t why_len) IR_WARN_UNUSED;

/* Formats sa as "1.2.3.4:5" or "[::1]:5" into out (UDP_ADDR_TEXT bytes are always enough);
 * "?" when the family is unknown. Returns out. */
const char *udp_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t out_len);

#endif
