#include "util/ratelimit.h"

uint64_t
ratelimit_hit(struct ratelimit *r, uint64_t n, int64_t now_ms, int64_t period_ms)
{
    r->pending += n;
    if (now_ms < r->next_ms) {
        return 0;
    }
    uint64_t out = r->pending;
    r->pending = 0;
    r->next_ms = now_ms + period_ms;
    return out;
}

uint64_t
ratelimit_flush(struct ratelimit *r)
{
    uint64_t out = r->pending;
    r->pending = 0;
    return out;
}
