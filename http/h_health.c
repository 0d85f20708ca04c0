/* GET /health. The verdict only looks at backend states; the queue figures are there for a
 * human (or a smarter check) to see how far behind a backend is. */
#include "http/h_health.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "util/dbuf.h"
#include "util/json.h"

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
json_key(struct dbuf *b, const char *key)
{
    dbuf_str(b, ",\"");
    dbuf_str(b, key);
    dbuf_str(b, "\":");
}

static void
json_u64(struct dbuf *b, const char *key, uint64_t v)
{
    json_key(b, key);
    dbuf_u64(b, v);
}

static void
render_backend(struct dbuf *b, const struct backend_snapshot *s)
{
    const struct backend_stats *st = s->stats != NULL ? s->stats : &zero_backend_stats;
    unsigned state = (unsigned)s->state <= BACKEND_DRAINING ? (unsigned)s->state : BACKEND_DOWN;
    dbuf_str(b, "{\"name\":");
    json_str(b, s->name != NULL ? s->name : "", JSON_ESC_MINIMAL);
    json_key(b, "state");
    json_str(b, state_names[state], JSON_ESC_MINIMAL);
    json_u64(b, "queue_bytes", s->queue_bytes);
    json_u64(b, "queue_writes", s->queue_writes);
    json_u64(b, "queue_capacity_bytes", s->capacity_bytes);
    json_key(b, "oldest_queued_age_seconds");
    dbuf_fixed(b, s->oldest_age_s, 3);
    json_key(b, "last_success_timestamp_seconds");
    dbuf_fixed(b, (double)atomic_load_explicit(&st->last_success_ns, memory_order_relaxed) / 1e9,
               3);
#define HEALTH_COUNTER(f, m, h) json_u64(b, #f, atomic_load_explicit(&st->f, memory_order_relaxed));
    BACKEND_COUNTERS(HEALTH_COUNTER)
#undef HEALTH_COUNTER
    if (s->spooled) {
        json_key(b, "spool");
        dbuf_str(b, "{\"bytes\":");
        dbuf_u64(b, s->spool_bytes);
        json_u64(b, "writes", s->spool_writes);
        json_u64(b, "capacity_bytes", s->spool_capacity_bytes);
        dbuf_char(b, '}');
    }
    dbuf_char(b, '}');
}

static void
render_udp(struct dbuf *b, const struct h_health_udp *udp, size_t n_udp)
{
    json_key(b, "udp");
    dbuf_char(b, '[');
    for (size_t i = 0; i < n_udp; i++) {
        dbuf_str(b, i > 0 ? ",{\"relay\":" : "{\"relay\":");
        json_str(b, udp[i].name, JSON_ESC_MINIMAL);
        json_key(b, "receiver");
        json_str(b, udp[i].receiving ? "up" : "down", JSON_ESC_MINIMAL);
        dbuf_char(b, '}');
    }
    dbuf_char(b, ']');
}

char *
h_health_render_snapshots(const struct conf_http *c, const struct backend_snapshot *s, size_t n,
                          const struct h_health_udp *udp, size_t n_udp, int *status, size_t *len)
{
    enum h_health_status verdict = h_health_status_of(c, s, n);
    for (size_t i = 0; i < n_udp; i++) {
        if (!udp[i].receiving && verdict == H_HEALTH_OK) {
            verdict = H_HEALTH_DEGRADED;
        }
    }
    struct dbuf b;
    dbuf_init(&b, DBUF_NO_BOUND);
    dbuf_reserve(&b, 0, 256 + n * 512 + n_udp * 64);
    dbuf_str(&b, "{\"status\":");
    json_str(&b, status_names[verdict], JSON_ESC_MINIMAL);
    json_key(&b, "relay");
    json_str(&b, c->name, JSON_ESC_MINIMAL);
    json_key(&b, "backends");
    dbuf_char(&b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            dbuf_char(&b, ',');
        }
        render_backend(&b, &s[i]);
    }
    dbuf_char(&b, ']');
    if (n_udp > 0) {
        render_udp(&b, udp, n_udp);
    }
    dbuf_str(&b, "}\n");
    *status = verdict == H_HEALTH_DOWN ? 503 : 200;
    return dbuf_finish(&b, len);
}
