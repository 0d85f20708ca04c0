/* GET|HEAD /ping: liveness for load balancers, answered by the relay itself (never forwarded).
 * Called from MHD connection threads; no state. */
#ifndef IR_HTTP_H_PING_H
#define IR_HTTP_H_PING_H

#include <stdbool.h>

#include "http/reply.h"

/* Fills r: 204 with X-InfluxDB-Version: relay and no body; when verbose (?verbose=true),
 * 200 with {"version":"relay"} as InfluxDB 1.7+ answers. */
void h_ping(struct reply *r, bool verbose);

#endif
