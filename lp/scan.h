/* Line protocol scanner internal to lp/: finds line ends and checks one point exactly as
 * influxd 1.6.7's models/points.go does (scanLine, scanKey, scanFields, scanTime), reporting
 * the first failure with influxd's reason. Pure: no I/O, no globals. Any thread. */
#ifndef IR_LP_SCAN_H
#define IR_LP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/err.h"

/* The largest key (measurement + tags, and series key + field key) influxd accepts. */
#define LP_MAX_KEY_LEN 65535
/* The latest time influxd stores, in nanoseconds (the earliest is its negative). */
#define LP_MAX_NANO_TIME (INT64_MAX - 1)
/* points.go checks float ranges only from this many characters on (or with an exponent)... */
#define LP_FLOAT_CHECK_LEN 25
/* ... and integer ranges from this many characters on. */
#define LP_INT_CHECK_LEN 19

static inline bool
lp_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* bytes.Compare of two tag keys; short keys (the usual) are compared inline. */
static inline int
lp_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    if (m >= 16) {
        int c = memcmp(a, b, m);
        if (c != 0) {
            return c;
        }
    } else {
        for (size_t k = 0; k < m; k++) {
            if (a[k] != b[k]) {
                return (unsigned char)a[k] < (unsigned char)b[k] ? -1 : 1;
            }
        }
    }
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* A boolean scanBoolean() accepts: w[0] is one of t, f, T, F and w[0..len) holds no ',' or ' '. */
static inline bool
lp_is_bool_word(const char *w, size_t len)
{
    if (len == 1) {
        return true;
    }
    switch (w[0]) {
    case 't':
        return len == 4 && memcmp(w, "true", 4) == 0;
    case 'T':
        return len == 4 && (memcmp(w, "TRUE", 4) == 0 || memcmp(w, "True", 4) == 0);
    case 'f':
        return len == 5 && memcmp(w, "false", 5) == 0;
    default:
        return len == 5 && (memcmp(w, "FALSE", 5) == 0 || memcmp(w, "False", 5) == 0);
    }
}

/* One line as influxd's scanLine cuts it: a '\n' inside a quoted field value, or escaped by a
 * backslash, does not end the line. */
struct lp_line {
    size_t start;  /* first byte */
    size_t end;    /* one past the last byte, the terminating '\n' excluded */
    size_t next;   /* where the following line starts (past the '\n', or len) */
    bool open_end; /* the buffer ended inside quotes or right after a lone backslash, so a
                    * '\n' appended here would not end the line */
};

/* Finds the line starting at pos (< len) in b[0..len). */
void lp_scan_line(const char *b, size_t len, size_t pos, struct lp_line *ln);

/* Why a point was rejected; LP_WHY_OK when it is valid. The comment gives influxd's wording. */
enum lp_why {
    LP_WHY_OK,
    LP_WHY_MISSING_MEASUREMENT,  /* missing measurement */
    LP_WHY_MISSING_FIELDS,       /* missing fields */
    LP_WHY_MISSING_TAG_KEY,      /* missing tag key */
    LP_WHY_MISSING_TAG_VALUE,    /* missing tag value */
    LP_WHY_INVALID_TAG_FORMAT,   /* invalid tag format */
    LP_WHY_DUPLICATE_TAGS,       /* duplicate tags */
    LP_WHY_MAX_KEY,              /* max key length exceeded: <num> > 65535 */
    LP_WHY_MISSING_FIELD_KEY,    /* missing field key */
    LP_WHY_MISSING_FIELD_VALUE,  /* missing field value */
    LP_WHY_INVALID_NUMBER,       /* invalid number */
    LP_WHY_INVALID_BOOLEAN,      /* invalid boolean */
    LP_WHY_INVALID_FLOAT,        /* invalid float */
    LP_WHY_INVALID_VALUE,        /* invalid value: field-key=<tok> */
    LP_WHY_INT_RANGE,            /* unable to parse integer <tok>: strconv.ParseInt: parsing
                                  * "<tok>": value out of range */
    LP_WHY_UNBALANCED_QUOTES,    /* unbalanced quotes */
    LP_WHY_INVALID_FIELD_FORMAT, /* invalid field format */
    LP_WHY_BAD_TIMESTAMP,        /* bad timestamp */
    LP_WHY_TS_SYNTAX,            /* strconv.ParseInt: parsing "<tok>": invalid syntax */
    LP_WHY_TS_RANGE,             /* strconv.ParseInt: parsing "<tok>": value out of range */
    LP_WHY_TIME_RANGE,           /* time outside range -9223372036854775806 - 9223372036854775806 */
    LP_WHY_POINT_INVALID,        /* point is invalid */
    LP_WHY_AMBIGUOUS_END,        /* relay only: ambiguous line end (see lp.h) */
    LP_WHY_NO_MEMORY             /* not a verdict: scratch memory could not be allocated */
};

/* Verdict on one point. */
struct lp_point {
    enum lp_why why;
    const char *tok; /* borrowed from the line: the number quoted in the reason */
    size_t tok_len;
    size_t num;     /* the key length for LP_WHY_MAX_KEY */
    bool has_ts;    /* the point carries a timestamp */
    bool open_tail; /* no timestamp, and a stamp appended at the end would not be read as one
                     * (the fields end with a lone backslash, or text follows a '\n') */
};

/* Scratch memory reused across the points of one lp_process() call: tag key spans for the
 * duplicate check of unsorted tags. Starts zeroed; free with lp_scratch_cleanup(). */
struct lp_scratch {
    size_t *spans; /* owned: pairs (offset, length) */
    size_t cap;    /* pairs */
};
void lp_scratch_cleanup(struct lp_scratch *s);

/* Checks the point in b[0..n): the line with leading whitespace (' ', '\t', NUL) and a
 * trailing '\n' already removed, as influxd's parsePoint() receives it. ts_mult is the
 * precision's nanosecond multiplier. Fills *pt; pt->why is LP_WHY_NO_MEMORY only when the
 * scratch could not grow. */
void lp_parse_point(const char *b, size_t n, int64_t ts_mult, struct lp_scratch *s,
                    struct lp_point *pt);

/* Writes influxd's reason for pt (not LP_WHY_OK) to out, which holds at least
 * lp_reason_len(pt) bytes; returns the bytes written. */
size_t lp_reason_len(const struct lp_point *pt);
size_t lp_reason_write(const struct lp_point *pt, char *out);

#endif
