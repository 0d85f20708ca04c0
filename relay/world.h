/* The process-wide world: every HTTP relay (with its backends) and UDP relay of the process, as
 * /metrics and /health show them. Owned by relay/service.c (the arrays and what they point to);
 * filled by the main thread before start and immutable afterwards. Renders /metrics from a
 * snapshot taken per scrape, handed to http/h_metrics.c as plain data, and reads the UDP
 * receivers for /health the same way. */
#ifndef IR_RELAY_WORLD_H
#define IR_RELAY_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "http/h_health.h"
#include "http/inflight.h"
#include "http/server.h"
#include "udp/listener.h"

struct world {
    struct httpd **http; /* owned array (the relays belong to the service) */
    size_t n_http;
    struct udp_listener **udp; /* owned array */
    size_t n_udp;
    const struct inflight *inflight; /* borrowed */
    int64_t start_time_ns;
};

/* An httpd_metrics_fn: ctx is a struct world. Returns the owned text of GET /metrics, or NULL
 * when out of memory. Any thread. */
char *world_render_metrics(void *ctx, size_t *len);
/* An httpd_udp_health_fn: ctx is a struct world. The UDP relays' receivers for GET /health.
 * Any thread. */
size_t world_udp_health(void *ctx, struct h_health_udp *out, size_t max);

#endif
