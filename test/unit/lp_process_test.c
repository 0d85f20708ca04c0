/* Unit tests of lp_process(), lp_split(), lp_count_lines() and the precision helpers: output
 * bytes, zero-copy, stamping (and the exact size of its output), influxd's error text, line
 * cutting. The influxd verdicts of the
 * whole corpus are checked by lp_corpus_test.c. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lp/lp.h"

#define NOW_NS 1700000000123456789LL

/* Runs lp_process on a literal; returns the result (caller cleans up). */
static struct lp_result
run(const char *in, enum lp_prec prec)
{
    struct lp_result r;
    int rc = lp_process(in, strlen(in), prec, NOW_NS, &r);
    CHECK(rc == 0);
    return r;
}

/* The output as a NUL-terminated string (static buffer). */
static const char *
out(const struct lp_result *r)
{
    static char buf[4096];
    size_t n = r->len < sizeof(buf) - 1 ? r->len : sizeof(buf) - 1;
    memcpy(buf, r->data, n);
    buf[n] = '\0';
    return buf;
}

/* The reason of a single invalid line. */
static void
check_reason(const char *line, const char *want_errors)
{
    struct lp_result r = run(line, LP_PREC_NS);
    CHECK_EQ_I64(r.points, 0);
    CHECK_EQ_I64(r.dropped, 1);
    CHECK_STREQ(r.errors, want_errors);
    lp_result_cleanup(&r);
}

static void
test_prec(void)
{
    enum lp_prec p = LP_PREC_H;
    CHECK(lp_prec_parse("", 0, &p) == 0 && p == LP_PREC_NS);
    CHECK(lp_prec_parse("ns", 2, &p) == 0 && p == LP_PREC_NS);
    CHECK(lp_prec_parse("us", 2, &p) == 0 && p == LP_PREC_US);
    CHECK(lp_prec_parse("u", 1, &p) == 0 && p == LP_PREC_US);
    CHECK(lp_prec_parse("ms", 2, &p) == 0 && p == LP_PREC_MS);
    CHECK(lp_prec_parse("s", 1, &p) == 0 && p == LP_PREC_S);
    CHECK(lp_prec_parse("m", 1, &p) == 0 && p == LP_PREC_M);
    CHECK(lp_prec_parse("h", 1, &p) == 0 && p == LP_PREC_H);
    CHECK(lp_prec_parse("x", 1, &p) != 0);
    CHECK(lp_prec_parse("mss", 3, &p) != 0);
    CHECK(lp_prec_parse("S", 1, &p) != 0);
    CHECK_STREQ(lp_prec_name(LP_PREC_NS), "n");
    CHECK_STREQ(lp_prec_name(LP_PREC_US), "u");
    CHECK_STREQ(lp_prec_name(LP_PREC_H), "h");
    CHECK_EQ_I64(lp_prec_from_ns(NOW_NS, LP_PREC_NS), NOW_NS);
    CHECK_EQ_I64(lp_prec_from_ns(NOW_NS, LP_PREC_US), 1700000000123456LL);
    CHECK_EQ_I64(lp_prec_from_ns(NOW_NS, LP_PREC_MS), 1700000000123LL);
    CHECK_EQ_I64(lp_prec_from_ns(NOW_NS, LP_PREC_S), 1700000000LL);
    CHECK_EQ_I64(lp_prec_from_ns(NOW_NS, LP_PREC_M), 28333333LL);
    CHECK_EQ_I64(lp_prec_from_ns(NOW_NS, LP_PREC_H), 472222LL);
    CHECK_EQ_I64(lp_prec_from_ns(-1, LP_PREC_S), -1);
}

static void
test_zero_copy(void)
{
    const char *in = "cpu,host=a v=1 1\nmem free=2i 2\n";
    struct lp_result r = run(in, LP_PREC_NS);
    CHECK(r.data == in);
    CHECK(r.buf == NULL);
    CHECK_EQ_I64(r.len, strlen(in));
    CHECK_EQ_I64(r.points, 2);
    CHECK_EQ_I64(r.stamped, 0);
    CHECK(r.errors == NULL);
    lp_result_cleanup(&r);

    /* Left-out lines at the end keep the output a prefix of the input. */
    in = "cpu v=1 1\n\n# done\nbad\n";
    r = run(in, LP_PREC_NS);
    CHECK(r.data == in && r.buf == NULL);
    CHECK_EQ_I64(r.len, 10);
    CHECK_EQ_I64(r.points, 1);
    CHECK_EQ_I64(r.dropped, 1);
    CHECK_STREQ(r.errors, "unable to parse 'bad': missing fields");
    lp_result_cleanup(&r);

    /* Leading whitespace is kept, byte for byte. */
    in = "  \tcpu v=1 1\n";
    r = run(in, LP_PREC_NS);
    CHECK(r.data == in && r.len == strlen(in));
    lp_result_cleanup(&r);
}

static void
test_copies(void)
{
    /* No final newline: one is added. */
    struct lp_result r = run("cpu v=1 1", LP_PREC_NS);
    CHECK(r.buf != NULL && r.data == r.buf);
    CHECK_STREQ(out(&r), "cpu v=1 1\n");
    lp_result_cleanup(&r);

    /* Stamps in the request's precision, the same for every point. */
    r = run("a v=1\nb v=2 5\n\n#c\nc v=3\r\nd v=4\n", LP_PREC_S);
    CHECK_STREQ(out(&r), "a v=1 1700000000\nb v=2 5\nd v=4 1700000000\n");
    CHECK_EQ_I64(r.points, 3);
    CHECK_EQ_I64(r.stamped, 2);
    CHECK_EQ_I64(r.dropped, 1);
    CHECK_STREQ(r.errors, "unable to parse 'c v=3\r': invalid number");
    lp_result_cleanup(&r);

    /* Trailing spaces stay; the stamp goes after them. */
    r = run("a v=1  \n", LP_PREC_NS);
    CHECK_STREQ(out(&r), "a v=1   1700000000123456789\n");
    lp_result_cleanup(&r);

    /* A '\n' inside a quoted string does not end the line. */
    r = run("a s=\"x\ny\"\nb v=1 2\n", LP_PREC_MS);
    CHECK_STREQ(out(&r), "a s=\"x\ny\" 1700000000123\nb v=1 2\n");
    CHECK_EQ_I64(r.points, 2);
    lp_result_cleanup(&r);
}

/* Runs body and checks the counts and the joined error text. */
static void
check_errors(const char *body, size_t points, size_t dropped, const char *errors)
{
    struct lp_result r = run(body, LP_PREC_NS);
    CHECK_EQ_I64(r.points, points);
    CHECK_EQ_I64(r.dropped, dropped);
    CHECK_STREQ(r.errors, errors);
    CHECK(r.errors == NULL || strncmp(r.errors, "unable to parse '", 17) == 0);
    if (r.errors != NULL) {
        const char *second = strstr(r.errors, "\nunable to parse '");
        CHECK_EQ_I64(r.first_error_len, second ? (size_t)(second - r.errors) : r.errors_len);
    }
    lp_result_cleanup(&r);
}

static void
test_only_invalid(void)
{
    check_errors("a s=\"x\ny\",b\nb v=\n", 0, 2,
                 "unable to parse 'a s=\"x\ny\",b': invalid field format\n"
                 "unable to parse 'b v=': missing field value");
    check_errors("a\nb v=\nc,t v=1\n", 0, 3,
                 "unable to parse 'a': missing fields\n"
                 "unable to parse 'b v=': missing field value\n"
                 "unable to parse 'c,t v=1': missing tag value");
    /* The same body as it.lp_influxd's test_error_text_shape, where influxd's text is checked. */
    check_errors("a v=1\r\nb v=2 1 2\n  foo\n#c\n  \nc v=1\n", 1, 3,
                 "unable to parse 'a v=1\r': invalid number\n"
                 "unable to parse 'b v=2 1 2': point is invalid\n"
                 "unable to parse 'foo': missing fields");

    struct lp_result r = run("", LP_PREC_NS);
    CHECK(r.points == 0 && r.dropped == 0 && r.len == 0 && r.errors == NULL);
    lp_result_cleanup(&r);
    r = run("\n  \n# x\n", LP_PREC_NS);
    CHECK(r.points == 0 && r.dropped == 0 && r.len == 0 && r.errors == NULL);
    lp_result_cleanup(&r);
}

static void
test_reasons(void)
{
    check_reason(",a v=1", "unable to parse ',a v=1': missing measurement");
    check_reason("a,=b v=1", "unable to parse 'a,=b v=1': missing tag key");
    check_reason("a,b=c=d v=1", "unable to parse 'a,b=c=d v=1': invalid tag format");
    check_reason("a,b=1,b=2 v=1", "unable to parse 'a,b=1,b=2 v=1': duplicate tags");
    check_reason("a,z=1,b=2,z=3 v=1", "unable to parse 'a,z=1,b=2,z=3 v=1': duplicate tags");
    check_reason("a v=1,=2", "unable to parse 'a v=1,=2': missing field key");
    check_reason("a v=t1", "unable to parse 'a v=t1': invalid boolean");
    check_reason("a v=1e", "unable to parse 'a v=1e': invalid float");
    check_reason("a v=1e999", "unable to parse 'a v=1e999': invalid float");
    check_reason("a v=9223372036854775808i",
                 "unable to parse 'a v=9223372036854775808i': unable to parse integer "
                 "9223372036854775808: strconv.ParseInt: parsing \"9223372036854775808\": value "
                 "out of range");
    check_reason("a v=\"x", "unable to parse 'a v=\"x': unbalanced quotes");
    check_reason("a v=1,b", "unable to parse 'a v=1,b': invalid field format");
    check_reason("a v=1 1x", "unable to parse 'a v=1 1x': bad timestamp");
    check_reason("a v=1 -", "unable to parse 'a v=1 -': strconv.ParseInt: parsing \"-\": "
                            "invalid syntax");
    check_reason("a v=1 99999999999999999999",
                 "unable to parse 'a v=1 99999999999999999999': strconv.ParseInt: parsing "
                 "\"99999999999999999999\": value out of range");
    check_reason("a v=1 9223372036854775807",
                 "unable to parse 'a v=1 9223372036854775807': time outside range "
                 "-9223372036854775806 - 9223372036854775806");
    check_reason("a v=1 1 2", "unable to parse 'a v=1 1 2': point is invalid");
    check_reason("a v=1u", "unable to parse 'a v=1u': invalid number");
    check_reason("a v=NaN", "unable to parse 'a v=NaN': invalid number");
    check_reason("a v=\"x\"\\", "unable to parse 'a v=\"x\"\\': ambiguous line end");
}

static void
test_quirks_valid(void)
{
    /* influxd accepts these (checked with influxd 1.6.7). */
    static const char *const ok[] = {
            "a,b==c v=1 1",    "a v=1,v=2 1",
            "a \t=1 1",        "a v=\"x\"y 1",
            "a v=1. 1",        "a v=-.5 1",
            "a v=1E+5 1",      "a v=T 1",
            "a v=False 1",     "a v=-9223372036854775808i 1",
            "a v=1 -0",        "a\\ b v=1 1",
            "a v=\"x\"\\\\ 1",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct lp_result r = run(ok[i], LP_PREC_NS);
        if (r.points != 1) {
            fprintf(stderr, "expected valid: %s (%s)\n", ok[i], r.errors ? r.errors : "");
        }
        CHECK_EQ_I64(r.points, 1);
        lp_result_cleanup(&r);
    }
}

static void
test_max_key(void)
{
    size_t n = 65531;
    char *line = malloc(n + 16);
    memset(line, 'k', n);
    memcpy(line + n, " v=1", 5);
    struct lp_result r;
    CHECK(lp_process(line, n + 4, LP_PREC_NS, NOW_NS, &r) == 0);
    CHECK_EQ_I64(r.points, 0);
    CHECK(r.errors != NULL && strstr(r.errors, "': max key length exceeded: 65536 > 65535"));
    lp_result_cleanup(&r);
    CHECK(lp_process(line + 1, n + 3, LP_PREC_NS, NOW_NS, &r) == 0);
    CHECK_EQ_I64(r.points, 1);
    lp_result_cleanup(&r);
    free(line);
}

static void
test_time_range(void)
{
    struct lp_result r = run("a v=1 2562047\nb v=1 2562048\nc v=1 -2562047\n", LP_PREC_H);
    CHECK_EQ_I64(r.points, 2);
    CHECK_EQ_I64(r.dropped, 1);
    lp_result_cleanup(&r);
    r = run("a v=1 9223372036854775806\nb v=1 -9223372036854775806\nc v=1 "
            "-9223372036854775807\n",
            LP_PREC_NS);
    CHECK_EQ_I64(r.points, 2);
    lp_result_cleanup(&r);
}

/* Regression: a quoted run full of backslashes once searched for the same far '"' after each
 * backslash, quadratic time (8 CPU-seconds for 2 MB). Linear now: milliseconds for 8 MB. */
static void
test_backslash_run_is_linear(void)
{
    size_t n = 8u << 20;
    char *body = malloc(n + 16);
    memcpy(body, "m v=\"", 5);
    memset(body + 5, '\\', n);
    memcpy(body + 5 + n, "\" 1\n", 4);
    struct lp_result r;
    CHECK(lp_process(body, n + 9, LP_PREC_NS, NOW_NS, &r) == 0);
    CHECK_EQ_I64(r.points, 1);
    CHECK(r.data == body);
    lp_result_cleanup(&r);
    body[0] = '#';
    CHECK(lp_process(body, n + 9, LP_PREC_NS, NOW_NS, &r) == 0);
    CHECK(r.points == 0 && r.dropped == 0);
    lp_result_cleanup(&r);
    free(body);
}

/* The error text stops at LP_ERRORS_MAX; every invalid line is still counted. */
static void
test_errors_bounded(void)
{
    size_t lines = 300000;
    char *body = malloc(2 * lines);
    for (size_t i = 0; i < lines; i++) {
        memcpy(body + 2 * i, "a\n", 2);
    }
    struct lp_result r;
    CHECK(lp_process(body, 2 * lines, LP_PREC_NS, NOW_NS, &r) == 0);
    CHECK_EQ_I64(r.dropped, lines);
    CHECK(r.errors_truncated);
    CHECK(r.errors_len >= LP_ERRORS_MAX && r.errors_len < LP_ERRORS_MAX + 64);
    CHECK(strncmp(r.errors, "unable to parse 'a': missing fields\nunable", 42) == 0);
    lp_result_cleanup(&r);
    CHECK(lp_process(body, 2000, LP_PREC_NS, NOW_NS, &r) == 0);
    CHECK(r.dropped == 1000 && !r.errors_truncated);
    lp_result_cleanup(&r);
    free(body);
}

static void
test_split(void)
{
    const char *b = "aaaa v=1\nbb v=2\ncc s=\"x\ny\"\n";
    size_t len = strlen(b), ll = 99;
    CHECK_EQ_I64(lp_split(b, len, len, &ll), len);
    CHECK_EQ_I64(ll, 0);
    CHECK_EQ_I64(lp_split(b, len, 15, &ll), 9);
    CHECK_EQ_I64(lp_split(b, len, 16, &ll), 16);
    CHECK_EQ_I64(lp_split(b + 16, len - 16, 10, &ll), 0);
    CHECK_EQ_I64(ll, 11);
    CHECK_EQ_I64(lp_split(b, len, 4, &ll), 0);
    CHECK_EQ_I64(ll, 9);
    CHECK_EQ_I64(lp_count_lines(b, len), 3);
    CHECK_EQ_I64(lp_count_lines("a v=1", 5), 1);
    CHECK_EQ_I64(lp_count_lines("", 0), 0);
}

/* Stamping output is allocated at its exact size: a body of unstamped minimal lines grows by the
 * stamp of its precision per line and not a byte more is held (once doubled and never shrunk:
 * 16 MiB of "m f=1" lines held 111 MB). Bytes per line: 6 + 1 + digits of now in precision. */
static void
test_stamped_size_is_exact(void)
{
    static const struct {
        enum lp_prec prec;
        size_t stamp;
    } precs[] = {{LP_PREC_NS, 20}, {LP_PREC_US, 17}, {LP_PREC_MS, 14},
                 {LP_PREC_S, 11},  {LP_PREC_M, 9},   {LP_PREC_H, 7}};
    size_t all = (16u << 20) / 6;
    char *body = malloc(all * 6);
    for (size_t i = 0; i < all; i++) {
        memcpy(body + 6 * i, "m f=1\n", 6);
    }
    for (size_t k = 0; k < sizeof(precs) / sizeof(precs[0]); k++) {
        size_t lines = k == 0 ? all : all / 8; /* the 16 MiB once, 2 MiB after */
        struct lp_result r;
        CHECK(lp_process(body, lines * 6, precs[k].prec, NOW_NS, &r) == 0);
        CHECK_EQ_I64(r.points, lines);
        CHECK_EQ_I64(r.stamped, lines);
        CHECK_EQ_I64(r.len, lines * (6 + precs[k].stamp));
        /* What malloc really holds: the exact size, rounded to a page for an mmap'd block. */
        CHECK(r.buf != NULL && malloc_usable_size(r.buf) <= r.len + 4096);
        CHECK(memcmp(r.data + r.len - 7 - precs[k].stamp, "\nm f=1 ", 7) == 0);
        lp_result_cleanup(&r);
    }
    /* A changed line late in a body: the prefix is copied, invalid lines and comments after the
     * change are left out, and the size is still exact. */
    const char *in = "a v=1 1\nb v=2 2\nbad\nc v=3\n# x\n\nd v=4 4\nworse\ne v=5";
    struct lp_result r = run(in, LP_PREC_S);
    CHECK_STREQ(out(&r), "a v=1 1\nb v=2 2\nc v=3 1700000000\nd v=4 4\ne v=5 1700000000\n");
    CHECK_EQ_I64(r.len, strlen(out(&r)));
    CHECK(malloc_usable_size(r.buf) < r.len + 32);
    CHECK_EQ_I64(r.dropped, 2);
    lp_result_cleanup(&r);
    free(body);
}

int
main(void)
{
    test_prec();
    test_zero_copy();
    test_copies();
    test_only_invalid();
    test_reasons();
    test_quirks_valid();
    test_max_key();
    test_time_range();
    test_backslash_run_is_linear();
    test_errors_bounded();
    test_split();
    test_stamped_size_is_exact();
    return CHECK_DONE();
}
