#include "util/clock.h"

#include <stdatomic.h>

/* Fake clock for unit tests; -1 = use the real clocks. */
static _Atomic int64_t fake_mono_ms = -1;
static _Atomic int64_t fake_real_ns = 0;

int64_t
clock_mono_ms(void)
{
    int64_t f = atomic_load_explicit(&fake_mono_ms, memory_order_relaxed);
    if (f >= 0) {
        return f;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_real_ns(void)
{
    if (atomic_load_explicit(&fake_mono_ms, memory_order_relaxed) >= 0) {
        return atomic_load_explicit(&fake_real_ns, memory_order_relaxed);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
clock_set_fake(int64_t mono_ms, int64_t real_ns)
{
    atomic_store(&fake_real_ns, real_ns);
    atomic_store(&fake_mono_ms, mono_ms);
}

void
clock_mono_to_ts(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000;
}

void
clock_deadline(struct timespec *ts, int64_t ms_from_now)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = now.tv_nsec + (ms_from_now % 1000) * 1000000;
    ts->tv_sec = now.tv_sec + (time_t)(ms_from_now / 1000) + (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

void
clock_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}
