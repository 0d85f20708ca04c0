/* The connections of one HTTP relay: admission against max-connections (the refused ones
 * counted), the open-connections gauge, and read-timeout: a request whose headers and body are
 * not complete read-timeout after its first byte is closed, from the timer thread. Called from
 * libmicrohttpd's callbacks on the worker thread that owns each connection; the read deadlines
 * are checked on the timer thread. The set is owned by struct httpd. */
#ifndef IR_HTTP_CONN_H
#define IR_HTTP_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "http/stats.h"
#include "util/timer.h"

struct conn_set_conf {
    int64_t max_connections;
    int64_t read_timeout_ms;
    bool tls;                  /* HTTPS: no 408 is written at a read timeout, the socket closes */
    struct timer *timer;       /* borrowed, must outlive the set */
    struct httpd_stats *stats; /* borrowed: connections, connections_refused, read_timeouts */
};

struct conn_set;
struct conn;

/* Main thread: makes the set (and its two timer lanes, so before timer_start()). Never NULL. */
struct conn_set *conn_set_new(const struct conn_set_conf *c);
/* Main thread (a reload): max-connections applies at once; read-timeout and TLS to connections
 * opened from now on (open ones keep theirs). c->timer and c->stats must be the set's. */
void conn_set_reconfigure(struct conn_set *s, const struct conn_set_conf *c);
/* Main thread, once every connection is closed. NULL is a no-op. */
void conn_set_free(struct conn_set *s);

/* Accept policy (worker thread): true when a connection may open (it is counted from now on),
 * false when max-connections are open (counted as refused; the caller closes it). */
bool conn_admit(struct conn_set *s);
/* A connection admitted by conn_admit() opened (worker thread): returns its state, owned until
 * conn_close(). fd is the connection's socket, valid until conn_close() returns. */
struct conn *conn_open(struct conn_set *s, int fd);
/* The connection is closing, before its socket is closed (worker thread): waits for a read
 * timeout being enforced on it, forgets it and frees c. */
void conn_close(struct conn *c);

/* Request line received (worker thread): the request's read deadline starts now unless an
 * earlier first byte was seen. False when the read timeout already closed the connection. */
bool conn_request_begin(struct conn *c);
/* Headers and body read, or the request answered before its body (worker thread): no read
 * deadline any more. False when the read timeout closed the connection first (then nothing of
 * the request may be acted on or answered). */
bool conn_request_read(struct conn *c) IR_WARN_UNUSED;
/* The answer was sent and the connection stays open (worker thread): idle until the next
 * request's first byte. */
void conn_request_done(struct conn *c);

#endif
