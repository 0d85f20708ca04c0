/* Safe number parsing: whole-string, range-checked, no locale, no errno leaks. Pure; any thread.
 * Returns 0 on success, -1 when s is not a decimal integer in [min, max] (then *out is unset). */
#ifndef IR_UTIL_STRCONV_H
#define IR_UTIL_STRCONV_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Parses s[0..len) as an optionally signed decimal integer. */
int strconv_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out) IR_WARN_UNUSED;
/* Same for a NUL-terminated string. */
int strconv_i64z(const char *s, int64_t min, int64_t max, int64_t *out) IR_WARN_UNUSED;

#endif
