/* A bounded growable byte buffer: the one buffer of the code base for bodies being received,
 * rendered responses (/metrics, /health, JSON errors) and log lines. Heap storage grows
 * geometrically up to a bound set at init (or the caller's fixed array is used, never grown).
 * One spare byte past the bound is always kept, so a final newline (dbuf_terminate_line) or a
 * NUL (dbuf_finish) never needs a copy. The first failure is latched: later appends are no-ops
 * and `status` says why. Caller storage; owner thread only; owns its block until take/finish. */
#ifndef IR_UTIL_DBUF_H
#define IR_UTIL_DBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bound for buffers that only memory limits (rendered text). */
#define DBUF_NO_BOUND (SIZE_MAX / 4)

enum dbuf_status {
    DBUF_OK,
    DBUF_TOO_BIG, /* the content would exceed the bound */
    DBUF_NOMEM,   /* an allocation failed (the request fails, not the process) */
};

struct dbuf {
    char *p;                 /* owned (NULL until content arrives), or the caller's storage */
    size_t len;              /* bytes of content */
    size_t cap;              /* bytes of p (at most max + 1) */
    size_t max;              /* bound on len */
    bool fixed;              /* p is the caller's storage: never grown, never freed */
    enum dbuf_status status; /* the first failure, latched; DBUF_OK until then */
};

/* Starts empty with a bound of max bytes of content; allocates nothing. */
void dbuf_init(struct dbuf *b, size_t max);
/* Uses storage[0..size) (size >= 1) as the buffer: bound size - 1, nothing is allocated. */
void dbuf_init_fixed(struct dbuf *b, char *storage, size_t size);
/* Frees the block (not fixed storage); b is empty and may be reused. */
void dbuf_cleanup(struct dbuf *b);

/* Ensures room for n more bytes and, when hint > n and nothing is allocated yet, tries to
 * allocate room for hint more at once (a size announced in advance: one allocation). Returns
 * DBUF_OK or the failure, which is latched. */
enum dbuf_status dbuf_reserve(struct dbuf *b, size_t n, size_t hint);
/* Appends all of p[0..n) or, when it does not fit or memory is short, nothing (and latches the
 * failure). Returns the status after the call. */
enum dbuf_status dbuf_append(struct dbuf *b, const void *p, size_t n);
void dbuf_str(struct dbuf *b, const char *s);
void dbuf_char(struct dbuf *b, char c);
void dbuf_u64(struct dbuf *b, uint64_t v);
void dbuf_i64(struct dbuf *b, int64_t v);
/* v with exactly `decimals` digits after the point (0..9); NaN and infinities are written as 0. */
void dbuf_fixed(struct dbuf *b, double v, int decimals);

/* Free room after the content, for writers that fill it in place (inflate), growing the block
 * when it is full. Returns where to write and sets *room (never beyond the bound); *room is 0
 * when the content is at the bound (b->status unchanged) or when growing failed (DBUF_NOMEM is
 * latched). Follow with dbuf_commit(). */
char *dbuf_room(struct dbuf *b, size_t *room);
/* Counts n bytes written in place after dbuf_room() (n <= the room it gave). */
void dbuf_commit(struct dbuf *b, size_t n);

/* Ends non-empty content with '\n' when it does not already (the spare byte guarantees room,
 * so len may then be max + 1). */
void dbuf_terminate_line(struct dbuf *b);
/* Hands the block over as is (free() it; no NUL added): NULL when nothing was allocated. b is
 * empty afterwards. Not for fixed storage. */
char *dbuf_take(struct dbuf *b);
/* Hands over NUL-terminated content of *len bytes (free() it), or NULL after a failure (the
 * block is freed then). b is empty afterwards. Fixed storage: returns the caller's storage. */
char *dbuf_finish(struct dbuf *b, size_t *len);

#endif
