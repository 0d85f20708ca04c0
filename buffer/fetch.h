/* Streaming proxied requests to backends (the /query read path): ONE thread runs a libcurl multi
 * handle and performs every fetch of the process concurrently; each response is handed to its
 * consumer as it arrives, status and headers first, then the body through a bounded buffer per
 * fetch. When that buffer is full the transfer is paused (nothing more is read from the
 * backend's socket) and resumed once the consumer has drained it, so a response is never held
 * whole. Reads never block: a consumer that finds nothing gets FETCH_AGAIN and, exactly once,
 * its notify callback when something changed (so a suspended connection can be resumed).
 * The fetcher is owned by relay/service.c; a fetch belongs to its consumer from fetch_start()
 * to fetch_release(). Lock order: a fetch's lock and the fetcher's lock are never held
 * together; callbacks run without locks. */
#ifndef IR_BUFFER_FETCH_H
#define IR_BUFFER_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Bytes of body a fetch holds at most by default, and the least it may be given (curl hands
 * over up to 16 KiB at once and a paused hand-over cannot be split). */
#define FETCH_BUFFER_DEFAULT ((size_t)64 * 1024)
#define FETCH_BUFFER_MIN     ((size_t)16 * 1024)

struct fetcher;
struct fetch;

/* The four lifecycle calls below are made by the thread that starts or stops the service (main,
 * or the shutdown thread), one at a time. */
/* The engine, its thread not started. NULL with *err filled on failure. */
struct fetcher *fetcher_new(struct ir_err *err);
/* Starts the fetch thread. 0 or -1 with *err filled. */
int fetcher_start(struct fetcher *fr, struct ir_err *err) IR_WARN_UNUSED;
/* Ends every fetch still running with an error ("relay shutting down", each consumer notified
 * as usual) and joins the thread. Later fetch_start() calls give fetches that already failed.
 * Fetches not yet released stay valid. Idempotent; a no-op on NULL and before the start. */
void fetcher_stop(struct fetcher *fr);
/* After fetcher_stop() and after every fetch was released. NULL is a no-op. */
void fetcher_free(struct fetcher *fr);

/* Fetch thread: something changed for a consumer that got FETCH_AGAIN (head or body bytes
 * ready, the end, an error). Called once per FETCH_AGAIN, never after fetch_release() has
 * returned, without any lock held. It must be short and must not wait for a lock that a thread
 * calling fetch_release() may hold (MHD_resume_connection() is fine). */
typedef void (*fetch_notify_fn)(void *arg);

struct fetch_request {
    const char *url;      /* copied: the whole URL, query string included */
    const char *body;     /* copied: the POST body, or NULL for a GET */
    size_t body_len;      /* bytes of body */
    const char *ctype;    /* copied, may be NULL: Content-Type of the body */
    const char *auth;     /* copied, may be NULL: the Authorization header value */
    const char *accept;   /* copied, may be NULL: the client's Accept (influxd: CSV, msgpack) */
    const char *encoding; /* copied, may be NULL: the client's Accept-Encoding; the backend's
                           * Content-Encoding then comes back as is (nothing decoded here) */
    int64_t connect_timeout_ms; /* TCP (and TLS) connect; 0 = curl's default */
    int64_t idle_timeout_ms;    /* the request fails when the backend sends nothing for that
                                 * long while the consumer is not the one holding it up (time
                                 * paused on a full buffer does not count); 0 = none */
    bool skip_tls_verification;
    size_t buffer_bytes; /* the body bound; 0 = FETCH_BUFFER_DEFAULT, at least FETCH_BUFFER_MIN */
    fetch_notify_fn notify;
    void *notify_arg; /* borrowed, must stay valid until fetch_release() returns */
};

/* Any thread: starts a fetch. Always returns an owned fetch (free it with fetch_release());
 * when it cannot start (stopped engine, out of memory for the request) its head reports
 * FETCH_ERROR at once. */
struct fetch *fetch_start(struct fetcher *fr, const struct fetch_request *req);

enum fetch_status {
    FETCH_OK,    /* fetch_head(): the head is ready; fetch_read(): *n > 0 bytes were read */
    FETCH_AGAIN, /* nothing yet: notify will be called once */
    FETCH_END,   /* fetch_read(): the body is complete and every byte was read */
    FETCH_ERROR, /* failed: fetch_error() says why (no answer, timeout, cut mid-body) */
};

struct fetch_header {
    const char *name;  /* as the backend spelled it */
    const char *value; /* leading and trailing spaces removed */
};

/* The backend's answer line and headers (the final ones: 1xx answers are skipped). Owned by the
 * fetch, valid until fetch_release(). Connection, Keep-Alive, Transfer-Encoding, Trailer,
 * Upgrade and Proxy-* headers are left out (hop by hop); Content-Length is in content_length. */
struct fetch_head {
    int status;
    int64_t content_length; /* -1 when the backend sent none (chunked, or until close) */
    const struct fetch_header *headers;
    size_t n_headers;
};

/* Consumer (one thread at a time): FETCH_OK with *head filled, FETCH_AGAIN, or FETCH_ERROR
 * when the backend gave no answer. */
enum fetch_status fetch_head(struct fetch *f, struct fetch_head *head);
/* Consumer (one thread at a time), after the head: copies up to cap body bytes into dst.
 * FETCH_OK (*n > 0), FETCH_AGAIN, FETCH_END (all read), FETCH_ERROR (the transfer failed
 * after the bytes already read). Draining the buffer lets a paused transfer go on. */
enum fetch_status fetch_read(struct fetch *f, char *dst, size_t cap, size_t *n);
/* Consumer: why the fetch failed (static or owned by the fetch), "" when it did not. */
const char *fetch_error(struct fetch *f);
/* Consumer: body bytes held right now (never above the buffer bound). */
size_t fetch_buffered(struct fetch *f);
/* Consumer, at any point (the client went away, or the answer is done): aborts the transfer
 * if it still runs and gives the fetch up. When it returns, notify is not running and will not
 * be called again. May be called from inside notify. NULL is a no-op. */
void fetch_release(struct fetch *f);

/* Any thread: fetches started and not yet finished by the fetch thread, for /metrics. */
uint64_t fetcher_active(const struct fetcher *fr);

#endif
