#include "http/inflate.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

struct inflate_gz {
    z_stream zs;
    bool member_ended; /* the last member's trailer was read; more input starts a new member */
    bool seen_input;
    enum inflate_status status; /* sticky once not INFLATE_OK */
    const char *error;          /* static message for INFLATE_CORRUPT */
};

struct inflate_gz *
inflate_new(void)
{
    struct inflate_gz *z = calloc(1, sizeof(*z));
    if (z == NULL) {
        return NULL;
    }
    /* 16 + MAX_WBITS: gzip wrapper only (no raw zlib streams, as Go's gzip reader). */
    if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

/* Maps a zlib data error onto the words Go's compress/gzip uses. */
static const char *
inflate_go_error(const char *zmsg)
{
    if (zmsg == NULL) {
        return "flate: corrupt input";
    }
    if (strstr(zmsg, "header") != NULL || strstr(zmsg, "compression method") != NULL) {
        return "gzip: invalid header";
    }
    if (strstr(zmsg, "data check") != NULL || strstr(zmsg, "length check") != NULL) {
        return "gzip: invalid checksum";
    }
    return "flate: corrupt input";
}

static enum inflate_status
inflate_fail(struct inflate_gz *z, enum inflate_status st, const char *msg)
{
    z->status = st;
    z->error = msg;
    return st;
}

/* One inflate() call into the body's free room, or into a scratch byte when the body is full (so a
 * stream whose output ends exactly at the bound still reads its trailer). */
static int
inflate_step(struct inflate_gz *z, struct dbuf *out, enum inflate_status *st)
{
    size_t room = 0;
    char *at = dbuf_room(out, &room);
    unsigned char scratch[1];
    if (out->status == DBUF_NOMEM) {
        *st = INFLATE_NOMEM;
        return Z_MEM_ERROR;
    }
    bool full = room == 0;
    z->zs.next_out = full ? scratch : (unsigned char *)at;
    z->zs.avail_out = full ? 1 : (room > UINT_MAX ? UINT_MAX : (unsigned)room);
    unsigned before = z->zs.avail_out;
    int rc = inflate(&z->zs, Z_NO_FLUSH);
    size_t produced = before - z->zs.avail_out;
    if (full && produced > 0) {
        *st = INFLATE_TOO_BIG;
        return Z_BUF_ERROR;
    }
    if (!full) {
        dbuf_commit(out, produced);
    }
    return rc;
}

enum inflate_status
inflate_feed(struct inflate_gz *z, const char *in, size_t len, struct dbuf *out)
{
    if (z->status != INFLATE_OK) {
        return z->status;
    }
    z->zs.next_in = (const unsigned char *)in;
    while (len > 0 || z->zs.avail_in > 0) {
        if (z->zs.avail_in == 0) {
            z->zs.avail_in = len > UINT_MAX ? UINT_MAX : (unsigned)len;
            len -= z->zs.avail_in;
        }
        z->seen_input = true;
        if (z->member_ended) {
            /* Another gzip member follows (concatenated streams are one body). */
            inflateReset(&z->zs);
            z->member_ended = false;
        }
        enum inflate_status st = INFLATE_OK;
        int rc = inflate_step(z, out, &st);
        if (st != INFLATE_OK) {
            return inflate_fail(z, st, NULL);
        }
        if (rc == Z_STREAM_END) {
            z->member_ended = true;
        } else if (rc == Z_MEM_ERROR) {
            return inflate_fail(z, INFLATE_NOMEM, NULL);
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return inflate_fail(z, INFLATE_CORRUPT, inflate_go_error(z->zs.msg));
        }
    }
    return INFLATE_OK;
}

enum inflate_status
inflate_finish(struct inflate_gz *z)
{
    if (z->status != INFLATE_OK) {
        return z->status;
    }
    if (!z->member_ended) {
        /* Truncated, or no byte at all: Go's reader says "unexpected EOF" / "EOF". */
        return inflate_fail(z, INFLATE_CORRUPT, z->seen_input ? "unexpected EOF" : "EOF");
    }
    return INFLATE_OK;
}

const char *
inflate_error(const struct inflate_gz *z)
{
    return z->error != NULL ? z->error : "";
}

void
inflate_free(struct inflate_gz *z)
{
    if (z == NULL) {
        return;
    }
    inflateEnd(&z->zs);
    free(z);
}
