/* HTTP requests to one backend over one libcurl easy handle kept for the sender's whole life
 * (keep-alive reused). With fetch.c, the only module that includes <curl/curl.h>. A struct post
 * belongs to one sender thread; post_global_init()/cleanup() run on the main thread. */
#ifndef IR_BUFFER_POST_H
#define IR_BUFFER_POST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buffer/payload.h"
#include "util/err.h"

/* Main thread, before any thread exists: curl_global_init(). 0 or -1. */
int post_global_init(void) IR_WARN_UNUSED;
/* Main thread, after every post is freed. */
void post_global_cleanup(void);

struct post_conf {
    const char *location; /* borrowed, must outlive the post: the backend's /write URL */
    int64_t timeout_ms;   /* whole request, connect included (a request may ask for less) */
    bool skip_tls_verification;
    bool gzip; /* content-encoding = gzip: line-protocol writes (PAYLOAD_WRITE) go compressed
                * (gzip, level 1) as they are sent, chunked; other kinds go as they are */
    const char *username; /* borrowed, may be NULL: the output's own credentials, sent as HTTP
                           * Basic on every request instead of the client's Authorization, u
                           * and p (copied into the post; the copy is wiped by post_free()) */
    const char *password; /* borrowed; with username */
    const _Atomic int64_t *abort_at_ms; /* borrowed, may be NULL: when > 0, a request still
                                         * running at that monotonic ms is aborted */
};

struct post;

/* Main thread. Returns owned (free with post_free()), or NULL with *err filled. No proxy is ever
 * used, whatever http_proxy, HTTPS_PROXY, ALL_PROXY or NO_PROXY say (curl would honour them).
 * The credentials are read once, here: a post built from a reloaded configuration (a new
 * password-file content) sends the new ones. */
struct post *post_new(const struct post_conf *c, struct ir_err *err);
/* NULL is a no-op. */
void post_free(struct post *p);

/* One piece of a request body, borrowed until post_write() returns. */
struct post_part {
    const char *data;
    size_t len;
};

struct post_request {
    enum payload_kind kind; /* where and how: see post_url_of() */
    int64_t timeout_ms;     /* this request's whole time, 0 = the configured timeout (a larger
                             * value is cut to it) */
    const char *query;      /* borrowed: appended to the URL after '?' (may be "" or NULL);
                             * with the output's own credentials, without its u and p */
    const char *auth;       /* borrowed: the client's Authorization header value, or NULL (not
                             * sent when the output has its own credentials) */
    const struct post_part *parts; /* sent back to back, without copying them together */
    size_t n_parts;
};

/* What the backend answered. status 0 = no HTTP answer (error holds the reason). */
struct post_result {
    int status;
    char error[256]; /* curl's error text when status == 0; for a 3xx, where it redirects */
    bool sent;       /* the whole request body was handed to the backend's connection: without
                      * an answer (status 0) the backend may have stored it all the same */
    bool timed_out;  /* status 0 because the request's timeout ran out */
    char *body;      /* owned, NUL-terminated, at most 64 KiB kept; NULL when empty */
    size_t body_len;
    char *ctype; /* owned Content-Type, or NULL */
    int64_t duration_us;
    uint64_t wire_bytes; /* request body bytes handed to the connection (compressed with gzip;
                          * again after a rewind), chunk framing and headers not counted */
};

/* Owner thread: POST the parts as one body to the URL of req->kind (?query appended), with the
 * kind's headers (see post_url_of()): a write compressed as it is read from the parts when the
 * output gzips (never a copy of the whole batch). Fills *res (cleanup on every path). Returns 0
 * when the backend answered (any status), -1 on a transport error. */
int post_write(struct post *p, const struct post_request *req, struct post_result *res);
/* Owner thread: GET /ping next to the location (its last path segment replaced by "ping").
 * Same returns as post_write(). */
int post_ping(struct post *p, struct post_result *res);
void post_result_cleanup(struct post_result *res);

/* The URL a payload of kind k goes to, from the output's location: the location itself for a
 * write; otherwise the location with its last path segment (and its query string) replaced by
 * "api/v1/prom/write" (PROM) or "query" (QUERY), as /ping is derived:
 * http://h:8086/write -> http://h:8086/query, http://h/influx/write -> http://h/influx/query.
 * Returns owned (free()). Any thread. */
char *post_url_of(const char *location, enum payload_kind k);

#endif
