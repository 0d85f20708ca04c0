#include "http/h_write.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/payload.h"
#include "buffer/rdv.h"
#include "http/answer.h"
#include "http/inflate.h"
#include "lp/lp.h"
#include "util/clock.h"
#include "util/dbuf.h"
#include "util/form.h"
#include "util/log.h"
#include "util/strconv.h"
#include "util/xalloc.h"

struct h_write {
    const struct h_write_ctx *x; /* borrowed */
    struct reply refused;        /* status != 0: decided before the body ended; discard the rest */
    struct dbuf body;
    struct inflate_gz *gz; /* owned, NULL unless Content-Encoding: gzip */
    size_t raw_len;        /* bytes received on the wire (compressed for gzip) */
    uint64_t charged;      /* bytes taken from max-inflight-mb, given back in h_write_free() */
    enum lp_prec prec;
    char *query;          /* owned: forwarded query string */
    char *auth;           /* owned: Authorization value, or NULL */
    struct rdv *rv;       /* owned reference while forwarded and not finished, else NULL */
    struct lp_result res; /* the forwarded body's validation: a partial write's errors */
};

/* The query parameters forwarded to backends, in this order. Nothing else leaks through. */
static const char *const FORWARDED[] = {"db", "rp", "precision", "u", "p", "consistency"};

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
    struct dbuf q;
    dbuf_init(&q, DBUF_NO_BOUND);
    for (size_t i = 0; i < IR_ARRAY_LEN(FORWARDED); i++) {
        const char *val = NULL;
        size_t len = 0;
        bool present = query_get(c, FORWARDED[i], &val, &len);
        if (i == 1 && len == 0 && w->x->conf->default_rp != NULL) {
            val = w->x->conf->default_rp;
            len = strlen(val);
            present = true;
        }
        if (i == 2) {
            present = has_prec;
            val = has_prec ? lp_prec_name(w->prec) : "";
            len = strlen(val);
        }
        if (present) {
            form_add(&q, FORWARDED[i], val, len);
        }
    }
    size_t n = 0;
    char *s = dbuf_finish(&q, &n);
    if (s == NULL) {
        xalloc_die(); /* a few hundred bytes (the URL's own parameters) */
    }
    return s;
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

/* Seconds of Retry-After on a 503 after which nothing was kept: the relay's write-timeout. */
static unsigned
write_retry_after_s(const struct h_write *w)
{
    int64_t s = (w->x->conf->write_timeout_ms + 999) / 1000;
    return s < 1 ? 1 : s > UINT_MAX ? UINT_MAX : (unsigned)s;
}

/* Takes n more bytes from max-inflight-mb; false (w->refused filled: 503, nothing kept) when
 * the process holds too much already. */
static bool
write_charge(struct h_write *w, uint64_t n)
{
    if (inflight_take(w->x->inflight, n)) {
        w->charged += n;
        return true;
    }
    atomic_fetch_add_explicit(&w->x->stats->inflight_refused, 1, memory_order_relaxed);
    reply_error(&w->refused, 503, "too many request bytes in flight (max-inflight-mb)");
    w->refused.retry_after_s = write_retry_after_s(w);
    return false;
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
    if (announced > 0 && !write_charge(w, (uint64_t)announced)) {
        /* Not read when the client waits for "100 Continue": nothing of it crosses the wire. */
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect") != NULL) {
            *now = w->refused;
            memset(&w->refused, 0, sizeof(w->refused));
        }
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
    } else if (w->body.len > w->charged) {
        (void)write_charge(w, w->body.len - w->charged); /* chunked or inflated growth */
    }
    if (w->refused.status != 0) {
        /* The rest of the upload is discarded: nothing of it is held any more. */
        dbuf_cleanup(&w->body);
        inflight_give(w->x->inflight, w->charged);
        w->charged = 0;
    }
}

/* Submits one payload to every backend. Takes ownership of p. */
static enum h_write_step
write_fan_out(struct h_write *w, struct payload *p, struct reply *r)
{
    const struct conf_http *conf = w->x->conf;
    unsigned n = (unsigned)conf->n_outputs;
    w->rv = rdv_new(n, conf->write_consistency, clock_mono_ms() + conf->write_timeout_ms);
    for (unsigned i = 0; i < n; i++) {
        if (backend_submit(w->x->backends[i], p, w->rv, i) == BACKEND_FULL) {
            rdv_report(w->rv, i, RDV_FULL, 0, NULL, 0, NULL);
        }
    }
    /* The queues hold their own references now. */
    payload_unref(p);
    if (!rdv_is_decided(w->rv)) {
        return H_WRITE_WAIT;
    }
    h_write_finish(w, r); /* any, or every backend known down or full */
    return H_WRITE_ANSWER;
}

/* Validates the complete body and forwards its valid lines. */
static enum h_write_step
write_process(struct h_write *w, struct reply *r)
{
    struct httpd_stats *st = w->x->stats;
    atomic_fetch_add_explicit(&st->bytes_received, w->body.len, memory_order_relaxed);
    dbuf_terminate_line(&w->body);
    struct lp_result *res = &w->res;
    const char *in = w->body.p != NULL ? w->body.p : "";
    if (lp_process(in, w->body.len, w->prec, clock_real_ns(), res) != 0) {
        reply_error(r, 503, "out of memory");
        return H_WRITE_ANSWER;
    }
    atomic_fetch_add_explicit(&st->points_received, res->points, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->lines_rejected, res->dropped, memory_order_relaxed);
    if (res->points == 0) {
        if (res->dropped > 0) {
            reply_error3(r, 400, "", res->errors, res->errors_len, "");
        } else {
            reply_empty(r, 204); /* only blank lines and comments: nothing to forward */
        }
        return H_WRITE_ANSWER;
    }
    /* The payload takes lp's output buffer, or the body itself when lp changed nothing. */
    char *buf = res->buf != NULL ? res->buf : dbuf_take(&w->body);
    res->buf = NULL;
    struct payload *p =
            payload_new(PAYLOAD_WRITE, buf, res->data, res->len, res->points, w->query, w->auth);
    w->query = NULL;
    w->auth = NULL;
    return write_fan_out(w, p, r);
}

enum h_write_step
h_write_start(struct h_write *w, struct reply *r)
{
    if (w->refused.status == 0 && w->gz != NULL && inflate_finish(w->gz) != INFLATE_OK) {
        reply_error(&w->refused, 400, inflate_error(w->gz));
    }
    if (w->refused.status != 0) {
        *r = w->refused;
        memset(&w->refused, 0, sizeof(w->refused));
        return H_WRITE_ANSWER;
    }
    return write_process(w, r);
}

bool
h_write_notify(struct h_write *w, struct timer *t, unsigned lane, rdv_wake_fn wake, void *arg)
{
    return rdv_notify(w->rv, t, lane, wake, arg);
}

void
h_write_finish(struct h_write *w, struct reply *r)
{
    struct rdv_verdict v;
    rdv_finish(w->rv, &v);
    rdv_unref(w->rv);
    w->rv = NULL;
    struct answer_partial partial = {w->res.dropped, w->res.errors, w->res.errors_len};
    answer_verdict(&v, &partial, write_retry_after_s(w), r);
    rdv_verdict_cleanup(&v);
}

void
h_write_free(struct h_write *w)
{
    if (w == NULL) {
        return;
    }
    if (w->rv != NULL) {
        /* The client went away before its answer (shutdown): give the write up. */
        struct rdv_verdict v;
        rdv_finish(w->rv, &v);
        rdv_verdict_cleanup(&v);
        rdv_unref(w->rv);
    }
    inflight_give(w->x->inflight, w->charged);
    lp_result_cleanup(&w->res);
    reply_cleanup(&w->refused);
    dbuf_cleanup(&w->body);
    inflate_free(w->gz);
    free(w->query);
    free(w->auth);
    free(w);
}
