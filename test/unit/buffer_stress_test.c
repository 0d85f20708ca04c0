/* Concurrency test of buffer/queue.c + buffer/rdv.c under the sender's protocol (run it under
 * TSan and ASan): client threads push writes and wait on their rendezvous with short deadlines
 * (so many time out and withdraw), while one sender thread takes batches, claims, and either
 * delivers them or fails them and puts them back. Every pushed write must leave the queue exactly
 * once (delivered, withdrawn, or left at the end), every 204 must be a delivered write, and every
 * reference must come back. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "buffer/payload.h"
#include "buffer/queue.h"
#include "buffer/rdv.h"
#include "check.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define CLIENTS 6
#define WRITES  3000
#define BATCH   16

struct world {
    struct queue *q;
    _Atomic uint64_t withdrawn; /* counted by queue_withdraw() */
    _Atomic uint64_t delivered;
    _Atomic uint64_t dropped; /* withdrawn writes found by the sender at claim time */
    _Atomic uint64_t pushed;
    _Atomic uint64_t ok;
    _Atomic uint64_t failed;
    _Atomic bool stop;
    struct payload *p;
};

static uint64_t
next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *
client(void *arg)
{
    struct world *w = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;
    for (int i = 0; i < WRITES; i++) {
        struct rdv *r = rdv_new(1, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
        uint64_t seq = 0;
        if (queue_push(w->q, w->p, r, 0, &seq) != 0) {
            rdv_report(r, 0, RDV_FULL, 0, NULL, 0, NULL);
        } else {
            atomic_fetch_add(&w->pushed, 1);
            if (!rdv_attach(r, 0, w->q, seq)) {
                (void)queue_withdraw(w->q, seq);
            }
        }
        struct rdv_answer a;
        rdv_wait(r, clock_mono_ms() + (int64_t)(next_rand(&rng) % 3), &a);
        atomic_fetch_add(a.status == 204 ? &w->ok : &w->failed, 1);
        rdv_answer_cleanup(&a);
        rdv_unref(r);
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
         * immediate retry can deliver it behind its client's 503. (Only this thread CHECKs.) */
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
    w.p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    w.q = queue_new(64 * queue_entry_cost(w.p), false, &w.withdrawn);
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
    CHECK(atomic_load(&w.ok) > 0);
    queue_free(w.q);
    CHECK_EQ_I64(atomic_load(&w.p->refs), 1);
    payload_unref(w.p);
    fprintf(stderr, "pushed=%llu delivered=%llu withdrawn=%llu dropped=%llu left=%llu ok=%llu\n",
            (unsigned long long)w.pushed, (unsigned long long)w.delivered,
            (unsigned long long)w.withdrawn, (unsigned long long)w.dropped,
            (unsigned long long)left, (unsigned long long)w.ok);
    return CHECK_DONE();
}
