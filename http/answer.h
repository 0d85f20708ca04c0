/* The client's answer to a forwarded /write, decided from the backends' verdict (buffer/rdv.h):
 * the status, the relay's JSON error or the deciding backend's own body and Content-Type, and
 * Retry-After, sent only on a 503 after which nothing was kept (docs/queue-and-retry.md).
 * Pure; any thread. */
#ifndef IR_HTTP_ANSWER_H
#define IR_HTTP_ANSWER_H

#include <stddef.h>

#include "buffer/rdv.h"
#include "http/reply.h"

/* The invalid lines of a partial write: the answer to a stored write is then a 400 naming them
 * (influxd 1.6.7's "partial write" shape). dropped == 0: every line was valid. */
struct answer_partial {
    size_t dropped;
    const char *errors; /* borrowed: "unable to parse '...': reason" lines, errors_len bytes */
    size_t errors_len;
};

/* Fills r (zeroed by the caller) from v. Takes v's body and content type (v keeps NULLs), so the
 * backend's answer is passed on without a copy. retry_after_s goes into Retry-After. */
void answer_verdict(struct rdv_verdict *v, const struct answer_partial *partial,
                    unsigned retry_after_s, struct reply *r);

/* The InfluxDB 2.x shape of an error answer (POST /api/v2/write): a status >= 400 gets the body
 * {"code":"<code>","message":"<message>"} and the header X-Influxdb-Error: <message> (its first
 * 1024 bytes, control characters as spaces). The message is the "error" member of the JSON
 * body r holds (the relay's own errors and influxd's), else that body's text, else the status's
 * reason phrase; the code follows the status (400 invalid, 401 unauthorized, 403 forbidden,
 * 404 not found, 405 method not allowed, 413 request too large, 422 unprocessable entity,
 * 429 too many requests, 503 unavailable, another 4xx invalid, another 5xx internal error).
 * Status, Retry-After and the other headers are kept; an answer below 400 is left as it is. */
void answer_v2_shape(struct reply *r);

#endif
