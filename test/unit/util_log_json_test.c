/* Unit tests for util/log.c's line shapes: the Go wording in text mode, one valid JSON object per
 * line in json mode (fields, numbers, escapes, invalid UTF-8, truncation), level filtering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util/clock.h"
#include "util/log.h"

static int capture_fd = -1; /* a temp file receiving the log lines */
static int saved_stderr = -1;

/* Sends stderr to the (emptied) capture file until capture_text(). */
static void
capture_begin(void)
{
    fflush(stderr);
    if (ftruncate(capture_fd, 0) != 0 || lseek(capture_fd, 0, SEEK_SET) != 0 ||
        dup2(capture_fd, STDERR_FILENO) != STDERR_FILENO) {
        abort();
    }
}

/* Restores stderr and returns what was logged since capture_begin() (static buffer). */
static const char *
capture_text(void)
{
    static char buf[65536];
    ssize_t n = pread(capture_fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    dup2(saved_stderr, STDERR_FILENO);
    return buf;
}

static void
test_text(void)
{
    log_init(LOG_INFO, false);
    capture_begin();
    log_go(LOG_WARN, "r1", "b1", "5xx response for relay \"r1\" backend \"b1\": 503 status=503");
    CHECK_STREQ(capture_text(),
                "2026/11/25 21:37:58 5xx response for relay \"r1\" backend \"b1\": 503\n");
    capture_begin();
    log_warn("r1/b1", "backend down retries=%d", 3);
    CHECK_STREQ(capture_text(), "2026/11/25 21:37:58 warn r1/b1: backend down retries=3\n");
    capture_begin();
    log_info(NULL, "two\nlines");
    CHECK_STREQ(capture_text(), "2026/11/25 21:37:58 info two\\nlines\n");
}

static void
test_json(void)
{
    log_init(LOG_DEBUG, true);
    capture_begin();
    log_go(LOG_WARN, "r1", "b1", "5xx response for relay \"r1\" backend \"b1\": 503 status=503");
    CHECK_STREQ(capture_text(),
                "{\"time\":\"2026-11-25T21:37:58.123456Z\",\"level\":\"warn\",\"relay\":\"r1\","
                "\"backend\":\"b1\",\"message\":\"5xx response for relay \\\"r1\\\" backend "
                "\\\"b1\\\": 503\",\"status\":503}\n");
    capture_begin();
    log_info("r1/b1", "up outage_s=1.5 version=1.2.3 n=007 neg=-4 level=x");
    CHECK_STREQ(capture_text(),
                "{\"time\":\"2026-11-25T21:37:58.123456Z\",\"level\":\"info\",\"relay\":\"r1\","
                "\"backend\":\"b1\",\"message\":\"up\",\"outage_s\":1.5,\"version\":\"1.2.3\","
                "\"n\":\"007\",\"neg\":-4,\"field_level\":\"x\"}\n");
    capture_begin();
    log_warn("r1/b1", "backend down reason=\"Failed to connect: refused\" queued_writes=0");
    CHECK_STREQ(capture_text(),
                "{\"time\":\"2026-11-25T21:37:58.123456Z\",\"level\":\"warn\",\"relay\":\"r1\","
                "\"backend\":\"b1\",\"message\":\"backend down\",\"reason\":\"Failed to connect: "
                "refused\",\"queued_writes\":0}\n");
    capture_begin();
    log_go(LOG_WARN, "r1", "b1", "Problem posting: Post \"http://h/write?db=a\" x=\"1");
    CHECK(strstr(capture_text(),
                 "\"message\":\"Problem posting: Post \\\"http://h/write?db=a\\\"\","
                 "\"x\":\"\\\"1\"}") != NULL);
    capture_begin();
    log_go(LOG_WARN, "r1", "b1", "Problem posting: Post \"http://h/write?db=a\" x=1 refused");
    CHECK(strstr(capture_text(), "\"message\":\"Problem posting: Post \\\"http://h/write?db=a\\\" "
                                 "x=1 refused\"}") != NULL);
    capture_begin();
    log_debug(NULL, "bad line \"\xff\xc3\x28\xe2\x82\xac\" tab\t");
    CHECK_STREQ(capture_text(), "{\"time\":\"2026-11-25T21:37:58.123456Z\",\"level\":\"debug\","
                                "\"message\":\"bad line \\\"\\ufffd\\ufffd(\xe2\x82\xac\\\" "
                                "tab\\u0009\"}\n");
}

/* A message far longer than a line: one line, cut at an escape boundary, still closed. */
static void
test_json_truncated(void)
{
    log_init(LOG_INFO, true);
    char msg[3000];
    memset(msg, '"', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    capture_begin();
    log_error("r1", "%s k=v", msg);
    const char *out = capture_text();
    size_t n = strlen(out);
    CHECK(n > 4000 && n <= 4096);
    CHECK(strchr(out, '\n') == out + n - 1);
    CHECK(strcmp(out + n - 5, "\\\"\"}\n") == 0);
}

static void
test_level_filter(void)
{
    log_init(LOG_ERROR, true);
    capture_begin();
    log_warn("r1", "not shown");
    log_info("r1", "not shown");
    log_debug("r1", "not shown");
    CHECK_STREQ(capture_text(), "");
    capture_begin();
    log_error("r1", "shown");
    CHECK(strstr(capture_text(), "\"level\":\"error\"") != NULL);
}

int
main(void)
{
    clock_set_fake(1000, 1795642678123456789LL);
    char path[] = "/tmp/log_json_test.XXXXXX";
    capture_fd = mkstemp(path);
    saved_stderr = dup(STDERR_FILENO);
    if (capture_fd < 0 || saved_stderr < 0) {
        return 1;
    }
    unlink(path);
    test_text();
    test_json();
    test_json_truncated();
    test_level_filter();
    return CHECK_DONE();
}
