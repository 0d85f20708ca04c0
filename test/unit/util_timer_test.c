/* Unit test of util/timer.c: order of firing across lanes, cancel before and while firing,
 * re-arming from a timer function, flushing a lane, and a concurrency run (arm/cancel from
 * several threads while entries fire) meant for TSan. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "util/clock.h"
#include "util/timer.h"

struct probe {
    struct timer_entry e; /* first: the timer hands back &e */
    _Atomic int fired;
    _Atomic int64_t at_ms;
    int order; /* fire order, 1-based */
    int rearm; /* times left to arm itself again */
    struct timer *t;
    unsigned lane;
};

static _Atomic int fire_seq;

static void
probe_fire(struct timer_entry *e)
{
    struct probe *p = (struct probe *)e;
    p->order = atomic_fetch_add(&fire_seq, 1) + 1;
    atomic_store(&p->at_ms, clock_mono_ms());
    if (p->rearm > 0) {
        p->rearm--;
        timer_arm(p->t, p->lane, &p->e, clock_mono_ms() + 5, probe_fire);
    }
    atomic_fetch_add(&p->fired, 1);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (bounded) until p fired n times. */
static bool
wait_fired(struct probe *p, int n)
{
    for (int i = 0; i < 2000 && atomic_load(&p->fired) < n; i++) {
        sleep_ms(2);
    }
    return atomic_load(&p->fired) >= n;
}

static void
test_order_and_cancel(struct timer *t, unsigned l0, unsigned l1)
{
    struct probe a = {0}, b = {0}, c = {0}, d = {0};
    atomic_store(&fire_seq, 0);
    int64_t now = clock_mono_ms();
    timer_arm(t, l0, &a.e, now + 60, probe_fire);
    timer_arm(t, l1, &b.e, now + 20, probe_fire); /* earlier, other lane: wakes the thread */
    timer_arm(t, l0, &c.e, now + 40, probe_fire); /* out of order on l0: sorted in */
    timer_arm(t, l0, &d.e, now + 30, probe_fire);
    CHECK(timer_cancel(t, &d.e));
    CHECK(!timer_cancel(t, &d.e));
    CHECK(wait_fired(&a, 1));
    CHECK_EQ_I64(b.order, 1);
    CHECK_EQ_I64(c.order, 2);
    CHECK_EQ_I64(a.order, 3);
    CHECK_EQ_I64(atomic_load(&d.fired), 0);
    CHECK(atomic_load(&b.at_ms) >= now + 20);
    CHECK(atomic_load(&a.at_ms) >= now + 60);
    CHECK(!timer_cancel(t, &a.e)); /* fired: nothing to cancel */
}

static void
test_rearm_and_sync_cancel(struct timer *t, unsigned l0)
{
    struct probe p = {0};
    p.t = t;
    p.lane = l0;
    p.rearm = 3;
    timer_arm(t, l0, &p.e, clock_mono_ms() + 1, probe_fire);
    CHECK(wait_fired(&p, 4));
    sleep_ms(20);
    CHECK_EQ_I64(atomic_load(&p.fired), 4);
    /* A self re-arming entry cancelled synchronously never fires again. */
    struct probe q = {0};
    q.t = t;
    q.lane = l0;
    q.rearm = 1000000;
    timer_arm(t, l0, &q.e, clock_mono_ms(), probe_fire);
    CHECK(wait_fired(&q, 3));
    timer_cancel_sync(t, &q.e);
    int n = atomic_load(&q.fired);
    sleep_ms(30);
    CHECK_EQ_I64(atomic_load(&q.fired), n);
}

static void
test_flush(struct timer *t, unsigned l1)
{
    struct probe a = {0}, b = {0};
    int64_t t0 = clock_mono_ms();
    timer_arm(t, l1, &a.e, t0 + 60000, probe_fire);
    timer_flush_lane(t, l1);
    CHECK(wait_fired(&a, 1));
    timer_arm(t, l1, &b.e, clock_mono_ms() + 60000, probe_fire); /* flushed: due at once */
    CHECK(wait_fired(&b, 1));
    CHECK(clock_mono_ms() - t0 < 5000);
}

/* Racing arm/cancel against firing: every arming ends exactly once, fired or cancelled. */
#define RACERS 4
#define ROUNDS 3000

struct racer {
    struct timer *t;
    unsigned lane;
    struct probe p[8];
    int cancelled;
};

static void *
racer_main(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct probe *p = &r->p[i % 8];
        if (timer_cancel(r->t, &p->e)) {
            r->cancelled++;
        }
        timer_cancel_sync(r->t, &p->e); /* from now on the timer leaves p alone */
        timer_arm(r->t, r->lane, &p->e, clock_mono_ms() + (i % 3), probe_fire);
        if (i % 2 == 0 && timer_cancel(r->t, &p->e)) {
            r->cancelled++;
        }
    }
    for (int i = 0; i < 8; i++) {
        if (timer_cancel(r->t, &r->p[i].e)) {
            r->cancelled++;
        }
    }
    return NULL;
}

static void
test_race(struct timer *t, unsigned l0, unsigned l1)
{
    static struct racer rs[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        rs[i].t = t;
        rs[i].lane = i % 2 ? l1 : l0;
        pthread_create(&th[i], NULL, racer_main, &rs[i]);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < RACERS; i++) {
        int fired = 0;
        for (int j = 0; j < 8; j++) {
            timer_cancel_sync(t, &rs[i].p[j].e);
            fired += atomic_load(&rs[i].p[j].fired);
        }
        CHECK_EQ_I64(fired + rs[i].cancelled, ROUNDS);
    }
}

int
main(void)
{
    struct timer *t = timer_new();
    unsigned l0 = timer_lane_new(t);
    unsigned l1 = timer_lane_new(t);
    unsigned l2 = timer_lane_new(t);
    CHECK_EQ_I64(l0, 0);
    CHECK_EQ_I64(l2, 2);
    struct ir_err err;
    CHECK_EQ_I64(timer_start(t, &err), 0);
    test_order_and_cancel(t, l0, l1);
    test_rearm_and_sync_cancel(t, l0);
    test_race(t, l0, l1);
    test_flush(t, l2);
    timer_stop(t);
    timer_free(t);
    return CHECK_DONE();
}
