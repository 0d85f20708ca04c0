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
