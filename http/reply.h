/* Answers of the HTTP relays: a plain description of one response (status, body, headers) built by
 * the handlers and turned into a libmicrohttpd response by reply_queue(), plus InfluxDB-style JSON
 * errors {"error":"..."} with the message escaped. Called from MHD connection threads only; no
 * shared state. The only file of the code base that drops a const (IR_UNCONST, for MHD 0.9.75). */
#ifndef IR_HTTP_REPLY_H
#define IR_HTTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

/* One answer. Zero-initialise, then fill with the reply_* helpers. */
struct reply {
    int status;
    char *body; /* owned (malloc'd), or NULL for an empty body */
    size_t len;
    char *ctype;              /* owned Content-Type, or NULL (then ctype_static applies) */
    const char *ctype_static; /* borrowed string literal, or NULL = no Content-Type */
    const char *allow;        /* borrowed literal for an Allow header, or NULL */
    unsigned retry_after_s;   /* Retry-After header when > 0 */
    bool version_header;      /* X-InfluxDB-Version: relay */
    char *influx_error;       /* owned X-Influxdb-Error value (one line), or NULL */
    bool close;               /* Connection: close (the relay is shutting down) */
    bool oom;                 /* an error body could not be allocated: send a fixed one */
};

/* Fills r with an empty answer of the given status (e.g. 204). Any thread. */
void reply_empty(struct reply *r, int status);
/* Fills r with status and a JSON error {"error":"<msg>"} plus a newline (as influxd and the Go
 * relay write it), msg escaped as Go's encoding/json does. Never fails: when memory is short the
 * body is a fixed message. */
void reply_error(struct reply *r, int status, const char *msg);
/* Same for a message of len bytes (may hold NUL, quotes, control characters) between prefix and
 * suffix, both NUL-terminated literals (may be ""). */
void reply_error3(struct reply *r, int status, const char *prefix, const char *msg, size_t len,
                  const char *suffix);
/* Fills r with status and body (takes ownership of body, malloc'd, len bytes). ctype is borrowed
 * (a literal). */
void reply_body(struct reply *r, int status, char *body, size_t len, const char *ctype);
/* Frees what r owns; r may then be reused. */
void reply_cleanup(struct reply *r);

/* Queues r on the connection (from the access handler) and releases what r owns on every path.
 * Returns MHD_YES, or MHD_NO when MHD could not take it (MHD then closes the connection). */
enum MHD_Result reply_queue(struct MHD_Connection *c, struct reply *r);

#endif
