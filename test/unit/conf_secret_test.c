/* conf/conf_secret.c: password files (newline handling, bounds, what is refused, that a FIFO
 * does not hang) and the messages, which never hold the password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "conf/conf_secret.h"

static char dir[] = "/tmp/conf_secret_testXXXXXX";

static char *
put(const char *name, const char *data, size_t n)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f != NULL) {
        CHECK(fwrite(data, 1, n, f) == n);
        fclose(f);
    }
    return path;
}

/* Reads data (n bytes) as a password file; returns the password read, or NULL (message in
 * err). */
static char *
read_as(const char *data, size_t n, struct ir_err *err)
{
    struct conf_http_output o = {0};
    o.password_file = put("pw", data, n);
    o.password_file_line = 7;
    o.password = strdup("previous");
    int rc = conf_output_read_password(&o, err);
    CHECK_EQ_I64(err->line, 7);
    if (rc != 0) {
        CHECK_STREQ(o.password, "previous"); /* unchanged on failure */
        conf_password_wipe(&o);
        return NULL;
    }
    return o.password;
}

static void
check_read(const char *data, size_t n, const char *want)
{
    struct ir_err err = {0, ""};
    char *got = read_as(data, n, &err);
    CHECK_STREQ(got, want);
    free(got);
}

static void
test_contents(void)
{
    check_read("s3cret\n", 7, "s3cret");
    check_read("s3cret\r\n", 8, "s3cret");
    check_read("s3cret", 6, "s3cret");
    check_read("s3cret\n\n", 8, "s3cret\n");
    check_read(" two words \n", 12, " two words ");
    check_read("", 0, "");
    check_read("\n", 1, "");
    char big[CONF_PASSWORD_FILE_MAX + 1];
    memset(big, 'x', sizeof(big));
    big[CONF_PASSWORD_FILE_MAX - 1] = '\n';
    struct ir_err err = {0, ""};
    char *got = read_as(big, CONF_PASSWORD_FILE_MAX, &err);
    CHECK(got != NULL && strlen(got) == CONF_PASSWORD_FILE_MAX - 1);
    free(got);
    CHECK(read_as(big, sizeof(big), &err) == NULL);
    CHECK(strstr(err.msg, "is larger than 4096 bytes") != NULL);
    CHECK(read_as("ab\0cd", 5, &err) == NULL);
    CHECK(strstr(err.msg, "holds a NUL byte") != NULL);
    CHECK(strstr(err.msg, "ab") == NULL || strstr(err.msg, "/pw") != NULL);
}

static void
test_not_files(void)
{
    struct ir_err err = {0, ""};
    struct conf_http_output o = {0};
    char path[256];
    snprintf(path, sizeof(path), "%s/missing", dir);
    o.password_file = path;
    CHECK(conf_output_read_password(&o, &err) != 0);
    CHECK(strstr(err.msg, "cannot read") != NULL && strstr(err.msg, "No such file") != NULL);
    o.password_file = dir;
    CHECK(conf_output_read_password(&o, &err) != 0);
    CHECK(strstr(err.msg, "is not a regular file") != NULL);
    /* A FIFO without a writer: refused at once, not waited on. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    o.password_file = path;
    CHECK(conf_output_read_password(&o, &err) != 0);
    CHECK(strstr(err.msg, "is not a regular file") != NULL);
    CHECK(o.password == NULL);
    unlink(path);
}

/* The cross-checks, through conf_secrets_load(). */
static void
test_rules(void)
{
    char name_a[] = "a", name_b[] = "b", name_c[] = "c", user[] = "u", file[] = "x";
    char relay[] = "r";
    struct conf_http_output outs[3] = {0};
    outs[0] = (struct conf_http_output){.name = name_a, .username = user, .username_line = 3};
    outs[1] = (struct conf_http_output){
            .name = name_b, .password = strdup("hunter2"), .password_line = 5};
    outs[2] = (struct conf_http_output){.name = name_c,
                                        .username = user,
                                        .password = strdup("hunter2"),
                                        .password_line = 9,
                                        .password_file = file,
                                        .password_file_line = 8};
    struct conf_http h = {.name = relay, .outputs = outs, .n_outputs = 3};
    struct conf c = {.http = &h, .n_http = 1};
    struct conf_errs errs = {0};
    conf_secrets_load(&c, &errs);
    CHECK_EQ_I64(errs.n, 3);
    if (errs.n == 3) {
        CHECK_EQ_I64(errs.v[0].line, 3);
        CHECK(strstr(errs.v[0].msg, "username: needs password or password-file") != NULL);
        CHECK_EQ_I64(errs.v[1].line, 5);
        CHECK_STREQ(errs.v[1].msg, "[http.r.output.b] password: needs username");
        CHECK_EQ_I64(errs.v[2].line, 9);
        CHECK(strstr(errs.v[2].msg, "both set (first at line 8)") != NULL);
    }
    for (size_t i = 0; i < errs.n; i++) {
        CHECK(strstr(errs.v[i].msg, "hunter2") == NULL);
    }
    conf_errs_cleanup(&errs);
    conf_password_wipe(&outs[1]);
    conf_password_wipe(&outs[2]);
}

int
main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    test_contents();
    test_not_files();
    test_rules();
    char path[300];
    snprintf(path, sizeof(path), "%s/pw", dir);
    unlink(path);
    rmdir(dir);
    return CHECK_DONE();
}
