/* gzip decoding of /write bodies (Content-Encoding: gzip) as they arrive, into a bounded body:
 * the inflated size obeys the same max-body-mb bound as a plain body, so a gzip bomb costs at most
 * that much memory. Concatenated gzip members are read as one stream (as Go's gzip reader does).
 * One object per request, used by its MHD connection thread only. */
#ifndef IR_HTTP_INFLATE_H
#define IR_HTTP_INFLATE_H

#include <stddef.h>

#include "util/dbuf.h"
#include "util/err.h"

enum inflate_status {
    INFLATE_OK,
    INFLATE_TOO_BIG, /* the inflated body exceeds out->max: 413 */
    INFLATE_CORRUPT, /* bad header, bad data, bad CRC or length, truncated: 400 */
    INFLATE_NOMEM,   /* allocation failed: the request fails */
};

struct inflate_gz;

/* Returns owned (free with inflate_free()), or NULL when zlib cannot allocate its state. */
struct inflate_gz *inflate_new(void);
/* Inflates in[0..len) and appends the output to out. After a status other than INFLATE_OK the
 * stream is finished: later calls return the same status. */
enum inflate_status inflate_feed(struct inflate_gz *z, const char *in, size_t len,
                                 struct dbuf *out) IR_WARN_UNUSED;
/* The body is complete: INFLATE_CORRUPT unless the last gzip member ended (truncated stream). */
enum inflate_status inflate_finish(struct inflate_gz *z) IR_WARN_UNUSED;
/* Why the stream is corrupt, worded like Go's gzip reader as influxd reports it
 * ("gzip: invalid header", "gzip: invalid checksum", "flate: corrupt input", "unexpected EOF").
 * Borrowed, valid until inflate_free(). */
const char *inflate_error(const struct inflate_gz *z);
/* NULL is a no-op. */
void inflate_free(struct inflate_gz *z);

#endif
