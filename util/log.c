#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/dbuf.h"
#include "util/json.h"

/* The only file-static state besides relay/main.c: atomics, so a reload may change them while
 * other threads log (a line is formatted with the values it read). */
static _Atomic int log_level_cur = LOG_INFO;
static _Atomic bool log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* One formatted line in a fixed buffer (a log line never allocates); longer events are
 * truncated, never split. Content stops LINE_RESERVE bytes before the end of the storage: the
 * reserve closes a JSON object ("\"}") and holds the newline, so a truncated JSON line is still
 * one valid object. */
#define LINE_SIZE    4096
#define LINE_RESERVE 4
struct line {
    struct dbuf d; /* over buf */
    bool full;     /* something did not fit */
    char buf[LINE_SIZE];
};

void
log_init(enum log_level level, bool json)
{
    atomic_store(&log_level_cur, (int)level);
    atomic_store(&log_json, json);
}

bool
log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level_cur, memory_order_relaxed);
}

static size_t
line_room(const struct line *l)
{
    return l->d.len + LINE_RESERVE < LINE_SIZE ? LINE_SIZE - LINE_RESERVE - l->d.len : 0;
}

/* Text: as much of s as fits. */
static void
line_add(struct line *l, const char *s, size_t n)
{
    if (n > line_room(l)) {
        n = line_room(l);
        l->full = true;
    }
    (void)dbuf_append(&l->d, s, n);
}

/* A byte of the reserve (closing the line). */
static void
line_close(struct line *l, char c)
{
    dbuf_char(&l->d, c);
}

static void
line_str(struct line *l, const char *s)
{
    line_add(l, s, strlen(s));
}

/* JSON: all of s[0..n) or nothing, so an escape or a UTF-8 sequence is never cut. */
static void
line_unit(struct line *l, const char *s, size_t n)
{
    if (n > line_room(l)) {
        l->full = true;
        return;
    }
    line_add(l, s, n);
}

/* Appends s[0..n) as the inside of a JSON string (util/json.h, minimal flavour: control
 * characters as \u00XX, invalid UTF-8 such as a client's bytes in a debug line as U+FFFD), one
 * whole escape or character at a time, so every line is valid UTF-8 JSON. */
static void
line_json(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n && !l->full;) {
        char esc[JSON_ESC_MAX];
        size_t used = 1;
        size_t len = json_escape_one(s + i, n - i, JSON_ESC_MINIMAL, esc, &used);
        line_unit(l, esc, len);
        i += used;
    }
}

static void
time_text(char *out, size_t len, bool iso)
{
    int64_t ns = clock_real_ns();
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    if (iso) {
        char base[32];
        strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out, len, "%s.%06ldZ", base, (long)(ns % 1000000000) / 1000);
    } else {
        strftime(out, len, "%Y/%m/%d %H:%M:%S ", &tm);
    }
}

/* One space-separated token of a message. A key=value token has a key of [A-Za-z0-9_.-]; its
 * value runs to the next space, or is quoted: key="a b c" (ends at a quote followed by a space or
 * the end; the quotes are not part of the value). */
struct token {
    size_t start, end; /* msg[start..end) */
    bool kv;
    bool quoted;
    size_t kl;    /* key: msg[start..start+kl) */
    size_t v, vl; /* value: msg[v..v+vl) */
};

static bool
is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* The closing quote of a value opened at msg[from - 1], or n when there is none. */
static size_t
closing_quote(const char *msg, size_t n, size_t from)
{
    for (size_t j = from; j < n; j++) {
        if (msg[j] == '"' && (j + 1 == n || msg[j + 1] == ' ')) {
            return j;
        }
    }
    return n;
}

/* Reads the token at or after i into *t; returns its end (n when there is none). */
static size_t
next_token(const char *msg, size_t n, size_t i, struct token *t)
{
    while (i < n && msg[i] == ' ') {
        i++;
    }
    size_t k = i;
    while (k < n && is_key_char(msg[k])) {
        k++;
    }
    *t = (struct token){.start = i, .kv = k > i && k < n && msg[k] == '=', .kl = k - i};
    t->v = k + 1;
    size_t q = t->kv && t->v < n && msg[t->v] == '"' ? closing_quote(msg, n, t->v + 1) : n;
    if (q < n) {
        t->quoted = true;
        t->v++;
        t->end = q + 1;
    } else {
        t->end = i;
        while (t->end < n && msg[t->end] != ' ') {
            t->end++;
        }
    }
    t->vl = t->kv ? (t->quoted ? q : t->end) - t->v : 0;
    return t->end;
}

/* Where msg's trailing key=value tokens start (n when it has none). The first token is always
 * part of the message. */
static size_t
fields_start(const char *msg, size_t n)
{
    size_t start = n;
    struct token t;
    size_t i = next_token(msg, n, 0, &t);
    while (i < n) {
        i = next_token(msg, n, i, &t);
        if (!t.kv) {
            start = n;
        } else if (start == n) {
            start = t.start;
        }
    }
    return start;
}

/* Length of msg without its trailing key=value tokens and the spaces before them. */
static size_t
msg_body_len(const char *msg, size_t n)
{
    size_t end = fields_start(msg, n);
    while (end > 0 && msg[end - 1] == ' ') {
        end--;
    }
    return end;
}

static bool
is_number(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-' ? 1 : 0;
    size_t int_start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    size_t int_len = i - int_start;
    if (n > 18 || int_len == 0 || (int_len > 1 && s[int_start] == '0')) {
        return false;
    }
    if (i < n && s[i] == '.') {
        size_t frac_start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        if (i == frac_start) {
            return false;
        }
    }
    return i == n;
}

/* Member names the line itself uses; a field of the same name is written as field_NAME. */
static bool
is_reserved_key(const char *k, size_t n)
{
    static const char *const reserved[] = {"time", "level", "message", "relay", "backend"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strlen(reserved[i]) == n && memcmp(reserved[i], k, n) == 0) {
            return true;
        }
    }
    return false;
}

/* One member ,"key":value for a key=value token — all of it, or nothing when it does not fit. */
static void
json_member(struct line *l, const char *msg, const struct token *t)
{
    size_t mark = l->d.len;
    if (l->full) {
        return;
    }
    line_unit(l, ",\"", 2);
    if (is_reserved_key(msg + t->start, t->kl)) {
        line_unit(l, "field_", 6);
    }
    line_json(l, msg + t->start, t->kl);
    line_unit(l, "\":", 2);
    if (!t->quoted && is_number(msg + t->v, t->vl)) {
        line_unit(l, msg + t->v, t->vl);
    } else {
        line_unit(l, "\"", 1);
        line_json(l, msg + t->v, t->vl);
        line_unit(l, "\"", 1);
    }
    if (l->full) {
        l->d.len = mark;
    }
}

/* The key=value tokens of msg[from..n) as members. */
static void
json_fields(struct line *l, const char *msg, size_t from, size_t n)
{
    struct token t;
    for (size_t i = from; i < n;) {
        i = next_token(msg, n, i, &t);
        if (t.kv) {
            json_member(l, msg, &t);
        }
    }
}

/* A string member the line itself sets (never renamed, never a number). */
static void
json_name(struct line *l, const char *key, const char *v, size_t n)
{
    size_t mark = l->d.len;
    line_unit(l, ",\"", 2);
    line_str(l, key);
    line_unit(l, "\":\"", 3);
    line_json(l, v, n);
    line_unit(l, "\"", 1);
    if (l->full) {
        l->d.len = mark;
    }
}

static void
emit_json(struct line *l, enum log_level level, const char *relay, const char *backend,
          const char *msg)
{
    char ts[64];
    time_text(ts, sizeof(ts), true);
    line_str(l, "{\"time\":\"");
    line_str(l, ts);
    line_str(l, "\",\"level\":\"");
    line_str(l, level_names[level]);
    line_str(l, "\"");
    if (relay != NULL) {
        const char *slash = backend == NULL ? strchr(relay, '/') : NULL;
        json_name(l, "relay", relay, slash ? (size_t)(slash - relay) : strlen(relay));
        if (slash != NULL) {
            json_name(l, "backend", slash + 1, strlen(slash + 1));
        }
    }
    if (backend != NULL) {
        json_name(l, "backend", backend, strlen(backend));
    }
    size_t n = strlen(msg);
    size_t body = msg_body_len(msg, n);
    /* The message may be cut (at a character boundary), and is then closed in the reserve. */
    line_unit(l, ",\"message\":\"", 12);
    line_json(l, msg, body);
    line_close(l, '"');
    json_fields(l, msg, body, n);
    line_close(l, '}');
}

/* Text: control characters would split the event over lines; newline and CR are shown as \n and
 * \r, the others as a space. */
static void
line_text(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '\r') {
            line_add(l, s[i] == '\n' ? "\\n" : "\\r", 2);
        } else {
            line_add(l, (unsigned char)s[i] < 0x20 ? " " : s + i, 1);
        }
    }
}

static void
emit_text(struct line *l, enum log_level level, const char *relay, bool go, const char *msg)
{
    char ts[64];
    time_text(ts, sizeof(ts), false);
    line_str(l, ts);
    if (go) {
        line_text(l, msg, msg_body_len(msg, strlen(msg)));
        return;
    }
    line_str(l, level_names[level]);
    line_str(l, " ");
    if (relay != NULL) {
        line_str(l, relay);
        line_str(l, ": ");
    }
    line_text(l, msg, strlen(msg));
}

static void
emit(enum log_level level, const char *relay, const char *backend, bool go, const char *msg)
{
    struct line l;
    dbuf_init_fixed(&l.d, l.buf, sizeof(l.buf));
    l.full = false;
    if (atomic_load_explicit(&log_json, memory_order_relaxed)) {
        emit_json(&l, level, relay, backend, msg);
    } else {
        emit_text(&l, level, relay, go, msg);
    }
    line_close(&l, '\n');
    ssize_t r = write(STDERR_FILENO, l.d.p, l.d.len);
    (void)r;
}

void
log_msg(enum log_level level, const char *who, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, who, NULL, false, msg);
}

void
log_go(enum log_level level, const char *relay, const char *backend, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, relay, backend, true, msg);
}

void
fatal(const char *fmt, ...)
{
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(LOG_ERROR, NULL, NULL, false, msg);
    exit(1);
}
