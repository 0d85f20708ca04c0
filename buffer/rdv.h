/* Rendezvous: collects the per-backend outcomes of one client write into one verdict. Created by
 * the HTTP layer, which asks to be woken once the verdict is reached (rdv_notify()): the thread
 * that decides (a sender reporting, the deadline timer, or the caller itself) calls its wake
 * function. Every backend the write was queued on reports to it from its sender thread.
 * Refcounted: the waiter holds one reference, each queue entry one, an armed deadline one. One
 * mutex, held for bookkeeping only. Knows nothing of HTTP: the verdict carries the backends'
 * answers as data, and the HTTP layer decides the status, body and headers the client gets.
 *
 * Decision (write-consistency one): first 2xx -> OK at once; first 4xx -> REJECTED at once;
 * every backend failed (5xx, 429, transport error, backend down, buffer full) -> FAILED. all:
 * OK once every backend answered 2xx, REJECTED on a 4xx, FAILED once all answered and one
 * failed. any: OK once queued on every backend, whatever the backends reported meanwhile (a
 * report from a backend proves the write reached its queue, even before the attach); FAILED
 * only once every backend failed and some could not queue it (full). At the deadline without a
 * verdict: TIMEOUT. A FAILED or TIMEOUT verdict with no 2xx withdraws the write (see
 * rdv_finish()): a sender must not send it any more (429 and 413 included). A failure verdict
 * says whether nothing was kept (rdv_verdict.nothing_kept): only then is a retry safe. */
#ifndef IR_BUFFER_RDV_H
#define IR_BUFFER_RDV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "util/err.h"
#include "util/timer.h"

enum rdv_outcome {
    RDV_OK,       /* backend answered 2xx */
    RDV_REJECTED, /* backend answered 4xx: decisive */
    RDV_FAILED,   /* 5xx, 429 or transport error or backend down: not decisive alone */
    RDV_FULL,     /* did not fit in the backend's queue; with a status (413), never can */
};

enum rdv_verdict_kind {
    RDV_VERDICT_OK,       /* stored (consistency one/all) or queued everywhere (any) */
    RDV_VERDICT_REJECTED, /* a backend refused the data with a 4xx */
    RDV_VERDICT_FAILED,   /* every backend failed (all: one failed and the rest answered) */
    RDV_VERDICT_TIMEOUT,  /* the deadline passed first (or the waiter gave up) */
};

/* The verdict handed to the waiter (rdv_finish()). Strings are owned by the verdict. */
struct rdv_verdict {
    enum rdv_verdict_kind kind;
    int status; /* REJECTED: the 4xx. FAILED: the last failure that carried an HTTP
                 * status (5xx, 429, or the 413 of a write larger than a whole buffer), 0
                 * when none did (transport errors, full, down). OK: the first 2xx that had a
                 * body (a /query change's answer), 0 when none did (a write's 204) */
    char *body; /* that backend's body (a /query change's answer is the first 2xx's), or NULL */
    size_t body_len;
    char *content_type; /* that backend's Content-Type, or NULL */
    bool full;          /* some backend refused the write as buffer full */
    bool stored;        /* some backend answered 2xx */
    bool withdrawn;     /* removed from every queue where it was not in flight */
    bool nothing_kept;  /* FAILED / TIMEOUT only: no backend stored it, had it in flight at
                         * the decision, may have stored it (rdv_maybe_stored()) or keeps
                         * it: the client may retry safely */
};

struct rdv;

/* Returns a rendezvous for n backends whose client waits until deadline_ms (monotonic:
 * write-timeout after its write arrived), with one reference (the waiter's). Senders read the
 * deadline to send nothing that cannot be answered in time. Never NULL. Any thread. */
struct rdv *rdv_new(unsigned n, enum conf_consistency c, int64_t deadline_ms);
/* The client's deadline given to rdv_new(). Any thread. */
int64_t rdv_deadline_ms(const struct rdv *r);
void rdv_ref(struct rdv *r);
/* Drops one reference; the last frees. NULL is a no-op. Any thread. */
void rdv_unref(struct rdv *r);

/* Sender thread (or the submitting thread for RDV_FULL / down): backend idx reports. status/body/
 * ctype describe the backend's answer (body copied; may be NULL; status 0 = no HTTP answer);
 * RDV_FULL with a status is a write that can never fit (its status and body are the answer).
 * RDV_OK and RDV_REJECTED are final for idx; an RDV_FAILED may be followed by a later RDV_OK or
 * RDV_REJECTED from the same idx (a buffered backend that retried in time). After the verdict
 * only an RDV_OK still counts (it stops the withdraw). Any thread, no lock held. */
void rdv_report(struct rdv *r, unsigned idx, enum rdv_outcome o, int status, const char *body,
                size_t body_len, const char *ctype);

/* True once the write is withdrawn (a FAILED or TIMEOUT verdict without a 2xx): a sender must
 * not send it (drop it and count it as withdrawn). Any thread. */
bool rdv_is_withdrawn(struct rdv *r);
/* True once the verdict is reached (or being reached at the deadline): from then on no
 * backend's timing changes the client's answer. Any thread. */
bool rdv_is_decided(struct rdv *r);

/* Claims the write for one send attempt to backend idx: returns false when it was already
 * withdrawn (skip it). From the claim until idx reports again the write counts as in flight:
 * a verdict reached meanwhile says the backend may store it (nothing_kept is false). A
 * claimed write is not withdrawn from its queue; once its attempt failed and it went back
 * (queue_put_back()), it can be. Sender thread. */
bool rdv_claim(struct rdv *r, unsigned idx);
/* Sender thread, before reporting a failed attempt: the request had been sent whole and no
 * usable answer came (timeout, connection lost, a gateway's 502/504), so the backend may have
 * stored the write: the client's 503 must not call a retry safe. Sticky. */
void rdv_maybe_stored(struct rdv *r, unsigned idx);

/* Whoever holds a write for one backend (buffer/backend.c embeds one): withdraw removes the
 * write pushed as seq unless it is in flight or gone (and makes sure a spooled copy is never
 * delivered). release (may be NULL) tells it the client has its answer and the write is not
 * withdrawn: what it kept only while the client waited may go. Both are called by rdv_finish()
 * with no lock held, from the waiter's thread. */
struct rdv_holder {
    void (*withdraw)(const struct rdv_holder *h, uint64_t seq);
    void (*release)(const struct rdv_holder *h, uint64_t seq);
};
/* backend_submit(): the write now sits in h's queue as seq for backend idx, so a withdraw must
 * remove it from there. With consistency any, the verdict is OK once queued on every backend.
 * Returns false when the write was already withdrawn: the caller removes it itself. h is
 * borrowed and must outlive r's waiter. Any thread. */
bool rdv_attach(struct rdv *r, unsigned idx, const struct rdv_holder *h,
                uint64_t seq) IR_WARN_UNUSED;

/* Called once with arg by the thread that reaches the verdict, with no lock held. */
typedef void (*rdv_wake_fn)(void *arg);
/* Waiter, once: asks for wake(arg) when the verdict is reached, and arms the deadline on t's
 * lane (a TIMEOUT verdict at rdv_deadline_ms()). Returns false when the verdict is already
 * reached: wake is then never called. t must outlive r's armed deadline. */
bool rdv_notify(struct rdv *r, struct timer *t, unsigned lane, rdv_wake_fn wake,
                void *arg) IR_WARN_UNUSED;

/* Waiter, once, after the wake (or to give up: an undecided rendezvous becomes TIMEOUT now and
 * its wake is not called). Fills *v (free with rdv_verdict_cleanup()). A FAILED or TIMEOUT
 * verdict without a 2xx removes the write from every queue where it is not in flight
 * (v->withdrawn), so nothing is kept behind a failure; any other verdict releases it
 * (rdv_holder.release) in every queue attached so far. */
void rdv_finish(struct rdv *r, struct rdv_verdict *v);
void rdv_verdict_cleanup(struct rdv_verdict *v);

#endif
