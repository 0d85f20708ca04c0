#include "buffer/rdv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

/* Locking: r->mu guards everything below it in struct rdv except refs, withdrawn and decided
 * (atomics written under mu, read without it). It is never held while calling out: the wake
 * function, the holders' withdraw and the timer are called after unlocking, so rdv never holds
 * its mutex together with a queue's or the timer's. Strings are copied before locking and freed
 * after unlocking. The slots' attachment (holder, seq) is frozen once withdrawn is set
 * (rdv_attach() refuses from then on), so rdv_finish() reads it without the lock.
 *
 * Wake-up: the wake function is registered once (rdv_notify()) and taken, under mu, by whoever
 * reaches the verdict, which calls it after unlocking: exactly one call, never under a lock.
 * The armed deadline holds a reference; whoever disarms it (timer_cancel() returning true, or
 * the timer firing) drops that reference. */

enum slot_state { SLOT_NONE, SLOT_FAILED, SLOT_FULL, SLOT_OK, SLOT_REJECTED };

struct rdv_slot {
    enum slot_state state;
    bool attached;
    bool queued;                /* reached the backend's queue (attached, or reported from it) */
    bool sending;               /* claimed for an attempt that has not reported yet */
    bool maybe_stored;          /* an attempt ended without an answer after sending it all */
    const struct rdv_holder *h; /* borrowed: where the write waits for this backend */
    uint64_t seq;
};

struct rdv {
    struct timer_entry te;  /* first member (the timer hands &te back); guarded by the timer */
    _Atomic unsigned refs;  /* atomic */
    _Atomic bool withdrawn; /* atomic; set under mu */
    _Atomic bool decided;   /* atomic; set under mu */
    pthread_mutex_t mu;
    unsigned n;                                /* immutable */
    enum conf_consistency consistency;         /* immutable */
    int64_t deadline_ms;                       /* immutable */
    struct timer *timer;                       /* guarded by mu: set by rdv_notify() */
    rdv_wake_fn wake;                          /* guarded by mu: pending wake-up, NULL once taken */
    void *wake_arg;                            /* guarded by mu */
    enum rdv_verdict_kind verdict;             /* guarded by mu: valid once decided */
    bool nothing_kept;                         /* guarded by mu: computed when decided */
    unsigned n_ok, n_failed, n_full, n_queued; /* guarded by mu; n_failed includes full */
    int rej_status;                            /* guarded by mu: the first 4xx, 0 = none */
    char *rej_body, *rej_ctype;
    size_t rej_len;
    int fail_status; /* guarded by mu: the last failure that had an HTTP status */
    char *fail_body, *fail_ctype;
    size_t fail_len;
    int ok_status; /* guarded by mu: the first 2xx with a body (a /query's answer), 0 = none */
    char *ok_body, *ok_ctype;
    size_t ok_len;
    struct rdv_slot slot[]; /* guarded by mu; attachment frozen once withdrawn */
};

struct rdv *
rdv_new(unsigned n, enum conf_consistency c, int64_t deadline_ms)
{
    struct rdv *r = xcalloc(1, sizeof(*r) + n * sizeof(r->slot[0]));
    atomic_init(&r->refs, 1);
    atomic_init(&r->withdrawn, false);
    atomic_init(&r->decided, false);
    pthread_mutex_init(&r->mu, NULL);
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
    free(r->rej_body);
    free(r->rej_ctype);
    free(r->fail_body);
    free(r->fail_ctype);
    free(r->ok_body);
    free(r->ok_ctype);
    free(r);
}

/* Caller holds r->mu. The decision rules of the header; -1 = not decided yet. */
static int
rdv_decide(const struct rdv *r)
{
    if (r->consistency == CONF_CONSISTENCY_ALL) {
        if (r->rej_status != 0) {
            return RDV_VERDICT_REJECTED;
        }
        if (r->n_ok == r->n) {
            return RDV_VERDICT_OK;
        }
        return r->n_ok + r->n_failed == r->n ? RDV_VERDICT_FAILED : -1;
    }
    if (r->n_ok > 0) {
        return RDV_VERDICT_OK;
    }
    if (r->rej_status != 0) {
        return RDV_VERDICT_REJECTED;
    }
    if (r->consistency == CONF_CONSISTENCY_ANY && r->n_queued == r->n) {
        return RDV_VERDICT_OK;
    }
    return r->n_failed == r->n ? RDV_VERDICT_FAILED : -1;
}

/* Caller holds r->mu and the rendezvous is undecided: records verdict v. A failure without a 2xx
 * withdraws the write from this moment, so a sender retrying at once cannot claim it before the
 * waiter removes it from the queues. Returns the pending wake-up (taken), or NULL. */
static rdv_wake_fn
rdv_set_verdict(struct rdv *r, enum rdv_verdict_kind v, void **arg)
{
    r->verdict = v;
    bool failure = v == RDV_VERDICT_FAILED || v == RDV_VERDICT_TIMEOUT;
    /* Withdrawn from now on (below), so no slot becomes in flight or maybe stored later: a
     * slot maybe stored later was in flight now. */
    bool kept = false;
    for (unsigned i = 0; i < r->n; i++) {
        kept = kept || r->slot[i].sending || r->slot[i].maybe_stored;
    }
    r->nothing_kept = failure && r->n_ok == 0 && !kept;
    if (failure && r->n_ok == 0) {
        atomic_store(&r->withdrawn, true);
    }
    atomic_store(&r->decided, true);
    rdv_wake_fn wake = r->wake;
    *arg = r->wake_arg;
    r->wake = NULL;
    return wake;
}

/* Caller holds r->mu: decides when the rules allow it. Returns the wake-up to call after
 * unlocking, or NULL. */
static rdv_wake_fn
rdv_update(struct rdv *r, void **arg)
{
    if (atomic_load_explicit(&r->decided, memory_order_relaxed)) {
        return NULL;
    }
    int v = rdv_decide(r);
    return v < 0 ? NULL : rdv_set_verdict(r, (enum rdv_verdict_kind)v, arg);
}

/* Caller holds r->mu: the write reached backend idx's queue. A sender may take and report it
 * before the submitting thread attaches it: either proves it was queued (consistency any). */
static void
slot_queued(struct rdv *r, struct rdv_slot *s)
{
    if (!s->queued) {
        s->queued = true;
        r->n_queued++;
    }
}

/* No lock held: runs a wake-up taken by the caller, then disarms the deadline (its reference
 * goes with it). The caller holds its own reference, so r outlives both. */
static void
rdv_wake(struct rdv *r, rdv_wake_fn wake, void *arg, struct timer *t)
{
    wake(arg);
    if (t != NULL && timer_cancel(t, &r->te)) {
        rdv_unref(r);
    }
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
        if (r->ok_status == 0 && tb != NULL) {
            r->ok_status = status;
            *body = r->ok_body, r->ok_body = tb, r->ok_len = len;
            *ctype = r->ok_ctype, r->ok_ctype = tc;
        }
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
    rdv_wake_fn wake = NULL;
    void *arg = NULL;
    pthread_mutex_lock(&r->mu);
    struct rdv_slot *s = &r->slot[idx];
    s->sending = false;
    bool final = s->state == SLOT_OK || s->state == SLOT_REJECTED;
    bool decided = atomic_load_explicit(&r->decided, memory_order_relaxed);
    /* After the verdict only successes still count: they stop a withdraw (rdv_finish()). */
    if (!final && (!decided || o == RDV_OK)) {
        if (o != RDV_FULL) {
            slot_queued(r, s);
        }
        slot_set(r, s, o, status, &b, body_len, &ct);
        wake = rdv_update(r, &arg);
    }
    struct timer *t = r->timer;
    pthread_mutex_unlock(&r->mu);
    if (wake != NULL) {
        rdv_wake(r, wake, arg, t);
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
rdv_is_decided(struct rdv *r)
{
    return atomic_load(&r->decided);
}

bool
rdv_claim(struct rdv *r, unsigned idx)
{
    pthread_mutex_lock(&r->mu);
    bool ok = !atomic_load_explicit(&r->withdrawn, memory_order_relaxed);
    if (ok) {
        r->slot[idx].sending = true;
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
rdv_attach(struct rdv *r, unsigned idx, const struct rdv_holder *h, uint64_t seq)
{
    rdv_wake_fn wake = NULL;
    void *arg = NULL;
    pthread_mutex_lock(&r->mu);
    bool ok = !atomic_load_explicit(&r->withdrawn, memory_order_relaxed);
    if (ok) {
        struct rdv_slot *s = &r->slot[idx];
        s->attached = true;
        s->h = h;
        s->seq = seq;
        slot_queued(r, s);
        wake = rdv_update(r, &arg);
    }
    struct timer *t = r->timer;
    pthread_mutex_unlock(&r->mu);
    if (wake != NULL) {
        rdv_wake(r, wake, arg, t);
    }
    return ok;
}

/* The timer thread: the deadline passed. Holds the armed deadline's reference. */
static void
rdv_expire(struct timer_entry *e)
{
    struct rdv *r = (struct rdv *)e;
    rdv_wake_fn wake = NULL;
    void *arg = NULL;
    pthread_mutex_lock(&r->mu);
    if (!atomic_load_explicit(&r->decided, memory_order_relaxed)) {
        wake = rdv_set_verdict(r, RDV_VERDICT_TIMEOUT, &arg);
    }
    pthread_mutex_unlock(&r->mu);
    if (wake != NULL) {
        wake(arg);
    }
    rdv_unref(r);
}

bool
rdv_notify(struct rdv *r, struct timer *t, unsigned lane, rdv_wake_fn wake, void *arg)
{
    pthread_mutex_lock(&r->mu);
    bool pending = !atomic_load_explicit(&r->decided, memory_order_relaxed);
    if (pending) {
        r->wake = wake;
        r->wake_arg = arg;
        r->timer = t;
        rdv_ref(r); /* the armed deadline's */
    }
    pthread_mutex_unlock(&r->mu);
    if (pending) {
        /* Armed after unlocking: a verdict reached in between finds nothing to cancel, and the
         * deadline then fires for nothing (and drops its reference) at rdv_deadline_ms(). */
        timer_arm(t, lane, &r->te, r->deadline_ms, rdv_expire);
    }
    return pending;
}

/* Caller holds r->mu: moves the verdict into *v (strings change owner, no allocation). */
static void
verdict_take(struct rdv *r, struct rdv_verdict *v)
{
    v->kind = r->verdict;
    v->full = r->n_full > 0;
    v->stored = r->n_ok > 0;
    v->nothing_kept = r->nothing_kept && r->n_ok == 0;
    if (r->verdict == RDV_VERDICT_OK && r->ok_status != 0) {
        v->status = r->ok_status;
        v->body = r->ok_body, v->body_len = r->ok_len, v->content_type = r->ok_ctype;
        r->ok_body = NULL, r->ok_ctype = NULL;
    } else if (r->verdict == RDV_VERDICT_REJECTED) {
        v->status = r->rej_status;
        v->body = r->rej_body, v->body_len = r->rej_len, v->content_type = r->rej_ctype;
        r->rej_body = NULL, r->rej_ctype = NULL;
    } else if (r->verdict == RDV_VERDICT_FAILED && r->fail_status != 0) {
        v->status = r->fail_status;
        v->body = r->fail_body, v->body_len = r->fail_len, v->content_type = r->fail_ctype;
        r->fail_body = NULL, r->fail_ctype = NULL;
    }
}

/* The verdict is not a withdraw: every holder attached so far that wants to know hears it (the
 * slots are read under the lock: an attach may still come, which then releases by itself). */
static void
rdv_release_all(struct rdv *r)
{
    struct {
        const struct rdv_holder *h;
        uint64_t seq;
    } stack[8], *rel = stack;
    if (r->n > IR_ARRAY_LEN(stack)) {
        rel = xcalloc(r->n, sizeof(*rel));
    }
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->n; i++) {
        if (r->slot[i].attached && r->slot[i].h->release != NULL) {
            rel[n].h = r->slot[i].h;
            rel[n++].seq = r->slot[i].seq;
        }
    }
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        rel[i].h->release(rel[i].h, rel[i].seq);
    }
    if (rel != stack) {
        free(rel);
    }
}

void
rdv_finish(struct rdv *r, struct rdv_verdict *v)
{
    memset(v, 0, sizeof(*v));
    struct timer *gave_up = NULL;
    void *unused = NULL;
    pthread_mutex_lock(&r->mu);
    if (!atomic_load_explicit(&r->decided, memory_order_relaxed)) {
        (void)rdv_set_verdict(r, RDV_VERDICT_TIMEOUT, &unused); /* the waiter gives up */
        gave_up = r->timer;
    }
    verdict_take(r, v);
    bool failure = v->kind == RDV_VERDICT_FAILED || v->kind == RDV_VERDICT_TIMEOUT;
    bool withdraw = failure && !v->stored;
    pthread_mutex_unlock(&r->mu);
    if (gave_up != NULL && timer_cancel(gave_up, &r->te)) {
        rdv_unref(r);
    }
    if (!withdraw) {
        rdv_release_all(r);
        return;
    }
    /* The attachments are frozen now: remove the write wherever it is not in flight. */
    v->withdrawn = true;
    for (unsigned i = 0; i < r->n; i++) {
        if (r->slot[i].attached) {
            r->slot[i].h->withdraw(r->slot[i].h, r->slot[i].seq);
        }
    }
}

void
rdv_verdict_cleanup(struct rdv_verdict *v)
{
    free(v->body);
    free(v->content_type);
    v->body = NULL;
    v->content_type = NULL;
}
