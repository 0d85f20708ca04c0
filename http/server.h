/* HTTP relays: one libmicrohttpd daemon per [http.R], a pool of `workers` threads on epoll; no
 * thread per connection. Routes /write (and /api/v2/write, /api/v1/prom/write: the same write
 * path), /query, /ping, /metrics, /health. The write handler validates through lp/, submits one
 * payload to each of the relay's backends and suspends its connection until the rendezvous wakes
 * it with the backends' verdict (or write-timeout passes); /query (h_query.c) does the same for
 * statements that change state, and parks its connection while a read waits for the backend's
 * bytes.
 * Owned by relay/service.c (reference-counted: relay/world.c's views hold references too).
 * A reload hands a relay its new section and backends (httpd_prepare(), httpd_commit()): each
 * request keeps the generation (section + backends) it started with. Holds a reference on its
 * section's conf tree and on its backends; borrows the process-wide pieces of struct
 * httpd_env. */
#ifndef IR_HTTP_SERVER_H
#define IR_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "buffer/backend.h"
#include "buffer/fetch.h"
#include "conf/conf.h"
#include "http/h_health.h"
#include "http/inflight.h"
#include "http/stats.h"
#include "util/err.h"
#include "util/timer.h"

/* /metrics of the whole process: relay/ renders every relay's snapshot. Returns owned text
 * (free()) of *len bytes, or NULL when out of memory. Any thread. */
typedef char *(*httpd_metrics_fn)(void *ctx, size_t *len);
/* /health's "udp" member: the process's UDP relays, read by relay/. Fills out[0..max) and
 * returns how many UDP relays there are (fixed after start; may exceed max). Any thread. */
typedef size_t (*httpd_udp_health_fn)(void *ctx, struct h_health_udp *out, size_t max);

/* What every HTTP relay borrows from the process (relay/service.c builds it; it must outlive
 * every httpd; immutable after start). */
struct httpd_env {
    struct timer *timer;            /* write-timeout and read-timeout deadlines */
    struct inflight *inflight;      /* max-inflight-mb */
    httpd_metrics_fn metrics;       /* renders GET /metrics */
    httpd_udp_health_fn udp_health; /* the UDP receivers GET /health shows */
    void *world;                    /* the ctx of metrics and udp_health */
    struct fetcher *fetcher;        /* /query reads; httpd_stop() stops it (idempotent) */
};

struct httpd;

/* Main thread. backends: this relay's backends in output order (borrowed array of
 * c->n_outputs; the relay takes a reference on each, and on c->tree). Reads the PEM file, binds
 * nothing. Returns owned, or NULL with *err filled. */
struct httpd *httpd_new(const struct conf_http *c, struct backend **backends,
                        const struct httpd_env *env, struct ir_err *err);
/* Main thread: binds the listening socket (a reload binds a new relay before it commits
 * anything). 0 or -1 (err filled: names the address). */
int httpd_bind(struct httpd *h, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: binds (unless httpd_bind() did) and starts serving. 0 or -1 (err filled). */
int httpd_start(struct httpd *h, struct ir_err *err) IR_WARN_UNUSED;

/* Main thread, a reload, step 1 for a relay that stays: reads c's PEM file again and binds c's
 * address when it changed. 0, or -1 with *err filled (nothing changed; httpd_abort()). */
int httpd_prepare(struct httpd *h, const struct conf_http *c, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread, a reload that failed elsewhere: forgets what httpd_prepare() made. */
void httpd_abort(struct httpd *h);
/* Main thread, a reload, step 2 (after httpd_prepare()): requests starting from now use c and
 * backends (borrowed array of c->n_outputs; references taken); max-connections applies at
 * once, read-timeout to new connections. When a setting libmicrohttpd reads at start changed
 * (bind-addr, ssl-combined-pem or its content, workers, idle-timeout), a new daemon takes over
 * the listening socket (the old address's socket closes when bind-addr changed) and the old one
 * answers what its connections hold: returns true, and httpd_drain() must then run (it stops the
 * old daemon once its connections are gone, or at deadline_ms). */
bool httpd_commit(struct httpd *h, const struct conf_http *c, struct backend *const *backends,
                  int64_t deadline_ms);
/* Any thread but a libmicrohttpd worker (the service's retire thread): stops every old daemon
 * once its connections are closed, or at its deadline (moved by httpd_stop()/httpd_hurry()). */
void httpd_drain(struct httpd *h);

/* Main thread, shutdown step 1: from now on no write is forwarded (one whose upload ends later
 * gets 503, as in httpd_stop()); the writes already forwarded are answered as before. */
void httpd_refuse_writes(struct httpd *h);
/* Main thread: stop accepting new connections (shutdown step 1, or the relay was removed). */
void httpd_quiesce(struct httpd *h);
/* Shutdown step 2 (the shutdown thread, or the retire thread for a removed relay): no write is
 * forwarded any more; waits until the requests being answered are answered or deadline_ms
 * (monotonic) passes; then the writes still waiting for their backends are answered at once
 * (503, as at write-timeout), with cut_reads (the shutdown) the /query reads still running are
 * cut (env->fetcher is stopped; a removed relay's reads finish instead), and libmicrohttpd
 * stops; old daemons no other thread drains are stopped too (their deadline moved to
 * deadline_ms when earlier). */
void httpd_stop(struct httpd *h, int64_t deadline_ms, bool cut_reads);
/* Any thread: moves the deadline of httpd_stop() to deadline_ms when that is earlier (a second
 * signal), also for a call already waiting. */
void httpd_hurry(struct httpd *h, int64_t deadline_ms);
/* Any thread: one more reference (a view of relay/world.c). Returns h. */
struct httpd *httpd_ref(struct httpd *h);
/* Any thread: drops a reference; the last one frees the relay, which must be stopped by then
 * (the service keeps its reference until it is). NULL is a no-op. */
void httpd_unref(struct httpd *h);
/* Main thread: drops the service's reference (httpd_unref()). NULL is a no-op. */
void httpd_free(struct httpd *h);

/* Views for /metrics. Any thread. */
const char *httpd_name(const struct httpd *h);
const struct httpd_stats *httpd_stats(const struct httpd *h);
/* The relay's configuration as requests starting now see it: a reference to release with
 * httpd_gen_put(). Any thread. */
struct httpd_gen;
struct httpd_gen *httpd_gen_get(struct httpd *h);
void httpd_gen_put(struct httpd_gen *g);
/* The backends of g (borrowed while g is held), in output order; returns how many. */
size_t httpd_gen_backends(const struct httpd_gen *g, struct backend *const **out);

/* The number of libmicrohttpd worker threads for c (workers, 0 = one per core). Any thread. */
unsigned httpd_workers(const struct conf_http *c);

#endif
