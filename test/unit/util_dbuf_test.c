/* util/dbuf.c: the bound and its spare byte, the announced-size allocation, latched failures,
 * in-place writers (dbuf_room/dbuf_commit), take/finish, fixed storage and the number
 * formatters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/dbuf.h"

static void
test_bound(void)
{
    struct dbuf b;
    dbuf_init(&b, 10);
    CHECK(b.p == NULL);
    CHECK_EQ_I64(dbuf_append(&b, "0123456789", 10), DBUF_OK);
    CHECK(b.cap <= 11);
    CHECK_EQ_I64(dbuf_append(&b, "x", 1), DBUF_TOO_BIG);
    /* Latched: a later append that would fit does nothing. */
    CHECK_EQ_I64(dbuf_append(&b, "", 0), DBUF_TOO_BIG);
    CHECK_EQ_I64(b.status, DBUF_TOO_BIG);
    CHECK_EQ_I64(b.len, 10);
    dbuf_terminate_line(&b);
    CHECK_EQ_I64(b.len, 11);
    dbuf_terminate_line(&b);
    CHECK_EQ_I64(b.len, 11);
    char *p = dbuf_take(&b);
    CHECK(p != NULL && memcmp(p, "0123456789\n", 11) == 0);
    free(p);
    CHECK(b.p == NULL && b.len == 0 && b.max == 10);
    dbuf_cleanup(&b);
    CHECK_EQ_I64(b.status, DBUF_OK);
    /* Empty content gets no newline. */
    dbuf_terminate_line(&b);
    CHECK_EQ_I64(b.len, 0);
    CHECK(dbuf_take(&b) == NULL);
}

static void
test_reserve(void)
{
    struct dbuf b;
    dbuf_init(&b, 1 << 20);
    /* Announced size: exactly one allocation of that much plus the spare byte. */
    CHECK_EQ_I64(dbuf_reserve(&b, 0, 100), DBUF_OK);
    CHECK_EQ_I64(b.cap, 101);
    CHECK_EQ_I64(dbuf_append(&b, "x", 1), DBUF_OK);
    CHECK_EQ_I64(b.cap, 101);
    dbuf_cleanup(&b);
    /* A hint above the bound is ignored; geometric growth then, never beyond max + 1. */
    dbuf_init(&b, 1000);
    CHECK_EQ_I64(dbuf_reserve(&b, 10, 5000), DBUF_OK);
    CHECK(b.cap >= 11 && b.cap <= 1001);
    for (int i = 0; i < 100; i++) {
        CHECK_EQ_I64(dbuf_append(&b, "0123456789", 10), DBUF_OK);
    }
    CHECK_EQ_I64(b.len, 1000);
    CHECK_EQ_I64(b.cap, 1001);
    CHECK_EQ_I64(dbuf_reserve(&b, 1, 0), DBUF_TOO_BIG);
    dbuf_cleanup(&b);
    /* A reserve past the bound fails without allocating. */
    dbuf_init(&b, 5);
    CHECK_EQ_I64(dbuf_reserve(&b, 6, 0), DBUF_TOO_BIG);
    CHECK(b.p == NULL);
    dbuf_cleanup(&b);
}

static void
test_room(void)
{
    struct dbuf b;
    dbuf_init(&b, 300);
    size_t room = 0;
    char *at = dbuf_room(&b, &room);
    CHECK(at != NULL && room > 0 && room <= 300);
    memset(at, 'a', room);
    dbuf_commit(&b, room);
    size_t total = room;
    while ((at = dbuf_room(&b, &room)) != NULL) {
        CHECK(room > 0);
        memset(at, 'b', room);
        dbuf_commit(&b, room);
        total += room;
    }
    /* Full at the bound: no room, and not a failure. */
    CHECK_EQ_I64(total, 300);
    CHECK_EQ_I64(room, 0);
    CHECK_EQ_I64(b.status, DBUF_OK);
    dbuf_terminate_line(&b);
    CHECK_EQ_I64(b.len, 301);
    dbuf_cleanup(&b);
}

static void
test_finish_and_numbers(void)
{
    struct dbuf b;
    dbuf_init(&b, DBUF_NO_BOUND);
    for (int i = 0; i < 100000; i++) {
        dbuf_str(&b, "0123456789");
    }
    dbuf_i64(&b, -42);
    dbuf_char(&b, ' ');
    dbuf_u64(&b, UINT64_MAX);
    dbuf_char(&b, ' ');
    dbuf_i64(&b, INT64_MIN);
    dbuf_char(&b, ' ');
    dbuf_fixed(&b, 1.5, 3);
    dbuf_char(&b, ' ');
    dbuf_fixed(&b, 0.0 / 0.0, 2);
    size_t len = 0;
    char *t = dbuf_finish(&b, &len);
    CHECK(t != NULL);
    CHECK_STREQ(t + 1000000, "-42 18446744073709551615 -9223372036854775808 1.500 0.00");
    CHECK_EQ_I64(len, strlen(t));
    free(t);
    /* Nothing appended: an empty string, still allocated. */
    dbuf_init(&b, 10);
    t = dbuf_finish(&b, &len);
    CHECK(t != NULL && len == 0 && t[0] == '\0');
    free(t);
    /* After a failure: NULL, and the block is gone. */
    dbuf_init(&b, 3);
    dbuf_str(&b, "abcd");
    t = dbuf_finish(&b, &len);
    CHECK(t == NULL && len == 0 && b.p == NULL);
}

static void
test_fixed(void)
{
    char storage[8];
    struct dbuf b;
    dbuf_init_fixed(&b, storage, sizeof(storage));
    CHECK_EQ_I64(b.max, 7);
    CHECK_EQ_I64(dbuf_append(&b, "abcdef", 6), DBUF_OK);
    CHECK_EQ_I64(dbuf_append(&b, "gh", 2), DBUF_TOO_BIG);
    CHECK_EQ_I64(b.len, 6);
    CHECK(b.p == storage);
    size_t len = 0;
    dbuf_cleanup(&b); /* resets, frees nothing */
    CHECK(b.p == storage && b.len == 0 && b.status == DBUF_OK);
    dbuf_str(&b, "abcdefg");
    char *t = dbuf_finish(&b, &len);
    CHECK(t == storage && len == 7);
    CHECK_STREQ(t, "abcdefg");
}

int
main(void)
{
    test_bound();
    test_reserve();
    test_room();
    test_finish_and_numbers();
    test_fixed();
    return CHECK_DONE();
}
