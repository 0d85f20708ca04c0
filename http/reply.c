#include "http/reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

/* Used when even the error body cannot be allocated. */
static const char OOM_BODY[] = "{\"error\":\"out of memory\"}\n";

void
reply_empty(struct reply *r, int status)
{
    r->status = status;
    r->body = NULL;
    r->len = 0;
}

void
reply_body(struct reply *r, int status, char *body, size_t len, const char *ctype)
{
    r->status = status;
    free(r->body);
    r->body = body;
    r->len = len;
    r->ctype_static = ctype;
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when it is invalid (Go's json encoder
 * writes \ufffd for each such byte). */
static size_t
utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (c < 0xc2 || c > 0xf4 || len < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    /* Overlongs, surrogates and values above U+10FFFF. */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f)) {
        return 0;
    }
    return n;
}

/* Copies the NUL-terminated s (without its NUL) to out; returns its length. */
static size_t
put(char *out, const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        out[n] = s[n];
    }
    return n;
}

/* One ASCII byte the way Go's encoding/json (with HTML escaping, as influxd uses it) writes it. */
static size_t
escape_ascii(char *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
    case '\\':
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    case '\n':
        return put(out, "\\n");
    case '\r':
        return put(out, "\\r");
    case '\t':
        return put(out, "\\t");
    default:
        break;
    }
    if (c < 0x20 || c == '<' || c == '>' || c == '&') {
        put(out, "\\u00");
        out[4] = hex[c >> 4];
        out[5] = hex[c & 0xf];
        return 6;
    }
    out[0] = (char)c;
    return 1;
}

size_t
reply_json_escape(char *out, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            o += escape_ascii(out + o, u[i]);
            i++;
            continue;
        }
        size_t n = utf8_seq_len(u + i, len - i);
        if (n == 0) {
            o += put(out + o, "\\ufffd");
            i++;
        } else if (n == 3 && u[i] == 0xe2 && u[i + 1] == 0x80 && (u[i + 2] & 0xfe) == 0xa8) {
            /* U+2028 and U+2029, which Go escapes for JavaScript. */
            o += put(out + o, u[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
            i += 3;
        } else {
            memcpy(out + o, u + i, n);
            o += n;
            i += n;
        }
    }
    return o;
}

void
reply_error3(struct reply *r, int status, const char *prefix, const char *msg, size_t len,
             const char *suffix)
{
    size_t plen = strlen(prefix);
    size_t slen = strlen(suffix);
    r->status = status;
    r->ctype_static = "application/json";
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->oom = true;
    /* {"error":" + escaped parts + "}\n + NUL; each input byte grows to at most 6 bytes. */
    if (len > (SIZE_MAX - 64) / 6 - plen - slen) {
        return;
    }
    char *b = malloc(16 + 6 * (plen + len + slen));
    if (b == NULL) {
        return;
    }
    r->oom = false;
    size_t o = 0;
    o = put(b, "{\"error\":\"");
    o += reply_json_escape(b + o, prefix, plen);
    o += reply_json_escape(b + o, msg, len);
    o += reply_json_escape(b + o, suffix, slen);
    /* influxd and the Go relay end their JSON errors with a newline. */
    o += put(b + o, "\"}\n");
    b[o] = '\0';
    r->body = b;
    r->len = o;
}

void
reply_error(struct reply *r, int status, const char *msg)
{
    reply_error3(r, status, "", msg, strlen(msg), "");
}

void
reply_cleanup(struct reply *r)
{
    free(r->body);
    free(r->ctype);
    r->body = NULL;
    r->ctype = NULL;
    r->len = 0;
    r->oom = false;
}

static struct MHD_Response *
reply_response(struct reply *r)
{
    if (r->body != NULL) {
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (resp != NULL) {
            r->body = NULL; /* MHD frees it now */
        }
        return resp;
    }
    if (!r->oom) {
        return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    /* An error whose body could not be allocated: a fixed one. */
    r->ctype_static = "application/json";
    return MHD_create_response_from_buffer(sizeof(OOM_BODY) - 1, IR_UNCONST(OOM_BODY),
                                           MHD_RESPMEM_PERSISTENT);
}

enum MHD_Result
reply_queue(struct MHD_Connection *c, struct reply *r)
{
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *resp = reply_response(r);
    if (resp == NULL) {
        goto out;
    }
    const char *ctype = r->ctype != NULL ? r->ctype : r->ctype_static;
    if (ctype != NULL && r->status != 204) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    }
    if (r->allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    }
    if (r->retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%u", r->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->version_header) {
        MHD_add_response_header(resp, "X-InfluxDB-Version", "relay");
    }
    if (r->close) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
out:
    reply_cleanup(r);
    return ret;
}
