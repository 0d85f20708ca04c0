/* HTTP relays: one libmicrohttpd daemon per [http.R], thread per connection. Routes /write,
 * /ping, /metrics, /health. The /write handler validates through lp/, submits one payload to each
 * of the relay's backends and waits on a rendezvous for the answer.
 * Owned by relay/service.c; borrows its conf section, its backends and the world view. */
#ifndef IR_HTTP_SERVER_H
#define IR_HTTP_SERVER_H

#include <stddef.h>

#include "buffer/backend.h"
#include "conf/conf.h"
#include "http/stats.h"
#include "udp/listener.h"
#include "util/err.h"

struct httpd;

/* Everything /metrics and /health may show: every relay of the process. Borrowed, built by
 * relay/service.c, immutable after start. */
struct httpd_world {
    struct httpd **http;
    size_t n_http;
    struct udp_listener **udp;
    size_t n_udp;
    int64_t start_time_ns;
};

/* Main thread. backends: this relay's backends in output order (borrowed array, n == number of
 * outputs). Binds nothing. Returns owned, or NULL with *err filled. */
struct httpd *httpd_new(const struct conf_http *c, struct backend **backends,
                        const struct httpd_world *world, struct ir_err *err);
/* Main thread: binds and starts serving. 0 or -1 (err filled: names the address). */
int httpd_start(struct httpd *h, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stop accepting new connections (shutdown step 1). */
void httpd_quiesce(struct httpd *h);
/* Main thread: wait for requests in flight to be answered, then stop the daemon. */
void httpd_stop(struct httpd *h);
/* NULL is a no-op. */
void httpd_free(struct httpd *h);

/* Borrowed views for /metrics and /health. Any thread. */
const char *httpd_name(const struct httpd *h);
size_t httpd_backends(const struct httpd *h, struct backend *const **out);
const struct httpd_stats *httpd_stats(const struct httpd *h);
/* The relay's configuration section (borrowed, immutable after start). Any thread. */
const struct conf_http *httpd_conf(const struct httpd *h);
/* Every relay of the process (borrowed, immutable after start), for /health. Any thread. */
const struct httpd_world *httpd_world_of(const struct httpd *h);

#endif
