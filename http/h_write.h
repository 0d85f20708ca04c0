/* POST /write: reads the body whole (bounded, gzip inflated), validates and stamps it through lp/,
 * fans one payload out to every backend of the relay and waits on a rendezvous for the answer
 * (influxdb-relay(8), HTTP API). One struct h_write per request, created on the first
 * access-handler call and freed in MHD's request-completed callback; used by its MHD connection
 * thread only. */
#ifndef IR_HTTP_H_WRITE_H
#define IR_HTTP_H_WRITE_H

#include <stddef.h>

#include <microhttpd.h>

#include "buffer/backend.h"
#include "conf/conf.h"
#include "http/reply.h"
#include "http/stats.h"

/* What a relay's /write handler borrows from its struct httpd (immutable after start; the stats
 * are atomics). */
struct h_write_ctx {
    const struct conf_http *conf;
    struct backend *const *backends; /* n == conf->n_outputs, in output order */
    struct httpd_stats *stats;
};

struct h_write;

/* First access-handler call (headers received). Reads the query parameters and headers it needs
 * from c. Returns owned state (free with h_write_free()). When the request must be refused before
 * its body is read (Content-Length above max-body-mb), fills *now with the answer (status != 0):
 * the caller queues it at once. Other refusals (missing db, bad precision) are answered by
 * h_write_finish() after the body has been consumed, so the connection stays usable. */
struct h_write *h_write_new(const struct h_write_ctx *x, struct MHD_Connection *c,
                            struct reply *now);
/* A chunk of the upload: appended (or inflated) into the body, or discarded once the request is
 * already refused. */
void h_write_feed(struct h_write *w, const char *data, size_t len);
/* The upload is complete: validates, forwards, waits for the backends' verdict (at most
 * write-timeout) and fills *r with the answer to send. */
void h_write_finish(struct h_write *w, struct reply *r);
/* NULL is a no-op. */
void h_write_free(struct h_write *w);

#endif
