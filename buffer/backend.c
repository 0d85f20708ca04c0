/* DESIGN: one backend = one bounded queue + one sender thread + one libcurl easy handle.
 *
 * Fan-out. The HTTP thread that validated a write submits one shared payload to each backend of
 * its relay (backend_submit(): a queue push, never I/O) and waits on a rendezvous (rdv.c). Each
 * sender sends the head of its queue merged with the following writes of the same route (query
 * + Authorization) up to max-batch-kb, a single larger write alone, streamed from the payloads
 * with a read callback (no concatenation copy). Under load many small client writes become few
 * large backend requests (group commit); idle, a write goes out alone at once.
 *
 * Bound. Every write is charged queue_entry_cost(): the payload's held_bytes (struct + body
 * allocation + query + auth + malloc headers) + the queue entry. The in-flight batch stays in
 * the queue until its outcome, so the bound covers it. Buffered: cap = buffer-size-mb, strict.
 * Unbuffered: cap = max(4 x max-batch-kb, 32 MiB), and an empty queue takes one write of any
 * size (bodies are already bounded by max-body-mb). A write that does not fit is refused for
 * this backend at once (BACKEND_FULL, counted, logged once per full episode).
 *
 * Outcomes. 2xx: RDV_OK for every write of the batch. 4xx (not 429) on a merged batch: the
 * writes go back and are re-sent one by one (split), so each client gets its own verdict; 4xx on
 * one write: RDV_REJECTED with the backend's status, body and Content-Type, dropped (counted as
 * rejected, logged when buffered). 5xx, 429, transport error: unbuffered -> RDV_FAILED, the
 * writes are dropped (never retried); buffered -> RDV_FAILED, the batch goes back to the head
 * and is retried. Every 5xx logs the Go relay's line; transport errors log the Go relay's
 * "Problem posting" line when the state changes, then a summary at most every 30 s.
 *
 * Retry schedule (buffered), from the end of the failed request: retry 1 after 500 ms (or
 * max-delay-interval if smaller); retry n >= 2 after min(cap, 500 ms x 2^(n-1)) x U[0.8, 1.0],
 * cap = max-delay-interval (at least 100 ms), so jitter never exceeds the cap. With the default
 * 10 s: 0.5, 0.8-1, 1.6-2, 3.2-4, 6.4-8, 8-10, 8-10 ... s. A success resets it; successful sends
 * go back to back. Order: the queue is FIFO and a failed batch stays at its head, so delivery
 * order per backend is arrival order; new writes queue behind the backlog.
 *
 * States. UP -> DOWN on a failed send (logged with the reason); DOWN -> DRAINING on a success
 * with a backlog left, -> UP once it is empty (logged with outage duration, retries, bytes
 * queued). While DOWN the sender sleeps until the next retry, then sends the head batch, or,
 * with nothing queued, GETs /ping so the state recovers without client writes. A buffered backend
 * that is DOWN reports RDV_FAILED for a new write right away (the write stays queued): with every
 * backend down the client gets 503 at once and the write is withdrawn everywhere; when another
 * backend took it (204) it stays here and is delivered on recovery.
 *
 * Withdraw. rdv_finish() removes a write that earned a failure from every queue where it is not
 * in flight, through the backend's holder (backend_withdraw() -> queue_withdraw()); the sender
 * claims each write before sending (rdv_claim()) and drops withdrawn ones. A failed batch is put
 * back, then writes whose rendezvous withdrew meanwhile are removed by the sender itself.
 *
 * Shutdown. backend_stop() sets the stop flag and a deadline: the sender keeps sending (and
 * retrying) until the queue is empty or the deadline passes (a request still running then is
 * aborted), the thread is joined, and what is left is dropped, counted and logged.
 *
 * Memory. After a backlog of more than 8 MiB drains, the sender calls malloc_trim(0): bodies
 * are freed by this thread into the arenas of the HTTP threads that allocated them, and glibc
 * would otherwise keep those pages; backend_global_init() caps the number of malloc arenas for
 * the same reason (see docs/queue-and-retry.md for the figures).
 *
 * Threads and locks: the queue mutex and the rendezvous mutexes are only held inside queue.c and
 * rdv.c, never together; this file holds no lock. Logging, curl and payload release happen with
 * no lock held. */
#include "buffer/backend.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/post.h"
#include "buffer/queue.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BATCH_MAX_WRITES   8192
#define UNBUFFERED_MIN_CAP (32LL * 1024 * 1024)
#define RETRY_FIRST_MS     500
#define RETRY_MIN_CAP_MS   100
#define SUMMARY_EVERY_MS   30000
#define REJECT_LOG_MS      1000
#define TRIM_AFTER_BYTES   (8ULL * 1024 * 1024)

/* Sender thread only. */
struct sender {
    struct post *post;
    struct queue_entry **batch; /* BATCH_MAX_WRITES: the batch being sent */
    struct queue_entry **spare; /* BATCH_MAX_WRITES: withdrawn writes found in a batch */
    struct post_part *parts;    /* BATCH_MAX_WRITES */
    struct rdv **held_r;        /* BATCH_MAX_WRITES: refs kept across a put-back */
    uint64_t *held_seq;         /* BATCH_MAX_WRITES */
    size_t split_left;          /* writes still to send one by one after a 4xx batch */
    unsigned attempt;           /* consecutive failures */
    int64_t next_try_ms;        /* DOWN: next retry or probe */
    int64_t down_since_ms;
    int64_t recovered_ms; /* start of DRAINING */
    uint64_t outage_retries;
    int64_t last_summary_ms;
    char last_error[256];
    uint64_t peak_bytes; /* largest backlog since the last malloc_trim() */
    uint64_t rng;
    int64_t last_reject_log_ms;
    uint64_t rejects_unlogged;
};

struct backend {
    struct rdv_holder holder;         /* immutable after new: how a rendezvous withdraws */
    const char *relay;                /* immutable after new (borrowed) */
    const struct conf_http_output *o; /* immutable after new (borrowed) */
    char who[160];                    /* immutable after new: "relay/backend" for logs */
    bool buffered;                    /* immutable after new */
    struct queue *q;                  /* immutable after new (locks itself) */
    struct backend_stats stats;       /* atomic */
    _Atomic int state;                /* atomic: enum backend_state */
    _Atomic bool stop;                /* atomic */
    _Atomic bool hurry;               /* atomic: the shutdown deadline was moved earlier */
    _Atomic int64_t stop_deadline_ms; /* atomic: set before stop; also curl's abort time */
    _Atomic bool full;                /* atomic: the last submit found the queue full */
    _Atomic bool high;                /* atomic: buffered queue above 80% (warned) */
    pthread_t thread;                 /* main thread only */
    bool started;                     /* main thread only */
    struct sender s;                  /* sender thread only (main thread before start) */
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

/* Any thread (the waiter of a failed write, no lock held): removes the write unless it is in
 * flight or gone. */
static void
backend_withdraw(const struct rdv_holder *h, uint64_t seq)
{
    const struct backend *b = (const struct backend *)h;
    (void)queue_withdraw(b->q, seq);
}

static uint64_t
queue_cap(const struct conf_http_output *o)
{
    if (o->buffer_bytes > 0) {
        return (uint64_t)o->buffer_bytes;
    }
    int64_t cap = o->max_batch_bytes * 4;
    return (uint64_t)(cap > UNBUFFERED_MIN_CAP ? cap : UNBUFFERED_MIN_CAP);
}

struct backend *
backend_new(const char *relay, const struct conf_http_output *o, struct ir_err *err)
{
    struct backend *b = xcalloc(1, sizeof(*b));
    b->relay = relay;
    b->o = o;
    snprintf(b->who, sizeof(b->who), "%s/%s", relay, o->name);
    b->holder.withdraw = backend_withdraw;
    b->buffered = o->buffer_bytes > 0;
    b->q = queue_new(queue_cap(o), !b->buffered, &b->stats.dropped_withdrawn, &rdv_refs);
    atomic_init(&b->state, BACKEND_UP);
    struct post_conf pc = {.location = o->location,
                           .timeout_ms = o->timeout_ms,
                           .skip_tls_verification = o->skip_tls_verification,
                           .abort_at_ms = &b->stop_deadline_ms};
    b->s.post = post_new(&pc, err);
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
                 (unsigned long long)queue_cap(b->o));
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
    uint64_t cap = queue_cap(b->o);
    bool high = atomic_load_explicit(&b->high, memory_order_relaxed);
    if (!high && held > cap / 5 * 4 && !atomic_exchange(&b->high, true)) {
        log_warn(b->who, "buffer above 80%% queued_bytes=%llu capacity_bytes=%llu",
                 (unsigned long long)held, (unsigned long long)cap);
    } else if (high && held < cap / 2 && atomic_exchange(&b->high, false)) {
        log_info(b->who, "buffer below 50%% again queued_bytes=%llu capacity_bytes=%llu",
                 (unsigned long long)held, (unsigned long long)cap);
    }
}

enum backend_submit
backend_submit(struct backend *b, struct payload *p, struct rdv *r, unsigned idx)
{
    uint64_t seq = 0;
    if (queue_push(b->q, p, r, idx, &seq) != 0) {
        atomic_fetch_add_explicit(&b->stats.dropped_buffer_full, 1, memory_order_relaxed);
        note_full(b, true);
        return BACKEND_FULL;
    }
    note_full(b, false);
    if (b->buffered) {
        note_level(b);
    }
    if (r == NULL) {
        return BACKEND_QUEUED;
    }
    if (!rdv_attach(r, idx, &b->holder, seq)) {
        (void)queue_withdraw(b->q, seq);
        return BACKEND_QUEUED;
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

/* The backend answered (2xx, or a 4xx that is the data's fault): it is reachable. */
static void
mark_reachable(struct backend *b)
{
    b->s.attempt = 0;
    struct queue_stats st;
    queue_stats(b->q, &st);
    enum backend_state cur = (enum backend_state)atomic_load(&b->state);
    if (st.writes == 0) {
        set_state(b, BACKEND_UP);
    } else if (cur == BACKEND_DOWN) {
        set_state(b, BACKEND_DRAINING);
    }
    if (st.writes == 0 && b->s.peak_bytes >= TRIM_AFTER_BYTES) {
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

static void
report_all(struct backend *b, size_t k, enum rdv_outcome o, const struct post_result *res)
{
    for (size_t i = 0; i < k; i++) {
        struct queue_entry *e = b->s.batch[i];
        if (e->r != NULL) {
            rdv_report(e->r, e->idx, o, res->status, res->body, res->body_len, res->ctype);
        }
    }
}

static void
free_batch(struct backend *b, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        queue_entry_free(b->s.batch[i]);
        b->s.batch[i] = NULL;
    }
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
    queue_remove(b->q, b->s.batch, k);
    report_all(b, k, RDV_OK, res);
    free_batch(b, k);
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
    queue_remove(b->q, b->s.batch, 1);
    report_all(b, 1, RDV_REJECTED, res);
    free_batch(b, 1);
    atomic_fetch_add_explicit(&b->stats.dropped_rejected, 1, memory_order_relaxed);
    struct sender *s = &b->s;
    int64_t now = clock_mono_ms();
    if (b->buffered && now - s->last_reject_log_ms >= REJECT_LOG_MS) {
        char why[201];
        log_safe(why, sizeof(why), res->body);
        log_warn(b->who,
                 "write rejected by backend, dropped status=%d reason=\"%s\" also_dropped=%llu",
                 res->status, why, (unsigned long long)s->rejects_unlogged);
        s->last_reject_log_ms = now;
        s->rejects_unlogged = 0;
    } else {
        s->rejects_unlogged++;
    }
    mark_reachable(b);
}

/* Buffered: the batch stays at the head for a retry. Refs on the rendezvous are kept across the
 * put-back so that writes withdrawn meanwhile can be removed here at once. */
static void
retry_later(struct backend *b, size_t k, const struct post_result *res)
{
    struct sender *s = &b->s;
    for (size_t i = 0; i < k; i++) {
        s->held_r[i] = s->batch[i]->r;
        s->held_seq[i] = s->batch[i]->seq;
        if (s->held_r[i] != NULL) {
            rdv_ref(s->held_r[i]);
        }
    }
    report_all(b, k, RDV_FAILED, res);
    queue_put_back(b->q, s->batch, k);
    for (size_t i = 0; i < k; i++) {
        s->batch[i] = NULL;
        if (s->held_r[i] != NULL && rdv_is_withdrawn(s->held_r[i])) {
            (void)queue_withdraw(b->q, s->held_seq[i]);
        }
        rdv_unref(s->held_r[i]);
        s->held_r[i] = NULL;
    }
    atomic_fetch_add_explicit(&b->stats.retries, 1, memory_order_relaxed);
    s->outage_retries++;
}

static void
on_failed(struct backend *b, size_t k, const struct post_result *res)
{
    char reason[300];
    if (res->status != 0) {
        snprintf(reason, sizeof(reason), "status %d", res->status);
    } else {
        snprintf(reason, sizeof(reason), "%s", res->error);
    }
    if (res->status >= 500) {
        /* status=: a field of the JSON line (log_go drops it from the Go-worded text line). */
        log_go(LOG_WARN, b->relay, b->o->name,
               "5xx response for relay \"%s\" backend \"%s\": %d status=%d", b->relay, b->o->name,
               res->status, res->status);
    }
    /* Log (and change state) before the clients hear of it: the log is the operator's record
     * of what the client saw. */
    mark_failed(b, reason, res->status == 0);
    if (b->buffered) {
        retry_later(b, k, res);
    } else {
        queue_remove(b->q, b->s.batch, k);
        report_all(b, k, RDV_FAILED, res);
        free_batch(b, k);
    }
}

/* ------------------------------------------------------------------ sender: one batch */

/* Claims the taken writes; withdrawn ones are removed and dropped. Returns how many remain
 * (compacted at the front of s->batch). */
static size_t
claim_batch(struct backend *b, size_t n)
{
    struct sender *s = &b->s;
    size_t k = 0;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_entry *e = s->batch[i];
        if (e->r == NULL || rdv_claim(e->r, e->idx)) {
            s->batch[k++] = e;
        } else {
            s->spare[m++] = e;
        }
    }
    if (m > 0) {
        queue_remove(b->q, s->spare, m);
        for (size_t i = 0; i < m; i++) {
            queue_entry_free(s->spare[i]);
        }
        atomic_fetch_add_explicit(&b->stats.dropped_withdrawn, m, memory_order_relaxed);
    }
    return k;
}

static void
send_batch(struct backend *b, size_t n)
{
    struct sender *s = &b->s;
    size_t k = claim_batch(b, n);
    if (k == 0) {
        return;
    }
    for (size_t i = 0; i < k; i++) {
        s->parts[i] = (struct post_part){.data = s->batch[i]->p->data, .len = s->batch[i]->p->len};
    }
    const struct payload *head = s->batch[0]->p;
    struct post_request req = {
            .query = head->query, .auth = head->auth, .parts = s->parts, .n_parts = k};
    struct post_result res;
    (void)post_write(s->post, &req, &res);
    histo_observe(&b->stats.send_duration, (uint64_t)res.duration_us);
    if (res.status >= 200 && res.status < 300) {
        on_success(b, k, &res);
    } else if (res.status >= 400 && res.status < 500 && res.status != 429 && k > 1) {
        queue_put_back(b->q, s->batch, k); /* split: re-send write by write */
        s->split_left = k;
    } else if (res.status >= 400 && res.status < 500 && res.status != 429) {
        on_rejected(b, &res);
    } else {
        on_failed(b, k, &res);
    }
    if (s->split_left > 0 && k == 1) {
        s->split_left--;
    }
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
    struct queue_stats st;
    queue_stats(b->q, &st);
    return st.writes == 0 || clock_mono_ms() >= atomic_load(&b->stop_deadline_ms);
}

static int64_t
min_deadline(int64_t a, int64_t b)
{
    if (a < 0) {
        return b;
    }
    return b < 0 || a < b ? a : b;
}

/* One step of the sender's state machine: back off, send one batch, probe, or wait. */
static void
sender_step(struct backend *b)
{
    struct sender *s = &b->s;
    bool stopping = atomic_load(&b->stop);
    /* Stopping, a wait still ends when backend_hurry() moves the deadline earlier. */
    const _Atomic bool *stop = stopping ? &b->hurry : &b->stop;
    int64_t stop_at = stopping ? atomic_load(&b->stop_deadline_ms) : -1;
    bool down = atomic_load(&b->state) == BACKEND_DOWN;
    int64_t now = clock_mono_ms();
    if (b->buffered && down && now < s->next_try_ms) {
        queue_wait(b->q, false, min_deadline(s->next_try_ms, stop_at), stop);
        return;
    }
    struct queue_stats st;
    queue_stats(b->q, &st);
    if (st.bytes > s->peak_bytes) {
        s->peak_bytes = st.bytes;
    }
    size_t max_writes = s->split_left > 0 ? 1 : BATCH_MAX_WRITES;
    size_t n = queue_take(b->q, (size_t)b->o->max_batch_bytes, max_writes, s->batch);
    if (n > 0) {
        send_batch(b, n);
    } else if (down && now >= s->next_try_ms) {
        probe(b);
    } else {
        s->split_left = 0;
        queue_wait(b->q, true, min_deadline(down ? s->next_try_ms : -1, stop_at), stop);
    }
}

static void *
sender_main(void *arg)
{
    struct backend *b = arg;
    while (!sender_done(b)) {
        sender_step(b);
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

/* After the sender stopped: drops what is left, counts and logs it. */
static void
drop_leftovers(struct backend *b)
{
    uint64_t writes = 0;
    uint64_t bytes = 0;
    struct queue_entry *e = queue_pop_all(b->q);
    while (e != NULL) {
        struct queue_entry *next = e->next;
        writes++;
        bytes += e->p->len;
        if (e->r != NULL) {
            rdv_report(e->r, e->idx, RDV_FAILED, 0, NULL, 0, NULL);
        }
        queue_entry_free(e);
        e = next;
    }
    atomic_fetch_add_explicit(&b->stats.dropped_shutdown, writes, memory_order_relaxed);
    if (writes > 0) {
        log_error(b->who, "shutdown: dropped writes=%llu bytes=%llu state=%s",
                  (unsigned long long)writes, (unsigned long long)bytes,
                  state_names[atomic_load(&b->state)]);
    } else {
        log_info(b->who, "shutdown: drained, dropped writes=0 bytes=0");
    }
}

void
backend_stop(struct backend *b, int64_t deadline_ms)
{
    atomic_store(&b->stop_deadline_ms, deadline_ms > 0 ? deadline_ms : 1);
    atomic_store(&b->stop, true);
    queue_kick(b->q);
    if (b->started) {
        pthread_join(b->thread, NULL);
        b->started = false;
    }
    drop_leftovers(b);
}

void
backend_hurry(struct backend *b, int64_t deadline_ms)
{
    int64_t want = deadline_ms > 0 ? deadline_ms : 1;
    int64_t cur = atomic_load(&b->stop_deadline_ms);
    while ((cur == 0 || want < cur) &&
           !atomic_compare_exchange_weak(&b->stop_deadline_ms, &cur, want)) {
    }
    atomic_store(&b->hurry, true);
    queue_kick(b->q);
}

void
backend_free(struct backend *b)
{
    if (b == NULL) {
        return;
    }
    queue_free(b->q);
    post_free(b->s.post);
    free(b->s.batch);
    free(b->s.spare);
    free(b->s.parts);
    free(b->s.held_r);
    free(b->s.held_seq);
    free(b);
}

void
backend_snapshot(struct backend *b, struct backend_snapshot *s)
{
    struct queue_stats st;
    queue_stats(b->q, &st);
    s->relay = b->relay;
    s->name = b->o->name;
    s->state = (enum backend_state)atomic_load(&b->state);
    s->queue_bytes = st.bytes;
    s->queue_writes = st.writes;
    s->capacity_bytes = st.cap_bytes;
    s->oldest_age_s = st.writes > 0 ? (double)(clock_mono_ms() - st.oldest_ms) / 1000.0 : 0.0;
    s->stats = &b->stats;
}
