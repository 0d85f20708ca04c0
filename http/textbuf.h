/* A growable text buffer for rendered responses (/metrics, /health): one malloc'd block that
 * doubles when full, so rendering costs O(log n) allocations and none per line. Out of memory is
 * sticky: every later append is a no-op and textbuf_finish() returns NULL.
 * Caller storage; every function is owner thread only (the MHD connection thread rendering). */
#ifndef IR_HTTP_TEXTBUF_H
#define IR_HTTP_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct textbuf {
    char *p; /* owned */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed: the content is incomplete */
};

/* Allocates cap_hint bytes up front (a guess of the final size; 0 is fine). */
void textbuf_init(struct textbuf *b, size_t cap_hint);
/* Frees the block; safe after textbuf_finish() (then a no-op). */
void textbuf_cleanup(struct textbuf *b);

void textbuf_add(struct textbuf *b, const char *s, size_t n);
void textbuf_str(struct textbuf *b, const char *s);
void textbuf_char(struct textbuf *b, char c);
void textbuf_u64(struct textbuf *b, uint64_t v);
void textbuf_i64(struct textbuf *b, int64_t v);
/* v with exactly `decimals` digits after the point (0..9); NaN/Inf are written as 0. */
void textbuf_fixed(struct textbuf *b, double v, int decimals);
/* s as a JSON string, quotes included (quote, backslash and control characters escaped). s must
 * be UTF-8; the names it is used for are ASCII ([A-Za-z0-9_-], checked by conf/). */
void textbuf_json_str(struct textbuf *b, const char *s);

/* Hands the text over: returns owned (free()) NUL-terminated text of *len bytes, or NULL when an
 * allocation failed (the buffer is freed either way). */
char *textbuf_finish(struct textbuf *b, size_t *len);

#endif
