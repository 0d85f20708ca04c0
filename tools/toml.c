#include "tools/toml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/dbuf.h"
#include "util/json.h"

/* A recursive-descent reader over the whole text. The first problem stops it (TOML has no
 * error recovery worth having); every function returns 0, or -1 once p->err is set.
 * Pointers into a table's kvs or an array's items stay valid only until that container
 * grows, so no pointer is kept across an append to the container it points into. */

#define TOML_MAX_DEPTH 32 /* nesting of arrays and inline tables */

struct parser {
    const char *s;
    size_t len;
    size_t pos;
    int line;
    int depth;
    struct toml_err *err;
    struct toml_value *root;
    struct toml_value *cur; /* table that key/value lines go to */
};

static void *
t_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        abort();
    }
    return q;
}

/* Strings being read: a util/dbuf bounded by the input's size; out of memory aborts (the tool
 * reads one small file). */
static void
sbuf_add(struct dbuf *b, const char *s, size_t n)
{
    if (dbuf_append(b, s, n) != DBUF_OK) {
        abort();
    }
}

static char *
sbuf_take(struct dbuf *b)
{
    size_t len = 0;
    char *p = dbuf_finish(b, &len);
    if (p == NULL) {
        abort();
    }
    return p;
}

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
    p->err->line = p->line;
    return -1;
}

static char
peek_at(const struct parser *p, size_t off)
{
    if (p->pos + off >= p->len) {
        return '\0';
    }
    return p->s[p->pos + off];
}

static char
peek(const struct parser *p)
{
    return peek_at(p, 0);
}

static bool
at_end(const struct parser *p)
{
    return p->pos >= p->len;
}

static void
skip_ws(struct parser *p)
{
    while (peek(p) == ' ' || peek(p) == '\t') {
        p->pos++;
    }
}

static void
skip_comment(struct parser *p)
{
    if (peek(p) == '#') {
        while (!at_end(p) && peek(p) != '\n' && !(peek(p) == '\r' && peek_at(p, 1) == '\n')) {
            p->pos++;
        }
    }
}

/* Consumes "\n" or "\r\n"; false if neither is next. */
static bool
eat_newline(struct parser *p)
{
    size_t n = peek(p) == '\n' ? 1 : (peek(p) == '\r' && peek_at(p, 1) == '\n') ? 2 : 0;
    if (n == 0) {
        return false;
    }
    p->pos += n;
    p->line++;
    return true;
}

/* Blanks, comments and newlines (inside arrays and inline tables). */
static void
skip_all(struct parser *p)
{
    for (;;) {
        skip_ws(p);
        skip_comment(p);
        if (!eat_newline(p)) {
            return;
        }
    }
}

const char *
toml_type_name(enum toml_type t)
{
    static const char *const names[] = {"string", "integer", "boolean", "array", "table"};
    return names[t];
}

static void
value_cleanup(struct toml_value *v)
{
    free(v->str);
    for (size_t i = 0; i < v->n_items; i++) {
        value_cleanup(&v->items[i]);
    }
    free(v->items);
    for (size_t i = 0; i < v->n_kvs; i++) {
        free(v->kvs[i].key);
        value_cleanup(&v->kvs[i].v);
    }
    free(v->kvs);
}

void
toml_free(struct toml_value *root)
{
    if (root != NULL) {
        value_cleanup(root);
        free(root);
    }
}

static struct toml_kv *
table_find(struct toml_value *t, const char *key)
{
    for (size_t i = 0; i < t->n_kvs; i++) {
        if (strcmp(t->kvs[i].key, key) == 0) {
            return &t->kvs[i];
        }
    }
    return NULL;
}

/* Appends key (taking ownership) with value v (moved in); returns the stored value. */
static struct toml_value *
table_add(struct toml_value *t, char *key, int line, const struct toml_value *v)
{
    t->kvs = t_realloc(t->kvs, (t->n_kvs + 1) * sizeof(*t->kvs));
    struct toml_kv *kv = &t->kvs[t->n_kvs++];
    kv->key = key;
    kv->line = line;
    kv->v = *v;
    return &kv->v;
}

/* \uXXXX or \UXXXXXXXX after the 'u'/'U' at p->pos. */
static int
escape_unicode(struct parser *p, struct dbuf *b)
{
    size_t digits = peek(p) == 'u' ? 4 : 8;
    p->pos++;
    unsigned long c = 0;
    for (size_t i = 0; i < digits; i++) {
        char h = peek(p);
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0) {
            return fail(p, "invalid unicode escape in string");
        }
        c = c * 16 + (unsigned long)d;
        p->pos++;
    }
    if (c == 0 || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return fail(p, "unicode escape U+%04lX is not allowed here", c);
    }
    utf8_append(b, c);
    if (b->status != DBUF_OK) {
        abort(); /* out of memory, as sbuf_add() */
    }
    return 0;
}

/* One escape after a backslash in a basic string (the backslash already consumed). */
static int
escape(struct parser *p, struct dbuf *b)
{
    static const char from[] = "btnfr\"\\";
    static const char to[] = "\b\t\n\f\r\"\\";
    char c = peek(p);
    const char *hit = c != '\0' ? strchr(from, c) : NULL;
    if (hit != NULL) {
        sbuf_add(b, &to[hit - from], 1);
        p->pos++;
        return 0;
    }
    if (c == 'u' || c == 'U') {
        return escape_unicode(p, b);
    }
    return fail(p, "invalid escape \"\\%c\" in string", c >= ' ' ? c : '?');
}

/* In a multi-line basic string, a backslash at the end of a line trims the line break and
 * the blanks that follow. Returns true if it did. */
static bool
line_ending_backslash(struct parser *p)
{
    size_t save = p->pos;
    int line = p->line;
    skip_ws(p);
    if (!eat_newline(p)) {
        p->pos = save;
        p->line = line;
        return false;
    }
    for (;;) {
        skip_ws(p);
        if (!eat_newline(p)) {
            return true;
        }
    }
}

/* A string body up to its closing quote(s); the opening quote(s) already consumed. */
static int
string_body(struct parser *p, char quote, bool multi, struct dbuf *b)
{
    for (;;) {
        char c = peek(p);
        if (at_end(p)) {
            return fail(p, "unterminated string");
        }
        if (c == quote && (!multi || (peek_at(p, 1) == quote && peek_at(p, 2) == quote))) {
            p->pos += multi ? 3 : 1;
            return 0;
        }
        if (multi && eat_newline(p)) {
            sbuf_add(b, "\n", 1);
            continue;
        }
        if ((unsigned char)c < 0x20 && c != '\t') {
            return fail(p, c == '\n' || c == '\r' ? "newline in a single-line string"
                                                  : "control character in string");
        }
        p->pos++;
        if (c == '\\' && quote == '"') {
            if (multi && line_ending_backslash(p)) {
                continue;
            }
            if (escape(p, b) != 0) {
                return -1;
            }
            continue;
        }
        sbuf_add(b, &c, 1);
    }
}

/* A string starting at the current quote; returns owned text in *out. */
static int
string(struct parser *p, char **out)
{
    char quote = peek(p);
    bool multi = peek_at(p, 1) == quote && peek_at(p, 2) == quote;
    p->pos += multi ? 3 : 1;
    if (multi) {
        eat_newline(p); /* a newline right after the opening quotes is not part of it */
    }
    struct dbuf b;
    dbuf_init(&b, p->len);
    int start = p->line;
    if (string_body(p, quote, multi, &b) != 0) {
        if (at_end(p)) {
            p->err->line = start; /* point at the opening quote, not at the end of the file */
        }
        dbuf_cleanup(&b);
        return -1;
    }
    *out = sbuf_take(&b); /* holds no NUL: raw control characters and \u0000 are refused */
    return 0;
}

static bool
is_bare(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* A bare or quoted key. */
static int
key(struct parser *p, char **out)
{
    char c = peek(p);
    if (c == '"' || c == '\'') {
        if (peek_at(p, 1) == c && peek_at(p, 2) == c) {
            return fail(p, "a key cannot be a multi-line string");
        }
        return string(p, out);
    }
    size_t start = p->pos;
    while (is_bare(peek(p))) {
        p->pos++;
    }
    if (p->pos == start) {
        return fail(p, "expected a key, got \"%c\"", c >= ' ' ? c : '?');
    }
    struct dbuf b;
    dbuf_init(&b, p->len);
    sbuf_add(&b, p->s + start, p->pos - start);
    *out = sbuf_take(&b);
    return 0;
}

static int value(struct parser *p, struct toml_value *out);

static int
array(struct parser *p, struct toml_value *out)
{
    out->type = TOML_ARRAY;
    p->pos++; /* '[' */
    for (;;) {
        skip_all(p);
        if (peek(p) == ']') {
            p->pos++;
            return 0;
        }
        struct toml_value item;
        memset(&item, 0, sizeof(item));
        if (value(p, &item) != 0) {
            value_cleanup(&item);
            return -1;
        }
        out->items = t_realloc(out->items, (out->n_items + 1) * sizeof(*out->items));
        out->items[out->n_items++] = item;
        skip_all(p);
        if (peek(p) == ',') {
            p->pos++;
        } else if (peek(p) != ']') {
            return fail(p, "expected \",\" or \"]\" in array");
        }
    }
}

/* key = value, into table t. */
static int
keyval(struct parser *p, struct toml_value *t)
{
    int line = p->line;
    char *k = NULL;
    if (key(p, &k) != 0) {
        return -1;
    }
    skip_ws(p);
    if (peek(p) == '.') {
        free(k);
        return fail(p, "dotted keys are not supported");
    }
    if (peek(p) != '=') {
        free(k);
        return fail(p, "expected \"=\" after key");
    }
    p->pos++;
    skip_ws(p);
    if (table_find(t, k) != NULL) {
        int r = fail(p, "duplicate key \"%s\"", k);
        free(k);
        return r;
    }
    struct toml_value v;
    memset(&v, 0, sizeof(v));
    if (value(p, &v) != 0) {
        value_cleanup(&v);
        free(k);
        return -1;
    }
    table_add(t, k, line, &v);
    return 0;
}

static int
inline_table(struct parser *p, struct toml_value *out)
{
    out->type = TOML_TABLE;
    out->defined = true;
    p->pos++; /* '{' */
    skip_all(p);
    if (peek(p) == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        skip_all(p);
        if (keyval(p, out) != 0) {
            return -1;
        }
        skip_all(p);
        if (peek(p) == '}') {
            p->pos++;
            return 0;
        }
        if (peek(p) != ',') {
            return fail(p, "expected \",\" or \"}\" in inline table");
        }
        p->pos++;
    }
}

/* Digits with single underscores between them; returns false on a misplaced '_'. */
static bool
int_digits(const char *s, size_t n, int64_t *out, bool neg, bool *overflow)
{
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            if (i == 0 || i + 1 == n || s[i + 1] == '_') {
                return false;
            }
            continue;
        }
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (limit - d) / 10) {
            *overflow = true;
        } else {
            v = v * 10 + d;
        }
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static int
number(struct parser *p, struct toml_value *out)
{
    size_t start = p->pos;
    while (is_bare(peek(p)) || peek(p) == '+' || peek(p) == '.' || peek(p) == ':') {
        p->pos++;
    }
    const char *s = p->s + start;
    size_t n = p->pos - start;
    if (memchr(s, ':', n) != NULL || (n >= 10 && s[4] == '-' && s[7] == '-')) {
        return fail(p, "dates and times are not supported");
    }
    size_t sign = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    bool overflow = false;
    out->type = TOML_INT;
    if (n > sign && int_digits(s + sign, n - sign, &out->i, s[0] == '-', &overflow) &&
        !(s[sign] == '0' && n > sign + 1)) {
        return overflow ? fail(p, "integer %.*s out of range", (int)n, s) : 0;
    }
    bool special =
            n - sign == 3 && (memcmp(s + sign, "inf", 3) == 0 || memcmp(s + sign, "nan", 3) == 0);
    if (memchr(s, '.', n) || memchr(s, 'e', n) || memchr(s, 'E', n) || special) {
        return fail(p, "floating-point values are not supported: %.*s", (int)n, s);
    }
    return fail(p, "invalid value %.*s", (int)(n > 40 ? 40 : n), s);
}

/* Consumes w if it is next and not followed by a key character. */
static bool
word(struct parser *p, const char *w)
{
    size_t n = strlen(w);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0 || is_bare(peek_at(p, n))) {
        return false;
    }
    p->pos += n;
    return true;
}

static int
value(struct parser *p, struct toml_value *out)
{
    out->line = p->line;
    char c = peek(p);
    if (c == '"' || c == '\'') {
        out->type = TOML_STRING;
        return string(p, &out->str);
    }
    if (c == '[' || c == '{') {
        if (++p->depth > TOML_MAX_DEPTH) {
            return fail(p, "arrays and inline tables nested too deep");
        }
        int r = c == '[' ? array(p, out) : inline_table(p, out);
        p->depth--;
        return r;
    }
    if (word(p, "true") || word(p, "false")) {
        out->type = TOML_BOOL;
        out->b = c == 't';
        return 0;
    }
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'i' || c == 'n') {
        return number(p, out);
    }
    return fail(p, "expected a value, got \"%c\"", (unsigned char)c >= ' ' ? c : '?');
}

/* One step of a header path: the table under key k in t, created if missing. For the last
 * key of a [[header]] (array true) a new table is appended to an array of tables. */
static int
descend(struct parser *p, struct toml_value **t, char *k, bool last, bool array)
{
    struct toml_kv *kv = table_find(*t, k);
    struct toml_value fresh;
    memset(&fresh, 0, sizeof(fresh));
    fresh.line = p->line;
    if (kv == NULL) {
        fresh.type = array && last ? TOML_ARRAY : TOML_TABLE;
        fresh.table_array = array && last;
        *t = table_add(*t, k, p->line, &fresh);
    } else {
        free(k);
        k = NULL;
        *t = &kv->v;
    }
    struct toml_value *v = *t;
    if (v->type == TOML_ARRAY && !v->table_array) {
        return fail(p, "\"%s\" is already a static array", kv ? kv->key : "");
    }
    if (v->type != TOML_ARRAY && v->type != TOML_TABLE) {
        return fail(p, "\"%s\" is already a value of type %s", kv ? kv->key : "",
                    toml_type_name(v->type));
    }
    if (last && array != (v->type == TOML_ARRAY)) {
        return fail(p, "\"%s\" is already defined as %s", kv ? kv->key : "",
                    array ? "a table" : "an array of tables");
    }
    if (v->type == TOML_ARRAY) {
        if (last) {
            fresh.type = TOML_TABLE;
            v->items = t_realloc(v->items, (v->n_items + 1) * sizeof(*v->items));
            v->items[v->n_items++] = fresh;
        }
        *t = &v->items[v->n_items - 1];
        return 0;
    }
    return 0;
}

/* [a.b] or [[a.b]]: makes p->cur the table it names. */
static int
header(struct parser *p)
{
    bool array = peek_at(p, 1) == '[';
    p->pos += array ? 2 : 1;
    struct toml_value *t = p->root;
    for (;;) {
        skip_ws(p);
        char *k = NULL;
        if (key(p, &k) != 0) {
            return -1;
        }
        skip_ws(p);
        bool last = peek(p) != '.';
        if (descend(p, &t, k, last, array) != 0) {
            return -1;
        }
        if (last) {
            break;
        }
        p->pos++;
    }
    if (peek(p) != ']' || (array && peek_at(p, 1) != ']')) {
        return fail(p, "expected \"%s\" to close the table header", array ? "]]" : "]");
    }
    p->pos += array ? 2 : 1;
    if (!array && t->defined) {
        return fail(p, "table defined twice");
    }
    t->defined = true;
    t->line = p->line;
    p->cur = t;
    return 0;
}

static int
line_end(struct parser *p)
{
    skip_ws(p);
    skip_comment(p);
    if (!at_end(p) && !eat_newline(p)) {
        return fail(p, "unexpected text \"%c\" at end of line",
                    (unsigned char)peek(p) >= ' ' ? peek(p) : '?');
    }
    return 0;
}

struct toml_value *
toml_parse(const char *text, size_t len, struct toml_err *err)
{
    struct parser p = {text, len, 0, 1, 0, err, NULL, NULL};
    p.root = t_realloc(NULL, sizeof(*p.root));
    memset(p.root, 0, sizeof(*p.root));
    p.root->type = TOML_TABLE;
    p.root->defined = true;
    p.cur = p.root;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        p.pos = 3;
    }
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        for (const char *c = text; c < nul; c++) {
            p.line += *c == '\n';
        }
        fail(&p, "NUL byte in file");
        toml_free(p.root);
        return NULL;
    }
    while (!at_end(&p)) {
        skip_ws(&p);
        int r = 0;
        if (peek(&p) == '[') {
            r = header(&p);
        } else if (peek(&p) != '#' && peek(&p) != '\n' && peek(&p) != '\r' && !at_end(&p)) {
            r = keyval(&p, p.cur);
        }
        if (r != 0 || line_end(&p) != 0) {
            toml_free(p.root);
            return NULL;
        }
    }
    return p.root;
}
