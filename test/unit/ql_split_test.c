/* ql: where q is cut. Each case lists the pieces expected (they must reassemble to q) with the
 * kind of each: ';' inside strings, quoted identifiers, regex literals, comments, escapes, '\r'
 * as a newline, a NUL as the end, and the '/' that is a division. */
#include <string.h>

#include "check.h"
#include "ql/ql.h"

#define MAXP 4

struct scase {
    const char *q;
    size_t len; /* 0: strlen(q) */
    const char *piece[MAXP];
    enum ql_kind kind[MAXP];
};

#define U QL_KIND_SHOW_USERS
#define S QL_KIND_SELECT
#define E QL_KIND_EMPTY

static const struct scase cases[] = {
        {"CREATE DATABASE a; CREATE DATABASE b",
         0,
         {"CREATE DATABASE a;", " CREATE DATABASE b"},
         {QL_KIND_CREATE_DATABASE, QL_KIND_CREATE_DATABASE}},
        {"SHOW USERS;", 0, {"SHOW USERS;", NULL}, {U}},
        {"SHOW USERS; ", 0, {"SHOW USERS;", " "}, {U, E}},
        {";;SHOW USERS", 0, {";", ";", "SHOW USERS"}, {E, E, U}},
        /* strings and quoted identifiers */
        {"SELECT * FROM m WHERE t = 'a;b'; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t = 'a;b';", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM m WHERE t = 'it\\'s;x'; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t = 'it\\'s;x';", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM m WHERE t = 'a\\\\'; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t = 'a\\\\';", " SHOW USERS"},
         {S, U}},
        {"SELECT \"a;b\" FROM m; SHOW USERS", 0, {"SELECT \"a;b\" FROM m;", " SHOW USERS"}, {S, U}},
        {"SELECT \"a\\\";b\" FROM m; SHOW USERS",
         0,
         {"SELECT \"a\\\";b\" FROM m;", " SHOW USERS"},
         {S, U}},
        {"SELECT x\"a;b\" FROM m; SHOW USERS",
         0,
         {"SELECT x\"a;b\" FROM m;", " SHOW USERS"},
         {S, U}},
        {"SELECT '\";' FROM m; SHOW USERS", 0, {"SELECT '\";' FROM m;", " SHOW USERS"}, {S, U}},
        {"SELECT \"';\" FROM m; SHOW USERS", 0, {"SELECT \"';\" FROM m;", " SHOW USERS"}, {S, U}},
        /* a string ends at a newline ('\r' too) as an error, or at a bad escape */
        {"SELECT 'abc\n; SHOW USERS", 0, {"SELECT 'abc\n;", " SHOW USERS"}, {S, U}},
        {"SELECT 'abc\r; SHOW USERS", 0, {"SELECT 'abc\r;", " SHOW USERS"}, {S, U}},
        {"SELECT 'a\\x; SHOW USERS'", 0, {"SELECT 'a\\x;", " SHOW USERS'"}, {S, U}},
        {"SELECT 'abc; SHOW USERS", 0, {"SELECT 'abc; SHOW USERS"}, {S}},
        /* regex literals where influxd reads one */
        {"SELECT * FROM /a;b/; SHOW USERS", 0, {"SELECT * FROM /a;b/;", " SHOW USERS"}, {S, U}},
        {"SELECT * FROM m WHERE t =~ /x;y/ AND u !~ /;/; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t =~ /x;y/ AND u !~ /;/;", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM m WHERE t =~ /a\\/;b/; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t =~ /a\\/;b/;", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM m WHERE t =~ /a\\\\/;b/; SHOW USERS", /* "\\/" does not end it either */
         0,
         {"SELECT * FROM m WHERE t =~ /a\\\\/;b/;", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM \"db\".\"rp\"./a;b/; SHOW USERS",
         0,
         {"SELECT * FROM \"db\".\"rp\"./a;b/;", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM m, /a;b/; SHOW USERS",
         0,
         {"SELECT * FROM m, /a;b/;", " SHOW USERS"},
         {S, U}},
        {"SELECT v FROM m GROUP BY /t;/; SHOW USERS",
         0,
         {"SELECT v FROM m GROUP BY /t;/;", " SHOW USERS"},
         {S, U}},
        {"SELECT count(/v;/) FROM m; SHOW USERS",
         0,
         {"SELECT count(/v;/) FROM m;", " SHOW USERS"},
         {S, U}},
        {"SELECT /v;/ FROM m; SHOW USERS", 0, {"SELECT /v;/ FROM m;", " SHOW USERS"}, {S, U}},
        {"SELECT a, /v;/ FROM m; SHOW USERS", 0, {"SELECT a, /v;/ FROM m;", " SHOW USERS"}, {S, U}},
        {"SHOW MEASUREMENTS WITH MEASUREMENT =~ /a;b/; SHOW USERS",
         0,
         {"SHOW MEASUREMENTS WITH MEASUREMENT =~ /a;b/;", " SHOW USERS"},
         {QL_KIND_SHOW_MEASUREMENTS, U}},
        {"DELETE FROM /a;b/; SHOW USERS",
         0,
         {"DELETE FROM /a;b/;", " SHOW USERS"},
         {QL_KIND_DELETE, U}},
        /* a regex ends at a newline as an error; unterminated it runs to the end */
        {"SELECT * FROM /a\n; SHOW USERS", 0, {"SELECT * FROM /a\n;", " SHOW USERS"}, {S, U}},
        {"SELECT * FROM /a; SHOW USERS", 0, {"SELECT * FROM /a; SHOW USERS"}, {S}},
        /* influxd peeks for the regex's '/' after spaces only: after a comment it is a '/' */
        {"SELECT * FROM -- c\n/a;b/", 0, {"SELECT * FROM -- c\n/a;", "b/"}, {S, QL_KIND_INVALID}},
        /* ... and a block comment where a regex may start is read as a regex, as influxd does */
        {"SELECT a, /* c; */ b FROM m; SHOW USERS",
         0,
         {"SELECT a, /* c; */ b FROM m;", " SHOW USERS"},
         {S, U}},
        /* a '/' that is a division */
        {"SELECT a / 2 FROM m; SELECT b/c FROM m; SHOW USERS",
         0,
         {"SELECT a / 2 FROM m;", " SELECT b/c FROM m;", " SHOW USERS"},
         {S, S, U}},
        {"SELECT (a) /2 FROM m; SHOW USERS", 0, {"SELECT (a) /2 FROM m;", " SHOW USERS"}, {S, U}},
        {"SELECT a FROM m WHERE v = 4 /2; SHOW USERS",
         0,
         {"SELECT a FROM m WHERE v = 4 /2;", " SHOW USERS"},
         {S, U}},
        {"SELECT count (/2;/) FROM m", 0, {"SELECT count (/2;", "/) FROM m"}, {S, QL_KIND_INVALID}},
        /* comments */
        {"SHOW DATABASES -- a;b\n; SHOW USERS",
         0,
         {"SHOW DATABASES -- a;b\n;", " SHOW USERS"},
         {QL_KIND_SHOW_DATABASES, U}},
        {"SHOW DATABASES -- a;b\r; SHOW USERS",
         0,
         {"SHOW DATABASES -- a;b\r;", " SHOW USERS"},
         {QL_KIND_SHOW_DATABASES, U}},
        {"SHOW DATABASES -- a;b", 0, {"SHOW DATABASES -- a;b"}, {QL_KIND_SHOW_DATABASES}},
        {"SHOW DATABASES /* a;b */; SHOW USERS",
         0,
         {"SHOW DATABASES /* a;b */;", " SHOW USERS"},
         {QL_KIND_SHOW_DATABASES, U}},
        {"SHOW DATABASES /* a;b **/; SHOW USERS",
         0,
         {"SHOW DATABASES /* a;b **/;", " SHOW USERS"},
         {QL_KIND_SHOW_DATABASES, U}},
        {"SHOW DATABASES /* a;b", 0, {"SHOW DATABASES /* a;b"}, {QL_KIND_SHOW_DATABASES}},
        {"SHOW DATABASES - -; SHOW USERS",
         0,
         {"SHOW DATABASES - -;", " SHOW USERS"},
         {QL_KIND_SHOW_DATABASES, U}},
        /* parameters, numbers */
        {"SELECT * FROM m WHERE t = $t; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t = $t;", " SHOW USERS"},
         {S, U}},
        {"SELECT * FROM m WHERE t = $\"a;b\"; SHOW USERS",
         0,
         {"SELECT * FROM m WHERE t = $\"a;b\";", " SHOW USERS"},
         {S, U}},
        {"SELECT 1.; SELECT 1.5m; SHOW USERS",
         0,
         {"SELECT 1.;", " SELECT 1.5m;", " SHOW USERS"},
         {S, S, U}},
        /* a NUL ends influxd's reading: the rest belongs to the last piece */
        {"SHOW USERS\0; DROP DATABASE x", 28, {"SHOW USERS\0; DROP DATABASE x"}, {U}},
        {"SHOW USERS; \0DROP DATABASE x", 28, {"SHOW USERS;", " \0DROP DATABASE x"}, {U, E}},
        {"SELECT 'a\0;'; SHOW USERS", 25, {"SELECT 'a\0;'; SHOW USERS"}, {S}},
        /* Go spaces around q are not statements */
        {"\xC2\xA0SHOW USERS;\xC2\xA0", 0, {"\xC2\xA0SHOW USERS;", "\xC2\xA0"}, {U, E}},
        {"SHOW USERS;\xE2\x80\x83SHOW USERS",
         0,
         {"SHOW USERS;", "\xE2\x80\x83SHOW USERS"},
         {U, QL_KIND_INVALID}},
};

static void
run_case(size_t idx, const struct scase *c)
{
    size_t len = c->len > 0 ? c->len : strlen(c->q);
    struct ql_split s;
    struct ql_stmt st;
    size_t n = 0;
    size_t pos = 0;
    ql_split_init(&s, c->q, len);
    while (ql_split_next(&s, &st)) {
        CHECK(n < MAXP);
        if (n >= MAXP) {
            return;
        }
        CHECK_EQ_I64(st.off, pos); /* no gap, no overlap */
        pos += st.len;
        const char *want = c->piece[n];
        bool last = n + 1 == MAXP || c->piece[n + 1] == NULL;
        /* a case with a NUL: its last piece is the rest of q */
        size_t wlen = want == NULL ? 0 : (last && c->len > 0 ? len - st.off : strlen(want));
        CHECK(want != NULL);
        if (want == NULL || st.len != wlen || memcmp(c->q + st.off, want, wlen) != 0 ||
            st.kind != c->kind[n]) {
            fprintf(stderr, "case %zu piece %zu: got \"%.*s\" %s, want \"%s\" %s\n", idx, n,
                    (int)st.len, c->q + st.off, ql_kind_name(st.kind), want ? want : "(none)",
                    ql_kind_name(c->kind[n]));
            check_failures++;
        }
        n++;
    }
    CHECK_EQ_I64(pos, len);
    CHECK(n == MAXP || c->piece[n] == NULL);
}

static void
test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(i, &cases[i]);
    }
}

static void
test_empty(void)
{
    struct ql_split s;
    struct ql_stmt st;
    ql_split_init(&s, "", 0);
    CHECK(!ql_split_next(&s, &st));
}

int
main(void)
{
    test_cases();
    test_empty();
    return CHECK_DONE();
}
