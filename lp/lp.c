#include "lp/lp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp/fast.h"
#include "lp/scan.h"

/* Output policy: the output stays "a prefix of the input" (zero-copy) for as long as it can.
 * From the first line that needs a change (a stamp, a left-out line followed by a kept one, a
 * missing final '\n') the first pass only counts: the exact output size, and two bits per
 * checked line (kept, stamped) in one bitmap sized from the rest of the input. The second pass
 * allocates the output once, at its exact size (nothing held beyond what is forwarded, see
 * docs/queue-and-retry.md "Stamping"), copies the prefix and walks the rest of the lines again
 * (finding line ends is cheap next to checking points) copying what the bits say. */

static const int64_t prec_ns[] = {
        [LP_PREC_NS] = 1,
        [LP_PREC_US] = 1000,
        [LP_PREC_MS] = 1000000,
        [LP_PREC_S] = 1000000000,
        [LP_PREC_M] = 60LL * 1000000000,
        [LP_PREC_H] = 3600LL * 1000000000,
};

static const struct {
    const char *name;
    enum lp_prec prec;
} prec_names[] = {
        {"", LP_PREC_NS},  {"n", LP_PREC_NS},  {"ns", LP_PREC_NS},
        {"u", LP_PREC_US}, {"us", LP_PREC_US}, {"ms", LP_PREC_MS},
        {"s", LP_PREC_S},  {"m", LP_PREC_M},   {"h", LP_PREC_H},
};

int
lp_prec_parse(const char *s, size_t len, enum lp_prec *out)
{
    for (size_t i = 0; i < IR_ARRAY_LEN(prec_names); i++) {
        if (strlen(prec_names[i].name) == len && memcmp(prec_names[i].name, s, len) == 0) {
            *out = prec_names[i].prec;
            return 0;
        }
    }
    return -1;
}

const char *
lp_prec_name(enum lp_prec p)
{
    static const char *const names[] = {
            [LP_PREC_NS] = "n", [LP_PREC_US] = "u", [LP_PREC_MS] = "ms",
            [LP_PREC_S] = "s",  [LP_PREC_M] = "m",  [LP_PREC_H] = "h",
    };
    return names[p];
}

int64_t
lp_prec_from_ns(int64_t now_ns, enum lp_prec p)
{
    /* Floor, like Go's Time.Truncate for any time after year 1. */
    int64_t m = prec_ns[p];
    int64_t q = now_ns / m;
    return (now_ns % m != 0 && now_ns < 0) ? q - 1 : q;
}

/* A growable byte buffer; a failed allocation sets failed and makes later puts no-ops. */
struct grow {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
};

static bool
grow_reserve(struct grow *g, size_t more)
{
    if (g->failed) {
        return false;
    }
    if (g->cap - g->len >= more) {
        return true;
    }
    size_t cap = g->cap * 2 > g->len + more ? g->cap * 2 : g->len + more;
    char *p = realloc(g->p, cap);
    if (p == NULL) {
        g->failed = true;
        return false;
    }
    g->p = p;
    g->cap = cap;
    return true;
}

static void
grow_put(struct grow *g, const char *s, size_t n)
{
    if (grow_reserve(g, n)) {
        memcpy(g->p + g->len, s, n);
        g->len += n;
    }
}

/* State of one lp_process() call. */
struct proc {
    const char *in;
    size_t len;
    size_t ident;        /* while !copying: the output is in[0..ident) */
    bool copying;        /* a line needed a change: the output is counted, then copied */
    size_t copy_from;    /* once copying: where the first changed line starts in in */
    size_t out_len;      /* once copying: the exact output size */
    unsigned char *bits; /* once copying: two bits per checked line from copy_from on */
    size_t n_bits;       /* bit pairs written */
    size_t max_bits;     /* bit pairs bits holds */
    bool failed;         /* an allocation failed */
    struct grow err;     /* the error text */
    char stamp[24];      /* " <now in precision>", written for the first point without one */
    size_t stamp_len;    /* 0 until then */
    int64_t now_ns;
    enum lp_prec prec;
    int64_t mult;
    struct lp_scratch scratch;
    struct lp_result *r;
};

#define BIT_KEPT  1u
#define BIT_STAMP 2u

/* Switches to copying at the line starting at from: the bitmap gets room for every line left
 * (a checked line holds at least one byte besides its '\n'). */
static void
start_copy(struct proc *p, size_t from)
{
    p->copying = true;
    p->copy_from = from;
    p->out_len = p->ident;
    p->max_bits = (p->len - from) / 2 + 1;
    p->bits = calloc(p->max_bits / 4 + 1, 1);
    if (p->bits == NULL) {
        p->failed = true;
    }
}

/* Records the verdict of the next checked line (kept or not, stamped or not). */
static void
put_bits(struct proc *p, unsigned v)
{
    if (p->bits == NULL || p->n_bits >= p->max_bits) {
        p->failed = true; /* cannot happen: max_bits bounds the lines */
        return;
    }
    p->bits[p->n_bits / 4] |= (unsigned char)(v << (2 * (p->n_bits % 4)));
    p->n_bits++;
}

static unsigned
get_bits(const struct proc *p, size_t i)
{
    return (p->bits[i / 4] >> (2 * (i % 4))) & 3u;
}

/* Counts the valid line in[s..e); ln tells how the input ended it. */
static inline void
emit(struct proc *p, size_t s, size_t e, bool stamp, const struct lp_line *ln)
{
    bool verbatim = !stamp && e == ln->end && ln->next == e + 1;
    if (!p->copying && verbatim && s == p->ident) {
        p->ident = ln->next;
        return;
    }
    if (!p->copying) {
        start_copy(p, s);
    }
    if (stamp && p->stamp_len == 0) {
        int n = snprintf(p->stamp, sizeof(p->stamp), " %lld",
                         (long long)lp_prec_from_ns(p->now_ns, p->prec));
        p->stamp_len = (size_t)n;
    }
    p->out_len += e - s + (stamp ? p->stamp_len : 0) + 1;
    put_bits(p, BIT_KEPT | (stamp ? BIT_STAMP : 0));
}

/* Appends "unable to parse '<line>': <reason>" to the error text. */
static void
add_error(struct proc *p, size_t s, size_t e, const struct lp_point *pt)
{
    static const char pre[] = "unable to parse '";
    static const char mid[] = "': ";
    if (p->err.len >= LP_ERRORS_MAX) {
        p->r->errors_truncated = true;
        return;
    }
    size_t rlen = lp_reason_len(pt);
    if (!grow_reserve(&p->err, (e - s) + rlen + sizeof(pre) + sizeof(mid) + 1)) {
        return;
    }
    if (p->err.len > 0) {
        p->err.p[p->err.len++] = '\n';
    }
    grow_put(&p->err, pre, sizeof(pre) - 1);
    grow_put(&p->err, p->in + s, e - s);
    grow_put(&p->err, mid, sizeof(mid) - 1);
    p->err.len += lp_reason_write(pt, p->err.p + p->err.len);
    if (p->r->first_error_len == 0) {
        p->r->first_error_len = p->err.len;
    }
}

/* Where the point of line ln starts (leading ' ', '\t', NUL skipped) and ends (a '\n' the
 * line scanner took as escaped at the very end is dropped, as influxd does). False for a blank
 * line or a comment. Both passes decide with this, so they see the same lines. */
static bool
line_point(const char *in, const struct lp_line *ln, size_t *s, size_t *e)
{
    size_t i = ln->start;
    while (i < ln->end && (in[i] == ' ' || in[i] == '\t' || in[i] == '\0')) {
        i++;
    }
    if (i == ln->end || in[i] == '#') {
        return false;
    }
    *s = i;
    *e = in[ln->end - 1] == '\n' ? ln->end - 1 : ln->end;
    return true;
}

static void
process_line(struct proc *p, const struct lp_line *ln)
{
    size_t s = 0;
    size_t e = 0;
    if (!line_point(p->in, ln, &s, &e)) {
        return;
    }
    struct lp_point pt;
    lp_parse_point(p->in + s, e - s, p->mult, &p->scratch, &pt);
    if (pt.why == LP_WHY_OK && (ln->open_end || pt.open_tail)) {
        pt.why = LP_WHY_AMBIGUOUS_END;
    }
    if (pt.why == LP_WHY_NO_MEMORY) {
        p->failed = true;
    } else if (pt.why == LP_WHY_OK) {
        p->r->points++;
        p->r->stamped += !pt.has_ts;
        emit(p, ln->start, e, !pt.has_ts, ln);
    } else {
        p->r->dropped++;
        add_error(p, s, e, &pt);
        if (p->copying) {
            put_bits(p, 0);
        }
    }
}

/* Second pass: one allocation of the exact size, the unchanged prefix, then the lines from
 * copy_from as the bits recorded them. Returns the buffer, or NULL when it cannot be had. */
static char *
copy_out(struct proc *p)
{
    char *out = malloc(p->out_len > 0 ? p->out_len : 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, p->in, p->ident);
    size_t o = p->ident;
    size_t i = 0;
    for (size_t pos = p->copy_from; pos < p->len && i < p->n_bits;) {
        struct lp_line ln;
        lp_scan_line(p->in, p->len, pos, &ln);
        pos = ln.next;
        size_t s = 0;
        size_t e = 0;
        if (ln.end <= ln.start || !line_point(p->in, &ln, &s, &e)) {
            continue;
        }
        unsigned v = get_bits(p, i++);
        if ((v & BIT_KEPT) == 0) {
            continue;
        }
        memcpy(out + o, p->in + ln.start, e - ln.start);
        o += e - ln.start;
        if ((v & BIT_STAMP) != 0) {
            memcpy(out + o, p->stamp, p->stamp_len);
            o += p->stamp_len;
        }
        out[o++] = '\n';
    }
    return out;
}

static int
finish(struct proc *p)
{
    struct lp_result *r = p->r;
    lp_scratch_cleanup(&p->scratch);
    char *out = NULL;
    bool failed = p->failed || p->err.failed || (r->dropped > 0 && !grow_reserve(&p->err, 1));
    if (!failed && p->copying) {
        out = copy_out(p);
        failed = out == NULL;
    }
    free(p->bits);
    if (failed) {
        free(out);
        free(p->err.p);
        memset(r, 0, sizeof(*r));
        return -1;
    }
    if (r->dropped > 0) {
        p->err.p[p->err.len] = '\0';
        r->errors = p->err.p;
        r->errors_len = p->err.len;
    }
    if (p->copying) {
        r->buf = out;
        r->data = r->buf;
        r->len = p->out_len;
    } else {
        r->data = p->in;
        r->len = p->ident;
    }
    return 0;
}

int
lp_process(const char *in, size_t len, enum lp_prec prec, int64_t now_ns, struct lp_result *r)
{
    return lp_process_mode(in, len, prec, now_ns, LP_FAST_BEST, r);
}

int
lp_process_mode(const char *in, size_t len, enum lp_prec prec, int64_t now_ns,
                enum lp_fast_mode mode, struct lp_result *r)
{
    memset(r, 0, sizeof(*r));
    struct proc p = {
            .in = in, .len = len, .mult = prec_ns[prec], .now_ns = now_ns, .prec = prec, .r = r};
    struct lp_fast fast;
    lp_fast_init(&fast, in, len, p.mult);
    fast.avx2 = fast.avx2 && mode == LP_FAST_BEST;
    size_t pos = 0;
    while (pos < len) {
        if (mode != LP_FAST_NONE && !p.copying && pos == p.ident) {
            /* Lines that go out as they came: the output only grows. */
            size_t n = 0;
            pos = lp_fast_run(&fast, pos, &n);
            p.ident = pos;
            r->points += n;
            if (pos >= len) {
                break;
            }
        }
        struct lp_line ln;
        bool has_ts = false;
        if (mode != LP_FAST_NONE && lp_fast_line(&fast, pos, &ln, &has_ts)) {
            r->points++;
            r->stamped += !has_ts;
            emit(&p, ln.start, ln.end, !has_ts, &ln);
            pos = ln.next;
            continue;
        }
        lp_scan_line(in, len, pos, &ln);
        if (ln.end > ln.start) {
            process_line(&p, &ln);
        }
        pos = ln.next;
        lp_fast_seek(&fast, pos);
    }
    return finish(&p);
}

void
lp_result_cleanup(struct lp_result *r)
{
    free(r->buf);
    free(r->errors);
    memset(r, 0, sizeof(*r));
}

size_t
lp_split(const char *buf, size_t len, size_t max, size_t *line_len)
{
    if (line_len != NULL) {
        *line_len = 0;
    }
    if (len <= max) {
        return len;
    }
    size_t pos = 0;
    while (pos < len) {
        struct lp_line ln;
        lp_scan_line(buf, len, pos, &ln);
        if (ln.next > max) {
            if (pos == 0 && line_len != NULL) {
                *line_len = ln.next;
            }
            break;
        }
        pos = ln.next;
    }
    return pos;
}

size_t
lp_count_lines(const char *buf, size_t len)
{
    size_t n = 0;
    for (size_t pos = 0; pos < len; n++) {
        struct lp_line ln;
        lp_scan_line(buf, len, pos, &ln);
        pos = ln.next;
    }
    return n;
}
