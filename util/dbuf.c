#include "util/dbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation when no size was announced: small enough for a JSON error, and a body of
 * unknown size reaches 1 MiB after a dozen doublings. */
#define DBUF_MIN_CAP ((size_t)256)

void
dbuf_init(struct dbuf *b, size_t max)
{
    *b = (struct dbuf){.p = NULL, .len = 0, .cap = 0, .max = max, .fixed = false};
}

void
dbuf_init_fixed(struct dbuf *b, char *storage, size_t size)
{
    *b = (struct dbuf){.p = storage, .len = 0, .cap = size, .max = size - 1, .fixed = true};
}

void
dbuf_cleanup(struct dbuf *b)
{
    if (!b->fixed) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    b->len = 0;
    b->status = DBUF_OK;
}

static enum dbuf_status
dbuf_fail(struct dbuf *b, enum dbuf_status st)
{
    if (b->status == DBUF_OK) {
        b->status = st;
    }
    return st;
}

/* Grows the block to at least want bytes (want <= max + 1), doubling, never beyond max + 1. */
static enum dbuf_status
dbuf_grow(struct dbuf *b, size_t want)
{
    size_t limit = b->max + 1;
    size_t cap = b->cap != 0 ? b->cap : DBUF_MIN_CAP;
    while (cap < want && cap <= limit / 2) {
        cap *= 2;
    }
    if (cap < want || cap > limit) {
        cap = limit;
    }
    if (b->fixed || cap < want) {
        return dbuf_fail(b, DBUF_TOO_BIG);
    }
    char *np = realloc(b->p, cap);
    if (np == NULL) {
        return dbuf_fail(b, DBUF_NOMEM);
    }
    b->p = np;
    b->cap = cap;
    return DBUF_OK;
}

enum dbuf_status
dbuf_reserve(struct dbuf *b, size_t n, size_t hint)
{
    if (b->status != DBUF_OK) {
        return b->status;
    }
    if (b->len > b->max || n > b->max - b->len) {
        return dbuf_fail(b, DBUF_TOO_BIG);
    }
    if (n < b->cap - b->len) {
        return DBUF_OK; /* room for n plus the spare byte */
    }
    if (hint > n && hint <= b->max - b->len && b->cap == 0 && !b->fixed) {
        /* Announced size: allocate exactly once. */
        char *np = malloc(b->len + hint + 1);
        if (np != NULL) {
            b->p = np;
            b->cap = b->len + hint + 1;
            return DBUF_OK;
        }
    }
    return dbuf_grow(b, b->len + n + 1);
}

enum dbuf_status
dbuf_append(struct dbuf *b, const void *p, size_t n)
{
    if (dbuf_reserve(b, n, 0) != DBUF_OK) {
        return b->status;
    }
    if (n > 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
    return DBUF_OK;
}

void
dbuf_str(struct dbuf *b, const char *s)
{
    (void)dbuf_append(b, s, strlen(s));
}

void
dbuf_char(struct dbuf *b, char c)
{
    (void)dbuf_append(b, &c, 1);
}

void
dbuf_u64(struct dbuf *b, uint64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    (void)dbuf_append(b, digits + i, sizeof(digits) - i);
}

void
dbuf_i64(struct dbuf *b, int64_t v)
{
    if (v < 0) {
        dbuf_char(b, '-');
        dbuf_u64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    dbuf_u64(b, (uint64_t)v);
}

void
dbuf_fixed(struct dbuf *b, double v, int decimals)
{
    char num[64];
    if (!isfinite(v)) {
        v = 0;
    }
    int n = snprintf(num, sizeof(num), "%.*f", decimals, v);
    if (n > 0 && (size_t)n < sizeof(num)) {
        (void)dbuf_append(b, num, (size_t)n);
    }
}

char *
dbuf_room(struct dbuf *b, size_t *room)
{
    *room = 0;
    if (b->status != DBUF_OK || b->len >= b->max) {
        return NULL;
    }
    if (b->cap < b->len + 2 && dbuf_grow(b, b->len + 2) != DBUF_OK) {
        return NULL;
    }
    /* Keep the spare byte out of the room, and never offer more than the bound. */
    size_t r = b->cap - b->len - 1;
    *room = r < b->max - b->len ? r : b->max - b->len;
    return b->p + b->len;
}

void
dbuf_commit(struct dbuf *b, size_t n)
{
    b->len += n;
}

void
dbuf_terminate_line(struct dbuf *b)
{
    if (b->len > 0 && b->p[b->len - 1] != '\n') {
        b->p[b->len++] = '\n';
    }
}

char *
dbuf_take(struct dbuf *b)
{
    char *p = b->p;
    *b = (struct dbuf){.p = NULL, .len = 0, .cap = 0, .max = b->max, .fixed = false};
    return p;
}

char *
dbuf_finish(struct dbuf *b, size_t *len)
{
    *len = 0;
    if (b->status == DBUF_OK && b->cap == 0) {
        (void)dbuf_grow(b, 1);
    }
    if (b->status != DBUF_OK || b->len >= b->cap) {
        dbuf_cleanup(b);
        return NULL;
    }
    b->p[b->len] = '\0';
    *len = b->len;
    if (b->fixed) {
        return b->p;
    }
    return dbuf_take(b);
}
