/* A request body being received: one malloc'd buffer grown geometrically, never beyond max bytes
 * of content (plus one spare byte so a final newline can always be added without a copy).
 * Used by one MHD connection thread at a time; owns its buffer until body_take(). */
#ifndef IR_HTTP_BODY_H
#define IR_HTTP_BODY_H

#include <stddef.h>

#include "util/err.h"

struct body {
    char *buf;  /* owned, or NULL */
    size_t len; /* bytes of content */
    size_t cap; /* allocated bytes (at most max + 1) */
    size_t max; /* bound on len */
};

enum body_status { BODY_OK, BODY_TOO_BIG, BODY_NOMEM };

/* Starts empty; nothing is allocated until content arrives. */
void body_init(struct body *b, size_t max);
/* Ensures room for at least n more bytes (n <= max - len) and, when hint > n, tries to make room
 * for hint more so the buffer is allocated once when the size is announced (Content-Length).
 * BODY_TOO_BIG when len + n > max; BODY_NOMEM when malloc fails (the request fails, not the
 * process). */
enum body_status body_reserve(struct body *b, size_t n, size_t hint) IR_WARN_UNUSED;
/* Appends p[0..n). */
enum body_status body_append(struct body *b, const void *p, size_t n) IR_WARN_UNUSED;
/* Free room after the content, for writers that fill the buffer directly (inflate): grows the
 * buffer when it is full. Returns the room (0 when len == max, or out of memory: *st says which).
 */
size_t body_room(struct body *b, enum body_status *st);
/* Ends the content with '\n' when it does not already (the spare byte guarantees room). */
void body_terminate_line(struct body *b);
/* Hands the buffer over (caller frees with free()); b is empty afterwards. */
char *body_take(struct body *b);
void body_cleanup(struct body *b);

#endif
