#include "http/h_ping.h"

#include <stdlib.h>
#include <string.h>

static const char PING_VERBOSE[] = "{\"version\":\"relay\"}\n";

void
h_ping(struct reply *r, bool verbose)
{
    r->version_header = true;
    if (!verbose) {
        reply_empty(r, 204);
        return;
    }
    char *b = malloc(sizeof(PING_VERBOSE));
    if (b == NULL) {
        reply_error(r, 500, "out of memory");
        return;
    }
    memcpy(b, PING_VERBOSE, sizeof(PING_VERBOSE));
    reply_body(r, 200, b, sizeof(PING_VERBOSE) - 1, "application/json");
}
