#include "util/hostport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
           c == '.' || c == '_';
}

static bool
is_v6_char(char c)
{
    /* Hex digits, ':' and '.', and a zone after '%' (fe80::1%eth0). */
    return is_host_char(c) || c == ':' || c == '%';
}

/* A port in s[0..n): 1-65535, digits only. */
static enum hostport_status
parse_port(const char *s, size_t n, int *port)
{
    if (n == 0) {
        return HOSTPORT_INVALID;
    }
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return HOSTPORT_INVALID;
        }
        if (v <= 65535) {
            v = v * 10 + (s[i] - '0');
        }
    }
    if (v < 1 || v > 65535) {
        return HOSTPORT_RANGE;
    }
    *port = v;
    return HOSTPORT_OK;
}

/* Copies the host s[0..n) (brackets already removed) into out; false when it is not one. */
static bool
parse_host(const char *s, size_t n, bool v6, struct hostport *out)
{
    if (n >= sizeof(out->host) || (v6 && (n == 0 || memchr(s, ':', n) == NULL))) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(v6 ? is_v6_char(s[i]) : is_host_char(s[i]))) {
            return false;
        }
    }
    memcpy(out->host, s, n);
    out->host[n] = '\0';
    struct in_addr a4;
    out->kind = v6                                        ? HOSTPORT_IPV6
                : n == 0                                  ? HOSTPORT_ANY
                : inet_pton(AF_INET, out->host, &a4) == 1 ? HOSTPORT_IPV4
                                                          : HOSTPORT_NAME;
    return true;
}

enum hostport_status
hostport_parse(const char *s, size_t len, unsigned flags, int default_port, struct hostport *out)
{
    struct hostport hp;
    memset(&hp, 0, sizeof(hp));
    size_t host_start = 0; /* the host is s[host_start..host_end) */
    size_t host_end = 0;
    size_t after = 0; /* where ":port" starts, or len */
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            return HOSTPORT_INVALID;
        }
        host_start = 1;
        host_end = (size_t)(close - s);
        after = host_end + 1;
        if (after < len && s[after] != ':') {
            return HOSTPORT_INVALID; /* text after "]" */
        }
    } else {
        /* Without brackets the host holds no ':' (Go: "too many colons"). */
        const char *colon = memchr(s, ':', len);
        host_end = colon != NULL ? (size_t)(colon - s) : len;
        after = host_end;
    }
    bool v6 = host_start == 1;
    if (!parse_host(s + host_start, host_end - host_start, v6, &hp)) {
        return HOSTPORT_INVALID;
    }
    if (hp.kind == HOSTPORT_ANY && (flags & HOSTPORT_EMPTY_HOST) == 0) {
        return HOSTPORT_INVALID;
    }
    if (after == len) {
        if ((flags & HOSTPORT_PORT_OPTIONAL) == 0) {
            return HOSTPORT_INVALID;
        }
        hp.port = default_port;
    } else {
        enum hostport_status st = parse_port(s + after + 1, len - after - 1, &hp.port);
        if (st != HOSTPORT_OK) {
            return st;
        }
    }
    *out = hp;
    return HOSTPORT_OK;
}

/* Appends a candidate unless it is already listed. */
static void
addrs_add(struct hostport_addrs *out, const struct sockaddr *sa, socklen_t len)
{
    for (size_t i = 0; i < out->n; i++) {
        if (out->a[i].len == len && memcmp(&out->a[i].ss, sa, len) == 0) {
            return;
        }
    }
    if (out->n < HOSTPORT_MAX_ADDRS && len <= sizeof(out->a[0].ss)) {
        memset(&out->a[out->n].ss, 0, sizeof(out->a[out->n].ss));
        memcpy(&out->a[out->n].ss, sa, len);
        out->a[out->n].len = len;
        out->n++;
    }
}

/* Every interface: [::] (dual stack) first, then 0.0.0.0 for hosts without IPv6. */
static void
addrs_any(struct hostport_addrs *out, int port)
{
    struct sockaddr_in6 a6;
    memset(&a6, 0, sizeof(a6));
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)port);
    a6.sin6_addr = in6addr_any;
    addrs_add(out, (const struct sockaddr *)&a6, sizeof(a6));
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof(a4));
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)port);
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    addrs_add(out, (const struct sockaddr *)&a4, sizeof(a4));
}

int
hostport_resolve(const struct hostport *hp, bool passive, int socktype, struct hostport_addrs *out,
                 char *why, size_t why_len)
{
    out->n = 0;
    if (hp->kind == HOSTPORT_ANY || hp->host[0] == '\0') {
        if (!passive) {
            snprintf(why, why_len, "missing host");
            return -1;
        }
        addrs_any(out, hp->port);
        return 0;
    }
    char service[8];
    snprintf(service, sizeof(service), "%d", hp->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = hp->kind == HOSTPORT_IPV4   ? AF_INET
                      : hp->kind == HOSTPORT_IPV6 ? AF_INET6
                                                  : AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICSERV | (hp->kind != HOSTPORT_NAME ? AI_NUMERICHOST : 0) |
                     (passive ? AI_PASSIVE : 0);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(hp->host, service, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_len, "%s", gai_strerror(rc));
        return -1;
    }
    /* IPv4 first, as Go's resolver for a listener or a UDP destination. */
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            addrs_add(out, ai->ai_addr, ai->ai_addrlen);
        }
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET6) {
            addrs_add(out, ai->ai_addr, ai->ai_addrlen);
        }
    }
    freeaddrinfo(res);
    if (out->n == 0) {
        snprintf(why, why_len, "no IPv4 or IPv6 address");
        return -1;
    }
    return 0;
}

const char *
hostport_format(const struct sockaddr *sa, socklen_t len, char *out, size_t out_len)
{
    char host[128];
    char port[16];
    int rc = getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
                         NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        snprintf(out, out_len, "?");
    } else if (sa->sa_family == AF_INET6) {
        snprintf(out, out_len, "[%s]:%s", host, port);
    } else {
        snprintf(out, out_len, "%s:%s", host, port);
    }
    return out;
}

/* Errors that only say this family is not available here. */
static bool
is_family_error(int e)
{
    return e == EAFNOSUPPORT || e == EPROTONOSUPPORT || e == EADDRNOTAVAIL;
}

int
hostport_open_first(const struct hostport_addrs *addrs, hostport_open_fn open, const void *ctx,
                    size_t *which, int *err)
{
    int first = 0;
    int first_real = 0;
    for (size_t i = 0; i < addrs->n; i++) {
        errno = 0;
        int fd = open(&addrs->a[i], ctx);
        if (fd >= 0) {
            *which = i;
            return fd;
        }
        int e = errno != 0 ? errno : EINVAL;
        first = first != 0 ? first : e;
        first_real = first_real != 0 || is_family_error(e) ? first_real : e;
    }
    *err = first_real != 0 ? first_real : first != 0 ? first : EADDRNOTAVAIL;
    return -1;
}

/* The hostport_open_fn of hostport_listen(). */
static int
listen_one(const struct hostport_addr *a, const void *ctx)
{
    const struct hostport_listen_opts *o = ctx;
    int family = a->ss.ss_family;
    int fd = socket(family, o->socktype, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    int zero = 0;
    if (o->socktype == SOCK_STREAM) {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    }
    if (family == AF_INET6) {
        /* Only the wildcard [::] takes both families. */
        bool any = IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int));
    }
    bool ok = fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 &&
              (!o->nonblock || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0) &&
              (o->rcvbuf <= 0 ||
               setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof(o->rcvbuf)) == 0) &&
              bind(fd, (const struct sockaddr *)&a->ss, a->len) == 0 &&
              (o->socktype != SOCK_STREAM || listen(fd, SOMAXCONN) == 0);
    if (!ok) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int
hostport_listen_addrs(const struct hostport_addrs *addrs, const struct hostport_listen_opts *o,
                      size_t *which, char *why, size_t why_len)
{
    int err = 0;
    int fd = hostport_open_first(addrs, listen_one, o, which, &err);
    if (fd < 0) {
        ir_strerror(err, why, why_len);
    }
    return fd;
}

int
hostport_listen(const struct hostport *hp, const struct hostport_listen_opts *o,
                struct hostport_addr *bound, char *why, size_t why_len)
{
    struct hostport_addrs addrs;
    if (hostport_resolve(hp, true, o->socktype, &addrs, why, why_len) != 0) {
        return -1;
    }
    size_t which = 0;
    int fd = hostport_listen_addrs(&addrs, o, &which, why, why_len);
    if (fd >= 0 && bound != NULL) {
        *bound = addrs.a[which];
    }
    return fd;
}
