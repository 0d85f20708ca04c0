/* Base64 (RFC 4648, standard alphabet, with padding), and the HTTP Basic credentials made of it.
 * Pure; any thread. */
#ifndef IR_UTIL_BASE64_H
#define IR_UTIL_BASE64_H

#include <stddef.h>

/* The length of the encoding of n bytes, without the terminating NUL. */
size_t base64_len(size_t n);
/* Writes the encoding of src[0..n) and a NUL to out, which has base64_len(n) + 1 bytes. */
void base64_encode(const void *src, size_t n, char *out);
/* The value of an HTTP Basic Authorization header for user[0..ulen) and pass[0..plen):
 * "Basic " + base64(user ":" pass). Returns owned (free()); the intermediate copy of the
 * password is wiped. */
char *base64_basic(const char *user, size_t ulen, const char *pass, size_t plen);

#endif
