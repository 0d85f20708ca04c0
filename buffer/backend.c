/* DESIGN: one backend = one bounded queue + one sender thread + one libcurl easy handle.
 *
 * Fan-out. The HTTP thread that validated a write submits one shared payload to each backend of
 * its relay (backend_submit(): a queue push, never I/O) and waits on a rendezvous (rdv.c). Each
 * sender sends the head of its queue merged with the following writes of the same route (query
 * + Authorization; only line-protocol writes merge, other payload kinds go alone) up to
 * max-batch-kb, a single larger write alone, streamed from the payloads with a read callback (no
 * concatenation copy). Under load many small client writes become few large backend requests
 * (group commit); idle, a write goes out alone at once.
 *
 * Bound. Every write is charged queue_entry_cost(): the payload's held_bytes (struct + body
 * allocation + query + auth + malloc headers) + the queue entry. The in-flight batch stays in
 * the queue until its outcome, so the bound covers it. Buffered: cap = buffer-size-mb, strict;
 * a write larger than the whole buffer is refused with a 413 (BACKEND_REFUSED: no retry could
 * ever queue it). Unbuffered: cap = max(4 x max-batch-kb, 32 MiB), and an empty queue takes one
 * write of any size (bodies are bounded by max-body-mb, and stamping by at most 26 bytes a
 * line). A write that does not fit now is refused for this backend at once (BACKEND_FULL,
 * counted, logged once per full episode).
 *
 * Deadlines. A client waits at most write-timeout (rdv_deadline_ms()). A request is capped to
 * end DEADLINE_MARGIN_MS before the earliest deadline of a client still waiting for one of its
 * writes, and is not started with less than MIN_BUDGET_MS left: the writes stay queued, their
 * clients get 503 at the deadline and they are withdrawn (nothing kept, a retry is safe). A
 * request cut short that way is not the backend's failure (no state change, no backoff),
 * unless the one before it was cut too (nothing answered within what clients wait). An
 * attempt sent whole that got no answer may have been stored (rdv_maybe_stored()), and one in
 * flight may still be: a 503 then says so instead of inviting a retry (rdv_verdict.nothing_kept).
 *
 * Outcomes (classify()). 2xx: RDV_OK for every write of the batch. A merged batch answered 4xx
 * (not 408/429/499) or 5xx is isolated: the writes go back and are re-sent one by one, so each
 * client gets its own verdict and one bad write stops failing the others. One write answered
 * 4xx: RDV_REJECTED with the backend's status, body and Content-Type, dropped (counted as
 * rejected, logged when buffered). 5xx, 408, 429, 499, transport error: unbuffered ->
 * RDV_FAILED, dropped (never retried); buffered -> RDV_FAILED, back to the head, retried. 1xx,
 * 3xx (redirects are not followed) and codes beyond 599 are no write endpoint's answer: the
 * location is wrong; handled as failures, logged with a hint, the client hears 502. Every 5xx
 * logs the Go relay's line; transport errors log the Go relay's "Problem posting" line when the
 * state changes, then a summary at most every 30 s.
 *
 * Poison (buffered). A write the backend refuses with a 5xx because of its data (influxd 1.6.7
 * answers 500 to a line with exactly 100 tags) would hold the queue forever. Rule: once the head
 * write, sent alone, got POISON_ATTEMPTS 5xx answers in a row (with the usual backoff between),
 * the write behind it is sent alone at once (the witness). Witness stored -> the backend takes
 * writes, the head is poison: dropped as rejected (counted, logged with the backend's status
 * and answer), and it was never delivered, so order holds. Witness failed too -> the backend is
 * unwell, not the write: nothing is dropped, both stay and are retried with backoff. No write
 * behind it -> retried with backoff until there is one. A backend that answers 500 to every
 * write (overloaded) therefore loses nothing.
 *
 * Retry schedule (buffered), from the end of the failed request: retry 1 after 500 ms (or
 * max-delay-interval if smaller); retry n >= 2 after min(cap, 500 ms x 2^(n-1)) x U[0.8, 1.0],
 * cap = max-delay-interval (at least 100 ms), so jitter never exceeds the cap. With the default
 * 10 s: 0.5, 0.8-1, 1.6-2, 3.2-4, 6.4-8, 8-10, 8-10 ... s. A success resets it; successful sends
 * go back to back. Order: the queue is FIFO and a failed batch stays at its head, so delivery
 * order per backend is arrival order; new writes queue behind the backlog.
 *
 * States. UP -> DOWN on a failed send (logged with the reason); DOWN -> DRAINING on a success
 * with a backlog left (a witness's success included), -> UP once it is empty (logged with outage
 * duration, retries, bytes queued). While DOWN the sender sleeps until the next retry, then sends
 * the head batch, or, with nothing queued, GETs /ping so the state recovers without client
 * writes. A buffered backend that is DOWN reports RDV_FAILED for a new write right away (the
 * write stays queued): with every backend down the client gets 503 at once and the write is
 * withdrawn everywhere (with write-consistency any, queued everywhere is the verdict: 204);
 * when another backend took it (204) it stays here and is delivered on recovery.
 *
 * Withdraw. rdv_finish() removes a write that earned a failure from every queue where it is not
 * in flight, through the backend's holder (backend_withdraw() -> queue_withdraw()); the sender
 * claims each write before sending (rdv_claim(), which marks it in flight for the rendezvous
 * until the attempt reports) and drops withdrawn ones. A failed batch is put back, then writes
 * whose rendezvous withdrew meanwhile are removed by the sender itself.
 *
 * Shutdown. backend_stop() sets the stop flag and a deadline: the sender keeps sending (and
 * retrying) until the queue is empty or the deadline passes (a request still running then is
 * aborted), the thread is joined, and what is left is dropped, counted and logged.
 *
 * Spool (spool-size-mb > 0; docs/queue-and-retry.md "The spool"). Every write is appended to the
 * backend's spool at submit, before its rendezvous is attached (so before any 204, and with
 * write-consistency any, before the verdict), in spool sequence order, which is delivery order.
 * The queue holds, ordered by the same sequence numbers, what of the spool is in memory: writes
 * that fit in buffer-size-mb (charged), writes beyond it only while their client waits
 * (overflow: rdv_finish() releases them, their record stays on disk), and records read back
 * from the spool for sending (loaded). A reservation and its queue entry are made in one step
 * under smu, so a record the spool reader may return (any seq below the first queued one, or
 * below the next seq when the queue is empty) is never also in the queue. The sender sends the
 * head of the queue when no unread record comes before it (queue_take_upto() with the reader's
 * position), else it first loads the records before it (spool_refill(): at most one batch of
 * max-batch-kb, and only when fewer than two loaded writes wait; a loaded write still waiting
 * is below the reader's position, so the new ones go behind it, before every other queued
 * write, keeping the queue in seq order). The spool is acknowledged
 * up to the last write removed from the head (delivered, rejected, dropped), never past a write
 * still queued. A withdrawn write's record is voided (spool_void()) before the withdraw
 * returns, so before the client's 503: it is never delivered, also after a restart. Writes
 * older than spool-max-age are dropped (the reader skips them; the sender drops queued ones).
 * A disk error keeps the write in memory (charged; refused when memory is full), logged once
 * per episode. Shutdown: everything is in the spool already; the sender stops at once.
 *
 * Reload. backend_reconfigure() hands the sender new settings (b->next) and pokes it; the sender
 * installs them at the top of its next step, so never during a request: b->o and its tree move
 * to the new configuration; when a key changed (compared key by key, conf/conf_diff.h) a new
 * libcurl handle replaces the old one, the queue's bound follows buffer-size-mb, and a backend
 * that was waiting for its next retry tries at once (a new location may be up). The queue
 * itself is never touched: its writes go to the new location. Other threads never read b->o:
 * they read the atomics cap_bytes and buffered. backend_retire() is backend_stop() without the
 * join, for an output a reload removed: the sender drains until the deadline, then, on its own
 * thread, closes the backend (closed: backend_submit() refuses from then on, a push racing the
 * close is taken back) and drops what is left as reason removed (retire_drop()).
 *
 * Memory. After a backlog of more than 8 MiB drains, the sender calls malloc_trim(0): bodies
 * are freed by this thread into the arenas of the HTTP threads that allocated them, and glibc
 * would otherwise keep those pages; backend_global_init() caps the number of malloc arenas for
 * the same reason (see docs/queue-and-retry.md for the figures).
 *
 * Threads and locks: the queue mutex and the rendezvous mutexes are only held inside queue.c and
 * rdv.c, never together. This file holds one lock, smu (spooled backends only), around a spool
 * reservation and its queue push, and around the sender's look at the queue head and the spool's
 * next seq; the spool's and the queue's mutexes are taken inside it, never the other way round.
 * Logging, curl, spool I/O and payload release happen with no lock held. */
#include "buffer/backend.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/uio.h>

#include "buffer/post.h"
#include "buffer/queue.h"
#include "conf/conf_diff.h"
#include "util/clock.h"
#include "util/le.h"
#include "util/log.h"
#include "util/ratelimit.h"
#include "util/xalloc.h"

#define BATCH_MAX_WRITES   8192
#define UNBUFFERED_MIN_CAP (32LL * 1024 * 1024)
#define RETRY_FIRST_MS     500
#define RETRY_MIN_CAP_MS   100
#define SUMMARY_EVERY_MS   30000
#define REJECT_LOG_MS      1000
#define TRIM_AFTER_BYTES   (8ULL * 1024 * 1024)
#define POISON_ATTEMPTS    3    /* 5xx answers to a write sent alone before a witness is tried */
#define DEADLINE_MARGIN_MS 100  /* a request ends this long before its client's deadline */
#define MIN_BUDGET_MS      100  /* a request with less time than this is not started */
#define DEADLINE_GRACE_MS  100  /* after a client's deadline: time for its write's withdraw */
#define SPOOL_RETRY_MS     1000 /* after a failed read of the spool */
#define SREC_HEAD          24   /* the serialised write's header (spool_head()) */
#define SREC_FORMAT        1

/* Sender thread only. */
struct sender {
    struct post *post;
    struct queue_entry **batch; /* BATCH_MAX_WRITES: the batch being sent */
    struct queue_entry **spare; /* BATCH_MAX_WRITES: withdrawn writes found in a batch */
    struct post_part *parts;    /* BATCH_MAX_WRITES */
    struct rdv **held_r;        /* BATCH_MAX_WRITES: refs kept across a put-back */
    uint64_t *held_seq;         /* BATCH_MAX_WRITES */
    size_t split_left;          /* writes still to send one by one after a 4xx/5xx batch */
    int64_t defer_until_ms;     /* a batch was not started (a client's deadline too close) */
    uint64_t suspect_seq;       /* the head write that failed alone with a 5xx, 0 = none */
    unsigned suspect_fails;     /* its consecutive 5xx answers, sent alone */
    int suspect_status;         /* the last of them */
    char suspect_answer[201];   /* its body, log-safe */
    bool witness_due;           /* send the write behind the suspect, alone, now */
    unsigned cuts;              /* consecutive requests cut short for a client's deadline */
    unsigned attempt;           /* consecutive failures */
    int64_t next_try_ms;        /* DOWN: next retry or probe */
    int64_t down_since_ms;
    int64_t recovered_ms; /* start of DRAINING */
    uint64_t outage_retries;
    int64_t last_summary_ms;
    char last_error[256];
    uint64_t peak_bytes; /* largest backlog since the last malloc_trim() */
    uint64_t rng;
    struct ratelimit reject_rl; /* rejected-write log lines */
    /* Spooled backends only: */
    struct spool_batch sb; /* records read back from the spool */
    struct payload **lp;   /* BATCH_MAX_WRITES: the payloads made of them */
    uint64_t *lseq;        /* BATCH_MAX_WRITES */
    int64_t *larr;         /* BATCH_MAX_WRITES */
    uint64_t done_hi;      /* highest seq removed from the head: delivered or dropped */
    uint64_t acked;        /* last seq given to spool_ack() */
    uint64_t seen_expired; /* the spool's counters already added to the stats */
    uint64_t seen_corrupt;
    bool read_failing;     /* a read error episode (logged once) */
    bool ack_failing;      /* an episode of failed index writes (logged once) */
    int64_t read_retry_ms; /* after a failed read: when to read again */
};

/* Settings a reload handed over, applied by the sender between two requests (apply_next()). */
struct backend_next {
    const struct conf_http_output *o; /* borrowed from tree */
    struct conf *tree;                /* owned reference */
};

struct backend {
    struct rdv_holder holder; /* immutable after new: how a rendezvous withdraws */
    _Atomic unsigned refs;    /* atomic: the owner's, plus one per holder (backend_ref()) */
    char *relay;              /* immutable after new: the relay's name (owned copy) */
    char *name;               /* immutable after new: the output's name (owned copy) */
    /* The output's settings: the sender thread only once started (a reload swaps them between
     * two requests); other threads read cap_bytes and buffered. */
    const struct conf_http_output *o;
    struct conf *tree;          /* sender thread only: the reference keeping o alive */
    char who[160];              /* immutable after new: "relay/backend" for logs */
    _Atomic bool buffered;      /* atomic: buffer-size-mb > 0 (a reload may change it) */
    _Atomic uint64_t cap_bytes; /* atomic: the queue's bound (a reload may change it) */
    struct queue *q;            /* immutable after new (locks itself) */
    struct backend_stats stats; /* atomic */
    _Atomic int state;          /* atomic: enum backend_state */
    _Atomic bool stop;          /* atomic */
    _Atomic bool poke;          /* atomic: ends the sender's waits (stop, hurry, new settings);
                                 * cleared by the sender at each step */
    _Atomic(struct backend_next *) next; /* atomic: settings not applied yet, or NULL */
    _Atomic bool removed;                /* atomic: removed by a reload (backend_retire()) */
    _Atomic bool closed;                 /* atomic: removed and drained: refuses writes */
    _Atomic bool ended;                  /* atomic: removed, and its sender has ended */
    _Atomic int64_t stop_deadline_ms;    /* atomic: set before stop; also curl's abort time */
    _Atomic bool full;                   /* atomic: the last submit found the queue full */
    _Atomic bool high;                   /* atomic: buffered queue above 80% (warned) */
    bool spooled;               /* immutable after new: spool-size-mb > 0 (the spool keys need
                                 * a restart: a reload does not change them) */
    int64_t spool_cap;          /* immutable after new: spool-size-mb in bytes */
    int64_t spool_sync_ms;      /* immutable after new: spool-sync */
    int64_t spool_max_age_ms;   /* immutable after new: spool-max-age */
    struct spool *sp;           /* set by backend_spool_open() before start, then immutable */
    pthread_mutex_t smu;        /* spooled: see "Threads and locks" in the DESIGN */
    _Atomic bool spool_failing; /* atomic: in a spool write error episode (logged) */
    _Atomic bool spool_full;    /* atomic: the last spooled submit found the spool full */
    _Atomic bool sync_failing;  /* atomic: in a spool sync error episode (logged) */
    pthread_t thread;           /* main thread only */
    bool started;               /* main thread only */
    struct sender s;            /* sender thread only (main thread before start) */
};

/* At most this many glibc malloc arenas (the default is 8 per core). Bodies are allocated by
 * the HTTP connection threads and freed by the senders; with one arena per connection thread
 * the pages of a drained backlog stay scattered over many heaps that malloc_trim() does not give
 * back (measured with bench/buffer_mem.py, 16 clients: 41 MB left above an idle 11 MB; with 4
 * arenas: 12 MB). Allocation is not the relay's bottleneck, so the contention is harmless. */
#define BACKEND_MALLOC_ARENAS 4

int
backend_global_init(void)
{
    mallopt(M_ARENA_MAX, BACKEND_MALLOC_ARENAS);
    return post_global_init();
}

void
backend_global_cleanup(void)
{
    post_global_cleanup();
}

/* The rendezvous of queued writes are reference-counted by the queue through these. */
static const struct queue_ref_ops rdv_refs = {rdv_ref, rdv_unref};

/* Any thread: a spooled write's record will never be delivered (its client gets a failure):
 * voided while its entry is still queued, so before the withdraw (and the client's answer). */
static void
spool_void_write(const struct backend *b, uint64_t seq)
{
    struct spool_loc loc;
    if (!queue_spool_loc(b->q, seq, &loc)) {
        return; /* delivered or dropped already, or never written (held in memory) */
    }
    struct ir_err err = {0, ""};
    if (spool_void(b->sp, &loc, &err) != 0) {
        /* Counted; rare (the record was just written): the write may be delivered after a
         * restart although its client got a failure. */
        log_error(b->who, "spool: cannot void a withdrawn write seq=%llu error=\"%s\"",
                  (unsigned long long)seq, err.msg);
    }
}

/* Any thread (the waiter of a failed write, no lock held): removes the write unless it is in
 * flight or gone; a spooled copy is voided first. */
static void
backend_withdraw(const struct rdv_holder *h, uint64_t seq)
{
    const struct backend *b = (const struct backend *)h;
    if (b->sp != NULL) {
        spool_void_write(b, seq);
    }
    (void)queue_withdraw(b->q, seq);
}

/* Any thread (the waiter, its verdict reached and not a withdraw): an overflow entry of a
 * spooled backend leaves memory; its record stays in the spool. */
static void
backend_release(const struct rdv_holder *h, uint64_t seq)
{
    const struct backend *b = (const struct backend *)h;
    queue_entry_free(queue_release(b->q, seq));
}

static uint64_t
conf_cap(const struct conf_http_output *o, bool spooled)
{
    if (o->buffer_bytes > 0 || spooled) {
        return (uint64_t)o->buffer_bytes; /* spooled: 0 = no write stays in memory */
    }
    int64_t cap = o->max_batch_bytes * 4;
    return (uint64_t)(cap > UNBUFFERED_MIN_CAP ? cap : UNBUFFERED_MIN_CAP);
}

/* The bound of b's queue, as its settings set it now. Any thread. */
static uint64_t
queue_cap(const struct backend *b)
{
    return atomic_load_explicit(&b->cap_bytes, memory_order_relaxed);
}

/* The libcurl side of settings o. NULL with *err filled when libcurl refuses. */
static struct post *
backend_post_new(struct backend *b, const struct conf_http_output *o, struct ir_err *err)
{
    struct post_conf pc = {.location = o->location,
                           .timeout_ms = o->timeout_ms,
                           .skip_tls_verification = o->skip_tls_verification,
                           .gzip = o->content_encoding == CONF_ENCODING_GZIP,
                           .username = o->username,
                           .password = o->password,
                           .abort_at_ms = &b->stop_deadline_ms};
    return post_new(&pc, err);
}

struct backend *
backend_new(const char *relay, const struct conf_http_output *o, struct ir_err *err)
{
    struct backend *b = xcalloc(1, sizeof(*b));
    atomic_init(&b->refs, 1);
    b->relay = xstrdup(relay);
    b->name = xstrdup(o->name);
    b->o = o;
    b->tree = conf_ref(o->tree);
    snprintf(b->who, sizeof(b->who), "%s/%s", relay, o->name);
    b->holder.withdraw = backend_withdraw;
    b->spooled = o->spool_bytes > 0;
    b->spool_cap = o->spool_bytes;
    b->spool_sync_ms = o->spool_sync_ms;
    b->spool_max_age_ms = o->spool_max_age_ms;
    b->holder.release = b->spooled ? backend_release : NULL;
    atomic_init(&b->buffered, o->buffer_bytes > 0 || b->spooled);
    atomic_init(&b->cap_bytes, conf_cap(o, b->spooled));
    b->q = queue_new(conf_cap(o, b->spooled), !atomic_load(&b->buffered),
                     &b->stats.dropped_withdrawn, &rdv_refs);
    if (b->spooled) {
        queue_spooled(b->q);
        pthread_mutex_init(&b->smu, NULL);
    }
    atomic_init(&b->state, BACKEND_UP);
    b->s.post = backend_post_new(b, o, err);
    if (b->s.post == NULL) {
        err->line = o->line;
        backend_free(b);
        return NULL;
    }
    b->s.batch = xcalloc(BATCH_MAX_WRITES, sizeof(struct queue_entry *));
    b->s.spare = xcalloc(BATCH_MAX_WRITES, sizeof(struct queue_entry *));
    b->s.parts = xcalloc(BATCH_MAX_WRITES, sizeof(*b->s.parts));
    b->s.held_r = xcalloc(BATCH_MAX_WRITES, sizeof(struct rdv *));
    b->s.held_seq = xcalloc(BATCH_MAX_WRITES, sizeof(*b->s.held_seq));
    b->s.rng = (uint64_t)clock_real_ns() ^ (uint64_t)(uintptr_t)b;
    if (b->spooled) {
        spool_batch_init(&b->s.sb);
        b->s.lp = xcalloc(BATCH_MAX_WRITES, sizeof(struct payload *));
        b->s.lseq = xcalloc(BATCH_MAX_WRITES, sizeof(*b->s.lseq));
        b->s.larr = xcalloc(BATCH_MAX_WRITES, sizeof(*b->s.larr));
    }
    return b;
}

/* ------------------------------------------------------------------ submit (any thread) */

static void
note_full(struct backend *b, bool full)
{
    if (atomic_load_explicit(&b->full, memory_order_relaxed) == full) {
        return;
    }
    if (atomic_exchange(&b->full, full) == full) {
        return;
    }
    uint64_t dropped = atomic_load(&b->stats.dropped_buffer_full);
    if (full) {
        log_warn(b->who, "buffer full, refusing writes for this backend capacity_bytes=%llu",
                 (unsigned long long)queue_cap(b));
    } else {
        log_info(b->who, "buffer accepting writes again dropped_buffer_full=%llu",
                 (unsigned long long)dropped);
    }
}

/* Buffered: warns once when the buffer passes 80 %, notes once when it is back under 50 %. */
static void
note_level(struct backend *b)
{
    uint64_t held = queue_bytes(b->q);
    uint64_t cap = queue_cap(b);
    bool high = atomic_load_explicit(&b->high, memory_order_relaxed);
    if (!high && held > cap / 5 * 4 && !atomic_exchange(&b->high, true)) {
        log_warn(b->who, "buffer above 80%% queued_bytes=%llu capacity_bytes=%llu",
                 (unsigned long long)held, (unsigned long long)cap);
    } else if (high && held < cap / 2 && atomic_exchange(&b->high, false)) {
        log_info(b->who, "buffer below 50%% again queued_bytes=%llu capacity_bytes=%llu",
                 (unsigned long long)held, (unsigned long long)cap);
    }
}

/* Buffered: the write needs more than the whole buffer (spooled: the whole spool), so it can
 * never be queued here; a 503 "buffer full" would invite retries that cannot succeed. The client
 * hears a 413 naming the sizes and what to change (body sizes are bounded by max-body-mb, but
 * stamping grows a body: docs/queue-and-retry.md "Stamping"). need: what the write takes. */
static void
refuse_too_large(struct backend *b, const struct payload *p, struct rdv *r, unsigned idx,
                 uint64_t need)
{
    bool spool = b->sp != NULL;
    uint64_t cap = spool ? (uint64_t)b->spool_cap : queue_cap(b);
    const char *what = spool ? "spool" : "buffer";
    const char *key = spool ? "spool-size-mb" : "buffer-size-mb";
    atomic_fetch_add_explicit(&b->stats.dropped_buffer_full, 1, memory_order_relaxed);
    log_warn(b->who,
             "write larger than the whole %s, refused with 413 write_bytes=%zu held_bytes=%llu "
             "capacity_bytes=%llu",
             what, p->len, (unsigned long long)need, (unsigned long long)cap);
    if (r == NULL) {
        return;
    }
    char json[400];
    int n = snprintf(json, sizeof(json),
                     "{\"error\":\"request too large for output \\\"%s\\\": %zu bytes of line "
                     "protocol once timestamps are added (%llu bytes held), more than its "
                     "%s (%llu bytes) can ever hold; send smaller bodies or raise %s\"}",
                     b->name, p->len, (unsigned long long)need, key, (unsigned long long)cap, key);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(json) ? (size_t)n : sizeof(json) - 1;
    rdv_report(r, idx, RDV_FULL, 413, json, len, "application/json");
}

/* The output was removed by a reload and its queue is gone: a write submitted now by a request
 * that started before the reload is dropped (reason removed) and its client hears a failure. */
static enum backend_submit
refuse_removed(struct backend *b, struct rdv *r, unsigned idx)
{
    atomic_fetch_add_explicit(&b->stats.dropped_removed, 1, memory_order_relaxed);
    if (r != NULL) {
        rdv_report(r, idx, RDV_FAILED, 0, NULL, 0, NULL);
    }
    return BACKEND_REFUSED;
}

/* Not spooled: the write into the queue (*seq), or why not. */
static enum backend_submit
memory_push(struct backend *b, struct payload *p, struct rdv *r, unsigned idx, uint64_t *seq)
{
    if (atomic_load(&b->buffered) && queue_entry_cost(p) > queue_cap(b)) {
        refuse_too_large(b, p, r, idx, queue_entry_cost(p));
        return BACKEND_REFUSED;
    }
    if (queue_push(b->q, p, r, idx, seq) != 0) {
        atomic_fetch_add_explicit(&b->stats.dropped_buffer_full, 1, memory_order_relaxed);
        note_full(b, true);
        return BACKEND_FULL;
    }
    /* Closed meanwhile (retire_drop() sets closed, then empties the queue): either it took this
     * write and fails it, or the write is still here and is taken back now. */
    if (atomic_load(&b->closed) && queue_withdraw(b->q, *seq)) {
        atomic_fetch_sub_explicit(&b->stats.dropped_withdrawn, 1, memory_order_relaxed);
        return refuse_removed(b, r, idx);
    }
    note_full(b, false);
    if (b->buffered) {
        note_level(b);
    }
    return BACKEND_QUEUED;
}

/* The spooled form of a write, as 4 parts (nothing copied): a header (format, kind, whether it has
 * an Authorization, the lengths of the query and of the Authorization value, the points), the
 * query, the Authorization value, the body. Returns the total length. */
static size_t
spool_parts(const struct payload *p, unsigned char *head, struct iovec *parts)
{
    size_t qlen = p->query != NULL ? strlen(p->query) : 0;
    size_t alen = p->auth != NULL ? strlen(p->auth) : 0;
    memset(head, 0, SREC_HEAD);
    head[0] = SREC_FORMAT;
    head[1] = (unsigned char)p->kind;
    head[2] = p->auth != NULL;
    le_put(head + 4, qlen, 4);
    le_put(head + 8, alen, 4);
    le_put(head + 16, p->points, 8);
    parts[0] = (struct iovec){head, SREC_HEAD};
    parts[1] = (struct iovec){(void *)(uintptr_t)p->query, qlen};
    parts[2] = (struct iovec){(void *)(uintptr_t)p->auth, alen};
    parts[3] = (struct iovec){(void *)(uintptr_t)p->data, p->len};
    return SREC_HEAD + qlen + alen + p->len;
}

/* A payload made of a record read back from the spool, or NULL when it is not one. */
static struct payload *
spool_payload(const struct spool_rec *rec)
{
    const unsigned char *h = (const unsigned char *)rec->data;
    if (rec->len < SREC_HEAD || h[0] != SREC_FORMAT || h[1] > PAYLOAD_QUERY) {
        return NULL;
    }
    uint64_t qlen = le_get(h + 4, 4);
    uint64_t alen = le_get(h + 8, 4);
    if (qlen + alen > rec->len - SREC_HEAD) {
        return NULL;
    }
    size_t blen = rec->len - SREC_HEAD - (size_t)(qlen + alen);
    const char *query = rec->data + SREC_HEAD;
    const char *auth = query + qlen;
    char *buf = xmalloc(blen > 0 ? blen : 1);
    memcpy(buf, auth + alen, blen);
    struct payload *p =
            payload_new((enum payload_kind)h[1], buf, buf, blen, (size_t)le_get(h + 16, 8),
                        xstrndup(query, (size_t)qlen), h[2] ? xstrndup(auth, (size_t)alen) : NULL);
    /* Its age is its arrival's, not its reading's (oldest_queued_age_seconds). */
    int64_t age_ms = (clock_real_ns() - rec->arrival_ns) / 1000000;
    p->arrived_ms = clock_mono_ms() - (age_ms > 0 ? age_ms : 0);
    return p;
}

/* Spooled: logs once when the spool becomes full and when it takes writes again, and once per
 * episode of failed writes (the spool counts them by operation). */
static void
note_spool(struct backend *b, enum spool_status st, const struct spool_put *put)
{
    bool full = st == SPOOL_FULL;
    if (atomic_load_explicit(&b->spool_full, memory_order_relaxed) != full &&
        atomic_exchange(&b->spool_full, full) != full) {
        struct spool_stats ss;
        spool_stats(b->sp, &ss);
        if (full) {
            log_warn(b->who, "spool full, refusing writes for this backend capacity_bytes=%llu",
                     (unsigned long long)ss.cap_bytes);
        } else {
            log_info(b->who, "spool accepting writes again dropped_spool_full=%llu",
                     (unsigned long long)atomic_load(&b->stats.dropped_spool_full));
        }
    }
    if (st == SPOOL_ERROR && !atomic_exchange(&b->spool_failing, true)) {
        char eb[128];
        log_error(b->who,
                  "spool: %s failed, keeping writes in memory until it works again dir=%s "
                  "error=\"%s\"",
                  spool_op_name(put->op), spool_dir(b->sp),
                  ir_strerror(put->errnum, eb, sizeof(eb)));
    } else if (st == SPOOL_OK && atomic_load_explicit(&b->spool_failing, memory_order_relaxed) &&
               atomic_exchange(&b->spool_failing, false)) {
        log_info(b->who, "spool: writing again dir=%s", spool_dir(b->sp));
    }
}

/* Spooled: reserves the write's record and queues its entry in one step (smu: see the DESIGN),
 * then writes the record. BACKEND_QUEUED (*seq = its sequence number) once it is written (or,
 * after a disk error, held in memory), else why not. */
static enum backend_submit
spool_push(struct backend *b, struct payload *p, struct rdv *r, unsigned idx, uint64_t *seq)
{
    unsigned char head[SREC_HEAD];
    struct iovec parts[4];
    size_t len = spool_parts(p, head, parts);
    if (len > spool_record_max(b->sp)) {
        refuse_too_large(b, p, r, idx, len);
        return BACKEND_REFUSED;
    }
    int64_t arrival = clock_real_ns();
    struct spool_resv rv;
    struct spool_put put;
    bool overflow = false;
    int rc = -1;
    pthread_mutex_lock(&b->smu);
    enum spool_status st = spool_reserve(b->sp, len, &rv, &put);
    while (st == SPOOL_AGAIN) {
        pthread_mutex_unlock(&b->smu);
        spool_prepare(b->sp);
        pthread_mutex_lock(&b->smu);
        st = spool_reserve(b->sp, len, &rv, &put);
    }
    if (st != SPOOL_FULL) {
        rc = queue_push_spooled(b->q, p, r, idx, &rv.loc, arrival, st == SPOOL_OK, &overflow);
    }
    pthread_mutex_unlock(&b->smu);
    if (st == SPOOL_OK) {
        st = spool_commit(b->sp, &rv, parts, IR_ARRAY_LEN(parts), arrival, &put);
        struct queue_entry *gone = queue_spool_written(b->q, rv.loc.seq, st == SPOOL_OK);
        if (gone != NULL) {
            queue_entry_free(gone); /* not written, and no room in memory */
            rc = -1;
        }
    }
    note_spool(b, st, &put);
    if (st == SPOOL_FULL) {
        atomic_fetch_add_explicit(&b->stats.dropped_spool_full, 1, memory_order_relaxed);
        return BACKEND_FULL;
    }
    if (rc != 0) {
        atomic_fetch_add_explicit(&b->stats.dropped_buffer_full, 1, memory_order_relaxed);
        note_full(b, true);
        return BACKEND_FULL;
    }
    *seq = rv.loc.seq;
    /* Closed meanwhile (a reload removed the output): as in memory_push(), its record voided. */
    if (atomic_load(&b->closed)) {
        backend_withdraw(&b->holder, *seq);
        return refuse_removed(b, r, idx);
    }
    return BACKEND_QUEUED;
}

enum backend_submit
backend_submit(struct backend *b, struct payload *p, struct rdv *r, unsigned idx)
{
    if (atomic_load(&b->closed)) {
        return refuse_removed(b, r, idx);
    }
    uint64_t seq = 0;
    enum backend_submit st =
            b->sp != NULL ? spool_push(b, p, r, idx, &seq) : memory_push(b, p, r, idx, &seq);
    if (st != BACKEND_QUEUED) {
        return st;
    }
    if (r == NULL) {
        if (b->sp != NULL) {
            backend_release(&b->holder, seq); /* nobody waits: an overflow entry goes at once */
        }
        return BACKEND_QUEUED;
    }
    if (!rdv_attach(r, idx, &b->holder, seq)) {
        backend_withdraw(&b->holder, seq);
        return BACKEND_QUEUED;
    }
    if (b->sp != NULL && rdv_is_decided(r) && !rdv_is_withdrawn(r)) {
        backend_release(&b->holder, seq); /* the verdict came before the attach */
    }
    /* A buffered backend that is down keeps the write but does not make the client wait for
     * its recovery: the answer comes from the other backends (or 503 when all are down). */
    if (b->buffered && atomic_load(&b->state) == BACKEND_DOWN) {
        rdv_report(r, idx, RDV_FAILED, 0, NULL, 0, NULL);
    }
    return BACKEND_QUEUED;
}

/* ------------------------------------------------------------------ sender: states */

static const char *const state_names[] = {"up", "down", "draining"};

/* Copies text from a backend or from curl into a key="value" log field: quotes, backslashes and
 * control bytes become harmless, so text and JSON logs keep one field per key. */
static void
log_safe(char *dst, size_t n, const char *src)
{
    size_t i = 0;
    for (; src != NULL && src[i] != '\0' && i + 1 < n; i++) {
        char c = src[i];
        if (c == '"' || c == '\\') {
            c = '\'';
        } else if ((unsigned char)c < 0x20) {
            c = ' ';
        }
        dst[i] = c;
    }
    dst[i] = '\0';
}

static int64_t
retry_delay_ms(struct backend *b)
{
    struct sender *s = &b->s;
    int64_t cap = b->o->max_delay_ms > RETRY_MIN_CAP_MS ? b->o->max_delay_ms : RETRY_MIN_CAP_MS;
    if (s->attempt <= 1) {
        return cap < RETRY_FIRST_MS ? cap : RETRY_FIRST_MS;
    }
    unsigned shift = s->attempt - 1 > 20 ? 20 : s->attempt - 1;
    int64_t base = (int64_t)RETRY_FIRST_MS << shift;
    if (base > cap) {
        base = cap;
    }
    /* xorshift64: jitter only, no need for a better generator. */
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return base * (800 + (int64_t)(s->rng % 201)) / 1000;
}

static void
log_state(struct backend *b, enum backend_state from, enum backend_state to)
{
    struct sender *s = &b->s;
    struct queue_stats st;
    queue_stats(b->q, &st);
    int64_t now = clock_mono_ms();
    if (to == BACKEND_DOWN) {
        log_warn(b->who, "backend down reason=\"%s\" queued_writes=%llu queued_bytes=%llu",
                 s->last_error, (unsigned long long)st.writes, (unsigned long long)st.bytes);
    } else if (from == BACKEND_DOWN) {
        log_info(b->who,
                 "backend %s outage_s=%.1f retries=%llu queued_writes=%llu "
                 "queued_bytes=%llu",
                 to == BACKEND_UP ? "up" : "recovered, draining",
                 (double)(now - s->down_since_ms) / 1000.0, (unsigned long long)s->outage_retries,
                 (unsigned long long)st.writes, (unsigned long long)st.bytes);
    } else {
        log_info(b->who, "backend up, backlog drained drain_s=%.1f",
                 (double)(now - s->recovered_ms) / 1000.0);
    }
}

static void
set_state(struct backend *b, enum backend_state to)
{
    enum backend_state from = (enum backend_state)atomic_load(&b->state);
    if (from == to) {
        return;
    }
    int64_t now = clock_mono_ms();
    if (to == BACKEND_DOWN) {
        b->s.down_since_ms = now;
        b->s.last_summary_ms = now;
        b->s.outage_retries = 0;
    } else if (to == BACKEND_DRAINING) {
        b->s.recovered_ms = now;
    }
    atomic_store(&b->state, (int)to);
    log_state(b, from, to);
}

/* ------------------------------------------------------------------ sender: the spool */

/* Spooled: the write pushed as seq left the head of the queue, delivered or dropped. */
static void
spool_done(struct backend *b, uint64_t seq)
{
    if (b->sp != NULL && seq > b->s.done_hi) {
        b->s.done_hi = seq;
    }
}

/* Spooled: acknowledges the spool up to the last write removed from the head, never past a
 * write still queued (a write pushed later gets a higher seq than any removed). */
static void
spool_advance(struct backend *b)
{
    struct sender *s = &b->s;
    if (b->sp == NULL) {
        return;
    }
    uint64_t head = queue_head_seq(b->q);
    uint64_t to = head != 0 && head - 1 < s->done_hi ? head - 1 : s->done_hi;
    if (to <= s->acked) {
        return;
    }
    s->acked = to;
    struct ir_err err = {0, ""};
    int rc = spool_ack(b->sp, to, &err);
    if (rc != 0 && !s->ack_failing) {
        log_error(b->who, "spool: %s (delivered writes may be sent again after a restart)",
                  err.msg);
    }
    s->ack_failing = rc != 0;
}

/* Spooled: adds what the spool reader skipped (expired, damaged) to the drop counters. */
static void
spool_counts(struct backend *b)
{
    struct sender *s = &b->s;
    struct spool_stats st;
    spool_stats(b->sp, &st);
    atomic_fetch_add_explicit(&b->stats.dropped_expired, st.expired - s->seen_expired,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&b->stats.dropped_corrupt, st.corrupt - s->seen_corrupt,
                              memory_order_relaxed);
    if (st.corrupt > s->seen_corrupt) {
        log_error(b->who, "spool: damaged records skipped regions=%llu dir=%s",
                  (unsigned long long)(st.corrupt - s->seen_corrupt), spool_dir(b->sp));
    }
    s->seen_expired = st.expired;
    s->seen_corrupt = st.corrupt;
}

/* True when nothing is held for the backend: in memory, nor (spooled) in the spool. */
static bool
backlog_empty(struct backend *b)
{
    struct queue_stats st;
    queue_stats(b->q, &st);
    if (st.writes > 0 || b->sp == NULL) {
        return st.writes == 0;
    }
    struct spool_stats ss;
    spool_stats(b->sp, &ss);
    return ss.records == 0;
}

/* Spooled: a failed read is retried after SPOOL_RETRY_MS; logged once per episode. */
static void
note_read(struct backend *b, int rc, const struct ir_err *err)
{
    struct sender *s = &b->s;
    if (rc != 0) {
        s->read_retry_ms = clock_mono_ms() + SPOOL_RETRY_MS;
        if (!s->read_failing) {
            s->read_failing = true;
            log_error(b->who, "spool: cannot read, retrying every %d ms error=\"%s\"",
                      SPOOL_RETRY_MS, err->msg);
        }
    } else if (s->read_failing) {
        s->read_failing = false;
        log_info(b->who, "spool: reading again dir=%s", spool_dir(b->sp));
    }
}

/* Spooled: the records just read become writes at the head of the queue; a record that is not
 * a write (a format this relay does not know) is dropped as damaged. */
static void
spool_load(struct backend *b)
{
    struct sender *s = &b->s;
    size_t n = 0;
    for (size_t i = 0; i < s->sb.n; i++) {
        const struct spool_rec *rec = &s->sb.recs[i];
        struct payload *p = spool_payload(rec);
        if (p == NULL) {
            atomic_fetch_add_explicit(&b->stats.dropped_corrupt, 1, memory_order_relaxed);
            log_error(b->who, "spool: a record that is not a write, dropped seq=%llu bytes=%zu",
                      (unsigned long long)rec->seq, rec->len);
            spool_done(b, rec->seq);
            continue;
        }
        s->lp[n] = p;
        s->lseq[n] = rec->seq;
        s->larr[n] = rec->arrival_ns;
        n++;
    }
    queue_push_loaded(b->q, s->lp, s->lseq, s->larr, n);
    if (n < s->sb.n) {
        spool_advance(b);
    }
}

/* Spooled, before taking a batch: loads the records between the spool reader's position and the
 * first queued write above it (all of them when none is), at most one batch (max-batch-kb),
 * unless two loaded writes still wait (one may: they go behind it). A record below the first
 * queued write was never queued or has left memory (the DESIGN): it is never also in the
 * queue. */
static void
spool_refill(struct backend *b)
{
    struct sender *s = &b->s;
    if (clock_mono_ms() < s->read_retry_ms) {
        return;
    }
    uint64_t pos = spool_pos(b->sp);
    uint64_t first = 0;
    pthread_mutex_lock(&b->smu);
    size_t loaded = queue_spool_view(b->q, pos, 2, &first);
    uint64_t next = spool_next_seq(b->sp);
    pthread_mutex_unlock(&b->smu);
    uint64_t limit = first != 0 ? first - 1 : next - 1;
    if (loaded >= 2 || limit <= pos) {
        return;
    }
    struct ir_err err = {0, ""};
    int rc = spool_read_upto(b->sp, (size_t)b->o->max_batch_bytes, limit, &s->sb, &err);
    note_read(b, rc, &err);
    spool_counts(b);
    if (rc == 0) {
        spool_load(b);
    }
}

/* The backend answered (2xx, or a 4xx that is the data's fault): it is reachable. */
static void
mark_reachable(struct backend *b)
{
    b->s.attempt = 0;
    b->s.cuts = 0;
    bool empty = backlog_empty(b);
    enum backend_state cur = (enum backend_state)atomic_load(&b->state);
    if (empty) {
        set_state(b, BACKEND_UP);
    } else if (cur == BACKEND_DOWN) {
        set_state(b, BACKEND_DRAINING);
    }
    if (empty && b->s.peak_bytes >= TRIM_AFTER_BYTES) {
        /* A large backlog drained: hand the freed pages of every arena back to the system. */
        b->s.peak_bytes = 0;
        malloc_trim(0);
        log_debug(b->who, "backlog drained, free memory returned to the system");
    }
}

/* Buffered, on the way down: every write still waiting hears RDV_FAILED now, so that its client
 * is answered by the other backends (or gets 503) without waiting for the next retry. Writes
 * arriving later are told at submit (backend_submit()). */
static void
fail_waiters(struct backend *b)
{
    struct queue_stats st;
    queue_stats(b->q, &st);
    size_t max = (size_t)st.writes;
    if (max == 0) {
        return;
    }
    struct rdv **rs = xcalloc(max, sizeof(struct rdv *));
    unsigned *idxs = xcalloc(max, sizeof(*idxs));
    size_t n = queue_waiters(b->q, rs, idxs, max);
    for (size_t i = 0; i < n; i++) {
        rdv_report(rs[i], idxs[i], RDV_FAILED, 0, NULL, 0, NULL);
        rdv_unref(rs[i]);
    }
    free(rs);
    free(idxs);
}

/* A send or probe failed with reason: schedules the next try and logs once per state change,
 * then a summary at most every SUMMARY_EVERY_MS. transport: no HTTP answer. */
static void
mark_failed(struct backend *b, const char *reason, bool transport)
{
    struct sender *s = &b->s;
    log_safe(s->last_error, sizeof(s->last_error), reason);
    s->attempt++;
    int64_t now = clock_mono_ms();
    s->next_try_ms = now + retry_delay_ms(b);
    if (atomic_load(&b->state) != BACKEND_DOWN) {
        if (transport) {
            log_go(LOG_WARN, b->relay, b->o->name,
                   "Problem posting to relay \"%s\" backend \"%s\": %s", b->relay, b->o->name,
                   s->last_error);
        }
        set_state(b, BACKEND_DOWN);
        if (b->buffered) {
            fail_waiters(b);
        }
        return;
    }
    if (now - s->last_summary_ms >= SUMMARY_EVERY_MS) {
        struct queue_stats st;
        queue_stats(b->q, &st);
        s->last_summary_ms = now;
        log_warn(b->who,
                 "backend still down down_s=%.0f retries=%llu queued_writes=%llu "
                 "queued_bytes=%llu last_error=\"%s\"",
                 (double)(now - s->down_since_ms) / 1e3, (unsigned long long)s->outage_retries,
                 (unsigned long long)st.writes, (unsigned long long)st.bytes, s->last_error);
    }
}

/* ------------------------------------------------------------------ sender: outcomes */

/* How the sender treats an answer (docs/queue-and-retry.md, "Outcomes"). */
enum answer {
    ANSWER_OK,        /* 2xx: stored */
    ANSWER_REJECTED,  /* 4xx but 408, 429, 499: refused for its data, final */
    ANSWER_SERVER,    /* 5xx: the backend failed it (overloaded, or the data: see poison) */
    ANSWER_TRANSIENT, /* no answer, 408, 429, 499 (a proxy's "client closed"): try again */
    ANSWER_MISROUTED, /* 1xx, 3xx or beyond 599: no write endpoint answers so (wrong location) */
};

static enum answer
classify(int status)
{
    if (status >= 200 && status < 300) {
        return ANSWER_OK;
    }
    if (status == 0 || status == 408 || status == 429 || status == 499) {
        return ANSWER_TRANSIENT;
    }
    if (status >= 400 && status < 500) {
        return ANSWER_REJECTED;
    }
    return status >= 500 && status < 600 ? ANSWER_SERVER : ANSWER_MISROUTED;
}

/* The request was sent whole and what came back does not say it was not stored: no answer, or
 * a gateway's 499/502/504 (the backend behind it may have stored it). */
static bool
may_have_stored(const struct post_result *res)
{
    return res->sent &&
           (res->status == 0 || res->status == 499 || res->status == 502 || res->status == 504);
}

/* What a client hears of one attempt: the backend's answer, except where that would mislead
 * (a 408/499 would read as the client's own timeout; a 3xx or 1xx is no write verdict). */
struct heard {
    int status;
    const char *body;
    size_t len;
    const char *ctype;
    char own[200]; /* a relay-made body */
};

static void
heard_of(const struct post_result *res, struct heard *h)
{
    *h = (struct heard){
            .status = res->status, .body = res->body, .len = res->body_len, .ctype = res->ctype};
    enum answer a = classify(res->status);
    if (a == ANSWER_TRANSIENT && res->status != 429) {
        *h = (struct heard){0}; /* "unable to write points", as for no answer */
    } else if (a == ANSWER_MISROUTED) {
        *h = (struct heard){.status = 502};
        snprintf(h->own, sizeof(h->own),
                 "{\"error\":\"bad gateway: a backend answered %d, not an answer to a write (its "
                 "location in the relay's configuration is wrong)\"}",
                 res->status);
        h->body = h->own;
        h->len = strlen(h->own);
    }
}

static void
report_heard(struct backend *b, size_t k, enum rdv_outcome o, const struct heard *h)
{
    for (size_t i = 0; i < k; i++) {
        struct queue_entry *e = b->s.batch[i];
        if (e->r != NULL) {
            rdv_report(e->r, e->idx, o, h->status, h->body, h->len, h->ctype);
        }
    }
}

/* Reports outcome o of the k writes with what their clients hear of res. */
static void
report_all(struct backend *b, size_t k, enum rdv_outcome o, const struct post_result *res)
{
    struct heard h;
    heard_of(res, &h);
    report_heard(b, k, o, &h);
}

static void
free_batch(struct backend *b, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        queue_entry_free(b->s.batch[i]);
        b->s.batch[i] = NULL;
    }
}

/* The head write is no longer a poison suspect (it left, or it was not evidence). */
static void
clear_suspect(struct sender *s)
{
    s->suspect_seq = 0;
    s->suspect_fails = 0;
    s->witness_due = false;
}

static void
on_success(struct backend *b, size_t k, const struct post_result *res)
{
    uint64_t points = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < k; i++) {
        points += b->s.batch[i]->p->points;
        bytes += b->s.batch[i]->p->len;
    }
    spool_done(b, b->s.batch[k - 1]->seq);
    queue_remove(b->q, b->s.batch, k);
    report_all(b, k, RDV_OK, res);
    free_batch(b, k);
    spool_advance(b);
    struct backend_stats *st = &b->stats;
    atomic_fetch_add_explicit(&st->batches_sent, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->points_delivered, points, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes_delivered, bytes, memory_order_relaxed);
    atomic_store_explicit(&st->last_success_ns, clock_real_ns(), memory_order_relaxed);
    mark_reachable(b);
}

/* A single write refused with a 4xx: the client gets the backend's verdict, the write is
 * dropped. Buffered backends log it (at most once a second, with the count in between). */
static void
on_rejected(struct backend *b, const struct post_result *res)
{
    spool_done(b, b->s.batch[0]->seq);
    queue_remove(b->q, b->s.batch, 1);
    report_all(b, 1, RDV_REJECTED, res);
    free_batch(b, 1);
    spool_advance(b);
    atomic_fetch_add_explicit(&b->stats.dropped_rejected, 1, memory_order_relaxed);
    uint64_t n =
            b->buffered ? ratelimit_hit(&b->s.reject_rl, 1, clock_mono_ms(), REJECT_LOG_MS) : 0;
    if (n > 0) {
        char why[201];
        log_safe(why, sizeof(why), res->body);
        log_warn(b->who,
                 "write rejected by backend, dropped status=%d reason=\"%s\" also_dropped=%llu",
                 res->status, why, (unsigned long long)(n - 1));
    }
    mark_reachable(b);
}

/* Buffered: the batch stays at the head for a retry. Refs on the rendezvous are kept across the
 * put-back so that writes withdrawn meanwhile can be removed here at once. */
static void
put_back_failed(struct backend *b, size_t k, const struct heard *h)
{
    struct sender *s = &b->s;
    for (size_t i = 0; i < k; i++) {
        s->held_r[i] = s->batch[i]->r;
        s->held_seq[i] = s->batch[i]->seq;
        if (s->held_r[i] != NULL) {
            rdv_ref(s->held_r[i]);
        }
    }
    report_heard(b, k, RDV_FAILED, h);
    queue_put_back(b->q, s->batch, k);
    for (size_t i = 0; i < k; i++) {
        s->batch[i] = NULL;
        if (s->held_r[i] != NULL && rdv_is_withdrawn(s->held_r[i])) {
            backend_withdraw(&b->holder, s->held_seq[i]); /* spooled: voided first */
        } else if (b->sp != NULL && s->held_r[i] != NULL && rdv_is_decided(s->held_r[i])) {
            /* An overflow entry released while in flight: its record waits in the spool. */
            queue_entry_free(queue_release(b->q, s->held_seq[i]));
        }
        rdv_unref(s->held_r[i]);
        s->held_r[i] = NULL;
    }
}

/* Tells the rendezvous of the k writes that the backend may have stored them. */
static void
note_maybe_stored(struct backend *b, size_t k, const struct post_result *res)
{
    for (size_t i = 0; i < k && may_have_stored(res); i++) {
        if (b->s.batch[i]->r != NULL) {
            rdv_maybe_stored(b->s.batch[i]->r, b->s.batch[i]->idx);
        }
    }
}

/* Buffered: the head write, sent alone, failed. Counts its consecutive 5xx answers; after
 * POISON_ATTEMPTS of them the write behind it is sent alone at once, as a witness. Any other
 * failure (no answer, 429, ...) is about the backend, not the write: the count starts again. */
static void
note_suspect(struct backend *b, const struct post_result *res)
{
    struct sender *s = &b->s;
    uint64_t seq = s->batch[0]->seq;
    if (classify(res->status) != ANSWER_SERVER) {
        clear_suspect(s);
        return;
    }
    if (seq != s->suspect_seq) {
        s->suspect_seq = seq;
        s->suspect_fails = 0;
    }
    s->suspect_fails++;
    s->suspect_status = res->status;
    log_safe(s->suspect_answer, sizeof(s->suspect_answer), res->body);
    s->witness_due = s->suspect_fails >= POISON_ATTEMPTS;
}

/* The reason logged for a failed attempt, with a hint where the configuration is at fault. */
static void
failure_reason(const struct post_result *res, char *out, size_t n)
{
    enum answer a = classify(res->status);
    if (res->status == 0) {
        snprintf(out, n, "%s", res->error);
    } else if (a == ANSWER_MISROUTED && res->status >= 300 && res->status < 400) {
        snprintf(out, n,
                 "status %d, %s: set location to the backend's own write URL (redirects are not "
                 "followed)",
                 res->status, res->error);
    } else if (a == ANSWER_MISROUTED) {
        snprintf(out, n, "status %d, not an answer to a write: check location", res->status);
    } else {
        snprintf(out, n, "status %d", res->status);
    }
}

/* Every 5xx logs the Go relay's line (status=: a field of the JSON line, which log_go drops from
 * the Go-worded text line). */
static void
log_5xx(struct backend *b, int status)
{
    log_go(LOG_WARN, b->relay, b->o->name,
           "5xx response for relay \"%s\" backend \"%s\": %d status=%d", b->relay, b->o->name,
           status, status);
}

static void
on_failed(struct backend *b, size_t k, const struct post_result *res, bool witness)
{
    char reason[400];
    failure_reason(res, reason, sizeof(reason));
    if (classify(res->status) == ANSWER_SERVER) {
        log_5xx(b, res->status);
    }
    if (b->buffered && k == 1 && !witness) {
        note_suspect(b, res);
    }
    if (res->status == 0) {
        b->s.split_left = 0; /* the backend is unwell, not a write: stop isolating */
    }
    /* Log (and change state) before the clients hear of it: the log is the operator's record
     * of what the client saw. */
    mark_failed(b, reason, res->status == 0);
    note_maybe_stored(b, k, res);
    struct heard h;
    heard_of(res, &h);
    if (b->buffered) {
        put_back_failed(b, k, &h);
        atomic_fetch_add_explicit(&b->stats.retries, 1, memory_order_relaxed);
        b->s.outage_retries++;
    } else {
        queue_remove(b->q, b->s.batch, k);
        report_heard(b, k, RDV_FAILED, &h);
        free_batch(b, k);
    }
}

/* The request was cut short for a waiting client's deadline (send_budget()): not the backend's
 * fault, which has not used its timeout, so no state change and no backoff -- unless the
 * request before was cut too: a backend that answers no request within what its clients wait
 * (a hung one, with write-timeout below timeout) is down. Its clients hear a failure (the write
 * may have been stored when it was sent whole); buffered, the writes stay queued, and those
 * whose clients got their 503 are withdrawn. */
static void
on_cut(struct backend *b, size_t k, const struct post_result *res)
{
    log_debug(b->who, "request cut short for a client's deadline writes=%zu sent=%d", k,
              (int)res->sent);
    if (++b->s.cuts >= 2) {
        mark_failed(b, res->error, true);
    }
    note_maybe_stored(b, k, res);
    struct heard h = {0};
    if (b->buffered) {
        put_back_failed(b, k, &h);
    } else {
        queue_remove(b->q, b->s.batch, k);
        report_heard(b, k, RDV_FAILED, &h);
        free_batch(b, k);
    }
}

/* The witness (the write behind the suspect, sent alone) was stored while the suspect, alone,
 * kept failing with a 5xx: the backend refuses the suspect for its data. It is dropped as
 * rejected, so the queue moves on; it was never delivered, so order holds. */
static void
drop_poison(struct backend *b)
{
    struct sender *s = &b->s;
    size_t n = queue_take(b->q, 0, 1, s->batch);
    if (n == 1 && s->batch[0]->seq != s->suspect_seq) {
        queue_put_back(b->q, s->batch, 1); /* it left meanwhile (withdrawn) */
        n = 0;
    }
    if (n == 1) {
        spool_done(b, s->batch[0]->seq);
        queue_remove(b->q, s->batch, 1);
        free_batch(b, 1);
        spool_advance(b);
        atomic_fetch_add_explicit(&b->stats.dropped_rejected, 1, memory_order_relaxed);
        log_error(b->who,
                  "write dropped as rejected: the backend fails it alone while it stores the "
                  "writes after it status=%d attempts=%u reason=\"%s\"",
                  s->suspect_status, s->suspect_fails, s->suspect_answer);
        if (s->split_left > 0) {
            s->split_left--;
        }
    }
    s->batch[0] = NULL;
    clear_suspect(s);
    mark_reachable(b);
}

/* ------------------------------------------------------------------ sender: one batch */

/* Claims the taken writes; withdrawn ones, and (spooled) ones older than spool-max-age, are
 * removed and dropped. Returns how many remain (compacted at the front of s->batch). */
static size_t
claim_batch(struct backend *b, size_t n)
{
    struct sender *s = &b->s;
    size_t k = 0;
    size_t m = 0;
    uint64_t expired = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_entry *e = s->batch[i];
        bool old = b->sp != NULL && spool_is_expired(b->sp, e->arrival_ns);
        if (!old && (e->r == NULL || rdv_claim(e->r, e->idx))) {
            s->batch[k++] = e;
            continue;
        }
        s->spare[m++] = e;
        expired += old;
        if (old && e->r != NULL) {
            rdv_report(e->r, e->idx, RDV_FAILED, 0, NULL, 0, NULL);
        } else if (b->sp != NULL) {
            /* Withdrawn: voided before it leaves memory, or the spool reader could return it
             * before the waiter's withdraw voids it. */
            spool_void_write(b, e->seq);
        }
        spool_done(b, e->seq);
    }
    if (m > 0) {
        queue_remove(b->q, s->spare, m);
        for (size_t i = 0; i < m; i++) {
            queue_entry_free(s->spare[i]);
        }
        atomic_fetch_add_explicit(&b->stats.dropped_withdrawn, m - expired, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->stats.dropped_expired, expired, memory_order_relaxed);
        spool_advance(b);
    }
    return k;
}

static int64_t
min_deadline(int64_t a, int64_t b)
{
    if (a < 0) {
        return b;
    }
    return b < 0 || a < b ? a : b;
}

/* How long the request for the n taken writes may take: the configured timeout, cut so that it
 * ends DEADLINE_MARGIN_MS before the earliest deadline of a client still waiting for one of
 * them (its answer then tells what happened, and a write that did not go stays queued for the
 * withdraw). 0 when less than MIN_BUDGET_MS is left: do not start it; *wait_until is then when
 * the deadline has passed and its write was withdrawn. A waiter late past its deadline by
 * DEADLINE_GRACE_MS no longer holds the queue up (its answer is honest either way). */
static int64_t
send_budget(struct backend *b, size_t n, int64_t *wait_until)
{
    int64_t d = -1;
    for (size_t i = 0; i < n; i++) {
        struct rdv *r = b->s.batch[i]->r;
        if (r != NULL && !rdv_is_decided(r)) {
            d = min_deadline(d, rdv_deadline_ms(r));
        }
    }
    int64_t now = clock_mono_ms();
    if (d < 0 || now >= d + DEADLINE_GRACE_MS) {
        return b->o->timeout_ms;
    }
    int64_t left = d - DEADLINE_MARGIN_MS - now;
    if (left < MIN_BUDGET_MS) {
        *wait_until = d + DEADLINE_GRACE_MS;
        return 0;
    }
    return left < b->o->timeout_ms ? left : b->o->timeout_ms;
}

/* Acts on the answer to the k claimed writes. capped: the request's timeout was cut for a
 * client's deadline. */
static void
on_answer(struct backend *b, size_t k, const struct post_result *res, bool witness, bool capped)
{
    struct sender *s = &b->s;
    enum answer a = classify(res->status);
    bool left = a == ANSWER_OK || a == ANSWER_REJECTED || !b->buffered;
    if (capped && res->timed_out) {
        on_cut(b, k, res);
    } else if (a == ANSWER_OK) {
        on_success(b, k, res);
        if (witness) {
            drop_poison(b);
        }
    } else if ((a == ANSWER_REJECTED || a == ANSWER_SERVER) && k > 1) {
        /* Isolate: re-send write by write, so each client gets its own verdict and a write the
         * backend cannot take (a 4xx, or a 5xx caused by its data) stops failing the others. */
        if (a == ANSWER_SERVER) {
            log_5xx(b, res->status);
        }
        queue_put_back(b->q, s->batch, k);
        s->split_left = k;
        left = false;
    } else if (a == ANSWER_REJECTED) {
        on_rejected(b, res);
    } else {
        on_failed(b, k, res, witness);
    }
    if (!witness && (a == ANSWER_OK || a == ANSWER_REJECTED)) {
        clear_suspect(s); /* the head went */
    }
    if (left && k == 1 && s->split_left > 0) {
        s->split_left--;
    }
}

/* Sends the n taken writes (s->batch) as one request. witness: batch[0] is the write behind a
 * poison suspect, sent alone. */
static void
send_batch(struct backend *b, size_t n, bool witness)
{
    struct sender *s = &b->s;
    int64_t wait_until = 0;
    int64_t budget = send_budget(b, n, &wait_until);
    if (budget == 0) {
        queue_put_back(b->q, s->batch, n); /* no time to be answered: stays for the withdraw */
        s->defer_until_ms = witness ? 0 : wait_until;
        return;
    }
    size_t k = claim_batch(b, n);
    if (k == 0) {
        s->witness_due = witness; /* that one was withdrawn: the next may witness */
        return;
    }
    for (size_t i = 0; i < k; i++) {
        s->parts[i] = (struct post_part){.data = s->batch[i]->p->data, .len = s->batch[i]->p->len};
    }
    const struct payload *head = s->batch[0]->p;
    struct post_request req = {.kind = head->kind,
                               .timeout_ms = budget,
                               .query = head->query,
                               .auth = head->auth,
                               .parts = s->parts,
                               .n_parts = k};
    struct post_result res;
    (void)post_write(s->post, &req, &res);
    histo_observe(&b->stats.send_duration, (uint64_t)res.duration_us);
    atomic_fetch_add_explicit(&b->stats.wire_bytes, res.wire_bytes, memory_order_relaxed);
    on_answer(b, k, &res, witness, budget < b->o->timeout_ms);
    post_result_cleanup(&res);
}

static void
probe(struct backend *b)
{
    struct post_result res;
    (void)post_ping(b->s.post, &res);
    if (res.status >= 200 && res.status < 300) {
        mark_reachable(b);
    } else {
        char reason[300];
        if (res.status != 0) {
            snprintf(reason, sizeof(reason), "ping: status %d", res.status);
        } else {
            snprintf(reason, sizeof(reason), "ping: %s", res.error);
        }
        mark_failed(b, reason, res.status == 0);
    }
    post_result_cleanup(&res);
}

/* ------------------------------------------------------------------ sender: the loop */

static bool
sender_done(struct backend *b)
{
    if (!atomic_load(&b->stop)) {
        return false;
    }
    if (b->sp != NULL && !atomic_load(&b->removed)) {
        return true; /* everything it holds is in its spool */
    }
    struct queue_stats st;
    queue_stats(b->q, &st);
    bool empty = st.writes == 0 && (b->sp == NULL || backlog_empty(b));
    return empty || clock_mono_ms() >= atomic_load(&b->stop_deadline_ms);
}

/* Buffered, a suspect failed POISON_ATTEMPTS times: sends the write behind it alone, now (not
 * after a backoff: both answers must describe the backend in the same state). False when there
 * is none (then the suspect is retried with backoff, as any failed write). */
static bool
send_witness(struct backend *b)
{
    struct sender *s = &b->s;
    s->witness_due = false;
    uint64_t upto = b->sp != NULL ? spool_pos(b->sp) : UINT64_MAX;
    if (queue_take_second_upto(b->q, s->suspect_seq, upto, s->batch) == 0) {
        return false;
    }
    send_batch(b, 1, true);
    return true;
}

/* Nothing to send now: (spooled) a backlog read back to the end leaves draining; then waits for
 * data, the next retry or probe, a retry of a failed spool read, or (spooled) a write that left
 * memory for the spool since gen. */
static void
sender_idle(struct backend *b, bool down, int64_t stop_at, const _Atomic bool *stop, uint64_t gen)
{
    struct sender *s = &b->s;
    s->split_left = 0;
    clear_suspect(s);
    if (b->sp != NULL && atomic_load(&b->state) == BACKEND_DRAINING && backlog_empty(b)) {
        set_state(b, BACKEND_UP); /* the last records passed were void or expired */
    }
    int64_t until = min_deadline(down ? s->next_try_ms : -1, stop_at);
    if (s->read_failing) {
        until = min_deadline(until, s->read_retry_ms);
    }
    queue_wait_gen(b->q, true, until, stop, b->sp != NULL ? gen : UINT64_MAX);
}

/* ------------------------------------------------------------------ sender: a reload */

static void
next_free(struct backend_next *n)
{
    if (n != NULL) {
        conf_unref(n->tree);
        free(n);
    }
}

/* New settings o: the queue's bound and whether the backend retries. */
static void
set_limits(struct backend *b, const struct conf_http_output *o)
{
    bool buffered = o->buffer_bytes > 0 || b->spooled;
    atomic_store(&b->cap_bytes, conf_cap(o, b->spooled));
    atomic_store(&b->buffered, buffered);
    queue_set_cap(b->q, conf_cap(o, b->spooled), !buffered);
}

/* Sender thread, between two requests: installs the settings a reload handed over. Unchanged
 * settings only move to the new tree; changed ones get a new libcurl handle (the queue stays:
 * what it holds goes to the new location) and a retry at once. */
static void
apply_next(struct backend *b)
{
    struct backend_next *n = atomic_exchange(&b->next, NULL);
    if (n == NULL) {
        return;
    }
    char changed[256];
    if (conf_section_diff(CONF_SEC_HTTP_OUTPUT, b->o, n->o, changed, sizeof(changed)) > 0) {
        struct ir_err err = {0, ""};
        struct post *p = backend_post_new(b, n->o, &err);
        if (p == NULL) {
            log_error(b->who, "new settings not applied, the previous ones stay: %s", err.msg);
            next_free(n);
            return;
        }
        post_free(b->s.post);
        b->s.post = p;
        set_limits(b, n->o);
        b->s.attempt = 0;
        b->s.next_try_ms = 0;
        b->s.defer_until_ms = 0;
        clear_suspect(&b->s);
        log_info(b->who, "output settings applied changed=%s", changed);
    }
    struct conf *old = b->tree;
    b->o = n->o;
    b->tree = n->tree;
    free(n);
    conf_unref(old);
}

/* One step of the sender's state machine: back off, send one batch, probe, or wait. */
static void
sender_step(struct backend *b)
{
    struct sender *s = &b->s;
    if (atomic_exchange(&b->poke, false)) {
        apply_next(b);
    }
    bool stopping = atomic_load(&b->stop);
    /* A wait ends when something changes: a stop, a deadline moved earlier, new settings. */
    const _Atomic bool *stop = &b->poke;
    int64_t stop_at = stopping ? atomic_load(&b->stop_deadline_ms) : -1;
    bool down = atomic_load(&b->state) == BACKEND_DOWN;
    int64_t now = clock_mono_ms();
    uint64_t gen = 0;
    if (b->sp != NULL) {
        gen = queue_gen(b->q);
        spool_refill(b);
    }
    if (s->witness_due && send_witness(b)) {
        return;
    }
    if (b->buffered && down && now < s->next_try_ms) {
        queue_wait(b->q, false, min_deadline(s->next_try_ms, stop_at), stop);
        return;
    }
    if (now < s->defer_until_ms) {
        queue_wait(b->q, false, min_deadline(s->defer_until_ms, stop_at), stop);
        return;
    }
    struct queue_stats st;
    queue_stats(b->q, &st);
    if (st.bytes > s->peak_bytes) {
        s->peak_bytes = st.bytes;
    }
    bool alone = s->split_left > 0 || s->suspect_fails > 0;
    uint64_t upto = b->sp != NULL ? spool_pos(b->sp) : UINT64_MAX;
    size_t n = queue_take_upto(b->q, (size_t)b->o->max_batch_bytes, alone ? 1 : BATCH_MAX_WRITES,
                               upto, s->batch);
    if (n > 0) {
        send_batch(b, n, false);
    } else if (down && now >= s->next_try_ms) {
        probe(b);
    } else {
        sender_idle(b, down, stop_at, stop, gen);
    }
}

/* The rest of a removed output's queue once its drain ended (backend_retire()). */
static void retire_drop(struct backend *b);

static void *
sender_main(void *arg)
{
    struct backend *b = arg;
    while (!sender_done(b)) {
        sender_step(b);
    }
    if (atomic_load(&b->removed)) {
        retire_drop(b);
    }
    return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

int
backend_start(struct backend *b, struct ir_err *err)
{
    int rc = pthread_create(&b->thread, NULL, sender_main, b);
    if (rc != 0) {
        char buf[128];
        ir_err_set(err, b->o->line, "backend %s: cannot start sender thread: %s", b->who,
                   ir_strerror(rc, buf, sizeof(buf)));
        return -1;
    }
    b->started = true;
    return 0;
}

/* Spooled, after the sender stopped: what is left is in the spool already, except a write held
 * only in memory after a disk error, which is appended now (after the writes spooled since:
 * the one case where a restart changes the order); the spool is synced. Counts and logs. */
static void
spool_leftovers(struct backend *b)
{
    uint64_t appended = 0;
    uint64_t dropped = 0;
    struct queue_entry *e = queue_pop_all(b->q);
    while (e != NULL) {
        struct queue_entry *next = e->next;
        if (!e->ondisk) {
            unsigned char head[SREC_HEAD];
            struct iovec parts[4];
            struct spool_put put;
            size_t len = spool_parts(e->p, head, parts);
            bool ok = len <= spool_record_max(b->sp) &&
                      spool_append(b->sp, parts, IR_ARRAY_LEN(parts), e->arrival_ns, &put) ==
                              SPOOL_OK;
            appended += ok;
            dropped += !ok;
        }
        if (e->r != NULL) {
            rdv_report(e->r, e->idx, RDV_FAILED, 0, NULL, 0, NULL);
        }
        queue_entry_free(e);
        e = next;
    }
    backend_spool_sync(b);
    struct spool_stats st;
    spool_stats(b->sp, &st);
    atomic_fetch_add_explicit(&b->stats.dropped_shutdown, dropped, memory_order_relaxed);
    if (dropped > 0) {
        log_error(b->who,
                  "shutdown: dropped writes=%llu (held in memory after a disk error, the spool "
                  "could not take them)",
                  (unsigned long long)dropped);
    }
    log_info(b->who,
             "shutdown: kept in the spool, delivered after the restart spooled_writes=%llu "
             "spool_bytes=%llu appended_from_memory=%llu dir=%s",
             (unsigned long long)st.records, (unsigned long long)st.disk_bytes,
             (unsigned long long)appended, spool_dir(b->sp));
}

/* Empties the queue: every write left is failed (its client, if one still waits, hears it) and
 * freed; *writes and *bytes count them. */
static void
fail_queued(struct backend *b, uint64_t *writes, uint64_t *bytes)
{
    struct queue_entry *e = queue_pop_all(b->q);
    while (e != NULL) {
        struct queue_entry *next = e->next;
        (*writes)++;
        *bytes += e->p->len;
        if (e->r != NULL) {
            rdv_report(e->r, e->idx, RDV_FAILED, 0, NULL, 0, NULL);
        }
        queue_entry_free(e);
        e = next;
    }
}

static void
retire_drop(struct backend *b)
{
    /* Closed first: a write submitted from now on is refused (backend_submit()). */
    atomic_store(&b->closed, true);
    uint64_t writes = 0;
    uint64_t bytes = 0;
    fail_queued(b, &writes, &bytes);
    if (b->sp != NULL) {
        /* What it holds stays in its spool, delivered if the output comes back (a reload or a
         * restart that adds it again); for this configuration it is dropped. */
        backend_spool_sync(b);
        struct spool_stats ss;
        spool_stats(b->sp, &ss);
        atomic_fetch_add_explicit(&b->stats.dropped_removed, ss.records, memory_order_relaxed);
        log_warn(b->who,
                 "output removed by a reload: its spool is left on disk, not delivered while the "
                 "output is not configured spooled_writes=%llu spool_bytes=%llu dir=%s",
                 (unsigned long long)ss.records, (unsigned long long)ss.disk_bytes,
                 spool_dir(b->sp));
        atomic_store(&b->ended, true);
        return;
    }
    atomic_fetch_add_explicit(&b->stats.dropped_removed, writes, memory_order_relaxed);
    if (writes > 0) {
        log_error(b->who,
                  "output removed by a reload: shutdown-timeout passed, dropped writes=%llu "
                  "bytes=%llu state=%s",
                  (unsigned long long)writes, (unsigned long long)bytes,
                  state_names[atomic_load(&b->state)]);
    } else {
        log_info(b->who, "output removed by a reload: drained, dropped writes=0 bytes=0");
    }
    atomic_store(&b->ended, true);
}

/* After the sender stopped: drops what is left, counts and logs it. */
static void
drop_leftovers(struct backend *b)
{
    if (b->sp != NULL) {
        spool_leftovers(b);
        return;
    }
    uint64_t writes = 0;
    uint64_t bytes = 0;
    fail_queued(b, &writes, &bytes);
    atomic_fetch_add_explicit(&b->stats.dropped_shutdown, writes, memory_order_relaxed);
    if (writes > 0) {
        log_error(b->who, "shutdown: dropped writes=%llu bytes=%llu state=%s",
                  (unsigned long long)writes, (unsigned long long)bytes,
                  state_names[atomic_load(&b->state)]);
    } else {
        log_info(b->who, "shutdown: drained, dropped writes=0 bytes=0");
    }
}

/* Wakes the sender to look at its flags, deadline and settings again. */
static void
poke(struct backend *b)
{
    atomic_store(&b->poke, true);
    queue_kick(b->q);
}

void
backend_stop(struct backend *b, int64_t deadline_ms)
{
    if (atomic_load(&b->removed)) {
        /* Retired: the sender drops what is left itself; only its deadline may come sooner. */
        backend_hurry(b, deadline_ms);
    } else {
        atomic_store(&b->stop_deadline_ms, deadline_ms > 0 ? deadline_ms : 1);
        atomic_store(&b->stop, true);
        poke(b);
    }
    if (b->started) {
        pthread_join(b->thread, NULL);
        b->started = false;
    }
    if (!atomic_load(&b->removed)) {
        drop_leftovers(b);
    }
}

void
backend_hurry(struct backend *b, int64_t deadline_ms)
{
    int64_t want = deadline_ms > 0 ? deadline_ms : 1;
    int64_t cur = atomic_load(&b->stop_deadline_ms);
    while ((cur == 0 || want < cur) &&
           !atomic_compare_exchange_weak(&b->stop_deadline_ms, &cur, want)) {
    }
    poke(b);
}

bool
backend_reconfigure(struct backend *b, const struct conf_http_output *o)
{
    struct backend_next *n = xcalloc(1, sizeof(*n));
    n->o = o;
    n->tree = conf_ref(o->tree);
    /* A previous reload's settings the sender has not applied yet are replaced. */
    next_free(atomic_exchange(&b->next, n));
    if (!b->started) {
        apply_next(b); /* no sender yet: this thread is the only one */
    } else {
        poke(b);
    }
    /* Every key of an output applies live but the spool's (read when the backend is made and
     * its spool opened): a change of those returns false, the service logs that it needs a
     * restart, and the spool keeps its settings until then. */
    return (o->spool_bytes > 0) == b->spooled &&
           (!b->spooled ||
            (o->spool_bytes == b->spool_cap && o->spool_sync_ms == b->spool_sync_ms &&
             o->spool_max_age_ms == b->spool_max_age_ms));
}

void
backend_retire(struct backend *b, int64_t deadline_ms)
{
    atomic_store(&b->stop_deadline_ms, deadline_ms > 0 ? deadline_ms : 1);
    atomic_store(&b->removed, true);
    atomic_store(&b->stop, true);
    if (!b->started) {
        retire_drop(b);
        return;
    }
    poke(b);
}

const char *
backend_name(const struct backend *b)
{
    return b->name;
}

bool
backend_is_ended(struct backend *b)
{
    return atomic_load(&b->ended);
}

struct backend *
backend_ref(struct backend *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void
backend_unref(struct backend *b)
{
    if (b == NULL || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    queue_free(b->q);
    next_free(atomic_load(&b->next));
    conf_unref(b->tree);
    free(b->relay);
    free(b->name);
    spool_free(b->sp); /* its lock too: the output may be added again */
    if (b->spooled) {
        pthread_mutex_destroy(&b->smu);
        spool_batch_cleanup(&b->s.sb);
        free(b->s.lp);
        free(b->s.lseq);
        free(b->s.larr);
    }
    post_free(b->s.post);
    free(b->s.batch);
    free(b->s.spare);
    free(b->s.parts);
    free(b->s.held_r);
    free(b->s.held_seq);
    free(b);
}

void
backend_free(struct backend *b)
{
    backend_unref(b);
}

void
backend_snapshot(struct backend *b, struct backend_snapshot *s)
{
    struct queue_stats st;
    queue_stats(b->q, &st);
    s->relay = b->relay;
    s->name = b->name;
    s->state = (enum backend_state)atomic_load(&b->state);
    s->queue_bytes = st.bytes;
    s->queue_writes = st.writes;
    s->capacity_bytes = st.cap_bytes;
    s->oldest_age_s = st.writes > 0 ? (double)(clock_mono_ms() - st.oldest_ms) / 1000.0 : 0.0;
    s->stats = &b->stats;
    s->spooled = b->sp != NULL;
    s->spool_bytes = s->spool_writes = s->spool_capacity_bytes = 0;
    memset(s->spool_errors, 0, sizeof(s->spool_errors));
    if (b->sp != NULL) {
        struct spool_stats ss;
        spool_stats(b->sp, &ss);
        s->spool_bytes = ss.disk_bytes;
        s->spool_writes = ss.records;
        s->spool_capacity_bytes = ss.cap_bytes;
        memcpy(s->spool_errors, ss.errors, sizeof(s->spool_errors));
    }
}

/* ------------------------------------------------------------------ spool lifecycle */

int
backend_spool_open(struct backend *b, const char *spool_dir, struct ir_err *err)
{
    if (!b->spooled) {
        return 0;
    }
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s/%s/%s", spool_dir, b->relay, b->o->name);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        ir_err_set(err, b->o->line, "backend %s: spool directory name too long", b->who);
        return -1;
    }
    const struct conf_http_output *o = b->o;
    struct spool_conf sc = {.dir = dir,
                            .cap_bytes = (uint64_t)o->spool_bytes,
                            .max_age_ms = o->spool_max_age_ms,
                            .sync_ms = o->spool_sync_ms,
                            .segment_bytes = 0,
                            .sync_histo = &b->stats.spool_sync};
    b->sp = spool_new(&sc, err);
    if (b->sp == NULL) {
        return -1;
    }
    struct spool_stats st;
    spool_stats(b->sp, &st);
    b->s.done_hi = b->s.acked = spool_pos(b->sp);
    b->s.seen_expired = st.expired;
    b->s.seen_corrupt = st.corrupt;
    atomic_fetch_add_explicit(&b->stats.dropped_corrupt, st.corrupt, memory_order_relaxed);
    if (st.corrupt > 0) {
        log_error(b->who, "spool: a damaged tail was cut off regions=%llu dir=%s",
                  (unsigned long long)st.corrupt, dir);
    }
    log_info(b->who,
             "spool opened, replaying what it holds first spooled_writes=%llu spool_bytes=%llu "
             "capacity_bytes=%llu dir=%s",
             (unsigned long long)st.records, (unsigned long long)st.disk_bytes,
             (unsigned long long)st.cap_bytes, dir);
    return 0;
}

int64_t
backend_spool_period_ms(const struct backend *b)
{
    if (!b->spooled) {
        return 0;
    }
    return b->spool_sync_ms > 0 ? b->spool_sync_ms : 1000;
}

void
backend_spool_sync(struct backend *b)
{
    if (b->sp == NULL) {
        return;
    }
    struct ir_err err = {0, ""};
    int rc = spool_sync(b->sp, &err);
    if (rc != 0 && !atomic_exchange(&b->sync_failing, true)) {
        log_error(b->who, "spool: %s (a power loss may lose the writes since the last sync)",
                  err.msg);
    } else if (rc == 0 && atomic_load_explicit(&b->sync_failing, memory_order_relaxed) &&
               atomic_exchange(&b->sync_failing, false)) {
        log_info(b->who, "spool: syncing again dir=%s", spool_dir(b->sp));
    }
}
