/* Checks lp_process() against every case of test/lp/corpus.txt, whose verdicts come from a
 * real influxd 1.6.7 (test/lp/gen_corpus.py; it.lp_influxd re-checks them against influxd):
 * the verdict, the reason of a rejection, and for every line the relay forwards the exact
 * output bytes (RELAY column: untouched, stamped with the fixed clock, or spelled out).
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

/* NOW_NS in a precision, computed here (not with lp_prec_from_ns(), which is under test). */
static long long
now_in(const char *prec)
{
    static const char *const names[] = {"n", "u", "ms", "s", "m", "h"};
    static const long long div[] = {1, 1000, 1000000, 1000000000LL, 60000000000LL, 3600000000000LL};
    for (size_t i = 0; i < sizeof(div) / sizeof(div[0]); i++) {
        if (strcmp(prec, names[i]) == 0) {
            return NOW_NS / div[i];
        }
    }
    return -1;
}

/* The RELAY column: "=" untouched, "+" stamped, ">BYTES" spelled out (the output is then built
 * in *out, and *stamped says whether one point was given the clock: 1, 0, or -1 unknown), or a
 * rejection reason (returns false). */
static bool
expected_output(const struct corpus_case *c, const struct bytes *body, struct bytes *out,
                int *stamped)
{
    const char *relay = c->ncol == 5 ? c->col[4] : "";
    *stamped = -1;
    if (strcmp(relay, "=") == 0 || strcmp(relay, "+") == 0) {
        bytes_put(out, body->p, body->len);
        if (relay[0] == '+') {
            char ts[32];
            int m = snprintf(ts, sizeof(ts), " %lld", now_in(c->col[1]));
            bytes_put(out, ts, (size_t)m);
        }
        bytes_put(out, "\n", 1);
        *stamped = relay[0] == '+';
        return true;
    }
    if (relay[0] == '>') {
        unescape(relay + 1, strlen(relay + 1), -1, out);
        bytes_put(out, "", 0);
        return true;
    }
    return false;
}

static void
report(const struct corpus_case *c, const struct lp_result *r)
{
    fprintf(stderr,
            "corpus.txt:%d: %s %s: got points=%zu dropped=%zu stamped=%zu errors=%s "
            "output=\"",
            c->lineno, c->col[0], c->col[2], r->points, r->dropped, r->stamped,
            r->errors ? r->errors : "(none)");
    for (size_t i = 0; i < r->len; i++) {
        unsigned char ch = (unsigned char)r->data[i];
        fprintf(stderr, ch >= 0x20 && ch < 0x7f && ch != '\\' ? "%c" : "\\x%02x", ch);
    }
    fprintf(stderr, "\"\n");
}

/* What the relay must do: drop the case silently, reject it with a reason, or forward exactly
 * the expected bytes. */
static void
check_case(const struct corpus_case *c)
{
    const char *verdict = c->col[0];
    enum lp_prec prec = LP_PREC_NS;
    struct bytes body = {0}, reason = {0}, out = {0};
    CHECK(lp_prec_parse(c->col[1], strlen(c->col[1]), &prec) == 0);
    unescape(c->col[2], strlen(c->col[2]), -1, &body);
    bytes_put(&body, "", 0);
    bool dropped = strcmp(verdict, "err") == 0 || strcmp(verdict, "skip") == 0;
    int stamped = -1;
    bool forward = !dropped && expected_output(c, &body, &out, &stamped);
    /* Column 5 is empty exactly for the cases dropped like influxd drops them. */
    CHECK(dropped == (c->ncol < 5 || c->col[4][0] == '\0'));
    const char *want = c->ncol == 5 && c->col[4][0] != '\0' ? c->col[4] : c->col[3];
    bytes_put(&reason, "': ", 3);
    unescape(want, c->ncol >= 4 ? strlen(want) : 0, -1, &reason);

    struct lp_result r;
    CHECK(lp_process(body.p, body.len, prec, NOW_NS, &r) == 0);
    bool ok;
    if (forward) {
        ok = r.points == 1 && r.dropped == 0 && r.len == out.len &&
             memcmp(r.data, out.p, out.len) == 0 && (stamped < 0 || r.stamped == (size_t)stamped);
    } else if (strcmp(verdict, "skip") == 0) {
        ok = r.points == 0 && r.dropped == 0 && r.len == 0;
    } else {
        ok = r.points == 0 && r.dropped == 1 && r.errors != NULL &&
             strncmp(r.errors, "unable to parse '", 17) == 0 &&
             ends_with(r.errors, r.errors_len, reason.p, reason.len);
    }
    CHECK(ok);
    if (!ok) {
        report(c, &r);
    }
    lp_result_cleanup(&r);
    free(body.p);
    free(reason.p);
    free(out.p);
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
    int lineno = 0, cases = 0, forwarded = 0;
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
            forwarded += c.ncol == 5 && strchr("=+>", c.col[4][0]) != NULL && c.col[4][0] != 0;
        }
    }
    free(line);
    fclose(f);
    CHECK(cases >= 250);
    CHECK(forwarded >= 200);
    fprintf(stderr, "%d corpus cases, %d forwarded (output bytes checked)\n", cases, forwarded);
    return CHECK_DONE();
}
