/* Network addresses: the one host:port parser, resolver and listener of the code base.
 * hostport_parse() reads "host:port", "[v6]:port" and ":port" as Go's net.SplitHostPort does
 * (numeric port 1-65535), once, at config load. hostport_resolve() turns a parsed address into
 * the list of socket addresses to try, in order: for a bind, an empty host means every
 * interface, [::] (dual stack) then 0.0.0.0, so a host without IPv6 falls back to IPv4 as Go
 * does; a name lists its IPv4 addresses first (as Go's resolver for a listener or a UDP
 * destination). hostport_listen() binds the first candidate that works. Parsing is pure; the
 * rest does name resolution and socket calls, any thread, no logging, no state. */
#ifndef IR_UTIL_HOSTPORT_H
#define IR_UTIL_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

#include "util/err.h"

#define HOSTPORT_HOST_MAX  256 /* bytes of a host, NUL included */
#define HOSTPORT_MAX_ADDRS 8   /* candidates kept from one resolution */
#define HOSTPORT_TEXT      80  /* longest hostport_format() text, NUL included */

/* What the host is, known without resolving it: the family hint of the resolver. */
enum hostport_kind {
    HOSTPORT_ANY,  /* empty host: every interface (bind only) */
    HOSTPORT_IPV4, /* a dotted IPv4 literal */
    HOSTPORT_IPV6, /* a bracketed IPv6 literal (zone allowed: fe80::1%eth0) */
    HOSTPORT_NAME, /* a host name, resolved when used */
};

/* A parsed address, plain data. */
struct hostport {
    char host[HOSTPORT_HOST_MAX]; /* NUL-terminated, without brackets; "" = every interface */
    int port;                     /* 1..65535, or the default (HOSTPORT_PORT_OPTIONAL) */
    enum hostport_kind kind;
};

enum hostport_status { HOSTPORT_OK, HOSTPORT_INVALID, HOSTPORT_RANGE /* port 0 or > 65535 */ };

/* hostport_parse() flags. */
#define HOSTPORT_EMPTY_HOST    1u /* ":port" allowed (a bind address) */
#define HOSTPORT_PORT_OPTIONAL 2u /* "host" and "[v6]" allowed, port = default_port (URLs) */

/* Parses s[0..len). A host is [A-Za-z0-9._-]+ or a bracketed IPv6 address; an IPv6 address
 * without brackets ("::1:9096") is invalid, as in Go. Returns HOSTPORT_OK and fills *out, or why
 * not (*out unset). */
enum hostport_status hostport_parse(const char *s, size_t len, unsigned flags, int default_port,
                                    struct hostport *out) IR_WARN_UNUSED;

/* One socket address. */
struct hostport_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};
/* The candidates of one address, in the order to try them. */
struct hostport_addrs {
    struct hostport_addr a[HOSTPORT_MAX_ADDRS];
    size_t n;
};

/* Resolves hp into *out (at least one candidate). passive: for a bind (an empty host allowed,
 * see the top); else for a destination (a host is required). Returns 0, or -1 with a reason
 * in why[0..why_len) (getaddrinfo's message, "missing host"). */
int hostport_resolve(const struct hostport *hp, bool passive, int socktype,
                     struct hostport_addrs *out, char *why, size_t why_len) IR_WARN_UNUSED;

/* Formats sa as "1.2.3.4:5" or "[::1]:5" into out (HOSTPORT_TEXT bytes are always enough);
 * "?" when the family is unknown. Returns out. */
const char *hostport_format(const struct sockaddr *sa, socklen_t len, char *out, size_t out_len);

/* Opens a socket for candidate a (socket, options, bind, listen ...). Returns the descriptor,
 * or -1 with errno set. */
typedef int (*hostport_open_fn)(const struct hostport_addr *a, const void *ctx);

/* Tries the candidates in order with open until one works. Returns its descriptor and sets
 * *which to its index; or -1 when every one failed, with *err the errno to report: the first
 * that is not a family the host lacks (EAFNOSUPPORT, EPROTONOSUPPORT, EADDRNOTAVAIL), else the
 * first. */
int hostport_open_first(const struct hostport_addrs *addrs, hostport_open_fn open, const void *ctx,
                        size_t *which, int *err);

/* What hostport_listen() sets up on the socket. */
struct hostport_listen_opts {
    int socktype;  /* SOCK_STREAM (then listen(SOMAXCONN) and SO_REUSEADDR) or SOCK_DGRAM */
    int rcvbuf;    /* SO_RCVBUF before the bind when > 0 */
    bool nonblock; /* O_NONBLOCK */
};

/* Binds the first of the candidates that works (close-on-exec; [::] takes IPv4 too, a specific
 * IPv6 address only IPv6). Returns the descriptor and sets *which to the candidate used, or -1
 * with strerror of hostport_open_first()'s error in why. */
int hostport_listen_addrs(const struct hostport_addrs *addrs, const struct hostport_listen_opts *o,
                          size_t *which, char *why, size_t why_len);
/* hostport_resolve() for a bind, then hostport_listen_addrs(). Returns the descriptor, or -1
 * with a reason in why (the resolver's message or strerror). *bound (may be NULL) gets the
 * address used. */
int hostport_listen(const struct hostport *hp, const struct hostport_listen_opts *o,
                    struct hostport_addr *bound, char *why, size_t why_len);

#endif
