/* GET /health: JSON state of one HTTP relay's backends for load balancers (docs/operations.md
 * section 3), and of the process's UDP receivers. "ok" (200) when every backend is up, "degraded"
 * (200) when some are not but the relay can still take writes, "down" (503) when it cannot. A
 * backend takes writes when it is up or draining; a down backend's buffer holds writes for later
 * but cannot earn the client a 204. So with write-consistency = one or any: down when no backend
 * is up or draining; with "all" (every backend must accept): down as soon as one is down.
 * docs/operations.md explains. Renders plain snapshots handed to it (server.c takes them from
 * the relay's backends, relay/world.c from the UDP relays); any thread. */
#ifndef IR_HTTP_H_HEALTH_H
#define IR_HTTP_H_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "buffer/backend.h"
#include "conf/conf.h"
#include "conf/value.h"

enum h_health_status { H_HEALTH_OK, H_HEALTH_DEGRADED, H_HEALTH_DOWN };

/* The verdict for relay c and the snapshots of its backends, s[i] for c->outputs[i] (pure;
 * n == 0 is "down"). All borrowed. Any thread. */
enum h_health_status h_health_status_of(const struct conf_http *c, const struct backend_snapshot *s,
                                        size_t n);

/* One UDP relay of the process, as /health shows it. */
struct h_health_udp {
    char name[VALUE_NAME_MAX + 1]; /* a copy: a reload may free the relay meanwhile */
    bool receiving;                /* its receiving thread runs */
};

/* Renders the body for relay c and its n snapshots, plus the n_udp UDP relays of the process
 * (all borrowed; udp may be NULL when n_udp is 0): a UDP relay that stopped receiving turns "ok"
 * into "degraded" (HTTP writes still work; datagrams are lost). Returns an owned, malloc'd JSON
 * body (free()) of *len bytes and sets *status (200 or 503), or NULL when out of memory. Any
 * thread. */
char *h_health_render_snapshots(const struct conf_http *c, const struct backend_snapshot *s,
                                size_t n, const struct h_health_udp *udp, size_t n_udp, int *status,
                                size_t *len);

#endif
