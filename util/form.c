#include "util/form.h"

#include <string.h>

static bool
unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

void
form_escape(struct dbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            dbuf_char(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 0xf]};
            dbuf_append(b, e, sizeof(e));
        }
    }
}

void
form_add(struct dbuf *b, const char *key, const char *v, size_t n)
{
    if (b->len > 0) {
        dbuf_char(b, '&');
    }
    dbuf_str(b, key);
    dbuf_char(b, '=');
    form_escape(b, v, n);
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Go's QueryUnescape of s[0..n): false on a bad escape. Decoded bytes go to out, or, with want,
 * are compared to want instead (*same). */
static bool
unescape(const char *s, size_t n, struct dbuf *out, const char *want, bool *same)
{
    size_t w = 0;
    size_t wlen = want != NULL ? strlen(want) : 0;
    *same = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return false;
            }
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (want != NULL) {
            *same = *same && w < wlen && want[w] == c;
            w++;
        } else {
            dbuf_char(out, c);
        }
    }
    *same = *same && w == wlen;
    return true;
}

bool
form_get(const char *s, size_t n, const char *key, struct dbuf *out)
{
    size_t i = 0;
    while (i < n) {
        const char *amp = memchr(s + i, '&', n - i);
        size_t end = amp != NULL ? (size_t)(amp - s) : n;
        const char *pair = s + i;
        size_t plen = end - i;
        i = end + 1;
        if (plen == 0 || memchr(pair, ';', plen) != NULL) {
            continue;
        }
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - pair) : plen;
        bool same = false;
        if (!unescape(pair, klen, NULL, key, &same) || !same) {
            continue;
        }
        const char *v = eq != NULL ? eq + 1 : pair + plen;
        size_t vlen = (size_t)(pair + plen - v);
        if (unescape(v, vlen, NULL, "", &same)) { /* a dry run: Go skips a bad pair */
            (void)unescape(v, vlen, out, NULL, &same);
            return true;
        }
    }
    return false;
}
