/* strerror_r must be the XSI variant: keep _GNU_SOURCE out of this file. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
ir_err_set(struct ir_err *e, int line, const char *fmt, ...)
{
    if (e == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->line = line;
}

const char *
ir_strerror(int errnum, char *buf, size_t len)
{
    if (strerror_r(errnum, buf, len) != 0) {
        snprintf(buf, len, "error %d", errnum);
    }
    return buf;
}
