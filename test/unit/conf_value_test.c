/* Unit tests for conf/value.c: every value parser, valid forms, refusals and limits. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "conf/value.h"

static int64_t
dur_ns(const char *s, enum value_status want)
{
    int64_t ns = -12345;
    enum value_status st = value_duration_ns(s, &ns);
    CHECK_EQ_I64(st, want);
    return st == VALUE_OK ? ns : -12345;
}

static void
test_duration_ns(void)
{
    CHECK_EQ_I64(dur_ns("0", VALUE_OK), 0);
    CHECK_EQ_I64(dur_ns("+0", VALUE_OK), 0);
    CHECK_EQ_I64(dur_ns("-0", VALUE_OK), 0);
    CHECK_EQ_I64(dur_ns("500ms", VALUE_OK), 500000000);
    CHECK_EQ_I64(dur_ns("1.5s", VALUE_OK), 1500000000);
    CHECK_EQ_I64(dur_ns("1m30s", VALUE_OK), 90000000000);
    CHECK_EQ_I64(dur_ns("2h", VALUE_OK), 7200000000000);
    CHECK_EQ_I64(dur_ns("10s", VALUE_OK), 10000000000);
    CHECK_EQ_I64(dur_ns("1h2m3s4ms5us6ns", VALUE_OK), 3723004005006);
    CHECK_EQ_I64(dur_ns("1\xc2\xb5s", VALUE_OK), 1000);
    CHECK_EQ_I64(dur_ns("1\xce\xbcs", VALUE_OK), 1000);
    CHECK_EQ_I64(dur_ns(".5s", VALUE_OK), 500000000);
    CHECK_EQ_I64(dur_ns("5.s", VALUE_OK), 5000000000);
    CHECK_EQ_I64(dur_ns("-1.5h", VALUE_OK), -5400000000000);
    CHECK_EQ_I64(dur_ns("+3s", VALUE_OK), 3000000000);
    CHECK_EQ_I64(dur_ns("1.000000001s", VALUE_OK), 1000000001);
    CHECK_EQ_I64(dur_ns("9223372036854775807ns", VALUE_OK), INT64_MAX);
    CHECK_EQ_I64(dur_ns("-9223372036854775808ns", VALUE_OK), INT64_MIN);
    CHECK_EQ_I64(dur_ns("2562047h", VALUE_OK), 2562047LL * 3600 * 1000000000);
    dur_ns("9223372036854775808ns", VALUE_RANGE);
    dur_ns("2562048h", VALUE_RANGE);
    dur_ns("99999999999999999999s", VALUE_RANGE);
    dur_ns("2562047h48m", VALUE_RANGE);
    dur_ns("", VALUE_INVALID);
    dur_ns("-", VALUE_INVALID);
    dur_ns("10", VALUE_INVALID);
    dur_ns("10x", VALUE_INVALID);
    dur_ns("s", VALUE_INVALID);
    dur_ns(".s", VALUE_INVALID);
    dur_ns("1s ", VALUE_INVALID);
    dur_ns(" 1s", VALUE_INVALID);
    dur_ns("1S", VALUE_INVALID);
    dur_ns("1sec", VALUE_INVALID);
    dur_ns("1e3s", VALUE_INVALID);
    dur_ns("00", VALUE_INVALID);
}

static void
test_duration_ms(void)
{
    int64_t ms = -1;
    CHECK_EQ_I64(value_duration_ms("500ms", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(ms, 500);
    CHECK_EQ_I64(value_duration_ms("1us", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(ms, 1);
    CHECK_EQ_I64(value_duration_ms("1.0005s", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(ms, 1001);
    CHECK_EQ_I64(value_duration_ms("0", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(ms, 0);
    CHECK_EQ_I64(value_duration_ms("0", 1, 3600000, &ms), VALUE_RANGE);
    CHECK_EQ_I64(value_duration_ms("1h0m1ms", 0, 3600000, &ms), VALUE_RANGE);
    CHECK_EQ_I64(value_duration_ms("1h", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(value_duration_ms("-1s", 0, 3600000, &ms), VALUE_NEGATIVE);
    CHECK_EQ_I64(value_duration_ms("-0", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(value_duration_ms("10x", 0, 3600000, &ms), VALUE_INVALID);
    CHECK_EQ_I64(value_duration_ms("9999999999h", 0, 3600000, &ms), VALUE_RANGE);
    /* Rounding up never leaves the range: 1h + 1ns is 1h when 1h is the most. */
    CHECK_EQ_I64(value_duration_ms("1h0m0.000000001s", 0, 3600000, &ms), VALUE_OK);
    CHECK_EQ_I64(ms, 3600000);
    /* Go's largest duration, and the largest ms value written back, both parse. */
    CHECK_EQ_I64(value_duration_ms("2562047h47m16.854775807s", 1, 9223372036854, &ms), VALUE_OK);
    CHECK_EQ_I64(ms, 9223372036854);
    char b[40];
    CHECK_STREQ(value_format_ms(9223372036854, b, sizeof(b)), "2562047h47m16.854s");
    CHECK_EQ_I64(value_duration_ms(b, 1, 9223372036854, &ms), VALUE_OK);
    CHECK_EQ_I64(value_duration_ms("2562047h47m16.854775808s", 1, 9223372036854, &ms), VALUE_RANGE);
}

static void
test_format_ms(void)
{
    char b[32];
    CHECK_STREQ(value_format_ms(0, b, sizeof(b)), "0s");
    CHECK_STREQ(value_format_ms(1, b, sizeof(b)), "1ms");
    CHECK_STREQ(value_format_ms(500, b, sizeof(b)), "500ms");
    CHECK_STREQ(value_format_ms(1000, b, sizeof(b)), "1s");
    CHECK_STREQ(value_format_ms(1500, b, sizeof(b)), "1.5s");
    CHECK_STREQ(value_format_ms(1001, b, sizeof(b)), "1.001s");
    CHECK_STREQ(value_format_ms(90000, b, sizeof(b)), "1m30s");
    CHECK_STREQ(value_format_ms(60000, b, sizeof(b)), "1m");
    CHECK_STREQ(value_format_ms(3600000, b, sizeof(b)), "1h");
    CHECK_STREQ(value_format_ms(3601000, b, sizeof(b)), "1h0m1s");
    CHECK_STREQ(value_format_ms(7260000, b, sizeof(b)), "2h1m");
    /* Every formatted value parses back to itself. */
    int64_t samples[] = {1, 999, 1000, 1010, 61001, 3599999, 86400000};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        int64_t back = -1;
        CHECK_EQ_I64(
                value_duration_ms(value_format_ms(samples[i], b, sizeof(b)), 0, INT64_MAX, &back),
                VALUE_OK);
        CHECK_EQ_I64(back, samples[i]);
    }
}

static void
test_int(void)
{
    int64_t v = -1;
    CHECK_EQ_I64(value_int("0", 0, 10, &v), VALUE_OK);
    CHECK_EQ_I64(v, 0);
    CHECK_EQ_I64(value_int("+10", 0, 10, &v), VALUE_OK);
    CHECK_EQ_I64(v, 10);
    CHECK_EQ_I64(value_int("-5", -5, 10, &v), VALUE_OK);
    CHECK_EQ_I64(v, -5);
    CHECK_EQ_I64(value_int("11", 0, 10, &v), VALUE_RANGE);
    CHECK_EQ_I64(value_int("-1", 0, 10, &v), VALUE_RANGE);
    CHECK_EQ_I64(value_int("9223372036854775807", 0, INT64_MAX, &v), VALUE_OK);
    CHECK_EQ_I64(v, INT64_MAX);
    CHECK_EQ_I64(value_int("-9223372036854775808", INT64_MIN, 0, &v), VALUE_OK);
    CHECK_EQ_I64(v, INT64_MIN);
    CHECK_EQ_I64(value_int("9223372036854775808", 0, INT64_MAX, &v), VALUE_RANGE);
    CHECK_EQ_I64(value_int("123456789012345678901234567890", 0, INT64_MAX, &v), VALUE_RANGE);
    CHECK_EQ_I64(value_int("", 0, 10, &v), VALUE_INVALID);
    CHECK_EQ_I64(value_int("-", 0, 10, &v), VALUE_INVALID);
    CHECK_EQ_I64(value_int("1k", 0, 10, &v), VALUE_INVALID);
    CHECK_EQ_I64(value_int("1_0", 0, 100, &v), VALUE_INVALID);
    CHECK_EQ_I64(value_int("0x10", 0, 100, &v), VALUE_INVALID);
    CHECK_EQ_I64(value_int(" 1", 0, 100, &v), VALUE_INVALID);
    CHECK_EQ_I64(value_int("1.5", 0, 100, &v), VALUE_INVALID);
}

static void
test_bool_enum(void)
{
    bool b = false;
    CHECK_EQ_I64(value_bool("true", &b), VALUE_OK);
    CHECK(b);
    CHECK_EQ_I64(value_bool("false", &b), VALUE_OK);
    CHECK(!b);
    CHECK_EQ_I64(value_bool("yes", &b), VALUE_INVALID);
    CHECK_EQ_I64(value_bool("True", &b), VALUE_INVALID);
    CHECK_EQ_I64(value_bool("1", &b), VALUE_INVALID);
    CHECK_EQ_I64(value_bool("", &b), VALUE_INVALID);
    static const char *const names[] = {"one", "all", "any"};
    int e = -1;
    CHECK_EQ_I64(value_enum("all", names, 3, &e), VALUE_OK);
    CHECK_EQ_I64(e, 1);
    CHECK_EQ_I64(value_enum("ALL", names, 3, &e), VALUE_INVALID);
    CHECK_EQ_I64(value_enum("", names, 3, &e), VALUE_INVALID);
}

static bool
url_is(const char *s, bool https, const char *host, int port)
{
    struct value_url u;
    if (value_url(s, &u) != VALUE_OK) {
        return false;
    }
    return u.https == https && strcmp(u.hp.host, host) == 0 && u.hp.port == port;
}

static void
test_url(void)
{
    struct value_url u;
    CHECK(url_is("http://127.0.0.1:8086/write", false, "127.0.0.1", 8086));
    CHECK(url_is("https://influxdb1/write", true, "influxdb1", 443));
    CHECK(url_is("http://influxdb1", false, "influxdb1", 80));
    CHECK(url_is("HTTP://h:1/write?db=x", false, "h", 1));
    CHECK(url_is("http://[::1]:8086/write", false, "::1", 8086));
    CHECK(url_is("http://[::1]/write", false, "::1", 80));
    CHECK(url_is("https://user:pa:ss@h.example:8443/w", true, "h.example", 8443));
    CHECK_EQ_I64(value_url("ftp://h/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("127.0.0.1:8086/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http:///write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://:8086/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://h:0/write", &u), VALUE_RANGE);
    CHECK_EQ_I64(value_url("http://h:65536/write", &u), VALUE_RANGE);
    CHECK_EQ_I64(value_url("http://h:/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://h:x/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://h h/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://h/wr ite", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("http://[::1/write", &u), VALUE_INVALID);
    CHECK_EQ_I64(value_url("", &u), VALUE_INVALID);
    /* Userinfo and fragment are found (conf_keys refuses them), passwords never shown. */
    CHECK_EQ_I64(value_url("https://user:pa:ss@h.example:8443/w#x", &u), VALUE_OK);
    CHECK_EQ_I64(u.userinfo_off, 8);
    CHECK_EQ_I64(u.userinfo_len, 11);
    CHECK_EQ_I64(u.fragment_off, 35);
    CHECK_EQ_I64(value_url("http://h/write?db=x", &u), VALUE_OK);
    CHECK(u.userinfo_len == 0 && u.fragment_off == 0);
    CHECK_EQ_I64(value_url("http://h#x", &u), VALUE_OK);
    CHECK_EQ_I64(u.fragment_off, 8);
    char b[128];
    CHECK_STREQ(value_url_redacted("https://user:pa:ss@h:1/w", b, sizeof(b)),
                "https://user:xxxxx@h:1/w");
    CHECK_STREQ(value_url_redacted("http://token@h/w", b, sizeof(b)), "http://token@h/w");
    CHECK_STREQ(value_url_redacted("http://h/w?p=a@b:c", b, sizeof(b)), "http://h/w?p=a@b:c");
    CHECK_STREQ(value_url_redacted("not a url", b, sizeof(b)), "not a url");
}

static void
test_name(void)
{
    CHECK(value_name_is_valid("example-http", 12));
    CHECK(value_name_is_valid("A_z-09", 6));
    CHECK(!value_name_is_valid("", 0));
    CHECK(!value_name_is_valid("a.b", 3));
    CHECK(!value_name_is_valid("a b", 3));
    CHECK(!value_name_is_valid("caf\xc3\xa9", 5));
    char long_name[VALUE_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name));
    CHECK(value_name_is_valid(long_name, VALUE_NAME_MAX));
    CHECK(!value_name_is_valid(long_name, VALUE_NAME_MAX + 1));
}

int
main(void)
{
    test_duration_ns();
    test_duration_ms();
    test_format_ms();
    test_int();
    test_bool_enum();
    test_url();
    test_name();
    return CHECK_DONE();
}
