/* The deadline timer: one thread that calls each armed entry's function once its due time
 * (CLOCK_MONOTONIC ms) has passed. Entries live in the caller's storage (no allocation) on
 * lanes: a lane is a list kept sorted by due time, cheap when its entries are armed in nearly
 * ascending order (one fixed delay per lane: insertion walks back from the tail). Lanes are made
 * by the main thread, before or after the thread starts (a reload adds relays); any thread arms
 * and cancels; functions run on the timer thread with no lock held. Owned by relay/service.c. */
#ifndef IR_UTIL_TIMER_H
#define IR_UTIL_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct timer_entry;
/* Runs on the timer thread, no lock held. It may arm e again (or any entry). */
typedef void (*timer_fn)(struct timer_entry *e);

/* Caller storage, zero-initialised before the first timer_arm(). Every field is guarded by the
 * timer's mutex (private to util/timer.c). */
struct timer_entry {
    struct timer_entry *prev;
    struct timer_entry *next;
    int64_t due_ms;
    unsigned lane;
    bool armed;
    timer_fn fn;
};

struct timer;

/* Main thread. Returns owned (free with timer_free()); starts no thread. Never NULL. */
struct timer *timer_new(void);
/* Main thread, before or after timer_start(): a new lane, numbered from 0. */
unsigned timer_lane_new(struct timer *t);
/* Main thread: starts the timer thread. 0 or -1 (err filled). */
int timer_start(struct timer *t, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stops and joins the thread; entries still armed never fire. Idempotent. */
void timer_stop(struct timer *t);
/* Main thread, after timer_stop(). NULL is a no-op. */
void timer_free(struct timer *t);

/* Any thread: arms e (which must not be armed) on lane to run fn at due_ms. */
void timer_arm(struct timer *t, unsigned lane, struct timer_entry *e, int64_t due_ms, timer_fn fn);
/* Any thread: disarms e. Returns true when it was armed (fn will not run for that arming);
 * false when it was not armed, or its function is running or ran. */
bool timer_cancel(struct timer *t, struct timer_entry *e);
/* Any thread but the timer thread: disarms e and, when its function is running, waits until it
 * has returned (disarming it again if it re-armed itself). Afterwards the timer no longer
 * touches e. */
void timer_cancel_sync(struct timer *t, struct timer_entry *e);
/* Any thread: every entry armed on lane, now or later, is due at once (shutdown). */
void timer_flush_lane(struct timer *t, unsigned lane);

#endif
