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
#include "util/base64.h"
#include "util/clock.h"
#include "util/dbuf.h"
#include "util/form.h"
#include "util/log.h"
#include "util/snappy.h"
#include "util/strconv.h"
#include "util/xalloc.h"

struct h_write {
    const struct h_write_ctx *x; /* borrowed */
    enum h_write_api api;
    struct reply refused; /* status != 0: decided before the body ended; discard the rest */
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
enum { F_DB, F_RP, F_PRECISION, F_U, F_P, F_CONSISTENCY, F_COUNT };

/* The value of one forwarded parameter, borrowed (from the request or a literal). */
struct fwd {
    bool present;
    const char *v;
    size_t len;
};

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

/* Builds the forwarded query from f: default-retention-policy fills rp only when the request
 * has none. */
static char *
write_query(const struct h_write *w, struct fwd *f)
{
    if (f[F_RP].len == 0 && w->x->conf->default_rp != NULL) {
        f[F_RP] = (struct fwd){true, w->x->conf->default_rp, strlen(w->x->conf->default_rp)};
    }
    struct dbuf q;
    dbuf_init(&q, DBUF_NO_BOUND);
    for (size_t i = 0; i < F_COUNT; i++) {
        if (f[i].present) {
            form_add(&q, FORWARDED[i], f[i].v, f[i].len);
        }
    }
    size_t n = 0;
    char *s = dbuf_finish(&q, &n);
    if (s == NULL) {
        xalloc_die(); /* a few hundred bytes (the URL's own parameters) */
    }
    return s;
}

/* The forwarded parameters taken as the client sent them (absent ones marked so). */
static void
fwd_from_query(struct MHD_Connection *c, struct fwd *f, const int *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct fwd *x = &f[keys[i]];
        x->present = query_get(c, FORWARDED[keys[i]], &x->v, &x->len);
    }
}

/* The parameters of /write and /api/v1/prom/write taken as they are: db (required: missing
 * says what influxd says then), rp, u, p, consistency. */
static bool
params_with_db(struct h_write *w, struct MHD_Connection *c, struct fwd *f, const char *missing)
{
    static const int keys[] = {F_DB, F_RP, F_U, F_P, F_CONSISTENCY};
    fwd_from_query(c, f, keys, IR_ARRAY_LEN(keys));
    if (!f[F_DB].present || f[F_DB].len == 0) {
        reply_error(&w->refused, 400, missing);
        return false;
    }
    return true;
}

/* /write: db required, precision one of influxd 1.x's (forwarded as its canonical letter). */
static bool
params_v1(struct h_write *w, struct MHD_Connection *c, struct fwd *f)
{
    if (!params_with_db(w, c, f, "missing parameter: db")) {
        return false;
    }
    const char *v = NULL;
    size_t len = 0;
    if (query_get(c, "precision", &v, &len) && len > 0) {
        if (lp_prec_parse(v, len, &w->prec) != 0) {
            reply_error3(&w->refused, 400, "invalid precision \"", v, len,
                         "\": must be one of n, ns, u, us, ms, s, m, h");
            return false;
        }
        const char *name = lp_prec_name(w->prec);
        f[F_PRECISION] = (struct fwd){true, name, strlen(name)};
    }
    return true;
}

/* The v2 precision: ns (the default), us, ms or s; false when it is another one. */
static bool
v2_precision(const char *v, size_t len, enum lp_prec *out)
{
    static const char *const names[] = {"ns", "us", "ms", "s"};
    static const enum lp_prec precs[] = {LP_PREC_NS, LP_PREC_US, LP_PREC_MS, LP_PREC_S};
    for (size_t i = 0; i < IR_ARRAY_LEN(names); i++) {
        if (len == strlen(names[i]) && memcmp(v, names[i], len) == 0) {
            *out = precs[i];
            return true;
        }
    }
    return len == 0;
}

/* /api/v2/write, as influxd 1.8 maps it: bucket "DB" or "DB/RP" (an empty RP is the default
 * one), a v2 precision; org ignored; u, p and consistency as on /write. The errors are
 * influxd 1.8's. */
static bool
params_v2(struct h_write *w, struct MHD_Connection *c, struct fwd *f)
{
    static const int keys[] = {F_U, F_P, F_CONSISTENCY};
    fwd_from_query(c, f, keys, IR_ARRAY_LEN(keys));
    const char *v = NULL;
    size_t len = 0;
    (void)query_get(c, "precision", &v, &len);
    v = v != NULL ? v : "";
    if (!v2_precision(v, len, &w->prec)) {
        reply_error3(&w->refused, 400, "invalid precision \"", v, len, "\" (use ns, us, ms or s)");
        return false;
    }
    if (len > 0) {
        const char *name = lp_prec_name(w->prec);
        f[F_PRECISION] = (struct fwd){true, name, strlen(name)};
    }
    (void)query_get(c, "bucket", &v, &len);
    v = v != NULL ? v : "";
    const char *slash = len > 0 ? memchr(v, '/', len) : NULL;
    size_t db_len = slash != NULL ? (size_t)(slash - v) : len;
    if (db_len == 0) {
        reply_error3(&w->refused, 404, "bucket name \"", v, len,
                     slash == NULL ? "\" is missing a slash; not in \"database/retention-policy\" "
                                     "format"
                                   : "\" is in db/rp form but has an empty database");
        return false;
    }
    f[F_DB] = (struct fwd){true, v, db_len};
    if (slash != NULL) {
        f[F_RP] = (struct fwd){true, slash + 1, len - db_len - 1};
    }
    return true;
}

/* Validates the endpoint's parameters into f; false when the request is refused (w->refused
 * filled). */
static bool
write_check_params(struct h_write *w, struct MHD_Connection *c, struct fwd *f)
{
    w->prec = LP_PREC_NS;
    switch (w->api) {
    case H_WRITE_V2:
        return params_v2(w, c, f);
    case H_WRITE_PROM:
        /* As influxd 1.x reads it; no precision (the samples carry their own times). */
        return params_with_db(w, c, f, "database is required");
    case H_WRITE_V1:
        break;
    }
    return params_v1(w, c, f);
}

/* The Authorization forwarded: on /api/v2/write, "Token USER:PASSWORD" (InfluxDB 1.8's way,
 * which influxd 1.6 does not read) becomes "Basic base64(USER:PASSWORD)", which every influxd
 * 1.x reads. Anything else goes as it came, as influxd 1.8 reads it: a token without a colon is
 * no credentials to it (ignored without auth-enabled, 401 with it) and the backends answer for
 * it the same way. */
static char *
write_auth(const struct h_write *w, const char *auth)
{
    if (auth == NULL) {
        return NULL;
    }
    if (w->api != H_WRITE_V2 || strncmp(auth, "Token ", 6) != 0) {
        return xstrdup(auth);
    }
    const char *tok = auth + 6;
    const char *colon = strchr(tok, ':');
    if (colon == NULL || strchr(tok, ' ') != NULL) {
        return xstrdup(auth);
    }
    return base64_basic(tok, (size_t)(colon - tok), colon + 1, strlen(colon + 1));
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
h_write_new(const struct h_write_ctx *x, enum h_write_api api, struct MHD_Connection *c,
            struct reply *now)
{
    struct h_write *w = xcalloc(1, sizeof(*w));
    w->x = x;
    w->api = api;
    size_t max = (size_t)x->conf->max_body_bytes;
    dbuf_init(&w->body, max);
    int64_t announced = write_announced(c);
    bool too_big = (uint64_t)announced > max;
    if (too_big && write_answer_early(c, (uint64_t)announced, max)) {
        reply_error(now, 413, "http: request body too large");
        return w;
    }
    struct fwd f[F_COUNT] = {{false, NULL, 0}};
    if (!write_check_params(w, c, f)) {
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
    /* A Prometheus body says "Content-Encoding: snappy": that is its format, kept as is. */
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (api != H_WRITE_PROM && enc != NULL && strcmp(enc, "gzip") == 0) {
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
    w->query = write_query(w, f);
    w->auth = write_auth(w, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"));
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

/* A Prometheus remote-write body: forwarded unchanged when it is a snappy block influxd would
 * decode, refused as influxd refuses it otherwise (nothing forwarded). Its protobuf is
 * checked by the backends (400 from influxd when it does not parse). */
static enum h_write_step
prom_process(struct h_write *w, struct reply *r)
{
    const unsigned char *body = (const unsigned char *)(w->body.p != NULL ? w->body.p : "");
    if (!snappy_block_is_valid(body, w->body.len, NULL)) {
        reply_error(r, 400, SNAPPY_CORRUPT_TEXT);
        return H_WRITE_ANSWER;
    }
    size_t len = w->body.len;
    char *buf = dbuf_take(&w->body);
    struct payload *p = payload_new(PAYLOAD_PROM, buf, buf, len, 0, w->query, w->auth);
    w->query = NULL;
    w->auth = NULL;
    return write_fan_out(w, p, r);
}

/* Validates the complete body and forwards its valid lines. */
static enum h_write_step
write_process(struct h_write *w, struct reply *r)
{
    struct httpd_stats *st = w->x->stats;
    atomic_fetch_add_explicit(&st->bytes_received, w->body.len, memory_order_relaxed);
    if (w->api == H_WRITE_PROM) {
        return prom_process(w, r);
    }
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
