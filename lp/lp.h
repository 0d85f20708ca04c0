/* Line protocol engine: validates a body exactly as influxd 1.x's parser does, stamps points
 * that lack a timestamp with one receive time, and splits buffers at line boundaries.
 * Pure: no I/O, no threads, no globals, no allocation per line. Any thread. */
#ifndef IR_LP_LP_H
#define IR_LP_LP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Timestamp precision of a write. */
enum lp_prec { LP_PREC_NS, LP_PREC_US, LP_PREC_MS, LP_PREC_S, LP_PREC_M, LP_PREC_H };

/* Parses s[0..len): n, ns, u, us, ms, s, m, h (what influxd accepts for precision=). An empty
 * string is nanoseconds. Returns 0 or -1. */
int lp_prec_parse(const char *s, size_t len, enum lp_prec *out) IR_WARN_UNUSED;
/* The canonical letter influxd 1.x understands: "n", "u", "ms", "s", "m", "h". */
const char *lp_prec_name(enum lp_prec p);
/* now_ns (ns since the epoch) expressed in precision p, truncated as influxd does. */
int64_t lp_prec_from_ns(int64_t now_ns, enum lp_prec p);

/* Result of lp_process(). data/len is what to forward to every backend: the valid lines in
 * input order, each newline-terminated, byte for byte as received, points without a timestamp
 * followed by " <now>" (now in the write's precision, the same for every point of the call).
 * Blank lines, '#' comments and invalid lines are left out.
 * Zero-copy: when that output is a prefix of the input (every line valid, stamped and
 * newline-terminated, nothing to leave out except at the end) data == the input pointer and
 * buf == NULL. Otherwise data == buf, one owned allocation (free with lp_result_cleanup()).
 *
 * Lines: as influxd cuts them, a '\n' inside a quoted string field value (or after a backslash)
 * does not end a line, so count points with r->points, never by counting '\n'.
 *
 * Errors, and how the HTTP layer reproduces influxd 1.6.7's answers from them:
 *   errors = "unable to parse '<line>': <reason>" for each invalid line, joined with "\n",
 *   exactly influxd's text: <line> is the raw line without its leading ' ', '\t', NUL and its
 *   '\n' (a '\r' stays), <reason> influxd's wording ("invalid number", "bad timestamp", ...).
 *   - points == 0, dropped == 0 (empty body, blank lines, comments): nothing to forward; 204.
 *   - points == 0, dropped > 0: 400 {"error":"<errors>"}, nothing forwarded.
 *   - points > 0, dropped > 0: forward data; when the backends' verdict is 2xx answer
 *     400 {"error":"partial write: <errors> dropped=<N>"} (influxdb-relay(8): N = r->dropped;
 *     influxd 1.6.7 itself always prints dropped=0).
 *   The string goes through Go's encoding/json rules: '"' and '\\' backslash-escaped; '\n',
 *   '\r', '\t' as \n \r \t; other bytes < 0x20 as \u00XX; '<' '>' '&' as \u003c \u003e \u0026;
 *   U+2028/U+2029 as \u2028 \u2029; each invalid UTF-8 byte as \ufffd.
 * One relay-only reason, "ambiguous line end": a line influxd would accept but whose end the
 * relay cannot mark safely (it ends with a lone backslash and has no timestamp, so an appended
 * timestamp or '\n' would be read as escaped; or the body ends inside a quoted string; or the
 * line carries text after an in-quote '\n' that influxd silently ignores). Forwarding such a
 * line would glue the next line of a merged batch to it or give backends different times. */
struct lp_result {
    const char *data;
    size_t len;
    char *buf;              /* owned, or NULL */
    size_t points;          /* valid lines (= lines in data) */
    size_t stamped;         /* of which were given the receive time */
    size_t dropped;         /* invalid lines (blank lines and comments are not counted) */
    char *errors;           /* owned, or NULL when dropped == 0: see above */
    size_t errors_len;      /* bytes in errors (not counting its terminating NUL) */
    bool errors_truncated;  /* errors stopped growing at LP_ERRORS_MAX (see there) */
    size_t first_error_len; /* bytes of the first "unable to parse" entry in errors (the line it
                             * quotes may hold a '\n', so do not cut errors at '\n' for it) */
};

/* Bound of the error text: once it holds this many bytes no further "unable to parse" entry is
 * added (errors_truncated is set; dropped still counts every invalid line). influxd lists them
 * all, but that text can be 18 times the body (2-byte lines, 36-byte errors): 576 MB for a 32 MB
 * body. Bodies with fewer than ~25000 invalid lines of 100 bytes get influxd's exact text. */
#define LP_ERRORS_MAX (4u << 20)

/* Validates and stamps in[0..len). now_ns is the receive time (ns since the epoch), converted
 * once to prec for every unstamped point. Fills *r (the caller calls lp_result_cleanup() on
 * every path). in is borrowed and must outlive r when r->buf == NULL. Returns 0, or -1 only
 * when memory could not be allocated (r is then empty). A body with no valid line returns 0
 * with r->points == 0. Allocates a few times per call at most, never per line. Any thread. */
int lp_process(const char *in, size_t len, enum lp_prec prec, int64_t now_ns,
               struct lp_result *r) IR_WARN_UNUSED;
/* lp_process() with a choice of its fast path (lp/fast.h), for the tests that hold the fast
 * path's verdicts against the full scanner's: none, the base build only (SSE2 or a byte loop),
 * or the best build the CPU runs, which is what lp_process() uses. */
enum lp_fast_mode { LP_FAST_NONE, LP_FAST_BASE, LP_FAST_BEST };
int lp_process_mode(const char *in, size_t len, enum lp_prec prec, int64_t now_ns,
                    enum lp_fast_mode mode, struct lp_result *r) IR_WARN_UNUSED;

/* Frees what r owns and empties it. */
void lp_result_cleanup(struct lp_result *r);

/* Splitting for UDP: returns the length of the next chunk of buf[0..len) that ends at a line
 * boundary and is at most max bytes (a chunk holds whole lines, including their '\n'; lines are
 * cut as influxd cuts them, so a '\n' inside a quoted string never splits a point). When the
 * whole buffer fits it is one chunk.
 * Returns 0 when the first line alone is longer than max; *line_len then gives that line's length
 * (with its '\n') so the caller can report and skip it. */
size_t lp_split(const char *buf, size_t len, size_t max, size_t *line_len);

/* The number of lines in buf[0..len) as influxd cuts them (see lp_split); a last line without
 * '\n' counts. For lp_process() output this is the number of points. Any thread. */
size_t lp_count_lines(const char *buf, size_t len);

#endif
