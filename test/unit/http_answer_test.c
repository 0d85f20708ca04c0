/* Unit test of http/answer.c: the client's answer to each backends' verdict, byte for byte (the
 * answers of docs/queue-and-retry.md), and Retry-After only on a 503 after which nothing was
 * kept. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http/answer.h"
#include "util/xalloc.h"

/* A verdict as rdv_finish() hands it over (strings owned). */
static struct rdv_verdict
verdict(enum rdv_verdict_kind kind, int status, const char *body, const char *ctype)
{
    struct rdv_verdict v = {.kind = kind, .status = status};
    if (body != NULL) {
        v.body = xstrdup(body);
        v.body_len = strlen(body);
    }
    v.content_type = ctype != NULL ? xstrdup(ctype) : NULL;
    return v;
}

/* Answers v (with no partial write) and checks status, body, Content-Type and Retry-After. */
static void
expect(struct rdv_verdict v, int status, const char *body, const char *ctype, unsigned retry)
{
    struct reply r = {0};
    answer_verdict(&v, NULL, 7, &r);
    rdv_verdict_cleanup(&v);
    CHECK_EQ_I64(r.status, status);
    if (body == NULL) {
        CHECK(r.body == NULL && r.len == 0);
    } else {
        CHECK(r.body != NULL && r.len == strlen(body) && memcmp(r.body, body, r.len) == 0);
    }
    const char *got_ctype = r.ctype != NULL ? r.ctype : r.ctype_static;
    if (ctype != NULL) {
        CHECK_STREQ(got_ctype, ctype);
    }
    CHECK_EQ_I64(r.retry_after_s, retry);
    reply_cleanup(&r);
}

static void
test_ok_and_rejected(void)
{
    expect(verdict(RDV_VERDICT_OK, 0, NULL, NULL), 204, NULL, NULL, 0);
    /* A 4xx goes back as the backend sent it. */
    expect(verdict(RDV_VERDICT_REJECTED, 400, "{\"error\":\"bad\"}", "application/json"), 400,
           "{\"error\":\"bad\"}", "application/json", 0);
    expect(verdict(RDV_VERDICT_REJECTED, 404, "nope", "text/plain"), 404, "nope", "text/plain", 0);
    expect(verdict(RDV_VERDICT_REJECTED, 401, "", NULL), 401, "", "application/json", 0);
    expect(verdict(RDV_VERDICT_REJECTED, 400, NULL, NULL), 400,
           "{\"error\":\"rejected by backend\"}", "application/json", 0);
    /* A partial write that was stored: 400 naming the dropped lines. */
    struct rdv_verdict v = verdict(RDV_VERDICT_OK, 0, NULL, NULL);
    const char errs[] = "unable to parse 'x': missing fields";
    struct answer_partial p = {1, errs, sizeof(errs) - 1};
    struct reply r = {0};
    answer_verdict(&v, &p, 7, &r);
    CHECK_EQ_I64(r.status, 400);
    CHECK(r.body != NULL && strstr(r.body, "partial write: unable to parse 'x'") != NULL);
    CHECK(strstr(r.body, " dropped=1\"}") != NULL);
    reply_cleanup(&r);
}

static void
test_failures(void)
{
    struct rdv_verdict v = verdict(RDV_VERDICT_FAILED, 502, "{\"error\":\"last\"}", NULL);
    v.nothing_kept = true;
    expect(v, 502, "{\"error\":\"last\"}", "application/json", 0); /* only a 503 says retry */
    v = verdict(RDV_VERDICT_FAILED, 503, "{\"error\":\"busy\"}", "application/json");
    v.nothing_kept = true;
    expect(v, 503, "{\"error\":\"busy\"}", "application/json", 7);
    v = verdict(RDV_VERDICT_FAILED, 0, NULL, NULL);
    v.nothing_kept = true;
    expect(v, 503, "{\"error\":\"unable to write points\"}", "application/json", 7);
    v = verdict(RDV_VERDICT_FAILED, 0, NULL, NULL);
    v.nothing_kept = v.full = true;
    expect(v, 503, "{\"error\":\"buffer full\"}", "application/json", 7);
    v = verdict(RDV_VERDICT_TIMEOUT, 0, NULL, NULL);
    v.nothing_kept = true;
    expect(v, 503, "{\"error\":\"timeout\"}", "application/json", 7);
    /* A 429 keeps its status and body; only a 503 says when to retry. */
    v = verdict(RDV_VERDICT_FAILED, 429, "{\"error\":\"slow down\"}", "application/json");
    v.nothing_kept = true;
    expect(v, 429, "{\"error\":\"slow down\"}", "application/json", 0);
    /* A write larger than a whole buffer (RDV_FULL with its 413): passed on, no Retry-After
     * (no retry can ever fit it). */
    v = verdict(RDV_VERDICT_FAILED, 413, "{\"error\":\"request too large\"}", "application/json");
    v.nothing_kept = v.full = true;
    expect(v, 413, "{\"error\":\"request too large\"}", "application/json", 0);
}

/* A 503 after which a backend may hold or have stored the write: no Retry-After, and the
 * relay's own text says so. */
static void
test_maybe_kept(void)
{
    struct rdv_verdict v = verdict(RDV_VERDICT_TIMEOUT, 0, NULL, NULL);
    struct reply r = {0};
    answer_verdict(&v, NULL, 7, &r);
    CHECK_EQ_I64(r.status, 503);
    CHECK_EQ_I64(r.retry_after_s, 0);
    CHECK_STREQ(r.body, "{\"error\":\"timeout: the write may have been stored by some backends; "
                        "retrying may store it twice\"}");
    reply_cleanup(&r);
    v = verdict(RDV_VERDICT_FAILED, 0, NULL, NULL);
    v.stored = true; /* write-consistency all: one backend has it */
    answer_verdict(&v, NULL, 7, &r);
    CHECK_EQ_I64(r.status, 503);
    CHECK_EQ_I64(r.retry_after_s, 0);
    CHECK_STREQ(r.body, "{\"error\":\"unable to write points: the write may have been stored by "
                        "some backends; retrying may store it twice\"}");
    reply_cleanup(&r);
    /* A backend's own 503 would invite a retry: the relay's text replaces it. */
    v = verdict(RDV_VERDICT_FAILED, 503, "{\"error\":\"down\"}", NULL);
    expect(v, 503,
           "{\"error\":\"unable to write points: the write may have been stored by some backends; "
           "retrying may store it twice\"}",
           "application/json", 0);
    v = verdict(RDV_VERDICT_FAILED, 0, NULL, NULL);
    v.full = true;
    expect(v, 503,
           "{\"error\":\"buffer full: the write may have been stored by some backends; retrying "
           "may store it twice\"}",
           "application/json", 0);
    /* Other statuses pass on unchanged. */
    v = verdict(RDV_VERDICT_FAILED, 500, "{\"error\":\"x\"}", NULL);
    expect(v, 500, "{\"error\":\"x\"}", "application/json", 0);
}

/* answer_v2_shape() on a reply of status with body (NULL: none): body, header, Content-Type. */
static void
expect_v2(int status, const char *body, const char *want_body, const char *want_header)
{
    struct reply r = {0};
    if (body != NULL) {
        reply_body(&r, status, xstrdup(body), strlen(body), "application/json");
    } else {
        reply_empty(&r, status);
    }
    r.retry_after_s = status == 503 ? 3 : 0;
    answer_v2_shape(&r);
    CHECK_EQ_I64(r.status, status);
    if (want_body == NULL) {
        CHECK(r.body == NULL && r.influx_error == NULL);
    } else {
        CHECK(r.body != NULL && r.len == strlen(want_body) &&
              memcmp(r.body, want_body, r.len) == 0);
        CHECK_STREQ(r.influx_error, want_header);
        CHECK_STREQ(r.ctype != NULL ? r.ctype : r.ctype_static, "application/json; charset=utf-8");
    }
    CHECK_EQ_I64(r.retry_after_s, status == 503 ? 3 : 0);
    reply_cleanup(&r);
}

static void
test_v2_shape(void)
{
    expect_v2(204, NULL, NULL, NULL);
    expect_v2(400, "{\"error\":\"partial write: unable to parse 'a b': x\\ny dropped=1\"}\n",
              "{\"code\":\"invalid\",\"message\":\"partial write: unable to parse 'a b': "
              "x\\ny dropped=1\"}\n",
              "partial write: unable to parse 'a b': x y dropped=1");
    expect_v2(404, "{\"error\":\"database not found: \\\"x\\\"\"}",
              "{\"code\":\"not found\",\"message\":\"database not found: \\\"x\\\"\"}\n",
              "database not found: \"x\"");
    expect_v2(413, "{\"error\":\"http: request body too large\"}\n",
              "{\"code\":\"request too large\",\"message\":\"http: request body too large\"}\n",
              "http: request body too large");
    expect_v2(503, "{\"error\":\"timeout\"}",
              "{\"code\":\"unavailable\",\"message\":\"timeout\"}\n", "timeout");
    expect_v2(500, "<b>&</b>\r\n",
              "{\"code\":\"internal "
              "error\",\"message\":\"\\u003cb\\u003e\\u0026\\u003c/b\\u003e\"}\n",
              "<b>&</b>");
    expect_v2(410, NULL, "{\"code\":\"invalid\",\"message\":\"Gone\"}\n", "Gone");
    expect_v2(499, "", "{\"code\":\"invalid\",\"message\":\"status 499\"}\n", "status 499");
    expect_v2(401, "{\"error\":\"authorization failed\"}",
              "{\"code\":\"unauthorized\",\"message\":\"authorization failed\"}\n",
              "authorization failed");
}

int
main(void)
{
    test_ok_and_rejected();
    test_failures();
    test_maybe_kept();
    test_v2_shape();
    return CHECK_DONE();
}
