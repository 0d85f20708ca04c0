#include "buffer/payload.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/xalloc.h"

/* glibc's per-chunk header: counted once per allocation in held_bytes, so the queue bound is a
 * bound on memory really held, not only on body bytes. */
#define PAYLOAD_CHUNK_OVERHEAD 16

static size_t
str_held(const char *s)
{
    return s == NULL ? 0 : strlen(s) + 1 + PAYLOAD_CHUNK_OVERHEAD;
}

struct payload *
payload_new(enum payload_kind kind, char *buf, const char *data, size_t len, size_t points,
            char *query, char *auth)
{
    struct payload *p = xcalloc(1, sizeof(*p));
    atomic_init(&p->refs, 1);
    p->kind = kind;
    p->buf = buf;
    p->data = data;
    p->len = len;
    p->points = points;
    p->query = query;
    p->auth = auth;
    p->arrived_ms = clock_mono_ms();
    /* malloc_usable_size() counts the allocation really held (a body buffer may be larger than
     * the lines it keeps). A NULL buf means data is borrowed elsewhere: count len. */
    size_t body = buf == NULL ? len : malloc_usable_size(buf) + PAYLOAD_CHUNK_OVERHEAD;
    if (body < len) {
        body = len;
    }
    p->held_bytes = sizeof(*p) + PAYLOAD_CHUNK_OVERHEAD + body + str_held(query) + str_held(auth);
    return p;
}

void
payload_ref(struct payload *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void
payload_unref(struct payload *p)
{
    if (p == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    free(p->buf);
    free(p->query);
    free(p->auth);
    free(p);
}

static bool
str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

bool
payload_same_route(const struct payload *a, const struct payload *b)
{
    return a->kind == PAYLOAD_WRITE && b->kind == PAYLOAD_WRITE && str_same(a->query, b->query) &&
           str_same(a->auth, b->auth);
}
