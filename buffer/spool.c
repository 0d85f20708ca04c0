/* pwritev(2) and flock(2) are BSD extensions of glibc. */
#define _DEFAULT_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "buffer/spool.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <zlib.h>

#include "util/clock.h"
#include "util/le.h"
#include "util/xalloc.h"

/* DESIGN: the durable spool of one backend.
 *
 * Layout. DIR = spool-dir/RELAY/BACKEND holds
 *   lock       flock(2)ed by the process that owns the spool (LOCK_EX|LOCK_NB); holds its pid.
 *              flock, not fcntl: a second spool_new() in the SAME process fails too.
 *   cursor     the index: the highest acknowledged sequence number, in two 32-byte slots
 *              written alternately (a torn slot leaves the other one), 64 bytes.
 *   %016x.seg  segments, numbered in creation order: append-only files of records.
 * A record (integers little-endian; records start at multiples of 8):
 *
 *   0       4       8               16              24         28         32
 *   +-------+-------+---------------+---------------+----------+----------+------//-----+-------+
 *   | magic | len   | seq           | arrival_ns    | data_crc | head_crc | data (len)  | 0..7  |
 *   +-------+-------+---------------+---------------+----------+----------+------//-----+-------+
 *   magic = F5 'S' 'P' '1' (0xF5 is never in UTF-8 text); data_crc = CRC-32 (zlib) of data;
 *   head_crc = CRC-32 of bytes 0..27; padding = zero bytes up to the next multiple of 8.
 * A cursor slot: magic F5 'S' 'P' 'C', CRC-32 of bytes 8..31, u64 generation, u64 acked seq,
 * 8 zero bytes; the valid slot with the higher generation wins.
 *
 * Append (any thread), in three steps so that no I/O happens under the mutex:
 *  1. reserve, under mu: check the cap, take the next sequence number, the next offset of the
 *     current segment and a slot of the completion ring; a segment that would overflow is sealed
 *     and replaced by the spare, a segment file created ahead (by the appender that used the
 *     previous spare, after its write, without the lock; the directory is fsync'ed by the next
 *     sync round, not there: a directory fsync can stall for seconds behind other I/O);
 *  2. one pwritev(2) of header + parts + padding, without the lock;
 *  3. complete, under mu: mark the slot done and advance the watermark wm_seq (lowest sequence
 *     number whose append has not completed) over done slots; each segment's written_end follows
 *     it. The reader never reads past written_end, so it never sees a record being written, and
 *     sequence order = file order = read order.
 * spool_reserve() + spool_commit() are steps 1 and 2-3 for a caller that orders something of
 * its own with the sequence number under its own lock: there, step 1 never waits nor does I/O
 * (SPOOL_AGAIN: the caller calls spool_prepare() without its lock, which waits for ring room
 * and creates the spare), and a spare that cannot be created uses up a sequence number as a
 * failed append (no bytes), so the caller still has a place in the order.
 * A failed write (ENOSPC, EIO, EFBIG) becomes a hole, skipped by the reader without counting
 * damage: the appender writes a void header over the start of the range (same layout, magic
 * F5 'S' 'P' 'V', len = the rest of the range, no data check), which readers skip, also after a
 * restart; the in-memory hole list covers a void header that could not be written (after a
 * restart such a range counts as damage, and the resync crosses only the failed write's own
 * bytes). A failed write that left no byte in the file (neither data nor void header: the usual
 * case while the disk stays full) is rolled back instead when nothing was reserved after it,
 * together with the untouched holes just before it: its bytes are handed out again, so a long
 * disk-full episode creates no file and no hole. A range with any byte written is never handed
 * out again: no byte at or past a segment's reserved_end was ever written, so a reused range
 * holds no stale header that a reader could take for the record or void written there now.
 *
 * Sync. sync_ms == 0: an appender waits, after its write, for a sync round that started after
 * it completed; one appender leads the round (fdatasync of every segment written since the last
 * round, and the directory when a segment file was created since; without the lock) while the
 * others wait on the condvar: group commit. sync_ms > 0: the owner calls spool_sync() from a
 * timer. A failed round fails every append it covered, and (since Linux may drop the pages of a
 * failed writeback) every append completed before it that is still waiting: conservative. The
 * record stays in the file, so it may be delivered although the caller fell back to memory for
 * it: a duplicate, never a loss.
 *
 * What the cadence guarantees. A process crash (SIGKILL, OOM kill, abort) loses nothing that
 * spool_append() reported written, whatever spool-sync: the data is in the page cache, which the
 * kernel writes back anyway. A power loss or kernel crash loses nothing with spool-sync = 0
 * (fdatasync before the answer, and of the directory once a segment file was created); with
 * spool-sync = D it may lose what was written in the last D (plus the timer's lateness), and the
 * cursor may go back (more replay, at least once).
 *
 * Void. spool_void() overwrites a committed, unacknowledged record's header with a void header
 * (same layout as a failed append's), so every reader passes it, also after a restart; it bumps
 * void_gen, and the reader drops its window when void_gen moved, so bytes cached before the
 * void are never returned.
 *
 * Read (one thread). The reader walks the segments in order with its own read-only descriptor,
 * up to the written_end of the segment it is in, copying records into the caller's batch until
 * the byte budget is reached; it returns records above the cursor, skips expired ones (counted)
 * and damaged regions (counted). spool_ack(seq) persists the cursor with one pwrite(2) and
 * deletes the oldest segments the reader has left whose records are all at or below it (records
 * skipped after the last one returned count as acknowledged once nothing returned is pending).
 * spool_read_upto() neither returns nor passes a record above a limit. spool_ack() may go past
 * what was returned (the caller delivered those records from its own copies): the reader passes
 * them later without returning them, and a segment whose extent is known (this run's, sealed,
 * every append to it done) is deleted as soon as its records are all acknowledged, even ahead
 * of the reader; one left by a previous run is walked first (reader_catch_up()).
 *
 * Recovery (spool_new). Zero-length segment files (spares) are deleted. The newest segment is
 * scanned: everything after its last valid record is cut off (ftruncate) and counted as corrupt;
 * a newest segment without any valid record is deleted (counted) and the previous one is
 * examined. Appends then go to a new segment: a segment is never appended to after a restart.
 * Older segments are checked by the reader as it reads them (a 10 GB backlog costs no scan at
 * startup): a record is valid when its magic, head_crc, data_crc match, its length fits the
 * segment and its seq is above the previous valid record's (and not above the last one issued).
 * At an invalid record the reader skips a known hole, or resynchronises: it scans forward in
 * steps of 8 bytes for the next valid record and counts the skipped region once. So a crash
 * that left a hole (a reservation never written, while later appends were) or a flipped byte
 * loses only the damaged records; the valid records after them survive. A region is counted as
 * one lost write: its true count is unknown. Sequence numbers continue above both the newest
 * record and the cursor, so a restart never reuses an acknowledged number.
 *
 * Bound. disk_bytes = reserved bytes of every segment + the cursor file; a record is refused
 * (SPOOL_FULL) when it would exceed cap_bytes, so the directory never holds more than the cap
 * (acknowledged records of the oldest, partly read segment count until it is deleted, which costs
 * at most one segment of usable room: segments are cap/16 by default).
 *
 * Threads and locks. One mutex (mu) and one condvar (cv, broadcast when a sync round ends, a
 * spare is installed or ring slots free up), held for bookkeeping only: no I/O, no logging, no
 * allocation sized by input under it. Segment structs are shared: a segment's write descriptor
 * is closed (and freed, once deleted) by whoever drops its last reference: the current-segment
 * role, each in-flight append, membership of the dirty list (until synced) and the deleter each
 * hold one. The reader's state (struct reader) belongs to the reader thread. */

#define REC_HEAD      32
#define REC_ALIGN     8
#define RING          SPOOL_IN_FLIGHT_MAX /* appends in flight at once, at most */
#define CURSOR_SLOT   32
#define CURSOR_BYTES  64 /* 2 slots */
#define SEG_MIN_BYTES (64ULL * 1024)
#define SEG_MAX_BYTES (8ULL * 1024 * 1024)
#define WINDOW_BYTES  ((size_t)256 * 1024) /* the reader's usual read size */
#define BATCH_RECORDS 8192                 /* records per batch, at most */
#define SEG_NAME_LEN  24                   /* "%016x.seg" and its NUL, rounded up */

static const unsigned char rec_magic[4] = {0xF5, 'S', 'P', '1'};
static const unsigned char void_magic[4] = {0xF5, 'S', 'P', 'V'};
static const unsigned char cur_magic[4] = {0xF5, 'S', 'P', 'C'};

/* ------------------------------------------------------------------ structures */

/* The range of a failed append that could not be rolled back: not a record, skipped. */
struct hole {
    struct hole *next; /* guarded by sp->mu; sorted by off */
    uint64_t off;
    uint64_t len;
    bool written; /* some of its bytes were written: never handed out again */
};

struct seg {
    struct seg *next;       /* guarded by sp->mu: the list, oldest first */
    struct seg *dirty_next; /* guarded by sp->mu: the dirty list */
    struct seg *sync_next;  /* owned by the running sync round */
    struct seg *dead_next;  /* reader thread: segments being deleted */
    uint64_t id;            /* immutable */
    int wfd;               /* guarded by sp->mu; -1 when closed. A ref holder may use it unlocked */
    unsigned refs;         /* guarded by sp->mu */
    uint64_t reserved_end; /* guarded by sp->mu: bytes handed out to appenders */
    uint64_t written_end;  /* guarded by sp->mu: end of the last record under the watermark */
    uint64_t last_seq;     /* guarded by sp->mu: highest seq reserved or read in it */
    bool sealed;           /* guarded by sp->mu: takes no more appends */
    bool dirty;            /* guarded by sp->mu: on the dirty list */
    bool removed;          /* guarded by sp->mu: off the list; the last ref frees it */
    struct hole *holes;    /* guarded by sp->mu */
};

/* What to do, without the lock, after dropping a segment reference. */
struct seg_act {
    int fd;           /* close it */
    struct seg *dead; /* free it */
};

enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_OK, SLOT_FAILED };

struct slot {
    struct seg *seg;
    uint64_t end;
    enum slot_state state;
};

/* A cursor over the bytes [0, end) of one segment file (see walk_next()). */
struct walk {
    int fd;            /* borrowed */
    uint64_t off;      /* next byte to look at */
    uint64_t end;      /* bytes past it are never read */
    uint64_t last_seq; /* a valid record's seq is above it */
    uint64_t max_seq;  /* ... and not above it (0 = no bound) */
    bool scanning;     /* inside a damaged region that began at bad_from */
    uint64_t bad_from;
    uint64_t dmg_len; /* WALK_DAMAGE: the region's length */
    int errnum;       /* WALK_ERR */
    char *win;        /* owned: bytes [win_off, win_off + win_len) of the file */
    size_t win_cap;
    uint64_t win_off;
    size_t win_len;
};

struct wrec {
    uint64_t seq;
    int64_t arrival_ns;
    const char *data; /* into the walk's window: valid until the next walk call */
    size_t len;
};

enum walk_ev {
    WALK_REC,    /* a valid record (the walk is past it) */
    WALK_VOID,   /* a void header: the range of a failed append (the walk is past it) */
    WALK_BAD,    /* no valid record at off: skip a known hole or walk_resync() */
    WALK_DAMAGE, /* a damaged region of dmg_len bytes ended at off */
    WALK_END,    /* off == end */
    WALK_ERR,    /* a read failed: errnum */
};

struct reader {
    struct seg *seg;   /* the segment being read (never deleted while here), NULL before any */
    int fd;            /* read-only descriptor of seg, -1 */
    struct walk w;     /* over seg; last_seq carries over from segment to segment */
    uint64_t seg_max;  /* highest valid seq seen in seg */
    uint64_t ack_seq;  /* acknowledged, written to the cursor */
    uint64_t returned; /* highest seq returned */
    uint64_t passed;   /* highest seq returned or skipped */
    uint64_t cursor_gen;
    uint64_t limit;    /* spool_read_upto(): no record above it is returned or passed */
    uint64_t void_gen; /* sp->void_gen when the window was filled */
    uint64_t *out;     /* seqs returned and not acknowledged: out[out_head..out_n) */
    size_t out_head;
    size_t out_n;
    size_t out_cap;
};

struct spool {
    char *dir;             /* immutable after new */
    int dirfd;             /* immutable after new */
    int lockfd;            /* immutable after new */
    int curfd;             /* immutable after new; written by the reader, synced by any */
    uint64_t cap_bytes;    /* immutable after new */
    uint64_t seg_bytes;    /* immutable after new */
    int64_t max_age_ns;    /* immutable after new; 0 = none */
    bool sync_each;        /* immutable after new */
    struct histo *histo;   /* immutable after new (borrowed, may be NULL) */
    pthread_mutex_t mu;    /* the one lock: bookkeeping only */
    pthread_cond_t cv;     /* sync rounds, spare installed, ring slots freed */
    struct seg *head;      /* guarded by mu: every segment, oldest first */
    struct seg *last;      /* guarded by mu */
    struct seg *cur;       /* guarded by mu: where appends go; NULL before the first */
    struct seg *spare;     /* guarded by mu: the next segment, created ahead */
    bool spare_busy;       /* guarded by mu: a thread is creating the spare */
    uint64_t next_id;      /* guarded by mu */
    uint64_t next_seq;     /* guarded by mu */
    uint64_t wm_seq;       /* guarded by mu: lowest seq whose append has not completed */
    unsigned ring_waiters; /* guarded by mu */
    struct slot *ring;     /* guarded by mu: RING slots, indexed by seq % RING */
    uint64_t disk_bytes;   /* guarded by mu */
    uint64_t nsegs;        /* guarded by mu */
    uint64_t ack_seq;      /* guarded by mu: the reader's, for stats */
    struct seg *dirty;     /* guarded by mu: segments written since the last sync round */
    uint64_t done_ticket;  /* guarded by mu: appends written (a ticket each) */
    uint64_t ok_upto;      /* guarded by mu: tickets made durable by a successful round */
    uint64_t fail_upto;    /* guarded by mu: tickets covered by a failed round */
    int sync_errno;        /* guarded by mu */
    bool syncing;          /* guarded by mu: a round is running */
    bool dir_dirty;        /* guarded by mu: a segment file was created since the last round */
    int spare_err;         /* guarded by mu: errno of the last failed spare creation, 0 = none */
    _Atomic uint64_t void_gen; /* atomic: records voided so far (the reader drops its cache) */
    _Atomic bool cursor_dirty; /* atomic */
    _Atomic uint64_t appended; /* atomic */
    _Atomic uint64_t acked;    /* atomic */
    _Atomic uint64_t expired;  /* atomic */
    _Atomic uint64_t corrupt;  /* atomic */
    _Atomic uint64_t full;     /* atomic */
    _Atomic uint64_t errors[SPOOL_OP_COUNT]; /* atomic */
    struct reader rd;                        /* reader thread only */

    /* Tests only (spool_inject_fault()), immutable: their hook, or NULL. */
    int (*fault)(void *ctx, enum spool_fault_at at, uint64_t seq);
    void *fault_ctx;
};

/* ------------------------------------------------------------------ helpers */

/* crc32_z() with a NULL buffer returns the initial value, whatever crc: an empty part (a NULL
 * iov_base of length 0) must leave crc as it is. */
static uint32_t
crc_of(uint32_t crc, const void *p, size_t n)
{
    return n == 0 ? crc : (uint32_t)crc32_z(crc, (const Bytef *)p, n);
}

static uint64_t
rec_size(uint64_t len)
{
    return (REC_HEAD + len + REC_ALIGN - 1) & ~(uint64_t)(REC_ALIGN - 1);
}

static void
count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void
seg_name(uint64_t id, char *name)
{
    snprintf(name, SEG_NAME_LEN, "%016" PRIx64 ".seg", id);
}

/* Parses "%016x.seg"; false for any other name. */
static bool
seg_parse(const char *name, uint64_t *id)
{
    if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0) {
        return false;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < 16; i++) {
        char c = name[i];
        unsigned d = 0;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else {
            return false;
        }
        v = (v << 4) | d;
    }
    *id = v;
    return true;
}

/* The error the tests inject at this point, 0 when none. */
static int
fault_at(const struct spool *sp, enum spool_fault_at at, uint64_t seq)
{
    return sp->fault != NULL ? sp->fault(sp->fault_ctx, at, seq) : 0;
}

/* fdatasync(2), or the injected error. Returns 0 or an errno. */
static int
datasync(const struct spool *sp, int fd)
{
    int e = fault_at(sp, SPOOL_FAULT_SYNC, 0);
    if (e == 0 && fdatasync(fd) != 0) {
        e = errno;
    }
    return e;
}

static void
set_errno_err(struct ir_err *err, const char *what, const char *dir, int e)
{
    char eb[128];
    ir_err_set(err, 0, "spool %s %s: %s", what, dir, ir_strerror(e, eb, sizeof(eb)));
}

/* ------------------------------------------------------------------ the walk (segment reader) */

static void
walk_reset(struct walk *w, int fd, uint64_t end)
{
    w->fd = fd;
    w->off = 0;
    w->end = end;
    w->scanning = false;
    w->win_off = 0;
    w->win_len = 0;
    w->errnum = 0;
}

static void
walk_cleanup(struct walk *w)
{
    free(w->win);
    w->win = NULL;
    w->win_cap = 0;
    w->win_len = 0;
}

/* Makes the window hold [off, off + n) (n <= end - off), reading ahead up to WINDOW_BYTES.
 * Returns a pointer to byte off, or NULL: errnum != 0 on a read or memory error, 0 when the file
 * is shorter than the walk's end. */
static const unsigned char *
walk_bytes(struct walk *w, uint64_t off, size_t n)
{
    if (off >= w->win_off && off - w->win_off + n <= w->win_len) {
        return (const unsigned char *)w->win + (off - w->win_off);
    }
    uint64_t avail = w->end - off;
    size_t want = n > WINDOW_BYTES ? n : WINDOW_BYTES;
    if (want > avail) {
        want = (size_t)avail;
    }
    w->win_len = 0;
    if (want > w->win_cap || (w->win_cap > 4 * WINDOW_BYTES && want <= WINDOW_BYTES)) {
        size_t cap = want > WINDOW_BYTES ? want : WINDOW_BYTES;
        free(w->win);
        w->win = malloc(cap); /* sized by a record length: checked, never fatal */
        w->win_cap = w->win != NULL ? cap : 0;
        if (w->win == NULL) {
            w->errnum = ENOMEM;
            return NULL;
        }
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(w->fd, w->win + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            w->errnum = errno;
            return NULL;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    w->win_off = off;
    w->win_len = got;
    w->errnum = 0;
    return got >= n ? (const unsigned char *)w->win : NULL;
}

/* Checks the record at w->off; on WALK_REC fills rec and *size. */
static enum walk_ev
walk_check(struct walk *w, struct wrec *rec, uint64_t *size)
{
    if (w->end - w->off < REC_HEAD) {
        return WALK_BAD;
    }
    const unsigned char *p = walk_bytes(w, w->off, REC_HEAD);
    if (p == NULL) {
        return w->errnum != 0 ? WALK_ERR : WALK_BAD;
    }
    bool is_void = memcmp(p, void_magic, 4) == 0;
    if ((!is_void && memcmp(p, rec_magic, 4) != 0) ||
        (uint32_t)le_get(p + 28, 4) != crc_of(0, p, 28)) {
        return WALK_BAD;
    }
    uint64_t len = (uint32_t)le_get(p + 4, 4);
    uint64_t seq = le_get(p + 8, 8);
    if (len > SPOOL_RECORD_MAX_BYTES || seq <= w->last_seq ||
        (w->max_seq != 0 && seq > w->max_seq)) {
        return WALK_BAD;
    }
    uint64_t sz = rec_size(len);
    if (sz > w->end - w->off) {
        return WALK_BAD;
    }
    rec->seq = seq;
    *size = sz;
    if (is_void) {
        return WALK_VOID;
    }
    p = walk_bytes(w, w->off, (size_t)sz);
    if (p == NULL) {
        return w->errnum != 0 ? WALK_ERR : WALK_BAD;
    }
    if (crc_of(0, p + REC_HEAD, (size_t)len) != (uint32_t)le_get(p + 24, 4)) {
        return WALK_BAD;
    }
    rec->arrival_ns = (int64_t)le_get(p + 16, 8);
    rec->data = (const char *)p + REC_HEAD;
    rec->len = (size_t)len;
    return WALK_REC;
}

/* Scanning a damaged region: looks for the next valid record at multiples of 8. */
static enum walk_ev
walk_scan(struct walk *w)
{
    struct wrec rec;
    uint64_t sz = 0;
    while (w->off < w->end && w->end - w->off >= REC_HEAD) {
        const unsigned char *p = walk_bytes(w, w->off, REC_HEAD);
        if (p == NULL && w->errnum != 0) {
            return WALK_ERR;
        }
        if (p == NULL) {
            break; /* the file ends before w->end */
        }
        if (memcmp(p, rec_magic, 4) == 0 || memcmp(p, void_magic, 4) == 0) {
            enum walk_ev ev = walk_check(w, &rec, &sz);
            if (ev == WALK_ERR) {
                return ev;
            }
            if (ev == WALK_REC || ev == WALK_VOID) {
                w->scanning = false;
                w->dmg_len = w->off - w->bad_from;
                return WALK_DAMAGE;
            }
        }
        w->off += REC_ALIGN;
    }
    w->off = w->end;
    w->scanning = false;
    w->dmg_len = w->end - w->bad_from;
    return WALK_DAMAGE;
}

/* The next event of the walk: a record, a void, a bad spot (the caller skips a hole or resyncs),
 * the end of a damaged region, the end, or a read error. Never reads past w->end. */
static enum walk_ev
walk_next(struct walk *w, struct wrec *rec)
{
    if (w->scanning) {
        return walk_scan(w);
    }
    if (w->off >= w->end) {
        return WALK_END;
    }
    uint64_t sz = 0;
    enum walk_ev ev = walk_check(w, rec, &sz);
    if (ev == WALK_REC || ev == WALK_VOID) {
        w->off += sz;
        w->last_seq = rec->seq;
    }
    return ev;
}

/* After WALK_BAD: starts scanning for the next valid record. */
static void
walk_resync(struct walk *w)
{
    w->scanning = true;
    w->bad_from = w->off;
    w->off += REC_ALIGN;
}

/* ------------------------------------------------------------------ segments */

static void
seg_destroy(struct seg *s)
{
    while (s->holes != NULL) {
        struct hole *h = s->holes;
        s->holes = h->next;
        free(h);
    }
    free(s);
}

/* Drops one reference; at zero, a sealed segment's descriptor is closed and a removed one is
 * freed, by the caller through a, once the lock is released. */
static void
seg_unref_locked(struct seg *s, struct seg_act *a)
{
    assert(s->refs > 0);
    s->refs--;
    if (s->refs != 0) {
        return;
    }
    if (s->wfd >= 0 && (s->sealed || s->removed)) {
        a->fd = s->wfd;
        s->wfd = -1;
    }
    if (s->removed) {
        a->dead = s;
    }
}

static void
seg_act_init(struct seg_act *a)
{
    a->fd = -1;
    a->dead = NULL;
}

static void
seg_act_run(struct seg_act *a)
{
    if (a->fd >= 0) {
        close(a->fd);
    }
    if (a->dead != NULL) {
        seg_destroy(a->dead);
    }
    seg_act_init(a);
}

static void
seg_unref(struct spool *sp, struct seg *s)
{
    struct seg_act a;
    seg_act_init(&a);
    pthread_mutex_lock(&sp->mu);
    seg_unref_locked(s, &a);
    pthread_mutex_unlock(&sp->mu);
    seg_act_run(&a);
}

static void
list_append_locked(struct spool *sp, struct seg *s)
{
    s->next = NULL;
    if (sp->last != NULL) {
        sp->last->next = s;
    } else {
        sp->head = s;
    }
    sp->last = s;
    sp->nsegs++;
}

/* Creates the empty segment file id (its directory entry is synced by the next sync round). */
static struct seg *
seg_create(struct spool *sp, uint64_t id, int *errnum)
{
    char name[SEG_NAME_LEN];
    seg_name(id, name);
    int fd = openat(sp->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        *errnum = errno;
        return NULL;
    }
    struct seg *s = xcalloc(1, sizeof(*s));
    s->id = id;
    s->wfd = fd;
    return s;
}

/* Called without the lock by the thread that set spare_busy: creates and installs the spare.
 * Returns 0, or -1 with *errnum (counted). */
static int
spare_build(struct spool *sp, int *errnum)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t id = sp->next_id++;
    pthread_mutex_unlock(&sp->mu);
    struct seg *s = seg_create(sp, id, errnum);
    pthread_mutex_lock(&sp->mu);
    sp->spare = s;
    sp->spare_busy = false;
    sp->spare_err = s == NULL ? *errnum : 0;
    sp->dir_dirty = sp->dir_dirty || s != NULL;
    pthread_cond_broadcast(&sp->cv);
    pthread_mutex_unlock(&sp->mu);
    if (s == NULL) {
        count(&sp->errors[SPOOL_OP_OPEN]);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ append */

struct resv {
    struct seg *seg;
    uint64_t seq;
    uint64_t off;
    uint64_t size;
    bool make_spare;    /* this appender creates the next spare after its write */
    struct seg_act act; /* run without the lock */
};

static void advance_wm_locked(struct spool *sp);

/* Seals the current segment and makes the spare current. */
static void
rotate_locked(struct spool *sp, struct seg_act *a)
{
    struct seg *s = sp->spare;
    sp->spare = NULL;
    if (sp->cur != NULL) {
        sp->cur->sealed = true;
        seg_unref_locked(sp->cur, a); /* the current-segment reference */
    }
    s->refs = 1;
    list_append_locked(sp, s);
    sp->cur = s;
}

static void
take_locked(struct spool *sp, uint64_t size, struct resv *r)
{
    struct seg *c = sp->cur;
    r->seg = c;
    r->seq = sp->next_seq++;
    r->off = c->reserved_end;
    r->size = size;
    c->reserved_end += size;
    c->last_seq = r->seq;
    c->refs++;
    sp->disk_bytes += size;
    struct slot *sl = &sp->ring[r->seq % RING];
    sl->seg = c;
    sl->end = r->off + size;
    sl->state = SLOT_PENDING;
}

/* Without waiting (spool_reserve()), where a blocking reservation would wait or create the
 * spare: SPOOL_AGAIN, or, after a failed spare creation, a sequence number used up as a failed
 * append (SPOOL_ERROR), so that the next reservation tries the spare again. */
static enum spool_status
reserve_cannot_wait_locked(struct spool *sp, struct resv *r, struct spool_put *put)
{
    if (sp->spare_busy || sp->spare_err == 0) {
        return SPOOL_AGAIN;
    }
    r->seq = sp->next_seq++;
    struct slot *sl = &sp->ring[r->seq % RING];
    sl->seg = NULL;
    sl->end = 0;
    sl->state = SLOT_FAILED;
    advance_wm_locked(sp);
    put->seq = r->seq;
    put->op = SPOOL_OP_OPEN;
    put->errnum = sp->spare_err;
    sp->spare_err = 0;
    return SPOOL_ERROR;
}

/* Step 1 of an append: under the lock, a sequence number and a place. wait: wait for room in
 * the ring or for the spare, creating it if needed; otherwise see reserve_cannot_wait_locked(). */
static enum spool_status
reserve(struct spool *sp, uint64_t size, bool wait, struct resv *r, struct spool_put *put)
{
    enum spool_status st = SPOOL_OK;
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        if (sp->disk_bytes + size > sp->cap_bytes) {
            st = SPOOL_FULL;
            break;
        }
        if (sp->next_seq - sp->wm_seq >= RING) {
            (void)fault_at(sp, SPOOL_FAULT_RING_WAIT, sp->next_seq);
            if (!wait) {
                st = SPOOL_AGAIN;
                break;
            }
            sp->ring_waiters++;
            pthread_cond_wait(&sp->cv, &sp->mu);
            sp->ring_waiters--;
            continue;
        }
        struct seg *c = sp->cur;
        if (c != NULL && (c->reserved_end == 0 || c->reserved_end + size <= sp->seg_bytes)) {
            take_locked(sp, size, r);
            break;
        }
        if (sp->spare != NULL) {
            assert(r->act.fd < 0 && r->act.dead == NULL); /* one rotation per append at most */
            rotate_locked(sp, &r->act);
            continue;
        }
        if (!wait) {
            st = reserve_cannot_wait_locked(sp, r, put);
            break;
        }
        if (sp->spare_busy) {
            pthread_cond_wait(&sp->cv, &sp->mu);
            continue;
        }
        sp->spare_busy = true;
        pthread_mutex_unlock(&sp->mu);
        int rc = spare_build(sp, &put->errnum);
        pthread_mutex_lock(&sp->mu);
        if (rc != 0) {
            put->op = SPOOL_OP_OPEN;
            st = SPOOL_ERROR;
            break;
        }
    }
    if (st == SPOOL_OK && sp->spare == NULL && !sp->spare_busy) {
        sp->spare_busy = true;
        r->make_spare = true;
    }
    pthread_mutex_unlock(&sp->mu);
    return st;
}

/* Step 2: writes every byte of iov at off (regular files write short only on errors); *wrote =
 * the bytes written, also on failure. */
static int
write_all(int fd, struct iovec *iov, int n, uint64_t off, uint64_t *wrote, int *errnum)
{
    while (n > 0) {
        ssize_t r = pwritev(fd, iov, n, (off_t)off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            *errnum = r < 0 ? errno : EIO;
            return -1;
        }
        off += (uint64_t)r;
        *wrote += (uint64_t)r;
        size_t left = (size_t)r;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Removes untouched holes that end where the segment's reservations now end (nothing follows
 * them). */
static void
holes_trim_locked(struct spool *sp, struct seg *s, struct hole **trash)
{
    bool again = true;
    while (again) {
        again = false;
        for (struct hole **hp = &s->holes; *hp != NULL; hp = &(*hp)->next) {
            struct hole *h = *hp;
            if (h->next == NULL && !h->written && h->off + h->len == s->reserved_end) {
                *hp = NULL;
                s->reserved_end = h->off;
                sp->disk_bytes -= h->len;
                h->next = *trash;
                *trash = h;
                again = true;
                break;
            }
        }
    }
}

/* A failed write: rolled back when it wrote no byte (written: neither data nor void header) and
 * nothing was reserved after it, else a hole (for good once written).
 * Never hand out again a range with a byte written: such a range keeps a valid-looking header
 * (the void header, or the record header of a partial write). It once lost acknowledged records:
 * P fails, its void header written, and is rolled back; D gets the same offset and fails before
 * writing anything, even its own void header, while E, reserved after D, succeeds; D is now a
 * hole, and the reader, finding P's stale void header at D's offset, skipped P's longer range:
 * over E (read never, although acknowledged) into what it then counted as damage. */
static void
fail_locked(struct spool *sp, const struct resv *r, bool written, struct hole **spare_hole,
            struct hole **trash)
{
    struct seg *s = r->seg;
    if (!written && s->reserved_end == r->off + r->size) {
        s->reserved_end = r->off;
        sp->disk_bytes -= r->size;
        holes_trim_locked(sp, s, trash);
        return;
    }
    struct hole *h = *spare_hole;
    *spare_hole = NULL;
    h->off = r->off;
    h->len = r->size;
    h->written = written;
    struct hole **hp = &s->holes;
    while (*hp != NULL && (*hp)->off < h->off) {
        hp = &(*hp)->next;
    }
    h->next = *hp;
    *hp = h;
}

/* Moves the watermark over completed slots; written_end follows. */
static void
advance_wm_locked(struct spool *sp)
{
    bool moved = false;
    while (sp->wm_seq < sp->next_seq) {
        struct slot *sl = &sp->ring[sp->wm_seq % RING];
        if (sl->state == SLOT_PENDING) {
            break;
        }
        if (sl->state == SLOT_OK && sl->end > sl->seg->written_end) {
            sl->seg->written_end = sl->end;
        }
        sl->state = SLOT_FREE;
        sl->seg = NULL;
        sp->wm_seq++;
        moved = true;
    }
    if (moved && sp->ring_waiters > 0) {
        pthread_cond_broadcast(&sp->cv);
    }
}

/* Step 3, under the lock. Returns the write's sync ticket (0 when it failed). written: a failed
 * write left bytes in the file. */
static uint64_t
complete_locked(struct spool *sp, struct resv *r, bool ok, bool written, struct hole **spare_hole,
                struct hole **trash)
{
    struct slot *sl = &sp->ring[r->seq % RING];
    struct seg *s = r->seg;
    uint64_t ticket = 0;
    if (ok) {
        sl->state = SLOT_OK;
        ticket = ++sp->done_ticket;
        if (!s->dirty) {
            s->dirty = true;
            s->refs++; /* the dirty list's reference */
            s->dirty_next = sp->dirty;
            sp->dirty = s;
        }
    } else {
        sl->state = SLOT_FAILED;
        fail_locked(sp, r, written, spare_hole, trash);
    }
    advance_wm_locked(sp);
    seg_unref_locked(s, &r->act);
    return ticket;
}

/* One sync round, led by the caller: called and returns with mu held, drops it for the I/O. */
static void
sync_round_locked(struct spool *sp)
{
    sp->syncing = true;
    uint64_t target = sp->done_ticket;
    bool dir = sp->dir_dirty;
    sp->dir_dirty = false;
    struct seg *list = NULL;
    while (sp->dirty != NULL) {
        struct seg *s = sp->dirty;
        sp->dirty = s->dirty_next;
        s->dirty = false;
        s->sync_next = list; /* the dirty reference moves to the round */
        list = s;
    }
    pthread_mutex_unlock(&sp->mu);
    int64_t t0 = clock_real_ns();
    int e = 0;
    if (dir && fsync(sp->dirfd) != 0) {
        e = errno; /* the new segments' names may not survive a power loss */
    }
    for (struct seg *s = list; s != NULL; s = s->sync_next) {
        int se = datasync(sp, s->wfd);
        e = e != 0 ? e : se;
    }
    int64_t us = (clock_real_ns() - t0) / 1000;
    if (sp->histo != NULL && (list != NULL || dir)) {
        histo_observe(sp->histo, us > 0 ? (uint64_t)us : 0);
    }
    while (list != NULL) {
        struct seg *s = list;
        list = s->sync_next;
        seg_unref(sp, s);
    }
    if (e != 0) {
        count(&sp->errors[SPOOL_OP_SYNC]);
    }
    pthread_mutex_lock(&sp->mu);
    if (e != 0) {
        sp->fail_upto = target > sp->fail_upto ? target : sp->fail_upto;
        sp->sync_errno = e;
        sp->dir_dirty = sp->dir_dirty || dir;
    } else if (target > sp->ok_upto) {
        sp->ok_upto = target;
    }
    sp->syncing = false;
    pthread_cond_broadcast(&sp->cv);
}

/* Waits (leading rounds as needed) until ticket is durable or a round covering it failed.
 * Called and returns with mu held. */
static int
wait_synced_locked(struct spool *sp, uint64_t ticket, int *errnum)
{
    if (ticket == 0) {
        return 0;
    }
    while (sp->fail_upto < ticket && sp->ok_upto < ticket) {
        if (!sp->syncing) {
            sync_round_locked(sp);
        } else {
            pthread_cond_wait(&sp->cv, &sp->mu);
        }
    }
    if (sp->fail_upto >= ticket) {
        *errnum = sp->sync_errno;
        return -1;
    }
    return 0;
}

/* The fields of a record header. */
struct head {
    const unsigned char *magic; /* rec_magic or void_magic */
    uint64_t len;
    uint64_t seq;
    int64_t arrival_ns;
    uint32_t dcrc;
};

static void
head_encode(unsigned char *h, const struct head *f)
{
    memcpy(h, f->magic, 4);
    le_put(h + 4, (uint32_t)f->len, 4);
    le_put(h + 8, f->seq, 8);
    le_put(h + 16, (uint64_t)f->arrival_ns, 8);
    le_put(h + 24, f->dcrc, 4);
    le_put(h + 28, crc_of(0, h, 28), 4);
}

/* After a failed write: marks its range void for readers after a restart (best effort: a
 * range left unmarked is counted as damage then). Returns true when it wrote a byte (even a
 * torn header): the range is then never handed out again. */
static bool
void_mark(const struct spool *sp, const struct resv *r)
{
    if (fault_at(sp, SPOOL_FAULT_VOID, r->seq) != 0) {
        return false;
    }
    unsigned char h[REC_HEAD];
    head_encode(h, &(struct head){void_magic, r->size - REC_HEAD, r->seq, 0, 0});
    return pwrite(r->seg->wfd, h, sizeof(h), (off_t)r->off) > 0;
}

/* Steps 2 and 3 for a reserved record. Returns 0, or -1 with put->op and put->errnum. */
static int
append_write(struct spool *sp, struct resv *r, struct iovec *iov, int n, struct spool_put *put)
{
    uint64_t wrote = 0;
    int e = fault_at(sp, SPOOL_FAULT_WRITE, r->seq);
    int rc = e != 0 ? -1 : write_all(r->seg->wfd, iov, n, r->off, &wrote, &e);
    bool written = wrote > 0;
    if (rc != 0 && void_mark(sp, r)) {
        written = true;
    }
    struct hole *h = rc != 0 ? xcalloc(1, sizeof(*h)) : NULL;
    struct hole *trash = NULL;
    pthread_mutex_lock(&sp->mu);
    uint64_t ticket = complete_locked(sp, r, rc == 0, written, &h, &trash);
    int src = 0;
    if (rc == 0 && sp->sync_each) {
        src = wait_synced_locked(sp, ticket, &e);
    }
    pthread_mutex_unlock(&sp->mu);
    seg_act_run(&r->act);
    free(h);
    while (trash != NULL) {
        struct hole *t = trash;
        trash = t->next;
        free(t);
    }
    if (rc != 0) {
        count(&sp->errors[SPOOL_OP_WRITE]);
        put->op = SPOOL_OP_WRITE;
    } else if (src != 0) {
        put->op = SPOOL_OP_SYNC;
    }
    put->errnum = e;
    return rc != 0 || src != 0 ? -1 : 0;
}

/* Steps 2 and 3 of a reservation: the record's header, data and padding. */
static enum spool_status
commit_rec(struct spool *sp, struct resv *r, const struct iovec *parts, size_t nparts,
           int64_t arrival_ns, struct spool_put *put)
{
    struct iovec iov[SPOOL_PARTS_MAX + 2];
    uint64_t len = 0;
    uint32_t dcrc = 0;
    size_t n = nparts < SPOOL_PARTS_MAX ? nparts : SPOOL_PARTS_MAX;
    for (size_t i = 0; i < n; i++) {
        iov[i + 1] = parts[i];
        len += parts[i].iov_len;
        dcrc = crc_of(dcrc, parts[i].iov_base, parts[i].iov_len);
    }
    assert(rec_size(len) == r->size);
    unsigned char head[REC_HEAD];
    unsigned char pad[REC_ALIGN] = {0};
    head_encode(head, &(struct head){rec_magic, len, r->seq, arrival_ns, dcrc});
    iov[0] = (struct iovec){.iov_base = head, .iov_len = REC_HEAD};
    iov[n + 1] = (struct iovec){.iov_base = pad, .iov_len = (size_t)(r->size - REC_HEAD - len)};
    int rc = append_write(sp, r, iov, (int)n + 2, put);
    if (r->make_spare) {
        int e = 0;
        (void)spare_build(sp, &e); /* counted; the next rotation tries again */
    }
    if (rc != 0) {
        return SPOOL_ERROR;
    }
    count(&sp->appended);
    put->seq = r->seq;
    return SPOOL_OK;
}

static uint64_t
parts_len(const struct iovec *parts, size_t nparts)
{
    uint64_t len = 0;
    for (size_t i = 0; i < nparts && i < SPOOL_PARTS_MAX; i++) {
        len += parts[i].iov_len;
    }
    return len;
}

enum spool_status
spool_append(struct spool *sp, const struct iovec *parts, size_t nparts, int64_t arrival_ns,
             struct spool_put *put)
{
    put->seq = 0;
    put->op = SPOOL_OP_WRITE;
    put->errnum = 0;
    assert(nparts <= SPOOL_PARTS_MAX);
    uint64_t len = parts_len(parts, nparts);
    if (len > SPOOL_RECORD_MAX_BYTES) {
        count(&sp->full);
        return SPOOL_FULL;
    }
    struct resv r = {.make_spare = false};
    seg_act_init(&r.act);
    enum spool_status st = reserve(sp, rec_size(len), true, &r, put);
    seg_act_run(&r.act);
    if (st == SPOOL_FULL) {
        count(&sp->full);
    }
    if (st != SPOOL_OK) {
        return st;
    }
    return commit_rec(sp, &r, parts, nparts, arrival_ns, put);
}

_Static_assert(sizeof(struct resv) <= sizeof(((struct spool_resv *)NULL)->priv_),
               "struct spool_resv must hold a struct resv");

enum spool_status
spool_reserve(struct spool *sp, size_t len, struct spool_resv *pub, struct spool_put *put)
{
    put->seq = 0;
    put->op = SPOOL_OP_WRITE;
    put->errnum = 0;
    memset(pub, 0, sizeof(*pub));
    if (len > SPOOL_RECORD_MAX_BYTES) {
        count(&sp->full);
        return SPOOL_FULL;
    }
    struct resv r = {.make_spare = false};
    seg_act_init(&r.act);
    enum spool_status st = reserve(sp, rec_size(len), false, &r, put);
    if (st == SPOOL_FULL) {
        count(&sp->full);
    }
    pub->loc.seq = r.seq;
    pub->len = len;
    if (st == SPOOL_OK) {
        pub->loc.seg = r.seg->id;
        pub->loc.off = r.off;
        pub->loc.size = r.size;
    } else {
        assert(r.act.fd < 0 && r.act.dead == NULL); /* only a reservation rotates */
    }
    memcpy(pub->priv_, &r, sizeof(r));
    return st;
}

void
spool_prepare(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    while (sp->next_seq - sp->wm_seq >= RING || sp->spare_busy) {
        sp->ring_waiters++;
        pthread_cond_wait(&sp->cv, &sp->mu);
        sp->ring_waiters--;
    }
    bool build = sp->spare == NULL;
    sp->spare_busy = sp->spare_busy || build;
    pthread_mutex_unlock(&sp->mu);
    if (build) {
        int e = 0;
        (void)spare_build(sp, &e); /* a failure is counted and remembered (spare_err) */
    }
}

enum spool_status
spool_commit(struct spool *sp, struct spool_resv *pub, const struct iovec *parts, size_t nparts,
             int64_t arrival_ns, struct spool_put *put)
{
    put->seq = 0;
    put->op = SPOOL_OP_WRITE;
    put->errnum = 0;
    assert(nparts <= SPOOL_PARTS_MAX && parts_len(parts, nparts) == pub->len);
    struct resv r;
    memcpy(&r, pub->priv_, sizeof(r));
    seg_act_run(&r.act);
    return commit_rec(sp, &r, parts, nparts, arrival_ns, put);
}

uint64_t
spool_next_seq(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t n = sp->next_seq;
    pthread_mutex_unlock(&sp->mu);
    return n;
}

int
spool_sync(struct spool *sp, struct ir_err *err)
{
    int e = 0;
    pthread_mutex_lock(&sp->mu);
    /* Nothing written since a round that failed: that failure was reported (and counted) by
     * whoever waited for it; reporting it again on every call would make an idle spool fail
     * every sync forever. */
    uint64_t t = sp->done_ticket;
    int rc = t > sp->fail_upto ? wait_synced_locked(sp, t, &e) : 0;
    pthread_mutex_unlock(&sp->mu);
    if (rc != 0) {
        set_errno_err(err, "fdatasync", sp->dir, e);
    }
    if (atomic_exchange(&sp->cursor_dirty, false)) {
        int64_t t0 = clock_real_ns();
        e = datasync(sp, sp->curfd);
        if (e != 0) {
            count(&sp->errors[SPOOL_OP_SYNC]);
            atomic_store(&sp->cursor_dirty, true);
            set_errno_err(err, "fdatasync of the cursor in", sp->dir, e);
            rc = -1;
        }
        int64_t us = (clock_real_ns() - t0) / 1000;
        if (sp->histo != NULL) {
            histo_observe(sp->histo, us > 0 ? (uint64_t)us : 0);
        }
    }
    return rc;
}

int
spool_void(struct spool *sp, const struct spool_loc *loc, struct ir_err *err)
{
    pthread_mutex_lock(&sp->mu);
    struct seg *s = sp->head;
    while (s != NULL && s->id != loc->seg) {
        s = s->next;
    }
    int fd = -1;
    if (s != NULL && !s->removed) {
        s->refs++;
        fd = s->wfd;
    } else {
        s = NULL;
    }
    pthread_mutex_unlock(&sp->mu);
    if (s == NULL) {
        return 0; /* acknowledged and deleted meanwhile */
    }
    int own = -1;
    char name[SEG_NAME_LEN];
    seg_name(s->id, name);
    if (fd < 0) {
        own = fd = openat(sp->dirfd, name, O_WRONLY | O_CLOEXEC);
    }
    unsigned char h[REC_HEAD];
    head_encode(h, &(struct head){void_magic, loc->size - REC_HEAD, loc->seq, 0, 0});
    int e = fd < 0 ? errno : 0;
    if (fd >= 0) {
        ssize_t w = pwrite(fd, h, sizeof(h), (off_t)loc->off);
        if (w != (ssize_t)sizeof(h)) {
            e = w < 0 ? errno : EIO;
        } else if (sp->sync_each && fdatasync(fd) != 0) {
            e = errno;
        }
    }
    atomic_fetch_add(&sp->void_gen, 1);
    if (own >= 0) {
        close(own);
    }
    seg_unref(sp, s);
    if (e != 0) {
        count(&sp->errors[fd < 0 ? SPOOL_OP_OPEN : SPOOL_OP_WRITE]);
        set_errno_err(err, "void mark of a record in", sp->dir, e);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ reader */

void
spool_batch_init(struct spool_batch *b)
{
    memset(b, 0, sizeof(*b));
}

void
spool_batch_cleanup(struct spool_batch *b)
{
    free(b->recs);
    free(b->buf);
    spool_batch_init(b);
}

/* Makes room for data_bytes + len bytes (the buffer only grows while empty: recs point in). */
static int
batch_room(struct spool_batch *b, size_t len)
{
    if (b->recs_cap == 0) {
        b->recs = xcalloc(64, sizeof(*b->recs));
        b->recs_cap = 64;
    }
    if (b->n == b->recs_cap) {
        b->recs_cap *= 2;
        b->recs = xrealloc(b->recs, b->recs_cap * sizeof(*b->recs));
    }
    if (b->data_bytes + len <= b->buf_cap) {
        return 0;
    }
    assert(b->n == 0);
    free(b->buf);
    b->buf = malloc(len > 0 ? len : 1); /* sized by a record: checked, never fatal */
    b->buf_cap = b->buf != NULL ? len : 0;
    return b->buf != NULL ? 0 : -1;
}

static void
out_push(struct reader *rd, uint64_t seq)
{
    if (rd->out_n == rd->out_cap && rd->out_head > 0) {
        memmove(rd->out, rd->out + rd->out_head, (rd->out_n - rd->out_head) * sizeof(*rd->out));
        rd->out_n -= rd->out_head;
        rd->out_head = 0;
    }
    if (rd->out_n == rd->out_cap) {
        rd->out_cap = rd->out_cap > 0 ? rd->out_cap * 2 : 256;
        rd->out = xrealloc(rd->out, rd->out_cap * sizeof(*rd->out));
    }
    rd->out[rd->out_n++] = seq;
}

/* A consistent look, under the lock, at the segment the reader is in. */
struct view {
    uint64_t end;     /* readable bytes of rd.seg */
    uint64_t max_seq; /* the last seq issued */
    uint64_t wm_seq;
    bool finished; /* rd.seg takes no more records: once at end, move to the next */
    bool newest;   /* no segment after rd.seg */
};

static bool
view_take(struct spool *sp, struct view *v)
{
    struct reader *rd = &sp->rd;
    pthread_mutex_lock(&sp->mu);
    if (rd->seg == NULL) {
        rd->seg = sp->head;
    }
    struct seg *s = rd->seg;
    if (s != NULL) {
        v->end = s->written_end;
        v->finished = s->sealed && sp->wm_seq > s->last_seq && s->next != NULL;
        v->newest = s->next == NULL;
    }
    v->max_seq = sp->next_seq - 1;
    v->wm_seq = sp->wm_seq;
    pthread_mutex_unlock(&sp->mu);
    return s != NULL;
}

/* Opens the read descriptor of rd.seg when needed. */
static int
reader_open(struct spool *sp, struct ir_err *err)
{
    struct reader *rd = &sp->rd;
    if (rd->fd >= 0) {
        return 0;
    }
    char name[SEG_NAME_LEN];
    seg_name(rd->seg->id, name);
    rd->fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (rd->fd < 0) {
        int e = errno;
        count(&sp->errors[SPOOL_OP_OPEN]);
        set_errno_err(err, "open of a segment in", sp->dir, e);
        return -1;
    }
    uint64_t last = rd->w.last_seq;
    walk_reset(&rd->w, rd->fd, 0);
    rd->w.last_seq = last;
    return 0;
}

/* At a bad spot: skips a known hole, else resynchronises. */
static void
reader_bad(struct spool *sp)
{
    struct reader *rd = &sp->rd;
    uint64_t len = 0;
    pthread_mutex_lock(&sp->mu);
    for (const struct hole *h = rd->seg->holes; h != NULL && h->off <= rd->w.off; h = h->next) {
        if (h->off == rd->w.off) {
            len = h->len;
        }
    }
    pthread_mutex_unlock(&sp->mu);
    if (len > 0) {
        rd->w.off += len;
    } else {
        walk_resync(&rd->w);
    }
}

/* A void: the sequence number of a failed append, passed. */
static void
reader_void(struct spool *sp, uint64_t seq)
{
    struct reader *rd = &sp->rd;
    rd->passed = seq > rd->passed ? seq : rd->passed;
    rd->seg_max = seq > rd->seg_max ? seq : rd->seg_max;
}

enum take { TAKE_OK, TAKE_FULL, TAKE_NOMEM };

/* One valid record: passed (acknowledged before, expired) or copied into the batch. */
static enum take
reader_take(struct spool *sp, const struct wrec *rec, size_t max_bytes, int64_t cutoff,
            struct spool_batch *b)
{
    struct reader *rd = &sp->rd;
    if (rec->seq > rd->limit) {
        return TAKE_FULL;
    }
    if (rec->seq > rd->ack_seq && rec->arrival_ns < cutoff) {
        count(&sp->expired);
    } else if (rec->seq > rd->ack_seq) {
        if (b->n > 0 && (b->data_bytes + rec->len > max_bytes || b->n >= BATCH_RECORDS)) {
            return TAKE_FULL;
        }
        if (batch_room(b, rec->len) != 0) {
            return TAKE_NOMEM;
        }
        char *dst = b->buf + b->data_bytes;
        if (rec->len > 0) {
            memcpy(dst, rec->data, rec->len);
        }
        b->recs[b->n++] = (struct spool_rec){rec->seq, rec->arrival_ns, dst, rec->len};
        b->data_bytes += rec->len;
        rd->returned = rec->seq;
        out_push(rd, rec->seq);
    }
    if (rec->seq > rd->passed) {
        rd->passed = rec->seq;
    }
    if (rec->seq > rd->seg_max) {
        rd->seg_max = rec->seq;
    }
    return TAKE_OK;
}

enum step { STEP_END, STEP_FULL, STEP_ERR };

/* Walks rd.seg up to the view's end, filling b. */
static enum step
reader_walk(struct spool *sp, size_t max_bytes, int64_t cutoff, struct spool_batch *b,
            struct ir_err *err)
{
    struct walk *w = &sp->rd.w;
    for (;;) {
        uint64_t at = w->off;
        uint64_t last = w->last_seq;
        struct wrec rec;
        enum walk_ev ev = walk_next(w, &rec);
        if (ev == WALK_END) {
            return STEP_END;
        }
        if (ev == WALK_ERR) {
            count(&sp->errors[SPOOL_OP_READ]);
            set_errno_err(err, "read of a segment in", sp->dir, w->errnum);
            return STEP_ERR;
        }
        if (ev == WALK_DAMAGE) {
            count(&sp->corrupt);
        } else if (ev == WALK_BAD) {
            reader_bad(sp);
        } else if (ev == WALK_VOID && rec.seq > sp->rd.limit) {
            w->off = at; /* not passed: the caller's limit is below it */
            w->last_seq = last;
            return STEP_FULL;
        } else if (ev == WALK_VOID) {
            reader_void(sp, rec.seq);
        } else {
            enum take t = reader_take(sp, &rec, max_bytes, cutoff, b);
            if (t != TAKE_OK) {
                w->off = at;
                w->last_seq = last;
            }
            if (t == TAKE_NOMEM) {
                set_errno_err(err, "read of a record in", sp->dir, ENOMEM);
                return STEP_ERR;
            }
            if (t == TAKE_FULL) {
                return STEP_FULL;
            }
        }
    }
}

/* Persists ack as the cursor (two alternating slots). */
static int
cursor_write(struct spool *sp, uint64_t ack, int *errnum)
{
    struct reader *rd = &sp->rd;
    uint64_t gen = rd->cursor_gen + 1;
    unsigned char buf[CURSOR_SLOT] = {0};
    memcpy(buf, cur_magic, 4);
    le_put(buf + 8, gen, 8);
    le_put(buf + 16, ack, 8);
    le_put(buf + 4, crc_of(0, buf + 8, CURSOR_SLOT - 8), 4);
    ssize_t r = pwrite(sp->curfd, buf, sizeof(buf), (off_t)((gen % 2) * CURSOR_SLOT));
    if (r != (ssize_t)sizeof(buf)) {
        *errnum = r < 0 ? errno : EIO;
        return -1;
    }
    rd->cursor_gen = gen;
    atomic_store(&sp->cursor_dirty, true);
    return 0;
}

/* Takes s off the dirty list: its records are delivered, syncing them is pointless. */
static void
undirty_locked(struct spool *sp, struct seg *s, struct seg_act *a)
{
    if (!s->dirty) {
        return;
    }
    struct seg **pp = &sp->dirty;
    while (*pp != s) {
        pp = &(*pp)->dirty_next;
    }
    *pp = s->dirty_next;
    s->dirty = false;
    seg_unref_locked(s, a); /* never the last: the deleter holds one */
}

/* Under the lock: the oldest segment s can go: its records are all acknowledged, and either the
 * reader has left it or its extent is known (a segment of this run, sealed, every append to it
 * done). In the second case the reader skips it (*jump: close its descriptor). */
static bool
trimmable_locked(struct spool *sp, const struct seg *s, bool *jump)
{
    const struct reader *rd = &sp->rd;
    if (s->last_seq > rd->ack_seq) {
        return false;
    }
    if (rd->seg != NULL && s != rd->seg) {
        return true;
    }
    if (s->last_seq == 0 || !s->sealed || s->next == NULL || sp->wm_seq <= s->last_seq) {
        return false;
    }
    *jump = *jump || rd->seg == s;
    return true;
}

/* Deletes the oldest segments whose records are all acknowledged (see trimmable_locked()). */
static void
reader_trim(struct spool *sp)
{
    struct reader *rd = &sp->rd;
    struct seg *dead = NULL;
    struct seg **tail = &dead;
    bool jump = false;
    pthread_mutex_lock(&sp->mu);
    while (sp->head != NULL && trimmable_locked(sp, sp->head, &jump)) {
        struct seg *s = sp->head;
        if (rd->seg == s) {
            rd->seg = s->next;
            rd->seg_max = 0;
            if (s->last_seq > rd->w.last_seq) {
                rd->w.last_seq = s->last_seq;
            }
        }
        sp->head = s->next;
        s->removed = true;
        s->refs++; /* the deleter's reference */
        struct seg_act a;
        seg_act_init(&a);
        undirty_locked(sp, s, &a);
        assert(a.fd < 0 && a.dead == NULL);
        sp->disk_bytes -= s->reserved_end;
        sp->nsegs--;
        s->dead_next = NULL;
        *tail = s;
        tail = &s->dead_next;
    }
    pthread_mutex_unlock(&sp->mu);
    if (jump && rd->fd >= 0) {
        close(rd->fd); /* reader_open() starts the next segment from its beginning */
        rd->fd = -1;
    }
    while (dead != NULL) {
        struct seg *s = dead;
        dead = s->dead_next;
        char name[SEG_NAME_LEN];
        seg_name(s->id, name);
        if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT) {
            count(&sp->errors[SPOOL_OP_UNLINK]);
        }
        seg_unref(sp, s);
    }
}

static int
reader_ack_to(struct spool *sp, uint64_t to, struct ir_err *err)
{
    struct reader *rd = &sp->rd;
    rd->ack_seq = to;
    pthread_mutex_lock(&sp->mu);
    sp->ack_seq = to;
    pthread_mutex_unlock(&sp->mu);
    int e = 0;
    int rc = cursor_write(sp, to, &e);
    if (rc != 0) {
        count(&sp->errors[SPOOL_OP_WRITE]);
        set_errno_err(err, "write of the cursor in", sp->dir, e);
    }
    reader_trim(sp);
    return rc;
}

/* rd.seg is done: moves to the next segment. */
static void
reader_next(struct spool *sp)
{
    struct reader *rd = &sp->rd;
    if (rd->fd >= 0) {
        close(rd->fd);
        rd->fd = -1;
    }
    pthread_mutex_lock(&sp->mu);
    if (rd->seg_max > rd->seg->last_seq) {
        rd->seg->last_seq = rd->seg_max;
    }
    rd->seg = rd->seg->next;
    pthread_mutex_unlock(&sp->mu);
    rd->seg_max = 0;
    reader_trim(sp);
}

int
spool_read(struct spool *sp, size_t max_bytes, struct spool_batch *b, struct ir_err *err)
{
    return spool_read_upto(sp, max_bytes, UINT64_MAX, b, err);
}

/* Before a read: a record voided since the window was filled may sit in it, unvoided. */
static void
reader_fresh(struct spool *sp)
{
    struct reader *rd = &sp->rd;
    uint64_t gen = atomic_load(&sp->void_gen);
    if (gen != rd->void_gen) {
        rd->void_gen = gen;
        rd->w.win_len = 0;
    }
}

int
spool_read_upto(struct spool *sp, size_t max_bytes, uint64_t max_seq, struct spool_batch *b,
                struct ir_err *err)
{
    struct reader *rd = &sp->rd;
    b->n = 0;
    b->data_bytes = 0;
    max_bytes = max_bytes > 0 ? max_bytes : 1;
    if (b->buf_cap > 2 * max_bytes) {
        free(b->buf); /* after one large record: back to the budget */
        b->buf = NULL;
        b->buf_cap = 0;
    }
    if (b->buf_cap < max_bytes && batch_room(b, max_bytes) != 0) {
        set_errno_err(err, "read of", sp->dir, ENOMEM);
        return -1;
    }
    reader_fresh(sp);
    rd->limit = max_seq;
    int64_t cutoff = sp->max_age_ns > 0 ? clock_real_ns() - sp->max_age_ns : INT64_MIN;
    struct view v;
    while (view_take(sp, &v)) {
        if (reader_open(sp, err) != 0) {
            return b->n > 0 ? 0 : -1;
        }
        rd->w.end = v.end;
        rd->w.max_seq = v.max_seq;
        enum step st = reader_walk(sp, max_bytes, cutoff, b, err);
        if (st == STEP_ERR) {
            return b->n > 0 ? 0 : -1;
        }
        if (st == STEP_FULL) {
            break;
        }
        if (v.finished) {
            reader_next(sp);
            continue;
        }
        uint64_t upto = v.wm_seq - 1 < max_seq ? v.wm_seq - 1 : max_seq;
        if (v.newest && upto > rd->passed) {
            rd->passed = upto; /* failed appends: no bytes, nothing to return */
        }
        break;
    }
    if (rd->out_head == rd->out_n && rd->passed > rd->ack_seq) {
        return reader_ack_to(sp, rd->passed, err);
    }
    return 0;
}

uint64_t
spool_pos(struct spool *sp)
{
    const struct reader *rd = &sp->rd;
    return rd->passed > rd->ack_seq ? rd->passed : rd->ack_seq;
}

/* After an acknowledgement with nothing returned pending: walks the reader over whole segments
 * left by a previous run (their last sequence number is unknown until read) whose records are
 * all acknowledged, so they can be deleted. At most two segments per call. */
static void
reader_catch_up(struct spool *sp)
{
    struct reader *rd = &sp->rd;
    struct spool_batch none;
    spool_batch_init(&none);
    for (int i = 0; i < 2 && rd->out_head == rd->out_n; i++) {
        struct view v;
        if (!view_take(sp, &v) || v.newest || !v.finished) {
            return;
        }
        pthread_mutex_lock(&sp->mu);
        bool unknown = rd->seg->last_seq == 0;
        pthread_mutex_unlock(&sp->mu);
        struct ir_err e = {0, ""};
        if (!unknown || reader_open(sp, &e) != 0) {
            return;
        }
        reader_fresh(sp);
        rd->limit = rd->ack_seq;
        rd->w.end = v.end;
        rd->w.max_seq = v.max_seq;
        if (reader_walk(sp, 0, INT64_MIN, &none, &e) != STEP_END) {
            return; /* a record not acknowledged yet, or a read error: left to spool_read() */
        }
        reader_next(sp);
    }
}

int
spool_ack(struct spool *sp, uint64_t seq, struct ir_err *err)
{
    struct reader *rd = &sp->rd;
    if (seq <= rd->ack_seq) {
        return 0;
    }
    uint64_t n = 0;
    while (rd->out_head < rd->out_n && rd->out[rd->out_head] <= seq) {
        rd->out_head++;
        n++;
    }
    atomic_fetch_add_explicit(&sp->acked, n, memory_order_relaxed);
    if (seq > rd->passed) {
        rd->passed = seq; /* delivered by the caller: the reader passes them */
    }
    if (rd->out_head == rd->out_n) {
        rd->out_head = 0;
        rd->out_n = 0;
        if (rd->passed > seq) {
            seq = rd->passed; /* skipped after the last record returned */
        }
    }
    int rc = reader_ack_to(sp, seq, err);
    reader_catch_up(sp);
    return rc;
}

/* ------------------------------------------------------------------ open (recovery) */

/* mkdir -p with mode 0750. */
static int
mkdir_p(const char *dir, int *errnum)
{
    if (dir[0] == '\0') {
        *errnum = ENOENT;
        return -1;
    }
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        bool at_end = *s == '\0';
        if (!at_end && *s != '/') {
            continue;
        }
        *s = '\0';
        if (mkdir(p, 0750) != 0 && errno != EEXIST) {
            *errnum = errno;
            rc = -1;
        }
        if (at_end) {
            break;
        }
        *s = '/';
    }
    free(p);
    return rc;
}

static int
lock_take(struct spool *sp, struct ir_err *err)
{
    sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->lockfd < 0) {
        set_errno_err(err, "cannot create the lock file in", sp->dir, errno);
        return -1;
    }
    if (flock(sp->lockfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK) {
            set_errno_err(err, "cannot lock", sp->dir, e);
            return -1;
        }
        char pid[24] = "";
        ssize_t n = pread(sp->lockfd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        ir_err_set(err, 0, "spool directory %s is in use by another process (pid %s)", sp->dir,
                   pid[0] != '\0' ? pid : "unknown");
        return -1;
    }
    char pid[24];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(sp->lockfd, 0) != 0 || pwrite(sp->lockfd, pid, (size_t)len, 0) != len) {
        count(&sp->errors[SPOOL_OP_WRITE]); /* the pid is only for the message */
    }
    return 0;
}

/* Reads the cursor: the valid slot with the higher generation. */
static int
cursor_load(struct spool *sp, uint64_t *ack, struct ir_err *err)
{
    sp->curfd = openat(sp->dirfd, "cursor", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->curfd < 0) {
        set_errno_err(err, "cannot open the cursor in", sp->dir, errno);
        return -1;
    }
    unsigned char buf[CURSOR_BYTES] = {0};
    ssize_t n = pread(sp->curfd, buf, sizeof(buf), 0);
    if (n < 0) {
        set_errno_err(err, "cannot read the cursor in", sp->dir, errno);
        return -1;
    }
    bool found = false;
    bool blank = true;
    for (unsigned i = 0; i < 2; i++) {
        const unsigned char *s = buf + (size_t)i * CURSOR_SLOT;
        for (unsigned j = 0; j < CURSOR_SLOT; j++) {
            blank = blank && s[j] == 0;
        }
        if (memcmp(s, cur_magic, 4) != 0 ||
            (uint32_t)le_get(s + 4, 4) != crc_of(0, s + 8, CURSOR_SLOT - 8)) {
            continue;
        }
        uint64_t gen = le_get(s + 8, 8);
        if (!found || gen > sp->rd.cursor_gen) {
            sp->rd.cursor_gen = gen;
            *ack = le_get(s + 16, 8);
            found = true;
        }
    }
    if (!found && !blank) {
        count(&sp->corrupt); /* replays everything still on disk */
    }
    if (n < CURSOR_BYTES && ftruncate(sp->curfd, CURSOR_BYTES) != 0) {
        count(&sp->errors[SPOOL_OP_WRITE]);
    }
    sp->disk_bytes += CURSOR_BYTES;
    return 0;
}

static int
id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment files, deletes empty ones, builds the list in id order. */
static int
segs_load(struct spool *sp, struct ir_err *err)
{
    int fd = dup(sp->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        set_errno_err(err, "cannot list", sp->dir, errno);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    uint64_t *ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    const struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t id = 0;
        if (!seg_parse(de->d_name, &id)) {
            continue;
        }
        if (n == cap) {
            cap = cap > 0 ? cap * 2 : 64;
            ids = xrealloc(ids, cap * sizeof(*ids));
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n > 0) {
        qsort(ids, n, sizeof(*ids), id_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        char name[SEG_NAME_LEN];
        seg_name(ids[i], name);
        struct stat st;
        sp->next_id = ids[i] + 1;
        if (fstatat(sp->dirfd, name, &st, 0) != 0) {
            continue; /* vanished: not ours to judge */
        }
        if (st.st_size == 0) {
            unlinkat(sp->dirfd, name, 0); /* a spare never used */
            continue;
        }
        struct seg *s = xcalloc(1, sizeof(*s));
        s->id = ids[i];
        s->wfd = -1;
        s->sealed = true;
        s->reserved_end = s->written_end = (uint64_t)st.st_size;
        sp->disk_bytes += s->reserved_end;
        list_append_locked(sp, s);
    }
    free(ids);
    return 0;
}

/* What seg_scan() looks for and finds. */
struct scan {
    uint64_t max_seq; /* in: records above it are invalid (0 = no bound) */
    bool first_only;  /* in: stop at the first valid record */
    uint64_t first;   /* out: the first valid record's seq, 0 = none */
    uint64_t last;    /* out: the last valid record's (or void's) seq */
    uint64_t end;     /* out: where it ends */
};

/* Walks segment s from the start. Returns 0, or -1 with err on a read error. */
static int
seg_scan(struct spool *sp, int fd, const struct seg *s, struct scan *sc, struct ir_err *err)
{
    struct walk w = {.fd = -1};
    walk_reset(&w, fd, s->reserved_end);
    w.last_seq = 0;
    w.max_seq = sc->max_seq;
    int rc = 0;
    struct wrec rec;
    for (;;) {
        enum walk_ev ev = walk_next(&w, &rec);
        if (ev == WALK_END) {
            break;
        }
        if (ev == WALK_ERR) {
            set_errno_err(err, "cannot read a segment in", sp->dir, w.errnum);
            rc = -1;
            break;
        }
        if (ev == WALK_BAD) {
            walk_resync(&w);
        } else if (ev == WALK_VOID || ev == WALK_REC) {
            sc->last = rec.seq;
            sc->end = w.off;
        }
        if (ev == WALK_REC && sc->first == 0) {
            sc->first = rec.seq;
        }
        if (ev == WALK_REC && sc->first_only) {
            break;
        }
    }
    walk_cleanup(&w);
    return rc;
}

/* Drops the last segment of the list (it holds no valid record). */
static void
drop_last(struct spool *sp)
{
    struct seg *s = sp->last;
    struct seg **pp = &sp->head;
    struct seg *prev = NULL;
    while (*pp != s) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = NULL;
    sp->last = prev;
    sp->nsegs--;
    sp->disk_bytes -= s->reserved_end;
    char name[SEG_NAME_LEN];
    seg_name(s->id, name);
    if (unlinkat(sp->dirfd, name, 0) != 0) {
        count(&sp->errors[SPOOL_OP_UNLINK]);
    }
    seg_destroy(s);
}

/* Cuts the torn or corrupt tail of the newest segment; *max_seq = its last valid record. */
static int
recover_tail(struct spool *sp, uint64_t *max_seq, struct ir_err *err)
{
    *max_seq = 0;
    while (sp->last != NULL) {
        struct seg *s = sp->last;
        char name[SEG_NAME_LEN];
        seg_name(s->id, name);
        int fd = openat(sp->dirfd, name, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            set_errno_err(err, "cannot open a segment in", sp->dir, errno);
            return -1;
        }
        struct scan sc = {.max_seq = 0, .first_only = false};
        int rc = seg_scan(sp, fd, s, &sc, err);
        uint64_t last = sc.last;
        uint64_t good_end = sc.end;
        if (rc == 0 && good_end < s->reserved_end) {
            count(&sp->corrupt);
            if (good_end > 0 && ftruncate(fd, (off_t)good_end) != 0) {
                count(&sp->errors[SPOOL_OP_WRITE]); /* the reader will skip the rest */
                good_end = s->reserved_end;
            }
        }
        close(fd);
        if (rc != 0) {
            return -1;
        }
        if (good_end == 0) {
            drop_last(sp);
            continue;
        }
        sp->disk_bytes -= s->reserved_end - good_end;
        s->reserved_end = s->written_end = good_end;
        *max_seq = last;
        return 0;
    }
    return 0;
}

/* The seq of the first valid record of the oldest segment (at most max_seq), 0 when none. */
static int
oldest_seq(struct spool *sp, uint64_t max_seq, uint64_t *first, struct ir_err *err)
{
    *first = 0;
    if (sp->head == NULL) {
        return 0;
    }
    char name[SEG_NAME_LEN];
    seg_name(sp->head->id, name);
    int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_errno_err(err, "cannot open a segment in", sp->dir, errno);
        return -1;
    }
    struct scan sc = {.max_seq = max_seq, .first_only = true};
    int rc = seg_scan(sp, fd, sp->head, &sc, err);
    close(fd);
    *first = sc.first;
    return rc;
}

/* Opens the directory, takes the lock, reads the cursor and the segments. */
static int
spool_load(struct spool *sp, struct ir_err *err)
{
    int e = 0;
    if (mkdir_p(sp->dir, &e) != 0) {
        set_errno_err(err, "cannot create", sp->dir, e);
        return -1;
    }
    sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        set_errno_err(err, "cannot open", sp->dir, errno);
        return -1;
    }
    uint64_t cursor = 0;
    uint64_t max_seq = 0;
    uint64_t first = 0;
    if (lock_take(sp, err) != 0 || cursor_load(sp, &cursor, err) != 0 || segs_load(sp, err) != 0 ||
        recover_tail(sp, &max_seq, err) != 0) {
        return -1;
    }
    sp->next_seq = (max_seq > cursor ? max_seq : cursor) + 1;
    sp->wm_seq = sp->next_seq;
    /* Records above the last one issued are invalid: the reader would skip them. */
    if (oldest_seq(sp, sp->next_seq - 1, &first, err) != 0) {
        return -1;
    }
    uint64_t ack = cursor;
    if (first > 0 && first - 1 > ack) {
        ack = first - 1; /* the cursor went back (power loss) or was lost */
    }
    sp->ack_seq = ack;
    sp->rd.ack_seq = sp->rd.returned = sp->rd.passed = ack;
    return 0;
}

struct spool *
spool_new(const struct spool_conf *c, struct ir_err *err)
{
    struct spool *sp = xcalloc(1, sizeof(*sp));
    sp->dir = xstrdup(c->dir);
    sp->dirfd = sp->lockfd = sp->curfd = -1;
    sp->rd.fd = -1;
    sp->rd.w.fd = -1;
    sp->rd.limit = UINT64_MAX;
    sp->cap_bytes = c->cap_bytes;
    uint64_t seg = c->segment_bytes;
    if (seg == 0) {
        seg = c->cap_bytes / 16;
        seg = seg < SEG_MIN_BYTES ? SEG_MIN_BYTES : seg > SEG_MAX_BYTES ? SEG_MAX_BYTES : seg;
    }
    sp->seg_bytes = seg;
    sp->max_age_ns = c->max_age_ms > 0 ? c->max_age_ms * 1000000 : 0;
    sp->sync_each = c->sync_ms == 0;
    sp->histo = c->sync_histo;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->cv, NULL);
    sp->ring = xcalloc(RING, sizeof(*sp->ring));
    sp->next_id = 1;
    if (spool_load(sp, err) != 0) {
        spool_free(sp);
        return NULL;
    }
    return sp;
}

void
spool_free(struct spool *sp)
{
    if (sp == NULL) {
        return;
    }
    struct reader *rd = &sp->rd;
    if (rd->fd >= 0) {
        close(rd->fd);
    }
    walk_cleanup(&rd->w);
    free(rd->out);
    while (sp->head != NULL) {
        struct seg *s = sp->head;
        sp->head = s->next;
        struct seg_act a;
        seg_act_init(&a);
        s->refs = 1;
        s->sealed = true;
        s->dirty = false;
        seg_unref_locked(s, &a); /* closes it; nobody else holds it any more */
        seg_act_run(&a);
        seg_destroy(s);
    }
    if (sp->spare != NULL) {
        char name[SEG_NAME_LEN];
        seg_name(sp->spare->id, name);
        unlinkat(sp->dirfd, name, 0);
        close(sp->spare->wfd);
        seg_destroy(sp->spare);
    }
    free(sp->ring);
    int fds[] = {sp->curfd, sp->lockfd, sp->dirfd};
    for (size_t i = 0; i < IR_ARRAY_LEN(fds); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->cv);
    free(sp->dir);
    free(sp);
}

/* ------------------------------------------------------------------ queries */

uint64_t
spool_record_max(const struct spool *sp)
{
    uint64_t room =
            sp->cap_bytes > CURSOR_BYTES + REC_HEAD ? sp->cap_bytes - CURSOR_BYTES - REC_HEAD : 0;
    room &= ~(uint64_t)(REC_ALIGN - 1);
    return room < SPOOL_RECORD_MAX_BYTES ? room : SPOOL_RECORD_MAX_BYTES;
}

bool
spool_is_expired(const struct spool *sp, int64_t arrival_ns)
{
    return sp->max_age_ns > 0 && arrival_ns < clock_real_ns() - sp->max_age_ns;
}

void
spool_stats(struct spool *sp, struct spool_stats *s)
{
    pthread_mutex_lock(&sp->mu);
    s->disk_bytes = sp->disk_bytes;
    s->records = sp->next_seq - 1 - sp->ack_seq;
    s->segments = sp->nsegs;
    pthread_mutex_unlock(&sp->mu);
    s->cap_bytes = sp->cap_bytes;
    s->appended = atomic_load_explicit(&sp->appended, memory_order_relaxed);
    s->acked = atomic_load_explicit(&sp->acked, memory_order_relaxed);
    s->expired = atomic_load_explicit(&sp->expired, memory_order_relaxed);
    s->corrupt = atomic_load_explicit(&sp->corrupt, memory_order_relaxed);
    s->full = atomic_load_explicit(&sp->full, memory_order_relaxed);
    for (unsigned i = 0; i < SPOOL_OP_COUNT; i++) {
        s->errors[i] = atomic_load_explicit(&sp->errors[i], memory_order_relaxed);
    }
}

void
spool_inject_fault(struct spool *sp, int (*fault)(void *ctx, enum spool_fault_at at, uint64_t seq),
                   void *ctx)
{
    sp->fault = fault;
    sp->fault_ctx = ctx;
}

const char *
spool_dir(const struct spool *sp)
{
    return sp->dir;
}

const char *
spool_op_name(enum spool_op op)
{
    switch (op) {
    case SPOOL_OP_OPEN:
        return "open";
    case SPOOL_OP_WRITE:
        return "write";
    case SPOOL_OP_SYNC:
        return "sync";
    case SPOOL_OP_READ:
        return "read";
    case SPOOL_OP_UNLINK:
        return "unlink";
    case SPOOL_OP_COUNT:
        break;
    }
    return "?";
}
