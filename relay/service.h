/* The service: turns the config tree into runtime objects (backends, HTTP and UDP relays, the
 * deadline timer, the max-inflight-mb budget), starts them in order, applies a new tree on a
 * reload (SIGHUP) without a restart, and shuts them down in the reverse order, within one
 * deadline. Main thread only, except service_hurry(). Holds a reference on the tree in force. */
#ifndef IR_RELAY_SERVICE_H
#define IR_RELAY_SERVICE_H

#include "conf/conf.h"
#include "util/err.h"

struct service;

/* Builds every runtime object without binding a socket or starting a thread (this is the end of
 * --check-config's path). Takes a reference on c. Returns owned, or NULL with *err filled
 * (err->line = conf line or 0). */
struct service *service_new(struct conf *c, struct ir_err *err);
/* Raises the open-files limit, starts senders and the timer, then binds and starts every relay.
 * 0, or -1 with *err filled. */
int service_start(struct service *s, struct ir_err *err) IR_WARN_UNUSED;
/* A reload: applies next (loaded and checked) to the running service (docs/operations.md says
 * what a reload keeps and changes). First everything that can fail is prepared (new backends,
 * PEM files read again, new addresses bound, UDP outputs resolved): any problem is appended to
 * errs (FILE:LINE: messages, by line) and nothing changes: returns -1. Otherwise it commits,
 * logs what changed (and every key that needs a restart to apply), and returns 0. Takes a
 * reference on next when it applies. */
int service_reload(struct service *s, struct conf *next, struct conf_errs *errs) IR_WARN_UNUSED;
/* Any thread: records a reload that failed before service_reload() (the file did not load or
 * check): influxdb_relay_config_last_reload_successful becomes 0. */
void service_note_reload_failed(struct service *s);
/* Orderly shutdown, each step logged, all of it within shutdown-timeout (plus a moment to send
 * the last answers). Safe after a failed or partial start. One thread at a time. */
void service_stop(struct service *s);
/* Any thread, while service_stop() runs (a second signal): the shutdown deadline becomes now:
 * waiting writes are answered at once, queues are dropped (and logged) at once. */
void service_hurry(struct service *s);
/* NULL is a no-op. */
void service_free(struct service *s);

#endif
