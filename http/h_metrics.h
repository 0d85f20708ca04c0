/* GET /metrics: Prometheus text exposition 0.0.4 of every relay of the process
 * (docs/operations.md section 1), rendered from a plain snapshot that relay/ collects and hands
 * over (a view of counters and backend snapshots: this module knows no listener). Any thread,
 * any number of scrapes at once. The whole text is rendered into one malloc'd block. */
#ifndef IR_HTTP_H_METRICS_H
#define IR_HTTP_H_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer/backend.h"
#include "http/stats.h"

/* The Content-Type to send with the text. */
#define H_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One HTTP relay. */
struct h_metrics_relay {
    const char *name;                        /* borrowed */
    const struct httpd_stats *stats;         /* borrowed; NULL renders zeros */
    const struct backend_snapshot *backends; /* borrowed array of n_backends */
    size_t n_backends;
};

/* One output of a UDP relay: counters read once. */
struct h_metrics_udp_output {
    const char *name; /* borrowed */
    uint64_t datagrams_sent;
    uint64_t points_sent;
    uint64_t send_errors;
};

/* One UDP relay: counters read once. lines_dropped_mtu sums the outputs. */
struct h_metrics_udp {
    const char *name; /* borrowed */
    uint64_t datagrams_received;
    uint64_t points_received;
    uint64_t lines_dropped_invalid;
    uint64_t lines_dropped_mtu;
    uint64_t receive_errors; /* failed receives (the receiver backs off and goes on) */
    bool receiver_up;        /* its receiving thread runs */
    const struct h_metrics_udp_output *outputs; /* borrowed array of n_outputs */
    size_t n_outputs;
};

/* Everything the text shows, already collected. All borrowed. */
struct h_metrics_view {
    const struct h_metrics_relay *http;
    size_t n_http;
    const struct h_metrics_udp *udp;
    size_t n_udp;
    uint64_t inflight_bytes; /* process-wide: request bodies held (max-inflight-mb) */
    int64_t start_time_ns;
    bool reload_ok;       /* the last configuration reload applied (true at start) */
    int64_t reload_ok_ns; /* wall clock of the last successful load (start or reload) */
};

/* Returns an owned, malloc'd text (free()) of *len bytes, or NULL when out of memory. Any
 * thread. */
char *h_metrics_render_view(const struct h_metrics_view *v, size_t *len);

#endif
