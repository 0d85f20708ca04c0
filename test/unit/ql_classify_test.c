/* ql: one statement of every kind influxd 1.6.7 knows, classified; keyword traps; and the parse
 * error texts of statements no InfluxQL statement starts with, as a real influxd 1.6.7 wrote
 * them. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ql/ql.h"

struct kcase {
    const char *q;
    enum ql_kind kind;
};

static const struct kcase kind_cases[] = {
        {"SELECT * FROM cpu", QL_KIND_SELECT},
        {"select mean(value) from cpu where time > now() - 1h group by time(1m)", QL_KIND_SELECT},
        {"SELECT * INTO \"copy\" FROM cpu", QL_KIND_SELECT_INTO},
        {"SELECT mean(v) INTO db.rp.:MEASUREMENT FROM /.*/ GROUP BY *", QL_KIND_SELECT_INTO},
        {"select v into m2 from m", QL_KIND_SELECT_INTO},
        {"SELECT \"a\"INTO x FROM m", QL_KIND_SELECT_INTO},
        {"SELECT * INTO x FROM (SELECT mean(v) FROM m GROUP BY time(1m))", QL_KIND_SELECT_INTO},
        /* INTO that is not the keyword, or only inside a subquery (influxd ignores it there) */
        {"SELECT \"into\" FROM m", QL_KIND_SELECT},
        {"SELECT a_into, into_b FROM m", QL_KIND_SELECT},
        {"SELECT * FROM m WHERE t = 'INTO x'", QL_KIND_SELECT},
        {"SELECT * FROM m WHERE t =~ /INTO x/", QL_KIND_SELECT},
        {"SELECT * FROM m WHERE t =~ /a\\/INTO/", QL_KIND_SELECT},
        {"SELECT * FROM /INTO/", QL_KIND_SELECT},
        {"SELECT * FROM (SELECT v INTO x FROM m)", QL_KIND_SELECT},
        {"SELECT v -- INTO x\nFROM m", QL_KIND_SELECT},
        {"SELECT v /* INTO x */ FROM m", QL_KIND_SELECT},
        {"SELECT * FROM m WHERE t = $into", QL_KIND_SELECT},
        {"EXPLAIN SELECT * FROM m", QL_KIND_EXPLAIN},
        {"EXPLAIN ANALYZE SELECT * FROM m", QL_KIND_EXPLAIN},
        {"EXPLAIN SELECT v INTO x FROM m", QL_KIND_EXPLAIN},
        {"DELETE FROM cpu WHERE time < '2000-01-01T00:00:00Z'", QL_KIND_DELETE},
        {"DELETE WHERE time < '2000-01-01T00:00:00Z'", QL_KIND_DELETE},
        {"SHOW CONTINUOUS QUERIES", QL_KIND_SHOW_CONTINUOUS_QUERIES},
        {"SHOW DATABASES", QL_KIND_SHOW_DATABASES},
        {"SHOW DIAGNOSTICS", QL_KIND_SHOW_DIAGNOSTICS},
        {"SHOW FIELD KEY CARDINALITY", QL_KIND_SHOW_FIELD_KEY_CARDINALITY},
        {"SHOW FIELD KEY EXACT CARDINALITY ON db", QL_KIND_SHOW_FIELD_KEY_CARDINALITY},
        {"SHOW FIELD KEYS FROM cpu", QL_KIND_SHOW_FIELD_KEYS},
        {"SHOW GRANTS FOR \"jdoe\"", QL_KIND_SHOW_GRANTS},
        {"SHOW MEASUREMENT EXACT CARDINALITY", QL_KIND_SHOW_MEASUREMENT_EXACT_CARDINALITY},
        {"SHOW MEASUREMENT CARDINALITY ON db", QL_KIND_SHOW_MEASUREMENT_CARDINALITY},
        {"SHOW MEASUREMENTS WITH MEASUREMENT =~ /cpu;.*/ LIMIT 5", QL_KIND_SHOW_MEASUREMENTS},
        {"SHOW QUERIES", QL_KIND_SHOW_QUERIES},
        {"SHOW RETENTION POLICIES ON db", QL_KIND_SHOW_RETENTION_POLICIES},
        {"SHOW SERIES FROM cpu WHERE host = 'a'", QL_KIND_SHOW_SERIES},
        {"SHOW SERIES EXACT CARDINALITY", QL_KIND_SHOW_SERIES},
        {"SHOW SHARD GROUPS", QL_KIND_SHOW_SHARD_GROUPS},
        {"SHOW SHARDS", QL_KIND_SHOW_SHARDS},
        {"SHOW STATS FOR 'indexes'", QL_KIND_SHOW_STATS},
        {"SHOW SUBSCRIPTIONS", QL_KIND_SHOW_SUBSCRIPTIONS},
        {"SHOW TAG KEY CARDINALITY", QL_KIND_SHOW_TAG_KEY_CARDINALITY},
        {"SHOW TAG KEYS FROM /c;pu/", QL_KIND_SHOW_TAG_KEYS},
        {"SHOW TAG VALUES WITH KEY = \"host\"", QL_KIND_SHOW_TAG_VALUES},
        {"SHOW TAG VALUES CARDINALITY WITH KEY = \"host\"", QL_KIND_SHOW_TAG_VALUES},
        {"SHOW USERS", QL_KIND_SHOW_USERS},
        {"CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT mean(v) INTO m2 FROM m GROUP BY time(1h) "
         "END",
         QL_KIND_CREATE_CONTINUOUS_QUERY},
        {"CREATE DATABASE \"d\" WITH DURATION 1d", QL_KIND_CREATE_DATABASE},
        {"CREATE USER jdoe WITH PASSWORD 'x;y' WITH ALL PRIVILEGES", QL_KIND_CREATE_USER},
        {"CREATE RETENTION POLICY rp ON db DURATION 1h REPLICATION 1 DEFAULT",
         QL_KIND_CREATE_RETENTION_POLICY},
        {"CREATE SUBSCRIPTION s ON db.rp DESTINATIONS ALL 'udp://h:9090'",
         QL_KIND_CREATE_SUBSCRIPTION},
        {"DROP CONTINUOUS QUERY cq ON db", QL_KIND_DROP_CONTINUOUS_QUERY},
        {"DROP DATABASE d", QL_KIND_DROP_DATABASE},
        {"DROP MEASUREMENT m", QL_KIND_DROP_MEASUREMENT},
        {"DROP RETENTION POLICY rp ON db", QL_KIND_DROP_RETENTION_POLICY},
        {"DROP SERIES FROM m WHERE t = 'x'", QL_KIND_DROP_SERIES},
        {"DROP SHARD 1", QL_KIND_DROP_SHARD},
        {"DROP SUBSCRIPTION s ON db.rp", QL_KIND_DROP_SUBSCRIPTION},
        {"DROP USER jdoe", QL_KIND_DROP_USER},
        {"GRANT ALL TO jdoe", QL_KIND_GRANT},
        {"GRANT READ ON db TO jdoe", QL_KIND_GRANT},
        {"REVOKE ALL PRIVILEGES FROM jdoe", QL_KIND_REVOKE},
        {"ALTER RETENTION POLICY rp ON db DURATION 2h DEFAULT", QL_KIND_ALTER_RETENTION_POLICY},
        {"SET PASSWORD FOR jdoe = 'p;q'", QL_KIND_SET_PASSWORD},
        {"KILL QUERY 36 ON \"host:8086\"", QL_KIND_KILL_QUERY},
        /* keywords: any case, comments between them */
        {"sHoW dAtAbAsEs", QL_KIND_SHOW_DATABASES},
        {"SHOW /* x */ DATABASES", QL_KIND_SHOW_DATABASES},
        {"SHOW -- x\nDATABASES", QL_KIND_SHOW_DATABASES},
        {"\t\r\n SHOW\r\nDATABASES\n", QL_KIND_SHOW_DATABASES},
        {"\xC2\xA0SHOW USERS\xE3\x80\x80", QL_KIND_SHOW_USERS}, /* Go's TrimSpace */
        /* no statement starts so */
        {"FOO", QL_KIND_INVALID},
        {"SHOW", QL_KIND_INVALID},
        {"SHOW FOO", QL_KIND_INVALID},
        {"\"SHOW\" DATABASES", QL_KIND_INVALID},
        {"SHOW\"x\"", QL_KIND_INVALID},
        {"SHOW\"DATABASES\"", QL_KIND_INVALID},
        {"SHOW_DATABASES", QL_KIND_INVALID},
        {"CREATE", QL_KIND_INVALID},
        {"DROP SHARDS", QL_KIND_INVALID},
        {"SET PASSWORD jdoe = 'p'", QL_KIND_INVALID},
        {"KILL QUERIES", QL_KIND_INVALID},
        {"INSERT cpu v=1", QL_KIND_INVALID},
        {"1", QL_KIND_INVALID},
        {"'SELECT'", QL_KIND_INVALID},
        {"$SELECT", QL_KIND_INVALID},
        {"(SELECT * FROM m)", QL_KIND_INVALID},
        {"\xC2\x85SELECT", QL_KIND_SELECT}, /* U+0085 is a Go space */
        {"\x0bSELECT", QL_KIND_SELECT},     /* so is \v, at the ends only */
        {"SHOW\x0b DATABASES", QL_KIND_INVALID},
        /* nothing at all */
        {"", QL_KIND_EMPTY},
        {"  \n ", QL_KIND_EMPTY},
        {"-- c", QL_KIND_EMPTY},
        {"/* c */", QL_KIND_EMPTY},
};

static void
test_kinds(void)
{
    for (size_t i = 0; i < sizeof(kind_cases) / sizeof(kind_cases[0]); i++) {
        const struct kcase *c = &kind_cases[i];
        size_t len = strlen(c->q);
        struct ql_split s;
        struct ql_stmt st = {.kind = QL_KIND_INVALID};
        ql_split_init(&s, c->q, len);
        bool got = ql_split_next(&s, &st);
        CHECK(got || len == 0);
        if (!got) {
            st.kind = QL_KIND_EMPTY;
        }
        if (st.kind != c->kind) {
            fprintf(stderr, "case %zu %s: got %s, want %s\n", i, c->q, ql_kind_name(st.kind),
                    ql_kind_name(c->kind));
        }
        CHECK_EQ_I64(st.kind, c->kind);
        CHECK(!ql_split_next(&s, &st));
    }
}

/* influxd reads a NUL as the end of q. */
static void
test_nul(void)
{
    struct ql_split s;
    struct ql_stmt st;
    ql_split_init(&s, "\0SELECT", 7);
    CHECK(ql_split_next(&s, &st));
    CHECK_EQ_I64(st.kind, QL_KIND_EMPTY);
    CHECK_EQ_I64(st.len, 7);
    CHECK(!ql_split_next(&s, &st));
}

static void
test_classes(void)
{
    /* Every kind has a class and a name; the per-server ones are LOCAL. */
    for (int k = 0; k < QL_KIND_COUNT; k++) {
        CHECK(ql_kind_name((enum ql_kind)k) != NULL);
    }
    CHECK_EQ_I64(ql_kind_class(QL_KIND_SELECT), QL_READ);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_EXPLAIN), QL_READ);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_SHOW_SUBSCRIPTIONS), QL_READ);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_SHOW_GRANTS), QL_READ);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_SELECT_INTO), QL_CHANGE);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_DELETE), QL_CHANGE);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_CREATE_SUBSCRIPTION), QL_CHANGE);
    CHECK_EQ_I64(ql_kind_class(QL_KIND_SET_PASSWORD), QL_CHANGE);
    static const enum ql_kind local[] = {
            QL_KIND_KILL_QUERY,        QL_KIND_SHOW_QUERIES, QL_KIND_SHOW_SHARDS,
            QL_KIND_SHOW_SHARD_GROUPS, QL_KIND_SHOW_STATS,   QL_KIND_SHOW_DIAGNOSTICS,
            QL_KIND_DROP_SHARD,
    };
    int n_local = 0;
    for (int k = 0; k < QL_KIND_COUNT; k++) {
        n_local += ql_kind_class((enum ql_kind)k) == QL_LOCAL;
    }
    CHECK_EQ_I64(n_local, sizeof(local) / sizeof(local[0]));
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        CHECK_EQ_I64(ql_kind_class(local[i]), QL_LOCAL);
    }
    CHECK_STREQ(ql_kind_name(QL_KIND_SHOW_SHARD_GROUPS), "SHOW SHARD GROUPS");
    CHECK_STREQ(ql_kind_name(QL_KIND_SELECT_INTO), "SELECT INTO");
    CHECK(QL_KIND_COUNT <= 64);
}

static void
test_summary(void)
{
    struct ql_summary s;
    const char *q = "CREATE DATABASE a; CREATE RETENTION POLICY r ON a DURATION 1d REPLICATION 1;";
    ql_summarize(q, strlen(q), &s);
    CHECK_EQ_I64(s.n_change, 2);
    CHECK_EQ_I64(s.n_read + s.n_local + s.n_invalid, 0);
    CHECK(s.kinds & (1ULL << QL_KIND_CREATE_DATABASE));
    CHECK(!(s.kinds & (1ULL << QL_KIND_EMPTY))); /* nothing after the last ';' */

    q = "SELECT * FROM m; SHOW SHARDS; KILL QUERY 1; FOO; BAR";
    ql_summarize(q, strlen(q), &s);
    CHECK_EQ_I64(s.n_read, 1);
    CHECK_EQ_I64(s.n_local, 2);
    CHECK_EQ_I64(s.n_invalid, 2);
    CHECK_EQ_I64(s.first_invalid.off, 43); /* " FOO;" */
    CHECK_EQ_I64(s.first_invalid.len, 5);

    ql_summarize(";;", 2, &s);
    CHECK_EQ_I64(s.n_read + s.n_change + s.n_local + s.n_invalid, 0);
}

struct ecase {
    const char *q;
    const char *want;
};

#define TOP "expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL"
#define SHOW                                                                                       \
    "expected CONTINUOUS, DATABASES, DIAGNOSTICS, FIELD, GRANTS, MEASUREMENT, MEASUREMENTS, "      \
    "QUERIES, RETENTION, SERIES, SHARD, SHARDS, STATS, SUBSCRIPTIONS, TAG, USERS"

/* Each want is what influxd 1.6.7 answered (after "error parsing query: "). */
static const struct ecase error_cases[] = {
        {"FOO", "found FOO, " TOP " at line 1, char 1"},
        {"SHOW", "found EOF, " SHOW " at line 1, char 6"},
        {"  SHOW  ", "found EOF, " SHOW " at line 1, char 6"},
        {"SHOW FOO", "found FOO, " SHOW " at line 1, char 6"},
        {"SHOW;", "found ;, " SHOW " at line 1, char 5"},
        {"show databases; show x", "found x, " SHOW " at line 1, char 22"},
        {"SHOW DATABASES;\n  SHOW \"x\"", "found x, " SHOW " at line 2, char 8"},
        {"SHOW\"x\"", "found x, " TOP " at line 1, char 1"},
        {"'abc'", "found abc, " TOP " at line 1, char 1"},
        {"\"ab\\\"c\"", "found ab\"c, " TOP " at line 1, char 1"},
        {"5m", "found 5m, " TOP " at line 1, char 1"},
        {"<>", "found !=, " TOP " at line 1, char 1"},
        {"!", "found !, " TOP " at line 1, char 1"},
        {"\xC3\xA9", "found \xC3\xA9, " TOP " at line 1, char 1"},
        {"\xC3\xA9\xC3\xA9 SHOW", "found \xC3\xA9, " TOP " at line 1, char 1"},
        {"true", "found TRUE, " TOP " at line 1, char 1"},
        {"SHOW MEASUREMENT", "found EOF, expected EXACT, CARDINALITY at line 1, char 18"},
        {"DROP x", "found x, expected CONTINUOUS, DATABASE, MEASUREMENT, RETENTION, SERIES, SHARD, "
                   "SUBSCRIPTION, USER at line 1, char 6"},
        {"SET PASSWORD", "found EOF, expected FOR at line 1, char 14"},
        {"KILL", "found EOF, expected QUERY at line 1, char 6"},
        {"SHOW\r\n\r\nFOO", "found FOO, " SHOW " at line 3, char 1"},
        {"SHOW\rFOO", "found FOO, " SHOW " at line 2, char 1"},
        {"SHOW -- c", "found EOF, " SHOW " at line 1, char 11"},
        {"SHOW /* c */", "found EOF, " SHOW " at line 1, char 13"},
        {"SHOW \xC3\xA9", "found \xC3\xA9, " SHOW " at line 1, char 6"},
        {"SHOW $x", "found $x, " SHOW " at line 1, char 6"},
        {"SHOW $\"x\"", "found $x, " SHOW " at line 1, char 6"},
        {"SHOW 1.5", "found 1.5, " SHOW " at line 1, char 6"},
        {"SHOW .5", "found .5, " SHOW " at line 1, char 6"},
        {"SHOW 'a\\nb'", "found a\nb, " SHOW " at line 1, char 5"},
        {"SHOW /*", "found ILLEGAL, " SHOW " at line 1, char 6"},
        {"SHOW 'abc", "found abc, " SHOW " at line 1, char 5"},
        {"SHOW :: x", "found ::, " SHOW " at line 1, char 6"},
        {"SHOW `x`", "found `, " SHOW " at line 1, char 6"},
};

static void
test_errors(void)
{
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        const struct ecase *c = &error_cases[i];
        struct ql_summary s;
        ql_summarize(c->q, strlen(c->q), &s);
        CHECK_EQ_I64(s.n_invalid, 1);
        struct dbuf b;
        dbuf_init(&b, 4096);
        ql_error(c->q, strlen(c->q), &s.first_invalid, &b);
        size_t n = 0;
        char *got = dbuf_finish(&b, &n);
        CHECK_STREQ(got, c->want);
        free(got);
    }
}

int
main(void)
{
    test_kinds();
    test_nul();
    test_classes();
    test_summary();
    test_errors();
    return CHECK_DONE();
}
