/* GET /metrics: Prometheus text exposition 0.0.4 of every relay of the process
 * (docs/operations.md section 1). Called from MHD connection threads; reads atomics and backend
 * snapshots only, so any number of scrapes may run at once. The whole text is rendered into one
 * malloc'd block. */
#ifndef IR_HTTP_H_METRICS_H
#define IR_HTTP_H_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buffer/backend.h"
#include "http/server.h"
#include "http/stats.h"
#include "udp/listener.h"

/* The Content-Type to send with the text. */
#define H_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Returns an owned, malloc'd text (free()) of *len bytes, or NULL when out of memory.
 * w is borrowed. Any thread. */
char *h_metrics_render(const struct httpd_world *w, size_t *len);

/* A plain view of one HTTP relay, so the renderer can be fed by hand (unit tests). */
struct h_metrics_relay {
    const char *name;                        /* borrowed */
    const struct httpd_stats *stats;         /* borrowed; NULL renders zeros */
    const struct backend_snapshot *backends; /* borrowed array of n_backends */
    size_t n_backends;
};

/* Everything h_metrics_render() shows, already collected. All borrowed. */
struct h_metrics_view {
    const struct h_metrics_relay *http;
    size_t n_http;
    struct udp_listener *const *udp;
    size_t n_udp;
    int64_t start_time_ns;
};

/* Renders a view; same result and ownership as h_metrics_render(). Any thread. */
char *h_metrics_render_view(const struct h_metrics_view *v, size_t *len);

#endif
