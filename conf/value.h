/* Pure value parsers for the configuration: Go durations, decimal integers, booleans, enums,
 * URLs and names (host:port addresses: util/hostport.h). No I/O, no allocation, no globals;
 * any thread. Depends on libc and util/ only, so tools/convert.c can compile it in as well.
 * Each parser returns VALUE_OK and sets *out, or a status saying why it refused (*out unset). */
#ifndef IR_CONF_VALUE_H
#define IR_CONF_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hostport.h"

#define IR_VALUE_WARN_UNUSED __attribute__((warn_unused_result))

/* The longest relay or output name. */
#define VALUE_NAME_MAX 64

enum value_status {
    VALUE_OK,
    VALUE_INVALID,  /* not the expected syntax */
    VALUE_RANGE,    /* well formed but outside [min, max] (or overflowing) */
    VALUE_NEGATIVE, /* a negative duration */
};

/* Go's time.ParseDuration: [-+]? ( decimal[.fraction] unit )+ with units ns us µs μs ms s m h,
 * or "0". Overflow of int64 nanoseconds -> VALUE_RANGE. */
enum value_status value_duration_ns(const char *s, int64_t *ns) IR_VALUE_WARN_UNUSED;

/* A non-negative Go duration in milliseconds, rounded up (so 1us -> 1ms) unless that would
 * exceed max_ms, checked against [min_ms, max_ms]. Negative -> VALUE_NEGATIVE. */
enum value_status value_duration_ms(const char *s, int64_t min_ms, int64_t max_ms,
                                    int64_t *ms) IR_VALUE_WARN_UNUSED;

/* Formats ms the way Go prints a duration, shortest form: "0s", "500ms", "1m30s", "2h0m0s"
 * becomes "2h". Always NUL-terminates. Returns buf. */
const char *value_format_ms(int64_t ms, char *buf, size_t len);

/* A decimal integer [-+]?[0-9]+ in [min, max]. */
enum value_status value_int(const char *s, int64_t min, int64_t max,
                            int64_t *out) IR_VALUE_WARN_UNUSED;

/* "true" or "false" exactly. */
enum value_status value_bool(const char *s, bool *out) IR_VALUE_WARN_UNUSED;

/* s equal to names[i] for an i < n (exact, case-sensitive): *out = i. */
enum value_status value_enum(const char *s, const char *const *names, size_t n,
                             int *out) IR_VALUE_WARN_UNUSED;

/* http://HOST[:PORT][/path][?query][#fragment] or https://...; scheme case-insensitive,
 * optional user:password@, HOST:PORT as util/hostport.h parses it (non-empty host, IPv6
 * bracketed, PORT 1-65535). No name resolution. Userinfo and fragment are reported, not refused:
 * the caller decides. */
struct value_url {
    bool https;
    struct hostport hp;  /* the port is the explicit one, or 80 / 443 */
    size_t userinfo_off; /* "user:password@" at s[userinfo_off..+userinfo_len) */
    size_t userinfo_len; /* 0 = none */
    size_t fragment_off; /* '#' of the fragment, 0 = none */
};
enum value_status value_url(const char *s, struct value_url *out) IR_VALUE_WARN_UNUSED;
/* s with the password of its userinfo replaced by "xxxxx" (as Go's url.URL.Redacted()), for
 * messages: a password is never shown. Always NUL-terminates. Returns buf. */
const char *value_url_redacted(const char *s, char *buf, size_t len);

/* A relay or output name: [A-Za-z0-9_-]+, at most VALUE_NAME_MAX characters. */
bool value_name_is_valid(const char *s, size_t len);

#endif
