#include "udp/addr.h"

#include <stdio.h>
#include <string.h>

#include <netdb.h>

/* Splits hostport into host[] and port[]: "h:p", "[v6]:p", ":p". Returns 0 or -1 (why set). */
static int
addr_split(const char *hostport, char *host, size_t host_len, char *port, size_t port_len,
           char *why, size_t why_len)
{
    const char *colon = strrchr(hostport, ':');
    const char *h = hostport;
    size_t hl = colon != NULL ? (size_t)(colon - hostport) : 0;
    if (colon == NULL || colon[1] == '\0') {
        snprintf(why, why_len, "missing port");
        return -1;
    }
    if (hl > 0 && h[0] == '[') {
        if (h[hl - 1] != ']') {
            snprintf(why, why_len, "bad IPv6 address (expected [addr]:port)");
            return -1;
        }
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl) != NULL) {
        snprintf(why, why_len, "IPv6 address must be in brackets ([addr]:port)");
        return -1;
    }
    if (hl >= host_len || strlen(colon + 1) >= port_len) {
        snprintf(why, why_len, "address too long");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, port_len, "%s", colon + 1);
    return 0;
}

int
udp_addr_resolve(const char *hostport, bool passive, struct udp_addr *out, char *why,
                 size_t why_len)
{
    char host[256];
    char port[16];
    if (addr_split(hostport, host, sizeof(host), port, sizeof(port), why, why_len) != 0) {
        return -1;
    }
    if (host[0] == '\0' && !passive) {
        snprintf(why, why_len, "missing host");
        return -1;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    /* Any address: AI_ADDRCONFIG offers "::" only where IPv6 is configured. */
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE | AI_ADDRCONFIG : 0);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_len, "%s", gai_strerror(rc));
        return -1;
    }
    /* As the Go relay (net.ResolveUDPAddr): a name with IPv4 and IPv6 addresses means its first
     * IPv4 one. Any address means "::" when available, which takes IPv4 too (dual stack). */
    int prefer = host[0] == '\0' ? AF_INET6 : AF_INET;
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == prefer) {
            pick = ai;
            break;
        }
    }
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, pick->ai_addr, pick->ai_addrlen);
    out->len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

const char *
udp_addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t out_len)
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
