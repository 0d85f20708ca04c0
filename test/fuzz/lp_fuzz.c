/* libFuzzer target for lp/: lp_process() and lp_split() on arbitrary bytes.
 * Input: first byte = precision (mod 6), the rest = the body. Checks, besides ASan/UBSan:
 * - the output re-parses as all valid, needs no stamp and comes back zero-copy, same points;
 * - a zero-copy output is a prefix of the input;
 * - every output line is an input line (as lp_scan_line cuts them, the cut itself being checked
 *   against influxd by the corpus), in order, verbatim or followed by exactly the stamp,
 *   and len(out) == len(in) + stamped * len(stamp) - skipped + added, where skipped is the
 *   input bytes left out (invalid, blank and comment lines with their '\n') and added the
 *   '\n' given to a last line that had none;
 * - lp_split() cuts the output into chunks of at most max bytes at line ends, and a line alone
 *   longer than max is reported with its exact length;
 * - the fast path (lp/fast.h) changes nothing: the same body processed without it gives the
 *   same result, byte for byte, errors included. (The fuzz build has its base build only: the
 *   AVX2 build differs in one function, held to the base one by unit.lp_fast.)
 * The lp sources are compiled into this target so that they get ASan and UBSan along with the
 * coverage instrumentation (a RELAY_FUZZ build gives libraries only -fsanitize=fuzzer-no-link
 * unless RELAY_SANITIZE is set too); ir_lp's copies are then never linked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp/fast.c" /* NOLINT(bugprone-suspicious-include): see above */
#include "lp/lp.c"   /* NOLINT(bugprone-suspicious-include) */
#include "lp/scan.c" /* NOLINT(bugprone-suspicious-include) */

#define FUZZ_NOW_NS 1700000000123456789LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what)
{
    fprintf(stderr, "lp_fuzz: invariant broken: %s\n", what);
    abort();
}

/* Matches every output line, in order, to an input line (as lp_scan_line cuts them): its content
 * verbatim, or followed by exactly the stamp. Counts points and stamps, and checks
 * len(out) == len(in) + stamped * len(stamp) - skipped + added. */
static void
check_lines(const char *in, size_t len, const struct lp_result *r, const char *stamp,
            size_t stamp_len)
{
    size_t ipos = 0, skipped = 0, added = 0, stamped = 0, lines = 0;
    for (size_t pos = 0; pos < r->len; lines++) {
        size_t ll = 0;
        if (lp_split(r->data + pos, r->len - pos, 0, &ll) != 0 || ll == 0 ||
            r->data[pos + ll - 1] != '\n') {
            fuzz_fail("output line not cut as expected");
        }
        const char *line = r->data + pos;
        size_t n = ll - 1;
        for (;;) {
            if (ipos >= len) {
                fuzz_fail("output line not found in the input");
            }
            struct lp_line ln;
            lp_scan_line(in, len, ipos, &ln);
            size_t e = ln.end > ln.start && in[ln.end - 1] == '\n' ? ln.end - 1 : ln.end;
            size_t cl = e - ln.start;
            bool same = cl <= n && memcmp(in + ln.start, line, cl) == 0;
            bool verbatim = same && cl == n;
            bool with_stamp =
                    same && cl + stamp_len == n && memcmp(line + cl, stamp, stamp_len) == 0;
            ipos = ln.next;
            if (!verbatim && !with_stamp) {
                skipped += ln.next - ln.start;
                continue;
            }
            stamped += with_stamp;
            if (cl + 1 < ln.next - ln.start || cl + 1 > ln.next - ln.start + 1) {
                fuzz_fail("line end bookkeeping");
            }
            added += cl + 1 - (ln.next - ln.start);
            break;
        }
        pos += ll;
    }
    skipped += len - ipos;
    if (lines != r->points || stamped != r->stamped) {
        fuzz_fail("line or stamp count");
    }
    if (r->len + skipped != len + r->stamped * stamp_len + added) {
        fuzz_fail("length equation");
    }
}

static void
check_same(const struct lp_result *a, const struct lp_result *b)
{
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0 ||
        (a->buf == NULL) != (b->buf == NULL) || a->points != b->points ||
        a->stamped != b->stamped || a->dropped != b->dropped || a->errors_len != b->errors_len ||
        (a->errors == NULL) != (b->errors == NULL) ||
        (a->errors != NULL && memcmp(a->errors, b->errors, a->errors_len) != 0) ||
        a->errors_truncated != b->errors_truncated || a->first_error_len != b->first_error_len) {
        fuzz_fail("the fast path changed the result");
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
    struct lp_result slow;
    if (lp_process_mode(in, len, prec, FUZZ_NOW_NS, LP_FAST_NONE, &slow) != 0) {
        fuzz_fail("lp_process without the fast path failed");
    }
    check_same(&r, &slow);
    lp_result_cleanup(&slow);
    char stamp[24];
    int sn = snprintf(stamp, sizeof(stamp), " %lld", (long long)lp_prec_from_ns(FUZZ_NOW_NS, prec));
    check_lines(in, len, &r, stamp, (size_t)sn);
    check_split(&r, len % 97);
    lp_result_cleanup(&r);
    return 0;
}
