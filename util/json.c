#include "util/json.h"

#include <stdbool.h>
#include <string.h>

size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (c < 0xc2 || c > 0xf4 || n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    /* Overlong forms, surrogates and values above U+10FFFF. */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f)) {
        return 0;
    }
    return len;
}

void
utf8_append(struct dbuf *b, unsigned long cp)
{
    char u[4];
    size_t n = 0;
    if (cp < 0x80) {
        u[n++] = (char)cp;
    } else if (cp < 0x800) {
        u[n++] = (char)(0xc0 | (cp >> 6));
        u[n++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        u[n++] = (char)(0xe0 | (cp >> 12));
        u[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[n++] = (char)(0x80 | (cp & 0x3f));
    } else {
        u[n++] = (char)(0xf0 | (cp >> 18));
        u[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[n++] = (char)(0x80 | (cp & 0x3f));
    }
    (void)dbuf_append(b, u, n);
}

/* Whether the ASCII byte c is written as it is. */
static bool
ascii_is_plain(unsigned char c, enum json_esc how)
{
    if (c < 0x20 || c == '"' || c == '\\') {
        return false;
    }
    return how != JSON_ESC_GO || (c != '<' && c != '>' && c != '&');
}

/* Copies the n bytes of s (no NUL) to out; returns n. */
static size_t
put(char *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = s[i];
    }
    return n;
}

static size_t
put_u00(char *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    put(out, "\\u00", 4);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 0xf];
    return 6;
}

static size_t
escape_ascii(unsigned char c, enum json_esc how, char *out)
{
    if (ascii_is_plain(c, how)) {
        out[0] = (char)c;
        return 1;
    }
    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (how == JSON_ESC_GO && (c == '\n' || c == '\r' || c == '\t')) {
        out[0] = '\\';
        out[1] = (char)(c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
        return 2;
    }
    return put_u00(out, c);
}

size_t
json_escape_one(const char *s, size_t n, enum json_esc how, char *out, size_t *used)
{
    const unsigned char *u = (const unsigned char *)s;
    *used = 1;
    if (u[0] < 0x80) {
        return escape_ascii(u[0], how, out);
    }
    size_t len = utf8_seq_len(u, n);
    if (len == 0) {
        return put(out, "\\ufffd", 6);
    }
    *used = len;
    if (how == JSON_ESC_GO && len == 3 && u[0] == 0xe2 && u[1] == 0x80 && (u[2] & 0xfe) == 0xa8) {
        /* U+2028 and U+2029, which Go escapes for JavaScript. */
        return put(out, u[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
    }
    memcpy(out, s, len);
    return len;
}

void
json_escape(struct dbuf *b, const char *s, size_t n, enum json_esc how)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* A run of plain ASCII goes in one copy. */
        size_t run = i;
        while (run < n && u[run] < 0x80 && ascii_is_plain(u[run], how)) {
            run++;
        }
        (void)dbuf_append(b, s + i, run - i);
        if (run == n) {
            break;
        }
        char esc[JSON_ESC_MAX];
        size_t used = 0;
        size_t len = json_escape_one(s + run, n - run, how, esc, &used);
        (void)dbuf_append(b, esc, len);
        i = run + used;
    }
}

void
json_str(struct dbuf *b, const char *s, enum json_esc how)
{
    dbuf_char(b, '"');
    json_escape(b, s, strlen(s), how);
    dbuf_char(b, '"');
}

/* ------------------------------------------------------------------ reading */

#define JSON_MAX_DEPTH 32

/* A position in the text being read. */
struct jread {
    const char *s;
    size_t n;
    size_t i;
};

static void
skip_blanks(struct jread *r)
{
    while (r->i < r->n && strchr(" \t\r\n", r->s[r->i]) != NULL && r->s[r->i] != '\0') {
        r->i++;
    }
}

static int
hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16;
        if (d == 16) {
            return -1;
        }
        *v = *v << 4 | d;
    }
    return 0;
}

/* \uXXXX at r->s[r->i] (after the backslash and 'u'), with a following low surrogate when it is
 * a high one. */
static int
read_unicode(struct jread *r, struct dbuf *out)
{
    unsigned cp = 0;
    if (r->n - r->i < 4 || hex4(r->s + r->i, &cp) != 0) {
        return -1;
    }
    r->i += 4;
    unsigned lo = 0;
    if (cp >= 0xd800 && cp < 0xdc00 && r->n - r->i >= 6 && r->s[r->i] == '\\' &&
        r->s[r->i + 1] == 'u' && hex4(r->s + r->i + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        r->i += 6;
    } else if (cp >= 0xd800 && cp < 0xe000) {
        cp = 0xfffd; /* a lone surrogate, as Go decodes it */
    }
    if (out != NULL) {
        utf8_append(out, cp);
    }
    return 0;
}

/* The escape at r->s[r->i] (after the backslash). */
static int
read_escape(struct jread *r, struct dbuf *out)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    char c = r->s[r->i++];
    if (c == 'u') {
        return read_unicode(r, out);
    }
    const char *at = c != '\0' ? strchr(from, c) : NULL;
    if (at == NULL) {
        return -1;
    }
    if (out != NULL) {
        dbuf_char(out, to[at - from]);
    }
    return 0;
}

/* The string at r->s[r->i] (its opening quote): appended, unescaped, to out (NULL: skipped). */
static int
read_string(struct jread *r, struct dbuf *out)
{
    if (r->i >= r->n || r->s[r->i] != '"') {
        return -1;
    }
    r->i++;
    while (r->i < r->n) {
        size_t run = r->i;
        while (run < r->n && r->s[run] != '"' && r->s[run] != '\\' &&
               (unsigned char)r->s[run] >= 0x20) {
            run++;
        }
        if (out != NULL) {
            (void)dbuf_append(out, r->s + r->i, run - r->i);
        }
        r->i = run;
        if (run == r->n || (unsigned char)r->s[run] < 0x20) {
            return -1;
        }
        r->i++;
        if (r->s[run] == '"') {
            return 0;
        }
        if (r->i >= r->n || read_escape(r, out) != 0) {
            return -1;
        }
    }
    return -1;
}

static int skip_value(struct jread *r, unsigned depth);

/* An object or array at r->s[r->i] (its opening bracket). */
static int
skip_container(struct jread *r, unsigned depth)
{
    char close = r->s[r->i] == '{' ? '}' : ']';
    bool object = close == '}';
    r->i++;
    skip_blanks(r);
    if (r->i < r->n && r->s[r->i] == close) {
        r->i++;
        return 0;
    }
    for (;;) {
        if (object) {
            if (read_string(r, NULL) != 0) {
                return -1;
            }
            skip_blanks(r);
            if (r->i >= r->n || r->s[r->i++] != ':') {
                return -1;
            }
        }
        if (skip_value(r, depth + 1) != 0) {
            return -1;
        }
        skip_blanks(r);
        if (r->i >= r->n) {
            return -1;
        }
        char c = r->s[r->i++];
        if (c == close) {
            return 0;
        }
        if (c != ',') {
            return -1;
        }
        skip_blanks(r);
    }
}

static int
skip_value(struct jread *r, unsigned depth)
{
    skip_blanks(r);
    if (r->i >= r->n || depth > JSON_MAX_DEPTH) {
        return -1;
    }
    char c = r->s[r->i];
    if (c == '"') {
        return read_string(r, NULL);
    }
    if (c == '{' || c == '[') {
        return skip_container(r, depth);
    }
    /* A number or a literal: its characters, checked loosely. */
    size_t start = r->i;
    while (r->i < r->n && r->s[r->i] != '\0' && strchr("+-.0123456789eEtruefalsn", r->s[r->i])) {
        r->i++;
    }
    return r->i > start ? 0 : -1;
}

int
json_member_string(const char *s, size_t n, const char *key, struct dbuf *out)
{
    struct jread r = {s, n, 0};
    skip_blanks(&r);
    if (r.i >= n || s[r.i] != '{') {
        return -1;
    }
    r.i++;
    for (;;) {
        skip_blanks(&r);
        char name[64];
        struct dbuf nb;
        dbuf_init_fixed(&nb, name, sizeof(name));
        if (read_string(&r, &nb) != 0) {
            return -1;
        }
        bool match =
                nb.status == DBUF_OK && nb.len == strlen(key) && memcmp(name, key, nb.len) == 0;
        skip_blanks(&r);
        if (r.i >= n || s[r.i++] != ':') {
            return -1;
        }
        skip_blanks(&r);
        if (match && r.i < n && s[r.i] == '"') {
            return read_string(&r, out);
        }
        if (skip_value(&r, 1) != 0) {
            return -1;
        }
        skip_blanks(&r);
        if (r.i >= n || s[r.i++] != ',') {
            return -1; /* '}': the end, without the member */
        }
    }
}
