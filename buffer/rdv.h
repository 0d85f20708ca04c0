/* Rendezvous: collects the per-backend outcomes of one client write into one answer.
 * Created by the HTTP connection thread, which waits on its condition variable; every backend
 * the write was queued on reports to it from its sender thread. Refcounted: the waiter holds one
 * reference and each queue entry holds one. One mutex, held for bookkeeping only.
 *
 * Decision (write-consistency one): first 2xx -> RDV_OK at once; first 4xx -> that answer at
 * once; every backend failed (5xx, transport error, backend down, buffer full) -> the last
 * failure that carried an HTTP status (5xx, 429), else 503 {"error":"buffer full"} when some
 * backend was full, else 503 {"error":"unable to write points"}; the write is withdrawn.
 * consistency all: 2xx from every backend, else the 4xx if any, else the 5xx/503. consistency any:
 * RDV_OK once queued on every backend, whatever the backends reported meanwhile (a failure is
 * the verdict only when some backend could not queue it). The waiter gives up at its deadline:
 * 503 + withdraw when nothing succeeded. A failure verdict says whether nothing was kept
 * (rdv_answer.nothing_kept): only then is a retry safe. */
#ifndef IR_BUFFER_RDV_H
#define IR_BUFFER_RDV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "util/err.h"

enum rdv_outcome {
    RDV_OK,       /* backend answered 2xx */
    RDV_REJECTED, /* backend answered 4xx: decisive, the client gets it */
    RDV_FAILED,   /* 5xx or transport error or backend down: not decisive alone */
    RDV_FULL,     /* did not fit in the backend's queue */
};

/* The answer the HTTP layer sends. body is NUL-terminated JSON (or the backend's body). */
struct rdv_answer {
    int status; /* 204, 4xx, 5xx, 503 */
    char *body; /* owned (free()), may be NULL for 204 */
    size_t body_len;
    char *content_type; /* owned, NULL = application/json */
    bool withdrawn;     /* the write was withdrawn from every queue (a failure verdict) */
    bool timed_out;     /* the deadline passed */
    bool nothing_kept;  /* a failure verdict, and no backend stored the write, may have stored it
                         * or still holds it: retrying is safe (send Retry-After). When false
                         * on a 503, the error text says the write may have been stored. */
};

struct rdv;

/* Returns a rendezvous for n backends with one reference (the waiter's). deadline_ms
 * (monotonic) is when the client stops waiting (write-timeout after its write arrived): senders
 * read it to send nothing that cannot be answered in time. Never NULL. */
struct rdv *rdv_new(unsigned n, enum conf_consistency c, int64_t deadline_ms);
/* The deadline given to rdv_new(). Any thread. */
int64_t rdv_deadline_ms(const struct rdv *r);
/* True once the client's answer is decided (or being sent at the deadline): from then on no
 * backend's timing changes it. Any thread. */
bool rdv_is_decided(struct rdv *r);
void rdv_ref(struct rdv *r);
/* Drops one reference; the last frees. NULL is a no-op. Any thread. */
void rdv_unref(struct rdv *r);

/* Sender thread (or the submitting thread for RDV_FULL / down): backend idx reports. status/body/
 * ctype describe the backend's answer (body copied; may be NULL; status 0 = no HTTP answer);
 * RDV_FULL with a status is a write that can never fit (its status and body are the answer).
 * RDV_OK and RDV_REJECTED are final for idx; an RDV_FAILED may be followed by a later RDV_OK or
 * RDV_REJECTED from the same idx (a buffered backend that retried in time). Reports after the
 * decision change nothing. Any thread. */
void rdv_report(struct rdv *r, unsigned idx, enum rdv_outcome o, int status, const char *body,
                size_t body_len, const char *ctype);

/* True once the write is withdrawn (its answer is a failure and no backend stored it: set when
 * that verdict is reached, or by the waiter at its deadline): a sender must not send it (drop it
 * and count it as withdrawn). Any thread. */
bool rdv_is_withdrawn(struct rdv *r);

/* Claims the write for one send attempt: returns false when it was already withdrawn (skip it).
 * A claimed write that is in flight is not withdrawn; once the attempt failed and the write went
 * back to its queue (queue_put_back()) it can be withdrawn again. The claim lasts until the
 * attempt's rdv_report() for idx: meanwhile the backend may store the write, so a failure
 * verdict reached then does not say nothing_kept. Sender thread. */
bool rdv_claim(struct rdv *r, unsigned idx);
/* Sender thread, before reporting a failed attempt: the request had been sent whole and no
 * usable answer came (timeout, connection lost, a gateway's 502/504), so the backend may have
 * stored the write: the client's 503 must not call a retry safe. Sticky. */
void rdv_maybe_stored(struct rdv *r, unsigned idx);

struct queue;
/* backend_submit(): the write now sits in queue q as seq for backend idx, so a withdraw must
 * remove it from there. With consistency any, the answer is 204 once every backend attached.
 * Returns false when the write was already withdrawn: the caller removes it (queue_withdraw()).
 * q is borrowed and must outlive r's waiter. Any thread. */
bool rdv_attach(struct rdv *r, unsigned idx, struct queue *q, uint64_t seq) IR_WARN_UNUSED;

/* HTTP thread: waits until decided or until deadline_ms (monotonic). When the answer is a
 * failure (decided or at the deadline) and no backend answered 2xx, marks the write withdrawn
 * and removes it from every queue where it is not in flight (a->withdrawn = true), so nothing is
 * kept behind it; a->nothing_kept tells whether that holds everywhere (no attempt in flight and
 * none that may have stored it). At the deadline: 503 {"error":"timeout"}, a->timed_out = true.
 * A 503 that is not nothing_kept gets the error text "<reason>: the write may have been stored
 * by some backends; retrying may store it twice". Call once. Fills *a (caller frees with
 * rdv_answer_cleanup()). */
void rdv_wait(struct rdv *r, int64_t deadline_ms, struct rdv_answer *a);
void rdv_answer_cleanup(struct rdv_answer *a);

#endif
