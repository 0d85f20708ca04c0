/* HTTP relays: one libmicrohttpd daemon per [http.R], a pool of `workers` threads on epoll; no
 * thread per connection. Routes /write (and /api/v2/write, /api/v1/prom/write: the same write
 * path), /query, /ping, /metrics, /health. The write handler validates through lp/, submits one
 * payload to each of the relay's backends and suspends its connection until the rendezvous wakes
 * it with the backends' verdict (or write-timeout passes); /query (h_query.c) does the same for
 * statements that change state, and parks its connection while a read waits for the backend's
 * bytes.
 * Owned by relay/service.c; borrows its conf section, its backends and the process-wide
 * pieces of struct httpd_env. */
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

/* Main thread, before timer_start(). backends: this relay's backends in output order (borrowed
 * array, n == number of outputs). Binds nothing. Returns owned, or NULL with *err filled. */
struct httpd *httpd_new(const struct conf_http *c, struct backend **backends,
                        const struct httpd_env *env, struct ir_err *err);
/* Main thread: binds and starts serving. 0 or -1 (err filled: names the address). */
int httpd_start(struct httpd *h, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stop accepting new connections (shutdown step 1). */
void httpd_quiesce(struct httpd *h);
/* Main thread (shutdown step 2): no write is forwarded any more; waits until the requests being
 * answered are answered or deadline_ms (monotonic) passes; then the writes still waiting for
 * their backends are answered at once (503, as at write-timeout), the /query reads still running
 * are cut (env->fetcher is stopped), and libmicrohttpd stops. */
void httpd_stop(struct httpd *h, int64_t deadline_ms);
/* Any thread: moves the deadline of httpd_stop() to deadline_ms when that is earlier (a second
 * signal), also for a call already waiting. */
void httpd_hurry(struct httpd *h, int64_t deadline_ms);
/* NULL is a no-op. */
void httpd_free(struct httpd *h);

/* Borrowed views for /metrics. Any thread. */
const char *httpd_name(const struct httpd *h);
size_t httpd_backends(const struct httpd *h, struct backend *const **out);
const struct httpd_stats *httpd_stats(const struct httpd *h);

/* The number of libmicrohttpd worker threads for c (workers, 0 = one per core). Any thread. */
unsigned httpd_workers(const struct conf_http *c);

#endif
