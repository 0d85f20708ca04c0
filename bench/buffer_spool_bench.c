/* Bench of buffer/spool.c: append throughput with 1 and 4 threads at spool-sync 0 (fdatasync
 * before each append returns, group commit) and 1 s (a timer thread calls spool_sync() every
 * second), with 100-line records (~8.5 KB: a small query part + the body, as the relay will
 * serialise a write); then read + acknowledge throughput (batches of 512 KiB) of what was
 * written; then appends and the reader at once. Each case appends for SECONDS or MAX_MB,
 * whichever comes first, into a fresh directory under DIR (default /tmp), deleted afterwards.
 * Usage: buffer_spool_bench [SECONDS (default 2)] [DIR] [MAX_MB (default 400)] */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <zlib.h>

#include "buffer/spool.h"
#include "util/histo.h"

#define LINES 100

static char body[LINES * 100];
static size_t body_len;
static const char query[] = "W db=telegraf&precision=ns\n";

struct run {
    struct spool *sp;
    double seconds;
    uint64_t max_bytes;
    _Atomic uint64_t appended;
    _Atomic uint64_t bytes;
    _Atomic bool stop;
    _Atomic bool appenders_done;
    uint64_t lat_us[4][1 << 16]; /* per thread: a sample of append latencies */
    size_t nlat[4];
};

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
make_body(void)
{
    size_t n = 0;
    for (int i = 0; i < LINES; i++) {
        n += (size_t)snprintf(body + n, sizeof(body) - n,
                              "cpu,host=server%02d,region=us-west-%d,cpu=cpu%d usage_idle=%d.5,"
                              "usage_user=%d.25 17000000000%08d\n",
                              i % 50, i % 4, i % 8, 90 + i % 10, i % 7, i);
    }
    body_len = n;
}

struct thr {
    struct run *r;
    unsigned idx;
};

static void *
appender(void *p)
{
    struct thr *t = p;
    struct run *r = t->r;
    struct iovec iov[2] = {{(void *)(uintptr_t)query, sizeof(query) - 1}, {body, body_len}};
    double end = now_s() + r->seconds;
    for (uint64_t i = 0; !atomic_load(&r->stop); i++) {
        double t0 = now_s();
        struct spool_put put;
        enum spool_status st = spool_append(r->sp, iov, 2, 0, &put);
        double t1 = now_s();
        if (st != SPOOL_OK) {
            fprintf(stderr, "append: status %d errno %d\n", (int)st, put.errnum);
            break;
        }
        if (r->nlat[t->idx] < (1 << 16)) {
            r->lat_us[t->idx][r->nlat[t->idx]++] = (uint64_t)((t1 - t0) * 1e6);
        }
        atomic_fetch_add(&r->appended, 1);
        uint64_t b = atomic_fetch_add(&r->bytes, sizeof(query) - 1 + body_len);
        if (t1 > end || b > r->max_bytes) {
            atomic_store(&r->stop, true);
        }
    }
    return NULL;
}

static void *
syncer(void *p)
{
    struct run *r = p;
    struct ir_err err;
    while (!atomic_load(&r->stop)) {
        struct timespec ts = {0, 10000000};
        for (int i = 0; i < 100 && !atomic_load(&r->stop); i++) {
            nanosleep(&ts, NULL);
        }
        if (spool_sync(r->sp, &err) != 0) {
            fprintf(stderr, "sync: %s\n", err.msg);
        }
    }
    return NULL;
}

/* Reads and acknowledges until everything appended is read (once appenders are done). */
static uint64_t
read_ack(struct run *r, bool concurrent)
{
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    uint64_t n = 0;
    for (;;) {
        bool done = !concurrent || atomic_load(&r->appenders_done);
        if (spool_read(r->sp, 512 * 1024, &b, &err) != 0) {
            fprintf(stderr, "read: %s\n", err.msg);
            break;
        }
        n += b.n;
        if (b.n > 0 && spool_ack(r->sp, b.recs[b.n - 1].seq, &err) != 0) {
            fprintf(stderr, "ack: %s\n", err.msg);
        }
        if (b.n == 0 && done) {
            break;
        }
        if (b.n == 0) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    spool_batch_cleanup(&b);
    return n;
}

static void *
reader(void *p)
{
    read_ack(p, true);
    return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
latencies(struct run *r, unsigned threads, uint64_t *p50, uint64_t *p99)
{
    size_t n = 0;
    for (unsigned t = 0; t < threads; t++) {
        n += r->nlat[t];
    }
    uint64_t *all = malloc((n + 1) * sizeof(*all));
    size_t k = 0;
    for (unsigned t = 0; t < threads; t++) {
        memcpy(all + k, r->lat_us[t], r->nlat[t] * sizeof(*all));
        k += r->nlat[t];
    }
    qsort(all, n, sizeof(*all), cmp_u64);
    *p50 = n > 0 ? all[n / 2] : 0;
    *p99 = n > 0 ? all[n * 99 / 100] : 0;
    free(all);
}

static void
rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    const struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(dir);
}

/* One case: threads appenders at sync_ms; with_reader: the reader runs meanwhile. */
static void
bench_case(const char *base, unsigned threads, int64_t sync_ms, bool with_reader, double secs,
           uint64_t max_mb)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/spool_bench.XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    struct histo h;
    memset(&h, 0, sizeof(h));
    struct spool_conf c = {
            .dir = dir, .cap_bytes = (max_mb + 64) << 20, .sync_ms = sync_ms, .sync_histo = &h};
    struct ir_err err;
    struct run *r = calloc(1, sizeof(*r));
    r->sp = spool_new(&c, &err);
    if (r->sp == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    r->seconds = secs;
    r->max_bytes = max_mb << 20;
    pthread_t th[4];
    struct thr ta[4];
    pthread_t sy;
    pthread_t rd;
    double c0 = cpu_s();
    double t0 = now_s();
    if (sync_ms > 0) {
        pthread_create(&sy, NULL, syncer, r);
    }
    if (with_reader) {
        pthread_create(&rd, NULL, reader, r);
    }
    for (unsigned t = 0; t < threads; t++) {
        ta[t] = (struct thr){r, t};
        pthread_create(&th[t], NULL, appender, &ta[t]);
    }
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
    }
    double t1 = now_s();
    double c1 = cpu_s();
    atomic_store(&r->appenders_done, true);
    atomic_store(&r->stop, true);
    if (sync_ms > 0) {
        pthread_join(sy, NULL);
    }
    double t2 = t1;
    if (with_reader) {
        pthread_join(rd, NULL);
        t2 = now_s();
    }
    uint64_t n = atomic_load(&r->appended);
    double mb = (double)atomic_load(&r->bytes) / 1e6;
    uint64_t p50 = 0;
    uint64_t p99 = 0;
    latencies(r, threads, &p50, &p99);
    printf("append  threads=%u sync=%-5s reader=%-3s %7.0f rec/s %7.1f MB/s  p50 %5" PRIu64
           " us p99 %6" PRIu64 " us  syncs %6" PRIu64 "  cpu %.2f s/GB\n",
           threads, sync_ms == 0 ? "0" : "1s", with_reader ? "yes" : "no", (double)n / (t1 - t0),
           mb / (t1 - t0), p50, p99, (uint64_t)atomic_load(&h.count), (c1 - c0) / (mb / 1e3));
    if (with_reader) {
        printf("        (the reader finished %.2f s after the appenders)\n", t2 - t1);
    } else {
        struct spool_stats s;
        if (spool_sync(r->sp, &err) != 0) {
            fprintf(stderr, "sync: %s\n", err.msg);
        }
        spool_stats(r->sp, &s);
        double r0 = now_s();
        double rc0 = cpu_s();
        uint64_t got = read_ack(r, false);
        double r1 = now_s();
        double rc1 = cpu_s();
        printf("read+ack %" PRIu64 " records %7.0f rec/s %7.1f MB/s  cpu %.2f s/GB (%" PRIu64
               " segments)\n",
               got, (double)got / (r1 - r0), mb / (r1 - r0), (rc1 - rc0) / (mb / 1e3), s.segments);
    }
    spool_free(r->sp);
    free(r);
    rm_dir(dir);
}

static void
bench_crc(void)
{
    double t0 = now_s();
    uint32_t crc = 0;
    int n = 0;
    for (; now_s() - t0 < 0.5; n++) {
        crc = (uint32_t)crc32_z(crc, (const Bytef *)body, body_len);
    }
    double t1 = now_s();
    printf("crc32 (zlib) %.0f MB/s (%u)\n", (double)n * (double)body_len / 1e6 / (t1 - t0),
           crc & 1);
}

int
main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 2.0;
    const char *base = argc > 2 ? argv[2] : "/tmp";
    uint64_t max_mb = argc > 3 ? strtoull(argv[3], NULL, 10) : 400;
    make_body();
    printf("record: %zu bytes (%d lines + query part)\n", body_len + sizeof(query) - 1, LINES);
    bench_crc();
    bench_case(base, 1, 1000, false, secs, max_mb);
    bench_case(base, 4, 1000, false, secs, max_mb);
    bench_case(base, 1, 0, false, secs, max_mb);
    bench_case(base, 4, 0, false, secs, max_mb);
    bench_case(base, 4, 1000, true, secs, max_mb);
    bench_case(base, 4, 0, true, secs, max_mb);
    return 0;
}
