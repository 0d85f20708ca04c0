#include "relay/syncer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/clock.h"
#include "util/xalloc.h"

/* Locking: mu guards the list, its generation and stop; the thread copies the list (taking a
 * reference on each backend) under mu, syncs without it, and writes the due times back only when
 * no syncer_set() replaced the list meanwhile. It waits on cv (CLOCK_MONOTONIC) until the next
 * sync is due, a stop or a new list. */

/* One spooled backend and when its next sync is due. */
struct sync_item {
    struct backend *b; /* a reference (backend_ref()) */
    int64_t due_ms;    /* syncer thread only once listed */
};

struct syncer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sync_item *items; /* guarded by mu: owned array */
    size_t n;                /* guarded by mu */
    uint64_t gen;            /* guarded by mu: bumped by every syncer_set() */
    bool stop;               /* guarded by mu */
    bool may_run;            /* main thread only: syncer_start() was called */
    pthread_t thread;        /* main thread only */
    bool started;            /* main thread only */
};

struct syncer *
syncer_new(void)
{
    struct syncer *sy = xcalloc(1, sizeof(*sy));
    pthread_mutex_init(&sy->mu, NULL);
    clock_cond_init(&sy->cv);
    return sy;
}

/* Syncer thread: syncs what is due (without the lock: an fdatasync may take seconds, and a
 * reload must not wait for it) and returns when the next sync is due. */
static int64_t
sync_due(struct syncer *sy)
{
    pthread_mutex_lock(&sy->mu);
    size_t n = sy->n;
    uint64_t gen = sy->gen;
    struct sync_item *work = xcalloc(n ? n : 1, sizeof(*work));
    for (size_t i = 0; i < n; i++) {
        work[i] = (struct sync_item){backend_ref(sy->items[i].b), sy->items[i].due_ms};
    }
    pthread_mutex_unlock(&sy->mu);
    int64_t next = clock_mono_ms() + 1000;
    for (size_t i = 0; i < n; i++) {
        int64_t now = clock_mono_ms();
        int64_t period = backend_spool_period_ms(work[i].b);
        if (now >= work[i].due_ms) {
            backend_spool_sync(work[i].b);
            /* Late (a slow fdatasync): the next one is a period from now, not a burst. */
            int64_t after = work[i].due_ms + period;
            work[i].due_ms = after > clock_mono_ms() ? after : clock_mono_ms() + period;
        }
        if (work[i].due_ms < next) {
            next = work[i].due_ms;
        }
    }
    pthread_mutex_lock(&sy->mu);
    for (size_t i = 0; i < n && sy->gen == gen; i++) {
        sy->items[i].due_ms = work[i].due_ms;
    }
    bool moved = sy->gen != gen;
    pthread_mutex_unlock(&sy->mu);
    for (size_t i = 0; i < n; i++) {
        backend_unref(work[i].b);
    }
    free(work);
    return moved ? clock_mono_ms() : next;
}

static void *
syncer_main(void *arg)
{
    struct syncer *sy = arg;
    for (;;) {
        int64_t next = sync_due(sy);
        struct timespec ts;
        clock_mono_to_ts(&ts, next);
        pthread_mutex_lock(&sy->mu);
        while (!sy->stop && clock_mono_ms() < next) {
            if (pthread_cond_timedwait(&sy->cv, &sy->mu, &ts) != 0) {
                break; /* ETIMEDOUT */
            }
        }
        bool stop = sy->stop;
        pthread_mutex_unlock(&sy->mu);
        if (stop) {
            return NULL;
        }
    }
}

static int
launch(struct syncer *sy, struct ir_err *err)
{
    pthread_mutex_lock(&sy->mu);
    bool none = sy->n == 0;
    pthread_mutex_unlock(&sy->mu);
    if (!sy->may_run || sy->started || none) {
        return 0;
    }
    int rc = pthread_create(&sy->thread, NULL, syncer_main, sy);
    if (rc != 0) {
        char buf[128];
        ir_err_set(err, 0, "cannot start the spool sync thread: %s",
                   ir_strerror(rc, buf, sizeof(buf)));
        return -1;
    }
    sy->started = true;
    return 0;
}

int
syncer_set(struct syncer *sy, struct backend *const *bs, size_t n, struct ir_err *err)
{
    struct sync_item *items = xcalloc(n ? n : 1, sizeof(*items));
    size_t m = 0;
    int64_t now = clock_mono_ms();
    pthread_mutex_lock(&sy->mu);
    for (size_t i = 0; i < n; i++) {
        if (backend_spool_period_ms(bs[i]) <= 0) {
            continue;
        }
        int64_t due = now + backend_spool_period_ms(bs[i]);
        for (size_t j = 0; j < sy->n; j++) {
            if (sy->items[j].b == bs[i]) {
                due = sy->items[j].due_ms; /* kept: its cadence goes on */
            }
        }
        items[m++] = (struct sync_item){backend_ref(bs[i]), due};
    }
    struct sync_item *old = sy->items;
    size_t old_n = sy->n;
    sy->items = items;
    sy->n = m;
    sy->gen++;
    pthread_mutex_unlock(&sy->mu);
    pthread_cond_broadcast(&sy->cv);
    for (size_t j = 0; j < old_n; j++) {
        backend_unref(old[j].b);
    }
    free(old);
    return launch(sy, err);
}

int
syncer_start(struct syncer *sy, struct ir_err *err)
{
    sy->may_run = true;
    return launch(sy, err);
}

void
syncer_stop(struct syncer *sy)
{
    if (sy == NULL || !sy->started) {
        return;
    }
    pthread_mutex_lock(&sy->mu);
    sy->stop = true;
    pthread_mutex_unlock(&sy->mu);
    pthread_cond_broadcast(&sy->cv);
    pthread_join(sy->thread, NULL);
    sy->started = false;
}

void
syncer_free(struct syncer *sy)
{
    if (sy == NULL) {
        return;
    }
    for (size_t j = 0; j < sy->n; j++) {
        backend_unref(sy->items[j].b);
    }
    free(sy->items);
    pthread_mutex_destroy(&sy->mu);
    pthread_cond_destroy(&sy->cv);
    free(sy);
}
