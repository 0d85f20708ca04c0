/* Unit test of buffer/rdv.c: every decision rule of write-consistency one/all/any with fake
 * backend outcomes, the wake-up (by a reporter, by the deadline, before or after rdv_notify()),
 * nothing_kept (in flight, maybe stored), a write that can never fit (RDV_FULL with its 413), and
 * the withdraw of a write from the queues it waits in. The client's answer to each verdict is
 * tested in http_answer_test.c. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buffer/payload.h"
#include "buffer/queue.h"
#include "buffer/rdv.h"
#include "check.h"
#include "util/clock.h"
#include "util/timer.h"
#include "util/xalloc.h"

#define SOON (clock_mono_ms() + 5000)

static struct timer *tm;
static unsigned lane;
static const struct queue_ref_ops rdv_refs = {rdv_ref, rdv_unref};

/* A backend stand-in: a queue and the holder through which a rendezvous withdraws from it. */
struct holder {
    struct rdv_holder h; /* first */
    struct queue *q;
};

static void
holder_withdraw(const struct rdv_holder *h, uint64_t seq)
{
    (void)queue_withdraw(((const struct holder *)h)->q, seq);
}

/* The HTTP side: woken once by whoever decides. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int woken;
};

static void
wake(void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->woken++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits (at most 10 s) for r's verdict as the HTTP layer does, then finishes it. Returns how
 * many times the wake ran (0 when the verdict was already there). */
static int
wait_verdict(struct rdv *r, struct rdv_verdict *v)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    clock_cond_init(&w.cv); /* monotonic, for the bounded wait below */
    if (rdv_notify(r, tm, lane, wake, &w)) {
        struct timespec ts;
        clock_mono_to_ts(&ts, clock_mono_ms() + 10000);
        pthread_mutex_lock(&w.mu);
        while (w.woken == 0 && pthread_cond_timedwait(&w.cv, &w.mu, &ts) == 0) {
        }
        pthread_mutex_unlock(&w.mu);
        CHECK_EQ_I64(w.woken, 1);
    }
    rdv_finish(r, v);
    return w.woken;
}

static void
report_str(struct rdv *r, unsigned idx, enum rdv_outcome o, int status, const char *body)
{
    rdv_report(r, idx, o, status, body, body ? strlen(body) : 0, body ? "application/json" : NULL);
}

/* Waits for r's verdict and checks it (body NULL = not checked); frees the verdict and r. */
static void
expect(struct rdv *r, enum rdv_verdict_kind kind, int status, const char *body, bool nothing_kept)
{
    struct rdv_verdict v;
    wait_verdict(r, &v);
    CHECK_EQ_I64(v.kind, kind);
    CHECK_EQ_I64(v.status, status);
    if (body != NULL) {
        CHECK_STREQ(v.body, body);
    }
    CHECK(v.nothing_kept == nothing_kept);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
}

static void
test_one(void)
{
    /* First 2xx wins at once, even with a backend that never answers. */
    struct rdv *r = rdv_new(3, CONF_CONSISTENCY_ONE, SOON);
    report_str(r, 1, RDV_FAILED, 500, "{\"error\":\"x\"}");
    CHECK(!rdv_is_decided(r));
    report_str(r, 2, RDV_OK, 204, NULL);
    CHECK(rdv_is_decided(r));
    int64_t t0 = clock_mono_ms();
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
    CHECK(clock_mono_ms() - t0 < 500);
    /* A 4xx is decisive at once, with body and Content-Type. */
    struct rdv_verdict v;
    r = rdv_new(2, CONF_CONSISTENCY_ONE, SOON);
    report_str(r, 0, RDV_REJECTED, 400, "{\"error\":\"bad\"}");
    report_str(r, 1, RDV_OK, 204, NULL); /* after the verdict: counted, but it decides nothing */
    CHECK_EQ_I64(wait_verdict(r, &v), 0);
    CHECK_EQ_I64(v.kind, RDV_VERDICT_REJECTED);
    CHECK_EQ_I64(v.status, 400);
    CHECK_STREQ(v.body, "{\"error\":\"bad\"}");
    CHECK_STREQ(v.content_type, "application/json");
    CHECK(!v.withdrawn && !v.nothing_kept);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
    /* All failed: the last failure with a status; nothing kept. */
    r = rdv_new(3, CONF_CONSISTENCY_ONE, SOON);
    report_str(r, 0, RDV_FAILED, 500, "{\"error\":\"first\"}");
    report_str(r, 1, RDV_FAILED, 0, NULL);
    report_str(r, 2, RDV_FAILED, 502, "{\"error\":\"last\"}");
    CHECK(rdv_is_withdrawn(r));
    expect(r, RDV_VERDICT_FAILED, 502, "{\"error\":\"last\"}", true);
    /* All transport errors: no status. */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, SOON);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect(r, RDV_VERDICT_FAILED, 0, NULL, true);
    /* All full (or full + down): full is set. */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, SOON);
    report_str(r, 0, RDV_FULL, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    CHECK_EQ_I64(wait_verdict(r, &v), 0);
    CHECK(v.kind == RDV_VERDICT_FAILED && v.full && v.nothing_kept);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
}

static void
test_retry_supersedes(void)
{
    /* A buffered backend that failed, then succeeded on retry before the others answered. */
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ONE, SOON);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 0, RDV_OK, 204, NULL);
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
    /* An OK is final: a later FAILED of the same backend changes nothing. */
    r = rdv_new(2, CONF_CONSISTENCY_ALL, SOON);
    report_str(r, 0, RDV_OK, 204, NULL);
    report_str(r, 0, RDV_FAILED, 500, "x");
    report_str(r, 1, RDV_OK, 204, NULL);
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
}

static void
test_all(void)
{
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ALL, SOON);
    report_str(r, 0, RDV_OK, 204, NULL);
    report_str(r, 1, RDV_FAILED, 503, "{\"error\":\"down\"}");
    CHECK(!rdv_is_withdrawn(r)); /* it is on backend 0 */
    expect(r, RDV_VERDICT_FAILED, 503, "{\"error\":\"down\"}", false);
    r = rdv_new(3, CONF_CONSISTENCY_ALL, SOON);
    report_str(r, 0, RDV_FAILED, 500, "x");
    report_str(r, 1, RDV_REJECTED, 400, "{\"error\":\"bad\"}");
    expect(r, RDV_VERDICT_REJECTED, 400, "{\"error\":\"bad\"}", false);
    r = rdv_new(2, CONF_CONSISTENCY_ALL, SOON);
    report_str(r, 0, RDV_OK, 204, NULL);
    report_str(r, 1, RDV_OK, 204, NULL);
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
    /* One OK and a backend that never answers: TIMEOUT at the deadline, stored, not withdrawn. */
    struct rdv_verdict v;
    int64_t t0 = clock_mono_ms();
    r = rdv_new(2, CONF_CONSISTENCY_ALL, t0 + 100);
    report_str(r, 0, RDV_OK, 204, NULL);
    CHECK_EQ_I64(wait_verdict(r, &v), 1);
    CHECK(clock_mono_ms() - t0 >= 100);
    CHECK(v.kind == RDV_VERDICT_TIMEOUT && v.stored && !v.withdrawn && !v.nothing_kept);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
}

static void
test_any_and_withdraw(void)
{
    struct payload *p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    _Atomic uint64_t wd0 = 0, wd1 = 0;
    struct holder h0 = {{holder_withdraw, NULL}, queue_new(1 << 20, false, &wd0, &rdv_refs)};
    struct holder h1 = {{holder_withdraw, NULL}, queue_new(1 << 20, false, &wd1, &rdv_refs)};
    uint64_t s0 = 0, s1 = 0;
    struct rdv_verdict v;
    /* any: OK once attached to every queue. */
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ANY, SOON);
    CHECK_EQ_I64(queue_push(h0.q, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, &h0.h, s0));
    CHECK(!rdv_is_decided(r));
    CHECK_EQ_I64(queue_push(h1.q, p, r, 1, &s1), 0);
    CHECK(rdv_attach(r, 1, &h1.h, s1));
    CHECK(rdv_is_decided(r));
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
    CHECK_EQ_I64(atomic_load(&wd0) + atomic_load(&wd1), 0);
    /* one, deadline with nothing decided: TIMEOUT, withdrawn from both queues except where it
     * is in flight; in flight at the deadline means it may be stored. */
    int64_t t0 = clock_mono_ms();
    r = rdv_new(2, CONF_CONSISTENCY_ONE, t0 + 150);
    CHECK_EQ_I64(queue_push(h0.q, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, &h0.h, s0));
    CHECK_EQ_I64(queue_push(h1.q, p, r, 1, &s1), 0);
    CHECK(rdv_attach(r, 1, &h1.h, s1));
    struct queue_entry *out[4];
    /* q1: the earlier write and this one are taken and claimed by the sender (in flight). */
    size_t n1 = queue_take(h1.q, 1 << 20, 4, out);
    CHECK_EQ_I64(n1, 2);
    CHECK(rdv_claim(r, 1));
    CHECK(!rdv_is_decided(r));
    CHECK_EQ_I64(wait_verdict(r, &v), 1);
    CHECK(clock_mono_ms() - t0 >= 140);
    CHECK(rdv_is_decided(r));
    CHECK(v.kind == RDV_VERDICT_TIMEOUT && v.withdrawn && !v.nothing_kept && !v.stored);
    rdv_verdict_cleanup(&v);
    CHECK_EQ_I64(atomic_load(&wd0), 1);
    CHECK_EQ_I64(atomic_load(&wd1), 0);
    CHECK(rdv_is_withdrawn(r));
    CHECK(!rdv_claim(r, 0));
    CHECK(!rdv_claim(r, 1));
    CHECK(!rdv_attach(r, 0, &h0.h, 99));
    struct queue_stats st;
    queue_stats(h0.q, &st);
    CHECK_EQ_I64(st.writes, 1); /* the any write only */
    queue_put_back(h1.q, out, n1);
    rdv_unref(r);
    /* The same without the claim: nothing was in flight, nothing kept. */
    r = rdv_new(1, CONF_CONSISTENCY_ONE, clock_mono_ms() + 50);
    CHECK_EQ_I64(queue_push(h0.q, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, &h0.h, s0));
    CHECK_EQ_I64(wait_verdict(r, &v), 1);
    CHECK(v.kind == RDV_VERDICT_TIMEOUT && v.withdrawn && v.nothing_kept);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
    CHECK_EQ_I64(atomic_load(&wd0), 2);
    queue_free(h0.q);
    queue_free(h1.q);
    CHECK_EQ_I64(atomic_load(&p->refs), 1);
    payload_unref(p);
}

/* any with a backend full: not queued everywhere, so the verdict follows the rules of one. */
static void
test_any_with_full(void)
{
    struct payload *p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    struct holder h = {{holder_withdraw, NULL}, queue_new(1 << 20, false, NULL, &rdv_refs)};
    uint64_t seq = 0;
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 100);
    CHECK_EQ_I64(queue_push(h.q, p, r, 0, &seq), 0);
    CHECK(rdv_attach(r, 0, &h.h, seq));
    report_str(r, 1, RDV_FULL, 0, NULL);
    struct rdv_verdict v;
    wait_verdict(r, &v);
    CHECK(v.kind == RDV_VERDICT_TIMEOUT && v.withdrawn && v.full);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
    struct queue_stats st;
    queue_stats(h.q, &st);
    CHECK_EQ_I64(st.writes, 0); /* withdrawn at the deadline */
    r = rdv_new(2, CONF_CONSISTENCY_ANY, SOON);
    report_str(r, 1, RDV_FULL, 0, NULL);
    report_str(r, 0, RDV_OK, 204, NULL);
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
    /* A sender may take the write and report its failure before the submitting thread attached
     * it: it was queued there all the same, so any still answers OK. */
    r = rdv_new(2, CONF_CONSISTENCY_ANY, SOON);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    CHECK(rdv_is_decided(r));
    expect(r, RDV_VERDICT_OK, 0, NULL, false);
    queue_free(h.q);
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
    /* The waiter is woken when another thread reports, long before its deadline. */
    int64_t t0 = clock_mono_ms(); /* before the reporter exists: it reports >= 50 ms later */
    struct rdv *r = rdv_new(1, CONF_CONSISTENCY_ONE, t0 + 5000);
    rdv_ref(r);
    struct later l = {.r = r, .delay_ms = 50};
    pthread_t t;
    pthread_create(&t, NULL, report_later, &l);
    struct rdv_verdict v;
    CHECK_EQ_I64(wait_verdict(r, &v), 1);
    int64_t took = clock_mono_ms() - t0;
    CHECK(took >= 45 && took < 4000); /* slow under valgrind, but well before the deadline */
    CHECK_EQ_I64(v.kind, RDV_VERDICT_OK);
    pthread_join(t, NULL);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
}

/* A waiter that gives up (its client went away) gets TIMEOUT at once and is never woken. */
static void
test_give_up(void)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct rdv *r = rdv_new(1, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    CHECK(rdv_notify(r, tm, lane, wake, &w));
    struct rdv_verdict v;
    rdv_finish(r, &v);
    CHECK(v.kind == RDV_VERDICT_TIMEOUT && v.nothing_kept);
    rdv_report(r, 0, RDV_OK, 204, NULL, 0, NULL);
    CHECK_EQ_I64(w.woken, 0);
    rdv_verdict_cleanup(&v);
    rdv_unref(r); /* the last reference: the deadline was disarmed with it */
}

/* Waits for a failure verdict of r: kind, status, withdrawn, whether nothing was kept, and the
 * backend's body (NULL: none); frees the verdict and r. */
static void
expect_failure(struct rdv *r, int status, bool nothing_kept, const char *body)
{
    struct rdv_verdict v;
    wait_verdict(r, &v);
    CHECK_EQ_I64(v.kind, RDV_VERDICT_FAILED);
    CHECK_EQ_I64(v.status, status);
    CHECK(v.withdrawn);
    CHECK(v.nothing_kept == nothing_kept);
    if (body == NULL) {
        CHECK(v.body == NULL);
    } else {
        CHECK_STREQ(v.body, body);
    }
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
}

/* nothing_kept: a failure verdict is retry-safe only when no backend has the write in flight,
 * may have stored it, or stored it. */
static void
test_nothing_kept(void)
{
    int64_t dl = clock_mono_ms() + 60000;
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ONE, dl);
    CHECK_EQ_I64(rdv_deadline_ms(r), dl);
    /* Both failed, nothing in flight: nothing kept. */
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect_failure(r, 0, true, NULL);
    /* An attempt that may have stored it (sent whole, no answer). */
    r = rdv_new(2, CONF_CONSISTENCY_ONE, dl);
    CHECK(rdv_claim(r, 0));
    rdv_maybe_stored(r, 0);
    report_str(r, 0, RDV_FAILED, 0, NULL);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    expect_failure(r, 0, false, NULL);
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
    CHECK(rdv_is_withdrawn(r));
    expect_failure(r, 429, true, "{\"error\":\"slow down\"}");
}

/* A write that can never fit a backend: RDV_FULL with its own status and body. */
static void
test_full_with_answer(void)
{
    const char *why = "{\"error\":\"too large\"}";
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ONE, clock_mono_ms() + 60000);
    rdv_report(r, 0, RDV_FULL, 413, why, strlen(why), NULL);
    report_str(r, 1, RDV_FULL, 0, NULL);
    CHECK(rdv_is_withdrawn(r));
    expect_failure(r, 413, true, why);
    /* any: backend 1's sender reported (so the write was queued there, attached or not), and
     * backend 0 can never take it: not queued everywhere, every backend failed. */
    r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    report_str(r, 1, RDV_FAILED, 0, NULL);
    CHECK(!rdv_is_decided(r));
    rdv_report(r, 0, RDV_FULL, 413, why, strlen(why), NULL);
    CHECK(rdv_is_decided(r));
    report_str(r, 1, RDV_FULL, 0, NULL); /* after the verdict: changes nothing */
    expect_failure(r, 413, true, why);
}

/* write-consistency any: a buffered backend's sender may report a failure before the submitting
 * thread attached the write to it (or at submit, when it is known to be down); queued on every
 * backend is still the verdict, and the write stays queued for delivery. */
static void
test_any_failed_before_attach(void)
{
    struct payload *p = payload_new(PAYLOAD_WRITE, NULL, "m v=1\n", 6, 1, xstrdup("db=a"), NULL);
    struct holder h0 = {{holder_withdraw, NULL}, queue_new(1 << 20, false, NULL, &rdv_refs)};
    struct holder h1 = {{holder_withdraw, NULL}, queue_new(1 << 20, false, NULL, &rdv_refs)};
    uint64_t s0 = 0, s1 = 0;
    struct rdv *r = rdv_new(2, CONF_CONSISTENCY_ANY, clock_mono_ms() + 60000);
    CHECK_EQ_I64(queue_push(h0.q, p, r, 0, &s0), 0);
    CHECK(rdv_attach(r, 0, &h0.h, s0));
    report_str(r, 0, RDV_FAILED, 0, NULL); /* known down at submit */
    CHECK(!rdv_is_decided(r));
    CHECK_EQ_I64(queue_push(h1.q, p, r, 1, &s1), 0);
    report_str(r, 1, RDV_FAILED, 0, NULL); /* its sender failed before the attach */
    CHECK(rdv_is_decided(r));              /* that report proves it was queued there */
    CHECK(rdv_attach(r, 1, &h1.h, s1));    /* not withdrawn: the attach goes through */
    struct rdv_verdict v;
    CHECK_EQ_I64(wait_verdict(r, &v), 0);
    CHECK(v.kind == RDV_VERDICT_OK && !v.withdrawn);
    rdv_verdict_cleanup(&v);
    rdv_unref(r);
    struct queue_stats st;
    queue_stats(h1.q, &st);
    CHECK_EQ_I64(st.writes, 1); /* kept for delivery */
    queue_stats(h0.q, &st);
    CHECK_EQ_I64(st.writes, 1);
    queue_free(h0.q);
    queue_free(h1.q);
    payload_unref(p);
}

/* A /query change: the verdict carries the first 2xx that had a body (influxd's 200 answer). */
static void
test_ok_body(void)
{
    struct rdv *r = rdv_new(3, CONF_CONSISTENCY_ALL, SOON);
    report_str(r, 2, RDV_OK, 204, NULL);
    report_str(r, 1, RDV_OK, 200, "{\"results\":[{\"statement_id\":0}]}");
    report_str(r, 0, RDV_OK, 200, "{\"results\":[{\"statement_id\":0,\"error\":\"x\"}]}");
    expect(r, RDV_VERDICT_OK, 200, "{\"results\":[{\"statement_id\":0}]}", false);
}

int
main(void)
{
    tm = timer_new();
    lane = timer_lane_new(tm);
    struct ir_err err;
    if (timer_start(tm, &err) != 0) {
        return 1;
    }
    test_one();
    test_ok_body();
    test_retry_supersedes();
    test_all();
    test_any_and_withdraw();
    test_any_with_full();
    test_wakeup();
    test_give_up();
    test_nothing_kept();
    test_full_with_answer();
    test_any_failed_before_attach();
    timer_stop(tm);
    timer_free(tm);
    return CHECK_DONE();
}
