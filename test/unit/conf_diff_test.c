/* conf_diff on two loaded trees: sections found by name, every key of a table compared (values
 * as converted, NULL strings, defaults), the keys that differ named in table order; and the
 * reference count of a tree. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "conf/conf_diff.h"
#include "conf/conf_load.h"

static struct conf *
load(const char *text)
{
    struct conf_errs errs = {NULL, 0, 0};
    FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
    struct conf *c = conf_load_file(f, "mem.ini", &errs);
    fclose(f);
    CHECK_EQ_I64(errs.n, 0);
    conf_errs_cleanup(&errs);
    return c;
}

static const char base[] = "[http.a]\nbind-addr = 127.0.0.1:9096\n"
                           "[http.a.output.b]\nlocation = http://h/write\n"
                           "[http.a.output.c]\nlocation = http://h2/write\n"
                           "[udp.u]\nbind-addr = :8089\n[udp.u.output.x]\nlocation = h:1\n";

static void
test_find(void)
{
    struct conf *c = load(base);
    const struct conf_http *a = conf_find_http(c, "a");
    CHECK(a == &c->http[0]);
    CHECK(conf_find_http(c, "u") == NULL);
    CHECK(conf_find_http_output(a, "c") == &a->outputs[1]);
    CHECK(conf_find_http_output(a, "x") == NULL);
    const struct conf_udp *u = conf_find_udp(c, "u");
    CHECK(u == &c->udp[0]);
    CHECK(conf_find_udp_output(u, "x") == &u->outputs[0]);
    /* Sections point back to their tree. */
    CHECK(a->tree == c && a->outputs[0].tree == c && u->tree == c);
    conf_unref(c);
}

static void
test_equal_and_diff(void)
{
    struct conf *c1 = load(base);
    /* The same values written differently are equal; defaults equal their explicit value. */
    struct conf *c2 = load("[http.a]\nbind-addr = 127.0.0.1:9096\nmax-body-mb = 32\n"
                           "[http.a.output.b]\nlocation = http://h/write\ntimeout = 10000ms\n"
                           "[http.a.output.c]\nlocation = http://h2/write\nbuffer-size-mb = 4\n"
                           "max-batch-kb = 1\n"
                           "[udp.u]\nbind-addr = :8089\nprecision = ns\n"
                           "[udp.u.output.x]\nlocation = h:1\n[relay]\nlog-level = debug\n");
    CHECK(conf_section_equal(CONF_SEC_HTTP, &c1->http[0], &c2->http[0]));
    CHECK(conf_section_equal(CONF_SEC_HTTP_OUTPUT, &c1->http[0].outputs[0],
                             &c2->http[0].outputs[0]));
    CHECK(conf_section_equal(CONF_SEC_UDP, &c1->udp[0], &c2->udp[0]));
    CHECK(conf_section_equal(CONF_SEC_UDP_OUTPUT, &c1->udp[0].outputs[0], &c2->udp[0].outputs[0]));
    char keys[64];
    CHECK_EQ_I64(conf_section_diff(CONF_SEC_HTTP_OUTPUT, &c1->http[0].outputs[1],
                                   &c2->http[0].outputs[1], keys, sizeof(keys)),
                 2);
    CHECK_STREQ(keys, "buffer-size-mb,max-batch-kb");
    CHECK_EQ_I64(conf_section_diff(CONF_SEC_RELAY, c1, c2, keys, sizeof(keys)), 1);
    CHECK_STREQ(keys, "log-level");
    /* Truncated to fit, still counted. */
    CHECK_EQ_I64(conf_section_diff(CONF_SEC_HTTP_OUTPUT, &c1->http[0].outputs[1],
                                   &c2->http[0].outputs[1], keys, 8),
                 2);
    CHECK(strlen(keys) < 8);
    conf_unref(c1);
    conf_unref(c2);
}

static void
test_strings(void)
{
    struct conf *c1 = load(base);
    struct conf *c2 = load("[http.a]\nbind-addr = 127.0.0.1:9097\ndefault-retention-policy = r\n"
                           "[http.a.output.b]\nlocation = http://h/write\n");
    char keys[128];
    /* A NULL string against a set one, and two different strings. */
    CHECK_EQ_I64(conf_section_diff(CONF_SEC_HTTP, &c1->http[0], &c2->http[0], keys, sizeof(keys)),
                 2);
    CHECK_STREQ(keys, "bind-addr,default-retention-policy");
    CHECK(!conf_section_equal(CONF_SEC_HTTP, &c2->http[0], &c1->http[0]));
    conf_unref(c1);
    conf_unref(c2);
}

static void
test_refs(void)
{
    struct conf *c = load(base);
    CHECK(conf_ref(c) == c);
    conf_unref(c); /* one left */
    CHECK_STREQ(c->http[0].name, "a");
    conf_unref(c);
    CHECK(conf_ref(NULL) == NULL);
    conf_unref(NULL);
}

int
main(void)
{
    test_find();
    test_equal_and_diff();
    test_strings();
    test_refs();
    return CHECK_DONE();
}
