/* The service: turns the config tree into runtime objects (backends, HTTP and UDP relays),
 * starts them in order and shuts them down in the reverse order. Main thread only.
 * Borrows the conf tree, which must outlive the service. */
#ifndef IR_RELAY_SERVICE_H
#define IR_RELAY_SERVICE_H

#include "conf/conf.h"
#include "util/err.h"

struct service;

/* Builds every runtime object without binding a socket or starting a thread (this is the end of
 * --check-config's path). Returns owned, or NULL with *err filled (err->line = conf line or 0). */
struct service *service_new(const struct conf *c, struct ir_err *err);
/* Starts senders, then binds and starts every relay. 0, or -1 with *err filled. */
int service_start(struct service *s, struct ir_err *err) IR_WARN_UNUSED;
/* Orderly shutdown, each step logged. Safe after a failed or partial start. */
void service_stop(struct service *s);
/* NULL is a no-op. */
void service_free(struct service *s);

#endif
