/* GET /metrics: Prometheus text exposition 0.0.4 of every relay of the process (INTERFACE.md
 * section 8). Called from MHD connection threads; reads atomics and snapshots only. */
#ifndef IR_HTTP_H_METRICS_H
#define IR_HTTP_H_METRICS_H

#include <stddef.h>

#include "http/server.h"

/* Returns an owned, malloc'd text (free()) of *len bytes, or NULL when out of memory. */
char *h_metrics_render(const struct httpd_world *w, size_t *len);

#endif
