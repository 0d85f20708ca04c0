/* Checks lp_process() against every case of test/lp/corpus.txt, whose verdicts come from a
 * real influxd 1.6.7 (test/lp/gen_corpus.py; it.lp_influxd re-checks them against influxd).
 * Format and escapes: see test/lp/corpus.py. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lp/lp.h"

#define NOW_NS 1700000000123456789LL

/* A growable byte string. */
struct bytes {
    char *p;
    size_t len;
    size_t cap;
};

static void
bytes_put(struct bytes *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) {
            abort();
        }
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static int
hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static void unescape(const char *s, size_t n, int rep, struct bytes *out);

/* \*N(TEXT): TEXT n times, '%' replaced by the index on 4 digits. Returns bytes consumed. */
static size_t
unescape_repeat(const char *s, size_t n, struct bytes *out)
{
    char *end = NULL;
    long count = strtol(s + 2, &end, 10);
    const char *close = memchr(end, ')', n - (size_t)(end - s));
    if (*end != '(' || close == NULL) {
        return 0;
    }
    for (long k = 0; k < count; k++) {
        unescape(end + 1, (size_t)(close - end - 1), (int)k, out);
    }
    return (size_t)(close - s) + 1;
}

static void
unescape(const char *s, size_t n, int rep, struct bytes *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%' && rep >= 0) {
            char idx[8];
            int m = snprintf(idx, sizeof(idx), "%04d", rep);
            bytes_put(out, idx, (size_t)m);
            continue;
        }
        char e = '\0';
        if (i + 1 < n) {
            e = s[i + 1];
        }
        if (c != '\\' || strchr("\\\"tnr0x*", e) == NULL || e == '\0') {
            bytes_put(out, &c, 1);
            continue;
        }
        if (e == '*') {
            size_t used = unescape_repeat(s + i, n - i, out);
            i += used > 0 ? used - 1 : 0;
            continue;
        }
        static const char from[] = "tnr0", to[] = "\t\n\r";
        const char *k = strchr(from, e);
        char v = e;
        if (k != NULL) {
            v = to[k - from];
        }
        if (e == 'x' && i + 3 < n) {
            v = (char)(hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
            i += 2;
        }
        bytes_put(out, &v, 1);
        i++;
    }
}

/* One corpus case: columns split in place. */
struct corpus_case {
    int lineno;
    char *col[5];
    int ncol;
};

static bool
ends_with(const char *s, size_t n, const char *suffix, size_t sn)
{
    return n >= sn && memcmp(s + n - sn, suffix, sn) == 0;
}

/* What the relay must say: nothing, a point, or a rejection with this reason. */
static void
check_case(const struct corpus_case *c)
{
    const char *verdict = c->col[0];
    enum lp_prec prec = LP_PREC_NS;
    struct bytes body = {0}, reason = {0};
    CHECK(lp_prec_parse(c->col[1], strlen(c->col[1]), &prec) == 0);
    unescape(c->col[2], strlen(c->col[2]), -1, &body);
    bytes_put(&body, "", 0);
    bool reject = strcmp(verdict, "err") == 0 || (c->ncol == 5 && c->col[4][0] != '\0');
    const char *want = c->ncol == 5 && c->col[4][0] != '\0' ? c->col[4] : c->col[3];
    bytes_put(&reason, "': ", 3);
    unescape(want, c->ncol >= 4 ? strlen(want) : 0, -1, &reason);

    struct lp_result r;
    CHECK(lp_process(body.p, body.len, prec, NOW_NS, &r) == 0);
    bool ok;
    if (reject) {
        ok = r.points == 0 && r.dropped == 1 && r.errors != NULL &&
             strncmp(r.errors, "unable to parse '", 17) == 0 &&
             ends_with(r.errors, r.errors_len, reason.p, reason.len);
    } else if (strcmp(verdict, "skip") == 0) {
        ok = r.points == 0 && r.dropped == 0 && r.len == 0;
    } else {
        ok = r.points == 1 && r.dropped == 0;
    }
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "corpus.txt:%d: %s %s: got points=%zu dropped=%zu errors=%s\n", c->lineno,
                verdict, c->col[2], r.points, r.dropped, r.errors ? r.errors : "(none)");
    }
    lp_result_cleanup(&r);
    free(body.p);
    free(reason.p);
}

int
main(void)
{
    FILE *f = fopen(IR_TEST_DIR "/lp/corpus.txt", "r");
    CHECK(f != NULL);
    if (f == NULL) {
        return CHECK_DONE();
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, cases = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (n == 0 || line[0] == '#') {
            continue;
        }
        struct corpus_case c = {.lineno = lineno};
        char *p = line;
        while (c.ncol < 5 && p != NULL) {
            c.col[c.ncol++] = p;
            p = strchr(p, '\t');
            if (p != NULL) {
                *p++ = '\0';
            }
        }
        CHECK(c.ncol >= 3);
        if (c.ncol >= 3) {
            check_case(&c);
            cases++;
        }
    }
    free(line);
    fclose(f);
    CHECK(cases >= 250);
    fprintf(stderr, "%d corpus cases\n", cases);
    return CHECK_DONE();
}
