#include "ql/ql.h"

#include <string.h>
#include <strings.h>

#include "util/err.h"
#include "util/json.h"

/* DESIGN. influxd 1.6.7 (influxql 1.1.0) parses q statement by statement: a statement is the
 * tokens its parser reads, then a ';' or the end must follow. Its scanner only ever returns ';'
 * as a token of its own, so cutting q at the ';' tokens gives influxd's statements whenever q is
 * valid. What must be scanned exactly is what can hide a ';': single-quoted strings and
 * double-quoted identifiers (escapes \n \\ \" \'; a newline ends them as an error), `--`
 * comments (to the newline) and block comments (to the first star-slash, or the end as an
 * error), and regex literals. The scanner reads a regex only where the parser asks for one (it
 * peeks the next rune for '/'): after =~ and !~, at the start of a field (after SELECT or a
 * comma), of a source (after FROM or a comma, or right after the '.' of db.rp.), of a dimension
 * (after BY or a comma) and of a call argument (after the '(' that follows a name, or a comma).
 * Spaces may precede the '/' there, a comment may not (the parser then sees DIV). Inside a
 * regex, "\/" does not end it and a newline ends it as an error. So a '/' after a comma is
 * always a regex here (elsewhere after a comma it is a parse error for influxd anyway), and
 * "SELECT a, /""* c *""/ b" is a regex, as influxd reads it (it then fails to compile it).
 * Where this reading differs from influxd's, the query is one influxd refuses anyway.
 *
 * A statement is classified by its first keywords, against influxd's parse tree (the table
 * below lists it in influxd's order, so the "expected" list of an error is influxd's), and a
 * SELECT becomes SELECT INTO when an INTO keyword stands outside parentheses (influxd ignores
 * an INTO inside a subquery: the statement then only reads). */

/* Tokens of influxd's scanner, as far as splitting and classifying need them. */
enum tok_type {
    TK_END,
    TK_WS,
    TK_COMMENT,
    TK_WORD,   /* a bare identifier or keyword */
    TK_QIDENT, /* "quoted", or bare"quoted" (influxd's scanner joins them: never a keyword) */
    TK_STRING,
    TK_BADSTRING, /* a quoted string or identifier ended by a newline or the end */
    TK_BADESCAPE, /* one with a bad escape: it ends after the escape */
    TK_NUMBER,    /* integer, number or duration */
    TK_PARAM,     /* $name */
    TK_REGEX,
    TK_SEMI,
    TK_COMMA,
    TK_DOT,
    TK_LPAREN,
    TK_RPAREN,
    TK_EQREGEX,
    TK_NEQREGEX,
    TK_OP,      /* any other operator */
    TK_ILLEGAL, /* one rune influxd does not know, or an unterminated block comment */
};

struct tok {
    enum tok_type t;
    size_t off;
    size_t len;
};

/* Where a '/' starts a regex literal. */
enum regex_pos { REGEX_NO, REGEX_AFTER_SPACES, REGEX_RIGHT_HERE };

struct lex {
    const char *q;
    size_t pos;
    size_t end;
    enum regex_pos regex;
    enum tok_type prev; /* the last token that is not a space */
    size_t prev_end;    /* its end */
    bool ate_end;       /* the last token read the end (influxd then places EOF one rune further) */
};

static bool
is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_ident(char c)
{
    return is_letter(c) || is_digit(c) || c == '_';
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* influxd reads "\r\n" and a lone '\r' as one '\n'. Bytes of the newline at i, or 0. */
static size_t
newline_len(const char *q, size_t i, size_t end)
{
    if (q[i] == '\n') {
        return 1;
    }
    if (q[i] == '\r') {
        return i + 1 < end && q[i + 1] == '\n' ? 2 : 1;
    }
    return 0;
}

/* Bytes of the rune at i (an invalid byte is a rune of its own, as Go reads it). */
static size_t
rune_len(const char *q, size_t i, size_t end)
{
    size_t n = utf8_seq_len((const unsigned char *)q + i, end - i);
    return n > 0 ? n : 1;
}

/* 'µ' (U+00B5), which influxd accepts in duration units. */
static bool
is_micro(const char *q, size_t i, size_t end)
{
    return i + 1 < end && (unsigned char)q[i] == 0xC2 && (unsigned char)q[i + 1] == 0xB5;
}

static bool
word_is(const char *q, const struct tok *t, const char *kw)
{
    size_t n = strlen(kw);
    return t->t == TK_WORD && t->len == n && strncasecmp(q + t->off, kw, n) == 0;
}

/* A quoted string or identifier from its opening quote at i (influxd's ScanString). */
static enum tok_type
scan_quoted(struct lex *lx, size_t i)
{
    const char *q = lx->q;
    char quote = q[i++];
    while (i < lx->end) {
        size_t nl = newline_len(q, i, lx->end);
        if (q[i] == quote) {
            lx->pos = i + 1;
            return TK_STRING;
        }
        if (nl > 0) {
            lx->pos = i + nl;
            return TK_BADSTRING;
        }
        if (q[i] != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= lx->end) {
            break;
        }
        char e = q[i + 1];
        if (e == 'n' || e == '\\' || e == '"' || e == '\'') {
            i += 2;
            continue;
        }
        size_t w = newline_len(q, i + 1, lx->end);
        lx->pos = i + 1 + (w > 0 ? w : rune_len(q, i + 1, lx->end));
        return TK_BADESCAPE;
    }
    lx->pos = lx->end;
    lx->ate_end = true;
    return i < lx->end ? TK_BADESCAPE : TK_BADSTRING; /* a '\\' last, or no end */
}

/* A regex literal from its opening '/' at i (influxd's ScanDelimited with '/' escapable). */
static void
scan_regex(struct lex *lx, size_t i)
{
    const char *q = lx->q;
    for (i++; i < lx->end; i++) {
        size_t nl = newline_len(q, i, lx->end);
        if (q[i] == '/' || nl > 0) {
            lx->pos = i + (nl > 0 ? nl : 1);
            return;
        }
        if (q[i] == '\\' && i + 1 < lx->end && q[i + 1] == '/') {
            i++;
        }
    }
    lx->pos = lx->end;
    lx->ate_end = true;
}

/* A number from i (a digit, or a '.' before a digit): digits, then either a '.' (consumed even
 * without digits after it, as influxd does) and digits, or a duration unit. */
static void
scan_number(struct lex *lx, size_t i)
{
    const char *q = lx->q;
    size_t end = lx->end;
    while (i < end && is_digit(q[i])) {
        i++;
    }
    if (i < end && q[i] == '.') {
        for (i++; i < end && is_digit(q[i]); i++) {
        }
    } else if (i < end && (is_letter(q[i]) || is_micro(q, i, end))) {
        while (i < end && (is_letter(q[i]) || is_digit(q[i]) || is_micro(q, i, end))) {
            i += is_micro(q, i, end) ? 2 : 1;
        }
    }
    lx->pos = i;
}

/* A bare word from i, joined with a quoted identifier that follows it at once. */
static enum tok_type
scan_word(struct lex *lx, size_t i, enum tok_type plain)
{
    while (i < lx->end && is_ident(lx->q[i])) {
        i++;
    }
    if (i < lx->end && lx->q[i] == '"') {
        enum tok_type t = scan_quoted(lx, i);
        return t == TK_STRING ? (plain == TK_PARAM ? TK_PARAM : TK_QIDENT) : t;
    }
    lx->pos = i;
    lx->ate_end = i == lx->end; /* influxd's identifier scan reads the end */
    return plain;
}

/* A block comment from its '/' at i. */
static enum tok_type
scan_block_comment(struct lex *lx, size_t i)
{
    for (i += 2; i + 1 < lx->end; i++) {
        if (lx->q[i] == '*' && lx->q[i + 1] == '/') {
            lx->pos = i + 2;
            return TK_COMMENT;
        }
    }
    lx->pos = lx->end;
    lx->ate_end = true;
    return TK_ILLEGAL;
}

/* The operators and punctuation, from i. */
static enum tok_type
scan_punct(struct lex *lx, size_t i)
{
    const char *q = lx->q;
    char c = q[i];
    char n = '\0';
    if (i + 1 < lx->end) {
        n = q[i + 1];
    }
    lx->pos = i + 1;
    switch (c) {
    case ';':
        return TK_SEMI;
    case ',':
        return TK_COMMA;
    case '(':
        return TK_LPAREN;
    case ')':
        return TK_RPAREN;
    case '+':
    case '*':
    case '%':
    case '&':
    case '|':
    case '^':
    case '-':
    case '/':
        return TK_OP;
    case '=':
    case '!':
        lx->pos += n == '~' || (c == '!' && n == '=') ? 1 : 0;
        if (n == '~') {
            return c == '=' ? TK_EQREGEX : TK_NEQREGEX;
        }
        return c == '=' || n == '=' ? TK_OP : TK_ILLEGAL;
    case '<':
    case '>':
    case ':':
        lx->pos += (c == '<' && (n == '=' || n == '>')) || (c == '>' && n == '=') ||
                                   (c == ':' && n == ':')
                           ? 1
                           : 0;
        return TK_OP;
    default:
        lx->pos = i + rune_len(q, i, lx->end);
        return TK_ILLEGAL;
    }
}

static enum tok_type
scan_one(struct lex *lx)
{
    const char *q = lx->q;
    size_t i = lx->pos;
    char c = q[i];
    char n = '\0';
    if (i + 1 < lx->end) {
        n = q[i + 1];
    }
    if (is_space(c)) {
        for (i++; i < lx->end && is_space(q[i]); i++) {
        }
        lx->pos = i;
        return TK_WS;
    }
    if (is_letter(c) || c == '_') {
        return scan_word(lx, i, TK_WORD);
    }
    if (is_digit(c) || (c == '.' && is_digit(n))) {
        scan_number(lx, i);
        return TK_NUMBER;
    }
    switch (c) {
    case '"':
    case '\'': {
        enum tok_type t = scan_quoted(lx, i);
        return t == TK_STRING && c == '"' ? TK_QIDENT : t;
    }
    case '$':
        return scan_word(lx, i + 1, TK_PARAM);
    case '.':
        lx->pos = i + 1;
        return TK_DOT;
    case '/':
        if (lx->regex != REGEX_NO) {
            scan_regex(lx, i);
            return TK_REGEX;
        }
        return n == '*' ? scan_block_comment(lx, i) : scan_punct(lx, i);
    case '-':
        if (n != '-') {
            return scan_punct(lx, i);
        }
        for (i += 2; i < lx->end && newline_len(q, i, lx->end) == 0; i++) {
        }
        lx->pos = i < lx->end ? i + newline_len(q, i, lx->end) : i;
        lx->ate_end = i == lx->end;
        return TK_COMMENT;
    default:
        return scan_punct(lx, i);
    }
}

/* Where the token just read leaves the regex state (see DESIGN). */
static void
regex_after(struct lex *lx, const struct tok *t)
{
    switch (t->t) {
    case TK_WS:
        lx->regex = lx->regex == REGEX_RIGHT_HERE ? REGEX_NO : lx->regex;
        return;
    case TK_WORD:
        lx->regex =
                word_is(lx->q, t, "SELECT") || word_is(lx->q, t, "FROM") || word_is(lx->q, t, "BY")
                        ? REGEX_AFTER_SPACES
                        : REGEX_NO;
        break;
    case TK_COMMA:
    case TK_EQREGEX:
    case TK_NEQREGEX:
        lx->regex = REGEX_AFTER_SPACES;
        break;
    case TK_DOT:
        lx->regex = REGEX_RIGHT_HERE;
        break;
    case TK_LPAREN:
        lx->regex = (lx->prev == TK_WORD || lx->prev == TK_QIDENT) && lx->prev_end == t->off
                            ? REGEX_AFTER_SPACES
                            : REGEX_NO;
        break;
    default:
        lx->regex = REGEX_NO;
        break;
    }
    lx->prev = t->t;
    lx->prev_end = t->off + t->len;
}

static struct tok
lex_next(struct lex *lx)
{
    struct tok t = {.t = TK_END, .off = lx->pos, .len = 0};
    if (lx->pos >= lx->end) {
        return t;
    }
    lx->ate_end = false;
    t.t = scan_one(lx);
    t.len = lx->pos - t.off;
    regex_after(lx, &t);
    return t;
}

/* ------------------------------------------------------------------ classification */

#define QL_MAX_WORDS 3

/* influxd 1.6.7's parse tree, flattened in its registration order (so entries sharing a prefix
 * are contiguous and the first appearance order of each word is influxd's "expected" order). */
static const struct entry {
    const char *w[QL_MAX_WORDS];
    enum ql_kind kind;
} entries[] = {
        {{"SELECT"}, QL_KIND_SELECT},
        {{"DELETE"}, QL_KIND_DELETE},
        {{"SHOW", "CONTINUOUS", "QUERIES"}, QL_KIND_SHOW_CONTINUOUS_QUERIES},
        {{"SHOW", "DATABASES"}, QL_KIND_SHOW_DATABASES},
        {{"SHOW", "DIAGNOSTICS"}, QL_KIND_SHOW_DIAGNOSTICS},
        {{"SHOW", "FIELD", "KEY"}, QL_KIND_SHOW_FIELD_KEY_CARDINALITY},
        {{"SHOW", "FIELD", "KEYS"}, QL_KIND_SHOW_FIELD_KEYS},
        {{"SHOW", "GRANTS", "FOR"}, QL_KIND_SHOW_GRANTS},
        {{"SHOW", "MEASUREMENT", "EXACT"}, QL_KIND_SHOW_MEASUREMENT_EXACT_CARDINALITY},
        {{"SHOW", "MEASUREMENT", "CARDINALITY"}, QL_KIND_SHOW_MEASUREMENT_CARDINALITY},
        {{"SHOW", "MEASUREMENTS"}, QL_KIND_SHOW_MEASUREMENTS},
        {{"SHOW", "QUERIES"}, QL_KIND_SHOW_QUERIES},
        {{"SHOW", "RETENTION", "POLICIES"}, QL_KIND_SHOW_RETENTION_POLICIES},
        {{"SHOW", "SERIES"}, QL_KIND_SHOW_SERIES},
        {{"SHOW", "SHARD", "GROUPS"}, QL_KIND_SHOW_SHARD_GROUPS},
        {{"SHOW", "SHARDS"}, QL_KIND_SHOW_SHARDS},
        {{"SHOW", "STATS"}, QL_KIND_SHOW_STATS},
        {{"SHOW", "SUBSCRIPTIONS"}, QL_KIND_SHOW_SUBSCRIPTIONS},
        {{"SHOW", "TAG", "KEY"}, QL_KIND_SHOW_TAG_KEY_CARDINALITY},
        {{"SHOW", "TAG", "KEYS"}, QL_KIND_SHOW_TAG_KEYS},
        {{"SHOW", "TAG", "VALUES"}, QL_KIND_SHOW_TAG_VALUES},
        {{"SHOW", "USERS"}, QL_KIND_SHOW_USERS},
        {{"CREATE", "CONTINUOUS", "QUERY"}, QL_KIND_CREATE_CONTINUOUS_QUERY},
        {{"CREATE", "DATABASE"}, QL_KIND_CREATE_DATABASE},
        {{"CREATE", "USER"}, QL_KIND_CREATE_USER},
        {{"CREATE", "RETENTION", "POLICY"}, QL_KIND_CREATE_RETENTION_POLICY},
        {{"CREATE", "SUBSCRIPTION"}, QL_KIND_CREATE_SUBSCRIPTION},
        {{"DROP", "CONTINUOUS", "QUERY"}, QL_KIND_DROP_CONTINUOUS_QUERY},
        {{"DROP", "DATABASE"}, QL_KIND_DROP_DATABASE},
        {{"DROP", "MEASUREMENT"}, QL_KIND_DROP_MEASUREMENT},
        {{"DROP", "RETENTION", "POLICY"}, QL_KIND_DROP_RETENTION_POLICY},
        {{"DROP", "SERIES"}, QL_KIND_DROP_SERIES},
        {{"DROP", "SHARD"}, QL_KIND_DROP_SHARD},
        {{"DROP", "SUBSCRIPTION"}, QL_KIND_DROP_SUBSCRIPTION},
        {{"DROP", "USER"}, QL_KIND_DROP_USER},
        {{"EXPLAIN"}, QL_KIND_EXPLAIN},
        {{"GRANT"}, QL_KIND_GRANT},
        {{"REVOKE"}, QL_KIND_REVOKE},
        {{"ALTER", "RETENTION", "POLICY"}, QL_KIND_ALTER_RETENTION_POLICY},
        {{"SET", "PASSWORD", "FOR"}, QL_KIND_SET_PASSWORD},
        {{"KILL", "QUERY"}, QL_KIND_KILL_QUERY},
};

/* Class and name of each kind. Choices beyond the obvious:
 * - LOCAL: SHOW QUERIES and KILL QUERY (the queries running on one server), SHOW STATS and SHOW
 *   DIAGNOSTICS (one server's counters), SHOW SHARDS, SHOW SHARD GROUPS and DROP SHARD (shard and
 *   shard group ids are allocated by each server as writes arrive: they differ between
 *   backends, so a DROP SHARD id would drop different data on each).
 * - READ: SHOW SUBSCRIPTIONS, like SHOW USERS: subscriptions are meta data that CREATE / DROP
 *   SUBSCRIPTION (CHANGE, as every CREATE and DROP) keep equal on every backend.
 * - READ: EXPLAIN and EXPLAIN ANALYZE, also of a SELECT INTO (influxd plans or runs it without
 *   writing); SHOW GRANTS, SHOW USERS and the cardinality statements. */
static const struct kind_info {
    enum ql_class class;
    const char *name;
} kinds[QL_KIND_COUNT] = {
        [QL_KIND_EMPTY] = {QL_EMPTY, "EMPTY"},
        [QL_KIND_INVALID] = {QL_INVALID, "INVALID"},
        [QL_KIND_SELECT] = {QL_READ, "SELECT"},
        [QL_KIND_SELECT_INTO] = {QL_CHANGE, "SELECT INTO"},
        [QL_KIND_DELETE] = {QL_CHANGE, "DELETE"},
        [QL_KIND_SHOW_CONTINUOUS_QUERIES] = {QL_READ, "SHOW CONTINUOUS QUERIES"},
        [QL_KIND_SHOW_DATABASES] = {QL_READ, "SHOW DATABASES"},
        [QL_KIND_SHOW_DIAGNOSTICS] = {QL_LOCAL, "SHOW DIAGNOSTICS"},
        [QL_KIND_SHOW_FIELD_KEY_CARDINALITY] = {QL_READ, "SHOW FIELD KEY CARDINALITY"},
        [QL_KIND_SHOW_FIELD_KEYS] = {QL_READ, "SHOW FIELD KEYS"},
        [QL_KIND_SHOW_GRANTS] = {QL_READ, "SHOW GRANTS"},
        [QL_KIND_SHOW_MEASUREMENT_EXACT_CARDINALITY] = {QL_READ,
                                                        "SHOW MEASUREMENT EXACT CARDINALITY"},
        [QL_KIND_SHOW_MEASUREMENT_CARDINALITY] = {QL_READ, "SHOW MEASUREMENT CARDINALITY"},
        [QL_KIND_SHOW_MEASUREMENTS] = {QL_READ, "SHOW MEASUREMENTS"},
        [QL_KIND_SHOW_QUERIES] = {QL_LOCAL, "SHOW QUERIES"},
        [QL_KIND_SHOW_RETENTION_POLICIES] = {QL_READ, "SHOW RETENTION POLICIES"},
        [QL_KIND_SHOW_SERIES] = {QL_READ, "SHOW SERIES"},
        [QL_KIND_SHOW_SHARD_GROUPS] = {QL_LOCAL, "SHOW SHARD GROUPS"},
        [QL_KIND_SHOW_SHARDS] = {QL_LOCAL, "SHOW SHARDS"},
        [QL_KIND_SHOW_STATS] = {QL_LOCAL, "SHOW STATS"},
        [QL_KIND_SHOW_SUBSCRIPTIONS] = {QL_READ, "SHOW SUBSCRIPTIONS"},
        [QL_KIND_SHOW_TAG_KEY_CARDINALITY] = {QL_READ, "SHOW TAG KEY CARDINALITY"},
        [QL_KIND_SHOW_TAG_KEYS] = {QL_READ, "SHOW TAG KEYS"},
        [QL_KIND_SHOW_TAG_VALUES] = {QL_READ, "SHOW TAG VALUES"},
        [QL_KIND_SHOW_USERS] = {QL_READ, "SHOW USERS"},
        [QL_KIND_CREATE_CONTINUOUS_QUERY] = {QL_CHANGE, "CREATE CONTINUOUS QUERY"},
        [QL_KIND_CREATE_DATABASE] = {QL_CHANGE, "CREATE DATABASE"},
        [QL_KIND_CREATE_USER] = {QL_CHANGE, "CREATE USER"},
        [QL_KIND_CREATE_RETENTION_POLICY] = {QL_CHANGE, "CREATE RETENTION POLICY"},
        [QL_KIND_CREATE_SUBSCRIPTION] = {QL_CHANGE, "CREATE SUBSCRIPTION"},
        [QL_KIND_DROP_CONTINUOUS_QUERY] = {QL_CHANGE, "DROP CONTINUOUS QUERY"},
        [QL_KIND_DROP_DATABASE] = {QL_CHANGE, "DROP DATABASE"},
        [QL_KIND_DROP_MEASUREMENT] = {QL_CHANGE, "DROP MEASUREMENT"},
        [QL_KIND_DROP_RETENTION_POLICY] = {QL_CHANGE, "DROP RETENTION POLICY"},
        [QL_KIND_DROP_SERIES] = {QL_CHANGE, "DROP SERIES"},
        [QL_KIND_DROP_SHARD] = {QL_LOCAL, "DROP SHARD"},
        [QL_KIND_DROP_SUBSCRIPTION] = {QL_CHANGE, "DROP SUBSCRIPTION"},
        [QL_KIND_DROP_USER] = {QL_CHANGE, "DROP USER"},
        [QL_KIND_EXPLAIN] = {QL_READ, "EXPLAIN"},
        [QL_KIND_GRANT] = {QL_CHANGE, "GRANT"},
        [QL_KIND_REVOKE] = {QL_CHANGE, "REVOKE"},
        [QL_KIND_ALTER_RETENTION_POLICY] = {QL_CHANGE, "ALTER RETENTION POLICY"},
        [QL_KIND_SET_PASSWORD] = {QL_CHANGE, "SET PASSWORD"},
        [QL_KIND_KILL_QUERY] = {QL_LOCAL, "KILL QUERY"},
};

enum ql_class
ql_kind_class(enum ql_kind k)
{
    return k < QL_KIND_COUNT ? kinds[k].class : QL_INVALID;
}

const char *
ql_kind_name(enum ql_kind k)
{
    return k < QL_KIND_COUNT ? kinds[k].name : "INVALID";
}

/* What one scan of a piece keeps. */
struct piece {
    struct tok sig[QL_MAX_WORDS]; /* the first tokens that are neither space nor comment */
    size_t n_sig;
    bool into;    /* an INTO keyword after the first token, outside parentheses */
    size_t end;   /* where the scan stopped: after the ';', or the scan end */
    bool semi;    /* it stopped at a ';' */
    bool ate_end; /* the last token read the end */
};

static void
scan_piece(const char *q, size_t from, size_t end, struct piece *p)
{
    struct lex lx = {.q = q, .pos = from, .end = end, .prev = TK_END};
    size_t depth = 0;
    size_t n = 0;
    memset(p, 0, sizeof(*p));
    for (struct tok t = lex_next(&lx); t.t != TK_END; t = lex_next(&lx)) {
        if (t.t == TK_WS || t.t == TK_COMMENT) {
            continue;
        }
        if (t.t == TK_SEMI) {
            p->semi = true;
            break;
        }
        if (n < QL_MAX_WORDS) {
            p->sig[n] = t;
        }
        n++;
        if (t.t == TK_LPAREN) {
            depth++;
        } else if (t.t == TK_RPAREN) {
            depth -= depth > 0 ? 1 : 0;
        } else if (n > 1 && depth == 0 && word_is(q, &t, "INTO")) {
            p->into = true;
        }
    }
    p->n_sig = n < QL_MAX_WORDS ? n : QL_MAX_WORDS;
    p->end = lx.pos;
    p->ate_end = lx.ate_end;
}

/* The prefix match: on success the kind; on failure the depth where no entry of [lo, hi)
 * continues with the piece's token (the entries of [lo, hi) share the depth words before). */
struct match {
    enum ql_kind kind;
    size_t depth;
    size_t lo;
    size_t hi;
};

static void
match_piece(const char *q, const struct piece *p, struct match *m)
{
    size_t lo = 0;
    size_t hi = IR_ARRAY_LEN(entries);
    *m = (struct match){.kind = p->n_sig == 0 ? QL_KIND_EMPTY : QL_KIND_INVALID};
    for (size_t d = 0; p->n_sig > 0; d++) {
        if (d > 0 && (d == QL_MAX_WORDS || entries[lo].w[d] == NULL)) {
            m->kind = entries[lo].kind;
            break;
        }
        size_t i = lo;
        while (i < hi && (d >= p->n_sig || !word_is(q, &p->sig[d], entries[i].w[d]))) {
            i++;
        }
        if (i == hi) {
            *m = (struct match){.kind = QL_KIND_INVALID, .depth = d, .lo = lo, .hi = hi};
            break;
        }
        size_t j = i + 1;
        while (j < hi && strcmp(entries[j].w[d], entries[i].w[d]) == 0) {
            j++;
        }
        lo = i;
        hi = j;
    }
    if (m->kind == QL_KIND_SELECT && p->into) {
        m->kind = QL_KIND_SELECT_INTO;
    }
}

/* ------------------------------------------------------------------ splitting */

/* Go's unicode.IsSpace at q[i] (what strings.TrimSpace trims): bytes of it, or 0. */
static size_t
go_space_len(const char *q, size_t i, size_t end)
{
    const unsigned char *u = (const unsigned char *)q + i;
    size_t n = end - i;
    if (u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r')) {
        return 1;
    }
    if (n >= 2 && u[0] == 0xC2 && (u[1] == 0x85 || u[1] == 0xA0)) {
        return 2;
    }
    if (n < 3) {
        return 0;
    }
    unsigned v = (unsigned)u[0] << 16 | (unsigned)u[1] << 8 | u[2];
    bool space = v == 0xE19A80 || (v >= 0xE28080 && v <= 0xE2808A) || v == 0xE280A8 ||
                 v == 0xE280A9 || v == 0xE280AF || v == 0xE2819F || v == 0xE38080;
    return space ? 3 : 0;
}

/* Bytes of the Go space that ends just before q[end], or 0. */
static size_t
go_space_before(const char *q, size_t start, size_t end)
{
    for (size_t w = 1; w <= 3 && w <= end - start; w++) {
        if (go_space_len(q, end - w, end) == w) {
            return w;
        }
    }
    return 0;
}

void
ql_split_init(struct ql_split *s, const char *q, size_t len)
{
    size_t start = 0;
    size_t end = len;
    for (size_t w; start < end && (w = go_space_len(q, start, end)) > 0;) {
        start += w;
    }
    for (size_t w; end > start && (w = go_space_before(q, start, end)) > 0;) {
        end -= w;
    }
    const char *nul = end > start ? memchr(q + start, '\0', end - start) : NULL;
    *s = (struct ql_split){
            .q = q,
            .len = len,
            .start = start,
            .end = nul != NULL ? (size_t)(nul - q) : end,
            .pos = 0,
    };
}

bool
ql_split_next(struct ql_split *s, struct ql_stmt *st)
{
    if (s->pos >= s->len) {
        return false;
    }
    size_t from = s->pos > s->start ? s->pos : s->start;
    struct piece p = {0};
    if (from < s->end) {
        scan_piece(s->q, from, s->end, &p);
    }
    struct match m;
    match_piece(s->q, &p, &m);
    size_t stop = p.semi ? p.end : s->len;
    *st = (struct ql_stmt){.off = s->pos, .len = stop - s->pos, .kind = m.kind};
    s->pos = stop;
    return true;
}

void
ql_summarize(const char *q, size_t len, struct ql_summary *out)
{
    struct ql_split s;
    struct ql_stmt st;
    *out = (struct ql_summary){0};
    ql_split_init(&s, q, len);
    while (ql_split_next(&s, &st)) {
        out->kinds |= (uint64_t)1 << st.kind;
        switch (ql_kind_class(st.kind)) {
        case QL_EMPTY:
            break;
        case QL_READ:
            out->n_read++;
            break;
        case QL_CHANGE:
            out->n_change++;
            break;
        case QL_LOCAL:
            out->n_local++;
            break;
        case QL_INVALID:
            if (out->n_invalid++ == 0) {
                out->first_invalid = st;
            }
            break;
        }
    }
}

/* ------------------------------------------------------------------ influxd's error text */

/* Line and rune (0-based) of q[at], counted from q[start] as influxd's reader counts. With
 * before, the position of the rune before it instead ((0, 0) at start): influxd reports a
 * string at the rune before its quote. */
static void
position(const char *q, size_t start, size_t at, bool before, size_t *line, size_t *col)
{
    size_t l = 0;
    size_t c = 0;
    size_t pl = 0;
    size_t pc = 0;
    for (size_t i = start; i < at;) {
        size_t nl = newline_len(q, i, at);
        pl = l;
        pc = c;
        if (nl > 0) {
            l++;
            c = 0;
            i += nl;
        } else {
            c++;
            i += rune_len(q, i, at);
        }
    }
    *line = before ? pl : l;
    *col = before ? pc : c;
}

/* The content of a quoted token, its escapes undone (up to the end of a bad one). */
static void
found_unquoted(struct dbuf *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] != '"' && s[i] != '\'') {
        i++; /* bare"quoted" or $"quoted": only the quoted part */
    }
    char quote = '\0';
    if (i < n) {
        quote = s[i++];
    }
    for (; i < n && s[i] != quote && s[i] != '\n' && s[i] != '\r'; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            char e = s[++i];
            if (e == 'n') {
                e = '\n';
            }
            dbuf_char(out, e);
            continue;
        }
        dbuf_char(out, s[i]);
    }
}

/* influxd's keywords (Lookup()): a bare word that is one prints in capitals. */
static const char *const keywords[] = {
        "ALL",          "ALTER",        "ANALYZE",      "ANY",
        "AS",           "ASC",          "BEGIN",        "BY",
        "CARDINALITY",  "CREATE",       "CONTINUOUS",   "DATABASE",
        "DATABASES",    "DEFAULT",      "DELETE",       "DESC",
        "DESTINATIONS", "DIAGNOSTICS",  "DISTINCT",     "DROP",
        "DURATION",     "END",          "EVERY",        "EXACT",
        "EXPLAIN",      "FIELD",        "FOR",          "FROM",
        "GRANT",        "GRANTS",       "GROUP",        "GROUPS",
        "IN",           "INF",          "INSERT",       "INTO",
        "KEY",          "KEYS",         "KILL",         "LIMIT",
        "MEASUREMENT",  "MEASUREMENTS", "NAME",         "OFFSET",
        "ON",           "ORDER",        "PASSWORD",     "POLICY",
        "POLICIES",     "PRIVILEGES",   "QUERIES",      "QUERY",
        "READ",         "REPLICATION",  "RESAMPLE",     "RETENTION",
        "REVOKE",       "SELECT",       "SERIES",       "SET",
        "SHOW",         "SHARD",        "SHARDS",       "SLIMIT",
        "SOFFSET",      "STATS",        "SUBSCRIPTION", "SUBSCRIPTIONS",
        "TAG",          "TO",           "USER",         "USERS",
        "VALUES",       "WHERE",        "WITH",         "WRITE",
        "AND",          "OR",           "TRUE",         "FALSE",
};

static bool
is_keyword(const char *q, const struct tok *t)
{
    for (size_t i = 0; i < IR_ARRAY_LEN(keywords); i++) {
        if (word_is(q, t, keywords[i])) {
            return true;
        }
    }
    return false;
}

/* tokstr() of the tokens without a literal of their own: operators and ILLEGAL runes. */
static void
found_symbol(struct dbuf *out, const struct tok *t, const char *s)
{
    if (t->t == TK_ILLEGAL && t->len > 1 && s[0] == '/') {
        dbuf_str(out, "ILLEGAL"); /* an unterminated block comment */
    } else if (t->t == TK_ILLEGAL && utf8_seq_len((const unsigned char *)s, t->len) == 0 &&
               (unsigned char)s[0] >= 0x80) {
        dbuf_str(out, "\xEF\xBF\xBD"); /* Go's string(utf8.RuneError) */
    } else if (t->t == TK_OP && t->len == 2 && s[0] == '<' && s[1] == '>') {
        dbuf_str(out, "!=");
    } else {
        dbuf_append(out, s, t->len);
    }
}

/* tokstr(): what influxd prints after "found" for a token. */
static void
found_text(struct dbuf *out, const char *q, const struct tok *t)
{
    const char *s = q + t->off;
    size_t n = t->len;
    switch (t->t) {
    case TK_WORD:
        if (!is_keyword(q, t)) {
            dbuf_append(out, s, n);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            dbuf_char(out, (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]));
        }
        return;
    case TK_QIDENT:
    case TK_STRING:
    case TK_BADSTRING:
        found_unquoted(out, s, n);
        return;
    case TK_PARAM:
        dbuf_char(out, '$');
        if (memchr(s, '"', n) != NULL) {
            found_unquoted(out, s, n);
        } else {
            dbuf_append(out, s + 1, n - 1);
        }
        return;
    case TK_NUMBER:
        dbuf_append(out, s, n > 1 && s[n - 1] == '.' ? n - 1 : n); /* "1." scans as 1 */
        return;
    case TK_BADESCAPE: {
        size_t at = n - 1;
        while (at > 0 && s[at] != '\\') {
            at--; /* the bad escape ends the token; no rune holds a '\\' byte */
        }
        dbuf_append(out, s + at, n - at);
        return;
    }
    default:
        found_symbol(out, t, s);
        return;
    }
}

void
ql_error(const char *q, size_t len, const struct ql_stmt *st, struct dbuf *out)
{
    struct ql_split s;
    struct piece p = {0};
    struct match m;
    ql_split_init(&s, q, len);
    size_t from = st->off > s.start ? st->off : s.start;
    if (from < s.end) {
        scan_piece(q, from, s.end, &p);
    }
    match_piece(q, &p, &m);
    size_t line = 0;
    size_t col = 0;
    dbuf_str(out, "found ");
    if (m.depth < p.n_sig) {
        const struct tok *t = &p.sig[m.depth];
        bool before = t->t == TK_STRING || t->t == TK_BADSTRING;
        found_text(out, q, t);
        position(q, s.start, t->off, before && t->off > s.start, &line, &col);
    } else if (p.semi) {
        dbuf_char(out, ';');
        position(q, s.start, p.end - 1, false, &line, &col);
    } else {
        dbuf_str(out, "EOF");
        position(q, s.start, p.end, false, &line, &col);
        col += p.ate_end ? 1 : 0;
    }
    dbuf_str(out, ", expected ");
    for (size_t i = m.lo; i < m.hi; i++) {
        const char *w = entries[i].w[m.depth];
        if (i == m.lo || strcmp(w, entries[i - 1].w[m.depth]) != 0) {
            dbuf_str(out, i == m.lo ? "" : ", ");
            dbuf_str(out, w);
        }
    }
    dbuf_str(out, " at line ");
    dbuf_u64(out, line + 1);
    dbuf_str(out, ", char ");
    dbuf_u64(out, col + 1);
}
