/* The spool sync thread: one fixed thread that calls backend_spool_sync() of every backend with
 * a spool on that backend's cadence (spool-sync; 1 s with spool-sync = 0, which flushes the
 * index). A thread of its own because an fdatasync can take seconds: neither a sender (it may be
 * waiting on its backend) nor the deadline timer may wait for it. Created, started, stopped and
 * freed by relay/service.c (main thread); holds a reference on each backend it syncs. */
#ifndef IR_RELAY_SYNCER_H
#define IR_RELAY_SYNCER_H

#include <stddef.h>

#include "buffer/backend.h"
#include "util/err.h"

struct syncer;

/* Main thread. An empty set; starts no thread. */
struct syncer *syncer_new(void);
/* Main thread (start, a reload): the backends to sync from now on: those of bs[0..n) that have
 * a spool (it takes a reference on each; a backend already listed keeps its cadence). Starts the
 * thread once syncer_start() was called and some backend has a spool. 0, or -1 with err filled
 * (the thread could not be started). */
int syncer_set(struct syncer *sy, struct backend *const *bs, size_t n,
               struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: from now on the thread runs whenever some listed backend has a spool (one thread;
 * none while none has). 0, or -1 with err filled. */
int syncer_start(struct syncer *sy, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stops and joins the thread (a sync running then finishes first). NULL and a
 * syncer whose thread never started are no-ops. */
void syncer_stop(struct syncer *sy);
/* Main thread, after syncer_stop(): drops its references. NULL is a no-op. */
void syncer_free(struct syncer *sy);

#endif
