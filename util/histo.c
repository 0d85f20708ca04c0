#include "util/histo.h"

#include <stdatomic.h>

static const uint64_t bounds_us[HISTO_BUCKETS] = {1000,    2500,    5000,    10000,  25000,
                                                  50000,   100000,  250000,  500000, 1000000,
                                                  2500000, 5000000, 10000000};

double
histo_bound(unsigned i)
{
    return (double)bounds_us[i] / 1e6;
}

void
histo_observe(struct histo *h, uint64_t us)
{
    for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
        if (us <= bounds_us[i]) {
            atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
            break;
        }
    }
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}
