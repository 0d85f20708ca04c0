#include "relay/retire.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/xalloc.h"

struct job {
    struct job *next;
    struct httpd *h;       /* owned reference */
    struct world_item *it; /* owned reference, NULL for a drain */
    int64_t deadline_ms;   /* a stop's deadline */
};

struct retire {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a job is queued and at stop */
    struct job *head;  /* guarded by mu */
    struct job *tail;  /* guarded by mu */
    bool stop;         /* guarded by mu */
    pthread_t thread;  /* main thread only */
    bool started;      /* main thread only: the thread runs */
    bool stopped;      /* main thread only: retire_join() ran, no thread any more */
};

struct retire *
retire_new(void)
{
    struct retire *r = xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    clock_cond_init(&r->cv);
    return r;
}

static void
job_run(struct job *j)
{
    if (j->it == NULL) {
        httpd_drain(j->h);
    } else {
        httpd_stop(j->h, j->deadline_ms, false);
        world_item_end(j->it);
    }
    world_item_unref(j->it);
    httpd_unref(j->h);
    free(j);
}

/* The next job, waiting for one; NULL once stopped with nothing left. */
static struct job *
job_next(struct retire *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->head == NULL && !r->stop) {
        pthread_cond_wait(&r->cv, &r->mu);
    }
    struct job *j = r->head;
    if (j != NULL) {
        r->head = j->next;
        r->tail = r->head != NULL ? r->tail : NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return j;
}

static void *
retire_main(void *arg)
{
    struct retire *r = arg;
    struct job *j = NULL;
    while ((j = job_next(r)) != NULL) {
        job_run(j);
    }
    return NULL;
}

/* Starts the thread for the first job. False (logged) when it cannot. */
static bool
retire_start(struct retire *r)
{
    int rc = pthread_create(&r->thread, NULL, retire_main, r);
    if (rc != 0) {
        char buf[128];
        log_error(NULL, "cannot start the retire thread, the main thread waits instead: %s",
                  ir_strerror(rc, buf, sizeof(buf)));
        return false;
    }
    r->started = true;
    return true;
}

static void
job_push(struct retire *r, struct job *j)
{
    if (!r->started && (r->stopped || !retire_start(r))) {
        job_run(j);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (r->tail != NULL) {
        r->tail->next = j;
    } else {
        r->head = j;
    }
    r->tail = j;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void
retire_drain(struct retire *r, struct httpd *h)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->h = httpd_ref(h);
    job_push(r, j);
}

void
retire_stop(struct retire *r, struct httpd *h, struct world_item *it, int64_t deadline_ms)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->h = httpd_ref(h);
    j->it = world_item_ref(it);
    j->deadline_ms = deadline_ms;
    job_push(r, j);
}

void
retire_join(struct retire *r)
{
    r->stopped = true;
    if (!r->started) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->started = false;
}

void
retire_free(struct retire *r)
{
    if (r == NULL) {
        return;
    }
    retire_join(r);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
