/* Unit test of buffer/queue.c and buffer/payload.c: the byte bound, FIFO order, batch selection
 * (same route, max bytes, a large head alone), put-back, withdraw, pop-all, and where records
 * read back from a spool go. */
#include <stdlib.h>
#include <string.h>

#include "buffer/payload.h"
#include "buffer/queue.h"
#include "buffer/rdv.h"
#include "check.h"
#include "util/xalloc.h"

static const struct queue_ref_ops rdv_refs = {rdv_ref, rdv_unref};

static struct payload *
mk(const char *data, const char *query, const char *auth)
{
    return payload_new(PAYLOAD_WRITE, NULL, data, strlen(data), 1, xstrdup(query),
                       auth ? xstrdup(auth) : NULL);
}

static void
test_bound(void)
{
    struct payload *p = mk("m v=1i\n", "db=a", NULL);
    uint64_t cost = queue_entry_cost(p);
    CHECK(cost > p->len);
    _Atomic uint64_t withdrawn = 0;
    struct queue *q = queue_new(cost * 3, false, &withdrawn, &rdv_refs);
    uint64_t seq = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_I64(queue_push(q, p, NULL, 0, &seq), 0);
    }
    CHECK_EQ_I64(queue_push(q, p, NULL, 0, &seq), -1);
    struct queue_stats st;
    queue_stats(q, &st);
    CHECK_EQ_I64(st.writes, 3);
    CHECK_EQ_I64(st.bytes, cost * 3);
    CHECK_EQ_I64(atomic_load(&p->refs), 4);
    queue_free(q);
    CHECK_EQ_I64(atomic_load(&p->refs), 1);
    /* Unbuffered: an empty queue takes one write of any size, then the bound applies. */
    q = queue_new(1, true, NULL, &rdv_refs);
    CHECK_EQ_I64(queue_push(q, p, NULL, 0, &seq), 0);
    CHECK_EQ_I64(queue_push(q, p, NULL, 0, &seq), -1);
    queue_free(q);
    payload_unref(p);
}

/* 1 MiB holds at most 102 writes of 10 KiB (docs/queue-and-retry.md). */
static void
test_bound_10k(void)
{
    char *body = xmalloc(10240);
    memset(body, 'x', 10239);
    body[10239] = '\n';
    struct payload *p =
            payload_new(PAYLOAD_WRITE, body, body, 10240, 1, xstrdup("db=a&precision=n"), NULL);
    struct queue *q = queue_new((uint64_t)1024 * 1024, false, NULL, &rdv_refs);
    uint64_t seq = 0;
    int n = 0;
    while (queue_push(q, p, NULL, 0, &seq) == 0) {
        n++;
    }
    CHECK(n <= 102);
    CHECK(n >= 95);
    queue_free(q);
    payload_unref(p);
}

static void
test_batch_selection(void)
{
    struct payload *a1 = mk("a 1\n", "db=a", NULL);
    struct payload *a2 = mk("a 2\n", "db=a", NULL);
    struct payload *b1 = mk("b 1\n", "db=b", NULL);
    struct payload *a3 = mk("a 3\n", "db=a", "Basic x");
    struct payload *a4 = mk("a 4\n", "db=a", "Basic x");
    struct queue *q = queue_new(1 << 20, false, NULL, &rdv_refs);
    uint64_t seq = 0;
    struct payload *all[] = {a1, a2, b1, a3, a4};
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ_I64(queue_push(q, all[i], NULL, 0, &seq), 0);
        CHECK_EQ_I64(seq, i + 1);
    }
    struct queue_entry *out[8];
    /* Same route, contiguous: a1 a2, stops at b1 (order is never changed). */
    size_t n = queue_take(q, 1024, 8, out);
    CHECK_EQ_I64(n, 2);
    CHECK(out[0]->p == a1 && out[1]->p == a2);
    /* Put back: the same writes come again, in order. */
    queue_put_back(q, out, n);
    n = queue_take(q, 1024, 1, out);
    CHECK_EQ_I64(n, 1);
    CHECK(out[0]->p == a1);
    queue_put_back(q, out, n);
    /* max_bytes: a1 (4 bytes) fits in 5, a2 would not; a large head always goes alone. */
    n = queue_take(q, 5, 8, out);
    CHECK_EQ_I64(n, 1);
    n = queue_take(q, 1, 8, out);
    CHECK_EQ_I64(n, 1);
    queue_remove(q, out, n);
    queue_entry_free(out[0]);
    n = queue_take(q, 1024, 8, out);
    CHECK_EQ_I64(n, 1);
    CHECK(out[0]->p == a2);
    queue_remove(q, out, n);
    queue_entry_free(out[0]);
    n = queue_take(q, 1024, 8, out);
    CHECK(n == 1 && out[0]->p == b1);
    queue_remove(q, out, n);
    queue_entry_free(out[0]);
    /* Authorization is part of the route: a3 a4 merge. */
    n = queue_take(q, 1024, 8, out);
    CHECK(n == 2 && out[0]->p == a3 && out[1]->p == a4);
    queue_remove(q, out, n);
    queue_entry_free(out[0]);
    queue_entry_free(out[1]);
    struct queue_stats st;
    queue_stats(q, &st);
    CHECK_EQ_I64(st.writes, 0);
    CHECK_EQ_I64(st.bytes, 0);
    queue_free(q);
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ_I64(atomic_load(&all[i]->refs), 1);
        payload_unref(all[i]);
    }
}

static void
test_withdraw(void)
{
    struct payload *p = mk("m v=1i\n", "db=a", NULL);
    _Atomic uint64_t withdrawn = 0;
    struct queue *q = queue_new(1 << 20, false, &withdrawn, &rdv_refs);
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    CHECK_EQ_I64(queue_push(q, p, NULL, 0, &s1), 0);
    CHECK_EQ_I64(queue_push(q, p, NULL, 0, &s2), 0);
    CHECK_EQ_I64(queue_push(q, p, NULL, 0, &s3), 0);
    /* In flight: not withdrawn. */
    struct queue_entry *out[4];
    size_t n = queue_take(q, 1, 1, out);
    CHECK_EQ_I64(n, 1);
    CHECK(!queue_withdraw(q, s1));
    /* Queued in the middle: removed, bytes released, counted. */
    CHECK(queue_withdraw(q, s2));
    CHECK(!queue_withdraw(q, s2));
    CHECK_EQ_I64(atomic_load(&withdrawn), 1);
    struct queue_stats st;
    queue_stats(q, &st);
    CHECK_EQ_I64(st.writes, 2);
    CHECK_EQ_I64(st.bytes, 2 * queue_entry_cost(p));
    /* Put back: withdrawable again. */
    queue_put_back(q, out, n);
    CHECK(queue_withdraw(q, s1));
    n = queue_take(q, 1024, 4, out);
    CHECK_EQ_I64(n, 1);
    CHECK_EQ_I64(out[0]->seq, s3);
    queue_put_back(q, out, n);
    struct queue_entry *rest = queue_pop_all(q);
    CHECK(rest != NULL && rest->next == NULL);
    queue_entry_free(rest);
    queue_free(q);
    CHECK_EQ_I64(atomic_load(&p->refs), 1);
    payload_unref(p);
}

static void
test_route(void)
{
    struct payload *a = mk("x\n", "db=a", NULL);
    struct payload *b = mk("x\n", "db=a", "Token t");
    struct payload *c = mk("x\n", "db=a", "Token t");
    CHECK(!payload_same_route(a, b));
    CHECK(payload_same_route(b, c));
    CHECK(payload_same_route(a, a));
    payload_unref(a);
    payload_unref(b);
    payload_unref(c);
}

/* Only writes merge: a Prometheus body or a query always goes alone, even next to payloads of
 * the same kind and route. */
static void
test_kinds_never_merge(void)
{
    struct payload *w1 = mk("a 1\n", "db=a", NULL);
    struct payload *pr1 = payload_new(PAYLOAD_PROM, NULL, "x", 1, 0, xstrdup("db=a"), NULL);
    struct payload *pr2 = payload_new(PAYLOAD_PROM, NULL, "y", 1, 0, xstrdup("db=a"), NULL);
    struct payload *q1 = payload_new(PAYLOAD_QUERY, NULL, "q=a", 3, 0, xstrdup("db=a"), NULL);
    struct payload *q2 = payload_new(PAYLOAD_QUERY, NULL, "q=b", 3, 0, xstrdup("db=a"), NULL);
    struct payload *w2 = mk("a 2\n", "db=a", NULL);
    struct payload *w3 = mk("a 3\n", "db=a", NULL);
    struct payload *all[] = {w1, pr1, pr2, q1, q2, w2, w3};
    size_t want[] = {1, 1, 1, 1, 1, 2};
    CHECK(!payload_same_route(pr1, pr2) && !payload_same_route(q1, q2));
    CHECK(!payload_same_route(w1, pr1) && payload_same_route(w2, w3));
    struct queue *q = queue_new(1 << 20, false, NULL, &rdv_refs);
    uint64_t seq = 0;
    for (size_t i = 0; i < 7; i++) {
        CHECK_EQ_I64(queue_push(q, all[i], NULL, 0, &seq), 0);
    }
    struct queue_entry *out[8];
    for (size_t i = 0, at = 0; i < 6; i++) {
        size_t n = queue_take(q, 1024, 8, out);
        CHECK_EQ_I64(n, want[i]);
        CHECK(out[0]->p == all[at]);
        at += n;
        queue_remove(q, out, n);
        for (size_t j = 0; j < n; j++) {
            queue_entry_free(out[j]);
        }
    }
    queue_free(q);
    for (size_t i = 0; i < 7; i++) {
        payload_unref(all[i]);
    }
}

/* Spooled: records read back while one read back before still waits go behind it, ahead of
 * the writes queued since (the spool reader stops before those): the queue stays in seq order
 * (a relay under load once aborted here: the sender loaded one write, failed to send it, and
 * loaded the records spooled meanwhile ahead of it). */
static void
test_loaded_behind_loaded(void)
{
    struct queue *q = queue_new(1 << 20, false, NULL, &rdv_refs);
    queue_spooled(q);
    struct payload *p = mk("a 1\n", "db=a", NULL);
    const int64_t arr[3] = {0, 0, 0};
    struct payload *one[1] = {p};
    payload_ref(p);
    queue_push_loaded(q, one, (const uint64_t[]){1}, arr, 1);
    struct spool_loc loc = {.seq = 5};
    bool overflow = true;
    CHECK_EQ_I64(queue_push_spooled(q, p, NULL, 0, &loc, 0, false, &overflow), 0);
    CHECK(!overflow);
    uint64_t first = 0;
    CHECK_EQ_I64(queue_spool_view(q, 1, 2, &first), 1);
    CHECK_EQ_I64(first, 5);
    struct payload *two[2] = {p, p};
    payload_ref(p);
    payload_ref(p);
    queue_push_loaded(q, two, (const uint64_t[]){2, 4}, arr, 2);
    CHECK_EQ_I64(queue_head_seq(q), 1);
    struct queue_entry *out[8];
    size_t n = queue_take_upto(q, 1024, 8, 4, out);
    CHECK_EQ_I64(n, 4);
    const uint64_t want[4] = {1, 2, 4, 5};
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_I64(out[i]->seq, want[i]);
    }
    queue_remove(q, out, n);
    for (size_t i = 0; i < n; i++) {
        queue_entry_free(out[i]);
    }
    struct queue_stats st;
    queue_stats(q, &st);
    CHECK_EQ_I64(st.writes, 0);
    /* Into an empty queue, and then with nothing left behind them. */
    payload_ref(p);
    queue_push_loaded(q, one, (const uint64_t[]){6}, arr, 1);
    payload_ref(p);
    queue_push_loaded(q, one, (const uint64_t[]){7}, arr, 1);
    CHECK_EQ_I64(queue_take_upto(q, 1024, 8, 7, out), 2);
    CHECK(out[0]->seq == 6 && out[1]->seq == 7 && out[1]->next == NULL);
    queue_free(q);
    CHECK_EQ_I64(atomic_load(&p->refs), 1);
    payload_unref(p);
}

int
main(void)
{
    test_bound();
    test_bound_10k();
    test_batch_selection();
    test_withdraw();
    test_route();
    test_kinds_never_merge();
    test_loaded_behind_loaded();
    return CHECK_DONE();
}
