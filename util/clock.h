/* Time sources, injectable for tests. Module code never calls clock_gettime() directly.
 * clock_mono_ms(): CLOCK_MONOTONIC milliseconds, for deadlines. clock_real_ns(): wall clock ns
 * since the epoch, for point timestamps. Any thread; clock_set_fake() is for tests only. */
#ifndef IR_UTIL_CLOCK_H
#define IR_UTIL_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t clock_mono_ms(void);
int64_t clock_real_ns(void);

/* Tests: fix both clocks (mono_ms, real_ns); a negative mono_ms restores the real clocks. */
void clock_set_fake(int64_t mono_ms, int64_t real_ns);

/* Fills ts with CLOCK_MONOTONIC now + ms, for pthread_cond_timedwait on a condvar created with
 * clock_cond_init(). Any thread. */
void clock_deadline(struct timespec *ts, int64_t ms_from_now);
/* Absolute monotonic ms -> timespec. */
void clock_mono_to_ts(struct timespec *ts, int64_t mono_ms);

/* Initialises a condvar that waits on CLOCK_MONOTONIC (for clock_deadline()). */
void clock_cond_init(pthread_cond_t *c);

#endif
