/* HTTP requests to one backend over one libcurl easy handle kept for the sender's whole life
 * (keep-alive reused). With fetch.c, the only module that includes <curl/curl.h>. A struct post
 * belongs to one sender thread; post_global_init()/cleanup() run on the main thread. */
#ifndef IR_BUFFER_POST_H
#define IR_BUFFER_POST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Main thread, before any thread exists: curl_global_init(). 0 or -1. */
int post_global_init(void) IR_WARN_UNUSED;
/* Main thread, after every post is freed. */
void post_global_cleanup(void);

struct post_conf {
    const char *location; /* borrowed, must outlive the post: the backend's /write URL */
    int64_t timeout_ms;   /* whole request, connect included */
    bool skip_tls_verification;
    const _Atomic int64_t *abort_at_ms; /* borrowed, may be NULL: when > 0, a request still
                                         * running at that monotonic ms is aborted */
};

struct post;

/* Main thread. Returns owned (free with post_free()), or NULL with *err filled. */
struct post *post_new(const struct post_conf *c, struct ir_err *err);
/* NULL is a no-op. */
void post_free(struct post *p);

/* One piece of a request body, borrowed until post_write() returns. */
struct post_part {
    const char *data;
    size_t len;
};

struct post_request {
    const char *query; /* borrowed: appended to the location after '?' (may be "" or NULL) */
    const char *auth;  /* borrowed: Authorization header value, or NULL */
    const struct post_part *parts; /* sent back to back, without copying them together */
    size_t n_parts;
};

/* What the backend answered. status 0 = no HTTP answer (error holds the reason). */
struct post_result {
    int status;
    char error[256]; /* curl's error text when status == 0 */
    char *body;      /* owned, NUL-terminated, at most 64 KiB kept; NULL when empty */
    size_t body_len;
    char *ctype; /* owned Content-Type, or NULL */
    int64_t duration_us;
};

/* Owner thread: POST location?query with the parts as body. Fills *res (cleanup on every
 * path). Returns 0 when the backend answered (any status), -1 on a transport error. */
int post_write(struct post *p, const struct post_request *req, struct post_result *res);
/* Owner thread: GET /ping next to the location (its last path segment replaced by "ping").
 * Same returns as post_write(). */
int post_ping(struct post *p, struct post_result *res);
void post_result_cleanup(struct post_result *res);

#endif
