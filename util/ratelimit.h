/* Rate limiting for repeated log events (invalid UDP lines, send errors, rejected writes): at
 * most one line per period, and that line carries the count of the events suppressed since the
 * previous one, so nothing goes uncounted. The caller logs when ratelimit_hit() says so.
 * Plain data owned by one thread (the one that logs the event); no locking, no clock of its own. */
#ifndef IR_UTIL_RATELIMIT_H
#define IR_UTIL_RATELIMIT_H

#include <stdint.h>

/* Zero-initialise: the first event then logs at once. */
struct ratelimit {
    int64_t next_ms;  /* monotonic ms before which events are only counted */
    uint64_t pending; /* events counted since the last reported one */
};

/* Records n events at now_ms. Returns the number to report now (these n plus every event
 * suppressed since the last report; so the suppressed count alone is the result minus n) and
 * starts a new period of period_ms; 0 while the period runs (the events are counted). */
uint64_t ratelimit_hit(struct ratelimit *r, uint64_t n, int64_t now_ms, int64_t period_ms);

/* The events counted but not yet reported, and resets the count (for a summary at stop). */
uint64_t ratelimit_flush(struct ratelimit *r);

#endif
