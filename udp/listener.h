/* UDP relays: one receiving thread per [udp.R] that validates and stamps each datagram through
 * lp/ and forwards it to every [udp.R.output.B], split at line boundaries into datagrams of at
 * most mtu bytes. Owned by relay/service.c (reference-counted: relay/world.c's views hold
 * references too). Holds a reference on its section's conf tree; a reload hands it a new
 * section (udp_listener_prepare(), udp_listener_commit()). */
#ifndef IR_UDP_LISTENER_H
#define IR_UDP_LISTENER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "udp/output.h"
#include "util/err.h"

struct udp_listener;

/* Main thread: resolves the outputs (numeric or host names), binds nothing, starts nothing.
 * Returns owned, or NULL with *err filled (err->line set to the offending conf line). */
struct udp_listener *udp_listener_new(const struct conf_udp *c, struct ir_err *err);

/* Main thread, a reload, step 1 for a relay that stays: resolves the outputs whose settings
 * changed or that are new and makes their sockets (unchanged ones are kept as they are: socket
 * and counters), and binds c's address when it changed. 0, or -1 with *err filled (nothing
 * changed; udp_listener_abort()). */
int udp_listener_prepare(struct udp_listener *l, const struct conf_udp *c,
                         struct ir_err *err) IR_WARN_UNUSED;
/* Main thread, a reload that failed elsewhere: forgets what udp_listener_prepare() made. */
void udp_listener_abort(struct udp_listener *l);
/* Main thread, a reload, step 2: the same bind-addr keeps its socket and thread, which takes the
 * new outputs and precision before the next datagrams it handles (read-buffer is applied to the
 * socket at once); a changed bind-addr ends the thread, closes the old socket and receives on
 * the new one. /metrics shows the new outputs from now on. */
void udp_listener_commit(struct udp_listener *l);
/* Main thread: binds the socket now (a reload binds a new relay before it commits anything);
 * udp_listener_start() then uses it. 0 or -1 (err filled). */
int udp_listener_bind(struct udp_listener *l, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: binds (unless udp_listener_bind() did), applies read-buffer, starts the receiving
 * thread. 0 or -1 (err filled). */
int udp_listener_start(struct udp_listener *l, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stops the receiving thread (shutdown(SHUT_RD) wakes its recvmmsg, a broadcast
 * its backoff wait), joins it and closes the socket. Datagrams still queued in the socket are
 * not forwarded. Idempotent. */
void udp_listener_stop(struct udp_listener *l);
/* Tests only, main thread, before udp_listener_start(): fault(ctx) runs before each receive, on
 * the receiving thread; a non-zero result fails that receive with that errno. */
void udp_listener_inject_fault(struct udp_listener *l, int (*fault)(void *ctx), void *ctx);
/* Any thread: one more reference (a view of relay/world.c). Returns l. */
struct udp_listener *udp_listener_ref(struct udp_listener *l);
/* Any thread: drops a reference; the last one stops the relay when still running (which only
 * the main thread may do: the service stops it before it drops its reference) and frees it.
 * NULL is a no-op. */
void udp_listener_unref(struct udp_listener *l);
/* Main thread: drops the service's reference (udp_listener_unref()). NULL is a no-op. */
void udp_listener_free(struct udp_listener *l);

/* Counters for /metrics and /health (relaxed atomics; any thread reads them). lines_dropped_mtu
 * is the sum over the relay's outputs: a line longer than two outputs' mtu counts twice.
 * receive_errors counts failed receives (the thread backs off and keeps receiving);
 * receiver_up is 1 while the receiving thread runs, 0 before start, after stop, or when it
 * ended because its socket became unusable (EBADF, ENOTSOCK). */
struct udp_stats {
    _Atomic uint64_t datagrams_received;
    _Atomic uint64_t points_received;
    _Atomic uint64_t lines_dropped_invalid;
    _Atomic uint64_t lines_dropped_mtu;
    _Atomic uint64_t receive_errors;
    _Atomic uint64_t receiver_up;
};
/* Any thread. The relay's name (owned by l). */
const char *udp_listener_name(const struct udp_listener *l);
const struct udp_stats *udp_listener_stats(const struct udp_listener *l);
/* The relay's newest outputs: a reference to release with udp_gen_put(). Any thread. */
struct udp_gen;
struct udp_gen *udp_listener_gen_get(struct udp_listener *l);
void udp_gen_put(struct udp_gen *g);
/* Output i's name and counters (udp/output.h, borrowed while g is held), i < the number of
 * outputs; NULL past the end. */
const struct udp_output_stats *udp_gen_output(const struct udp_gen *g, size_t i, const char **name);
/* The same for l's newest outputs, when no reload runs (tests). */
const struct udp_output_stats *udp_listener_output(const struct udp_listener *l, size_t i,
                                                   const char **name);

#endif
