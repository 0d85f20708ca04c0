#include "relay/world.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h_metrics.h"
#include "util/clock.h"
#include "util/xalloc.h"

enum world_kind { WORLD_HTTP, WORLD_UDP, WORLD_BACKEND };

struct world_item {
    _Atomic unsigned refs;    /* atomic */
    enum world_kind kind;     /* immutable */
    struct httpd *http;       /* immutable: a reference (WORLD_HTTP) */
    struct udp_listener *udp; /* immutable: a reference (WORLD_UDP) */
    struct backend *backend;  /* immutable: a reference (WORLD_BACKEND) */
    char *relay;              /* immutable: owned, the relay's name */
    _Atomic bool retired;     /* atomic: removed by a reload */
    _Atomic bool ended;       /* atomic: retired and finished (backends: backend_is_ended()) */
    _Atomic bool shown;       /* atomic: shown once with its final counters */
};

/* An immutable list of items, reference-counted: a scrape holds one while it renders. */
struct world_view {
    _Atomic unsigned refs;     /* atomic */
    struct world_item **items; /* owned array, a reference on each */
    size_t n;
};

/* ------------------------------------------------------------------ items and views */

static struct world_item *
item_new(enum world_kind kind, const char *relay)
{
    struct world_item *it = xcalloc(1, sizeof(*it));
    atomic_init(&it->refs, 1);
    it->kind = kind;
    it->relay = xstrdup(relay);
    return it;
}

struct world_item *
world_item_http(struct httpd *h)
{
    struct world_item *it = item_new(WORLD_HTTP, httpd_name(h));
    it->http = httpd_ref(h);
    return it;
}

struct world_item *
world_item_udp(struct udp_listener *l)
{
    struct world_item *it = item_new(WORLD_UDP, udp_listener_name(l));
    it->udp = udp_listener_ref(l);
    return it;
}

struct world_item *
world_item_backend(const char *relay, struct backend *b)
{
    struct world_item *it = item_new(WORLD_BACKEND, relay);
    it->backend = backend_ref(b);
    return it;
}

struct world_item *
world_item_ref(struct world_item *it)
{
    atomic_fetch_add_explicit(&it->refs, 1, memory_order_relaxed);
    return it;
}

void
world_item_unref(struct world_item *it)
{
    if (it == NULL || atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    httpd_unref(it->http);
    udp_listener_unref(it->udp);
    backend_unref(it->backend);
    free(it->relay);
    free(it);
}

void
world_item_retire(struct world_item *it)
{
    atomic_store(&it->retired, true);
}

void
world_item_end(struct world_item *it)
{
    atomic_store(&it->ended, true);
}

bool
world_item_is_gone(struct world_item *it)
{
    return atomic_load(&it->shown);
}

static void
view_unref(struct world_view *v)
{
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        world_item_unref(v->items[i]);
    }
    free(v->items);
    free(v);
}

static struct world_view *
view_get(struct world *w)
{
    pthread_mutex_lock(&w->mu);
    struct world_view *v = w->view;
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&w->mu);
    return v;
}

void
world_init(struct world *w, const struct inflight *inflight, int64_t start_time_ns)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    w->inflight = inflight;
    w->start_time_ns = start_time_ns;
    atomic_init(&w->reload_ok, true);
    atomic_init(&w->reload_ok_ns, start_time_ns);
    world_publish(w, NULL, 0);
}

void
world_cleanup(struct world *w)
{
    view_unref(w->view);
    w->view = NULL;
    pthread_mutex_destroy(&w->mu);
}

void
world_publish(struct world *w, struct world_item *const *items, size_t n)
{
    struct world_view *v = xcalloc(1, sizeof(*v));
    atomic_init(&v->refs, 1);
    v->items = xcalloc(n ? n : 1, sizeof(struct world_item *));
    for (size_t i = 0; i < n; i++) {
        v->items[v->n++] = world_item_ref(items[i]);
    }
    pthread_mutex_lock(&w->mu);
    struct world_view *was = w->view;
    w->view = v;
    pthread_mutex_unlock(&w->mu);
    view_unref(was);
}

void
world_note_reload(struct world *w, bool ok)
{
    atomic_store(&w->reload_ok, ok);
    if (ok) {
        atomic_store(&w->reload_ok_ns, clock_real_ns());
    }
}

/* ------------------------------------------------------------------ what a scrape shows */

static bool
item_retired(struct world_item *it)
{
    return atomic_load(&it->retired);
}

/* A live (not retired) item of kind named relay in v, or NULL. */
static const struct world_item *
live_named(const struct world_view *v, enum world_kind kind, const char *relay)
{
    for (size_t i = 0; i < v->n; i++) {
        struct world_item *it = v->items[i];
        if (it->kind == kind && !item_retired(it) && strcmp(it->relay, relay) == 0) {
            return it;
        }
    }
    return NULL;
}

/* Whether a scrape lists it: not shown final already, and no live one of the same name (a
 * relay or output removed and added again while the old one finished). */
static bool
item_listed(const struct world_view *v, struct world_item *it)
{
    if (atomic_load(&it->shown)) {
        return false;
    }
    if (!atomic_load(&it->retired) || it->kind == WORLD_BACKEND) {
        return true;
    }
    return live_named(v, it->kind, it->relay) == NULL;
}

/* A retired backend item listed under relay r (the relay item listed), not replaced by a live
 * backend of the same name in gen g (NULL for a retired relay). */
static bool
backend_listed(const struct world_view *v, struct world_item *it, const char *r,
               struct httpd_gen *g)
{
    if (it->kind != WORLD_BACKEND || strcmp(it->relay, r) != 0 || !item_listed(v, it)) {
        return false;
    }
    struct backend *const *bs = NULL;
    size_t n = g != NULL ? httpd_gen_backends(g, &bs) : 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(backend_name(it->backend), backend_name(bs[i])) == 0) {
            return false;
        }
    }
    return true;
}

/* Whether its counters are final now (read before its snapshot is taken). */
static bool
item_final(struct world_item *it)
{
    if (!atomic_load(&it->retired)) {
        return false;
    }
    return it->kind == WORLD_BACKEND ? backend_is_ended(it->backend) : atomic_load(&it->ended);
}

/* The memory of one snapshot: every array the view points into, and the generations it reads. */
struct snapshot {
    struct world_view *v;
    struct h_metrics_relay *relays;
    struct httpd_gen **gens; /* per relay: the generation read (NULL for a retired relay) */
    size_t n_relays;
    struct backend_snapshot *backends;
    size_t n_backends;
    struct h_metrics_udp *udp;
    struct udp_gen **ugens;
    size_t n_udp;
    struct h_metrics_udp_output *outputs;
    size_t n_outputs;
    bool *final;  /* per item: listed with final counters (mark it shown afterwards) */
    bool *listed; /* per item: listed by this scrape */
};

/* Allocates the arrays for v (generously: every item and every backend of every live relay).
 * 0, or -1 when out of memory. */
static int
snapshot_alloc(struct snapshot *s)
{
    const struct world_view *v = s->v;
    size_t n_backends = v->n;
    size_t n_outputs = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct world_item *it = v->items[i];
        if (it->kind == WORLD_HTTP) {
            struct httpd_gen *g = httpd_gen_get(it->http);
            struct backend *const *bs = NULL;
            n_backends += httpd_gen_backends(g, &bs);
            httpd_gen_put(g);
        } else if (it->kind == WORLD_UDP) {
            struct udp_gen *g = udp_listener_gen_get(it->udp);
            size_t k = 0;
            while (udp_gen_output(g, k, NULL) != NULL) {
                k++;
            }
            n_outputs += k;
            udp_gen_put(g);
        }
    }
    /* A reload may add outputs between the count and the copy: the copy stops at the count. */
    s->relays = calloc(v->n + 1, sizeof(*s->relays));
    s->gens = calloc(v->n + 1, sizeof(struct httpd_gen *));
    s->backends = calloc(n_backends + 1, sizeof(*s->backends));
    s->n_backends = n_backends;
    s->udp = calloc(v->n + 1, sizeof(*s->udp));
    s->ugens = calloc(v->n + 1, sizeof(struct udp_gen *));
    s->outputs = calloc(n_outputs + 1, sizeof(*s->outputs));
    s->n_outputs = n_outputs;
    s->final = calloc(v->n + 1, sizeof(*s->final));
    s->listed = calloc(v->n + 1, sizeof(*s->listed));
    bool ok = s->relays && s->gens && s->backends && s->udp && s->ugens && s->outputs;
    return ok && s->final && s->listed ? 0 : -1;
}

static void
snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n_relays; i++) {
        httpd_gen_put(s->gens[i]);
    }
    for (size_t i = 0; i < s->n_udp; i++) {
        udp_gen_put(s->ugens[i]);
    }
    free(s->relays);
    free(s->gens);
    free(s->backends);
    free(s->udp);
    free(s->ugens);
    free(s->outputs);
    free(s->final);
    free(s->listed);
}

/* Adds the snapshots of relay r's listed retired backends at *next; returns how many were
 * added, and clears *all_final when one is not final yet. */
static size_t
snapshot_retired_backends(struct snapshot *s, const char *r, struct httpd_gen *g, size_t *next,
                          bool *all_final)
{
    size_t added = 0;
    for (size_t i = 0; i < s->v->n && *next < s->n_backends; i++) {
        struct world_item *it = s->v->items[i];
        if (!backend_listed(s->v, it, r, g)) {
            continue;
        }
        s->final[i] = item_final(it);
        s->listed[i] = true;
        *all_final = *all_final && s->final[i];
        backend_snapshot(it->backend, &s->backends[(*next)++]);
        added++;
    }
    return added;
}

/* One relay item: its live backends (from its generation) and its retired ones. */
static void
snapshot_relay(struct snapshot *s, size_t i, size_t *next)
{
    struct world_item *it = s->v->items[i];
    bool retired = atomic_load(&it->retired);
    bool ended = item_final(it);
    struct httpd_gen *g = retired ? NULL : httpd_gen_get(it->http);
    struct h_metrics_relay *m = &s->relays[s->n_relays];
    s->gens[s->n_relays++] = g;
    m->name = it->relay;
    m->stats = httpd_stats(it->http);
    m->backends = &s->backends[*next];
    struct backend *const *bs = NULL;
    size_t n = g != NULL ? httpd_gen_backends(g, &bs) : 0;
    for (size_t k = 0; k < n && *next < s->n_backends; k++) {
        backend_snapshot(bs[k], &s->backends[(*next)++]);
        m->n_backends++;
    }
    bool all_final = true;
    m->n_backends += snapshot_retired_backends(s, it->relay, g, next, &all_final);
    /* A removed relay is final once it stopped and its backends are done. */
    s->final[i] = ended && all_final;
    s->listed[i] = true;
}

static void
snapshot_http(struct snapshot *s)
{
    size_t next = 0;
    for (size_t i = 0; i < s->v->n; i++) {
        struct world_item *it = s->v->items[i];
        if (it->kind == WORLD_HTTP && item_listed(s->v, it)) {
            snapshot_relay(s, i, &next);
        }
    }
}

static void
snapshot_udp(struct snapshot *s)
{
    struct h_metrics_udp_output *next = s->outputs;
    for (size_t i = 0; i < s->v->n; i++) {
        struct world_item *it = s->v->items[i];
        if (it->kind != WORLD_UDP || !item_listed(s->v, it)) {
            continue;
        }
        s->final[i] = item_final(it);
        s->listed[i] = true;
        const struct udp_stats *st = udp_listener_stats(it->udp);
        struct h_metrics_udp *m = &s->udp[s->n_udp];
        struct udp_gen *g = udp_listener_gen_get(it->udp);
        s->ugens[s->n_udp++] = g;
        m->name = it->relay;
        m->datagrams_received = atomic_load_explicit(&st->datagrams_received, memory_order_relaxed);
        m->points_received = atomic_load_explicit(&st->points_received, memory_order_relaxed);
        m->lines_dropped_invalid =
                atomic_load_explicit(&st->lines_dropped_invalid, memory_order_relaxed);
        m->lines_dropped_mtu = atomic_load_explicit(&st->lines_dropped_mtu, memory_order_relaxed);
        m->receive_errors = atomic_load_explicit(&st->receive_errors, memory_order_relaxed);
        m->receiver_up = atomic_load_explicit(&st->receiver_up, memory_order_relaxed) != 0;
        m->outputs = next;
        const char *name = NULL;
        const struct udp_output_stats *os = NULL;
        while (next < s->outputs + s->n_outputs &&
               (os = udp_gen_output(g, m->n_outputs, &name)) != NULL) {
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
    struct world *w = ctx;
    struct snapshot s;
    memset(&s, 0, sizeof(s));
    s.v = view_get(w);
    char *out = NULL;
    *len = 0;
    if (snapshot_alloc(&s) == 0) {
        snapshot_http(&s);
        snapshot_udp(&s);
        struct h_metrics_view mv = {s.relays,
                                    s.n_relays,
                                    s.udp,
                                    s.n_udp,
                                    inflight_bytes(w->inflight),
                                    w->start_time_ns,
                                    atomic_load(&w->reload_ok),
                                    atomic_load(&w->reload_ok_ns)};
        out = h_metrics_render_view(&mv, len);
    }
    /* Final counters shown once: later scrapes leave the item out. A finished item this scrape
     * did not list (one of the same name was added again) is over as well. */
    for (size_t i = 0; out != NULL && i < s.v->n; i++) {
        if (s.final[i] || (!s.listed[i] && item_final(s.v->items[i]))) {
            atomic_store(&s.v->items[i]->shown, true);
        }
    }
    snapshot_free(&s);
    view_unref(s.v);
    return out;
}

size_t
world_udp_health(void *ctx, struct h_health_udp *out, size_t max)
{
    struct world *w = ctx;
    struct world_view *v = view_get(w);
    size_t n = 0;
    for (size_t i = 0; i < v->n; i++) {
        struct world_item *it = v->items[i];
        if (it->kind != WORLD_UDP || item_retired(it)) {
            continue;
        }
        if (n < max) {
            const struct udp_stats *st = udp_listener_stats(it->udp);
            snprintf(out[n].name, sizeof(out[n].name), "%s", it->relay);
            out[n].receiving = atomic_load_explicit(&st->receiver_up, memory_order_relaxed) != 0;
        }
        n++;
    }
    view_unref(v);
    return n;
}
