/* The queue of one backend: a FIFO of client writes bounded by the bytes they hold, which is
 * also the backend's retry buffer. Any thread pushes (HTTP connection threads); exactly one
 * sender thread takes batches from the head, puts them back after a failed send or removes them
 * after a final outcome; rendezvous withdraw single writes that were never claimed for sending.
 * One mutex per queue, held for bookkeeping only: payloads and rendezvous are released after it
 * is dropped. Never logs (a lower layer: callers count and log). */
#ifndef IR_BUFFER_QUEUE_H
#define IR_BUFFER_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer/payload.h"
#include "buffer/spool.h"
#include "util/err.h"

/* The rendezvous a client waits on (buffer/rdv.h) is opaque here: a queue only holds references
 * on it, through the two functions its owner gives to queue_new() (rdv_ref and rdv_unref). */
struct rdv;
struct queue_ref_ops {
    void (*ref)(struct rdv *r);
    void (*unref)(struct rdv *r);
};
struct queue;

/* What an entry's bytes count against (spooled queues; see queue_spooled()). */
enum queue_mem {
    QUEUE_HELD,     /* charged against the bound (every entry of a queue that is not spooled) */
    QUEUE_OVERFLOW, /* the bound was reached: kept only while its client waits, since its record
                     * is in the spool (queue_release()) */
    QUEUE_LOADED,   /* read back from the spool to be sent (queue_push_loaded()) */
};

/* One client write held for one backend. p, r, ops, idx, cost, seq, arrival_ns and loc are
 * immutable after the push; the links, the in-flight mark, ondisk and mem are guarded by the
 * queue's mutex (private to queue.c). */
struct queue_entry {
    struct queue_entry *next; /* guarded by q->mu */
    struct queue_entry *prev; /* guarded by q->mu */
    struct payload *p;        /* owned reference */
    struct rdv *r;            /* owned reference, NULL when nobody waits (tests, fire-and-forget) */
    const struct queue_ref_ops *ops; /* borrowed from the queue: how r's reference is dropped */
    unsigned idx;                    /* the backend's index in r */
    bool inflight;        /* guarded by q->mu: taken by the sender, cannot be withdrawn */
    uint64_t cost;        /* bytes charged against the bound */
    uint64_t seq;         /* push order, unique per queue; spooled: the spool's sequence number */
    int64_t arrival_ns;   /* wall time the write arrived (spool-max-age) */
    struct spool_loc loc; /* spooled: where its record was reserved */
    bool ondisk;          /* guarded by q->mu: spooled, its record is written */
    enum queue_mem mem;   /* guarded by q->mu */
};

/* The bytes a write of payload p is charged in a queue: what the payload holds plus the entry. */
uint64_t queue_entry_cost(const struct payload *p);

/* Main thread. cap_bytes bounds the sum of entry costs. When allow_one_over is true a write
 * always fits an empty queue whatever its size (unbuffered backends: the body is already
 * bounded by max-body-mb). withdrawn (borrowed, may be NULL) is incremented for every write
 * removed by queue_withdraw(). ops (borrowed, must outlive the queue and its entries) counts the
 * references on the writes' rendezvous. Returns owned; free with queue_free(). Never NULL. */
struct queue *queue_new(uint64_t cap_bytes, bool allow_one_over, _Atomic uint64_t *withdrawn,
                        const struct queue_ref_ops *ops);
/* Main thread, before any push: the queue holds the writes of a backend with a spool, ordered by
 * the spool's sequence numbers (queue_push_spooled()), the entry seq being that number. Its
 * memory holds a subset of the spool: entries charged against the bound, overflow entries
 * (their clients still wait) and entries read back from the spool (queue_push_loaded()). */
void queue_spooled(struct queue *q);

/* Main thread, once no other thread uses q: frees every entry left (see queue_pop_all()).
 * NULL is a no-op. */
void queue_free(struct queue *q);

/* Any thread. Appends the write, taking one reference on p and on r (r may be NULL), and stores
 * its sequence number in *seq. Returns 0, or -1 when it does not fit (nothing taken). */
int queue_push(struct queue *q, struct payload *p, struct rdv *r, unsigned idx,
               uint64_t *seq) IR_WARN_UNUSED;

/* Spooled, any thread, with the caller's lock that orders reservations: appends the write whose
 * spool record was reserved at loc (loc->seq, above every seq pushed so far), taking one
 * reference on p and on r (r may be NULL). Charged when it fits; otherwise an overflow entry when
 * may_overflow (*overflow = true), else -1 (nothing taken). */
int queue_push_spooled(struct queue *q, struct payload *p, struct rdv *r, unsigned idx,
                       const struct spool_loc *loc, int64_t arrival_ns, bool may_overflow,
                       bool *overflow) IR_WARN_UNUSED;
/* Spooled, any thread: the record of the write pushed as seq was written (ok) or not. Not written:
 * an overflow entry must be held in memory now: charged when it fits (or is in flight), else
 * unlinked and returned (the caller frees it: the write is refused for this backend). */
struct queue_entry *queue_spool_written(struct queue *q, uint64_t seq, bool ok);
/* Spooled, any thread: copies the place of the record of the write pushed as seq when it is
 * still queued and its record was written. */
bool queue_spool_loc(struct queue *q, uint64_t seq, struct spool_loc *loc);
/* Spooled, any thread: the client of the write pushed as seq has its answer: an overflow entry
 * (not in flight, its record written) leaves memory, its record stays in the spool. Returns it
 * unlinked (the caller frees it), or NULL. */
struct queue_entry *queue_release(struct queue *q, uint64_t seq);
/* Spooled, sender thread: puts n records read back from the spool (seqs ascending, above those
 * of the writes read back before that are still queued, below every other queued write) in
 * their place by seq, in order, as writes nobody waits for: at the head, or behind the writes
 * read back before. Takes over the caller's reference on each payload. */
void queue_push_loaded(struct queue *q, struct payload *const *ps, const uint64_t *seqs,
                       const int64_t *arrivals, size_t n);
/* Any thread: the seq of the head write, 0 when empty. */
uint64_t queue_head_seq(struct queue *q);
/* Spooled, any thread: how many head writes have a seq <= pos (stops counting at max), and the
 * seq of the first above pos (0 when none). */
size_t queue_spool_view(struct queue *q, uint64_t pos, size_t max, uint64_t *first_above);

/* Sender thread. Marks in flight and copies to out[] the head write and the following writes of
 * the same route (payload_same_route()) while their data fits in max_bytes (the head always
 * goes, whatever its size) and n < max_writes. Returns n (0 when empty). Entries stay queued
 * (and counted) until queue_remove() or queue_put_back(). */
size_t queue_take(struct queue *q, size_t max_bytes, size_t max_writes, struct queue_entry **out);
/* queue_take() for a spooled queue whose spool reader has passed every seq <= upto: takes only
 * writes with no unread record of the spool before them (the head's seq <= upto + 1, each next
 * one's <= the previous one's + 1 or <= upto + 1). */
size_t queue_take_upto(struct queue *q, size_t max_bytes, size_t max_writes, uint64_t upto,
                       struct queue_entry **out);
/* Sender thread. Marks in flight and copies to *out the write right behind the head, provided
 * the head is still the write pushed as head_seq. Returns 1, or 0 (nothing taken). */
size_t queue_take_second(struct queue *q, uint64_t head_seq, struct queue_entry **out);
/* queue_take_second() with the order condition of queue_take_upto(). */
size_t queue_take_second_upto(struct queue *q, uint64_t head_seq, uint64_t upto,
                              struct queue_entry **out);
/* Sender thread: unmarks taken entries, which stay where they are (at the head) for a retry. */
void queue_put_back(struct queue *q, struct queue_entry *const *es, size_t n);
/* Sender thread: unlinks taken entries and releases their bytes. The caller still owns them:
 * free each with queue_entry_free() (after reporting, outside any lock). */
void queue_remove(struct queue *q, struct queue_entry *const *es, size_t n);
/* Any thread, no lock held: drops the entry's references and frees it. NULL is a no-op. */
void queue_entry_free(struct queue_entry *e);

/* Any thread (a rendezvous that gave up). Removes and frees the write pushed as seq unless it is
 * in flight or gone. Returns true when it removed it (and counted it in withdrawn). */
bool queue_withdraw(struct queue *q, uint64_t seq);

/* Any thread. Copies to rs[]/idxs[] (at most max) the rendezvous of the queued writes that are not
 * in flight, taking a reference on each (the caller unrefs). Returns how many. */
size_t queue_waiters(struct queue *q, struct rdv **rs, unsigned *idxs, size_t max);

/* Shutdown, once the sender has stopped: unlinks every entry and returns them as a list linked
 * by next (caller frees each with queue_entry_free()). */
struct queue_entry *queue_pop_all(struct queue *q);

/* Sender thread. Waits until the queue is not empty (when for_data) or until deadline_ms
 * (monotonic, -1 = none) or until *stop is set and queue_kick() called (stop may be NULL: then
 * only data or the deadline end the wait). Returns at once when the condition already holds. */
void queue_wait(struct queue *q, bool for_data, int64_t deadline_ms, const _Atomic bool *stop);
/* Any thread: a count of the writes queue_release() took out of memory (their records are left to
 * the spool reader). */
uint64_t queue_gen(struct queue *q);
/* queue_wait() that also returns once queue_gen() is no longer gen. */
void queue_wait_gen(struct queue *q, bool for_data, int64_t deadline_ms, const _Atomic bool *stop,
                    uint64_t gen);
/* Any thread (a reload): the new bound and policy of queue_new(); writes already held stay, even
 * beyond a smaller bound; only new pushes see it. */
void queue_set_cap(struct queue *q, uint64_t cap_bytes, bool allow_one_over);
/* Any thread: wakes a waiting sender (after setting its stop flag). */
void queue_kick(struct queue *q);

/* Any thread: a consistent view of what the queue holds. */
struct queue_stats {
    uint64_t bytes;  /* sum of entry costs, in-flight entries included */
    uint64_t writes; /* entries, in-flight entries included */
    uint64_t cap_bytes;
    int64_t oldest_ms; /* arrived_ms of the head payload, 0 when empty */
};
void queue_stats(struct queue *q, struct queue_stats *s);
/* Any thread, lock-free: the bytes held a moment ago (for threshold warnings). */
uint64_t queue_bytes(struct queue *q);

#endif
