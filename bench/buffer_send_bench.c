/* Drives buffer/ directly (no HTTP listener): C client threads submit writes to one backend and
 * wait for the rendezvous, as the /write handler does. Prints answers, time, throughput and the
 * backend's counters. Used to check the sender against a real influxd, nginx or a mock.
 *   build/bench/buffer_send_bench URL WRITES LINES [BUFFER_MB] [THREADS] [TIMEOUT_MS]
 * e.g. buffer_send_bench http://127.0.0.1:8086/write 10000 10 0 8 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer/backend.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/strconv.h"
#include "util/timer.h"
#include "util/xalloc.h"

static const char *const kinds[] = {"ok", "rejected", "failed", "timeout"};

struct run {
    struct backend *b;
    struct timer *tm;
    unsigned lane;
    long writes;
    long lines;
    long threads;
    long timeout_ms;
    _Atomic long next;
    _Atomic long by_kind[4];
};

/* A client thread waiting for its verdict, as the HTTP layer is woken. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
};

static void
wake(void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->woken = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
wait_verdict(struct run *r, struct rdv *rv, struct rdv_verdict *v)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    if (rdv_notify(rv, r->tm, r->lane, wake, &w)) {
        pthread_mutex_lock(&w.mu);
        while (!w.woken) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
    }
    rdv_finish(rv, v);
}

static char *
make_body(long id, long lines, size_t *len)
{
    size_t cap = (size_t)lines * 96 + 1;
    char *buf = xmalloc(cap);
    size_t n = 0;
    for (long i = 0; i < lines; i++) {
        n += (size_t)snprintf(buf + n, cap - n, "bench,host=h%ld value=%ld %ld\n", id % 16,
                              id * 1000 + i, 1600000000000000000L + id * 1000 + i);
    }
    *len = n;
    return buf;
}

static void *
client(void *arg)
{
    struct run *r = arg;
    for (;;) {
        long id = atomic_fetch_add(&r->next, 1);
        if (id >= r->writes) {
            return NULL;
        }
        size_t len = 0;
        char *body = make_body(id, r->lines, &len);
        struct payload *p = payload_new(PAYLOAD_WRITE, body, body, len, (size_t)r->lines,
                                        xstrdup("db=bench"), NULL);
        struct rdv *rv = rdv_new(1, CONF_CONSISTENCY_ONE, clock_mono_ms() + r->timeout_ms);
        if (backend_submit(r->b, p, rv, 0) == BACKEND_FULL) {
            rdv_report(rv, 0, RDV_FULL, 0, NULL, 0, NULL);
        }
        payload_unref(p);
        struct rdv_verdict v;
        wait_verdict(r, rv, &v);
        atomic_fetch_add(&r->by_kind[v.kind], 1);
        rdv_verdict_cleanup(&v);
        rdv_unref(rv);
    }
}

static long
arg_or(int argc, char **argv, int i, long dflt)
{
    int64_t v = dflt;
    if (argc > i && strconv_i64z(argv[i], 0, INT64_MAX, &v) != 0) {
        fprintf(stderr, "bad number %s\n", argv[i]);
        exit(2);
    }
    return (long)v;
}

static void
print_stats(struct backend *b)
{
    struct backend_snapshot s;
    backend_snapshot(b, &s);
#define PRINT_COUNTER(f, m, h) printf("%s=%llu ", #f, (unsigned long long)s.stats->f);
    BACKEND_COUNTERS(PRINT_COUNTER)
#undef PRINT_COUNTER
    printf("queue_writes=%llu queue_bytes=%llu\n", (unsigned long long)s.queue_writes,
           (unsigned long long)s.queue_bytes);
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL WRITES LINES [BUFFER_MB] [THREADS] [TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    log_init(LOG_INFO, false);
    char name[] = "b";
    struct conf_http_output o = {.name = name,
                                 .location = argv[1],
                                 .timeout_ms = 10000,
                                 .buffer_bytes = arg_or(argc, argv, 4, 0) * 1024 * 1024,
                                 .max_batch_bytes = (int64_t)512 * 1024,
                                 .max_delay_ms = 10000};
    struct run r = {.writes = arg_or(argc, argv, 2, 1000),
                    .lines = arg_or(argc, argv, 3, 1),
                    .threads = arg_or(argc, argv, 5, 8),
                    .timeout_ms = arg_or(argc, argv, 6, 11000)};
    struct ir_err err = {0};
    if (backend_global_init() != 0) {
        return 1;
    }
    r.tm = timer_new();
    r.lane = timer_lane_new(r.tm);
    r.b = backend_new("bench", &o, &err);
    if (r.b == NULL || backend_start(r.b, &err) != 0 || timer_start(r.tm, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    pthread_t *t = xcalloc((size_t)r.threads, sizeof(*t));
    int64_t t0 = clock_mono_ms();
    for (long i = 0; i < r.threads; i++) {
        pthread_create(&t[i], NULL, client, &r);
    }
    for (long i = 0; i < r.threads; i++) {
        pthread_join(t[i], NULL);
    }
    double s = (double)(clock_mono_ms() - t0) / 1000.0;
    printf("writes=%ld lines=%ld seconds=%.3f writes_per_s=%.0f points_per_s=%.0f\n", r.writes,
           r.lines, s, (double)r.writes / s, (double)(r.writes * r.lines) / s);
    for (int i = 0; i < 4; i++) {
        if (r.by_kind[i] > 0) {
            printf("verdict %s: %ld\n", kinds[i], (long)r.by_kind[i]);
        }
    }
    print_stats(r.b);
    backend_stop(r.b, clock_mono_ms() + 5000);
    print_stats(r.b);
    backend_free(r.b);
    timer_free(r.tm);
    backend_global_cleanup();
    free(t);
    return 0;
}
