/* A backend: the runtime object for one [http.R.output.B]: a bounded FIFO queue of client writes
 * (the backend's serialized retry buffer) served by one dedicated sender thread that owns one
 * libcurl easy handle. The sender merges the head of the queue with following writes of the same
 * route up to max-batch-kb and streams them from the payloads without copying. With
 * spool-size-mb > 0 it also owns its durable spool (buffer/spool.h): every write is appended
 * there before its client may hear 204, and the queue holds what of the spool fits in memory.
 * Reference-counted: relay/service.c owns it, and each HTTP relay generation using it holds a
 * reference. It holds a reference on the conf tree of its settings; a reload hands it new
 * settings (backend_reconfigure()) or retires it (backend_retire()).
 * Thread use is stated per function. */
#ifndef IR_BUFFER_BACKEND_H
#define IR_BUFFER_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buffer/payload.h"
#include "buffer/rdv.h"
#include "buffer/spool.h"
#include "conf/conf.h"
#include "util/err.h"
#include "util/histo.h"

enum backend_state { BACKEND_UP, BACKEND_DOWN, BACKEND_DRAINING };

/* Per-backend counters, declared once: X(field, metric suffix, help). Expanded into
 * struct backend_stats, /metrics and /health. All relaxed atomics. */
#define BACKEND_COUNTERS(X)                                                                        \
    X(batches_sent, "batches_sent_total", "Batches the backend accepted.")                         \
    X(points_delivered, "points_delivered_total", "Points the backend accepted (2xx).")            \
    X(bytes_delivered, "bytes_delivered_total", "Bytes the backend accepted.")                     \
    X(wire_bytes, "wire_bytes_total",                                                              \
      "Request body bytes sent to the backend (compressed with content-encoding gzip), every "     \
      "attempt included.")                                                                         \
    X(retries, "retries_total", "Failed sends that will be retried.")                              \
    X(dropped_buffer_full, "", "Writes that did not fit in the queue.")                            \
    X(dropped_rejected, "", "Writes the backend refused with a 4xx.")                              \
    X(dropped_withdrawn, "", "Writes withdrawn because the client got a 503.")                     \
    X(dropped_shutdown, "", "Writes still queued when shutdown-timeout ran out.")                  \
    X(dropped_spool_full, "", "Writes that did not fit in the spool.")                             \
    X(dropped_expired, "", "Spooled writes older than spool-max-age.")                             \
    X(dropped_corrupt, "", "Damaged spool regions cut off or skipped (each counts as one write).") \
    X(dropped_removed, "", "Writes of an output a reload removed, not drained in time.")

struct backend_stats {
#define BACKEND_STATS_FIELD(f, m, h) _Atomic uint64_t f;
    BACKEND_COUNTERS(BACKEND_STATS_FIELD)
#undef BACKEND_STATS_FIELD
    _Atomic int64_t last_success_ns; /* wall clock of the last 2xx, 0 = never */
    struct histo send_duration;
    struct histo spool_sync; /* duration of the spool's fdatasync rounds */
};

/* A point-in-time view for /metrics and /health. */
struct backend_snapshot {
    const char *relay; /* borrowed */
    const char *name;  /* borrowed */
    enum backend_state state;
    uint64_t queue_bytes;    /* held bytes, in-flight batch and per-write overhead included */
    uint64_t queue_writes;   /* held client writes, in-flight batch included */
    uint64_t capacity_bytes; /* the bound on queue_bytes */
    double oldest_age_s;     /* age of the oldest held write, 0 when empty */
    const struct backend_stats *stats; /* live counters, borrowed */
    bool spooled;                      /* the output has a spool (the fields below are 0 if not) */
    uint64_t spool_bytes;              /* bytes on disk (segments + index) */
    uint64_t spool_writes;             /* writes in the spool not yet delivered */
    uint64_t spool_capacity_bytes;     /* spool-size-mb */
    uint64_t spool_errors[SPOOL_OP_COUNT]; /* failed spool operations, by spool_op_name() */
};

struct backend;

/* Main thread, once, before any thread exists: libcurl global init, and at most 4 malloc
 * arenas (see buffer/backend.c). 0 or -1. */
int backend_global_init(void) IR_WARN_UNUSED;
/* Main thread, once, after every backend is freed. */
void backend_global_cleanup(void);

/* Main thread. Returns owned (free with backend_free()), or NULL with *err filled. relay is
 * copied; o is borrowed: the backend holds a reference on o->tree (conf_ref()) for as long as it
 * uses o (a section built by hand, tree NULL, must outlive the backend). Starts no thread. */
struct backend *backend_new(const char *relay, const struct conf_http_output *o,
                            struct ir_err *err);
/* Main thread, before backend_start(), for an output with spool-size-mb > 0 (a no-op for the
 * others): opens its spool in spool_dir/RELAY/BACKEND (created as needed), taking the
 * directory's lock and recovering what a previous run left (replayed first). 0, or -1 with err
 * filled (a directory that cannot be used, or that another process holds: the message names
 * it). */
int backend_spool_open(struct backend *b, const char *spool_dir, struct ir_err *err) IR_WARN_UNUSED;
/* Any thread: how often backend_spool_sync() is due, in ms (spool-sync, or 1 s with
 * spool-sync = 0, which still flushes the index); 0 when the backend has no spool. */
int64_t backend_spool_period_ms(const struct backend *b);
/* Any thread (the spool sync thread, on that cadence; the shutdown): makes the spool durable
 * (fdatasync of what was written since the last call). A failure is counted and logged once
 * per episode. */
void backend_spool_sync(struct backend *b);
/* Main thread: starts the sender thread. 0 or -1 (err filled). */
int backend_start(struct backend *b, struct ir_err *err) IR_WARN_UNUSED;

enum backend_submit {
    BACKEND_QUEUED,  /* took a payload ref and an rdv ref; the rdv will hear from this backend */
    BACKEND_FULL,    /* did not fit: counted, nothing taken, the caller reports RDV_FULL */
    BACKEND_REFUSED, /* can never fit, even in an empty buffer: counted (as buffer_full), logged,
                      * nothing taken, and r was told (RDV_FULL with a 413 and its reason);
                      * the caller reports nothing */
};
/* Any thread (HTTP connection threads): appends the write to the queue. idx is the backend's
 * index in the rdv (r may be NULL: nobody waits). Never blocks on I/O, except that a backend
 * with a spool writes the write's record there first (one pwritev(2); with spool-sync = 0 also
 * waits for its group fdatasync): BACKEND_QUEUED then means it is in the spool (or, during a
 * disk error, held in memory). A buffered backend that is down keeps the write but reports
 * RDV_FAILED to r at once (its client is answered by the other backends, or gets 503 and the
 * write is withdrawn: from the spool too). A write larger than a buffered backend's whole buffer
 * (or spool) is refused (BACKEND_REFUSED): retrying it could never succeed. */
enum backend_submit backend_submit(struct backend *b, struct payload *p, struct rdv *r,
                                   unsigned idx);

/* Main thread, shutdown: lets the sender drain its queue until deadline_ms (monotonic), then
 * drops what is left (counted as dropped_shutdown and logged), and joins the thread. A backend
 * with a spool stops at once instead: what it holds is in its spool (a write held only in memory
 * after a disk error is appended now) and is delivered after the restart; the spool is
 * synced. A retired backend (backend_retire()) is only joined, its deadline moved to
 * deadline_ms when earlier. */
void backend_stop(struct backend *b, int64_t deadline_ms);
/* Any thread, shutdown (a second signal): moves the deadline of backend_stop() to deadline_ms
 * when that is earlier, also for a call already waiting and for a request in flight (aborted
 * at that time). */
void backend_hurry(struct backend *b, int64_t deadline_ms);
/* Main thread (a reload): the output's settings in the new configuration (same relay and name;
 * the backend holds a reference on o->tree). The sender applies them between two requests,
 * never during one: unchanged settings keep the queue and the connection; changed ones keep the
 * queue (what it holds goes to a new location) and get a new libcurl handle, and the next retry
 * is at once. Returns true when every setting applies live; false when a spool key
 * (spool-size-mb, spool-max-age, spool-sync) changed: those need a restart and keep their values
 * until then. */
bool backend_reconfigure(struct backend *b, const struct conf_http_output *o);
/* Main thread (a reload removed the output): returns at once; the sender keeps sending what the
 * queue holds until it is empty or deadline_ms (monotonic) passes, then drops the rest (counted
 * as dropped_removed, logged naming the backend) and ends. From then on a write submitted by a
 * request that started before the reload is refused (its client hears a failure). Join with
 * backend_stop(), which also moves the deadline earlier. */
void backend_retire(struct backend *b, int64_t deadline_ms);
/* Any thread: the output's name (owned by b). */
const char *backend_name(const struct backend *b);
/* Any thread: true once a retired backend's sender has dropped what was left and ended (its
 * counters are final; backend_stop() joins it at once). */
bool backend_is_ended(struct backend *b);

/* Any thread: one more reference (a relay generation holding the backend). Returns b. */
struct backend *backend_ref(struct backend *b);
/* Any thread: drops a reference; the last one frees the backend, whose sender must have been
 * joined (backend_stop()) by then: the owner keeps its reference until it has. NULL is a
 * no-op. */
void backend_unref(struct backend *b);
/* Main thread: drops the owner's reference (backend_unref()), after backend_stop(). NULL is a
 * no-op. */
void backend_free(struct backend *b);

/* Any thread. */
void backend_snapshot(struct backend *b, struct backend_snapshot *s);

#endif
