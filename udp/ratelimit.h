/* Rate limiting for repeated log events of the UDP relay (invalid lines, lines over the MTU,
 * send errors): at most one line per period, carrying the count of events since the last one.
 * Plain data owned by one thread (the relay's receiving thread); no locking. */
#ifndef IR_UDP_RATELIMIT_H
#define IR_UDP_RATELIMIT_H

#include <stdint.h>

/* Zero-initialise (the first event then logs at once). */
struct udp_ratelimit {
    int64_t next_ms;  /* monotonic ms before which events are only counted */
    uint64_t pending; /* events counted since the last reported one */
};

/* Records n events at now_ms. Returns the number to report now (n plus those counted since the
 * last report) and starts a new period of period_ms, or 0 while the period runs. */
uint64_t udp_ratelimit_hit(struct udp_ratelimit *r, uint64_t n, int64_t now_ms, int64_t period_ms);

/* The events counted but not yet reported, and resets the count (for a summary at stop). */
uint64_t udp_ratelimit_flush(struct udp_ratelimit *r);

#endif
