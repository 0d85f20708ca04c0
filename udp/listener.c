/* Placeholder so the tree links while the UDP relay (issue #6) is being built. */
#include "udp/listener.h"

#include <stdlib.h>

#include "util/xalloc.h"

struct udp_listener {
    const struct conf_udp *c;
};

struct udp_listener *
udp_listener_new(const struct conf_udp *c, struct ir_err *err)
{
    (void)err;
    struct udp_listener *l = xcalloc(1, sizeof(*l));
    l->c = c;
    return l;
}

int
udp_listener_start(struct udp_listener *l, struct ir_err *err)
{
    ir_err_set(err, l->c->line, "UDP relays are not built yet");
    return -1;
}

void
udp_listener_stop(struct udp_listener *l)
{
    (void)l;
}

void
udp_listener_free(struct udp_listener *l)
{
    free(l);
}
