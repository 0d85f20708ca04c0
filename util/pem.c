#include "util/pem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/dbuf.h"

#define PEM_BEGIN "-----BEGIN "
#define PEM_END   "-----END "
#define PEM_DASH  "-----"

/* One block: text[start..end) is "-----BEGIN L-----" up to and including "-----END L-----". */
struct pem_block {
    size_t start, end;
    const char *label; /* into the text, label_len bytes */
    size_t label_len;
};

static const char *
find(const char *text, size_t len, size_t from, const char *what)
{
    size_t wl = strlen(what);
    for (size_t i = from; i + wl <= len; i++) {
        if (text[i] == what[0] && memcmp(text + i, what, wl) == 0) {
            return text + i;
        }
    }
    return NULL;
}

/* The next block at or after *pos. 1 found, 0 none left, -1 a block without its END line. */
static int
next_block(const char *text, size_t len, size_t *pos, struct pem_block *b)
{
    const char *begin = find(text, len, *pos, PEM_BEGIN);
    if (begin == NULL) {
        return 0;
    }
    b->start = (size_t)(begin - text);
    b->label = begin + strlen(PEM_BEGIN);
    const char *dash = find(text, len, (size_t)(b->label - text), PEM_DASH);
    const char *eol = memchr(b->label, '\n', len - (size_t)(b->label - text));
    if (dash == NULL || (eol != NULL && dash > eol)) {
        b->label_len = eol != NULL ? (size_t)(eol - b->label) : 0;
        return -1;
    }
    b->label_len = (size_t)(dash - b->label);
    /* The END line with the same label. */
    char end_line[128];
    int n = snprintf(end_line, sizeof(end_line), PEM_END "%.*s" PEM_DASH, (int)b->label_len,
                     b->label);
    const char *end = n > 0 && (size_t)n < sizeof(end_line)
                              ? find(text, len, (size_t)(dash - text), end_line)
                              : NULL;
    if (end == NULL) {
        return -1;
    }
    b->end = (size_t)(end - text) + (size_t)n;
    *pos = b->end;
    return 1;
}

static bool
label_is(const struct pem_block *b, const char *want)
{
    return b->label_len == strlen(want) && memcmp(b->label, want, b->label_len) == 0;
}

/* "PRIVATE KEY" or "<KIND> PRIVATE KEY", as Go's tls.X509KeyPair. */
static bool
label_is_key(const struct pem_block *b)
{
    static const char suffix[] = " PRIVATE KEY";
    size_t sl = sizeof(suffix) - 1;
    return label_is(b, "PRIVATE KEY") ||
           (b->label_len > sl && memcmp(b->label + b->label_len - sl, suffix, sl) == 0);
}

static void
append_block(struct dbuf *d, const char *text, const struct pem_block *b)
{
    (void)dbuf_append(d, text + b->start, b->end - b->start);
    dbuf_char(d, '\n');
}

static int
split_fail(struct dbuf *cert, struct dbuf *key, struct pem_pair *out)
{
    dbuf_cleanup(cert);
    dbuf_cleanup(key);
    out->cert = NULL;
    out->key = NULL;
    return -1;
}

/* Fills err for a file with n_cert certificates and n_key keys; 0 when that is right. */
static int
check_counts(const char *what, size_t n_cert, size_t n_key, struct ir_err *err)
{
    static const char no_cert[] = "no certificate (-----BEGIN CERTIFICATE-----)";
    static const char no_key[] = "no private key (-----BEGIN ... PRIVATE KEY-----)";
    if (n_cert == 0 && n_key == 0) {
        ir_err_set(err, 0, "\"%s\" holds %s and %s", what, no_cert, no_key);
    } else if (n_cert == 0 || n_key == 0) {
        ir_err_set(err, 0, "\"%s\" holds %s", what, n_cert == 0 ? no_cert : no_key);
    } else if (n_key > 1) {
        ir_err_set(err, 0, "\"%s\" holds %zu private keys (want exactly one)", what, n_key);
    } else {
        return 0;
    }
    return -1;
}

int
pem_split_pair(const char *text, size_t len, const char *what, struct pem_pair *out,
               struct ir_err *err)
{
    struct dbuf cert;
    struct dbuf key;
    dbuf_init(&cert, DBUF_NO_BOUND);
    dbuf_init(&key, DBUF_NO_BOUND);
    size_t n_cert = 0;
    size_t n_key = 0;
    size_t pos = 0;
    struct pem_block b;
    int rc = 0;
    while ((rc = next_block(text, len, &pos, &b)) == 1) {
        if (label_is(&b, "CERTIFICATE")) {
            append_block(&cert, text, &b);
            n_cert++;
        } else if (label_is_key(&b)) {
            append_block(&key, text, &b);
            n_key++;
        }
    }
    if (rc < 0) {
        ir_err_set(err, 0, "\"%s\": PEM block \"-----BEGIN %.*s\" has no END line", what,
                   (int)(b.label_len < 40 ? b.label_len : 40), b.label);
        return split_fail(&cert, &key, out);
    }
    if (check_counts(what, n_cert, n_key, err) != 0) {
        return split_fail(&cert, &key, out);
    }
    size_t l = 0;
    out->cert = dbuf_finish(&cert, &l);
    out->key = dbuf_finish(&key, &l);
    if (out->cert == NULL || out->key == NULL) {
        pem_pair_cleanup(out);
        ir_err_set(err, 0, "\"%s\": out of memory", what);
        return -1;
    }
    return 0;
}

/* Reads path whole; owned text, or NULL with *e set (errno, or EFBIG above PEM_MAX_BYTES). */
static char *
read_file(const char *path, size_t *len, int *e)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *e = errno;
        return NULL;
    }
    char *buf = malloc(PEM_MAX_BYTES + 1);
    errno = 0;
    size_t n = buf != NULL ? fread(buf, 1, PEM_MAX_BYTES + 1, f) : 0;
    int read_errno = errno != 0 ? errno : EIO;
    *e = buf == NULL ? ENOMEM : ferror(f) ? read_errno : n > PEM_MAX_BYTES ? EFBIG : 0;
    fclose(f);
    if (*e != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int
pem_load_pair(const char *path, struct pem_pair *out, struct ir_err *err)
{
    out->cert = NULL;
    out->key = NULL;
    int e = 0;
    size_t len = 0;
    char *text = read_file(path, &len, &e);
    if (text == NULL) {
        char eb[128];
        ir_err_set(err, 0, "cannot read \"%s\": %s", path, ir_strerror(e, eb, sizeof(eb)));
        return -1;
    }
    int rc = pem_split_pair(text, len, path, out, err);
    free(text);
    return rc;
}

void
pem_pair_cleanup(struct pem_pair *out)
{
    free(out->cert);
    free(out->key);
    out->cert = NULL;
    out->key = NULL;
}
