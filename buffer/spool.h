/* The spool of one backend: client writes kept on disk until delivered, as an append-only log of
 * records in segment files under one directory, plus a persisted read cursor. Any thread appends
 * (the HTTP connection threads); ONE reader thread (the backend's sender) reads the oldest
 * records in byte-bounded batches and acknowledges them; the owner (main thread) creates and
 * frees it. It owns its directory's files, descriptors and lock. Never logs: it returns codes
 * and counts; the caller decides and logs. Format, recovery and locking: the DESIGN of spool.c. */
#ifndef IR_BUFFER_SPOOL_H
#define IR_BUFFER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/err.h"
#include "util/histo.h"

/* The largest record data spool_append() takes (a larger one gets SPOOL_FULL). */
#define SPOOL_RECORD_MAX_BYTES (1024ULL * 1024 * 1024)
/* At most this many parts per record. */
#define SPOOL_PARTS_MAX 14
/* At most this many appends in flight: an appender waits while the oldest append not yet
 * completed is this many sequence numbers behind the next one. */
#define SPOOL_IN_FLIGHT_MAX 4096

struct spool;

/* Settings, converted from the config by the caller; copied by spool_new(). */
struct spool_conf {
    const char *dir;          /* borrowed: spool-dir/RELAY/BACKEND; missing components are created
                               * (mode 0750); files are created 0640 */
    uint64_t cap_bytes;       /* spool-size-mb: bound on the bytes on disk (segments + index) */
    int64_t max_age_ms;       /* spool-max-age: records older than this are skipped; 0 = no limit */
    int64_t sync_ms;          /* spool-sync: 0 = spool_append() returns only once its record is
                               * fdatasync'ed (group commit); > 0 = the owner calls spool_sync() about
                               * every sync_ms */
    uint64_t segment_bytes;   /* segment size; 0 = cap_bytes / 16 within [64 KiB, 8 MiB] */
    struct histo *sync_histo; /* borrowed, may be NULL: the duration of every sync round */
};

enum spool_status {
    SPOOL_OK = 0,
    SPOOL_FULL,  /* the record does not fit under cap_bytes (or exceeds SPOOL_RECORD_MAX_BYTES):
                  * nothing was written; counted as full */
    SPOOL_ERROR, /* an I/O error (ENOSPC, EIO, EFBIG, EMFILE...): see struct spool_put */
    SPOOL_AGAIN, /* spool_reserve() only: it would have to wait or create a segment file: call
                  * spool_prepare() (without the caller's locks), then reserve again */
};

/* The operations whose failures are counted (the metric's op label: spool_op_name()). */
enum spool_op {
    SPOOL_OP_OPEN,   /* creating or opening a file (a new segment included) */
    SPOOL_OP_WRITE,  /* writing a record or the cursor */
    SPOOL_OP_SYNC,   /* fdatasync */
    SPOOL_OP_READ,   /* reading a segment */
    SPOOL_OP_UNLINK, /* deleting a consumed segment */
    SPOOL_OP_COUNT
};

/* What spool_append() reports. */
struct spool_put {
    uint64_t seq;     /* SPOOL_OK: the record's sequence number (> 0, increasing) */
    enum spool_op op; /* SPOOL_ERROR: the operation that failed */
    int errnum;       /* SPOOL_ERROR: its errno (format with ir_strerror()) */
};

/* One record handed to the reader; data points into the batch's buffer. */
struct spool_rec {
    uint64_t seq;
    int64_t arrival_ns; /* as given to spool_append() */
    const char *data;   /* borrowed from the batch: valid until its next spool_read()/cleanup */
    size_t len;
};

/* Caller storage for the reader (plain data, reader thread only): spool_read() replaces its
 * content. Owns recs and buf; spool_batch_cleanup() frees them. */
struct spool_batch {
    struct spool_rec *recs; /* owned: n records, oldest first */
    size_t n;
    size_t recs_cap;
    char *buf; /* owned: the records' data */
    size_t buf_cap;
    uint64_t data_bytes; /* sum of recs[i].len */
};

/* A snapshot for /metrics and /health. Counters count since spool_new(). */
struct spool_stats {
    uint64_t disk_bytes; /* segment bytes (acknowledged ones not yet deleted included) + index */
    uint64_t records;    /* sequence numbers issued and not yet acknowledged (a failed append
                          * counts until the reader passes it) */
    uint64_t cap_bytes;
    uint64_t segments; /* segment files */
    uint64_t appended; /* records written by spool_append() */
    uint64_t acked;    /* records returned by spool_read() and acknowledged */
    uint64_t expired;  /* records skipped for spool-max-age */
    uint64_t corrupt;  /* damaged regions cut off or skipped (each counts as one lost write) */
    uint64_t full;     /* appends refused with SPOOL_FULL */
    uint64_t errors[SPOOL_OP_COUNT];
};

/* Where a record lies, as spool_reserve() placed it: what spool_void() needs. Plain data. */
struct spool_loc {
    uint64_t seq;  /* the record's sequence number */
    uint64_t seg;  /* its segment's id */
    uint64_t off;  /* its offset in the segment */
    uint64_t size; /* its size on disk (header, data, padding) */
};

/* One append in two steps (caller storage): spool_reserve() fills it, spool_commit() uses it
 * up. loc is the caller's to read; the rest is private to buffer/spool.c. */
struct spool_resv {
    struct spool_loc loc;
    uint64_t len;       /* data bytes reserved */
    uint64_t priv_[10]; /* private */
};

/* Main thread. Creates the directory as needed, takes its lock (flock on DIR/lock: a second
 * spool on the same directory, in this process or another, fails with a message naming the
 * directory), and recovers what a previous run left: a torn or corrupt tail of the newest segment
 * is cut off and counted; damage elsewhere is skipped (and counted) by the reader. Returns owned
 * (free with spool_free()), or NULL with err filled when the directory is unusable or locked;
 * damaged content never makes it fail. */
struct spool *spool_new(const struct spool_conf *c, struct ir_err *err) IR_WARN_UNUSED;
/* Main thread, once no other thread uses sp: closes every file and releases the lock. It does
 * not sync: call spool_sync() first for durability against power loss. NULL is a no-op. */
void spool_free(struct spool *sp);

/* Any thread. Appends one record, the concatenation of parts[0..nparts) (nparts <=
 * SPOOL_PARTS_MAX; borrowed for the call, written with one pwritev(2), never copied), with its
 * arrival wall time (ns since the epoch, for spool-max-age). SPOOL_OK: the record is written
 * (with sync_ms == 0, also fdatasync'ed) and put->seq is its sequence number; sequence order =
 * file order = read order. Records become readable in sequence order: once every append that
 * got a smaller sequence number has returned. With sync_ms == 0 it waits for a sync round that
 * covers its record; concurrent appenders share one fdatasync (group commit). */
enum spool_status spool_append(struct spool *sp, const struct iovec *parts, size_t nparts,
                               int64_t arrival_ns, struct spool_put *put) IR_WARN_UNUSED;

/* Any thread: step 1 of an append (spool_append() is reserve + commit), for a caller that must
 * order something of its own with the sequence number (it holds its own lock around this
 * call). Never does I/O and never waits. SPOOL_OK: r->loc holds the record's sequence number
 * and place; spool_commit() MUST follow (records become readable in sequence order, so one
 * reservation never committed holds every later one back). SPOOL_FULL: nothing reserved
 * (counted). SPOOL_AGAIN: nothing reserved; call spool_prepare(), then try again.
 * SPOOL_ERROR: a segment file could not be created (put->op, put->errnum, counted); a sequence
 * number was used up as a failed append (r->loc.seq, put->seq; nothing to commit): the reader
 * passes it, so the caller may keep the write elsewhere in that place of the order. */
enum spool_status spool_reserve(struct spool *sp, size_t len, struct spool_resv *r,
                                struct spool_put *put) IR_WARN_UNUSED;
/* Any thread, no lock of the caller held: waits for what made spool_reserve() answer
 * SPOOL_AGAIN (room for another append in flight, or the next segment file, which it may
 * create: I/O). */
void spool_prepare(struct spool *sp);
/* Any thread: steps 2 and 3 of a reservation: writes the record (parts as for
 * spool_append(), their total length exactly r->len) and makes it readable in its turn; with
 * sync_ms == 0 waits for its fdatasync. SPOOL_OK (put->seq = r->loc.seq) or SPOOL_ERROR (the
 * range becomes a hole the reader passes: nothing of the record is ever returned). */
enum spool_status spool_commit(struct spool *sp, struct spool_resv *r, const struct iovec *parts,
                               size_t nparts, int64_t arrival_ns,
                               struct spool_put *put) IR_WARN_UNUSED;
/* Any thread. Marks the record at loc (committed with SPOOL_OK, not yet acknowledged) void: the
 * reader skips it, also after a restart (a void header over its header; with sync_ms == 0 made
 * durable before it returns). A record already deleted is left alone. The reader re-reads what
 * it had cached, so a record voided before the reader returned it is never returned. 0, or -1
 * with err filled (counted). */
int spool_void(struct spool *sp, const struct spool_loc *loc, struct ir_err *err) IR_WARN_UNUSED;
/* Any thread: the sequence number the next reservation gets. */
uint64_t spool_next_seq(struct spool *sp);

/* Any thread (meant for a timer: call it every sync_ms when sync_ms > 0, and before
 * spool_free(); with sync_ms == 0 it still flushes the cursor). fdatasyncs every segment
 * written since the last sync (and the directory once a segment file was created) and the
 * cursor file. Returns 0, or -1 with err filled (counted). A failed fdatasync of the segments
 * is reported once (a later call with nothing written since returns 0: retrying it is pointless,
 * Linux may have dropped the pages); the cursor's is retried by the next call. */
int spool_sync(struct spool *sp, struct ir_err *err) IR_WARN_UNUSED;

/* Any thread: empty batch storage, nothing allocated yet. */
void spool_batch_init(struct spool_batch *b);
/* Frees b's buffers (b is empty afterwards). */
void spool_batch_cleanup(struct spool_batch *b);

/* Reader thread only. Replaces b's content with the oldest records not yet returned, in
 * sequence order, while the sum of their data stays <= max_bytes (the first record always
 * comes, whatever its size) and there are at most 8192 of them, skipping records older than
 * spool-max-age (counted expired) and damaged regions (counted corrupt). b->n == 0: nothing to
 * read now. b's memory stays about max_bytes (or one record). Returns 0, or -1 with err filled
 * (a read error, counted; or a record too large for memory): the position is kept, so a later
 * call retries. */
int spool_read(struct spool *sp, size_t max_bytes, struct spool_batch *b,
               struct ir_err *err) IR_WARN_UNUSED;
/* Reader thread only: spool_read() that neither returns nor passes a record (or void) whose
 * sequence number is above max_seq: the reader stops before it. */
int spool_read_upto(struct spool *sp, size_t max_bytes, uint64_t max_seq, struct spool_batch *b,
                    struct ir_err *err) IR_WARN_UNUSED;
/* Reader thread only: every sequence number up to the result was returned, passed (void,
 * damaged, expired, failed append) or acknowledged. */
uint64_t spool_pos(struct spool *sp);

/* Reader thread only. Acknowledges every record up to and including seq: those spool_read()
 * returned, and those above spool_pos() that the caller delivered by other means (from its own
 * copies: the reader passes them without returning them). They are never returned again, also
 * after a restart, once the cursor is written (here, with pwrite(2); spool_sync() makes it
 * durable). Deletes segments whose records are all acknowledged, expired, void or damaged
 * (ahead of the reader too). Returns 0, or -1 with err filled when the cursor could not be
 * written (the acknowledgement still holds in memory; after a restart those records may be
 * returned again). */
int spool_ack(struct spool *sp, uint64_t seq, struct ir_err *err) IR_WARN_UNUSED;

/* Any thread: the most data bytes one record can have here (an empty spool takes it; a larger
 * one is always SPOOL_FULL). */
uint64_t spool_record_max(const struct spool *sp);

/* Any thread: true when a record that arrived at arrival_ns is older than spool-max-age now
 * (for a batch the caller holds while retrying). */
bool spool_is_expired(const struct spool *sp, int64_t arrival_ns);

/* Any thread: a consistent snapshot. */
void spool_stats(struct spool *sp, struct spool_stats *s);
/* Any thread: the directory (for log lines). */
const char *spool_dir(const struct spool *sp);
/* "open", "write", "sync", "read", "unlink". */
const char *spool_op_name(enum spool_op op);

/* Tests only: where spool_inject_fault()'s hook runs. */
enum spool_fault_at {
    SPOOL_FAULT_WRITE,     /* an appender, before it writes record seq (unlocked: may block) */
    SPOOL_FAULT_VOID,      /* an appender, before it writes the void header of its failed record
                            * seq (unlocked: may block) */
    SPOOL_FAULT_SYNC,      /* a thread syncing, before each fdatasync of a segment or of the
                            * cursor (seq 0) */
    SPOOL_FAULT_RING_WAIT, /* an appender about to wait for a free slot (seq = the next one), under
                            * the spool's lock: the hook must neither block nor call the spool */
};
/* Tests only, main thread, before any other thread uses sp: fault(ctx, at, seq) runs at each
 * point above; a non-zero result (an errno) makes that write or fdatasync fail with it, without
 * touching the file (the result is ignored at SPOOL_FAULT_RING_WAIT). */
void spool_inject_fault(struct spool *sp,
                        int (*fault)(void *ctx, enum spool_fault_at at, uint64_t seq), void *ctx);

#endif
