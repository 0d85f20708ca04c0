/* libFuzzer target for ql/: ql_split, ql_summarize and ql_error on arbitrary bytes. Checks,
 * besides ASan/UBSan:
 * - the pieces reassemble to the input: each starts where the previous ended, none is empty,
 *   the last ends at the end of the input, every other one ends with its ';';
 * - a piece that holds no NUL and no byte >= 0x80, split on its own, gives itself back with the
 *   same kind (a statement's kind depends on its own bytes only);
 * - ql_summarize() counts what the split gives;
 * - ql_error() on every INVALID piece writes "found ..., expected ... at line L, char C".
 * The ql source is compiled into this target so that it gets ASan and UBSan along with the
 * coverage instrumentation (see lp_fuzz.c); ir_ql's copy is then never linked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ql/ql.c" /* NOLINT(bugprone-suspicious-include): see above */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what)
{
    fprintf(stderr, "ql_fuzz: invariant broken: %s\n", what);
    abort();
}

static bool
plain_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0' || (unsigned char)s[i] >= 0x80 || (s[i] >= '\t' && s[i] <= '\r')) {
            return false; /* NUL, Go spaces trimmed only at the ends of q */
        }
    }
    return true;
}

static void
check_alone(const char *q, const struct ql_stmt *st)
{
    struct ql_split s;
    struct ql_stmt again;
    if (!plain_ascii(q + st->off, st->len)) {
        return;
    }
    ql_split_init(&s, q + st->off, st->len);
    if (!ql_split_next(&s, &again) || again.len != st->len || again.kind != st->kind) {
        fuzz_fail("a piece split alone differs");
    }
    if (ql_split_next(&s, &again)) {
        fuzz_fail("a piece split alone gives two");
    }
}

static void
check_error(const char *q, size_t len, const struct ql_stmt *st)
{
    struct dbuf b;
    dbuf_init(&b, DBUF_NO_BOUND);
    ql_error(q, len, st, &b);
    size_t n = 0;
    char *msg = dbuf_finish(&b, &n);
    if (msg == NULL || strncmp(msg, "found ", 6) != 0 || strstr(msg, ", expected ") == NULL ||
        strstr(msg, " at line ") == NULL) {
        fuzz_fail("ql_error text");
    }
    free(msg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *q = (const char *)data;
    struct ql_split s;
    struct ql_stmt st;
    struct ql_summary sum;
    size_t pos = 0;
    size_t counts[5] = {0};
    ql_split_init(&s, q, size);
    while (ql_split_next(&s, &st)) {
        if (st.off != pos || st.len == 0 || st.kind >= QL_KIND_COUNT) {
            fuzz_fail("pieces do not follow each other");
        }
        pos += st.len;
        if (pos < size && q[pos - 1] != ';') {
            fuzz_fail("a piece before the last does not end with ';'");
        }
        counts[ql_kind_class(st.kind)]++;
        check_alone(q, &st);
        if (st.kind == QL_KIND_INVALID) {
            check_error(q, size, &st);
        }
    }
    if (pos != size) {
        fuzz_fail("the pieces do not cover the input");
    }
    ql_summarize(q, size, &sum);
    if (sum.n_read != counts[QL_READ] || sum.n_change != counts[QL_CHANGE] ||
        sum.n_local != counts[QL_LOCAL] || sum.n_invalid != counts[QL_INVALID]) {
        fuzz_fail("ql_summarize counts differ from the split");
    }
    return 0;
}
