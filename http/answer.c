/* The answer rules of a forwarded write (docs/queue-and-retry.md): first decisive answer
 * passed on, the relay's own JSON errors otherwise. The relay's errors here are written without
 * the final newline of reply_error(), as the answers have always been. */
#include "http/answer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "util/dbuf.h"
#include "util/json.h"
#include "util/xalloc.h"

/* Said on a 503 after which a backend may hold or have stored the write: no Retry-After then. */
#define MAY_BE_STORED                                                                              \
    ": the write may have been stored by some backends; retrying may store it twice"

/* Fills r with the relay's own JSON error {"error":"<msg>[suffix]"} (msg and suffix are literals
 * without characters to escape). */
static void
own_error(struct reply *r, int status, const char *msg, bool may_be_stored)
{
    char json[256];
    int n = snprintf(json, sizeof(json), "{\"error\":\"%s%s\"}", msg,
                     may_be_stored ? MAY_BE_STORED : "");
    reply_body(r, status, xstrdup(json), (size_t)n, "application/json");
}

/* The backend's answer, passed on; its Content-Type or, without one, JSON's. */
static void
passed_on(struct rdv_verdict *v, struct reply *r)
{
    reply_body(r, v->status, v->body, v->body_len, NULL);
    v->body = NULL;
    r->ctype = v->content_type;
    v->content_type = NULL;
    if (r->ctype == NULL) {
        r->ctype_static = "application/json";
    }
}

static void
answer_ok(const struct answer_partial *partial, struct reply *r)
{
    if (partial == NULL || partial->dropped == 0) {
        reply_empty(r, 204);
        return;
    }
    char suffix[48];
    snprintf(suffix, sizeof(suffix), " dropped=%zu", partial->dropped);
    reply_error3(r, 400, "partial write: ", partial->errors, partial->errors_len, suffix);
}

void
answer_verdict(struct rdv_verdict *v, const struct answer_partial *partial, unsigned retry_after_s,
               struct reply *r)
{
    bool ours = v->body == NULL;
    bool kept = !v->nothing_kept;
    switch (v->kind) {
    case RDV_VERDICT_OK:
        answer_ok(partial, r);
        return;
    case RDV_VERDICT_REJECTED:
        if (ours) {
            own_error(r, v->status, "rejected by backend", false);
        } else {
            passed_on(v, r);
        }
        return;
    case RDV_VERDICT_FAILED:
        if (v->status == 0) {
            own_error(r, 503, v->full ? "buffer full" : "unable to write points", kept);
        } else if (ours || (v->status == 503 && kept)) {
            /* A backend's own 503 would invite a retry: after one that may have kept the
             * write, the relay says so instead. */
            own_error(r, v->status, "unable to write points", kept && v->status == 503);
        } else {
            passed_on(v, r);
        }
        break;
    case RDV_VERDICT_TIMEOUT:
        own_error(r, 503, "timeout", kept);
        break;
    }
    if (r->status == 503 && !kept) {
        r->retry_after_s = retry_after_s;
    }
}

/* The most bytes of a message put in X-Influxdb-Error (influxd 1.8 cuts it there too). */
#define V2_HEADER_MAX 1024

static const char *
v2_code(int status)
{
    switch (status) {
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not found";
    case 405:
        return "method not allowed";
    case 413:
        return "request too large";
    case 422:
        return "unprocessable entity";
    case 429:
        return "too many requests";
    case 503:
        return "unavailable";
    default:
        return status < 500 ? "invalid" : "internal error";
    }
}

/* The message of an error answer, appended to m (see answer_v2_shape()). */
static void
v2_message(const struct reply *r, struct dbuf *m)
{
    if (r->body != NULL && json_member_string(r->body, r->len, "error", m) == 0) {
        return;
    }
    dbuf_cleanup(m);
    size_t n = r->body != NULL ? r->len : 0;
    while (n > 0 && strchr(" \t\r\n", r->body[n - 1]) != NULL) {
        n--;
    }
    if (n > 0) {
        (void)dbuf_append(m, r->body, n);
    } else {
        const char *phrase = MHD_get_reason_phrase_for((unsigned)r->status);
        if (phrase != NULL && phrase[0] != '\0' && strcmp(phrase, "Unknown") != 0) {
            dbuf_str(m, phrase);
        } else {
            dbuf_str(m, "status ");
            dbuf_u64(m, (uint64_t)r->status);
        }
    }
}

/* X-Influxdb-Error: the message on one line, at most V2_HEADER_MAX bytes, not cutting a UTF-8
 * sequence. */
static char *
v2_header(const char *msg, size_t len)
{
    size_t n = len > V2_HEADER_MAX ? V2_HEADER_MAX : len;
    while (n < len && n > 0 && ((unsigned char)msg[n] & 0xc0) == 0x80) {
        n--;
    }
    char *h = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        h[i] = msg[i];
        if (c < 0x20 || c == 0x7f) {
            h[i] = ' ';
        }
    }
    h[n] = '\0';
    return h;
}

void
answer_v2_shape(struct reply *r)
{
    if (r->status < 400) {
        return;
    }
    struct dbuf m;
    dbuf_init(&m, DBUF_NO_BOUND);
    v2_message(r, &m);
    struct dbuf b;
    dbuf_init(&b, DBUF_NO_BOUND);
    dbuf_str(&b, "{\"code\":\"");
    dbuf_str(&b, v2_code(r->status));
    dbuf_str(&b, "\",\"message\":\"");
    json_escape(&b, m.p != NULL ? m.p : "", m.len, JSON_ESC_GO);
    dbuf_str(&b, "\"}\n");
    size_t len = 0;
    char *body = dbuf_finish(&b, &len);
    free(r->influx_error);
    r->influx_error = v2_header(m.p != NULL ? m.p : "", m.len);
    dbuf_cleanup(&m);
    free(r->ctype);
    r->ctype = NULL;
    if (body == NULL) {
        reply_error(r, r->status, "out of memory");
        return;
    }
    reply_body(r, r->status, body, len, "application/json; charset=utf-8");
    r->oom = false;
}
