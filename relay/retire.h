/* The retire thread: after a reload, what must wait without holding up the main thread runs
 * here, one job after the other, each bounded by its own deadline (the thread starts with the
 * first job and lives until the shutdown): an HTTP relay's old daemons
 * answered and stopped once their connections are gone (httpd_drain()), a removed HTTP relay
 * stopped like at shutdown (httpd_stop()). Owned by relay/service.c; jobs are queued by the main
 * thread. Locking: retire.mu guards the job list and the stop flag only. */
#ifndef IR_RELAY_RETIRE_H
#define IR_RELAY_RETIRE_H

#include <stdint.h>

#include "http/server.h"
#include "relay/world.h"

struct retire;

/* Main thread. Returns owned (free with retire_free()); starts no thread: the first job does
 * (when it cannot, that job and the next ones run on the caller). Never NULL. */
struct retire *retire_new(void);
/* Main thread: httpd_drain(h) on the retire thread (a reference on h is taken). */
void retire_drain(struct retire *r, struct httpd *h);
/* Main thread: httpd_stop(h, deadline_ms) on the retire thread, then world_item_end(it)
 * (references on h and it are taken). */
void retire_stop(struct retire *r, struct httpd *h, struct world_item *it, int64_t deadline_ms);
/* Main thread (shutdown): lets the thread finish every job queued (each bounded by its
 * deadline, which httpd_stop()/httpd_hurry() may move earlier), then joins it. */
void retire_join(struct retire *r);
/* Main thread, after retire_join(). NULL is a no-op. */
void retire_free(struct retire *r);

#endif
