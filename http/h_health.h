/* GET /health: JSON state of one HTTP relay's backends for load balancers (INTERFACE.md
 * section 8). "ok" (200) when every backend is up, "degraded" (200) when some are not but at
 * least one can take writes, "down" (503) when none can. A backend can take writes when it is
 * up or draining: a client write is acknowledged only once a backend accepted it, and a down
 * backend accepts nothing (its buffer only holds writes for later). docs/operations.md explains.
 * Called from MHD connection threads; reads backend snapshots only. */
#ifndef IR_HTTP_H_HEALTH_H
#define IR_HTTP_H_HEALTH_H

#include <stddef.h>

#include "buffer/backend.h"
#include "http/server.h"

enum h_health_status { H_HEALTH_OK, H_HEALTH_DEGRADED, H_HEALTH_DOWN };

/* Returns an owned, malloc'd JSON body (free()) of *len bytes and sets *status (200 or 503),
 * or NULL when out of memory. h is borrowed. Any thread. */
char *h_health_render(const struct httpd *h, int *status, size_t *len);

/* The verdict for n backend snapshots (pure; n == 0 is "down"). Any thread. */
enum h_health_status h_health_status_of(const struct backend_snapshot *s, size_t n);

/* Renders the body for relay's n snapshots (borrowed); same result and ownership as
 * h_health_render(). Any thread. */
char *h_health_render_snapshots(const char *relay, const struct backend_snapshot *s, size_t n,
                                int *status, size_t *len);

#endif
