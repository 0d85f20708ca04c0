/* InfluxQL statements of a /query `q`: split on ';' and classified by their keywords exactly as
 * influxd 1.6.7's scanner (influxql 1.1.0) cuts them: single-quoted strings, double-quoted
 * identifiers, regex literals where its parser reads one, `--` and block comments, its escapes,
 * '\r' read as a newline, a NUL read as the end, leading and trailing Unicode spaces trimmed.
 * Pure: no I/O, no globals, no allocation (a split is a cursor over the caller's bytes; only
 * ql_error() appends to the caller's buffer). Any thread. */
#ifndef IR_QL_QL_H
#define IR_QL_QL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/dbuf.h"

/* What a statement does, which decides where the relay sends it. */
enum ql_class {
    QL_EMPTY,   /* nothing but spaces and comments (influxd skips it) */
    QL_READ,    /* reads: one caught-up backend answers */
    QL_CHANGE,  /* changes state on a server: every backend, through its write queue */
    QL_LOCAL,   /* about one server only (ids, running queries, its stats): not relayed */
    QL_INVALID, /* no InfluxQL statement starts so: influxd would refuse the whole q */
};

/* Every statement of influxd 1.6.7 (its parse tree), plus SELECT INTO, EMPTY and INVALID.
 * At most 64 kinds (struct ql_summary keeps a bit per kind). */
enum ql_kind {
    QL_KIND_EMPTY,
    QL_KIND_INVALID,
    QL_KIND_SELECT,
    QL_KIND_SELECT_INTO,
    QL_KIND_DELETE,
    QL_KIND_SHOW_CONTINUOUS_QUERIES,
    QL_KIND_SHOW_DATABASES,
    QL_KIND_SHOW_DIAGNOSTICS,
    QL_KIND_SHOW_FIELD_KEY_CARDINALITY,
    QL_KIND_SHOW_FIELD_KEYS,
    QL_KIND_SHOW_GRANTS,
    QL_KIND_SHOW_MEASUREMENT_EXACT_CARDINALITY,
    QL_KIND_SHOW_MEASUREMENT_CARDINALITY,
    QL_KIND_SHOW_MEASUREMENTS,
    QL_KIND_SHOW_QUERIES,
    QL_KIND_SHOW_RETENTION_POLICIES,
    QL_KIND_SHOW_SERIES,
    QL_KIND_SHOW_SHARD_GROUPS,
    QL_KIND_SHOW_SHARDS,
    QL_KIND_SHOW_STATS,
    QL_KIND_SHOW_SUBSCRIPTIONS,
    QL_KIND_SHOW_TAG_KEY_CARDINALITY,
    QL_KIND_SHOW_TAG_KEYS,
    QL_KIND_SHOW_TAG_VALUES,
    QL_KIND_SHOW_USERS,
    QL_KIND_CREATE_CONTINUOUS_QUERY,
    QL_KIND_CREATE_DATABASE,
    QL_KIND_CREATE_USER,
    QL_KIND_CREATE_RETENTION_POLICY,
    QL_KIND_CREATE_SUBSCRIPTION,
    QL_KIND_DROP_CONTINUOUS_QUERY,
    QL_KIND_DROP_DATABASE,
    QL_KIND_DROP_MEASUREMENT,
    QL_KIND_DROP_RETENTION_POLICY,
    QL_KIND_DROP_SERIES,
    QL_KIND_DROP_SHARD,
    QL_KIND_DROP_SUBSCRIPTION,
    QL_KIND_DROP_USER,
    QL_KIND_EXPLAIN,
    QL_KIND_GRANT,
    QL_KIND_REVOKE,
    QL_KIND_ALTER_RETENTION_POLICY,
    QL_KIND_SET_PASSWORD,
    QL_KIND_KILL_QUERY,
    QL_KIND_COUNT
};

/* Its class (see the table in ql.c for why each kind is where it is). */
enum ql_class ql_kind_class(enum ql_kind k);
/* Its keywords as influxd spells them: "SHOW SHARD GROUPS", "SELECT INTO", "EMPTY". Static. */
const char *ql_kind_name(enum ql_kind k);

/* One piece of q: q[off, off + len). Pieces cover q with no gap and no overlap; each ends just
 * after its ';' except the last, which runs to the end of q (so a NUL and what follows it, or
 * trailing spaces, belong to the last piece). */
struct ql_stmt {
    size_t off;
    size_t len;
    enum ql_kind kind;
};

/* A cursor over q (caller storage; q borrowed, must outlive it). */
struct ql_split {
    const char *q;
    size_t len;   /* bytes of q */
    size_t start; /* influxd's view starts here (leading spaces trimmed) */
    size_t end;   /* and ends here (trailing spaces trimmed, or the first NUL) */
    size_t pos;   /* start of the next piece */
};

void ql_split_init(struct ql_split *s, const char *q, size_t len);
/* Fills *st with the next piece and returns true; false when q is exhausted. */
bool ql_split_next(struct ql_split *s, struct ql_stmt *st);

/* The statements of a whole q, by class (empty pieces are not counted). */
struct ql_summary {
    size_t n_read;
    size_t n_change;
    size_t n_local;
    size_t n_invalid;
    uint64_t kinds;               /* bit k set when a statement of kind k is in q */
    struct ql_stmt first_invalid; /* valid when n_invalid > 0 */
};

void ql_summarize(const char *q, size_t len, struct ql_summary *out);

/* For an INVALID piece st of q: appends influxd 1.6.7's parse error text, e.g. "found FOO,
 * expected SELECT, DELETE, SHOW, ... at line 1, char 1" (without its "error parsing query: "
 * prefix; not JSON-escaped). */
void ql_error(const char *q, size_t len, const struct ql_stmt *st, struct dbuf *out);

#endif
