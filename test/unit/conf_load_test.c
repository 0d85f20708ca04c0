/* conf_load_file() on in-memory configs: defaults from the tables, unit conversion, the
 * write-timeout default, output order, free section order, and that every problem is kept. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "conf/conf_check.h"
#include "conf/conf_load.h"

static struct conf *
load(const char *text, struct conf_errs *errs)
{
    FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
    struct conf *c = conf_load_file(f, "mem.ini", errs);
    fclose(f);
    return c;
}

static void
test_defaults(void)
{
    struct conf_errs errs = {NULL, 0, 0};
    struct conf *c = load("[http.a]\nbind-addr = 127.0.0.1:9096\n"
                          "[http.a.output.b]\nlocation = http://h/write\n"
                          "[udp.u]\nbind-addr = :8089\n[udp.u.output.x]\nlocation = h:1\n",
                          &errs);
    CHECK_EQ_I64(errs.n, 0);
    CHECK_EQ_I64(conf_check(c, &errs), 0);
    CHECK_EQ_I64(c->log_level, LOG_INFO);
    CHECK(!c->log_json);
    CHECK_EQ_I64(c->shutdown_timeout_ms, 10000);
    CHECK_EQ_I64(c->n_http, 1);
    struct conf_http *h = &c->http[0];
    CHECK_STREQ(h->name, "a");
    CHECK_EQ_I64(h->line, 1);
    CHECK_EQ_I64(h->bind_line, 2);
    CHECK(h->ssl_combined_pem == NULL && h->default_rp == NULL);
    CHECK_EQ_I64(h->write_timeout_ms, 11000);
    CHECK_EQ_I64(h->write_consistency, CONF_CONSISTENCY_ONE);
    CHECK_EQ_I64(h->max_body_bytes, 32 * 1024 * 1024);
    CHECK_EQ_I64(h->max_connections, 10000);
    CHECK_EQ_I64(h->n_outputs, 1);
    CHECK_EQ_I64(h->outputs[0].timeout_ms, 10000);
    CHECK_EQ_I64(h->outputs[0].buffer_bytes, 0);
    CHECK_EQ_I64(h->outputs[0].max_batch_bytes, 512 * 1024);
    CHECK_EQ_I64(h->outputs[0].max_delay_ms, 10000);
    CHECK(!h->outputs[0].skip_tls_verification);
    CHECK_EQ_I64(c->n_udp, 1);
    CHECK_EQ_I64(c->udp[0].precision, CONF_PREC_N);
    CHECK_EQ_I64(c->udp[0].bind.port, 8089);
    CHECK_EQ_I64(c->udp[0].bind.kind, HOSTPORT_ANY);
    CHECK_STREQ(c->http[0].bind.host, "127.0.0.1");
    CHECK_EQ_I64(c->http[0].bind.kind, HOSTPORT_IPV4);
    CHECK_STREQ(c->udp[0].outputs[0].dest.host, "h");
    CHECK_EQ_I64(c->udp[0].outputs[0].dest.kind, HOSTPORT_NAME);
    CHECK_EQ_I64(c->udp[0].read_buffer, 0);
    CHECK_EQ_I64(c->udp[0].outputs[0].mtu, 1024);
    conf_free(c);
    conf_errs_cleanup(&errs);
}

static void
test_values(void)
{
    struct conf_errs errs = {NULL, 0, 0};
    struct conf *c = load("[http.a.output.z]\nlocation = http://h/1\ntimeout = 30s\n"
                          "[http.a.output.b]\n  location = https://h/2 ; comment\n"
                          "buffer-size-mb = 3\nmax-batch-kb = 2\nmax-delay-interval = 1.5s\n"
                          "skip-tls-verification = true\n"
                          "[http.a]\nbind-addr = [::1]:9096\nmax-body-mb = 1\n"
                          "write-consistency = any\n"
                          "[udp.u]\nbind-addr = :1\nprecision = us\n[udp.u.output.x]\n"
                          "location = h:1\n[relay]\nlog-level = debug\nlog-format = json\n",
                          &errs);
    CHECK_EQ_I64(errs.n, 0);
    struct conf_http *h = &c->http[0];
    CHECK_EQ_I64(h->n_outputs, 2);
    CHECK_STREQ(h->outputs[0].name, "z");
    CHECK_STREQ(h->outputs[1].name, "b");
    CHECK_STREQ(h->outputs[1].location, "https://h/2");
    CHECK_EQ_I64(h->outputs[1].buffer_bytes, 3 * 1024 * 1024);
    CHECK_EQ_I64(h->outputs[1].max_batch_bytes, 2048);
    CHECK_EQ_I64(h->outputs[1].max_delay_ms, 1500);
    CHECK(h->outputs[1].skip_tls_verification);
    CHECK_EQ_I64(h->write_timeout_ms, 31000);
    CHECK_EQ_I64(h->max_body_bytes, 1024 * 1024);
    CHECK_EQ_I64(h->write_consistency, CONF_CONSISTENCY_ANY);
    CHECK_EQ_I64(c->udp[0].precision, CONF_PREC_U);
    CHECK_STREQ(c->http[0].bind.host, "::1");
    CHECK_EQ_I64(c->http[0].bind.kind, HOSTPORT_IPV6);
    CHECK_EQ_I64(c->log_level, LOG_DEBUG);
    CHECK(c->log_json);
    conf_free(c);
    conf_errs_cleanup(&errs);
}

static void
test_all_problems(void)
{
    struct conf_errs errs = {NULL, 0, 0};
    struct conf *c = load("[relay]\nlog-level = x\nshutdown-timeout = y\n[nope]\n"
                          "[http.a]\nbind-addr = z\n",
                          &errs);
    CHECK(c != NULL);
    CHECK_EQ_I64(errs.n, 4);
    CHECK_EQ_I64(conf_check(c, &errs), -1);
    CHECK_EQ_I64(errs.n, 5);
    conf_errs_sort(&errs);
    CHECK_EQ_I64(errs.v[0].line, 2);
    CHECK_EQ_I64(errs.v[1].line, 3);
    CHECK_EQ_I64(errs.v[2].line, 4);
    CHECK_EQ_I64(errs.v[3].line, 5); /* no output */
    CHECK_EQ_I64(errs.v[4].line, 6);
    conf_free(c);
    conf_errs_cleanup(&errs);
}

int
main(void)
{
    test_defaults();
    test_values();
    test_all_problems();
    return CHECK_DONE();
}
