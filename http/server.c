/* Placeholder so the tree links while the HTTP write path (issue #4) is being built. */
#include "http/server.h"

#include <stdlib.h>

#include "util/xalloc.h"

struct httpd {
    const struct conf_http *c;
};

struct httpd *
httpd_new(const struct conf_http *c, struct backend **backends, const struct httpd_world *world,
          struct ir_err *err)
{
    (void)backends;
    (void)world;
    (void)err;
    struct httpd *h = xcalloc(1, sizeof(*h));
    h->c = c;
    return h;
}

int
httpd_start(struct httpd *h, struct ir_err *err)
{
    ir_err_set(err, h->c->line, "HTTP relays are not built yet");
    return -1;
}

void
httpd_quiesce(struct httpd *h)
{
    (void)h;
}

void
httpd_stop(struct httpd *h)
{
    (void)h;
}

void
httpd_free(struct httpd *h)
{
    free(h);
}
