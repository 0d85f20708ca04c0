/* The service: the runtime objects of one configuration, their start and stop order, and the
 * reload.
 *
 * Ownership. The service holds a reference on the tree in force, and one on each backend, HTTP
 * relay and UDP relay it made (backends are shared with the relays' generations, relays with the
 * world's views: relay/world.c). A relay or output removed by a reload moves to `retired` with
 * the service's reference, until it has finished (a backend drained or dropped and its sender
 * joined; an HTTP relay stopped by the retire thread; a UDP relay stopped at once) and a scrape
 * of /metrics has shown its final counters; later reloads prune it, the shutdown frees it.
 *
 * Reload (service_reload()). Two steps, so that a failure changes nothing:
 * 1. prepare: new backends are made (not started), new relays made and bound, kept HTTP relays
 *    read their PEM file again and bind a changed address, UDP relays resolve and open changed
 *    outputs and bind a changed address. Any problem: everything prepared is undone.
 * 2. commit (nothing in it can fail for a configuration reason): log settings, max-inflight-mb,
 *    each kept output gets its new settings (backend_reconfigure()), each kept relay its new
 *    generation (httpd_commit(), udp_listener_commit()), new ones start, removed outputs drain
 *    until shutdown-timeout (backend_retire()), removed relays stop accepting at once and are
 *    stopped by the retire thread; then the world's new view is published. */
#include "relay/service.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include "buffer/backend.h"
#include "buffer/fetch.h"
#include "conf/conf_diff.h"
#include "conf/conf_keys.h"
#include "http/inflight.h"
#include "http/server.h"
#include "relay/retire.h"
#include "relay/syncer.h"
#include "relay/world.h"
#include "udp/listener.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/timer.h"
#include "util/xalloc.h"

/* File descriptors the process needs besides client connections (logs, timer, MHD's epoll and
 * inter-thread channels, libcurl). */
#define NOFILE_BASE 64

struct svc_http {
    struct httpd *h;         /* owned: the service's reference */
    struct world_item *item; /* owned */
    struct backend **bs;     /* owned array of n, the service's reference on each */
    size_t n;
};

struct svc_udp {
    struct udp_listener *l;  /* owned: the service's reference */
    struct world_item *item; /* owned */
};

/* A relay or output removed by a reload, kept until it has finished and /metrics showed it. */
struct svc_retired {
    struct world_item *item; /* owned */
    struct backend *b;       /* owned, or NULL: its sender is joined before it is dropped */
    struct httpd *h;         /* owned, or NULL: the retire thread stops it, then ends item */
    struct udp_listener *l;  /* owned, or NULL: stopped when removed */
    bool joined;             /* b's sender is joined */
};

struct service {
    struct conf *conf;     /* owned reference: the tree in force */
    struct svc_http *http; /* owned array: every HTTP relay, in file order */
    size_t n_http;
    struct svc_udp *udp; /* owned array */
    size_t n_udp;
    struct svc_retired *retired; /* owned array */
    size_t n_retired;
    struct world world;        /* what /metrics and /health see */
    struct timer *timer;       /* owned: write-timeout and read-timeout deadlines */
    struct inflight *inflight; /* owned: max-inflight-mb */
    struct fetcher *fetcher;   /* owned: the /query read engine (its thread runs only when a
                                * relay relays reads) */
    struct syncer *syncer;     /* owned: the spools' sync thread, NULL when no output spools */
    struct retire *retire;     /* owned: the retire thread */
    char *spool_dir;           /* owned: [relay] spool-dir at start (a reload keeps it) */
    bool fetching;             /* main thread only: the fetcher's thread was started */
    _Atomic int64_t deadline;  /* atomic: the shutdown deadline (service_hurry() moves it) */
    bool started;              /* main thread only */
};

static struct httpd_env
service_env(struct service *s)
{
    return (struct httpd_env){s->timer,         s->inflight, world_render_metrics,
                              world_udp_health, &s->world,   s->fetcher};
}

/* The index in keep->bs of the backend named name, or SIZE_MAX (keep may be NULL). */
static size_t
kept_index(const struct svc_http *keep, const char *name)
{
    for (size_t k = 0; keep != NULL && k < keep->n; k++) {
        if (strcmp(backend_name(keep->bs[k]), name) == 0) {
            return k;
        }
    }
    return SIZE_MAX;
}

/* Makes the backends of relay c: new ones, or those of `keep` (a relay being reloaded) with the
 * same name, whose indexes in keep->bs are recorded in from[] (SIZE_MAX for a new one). 0, or
 * -1 with *err filled (what was made is freed). */
static int
backends_for(const struct conf_http *c, const struct svc_http *keep, struct backend **bs,
             size_t *from, struct ir_err *err)
{
    for (size_t j = 0; j < c->n_outputs; j++) {
        from[j] = kept_index(keep, c->outputs[j].name);
        bs[j] = from[j] != SIZE_MAX ? keep->bs[from[j]] : backend_new(c->name, &c->outputs[j], err);
        if (bs[j] != NULL) {
            continue;
        }
        for (size_t k = 0; k < j; k++) {
            if (from[k] == SIZE_MAX) {
                backend_free(bs[k]);
            }
        }
        return -1;
    }
    return 0;
}

static void
world_publish_service(struct service *s)
{
    size_t n = s->n_http + s->n_udp + s->n_retired;
    struct world_item **items = xcalloc(n ? n : 1, sizeof(struct world_item *));
    size_t k = 0;
    for (size_t i = 0; i < s->n_http; i++) {
        items[k++] = s->http[i].item;
    }
    for (size_t i = 0; i < s->n_udp; i++) {
        items[k++] = s->udp[i].item;
    }
    for (size_t i = 0; i < s->n_retired; i++) {
        items[k++] = s->retired[i].item;
    }
    world_publish(&s->world, items, k);
    free(items);
}

static int
service_new_http(struct service *s, struct ir_err *err)
{
    const struct conf *c = s->conf;
    s->http = xcalloc(c->n_http ? c->n_http : 1, sizeof(*s->http));
    struct httpd_env env = service_env(s);
    for (size_t i = 0; i < c->n_http; i++) {
        const struct conf_http *h = &c->http[i];
        struct svc_http *r = &s->http[i];
        r->bs = xcalloc(h->n_outputs ? h->n_outputs : 1, sizeof(struct backend *));
        size_t *from = xcalloc(h->n_outputs ? h->n_outputs : 1, sizeof(size_t));
        int rc = backends_for(h, NULL, r->bs, from, err);
        free(from);
        if (rc != 0) {
            free(r->bs);
            r->bs = NULL;
            return -1;
        }
        r->n = h->n_outputs;
        s->n_http++;
        r->h = httpd_new(h, r->bs, &env, err);
        if (r->h == NULL) {
            return -1;
        }
        r->item = world_item_http(r->h);
    }
    return 0;
}

static int
service_new_udp(struct service *s, struct ir_err *err)
{
    const struct conf *c = s->conf;
    s->udp = xcalloc(c->n_udp ? c->n_udp : 1, sizeof(*s->udp));
    for (size_t i = 0; i < c->n_udp; i++) {
        struct udp_listener *l = udp_listener_new(&c->udp[i], err);
        if (l == NULL) {
            return -1;
        }
        s->udp[s->n_udp++] = (struct svc_udp){l, world_item_udp(l)};
    }
    return 0;
}

struct service *
service_new(struct conf *c, struct ir_err *err)
{
    struct service *s = xcalloc(1, sizeof(*s));
    s->conf = conf_ref(c);
    s->timer = timer_new();
    s->inflight = inflight_new((uint64_t)c->max_inflight_bytes);
    s->retire = retire_new();
    s->spool_dir = c->spool_dir != NULL ? xstrdup(c->spool_dir) : NULL;
    world_init(&s->world, s->inflight, clock_real_ns());
    s->fetcher = fetcher_new(err);
    if (s->fetcher == NULL || service_new_http(s, err) != 0 || service_new_udp(s, err) != 0) {
        service_free(s);
        return NULL;
    }
    s->syncer = syncer_new();
    world_publish_service(s);
    return s;
}

/* Descriptors the config may need at once: every HTTP relay's max-connections, a socket per
 * backend and per UDP output, plus the fixed ones. */
static uint64_t
service_nofile_need(const struct conf *c)
{
    uint64_t need = NOFILE_BASE;
    for (size_t i = 0; i < c->n_http; i++) {
        need += (uint64_t)c->http[i].max_connections + 1 + 2 * c->http[i].n_outputs;
    }
    for (size_t i = 0; i < c->n_udp; i++) {
        need += 1 + c->udp[i].n_outputs;
    }
    return need;
}

/* Raises the soft RLIMIT_NOFILE to the hard limit (or at least to what the config needs), and
 * says so when it stays below what the config needs. */
static void
service_raise_nofile(const struct conf *c)
{
    uint64_t need = service_nofile_need(c);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {rl.rlim_max, rl.rlim_max};
        struct rlimit enough = {need < rl.rlim_max ? need : rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            rl = want;
        } else if (enough.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &enough) == 0) {
            rl = enough;
        }
    }
    if (rl.rlim_cur < need) {
        log_warn(NULL,
                 "open files limit is below what max-connections needs, connections beyond it "
                 "are refused limit=%llu needed=%llu hard_limit=%llu",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need,
                 (unsigned long long)rl.rlim_max);
    } else if (rl.rlim_cur != was) {
        log_info(NULL, "open files limit raised limit=%llu was=%llu",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)was);
    }
}

/* Whether some HTTP relay sends /query reads to its backends (query = all). */
static bool
service_relays_reads(const struct conf *c)
{
    for (size_t i = 0; i < c->n_http; i++) {
        if (c->http[i].query == CONF_QUERY_ALL) {
            return true;
        }
    }
    return false;
}

/* Hands the spool sync thread every backend of the running relays (it syncs those with a
 * spool). -1 with err filled when its thread cannot start. */
static int
service_sync_spools(struct service *s, struct ir_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_http; i++) {
        n += s->http[i].n;
    }
    struct backend **bs = xcalloc(n ? n : 1, sizeof(struct backend *));
    n = 0;
    for (size_t i = 0; i < s->n_http; i++) {
        for (size_t j = 0; j < s->http[i].n; j++) {
            bs[n++] = s->http[i].bs[j];
        }
    }
    int rc = syncer_set(s->syncer, bs, n, err);
    free(bs);
    return rc;
}

int
service_start(struct service *s, struct ir_err *err)
{
    s->started = true;
    service_raise_nofile(s->conf);
    /* Spools first (a spool another process holds stops the start here), then senders, so a
     * relay never accepts a write nobody can send. Not in service_new(): --check-config must not
     * take the spools' locks from a running relay. */
    for (size_t i = 0; i < s->n_http; i++) {
        for (size_t j = 0; j < s->http[i].n; j++) {
            if (backend_spool_open(s->http[i].bs[j], s->spool_dir, err) != 0) {
                return -1;
            }
        }
    }
    if (service_sync_spools(s, err) != 0) {
        return -1;
    }
    /* Senders first, so a relay never accepts a write nobody can send. */
    for (size_t i = 0; i < s->n_http; i++) {
        for (size_t j = 0; j < s->http[i].n; j++) {
            if (backend_start(s->http[i].bs[j], err) != 0) {
                return -1;
            }
        }
    }
    if (syncer_start(s->syncer, err) != 0) {
        return -1;
    }
    if (timer_start(s->timer, err) != 0) {
        return -1;
    }
    if (service_relays_reads(s->conf)) {
        if (fetcher_start(s->fetcher, err) != 0) {
            return -1;
        }
        s->fetching = true;
    }
    for (size_t i = 0; i < s->n_http; i++) {
        if (httpd_start(s->http[i].h, err) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < s->n_udp; i++) {
        if (udp_listener_start(s->udp[i].l, err) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ reload: prepare */

/* What a reload will install for one [http.NAME] of the new tree. */
struct plan_http {
    const struct conf_http *c; /* borrowed from the new tree */
    struct svc_http *keep;     /* the relay it reloads, or NULL for a new relay */
    struct httpd *h;           /* a new relay: owned until committed */
    struct backend **bs;       /* owned array of c->n_outputs: kept (borrowed) or new (owned) */
    size_t *from;              /* owned array: index in keep->bs, SIZE_MAX for a new backend */
};

struct plan_udp {
    const struct conf_udp *c; /* borrowed from the new tree */
    struct svc_udp *keep;     /* the relay it reloads, or NULL */
    struct udp_listener *l;   /* a new relay: owned until committed */
};

/* What a reload changed, for its summary line. */
struct reload_counts {
    size_t relays_added;
    size_t relays_removed;
    size_t outputs_added;
    size_t outputs_changed;
    size_t outputs_removed;
};

struct plan {
    struct conf *next; /* borrowed */
    struct plan_http *http;
    struct plan_udp *udp;
    struct conf_errs *errs; /* borrowed */
    struct reload_counts n;
};

static void
plan_error(struct plan *p, const struct ir_err *err)
{
    conf_errs_add(p->errs, err->line, "%s", err->msg);
}

static struct svc_http *
find_http(struct service *s, const char *name)
{
    for (size_t i = 0; i < s->n_http; i++) {
        if (strcmp(httpd_name(s->http[i].h), name) == 0) {
            return &s->http[i];
        }
    }
    return NULL;
}

static struct svc_udp *
find_udp(struct service *s, const char *name)
{
    for (size_t i = 0; i < s->n_udp; i++) {
        if (strcmp(udp_listener_name(s->udp[i].l), name) == 0) {
            return &s->udp[i];
        }
    }
    return NULL;
}

/* Prepares one HTTP relay; problems go to p->errs. */
static void
prepare_http(struct service *s, struct plan *p, struct plan_http *ph)
{
    struct ir_err err = {0, ""};
    const struct conf_http *c = ph->c;
    ph->keep = find_http(s, c->name);
    ph->bs = xcalloc(c->n_outputs ? c->n_outputs : 1, sizeof(struct backend *));
    ph->from = xcalloc(c->n_outputs ? c->n_outputs : 1, sizeof(size_t));
    if (backends_for(c, ph->keep, ph->bs, ph->from, &err) != 0) {
        plan_error(p, &err);
        free(ph->bs);
        ph->bs = NULL;
        return;
    }
    /* An added output's spool is opened now: one another process (or a removed output still
     * draining) holds fails the reload, not the output. spool-dir is the one at start. */
    const char *dir = s->spool_dir != NULL ? s->spool_dir : p->next->spool_dir;
    for (size_t j = 0; j < c->n_outputs; j++) {
        if (ph->from[j] == SIZE_MAX && backend_spool_open(ph->bs[j], dir, &err) != 0) {
            plan_error(p, &err);
        }
    }
    if (ph->keep != NULL) {
        if (httpd_prepare(ph->keep->h, c, &err) != 0) {
            plan_error(p, &err);
        }
        return;
    }
    struct httpd_env env = service_env(s);
    ph->h = httpd_new(c, ph->bs, &env, &err);
    if (ph->h == NULL || httpd_bind(ph->h, &err) != 0) {
        plan_error(p, &err);
    }
}

static void
prepare_udp(struct service *s, struct plan *p, struct plan_udp *pu)
{
    struct ir_err err = {0, ""};
    pu->keep = find_udp(s, pu->c->name);
    if (pu->keep != NULL) {
        if (udp_listener_prepare(pu->keep->l, pu->c, &err) != 0) {
            plan_error(p, &err);
        }
        return;
    }
    pu->l = udp_listener_new(pu->c, &err);
    if (pu->l == NULL || udp_listener_bind(pu->l, &err) != 0) {
        plan_error(p, &err);
    }
}

/* Undoes what prepare made (a reload that fails), and frees the plan. */
static void
plan_abort(struct plan *p)
{
    for (size_t i = 0; i < p->next->n_http; i++) {
        struct plan_http *ph = &p->http[i];
        if (ph->keep != NULL) {
            httpd_abort(ph->keep->h);
        }
        httpd_free(ph->h);
        for (size_t j = 0; ph->bs != NULL && j < ph->c->n_outputs; j++) {
            if (ph->from[j] == SIZE_MAX) {
                backend_free(ph->bs[j]);
            }
        }
        free(ph->bs);
        free(ph->from);
    }
    for (size_t i = 0; i < p->next->n_udp; i++) {
        if (p->udp[i].keep != NULL) {
            udp_listener_abort(p->udp[i].keep->l);
        }
        udp_listener_free(p->udp[i].l);
    }
    free(p->http);
    free(p->udp);
}

/* ------------------------------------------------------------------ reload: commit */

static void
retired_add(struct service *s, struct svc_retired r)
{
    s->retired = xrealloc(s->retired, (s->n_retired + 1) * sizeof(*s->retired));
    world_item_retire(r.item);
    s->retired[s->n_retired++] = r;
}

/* A removed output: drains until deadline_ms, then drops the rest. */
static void
retire_backend(struct service *s, const char *relay, struct backend *b, int64_t deadline_ms,
               struct reload_counts *n)
{
    n->outputs_removed++;
    log_info(relay,
             "output removed by a reload: sending what it holds for up to shutdown-timeout "
             "backend=%s",
             backend_name(b));
    backend_retire(b, deadline_ms);
    retired_add(s, (struct svc_retired){world_item_backend(relay, b), b, NULL, NULL, false});
}

/* The outputs of a kept relay: new settings for those that stay, the others retired. */
static void
commit_outputs(struct service *s, struct plan_http *ph, int64_t deadline_ms,
               struct reload_counts *n)
{
    struct svc_http *keep = ph->keep;
    const struct conf_http *was = conf_find_http(s->conf, ph->c->name);
    for (size_t j = 0; j < ph->c->n_outputs; j++) {
        const struct conf_http_output *o = &ph->c->outputs[j];
        if (ph->from[j] == SIZE_MAX) {
            log_info(ph->c->name, "output added by a reload backend=%s location=%s", o->name,
                     o->location);
            n->outputs_added++;
            continue;
        }
        const struct conf_http_output *old = was ? conf_find_http_output(was, o->name) : NULL;
        char keys[256] = "";
        if (old != NULL && conf_section_diff(CONF_SEC_HTTP_OUTPUT, old, o, keys, sizeof(keys))) {
            log_info(ph->c->name, "output changed by a reload backend=%s changed=%s", o->name,
                     keys);
            n->outputs_changed++;
        }
        if (!backend_reconfigure(ph->bs[j], o)) {
            log_warn(ph->c->name,
                     "needs a restart: spool-size-mb, spool-max-age and spool-sync of backend=%s "
                     "keep their previous values until then",
                     o->name);
        }
    }
    for (size_t k = 0; keep != NULL && k < keep->n; k++) {
        bool kept = false;
        for (size_t j = 0; j < ph->c->n_outputs && !kept; j++) {
            kept = ph->from[j] == k;
        }
        if (!kept) {
            retire_backend(s, ph->c->name, keep->bs[k], deadline_ms, n);
        }
    }
}

/* Starts the backends new in ph (their sender threads). */
static void
start_new_backends(struct plan_http *ph)
{
    for (size_t j = 0; j < ph->c->n_outputs; j++) {
        struct ir_err err = {0, ""};
        if (ph->from[j] == SIZE_MAX && backend_start(ph->bs[j], &err) != 0) {
            log_error(ph->c->name, "%s", err.msg);
        }
    }
}

/* One HTTP relay of the new tree: its svc_http for the new array. */
static struct svc_http
commit_http(struct service *s, struct plan_http *ph, int64_t deadline_ms, struct reload_counts *n)
{
    start_new_backends(ph);
    struct svc_http r = {ph->h, NULL, ph->bs, ph->c->n_outputs};
    if (ph->keep == NULL) {
        struct ir_err err = {0, ""};
        if (httpd_start(ph->h, &err) != 0) {
            log_error(ph->c->name, "%s", err.msg);
        }
        log_info(ph->c->name, "relay added by a reload");
        n->relays_added++;
        n->outputs_added += ph->c->n_outputs;
        r.item = world_item_http(ph->h);
        ph->h = NULL;
    } else {
        commit_outputs(s, ph, deadline_ms, n);
        r.h = ph->keep->h;
        r.item = ph->keep->item;
        if (httpd_commit(r.h, ph->c, ph->bs, deadline_ms)) {
            retire_drain(s->retire, r.h);
        }
        free(ph->keep->bs);
        ph->keep = NULL; /* the old array goes: plan_abort() must not look at it */
    }
    ph->bs = NULL;
    free(ph->from);
    ph->from = NULL;
    return r;
}

/* A relay of the old tree that the new one does not have. */
static void
retire_http(struct service *s, struct svc_http *r, int64_t deadline_ms, struct reload_counts *n)
{
    n->relays_removed++;
    log_info(httpd_name(r->h),
             "relay removed by a reload: stops accepting, answers what it holds for up to "
             "shutdown-timeout");
    httpd_quiesce(r->h);
    for (size_t k = 0; k < r->n; k++) {
        retire_backend(s, httpd_name(r->h), r->bs[k], deadline_ms, n);
    }
    retired_add(s, (struct svc_retired){r->item, NULL, r->h, NULL, false});
    retire_stop(s->retire, r->h, r->item, deadline_ms);
    free(r->bs);
}

static void
commit_https(struct service *s, struct plan *p, int64_t deadline_ms)
{
    size_t n = p->next->n_http;
    struct svc_http *now = xcalloc(n ? n : 1, sizeof(*now));
    for (size_t i = 0; i < n; i++) {
        now[i] = commit_http(s, &p->http[i], deadline_ms, &p->n);
    }
    for (size_t i = 0; i < s->n_http; i++) {
        if (conf_find_http(p->next, httpd_name(s->http[i].h)) == NULL) {
            retire_http(s, &s->http[i], deadline_ms, &p->n);
        }
    }
    free(s->http);
    s->http = now;
    s->n_http = n;
}

static void
commit_udps(struct service *s, struct plan *p)
{
    size_t n = p->next->n_udp;
    struct svc_udp *now = xcalloc(n ? n : 1, sizeof(*now));
    for (size_t i = 0; i < n; i++) {
        struct plan_udp *pu = &p->udp[i];
        if (pu->keep != NULL) {
            udp_listener_commit(pu->keep->l);
            now[i] = *pu->keep;
            pu->keep = NULL;
            continue;
        }
        struct ir_err err = {0, ""};
        if (udp_listener_start(pu->l, &err) != 0) {
            log_error(pu->c->name, "%s", err.msg);
        }
        log_info(pu->c->name, "relay added by a reload");
        p->n.relays_added++;
        now[i] = (struct svc_udp){pu->l, world_item_udp(pu->l)};
        pu->l = NULL;
    }
    for (size_t i = 0; i < s->n_udp; i++) {
        struct svc_udp *u = &s->udp[i];
        if (conf_find_udp(p->next, udp_listener_name(u->l)) == NULL) {
            log_info(udp_listener_name(u->l), "relay removed by a reload");
            p->n.relays_removed++;
            udp_listener_stop(u->l);
            retired_add(s, (struct svc_retired){u->item, NULL, NULL, u->l, false});
            world_item_end(u->item);
        }
    }
    free(s->udp);
    s->udp = now;
    s->n_udp = n;
}

/* [relay] keys a reload applies: the others are logged as needing a restart. */
static bool
relay_key_is_live(const char *key)
{
    static const char *const live[] = {"log-level", "log-format", "shutdown-timeout",
                                       "max-inflight-mb"};
    for (size_t i = 0; i < IR_ARRAY_LEN(live); i++) {
        if (strcmp(live[i], key) == 0) {
            return true;
        }
    }
    return false;
}

static void
commit_relay_section(struct service *s, const struct conf *next)
{
    log_init(next->log_level, next->log_json);
    inflight_set_cap(s->inflight, (uint64_t)next->max_inflight_bytes);
    size_t n = 0;
    const struct conf_key *keys = conf_keys_table(CONF_SEC_RELAY, &n);
    for (size_t i = 0; i < n; i++) {
        if (!relay_key_is_live(keys[i].name) && !conf_key_equal(&keys[i], s->conf, next)) {
            log_warn(NULL, "needs a restart: %s (the running value stays until then)",
                     keys[i].name);
        }
    }
}

/* Drops the retired entries that are over: finished, joined, and shown once by /metrics (or
 * never to be: shutdown passes all=true). */
static void
retired_prune(struct service *s, bool all)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n_retired; i++) {
        struct svc_retired *r = &s->retired[i];
        if (r->b != NULL && !r->joined && (all || backend_is_ended(r->b))) {
            backend_stop(r->b, atomic_load(&s->deadline)); /* ended: joins at once */
            r->joined = true;
        }
        bool over = all || (world_item_is_gone(r->item) && (r->b == NULL || r->joined));
        if (!over) {
            s->retired[k++] = *r;
            continue;
        }
        world_item_unref(r->item);
        backend_free(r->b);
        httpd_free(r->h);
        udp_listener_free(r->l);
    }
    s->n_retired = k;
}

int
service_reload(struct service *s, struct conf *next, struct conf_errs *errs)
{
    struct plan p = {next,
                     xcalloc(next->n_http + 1, sizeof(struct plan_http)),
                     xcalloc(next->n_udp + 1, sizeof(struct plan_udp)),
                     errs,
                     {0, 0, 0, 0, 0}};
    size_t before = errs->n;
    /* What earlier reloads removed and is over goes first: an output added back takes its
     * spool's lock again. */
    retired_prune(s, false);
    for (size_t i = 0; i < next->n_http; i++) {
        p.http[i].c = &next->http[i];
        prepare_http(s, &p, &p.http[i]);
    }
    for (size_t i = 0; i < next->n_udp; i++) {
        p.udp[i].c = &next->udp[i];
        prepare_udp(s, &p, &p.udp[i]);
    }
    if (errs->n > before) {
        plan_abort(&p);
        conf_errs_sort(errs);
        world_note_reload(&s->world, false);
        return -1;
    }
    int64_t deadline = clock_mono_ms() + next->shutdown_timeout_ms;
    commit_relay_section(s, next);
    service_raise_nofile(next);
    commit_https(s, &p, deadline);
    commit_udps(s, &p);
    plan_abort(&p); /* frees what the commit did not take */
    struct ir_err err = {0, ""};
    if (service_sync_spools(s, &err) != 0) {
        log_error(NULL, "%s", err.msg);
    }
    if (!s->fetching && service_relays_reads(next)) {
        if (fetcher_start(s->fetcher, &err) != 0) {
            log_error(NULL, "%s", err.msg);
        } else {
            s->fetching = true;
        }
    }
    conf_unref(s->conf);
    s->conf = conf_ref(next);
    retired_prune(s, false);
    world_publish_service(s);
    world_note_reload(&s->world, true);
    log_info(NULL,
             "configuration reloaded config=%s http_relays=%zu udp_relays=%zu "
             "relays_added=%zu relays_removed=%zu outputs_added=%zu outputs_changed=%zu "
             "outputs_removed=%zu",
             next->path, s->n_http, s->n_udp, p.n.relays_added, p.n.relays_removed,
             p.n.outputs_added, p.n.outputs_changed, p.n.outputs_removed);
    return 0;
}

void
service_note_reload_failed(struct service *s)
{
    world_note_reload(&s->world, false);
}

/* ------------------------------------------------------------------ shutdown */

void
service_stop(struct service *s)
{
    if (!s->started) {
        return;
    }
    /* One deadline for the whole shutdown. */
    int64_t deadline = clock_mono_ms() + s->conf->shutdown_timeout_ms;
    int64_t unset = 0;
    atomic_compare_exchange_strong(&s->deadline, &unset, deadline);
    /* 1. Stop accepting: no write forwarded from the log line on, no new HTTP connection, UDP
     * sockets closed and threads joined. */
    for (size_t i = 0; i < s->n_http; i++) {
        httpd_refuse_writes(s->http[i].h);
    }
    log_info(NULL, "shutdown: stop accepting timeout_ms=%lld",
             (long long)s->conf->shutdown_timeout_ms);
    for (size_t i = 0; i < s->n_http; i++) {
        httpd_quiesce(s->http[i].h);
    }
    for (size_t i = 0; i < s->n_udp; i++) {
        udp_listener_stop(s->udp[i].l);
    }
    /* 2. Answer the requests in flight (their backends are still sending) until the deadline;
     * those still waiting then get 503; stop MHD (old daemons of a reload too). */
    for (size_t i = 0; i < s->n_http; i++) {
        httpd_stop(s->http[i].h, atomic_load(&s->deadline), true);
    }
    fetcher_stop(s->fetcher); /* done by the first httpd_stop() already, when there is one */
    /* 3. Let every sender drain its queue until the same deadline, then drop, log and join
     * (outputs a reload removed keep their own deadline when it is earlier). */
    log_info(NULL, "shutdown: draining queues");
    for (size_t i = 0; i < s->n_http; i++) {
        for (size_t j = 0; j < s->http[i].n; j++) {
            backend_stop(s->http[i].bs[j], atomic_load(&s->deadline));
        }
    }
    for (size_t i = 0; i < s->n_retired; i++) {
        if (s->retired[i].b != NULL && !s->retired[i].joined) {
            backend_stop(s->retired[i].b, atomic_load(&s->deadline));
            s->retired[i].joined = true;
        }
    }
    syncer_stop(s->syncer);
    /* 4. The retire thread finishes what a reload left it (relays it stops, old daemons). */
    retire_join(s->retire);
    timer_stop(s->timer);
    s->started = false;
    log_info(NULL, "shutdown: complete");
}

void
service_hurry(struct service *s)
{
    int64_t now = clock_mono_ms();
    atomic_store(&s->deadline, now);
    for (size_t i = 0; i < s->n_http; i++) {
        httpd_hurry(s->http[i].h, now);
        for (size_t j = 0; j < s->http[i].n; j++) {
            backend_hurry(s->http[i].bs[j], now);
        }
    }
    for (size_t i = 0; i < s->n_retired; i++) {
        if (s->retired[i].h != NULL) {
            httpd_hurry(s->retired[i].h, now);
        }
        if (s->retired[i].b != NULL) {
            backend_hurry(s->retired[i].b, now);
        }
    }
}

void
service_free(struct service *s)
{
    if (s == NULL) {
        return;
    }
    /* Nothing renders any more: the views go first, then the relays (they hold references on
     * backends, the timer and the budget), then the backends. */
    world_cleanup(&s->world);
    retired_prune(s, true);
    for (size_t i = 0; i < s->n_http; i++) {
        world_item_unref(s->http[i].item);
        httpd_free(s->http[i].h);
    }
    for (size_t i = 0; i < s->n_udp; i++) {
        world_item_unref(s->udp[i].item);
        udp_listener_free(s->udp[i].l);
    }
    syncer_stop(s->syncer); /* after a failed start: the thread may run */
    syncer_free(s->syncer);
    for (size_t i = 0; i < s->n_http; i++) {
        for (size_t j = 0; j < s->http[i].n; j++) {
            backend_free(s->http[i].bs[j]);
        }
        free(s->http[i].bs);
    }
    retire_free(s->retire);
    fetcher_stop(s->fetcher); /* a start that failed half-way */
    fetcher_free(s->fetcher);
    free(s->spool_dir);
    timer_free(s->timer);
    inflight_free(s->inflight);
    free(s->http);
    free(s->udp);
    free(s->retired);
    conf_unref(s->conf);
    free(s);
}
