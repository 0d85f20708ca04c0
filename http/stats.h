/* Per-HTTP-relay counters, updated by libmicrohttpd's worker threads (and the timer thread for
 * read timeouts) with relaxed atomics and read by /metrics and /health (any thread). Owned by
 * struct httpd. */
#ifndef IR_HTTP_STATS_H
#define IR_HTTP_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "util/histo.h"

enum httpd_endpoint {
    EP_WRITE,
    EP_PING,
    EP_METRICS,
    EP_HEALTH,
    EP_QUERY,
    EP_WRITE_V2,   /* /api/v2/write */
    EP_PROM_WRITE, /* /api/v1/prom/write */
    EP_OTHER,
    EP_COUNT
};

#define HTTPD_MAX_CODE 600

struct httpd_stats {
    _Atomic uint64_t requests[EP_COUNT][HTTPD_MAX_CODE]; /* answered requests by status code */
    _Atomic uint64_t points_received;     /* valid points accepted from /write and /api/v2/write */
    _Atomic uint64_t bytes_received;      /* write body bytes after gunzip (Prometheus ones too) */
    _Atomic uint64_t lines_rejected;      /* invalid lines in /write and /api/v2/write bodies */
    struct histo request_duration;        /* time to answer a POST to a write endpoint */
    _Atomic uint64_t connections;         /* gauge: open connections (admitted, not closed) */
    _Atomic uint64_t connections_refused; /* connections closed at once: max-connections */
    _Atomic uint64_t read_timeouts;       /* requests closed by read-timeout */
    _Atomic uint64_t inflight_refused;    /* writes refused by max-inflight-mb */
};

#endif
