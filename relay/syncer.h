/* The spool sync thread: one fixed thread that calls backend_spool_sync() of every backend with
 * a spool on that backend's cadence (spool-sync; 1 s with spool-sync = 0, which flushes the
 * index). A thread of its own because an fdatasync can take seconds: neither a sender (it may be
 * waiting on its backend) nor the deadline timer may wait for it. Created, started, stopped and
 * freed by relay/service.c (main thread); borrows the backends, which must outlive it. */
#ifndef IR_RELAY_SYNCER_H
#define IR_RELAY_SYNCER_H

#include <stddef.h>

#include "buffer/backend.h"
#include "util/err.h"

struct syncer;

/* Main thread. Keeps the backends of bs[0..n) that have a spool; NULL when none has one (then
 * nothing to start, stop or free). Starts no thread. */
struct syncer *syncer_new(struct backend *const *bs, size_t n);
/* Main thread: starts the thread. 0, or -1 with err filled. NULL is a no-op (0). */
int syncer_start(struct syncer *sy, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stops and joins the thread (a sync running then finishes first). NULL and a
 * syncer never started are no-ops. */
void syncer_stop(struct syncer *sy);
/* Main thread, after syncer_stop(). NULL is a no-op. */
void syncer_free(struct syncer *sy);

#endif
