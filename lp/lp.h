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

/* Result of lp_process(). data/len is what to forward to every backend: the valid lines,
 * newline-terminated, points without a timestamp stamped with now in the write's precision.
 * When the input needed no change (every line valid and already stamped, no blank or comment
 * line to drop) data == the input pointer and buf == NULL: no copy. Otherwise data == buf, an
 * owned allocation (free with lp_result_cleanup()). */
struct lp_result {
    const char *data;
    size_t len;
    char *buf;        /* owned, or NULL */
    size_t points;    /* valid lines */
    size_t dropped;   /* invalid lines (not counting blank lines and comments) */
    char *errors;     /* owned, or NULL: "unable to parse '<line>': <reason>" for each invalid
                       * line, joined with '\n', exactly as influxd words them */
    size_t errors_len;
};

/* Validates and stamps in[0..len). now_ns is the receive time (ns since the epoch), converted
 * once to prec for every unstamped point. Fills *r (which the caller must cleanup on every path).
 * Returns 0, or -1 only when memory for the output could not be allocated (r->... then empty).
 * A body with no valid line returns 0 with r->points == 0. */
int lp_process(const char *in, size_t len, enum lp_prec prec, int64_t now_ns,
               struct lp_result *r) IR_WARN_UNUSED;
void lp_result_cleanup(struct lp_result *r);

/* Splitting for UDP: returns the length of the next chunk of buf[0..len) that ends at a line
 * boundary and is at most max bytes (a chunk holds whole lines, including their '\n').
 * Returns 0 when the first line alone is longer than max; *line_len then gives that line's length
 * (with its '\n') so the caller can report and skip it. */
size_t lp_split(const char *buf, size_t len, size_t max, size_t *line_len);

#endif
