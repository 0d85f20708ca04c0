#include "lp/scan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strconv.h"

/* This file follows influxd 1.6.7's models/points.go rule by rule, quirks included, because the
 * relay must accept exactly what influxd accepts. The quirks that matter:
 * - Escapes are not symmetric. The line scanner and the field scanner skip a backslash and the
 *   byte after it; the measurement and tag scanners only ask "is the byte before a backslash?".
 * - A '"' toggles quoting in the fields only while more '=' than ',' have been seen.
 * - A line with an empty timestamp ignores anything after a '\n' that the line scanner kept
 *   inside the line.
 * Speed: lines without '"' and '\\' (most of them) are cut with memchr(); quoted runs are
 * skipped with memchr() too. */

#define MIN_NANO_TIME (INT64_MIN + 2)
#define MAX_NANO_TIME LP_MAX_NANO_TIME
/* Go's strconv keeps at most 800 decimal digits and stops growing exponents at 10000. */
#define GO_DECIMAL_DIGITS 800
#define GO_EXP_CAP        10000
#define FLOAT_CHECK_LEN   LP_FLOAT_CHECK_LEN
#define INT_CHECK_LEN     LP_INT_CHECK_LEN

static inline bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\0';
}

/* Bytes the key scanners stop at (a backslash only matters as "the byte before"). */
static const bool key_stop[256] = {[' '] = true, [','] = true, ['='] = true};
/* Bytes the unquoted field scanner stops at. */
static const bool field_stop[256] = {
        [' '] = true, [','] = true, ['='] = true, ['"'] = true, ['\\'] = true};

/* Index of the first byte at or after i that tbl marks, or n. */
static inline size_t
skip_to(const bool *tbl, const char *b, size_t i, size_t n)
{
    while (i < n && !tbl[(unsigned char)b[i]]) {
        i++;
    }
    return i;
}

static size_t
skip_ws(const char *b, size_t i, size_t n)
{
    while (i < n && is_ws(b[i])) {
        i++;
    }
    return i;
}

/* Skipping a quoted run: the index of the next '"' is remembered, so a run full of backslashes
 * does not search for the same far '"' again after each one (that would be quadratic). */
struct quote_skip {
    size_t q;   /* index of the next '"' at or after the last search, or len */
    bool known; /* q is valid */
};

/* Index of the next '"' or '\\' at or after i, or len. */
static size_t
next_quote_or_escape(const char *b, size_t i, size_t len, struct quote_skip *qs)
{
    if (!qs->known || qs->q < i) {
        const char *q = memchr(b + i, '"', len - i);
        qs->q = q ? (size_t)(q - b) : len;
        qs->known = true;
    }
    const char *e = memchr(b + i, '\\', qs->q - i);
    return e ? (size_t)(e - b) : qs->q;
}

/* influxd's scanLine(), byte by byte, for lines holding a '"' or a '\\'. influxd 1.6.7 skips a
 * backslash and its byte only when one more byte follows; skipping always cuts the same lines
 * (the difference is within the last two bytes of the body, where a kept '\n' is dropped later
 * anyway) and tells whether a '\n' appended to the body would be escaped (open_end). */
static void
scan_line_slow(const char *b, size_t len, size_t i, struct lp_line *ln)
{
    bool quoted = false;
    bool fields = false;
    size_t equals = 0;
    size_t commas = 0;
    struct quote_skip qs = {0};
    while (i < len) {
        char c = b[i];
        if (c == '\\') {
            i += 2;
            continue;
        }
        if (quoted) {
            /* Only '"' and '\\' matter inside quotes. */
            if (c == '"' && equals > commas) {
                quoted = false;
                i++;
            } else {
                i = c == '"' ? i + 1 : next_quote_or_escape(b, i, len, &qs);
            }
            continue;
        }
        fields = fields || c == ' ';
        if (fields && c == '=') {
            equals++;
        } else if (fields && c == ',') {
            commas++;
        } else if (fields && c == '"' && equals > commas) {
            quoted = true;
        } else if (c == '\n') {
            break;
        }
        i++;
    }
    ln->open_end = i >= len && (quoted || i > len);
    ln->end = i < len ? i : len;
    ln->next = i < len ? i + 1 : len;
}

void
lp_scan_line(const char *b, size_t len, size_t pos, struct lp_line *ln)
{
    const char *p = b + pos;
    const char *nl = memchr(p, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - p) : len - pos;
    ln->start = pos;
    if (memchr(p, '"', n) == NULL && memchr(p, '\\', n) == NULL) {
        ln->open_end = false;
        ln->end = pos + n;
        ln->next = nl ? pos + n + 1 : len;
        return;
    }
    scan_line_slow(b, len, pos, ln);
}

void
lp_scratch_cleanup(struct lp_scratch *s)
{
    free(s->spans);
    s->spans = NULL;
    s->cap = 0;
}

static inline size_t
fail(struct lp_point *pt, enum lp_why why, size_t i)
{
    pt->why = why;
    return i;
}

static int
span_cmp(const char *b, const size_t *s, size_t x, size_t y)
{
    return lp_key_cmp(b + s[2 * x], s[2 * x + 1], b + s[2 * y], s[2 * y + 1]);
}

static void
span_swap(size_t *s, size_t x, size_t y)
{
    size_t o = s[2 * x];
    size_t l = s[2 * x + 1];
    s[2 * x] = s[2 * y];
    s[2 * x + 1] = s[2 * y + 1];
    s[2 * y] = o;
    s[2 * y + 1] = l;
}

static void
sift_down(const char *b, size_t *s, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) {
            return;
        }
        if (child + 1 < n && span_cmp(b, s, child, child + 1) < 0) {
            child++;
        }
        if (span_cmp(b, s, root, child) >= 0) {
            return;
        }
        span_swap(s, root, child);
        root = child;
    }
}

/* Heapsort: O(n log n) without allocation, so a line with many unsorted tags stays cheap. */
static void
sort_spans(const char *b, size_t *s, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(b, s, i, n);
    }
    for (size_t end = n; end-- > 1;) {
        span_swap(s, 0, end);
        sift_down(b, s, 0, end);
    }
}

/* Collects the tag key spans of the valid tag section b[i..end) into the scratch. */
static int
collect_tag_keys(const char *b, size_t i, size_t end, size_t ntags, struct lp_scratch *s)
{
    if (ntags > s->cap) {
        size_t cap = ntags < 64 ? 64 : ntags;
        size_t *p = realloc(s->spans, cap * 2 * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        s->spans = p;
        s->cap = cap;
    }
    size_t t = 0;
    while (i < end && t < ntags) {
        size_t k = i;
        for (i++; b[i] != '=' || b[i - 1] == '\\'; i++) {
        }
        s->spans[2 * t] = k;
        s->spans[2 * t + 1] = i - k;
        t++;
        for (i += 2; i < end && !((b[i] == ',' || b[i] == ' ') && b[i - 1] != '\\'); i++) {
        }
        i++;
    }
    return 0;
}

/* Any two tags with the same key bytes: "duplicate tags". */
static void
check_unsorted_tags(const char *b, size_t first, size_t end, size_t ntags, struct lp_scratch *s,
                    struct lp_point *pt)
{
    if (collect_tag_keys(b, first, end, ntags, s) != 0) {
        pt->why = LP_WHY_NO_MEMORY;
        return;
    }
    sort_spans(b, s->spans, ntags);
    for (size_t t = 0; t + 1 < ntags; t++) {
        if (span_cmp(b, s->spans, t, t + 1) == 0) {
            pt->why = LP_WHY_DUPLICATE_TAGS;
            return;
        }
    }
}

/* scanTagsKey(): returns the index after the key's '='. */
static size_t
scan_tag_key(const char *b, size_t i, size_t n, struct lp_point *pt)
{
    if (i >= n || b[i] == ' ' || b[i] == ',' || b[i] == '=') {
        return fail(pt, LP_WHY_MISSING_TAG_KEY, i);
    }
    for (i = skip_to(key_stop, b, i + 1, n); i < n; i = skip_to(key_stop, b, i + 1, n)) {
        if (b[i - 1] == '\\') {
            continue;
        }
        if (b[i] == '=') {
            return i + 1;
        }
        break;
    }
    return fail(pt, LP_WHY_MISSING_TAG_VALUE, i);
}

/* scanTagsValue(): returns the index of the ',' or ' ' that ends the value. */
static size_t
scan_tag_value(const char *b, size_t i, size_t n, struct lp_point *pt)
{
    if (i >= n || b[i] == ',' || b[i] == ' ') {
        return fail(pt, LP_WHY_MISSING_TAG_VALUE, i);
    }
    for (i = skip_to(key_stop, b, i + 1, n); i < n; i = skip_to(key_stop, b, i + 1, n)) {
        if (b[i - 1] == '\\') {
            continue;
        }
        if (b[i] == '=') {
            return fail(pt, LP_WHY_INVALID_TAG_FORMAT, i);
        }
        return i;
    }
    return fail(pt, LP_WHY_MISSING_FIELDS, i);
}

/* scanTags() plus scanKey()'s duplicate check; i is the first tag. Returns the key's end. */
static size_t
scan_tags(const char *b, size_t i, size_t n, struct lp_scratch *s, struct lp_point *pt)
{
    size_t first = i;
    size_t ntags = 0;
    size_t prev = 0;
    size_t prev_len = 0;
    bool sorted = true;
    bool dup = false;
    for (;;) {
        size_t k = i;
        i = scan_tag_key(b, i, n, pt);
        if (pt->why != LP_WHY_OK) {
            return i;
        }
        size_t klen = i - 1 - k;
        if (ntags > 0 && sorted) {
            int c = lp_key_cmp(b + prev, prev_len, b + k, klen);
            sorted = c <= 0;
            dup = dup || c == 0;
        }
        prev = k;
        prev_len = klen;
        ntags++;
        i = scan_tag_value(b, i, n, pt);
        if (pt->why != LP_WHY_OK) {
            return i;
        }
        if (b[i] == ' ') {
            break;
        }
        i++;
    }
    /* influxd 1.6.7 panics (500) on exactly 100, 200, 400... tags; they are valid lines. */
    if (!sorted) {
        check_unsorted_tags(b, first, i, ntags, s, pt);
    } else if (dup) {
        pt->why = LP_WHY_DUPLICATE_TAGS;
    }
    return i;
}

/* scanKey(): returns the index of the ' ' that ends the key. */
static size_t
scan_key(const char *b, size_t n, struct lp_scratch *s, struct lp_point *pt)
{
    if (n == 0 || b[0] == ',') {
        return fail(pt, LP_WHY_MISSING_MEASUREMENT, 0);
    }
    size_t i = skip_to(key_stop, b, 1, n);
    while (i < n && (b[i] == '=' || b[i - 1] == '\\')) {
        i = skip_to(key_stop, b, i + 1, n);
    }
    if (i >= n) {
        return fail(pt, LP_WHY_MISSING_FIELDS, i);
    }
    if (b[i] == ' ') {
        return i;
    }
    return scan_tags(b, i + 1, n, s, pt);
}

/* Builds Go's strconv "decimal" of a float literal the way decimal.set() does (800 digits kept,
 * the point position capped alike, exponent growth stopped at 10000) and reports whether
 * ParseFloat fails: bad syntax or overflow. Go rounds correctly, and so does strtod() on the
 * same digits with a sticky '1' for dropped non-zero digits. */
static bool
float_fails(const char *t, size_t len)
{
    char d[GO_DECIMAL_DIGITS + 48];
    size_t nd = 0;
    long long dp = 0;
    bool trunc = false, sawdot = false, sawdigits = false;
    size_t i = t[0] == '-' || t[0] == '+' ? 1 : 0;
    for (; i < len; i++) {
        char c = t[i];
        if (c == '.') {
            if (sawdot) {
                return true;
            }
            sawdot = true;
            dp = (long long)nd;
        } else if (lp_is_digit(c)) {
            sawdigits = true;
            if (c == '0' && nd == 0) {
                dp--;
            } else if (nd < GO_DECIMAL_DIGITS) {
                d[nd++] = c;
            } else if (c != '0') {
                trunc = true;
            }
        } else {
            break;
        }
    }
    if (!sawdigits) {
        return true;
    }
    if (!sawdot) {
        dp = (long long)nd;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        int esign = 1;
        if (i < len && (t[i] == '+' || t[i] == '-')) {
            esign = t[i] == '-' ? -1 : 1;
            i++;
        }
        if (i >= len || !lp_is_digit(t[i])) {
            return true;
        }
        long long e = 0;
        for (; i < len && lp_is_digit(t[i]); i++) {
            e = e < GO_EXP_CAP ? e * 10 + (t[i] - '0') : e;
        }
        dp += esign * e;
    }
    if (i != len) {
        return true;
    }
    if (nd == 0 || dp < -330) {
        return false;
    }
    if (dp > 310) {
        return true;
    }
    /* Here nd <= 800 and -330 <= dp <= 310: "0.<digits>[1]e<dp>" fits d. */
    memmove(d + 2, d, nd);
    d[0] = '0';
    d[1] = '.';
    size_t k = nd + 2;
    if (trunc) {
        d[k++] = '1';
    }
    snprintf(d + k, sizeof(d) - k, "e%lld", dp);
    return isinf(strtod(d, NULL));
}

/* scanNumber(), byte by byte: b[i] starts the value. Returns the index after it. */
static size_t
scan_number_slow(const char *b, size_t i, size_t n, struct lp_point *pt)
{
    size_t start = i;
    bool is_int = false, is_uint = false, decimal = false, sci = false;
    if (b[i] == '-') {
        i++;
        if (i == n) {
            return fail(pt, LP_WHY_INVALID_NUMBER, i);
        }
    }
    for (; i < n; i++) {
        char c = b[i];
        if (c == ',' || c == ' ') {
            break;
        }
        if ((c == 'i' || c == 'u') && i > start && !is_int && !is_uint) {
            is_int = c == 'i';
            is_uint = c == 'u';
            continue;
        }
        if (c == '.') {
            if (decimal) {
                return fail(pt, LP_WHY_INVALID_NUMBER, i);
            }
            decimal = true;
        }
        if (i > start && (c == 'e' || c == 'E')) {
            sci = true;
            continue;
        }
        if ((c == '+' || c == '-') && (b[i - 1] == 'e' || b[i - 1] == 'E')) {
            continue;
        }
        if (!lp_is_digit(c) && c != '.') {
            /* Includes points.go's "NaN is unsupported" rule: same reason. */
            return fail(pt, LP_WHY_INVALID_NUMBER, i);
        }
    }
    if ((is_int || is_uint) && (decimal || sci)) {
        return fail(pt, LP_WHY_INVALID_NUMBER, i);
    }
    long long digits = (long long)(i - start) - is_int - decimal - (b[start] == '-');
    if (digits <= 0) {
        return fail(pt, LP_WHY_INVALID_NUMBER, i);
    }
    if (is_int) {
        int64_t v;
        if (b[i - 1] != 'i') {
            return fail(pt, LP_WHY_INVALID_NUMBER, i);
        }
        if (i - 1 - start >= INT_CHECK_LEN &&
            strconv_i64(b + start, i - 1 - start, INT64_MIN, INT64_MAX, &v) != 0) {
            pt->tok = b + start;
            pt->tok_len = i - 1 - start;
            return fail(pt, LP_WHY_INT_RANGE, i);
        }
    } else if (is_uint) {
        /* influxd 1.6.7 runs with unsigned support off. */
        return fail(pt, LP_WHY_INVALID_NUMBER, i);
    } else if ((sci || i - start >= FLOAT_CHECK_LEN) && float_fails(b + start, i - start)) {
        return fail(pt, LP_WHY_INVALID_FLOAT, i);
    }
    return i;
}

static inline bool
ends_value(const char *b, size_t j, size_t n)
{
    return j >= n || b[j] == ',' || b[j] == ' ';
}

/* scanNumber() with a fast path for the common shapes -?D*[.D*] and -?D+i, short enough to need
 * no range check: the verdict is the one scan_number_slow() gives them. */
static size_t
scan_number(const char *b, size_t i, size_t n, struct lp_point *pt)
{
    size_t j = i + (b[i] == '-');
    size_t d = j;
    while (j < n && lp_is_digit(b[j])) {
        j++;
    }
    size_t digits = j - d;
    bool dot = j < n && b[j] == '.';
    if (dot) {
        d = ++j;
        while (j < n && lp_is_digit(b[j])) {
            j++;
        }
        digits += j - d;
    }
    if (digits > 0 && ends_value(b, j, n) && j - i < FLOAT_CHECK_LEN) {
        return j;
    }
    if (digits > 0 && !dot && j < n && b[j] == 'i' && ends_value(b, j + 1, n) &&
        j - i < INT_CHECK_LEN) {
        return j + 1;
    }
    return scan_number_slow(b, i, n, pt);
}

/* scanBoolean(): b[i] starts the value. Returns the index after it. */
static size_t
scan_boolean(const char *b, size_t i, size_t n, struct lp_point *pt)
{
    size_t start = i;
    char c = b[i];
    if (c != 't' && c != 'f' && c != 'T' && c != 'F') {
        return fail(pt, LP_WHY_INVALID_BOOLEAN, i);
    }
    for (i++; i < n && b[i] != ',' && b[i] != ' '; i++) {
    }
    if (!lp_is_bool_word(b + start, i - start)) {
        return fail(pt, LP_WHY_INVALID_BOOLEAN, i);
    }
    return i;
}

/* The checks points.go makes at an unquoted '=' in the fields; returns the index to go on. */
static size_t
scan_field_eq(const char *b, size_t i, size_t n, struct lp_point *pt)
{
    if ((b[i - 1] == ' ' || b[i - 1] == ',') && b[i - 2] != '\\') {
        return fail(pt, LP_WHY_MISSING_FIELD_KEY, i);
    }
    if (i + 1 >= n || b[i + 1] == ',' || b[i + 1] == ' ') {
        return fail(pt, LP_WHY_MISSING_FIELD_VALUE, i);
    }
    char c = b[i + 1];
    if (lp_is_digit(c) || c == '.' || c == '-' || c == 'N' || c == 'n') {
        return scan_number(b, i + 1, n, pt);
    }
    if (c != '"') {
        return scan_boolean(b, i + 1, n, pt);
    }
    return i + 1; /* the opening quote, handled by the caller's loop */
}

/* What scan_fields() tells besides the verdict. */
struct field_scan {
    size_t start; /* first byte of the fields */
    bool special; /* the fields hold a '"' or a '\\' */
    bool lone_bs; /* the fields end with a backslash escaping nothing */
};

/* scanFields(): fields start after whitespace at i. Returns the index after the fields. */
static size_t
scan_fields(const char *b, size_t i, size_t n, struct field_scan *fs, struct lp_point *pt)
{
    bool quoted = false;
    size_t equals = 0, commas = 0;
    struct quote_skip qs = {0};
    i = skip_ws(b, i, n);
    fs->start = i;
    while (i < n) {
        if (quoted) {
            /* Only '"' (which closes: equals > commas still holds) and '\\' matter here. */
            i = next_quote_or_escape(b, i, n, &qs);
            if (i < n && b[i] == '"') {
                quoted = false;
                i++;
            } else if (i < n) {
                i += i + 1 < n ? 2 : 1;
            }
            continue;
        }
        i = skip_to(field_stop, b, i, n);
        if (i >= n) {
            break;
        }
        char c = b[i];
        if (c == ' ') {
            break;
        }
        if (c == '=') {
            equals++;
            i = scan_field_eq(b, i, n, pt);
            if (pt->why != LP_WHY_OK) {
                return i;
            }
            continue;
        }
        if (c == '\\' || c == '"') {
            fs->special = true;
            fs->lone_bs = c == '\\' && i + 1 >= n;
            quoted = c == '"' && equals > commas;
            i += c == '\\' && i + 1 < n ? 2 : 1;
            continue;
        }
        commas++; /* ',' */
        i++;
    }
    if (quoted) {
        return fail(pt, LP_WHY_UNBALANCED_QUOTES, i);
    }
    if (equals == 0 || commas != equals - 1) {
        return fail(pt, LP_WHY_INVALID_FIELD_FORMAT, i);
    }
    return i;
}

/* scanFieldValue() of walkFields(): returns the value's length. */
static size_t
walk_value_len(const char *f, size_t m)
{
    bool quoted = false;
    struct quote_skip qs = {0};
    size_t i = 0;
    while (i < m) {
        char c = f[i];
        if (c == '\\' && i + 1 < m && (f[i + 1] == '"' || f[i + 1] == '\\')) {
            i += 2;
        } else if (c == '"') {
            quoted = !quoted;
            i++;
        } else if (quoted) {
            i = c == '\\' ? i + 1 : next_quote_or_escape(f, i, m, &qs);
        } else if (c == ',') {
            break;
        } else {
            i++;
        }
    }
    return i;
}

/* parsePoint()'s walkFields() pass: it cuts the fields its own way (only \" and \\ escape in
 * values), fails with "invalid value: field-key=<key>" on a piece without '=' or with nothing
 * after it, and checks that key + 4 + field key stays within 65535 bytes. */
static void
walk_fields(size_t key_len, const char *f, size_t m, struct lp_point *pt)
{
    while (m > 0) {
        size_t i = 0;
        while (i < m && !(f[i] == '=' && (i == 0 || f[i - 1] != '\\'))) {
            i++;
        }
        if (i + 2 > m) {
            pt->tok = f;
            pt->tok_len = i;
            pt->why = LP_WHY_INVALID_VALUE;
            return;
        }
        if (key_len + 4 + i > LP_MAX_KEY_LEN) {
            pt->num = key_len + 4 + i;
            pt->why = LP_WHY_MAX_KEY;
            return;
        }
        f += i + 1;
        m -= i + 1;
        i = walk_value_len(f, m);
        f += i;
        m -= i;
        if (m > 0) {
            f++;
            m--;
        }
    }
}

/* Parses the usual timestamp (up to 19 digits, optional '-') without a call; false when the
 * token is unusual or overflows, for strconv_i64() to decide. */
static inline bool
parse_ts_fast(const char *t, size_t len, int64_t *out)
{
    size_t neg = t[0] == '-';
    if (len - neg == 0 || len - neg > 19) {
        return false;
    }
    int64_t v = 0;
    for (size_t k = neg; k < len; k++) {
        int d = t[k] - '0';
        if (v > (INT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = neg ? -v : v;
    return true;
}

/* scanTime() and the timestamp checks of parsePoint(). */
static void
scan_time(const char *b, size_t i, size_t n, int64_t mult, struct lp_point *pt)
{
    size_t start = skip_ws(b, i, n);
    for (i = start; i < n && b[i] != '\n' && b[i] != ' '; i++) {
        if (!lp_is_digit(b[i]) && !(i == start && b[i] == '-')) {
            pt->why = LP_WHY_BAD_TIMESTAMP;
            return;
        }
    }
    if (i == start) {
        /* No timestamp: influxd ignores whatever follows a '\n' kept in the line. */
        pt->open_tail = pt->open_tail || i < n;
        return;
    }
    pt->has_ts = true;
    pt->open_tail = false;
    int64_t ts = 0;
    if (!parse_ts_fast(b + start, i - start, &ts) &&
        strconv_i64(b + start, i - start, INT64_MIN, INT64_MAX, &ts) != 0) {
        pt->tok = b + start;
        pt->tok_len = i - start;
        pt->why = i - start == 1 ? LP_WHY_TS_SYNTAX : LP_WHY_TS_RANGE;
        return;
    }
    if (ts < MIN_NANO_TIME / mult || ts > MAX_NANO_TIME / mult) {
        pt->why = LP_WHY_TIME_RANGE;
        return;
    }
    for (; i < n; i++) {
        if (b[i] != ' ') {
            pt->why = LP_WHY_POINT_INVALID;
            return;
        }
    }
}

void
lp_parse_point(const char *b, size_t n, int64_t ts_mult, struct lp_scratch *s, struct lp_point *pt)
{
    memset(pt, 0, sizeof(*pt));
    size_t key_len = scan_key(b, n, s, pt);
    if (pt->why != LP_WHY_OK) {
        return;
    }
    if (key_len > LP_MAX_KEY_LEN) {
        pt->num = key_len;
        pt->why = LP_WHY_MAX_KEY;
        return;
    }
    struct field_scan fs = {0};
    size_t fend = scan_fields(b, key_len, n, &fs, pt);
    if (pt->why != LP_WHY_OK) {
        return;
    }
    pt->open_tail = fs.lone_bs && fend == n;
    /* Without '"' and '\\' in the fields walkFields() cuts them as scanFields() did, so only
     * the key length can fail, and only when the fields are long enough. */
    if (fs.special || key_len + 4 + (fend - fs.start) > LP_MAX_KEY_LEN) {
        walk_fields(key_len, b + fs.start, fend - fs.start, pt);
        if (pt->why != LP_WHY_OK) {
            return;
        }
    }
    scan_time(b, fend, n, ts_mult, pt);
}

static const char *const reasons[] = {
        [LP_WHY_OK] = "",
        [LP_WHY_MISSING_MEASUREMENT] = "missing measurement",
        [LP_WHY_MISSING_FIELDS] = "missing fields",
        [LP_WHY_MISSING_TAG_KEY] = "missing tag key",
        [LP_WHY_MISSING_TAG_VALUE] = "missing tag value",
        [LP_WHY_INVALID_TAG_FORMAT] = "invalid tag format",
        [LP_WHY_DUPLICATE_TAGS] = "duplicate tags",
        [LP_WHY_MAX_KEY] = "max key length exceeded: ",
        [LP_WHY_MISSING_FIELD_KEY] = "missing field key",
        [LP_WHY_MISSING_FIELD_VALUE] = "missing field value",
        [LP_WHY_INVALID_NUMBER] = "invalid number",
        [LP_WHY_INVALID_BOOLEAN] = "invalid boolean",
        [LP_WHY_INVALID_FLOAT] = "invalid float",
        [LP_WHY_INVALID_VALUE] = "invalid value: field-key=",
        [LP_WHY_INT_RANGE] = "unable to parse integer ",
        [LP_WHY_UNBALANCED_QUOTES] = "unbalanced quotes",
        [LP_WHY_INVALID_FIELD_FORMAT] = "invalid field format",
        [LP_WHY_BAD_TIMESTAMP] = "bad timestamp",
        [LP_WHY_TS_SYNTAX] = "strconv.ParseInt: parsing \"",
        [LP_WHY_TS_RANGE] = "strconv.ParseInt: parsing \"",
        [LP_WHY_TIME_RANGE] = "time outside range -9223372036854775806 - 9223372036854775806",
        [LP_WHY_POINT_INVALID] = "point is invalid",
        [LP_WHY_AMBIGUOUS_END] = "ambiguous line end",
        [LP_WHY_NO_MEMORY] = "out of memory",
};

static size_t
put(char *out, size_t k, const char *s, size_t len)
{
    if (out != NULL) {
        memcpy(out + k, s, len);
    }
    return k + len;
}

#define PUTS(out, k, lit) put(out, k, lit, sizeof(lit) - 1)

/* Writes the reason to out, or only measures it when out is NULL. */
static size_t
reason_put(const struct lp_point *pt, char *out)
{
    const char *r = reasons[pt->why];
    size_t k = put(out, 0, r, strlen(r));
    switch (pt->why) {
    case LP_WHY_MAX_KEY: {
        char num[48];
        int m = snprintf(num, sizeof(num), "%zu > %d", pt->num, LP_MAX_KEY_LEN);
        return put(out, k, num, (size_t)m);
    }
    case LP_WHY_INT_RANGE:
        k = put(out, k, pt->tok, pt->tok_len);
        k = PUTS(out, k, ": strconv.ParseInt: parsing \"");
        k = put(out, k, pt->tok, pt->tok_len);
        return PUTS(out, k, "\": value out of range");
    case LP_WHY_INVALID_VALUE:
        return put(out, k, pt->tok, pt->tok_len);
    case LP_WHY_TS_SYNTAX:
        k = put(out, k, pt->tok, pt->tok_len);
        return PUTS(out, k, "\": invalid syntax");
    case LP_WHY_TS_RANGE:
        k = put(out, k, pt->tok, pt->tok_len);
        return PUTS(out, k, "\": value out of range");
    default:
        return k;
    }
}

size_t
lp_reason_len(const struct lp_point *pt)
{
    return reason_put(pt, NULL);
}

size_t
lp_reason_write(const struct lp_point *pt, char *out)
{
    return reason_put(pt, out);
}
