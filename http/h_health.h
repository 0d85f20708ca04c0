/* GET /health: JSON state of one HTTP relay's backends for load balancers (INTERFACE.md
 * section 8). "ok" (200) when every backend is up, "degraded" (200) when some are not but the
 * relay can still take writes, "down" (503) when it cannot. A backend takes writes when it is up
 * or draining; a down backend's buffer holds writes for later but cannot earn the client a 204.
 * So with write-consistency = one or any: down when no backend is up or draining; with "all"
 * (every backend must accept): down as soon as one is down. docs/operations.md explains.
 * Renders plain snapshots handed to it (server.c takes them from the relay's backends); any
 * thread. */
#ifndef IR_HTTP_H_HEALTH_H
#define IR_HTTP_H_HEALTH_H

#include <stddef.h>

#include "buffer/backend.h"
#include "conf/conf.h"

enum h_health_status { H_HEALTH_OK, H_HEALTH_DEGRADED, H_HEALTH_DOWN };

/* The verdict for relay c and the snapshots of its backends, s[i] for c->outputs[i] (pure;
 * n == 0 is "down"). All borrowed. Any thread. */
enum h_health_status h_health_status_of(const struct conf_http *c, const struct backend_snapshot *s,
                                        size_t n);

/* Renders the body for relay c and its n snapshots (borrowed): returns an owned, malloc'd JSON
 * body (free()) of *len bytes and sets *status (200 or 503), or NULL when out of memory. Any
 * thread. */
char *h_health_render_snapshots(const struct conf_http *c, const struct backend_snapshot *s,
                                size_t n, int *status, size_t *len);

#endif
