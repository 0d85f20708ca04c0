/* URL query strings and application/x-www-form-urlencoded bodies: the one codec of the code base.
 * Encoding keeps the unreserved bytes (A-Z a-z 0-9 - _ . ~) and percent-encodes every other;
 * lookups read a form as Go's net/url does (what influxd sees): pairs split on '&', a pair that
 * holds a ';' or a bad %-escape is skipped, '+' is a space, the first pair of a key wins.
 * Pure; any thread. */
#ifndef IR_UTIL_FORM_H
#define IR_UTIL_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "util/dbuf.h"

/* Appends s[0..n) percent-encoded. */
void form_escape(struct dbuf *b, const char *s, size_t n);
/* Appends "key=<v encoded>", preceded by '&' when b is not empty. */
void form_add(struct dbuf *b, const char *key, const char *v, size_t n);
/* Looks key up in the encoded form s[0..n): true when a pair has it, its value decoded and
 * appended to out (which may stay empty: "key" and "key=" have an empty value). */
bool form_get(const char *s, size_t n, const char *key, struct dbuf *out);

#endif
