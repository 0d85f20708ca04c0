/* The answer rules of a forwarded write (docs/queue-and-retry.md): first decisive answer
 * passed on, the relay's own JSON errors otherwise. The relay's errors here are written without
 * the final newline of reply_error(), as the answers have always been. */
#include "http/answer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* Said on a 503 after which a backend may hold or have stored the write: no Retry-After then. */
#define MAY_BE_STORED                                                                              \
    ": the write may have been stored by some backends; retrying may store it twice"

/* Fills r with the relay's own JSON error {"error":"<msg>[suffix]"} (msg and suffix are literals
 * without characters to escape). */
static void
own_error(struct reply *r, int status, const char *msg, bool may_be_stored)
{
    char json[256];
    int n = snprintf(json, sizeof(json), "{\"error\":\"%s%s\"}", msg,
                     may_be_stored ? MAY_BE_STORED : "");
    reply_body(r, status, xstrdup(json), (size_t)n, "application/json");
}

/* The backend's answer, passed on; its Content-Type or, without one, JSON's. */
static void
passed_on(struct rdv_verdict *v, struct reply *r)
{
    reply_body(r, v->status, v->body, v->body_len, NULL);
    v->body = NULL;
    r->ctype = v->content_type;
    v->content_type = NULL;
    if (r->ctype == NULL) {
        r->ctype_static = "application/json";
    }
}

static void
answer_ok(const struct answer_partial *partial, struct reply *r)
{
    if (partial == NULL || partial->dropped == 0) {
        reply_empty(r, 204);
        return;
    }
    char suffix[48];
    snprintf(suffix, sizeof(suffix), " dropped=%zu", partial->dropped);
    reply_error3(r, 400, "partial write: ", partial->errors, partial->errors_len, suffix);
}

void
answer_verdict(struct rdv_verdict *v, const struct answer_partial *partial, unsigned retry_after_s,
               struct reply *r)
{
    bool ours = v->body == NULL;
    bool kept = !v->nothing_kept;
    switch (v->kind) {
    case RDV_VERDICT_OK:
        answer_ok(partial, r);
        return;
    case RDV_VERDICT_REJECTED:
        if (ours) {
            own_error(r, v->status, "rejected by backend", false);
        } else {
            passed_on(v, r);
        }
        return;
    case RDV_VERDICT_FAILED:
        if (v->status == 0) {
            own_error(r, 503, v->full ? "buffer full" : "unable to write points", kept);
        } else if (ours || (v->status == 503 && kept)) {
            /* A backend's own 503 would invite a retry: after one that may have kept the
             * write, the relay says so instead. */
            own_error(r, v->status, "unable to write points", kept && v->status == 503);
        } else {
            passed_on(v, r);
        }
        break;
    case RDV_VERDICT_TIMEOUT:
        own_error(r, 503, "timeout", kept);
        break;
    }
    if (r->status == 503 && !kept) {
        r->retry_after_s = retry_after_s;
    }
}
