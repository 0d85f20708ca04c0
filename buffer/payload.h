/* A payload: one validated client request body (a /write body by default) shared by all of a
 * relay's backends.
 * Created by the HTTP thread that received the write, immutable afterwards, freed by the last
 * payload_unref() (atomic refcount). Each queue entry holds one reference. Any thread. */
#ifndef IR_BUFFER_PAYLOAD_H
#define IR_BUFFER_PAYLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a payload is, which decides where the sender POSTs it and how (buffer/post.c): the
 * location's last path segment replaced by the kind's path, with the kind's Content-Type. */
enum payload_kind {
    PAYLOAD_WRITE, /* line protocol -> the location itself (the backend's /write), text/plain */
    PAYLOAD_PROM,  /* Prometheus remote-write body (snappy protobuf), sent unchanged to
                    * /api/v1/prom/write with Content-Encoding: snappy */
    PAYLOAD_QUERY, /* a state-changing InfluxQL statement as a form body -> POST /query */
};

struct payload {
    _Atomic unsigned refs; /* atomic */
    /* Everything below is immutable after payload_new(). */
    enum payload_kind kind;
    char *buf;        /* owned allocation holding data (body or lp output) */
    const char *data; /* the body to send; line protocol ends with '\n' */
    size_t len;
    size_t points;
    char *query; /* owned: the forwarded query string, URL-encoded ("db=..&rp=..&precision=.."
                  * for a write) */
    char *auth;  /* owned: the client's Authorization header value, or NULL */
    int64_t arrived_ms; /* monotonic ms, set by payload_new() */
    size_t held_bytes;  /* memory this payload keeps allocated: struct, buf (its usable size),
                         * query, auth, plus malloc's chunk headers. Charged in full to every
                         * queue holding it (see docs/queue-and-retry.md). */
};

/* Returns a payload of the given kind with one reference. Takes ownership of buf, query and auth
 * on every path (data must point into buf; buf may be NULL when data is static, e.g. in tests).
 * points: what a success delivers (0 for a query). Never NULL (the struct itself is a fixed-size
 * xcalloc). Any thread. */
struct payload *payload_new(enum payload_kind kind, char *buf, const char *data, size_t len,
                            size_t points, char *query, char *auth);
/* Adds one reference. Any thread. */
void payload_ref(struct payload *p);
/* Drops one reference; the last one frees everything. NULL is a no-op. */
void payload_unref(struct payload *p);
/* Any thread. True when a and b may be merged into one backend request: both are writes
 * (PAYLOAD_WRITE) with the same query and Authorization. Other kinds always go alone. */
bool payload_same_route(const struct payload *a, const struct payload *b);

#endif
