/* The write endpoints, one path for all three: POST /write, POST /api/v2/write (InfluxDB 1.8's
 * compatibility API: bucket, v2 precisions, Token credentials) and POST /api/v1/prom/write
 * (Prometheus remote write). Reads the body whole (bounded, gzip inflated for line protocol,
 * charged to max-inflight-mb), validates it (line protocol through lp/, stamped; a Prometheus
 * body as a snappy block), fans one payload out to every backend of the relay and asks a
 * rendezvous to wake it once the backends' verdict is in (influxdb-relay(8), HTTP API); the
 * connection is suspended meanwhile (server.c). The endpoints differ in how their parameters
 * map to what the backends get and, for v2, in the shape of errors (answer_v2_shape(), applied
 * by server.c to every answer of that endpoint). One struct h_write per request, created on
 * the first access-handler call and freed in libmicrohttpd's request-completed callback; used
 * by the worker thread that owns the connection only. */
#ifndef IR_HTTP_H_WRITE_H
#define IR_HTTP_H_WRITE_H

#include <stddef.h>

#include <microhttpd.h>

#include "buffer/backend.h"
#include "buffer/rdv.h"
#include "conf/conf.h"
#include "http/inflight.h"
#include "http/reply.h"
#include "http/stats.h"
#include "util/timer.h"

/* What a relay's /write handler borrows from its struct httpd (immutable after start; the stats
 * are atomics). */
struct h_write_ctx {
    const struct conf_http *conf;
    struct backend *const *backends; /* n == conf->n_outputs, in output order */
    struct httpd_stats *stats;
    struct inflight *inflight; /* the process-wide body budget (max-inflight-mb) */
};

struct h_write;

/* Which write endpoint a request came to. */
enum h_write_api {
    H_WRITE_V1,   /* /write: db, rp, precision n|ns|u|us|ms|s|m|h, u, p, consistency */
    H_WRITE_V2,   /* /api/v2/write: bucket=DB[/RP], precision ns|us|ms|s, org ignored;
                   * "Authorization: Token USER:PASSWORD" goes out as Basic */
    H_WRITE_PROM, /* /api/v1/prom/write: db, rp, u, p, consistency; a snappy body sent as is */
};

/* First access-handler call (headers received). Reads the query parameters and headers it needs
 * from c. Returns owned state (free with h_write_free()). When the request must be refused before
 * its body is read (Content-Length above max-body-mb, or above what max-inflight-mb has left,
 * with "Expect: 100-continue" or far above the bound), fills *now with the answer (status != 0):
 * the caller queues it at once. Other refusals (missing db, bad bucket, bad precision) are
 * answered by h_write_start() after the body has been consumed, so the connection stays
 * usable. */
struct h_write *h_write_new(const struct h_write_ctx *x, enum h_write_api api,
                            struct MHD_Connection *c, struct reply *now);
/* A chunk of the upload: appended (or inflated) into the body, or discarded once the request is
 * already refused. */
void h_write_feed(struct h_write *w, const char *data, size_t len);
enum h_write_step {
    H_WRITE_ANSWER, /* *r is the answer */
    H_WRITE_WAIT,   /* the backends have the write: h_write_notify(), then h_write_finish() */
};
/* The upload is complete: validates and forwards. H_WRITE_ANSWER for a refusal, a body with
 * nothing to forward, or a verdict reached at once; H_WRITE_WAIT otherwise. */
enum h_write_step h_write_start(struct h_write *w, struct reply *r);
/* H_WRITE_WAIT: asks for wake(arg) once the verdict is reached (write-timeout at the latest:
 * its deadline is armed on t's lane). False when it is already reached: h_write_finish() now. */
bool h_write_notify(struct h_write *w, struct timer *t, unsigned lane, rdv_wake_fn wake,
                    void *arg) IR_WARN_UNUSED;
/* After the wake (or when h_write_notify() returned false): fills *r with the answer. */
void h_write_finish(struct h_write *w, struct reply *r);
/* Gives up a write still waiting (its client is gone: withdrawn like a timeout) and gives its
 * bytes back to max-inflight-mb. NULL is a no-op. */
void h_write_free(struct h_write *w);

#endif
