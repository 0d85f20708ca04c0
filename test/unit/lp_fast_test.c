/* Unit tests of lp/'s fast path (lp/fast.h): it takes the lines it is built for, and whatever it
 * takes, lp_process() answers exactly as without it. Bodies are generated from line-protocol
 * pieces (the usual shapes, their near misses, influxd's edge cases, timestamps at each
 * precision's range, lines across 64-byte blocks) plus random byte damage, and processed three
 * ways: without the fast path, with its base build (SSE2 or the byte loop) and with the best
 * build the CPU runs (AVX2 here); the results must be identical byte for byte, errors
 * included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lp/fast.h"
#include "lp/lp.h"
#include "util/dbuf.h"

#define NOW_NS 1700000000123456789LL

static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static const char *
pick(const char *const *v, size_t n)
{
    return v[rnd((unsigned)n)];
}

#define PICK(v) pick(v, sizeof(v) / sizeof(v[0]))

static const char *const measurements[] = {
        "cpu",  "m",     "disk_io", "a=b", "we\\ ird",    "c,",         ",",  "",    "#c",
        " cpu", "\tcpu", "\"q",     "x\r", "caf\xc3\xa9", "with space", "=m", "n\\", "\x01"};
static const char *const tag_keys[] = {"host", "region", "a",  "b",    "cpu",  "host",    "zone",
                                       "",     "k=",     "k ", "k\\,", "\xff", "hostname"};
static const char *const tag_values[] = {"server01", "eu-west-1", "x", "",    "v=1", "v w",
                                         "v\\ w",    "v\"",       "1", "a,b", "\t",  "\\"};
static const char *const field_keys[] = {
        "value", "usage_user", "f", "", "k k", "k=", "\"k\"", "k\\=", "time", "\t", "x,y"};
static const char *const field_values[] = {"1",
                                           "12i",
                                           "-3i",
                                           "1.5",
                                           "-.5",
                                           "5.",
                                           ".",
                                           "-",
                                           "1e5",
                                           "1E-3",
                                           "NaN",
                                           "nan",
                                           "t",
                                           "T",
                                           "true",
                                           "True",
                                           "TRUE",
                                           "false",
                                           "F",
                                           "FALSE",
                                           "tru",
                                           "fals",
                                           "truex",
                                           "\"s\"",
                                           "\"a b\"",
                                           "\"q\\\"\"",
                                           "12u",
                                           "1.2.3",
                                           "+1",
                                           "0x10",
                                           "i",
                                           "-i",
                                           "1i2",
                                           "00012",
                                           "9223372036854775807i",
                                           "9223372036854775808i",
                                           "123456789012345678i",
                                           "1234567890123456789i",
                                           "123456789012345678901234",
                                           "1234567890123456789012345",
                                           "1.23456789012345678901234",
                                           "1..2",
                                           "1.i",
                                           "0",
                                           "-0",
                                           "1.5i",
                                           "",
                                           "\"",
                                           "\"unterminated",
                                           "12345678",
                                           "-1234567",
                                           "1234567i",
                                           "1.234567",
                                           "-123456i",
                                           "123456789i"};

/* A timestamp for precision prec: typical, edges of the range, and junk. */
static void
put_ts(struct dbuf *b, enum lp_prec prec)
{
    static const char *const bounds[] = {"9223372036854775806", "9223372036854775", "9223372036854",
                                         "9223372036",          "153722867",        "2562047"};
    static const char *const over[] = {"9223372036854775807", "9223372036854776", "9223372036855",
                                       "9223372037",          "153722868",        "2562048"};
    static const char *const junk[] = {"",
                                       "-",
                                       "12a",
                                       "1 ",
                                       " 1",
                                       "1.5",
                                       "+1",
                                       "0000000000000000000000001",
                                       "99999999999999999999",
                                       "-0",
                                       "1\r",
                                       "1e9",
                                       "0",
                                       "\t1",
                                       "1,2",
                                       "1=2"};
    char tmp[64];
    switch (rnd(8)) {
    case 0:
        dbuf_str(b, bounds[prec]);
        break;
    case 1:
        dbuf_str(b, "-");
        dbuf_str(b, rnd(2) ? bounds[prec] : over[prec]);
        break;
    case 2:
        dbuf_str(b, over[prec]);
        break;
    case 3:
        dbuf_str(b, PICK(junk));
        break;
    case 4:
        snprintf(tmp, sizeof(tmp), "%u", rnd(1000000));
        dbuf_str(b, tmp);
        break;
    default:
        snprintf(tmp, sizeof(tmp), "%lld",
                 1700000000000000000LL / (long long)(prec == LP_PREC_NS ? 1 : 1000) + rnd(1000000));
        dbuf_str(b, tmp);
        break;
    }
}

/* One line; mostly well formed, sometimes off by one piece. */
static void
put_line(struct dbuf *b, enum lp_prec prec)
{
    bool clean = rnd(3) != 0;
    if (clean) {
        static const char *const ms[] = {"cpu", "mem", "disk", "net", "m"};
        dbuf_str(b, PICK(ms));
        /* a measurement of varied length moves the line across 64-byte blocks */
        for (unsigned k = rnd(70); k > 0; k--) {
            dbuf_char(b, "abcdefghijklmnopqrstuvwxyz0123456789_-."[rnd(39)]);
        }
    } else {
        dbuf_str(b, PICK(measurements));
    }
    unsigned ntags = rnd(5);
    const char *prev = "";
    for (unsigned t = 0; t < ntags; t++) {
        dbuf_str(b, ",");
        if (clean) {
            static const char *const sorted[] = {"a", "b", "c", "d", "e", "f"};
            const char *k = sorted[t + rnd(2)];
            dbuf_str(b, strcmp(k, prev) > 0 ? k : "z");
            prev = k;
            dbuf_str(b, "=");
            dbuf_str(b, rnd(2) ? "server01.example.com" : "v");
        } else {
            dbuf_str(b, PICK(tag_keys));
            dbuf_str(b, rnd(8) ? "=" : "");
            dbuf_str(b, PICK(tag_values));
        }
    }
    dbuf_str(b, rnd(12) ? " " : PICK(((const char *const[]){"  ", "\t", " \t", ""})));
    unsigned nf = 1 + rnd(4);
    for (unsigned f = 0; f < nf; f++) {
        if (f > 0) {
            dbuf_str(b, rnd(20) ? "," : ",,");
        }
        dbuf_str(b, clean && rnd(4) ? "usage" : PICK(field_keys));
        dbuf_str(b, rnd(15) ? "=" : "==");
        dbuf_str(b, PICK(field_values));
    }
    switch (rnd(6)) {
    case 0:
        break;
    case 1:
        dbuf_str(b, rnd(2) ? "  " : " \t");
        put_ts(b, prec);
        break;
    default:
        dbuf_str(b, " ");
        put_ts(b, prec);
        if (rnd(20) == 0) {
            dbuf_str(b, " ");
        }
        break;
    }
}

/* Damages a random byte with a byte the scanners care about. */
static void
damage(struct dbuf *b)
{
    static const char bytes[] = " ,=\n\"\\\t\r#-.i0\xff";
    if (b->len == 0) {
        return;
    }
    b->p[rnd((unsigned)b->len)] = bytes[rnd(sizeof(bytes) - 1)];
}

static void
check_same(const struct lp_result *a, const struct lp_result *b)
{
    CHECK_EQ_I64(a->len, b->len);
    CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    CHECK((a->buf == NULL) == (b->buf == NULL));
    CHECK_EQ_I64(a->points, b->points);
    CHECK_EQ_I64(a->stamped, b->stamped);
    CHECK_EQ_I64(a->dropped, b->dropped);
    CHECK_EQ_I64(a->errors_len, b->errors_len);
    CHECK((a->errors == NULL) == (b->errors == NULL));
    CHECK(a->errors == NULL || memcmp(a->errors, b->errors, a->errors_len) == 0);
    CHECK(a->errors_truncated == b->errors_truncated);
    CHECK_EQ_I64(a->first_error_len, b->first_error_len);
}

static void
check_body(const char *p, size_t len, enum lp_prec prec)
{
    struct lp_result slow, base, best;
    CHECK(lp_process_mode(p, len, prec, NOW_NS, LP_FAST_NONE, &slow) == 0);
    CHECK(lp_process_mode(p, len, prec, NOW_NS, LP_FAST_BASE, &base) == 0);
    CHECK(lp_process_mode(p, len, prec, NOW_NS, LP_FAST_BEST, &best) == 0);
    check_same(&slow, &base);
    check_same(&slow, &best);
    lp_result_cleanup(&slow);
    lp_result_cleanup(&base);
    lp_result_cleanup(&best);
}

/* Random bodies, whole and cut at every few bytes (a body may end anywhere). */
static void
test_random_bodies(void)
{
    struct dbuf b;
    dbuf_init(&b, DBUF_NO_BOUND);
    for (int round = 0; round < 20000; round++) {
        b.len = 0;
        enum lp_prec prec = (enum lp_prec)rnd(6);
        unsigned lines = 1 + rnd(12);
        for (unsigned l = 0; l < lines; l++) {
            switch (rnd(30)) {
            case 0:
                dbuf_str(&b, "# a comment");
                break;
            case 1:
                break; /* a blank line */
            default:
                put_line(&b, prec);
                break;
            }
            dbuf_str(&b, rnd(25) ? "\n" : "\r\n");
        }
        for (unsigned d = rnd(4) == 0 ? 1 + rnd(3) : 0; d > 0; d--) {
            damage(&b);
        }
        check_body(b.p, b.len, prec);
        if (round % 50 == 0) {
            for (size_t cut = 0; cut < b.len; cut += 1 + rnd(7)) {
                /* a copy of exactly cut bytes, so reading past it is ASan's to catch */
                char *c = malloc(cut + 1);
                CHECK(c != NULL);
                memcpy(c, b.p, cut);
                check_body(c, cut, prec);
                free(c);
            }
        }
    }
    dbuf_cleanup(&b);
}

/* The shapes the fast path is for are taken by it, in each build, at any offset in a block. */
static void
test_fast_takes_common_lines(void)
{
    static const char *const lines[] = {
            "cpu,host=server01,region=eu-west-1 usage_user=12.5,usage_idle=87i "
            "1700000000000000000\n",
            "m v=1\n",
            "m v=1 -5\n",
            "m,a=1,b=2 x=t,y=FALSE,z=-.5,w=5.,u=-12i\n",
            "disk,device=sda1,fstype=ext4 free=123456789012345678i,used_percent=1.5 "
            "9223372036854775806",
    };
    char buf[512];
    for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++) {
        for (size_t pad = 0; pad < 70; pad++) {
            memset(buf, '\n', pad);
            size_t n = strlen(lines[k]);
            memcpy(buf + pad, lines[k], n);
            for (int best = 0; best < 2; best++) {
                struct lp_fast f;
                lp_fast_init(&f, buf, pad + n, 1);
                f.avx2 = f.avx2 && best;
                lp_fast_seek(&f, pad);
                struct lp_line ln;
                bool has_ts = false;
                CHECK(lp_fast_line(&f, pad, &ln, &has_ts));
                size_t end = lines[k][n - 1] == '\n' ? pad + n - 1 : pad + n;
                CHECK_EQ_I64(ln.start, pad);
                CHECK_EQ_I64(ln.end, end);
                CHECK_EQ_I64(ln.next, pad + n);
                CHECK(has_ts == (k != 1 && k != 3));
            }
            check_body(buf, pad + n, LP_PREC_NS);
        }
    }
}

/* A run takes the lines that go out unchanged and stops at the first other one: a line without
 * timestamp (it gets a stamp), a last line without '\n' (it gets one), a line of another shape. */
static void
test_fast_run_stops(void)
{
    static const struct {
        const char *body;
        size_t stop;
        size_t lines;
    } cases[] = {
            {"a v=1 1\nb v=2 2\n", 16, 2},
            {"a v=1 1\nb v=2\nc v=3 3\n", 8, 1},
            {"a v=1 1\nb v=2 2", 8, 1},
            {"a v=1 1\nb v=\"s\" 2\nc v=3 3\n", 8, 1},
            {"a v=1\n", 0, 0},
            {"", 0, 0},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        for (int best = 0; best < 2; best++) {
            struct lp_fast f;
            const char *in = cases[k].body;
            lp_fast_init(&f, in, strlen(in), 1);
            f.avx2 = f.avx2 && best;
            size_t lines = 99;
            size_t stop = strlen(in) > 0 ? lp_fast_run(&f, 0, &lines) : (lines = 0);
            CHECK_EQ_I64(stop, cases[k].stop);
            CHECK_EQ_I64(lines, cases[k].lines);
            if (stop < strlen(in)) {
                /* f stands at the line it stopped at: the walk goes on from there */
                struct lp_line ln;
                bool has_ts = false;
                bool taken = lp_fast_line(&f, stop, &ln, &has_ts);
                CHECK(!taken || ln.start == stop);
            }
        }
        check_body(cases[k].body, strlen(cases[k].body), LP_PREC_NS);
    }
}

/* What it must leave to the full scanner, whatever the verdict. */
static void
test_fast_leaves_the_rest(void)
{
    static const char *const lines[] = {
            "cpu,b=1,a=2 v=1\n",             /* unsorted tags */
            "cpu,a=1,a=2 v=1\n",             /* duplicate tags */
            "cpu  v=1\n",                    /* two spaces */
            "cpu v=1 1 \n",                  /* a space after the timestamp */
            "cpu v=\"s\"\n",                 /* a string */
            "cpu\\ x v=1\n",                 /* an escape */
            "cpu v=1 9223372036854775807\n", /* out of range */
            "cpu v=1e5\n",                   /* an exponent */
            "cpu v=1234567890123456789i\n",  /* 19 digits: a range check */
            "a=b v=1\n",                     /* '=' in the measurement */
            " cpu v=1\n",                    /* leading whitespace */
            "cpu v=1\r\n",                   /* a CR ends no value */
    };
    for (size_t k = 0; k < sizeof(lines) / sizeof(lines[0]); k++) {
        struct lp_fast f;
        size_t n = strlen(lines[k]);
        lp_fast_init(&f, lines[k], n, 1);
        struct lp_line ln;
        bool has_ts = false;
        CHECK(!lp_fast_line(&f, 0, &ln, &has_ts));
        check_body(lines[k], n, LP_PREC_NS);
    }
}

int
main(void)
{
    test_fast_takes_common_lines();
    test_fast_leaves_the_rest();
    test_fast_run_stops();
    test_random_bodies();
    return CHECK_DONE();
}
