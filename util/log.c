#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

/* The only file-static state besides relay/main.c: set once before threads start. */
static _Atomic int log_level_cur = LOG_INFO;
static _Atomic bool log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* One formatted line; longer events are truncated, never split. */
struct line {
    char buf[4096];
    size_t len;
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

static void
line_add(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep space for "}\n" */
    if (n > room) {
        n = room;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
line_str(struct line *l, const char *s)
{
    line_add(l, s, strlen(s));
}

/* Appends s[0..n) as the inside of a JSON string. */
static void
line_json(struct line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            line_add(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            line_add(l, esc, 6);
        } else {
            line_add(l, (const char *)&s[i], 1);
        }
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

/* Length of msg without its trailing " key=value" tokens (values without spaces). */
static size_t
msg_body_len(const char *msg, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t sp = end;
        while (sp > 0 && msg[sp - 1] != ' ') {
            sp--;
        }
        const char *tok = msg + sp;
        const char *eq = memchr(tok, '=', end - sp);
        if (sp == 0 || eq == NULL || eq == tok) {
            break;
        }
        end = sp - 1;
    }
    return end;
}

static bool
is_number(const char *s, size_t n)
{
    if (n == 0 || n > 20) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((s[i] < '0' || s[i] > '9') && !(i == 0 && s[i] == '-' && n > 1) && s[i] != '.') {
            return false;
        }
    }
    return s[n - 1] != '.';
}

static void
json_fields(struct line *l, const char *msg, size_t from, size_t n)
{
    size_t i = from;
    while (i < n) {
        while (i < n && msg[i] == ' ') {
            i++;
        }
        size_t j = i;
        while (j < n && msg[j] != ' ') {
            j++;
        }
        const char *eq = memchr(msg + i, '=', j - i);
        if (eq != NULL) {
            size_t kl = (size_t)(eq - (msg + i));
            size_t vl = j - i - kl - 1;
            line_str(l, ",\"");
            line_json(l, msg + i, kl);
            line_str(l, "\":");
            if (is_number(eq + 1, vl)) {
                line_add(l, eq + 1, vl);
            } else {
                line_str(l, "\"");
                line_json(l, eq + 1, vl);
                line_str(l, "\"");
            }
        }
        i = j;
    }
}

static void
json_name(struct line *l, const char *key, const char *v, size_t n)
{
    line_str(l, ",\"");
    line_str(l, key);
    line_str(l, "\":\"");
    line_json(l, v, n);
    line_str(l, "\"");
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
    json_name(l, "message", msg, body);
    json_fields(l, msg, body, n);
    line_str(l, "}");
}

static void
emit(enum log_level level, const char *relay, const char *backend, bool go, const char *msg)
{
    struct line l = {.len = 0};
    if (atomic_load_explicit(&log_json, memory_order_relaxed)) {
        emit_json(&l, level, relay, backend, msg);
    } else {
        char ts[64];
        time_text(ts, sizeof(ts), false);
        line_str(&l, ts);
        if (go) {
            line_add(&l, msg, msg_body_len(msg, strlen(msg)));
        } else {
            line_str(&l, level_names[level]);
            line_str(&l, " ");
            if (relay != NULL) {
                line_str(&l, relay);
                line_str(&l, ": ");
            }
            line_str(&l, msg);
        }
    }
    l.buf[l.len++] = '\n';
    ssize_t r = write(STDERR_FILENO, l.buf, l.len);
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
