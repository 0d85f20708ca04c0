/* util/snappy.c: snappy_block_is_valid() against the verdicts of a port of Go's snappy.Decode
 * (the decoder influxd runs) on blocks made by python3-snappy and on mutations of them
 * (truncations, flipped bytes, trailing bytes) and hand-made edge cases, all produced by
 * util_snappy_vectors.py; plus a few cases written here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/snappy.h"

static bool
valid(const char *s, size_t n)
{
    return snappy_block_is_valid((const unsigned char *)s, n, NULL);
}

static void
test_inline_cases(void)
{
    uint64_t dlen = 7;
    CHECK(!valid("", 0));
    CHECK(snappy_block_is_valid((const unsigned char *)"\x00", 1, &dlen));
    CHECK_EQ_I64(dlen, 0);
    CHECK(snappy_block_is_valid((const unsigned char *)"\x01\x00"
                                                       "a",
                                3, &dlen));
    CHECK_EQ_I64(dlen, 1);
    CHECK(!valid("\x01\x00", 2)); /* literal beyond the input */
    CHECK(!valid("\x02\x00"
                 "a",
                 3)); /* output short */
    CHECK(valid("\x09\x00"
                "a\x11\x01",
                5)); /* copy1: offset 1, length 8 (overlapping) */
    CHECK(!valid("\x09\x00"
                 "a\x11\x00",
                 5)); /* offset 0 */
    CHECK(!valid("\x09\x00"
                 "a\x11\x02",
                 5));                         /* offset beyond what is decoded */
    CHECK(!valid("\xff\xff\xff\xff\x0f", 5)); /* 4 GiB announced, nothing decoded */
    CHECK(!valid("\x80\x80\x80\x80\x10", 5)); /* more than 0xffffffff */
}

static int
hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes hex[0..n) into out (room for n / 2 bytes); returns the bytes, or -1. */
static long
unhex(const char *hex, size_t n, unsigned char *out)
{
    if (n % 2 != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(hex[i]);
        int lo = hexval(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

/* One vector line "VERDICT DECODED_LEN HEX"; false when it does not parse. */
static bool
check_line(char *line, size_t *n_valid)
{
    int verdict = 0;
    unsigned long long want_len = 0;
    int at = 0;
    if (sscanf(line, "%d %llu %n", &verdict, &want_len, &at) != 2) {
        return false;
    }
    char *hex = line + at;
    size_t hn = strcspn(hex, "\n");
    unsigned char *block = malloc(hn / 2 + 1);
    long n = unhex(hex, hn, block);
    if (n < 0) {
        free(block);
        return false;
    }
    uint64_t dlen = 0;
    bool got = snappy_block_is_valid(block, (size_t)n, &dlen);
    CHECK_EQ_I64(got, verdict);
    if (got != (verdict != 0)) {
        fprintf(stderr, "  block: %.200s\n", hex);
    }
    if (got && verdict) {
        CHECK_EQ_I64(dlen, want_len);
        (*n_valid)++;
    }
    free(block);
    return true;
}

static void
test_vectors(void)
{
    const char *cmd = "/usr/bin/python3 " IR_TEST_DIR "/unit/util_snappy_vectors.py";
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    size_t lines = 0;
    size_t n_valid = 0;
    while (getline(&line, &cap, f) > 0) {
        CHECK(check_line(line, &n_valid));
        lines++;
    }
    free(line);
    int rc = pclose(f);
    /* python3-snappy missing (scripts/setup.sh installs it) or a disagreement: a failure. */
    CHECK_EQ_I64(rc, 0);
    CHECK(lines > 1000);
    CHECK(n_valid > 300);
    fprintf(stderr, "%zu vectors, %zu valid\n", lines, n_valid);
}

int
main(void)
{
    test_inline_cases();
    test_vectors();
    return CHECK_DONE();
}
