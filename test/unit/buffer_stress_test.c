/* Concurrency test of buffer/queue.c + buffer/rdv.c + util/timer.c under the sender's protocol
 * (run it under TSan and ASan): client threads push writes and wait for their verdict as the
 * HTTP layer does (rdv_notify(), woken by whoever decides) with deadlines of 0-2 ms, so the
 * deadline timer and the sender's reports race for the decision, while one sender thread takes
 * batches, claims, and either delivers them or fails them and puts them back. Every pushed write
 * must leave the queue exactly once (delivered, withdrawn, or left at the end), every OK verdict
 * must be a delivered write, a "nothing kept" verdict never one, each waiter is woken at most
 * once, and every reference must come back. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "buffer/payload.h"
#include "buffer/queue.h"
#include "buffer/rdv.h"
#include "check.h"
#include "util/clock.h"
#include "util/timer.h"
#include "util/xalloc.h"

#define CLIENTS 6
#define WRITES  3000
#define BATCH   16

struct world {
    struct rdv_holder holder; /* first */
    struct queue *q;
    struct timer *tm;
    unsigned lane;
    _Atomic uint64_t withdrawn; /* counted by queue_withdraw() */
    _Atomic uint64_t delivered;
    _Atomic uint64_t dropped; /* withdrawn writes found by the sender at claim time */
    _Atomic uint64_t pushed;
    _Atomic uint64_t ok;
    _Atomic uint64_t failed;
    _Atomic uint64_t timeouts;
    _Atomic uint64_t nothing_kept_delivered; /* must stay 0 */
    _Atomic uint64_t double_wake;            /* must stay 0 */
    _Atomic bool stop;
    struct payload *p;
};

static const struct queue_ref_ops rdv_refs = {rdv_ref, rdv_unref};

static void
world_withdraw(const struct rdv_holder *h, uint64_t seq)
{
    (void)queue_withdraw(((const struct world *)h)->q, seq);
}

static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
    struct world *w;
};

static void
wake(void *arg)
{
    struct waiter *wt = arg;
    pthread_mutex_lock(&wt->mu);
    if (++wt->woken > 1) {
        atomic_fetch_add(&wt->w->double_wake, 1);
    }
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

static void
wait_woken(struct waiter *wt)
{
    pthread_mutex_lock(&wt->mu);
    while (wt->woken == 0) {
        pthread_cond_wait(&wt->cv, &wt->mu);
    }
    pthread_mutex_unlock(&wt->mu);
}

/* One client write: push, attach, wait for the verdict. */
static void
client_write(struct world *w, uint64_t *rng)
{
    struct rdv *r =
            rdv_new(1, CONF_CONSISTENCY_ONE, clock_mono_ms() + (int64_t)(next_rand(rng) % 3));
    uint64_t seq = 0;
    if (queue_push(w->q, w->p, r, 0, &seq) != 0) {
        rdv_report(r, 0, RDV_FULL, 0, NULL, 0, NULL);
    } else {
        atomic_fetch_add(&w->pushed, 1);
        if (!rdv_attach(r, 0, &w->holder, seq)) {
            (void)queue_withdraw(w->q, seq);
        }
    }
    struct waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, w};
    if (rdv_notify(r, w->tm, w->lane, wake, &wt)) {
        wait_woken(&wt);
    }
    struct rdv_verdict v;
    rdv_finish(r, &v);
    atomic_fetch_add(v.kind == RDV_VERDICT_OK ? &w->ok : &w->failed, 1);
    if (v.kind == RDV_VERDICT_TIMEOUT) {
        atomic_fetch_add(&w->timeouts, 1);
    }
    if (v.nothing_kept && v.stored) {
        atomic_fetch_add(&w->nothing_kept_delivered, 1);
    }
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
}

static void *
client(void *arg)
{
    struct world *w = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;
    for (int i = 0; i < WRITES; i++) {
        client_write(w, &rng);
    }
    return NULL;
}

/* One attempt on a taken batch, as buffer/backend.c does it. */
static void
attempt(struct world *w, struct queue_entry **es, size_t n, bool success)
{
    struct queue_entry *keep[BATCH];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (rdv_claim(es[i]->r, es[i]->idx)) {
            keep[k++] = es[i];
        } else {
            queue_remove(w->q, &es[i], 1);
            queue_entry_free(es[i]);
            atomic_fetch_add(&w->dropped, 1);
        }
    }
    if (success) {
        queue_remove(w->q, keep, k);
        for (size_t i = 0; i < k; i++) {
            rdv_report(keep[i]->r, keep[i]->idx, RDV_OK, 204, NULL, 0, NULL);
            queue_entry_free(keep[i]);
        }
        atomic_fetch_add(&w->delivered, k);
        return;
    }
    struct rdv *held[BATCH];
    uint64_t seqs[BATCH];
    for (size_t i = 0; i < k; i++) {
        held[i] = keep[i]->r;
        seqs[i] = keep[i]->seq;
        rdv_ref(held[i]);
        rdv_report(held[i], keep[i]->idx, RDV_FAILED, 503, "x", 1, NULL);
    }
    queue_put_back(w->q, keep, k);
    for (size_t i = 0; i < k; i++) {
        /* One backend: its failure is the verdict, so the write is withdrawn at once and no
         * immediate retry can deliver it behind its client's failure. (Only this thread
         * CHECKs.) */
        CHECK(rdv_is_withdrawn(held[i]));
        if (rdv_is_withdrawn(held[i])) {
            (void)queue_withdraw(w->q, seqs[i]);
        }
        rdv_unref(held[i]);
    }
}

static void *
sender(void *arg)
{
    struct world *w = arg;
    uint64_t rng = 88172645463325252ULL;
    struct queue_entry *es[BATCH];
    while (!atomic_load(&w->stop)) {
        size_t n = queue_take(w->q, 1 << 20, BATCH, es);
        if (n == 0) {
            queue_wait(w->q, true, clock_mono_ms() + 5, &w->stop);
            continue;
        }
        attempt(w, es, n, next_rand(&rng) % 4 != 0);
    }
    return NULL;
}

int
main(void)
{
    static struct world w;
    struct ir_err err;
    w.holder.withdraw = world_withdraw;
    w.tm = timer_new();
    w.lane = timer_lane_new(w.tm);
    if (timer_start(w.tm, &err) != 0) {
        return 1;
    }
    w.p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    w.q = queue_new(64 * queue_entry_cost(w.p), false, &w.withdrawn, &rdv_refs);
    pthread_t s;
    pthread_t c[CLIENTS];
    pthread_create(&s, NULL, sender, &w);
    for (int i = 0; i < CLIENTS; i++) {
        pthread_create(&c[i], NULL, client, &w);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(c[i], NULL);
    }
    atomic_store(&w.stop, true);
    queue_kick(w.q);
    pthread_join(s, NULL);
    struct queue_stats st;
    queue_stats(w.q, &st);
    uint64_t left = st.writes;
    uint64_t out = atomic_load(&w.delivered) + atomic_load(&w.withdrawn) + atomic_load(&w.dropped);
    CHECK_EQ_I64(out + left, atomic_load(&w.pushed));
    CHECK_EQ_I64(atomic_load(&w.ok) + atomic_load(&w.failed), (uint64_t)CLIENTS * WRITES);
    CHECK(atomic_load(&w.ok) <= atomic_load(&w.delivered));
    CHECK(atomic_load(&w.withdrawn) > 0); /* the deadlines really raced the sender */
    CHECK(atomic_load(&w.timeouts) > 0);
    CHECK(atomic_load(&w.ok) > 0);
    CHECK_EQ_I64(atomic_load(&w.nothing_kept_delivered), 0);
    CHECK_EQ_I64(atomic_load(&w.double_wake), 0);
    queue_free(w.q);
    timer_stop(w.tm); /* every deadline fired or was disarmed: nothing is left armed */
    timer_free(w.tm);
    CHECK_EQ_I64(atomic_load(&w.p->refs), 1);
    payload_unref(w.p);
    fprintf(stderr,
            "pushed=%llu delivered=%llu withdrawn=%llu dropped=%llu left=%llu ok=%llu "
            "timeouts=%llu\n",
            (unsigned long long)w.pushed, (unsigned long long)w.delivered,
            (unsigned long long)w.withdrawn, (unsigned long long)w.dropped,
            (unsigned long long)left, (unsigned long long)w.ok, (unsigned long long)w.timeouts);
    return CHECK_DONE();
}
