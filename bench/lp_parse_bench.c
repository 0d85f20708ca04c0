/* lp_process() throughput: MB/s of input and lines/s for (a) Telegraf-style lines that carry
 * timestamps (zero-copy path), (b) the same lines without timestamps (stamping, one copy),
 * (c) lines with long string fields, (d) the ~85-byte lines bench/http_bench.py sends; each
 * with the fast path as lp_process() runs it (AVX2 where the CPU has it), with its base build
 * (SSE2), and without it (every line through lp_parse_point()), in the same sitting. Each case
 * processes a ~1 MiB body (about a 6000-line write) repeatedly for about a second of CPU time and
 * reports the best of 5 rounds, as throughput per CPU-second. Usage: build/bench/lp_parse_bench
 * [seconds per case]   (build with -O2: see bench/README.md) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lp/lp.h"

#define BODY_BYTES (1u << 20)
#define ROUNDS     5

/* CPU time of this process: the machine is shared, and wall-clock figures drop whenever other
 * processes compete for its 2 cores (both are printed). */
static double
now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic pseudo-random numbers, so every run measures the same bytes. */
static unsigned
next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

/* Appends one Telegraf-like line (cpu, mem, disk or net) to b; returns its length. */
static int
telegraf_line(char *b, size_t cap, unsigned *s, int n, int stamped)
{
    char ts[32] = "";
    if (stamped) {
        snprintf(ts, sizeof(ts), " %lld", 1700000000000000000LL + (long long)n * 10000000LL);
    }
    unsigned r = next_rand(s);
    switch (n % 4) {
    case 0:
        return snprintf(b, cap,
                        "cpu,cpu=cpu%u,host=server%02u.example.com,region=us-west-2 "
                        "usage_user=%u.%03u,usage_system=%u.%03u,usage_idle=%u.%03u,"
                        "usage_iowait=0.%03u,usage_guest=0i%s\n",
                        r % 8, r % 50, r % 100, r % 1000, r % 20, r % 997, 60 + r % 40, r % 991,
                        r % 983, ts);
    case 1:
        return snprintf(b, cap,
                        "mem,host=server%02u.example.com,region=us-west-2 "
                        "active=%ui,available=%ui,available_percent=%u.%04u,buffered=%ui,"
                        "free=%ui,used_percent=%u.%04u%s\n",
                        r % 50, r * 37, r * 101, r % 100, r % 9973, r * 13, r * 7, r % 100,
                        r % 9967, ts);
    case 2:
        return snprintf(b, cap,
                        "disk,device=sda%u,fstype=ext4,host=server%02u.example.com,mode=rw,"
                        "path=/var/lib/data%u free=%ui,inodes_free=%ui,total=%ui,used=%ui,"
                        "used_percent=%u.%05u%s\n",
                        r % 4, r % 50, r % 4, r * 1024, r % 100000, r * 4096, r * 2048, r % 100,
                        r % 99991, ts);
    default:
        return snprintf(b, cap,
                        "net,host=server%02u.example.com,interface=eth%u bytes_recv=%ui,"
                        "bytes_sent=%ui,drop_in=0i,drop_out=0i,err_in=%ui,packets_recv=%ui,"
                        "up=true%s\n",
                        r % 50, r % 2, r * 1499, r * 733, r % 3, r * 11, ts);
    }
}

/* A syslog-like line with a message of 400 to 2000 bytes. */
static int
string_line(char *b, size_t cap, unsigned *s, int n)
{
    static const char words[] = "connection from 10.0.0.1 port 51515 accepted, session "
                                "opened for user \\\"deploy\\\" by (uid=0) ";
    unsigned r = next_rand(s);
    int k = snprintf(b, cap,
                     "syslog,appname=sshd,facility=auth,host=server%02u,severity=info "
                     "facility_code=4i,procid=\"%u\",message=\"",
                     r % 50, r % 65536);
    size_t want = 400 + r % 1600;
    while ((size_t)k < want && (size_t)k + sizeof(words) + 64 < cap) {
        memcpy(b + k, words, sizeof(words) - 1);
        k += (int)sizeof(words) - 1;
    }
    k += snprintf(b + k, cap - (size_t)k, "\",severity_code=6i,timestamp=%di %lld\n", n,
                  1700000000000000000LL + (long long)n);
    return k;
}

/* One line as bench/http_bench.py writes them. */
static int
http_bench_line(char *b, size_t cap, int n)
{
    return snprintf(b, cap,
                    "cpu,host=server%04d,region=eu-west-1 usage_user=%d.5,usage_idle=%di %lld\n",
                    n % 1000, n % 100, n, 1700000000000000000LL + n);
}

/* Fills a body of about BODY_BYTES; kind: 'a' to 'd'. Returns the line count. */
static size_t
make_body(char *body, size_t *len, char kind)
{
    unsigned seed = 42;
    size_t n = 0, k = 0;
    char line[4096];
    while (k < BODY_BYTES) {
        int m = kind == 'c'   ? string_line(line, sizeof(line), &seed, (int)n)
                : kind == 'd' ? http_bench_line(line, sizeof(line), (int)n)
                              : telegraf_line(line, sizeof(line), &seed, (int)n, kind == 'a');
        memcpy(body + k, line, (size_t)m);
        k += (size_t)m;
        n++;
    }
    *len = k;
    return n;
}

static void
bench(const char *name, char kind, double seconds, enum lp_fast_mode mode)
{
    char *body = malloc(BODY_BYTES + 8192);
    size_t len = 0;
    if (body == NULL) {
        abort();
    }
    size_t lines = make_body(body, &len, kind);
    double best = 1e30, best_wall = 1e30;
    for (int round = 0; round < ROUNDS; round++) {
        long iters = 0;
        double w0 = now_s(CLOCK_MONOTONIC);
        double t0 = now_s(CLOCK_PROCESS_CPUTIME_ID), t = t0;
        while (t - t0 < seconds / ROUNDS) {
            struct lp_result r;
            if (lp_process_mode(body, len, LP_PREC_NS, 1700000000123456789LL, mode, &r) != 0 ||
                r.points != lines || r.dropped != 0) {
                fprintf(stderr, "%s: unexpected result\n", name);
                exit(1);
            }
            lp_result_cleanup(&r);
            iters++;
            t = now_s(CLOCK_PROCESS_CPUTIME_ID);
        }
        double per = (t - t0) / (double)iters;
        double per_wall = (now_s(CLOCK_MONOTONIC) - w0) / (double)iters;
        best = per < best ? per : best;
        best_wall = per_wall < best_wall ? per_wall : best_wall;
    }
    static const char *const modes[] = {"no fast path", "fast, base", "fast"};
    printf("%-36s %-12s %6.0f MB/s %10.0f lines/s %5.1f ns/line (wall: %5.0f MB/s)  %zu B, %zu "
           "lines, %.0f B/line\n",
           name, modes[mode], (double)len / best / 1e6, (double)lines / best,
           best / (double)lines * 1e9, (double)len / best_wall / 1e6, len, lines,
           (double)len / (double)lines);
    free(body);
}

int
main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 1.0;
    static const struct {
        const char *name;
        char kind;
    } cases[] = {{"(a) telegraf, timestamps", 'a'},
                 {"(b) telegraf, no timestamps (stamp)", 'b'},
                 {"(c) long string fields", 'c'},
                 {"(d) http_bench.py lines", 'd'}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        for (int mode = LP_FAST_BEST; mode >= LP_FAST_NONE; mode--) {
            bench(cases[k].name, cases[k].kind, seconds, (enum lp_fast_mode)mode);
        }
    }
    return 0;
}
