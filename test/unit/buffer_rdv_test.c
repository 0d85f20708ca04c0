/* Unit test of buffer/rdv.c: every decision rule of write-consistency one/all/any with fake
 * backend outcomes, the deadline, and the withdraw of a write from the queues it waits in. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/payload.h"
#include "buffer/queue.h"
#include "buffer/rdv.h"
#include "check.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define SOON (clock_mono_ms() + 2000)

static void
report_str(struct rdv *r, unsigned idx, enum rdv_outcome o, int status, const char *body)
{
    rdv_report(r, idx, o, status, body, body ? strlen(body) : 0, body ? "application/json" : NULL);
}

static void
wait_answer(struct rdv *r, int64_t deadline, struct rdv_answer *a)
{
    rdv_wait(r, deadline, a);
}

/* Waits for r's answer and checks it (body NULL = not checked); frees the answer and r. */
static void
expect(struct rdv *r, int status, const char *body, bool withdrawn)
{
    struct rdv_answer a;
    rdv_wait(r, SOON, &a);
    CHECK_EQ_I64(a.status, status);
    if (body != NULL) {
        CHECK_STREQ(a.body, body);
    }
    CHECK(a.withdrawn == withdrawn);
    CHECK(!a.timed_out);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
}

static void
test_one(void)
{
    /* First 2xx wins at once, even with a backend that never answers. */
    struct rdv *r = rdv_new(3, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    report_str(r, 1, RDV_FAILED, 500, "{\"error\":\"x\"}");
    report_str(r, 2, RDV_OK, 204, NULL);
    int64_t t0 = clock_mono_ms();
    expect(r, 204, NULL, false);
    CHECK(clock_mono_ms() - t0 < 500);
    /* A 4xx is decisive at once, with body and Content-Type. */
    struct rdv_answer a;
    r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_REJECTED, 400, "{\"error\":\"bad\"}");
    report_str(r, 1, RDV_OK, 204, NULL); /* after the verdict: ignored */
    wait_answer(r, SOON, &a);
    CHECK_EQ_I64(a.status, 400);
    CHECK_STREQ(a.body, "{\"error\":\"bad\"}");
    CHECK_STREQ(a.content_type, "application/json");
    CHECK(!a.withdrawn);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
    /* All failed: the last failure with a status. */
    r = rdv_new(3, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_FAILED, 500, "{\"error\":\"first\"}");
    report_str(r, 1, RDV_FAILED, 0, NULL);
    report_str(r, 2, RDV_FAILED, 502, "{\"error\":\"last\"}");
    expect(r, 502, "{\"error\":\"last\"}", true);
    /* All transport errors: 503 unable to write points. */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect(r, 503, "{\"error\":\"unable to write points\"}", true);
    /* All full (or full + down): 503 buffer full. */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_FULL, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect(r, 503, "{\"error\":\"buffer full\"}", true);
}

static void
test_retry_supersedes(void)
{
    /* A buffered backend that failed, then succeeded on retry before the others answered. */
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 0, RDV_OK, 204, NULL);
    expect(r, 204, NULL, false);
    /* An OK is final: a later FAILED of the same backend changes nothing. */
    r = rdv_new(2, CONF_CONSISTENCY_ALL, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_OK, 204, NULL);
    report_str(r, 0, RDV_FAILED, 500, "x");
    report_str(r, 1, RDV_OK, 204, NULL);
    expect(r, 204, NULL, false);
}

static void
test_all(void)
{
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ALL, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_OK, 204, NULL);
    report_str(r, 1, RDV_FAILED, 503, "{\"error\":\"down\"}");
    /* Not withdrawn: it is on backend 0, and the 503 says so instead of inviting a retry. */
    expect(r, 503,
           "{\"error\":\"unable to write points: the write may have been stored by some backends; "
           "retrying may store it twice\"}",
           false);
    r = rdv_new(3, CONF_CONSISTENCY_ALL, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_FAILED, 500, "x");
    report_str(r, 1, RDV_REJECTED, 400, "{\"error\":\"bad\"}");
    expect(r, 400, "{\"error\":\"bad\"}", false);
    r = rdv_new(2, CONF_CONSISTENCY_ALL, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_OK, 204, NULL);
    report_str(r, 1, RDV_OK, 204, NULL);
    expect(r, 204, NULL, false);
    /* One OK and a backend that never answers: 503 at the deadline, not withdrawn. */
    struct rdv_answer a;
    r = rdv_new(2, CONF_CONSISTENCY_ALL, clock_mono_ms() + 60000);
    report_str(r, 0, RDV_OK, 204, NULL);
    wait_answer(r, clock_mono_ms() + 100, &a);
    CHECK_EQ_I64(a.status, 503);
    CHECK(a.timed_out && !a.withdrawn);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
}

static void
test_any_and_withdraw(void)
{
    struct payload *p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    _Atomic uint64_t wd0 = 0, wd1 = 0;
    struct queue *q0 = queue_new(1 << 20, false, &wd0);
    struct queue *q1 = queue_new(1 << 20, false, &wd1);
    uint64_t s0 = 0, s1 = 0;
    struct rdv_answer a;
    /* any: 204 once attached to every queue. */
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    CHECK_EQ_I64(queue_push(q0, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, q0, s0));
    CHECK_EQ_I64(queue_push(q1, p, r, 1, &s1), 0);
    CHECK(rdv_attach(r, 1, q1, s1));
    wait_answer(r, SOON, &a);
    CHECK_EQ_I64(a.status, 204);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
    CHECK_EQ_I64(atomic_load(&wd0) + atomic_load(&wd1), 0);
    /* one, deadline with nothing decided: 503 timed out, withdrawn from both queues, except
     * where it is in flight. */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    CHECK_EQ_I64(queue_push(q0, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, q0, s0));
    CHECK_EQ_I64(queue_push(q1, p, r, 1, &s1), 0);
    CHECK(rdv_attach(r, 1, q1, s1));
    struct queue_entry *out[4];
    /* q1: the earlier write and this one are taken by the sender (in flight). */
    size_t n1 = queue_take(q1, 1 << 20, 4, out);
    CHECK_EQ_I64(n1, 2);
    CHECK(rdv_claim(r, 1));
    CHECK(!rdv_is_decided(r));
    int64_t t0 = clock_mono_ms();
    wait_answer(r, t0 + 150, &a);
    CHECK(clock_mono_ms() - t0 >= 140);
    CHECK(rdv_is_decided(r));
    CHECK_EQ_I64(a.status, 503);
    /* In flight at the deadline: backend 1 may store it, so no "retry is safe". */
    CHECK_STREQ(a.body, "{\"error\":\"timeout: the write may have been stored by some backends; "
                        "retrying may store it twice\"}");
    CHECK(a.timed_out && a.withdrawn && !a.nothing_kept);
    rdv_answer_cleanup(&a);
    CHECK_EQ_I64(atomic_load(&wd0), 1);
    CHECK_EQ_I64(atomic_load(&wd1), 0);
    CHECK(rdv_is_withdrawn(r));
    CHECK(!rdv_claim(r, 1));
    CHECK(!rdv_attach(r, 0, q0, 99));
    struct queue_stats st;
    queue_stats(q0, &st);
    CHECK_EQ_I64(st.writes, 1); /* the any write only */
    queue_put_back(q1, out, n1);
    rdv_unref(r);
    queue_free(q0);
    queue_free(q1);
    CHECK_EQ_I64(atomic_load(&p->refs), 1);
    payload_unref(p);
}

/* any with a backend full: not queued everywhere, so the answer follows the rules of one. */
static void
test_any_with_full(void)
{
    struct payload *p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    struct queue *q = queue_new(1 << 20, false, NULL);
    uint64_t seq = 0;
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    CHECK_EQ_I64(queue_push(q, p, r, 0, &seq), 0);
    CHECK(rdv_attach(r, 0, q, seq));
    report_str(r, 1, RDV_FULL, 0, NULL);
    struct rdv_answer a;
    wait_answer(r, clock_mono_ms() + 100, &a);
    CHECK_EQ_I64(a.status, 503);
    CHECK(a.timed_out && a.withdrawn);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
    struct queue_stats st;
    queue_stats(q, &st);
    CHECK_EQ_I64(st.writes, 0); /* withdrawn at the deadline */
    r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    report_str(r, 1, RDV_FULL, 0, NULL);
    report_str(r, 0, RDV_OK, 204, NULL);
    expect(r, 204, NULL, false);
    queue_free(q);
    payload_unref(p);
}

struct later {
    struct rdv *r;
    int delay_ms;
};

static void *
report_later(void *arg)
{
    struct later *l = arg;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = l->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    rdv_report(l->r, 0, RDV_OK, 204, NULL, 0, NULL);
    rdv_unref(l->r);
    return NULL;
}

static void
test_wakeup(void)
{
    /* The waiter wakes when another thread reports, long before its deadline. */
    struct rdv *r = rdv_new(1, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    rdv_ref(r);
    struct later l = {.r = r, .delay_ms = 50};
    pthread_t t;
    int64_t t0 = clock_mono_ms(); /* before the reporter exists: it reports >= 50 ms later */
    pthread_create(&t, NULL, report_later, &l);
    struct rdv_answer a;
    wait_answer(r, t0 + 5000, &a);
    int64_t took = clock_mono_ms() - t0;
    CHECK(took >= 45 && took < 4000); /* slow under valgrind, but well before the deadline */
    CHECK_EQ_I64(a.status, 204);
    pthread_join(t, NULL);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
}

/* nothing_kept: a failure verdict is retry-safe only when no backend has the write in flight,
 * may have stored it, or stored it. */
/* Waits for a failure verdict of r: status, withdrawn, whether nothing was kept, and a part of
 * the body; frees the answer and r. */
static void
expect_failure(struct rdv *r, int status, bool nothing_kept, const char *part)
{
    struct rdv_answer a;
    rdv_wait(r, SOON, &a);
    CHECK_EQ_I64(a.status, status);
    CHECK(a.withdrawn);
    CHECK(a.nothing_kept == nothing_kept);
    CHECK(a.body != NULL && strstr(a.body, part) != NULL);
    rdv_answer_cleanup(&a);
    rdv_unref(r);
}

static void
test_nothing_kept(void)
{
    int64_t dl = clock_mono_ms() + 60000;
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ONE, dl);
    CHECK_EQ_I64(rdv_deadline_ms(r), dl);
    /* Both failed, nothing in flight: 503, nothing kept. */
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect_failure(r, 503, true, "{\"error\":\"unable to write points\"}");
    /* An attempt that may have stored it (sent whole, no answer). */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, dl);
    CHECK(rdv_claim(r, 0));
    rdv_maybe_stored(r, 0);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect_failure(r, 503, false, "may have been stored");
    /* A claim that ended with a plain failure is over: nothing kept. A new claim after the
     * verdict is refused (withdrawn). */
    r = rdv_new(1, CONF_CONSISTENCY_ONE, dl);
    CHECK(rdv_claim(r, 0));
    report_str(r, 0, RDV_FAILED, 500, "{\"error\":\"x\"}");
    CHECK(!rdv_claim(r, 0));
    expect_failure(r, 500, true, "{\"error\":\"x\"}");
    /* A 429 verdict is a failure too: withdrawn, so a write kept for a retry is not delivered
     * behind the client's back. */
    r = rdv_new(1, CONF_CONSISTENCY_ONE, dl);
    report_str(r, 0, RDV_FAILED, 429, "{\"error\":\"slow down\"}");
    expect_failure(r, 429, true, "slow down");
}

/* A write that can never fit a backend: RDV_FULL with its own status and body. */
static void
test_full_with_answer(void)
{
    const char *why = "{\"error\":\"too large\"}";
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    rdv_report(r, 0, RDV_FULL, 413, why, strlen(why), NULL);
    report_str(r, 1, RDV_FULL, 0, NULL);
    expect(r, 413, why, true);
    r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    rdv_report(r, 0, RDV_FULL, 413, why, strlen(why), NULL);
    CHECK(!rdv_is_decided(r)); /* backend 1 has not attached yet */
    report_str(r, 1, RDV_FULL, 0, NULL);
    expect(r, 413, why, true);
}

/* write-consistency any: a buffered backend's sender may report a failure before the submitting
 * thread attached the write to it (or at submit, when it is known to be down); queued on every
 * backend is still the verdict. */
static void
test_any_failed_before_attach(void)
{
    struct payload *p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    struct queue *q0 = queue_new(1 << 20, false, NULL);
    struct queue *q1 = queue_new(1 << 20, false, NULL);
    uint64_t s0 = 0, s1 = 0;
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    CHECK_EQ_I64(queue_push(q0, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, q0, s0));
    report_str(r, 0, RDV_FAILED, 0, NULL); /* known down at submit */
    CHECK_EQ_I64(queue_push(q1, p, r, 1, &s1), 0);
    report_str(r, 1, RDV_FAILED, 0, NULL); /* its sender failed before the attach */
    CHECK(!rdv_is_decided(r));
    CHECK(rdv_attach(r, 1, q1, s1));
    expect(r, 204, NULL, false);
    struct queue_stats st;
    queue_stats(q1, &st);
    CHECK_EQ_I64(st.writes, 1); /* kept for delivery */
    queue_free(q0);
    queue_free(q1);
    payload_unref(p);
}

int
main(void)
{
    test_one();
    test_retry_supersedes();
    test_all();
    test_any_and_withdraw();
    test_any_with_full();
    test_wakeup();
    test_nothing_kept();
    test_full_with_answer();
    test_any_failed_before_attach();
    return CHECK_DONE();
}
