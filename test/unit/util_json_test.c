/* util/json.c: the UTF-8 validator and both escaping flavours, byte for byte (Go's encoding/json
 * for error bodies, the minimal form for log lines and /health). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "util/json.h"

static const char *
esc(const char *s, size_t n, enum json_esc how)
{
    static char out[256];
    struct dbuf b;
    dbuf_init(&b, 200);
    json_escape(&b, s, n, how);
    size_t len = 0;
    char *t = dbuf_finish(&b, &len);
    snprintf(out, sizeof(out), "%s", t != NULL ? t : "(fail)");
    free(t);
    return out;
}

static void
test_utf8(void)
{
    const unsigned char ok2[] = {0xc3, 0xa9};
    const unsigned char ok3[] = {0xe2, 0x82, 0xac};
    const unsigned char ok4[] = {0xf0, 0x9f, 0x98, 0x80};
    const unsigned char max[] = {0xf4, 0x8f, 0xbf, 0xbf};
    CHECK_EQ_I64(utf8_seq_len(ok2, 2), 2);
    CHECK_EQ_I64(utf8_seq_len(ok3, 3), 3);
    CHECK_EQ_I64(utf8_seq_len(ok4, 4), 4);
    CHECK_EQ_I64(utf8_seq_len(max, 4), 4);
    CHECK_EQ_I64(utf8_seq_len(ok4, 3), 0); /* cut */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"a", 1), 0);
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\x80", 1), 0);         /* continuation */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xc0\x80", 2), 0);     /* overlong NUL */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xc1\xbf", 2), 0);     /* overlong */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xe0\x9f\xbf", 3), 0); /* overlong */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xed\xa0\x80", 3), 0); /* surrogate */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xf0\x8f\xbf\xbf", 4), 0);
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0); /* > 10FFFF */
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xf5\x80\x80\x80", 4), 0);
    CHECK_EQ_I64(utf8_seq_len((const unsigned char *)"\xc3(", 2), 0);
}

static void
test_go(void)
{
    /* The golden strings of the error bodies (see also unit.http_inflate). */
    CHECK_STREQ(esc("a\"b\\c\n<&>\x01\xff\xc3\xa9", 13, JSON_ESC_GO),
                "a\\\"b\\\\c\\n\\u003c\\u0026\\u003e\\u0001\\ufffd\xc3\xa9");
    CHECK_STREQ(esc("\xe2\x80\xa8\xe2\x80\xa9\t\r\xed\xa0\x80", 11, JSON_ESC_GO),
                "\\u2028\\u2029\\t\\r\\ufffd\\ufffd\\ufffd");
    CHECK_STREQ(esc("x\0y\x7f", 4, JSON_ESC_GO), "x\\u0000y\x7f");
    CHECK_STREQ(esc("\x1f\b\f", 3, JSON_ESC_GO), "\\u001f\\u0008\\u000c");
}

static void
test_minimal(void)
{
    /* The log line flavour: no short escapes, no HTML escaping, U+2028 as it is. */
    CHECK_STREQ(esc("tab\t\n\"\\<&>", 10, JSON_ESC_MINIMAL), "tab\\u0009\\u000a\\\"\\\\<&>");
    CHECK_STREQ(esc("\xe2\x80\xa8\xff(\xe2\x82\xac", 8, JSON_ESC_MINIMAL),
                "\xe2\x80\xa8\\ufffd(\xe2\x82\xac");
    struct dbuf b;
    dbuf_init(&b, 100);
    json_str(&b, "q\"b\\c\x01", JSON_ESC_MINIMAL);
    size_t len = 0;
    char *t = dbuf_finish(&b, &len);
    CHECK_STREQ(t, "\"q\\\"b\\\\c\\u0001\"");
    free(t);
}

static void
test_one(void)
{
    char out[JSON_ESC_MAX];
    size_t used = 0;
    CHECK_EQ_I64(json_escape_one("\xf0\x9f\x98\x80!", 5, JSON_ESC_GO, out, &used), 4);
    CHECK_EQ_I64(used, 4);
    CHECK_EQ_I64(json_escape_one("\xf0\x9f\x98", 3, JSON_ESC_GO, out, &used), 6);
    CHECK_EQ_I64(used, 1);
    CHECK(memcmp(out, "\\ufffd", 6) == 0);
    CHECK_EQ_I64(json_escape_one("<", 1, JSON_ESC_MINIMAL, out, &used), 1);
    CHECK_EQ_I64(json_escape_one("<", 1, JSON_ESC_GO, out, &used), 6);
}

/* json_member_string() on s: the member's value, or "(none)". */
static const char *
member(const char *s, const char *key)
{
    static char out[256];
    struct dbuf b;
    dbuf_init(&b, 200);
    int rc = json_member_string(s, strlen(s), key, &b);
    size_t len = 0;
    char *t = dbuf_finish(&b, &len);
    snprintf(out, sizeof(out), "%s", rc == 0 && t != NULL ? t : "(none)");
    free(t);
    return out;
}

static void
test_member(void)
{
    CHECK_STREQ(member("{\"error\":\"database not found: \\\"x\\\"\"}\n", "error"),
                "database not found: \"x\"");
    CHECK_STREQ(member(" { \"a\" : 1.5e3 , \"b\":[1,{\"c\":null},\"]\"], \"error\" : \"e\" } ",
                       "error"),
                "e");
    CHECK_STREQ(member("{\"error\":\"\\u003c\\u00e9\\ud83d\\ude00\\ud800x\\n\\t\\/\"}", "error"),
                "<\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx\n\t/");
    CHECK_STREQ(member("{\"message\":\"m\",\"code\":\"invalid\"}", "code"), "invalid");
    CHECK_STREQ(member("{\"error\":1}", "error"), "(none)");
    CHECK_STREQ(member("{\"other\":\"x\"}", "error"), "(none)");
    CHECK_STREQ(member("{}", "error"), "(none)");
    CHECK_STREQ(member("", "error"), "(none)");
    CHECK_STREQ(member("<html>bad gateway</html>", "error"), "(none)");
    CHECK_STREQ(member("{\"error\":\"unterminated", "error"), "(none)");
    CHECK_STREQ(member("{\"error\":\"bad \\q escape\"}", "error"), "(none)");
    CHECK_STREQ(member("{\"error\":\"raw \x01 control\"}", "error"), "(none)");
    CHECK_STREQ(member("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                       "]]]]],"
                       "\"error\":\"deep\"}",
                       "error"),
                "(none)");
}

int
main(void)
{
    test_member();
    test_utf8();
    test_go();
    test_minimal();
    test_one();
    return CHECK_DONE();
}
