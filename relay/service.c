#include "relay/service.h"

#include <stdbool.h>
#include <stdlib.h>

#include "buffer/backend.h"
#include "http/server.h"
#include "udp/listener.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

struct service {
    const struct conf *conf;   /* borrowed */
    struct backend **backends; /* every HTTP backend, relay by relay, in output order */
    size_t n_backends;
    struct httpd_world world; /* owns the http and udp arrays */
    bool started;
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
        s->world.http[i] = httpd_new(h, mine, &s->world, err);
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
    s->world.start_time_ns = clock_real_ns();
    if (service_new_http(s, err) != 0 || service_new_udp(s, err) != 0) {
        service_free(s);
        return NULL;
    }
    return s;
}

int
service_start(struct service *s, struct ir_err *err)
{
    s->started = true;
    /* Senders first, so a relay never accepts a write nobody can send. */
    for (size_t i = 0; i < s->n_backends; i++) {
        if (backend_start(s->backends[i], err) != 0) {
            return -1;
        }
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
    /* 1. Stop accepting: no new HTTP connection, UDP sockets closed and threads joined. */
    log_info(NULL, "shutdown: stop accepting");
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_quiesce(s->world.http[i]);
    }
    for (size_t i = 0; i < s->world.n_udp; i++) {
        udp_listener_stop(s->world.udp[i]);
    }
    /* 2. Answer the requests in flight (their backends are still sending), then stop MHD. */
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_stop(s->world.http[i]);
    }
    /* 3. Let every sender drain its queue until shutdown-timeout, then drop, log and join.
     * One deadline for all, so the whole shutdown is bounded by shutdown-timeout. */
    int64_t deadline = clock_mono_ms() + s->conf->shutdown_timeout_ms;
    log_info(NULL, "shutdown: draining queues timeout_ms=%lld",
             (long long)s->conf->shutdown_timeout_ms);
    for (size_t i = 0; i < s->n_backends; i++) {
        backend_stop(s->backends[i], deadline);
    }
    s->started = false;
    log_info(NULL, "shutdown: complete");
}

void
service_free(struct service *s)
{
    if (s == NULL) {
        return;
    }
    /* Relays borrow backends, so they go first. */
    for (size_t i = 0; i < s->world.n_http; i++) {
        httpd_free(s->world.http[i]);
    }
    for (size_t i = 0; i < s->world.n_udp; i++) {
        udp_listener_free(s->world.udp[i]);
    }
    for (size_t i = 0; i < s->n_backends; i++) {
        backend_free(s->backends[i]);
    }
    free(s->world.http);
    free(s->world.udp);
    free(s->backends);
    free(s);
}
