/* explicit_bzero() (glibc, BSD): a wipe of the password copy the compiler cannot drop. */
#define _DEFAULT_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "util/base64.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void
base64_encode(const void *src, size_t n, char *out)
{
    const unsigned char *s = src;
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned long v = (unsigned long)s[i] << 16 | (unsigned long)s[i + 1] << 8 | s[i + 2];
        out[o++] = ALPHABET[(v >> 18) & 63];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = ALPHABET[(v >> 6) & 63];
        out[o++] = ALPHABET[v & 63];
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)s[i] << 16;
        out[o++] = ALPHABET[(v >> 18) & 63];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        unsigned long v = (unsigned long)s[i] << 16 | (unsigned long)s[i + 1] << 8;
        out[o++] = ALPHABET[(v >> 18) & 63];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = ALPHABET[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

char *
base64_basic(const char *user, size_t ulen, const char *pass, size_t plen)
{
    size_t n = ulen + 1 + plen;
    char *plain = xmalloc(n + 1);
    memcpy(plain, user, ulen);
    plain[ulen] = ':';
    memcpy(plain + ulen + 1, pass, plen);
    static const char prefix[] = "Basic ";
    char *out = xmalloc(sizeof(prefix) - 1 + base64_len(n) + 1);
    memcpy(out, prefix, sizeof(prefix) - 1);
    base64_encode(plain, n, out + sizeof(prefix) - 1);
    explicit_bzero(plain, n);
    free(plain);
    return out;
}
