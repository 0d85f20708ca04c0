/* Cost of a /metrics scrape and a /health answer: renders hand-built views (no sockets) with N
 * backends over 2 HTTP relays, every counter non-zero, and reports CPU microseconds per render
 * and the text size. Usage: build/bench/http_metrics_bench [backends, default 100]
 * (build with -O2: see bench/README.md). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "http/h_health.h"
#include "http/h_metrics.h"

#define ROUNDS 5

static double
cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Best CPU-microseconds per call of render over ROUNDS rounds of n calls; *len: text size. */
static double
best_us(char *(*render)(const void *arg, size_t *len), const void *arg, int n, size_t *len)
{
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = cpu_s();
        for (int i = 0; i < n; i++) {
            free(render(arg, len));
        }
        double us = (cpu_s() - t0) * 1e6 / n;
        best = us < best ? us : best;
    }
    return best;
}

static char *
render_metrics(const void *arg, size_t *len)
{
    return h_metrics_render_view(arg, len);
}

struct health_arg {
    const struct conf_http *c;
    const struct backend_snapshot *s;
    size_t n;
};

static char *
render_health(const void *arg, size_t *len)
{
    const struct health_arg *h = arg;
    int status = 0;
    return h_health_render_snapshots(h->c, h->s, h->n, NULL, 0, &status, len);
}

int
main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100;
    n = n < 2 ? 2 : n;
    static struct httpd_stats rs[2];
    struct backend_stats *bs = calloc(n, sizeof(*bs));
    struct backend_snapshot *s = calloc(n, sizeof(*s));
    char(*names)[32] = calloc(n, sizeof(*names));
    struct conf_http_output *outs = calloc(n, sizeof(*outs));
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "influx%zu", i);
        atomic_store(&bs[i].batches_sent, 123456789 + i);
        atomic_store(&bs[i].points_delivered, 9876543210 + i);
        histo_observe(&bs[i].send_duration, 1500 + i);
        s[i] = (struct backend_snapshot){.name = names[i],
                                         .queue_bytes = 1000 * i,
                                         .capacity_bytes = 1 << 20,
                                         .stats = &bs[i]};
        outs[i].name = names[i];
    }
    for (int code = 200; code < 210; code++) {
        atomic_store(&rs[0].requests[EP_WRITE][code], 5);
    }
    char relay[] = "example-http";
    struct conf_http c = {.name = relay, .outputs = outs, .n_outputs = n};
    struct h_metrics_relay r[2] = {{"r1", &rs[0], s, n / 2}, {"r2", &rs[1], s + n / 2, n - n / 2}};
    struct h_metrics_view v = {
            r, 2, NULL, 0, 0, 1700000000000000000LL, true, 1700000000000000000LL};
    struct health_arg h = {&c, s, n};
    size_t len = 0;
    double us = best_us(render_metrics, &v, 200, &len);
    printf("/metrics: %zu backends, %zu bytes, %.1f us CPU a render (%.2f us a backend)\n", n, len,
           us, us / (double)n);
    us = best_us(render_health, &h, 2000, &len);
    printf("/health:  %zu backends, %zu bytes, %.1f us CPU a render\n", n, len, us);
    free(bs);
    free(s);
    free(names);
    free(outs);
    return 0;
}
