#include "http/textbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
textbuf_init(struct textbuf *b, size_t cap_hint)
{
    b->len = 0;
    b->cap = cap_hint < 64 ? 64 : cap_hint;
    b->p = malloc(b->cap);
    b->failed = b->p == NULL;
}

void
textbuf_cleanup(struct textbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Makes room for n more bytes plus a NUL; false once any allocation failed. */
static bool
textbuf_reserve(struct textbuf *b, size_t n)
{
    if (b->failed) {
        return false;
    }
    if (n < b->cap - b->len) {
        return true;
    }
    size_t cap = b->cap != 0 ? b->cap : 64;
    while (n >= cap - b->len) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void
textbuf_add(struct textbuf *b, const char *s, size_t n)
{
    if (!textbuf_reserve(b, n)) {
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void
textbuf_str(struct textbuf *b, const char *s)
{
    textbuf_add(b, s, strlen(s));
}

void
textbuf_char(struct textbuf *b, char c)
{
    textbuf_add(b, &c, 1);
}

void
textbuf_u64(struct textbuf *b, uint64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    textbuf_add(b, digits + i, sizeof(digits) - i);
}

void
textbuf_i64(struct textbuf *b, int64_t v)
{
    if (v < 0) {
        textbuf_char(b, '-');
        textbuf_u64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    textbuf_u64(b, (uint64_t)v);
}

void
textbuf_fixed(struct textbuf *b, double v, int decimals)
{
    char num[64];
    if (!isfinite(v)) {
        v = 0;
    }
    int n = snprintf(num, sizeof(num), "%.*f", decimals, v);
    if (n > 0 && (size_t)n < sizeof(num)) {
        textbuf_add(b, num, (size_t)n);
    }
}

void
textbuf_json_str(struct textbuf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    textbuf_char(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (u[i] == '"' || u[i] == '\\') {
            char esc[2] = {'\\', (char)u[i]};
            textbuf_add(b, esc, 2);
        } else if (u[i] < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            textbuf_add(b, esc, 6);
        } else {
            textbuf_add(b, s + i, 1);
        }
    }
    textbuf_char(b, '"');
}

char *
textbuf_finish(struct textbuf *b, size_t *len)
{
    if (!textbuf_reserve(b, 0)) {
        textbuf_cleanup(b);
        *len = 0;
        return NULL;
    }
    b->p[b->len] = '\0';
    char *out = b->p;
    *len = b->len;
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    return out;
}
