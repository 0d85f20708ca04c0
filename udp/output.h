/* One [udp.R.output.B]: its resolved address, its own send socket, and a batch of datagrams
 * (line-boundary chunks of at most mtu bytes) sent with one sendmmsg per flush.
 * Owned by the relay's listener. After udp_output_open() only the relay's receiving thread uses
 * it, except the counters, which any thread reads. */
#ifndef IR_UDP_OUTPUT_H
#define IR_UDP_OUTPUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "util/err.h"

struct udp_output;

/* Counters of one output, for /metrics (relaxed atomics; any thread reads them). send_errors
 * counts datagrams sendmmsg refused (lost). */
struct udp_output_stats {
    _Atomic uint64_t datagrams_sent;
    _Atomic uint64_t points_sent;
    _Atomic uint64_t lines_dropped_mtu;
    _Atomic uint64_t send_errors;
};

/* Main thread: resolves c->location (numeric or host name, IPv4 or IPv6). relay is the relay's
 * name (copied for logs); c is borrowed and must outlive the output. Opens no socket.
 * Returns owned (free with udp_output_free()), or NULL with *err filled (err->line = c->line). */
struct udp_output *udp_output_new(const char *relay, const struct conf_udp_output *c,
                                  struct ir_err *err);
/* Main thread: creates the send socket. 0, or -1 with *err filled. */
int udp_output_open(struct udp_output *o, struct ir_err *err) IR_WARN_UNUSED;
/* NULL is a no-op. Closes the socket. Whichever thread drops the last generation holding the
 * output (udp/listener.c), once the receiving thread no longer uses it. */
void udp_output_free(struct udp_output *o);

/* Receiving thread: splits data[0..len) (newline-terminated valid lines, points of them) at line
 * boundaries into chunks of at most mtu bytes and queues them; sends the batch whenever it is
 * full. data is borrowed until the next udp_output_flush() and never written (it is not const
 * only because struct iovec is not). A line longer than mtu is dropped,
 * counted and logged (rate-limited). Returns the number of lines dropped that way. */
size_t udp_output_queue(struct udp_output *o, char *data, size_t len, size_t points);
/* Receiving thread: sends every queued chunk (sendmmsg) and counts what went out. */
void udp_output_flush(struct udp_output *o);
/* Receiving thread, at stop: logs the drops counted but not yet reported. */
void udp_output_log_pending(struct udp_output *o);

/* Any thread. The output's name (borrowed from the conf) and counters. */
const char *udp_output_name(const struct udp_output *o);
const struct udp_output_stats *udp_output_stats(const struct udp_output *o);

#endif
