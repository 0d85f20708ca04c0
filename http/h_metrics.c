/* Placeholder so the tree links while observability (issue #7) is being built. */
#include "http/h_metrics.h"

#include <string.h>

#include "util/xalloc.h"

char *
h_metrics_render(const struct httpd_world *w, size_t *len)
{
    (void)w;
    *len = 0;
    return xstrdup("");
}
