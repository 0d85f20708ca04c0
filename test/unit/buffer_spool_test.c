/* Unit test of buffer/spool.c: round trip, order (threads), byte-bounded batches, ack and
 * restart, segment rotation and deletion, the size cap, max-age expiry, the directory lock (also
 * from another process), corruption (truncated, garbage, flipped bytes, zeroed holes, in the
 * newest and in an older segment, a damaged cursor), disk errors (RLIMIT_FSIZE -> EFBIG, from
 * one and from several threads), injected faults (spool_inject_fault: a stale void header that
 * once lost acknowledged records, random write and void header failures from several threads,
 * a disk-full episode that must not grow the spool, more appends in flight than the ring holds,
 * fdatasync failures with and without group commit), group commit, and crash safety: a child
 * process appending from several threads is SIGKILLed at random moments, and every append it saw
 * return is then read back in order, byte for byte, nothing invented. SPOOL_TEST_SEED=N replays a
 * random run. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buffer/spool.h"
#include "check.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define REC_HEAD 32
#define MAX_REC  9300
#define T0_NS    1700000000000000000LL

static char root[128];
static uint64_t rng_state;

/* ------------------------------------------------------------------ helpers */

static uint64_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t
mix(uint32_t r, uint32_t t, uint32_t i)
{
    uint64_t h = ((uint64_t)r << 40) ^ ((uint64_t)t << 24) ^ i ^ 0x9E3779B97F4A7C15ULL;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    return h;
}

/* The deterministic content of record (round r, thread t, index i): 100..9099 bytes. */
static size_t
gen(uint32_t r, uint32_t t, uint32_t i, char *buf)
{
    uint64_t h = mix(r, t, i);
    size_t len = 100 + (size_t)(h % 9000);
    int n = snprintf(buf, MAX_REC, "r=%u t=%u i=%u\n", r, t, i);
    for (size_t k = (size_t)n; k < len - 1; k++) {
        buf[k] = (char)('a' + (k * 7 + h) % 26);
    }
    buf[len - 1] = '\n';
    return len;
}

/* Parses and checks a record made by gen(); false when it is not one. */
static bool
gen_check(const char *data, size_t len, uint32_t *r, uint32_t *t, uint32_t *i)
{
    char head[64];
    size_t n = len < sizeof(head) - 1 ? len : sizeof(head) - 1;
    memcpy(head, data, n);
    head[n] = '\0';
    if (sscanf(head, "r=%u t=%u i=%u", r, t, i) != 3) {
        return false;
    }
    char *want = xmalloc(MAX_REC);
    size_t wl = gen(*r, *t, *i, want);
    bool ok = wl == len && memcmp(want, data, len) == 0;
    free(want);
    return ok;
}

static void
dir_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s/relay/backend", root, name);
}

static struct spool *
open_sp(const char *dir, uint64_t cap, uint64_t seg, int64_t sync_ms, int64_t max_age_ms)
{
    struct spool_conf c = {.dir = dir,
                           .cap_bytes = cap,
                           .max_age_ms = max_age_ms,
                           .sync_ms = sync_ms,
                           .segment_bytes = seg,
                           .sync_histo = NULL};
    struct ir_err err = {0, ""};
    struct spool *sp = spool_new(&c, &err);
    if (sp == NULL) {
        fprintf(stderr, "spool_new: %s\n", err.msg);
    }
    return sp;
}

/* Appends buf in up to three parts (to exercise the iovec path). Returns the seq or 0. */
static uint64_t
put3(struct spool *sp, const char *buf, size_t len, int64_t arrival_ns, enum spool_status *st)
{
    size_t a = len / 3;
    size_t b = len / 2;
    struct iovec iov[3] = {{(void *)(uintptr_t)buf, a},
                           {(void *)(uintptr_t)(buf + a), b - a},
                           {(void *)(uintptr_t)(buf + b), len - b}};
    struct spool_put put;
    enum spool_status s = spool_append(sp, iov, 3, arrival_ns, &put);
    if (st != NULL) {
        *st = s;
    }
    return s == SPOOL_OK ? put.seq : 0;
}

static uint64_t
put_str(struct spool *sp, const char *s)
{
    enum spool_status st;
    uint64_t seq = put3(sp, s, strlen(s), T0_NS, &st);
    CHECK_EQ_I64(st, SPOOL_OK);
    return seq;
}

struct got {
    uint64_t seq;
    int64_t arrival_ns;
    char *data;
    size_t len;
};

struct gots {
    struct got *v;
    size_t n;
    size_t cap;
};

static void
gots_free(struct gots *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].data);
    }
    free(g->v);
    memset(g, 0, sizeof(*g));
}

static void
gots_add(struct gots *g, const struct spool_rec *r)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
    }
    char *d = xmalloc(r->len + 1);
    memcpy(d, r->data, r->len);
    d[r->len] = '\0';
    g->v[g->n++] = (struct got){r->seq, r->arrival_ns, d, r->len};
}

/* Reads everything (batches of budget bytes), acknowledging each batch when ack. */
static void
read_all(struct spool *sp, size_t budget, bool ack, struct gots *g)
{
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err = {0, ""};
    for (int guard = 0; guard < 1000000; guard++) {
        int rc = spool_read(sp, budget, &b, &err);
        CHECK_EQ_I64(rc, 0);
        if (rc != 0) {
            fprintf(stderr, "spool_read: %s\n", err.msg);
        }
        if (rc != 0 || b.n == 0) {
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            gots_add(g, &b.recs[i]);
        }
        if (ack) {
            CHECK_EQ_I64(spool_ack(sp, b.recs[b.n - 1].seq, &err), 0);
        }
    }
    spool_batch_cleanup(&b);
}

static void
rm_tree(int dfd, const char *path)
{
    int fd = openat(dfd, path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        unlinkat(dfd, path, 0);
        return;
    }
    DIR *d = fdopendir(fd);
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rm_tree(fd, de->d_name);
        }
    }
    closedir(d);
    unlinkat(dfd, path, AT_REMOVEDIR);
}

/* The segment files of dir, sorted; returns how many (<= 4096). */
static size_t
seg_files(const char *dir, char names[][32], size_t max, uint64_t *total_bytes)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    uint64_t total = 0;
    const struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_size;
        }
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0 && n < max && st.st_size > 0) {
            memcpy(names[n], de->d_name, l < 31 ? l + 1 : 31);
            names[n++][31] = '\0';
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[32];
            memcpy(t, names[j], 32);
            memcpy(names[j], names[j - 1], 32);
            memcpy(names[j - 1], t, 32);
        }
    }
    if (total_bytes != NULL) {
        *total_bytes = total;
    }
    return n;
}

static uint64_t
file_size(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Offsets of the records of a (valid) segment file, read from their length fields. */
static size_t
rec_offsets(const char *dir, const char *name, uint64_t *offs, size_t max)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_RDONLY);
    uint64_t size = file_size(dir, name);
    size_t n = 0;
    for (uint64_t off = 0; fd >= 0 && off + REC_HEAD <= size && n < max;) {
        unsigned char h[REC_HEAD];
        if (pread(fd, h, sizeof(h), (off_t)off) != (ssize_t)sizeof(h)) {
            break;
        }
        uint64_t len = h[4] | (uint64_t)h[5] << 8 | (uint64_t)h[6] << 16 | (uint64_t)h[7] << 24;
        offs[n++] = off;
        off += (REC_HEAD + len + 7) & ~7ULL;
    }
    if (fd >= 0) {
        close(fd);
    }
    return n;
}

static void
file_edit(const char *dir, const char *name, uint64_t off, const void *bytes, size_t n)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ_I64(pwrite(fd, bytes, n, (off_t)off), (int64_t)n);
    close(fd);
}

static void
file_flip(const char *dir, const char *name, uint64_t off)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_RDWR);
    unsigned char c = 0;
    CHECK_EQ_I64(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x10;
    CHECK_EQ_I64(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static void
file_truncate(const char *dir, const char *name, uint64_t size)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    CHECK_EQ_I64(truncate(p, (off_t)size), 0);
}

static void
stats_of(struct spool *sp, struct spool_stats *s)
{
    memset(s, 0, sizeof(*s));
    spool_stats(sp, s);
}

/* ------------------------------------------------------------------ basic behaviour */

static void
test_round_trip(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "rt");
    struct spool *sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    CHECK(sp != NULL);
    const char *in[3] = {"cpu v=1 1\n", "mem,host=a used=2i 2\n", "x"};
    uint64_t seqs[3];
    for (int i = 0; i < 3; i++) {
        enum spool_status st;
        seqs[i] = put3(sp, in[i], strlen(in[i]), T0_NS + i, &st);
        CHECK_EQ_I64(st, SPOOL_OK);
    }
    CHECK(seqs[0] > 0 && seqs[1] == seqs[0] + 1 && seqs[2] == seqs[1] + 1);
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.appended, 3);
    CHECK_EQ_I64(s.records, 3);
    CHECK_EQ_I64(s.segments, 1);
    CHECK_EQ_I64(s.cap_bytes, 1 << 20);
    /* 3 records of 32 + 10/21/1 bytes padded to 8, plus the 64-byte cursor. */
    CHECK_EQ_I64(s.disk_bytes, 48 + 56 + 40 + 64);
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    CHECK_EQ_I64(spool_read(sp, 1 << 20, &b, &err), 0);
    CHECK_EQ_I64(b.n, 3);
    for (size_t i = 0; i < b.n && i < 3; i++) {
        CHECK_EQ_I64(b.recs[i].seq, seqs[i]);
        CHECK_EQ_I64(b.recs[i].arrival_ns, T0_NS + (int64_t)i);
        CHECK_EQ_I64(b.recs[i].len, strlen(in[i]));
        CHECK(memcmp(b.recs[i].data, in[i], b.recs[i].len) == 0);
    }
    CHECK_EQ_I64(b.data_bytes, 10 + 21 + 1);
    /* Nothing new: an empty batch; the records stay pending until acknowledged. */
    CHECK_EQ_I64(spool_read(sp, 1 << 20, &b, &err), 0);
    CHECK_EQ_I64(b.n, 0);
    CHECK_EQ_I64(spool_ack(sp, seqs[2], &err), 0);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(s.acked, 3);
    CHECK_EQ_I64(spool_sync(sp, &err), 0);
    CHECK_EQ_I64(s.errors[SPOOL_OP_WRITE] + s.errors[SPOOL_OP_SYNC] + s.corrupt, 0);
    spool_batch_cleanup(&b);
    spool_free(sp);
    CHECK_STREQ(spool_op_name(SPOOL_OP_UNLINK), "unlink");
    CHECK_STREQ(spool_op_name(SPOOL_OP_OPEN), "open");
}

struct order_arg {
    struct spool *sp;
    uint32_t t;
    uint32_t n;
    uint32_t round;
};

static void *
order_thread(void *p)
{
    struct order_arg *a = p;
    char *buf = xmalloc(MAX_REC);
    for (uint32_t i = 0; i < a->n; i++) {
        size_t len = gen(a->round, a->t, i, buf);
        enum spool_status st;
        put3(a->sp, buf, len, T0_NS, &st);
        if (st != SPOOL_OK) {
            fprintf(stderr, "append failed: %d\n", (int)st);
            abort();
        }
    }
    free(buf);
    return NULL;
}

/* Checks g holds exactly threads x n records of round r, each thread's in index order, seqs
 * increasing, every byte as generated. */
static void
check_threads(const struct gots *g, uint32_t r, uint32_t threads, uint32_t n)
{
    CHECK_EQ_I64(g->n, (uint64_t)threads * n);
    uint32_t next[8] = {0};
    for (size_t k = 0; k < g->n; k++) {
        uint32_t rr = 0;
        uint32_t t = 0;
        uint32_t i = 0;
        CHECK(gen_check(g->v[k].data, g->v[k].len, &rr, &t, &i));
        CHECK(rr == r && t < threads && t < 8);
        if (t < 8) {
            CHECK_EQ_I64(i, next[t]);
            next[t] = i + 1;
        }
        if (k > 0) {
            CHECK(g->v[k].seq > g->v[k - 1].seq);
        }
    }
}

static void
run_threads(struct spool *sp, uint32_t round, uint32_t threads, uint32_t n)
{
    pthread_t th[8];
    struct order_arg a[8];
    for (uint32_t t = 0; t < threads; t++) {
        a[t] = (struct order_arg){sp, t, n, round};
        pthread_create(&th[t], NULL, order_thread, &a[t]);
    }
    for (uint32_t t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
    }
}

static void
test_order_threads(int64_t sync_ms)
{
    char dir[256];
    dir_of(dir, sizeof(dir), sync_ms == 0 ? "order0" : "order1");
    struct histo h;
    memset(&h, 0, sizeof(h));
    struct spool_conf c = {.dir = dir,
                           .cap_bytes = 256ULL << 20,
                           .max_age_ms = 0,
                           .sync_ms = sync_ms,
                           .segment_bytes = 256 * 1024,
                           .sync_histo = &h};
    struct ir_err err;
    struct spool *sp = spool_new(&c, &err);
    CHECK(sp != NULL);
    uint32_t n = sync_ms == 0 ? 150 : 400;
    run_threads(sp, 1, 4, n);
    struct gots g = {0};
    read_all(sp, 64 * 1024, true, &g);
    check_threads(&g, 1, 4, n);
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.appended, 4 * n);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(s.segments, 1); /* every read segment but the current one is deleted */
    if (sync_ms == 0) {
        /* Group commit: every append waited for a round; rounds are shared. */
        CHECK(atomic_load(&h.count) >= 1);
        CHECK(atomic_load(&h.count) <= 4ULL * n);
        fprintf(stderr, "group commit: %u appends, %" PRIu64 " sync rounds\n", 4 * n,
                (uint64_t)atomic_load(&h.count));
    } else {
        uint64_t before = atomic_load(&h.count);
        CHECK_EQ_I64(spool_sync(sp, &err), 0);
        CHECK(atomic_load(&h.count) > before);
    }
    CHECK_EQ_I64(s.errors[SPOOL_OP_SYNC], 0);
    gots_free(&g);
    spool_free(sp);
}

struct live {
    struct spool *sp;
    _Atomic bool appenders_done;
    _Atomic bool stop_sync;
    struct gots got;
};

/* The reader: reads and acknowledges while the appenders run, until all is read. */
static void *
live_reader(void *p)
{
    struct live *l = p;
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    int64_t deadline = clock_mono_ms() + 120000;
    for (;;) {
        bool done = atomic_load(&l->appenders_done);
        if (spool_read(l->sp, 16 * 1024, &b, &err) != 0) {
            fprintf(stderr, "spool_read: %s\n", err.msg);
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            gots_add(&l->got, &b.recs[i]);
        }
        if (b.n > 0 && spool_ack(l->sp, b.recs[b.n - 1].seq, &err) != 0) {
            fprintf(stderr, "spool_ack: %s\n", err.msg);
        }
        if ((b.n == 0 && done) || clock_mono_ms() > deadline) {
            break;
        }
        if (b.n == 0) {
            struct timespec ts = {0, 100000}; /* the relay's sender is kicked instead */
            nanosleep(&ts, NULL);
        }
    }
    spool_batch_cleanup(&b);
    return NULL;
}

static void *
live_syncer(void *p)
{
    struct live *l = p;
    struct ir_err err;
    while (!atomic_load(&l->stop_sync)) {
        if (spool_sync(l->sp, &err) != 0) {
            fprintf(stderr, "spool_sync: %s\n", err.msg);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Appenders, the reader (acknowledging, deleting segments) and a sync timer at once, with
 * small segments: every record arrives once, in order. */
static void
test_live(int64_t sync_ms)
{
    char dir[256];
    dir_of(dir, sizeof(dir), sync_ms == 0 ? "live0" : "live1");
    struct live l = {.sp = open_sp(dir, 256 << 20, 64 * 1024, sync_ms, 0)};
    atomic_init(&l.appenders_done, false);
    atomic_init(&l.stop_sync, false);
    pthread_t rd;
    pthread_t sy;
    pthread_create(&rd, NULL, live_reader, &l);
    pthread_create(&sy, NULL, live_syncer, &l);
    uint32_t n = sync_ms == 0 ? 150 : 600;
    run_threads(l.sp, 2, 4, n);
    atomic_store(&l.appenders_done, true);
    pthread_join(rd, NULL);
    atomic_store(&l.stop_sync, true);
    pthread_join(sy, NULL);
    check_threads(&l.got, 2, 4, n);
    struct spool_stats s;
    stats_of(l.sp, &s);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(s.segments, 1);
    CHECK_EQ_I64(s.corrupt + s.errors[SPOOL_OP_SYNC] + s.errors[SPOOL_OP_UNLINK], 0);
    CHECK_EQ_I64(s.acked, 4 * n);
    static char names[64][32];
    uint64_t total = 0;
    CHECK_EQ_I64(seg_files(dir, names, 64, &total), 1);
    gots_free(&l.got);
    spool_free(l.sp);
}

static void
test_batch_budget(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "budget");
    struct spool *sp = open_sp(dir, 8 << 20, 0, 1000, 0);
    char buf[10001];
    memset(buf, 'x', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    uint64_t seqs[12];
    for (int i = 0; i < 12; i++) {
        size_t len = i == 6 ? 10000 : 1000;
        enum spool_status st;
        seqs[i] = put3(sp, buf, len, T0_NS, &st);
        CHECK_EQ_I64(st, SPOOL_OK);
    }
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    /* 3500 bytes: 3 records of 1000; the 10000-byte record alone; never more than 3500
     * otherwise. */
    size_t want[] = {3, 3, 1, 3, 2, 0};
    size_t k = 0;
    for (size_t i = 0; i < IR_ARRAY_LEN(want); i++) {
        CHECK_EQ_I64(spool_read(sp, 3500, &b, &err), 0);
        CHECK_EQ_I64(b.n, want[i]);
        for (size_t j = 0; j < b.n; j++) {
            CHECK_EQ_I64(b.recs[j].seq, seqs[k]);
            k++;
        }
        CHECK(b.n <= 1 || b.data_bytes <= 3500);
        if (b.n > 0) {
            CHECK_EQ_I64(spool_ack(sp, b.recs[b.n - 1].seq, &err), 0);
        }
    }
    CHECK_EQ_I64(k, 12);
    /* Acknowledging a prefix of a batch: the rest comes back after a restart. */
    for (int i = 0; i < 4; i++) {
        seqs[i] = put_str(sp, "p v=1 1\n");
    }
    CHECK_EQ_I64(spool_read(sp, 3500, &b, &err), 0);
    CHECK_EQ_I64(b.n, 4);
    CHECK_EQ_I64(spool_ack(sp, seqs[1], &err), 0);
    spool_batch_cleanup(&b);
    spool_free(sp);
    sp = open_sp(dir, 8 << 20, 0, 1000, 0);
    struct gots g = {0};
    read_all(sp, 3500, true, &g);
    CHECK_EQ_I64(g.n, 2);
    CHECK(g.n == 2 && g.v[0].seq == seqs[2] && g.v[1].seq == seqs[3]);
    gots_free(&g);
    spool_free(sp);
}

static void
test_ack_restart(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "restart");
    struct spool *sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    char rec[64];
    uint64_t seqs[30];
    for (int i = 0; i < 30; i++) {
        snprintf(rec, sizeof(rec), "m i=%di %d\n", i, i);
        seqs[i] = put_str(sp, rec);
    }
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    CHECK_EQ_I64(spool_read(sp, 1 << 20, &b, &err), 0);
    CHECK_EQ_I64(b.n, 30);
    CHECK_EQ_I64(spool_ack(sp, seqs[9], &err), 0);
    spool_batch_cleanup(&b);
    spool_free(sp);
    /* Twice without acknowledging: at least once, the same records each time. */
    for (int round = 0; round < 2; round++) {
        sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
        struct spool_stats s;
        stats_of(sp, &s);
        CHECK_EQ_I64(s.records, 20);
        CHECK_EQ_I64(s.corrupt, 0);
        struct gots g = {0};
        read_all(sp, 1 << 20, false, &g);
        CHECK_EQ_I64(g.n, 20);
        for (size_t i = 0; i < g.n && i < 20; i++) {
            CHECK_EQ_I64(g.v[i].seq, seqs[10 + i]);
            snprintf(rec, sizeof(rec), "m i=%zui %zu\n", 10 + i, 10 + i);
            CHECK_STREQ(g.v[i].data, rec);
        }
        gots_free(&g);
        spool_free(sp);
    }
    /* Everything acknowledged: nothing comes back, and numbering continues above. */
    sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    struct gots g = {0};
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 20);
    gots_free(&g);
    spool_free(sp);
    sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 0);
    CHECK_EQ_I64(put_str(sp, "after v=1 1\n"), seqs[29] + 1);
    gots_free(&g);
    spool_free(sp);
    sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 1);
    gots_free(&g);
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.segments, 1); /* the old segment, read through, is gone */
    spool_free(sp);
    /* No segment left at all: the cursor alone keeps the numbering. */
    static char names[64][32];
    size_t n = seg_files(dir, names, 64, NULL);
    for (size_t i = 0; i < n; i++) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        CHECK_EQ_I64(unlink(p), 0);
    }
    sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.segments, 0);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(put_str(sp, "later v=1 1\n"), seqs[29] + 2);
    spool_free(sp);
}

static void
test_rotation_deletion(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "rotate");
    struct spool *sp = open_sp(dir, 1 << 20, 4096, 1000, 0);
    char rec[300];
    memset(rec, 'r', sizeof(rec) - 2);
    rec[sizeof(rec) - 2] = '\n';
    rec[sizeof(rec) - 1] = '\0';
    for (int i = 0; i < 100; i++) {
        put_str(sp, rec);
    }
    static char names[4096][32];
    uint64_t total = 0;
    size_t n = seg_files(dir, names, 4096, &total);
    struct spool_stats s;
    stats_of(sp, &s);
    /* 336 bytes a record, 12 per 4 KiB segment. */
    CHECK_EQ_I64(n, 9);
    CHECK_EQ_I64(s.segments, n);
    uint64_t lock_bytes = file_size(dir, "lock");
    CHECK_EQ_I64(s.disk_bytes, total - lock_bytes);
    CHECK_EQ_I64(s.disk_bytes, 100 * 336 + 64);
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    size_t seen = 0;
    while (spool_read(sp, 2000, &b, &err) == 0 && b.n > 0) {
        seen += b.n;
        CHECK_EQ_I64(spool_ack(sp, b.recs[b.n - 1].seq, &err), 0);
        stats_of(sp, &s);
        n = seg_files(dir, names, 4096, &total);
        CHECK_EQ_I64(s.segments, n);
        CHECK_EQ_I64(s.disk_bytes, total - lock_bytes);
    }
    CHECK_EQ_I64(seen, 100);
    /* Only the current segment is left (the reader is in it). */
    CHECK_EQ_I64(seg_files(dir, names, 4096, &total), 1);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(s.errors[SPOOL_OP_UNLINK], 0);
    spool_batch_cleanup(&b);
    spool_free(sp);
}

static void
test_size_cap(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "cap");
    const uint64_t cap = 64 * 1024;
    const uint64_t seg = 8 * 1024;
    struct spool *sp = open_sp(dir, cap, seg, 1000, 0);
    char rec[1001];
    memset(rec, 'c', 1000);
    rec[1000] = '\0';
    int ok = 0;
    enum spool_status st = SPOOL_OK;
    while (st == SPOOL_OK && ok < 1000) {
        if (put3(sp, rec, 1000, T0_NS, &st) != 0) {
            ok++;
        }
    }
    CHECK_EQ_I64(st, SPOOL_FULL);
    /* 1032 bytes a record: (65536 - 64) / 1032 = 63. */
    CHECK_EQ_I64(ok, 63);
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.full, 1);
    CHECK(s.disk_bytes <= cap);
    static char names[4096][32];
    uint64_t total = 0;
    seg_files(dir, names, 4096, &total);
    CHECK(total <= cap + seg);
    /* Another refusal is counted; a record that would exceed the hard maximum too. */
    CHECK_EQ_I64(put3(sp, rec, 1000, T0_NS, &st), 0);
    CHECK_EQ_I64(st, SPOOL_FULL);
    /* Read and acknowledge: whole segments go away and appends fit again. */
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    CHECK_EQ_I64(spool_read(sp, 20 * 1000, &b, &err), 0);
    CHECK_EQ_I64(b.n, 20);
    CHECK_EQ_I64(spool_ack(sp, b.recs[b.n - 1].seq, &err), 0);
    CHECK(put3(sp, rec, 1000, T0_NS, &st) != 0);
    CHECK_EQ_I64(st, SPOOL_OK);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.full, 2);
    CHECK(s.disk_bytes <= cap);
    seg_files(dir, names, 4096, &total);
    CHECK(total <= cap + seg);
    spool_batch_cleanup(&b);
    spool_free(sp);
}

static void
test_max_age(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "age");
    clock_set_fake(1000, T0_NS);
    struct spool *sp = open_sp(dir, 8 << 20, 4096, 1000, 60000);
    char rec[500];
    memset(rec, 'o', sizeof(rec));
    enum spool_status st;
    /* 40 old records (two minutes ago: 5 segments), then 3 fresh ones. */
    for (int i = 0; i < 40; i++) {
        put3(sp, rec, sizeof(rec), T0_NS - 120000000000LL, &st);
        CHECK_EQ_I64(st, SPOOL_OK);
    }
    uint64_t fresh[3];
    for (int i = 0; i < 3; i++) {
        fresh[i] = put3(sp, rec, sizeof(rec), T0_NS - 1000000000LL, &st);
    }
    CHECK(spool_is_expired(sp, T0_NS - 61000000000LL));
    CHECK(!spool_is_expired(sp, T0_NS - 59000000000LL));
    struct gots g = {0};
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 3);
    CHECK(g.n == 3 && g.v[0].seq == fresh[0] && g.v[2].seq == fresh[2]);
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.expired, 40);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(s.segments, 1);
    gots_free(&g);
    /* Only expired records: nothing returned, yet acknowledged and deleted. */
    for (int i = 0; i < 20; i++) {
        put3(sp, rec, sizeof(rec), T0_NS - 120000000000LL, &st);
    }
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 0);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.expired, 60);
    CHECK_EQ_I64(s.records, 0);
    CHECK_EQ_I64(s.segments, 1);
    spool_free(sp);
    /* Time passes while the spool is closed: what aged meanwhile is skipped after a restart. */
    sp = open_sp(dir, 8 << 20, 4096, 1000, 60000);
    for (int i = 0; i < 5; i++) {
        put3(sp, rec, sizeof(rec), T0_NS, &st);
    }
    spool_free(sp);
    clock_set_fake(1000, T0_NS + 3600000000000LL);
    sp = open_sp(dir, 8 << 20, 4096, 1000, 60000);
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 0);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.expired, 5);
    spool_free(sp);
    clock_set_fake(-1, 0);
}

/* ------------------------------------------------------------------ lock */

/* In a child process: tries to open dir; writes the error message (or "opened") to fd. */
static void
child_try_open(const char *dir, int fd)
{
    struct spool_conf c = {.dir = dir, .cap_bytes = 1 << 20, .sync_ms = 1000};
    struct ir_err err = {0, ""};
    struct spool *sp = spool_new(&c, &err);
    const char *msg = sp != NULL ? "opened" : err.msg;
    ssize_t w = write(fd, msg, strlen(msg));
    (void)w;
    spool_free(sp);
    _exit(0);
}

static void
read_child(int fd, char *buf, size_t cap, pid_t pid)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0) {
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_lock(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "lock");
    struct spool *a = open_sp(dir, 1 << 20, 0, 1000, 0);
    CHECK(a != NULL);
    /* The same process, a second time. */
    struct spool_conf c = {.dir = dir, .cap_bytes = 1 << 20, .sync_ms = 1000};
    struct ir_err err = {0, ""};
    CHECK(spool_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, dir) != NULL);
    CHECK(strstr(err.msg, "in use by another process") != NULL);
    char pid[32];
    snprintf(pid, sizeof(pid), "(pid %ld)", (long)getpid());
    CHECK(strstr(err.msg, pid) != NULL);
    /* Another process while we hold it. */
    int p[2];
    CHECK_EQ_I64(pipe(p), 0);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        child_try_open(dir, p[1]);
    }
    close(p[1]);
    char msg[512];
    read_child(p[0], msg, sizeof(msg), child);
    CHECK(strstr(msg, dir) != NULL);
    CHECK(strstr(msg, pid) != NULL);
    /* Released on free: another process can take it. */
    spool_free(a);
    CHECK_EQ_I64(pipe(p), 0);
    child = fork();
    if (child == 0) {
        close(p[0]);
        child_try_open(dir, p[1]);
    }
    close(p[1]);
    read_child(p[0], msg, sizeof(msg), child);
    CHECK_STREQ(msg, "opened");
    /* A child that holds it: we are refused with its pid. */
    int go[2];
    CHECK_EQ_I64(pipe(p), 0);
    CHECK_EQ_I64(pipe(go), 0);
    child = fork();
    if (child == 0) {
        close(p[0]);
        close(go[1]);
        struct spool *sp = spool_new(&c, &err);
        ssize_t w = write(p[1], sp != NULL ? "held" : "fail", 4);
        char x;
        ssize_t r = read(go[0], &x, 1); /* until the parent closes its end */
        (void)w;
        (void)r;
        spool_free(sp);
        _exit(0);
    }
    close(p[1]);
    close(go[0]);
    char held[5] = "";
    CHECK_EQ_I64(read(p[0], held, 4), 4);
    CHECK_STREQ(held, "held");
    CHECK(spool_new(&c, &err) == NULL);
    snprintf(pid, sizeof(pid), "(pid %ld)", (long)child);
    CHECK(strstr(err.msg, pid) != NULL);
    CHECK(strstr(err.msg, dir) != NULL);
    close(go[1]);
    read_child(p[0], msg, sizeof(msg), child);
    a = open_sp(dir, 1 << 20, 0, 1000, 0);
    CHECK(a != NULL);
    spool_free(a);
}

static void
test_unusable_dir(void)
{
    char file[256];
    snprintf(file, sizeof(file), "%s/a-file", root);
    int fd = open(file, O_WRONLY | O_CREAT, 0600);
    close(fd);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/relay/backend", file);
    struct spool_conf c = {.dir = dir, .cap_bytes = 1 << 20, .sync_ms = 1000};
    struct ir_err err = {0, ""};
    CHECK(spool_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, dir) != NULL);
    c.dir = file;
    CHECK(spool_new(&c, &err) == NULL);
    CHECK(strstr(err.msg, file) != NULL);
    c.dir = "";
    CHECK(spool_new(&c, &err) == NULL);
}

/* ------------------------------------------------------------------ corruption */

#define CORRUPT_RECS 60

/* A spool of 60 records "c i=N" + filler (about 5 per 4 KiB segment, 12 segments), closed. */
static void
corrupt_setup(const char *dir, uint64_t *seqs)
{
    struct spool *sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    char rec[800];
    for (int i = 0; i < CORRUPT_RECS; i++) {
        int n = snprintf(rec, sizeof(rec), "c i=%d ", i);
        memset(rec + n, 'a' + i % 26, 700 - (size_t)n);
        rec[699] = '\n';
        rec[700] = '\0';
        seqs[i] = put_str(sp, rec);
    }
    struct ir_err err;
    CHECK_EQ_I64(spool_sync(sp, &err), 0);
    spool_free(sp);
}

/* Reopens, reads everything; checks the records present are exactly those not in lost[] (in
 * order, intact) and the corrupt count. */
/* What a damaged spool must look like once reopened. */
struct expect {
    const int *lost; /* indexes of the records gone */
    size_t nlost;
    uint64_t corrupt_open;  /* damage counted by the open */
    uint64_t corrupt_total; /* ... and after reading everything */
    const char *seg;        /* a segment whose size to check right after the open, or NULL */
    uint64_t size;
};

static void
corrupt_check(const char *dir, const uint64_t *seqs, struct expect e)
{
    const int *lost = e.lost;
    size_t nlost = e.nlost;
    struct spool *sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    CHECK(sp != NULL);
    if (sp == NULL) {
        return;
    }
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.corrupt, e.corrupt_open);
    if (e.seg != NULL) {
        CHECK_EQ_I64(file_size(dir, e.seg), e.size);
    }
    struct gots g = {0};
    read_all(sp, 5000, true, &g);
    size_t k = 0;
    for (int i = 0; i < CORRUPT_RECS; i++) {
        bool gone = false;
        for (size_t j = 0; j < nlost; j++) {
            gone = gone || lost[j] == i;
        }
        if (gone) {
            continue;
        }
        CHECK(k < g.n);
        if (k >= g.n) {
            break;
        }
        CHECK_EQ_I64(g.v[k].seq, seqs[i]);
        char want[32];
        snprintf(want, sizeof(want), "c i=%d ", i);
        CHECK(strncmp(g.v[k].data, want, strlen(want)) == 0 && g.v[k].len == 700);
        k++;
    }
    CHECK_EQ_I64(g.n, CORRUPT_RECS - nlost);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.corrupt, e.corrupt_total);
    /* The spool keeps working: an append gets a number above every record left. */
    uint64_t seq = put_str(sp, "new v=1 1\n");
    CHECK(g.n == 0 || seq > g.v[g.n - 1].seq);
    gots_free(&g);
    read_all(sp, 5000, true, &g);
    CHECK_EQ_I64(g.n, 1);
    gots_free(&g);
    spool_free(sp);
}

/* Sets dir (256 bytes) to a fresh spool for case name; fills names; returns how many. */
static size_t
corrupt_case(const char *name, char *dir, uint64_t *seqs, char (*names)[32])
{
    dir_of(dir, 256, name);
    corrupt_setup(dir, seqs);
    size_t n = seg_files(dir, names, 64, NULL);
    CHECK_EQ_I64(n, 12);
    return n;
}

static void
test_corrupt_newest(void)
{
    char dir[256];
    uint64_t seqs[CORRUPT_RECS];
    char names[64][32];
    size_t n = 0;
    uint64_t offs[16];
    /* Truncated mid-record: the torn last record is cut and counted; the rest survive. */
    n = corrupt_case("c_trunc", dir, seqs, names);
    uint64_t size = file_size(dir, names[n - 1]);
    file_truncate(dir, names[n - 1], size - 50);
    int lost_last[] = {CORRUPT_RECS - 1};
    corrupt_check(dir, seqs, (struct expect){lost_last, 1, 1, 1, names[n - 1], size - 736});
    /* Garbage appended: cut and counted, nothing lost. */
    n = corrupt_case("c_garbage", dir, seqs, names);
    size = file_size(dir, names[n - 1]);
    char junk[1000];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (char)rnd();
    }
    file_edit(dir, names[n - 1], size, junk, sizeof(junk));
    corrupt_check(dir, seqs, (struct expect){NULL, 0, 1, 1, names[n - 1], size});
    /* A byte of the last record flipped: that record is the torn tail. */
    n = corrupt_case("c_fliplast", dir, seqs, names);
    size_t k = rec_offsets(dir, names[n - 1], offs, 16);
    file_flip(dir, names[n - 1], offs[k - 1] + 100);
    corrupt_check(dir, seqs, (struct expect){lost_last, 1, 1, 1, NULL, 0});
    /* A zeroed record in the middle of the newest segment (a reservation never written while
     * later appends were): skipped by the reader, the records after it survive. */
    n = corrupt_case("c_hole", dir, seqs, names);
    k = rec_offsets(dir, names[n - 1], offs, 16);
    CHECK(k >= 3);
    char zeros[736] = {0};
    file_edit(dir, names[n - 1], offs[1], zeros, sizeof(zeros));
    int lost_hole[] = {CORRUPT_RECS - (int)k + 1};
    corrupt_check(dir, seqs, (struct expect){lost_hole, 1, 0, 1, NULL, 0});
    /* Nothing valid left in the newest segment: deleted, counted, the older ones survive. */
    n = corrupt_case("c_empty", dir, seqs, names);
    k = rec_offsets(dir, names[n - 1], offs, 16);
    file_truncate(dir, names[n - 1], 10);
    int lost_seg[16];
    for (size_t i = 0; i < k; i++) {
        lost_seg[i] = CORRUPT_RECS - (int)k + (int)i;
    }
    corrupt_check(dir, seqs, (struct expect){lost_seg, k, 1, 1, names[n - 1], 0});
}

static void
test_corrupt_older(void)
{
    char dir[256];
    uint64_t seqs[CORRUPT_RECS];
    char names[64][32];
    uint64_t offs[16];
    /* A data byte flipped in the oldest segment: that record is skipped (counted when read). */
    corrupt_case("c_olddata", dir, seqs, names);
    rec_offsets(dir, names[0], offs, 16);
    file_flip(dir, names[0], offs[2] + 200);
    int lost2[] = {2};
    corrupt_check(dir, seqs, (struct expect){lost2, 1, 0, 1, NULL, 0});
    /* A header byte (the sequence number) flipped in the second segment: resynchronised. */
    corrupt_case("c_oldhead", dir, seqs, names);
    size_t k0 = rec_offsets(dir, names[0], offs, 16);
    rec_offsets(dir, names[1], offs, 16);
    file_flip(dir, names[1], offs[1] + 9);
    int lost_h[] = {(int)k0 + 1};
    corrupt_check(dir, seqs, (struct expect){lost_h, 1, 0, 1, NULL, 0});
    /* The length field of the first record of the oldest segment broken. */
    corrupt_case("c_oldlen", dir, seqs, names);
    file_flip(dir, names[0], 5);
    int lost0[] = {0};
    corrupt_check(dir, seqs, (struct expect){lost0, 1, 0, 1, NULL, 0});
    /* Garbage after the end of an older segment (a crash during a rotation). */
    corrupt_case("c_oldtail", dir, seqs, names);
    char junk[300];
    memset(junk, 0, sizeof(junk));
    junk[0] = (char)0xF5;
    junk[1] = 'S';
    file_edit(dir, names[3], file_size(dir, names[3]), junk, sizeof(junk));
    corrupt_check(dir, seqs, (struct expect){NULL, 0, 0, 1, NULL, 0});
    /* Two damaged regions in one segment, and a truncated older segment. */
    corrupt_case("c_two", dir, seqs, names);
    size_t k = rec_offsets(dir, names[2], offs, 16);
    CHECK(k >= 4);
    file_flip(dir, names[2], offs[0] + 40);
    file_flip(dir, names[2], offs[2] + 3);
    size_t k4 = rec_offsets(dir, names[4], offs, 16);
    file_truncate(dir, names[4], offs[k4 - 1] + 100);
    size_t before2 = 0;
    size_t before4 = 0;
    for (size_t i = 0; i < 4; i++) {
        uint64_t o[16];
        size_t c = rec_offsets(dir, names[i], o, 16);
        before4 += c;
        before2 += i < 2 ? c : 0;
    }
    int lost_two[] = {(int)before2, (int)before2 + 2, (int)(before4 + k4 - 1)};
    corrupt_check(dir, seqs, (struct expect){lost_two, 3, 0, 3, NULL, 0});
}

static void
test_corrupt_index(void)
{
    char dir[256];
    uint64_t seqs[CORRUPT_RECS];
    char names[64][32];
    /* A damaged cursor: everything still on disk is returned again (at least once). */
    corrupt_case("c_cursor", dir, seqs, names);
    struct spool *sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    struct gots g = {0};
    read_all(sp, 3000, false, &g);
    struct ir_err err;
    CHECK_EQ_I64(spool_ack(sp, g.v[2].seq, &err), 0);
    gots_free(&g);
    spool_free(sp);
    file_edit(dir, "cursor", 0, "garbage!garbage!garbage!garbage!garbage!garbage!garbage!", 56);
    corrupt_check(dir, seqs, (struct expect){NULL, 0, 1, 1, NULL, 0});
    /* Segments out of order (the oldest renamed newest): the sequence numbers of the older
     * files are above the newest record's. Regression (found by the fuzzer): a record appended
     * then was taken for acknowledged and never returned. */
    corrupt_case("c_reorder", dir, seqs, names);
    char from[512];
    char to[512];
    snprintf(from, sizeof(from), "%s/%s", dir, names[0]);
    snprintf(to, sizeof(to), "%s/0000000000000100.seg", dir);
    CHECK_EQ_I64(rename(from, to), 0);
    sp = open_sp(dir, 8 << 20, 4096, 1000, 0);
    read_all(sp, 3000, true, &g);
    CHECK_EQ_I64(g.n, 5); /* the renamed file's records; the others are above the last issued */
    gots_free(&g);
    uint64_t seq = put_str(sp, "after v=1 1\n");
    read_all(sp, 3000, true, &g);
    CHECK(g.n == 1 && g.v[0].seq == seq);
    gots_free(&g);
    spool_free(sp);
}

/* ------------------------------------------------------------------ disk errors */

static void
fsize_limit(rlim_t soft)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = soft;
    CHECK_EQ_I64(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void
test_disk_error(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "efbig");
    struct spool *sp = open_sp(dir, 64 << 20, 64 * 1024, 1000, 0);
    char *buf = xmalloc(MAX_REC);
    uint32_t i = 0;
    gen(7, 0, 0, buf);
    /* Files may not grow past 40 KiB: writes beyond fail with EFBIG (what ENOSPC looks like to
     * the spool: a short write, then an error). */
    fsize_limit(40 * 1024);
    enum spool_status st = SPOOL_OK;
    struct spool_put put;
    uint64_t ok = 0;
    while (st == SPOOL_OK && i < 100) {
        size_t len = gen(7, 0, i, buf);
        struct iovec iov = {buf, len};
        st = spool_append(sp, &iov, 1, T0_NS, &put);
        i += st == SPOOL_OK;
        ok += st == SPOOL_OK;
    }
    CHECK_EQ_I64(st, SPOOL_ERROR);
    CHECK_EQ_I64(put.op, SPOOL_OP_WRITE);
    CHECK_EQ_I64(put.errnum, EFBIG);
    struct spool_stats s;
    stats_of(sp, &s);
    uint64_t bytes = s.disk_bytes;
    /* A long episode: every append fails, nothing grows (failed writes are rolled back). */
    for (int j = 0; j < 50; j++) {
        size_t len = gen(7, 0, i, buf);
        struct iovec iov = {buf, len};
        CHECK_EQ_I64(spool_append(sp, &iov, 1, T0_NS, &put), SPOOL_ERROR);
    }
    stats_of(sp, &s);
    CHECK_EQ_I64(s.disk_bytes, bytes);
    CHECK_EQ_I64(s.errors[SPOOL_OP_WRITE], 51);
    /* Space returns: appends work again. */
    fsize_limit(RLIM_INFINITY);
    for (int j = 0; j < 10; j++) {
        size_t len = gen(7, 0, i, buf);
        struct iovec iov = {buf, len};
        CHECK_EQ_I64(spool_append(sp, &iov, 1, T0_NS, &put), SPOOL_OK);
        i++;
        ok++;
    }
    struct gots g = {0};
    read_all(sp, 1 << 20, false, &g);
    CHECK_EQ_I64(g.n, ok);
    for (size_t k = 0; k < g.n; k++) {
        uint32_t r = 0;
        uint32_t t = 0;
        uint32_t idx = 0;
        CHECK(gen_check(g.v[k].data, g.v[k].len, &r, &t, &idx) && idx == k);
    }
    stats_of(sp, &s);
    CHECK_EQ_I64(s.corrupt, 0);
    gots_free(&g);
    spool_free(sp);
    /* Nothing corrupted on disk either. */
    sp = open_sp(dir, 64 << 20, 64 * 1024, 1000, 0);
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, ok);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.corrupt, 0);
    gots_free(&g);
    spool_free(sp);
    free(buf);
}

enum { ERR_T = 4, ERR_N = 300 }; /* appender threads, appends each */

struct err_arg {
    struct spool *sp;
    uint32_t round; /* of gen() */
    uint32_t t;
    uint64_t *seqs; /* ERR_N: per index, the seq, 0 when the append failed */
    uint32_t odd;   /* appends that returned neither SPOOL_OK nor SPOOL_ERROR */
};

static void *
err_thread(void *p)
{
    struct err_arg *a = p;
    char *buf = xmalloc(MAX_REC);
    for (uint32_t i = 0; i < ERR_N; i++) {
        size_t len = gen(a->round, a->t, i, buf);
        enum spool_status st;
        a->seqs[i] = put3(a->sp, buf, len, T0_NS, &st);
        a->odd += st != SPOOL_OK && st != SPOOL_ERROR; /* checked by the main thread */
    }
    free(buf);
    return NULL;
}

/* Starts ERR_T err_thread()s appending round r to sp. */
static void
errs_start(struct spool *sp, uint32_t r, uint64_t seqs[][ERR_N], pthread_t *th, struct err_arg *a)
{
    for (uint32_t t = 0; t < ERR_T; t++) {
        a[t] = (struct err_arg){sp, r, t, seqs[t], 0};
        pthread_create(&th[t], NULL, err_thread, &a[t]);
    }
}

/* Joins them; returns how many appends succeeded. */
static uint64_t
errs_join(uint64_t seqs[][ERR_N], pthread_t *th, struct err_arg *a)
{
    uint64_t ok = 0;
    for (uint32_t t = 0; t < ERR_T; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_I64(a[t].odd, 0);
        for (uint32_t i = 0; i < ERR_N; i++) {
            ok += seqs[t][i] != 0;
        }
    }
    return ok;
}

/* Reads every record of sp and checks it is exactly the ok successful appends of round r. */
static void
errs_verify(struct spool *sp, uint32_t r, uint64_t seqs[][ERR_N], uint64_t ok, bool ack)
{
    struct gots g = {0};
    read_all(sp, 256 * 1024, ack, &g);
    CHECK_EQ_I64(g.n, ok);
    for (size_t k = 0; k < g.n; k++) {
        uint32_t gr = 0;
        uint32_t t = 0;
        uint32_t i = 0;
        CHECK(gen_check(g.v[k].data, g.v[k].len, &gr, &t, &i) && gr == r);
        CHECK(t < ERR_T && i < ERR_N && seqs[t][i] == g.v[k].seq);
        CHECK(k == 0 || g.v[k].seq > g.v[k - 1].seq);
    }
    gots_free(&g);
}

/* Several appenders while the file size limit comes and goes: some writes fail in the middle
 * of a segment while later ones succeed (holes). Every append that succeeded is read back, in
 * order, and nothing else; no damage is counted. */
static void
test_disk_error_threads(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "efbig_mt");
    struct spool *sp = open_sp(dir, 256 << 20, 1 << 20, 1000, 0);
    static uint64_t seqs[ERR_T][ERR_N];
    pthread_t th[ERR_T];
    struct err_arg a[ERR_T];
    errs_start(sp, 8, seqs, th, a);
    for (int j = 0; j < 200; j++) {
        fsize_limit((rlim_t)(rnd() % 2 ? 64 * 1024 + rnd() % (1 << 20) : RLIM_INFINITY));
        struct timespec ts = {0, (long)(rnd() % 300000)};
        nanosleep(&ts, NULL);
    }
    fsize_limit(RLIM_INFINITY);
    uint64_t ok = errs_join(seqs, th, a);
    struct spool_stats s;
    stats_of(sp, &s);
    fprintf(stderr, "disk errors from %d threads: %" PRIu64 " appends ok, %" PRIu64 " failed\n",
            ERR_T, ok, s.errors[SPOOL_OP_WRITE]);
    CHECK_EQ_I64(ok + s.errors[SPOOL_OP_WRITE], ERR_T * ERR_N);
    uint64_t failed = 0;
    for (int pass = 0; pass < 2; pass++) {
        errs_verify(sp, 8, seqs, ok, pass == 1);
        stats_of(sp, &s);
        if (pass == 0) {
            CHECK_EQ_I64(s.corrupt, 0);
            failed = s.errors[SPOOL_OP_WRITE];
        } else {
            /* Holes whose void header could not be written either count after a restart. */
            CHECK(s.corrupt <= failed);
            fprintf(stderr, "after the restart: %" PRIu64 " damaged regions\n", s.corrupt);
        }
        spool_free(sp);
        sp = open_sp(dir, 256 << 20, 1 << 20, 1000, 0);
    }
    stats_of(sp, &s);
    CHECK_EQ_I64(s.records, 0);
    spool_free(sp);
}

/* ------------------------------------------------------------------ injected faults */

/* The tests' fault hook (spool_inject_fault): scripted failures and a held write. */
struct inj {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* broadcast on every change */
    uint64_t hold_seq;      /* the write of this seq waits in the hook for released (0 = none) */
    bool held;              /* it reached the hook */
    bool released;          /* it may go on */
    bool hold_timeout;      /* it gave up waiting (checked by the main thread) */
    uint64_t fail_write[2]; /* the writes of these seqs fail with EIO (0 = unused) */
    uint64_t fail_void[2];  /* the void headers of these seqs fail with EIO */
    uint64_t fate_seed;     /* != 0: every write's fate comes from inj_fate() */
    bool fail_all;          /* every write and void header fails with ENOSPC */
    unsigned sync_fail;     /* the next sync_fail fdatasyncs fail with EIO */
    unsigned sync_every;    /* != 0: every sync_every-th fdatasync fails with EIO */
    unsigned syncs;         /* fdatasyncs attempted */
    bool ring_waited;       /* an appender waited for a free slot */
    uint64_t ring_seq;      /* the first seq it waited for */
};

static void
inj_init(struct inj *x)
{
    memset(x, 0, sizeof(*x));
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* Once the threads that used x are joined. */
static void
inj_cleanup(struct inj *x)
{
    CHECK(!x->hold_timeout);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
}

/* With x->mu held: waits (at most 60 s) until *flag. Returns *flag. */
static bool
inj_wait_locked(struct inj *x, const bool *flag)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += 60;
    while (!*flag && pthread_cond_timedwait(&x->cv, &x->mu, &dl) == 0) {
    }
    return *flag;
}

static bool
inj_wait(struct inj *x, const bool *flag)
{
    pthread_mutex_lock(&x->mu);
    bool ok = inj_wait_locked(x, flag);
    pthread_mutex_unlock(&x->mu);
    CHECK(ok);
    return ok;
}

static void
inj_set(struct inj *x, bool *flag)
{
    pthread_mutex_lock(&x->mu);
    *flag = true;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* A seeded fate per record: a third of the writes fail (nothing written), half of their void
 * headers too; some writes are slowed down so that their neighbours overtake them. */
static int
inj_fate(uint64_t seed, enum spool_fault_at at, uint64_t seq)
{
    uint64_t h = mix((uint32_t)seed, (uint32_t)(seed >> 32), (uint32_t)seq);
    if (at == SPOOL_FAULT_VOID) {
        return (h >> 8) % 2 == 0 ? EIO : 0;
    }
    if ((h >> 16) % 4 == 0) {
        struct timespec ts = {0, (long)((h >> 24) % 100000)};
        nanosleep(&ts, NULL);
    }
    return h % 3 == 0 ? EIO : 0;
}

static int
inj_hook(void *ctx, enum spool_fault_at at, uint64_t seq)
{
    struct inj *x = ctx;
    int e = 0;
    pthread_mutex_lock(&x->mu);
    uint64_t seed = x->fate_seed;
    if (at == SPOOL_FAULT_RING_WAIT && !x->ring_waited) {
        x->ring_waited = true;
        x->ring_seq = seq;
        pthread_cond_broadcast(&x->cv);
    } else if (at == SPOOL_FAULT_SYNC) {
        x->syncs++;
        e = x->sync_fail > 0 || (x->sync_every != 0 && x->syncs % x->sync_every == 0) ? EIO : 0;
        x->sync_fail -= x->sync_fail > 0;
    } else if (at != SPOOL_FAULT_RING_WAIT && x->fail_all) {
        e = ENOSPC;
    } else if (at == SPOOL_FAULT_WRITE && seed == 0) {
        if (seq == x->hold_seq) {
            x->held = true;
            pthread_cond_broadcast(&x->cv);
            x->hold_timeout = !inj_wait_locked(x, &x->released);
        }
        e = seq == x->fail_write[0] || seq == x->fail_write[1] ? EIO : 0;
    } else if (at == SPOOL_FAULT_VOID && seed == 0) {
        e = seq == x->fail_void[0] || seq == x->fail_void[1] ? EIO : 0;
    }
    pthread_mutex_unlock(&x->mu);
    return seed != 0 && at != SPOOL_FAULT_SYNC ? inj_fate(seed, at, seq) : e;
}

/* A fresh spool in DIR/NAME... (64 MiB, segments of seg bytes) with x (initialised here) as its
 * fault hook. */
static struct spool *
open_inj(char *dir, size_t cap, const char *name, uint64_t seg, int64_t sync_ms, struct inj *x)
{
    dir_of(dir, cap, name);
    inj_init(x);
    struct spool *sp = open_sp(dir, 64 << 20, seg, sync_ms, 0);
    spool_inject_fault(sp, inj_hook, x);
    return sp;
}

struct one_put {
    struct spool *sp;
    const char *data;
    enum spool_status st;
    struct spool_put put;
};

static void *
one_put_thread(void *p)
{
    struct one_put *a = p;
    struct iovec iov = {(void *)(uintptr_t)a->data, strlen(a->data)};
    a->st = spool_append(a->sp, &iov, 1, T0_NS, &a->put);
    return NULL;
}

/* Reads dir's records (live from sp, then after a restart) and checks they are exactly want[]
 * (seqs and bytes) with no damage live and at most max_damage regions after the restart. */
static void
expect_records(struct spool **sp, const char *dir, char *const *want, const uint64_t *seqs,
               size_t n, uint64_t max_damage)
{
    for (int pass = 0; pass < 2; pass++) {
        struct gots g = {0};
        read_all(*sp, 4096, pass == 1, &g);
        CHECK_EQ_I64(g.n, n);
        size_t k = 0;
        while (k < g.n && k < n && g.v[k].seq == seqs[k] && strcmp(g.v[k].data, want[k]) == 0) {
            k++;
        }
        CHECK_EQ_I64(k, n); /* the first record that differs */
        struct spool_stats s;
        stats_of(*sp, &s);
        CHECK(s.corrupt <= (pass == 0 ? 0 : max_damage));
        gots_free(&g);
        spool_free(*sp);
        *sp = open_sp(dir, 64 << 20, 1 << 20, 1000, 0);
    }
}

/* The regression of a lost acknowledged write. A failed append whose void header WAS written,
 * and which was the last reservation of its segment, used to be rolled back: its range was
 * handed out again with the void header still in it. When the next append there failed too,
 * before writing anything (not even its own void header), while a later one succeeded, the
 * reader trusted the stale void header: it skipped the old, longer range, over the later
 * records (lost although acknowledged), into a damaged region. Deterministic: the hook fails
 * P's write (its void header is written), holds D's write until E has reserved and written,
 * then fails D's write and void header. */
static void
test_stale_void(void)
{
    char dir[256];
    struct inj x;
    struct spool *sp = open_inj(dir, sizeof(dir), "stale_void", 1 << 20, 1000, &x);
    char *want[64];
    uint64_t seqs[64];
    size_t n = 0;
    for (; n < 2; n++) {
        want[n] = xstrdup(n == 0 ? "a first record\n" : "a second record\n");
        seqs[n] = put_str(sp, want[n]);
    }
    /* P: long, fails, its void header is written. */
    char *big = xmalloc(2001);
    memset(big, 'p', 2000);
    big[2000] = '\0';
    x.fail_write[0] = seqs[1] + 1;
    enum spool_status st;
    CHECK_EQ_I64(put3(sp, big, 2000, T0_NS, &st), 0);
    CHECK_EQ_I64(st, SPOOL_ERROR);
    /* D: short, held until E is written, then fails without writing a byte. */
    uint64_t d = seqs[1] + 2;
    pthread_mutex_lock(&x.mu);
    x.hold_seq = d;
    x.fail_write[1] = x.fail_void[0] = d;
    pthread_mutex_unlock(&x.mu);
    struct one_put dp = {sp, "d: a record that fails\n", SPOOL_OK, {0, 0, 0}};
    pthread_t th;
    pthread_create(&th, NULL, one_put_thread, &dp);
    inj_wait(&x, &x.held);
    /* E and more, acknowledged, after D's range; P's old range ends inside them. */
    for (int k = 0; k < 40; k++) {
        char line[64];
        snprintf(line, sizeof(line), "e%d: acknowledged after the hole\n", k);
        want[n] = xstrdup(line);
        seqs[n++] = put_str(sp, line);
    }
    inj_set(&x, &x.released);
    pthread_join(th, NULL);
    CHECK_EQ_I64(dp.st, SPOOL_ERROR);
    CHECK_EQ_I64(dp.put.op, SPOOL_OP_WRITE);
    CHECK_EQ_I64(dp.put.errnum, EIO);
    want[n] = xstrdup("after everything\n");
    seqs[n] = put_str(sp, want[n]);
    n++;
    /* After the restart, D's range (no void header) may count as one damaged region. */
    expect_records(&sp, dir, want, seqs, n, 1);
    spool_free(sp);
    inj_cleanup(&x);
    for (size_t k = 0; k < n; k++) {
        free(want[k]);
    }
    free(big);
}

/* Failures injected from 4 threads at random (seeded): writes that fail with nothing written,
 * void headers that cannot be written, slow writes overtaken by their neighbours. Every append
 * that succeeded is read back, in order, nothing else, no damage; after a restart, at most one
 * damaged region per void header that could not be written, and still every record. Then an
 * episode where every write fails: the spool does not grow. */
static void
test_fault_mix(void)
{
    char dir[256];
    struct inj x;
    struct spool *sp = open_inj(dir, sizeof(dir), "fault_mix", 256 * 1024, 1000, &x);
    pthread_mutex_lock(&x.mu);
    x.fate_seed = rnd() | 1;
    pthread_mutex_unlock(&x.mu);
    static uint64_t seqs[ERR_T][ERR_N];
    pthread_t th[ERR_T];
    struct err_arg a[ERR_T];
    errs_start(sp, 9, seqs, th, a);
    uint64_t ok = errs_join(seqs, th, a);
    struct spool_stats s;
    stats_of(sp, &s);
    uint64_t failed = s.errors[SPOOL_OP_WRITE];
    fprintf(stderr, "injected faults from %d threads: %" PRIu64 " appends ok, %" PRIu64 " failed\n",
            ERR_T, ok, failed);
    CHECK_EQ_I64(ok + failed, ERR_T * ERR_N);
    errs_verify(sp, 9, seqs, ok, false);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.corrupt, 0);
    /* A disk-full episode from 4 threads: every write fails before writing a byte; each failure
     * is rolled back, or becomes a hole trimmed once the ones after it are: nothing grows (the
     * reservations in flight may overflow the segment once: the spare becomes current, empty). */
    uint64_t bytes = s.disk_bytes;
    uint64_t nsegs = s.segments;
    pthread_mutex_lock(&x.mu);
    x.fate_seed = 0;
    x.fail_all = true;
    pthread_mutex_unlock(&x.mu);
    static uint64_t none[ERR_T][ERR_N];
    errs_start(sp, 10, none, th, a);
    CHECK_EQ_I64(errs_join(none, th, a), 0);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.errors[SPOOL_OP_WRITE], failed + ERR_T * ERR_N);
    CHECK_EQ_I64(s.disk_bytes, bytes);
    CHECK(s.segments <= nsegs + 1);
    spool_free(sp);
    sp = open_sp(dir, 64 << 20, 256 * 1024, 1000, 0);
    errs_verify(sp, 9, seqs, ok, true);
    stats_of(sp, &s);
    CHECK(s.corrupt <= failed);
    fprintf(stderr, "after the restart: %" PRIu64 " damaged regions\n", s.corrupt);
    spool_free(sp);
    inj_cleanup(&x);
}

struct ring_arg {
    struct spool *sp;
    uint32_t n;
    uint64_t *seqs;
};

static void *
ring_thread(void *p)
{
    struct ring_arg *a = p;
    for (uint32_t i = 0; i < a->n; i++) {
        char line[32];
        snprintf(line, sizeof(line), "r%u\n", i);
        a->seqs[i] = put3(a->sp, line, strlen(line), T0_NS, NULL); /* checked by main */
    }
    return NULL;
}

/* More appends in flight than the ring holds: the oldest write is held while another thread
 * appends; it waits once SPOOL_IN_FLIGHT_MAX sequence numbers are out, goes on when the held
 * write completes, and every record comes back in order. */
static void
test_ring_full(void)
{
    char dir[256];
    struct inj x;
    struct spool *sp = open_inj(dir, sizeof(dir), "ring", 1 << 20, 1000, &x);
    x.hold_seq = 1;
    struct one_put held = {sp, "held\n", SPOOL_ERROR, {0, 0, 0}};
    pthread_t th[2];
    pthread_create(&th[0], NULL, one_put_thread, &held);
    inj_wait(&x, &x.held);
    enum { N = SPOOL_IN_FLIGHT_MAX + 100 };
    static uint64_t seqs[N];
    struct ring_arg ra = {sp, N, seqs};
    pthread_create(&th[1], NULL, ring_thread, &ra);
    inj_wait(&x, &x.ring_waited);
    pthread_mutex_lock(&x.mu);
    CHECK_EQ_I64(x.ring_seq, 1 + SPOOL_IN_FLIGHT_MAX);
    pthread_mutex_unlock(&x.mu);
    struct gots g = {0};
    read_all(sp, 1 << 20, false, &g);
    CHECK_EQ_I64(g.n, 0); /* nothing readable before the oldest append completes */
    inj_set(&x, &x.released);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    CHECK_EQ_I64(held.st, SPOOL_OK);
    CHECK_EQ_I64(held.put.seq, 1);
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 1 + N);
    CHECK(g.n > 0 && strcmp(g.v[0].data, "held\n") == 0);
    size_t k = 1;
    while (k < g.n && k <= N && g.v[k].seq == seqs[k - 1]) {
        char line[32];
        snprintf(line, sizeof(line), "r%zu\n", k - 1);
        if (strcmp(g.v[k].data, line) != 0) {
            break;
        }
        k++;
    }
    CHECK_EQ_I64(k, 1 + N);
    gots_free(&g);
    spool_free(sp);
    inj_cleanup(&x);
}

struct sync_arg {
    struct spool *sp;
    uint32_t t;
    uint32_t n;
    uint64_t *seqs;       /* per index: the seq, 0 when the append failed */
    unsigned sync_errors; /* appends that failed with SPOOL_OP_SYNC, EIO */
    unsigned odd;         /* appends that failed otherwise */
};

static void *
sync_thread(void *p)
{
    struct sync_arg *a = p;
    for (uint32_t i = 0; i < a->n; i++) {
        char line[32];
        snprintf(line, sizeof(line), "t%u i%u\n", a->t, i);
        struct iovec iov = {line, strlen(line)};
        struct spool_put put;
        enum spool_status st = spool_append(a->sp, &iov, 1, T0_NS, &put);
        a->seqs[i] = st == SPOOL_OK ? put.seq : 0;
        bool sync_err = st == SPOOL_ERROR && put.op == SPOOL_OP_SYNC && put.errnum == EIO;
        a->sync_errors += sync_err;
        a->odd += st != SPOOL_OK && !sync_err; /* checked by the main thread */
    }
    return NULL;
}

/* fdatasync failures with spool-sync 0: the append whose round failed gets SPOOL_ERROR (op
 * sync), later ones succeed; from 4 threads with every 3rd fdatasync failing, every append that
 * succeeded is read back, in order (a failed one may come too: its record stays, a duplicate,
 * never a loss). */
static void
test_sync_fail(void)
{
    char dir[256];
    struct inj x;
    struct spool *sp = open_inj(dir, sizeof(dir), "syncfail", 1 << 20, 0, &x);
    put_str(sp, "before\n");
    x.sync_fail = 1;
    char ns[] = "not synced\n";
    struct iovec iov = {ns, strlen(ns)};
    struct spool_put put;
    CHECK_EQ_I64(spool_append(sp, &iov, 1, T0_NS, &put), SPOOL_ERROR);
    CHECK_EQ_I64(put.op, SPOOL_OP_SYNC);
    CHECK_EQ_I64(put.errnum, EIO);
    put_str(sp, "after\n");
    struct spool_stats s;
    stats_of(sp, &s);
    CHECK_EQ_I64(s.errors[SPOOL_OP_SYNC], 1);
    CHECK_EQ_I64(s.errors[SPOOL_OP_WRITE], 0);
    enum { T = 4, N = 60 };
    static uint64_t seqs[T][N];
    pthread_t th[T];
    struct sync_arg a[T];
    pthread_mutex_lock(&x.mu);
    x.sync_every = 3;
    pthread_mutex_unlock(&x.mu);
    for (uint32_t t = 0; t < T; t++) {
        a[t] = (struct sync_arg){sp, t, N, seqs[t], 0, 0};
        pthread_create(&th[t], NULL, sync_thread, &a[t]);
    }
    unsigned failed = 0;
    for (uint32_t t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        failed += a[t].sync_errors;
        CHECK_EQ_I64(a[t].odd, 0);
    }
    pthread_mutex_lock(&x.mu);
    x.sync_every = 0;
    pthread_mutex_unlock(&x.mu);
    fprintf(stderr, "fdatasync failures: %u of %d appends failed\n", failed, T * N);
    CHECK(failed > 0 && failed < T * N);
    struct gots g = {0};
    read_all(sp, 1 << 20, true, &g);
    CHECK(g.n >= 3 + T * N - failed && g.n <= 3 + T * N);
    CHECK(g.n >= 3 && strcmp(g.v[0].data, "before\n") == 0 &&
          strcmp(g.v[1].data, "not synced\n") == 0 && strcmp(g.v[2].data, "after\n") == 0);
    size_t next[T] = {0};
    for (size_t k = 3; k < g.n; k++) {
        CHECK(g.v[k].seq > g.v[k - 1].seq);
        unsigned t = 0;
        unsigned i = 0;
        CHECK(sscanf(g.v[k].data, "t%u i%u", &t, &i) == 2 && t < T && i < N);
        while (t < T && i < N && next[t] < i) {
            CHECK_EQ_I64(seqs[t][next[t]], 0); /* skipped: only an append that failed */
            next[t]++;
        }
        if (t < T && i < N && next[t] == i) {
            CHECK(seqs[t][i] == 0 || seqs[t][i] == g.v[k].seq);
            next[t]++;
        }
    }
    for (uint32_t t = 0; t < T; t++) {
        for (; next[t] < N; next[t]++) {
            CHECK_EQ_I64(seqs[t][next[t]], 0);
        }
    }
    gots_free(&g);
    spool_free(sp);
    inj_cleanup(&x);
}

/* spool-sync > 0: spool_sync() reports a failure of the segments' fdatasync once, and of the
 * cursor's, which the next call syncs again. */
static void
test_sync_fail_timer(void)
{
    char dir[256];
    struct inj x;
    struct spool *sp = open_inj(dir, sizeof(dir), "syncfail_timer", 1 << 20, 1000, &x);
    struct spool_stats s;
    struct gots g = {0};
    put_str(sp, "timer\n");
    struct ir_err err = {0, ""};
    x.sync_fail = 1;
    CHECK_EQ_I64(spool_sync(sp, &err), -1);
    CHECK(strstr(err.msg, "fdatasync") != NULL);
    stats_of(sp, &s);
    CHECK_EQ_I64(s.errors[SPOOL_OP_SYNC], 1);
    CHECK_EQ_I64(spool_sync(sp, &err), 0); /* reported once: nothing written since */
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 1);
    /* Only the cursor is left to sync: it fails, and is synced again by the next call. */
    x.sync_fail = 1;
    unsigned syncs = x.syncs;
    CHECK_EQ_I64(spool_sync(sp, &err), -1);
    CHECK(strstr(err.msg, "cursor") != NULL);
    CHECK_EQ_I64(x.syncs, syncs + 1);
    CHECK_EQ_I64(spool_sync(sp, &err), 0);
    CHECK_EQ_I64(x.syncs, syncs + 2);
    CHECK_EQ_I64(spool_sync(sp, &err), 0);
    CHECK_EQ_I64(x.syncs, syncs + 2); /* nothing left to sync */
    stats_of(sp, &s);
    CHECK_EQ_I64(s.errors[SPOOL_OP_SYNC], 2);
    gots_free(&g);
    spool_free(sp);
    inj_cleanup(&x);
}

/* ------------------------------------------------------------------ crash safety */

/* What the child reports for every append that returned SPOOL_OK. */
struct report {
    uint64_t seq;
    uint32_t round;
    uint32_t t;
    uint32_t i;
    uint32_t pad;
};

struct child_arg {
    struct spool *sp;
    uint32_t round;
    uint32_t t;
    int fd;
};

static void *
child_appender(void *p)
{
    struct child_arg *a = p;
    char *buf = xmalloc(MAX_REC);
    uint64_t x = mix(a->round, a->t, 77) | 1;
    for (uint32_t i = 0;; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        struct timespec ts = {0, (long)(x % 200000)};
        nanosleep(&ts, NULL);
        size_t len = gen(a->round, a->t, i, buf);
        enum spool_status st;
        uint64_t seq = put3(a->sp, buf, len, T0_NS, &st);
        if (st != SPOOL_OK) {
            _exit(3);
        }
        struct report r = {seq, a->round, a->t, i, 0};
        if (write(a->fd, &r, sizeof(r)) != (ssize_t)sizeof(r)) {
            _exit(4);
        }
    }
    return NULL;
}

static void
child_run(const char *dir, uint32_t round, int64_t sync_ms, int fd)
{
    struct spool *sp = open_sp(dir, 1ULL << 30, 64 * 1024, sync_ms, 0);
    if (sp == NULL) {
        _exit(2);
    }
    pthread_t th[3];
    struct child_arg a[3];
    for (uint32_t t = 0; t < 3; t++) {
        a[t] = (struct child_arg){sp, round, t, fd};
        pthread_create(&th[t], NULL, child_appender, &a[t]);
    }
    pthread_join(th[0], NULL);
    _exit(5);
}

/* The writes that must be read back (sorted by seq once collected). */
struct pend {
    struct report *v;
    size_t n;
    size_t cap;
};

/* Collects the child's reports until deadline_ms (monotonic), then until EOF after the kill. */
static void
collect(int fd, pid_t child, int64_t deadline_ms, struct pend *pd)
{
    struct report **v = &pd->v;
    size_t *n = &pd->n;
    size_t *cap = &pd->cap;
    bool killed = false;
    for (;;) {
        int64_t left = deadline_ms - clock_mono_ms();
        if (!killed && left <= 0) {
            kill(child, SIGKILL);
            killed = true;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, killed ? 5000 : (int)left) <= 0) {
            if (killed) {
                break;
            }
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 1024;
            *v = xrealloc(*v, *cap * sizeof(**v));
        }
        ssize_t r = read(fd, &(*v)[*n], sizeof(**v));
        if (r == 0) {
            break;
        }
        CHECK_EQ_I64(r, sizeof(**v));
        *n += r == (ssize_t)sizeof(**v);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* Checks the records read after a crash: every pending one (reported by the child, or left
 * unacknowledged last round) is there with its seq, in order, byte for byte; every record read
 * is one the child wrote (content verified), none twice. */
static void
crash_verify(const struct gots *g, const struct report *pend, size_t npend)
{
    static int64_t last_i[64][3];
    memset(last_i, 0xff, sizeof(last_i));
    size_t j = 0;
    for (size_t k = 0; k < g->n; k++) {
        uint32_t r = 0;
        uint32_t t = 0;
        uint32_t i = 0;
        bool valid = gen_check(g->v[k].data, g->v[k].len, &r, &t, &i) && r < 64 && t < 3;
        CHECK(valid);
        CHECK(k == 0 || g->v[k].seq > g->v[k - 1].seq);
        if (valid) {
            CHECK((int64_t)i > last_i[r][t]); /* each write once, in its thread's order */
            last_i[r][t] = i;
        }
        if (j < npend && pend[j].seq == g->v[k].seq) {
            CHECK(pend[j].round == r && pend[j].t == t && pend[j].i == i);
            j++;
        }
    }
    CHECK_EQ_I64(j, npend);
    if (j != npend) {
        fprintf(stderr, "missing seq %" PRIu64 " (round %u thread %u index %u)\n", pend[j].seq,
                pend[j].round, pend[j].t, pend[j].i);
    }
}

static int
report_cmp(const void *a, const void *b)
{
    const struct report *x = a;
    const struct report *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One round: the child appends until killed; we reopen, verify, acknowledge a random prefix.
 * pend holds what must come back (sorted by seq); updated for the next round. */
static void
crash_round(const char *dir, uint32_t round, int64_t sync_ms, struct pend *pd, uint64_t *corrupt)
{
    struct report **pend = &pd->v;
    size_t *npend = &pd->n;
    int p[2];
    CHECK_EQ_I64(pipe(p), 0);
    int64_t delay_ms = (int64_t)(rnd() % 150);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        child_run(dir, round, sync_ms, p[1]);
    }
    close(p[1]);
    collect(p[0], child, clock_mono_ms() + delay_ms, pd);
    close(p[0]);
    qsort(*pend, *npend, sizeof(**pend), report_cmp);
    struct spool *sp = open_sp(dir, 1ULL << 30, 64 * 1024, sync_ms, 0);
    CHECK(sp != NULL);
    struct spool_stats s;
    struct gots g = {0};
    read_all(sp, 128 * 1024, false, &g);
    crash_verify(&g, *pend, *npend);
    /* Acknowledge a random prefix; the rest must come back next round. */
    size_t keep = g.n > 0 ? (size_t)(rnd() % (g.n + 1)) : 0;
    struct ir_err err;
    if (keep > 0) {
        CHECK_EQ_I64(spool_ack(sp, g.v[keep - 1].seq, &err), 0);
    }
    size_t m = 0;
    for (size_t k = keep; k < g.n; k++) {
        uint32_t r = 0;
        uint32_t t = 0;
        uint32_t i = 0;
        gen_check(g.v[k].data, g.v[k].len, &r, &t, &i);
        (*pend)[m++] = (struct report){g.v[k].seq, r, t, i, 0};
    }
    *npend = m;
    stats_of(sp, &s);
    *corrupt += s.corrupt;
    gots_free(&g);
    spool_free(sp);
}

static void
test_crash(int64_t sync_ms, uint32_t rounds)
{
    char dir[256];
    dir_of(dir, sizeof(dir), sync_ms == 0 ? "crash0" : "crash1");
    struct pend pd = {NULL, 0, 0};
    uint64_t corrupt = 0;
    uint64_t before = (uint64_t)check_failures;
    for (uint32_t round = 1; round <= rounds; round++) {
        crash_round(dir, round, sync_ms, &pd, &corrupt);
        if ((uint64_t)check_failures != before) {
            fprintf(stderr, "crash test failed in round %u\n", round);
            break;
        }
    }
    static char names[4096][32];
    uint64_t total = 0;
    size_t n = seg_files(dir, names, 4096, &total);
    fprintf(stderr,
            "crash (spool-sync %" PRId64 " ms): %u rounds, damaged regions counted %" PRIu64
            ", %zu segments left\n",
            sync_ms, rounds, corrupt, n);
    free(pd.v);
}

/* ------------------------------------------------------------------ the backend's interface */

/* Reads with spool_read_upto() until nothing comes; the seqs returned, in order. */
static size_t
read_upto(struct spool *sp, uint64_t max_seq, uint64_t *seqs, size_t max)
{
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err = {0, ""};
    size_t n = 0;
    for (int guard = 0; guard < 1000; guard++) {
        CHECK_EQ_I64(spool_read_upto(sp, 1 << 20, max_seq, &b, &err), 0);
        if (b.n == 0) {
            break;
        }
        for (size_t i = 0; i < b.n && n < max; i++) {
            seqs[n++] = b.recs[i].seq;
        }
    }
    spool_batch_cleanup(&b);
    return n;
}

/* A part of length 0 with a NULL base (a write without Authorization) leaves the data check
 * right: the record survives a restart. */
static void
test_empty_part(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "empty_part");
    struct spool *sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    struct iovec iov[3] = {{(void *)(uintptr_t) "ab", 2}, {NULL, 0}, {(void *)(uintptr_t) "cd", 2}};
    struct spool_put put;
    CHECK_EQ_I64(spool_append(sp, iov, 3, T0_NS, &put), SPOOL_OK);
    spool_free(sp);
    sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    struct spool_stats st;
    stats_of(sp, &st);
    CHECK_EQ_I64(st.corrupt, 0);
    struct gots g = {0};
    read_all(sp, 1 << 20, true, &g);
    CHECK_EQ_I64(g.n, 1);
    CHECK(g.n == 1 && strcmp(g.v[0].data, "abcd") == 0);
    gots_free(&g);
    spool_free(sp);
}

/* spool_reserve() never waits: the first one needs a segment file (SPOOL_AGAIN, then
 * spool_prepare()); reservations committed out of order become readable in sequence order,
 * once every smaller one is committed. */
static void
test_reserve_commit(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "reserve");
    struct spool *sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    struct spool_resv r[3];
    struct spool_put put;
    enum spool_status st = spool_reserve(sp, 3, &r[0], &put);
    CHECK_EQ_I64(st, SPOOL_AGAIN);
    spool_prepare(sp);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_I64(spool_reserve(sp, 3, &r[i], &put), SPOOL_OK);
        CHECK_EQ_I64(r[i].loc.seq, (int64_t)i + 1);
    }
    CHECK_EQ_I64(spool_next_seq(sp), 4);
    struct iovec iov = {(void *)(uintptr_t) "xyz", 3};
    CHECK_EQ_I64(spool_commit(sp, &r[2], &iov, 1, T0_NS, &put), SPOOL_OK);
    CHECK_EQ_I64(put.seq, 3);
    CHECK_EQ_I64(spool_commit(sp, &r[1], &iov, 1, T0_NS, &put), SPOOL_OK);
    uint64_t seqs[8];
    CHECK_EQ_I64(read_upto(sp, UINT64_MAX, seqs, 8), 0); /* 1 is not written yet */
    CHECK_EQ_I64(spool_commit(sp, &r[0], &iov, 1, T0_NS, &put), SPOOL_OK);
    size_t n = read_upto(sp, UINT64_MAX, seqs, 8);
    CHECK_EQ_I64(n, 3);
    CHECK(n == 3 && seqs[0] == 1 && seqs[1] == 2 && seqs[2] == 3);
    spool_free(sp);
}

/* A voided record is never returned: not when the reader had its bytes cached already, not
 * after a restart; it is not damage. */
static void
test_void(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "void");
    struct spool *sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    struct spool_resv r[4];
    struct spool_put put;
    struct iovec iov = {(void *)(uintptr_t) "data", 4};
    spool_prepare(sp);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_I64(spool_reserve(sp, 4, &r[i], &put), SPOOL_OK);
        CHECK_EQ_I64(spool_commit(sp, &r[i], &iov, 1, T0_NS, &put), SPOOL_OK);
    }
    uint64_t seqs[8];
    CHECK_EQ_I64(read_upto(sp, 1, seqs, 8), 1); /* the window holds the next records too */
    CHECK_EQ_I64(spool_pos(sp), 1);
    struct ir_err err = {0, ""};
    CHECK_EQ_I64(spool_void(sp, &r[1].loc, &err), 0);
    size_t n = read_upto(sp, UINT64_MAX, seqs, 8);
    CHECK_EQ_I64(n, 2);
    CHECK(n == 2 && seqs[0] == 3 && seqs[1] == 4);
    CHECK_EQ_I64(spool_ack(sp, 1, &err), 0); /* 3 and 4 stay unacknowledged */
    CHECK_EQ_I64(spool_void(sp, &r[3].loc, &err), 0);
    spool_free(sp);
    sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    n = read_upto(sp, UINT64_MAX, seqs, 8);
    CHECK_EQ_I64(n, 1);
    CHECK(n == 1 && seqs[0] == 3);
    struct spool_stats st;
    stats_of(sp, &st);
    CHECK_EQ_I64(st.corrupt, 0);
    spool_free(sp);
}

/* spool_read_upto() stops before max_seq + 1 (a void too); spool_ack() past what was returned
 * acknowledges records delivered by other means: never returned, also after a restart, and
 * their segments are deleted without being read. */
static void
test_upto_and_consume(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "upto");
    struct spool *sp = open_sp(dir, 1 << 20, 64 * 1024, 1000, 0);
    char buf[1000];
    memset(buf, 'x', sizeof(buf));
    uint64_t last = 0;
    for (int i = 0; i < 400; i++) { /* about 6 segments of 64 KiB */
        enum spool_status st;
        last = put3(sp, buf, sizeof(buf), T0_NS, &st);
    }
    CHECK_EQ_I64(last, 400);
    uint64_t seqs[512];
    size_t n = read_upto(sp, 5, seqs, 512);
    CHECK_EQ_I64(n, 5);
    CHECK_EQ_I64(spool_pos(sp), 5);
    struct ir_err err = {0, ""};
    CHECK_EQ_I64(spool_ack(sp, 5, &err), 0);
    struct spool_stats before;
    stats_of(sp, &before);
    CHECK_EQ_I64(spool_ack(sp, 390, &err), 0); /* 6..390 delivered from the caller's copies */
    CHECK_EQ_I64(spool_pos(sp), 390);
    struct spool_stats after;
    stats_of(sp, &after);
    CHECK(after.segments < before.segments && after.segments <= 2);
    CHECK_EQ_I64(after.records, 10);
    n = read_upto(sp, UINT64_MAX, seqs, 512);
    CHECK_EQ_I64(n, 10);
    CHECK(n == 10 && seqs[0] == 391 && seqs[9] == 400);
    spool_free(sp);
    sp = open_sp(dir, 1 << 20, 64 * 1024, 1000, 0);
    n = read_upto(sp, UINT64_MAX, seqs, 512);
    CHECK_EQ_I64(n, 10);
    CHECK(n == 10 && seqs[0] == 391);
    spool_free(sp);
}

/* A segment file that cannot be created (EMFILE here): spool_reserve() answers SPOOL_ERROR with
 * a sequence number used up (the reader passes it), and works again once files can be opened. */
static void
test_reserve_error(void)
{
    char dir[256];
    dir_of(dir, sizeof(dir), "resv_err");
    struct spool *sp = open_sp(dir, 1 << 20, 0, 1000, 0);
    struct spool_resv r;
    struct spool_put put;
    CHECK_EQ_I64(spool_reserve(sp, 4, &r, &put), SPOOL_AGAIN);
    struct rlimit was;
    CHECK_EQ_I64(getrlimit(RLIMIT_NOFILE, &was), 0);
    int lowest_free = dup(0); /* a new descriptor would get this number */
    close(lowest_free);
    struct rlimit low = {(rlim_t)lowest_free, was.rlim_max};
    CHECK_EQ_I64(setrlimit(RLIMIT_NOFILE, &low), 0);
    spool_prepare(sp); /* cannot create the spare */
    enum spool_status st = spool_reserve(sp, 4, &r, &put);
    CHECK_EQ_I64(setrlimit(RLIMIT_NOFILE, &was), 0);
    CHECK_EQ_I64(st, SPOOL_ERROR);
    CHECK_EQ_I64(put.op, SPOOL_OP_OPEN);
    CHECK_EQ_I64(put.errnum, EMFILE);
    CHECK_EQ_I64(r.loc.seq, 1);
    CHECK_EQ_I64(spool_reserve(sp, 4, &r, &put), SPOOL_AGAIN);
    spool_prepare(sp);
    CHECK_EQ_I64(spool_reserve(sp, 4, &r, &put), SPOOL_OK);
    CHECK_EQ_I64(r.loc.seq, 2);
    struct iovec iov = {(void *)(uintptr_t) "four", 4};
    CHECK_EQ_I64(spool_commit(sp, &r, &iov, 1, T0_NS, &put), SPOOL_OK);
    uint64_t seqs[4];
    CHECK_EQ_I64(read_upto(sp, UINT64_MAX, seqs, 4), 1);
    CHECK_EQ_I64(seqs[0], 2);
    CHECK_EQ_I64(spool_pos(sp), 2);
    spool_free(sp);
}

int
main(void)
{
    const char *seed = getenv("SPOOL_TEST_SEED");
    rng_state = seed != NULL ? strtoull(seed, NULL, 10) : (uint64_t)clock_real_ns();
    rng_state |= 1;
    fprintf(stderr, "SPOOL_TEST_SEED=%" PRIu64 "\n", rng_state);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &sa, NULL);
    snprintf(root, sizeof(root), "/tmp/spool_test.XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_empty_part();
    test_reserve_commit();
    test_void();
    test_upto_and_consume();
    test_reserve_error();
    test_order_threads(1000);
    test_order_threads(0);
    test_live(1000);
    test_live(0);
    test_batch_budget();
    test_ack_restart();
    test_rotation_deletion();
    test_size_cap();
    test_max_age();
    test_lock();
    test_unusable_dir();
    test_corrupt_newest();
    test_corrupt_older();
    test_corrupt_index();
    test_disk_error();
    test_disk_error_threads();
    test_stale_void();
    test_fault_mix();
    test_ring_full();
    test_sync_fail();
    test_sync_fail_timer();
    test_crash(1000, 24);
    test_crash(0, 20);
    if (check_failures == 0) {
        rm_tree(AT_FDCWD, root);
    } else {
        fprintf(stderr, "left %s for inspection\n", root);
    }
    return CHECK_DONE();
}
