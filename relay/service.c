#include "relay/service.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <sys/resource.h>

#include "buffer/backend.h"
#include "buffer/fetch.h"
#include "http/inflight.h"
#include "http/server.h"
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

struct service {
    const struct conf *conf;   /* borrowed */
    struct backend **backends; /* every HTTP backend, relay by relay, in output order */
    size_t n_backends;
    struct world world;        /* owns the http and udp arrays */
    struct timer *timer;       /* owned: write-timeout and read-timeout deadlines */
    struct inflight *inflight; /* owned: max-inflight-mb */
    struct fetcher *fetcher;   /* owned: the /query read engine (its thread runs only when a
                                * relay relays reads) */
    struct syncer *syncer;     /* owned: the spools' sync thread, NULL when no output spools */
    _Atomic int64_t deadline;  /* atomic: the shutdown deadline (service_hurry() moves it) */
    bool started;              /* main thread only */
};

static int
service_new_http(struct service *s, struct ir_err *err)
{
    const struct conf *c = s->conf;
    size_t total = 0;
    for (size_t i = 0; i < c->n_http; i++) {
        total += c->http[i].n_outputs;
    }
    s->backends = xcalloc(total ? total : 1, sizeof(struct backend *));
    s->world.http = xcalloc(c->n_http ? c->n_http : 1, sizeof(struct httpd *));
    struct httpd_env env = {s->timer,         s->inflight, world_render_metrics,
                            world_udp_health, &s->world,   s->fetcher};
    for (size_t i = 0; i < c->n_http; i++) {
        const struct conf_http *h = &c->http[i];
        struct backend **mine = s->backends + s->n_backends;
        for (size_t j = 0; j < h->n_outputs; j++) {
            mine[j] = backend_new(h->name, &h->outputs[j], err);
            if (mine[j] == NULL) {
                return -1;
            }
            s->n_backends++;
        }
        s->world.http[i] = httpd_new(h, mine, &env, err);
        if (s->world.http[i] == NULL) {
            return -1;
        }
        s->world.n_http++;
    }
    return 0;
}

static int
service_new_udp(struct service *s, struct ir_err *err)
{
    const struct conf *c = s->conf;
    s->world.udp = xcalloc(c->n_udp ? c->n_udp : 1, sizeof(struct udp_listener *));
    for (size_t i = 0; i < c->n_udp; i++) {
        s->world.udp[i] = udp_listener_new(&c->udp[i], err);
        if (s->world.udp[i] == NULL) {
            return -1;
        }
        s->world.n_udp++;
    }
    return 0;
}

struct service *
service_new(const struct conf *c, struct ir_err *err)
{
    struct service *s = xcalloc(1, sizeof(*s));
    s->conf = c;
    s->timer = timer_new();
    s->inflight = inflight_new((uint64_t)c->max_inflight_bytes);
    s->world.inflight = s->inflight;
    s->world.start_time_ns = clock_real_ns();
    s->fetcher = fetcher_new(err);
    if (s->fetcher == NULL || service_new_http(s, err) != 0 || service_new_udp(s, err) != 0) {
        service_free(s);
        return NULL;
    }
    s->syncer = syncer_new(s->backends, s->n_backends);
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

int
service_start(struct service *s, struct ir_err *err)
{
    s->started = true;
    service_raise_nofile(s->conf);
    /* Spools first (a spool another process holds stops the start here), then senders, so a
     * relay never accepts a write nobody can send. Not in service_new(): --check-config must not
     * take the spools' locks from a running relay. */
    for (size_t i = 0; i < s->n_backends; i++) {
        if (backend_spool_open(s->backends[i], s->conf->spool_dir, err) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < s->n_backends; i++) {
        if (backend_start(s->backends[i], err) != 0) {
            return -1;
        }
    }
    if (syncer_start(s->syncer, err) != 0) {
        return -1;
    }
    if (timer_start(s->timer, err) != 0) {
        return -1;
    }
    if (service_relays_reads(s->conf) && fetcher_start(s->fetcher, err) != 0) {
        return -1;
    }
    for (size_t i = 0; i < s->world.n_http; i++) {
        if (httpd_start(s->world.http[i], err) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < s->world.n_udp; i++) {
        if (udp_listener_start(s->world.udp[i], err) != 0) {
            return -1;
        }
    }
    return 0;
}

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
    /* 1. Stop accepting: no new HTTP connection, UDP sockets closed and threads joined. */
    log_info(NULL, "shutdown: stop accepting timeout_ms=%lld",
             (long long)s->conf->shutdown_timeout_ms);
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_quiesce(s->world.http[i]);
    }
    for (size_t i = 0; i < s->world.n_udp; i++) {
        udp_listener_stop(s->world.udp[i]);
    }
    /* 2. Answer the requests in flight (their backends are still sending) until the deadline;
     * those still waiting then get 503; stop MHD. */
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_stop(s->world.http[i], atomic_load(&s->deadline));
    }
    fetcher_stop(s->fetcher); /* done by the first httpd_stop() already, when there is one */
    /* 3. Let every sender drain its queue until the same deadline, then drop, log and join. */
    log_info(NULL, "shutdown: draining queues");
    for (size_t i = 0; i < s->n_backends; i++) {
        backend_stop(s->backends[i], atomic_load(&s->deadline));
    }
    syncer_stop(s->syncer);
    timer_stop(s->timer);
    s->started = false;
    log_info(NULL, "shutdown: complete");
}

void
service_hurry(struct service *s)
{
    int64_t now = clock_mono_ms();
    atomic_store(&s->deadline, now);
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_hurry(s->world.http[i], now);
    }
    for (size_t i = 0; i < s->n_backends; i++) {
        backend_hurry(s->backends[i], now);
    }
}

void
service_free(struct service *s)
{
    if (s == NULL) {
        return;
    }
    /* Relays borrow backends, the timer and the budget, so they go first. */
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_free(s->world.http[i]);
    }
    for (size_t i = 0; i < s->world.n_udp; i++) {
        udp_listener_free(s->world.udp[i]);
    }
    syncer_stop(s->syncer); /* after a failed start: the thread may run */
    syncer_free(s->syncer);
    for (size_t i = 0; i < s->n_backends; i++) {
        backend_free(s->backends[i]);
    }
    fetcher_stop(s->fetcher); /* a start that failed half-way */
    fetcher_free(s->fetcher);
    timer_free(s->timer);
    inflight_free(s->inflight);
    free(s->world.http);
    free(s->world.udp);
    free(s->backends);
    free(s);
}
