#include "http/h_write.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/payload.h"
#include "buffer/rdv.h"
#include "http/inflate.h"
#include "lp/lp.h"
#include "util/clock.h"
#include "util/dbuf.h"
#include "util/log.h"
#include "util/strconv.h"
#include "util/xalloc.h"

struct h_write {
    const struct h_write_ctx *x; /* borrowed */
    struct reply refused;        /* status != 0: decided before the body ended; discard the rest */
    struct dbuf body;
    struct inflate_gz *gz; /* owned, NULL unless Content-Encoding: gzip */
    size_t raw_len;        /* bytes received on the wire (compressed for gzip) */
    enum lp_prec prec;
    char *query; /* owned: forwarded query string */
    char *auth;  /* owned: Authorization value, or NULL */
};

/* The query parameters forwarded to backends, in this order. Nothing else leaks through. */
static const char *const FORWARDED[] = {"db", "rp", "precision", "u", "p", "consistency"};

static bool
url_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Appends "&key=<value URL-encoded>" (without '&' when q is empty). q has room (see caller). */
static void
query_add(char *q, size_t *qlen, const char *key, const char *v, size_t vlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = *qlen;
    if (o > 0) {
        q[o++] = '&';
    }
    size_t klen = strlen(key);
    memcpy(q + o, key, klen);
    o += klen;
    q[o++] = '=';
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (url_unreserved(c)) {
            q[o++] = (char)c;
        } else {
            q[o++] = '%';
            q[o++] = hex[c >> 4];
            q[o++] = hex[c & 0xf];
        }
    }
    q[o] = '\0';
    *qlen = o;
}

/* Looks up a query parameter; returns true when present, with its decoded value. */
static bool
query_get(struct MHD_Connection *c, const char *key, const char **v, size_t *len)
{
    *v = NULL;
    *len = 0;
    if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, key, strlen(key), v, len) !=
        MHD_YES) {
        return false;
    }
    if (*v == NULL) {
        /* "?rp" without '=': present, empty. */
        *v = "";
        *len = 0;
    }
    return true;
}

/* Builds the forwarded query: default-retention-policy fills rp only when the request has none,
 * precision goes out as the canonical letter influxd 1.x understands. */
static char *
write_query(struct h_write *w, struct MHD_Connection *c, bool has_prec)
{
    const char *vals[IR_ARRAY_LEN(FORWARDED)];
    size_t lens[IR_ARRAY_LEN(FORWARDED)];
    bool present[IR_ARRAY_LEN(FORWARDED)];
    size_t room = 1;
    for (size_t i = 0; i < IR_ARRAY_LEN(FORWARDED); i++) {
        present[i] = query_get(c, FORWARDED[i], &vals[i], &lens[i]);
        if (i == 1 && lens[i] == 0 && w->x->conf->default_rp != NULL) {
            vals[i] = w->x->conf->default_rp;
            lens[i] = strlen(vals[i]);
            present[i] = true;
        }
        if (i == 2) {
            present[i] = has_prec;
            vals[i] = has_prec ? lp_prec_name(w->prec) : "";
            lens[i] = strlen(vals[i]);
        }
        room += strlen(FORWARDED[i]) + 2 + 3 * lens[i];
    }
    char *q = xmalloc(room);
    size_t qlen = 0;
    q[0] = '\0';
    for (size_t i = 0; i < IR_ARRAY_LEN(FORWARDED); i++) {
        if (present[i]) {
            query_add(q, &qlen, FORWARDED[i], vals[i], lens[i]);
        }
    }
    return q;
}

/* Validates db and precision; false when the request is refused (w->refused filled). */
static bool
write_check_params(struct h_write *w, struct MHD_Connection *c, bool *has_prec)
{
    const char *v = NULL;
    size_t len = 0;
    if (!query_get(c, "db", &v, &len) || len == 0) {
        reply_error(&w->refused, 400, "missing parameter: db");
        return false;
    }
    w->prec = LP_PREC_NS;
    *has_prec = query_get(c, "precision", &v, &len) && len > 0;
    if (*has_prec && lp_prec_parse(v, len, &w->prec) != 0) {
        reply_error3(&w->refused, 400, "invalid precision \"", v, len,
                     "\": must be one of n, ns, u, us, ms, s, m, h");
        return false;
    }
    return true;
}

/* A body announced above max-body-mb is refused at once (MHD then closes the connection without
 * reading it) when the client waits for "100 Continue" or announced more than twice the bound;
 * otherwise it is read and dropped, so the 413 reaches clients that send before they read, and
 * the keep-alive connection survives. */
static bool
write_answer_early(struct MHD_Connection *c, uint64_t announced, size_t max)
{
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect");
    return expect != NULL || announced / 2 > max;
}

/* The Content-Length, or 0 when absent (chunked) or unreadable. */
static int64_t
write_announced(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    int64_t n = 0;
    if (cl == NULL || strconv_i64z(cl, 0, INT64_MAX, &n) != 0) {
        return 0;
    }
    return n;
}

struct h_write *
h_write_new(const struct h_write_ctx *x, struct MHD_Connection *c, struct reply *now)
{
    struct h_write *w = xcalloc(1, sizeof(*w));
    w->x = x;
    size_t max = (size_t)x->conf->max_body_bytes;
    dbuf_init(&w->body, max);
    int64_t announced = write_announced(c);
    bool too_big = (uint64_t)announced > max;
    if (too_big && write_answer_early(c, (uint64_t)announced, max)) {
        reply_error(now, 413, "http: request body too large");
        return w;
    }
    bool has_prec = false;
    if (!write_check_params(w, c, &has_prec)) {
        return w;
    }
    if (too_big) {
        reply_error(&w->refused, 413, "http: request body too large");
        return w;
    }
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (enc != NULL && strcmp(enc, "gzip") == 0) {
        w->gz = inflate_new();
        if (w->gz == NULL) {
            reply_error(&w->refused, 503, "out of memory");
            return w;
        }
    } else if (announced > 0) {
        /* Known size: one allocation of exactly that much. */
        if (dbuf_reserve(&w->body, 0, (size_t)announced) != DBUF_OK) {
            reply_error(&w->refused, 503, "out of memory");
            return w;
        }
    }
    w->query = write_query(w, c, has_prec);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    w->auth = auth != NULL ? xstrdup(auth) : NULL;
    return w;
}

void
h_write_feed(struct h_write *w, const char *data, size_t len)
{
    if (w->refused.status != 0) {
        return;
    }
    size_t max = w->body.max;
    w->raw_len += len;
    enum dbuf_status bst = DBUF_OK;
    if (w->raw_len > max) {
        /* Compressed or not, the wire bytes obey the bound too. */
        bst = DBUF_TOO_BIG;
    } else if (w->gz != NULL) {
        enum inflate_status ist = inflate_feed(w->gz, data, len, &w->body);
        bst = ist == INFLATE_TOO_BIG ? DBUF_TOO_BIG : ist == INFLATE_NOMEM ? DBUF_NOMEM : DBUF_OK;
        if (ist == INFLATE_CORRUPT) {
            reply_error(&w->refused, 400, inflate_error(w->gz));
        }
    } else {
        bst = dbuf_append(&w->body, data, len);
    }
    if (bst == DBUF_TOO_BIG) {
        reply_error(&w->refused, 413, "http: request body too large");
    } else if (bst == DBUF_NOMEM) {
        reply_error(&w->refused, 503, "out of memory");
    }
    if (w->refused.status != 0) {
        dbuf_cleanup(&w->body);
    }
}

/* Turns the backends' verdict into the client's answer (influxdb-relay(8), "Partial writes"). */
static void
write_answer(struct h_write *w, struct rdv_answer *a, const struct lp_result *res, struct reply *r)
{
    if (a->status >= 200 && a->status < 300) {
        if (res->dropped == 0) {
            reply_empty(r, 204);
            return;
        }
        char suffix[48];
        snprintf(suffix, sizeof(suffix), " dropped=%zu", res->dropped);
        reply_error3(r, 400, "partial write: ", res->errors, res->errors_len, suffix);
        return;
    }
    if (a->body != NULL) {
        reply_body(r, a->status, a->body, a->body_len, NULL);
        a->body = NULL;
        r->ctype = a->content_type;
        a->content_type = NULL;
        if (r->ctype == NULL) {
            r->ctype_static = "application/json";
        }
    } else if (a->status >= 500) {
        reply_error(r, a->status, "unable to write points");
    } else {
        reply_empty(r, a->status); /* a backend's 4xx without a body stays without one */
    }
    if (a->status == 503 && a->nothing_kept) {
        /* Nothing was kept (withdrawn everywhere, no backend may have stored it): a retry is
         * safe. Otherwise the error text says the write may have been stored. */
        int64_t s = (w->x->conf->write_timeout_ms + 999) / 1000;
        r->retry_after_s = s < 1 ? 1 : s > UINT_MAX ? UINT_MAX : (unsigned)s;
    }
}

/* Submits one payload to every backend and waits for the verdict. Takes ownership of p. */
static void
write_fan_out(struct h_write *w, struct payload *p, const struct lp_result *res, struct reply *r)
{
    const struct conf_http *conf = w->x->conf;
    unsigned n = (unsigned)conf->n_outputs;
    int64_t deadline_ms = clock_mono_ms() + conf->write_timeout_ms;
    struct rdv *rv = rdv_new(n, conf->write_consistency, deadline_ms);
    for (unsigned i = 0; i < n; i++) {
        if (backend_submit(w->x->backends[i], p, rv, i) == BACKEND_FULL) {
            rdv_report(rv, i, RDV_FULL, 0, NULL, 0, NULL);
        }
    }
    /* The queues hold their own references now. */
    payload_unref(p);
    struct rdv_answer a = {0};
    rdv_wait(rv, deadline_ms, &a);
    write_answer(w, &a, res, r);
    rdv_answer_cleanup(&a);
    rdv_unref(rv);
}

/* Validates the complete body and forwards its valid lines. */
static void
write_process(struct h_write *w, struct reply *r)
{
    struct httpd_stats *st = w->x->stats;
    atomic_fetch_add_explicit(&st->bytes_received, w->body.len, memory_order_relaxed);
    dbuf_terminate_line(&w->body);
    struct lp_result res = {0};
    const char *in = w->body.p != NULL ? w->body.p : "";
    if (lp_process(in, w->body.len, w->prec, clock_real_ns(), &res) != 0) {
        reply_error(r, 503, "out of memory");
        goto out;
    }
    atomic_fetch_add_explicit(&st->points_received, res.points, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->lines_rejected, res.dropped, memory_order_relaxed);
    if (res.points == 0) {
        if (res.dropped > 0) {
            reply_error3(r, 400, "", res.errors, res.errors_len, "");
        } else {
            reply_empty(r, 204); /* only blank lines and comments: nothing to forward */
        }
        goto out;
    }
    /* The payload takes lp's output buffer, or the body itself when lp changed nothing. */
    char *buf = res.buf != NULL ? res.buf : dbuf_take(&w->body);
    res.buf = NULL;
    struct payload *p =
            payload_new(PAYLOAD_WRITE, buf, res.data, res.len, res.points, w->query, w->auth);
    w->query = NULL;
    w->auth = NULL;
    write_fan_out(w, p, &res, r);
out:
    lp_result_cleanup(&res);
}

void
h_write_finish(struct h_write *w, struct reply *r)
{
    if (w->refused.status == 0 && w->gz != NULL && inflate_finish(w->gz) != INFLATE_OK) {
        reply_error(&w->refused, 400, inflate_error(w->gz));
    }
    if (w->refused.status != 0) {
        *r = w->refused;
        memset(&w->refused, 0, sizeof(w->refused));
        return;
    }
    write_process(w, r);
}

void
h_write_free(struct h_write *w)
{
    if (w == NULL) {
        return;
    }
    reply_cleanup(&w->refused);
    dbuf_cleanup(&w->body);
    inflate_free(w->gz);
    free(w->query);
    free(w->auth);
    free(w);
}
