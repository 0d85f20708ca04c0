/* The process-wide world: every HTTP relay (with its backends) and UDP relay of the process, as
 * /metrics and /health show them, plus the outputs and relays a reload removed while they finish
 * (they stay listed until a scrape of /metrics has shown their final counters once).
 * Owned by relay/service.c. The service publishes a view (an immutable list of items) at start
 * and at each reload; a scrape takes a reference on the current view, so what it reads stays
 * alive however the configuration changes meanwhile. Renders /metrics from a snapshot taken per
 * scrape, handed to http/h_metrics.c as plain data, and reads the UDP receivers for /health the
 * same way.
 *
 * Locking: world.mu guards the view pointer only (a reference taken or a pointer swapped). */
#ifndef IR_RELAY_WORLD_H
#define IR_RELAY_WORLD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer/backend.h"
#include "http/h_health.h"
#include "http/inflight.h"
#include "http/server.h"
#include "udp/listener.h"

/* One relay or backend of the world, shared by the views listing it. */
struct world_item;
struct world_view;

struct world {
    pthread_mutex_t mu;
    struct world_view *view;         /* guarded by mu: the current view (a reference) */
    const struct inflight *inflight; /* immutable after init (borrowed) */
    int64_t start_time_ns;           /* immutable after init */
    _Atomic bool reload_ok;          /* atomic: the last reload applied (true at start) */
    _Atomic int64_t reload_ok_ns;    /* atomic: wall clock of the last successful load */
};

/* Main thread: an empty world (no view yet). */
void world_init(struct world *w, const struct inflight *inflight, int64_t start_time_ns);
/* Main thread, once nothing renders any more: drops the view. */
void world_cleanup(struct world *w);

/* Main thread: an item holding a reference on h (an HTTP relay), l (a UDP relay) or b (a
 * backend of relay `relay`, copied). Returns owned (world_item_unref()). */
struct world_item *world_item_http(struct httpd *h);
struct world_item *world_item_udp(struct udp_listener *l);
struct world_item *world_item_backend(const char *relay, struct backend *b);
/* Any thread. NULL is a no-op for unref. */
struct world_item *world_item_ref(struct world_item *it);
void world_item_unref(struct world_item *it);
/* Main thread: the item was removed by a reload; it stays listed while it finishes. */
void world_item_retire(struct world_item *it);
/* Any thread: a retired relay has finished (stopped); a retired backend finishes by itself
 * (backend_is_ended()). From then on its counters are final. */
void world_item_end(struct world_item *it);
/* Any thread: a retired, finished item that a scrape has shown once: a new view may leave it
 * out. */
bool world_item_is_gone(struct world_item *it);

/* Main thread: from now on scrapes see items[0..n) (references taken; the array is borrowed). */
void world_publish(struct world *w, struct world_item *const *items, size_t n);

/* Any thread: records the outcome of a configuration reload (the metrics' reload gauges). */
void world_note_reload(struct world *w, bool ok);

/* An httpd_metrics_fn: ctx is a struct world. Returns the owned text of GET /metrics, or NULL
 * when out of memory. Any thread. */
char *world_render_metrics(void *ctx, size_t *len);
/* An httpd_udp_health_fn: ctx is a struct world. The UDP relays' receivers for GET /health.
 * Any thread. */
size_t world_udp_health(void *ctx, struct h_health_udp *out, size_t max);

#endif
