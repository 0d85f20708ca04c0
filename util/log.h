/* Logging to stderr: one event = one line = one write(2), so threads never interleave.
 * Text format (default) starts with Go's "2006/01/02 15:04:05 " prefix in UTC. Events the Go
 * relay logged keep its exact wording through log_go(); new events read
 * "LEVEL WHO: message key=value ...". JSON format: one object per line with time, level,
 * message, relay, backend and the trailing key=value pairs of the message as fields.
 * The level is checked before any formatting. Any thread. */
#ifndef IR_UTIL_LOG_H
#define IR_UTIL_LOG_H

#include <stdbool.h>

#include "util/err.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the level and the format. Any thread, any time (a reload applies them at once): both are
 * atomics, read for each line. Default: LOG_INFO, text. */
void log_init(enum log_level level, bool json);
bool log_enabled(enum log_level level);

/* who: NULL (process), "RELAY" or "RELAY/BACKEND". */
void log_msg(enum log_level level, const char *who, const char *fmt, ...) IR_PRINTF(3, 4);
#define log_error(who, ...) log_msg(LOG_ERROR, (who), __VA_ARGS__)
#define log_warn(who, ...)  log_msg(LOG_WARN, (who), __VA_ARGS__)
#define log_info(who, ...)  log_msg(LOG_INFO, (who), __VA_ARGS__)
#define log_debug(who, ...) log_msg(LOG_DEBUG, (who), __VA_ARGS__)

/* A line in the Go relay's exact wording (text format: prefix + message, nothing else), e.g.
 * log_go(LOG_WARN, "r", "b", "5xx response for relay \"r\" backend \"b\": 503 status=503").
 * Trailing key=value pairs are dropped from text and become JSON fields. relay/backend may be
 * NULL. */
void log_go(enum log_level level, const char *relay, const char *backend, const char *fmt, ...)
        IR_PRINTF(4, 5);

/* Startup errors on the main thread only: logs at error level and exit(1). */
void fatal(const char *fmt, ...) IR_PRINTF(1, 2) __attribute__((noreturn));

#endif
