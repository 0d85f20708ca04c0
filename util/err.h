/* Error carrier and compiler helpers shared by every module.
 * Lower layers (util, lp, conf, queue) never log: they fill a struct ir_err and return -1;
 * the caller that decides what happens next logs it once. Header only. */
#ifndef IR_UTIL_ERR_H
#define IR_UTIL_ERR_H

#include <stddef.h>
#include <stdint.h>

#define IR_WARN_UNUSED  __attribute__((warn_unused_result))
#define IR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define IR_FALLTHROUGH  __attribute__((fallthrough))
#define IR_UNUSED       __attribute__((unused))
/* The only const-dropping cast of the code base; used only in http/reply.c (MHD 0.9.75). */
#define IR_UNCONST(p)   ((void *)(uintptr_t)(p))
#define IR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A failure description filled by the callee: line is 0 when no file line applies. */
struct ir_err {
    int line;
    char msg[256];
};

/* Formats into e->msg (truncating) and sets e->line. e may be NULL. Any thread. */
void ir_err_set(struct ir_err *e, int line, const char *fmt, ...) IR_PRINTF(3, 4);

/* strerror_r into buf; returns buf. Any thread. */
const char *ir_strerror(int errnum, char *buf, size_t len);

#endif
