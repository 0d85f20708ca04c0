/* JSON strings: the one escaper and the one UTF-8 validator of the code base. Invalid UTF-8 is
 * written as \ufffd, one per bad byte, as Go's encoding/json does, so every output is valid
 * UTF-8 JSON whatever the input (client bytes in a log line or an error body). Two flavours:
 * JSON_ESC_MINIMAL (quote, backslash, control characters as \u00XX: log lines, /health) and
 * JSON_ESC_GO (Go's encoding/json with HTML escaping, as influxd writes its errors: \n \r \t,
 * <, >, & as \u003c \u003e \u0026, U+2028 and U+2029 escaped). Also one reader: a string
 * member of a JSON object (json_member_string()). Pure; any thread. */
#ifndef IR_UTIL_JSON_H
#define IR_UTIL_JSON_H

#include <stddef.h>

#include "util/dbuf.h"

enum json_esc { JSON_ESC_MINIMAL, JSON_ESC_GO };

/* The most bytes json_escape_one() writes. */
#define JSON_ESC_MAX 6

/* Length of the valid UTF-8 sequence (2 to 4 bytes: no overlong form, no surrogate, nothing
 * above U+10FFFF) at s[0..n), n >= 1; 0 when s[0] does not start one (ASCII included). */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* Appends the UTF-8 form of code point cp (below 0x110000) to b. */
void utf8_append(struct dbuf *b, unsigned long cp);

/* Escapes the character at s[0..n), n >= 1: writes its JSON form to out (at most JSON_ESC_MAX
 * bytes) and returns that length; *used gets the input bytes it stands for (1 to 4). */
size_t json_escape_one(const char *s, size_t n, enum json_esc how, char *out, size_t *used);

/* Appends the escape of s[0..n) (without quotes) to b. */
void json_escape(struct dbuf *b, const char *s, size_t n, enum json_esc how);
/* Appends the NUL-terminated s as a JSON string, quotes included. */
void json_str(struct dbuf *b, const char *s, enum json_esc how);

/* Reading (an answer's error message): when s[0..n) is a JSON object (blanks around allowed)
 * with a member named key whose value is a string, appends that string, unescaped (\uXXXX as
 * UTF-8, a lone surrogate as U+FFFD; other bytes as they are), to out and returns 0; otherwise
 * -1 (out may then hold part of it). Nesting deeper than 32 levels counts as not JSON. */
int json_member_string(const char *s, size_t n, const char *key, struct dbuf *out);

#endif
