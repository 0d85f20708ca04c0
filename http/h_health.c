/* GET /health. The verdict only looks at backend states; the queue figures are there for a
 * human (or a smarter check) to see how far behind a backend is. */
#include "http/h_health.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "http/textbuf.h"

static const char *const status_names[] = {"ok", "degraded", "down"};
static const char *const state_names[] = {"up", "down", "draining"};

static const struct backend_stats zero_backend_stats;

enum h_health_status
h_health_status_of(const struct conf_http *c, const struct backend_snapshot *s, size_t n)
{
    size_t up = 0;
    size_t taking = 0;
    for (size_t i = 0; i < n; i++) {
        up += s[i].state == BACKEND_UP;
        taking += s[i].state == BACKEND_UP || s[i].state == BACKEND_DRAINING;
    }
    /* "all" needs every backend for a 204; "one" and "any" need one. A down backend never
     * counts, even with buffer room ("any" may still acknowledge writes into it: /health stays
     * conservative there, see docs/operations.md). */
    bool can_write = c->write_consistency == CONF_CONSISTENCY_ALL ? taking == n : taking > 0;
    if (n == 0 || !can_write) {
        return H_HEALTH_DOWN;
    }
    return up == n ? H_HEALTH_OK : H_HEALTH_DEGRADED;
}

static void
json_key(struct textbuf *b, const char *key)
{
    textbuf_str(b, ",\"");
    textbuf_str(b, key);
    textbuf_str(b, "\":");
}

static void
json_u64(struct textbuf *b, const char *key, uint64_t v)
{
    json_key(b, key);
    textbuf_u64(b, v);
}

static void
render_backend(struct textbuf *b, const struct backend_snapshot *s)
{
    const struct backend_stats *st = s->stats != NULL ? s->stats : &zero_backend_stats;
    unsigned state = (unsigned)s->state <= BACKEND_DRAINING ? (unsigned)s->state : BACKEND_DOWN;
    textbuf_str(b, "{\"name\":");
    textbuf_json_str(b, s->name != NULL ? s->name : "");
    json_key(b, "state");
    textbuf_json_str(b, state_names[state]);
    json_u64(b, "queue_bytes", s->queue_bytes);
    json_u64(b, "queue_writes", s->queue_writes);
    json_u64(b, "queue_capacity_bytes", s->capacity_bytes);
    json_key(b, "oldest_queued_age_seconds");
    textbuf_fixed(b, s->oldest_age_s, 3);
    json_key(b, "last_success_timestamp_seconds");
    textbuf_fixed(b, (double)atomic_load_explicit(&st->last_success_ns, memory_order_relaxed) / 1e9,
                  3);
#define HEALTH_COUNTER(f, m, h) json_u64(b, #f, atomic_load_explicit(&st->f, memory_order_relaxed));
    BACKEND_COUNTERS(HEALTH_COUNTER)
#undef HEALTH_COUNTER
    textbuf_char(b, '}');
}

char *
h_health_render_snapshots(const struct conf_http *c, const struct backend_snapshot *s, size_t n,
                          int *status, size_t *len)
{
    enum h_health_status verdict = h_health_status_of(c, s, n);
    struct textbuf b;
    textbuf_init(&b, 256 + n * 512);
    textbuf_str(&b, "{\"status\":");
    textbuf_json_str(&b, status_names[verdict]);
    json_key(&b, "relay");
    textbuf_json_str(&b, c->name);
    json_key(&b, "backends");
    textbuf_char(&b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            textbuf_char(&b, ',');
        }
        render_backend(&b, &s[i]);
    }
    textbuf_str(&b, "]}\n");
    *status = verdict == H_HEALTH_DOWN ? 503 : 200;
    return textbuf_finish(&b, len);
}
