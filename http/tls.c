#include "http/tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* A PEM file bigger than this is not a certificate chain. */
#define TLS_PEM_MAX ((size_t)1024 * 1024)

static char *
tls_read_file(const char *path, struct ir_err *err)
{
    char ebuf[128];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        ir_err_set(err, 0, "ssl-combined-pem: cannot read %s: %s", path,
                   ir_strerror(e, ebuf, sizeof(ebuf)));
        return NULL;
    }
    char *buf = xmalloc(TLS_PEM_MAX + 1);
    size_t n = fread(buf, 1, TLS_PEM_MAX + 1, f);
    bool bad = ferror(f) != 0 || n > TLS_PEM_MAX;
    fclose(f);
    if (bad) {
        ir_err_set(err, 0, "ssl-combined-pem: cannot read %s: %s", path,
                   n > TLS_PEM_MAX ? "file too large" : "read error");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Appends s[0..n) and a newline to *dst (a growing NUL-terminated string). */
static void
tls_append(char **dst, const char *s, size_t n)
{
    size_t old = *dst != NULL ? strlen(*dst) : 0;
    *dst = xrealloc(*dst, old + n + 2);
    memcpy(*dst + old, s, n);
    (*dst)[old + n] = '\n';
    (*dst)[old + n + 1] = '\0';
}

/* True for "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY". */
static bool
tls_label_is_key(const char *label, size_t len)
{
    static const char want[] = "PRIVATE KEY";
    size_t wlen = sizeof(want) - 1;
    for (size_t i = 0; i + wlen <= len; i++) {
        if (memcmp(label + i, want, wlen) == 0) {
            return true;
        }
    }
    return false;
}

int
tls_load_combined_pem(const char *path, char **cert, char **key, struct ir_err *err)
{
    *cert = NULL;
    *key = NULL;
    char *text = tls_read_file(path, err);
    if (text == NULL) {
        return -1;
    }
    int keys = 0;
    const char *p = text;
    const char *begin = NULL;
    while ((begin = strstr(p, "-----BEGIN ")) != NULL) {
        const char *end = strstr(begin, "-----END ");
        const char *eol = end != NULL ? strstr(end + 9, "-----") : NULL;
        if (eol == NULL) {
            break;
        }
        eol += 5;
        const char *label_end = strstr(begin + 11, "-----");
        bool is_key = label_end != NULL && label_end < end &&
                      tls_label_is_key(begin + 11, (size_t)(label_end - begin - 11));
        tls_append(is_key ? key : cert, begin, (size_t)(eol - begin));
        keys += is_key;
        p = eol;
    }
    free(text);
    if (*cert == NULL || keys != 1) {
        ir_err_set(err, 0, "ssl-combined-pem: %s must hold a certificate and one private key (%s)",
                   path,
                   *cert == NULL ? "no certificate found"
                   : keys == 0   ? "no private key found"
                                 : "several keys");
        free(*cert);
        free(*key);
        *cert = NULL;
        *key = NULL;
        return -1;
    }
    return 0;
}
