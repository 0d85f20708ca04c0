/* A payload: one validated, timestamped /write body shared by all of a relay's backends.
 * Created by the HTTP thread that received the write, immutable afterwards, freed by the last
 * payload_unref() (atomic refcount). Each queue entry holds one reference. Any thread. */
#ifndef IR_BUFFER_PAYLOAD_H
#define IR_BUFFER_PAYLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct payload {
    _Atomic unsigned refs; /* atomic */
    /* Everything below is immutable after payload_new(). */
    char *buf;        /* owned allocation holding data (body or lp output) */
    const char *data; /* the line protocol to send, ends with '\n' */
    size_t len;
    size_t points;
    char *query;        /* owned: "db=..&rp=..&precision=..&u=..&p=.." as forwarded, URL-encoded */
    char *auth;         /* owned: the client's Authorization header value, or NULL */
    int64_t arrived_ms; /* monotonic ms, set by payload_new() */
    size_t held_bytes;  /* memory this payload keeps allocated: struct, buf (its usable size),
                         * query, auth, plus malloc's chunk headers. Charged in full to every
                         * queue holding it (see docs/queue-and-retry.md). */
};

/* Returns a payload with one reference. Takes ownership of buf, query and auth on every path
 * (data must point into buf; buf may be NULL when data is static, e.g. in tests). Never NULL
 * (the struct itself is a fixed-size xcalloc). Any thread. */
struct payload *payload_new(char *buf, const char *data, size_t len, size_t points, char *query,
                            char *auth);
/* Adds one reference. Any thread. */
void payload_ref(struct payload *p);
/* Drops one reference; the last one frees everything. NULL is a no-op. */
void payload_unref(struct payload *p);
/* Any thread. True when a and b may be merged into one backend request (same query and
 * Authorization). */
bool payload_same_route(const struct payload *a, const struct payload *b);

#endif
