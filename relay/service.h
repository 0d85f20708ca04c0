/* The service: turns the config tree into runtime objects (backends, HTTP and UDP relays, the
 * deadline timer, the max-inflight-mb budget), starts them in order and shuts them down in the
 * reverse order, within one deadline. Main thread only, except service_hurry(). Borrows the conf
 * tree, which must outlive the service. */
#ifndef IR_RELAY_SERVICE_H
#define IR_RELAY_SERVICE_H

#include "conf/conf.h"
#include "util/err.h"

struct service;

/* Builds every runtime object without binding a socket or starting a thread (this is the end of
 * --check-config's path). Returns owned, or NULL with *err filled (err->line = conf line or 0). */
struct service *service_new(const struct conf *c, struct ir_err *err);
/* Raises the open-files limit, starts senders and the timer, then binds and starts every relay.
 * 0, or -1 with *err filled. */
int service_start(struct service *s, struct ir_err *err) IR_WARN_UNUSED;
/* Orderly shutdown, each step logged, all of it within shutdown-timeout (plus a moment to send
 * the last answers). Safe after a failed or partial start. One thread at a time. */
void service_stop(struct service *s);
/* Any thread, while service_stop() runs (a second signal): the shutdown deadline becomes now:
 * waiting writes are answered at once, queues are dropped (and logged) at once. */
void service_hurry(struct service *s);
/* NULL is a no-op. */
void service_free(struct service *s);

#endif
