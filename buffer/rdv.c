#include "buffer/rdv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/queue.h"
#include "util/clock.h"
#include "util/xalloc.h"

/* Locking: r->mu guards everything below it in struct rdv except refs and withdrawn (atomics).
 * It is never held together with a queue mutex: rdv_wait() withdraws after unlocking, and the
 * slots it reads are frozen once withdrawn is set (rdv_attach() refuses from then on). Strings
 * are copied before locking and freed after unlocking. */

enum slot_state { SLOT_NONE, SLOT_FAILED, SLOT_FULL, SLOT_OK, SLOT_REJECTED };
enum verdict { VERDICT_NONE, VERDICT_OK, VERDICT_REJECTED, VERDICT_FAILED, VERDICT_TIMEOUT };

struct rdv_slot {
    enum slot_state state;
    bool attached;
    bool inflight;     /* claimed for an attempt that has not reported yet */
    bool maybe_stored; /* an attempt ended without an answer after sending it all */
    struct queue *q;   /* borrowed: where the write waits for this backend */
    uint64_t seq;
};

struct rdv {
    _Atomic unsigned refs;  /* atomic */
    _Atomic bool withdrawn; /* atomic; set under mu, read without it */
    pthread_mutex_t mu;
    pthread_cond_t cv;                           /* CLOCK_MONOTONIC; broadcast when decided */
    unsigned n;                                  /* immutable */
    enum conf_consistency consistency;           /* immutable */
    int64_t deadline_ms;                         /* immutable */
    enum verdict verdict;                        /* guarded by mu: set once */
    unsigned n_ok, n_failed, n_full, n_attached; /* guarded by mu; n_failed includes full */
    int rej_status;                              /* guarded by mu: the first 4xx, 0 = none */
    char *rej_body, *rej_ctype;
    size_t rej_len;
    int fail_status; /* guarded by mu: the last failure that had an HTTP status */
    char *fail_body, *fail_ctype;
    size_t fail_len;
    struct rdv_slot slot[]; /* guarded by mu; frozen once withdrawn */
};

struct rdv *
rdv_new(unsigned n, enum conf_consistency c, int64_t deadline_ms)
{
    struct rdv *r = xcalloc(1, sizeof(*r) + n * sizeof(r->slot[0]));
    atomic_init(&r->refs, 1);
    atomic_init(&r->withdrawn, false);
    pthread_mutex_init(&r->mu, NULL);
    clock_cond_init(&r->cv);
    r->n = n;
    r->consistency = c;
    r->deadline_ms = deadline_ms;
    return r;
}

int64_t
rdv_deadline_ms(const struct rdv *r)
{
    return r->deadline_ms;
}

bool
rdv_is_decided(struct rdv *r)
{
    pthread_mutex_lock(&r->mu);
    bool decided = r->verdict != VERDICT_NONE;
    pthread_mutex_unlock(&r->mu);
    return decided;
}

void
rdv_ref(struct rdv *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void
rdv_unref(struct rdv *r)
{
    if (r == NULL || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->rej_body);
    free(r->rej_ctype);
    free(r->fail_body);
    free(r->fail_ctype);
    free(r);
}

/* Caller holds r->mu. Applies the decision rules of the header. */
static enum verdict
rdv_decide(const struct rdv *r)
{
    if (r->consistency == CONF_CONSISTENCY_ALL) {
        if (r->rej_status != 0) {
            return VERDICT_REJECTED;
        }
        if (r->n_ok == r->n) {
            return VERDICT_OK;
        }
        return r->n_ok + r->n_failed == r->n ? VERDICT_FAILED : VERDICT_NONE;
    }
    if (r->n_ok > 0) {
        return VERDICT_OK;
    }
    if (r->rej_status != 0) {
        return VERDICT_REJECTED;
    }
    if (r->consistency == CONF_CONSISTENCY_ANY) {
        /* Queued everywhere is the verdict, whatever was reported meanwhile (a sender may even
         * report before its backend's attach): a failure only once every backend is settled and
         * some could not queue it. */
        if (r->n_attached == r->n) {
            return VERDICT_OK;
        }
        return r->n_failed == r->n && r->n_attached + r->n_full == r->n ? VERDICT_FAILED
                                                                        : VERDICT_NONE;
    }
    return r->n_failed == r->n ? VERDICT_FAILED : VERDICT_NONE;
}

/* Caller holds r->mu: re-evaluates; returns true when this call decided, and the caller then
 * wakes the waiter with pthread_cond_broadcast() after unlocking (a waiter woken under the lock
 * would only block on it again). Every caller holds a reference, so r outlives the broadcast. */
static bool
rdv_update(struct rdv *r)
{
    if (r->verdict != VERDICT_NONE) {
        return false;
    }
    r->verdict = rdv_decide(r);
    if (r->verdict == VERDICT_FAILED && r->n_ok == 0) {
        /* Withdrawn from this moment: a sender retrying at once must not claim it before the
         * waiter wakes up (rdv_wait() then removes it from the queues). */
        atomic_store(&r->withdrawn, true);
    }
    return r->verdict != VERDICT_NONE;
}

static char *
copy_or_null(const char *s, size_t len)
{
    return s == NULL ? NULL : xstrndup(s, len);
}

/* Caller holds r->mu. Records outcome o for a slot that is not final yet. body/ctype are
 * swapped with the stored strings: the caller frees what comes back. */
static void
slot_set(struct rdv *r, struct rdv_slot *s, enum rdv_outcome o, int status, char **body, size_t len,
         char **ctype)
{
    if (s->state == SLOT_FAILED || s->state == SLOT_FULL) {
        r->n_failed--;
    }
    char *tb = *body;
    char *tc = *ctype;
    switch (o) {
    case RDV_OK:
        s->state = SLOT_OK;
        r->n_ok++;
        return;
    case RDV_REJECTED:
        s->state = SLOT_REJECTED;
        if (r->rej_status == 0) {
            r->rej_status = status;
            *body = r->rej_body, r->rej_body = tb, r->rej_len = len;
            *ctype = r->rej_ctype, r->rej_ctype = tc;
        }
        return;
    case RDV_FULL:
        s->state = SLOT_FULL;
        r->n_failed++;
        r->n_full++;
        if (status != 0) { /* can never fit: its answer is carried like a failure's */
            r->fail_status = status;
            *body = r->fail_body, r->fail_body = tb, r->fail_len = len;
            *ctype = r->fail_ctype, r->fail_ctype = tc;
        }
        return;
    case RDV_FAILED:
        s->state = SLOT_FAILED;
        r->n_failed++;
        if (status != 0) {
            r->fail_status = status;
            *body = r->fail_body, r->fail_body = tb, r->fail_len = len;
            *ctype = r->fail_ctype, r->fail_ctype = tc;
        }
        return;
    }
}

void
rdv_report(struct rdv *r, unsigned idx, enum rdv_outcome o, int status, const char *body,
           size_t body_len, const char *ctype)
{
    char *b = copy_or_null(body, body_len);
    char *ct = copy_or_null(ctype, ctype ? strlen(ctype) : 0);
    bool decided = false;
    pthread_mutex_lock(&r->mu);
    struct rdv_slot *s = &r->slot[idx];
    s->inflight = false; /* the attempt is over */
    bool final = s->state == SLOT_OK || s->state == SLOT_REJECTED;
    /* After the verdict only successes still count: they stop a withdraw (rdv_wait()). */
    if (!final && (r->verdict == VERDICT_NONE || o == RDV_OK)) {
        slot_set(r, s, o, status, &b, body_len, &ct);
        decided = rdv_update(r);
    }
    pthread_mutex_unlock(&r->mu);
    if (decided) {
        pthread_cond_broadcast(&r->cv);
    }
    free(b);
    free(ct);
}

bool
rdv_is_withdrawn(struct rdv *r)
{
    return atomic_load(&r->withdrawn);
}

bool
rdv_claim(struct rdv *r, unsigned idx)
{
    /* The queue's in-flight mark is what protects a claimed write from a withdraw; the flag
     * only has to be read after the mark was set, which queue_take() did under its mutex.
     * Under mu: withdrawn is set under mu too, so once it is, no slot becomes in flight. */
    pthread_mutex_lock(&r->mu);
    bool ok = !atomic_load(&r->withdrawn);
    if (ok) {
        r->slot[idx].inflight = true;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

void
rdv_maybe_stored(struct rdv *r, unsigned idx)
{
    pthread_mutex_lock(&r->mu);
    r->slot[idx].maybe_stored = true;
    pthread_mutex_unlock(&r->mu);
}

bool
rdv_attach(struct rdv *r, unsigned idx, struct queue *q, uint64_t seq)
{
    bool decided = false;
    pthread_mutex_lock(&r->mu);
    bool ok = !atomic_load(&r->withdrawn);
    if (ok) {
        struct rdv_slot *s = &r->slot[idx];
        s->attached = true;
        s->q = q;
        s->seq = seq;
        r->n_attached++;
        decided = rdv_update(r);
    }
    pthread_mutex_unlock(&r->mu);
    if (decided) {
        pthread_cond_broadcast(&r->cv);
    }
    return ok;
}

static void
answer_json(struct rdv_answer *a, int status, const char *json)
{
    a->status = status;
    a->body = xstrdup(json);
    a->body_len = strlen(json);
}

/* Caller holds r->mu: moves the decided answer into *a (strings change owner, no allocation).
 * Returns the fixed JSON error to add after unlocking, or NULL. */
static const char *
answer_take(struct rdv *r, struct rdv_answer *a)
{
    switch (r->verdict) {
    case VERDICT_OK:
        a->status = 204;
        return NULL;
    case VERDICT_REJECTED:
        a->status = r->rej_status;
        a->body = r->rej_body, a->body_len = r->rej_len, a->content_type = r->rej_ctype;
        r->rej_body = NULL, r->rej_ctype = NULL;
        return a->body == NULL ? "{\"error\":\"rejected by backend\"}" : NULL;
    case VERDICT_FAILED:
        if (r->fail_status != 0) {
            a->status = r->fail_status;
            a->body = r->fail_body, a->body_len = r->fail_len, a->content_type = r->fail_ctype;
            r->fail_body = NULL, r->fail_ctype = NULL;
            return a->body == NULL ? "{\"error\":\"unable to write points\"}" : NULL;
        }
        a->status = 503;
        return r->n_full > 0 ? "{\"error\":\"buffer full\"}"
                             : "{\"error\":\"unable to write points\"}";
    case VERDICT_TIMEOUT:
    case VERDICT_NONE:
        break;
    }
    a->status = 503;
    a->timed_out = true;
    return "{\"error\":\"timeout\"}";
}

/* Caller holds r->mu, with withdrawn set: no attempt can be claimed from now on, and the queued
 * copies are about to be withdrawn. True when no backend stored the write, may have stored it
 * (an attempt sent whole without an answer) or may still (an attempt in flight). */
static bool
rdv_nothing_kept(const struct rdv *r)
{
    if (r->n_ok > 0) {
        return false;
    }
    for (unsigned i = 0; i < r->n; i++) {
        const struct rdv_slot *s = &r->slot[i];
        if (s->inflight || s->maybe_stored || s->state == SLOT_OK) {
            return false;
        }
    }
    return true;
}

/* A 503 after which some backend may hold the write: its text must not invite a blind retry. */
static void
answer_maybe_stored(struct rdv_answer *a)
{
    free(a->body);
    free(a->content_type);
    a->content_type = NULL;
    answer_json(a, a->status,
                a->timed_out ? "{\"error\":\"timeout: the write may have been stored by some "
                               "backends; retrying may store it twice\"}"
                             : "{\"error\":\"unable to write points: the write may have been "
                               "stored by some backends; retrying may store it twice\"}");
}

void
rdv_wait(struct rdv *r, int64_t deadline_ms, struct rdv_answer *a)
{
    memset(a, 0, sizeof(*a));
    struct timespec ts;
    clock_mono_to_ts(&ts, deadline_ms);
    pthread_mutex_lock(&r->mu);
    while (r->verdict == VERDICT_NONE) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
            r->verdict = rdv_decide(r); /* a report may have raced the timeout */
            break;
        }
    }
    if (r->verdict == VERDICT_NONE) {
        r->verdict = VERDICT_TIMEOUT;
    }
    const char *json = answer_take(r, a);
    bool failure = r->verdict == VERDICT_FAILED || r->verdict == VERDICT_TIMEOUT;
    bool withdraw = failure && r->n_ok == 0;
    if (withdraw) {
        atomic_store(&r->withdrawn, true);
    }
    a->nothing_kept = withdraw && rdv_nothing_kept(r);
    pthread_mutex_unlock(&r->mu);
    if (json != NULL) {
        int status = a->status;
        answer_json(a, status, json);
    }
    if (a->status == 503 && !a->nothing_kept) {
        answer_maybe_stored(a);
    }
    if (!withdraw) {
        return;
    }
    /* The slots are frozen now: remove the write wherever it is not in flight. */
    a->withdrawn = true;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->slot[i].attached) {
            (void)queue_withdraw(r->slot[i].q, r->slot[i].seq);
        }
    }
}

void
rdv_answer_cleanup(struct rdv_answer *a)
{
    free(a->body);
    free(a->content_type);
    a->body = NULL;
    a->content_type = NULL;
}
