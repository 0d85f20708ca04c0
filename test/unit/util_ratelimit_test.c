/* util/ratelimit.c: one report per period carrying every event counted since the last one. */
#include <string.h>

#include "check.h"
#include "util/ratelimit.h"

static void
test_ratelimit(void)
{
    struct ratelimit r;
    memset(&r, 0, sizeof(r));
    /* The first event reports at once; the next ones are counted for the period. */
    CHECK_EQ_I64(ratelimit_hit(&r, 2, 1000, 10000), 2);
    CHECK_EQ_I64(ratelimit_hit(&r, 1, 1001, 10000), 0);
    CHECK_EQ_I64(ratelimit_hit(&r, 3, 10999, 10000), 0);
    /* After the period, one report carries everything since the last one. */
    CHECK_EQ_I64(ratelimit_hit(&r, 1, 11000, 10000), 5);
    CHECK_EQ_I64(ratelimit_hit(&r, 4, 11001, 10000), 0);
    CHECK_EQ_I64(ratelimit_flush(&r), 4);
    CHECK_EQ_I64(ratelimit_flush(&r), 0);
    /* After a flush the period still runs: the next event is counted, not reported. */
    CHECK_EQ_I64(ratelimit_hit(&r, 1, 12000, 10000), 0);
    CHECK_EQ_I64(ratelimit_hit(&r, 1, 21000, 10000), 2);
}

/* The single-event use (one log line per event): the suppressed count is the result minus 1. */
static void
test_suppressed(void)
{
    struct ratelimit r = {0, 0};
    uint64_t logged = 0;
    uint64_t suppressed = 0;
    for (int64_t t = 0; t < 3500; t += 10) {
        uint64_t n = ratelimit_hit(&r, 1, 5000 + t, 1000);
        if (n > 0) {
            logged++;
            suppressed += n - 1;
        }
    }
    CHECK_EQ_I64(logged, 4); /* at 0, 1000, 2000, 3000 */
    CHECK_EQ_I64(logged + suppressed + ratelimit_flush(&r), 350);
}

int
main(void)
{
    test_ratelimit();
    test_suppressed();
    return CHECK_DONE();
}
