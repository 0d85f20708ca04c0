/* max-inflight-mb: the process-wide bound on the bytes of request bodies held by HTTP
 * connections that are still being read or waiting for their answer. Owned by relay/service.c,
 * shared by every HTTP relay; lock-free, any thread. */
#ifndef IR_HTTP_INFLIGHT_H
#define IR_HTTP_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

struct inflight;

/* Main thread: a budget of cap_bytes. Returns owned (free with inflight_free()). Never NULL. */
struct inflight *inflight_new(uint64_t cap_bytes);
/* NULL is a no-op. */
void inflight_free(struct inflight *f);

/* Any thread: takes n bytes; false (nothing taken) when that would pass the bound. */
bool inflight_take(struct inflight *f, uint64_t n) IR_WARN_UNUSED;
/* Any thread (a reload): the new bound; bytes already taken stay taken. */
void inflight_set_cap(struct inflight *f, uint64_t cap_bytes);
/* Any thread: gives back n bytes taken before. */
void inflight_give(struct inflight *f, uint64_t n);
/* Any thread: the bytes taken now (the gauge). */
uint64_t inflight_bytes(const struct inflight *f);

#endif
