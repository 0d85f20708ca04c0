#include "lp/lp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lp/scan.h"

/* Output policy: the output stays "a prefix of the input" (zero-copy) for as long as it can;
 * the first line that needs a change (a stamp, a left-out line followed by a kept one, a
 * missing final '\n') switches to one buffer sized from the rest of the input, grown by
 * doubling when stamps outgrow the estimate. */

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
    size_t ident;    /* while !copying: the output is in[0..ident) */
    bool copying;    /* the output lives in out */
    struct grow out; /* the output once copying */
    struct grow err; /* the error text */
    char stamp[24];  /* " <now in precision>" */
    size_t stamp_len;
    int64_t mult;
    struct lp_scratch scratch;
    struct lp_result *r;
};

/* Switches to copying: one buffer for the output so far plus an estimate for the rest. */
static void
start_copy(struct proc *p, size_t from)
{
    size_t rest = p->len - from;
    size_t cap = p->ident + rest + (rest / 32 + 2) * (p->stamp_len + 1);
    p->copying = true;
    if (grow_reserve(&p->out, cap)) {
        grow_put(&p->out, p->in, p->ident);
    }
}

/* Emits the valid line in[s..e); ln tells how the input ended it. */
static void
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
    if (grow_reserve(&p->out, e - s + p->stamp_len + 1)) {
        memcpy(p->out.p + p->out.len, p->in + s, e - s);
        p->out.len += e - s;
        if (stamp) {
            memcpy(p->out.p + p->out.len, p->stamp, p->stamp_len);
            p->out.len += p->stamp_len;
        }
        p->out.p[p->out.len++] = '\n';
    }
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

static void
process_line(struct proc *p, const struct lp_line *ln)
{
    const char *in = p->in;
    size_t s = ln->start;
    while (s < ln->end && (in[s] == ' ' || in[s] == '\t' || in[s] == '\0')) {
        s++;
    }
    if (s == ln->end || in[s] == '#') {
        return; /* blank line or comment */
    }
    /* A '\n' the line scanner took as escaped at the very end is dropped, as influxd does. */
    size_t e = in[ln->end - 1] == '\n' ? ln->end - 1 : ln->end;
    struct lp_point pt;
    lp_parse_point(in + s, e - s, p->mult, &p->scratch, &pt);
    if (pt.why == LP_WHY_OK && (ln->open_end || pt.open_tail)) {
        pt.why = LP_WHY_AMBIGUOUS_END;
    }
    if (pt.why == LP_WHY_NO_MEMORY) {
        p->err.failed = true;
    } else if (pt.why == LP_WHY_OK) {
        p->r->points++;
        p->r->stamped += !pt.has_ts;
        emit(p, ln->start, e, !pt.has_ts, ln);
    } else {
        p->r->dropped++;
        add_error(p, s, e, &pt);
    }
}

static int
finish(struct proc *p)
{
    struct lp_result *r = p->r;
    lp_scratch_cleanup(&p->scratch);
    if (p->out.failed || p->err.failed || (p->r->dropped > 0 && !grow_reserve(&p->err, 1))) {
        free(p->out.p);
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
        r->buf = p->out.p;
        r->data = r->buf;
        r->len = p->out.len;
    } else {
        r->data = p->in;
        r->len = p->ident;
    }
    return 0;
}

int
lp_process(const char *in, size_t len, enum lp_prec prec, int64_t now_ns, struct lp_result *r)
{
    memset(r, 0, sizeof(*r));
    struct proc p = {.in = in, .len = len, .mult = prec_ns[prec], .r = r};
    int n = snprintf(p.stamp, sizeof(p.stamp), " %lld", (long long)lp_prec_from_ns(now_ns, prec));
    p.stamp_len = (size_t)n;
    size_t pos = 0;
    while (pos < len) {
        struct lp_line ln;
        lp_scan_line(in, len, pos, &ln);
        if (ln.end > ln.start) {
            process_line(&p, &ln);
        }
        pos = ln.next;
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
