/* A Prometheus-style histogram of durations with fixed buckets, updated with relaxed atomics
 * (lock-free, any thread). Buckets (seconds): 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1
 * 2.5 5 10 +Inf. */
#ifndef IR_UTIL_HISTO_H
#define IR_UTIL_HISTO_H

#include <stdint.h>

#define HISTO_BUCKETS 13 /* finite buckets; +Inf is count */

struct histo {
    _Atomic uint64_t bucket[HISTO_BUCKETS]; /* atomic; non-cumulative counts */
    _Atomic uint64_t count;                 /* atomic */
    _Atomic uint64_t sum_us;                /* atomic; sum of observations in microseconds */
};

/* Upper bound of finite bucket i, in seconds. */
double histo_bound(unsigned i);
/* Records one observation of us microseconds. Any thread. */
void histo_observe(struct histo *h, uint64_t us);

#endif
