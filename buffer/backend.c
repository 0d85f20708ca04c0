/* Placeholder so the tree links while the sender threads (issue #4) are being built. */
#include "buffer/backend.h"

#include <stdlib.h>

#include "util/xalloc.h"

struct backend {
    const struct conf_http_output *o;
};

struct backend *
backend_new(const char *relay, const struct conf_http_output *o, struct ir_err *err)
{
    (void)relay;
    (void)err;
    struct backend *b = xcalloc(1, sizeof(*b));
    b->o = o;
    return b;
}

int
backend_start(struct backend *b, struct ir_err *err)
{
    ir_err_set(err, b->o->line, "backends are not built yet");
    return -1;
}

void
backend_stop(struct backend *b, int64_t deadline_ms)
{
    (void)b;
    (void)deadline_ms;
}

void
backend_free(struct backend *b)
{
    free(b);
}

int
backend_global_init(void)
{
    return 0;
}

void
backend_global_cleanup(void)
{
}

enum backend_submit
backend_submit(struct backend *b, struct payload *p, struct rdv *r, unsigned idx)
{
    (void)b;
    (void)p;
    (void)r;
    (void)idx;
    return BACKEND_FULL;
}

void
backend_snapshot(struct backend *b, struct backend_snapshot *s)
{
    (void)b;
    (void)s;
}
