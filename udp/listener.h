/* UDP relays: one receiving thread per [udp.R] that validates and stamps each datagram through
 * lp/ and forwards it to every [udp.R.output.B], split at line boundaries into datagrams of at
 * most mtu bytes. Owned by relay/service.c; borrows its conf section. */
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
/* Main thread: binds, applies read-buffer, starts the receiving thread. 0 or -1 (err filled). */
int udp_listener_start(struct udp_listener *l, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread: stops the receiving thread (shutdown(SHUT_RD) wakes its recvmmsg, a broadcast
 * its backoff wait), joins it and closes the socket. Datagrams still queued in the socket are
 * not forwarded. Idempotent. */
void udp_listener_stop(struct udp_listener *l);
/* Tests only, main thread, before udp_listener_start(): fault(ctx) runs before each receive, on
 * the receiving thread; a non-zero result fails that receive with that errno. */
void udp_listener_inject_fault(struct udp_listener *l, int (*fault)(void *ctx), void *ctx);
/* NULL is a no-op. */
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
/* Any thread. The relay's name (borrowed from the conf). */
const char *udp_listener_name(const struct udp_listener *l);
const struct udp_stats *udp_listener_stats(const struct udp_listener *l);
/* Output i's name and counters (udp/output.h), i < the number of outputs; NULL past the end. */
const struct udp_output_stats *udp_listener_output(const struct udp_listener *l, size_t i,
                                                   const char **name);

#endif
