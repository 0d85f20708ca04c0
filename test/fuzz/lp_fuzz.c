/* libFuzzer target for lp/: lp_process() and lp_split() on arbitrary bytes.
 * Input: first byte = precision (mod 6), the rest = the body. Checks, besides ASan/UBSan:
 * - the output re-parses as all valid, needs no stamp and comes back zero-copy, same points;
 * - a zero-copy output is a prefix of the input;
 * - every output line is an input line, in order, verbatim or followed by exactly the stamp,
 *   and len(out) == len(in) + stamped * len(stamp) - skipped + added, where skipped is the
 *   input bytes left out (invalid, blank and comment lines with their '\n') and added the
 *   '\n' given to a last line that had none;
 * - lp_split() cuts the output into chunks of at most max bytes at line ends, and a line alone
 *   longer than max is reported with its exact length.
 * The lp sources are included so that they get the fuzzer's coverage instrumentation even when
 * ir_lp itself is built without it (the archive's copies are then never linked). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp/lp.c"
#include "lp/scan.c"

#define FUZZ_NOW_NS 1700000000123456789LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what)
{
    fprintf(stderr, "lp_fuzz: invariant broken: %s\n", what);
    abort();
}

/* Finds s[0..n) as a whole line of in[0..len) (starting at 0 or after a '\n', ending at len or
 * before a '\n') at or after from; returns its offset or len + 1. */
static size_t
find_from(const char *in, size_t len, size_t from, const char *s, size_t n)
{
    for (size_t i = from; i + n <= len; i++) {
        bool anchored = (i == 0 || in[i - 1] == '\n') && (i + n == len || in[i + n] == '\n');
        if (anchored && memcmp(in + i, s, n) == 0) {
            return i;
        }
    }
    return len + 1;
}

/* Matches every output line to the input; checks the length equation and the stamp count. */
static void
check_lines(const char *in, size_t len, const struct lp_result *r, const char *stamp,
            size_t stamp_len)
{
    size_t cursor = 0, skipped = 0, added = 0, stamped = 0, lines = 0;
    for (size_t pos = 0; pos < r->len; lines++) {
        size_t ll = 0;
        if (lp_split(r->data + pos, r->len - pos, 0, &ll) != 0 || ll == 0) {
            fuzz_fail("lp_split(max 0) did not report the line");
        }
        const char *line = r->data + pos;
        size_t n = ll - 1; /* without its '\n' */
        if (line[n] != '\n') {
            fuzz_fail("output line without '\\n'");
        }
        size_t at = find_from(in, len, cursor, line, n);
        size_t bare = n >= stamp_len ? n - stamp_len : 0;
        bool has_stamp = n >= stamp_len && memcmp(line + bare, stamp, stamp_len) == 0;
        size_t at2 = has_stamp ? find_from(in, len, cursor, line, bare) : len + 1;
        if (at2 < at) {
            at = at2;
            n = bare;
            stamped++;
        }
        if (at > len) {
            fuzz_fail("output line not found in the input");
        }
        skipped += at - cursor;
        cursor = at + n;
        if (cursor < len && in[cursor] == '\n') {
            cursor++;
        } else {
            added++;
        }
        pos += ll;
    }
    skipped += len - cursor;
    if (lines != r->points || stamped != r->stamped) {
        fuzz_fail("line or stamp count");
    }
    if (r->len + skipped != len + r->stamped * stamp_len + added) {
        fuzz_fail("length equation");
    }
}

static void
check_split(const struct lp_result *r, size_t max)
{
    size_t total = 0;
    for (size_t pos = 0; pos < r->len;) {
        size_t ll = 0;
        size_t n = lp_split(r->data + pos, r->len - pos, max, &ll);
        if (n == 0) {
            if (ll <= max || ll > r->len - pos || r->data[pos + ll - 1] != '\n') {
                fuzz_fail("lp_split oversize report");
            }
            n = ll;
        } else if (n > max || r->data[pos + n - 1] != '\n') {
            fuzz_fail("lp_split chunk");
        }
        total += lp_count_lines(r->data + pos, n);
        pos += n;
    }
    if (total != r->points) {
        fuzz_fail("lp_split lost lines");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    enum lp_prec prec = (enum lp_prec)(data[0] % 6);
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    struct lp_result r, again;
    if (lp_process(in, len, prec, FUZZ_NOW_NS, &r) != 0) {
        fuzz_fail("lp_process failed");
    }
    if (r.buf == NULL && (r.data != in || r.len > len)) {
        fuzz_fail("zero-copy output is not a prefix of the input");
    }
    if ((r.dropped == 0) != (r.errors == NULL) || (r.points == 0 && r.len != 0)) {
        fuzz_fail("result fields disagree");
    }
    if (lp_process(r.data, r.len, prec, FUZZ_NOW_NS + 3600000000000LL, &again) != 0) {
        fuzz_fail("lp_process failed on its output");
    }
    if (again.points != r.points || again.dropped != 0 || again.stamped != 0 || again.buf != NULL ||
        again.data != r.data || again.len != r.len) {
        fuzz_fail("output does not re-parse as all valid and unchanged");
    }
    lp_result_cleanup(&again);
    char stamp[24];
    int sn = snprintf(stamp, sizeof(stamp), " %lld", (long long)lp_prec_from_ns(FUZZ_NOW_NS, prec));
    check_lines(in, len, &r, stamp, (size_t)sn);
    check_split(&r, len % 97);
    lp_result_cleanup(&r);
    return 0;
}
