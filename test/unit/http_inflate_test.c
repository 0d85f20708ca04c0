/* http/inflate.c and http/reply.c: gzip decoding bounded by max-body-mb into a util/dbuf (bombs,
 * exact bound, concatenated members, corrupt and truncated streams) and Go-style JSON escaping. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"
#include "http/inflate.h"
#include "http/reply.h"
#include "util/dbuf.h"

/* gzip of in[0..len) into a malloc'd buffer. */
static unsigned char *
gz(const void *in, size_t len, size_t *out_len)
{
    z_stream zs = {0};
    CHECK(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&zs, len) + 64;
    unsigned char *out = malloc(cap);
    zs.next_in = in;
    zs.avail_in = (unsigned)len;
    zs.next_out = out;
    zs.avail_out = (unsigned)cap;
    CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

/* Feeds in pieces of step bytes, then finishes. */
static enum inflate_status
run(const unsigned char *in, size_t len, size_t step, struct dbuf *b)
{
    struct inflate_gz *z = inflate_new();
    enum inflate_status st = INFLATE_OK;
    for (size_t o = 0; o < len && st == INFLATE_OK; o += step) {
        size_t n = len - o < step ? len - o : step;
        st = inflate_feed(z, (const char *)in + o, n, b);
    }
    if (st == INFLATE_OK) {
        st = inflate_finish(z);
    }
    inflate_free(z);
    return st;
}

static void
test_roundtrip(void)
{
    const char text[] = "cpu,host=a value=1 1\ncpu,host=b value=2 2\n";
    size_t zl = 0;
    unsigned char *z = gz(text, sizeof(text) - 1, &zl);
    for (size_t step = 1; step <= zl; step += 7) {
        struct dbuf b;
        dbuf_init(&b, 1024);
        CHECK_EQ_I64(run(z, zl, step, &b), INFLATE_OK);
        CHECK_EQ_I64(b.len, sizeof(text) - 1);
        CHECK(b.len == sizeof(text) - 1 && memcmp(b.p, text, b.len) == 0);
        dbuf_cleanup(&b);
    }
    /* Two concatenated members are one body. */
    unsigned char *two = malloc(2 * zl);
    memcpy(two, z, zl);
    memcpy(two + zl, z, zl);
    struct dbuf b;
    dbuf_init(&b, 1024);
    CHECK_EQ_I64(run(two, 2 * zl, 5, &b), INFLATE_OK);
    CHECK_EQ_I64(b.len, 2 * (sizeof(text) - 1));
    dbuf_cleanup(&b);
    free(two);
    free(z);
}

static void
test_bound(void)
{
    size_t n = 1000000;
    char *zeros = calloc(1, n);
    size_t zl = 0;
    unsigned char *z = gz(zeros, n, &zl);
    struct dbuf b;
    /* Exactly at the bound: accepted (the trailer is still read). */
    dbuf_init(&b, n);
    CHECK_EQ_I64(run(z, zl, 4096, &b), INFLATE_OK);
    CHECK_EQ_I64(b.len, n);
    dbuf_terminate_line(&b);
    CHECK_EQ_I64(b.len, n + 1);
    dbuf_cleanup(&b);
    /* One byte above: a bomb. */
    dbuf_init(&b, n - 1);
    CHECK_EQ_I64(run(z, zl, 4096, &b), INFLATE_TOO_BIG);
    CHECK(b.cap <= n);
    dbuf_cleanup(&b);
    free(z);
    free(zeros);
}

static void
test_corrupt(void)
{
    const char text[] = "m v=1\n";
    size_t zl = 0;
    unsigned char *z = gz(text, sizeof(text) - 1, &zl);
    struct dbuf b;
    struct inflate_gz *g = NULL;

    dbuf_init(&b, 1024);
    g = inflate_new();
    CHECK_EQ_I64(inflate_feed(g, (const char *)z, zl - 3, &b), INFLATE_OK);
    CHECK_EQ_I64(inflate_finish(g), INFLATE_CORRUPT);
    CHECK_STREQ(inflate_error(g), "unexpected EOF");
    inflate_free(g);
    dbuf_cleanup(&b);

    z[zl - 6] ^= 0xff; /* CRC32 */
    dbuf_init(&b, 1024);
    g = inflate_new();
    CHECK_EQ_I64(inflate_feed(g, (const char *)z, zl, &b), INFLATE_CORRUPT);
    CHECK_STREQ(inflate_error(g), "gzip: invalid checksum");
    inflate_free(g);
    dbuf_cleanup(&b);

    dbuf_init(&b, 1024);
    g = inflate_new();
    CHECK_EQ_I64(inflate_feed(g, "not gzip at all", 15, &b), INFLATE_CORRUPT);
    CHECK_STREQ(inflate_error(g), "gzip: invalid header");
    inflate_free(g);
    dbuf_cleanup(&b);

    dbuf_init(&b, 1024);
    g = inflate_new();
    CHECK_EQ_I64(inflate_finish(g), INFLATE_CORRUPT);
    inflate_free(g);
    dbuf_cleanup(&b);
    free(z);
}

static void
test_escape(void)
{
    struct reply r = {0};
    reply_error(&r, 400, "a\"b\\c\n<&>\x01\xff\xc3\xa9");
    CHECK_STREQ(r.body,
                "{\"error\":\"a\\\"b\\\\c\\n\\u003c\\u0026\\u003e\\u0001\\ufffd\xc3\xa9\"}\n");
    CHECK_EQ_I64(r.len, strlen(r.body));
    CHECK_EQ_I64(r.status, 400);
    CHECK_STREQ(r.ctype_static, "application/json");
    reply_error(&r, 400, "\xe2\x80\xa8\xe2\x80\xa9\t\r\xed\xa0\x80");
    CHECK_STREQ(r.body, "{\"error\":\"\\u2028\\u2029\\t\\r\\ufffd\\ufffd\\ufffd\"}\n");
    reply_error3(&r, 400, "partial write: ", "x\0y", 3, " dropped=1");
    CHECK_STREQ(r.body, "{\"error\":\"partial write: x\\u0000y dropped=1\"}\n");
    reply_cleanup(&r);
}

int
main(void)
{
    test_roundtrip();
    test_bound();
    test_corrupt();
    test_escape();
    return CHECK_DONE();
}
