/* libFuzzer target for buffer/spool.c: recovery and the segment reader on arbitrary files.
 * Input: byte 0 = flags (bits 0-1: 1 + n % 3 segment files; bit 2: the first 64 bytes after the
 * header are the cursor file; bits 3-7: the read budget), bytes 1-2 = where the rest is split
 * between the segment files, then the bytes. Each run writes them into a fresh spool directory
 * and checks, besides ASan/UBSan and hangs:
 * - spool_new() succeeds (damaged content never makes it fail);
 * - the records read come in strictly increasing sequence order;
 * - a record appended afterwards is read back, byte for byte, above every other one;
 * - once everything is acknowledged, a reopened spool returns nothing.
 * The directory lives under $TMPDIR, else /dev/shm (no real fsync: fast), else /tmp. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[256];

static void
fuzz_fail(const char *what)
{
    fprintf(stderr, "buffer_spool_fuzz: invariant broken: %s\n", what);
    abort();
}

static void dir_clear(void);

/* At exit (libFuzzer ends with exit() after -max_total_time): leaves nothing behind. */
static void
dir_remove(void)
{
    dir_clear();
    rmdir(fuzz_dir);
}

static void
dir_init(void)
{
    if (fuzz_dir[0] != '\0') {
        return;
    }
    const char *base = getenv("TMPDIR");
    struct stat st;
    if (base == NULL) {
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    }
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/spool_fuzz.XXXXXX", base);
    if (mkdtemp(fuzz_dir) == NULL) {
        fuzz_fail("mkdtemp");
    }
    atexit(dir_remove);
}

static void
dir_clear(void)
{
    DIR *d = opendir(fuzz_dir);
    const struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", fuzz_dir, de->d_name);
            unlink(p);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

static void
file_put(const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", fuzz_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n)) {
        fuzz_fail("write a file");
    }
    close(fd);
}

static struct spool *
fuzz_open(void)
{
    struct spool_conf c = {.dir = fuzz_dir,
                           .cap_bytes = 1ULL << 30,
                           .max_age_ms = 0,
                           .sync_ms = 1000,
                           .segment_bytes = 4096,
                           .sync_histo = NULL};
    struct ir_err err = {0, ""};
    struct spool *sp = spool_new(&c, &err);
    if (sp == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        fuzz_fail("spool_new failed on damaged content");
    }
    return sp;
}

/* Reads everything, acknowledging each batch; returns how many records; *last = the last seq. */
static size_t
read_all(struct spool *sp, size_t budget, uint64_t *last)
{
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    size_t n = 0;
    for (;;) {
        if (spool_read(sp, budget, &b, &err) != 0) {
            fuzz_fail("spool_read failed");
        }
        if (b.n == 0) {
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            if (b.recs[i].seq <= *last) {
                fuzz_fail("sequence numbers not increasing");
            }
            *last = b.recs[i].seq;
        }
        n += b.n;
        if (spool_ack(sp, b.recs[b.n - 1].seq, &err) != 0) {
            fuzz_fail("spool_ack failed");
        }
    }
    spool_batch_cleanup(&b);
    return n;
}

/* Appends one record and reads it back: it must come, alone, above everything read before. */
static void
append_and_read(struct spool *sp, uint64_t last)
{
    static const char rec[] = "fuzz,t=x v=1i 1\n";
    struct iovec iov = {(void *)(uintptr_t)rec, sizeof(rec) - 1};
    struct spool_put put;
    if (spool_append(sp, &iov, 1, 0, &put) != SPOOL_OK || put.seq <= last) {
        fuzz_fail("append after recovery");
    }
    struct spool_batch b;
    spool_batch_init(&b);
    struct ir_err err;
    if (spool_read(sp, 1 << 20, &b, &err) != 0 || b.n != 1 || b.recs[0].seq != put.seq ||
        b.recs[0].len != sizeof(rec) - 1 || memcmp(b.recs[0].data, rec, b.recs[0].len) != 0) {
        fuzz_fail("the appended record is not read back");
    }
    if (spool_ack(sp, put.seq, &err) != 0) {
        fuzz_fail("spool_ack failed");
    }
    spool_batch_cleanup(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    dir_init();
    dir_clear();
    unsigned nseg = 1 + data[0] % 3;
    bool cursor = (data[0] & 4) != 0;
    size_t budget = 1 + (size_t)(data[0] >> 3) * 997;
    const uint8_t *p = data + 3;
    size_t n = size - 3;
    if (cursor) {
        size_t c = n < 64 ? n : 64;
        file_put("cursor", p, c);
        p += c;
        n -= c;
    }
    size_t cuts[4] = {0, n * data[1] / 256, n * data[2] / 256, n};
    if (cuts[2] < cuts[1]) {
        cuts[2] = cuts[1];
    }
    for (unsigned i = 0; i < nseg; i++) {
        size_t from = nseg == 1 ? 0 : cuts[i];
        size_t to = nseg == 1 ? n : (i + 1 == nseg ? n : cuts[i + 1]);
        char name[32];
        snprintf(name, sizeof(name), "%016x.seg", i + 1);
        file_put(name, p + from, to - from);
    }
    struct spool *sp = fuzz_open();
    uint64_t last = 0;
    read_all(sp, budget, &last);
    append_and_read(sp, last);
    spool_free(sp);
    sp = fuzz_open();
    last = 0;
    if (read_all(sp, budget, &last) != 0) {
        fuzz_fail("acknowledged records came back");
    }
    spool_free(sp);
    return 0;
}
