#include "buffer/queue.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "util/clock.h"
#include "util/xalloc.h"

/* Locking: q->mu guards the list, the counters and the in-flight marks. It is never held while a
 * payload or rendezvous is released, nor together with a rendezvous mutex (a rendezvous
 * withdraws through its holder, buffer/backend.c, without holding its own). The rendezvous is
 * only counted here (q->ops): this file does not know what it is. */
struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* CLOCK_MONOTONIC; signalled when the queue becomes non-empty */
    struct queue_entry *head;    /* guarded by mu */
    struct queue_entry *tail;    /* guarded by mu */
    _Atomic uint64_t bytes;      /* written under mu; queue_bytes() reads it without */
    uint64_t writes;             /* guarded by mu */
    uint64_t charged;            /* guarded by mu: sum of the costs of QUEUE_HELD entries */
    bool spooled;                /* immutable after queue_spooled() */
    uint64_t gen;                /* guarded by mu: queue_release() unlinks so far */
    uint64_t next_seq;           /* guarded by mu */
    uint64_t cap;                /* guarded by mu (queue_set_cap(): a reload) */
    bool allow_one_over;         /* guarded by mu */
    _Atomic uint64_t *withdrawn; /* immutable after new (the counter itself is atomic) */
    const struct queue_ref_ops *ops; /* immutable after new (borrowed) */
};

/* An entry is one fixed allocation plus its malloc header. */
uint64_t
queue_entry_cost(const struct payload *p)
{
    return (uint64_t)p->held_bytes + sizeof(struct queue_entry) + 16;
}

struct queue *
queue_new(uint64_t cap_bytes, bool allow_one_over, _Atomic uint64_t *withdrawn,
          const struct queue_ref_ops *ops)
{
    struct queue *q = xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->mu, NULL);
    clock_cond_init(&q->cv);
    q->cap = cap_bytes;
    q->allow_one_over = allow_one_over;
    q->withdrawn = withdrawn;
    q->ops = ops;
    q->next_seq = 1;
    return q;
}

void
queue_free(struct queue *q)
{
    if (q == NULL) {
        return;
    }
    struct queue_entry *e = queue_pop_all(q);
    while (e != NULL) {
        struct queue_entry *next = e->next;
        queue_entry_free(e);
        e = next;
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* Caller holds q->mu. */
static void
unlink_entry(struct queue *q, struct queue_entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        q->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        q->tail = e->prev;
    }
    e->next = NULL;
    e->prev = NULL;
    q->bytes -= e->cost;
    q->writes--;
    if (e->mem == QUEUE_HELD) {
        q->charged -= e->cost;
    }
}

/* Caller holds q->mu: links e at the tail. Returns true when the queue was empty. */
static bool
link_tail(struct queue *q, struct queue_entry *e)
{
    e->prev = q->tail;
    if (q->tail != NULL) {
        q->tail->next = e;
    } else {
        q->head = e;
    }
    q->tail = e;
    q->bytes += e->cost;
    q->writes++;
    if (e->mem == QUEUE_HELD) {
        q->charged += e->cost;
    }
    return q->head == e;
}

/* Caller holds q->mu: the entry pushed as seq, searched from the tail (a young write), or NULL. */
static struct queue_entry *
find_locked(struct queue *q, uint64_t seq)
{
    for (struct queue_entry *e = q->tail; e != NULL && e->seq >= seq; e = e->prev) {
        if (e->seq == seq) {
            return e;
        }
    }
    return NULL;
}

/* A new entry for p and r, with its references taken (before any lock). */
static struct queue_entry *
entry_new(struct queue *q, struct payload *p, struct rdv *r, unsigned idx)
{
    struct queue_entry *e = xcalloc(1, sizeof(*e));
    e->p = p;
    e->r = r;
    e->ops = q->ops;
    e->idx = idx;
    e->cost = queue_entry_cost(p);
    e->mem = QUEUE_HELD;
    payload_ref(p);
    if (r != NULL) {
        q->ops->ref(r);
    }
    return e;
}

int
queue_push(struct queue *q, struct payload *p, struct rdv *r, unsigned idx, uint64_t *seq)
{
    /* Allocate before locking; the references are taken before the entry becomes visible. */
    struct queue_entry *e = entry_new(q, p, r, idx);
    pthread_mutex_lock(&q->mu);
    bool fits = q->charged + e->cost <= q->cap || (q->allow_one_over && q->head == NULL);
    bool wake = false;
    if (fits) {
        e->seq = q->next_seq++;
        *seq = e->seq;
        wake = link_tail(q, e); /* read under the lock: the queue was empty */
    }
    pthread_mutex_unlock(&q->mu);
    if (wake) {
        pthread_cond_broadcast(&q->cv); /* after unlocking: the sender needs the lock at once */
    }
    if (!fits) {
        /* The caller still holds its own references, so these never free anything. */
        queue_entry_free(e);
        return -1;
    }
    return 0;
}

void
queue_spooled(struct queue *q)
{
    q->spooled = true;
}

int
queue_push_spooled(struct queue *q, struct payload *p, struct rdv *r, unsigned idx,
                   const struct spool_loc *loc, int64_t arrival_ns, bool may_overflow,
                   bool *overflow)
{
    struct queue_entry *e = entry_new(q, p, r, idx);
    e->seq = loc->seq;
    e->loc = *loc;
    e->arrival_ns = arrival_ns;
    pthread_mutex_lock(&q->mu);
    bool fits = q->charged + e->cost <= q->cap;
    bool ok = fits || may_overflow;
    bool wake = false;
    if (ok) {
        e->mem = fits ? QUEUE_HELD : QUEUE_OVERFLOW;
        wake = link_tail(q, e);
    }
    pthread_mutex_unlock(&q->mu);
    if (wake) {
        pthread_cond_broadcast(&q->cv);
    }
    *overflow = ok && !fits;
    if (!ok) {
        queue_entry_free(e);
        return -1;
    }
    return 0;
}

struct queue_entry *
queue_spool_written(struct queue *q, uint64_t seq, bool ok)
{
    struct queue_entry *gone = NULL;
    pthread_mutex_lock(&q->mu);
    struct queue_entry *e = find_locked(q, seq);
    if (e != NULL && ok) {
        e->ondisk = true;
    } else if (e != NULL && e->mem == QUEUE_OVERFLOW) {
        if (e->inflight || q->charged + e->cost <= q->cap) {
            e->mem = QUEUE_HELD;
            q->charged += e->cost;
        } else {
            unlink_entry(q, e);
            gone = e;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return gone;
}

bool
queue_spool_loc(struct queue *q, uint64_t seq, struct spool_loc *loc)
{
    pthread_mutex_lock(&q->mu);
    const struct queue_entry *e = find_locked(q, seq);
    bool found = e != NULL && e->ondisk;
    if (found) {
        *loc = e->loc;
    }
    pthread_mutex_unlock(&q->mu);
    return found;
}

struct queue_entry *
queue_release(struct queue *q, uint64_t seq)
{
    pthread_mutex_lock(&q->mu);
    struct queue_entry *e = find_locked(q, seq);
    if (e != NULL && (e->mem != QUEUE_OVERFLOW || !e->ondisk || e->inflight)) {
        e = NULL;
    }
    if (e != NULL) {
        unlink_entry(q, e);
        q->gen++;
    }
    pthread_mutex_unlock(&q->mu);
    if (e != NULL) {
        pthread_cond_broadcast(&q->cv); /* a sender waiting for data has a record to read now */
    }
    return e;
}

void
queue_push_loaded(struct queue *q, struct payload *const *ps, const uint64_t *seqs,
                  const int64_t *arrivals, size_t n)
{
    if (n == 0) {
        return;
    }
    struct queue_entry *first = NULL;
    struct queue_entry *last = NULL;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_entry *e = xcalloc(1, sizeof(*e));
        e->p = ps[i]; /* the caller's reference */
        e->ops = q->ops;
        e->cost = queue_entry_cost(ps[i]);
        e->seq = seqs[i];
        e->arrival_ns = arrivals[i];
        e->mem = QUEUE_LOADED;
        e->ondisk = true;
        e->prev = last;
        if (last != NULL) {
            last->next = e;
        } else {
            first = e;
        }
        last = e;
        bytes += e->cost;
    }
    pthread_mutex_lock(&q->mu);
    /* In seq order: behind the writes read back earlier that still wait, before the others. */
    struct queue_entry *before = NULL;
    struct queue_entry *after = q->head;
    while (after != NULL && after->seq < first->seq) {
        before = after;
        after = after->next;
    }
    assert(after == NULL || after->seq > last->seq);
    first->prev = before;
    if (before != NULL) {
        before->next = first;
    } else {
        q->head = first;
    }
    last->next = after;
    if (after != NULL) {
        after->prev = last;
    } else {
        q->tail = last;
    }
    q->bytes += bytes;
    q->writes += n;
    pthread_mutex_unlock(&q->mu);
}

uint64_t
queue_head_seq(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t seq = q->head != NULL ? q->head->seq : 0;
    pthread_mutex_unlock(&q->mu);
    return seq;
}

size_t
queue_spool_view(struct queue *q, uint64_t pos, size_t max, uint64_t *first_above)
{
    size_t n = 0;
    *first_above = 0;
    pthread_mutex_lock(&q->mu);
    for (const struct queue_entry *e = q->head; e != NULL; e = e->next) {
        if (e->seq > pos) {
            *first_above = e->seq;
            break;
        }
        if (++n >= max) {
            break;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* Caller holds q->mu: e may follow prev (NULL: e is the head) in a batch without an unread
 * record of the spool between them (see queue_take_upto()). */
static bool
in_order(const struct queue *q, const struct queue_entry *prev, const struct queue_entry *e,
         uint64_t upto)
{
    if (!q->spooled || upto == UINT64_MAX) {
        return true;
    }
    uint64_t after = prev != NULL && prev->seq > upto ? prev->seq : upto;
    return e->seq <= after + 1;
}

size_t
queue_take(struct queue *q, size_t max_bytes, size_t max_writes, struct queue_entry **out)
{
    return queue_take_upto(q, max_bytes, max_writes, UINT64_MAX, out);
}

size_t
queue_take_upto(struct queue *q, size_t max_bytes, size_t max_writes, uint64_t upto,
                struct queue_entry **out)
{
    size_t n = 0;
    size_t bytes = 0;
    pthread_mutex_lock(&q->mu);
    for (struct queue_entry *e = q->head; e != NULL && n < max_writes; e = e->next) {
        if (!in_order(q, n > 0 ? out[n - 1] : NULL, e, upto)) {
            break;
        }
        if (n > 0 && (!payload_same_route(out[0]->p, e->p) || bytes + e->p->len > max_bytes)) {
            break;
        }
        e->inflight = true;
        bytes += e->p->len;
        out[n++] = e;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t
queue_take_second(struct queue *q, uint64_t head_seq, struct queue_entry **out)
{
    return queue_take_second_upto(q, head_seq, UINT64_MAX, out);
}

size_t
queue_take_second_upto(struct queue *q, uint64_t head_seq, uint64_t upto, struct queue_entry **out)
{
    size_t n = 0;
    pthread_mutex_lock(&q->mu);
    struct queue_entry *h = q->head;
    if (h != NULL && h->seq == head_seq && h->next != NULL && in_order(q, h, h->next, upto)) {
        h->next->inflight = true;
        out[n++] = h->next;
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

void
queue_put_back(struct queue *q, struct queue_entry *const *es, size_t n)
{
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        es[i]->inflight = false;
    }
    pthread_mutex_unlock(&q->mu);
}

void
queue_remove(struct queue *q, struct queue_entry *const *es, size_t n)
{
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        unlink_entry(q, es[i]);
        es[i]->inflight = false;
    }
    pthread_mutex_unlock(&q->mu);
}

void
queue_entry_free(struct queue_entry *e)
{
    if (e == NULL) {
        return;
    }
    payload_unref(e->p);
    if (e->r != NULL) {
        e->ops->unref(e->r);
    }
    free(e);
}

bool
queue_withdraw(struct queue *q, uint64_t seq)
{
    pthread_mutex_lock(&q->mu);
    struct queue_entry *found = find_locked(q, seq);
    if (found != NULL && found->inflight) {
        found = NULL;
    }
    if (found != NULL) {
        unlink_entry(q, found);
    }
    pthread_mutex_unlock(&q->mu);
    if (found == NULL) {
        return false;
    }
    if (q->withdrawn != NULL) {
        atomic_fetch_add_explicit(q->withdrawn, 1, memory_order_relaxed);
    }
    queue_entry_free(found);
    return true;
}

size_t
queue_waiters(struct queue *q, struct rdv **rs, unsigned *idxs, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&q->mu);
    for (struct queue_entry *e = q->head; e != NULL && n < max; e = e->next) {
        if (!e->inflight && e->r != NULL) {
            q->ops->ref(e->r); /* an atomic increment: no allocation, no other lock */
            rs[n] = e->r;
            idxs[n++] = e->idx;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return n;
}

struct queue_entry *
queue_pop_all(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    struct queue_entry *all = q->head;
    for (struct queue_entry *e = all; e != NULL; e = e->next) {
        e->prev = NULL;
        e->inflight = false;
    }
    q->head = NULL;
    q->tail = NULL;
    atomic_store(&q->bytes, 0);
    q->writes = 0;
    q->charged = 0;
    pthread_mutex_unlock(&q->mu);
    return all;
}

void
queue_wait(struct queue *q, bool for_data, int64_t deadline_ms, const _Atomic bool *stop)
{
    queue_wait_gen(q, for_data, deadline_ms, stop, UINT64_MAX);
}

uint64_t
queue_gen(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t g = q->gen;
    pthread_mutex_unlock(&q->mu);
    return g;
}

void
queue_wait_gen(struct queue *q, bool for_data, int64_t deadline_ms, const _Atomic bool *stop,
               uint64_t gen)
{
    struct timespec ts;
    if (deadline_ms >= 0) {
        clock_mono_to_ts(&ts, deadline_ms);
    }
    pthread_mutex_lock(&q->mu);
    while (!(for_data && q->head != NULL) && !(stop != NULL && atomic_load(stop)) &&
           (gen == UINT64_MAX || q->gen == gen)) {
        if (deadline_ms < 0) {
            pthread_cond_wait(&q->cv, &q->mu);
        } else if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) != 0) {
            break; /* ETIMEDOUT */
        }
    }
    pthread_mutex_unlock(&q->mu);
}

void
queue_set_cap(struct queue *q, uint64_t cap_bytes, bool allow_one_over)
{
    pthread_mutex_lock(&q->mu);
    q->cap = cap_bytes;
    q->allow_one_over = allow_one_over;
    pthread_mutex_unlock(&q->mu);
}

void
queue_kick(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

uint64_t
queue_bytes(struct queue *q)
{
    return atomic_load_explicit(&q->bytes, memory_order_relaxed);
}

void
queue_stats(struct queue *q, struct queue_stats *s)
{
    pthread_mutex_lock(&q->mu);
    s->bytes = atomic_load(&q->bytes);
    s->writes = q->writes;
    s->cap_bytes = q->cap;
    s->oldest_ms = q->head != NULL ? q->head->p->arrived_ms : 0;
    pthread_mutex_unlock(&q->mu);
}
