/* GET /health: JSON state of one HTTP relay's backends for load balancers (INTERFACE.md
 * section 8). Called from MHD connection threads. */
#ifndef IR_HTTP_H_HEALTH_H
#define IR_HTTP_H_HEALTH_H

#include <stddef.h>

#include "http/server.h"

/* Returns an owned, malloc'd JSON body (free()) of *len bytes and sets *status (200 or 503),
 * or NULL when out of memory. */
char *h_health_render(const struct httpd *h, int *status, size_t *len);

#endif
