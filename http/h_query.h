/* GET|POST /query (issue 14): q split and classified by ql/. Statements that change state go to
 * every backend as one QUERY payload through its write queue (in order with the writes) and are
 * answered from the backends' verdict like a write; reads go to one backend, the first caught up
 * (up, nothing queued), else the first up (X-Relay-Stale: true), and are streamed back through
 * the fetch engine (buffer/fetch.h) while the connection is suspended whenever no byte is ready;
 * server-local statements, reads mixed with changes and invalid statements are refused.
 * One struct h_query per request, created on the first access-handler call and freed in the
 * request-completed callback; used by the worker thread that owns the connection, except the
 * fetch notifications (fetch thread) that wake it. */
#ifndef IR_HTTP_H_QUERY_H
#define IR_HTTP_H_QUERY_H

#include <stddef.h>

#include <microhttpd.h>

#include "buffer/backend.h"
#include "buffer/fetch.h"
#include "conf/conf.h"
#include "http/inflight.h"
#include "http/reply.h"
#include "http/stats.h"
#include "util/timer.h"

/* What a relay's /query handler borrows from its struct httpd (immutable after start). */
struct h_query_ctx {
    const struct conf_http *conf;
    struct backend *const *backends; /* n == conf->n_outputs, in output order */
    struct httpd_stats *stats;
    struct inflight *inflight; /* max-inflight-mb, for form bodies */
    struct fetcher *fetcher;   /* the process-wide read engine */
    struct timer *timer;       /* write-timeout of the changes */
    unsigned lane;             /* its lane of write deadlines */
};

/* How the handler parks its connection: suspend() on the worker that owns the connection (from
 * the access handler or the response's content reader), wake() from any thread, exactly once
 * after each suspend(). server.c counts them for its shutdown. */
struct h_query_park {
    void (*suspend)(void *arg);
    void (*wake)(void *arg);
    void *arg;
};

struct h_query;

/* First access-handler call (headers received). Returns owned state (free with h_query_free()).
 * Every refusal is answered once the body is read (the connection stays usable). park is
 * copied. */
struct h_query *h_query_new(const struct h_query_ctx *x, struct MHD_Connection *c,
                            const char *method, const struct h_query_park *park);
/* A chunk of the form body (discarded once the request is refused). */
void h_query_feed(struct h_query *q, const char *data, size_t len);

enum h_query_step {
    H_QUERY_ANSWER,  /* *r is the answer */
    H_QUERY_RESPOND, /* *resp (owned by the caller: queue it with *status, then destroy it) */
    H_QUERY_WAIT,    /* the connection is parked: call h_query_step() again after the wake */
};
/* The upload is complete, or the connection was woken: the next step. */
enum h_query_step h_query_step(struct h_query *q, struct reply *r, struct MHD_Response **resp,
                               int *status);
/* Gives up whatever runs (a change's rendezvous, a read's fetch): no wake() is called after it
 * returns. NULL is a no-op. */
void h_query_free(struct h_query *q);

#endif
