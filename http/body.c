#include "http/body.h"

#include <stdlib.h>
#include <string.h>

/* First allocation when the size is unknown (chunked or gzip). */
#define BODY_MIN_CAP ((size_t)16 * 1024)

void
body_init(struct body *b, size_t max)
{
    b->buf = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static enum body_status
body_grow(struct body *b, size_t want)
{
    /* Geometric growth bounded by max + 1 (the spare byte for a final newline). */
    size_t limit = b->max + 1;
    size_t cap = b->cap ? b->cap : BODY_MIN_CAP;
    while (cap < want && cap <= limit / 2) {
        cap *= 2;
    }
    if (cap < want || cap > limit) {
        cap = limit;
    }
    if (cap < want) {
        return BODY_TOO_BIG;
    }
    char *nb = realloc(b->buf, cap);
    if (nb == NULL) {
        return BODY_NOMEM;
    }
    b->buf = nb;
    b->cap = cap;
    return BODY_OK;
}

enum body_status
body_reserve(struct body *b, size_t n, size_t hint)
{
    if (n > b->max - b->len) {
        return BODY_TOO_BIG;
    }
    if (b->len + n + 1 <= b->cap) {
        return BODY_OK;
    }
    size_t want = b->len + n + 1;
    if (hint > n && hint <= b->max - b->len && b->cap == 0) {
        /* Announced size: allocate exactly once. */
        char *nb = malloc(b->len + hint + 1);
        if (nb != NULL) {
            b->buf = nb;
            b->cap = b->len + hint + 1;
            return BODY_OK;
        }
    }
    return body_grow(b, want);
}

enum body_status
body_append(struct body *b, const void *p, size_t n)
{
    enum body_status st = body_reserve(b, n, 0);
    if (st != BODY_OK) {
        return st;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return BODY_OK;
}

size_t
body_room(struct body *b, enum body_status *st)
{
    *st = BODY_OK;
    if (b->len >= b->max) {
        *st = BODY_TOO_BIG;
        return 0;
    }
    if (b->cap < b->len + 2) {
        *st = body_grow(b, b->len + 2);
        if (*st != BODY_OK) {
            return 0;
        }
    }
    /* Keep the spare byte out of the room, and never offer more than max. */
    size_t room = b->cap - b->len - 1;
    if (room > b->max - b->len) {
        room = b->max - b->len;
    }
    return room;
}

void
body_terminate_line(struct body *b)
{
    if (b->len > 0 && b->buf[b->len - 1] != '\n') {
        b->buf[b->len++] = '\n';
    }
}

char *
body_take(struct body *b)
{
    char *p = b->buf;
    b->buf = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void
body_cleanup(struct body *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = 0;
    b->cap = 0;
}
