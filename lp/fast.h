/* The fast path of lp_process(), internal to lp/: lines of the shape nearly every writer sends,
 *   measurement[,tagkey=tagvalue...] fieldkey=value[,fieldkey=value...][ timestamp]\n
 * with one space between the parts, tag keys strictly sorted, values that scanNumber() or
 * scanBoolean() accept at a glance and no '"' or '\\' anywhere, are checked by walking their
 * structural bytes (' ', ',', '=', '\n', '"', '\\'), found 64 at a time with SIMD instructions
 * (SSE2, or AVX2 when the CPU has it; a byte loop on other machines). Such a line is valid for
 * influxd, and lp_parse_point() would say so. Anything else (a quote, an escape, an error, an
 * unsorted tag, a second space...) is left to lp_scan_line() and lp_parse_point(), which give
 * the verdict and influxd's reason. Pure: no I/O, no globals written, no allocation. */
#ifndef IR_LP_FAST_H
#define IR_LP_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lp/scan.h"

/* A walk over one buffer; one per lp_process() call, on its stack. Fields are lp/fast.c's. */
struct lp_fast {
    const char *b;
    size_t len;
    size_t base;    /* the bits in m are those of b[base..base+64) */
    uint64_t m;     /* structural bytes not walked yet */
    char bound[24]; /* the largest timestamp magnitude in the precision, in decimal */
    size_t bound_len;
    bool avx2; /* lp_fast_line() runs the AVX2 build (set when the CPU has AVX2) */
};

/* Starts on b[0..len) for timestamps in ts_mult nanoseconds (see lp_parse_point()). */
void lp_fast_init(struct lp_fast *f, const char *b, size_t len, int64_t ts_mult);
/* Moves to pos, the start of a line: needed whenever lp_fast_line() was not the one that walked
 * up to it. */
void lp_fast_seek(struct lp_fast *f, size_t pos);
/* The line starting at pos, where f stands: true when it is a valid point of the common shape;
 * then *ln is as lp_scan_line() gives it, the point is in[ln->start..ln->end) (nothing to skip
 * before it), *has_ts tells whether it carries a timestamp, and f stands at the next line.
 * False says nothing about the line: check it with lp_scan_line() and lp_parse_point(), then
 * seek to the next one. */
bool lp_fast_line(struct lp_fast *f, size_t pos, struct lp_line *ln, bool *has_ts);

/* lp_fast_line() over the lines from pos (where f stands) for as long as they are taken, carry
 * a timestamp and end with a '\n': those lines go out as they are. Returns where the first
 * other line starts (pos when there is none), with f standing there and *lines the lines
 * walked. */
size_t lp_fast_run(struct lp_fast *f, size_t pos, size_t *lines);

/* The two builds lp_fast_line() and lp_fast_run() choose from (lp/fast.c, lp/fast_avx2.c). */
bool lp_fast_line_base(struct lp_fast *f, size_t pos, struct lp_line *ln, bool *has_ts);
bool lp_fast_line_avx2(struct lp_fast *f, size_t pos, struct lp_line *ln, bool *has_ts);
size_t lp_fast_run_base(struct lp_fast *f, size_t pos, size_t *lines);
size_t lp_fast_run_avx2(struct lp_fast *f, size_t pos, size_t *lines);

#endif
