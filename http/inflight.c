#include "http/inflight.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util/xalloc.h"

struct inflight {
    _Atomic uint64_t bytes; /* atomic */
    _Atomic uint64_t cap;   /* atomic: a reload may change it */
};

struct inflight *
inflight_new(uint64_t cap_bytes)
{
    struct inflight *f = xcalloc(1, sizeof(*f));
    atomic_init(&f->bytes, 0);
    atomic_init(&f->cap, cap_bytes);
    return f;
}

void
inflight_free(struct inflight *f)
{
    free(f);
}

bool
inflight_take(struct inflight *f, uint64_t n)
{
    uint64_t cur = atomic_load_explicit(&f->bytes, memory_order_relaxed);
    uint64_t cap = atomic_load_explicit(&f->cap, memory_order_relaxed);
    do {
        if (n > cap || cur > cap - n) {
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&f->bytes, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void
inflight_set_cap(struct inflight *f, uint64_t cap_bytes)
{
    atomic_store_explicit(&f->cap, cap_bytes, memory_order_relaxed);
}

void
inflight_give(struct inflight *f, uint64_t n)
{
    atomic_fetch_sub_explicit(&f->bytes, n, memory_order_relaxed);
}

uint64_t
inflight_bytes(const struct inflight *f)
{
    return atomic_load_explicit(&f->bytes, memory_order_relaxed);
}
