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
#include "util/err.h"

/* The rendezvous a client waits on (buffer/rdv.h) is opaque here: a queue only holds references
 * on it, through the two functions its owner gives to queue_new() (rdv_ref and rdv_unref). */
struct rdv;
struct queue_ref_ops {
    void (*ref)(struct rdv *r);
    void (*unref)(struct rdv *r);
};
struct queue;

/* One client write held for one backend. p, r, ops, idx, cost and seq are immutable after the
 * push; the links and the in-flight mark are guarded by the queue's mutex (private to queue.c).
 */
struct queue_entry {
    struct queue_entry *next; /* guarded by q->mu */
    struct queue_entry *prev; /* guarded by q->mu */
    struct payload *p;        /* owned reference */
    struct rdv *r;            /* owned reference, NULL when nobody waits (tests, fire-and-forget) */
    const struct queue_ref_ops *ops; /* borrowed from the queue: how r's reference is dropped */
    unsigned idx;                    /* the backend's index in r */
    bool inflight; /* guarded by q->mu: taken by the sender, cannot be withdrawn */
    uint64_t cost; /* bytes charged against the bound */
    uint64_t seq;  /* push order, unique per queue */
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
/* Main thread, once no other thread uses q: frees every entry left (see queue_pop_all()).
 * NULL is a no-op. */
void queue_free(struct queue *q);

/* Any thread. Appends the write, taking one reference on p and on r (r may be NULL), and stores
 * its sequence number in *seq. Returns 0, or -1 when it does not fit (nothing taken). */
int queue_push(struct queue *q, struct payload *p, struct rdv *r, unsigned idx,
               uint64_t *seq) IR_WARN_UNUSED;

/* Sender thread. Marks in flight and copies to out[] the head write and the following writes of
 * the same route (payload_same_route()) while their data fits in max_bytes (the head always
 * goes, whatever its size) and n < max_writes. Returns n (0 when empty). Entries stay queued
 * (and counted) until queue_remove() or queue_put_back(). */
size_t queue_take(struct queue *q, size_t max_bytes, size_t max_writes, struct queue_entry **out);
/* Sender thread. Marks in flight and copies to *out the write right behind the head, provided
 * the head is still the write pushed as head_seq. Returns 1, or 0 (nothing taken). */
size_t queue_take_second(struct queue *q, uint64_t head_seq, struct queue_entry **out);
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
