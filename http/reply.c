#include "http/reply.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/dbuf.h"
#include "util/err.h"
#include "util/json.h"

/* Used when even the error body cannot be allocated. */
static const char OOM_BODY[] = "{\"error\":\"out of memory\"}\n";

void
reply_empty(struct reply *r, int status)
{
    r->status = status;
    r->body = NULL;
    r->len = 0;
}

void
reply_body(struct reply *r, int status, char *body, size_t len, const char *ctype)
{
    r->status = status;
    free(r->body);
    r->body = body;
    r->len = len;
    r->ctype_static = ctype;
}

void
reply_error3(struct reply *r, int status, const char *prefix, const char *msg, size_t len,
             const char *suffix)
{
    r->status = status;
    r->ctype_static = "application/json";
    free(r->body);
    r->body = NULL;
    r->len = 0;
    struct dbuf b;
    dbuf_init(&b, DBUF_NO_BOUND);
    dbuf_str(&b, "{\"error\":\"");
    json_escape(&b, prefix, strlen(prefix), JSON_ESC_GO);
    json_escape(&b, msg, len, JSON_ESC_GO);
    json_escape(&b, suffix, strlen(suffix), JSON_ESC_GO);
    /* influxd and the Go relay end their JSON errors with a newline. */
    dbuf_str(&b, "\"}\n");
    r->body = dbuf_finish(&b, &r->len);
    r->oom = r->body == NULL; /* then reply_response() sends a fixed body */
}

void
reply_error(struct reply *r, int status, const char *msg)
{
    reply_error3(r, status, "", msg, strlen(msg), "");
}

void
reply_cleanup(struct reply *r)
{
    free(r->body);
    free(r->ctype);
    free(r->influx_error);
    r->body = NULL;
    r->ctype = NULL;
    r->influx_error = NULL;
    r->len = 0;
    r->oom = false;
}

static struct MHD_Response *
reply_response(struct reply *r)
{
    if (r->body != NULL) {
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (resp != NULL) {
            r->body = NULL; /* MHD frees it now */
        }
        return resp;
    }
    if (!r->oom) {
        return MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    /* An error whose body could not be allocated: a fixed one. */
    r->ctype_static = "application/json";
    return MHD_create_response_from_buffer(sizeof(OOM_BODY) - 1, IR_UNCONST(OOM_BODY),
                                           MHD_RESPMEM_PERSISTENT);
}

enum MHD_Result
reply_queue(struct MHD_Connection *c, struct reply *r)
{
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *resp = reply_response(r);
    if (resp == NULL) {
        goto out;
    }
    const char *ctype = r->ctype != NULL ? r->ctype : r->ctype_static;
    if (ctype != NULL && r->status != 204) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    }
    if (r->allow != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    }
    if (r->retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%u", r->retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (r->version_header) {
        MHD_add_response_header(resp, "X-InfluxDB-Version", "relay");
    }
    if (r->influx_error != NULL) {
        MHD_add_response_header(resp, "X-Influxdb-Error", r->influx_error);
    }
    if (r->close) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
out:
    reply_cleanup(r);
    return ret;
}
