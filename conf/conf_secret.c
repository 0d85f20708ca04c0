/* explicit_bzero() (glibc, BSD): a wipe of a password the compiler cannot drop. */
#define _DEFAULT_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "conf/conf_secret.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

/* Reads at most max + 1 bytes of the regular file at path into buf (max + 1 bytes); returns
 * the count, or -1 with err filled. O_NONBLOCK: a FIFO must not hang the start-up. */
static ssize_t
read_small_file(const char *path, char *buf, size_t max, struct ir_err *err)
{
    char eb[128];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        ir_err_set(err, 0, "cannot read \"%s\": %s", path, ir_strerror(e, eb, sizeof(eb)));
        return -1;
    }
    struct stat st;
    ssize_t got = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ir_err_set(err, 0, "\"%s\" is not a regular file", path);
        got = -1;
    }
    while (got >= 0 && (size_t)got <= max) {
        ssize_t n = read(fd, buf + got, max + 1 - (size_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            ir_err_set(err, 0, "cannot read \"%s\": %s", path, ir_strerror(e, eb, sizeof(eb)));
            got = -1;
        } else if (n == 0) {
            break;
        } else {
            got += n;
        }
    }
    close(fd);
    return got;
}

int
conf_output_read_password(struct conf_http_output *o, struct ir_err *err)
{
    char buf[CONF_PASSWORD_FILE_MAX + 1];
    ssize_t n = read_small_file(o->password_file, buf, CONF_PASSWORD_FILE_MAX, err);
    int rc = -1;
    if (n > CONF_PASSWORD_FILE_MAX) {
        ir_err_set(err, 0, "\"%s\" is larger than %d bytes", o->password_file,
                   CONF_PASSWORD_FILE_MAX);
    } else if (n >= 0 && memchr(buf, '\0', (size_t)n) != NULL) {
        ir_err_set(err, 0, "\"%s\" holds a NUL byte", o->password_file);
    } else if (n >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && buf[len - 1] == '\n') {
            len--;
            len -= len > 0 && buf[len - 1] == '\r';
        }
        conf_password_wipe(o);
        o->password = xmalloc(len + 1);
        memcpy(o->password, buf, len);
        o->password[len] = '\0';
        rc = 0;
    }
    if (err != NULL) {
        err->line = o->password_file_line;
    }
    explicit_bzero(buf, sizeof(buf));
    return rc;
}

/* The rules between username, password and password-file of one output. */
static void
check_output(const char *relay, struct conf_http_output *o, struct conf_errs *errs)
{
    const char *sec = o->name;
    if (o->password != NULL && o->password_file != NULL) {
        int first =
                o->password_line < o->password_file_line ? o->password_line : o->password_file_line;
        int second = first == o->password_line ? o->password_file_line : o->password_line;
        conf_errs_add(errs, second,
                      "[http.%s.output.%s] password and password-file are both set (first at "
                      "line %d): keep one of them",
                      relay, sec, first);
        return;
    }
    bool has_password = o->password != NULL || o->password_file != NULL;
    if (o->username != NULL && !has_password) {
        conf_errs_add(errs, o->username_line,
                      "[http.%s.output.%s] username: needs password or password-file (an empty "
                      "password is an empty password-file)",
                      relay, sec);
    } else if (o->username == NULL && has_password) {
        bool file = o->password_file != NULL;
        conf_errs_add(errs, file ? o->password_file_line : o->password_line,
                      "[http.%s.output.%s] %s: needs username", relay, sec,
                      file ? "password-file" : "password");
    }
    if (o->password_file == NULL) {
        return;
    }
    struct ir_err e = {0, ""};
    if (conf_output_read_password(o, &e) != 0) {
        conf_errs_add(errs, e.line, "[http.%s.output.%s] password-file: %s", relay, sec, e.msg);
    }
}

void
conf_secrets_load(struct conf *c, struct conf_errs *errs)
{
    for (size_t i = 0; i < c->n_http; i++) {
        for (size_t j = 0; j < c->http[i].n_outputs; j++) {
            check_output(c->http[i].name, &c->http[i].outputs[j], errs);
        }
    }
}
