#include "util/timer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/xalloc.h"

/* Locking: t->mu guards the lanes, every armed entry's fields, running and the counters below.
 * Functions run with it released, so they may arm, cancel or take other locks; nobody calls
 * into the timer while holding a lock that a timer function takes (rdv.c and http/conn.c never
 * do). The thread is woken only when an entry becomes due earlier than the time it sleeps until
 * (an entry armed at the tail of a lane never wakes it). */

struct lane {
    struct timer_entry *head; /* guarded by mu: earliest due first */
    struct timer_entry *tail; /* guarded by mu */
    bool flushed;             /* guarded by mu: everything on it is due now */
};

struct timer {
    pthread_mutex_t mu;
    pthread_cond_t cv;                 /* CLOCK_MONOTONIC: the thread's sleep */
    pthread_cond_t done;               /* broadcast when a function returns and someone waits */
    struct lane *lanes;                /* guarded by mu: array replaced by timer_lane_new() */
    unsigned n_lanes;                  /* guarded by mu */
    int64_t sleep_until;               /* guarded by mu: INT64_MAX = no deadline */
    const struct timer_entry *running; /* guarded by mu: whose function runs now */
    unsigned waiters;                  /* guarded by mu: timer_cancel_sync() calls waiting */
    bool stop;                         /* guarded by mu */
    pthread_t thread;                  /* main thread only */
    bool started;                      /* main thread only */
};

struct timer *
timer_new(void)
{
    struct timer *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    clock_cond_init(&t->cv);
    pthread_cond_init(&t->done, NULL);
    t->sleep_until = INT64_MAX;
    return t;
}

unsigned
timer_lane_new(struct timer *t)
{
    /* The array is replaced under the lock (entries name their lane by index, so they do not
     * move); the allocation and the free happen outside it. */
    for (;;) {
        pthread_mutex_lock(&t->mu);
        unsigned n = t->n_lanes;
        pthread_mutex_unlock(&t->mu);
        struct lane *grown = xcalloc(n + 1, sizeof(*grown));
        pthread_mutex_lock(&t->mu);
        if (t->n_lanes != n) {
            pthread_mutex_unlock(&t->mu); /* another lane came meanwhile: size again */
            free(grown);
            continue;
        }
        struct lane *old = t->lanes;
        if (n > 0) {
            memcpy(grown, old, n * sizeof(*grown));
        }
        t->lanes = grown;
        t->n_lanes = n + 1;
        pthread_mutex_unlock(&t->mu);
        free(old);
        return n;
    }
}

/* Caller holds t->mu. */
static void
lane_unlink(struct lane *l, struct timer_entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        l->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        l->tail = e->prev;
    }
    e->prev = NULL;
    e->next = NULL;
    e->armed = false;
}

/* Caller holds t->mu: inserts e after the last entry due no later than it. */
static void
lane_insert(struct lane *l, struct timer_entry *e)
{
    struct timer_entry *after = l->tail;
    while (after != NULL && after->due_ms > e->due_ms) {
        after = after->prev;
    }
    e->prev = after;
    e->next = after != NULL ? after->next : l->head;
    if (e->next != NULL) {
        e->next->prev = e;
    } else {
        l->tail = e;
    }
    if (after != NULL) {
        after->next = e;
    } else {
        l->head = e;
    }
    e->armed = true;
}

void
timer_arm(struct timer *t, unsigned lane, struct timer_entry *e, int64_t due_ms, timer_fn fn)
{
    pthread_mutex_lock(&t->mu);
    struct lane *l = &t->lanes[lane];
    e->due_ms = due_ms;
    e->lane = lane;
    e->fn = fn;
    lane_insert(l, e);
    bool wake = l->head == e && (l->flushed || due_ms < t->sleep_until);
    pthread_mutex_unlock(&t->mu);
    if (wake) {
        pthread_cond_signal(&t->cv); /* after unlocking: the thread needs the lock at once */
    }
}

bool
timer_cancel(struct timer *t, struct timer_entry *e)
{
    pthread_mutex_lock(&t->mu);
    bool was = e->armed;
    if (was) {
        lane_unlink(&t->lanes[e->lane], e);
    }
    pthread_mutex_unlock(&t->mu);
    return was;
}

void
timer_cancel_sync(struct timer *t, struct timer_entry *e)
{
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (e->armed) {
            lane_unlink(&t->lanes[e->lane], e);
        }
        if (t->running != e) {
            break;
        }
        t->waiters++;
        pthread_cond_wait(&t->done, &t->mu);
        t->waiters--;
    }
    pthread_mutex_unlock(&t->mu);
}

void
timer_flush_lane(struct timer *t, unsigned lane)
{
    pthread_mutex_lock(&t->mu);
    t->lanes[lane].flushed = true;
    pthread_mutex_unlock(&t->mu);
    pthread_cond_signal(&t->cv);
}

/* Caller holds t->mu: the entry due first over every lane (a flushed lane's head is due now),
 * or NULL when nothing is armed. */
static struct timer_entry *
timer_first(struct timer *t, int64_t *due)
{
    struct timer_entry *best = NULL;
    *due = INT64_MAX;
    for (unsigned i = 0; i < t->n_lanes; i++) {
        struct timer_entry *e = t->lanes[i].head;
        int64_t d = t->lanes[i].flushed ? INT64_MIN : e != NULL ? e->due_ms : INT64_MAX;
        if (e != NULL && d <= *due) {
            best = e;
            *due = d;
        }
    }
    return best;
}

/* Caller holds t->mu: sleeps until due (INT64_MAX: until woken). */
static void
timer_sleep(struct timer *t, int64_t due)
{
    t->sleep_until = due;
    if (due == INT64_MAX) {
        pthread_cond_wait(&t->cv, &t->mu);
    } else {
        struct timespec ts;
        clock_mono_to_ts(&ts, due);
        (void)pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    }
    t->sleep_until = INT64_MAX;
}

static void *
timer_main(void *arg)
{
    struct timer *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        int64_t due = 0;
        struct timer_entry *e = timer_first(t, &due);
        if (e == NULL || due > clock_mono_ms()) {
            timer_sleep(t, due);
            continue;
        }
        timer_fn fn = e->fn;
        lane_unlink(&t->lanes[e->lane], e);
        t->running = e;
        pthread_mutex_unlock(&t->mu);
        fn(e); /* may free e: it is not touched afterwards */
        pthread_mutex_lock(&t->mu);
        t->running = NULL;
        if (t->waiters > 0) {
            pthread_cond_broadcast(&t->done);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int
timer_start(struct timer *t, struct ir_err *err)
{
    int rc = pthread_create(&t->thread, NULL, timer_main, t);
    if (rc != 0) {
        char buf[128];
        ir_err_set(err, 0, "cannot start the timer thread: %s", ir_strerror(rc, buf, sizeof(buf)));
        return -1;
    }
    t->started = true;
    return 0;
}

void
timer_stop(struct timer *t)
{
    if (!t->started) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_mutex_unlock(&t->mu);
    pthread_cond_signal(&t->cv);
    pthread_join(t->thread, NULL);
    t->started = false;
}

void
timer_free(struct timer *t)
{
    if (t == NULL) {
        return;
    }
    timer_stop(t);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->done);
    free(t->lanes);
    free(t);
}
