/* DESIGN (/query). The request's q (form body first, then the URL, as influxd's Go reads it) is
 * classified statement by statement (ql/). Refused before anything is sent, in influxd's order:
 * no q (400, influxd's text), a statement no InfluxQL statement starts with (400, influxd's
 * parse error), statements about one server (400 naming them), reads mixed with changes (400),
 * reads with `query = ddl` (403).
 *
 * Changes. The whole q with the request's other parameters becomes one form body, one QUERY
 * payload submitted to every backend's queue behind the writes already there, and the client is
 * answered from the rendezvous verdict with write-consistency and write-timeout as for a write:
 * OK -> 200 with the first backend's 200 body (or, when no backend answered yet, as with
 * write-consistency any, influxd's body for successful statements); a 4xx -> that answer; every
 * backend failed or timeout -> the failure (503 and Retry-After when nothing was kept). influxd
 * answers some failed statements (a DROP RETENTION POLICY on a missing database) with 200 and
 * an "error" inside results: that is delivered, not retried (a retry fails the same way), and
 * the client gets it in the first backend's body as influxd would give it.
 *
 * Reads. Candidates: the backends up (or draining) with nothing queued, in file order (they hold
 * every acknowledged write), then those up with a backlog (the answer carries X-Relay-Stale:
 * true). The first candidate gets the request (same method, the same parameters, Authorization,
 * Accept and Accept-Encoding); when it gives no answer (refused, reset, timeout before its
 * head) the next is tried; none left -> 503. The answer is streamed: its status and headers as
 * the backend sent them (hop-by-hop ones and Date excepted), then the body through the fetch
 * engine's bounded buffer; when no byte is ready the content reader parks the connection and
 * the fetch engine's notify wakes it.
 *
 * Parking a read (stream_park(), stream_notify()): the fetch engine arms one notify when it
 * answers FETCH_AGAIN, and that notify may run on the fetch thread before the worker has
 * suspended the connection. So the worker suspends first, then exchanges the stream's park
 * state for PARKED; the notify exchanges it for NOTIFIED. Whichever comes second sees the
 * other's mark: a notify that finds PARKED sets NONE and wakes, a worker that finds NOTIFIED
 * sets NONE and wakes the connection itself. Every wake follows its suspend, one per suspend
 * (as server.c requires). (Two compare-and-swaps in the notify, PARKED -> NONE then NONE ->
 * NOTIFIED, lost a wake when the worker parked between them: a read stalled for good.) */
#include "http/h_query.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buffer/payload.h"
#include "buffer/post.h"
#include "buffer/rdv.h"
#include "http/answer.h"
#include "ql/ql.h"
#include "util/base64.h"
#include "util/clock.h"
#include "util/dbuf.h"
#include "util/form.h"
#include "util/xalloc.h"

#define QUERY_BLOCK      ((size_t)32 * 1024) /* libmicrohttpd's buffer per content-reader call */
#define READ_IDLE_MIN_MS 60000               /* a read fails after this long without a byte */
#define ERR_MAX          512

/* influxd 1.x's /query parameters forwarded; nothing else leaks through. q comes first. The
 * first N_FORM are read as Go's FormValue() reads them (a form body first, then the URL) and go
 * out where the client's method puts them (a POST's form body, a GET's URL); influxd reads the
 * last three from the URL only (credentials, the JSON formatter), so they stay in the URL. */
static const char *const PARAMS[] = {"q",          "db",     "rp",     "epoch", "chunked",
                                     "chunk_size", "params", "pretty", "u",     "p"};
#define N_PARAMS (sizeof(PARAMS) / sizeof(PARAMS[0]))
#define N_FORM   7

enum qstate { Q_READING, Q_CHANGE_WAIT, Q_HEAD_WAIT, Q_STREAMING, Q_DONE };
enum park { PARK_NONE, PARK_PARKED, PARK_NOTIFIED };

/* A read: shared by the request and its libmicrohttpd response (content reader), one
 * reference each. */
struct qstream {
    _Atomic int refs;
    _Atomic int park;      /* enum park, see DESIGN */
    struct h_query_park p; /* immutable */
    struct fetch *f;       /* worker thread only: owned until h_query_free() releases it */
};

struct h_query {
    const struct h_query_ctx *x; /* borrowed */
    struct MHD_Connection *c;    /* borrowed */
    struct h_query_park park;
    bool post;
    bool form; /* the body is application/x-www-form-urlencoded */
    enum qstate state;
    struct dbuf body; /* the form body (max-body-mb) */
    uint64_t charged; /* taken from max-inflight-mb, given back in h_query_free() */
    struct reply refused;
    char *auth;           /* owned headers passed on, or NULL */
    char *accept;         /* owned */
    char *encoding;       /* owned */
    char *vals[N_PARAMS]; /* owned decoded values, NULL when absent */
    size_t lens[N_PARAMS];
    /* a change */
    struct rdv *rv; /* owned reference while waiting */
    size_t n_statements;
    /* a read */
    struct qstream *st; /* owned reference, NULL when none runs */
    unsigned *cand;     /* owned: backend indexes to try, in order */
    size_t n_cand;
    size_t n_fresh; /* the first n_fresh candidates are caught up */
    size_t next;    /* the next candidate to try */
    bool stale;     /* the running read goes to a backend with a backlog */
    char last_error[ERR_MAX];
};

/* ------------------------------------------------------------------ parking a read */

static void
stream_unref(struct qstream *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        fetch_release(s->f); /* the response went first: nothing reads it any more */
        free(s);
    }
}

/* Fetch thread: the read that said FETCH_AGAIN has something now. */
static void
stream_notify(void *arg)
{
    struct qstream *s = arg;
    /* One exchange, not two compare-and-swaps: between a CAS that found NONE and one that moves
     * NONE -> NOTIFIED the worker could park, and the notify would then be lost. */
    if (atomic_exchange(&s->park, PARK_NOTIFIED) == PARK_PARKED) {
        atomic_store(&s->park, PARK_NONE);
        s->p.wake(s->p.arg);
    }
}

/* Worker, after FETCH_AGAIN: parks the connection until the notify (see DESIGN). */
static void
stream_park(struct qstream *s)
{
    s->p.suspend(s->p.arg);
    if (atomic_exchange(&s->park, PARK_PARKED) == PARK_NOTIFIED) {
        atomic_store(&s->park, PARK_NONE); /* it came meanwhile */
        s->p.wake(s->p.arg);
    }
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct qstream *s = cls;
    size_t n = 0;
    switch (fetch_read(s->f, buf, max, &n)) {
    case FETCH_OK:
        return (ssize_t)n;
    case FETCH_END:
        return MHD_CONTENT_READER_END_OF_STREAM;
    case FETCH_AGAIN:
        stream_park(s);
        return 0;
    case FETCH_ERROR:
    default:
        return MHD_CONTENT_READER_END_WITH_ERROR; /* the client sees a cut answer */
    }
}

static void
stream_response_free(void *cls)
{
    stream_unref(cls);
}

/* ------------------------------------------------------------------ the request */

static char *
header_dup(struct MHD_Connection *c, const char *name)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    return v != NULL ? xstrdup(v) : NULL;
}

static bool
ctype_is_form(struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    static const char form[] = "application/x-www-form-urlencoded";
    return ct != NULL && strncasecmp(ct, form, sizeof(form) - 1) == 0 &&
           (ct[sizeof(form) - 1] == '\0' || ct[sizeof(form) - 1] == ';' ||
            ct[sizeof(form) - 1] == ' ');
}

struct h_query *
h_query_new(const struct h_query_ctx *x, struct MHD_Connection *c, const char *method,
            const struct h_query_park *park)
{
    struct h_query *q = xcalloc(1, sizeof(*q));
    q->x = x;
    q->c = c;
    q->park = *park;
    q->post = strcmp(method, "POST") == 0;
    q->form = q->post && ctype_is_form(c);
    dbuf_init(&q->body, (size_t)x->conf->max_body_bytes);
    q->auth = header_dup(c, "Authorization");
    q->accept = header_dup(c, "Accept");
    q->encoding = header_dup(c, "Accept-Encoding");
    return q;
}

void
h_query_feed(struct h_query *q, const char *data, size_t len)
{
    if (q->refused.status != 0 || !q->form) {
        return; /* only a form body carries parameters: the rest is read and dropped */
    }
    if (!inflight_take(q->x->inflight, len)) {
        reply_error(&q->refused, 503, "too many bytes in flight: retry later");
        q->refused.retry_after_s = 1;
    } else {
        q->charged += len;
        enum dbuf_status st = dbuf_append(&q->body, data, len);
        if (st == DBUF_TOO_BIG) {
            reply_error(&q->refused, 413, "http: request body too large");
        } else if (st == DBUF_NOMEM) {
            reply_error(&q->refused, 503, "out of memory");
        }
    }
    if (q->refused.status != 0) {
        dbuf_cleanup(&q->body);
        inflight_give(q->x->inflight, q->charged);
        q->charged = 0;
    }
}

/* The parameters, as influxd reads them (see PARAMS). */
static void
query_params(struct h_query *q)
{
    for (size_t i = 0; i < N_PARAMS; i++) {
        struct dbuf d;
        dbuf_init(&d, (size_t)q->x->conf->max_body_bytes + 1);
        bool found = i < N_FORM && q->form && q->body.len > 0 &&
                     form_get(q->body.p, q->body.len, PARAMS[i], &d);
        const char *v = NULL;
        size_t n = 0;
        if (!found && MHD_lookup_connection_value_n(q->c, MHD_GET_ARGUMENT_KIND, PARAMS[i],
                                                    strlen(PARAMS[i]), &v, &n) == MHD_YES) {
            dbuf_append(&d, v != NULL ? v : "", v != NULL ? n : 0);
            found = true;
        }
        if (found) {
            q->vals[i] = dbuf_finish(&d, &q->lens[i]);
        } else {
            dbuf_cleanup(&d);
        }
    }
}

/* The request's parameters [from, to) of PARAMS, URL-encoded; without the client's u and p
 * when no_creds (an output with credentials of its own). */
static char *
params_encoded(const struct h_query *q, size_t from, size_t to, bool no_creds, size_t *len)
{
    struct dbuf d;
    dbuf_init(&d, DBUF_NO_BOUND);
    for (size_t i = from; i < to; i++) {
        bool cred = strcmp(PARAMS[i], "u") == 0 || strcmp(PARAMS[i], "p") == 0;
        if (q->vals[i] != NULL && !(cred && no_creds)) {
            form_add(&d, PARAMS[i], q->vals[i], q->lens[i]);
        }
    }
    char *s = dbuf_finish(&d, len);
    if (s == NULL) {
        xalloc_die(); /* the request's own parameters, bounded by the URL and max-body-mb */
    }
    return s;
}

/* ------------------------------------------------------------------ refusals */

static bool
only_spaces(const char *s, size_t n)
{
    struct ql_split sp;
    ql_split_init(&sp, s, n);
    return sp.start >= sp.end;
}

/* 400 naming the statements about one server that q holds. */
static void
refuse_local(const struct ql_summary *s, struct reply *r)
{
    struct dbuf d;
    dbuf_init(&d, 4096);
    for (int k = 0; k < QL_KIND_COUNT; k++) {
        if ((s->kinds & ((uint64_t)1 << k)) != 0 && ql_kind_class((enum ql_kind)k) == QL_LOCAL) {
            dbuf_str(&d, d.len > 0 ? ", " : "");
            dbuf_str(&d, ql_kind_name((enum ql_kind)k));
        }
    }
    reply_error3(r, 400, "not relayed: statements about one InfluxDB server (", d.p, d.len,
                 "); send them to that server");
    dbuf_cleanup(&d);
}

/* What q is refused for before anything is sent, in influxd's order; false when it goes. */
static bool
query_refused(struct h_query *q, const struct ql_summary *s, struct reply *r)
{
    const char *qs = q->vals[0];
    if (qs == NULL || only_spaces(qs, q->lens[0])) {
        reply_error(r, 400, "missing required parameter \"q\"");
    } else if (s->n_invalid > 0) {
        struct dbuf d;
        dbuf_init(&d, DBUF_NO_BOUND);
        ql_error(qs, q->lens[0], &s->first_invalid, &d);
        reply_error3(r, 400, "error parsing query: ", d.p != NULL ? d.p : "", d.len, "");
        dbuf_cleanup(&d);
    } else if (s->n_local > 0) {
        refuse_local(s, r);
    } else if (s->n_read > 0 && s->n_change > 0) {
        reply_error(r, 400,
                    "not relayed: a query that mixes reads and changes (send the statements that "
                    "change state, and the reads, in separate requests)");
    } else if (s->n_change == 0 && q->x->conf->query == CONF_QUERY_DDL) {
        reply_error(r, 403, "reads are not relayed here");
    } else {
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ changes */

/* influxd's answer to n statements that all succeeded without a result. */
static char *
results_ok(size_t n, size_t *len)
{
    struct dbuf d;
    dbuf_init(&d, DBUF_NO_BOUND);
    dbuf_str(&d, "{\"results\":[");
    for (size_t i = 0; i < n; i++) {
        dbuf_str(&d, i > 0 ? ",{\"statement_id\":" : "{\"statement_id\":");
        dbuf_u64(&d, i);
        dbuf_char(&d, '}');
    }
    dbuf_str(&d, "]}\n");
    return dbuf_finish(&d, len);
}

static void
change_finish(struct h_query *q, struct reply *r)
{
    struct rdv_verdict v;
    rdv_finish(q->rv, &v);
    rdv_unref(q->rv);
    q->rv = NULL;
    q->state = Q_DONE;
    if (v.kind != RDV_VERDICT_OK) {
        answer_verdict(&v, NULL, 1, r);
    } else if (v.body != NULL) {
        reply_body(r, 200, v.body, v.body_len, NULL); /* the first backend's answer, as is */
        v.body = NULL;
        r->ctype = v.content_type;
        v.content_type = NULL;
        r->ctype_static = r->ctype == NULL ? "application/json" : NULL;
    } else {
        size_t len = 0; /* no backend answered yet (write-consistency any) */
        char *body = results_ok(q->n_statements, &len);
        reply_body(r, 200, body, len, "application/json");
    }
    rdv_verdict_cleanup(&v);
}

static enum h_query_step
change_start(struct h_query *q, struct reply *r)
{
    const struct conf_http *conf = q->x->conf;
    size_t len = 0;
    size_t ulen = 0;
    char *form = params_encoded(q, 0, N_FORM, false, &len);
    char *url = params_encoded(q, N_FORM, N_PARAMS, false, &ulen);
    char *auth = q->auth != NULL ? xstrdup(q->auth) : NULL;
    struct payload *p = payload_new(PAYLOAD_QUERY, form, form, len, 0, url, auth);
    unsigned n = (unsigned)conf->n_outputs;
    q->rv = rdv_new(n, conf->write_consistency, clock_mono_ms() + conf->write_timeout_ms);
    for (unsigned i = 0; i < n; i++) {
        if (backend_submit(q->x->backends[i], p, q->rv, i) == BACKEND_FULL) {
            rdv_report(q->rv, i, RDV_FULL, 0, NULL, 0, NULL);
        }
    }
    payload_unref(p);
    if (rdv_is_decided(q->rv)) {
        change_finish(q, r);
        return H_QUERY_ANSWER;
    }
    q->state = Q_CHANGE_WAIT;
    q->park.suspend(q->park.arg);
    if (!rdv_notify(q->rv, q->x->timer, q->x->lane, q->park.wake, q->park.arg)) {
        q->park.wake(q->park.arg); /* decided meanwhile: the next step answers */
    }
    return H_QUERY_WAIT;
}

/* ------------------------------------------------------------------ reads */

/* Caught-up backends first, then those up with a backlog, each in file order. */
static void
read_candidates(struct h_query *q)
{
    size_t n = q->x->conf->n_outputs;
    q->cand = xcalloc(n > 0 ? n : 1, sizeof(*q->cand));
    struct backend_snapshot s;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            backend_snapshot(q->x->backends[i], &s);
            bool up = s.state != BACKEND_DOWN;
            bool fresh = s.state == BACKEND_UP && s.queue_writes == 0;
            if (up && fresh == (pass == 0)) {
                q->cand[q->n_cand++] = (unsigned)i;
            }
        }
        if (pass == 0) {
            q->n_fresh = q->n_cand;
        }
    }
}

/* Starts the read on backend i. */
static void
read_fetch(struct h_query *q, unsigned i)
{
    const struct conf_http_output *o = &q->x->conf->outputs[i];
    size_t plen = 0;
    size_t qlen = 0;
    /* An output with credentials of its own gets them, never the client's (as for writes). */
    bool own = o->username != NULL;
    char *basic =
            own ? base64_basic(o->username, strlen(o->username), o->password, strlen(o->password))
                : NULL;
    char *params = params_encoded(q, 0, N_FORM, own, &plen); /* the body of a POST */
    char *query = params_encoded(q, q->post ? N_FORM : 0, N_PARAMS, own, &qlen);
    char *base = post_url_of(o->location, PAYLOAD_QUERY);
    size_t ulen = strlen(base) + qlen + 2;
    char *url = xmalloc(ulen);
    snprintf(url, ulen, "%s%s%s", base,
             qlen == 0                   ? ""
             : strchr(base, '?') != NULL ? "&"
                                         : "?",
             query);
    struct qstream *s = xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    atomic_init(&s->park, PARK_NONE);
    s->p = q->park;
    int64_t idle = o->timeout_ms > READ_IDLE_MIN_MS ? o->timeout_ms : READ_IDLE_MIN_MS;
    struct fetch_request req = {
            .url = url,
            .body = q->post ? params : NULL,
            .body_len = q->post ? plen : 0,
            .ctype = "application/x-www-form-urlencoded",
            .auth = own ? basic : q->auth,
            .accept = q->accept,
            .encoding = q->encoding,
            .connect_timeout_ms = o->timeout_ms,
            .idle_timeout_ms = idle,
            .skip_tls_verification = o->skip_tls_verification,
            .notify = stream_notify,
            .notify_arg = s,
    };
    s->f = fetch_start(q->x->fetcher, &req);
    q->st = s;
    free(basic);
    free(url);
    free(base);
    free(query);
    free(params);
}

static bool
header_dropped(const char *name)
{
    return strcasecmp(name, "Date") == 0 || strcasecmp(name, "Server") == 0;
}

/* The backend's head arrived: the streamed response. */
static enum h_query_step
read_respond(struct h_query *q, const struct fetch_head *hd, struct reply *r,
             struct MHD_Response **resp, int *status)
{
    uint64_t size = hd->content_length >= 0 ? (uint64_t)hd->content_length : MHD_SIZE_UNKNOWN;
    atomic_fetch_add(&q->st->refs, 1); /* the response's */
    *resp = MHD_create_response_from_callback(size, QUERY_BLOCK, stream_read, q->st,
                                              stream_response_free);
    if (*resp == NULL) {
        atomic_fetch_sub(&q->st->refs, 1);
        reply_error(r, 500, "out of memory");
        return H_QUERY_ANSWER;
    }
    for (size_t i = 0; i < hd->n_headers; i++) {
        if (!header_dropped(hd->headers[i].name)) {
            (void)MHD_add_response_header(*resp, hd->headers[i].name, hd->headers[i].value);
        }
    }
    if (q->stale) {
        (void)MHD_add_response_header(*resp, "X-Relay-Stale", "true");
    }
    *status = hd->status;
    q->state = Q_STREAMING;
    return H_QUERY_RESPOND;
}

static void
read_drop(struct h_query *q)
{
    snprintf(q->last_error, sizeof(q->last_error), "%s", fetch_error(q->st->f));
    fetch_release(q->st->f);
    q->st->f = NULL;
    stream_unref(q->st);
    q->st = NULL;
}

/* The running read's head, or the next candidate. */
static enum h_query_step
read_next(struct h_query *q, struct reply *r, struct MHD_Response **resp, int *status)
{
    for (;;) {
        if (q->st == NULL) {
            if (q->next >= q->n_cand) {
                q->state = Q_DONE;
                reply_error3(r, 503, q->n_cand == 0 ? "no backend is up" : "unable to query: ",
                             q->last_error, q->n_cand == 0 ? 0 : strlen(q->last_error), "");
                return H_QUERY_ANSWER;
            }
            q->stale = q->next >= q->n_fresh;
            read_fetch(q, q->cand[q->next++]);
        }
        struct fetch_head hd;
        switch (fetch_head(q->st->f, &hd)) {
        case FETCH_OK:
            return read_respond(q, &hd, r, resp, status);
        case FETCH_AGAIN:
            q->state = Q_HEAD_WAIT;
            stream_park(q->st);
            return H_QUERY_WAIT;
        default:
            read_drop(q); /* no answer from it: the next candidate */
            break;
        }
    }
}

/* ------------------------------------------------------------------ steps */

static enum h_query_step
query_begin(struct h_query *q, struct reply *r, struct MHD_Response **resp, int *status)
{
    if (q->refused.status != 0) {
        *r = q->refused;
        memset(&q->refused, 0, sizeof(q->refused));
        return H_QUERY_ANSWER;
    }
    query_params(q);
    struct ql_summary s;
    ql_summarize(q->vals[0] != NULL ? q->vals[0] : "", q->lens[0], &s);
    if (query_refused(q, &s, r)) {
        q->state = Q_DONE;
        return H_QUERY_ANSWER;
    }
    if (s.n_change > 0) {
        q->n_statements = s.n_change;
        return change_start(q, r);
    }
    read_candidates(q);
    return read_next(q, r, resp, status);
}

enum h_query_step
h_query_step(struct h_query *q, struct reply *r, struct MHD_Response **resp, int *status)
{
    switch (q->state) {
    case Q_READING:
        return query_begin(q, r, resp, status);
    case Q_CHANGE_WAIT:
        change_finish(q, r);
        return H_QUERY_ANSWER;
    case Q_HEAD_WAIT:
        return read_next(q, r, resp, status);
    default:
        reply_error(r, 500, "internal error: /query called again");
        return H_QUERY_ANSWER;
    }
}

void
h_query_free(struct h_query *q)
{
    if (q == NULL) {
        return;
    }
    if (q->rv != NULL) {
        struct rdv_verdict v; /* the client went away: give the change up */
        rdv_finish(q->rv, &v);
        rdv_verdict_cleanup(&v);
        rdv_unref(q->rv);
    }
    if (q->st != NULL) {
        fetch_release(q->st->f); /* no notify, so no wake, after this */
        q->st->f = NULL;
        stream_unref(q->st);
    }
    inflight_give(q->x->inflight, q->charged);
    dbuf_cleanup(&q->body);
    reply_cleanup(&q->refused);
    for (size_t i = 0; i < N_PARAMS; i++) {
        free(q->vals[i]);
    }
    free(q->cand);
    free(q->auth);
    free(q->accept);
    free(q->encoding);
    free(q);
}
