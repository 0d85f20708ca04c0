/* A tiny unit-test helper (docs/ARCHITECTURE.md, "Rules of the code"): CHECK, CHECK_EQ_I64,
 * CHECK_STREQ print "file:line: failed: expr" and count the failure; CHECK_DONE() is main's return
 * value (0 when every check passed, 1 otherwise). Header only; one test executable per module. */
#ifndef IR_TEST_CHECK_H
#define IR_TEST_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(expr)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #expr);                     \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_I64(got, want)                                                                    \
    do {                                                                                           \
        int64_t check_g_ = (int64_t)(got);                                                         \
        int64_t check_w_ = (int64_t)(want);                                                        \
        check_count++;                                                                             \
        if (check_g_ != check_w_) {                                                                \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: failed: %s == %s (got %" PRId64 ", want %" PRId64 ")\n",       \
                    __FILE__, __LINE__, #got, #want, check_g_, check_w_);                          \
        }                                                                                          \
    } while (0)

#define CHECK_STREQ(got, want)                                                                     \
    do {                                                                                           \
        const char *check_gs_ = (got);                                                             \
        const char *check_ws_ = (want);                                                            \
        check_count++;                                                                             \
        if (check_gs_ == NULL || check_ws_ == NULL || strcmp(check_gs_, check_ws_) != 0) {         \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: failed: %s == %s (got \"%s\", want \"%s\")\n", __FILE__,       \
                    __LINE__, #got, #want, check_gs_ ? check_gs_ : "(null)",                       \
                    check_ws_ ? check_ws_ : "(null)");                                             \
        }                                                                                          \
    } while (0)

#define CHECK_DONE()                                                                               \
    (fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures), check_failures != 0)

#endif
