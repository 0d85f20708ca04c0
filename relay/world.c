#include "relay/world.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "http/h_metrics.h"

/* The memory of one snapshot: every array the view points into. */
struct snapshot {
    struct h_metrics_relay *relays;
    struct backend_snapshot *backends;
    struct h_metrics_udp *udp;
    struct h_metrics_udp_output *outputs;
};

static size_t
udp_outputs(const struct udp_listener *l)
{
    size_t n = 0;
    const char *name = NULL;
    while (udp_listener_output(l, n, &name) != NULL) {
        n++;
    }
    return n;
}

/* Allocates the arrays of a snapshot of w; 0, or -1 when out of memory (nothing kept). */
static int
snapshot_alloc(const struct world *w, struct snapshot *s)
{
    size_t n_backends = 0;
    size_t n_outputs = 0;
    for (size_t r = 0; r < w->n_http; r++) {
        struct backend *const *bs = NULL;
        n_backends += httpd_backends(w->http[r], &bs);
    }
    for (size_t u = 0; u < w->n_udp; u++) {
        n_outputs += udp_outputs(w->udp[u]);
    }
    s->relays = calloc(w->n_http + 1, sizeof(*s->relays));
    s->backends = calloc(n_backends + 1, sizeof(*s->backends));
    s->udp = calloc(w->n_udp + 1, sizeof(*s->udp));
    s->outputs = calloc(n_outputs + 1, sizeof(*s->outputs));
    if (s->relays == NULL || s->backends == NULL || s->udp == NULL || s->outputs == NULL) {
        return -1;
    }
    return 0;
}

static void
snapshot_http(const struct world *w, struct snapshot *s)
{
    struct backend_snapshot *next = s->backends;
    for (size_t r = 0; r < w->n_http; r++) {
        struct backend *const *bs = NULL;
        size_t n = httpd_backends(w->http[r], &bs);
        s->relays[r] =
                (struct h_metrics_relay){httpd_name(w->http[r]), httpd_stats(w->http[r]), next, n};
        for (size_t i = 0; i < n; i++) {
            backend_snapshot(bs[i], next++);
        }
    }
}

static void
snapshot_udp(const struct world *w, struct snapshot *s)
{
    struct h_metrics_udp_output *next = s->outputs;
    for (size_t u = 0; u < w->n_udp; u++) {
        const struct udp_stats *st = udp_listener_stats(w->udp[u]);
        struct h_metrics_udp *m = &s->udp[u];
        m->name = udp_listener_name(w->udp[u]);
        m->datagrams_received = atomic_load_explicit(&st->datagrams_received, memory_order_relaxed);
        m->points_received = atomic_load_explicit(&st->points_received, memory_order_relaxed);
        m->lines_dropped_invalid =
                atomic_load_explicit(&st->lines_dropped_invalid, memory_order_relaxed);
        m->lines_dropped_mtu = atomic_load_explicit(&st->lines_dropped_mtu, memory_order_relaxed);
        m->receive_errors = atomic_load_explicit(&st->receive_errors, memory_order_relaxed);
        m->receiver_up = atomic_load_explicit(&st->receiver_up, memory_order_relaxed) != 0;
        m->outputs = next;
        for (size_t i = 0;; i++) {
            const char *name = NULL;
            const struct udp_output_stats *os = udp_listener_output(w->udp[u], i, &name);
            if (os == NULL) {
                break;
            }
            *next++ = (struct h_metrics_udp_output){
                    name, atomic_load_explicit(&os->datagrams_sent, memory_order_relaxed),
                    atomic_load_explicit(&os->points_sent, memory_order_relaxed),
                    atomic_load_explicit(&os->send_errors, memory_order_relaxed)};
            m->n_outputs++;
        }
    }
}

char *
world_render_metrics(void *ctx, size_t *len)
{
    const struct world *w = ctx;
    struct snapshot s = {NULL, NULL, NULL, NULL};
    char *out = NULL;
    *len = 0;
    if (snapshot_alloc(w, &s) == 0) {
        snapshot_http(w, &s);
        snapshot_udp(w, &s);
        struct h_metrics_view v = {
                s.relays,        w->n_http, s.udp, w->n_udp, inflight_bytes(w->inflight),
                w->start_time_ns};
        out = h_metrics_render_view(&v, len);
    }
    free(s.relays);
    free(s.backends);
    free(s.udp);
    free(s.outputs);
    return out;
}

size_t
world_udp_health(void *ctx, struct h_health_udp *out, size_t max)
{
    const struct world *w = ctx;
    for (size_t u = 0; u < w->n_udp && u < max; u++) {
        const struct udp_stats *st = udp_listener_stats(w->udp[u]);
        out[u].name = udp_listener_name(w->udp[u]);
        out[u].receiving = atomic_load_explicit(&st->receiver_up, memory_order_relaxed) != 0;
    }
    return w->n_udp;
}
