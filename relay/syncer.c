#include "relay/syncer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/clock.h"
#include "util/xalloc.h"

/* Locking: mu guards stop; the thread waits on cv (CLOCK_MONOTONIC) until the next sync is due
 * or stop is set. Syncing happens without the lock. */
struct syncer {
    struct backend **bs; /* immutable after new (borrowed backends) */
    int64_t *due_ms;     /* syncer thread only (main thread before start) */
    size_t n;            /* immutable after new */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;        /* guarded by mu */
    pthread_t thread; /* main thread only */
    bool started;     /* main thread only */
};

struct syncer *
syncer_new(struct backend *const *bs, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        m += backend_spool_period_ms(bs[i]) > 0;
    }
    if (m == 0) {
        return NULL;
    }
    struct syncer *sy = xcalloc(1, sizeof(*sy));
    sy->bs = xcalloc(m, sizeof(*sy->bs));
    sy->due_ms = xcalloc(m, sizeof(*sy->due_ms));
    for (size_t i = 0; i < n; i++) {
        if (backend_spool_period_ms(bs[i]) > 0) {
            sy->bs[sy->n++] = bs[i];
        }
    }
    pthread_mutex_init(&sy->mu, NULL);
    clock_cond_init(&sy->cv);
    return sy;
}

/* Syncs every spool that is due and schedules its next sync; returns the earliest due time. */
static int64_t
sync_due(struct syncer *sy)
{
    int64_t next = -1;
    for (size_t i = 0; i < sy->n; i++) {
        int64_t now = clock_mono_ms();
        int64_t period = backend_spool_period_ms(sy->bs[i]);
        if (now >= sy->due_ms[i]) {
            backend_spool_sync(sy->bs[i]);
            /* Late (a slow fdatasync): the next one is a period from now, not a burst. */
            int64_t after = sy->due_ms[i] + period;
            sy->due_ms[i] = after > clock_mono_ms() ? after : clock_mono_ms() + period;
        }
        if (next < 0 || sy->due_ms[i] < next) {
            next = sy->due_ms[i];
        }
    }
    return next;
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

int
syncer_start(struct syncer *sy, struct ir_err *err)
{
    if (sy == NULL) {
        return 0;
    }
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < sy->n; i++) {
        sy->due_ms[i] = now + backend_spool_period_ms(sy->bs[i]);
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
    pthread_mutex_destroy(&sy->mu);
    pthread_cond_destroy(&sy->cv);
    free(sy->bs);
    free(sy->due_ms);
    free(sy);
}
