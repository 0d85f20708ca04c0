/* Allocation for fixed-size internal objects: log and abort() on exhaustion.
 * Never use these for sizes that come from client input (bodies, batches): those use a checked
 * malloc bounded by config and fail the request. Any thread. */
#ifndef IR_UTIL_XALLOC_H
#define IR_UTIL_XALLOC_H

#include <stddef.h>

/* Returns owned memory; free with free(). Never returns NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* What the functions above do on exhaustion (log, abort()), for a fixed-size allocation made
 * elsewhere (a dbuf without bound holding a few hundred bytes). */
void xalloc_die(void) __attribute__((noreturn));

#endif
