/* influxdb-relay-convert FILE.toml > FILE.ini: converts a Go influxdb-relay configuration to
 * the INI of influxdb-relay.conf(5) (influxdb-relay-convert(1)). Keeps relay and output order,
 * names, keys and values; writes the Go relay's meaning where its value differs from ours
 * (defaults it substitutes, its "us" precision) with a warning. Invalid or missing names
 * become unique valid ones, with a warning. Anything else it cannot convert is an error:
 * FILE:LINE: message on stderr, nothing on stdout, exit 1. libc only. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/value.h"
#include "tools/toml.h"
#include "util/hostport.h"

#define MAX_FILE_BYTES ((size_t)16 * 1024 * 1024)
#define INI_MAX_LINE   197 /* what influxdb-relay reads; see influxdb-relay.conf(5) */

/* The ranges of influxdb-relay.conf(5), for clamping. */
/* The ranges of influxdb-relay.conf(5): durations up to the largest Go duration (in ms),
 * sizes up to what fits in int64 bytes. */
#define DURATION_MAX_MS 9223372036854LL
#define BUFFER_MAX_MB   (INT64_MAX / (1024LL * 1024LL))
#define BATCH_MAX_KB    (INT64_MAX / 4 / 1024LL)
#define READ_BUFFER_MAX INT64_MAX
#define MTU_MIN         64
#define MTU_MAX         INT64_MAX

struct item {
    const struct toml_value *t; /* borrowed from the TOML tree */
    int line;
    char *go_name;  /* the name the Go relay uses, owned */
    char *ini_name; /* owned */
};

struct relay {
    struct item it;
    bool http;
    struct item *outs;
    size_t n_outs;
};

struct ctx {
    const char *path;
    int errors;
    FILE *out; /* the INI text, written to stdout only when there is no error */
    struct relay *relays;
    size_t n_relays;
    struct msg *msgs;
    size_t n_msgs;
};

/* Errors and warnings are collected and printed by line at the end. */
struct msg {
    int line;
    char text[640];
};

static void add_msg(struct ctx *c, int line, const char *prefix, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

static void
add_msg(struct ctx *c, int line, const char *prefix, const char *fmt, va_list ap)
{
    c->msgs = realloc(c->msgs, (c->n_msgs + 1) * sizeof(*c->msgs));
    if (c->msgs == NULL) {
        abort();
    }
    struct msg *m = &c->msgs[c->n_msgs++];
    m->line = line;
    size_t n = (size_t)snprintf(m->text, sizeof(m->text), "%s", prefix);
    vsnprintf(m->text + n, sizeof(m->text) - n, fmt, ap);
}

static void report(struct ctx *c, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void warn(struct ctx *c, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
report(struct ctx *c, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_msg(c, line, "", fmt, ap);
    va_end(ap);
    c->errors++;
}

static void
warn(struct ctx *c, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_msg(c, line, "warning: ", fmt, ap);
    va_end(ap);
}

static void
print_msgs(struct ctx *c)
{
    /* Insertion sort: stable, so problems on one line keep the order they were found in. */
    for (size_t i = 1; i < c->n_msgs; i++) {
        struct msg m = c->msgs[i];
        size_t j = i;
        while (j > 0 && c->msgs[j - 1].line > m.line) {
            c->msgs[j] = c->msgs[j - 1];
            j--;
        }
        c->msgs[j] = m;
    }
    for (size_t i = 0; i < c->n_msgs; i++) {
        fprintf(stderr, "%s:%d: %s\n", c->path, c->msgs[i].line, c->msgs[i].text);
    }
}

/* s for a message: control characters, quotes and backslashes escaped, about 80 bytes. */
static const char *
shown(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    for (const char *p = s; *p != '\0' && n + 5 < len && n < 80; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            n += (size_t)snprintf(buf + n, len - n, "\\x%02x", ch);
        } else {
            buf[n++] = (char)ch;
        }
    }
    buf[n] = '\0';
    return buf;
}

/* strerror_r (XSI) into a static-free buffer of the caller. */
static const char *
err_text(int e, char *buf, size_t len)
{
    if (strerror_r(e, buf, len) != 0) {
        snprintf(buf, len, "error %d", e);
    }
    return buf;
}

static char *
dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d == NULL) {
        abort();
    }
    return memcpy(d, s, n);
}

/* ---- keys ---------------------------------------------------------------------------- */

struct spec {
    const char *key;
    enum toml_type type;
};

static const struct spec spec_http[] = {{"name", TOML_STRING},
                                        {"bind-addr", TOML_STRING},
                                        {"ssl-combined-pem", TOML_STRING},
                                        {"default-retention-policy", TOML_STRING},
                                        {"output", TOML_ARRAY},
                                        {NULL, TOML_STRING}};
static const struct spec spec_udp[] = {{"name", TOML_STRING},     {"bind-addr", TOML_STRING},
                                       {"read-buffer", TOML_INT}, {"precision", TOML_STRING},
                                       {"output", TOML_ARRAY},    {NULL, TOML_STRING}};
static const struct spec spec_http_out[] = {{"name", TOML_STRING},
                                            {"location", TOML_STRING},
                                            {"timeout", TOML_STRING},
                                            {"buffer-size-mb", TOML_INT},
                                            {"max-batch-kb", TOML_INT},
                                            {"max-delay-interval", TOML_STRING},
                                            {"skip-tls-verification", TOML_BOOL},
                                            {NULL, TOML_STRING}};
static const struct spec spec_udp_out[] = {
        {"name", TOML_STRING}, {"location", TOML_STRING}, {"mtu", TOML_INT}, {NULL, TOML_STRING}};

/* The value of key in t, matched without case as the Go TOML decoder does; NULL if absent. */
static const struct toml_kv *
get_kv(const struct toml_value *t, const char *key)
{
    for (size_t i = 0; i < t->n_kvs; i++) {
        if (strcasecmp(t->kvs[i].key, key) == 0) {
            return &t->kvs[i];
        }
    }
    return NULL;
}

static const struct toml_value *
get(const struct toml_value *t, const char *key)
{
    const struct toml_kv *kv = get_kv(t, key);
    return kv ? &kv->v : NULL;
}

/* The string value of key, or "" when absent or not a string (the Go zero value; a wrong type
 * is reported by check_keys()). */
static const char *
get_str(const struct toml_value *t, const char *key)
{
    const struct toml_value *v = get(t, key);
    return v != NULL && v->type == TOML_STRING ? v->str : "";
}

/* Unknown keys, keys given twice (in any case) and wrong types are errors. */
static void
check_keys(struct ctx *c, const struct toml_value *t, const struct spec *spec, const char *what)
{
    for (size_t i = 0; i < t->n_kvs; i++) {
        const struct toml_kv *kv = &t->kvs[i];
        const struct spec *s = spec;
        char sb[128];
        while (s->key != NULL && strcasecmp(s->key, kv->key) != 0) {
            s++;
        }
        if (s->key == NULL) {
            report(c, kv->line, "unknown key \"%s\" in %s", shown(kv->key, sb, sizeof(sb)), what);
        } else if (get_kv(t, kv->key) != kv) {
            report(c, kv->line, "duplicate key \"%s\" in %s", shown(kv->key, sb, sizeof(sb)), what);
        } else if (kv->v.type != s->type) {
            report(c, kv->line, "%s %s: want %s %s, got %s", what, s->key,
                   s->type == TOML_INT ? "an" : "a", toml_type_name(s->type),
                   toml_type_name(kv->v.type));
        }
    }
}

/* ---- collecting relays and outputs ---------------------------------------------------- */

static void
collect_outputs(struct ctx *c, struct relay *r)
{
    const struct toml_value *o = get(r->it.t, "output");
    if (o != NULL && o->type != TOML_ARRAY) {
        return; /* reported by check_keys() */
    }
    if (o == NULL || o->n_items == 0) {
        report(c, r->it.line,
               "[[%s]] relay has no output (influxdb-relay needs at least one; the Go relay "
               "would accept writes and store them nowhere)",
               r->http ? "http" : "udp");
        return;
    }
    r->outs = calloc(o->n_items, sizeof(*r->outs));
    if (r->outs == NULL) {
        abort();
    }
    for (size_t i = 0; i < o->n_items; i++) {
        const struct toml_value *t = &o->items[i];
        if (t->type != TOML_TABLE) {
            report(c, t->line, "%s output: want a table, got %s", r->http ? "[[http]]" : "[[udp]]",
                   toml_type_name(t->type));
            continue;
        }
        check_keys(c, t, r->http ? spec_http_out : spec_udp_out,
                   r->http ? "[[http.output]]" : "[[udp.output]]");
        struct item *it = &r->outs[r->n_outs++];
        it->t = t;
        it->line = t->line;
    }
}

static void
collect_relays(struct ctx *c, const struct toml_value *root)
{
    for (size_t i = 0; i < root->n_kvs; i++) {
        const struct toml_kv *kv = &root->kvs[i];
        bool http = strcasecmp(kv->key, "http") == 0;
        if (!http && strcasecmp(kv->key, "udp") != 0) {
            char sb[128];
            report(c, kv->line, "unknown key \"%s\" (want [[http]] or [[udp]])",
                   shown(kv->key, sb, sizeof(sb)));
            continue;
        }
        if (kv->v.type != TOML_ARRAY) {
            report(c, kv->line, "%s: want an array of tables ([[%s]]), got %s", kv->key, kv->key,
                   toml_type_name(kv->v.type));
            continue;
        }
        for (size_t j = 0; j < kv->v.n_items; j++) {
            const struct toml_value *t = &kv->v.items[j];
            if (t->type != TOML_TABLE) {
                report(c, t->line, "%s: want a table, got %s", kv->key, toml_type_name(t->type));
                continue;
            }
            check_keys(c, t, http ? spec_http : spec_udp, http ? "[[http]]" : "[[udp]]");
            c->relays = realloc(c->relays, (c->n_relays + 1) * sizeof(*c->relays));
            if (c->relays == NULL) {
                abort();
            }
            struct relay *r = memset(&c->relays[c->n_relays++], 0, sizeof(*c->relays));
            r->it.t = t;
            r->it.line = t->line;
            r->http = http;
        }
    }
}

static int
by_line(const void *a, const void *b)
{
    const struct relay *x = a;
    const struct relay *y = b;
    return (x->it.line > y->it.line) - (x->it.line < y->it.line);
}

/* ---- names ---------------------------------------------------------------------------- */

/* The Go relay's names: a relay without one is "http://ADDR" ("https://" with a PEM) or, for
 * UDP, "ADDR"; an output without one is its location. It refuses two relays of one name. */
static void
go_names(struct ctx *c)
{
    for (size_t i = 0; i < c->n_relays; i++) {
        struct relay *r = &c->relays[i];
        const char *name = get_str(r->it.t, "name");
        const char *addr = get_str(r->it.t, "bind-addr");
        char buf[1024];
        if (name[0] == '\0' && r->http) {
            const char *scheme = get_str(r->it.t, "ssl-combined-pem")[0] ? "https" : "http";
            snprintf(buf, sizeof(buf), "%s://%s", scheme, addr);
            name = buf;
        } else if (name[0] == '\0') {
            name = addr;
        }
        r->it.go_name = dup_str(name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->relays[j].it.go_name, name) == 0) {
                report(c, r->it.line,
                       "duplicate relay name \"%s\" (first at line %d; the Go relay refuses it "
                       "too)",
                       name, c->relays[j].it.line);
            }
        }
        for (size_t j = 0; j < r->n_outs; j++) {
            const char *o = get_str(r->outs[j].t, "name");
            r->outs[j].go_name = dup_str(o[0] ? o : get_str(r->outs[j].t, "location"));
        }
    }
}

/* One entry of a set of names made unique together (the relays, or one relay's outputs). */
struct item_ref {
    struct item *it;
};

static bool
name_taken(const struct item_ref *items, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i].it->ini_name != NULL && strcmp(items[i].it->ini_name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* go -> [A-Za-z0-9_-]+: other characters become '_', runs of '_' collapse, ends trimmed;
 * short enough to take a "-N" suffix. */
static void
sanitize(const char *go, const char *fallback, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = go; *p != '\0' && n + 1 < len && n < VALUE_NAME_MAX - 8; p++) {
        char ch = *p;
        if (!value_name_is_valid(&ch, 1)) {
            ch = '_';
        }
        if (ch == '_' && (n == 0 || out[n - 1] == '_')) {
            continue;
        }
        out[n++] = ch;
    }
    while (n > 0 && out[n - 1] == '_') {
        n--;
    }
    out[n] = '\0';
    if (n == 0) {
        snprintf(out, len, "%s", fallback);
    }
}

/* Gives every item a unique valid INI name. Valid names are claimed first and kept, so no
 * valid name is ever renamed, except a later duplicate (which INI cannot hold). */
static void
ini_names(struct ctx *c, const struct item_ref *items, size_t n, const char *what)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            struct item *it = items[i].it;
            bool valid = value_name_is_valid(it->go_name, strlen(it->go_name));
            if (it->ini_name != NULL || (pass == 0 && !valid)) {
                continue;
            }
            char base[VALUE_NAME_MAX + 1];
            char name[VALUE_NAME_MAX + 16];
            sanitize(it->go_name, what, base, sizeof(base));
            snprintf(name, sizeof(name), "%s", base);
            for (int k = 2; name_taken(items, n, name); k++) {
                snprintf(name, sizeof(name), "%.*s-%d", VALUE_NAME_MAX - 8, base, k);
            }
            if (strcmp(name, it->go_name) != 0) {
                char sb[128];
                warn(c, it->line, "%s name \"%s\" %s: written as \"%s\"", what,
                     shown(it->go_name, sb, sizeof(sb)),
                     valid ? "is used twice" : "is not a valid INI name", name);
            }
            it->ini_name = dup_str(name);
        }
    }
}

/* Names of every relay, then of each relay's outputs. */
static void
all_ini_names(struct ctx *c)
{
    struct item_ref *v = calloc(c->n_relays + 1, sizeof(*v));
    if (v == NULL) {
        abort();
    }
    for (size_t i = 0; i < c->n_relays; i++) {
        v[i].it = &c->relays[i].it;
    }
    ini_names(c, v, c->n_relays, "relay");
    for (size_t i = 0; i < c->n_relays; i++) {
        struct relay *r = &c->relays[i];
        v = realloc(v, (r->n_outs + 1) * sizeof(*v));
        if (v == NULL) {
            abort();
        }
        for (size_t j = 0; j < r->n_outs; j++) {
            v[j].it = &r->outs[j];
        }
        ini_names(c, v, r->n_outs, "output");
    }
    free(v);
}

/* ---- values --------------------------------------------------------------------------- */

/* Whether s survives an INI line as a value: no control characters, no leading or trailing
 * blank, no " ;" (inline comment). */
static bool
ini_safe(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
        if (s[i] == ';' && i > 0 && s[i - 1] == ' ') {
            return false;
        }
    }
    return n == 0 || (s[0] != ' ' && s[n - 1] != ' ');
}

/* Writes "key = value" if the value fits an INI line. */
static void
emit(struct ctx *c, int line, const char *key, const char *value)
{
    char sb[128];
    if (!ini_safe(value) || strlen(key) + 3 + strlen(value) > INI_MAX_LINE) {
        report(c, line,
               "%s: value \"%.60s\" cannot be written in INI (control character, "
               "edge blank, \" ;\" or longer than %d characters)",
               key, shown(value, sb, sizeof(sb)), INI_MAX_LINE);
        return;
    }
    fprintf(c->out, "%s = %s\n", key, value);
}

static void
emit_int(struct ctx *c, const char *key, long long v)
{
    fprintf(c->out, "%s = %lld\n", key, v);
}

/* An integer key the Go relay replaces by def when <= 0 (def 0: kept), clamped to [lo, hi]. */
static void
emit_clamped(struct ctx *c, const struct toml_value *t, const char *key, long long def,
             long long lo, long long hi)
{
    const struct toml_kv *kv = get_kv(t, key);
    if (kv == NULL || kv->v.type != TOML_INT) {
        return;
    }
    long long v = kv->v.i;
    if (v <= 0 && def > 0) {
        warn(c, kv->line, "%s = %lld means the default to the Go relay: written as %lld", key, v,
             def);
        v = def;
    } else if (v < lo || v > hi) {
        long long w = v < lo ? lo : hi;
        warn(c, kv->line, "%s = %lld is outside %lld..%lld: written as %lld", key, v, lo, hi, w);
        v = w;
    }
    emit_int(c, key, v);
}

/* A Go duration key. must_parse: the Go relay refuses an invalid value (else it ignores it).
 * Out-of-range values are written as the nearest value we take. */
static void
emit_duration(struct ctx *c, const struct toml_value *t, const char *key, bool must_parse,
              int64_t max_ms)
{
    const struct toml_kv *kv = get_kv(t, key);
    if (kv == NULL || kv->v.type != TOML_STRING || kv->v.str[0] == '\0') {
        return;
    }
    int64_t ns = 0;
    char buf[32];
    char sb[128];
    if (value_duration_ns(kv->v.str, &ns) != VALUE_OK) {
        if (must_parse) {
            report(c, kv->line, "%s: invalid duration \"%s\"", key,
                   shown(kv->v.str, sb, sizeof(sb)));
        } else {
            warn(c, kv->line, "%s: invalid duration \"%s\", ignored by the Go relay: left out", key,
                 shown(kv->v.str, sb, sizeof(sb)));
        }
        return;
    }
    /* <= 0 is "no timeout" to Go's HTTP client, but "retry at once" to its retry buffer. */
    bool timeout = strcmp(key, "timeout") == 0;
    if (ns <= 0 || ns / 1000000 > max_ms) {
        value_format_ms(ns > 0 || timeout ? max_ms : 1, buf, sizeof(buf));
        warn(c, kv->line, "%s = \"%s\" %s: written as %s", key, kv->v.str,
             ns > 0    ? "is above the largest value"
             : timeout ? "means no limit to the Go relay"
                       : "means retry at once to the Go relay",
             buf);
        emit(c, kv->line, key, buf);
        return;
    }
    emit(c, kv->line, key, kv->v.str);
}

static void
emit_string(struct ctx *c, const struct toml_value *t, const char *key)
{
    const struct toml_kv *kv = get_kv(t, key);
    if (kv != NULL && kv->v.type == TOML_STRING && kv->v.str[0] != '\0') {
        emit(c, kv->line, key, kv->v.str);
    }
}

static void
emit_bind(struct ctx *c, const struct relay *r)
{
    const struct toml_kv *kv = get_kv(r->it.t, "bind-addr");
    struct hostport a;
    if (kv == NULL || kv->v.type != TOML_STRING || kv->v.str[0] == '\0') {
        report(c, r->it.line,
               "[[%s]] bind-addr is missing or empty (the Go relay would listen "
               "on a random port)",
               r->http ? "http" : "udp");
    } else if (hostport_parse(kv->v.str, strlen(kv->v.str), HOSTPORT_EMPTY_HOST, 0, &a) !=
               HOSTPORT_OK) {
        char sb[128];
        report(c, kv->line, "bind-addr: invalid address \"%s\" (want HOST:PORT)",
               shown(kv->v.str, sb, sizeof(sb)));
    } else {
        emit(c, kv->line, "bind-addr", kv->v.str);
    }
}

/* The Go relay parses UDP timestamps with models' precision: n, u, ms, s, m, h; anything
 * else, "ns" and "us" included, is nanoseconds. */
static void
emit_precision(struct ctx *c, const struct toml_value *t)
{
    static const char *const go[] = {"n", "u", "ms", "s", "m", "h"};
    const struct toml_kv *kv = get_kv(t, "precision");
    if (kv == NULL || kv->v.type != TOML_STRING || kv->v.str[0] == '\0') {
        return;
    }
    int i = 0;
    if (value_enum(kv->v.str, go, sizeof(go) / sizeof(go[0]), &i) == VALUE_OK) {
        emit(c, kv->line, "precision", kv->v.str);
        return;
    }
    char sb[128];
    warn(c, kv->line, "precision \"%s\" means nanoseconds to the Go relay: written as n",
         shown(kv->v.str, sb, sizeof(sb)));
    emit(c, kv->line, "precision", "n");
}

/* ---- sections ------------------------------------------------------------------------- */

static void
emit_http_output(struct ctx *c, const struct relay *r, const struct item *o)
{
    const struct toml_value *t = o->t;
    const struct toml_kv *loc = get_kv(t, "location");
    struct value_url u;
    char sb[128];
    char rb[300];
    fprintf(c->out, "\n[http.%s.output.%s]\n", r->it.ini_name, o->ini_name);
    if (loc == NULL || loc->v.type != TOML_STRING || loc->v.str[0] == '\0') {
        report(c, o->line, "[[http.output]] location is missing or empty");
    } else if (value_url(loc->v.str, &u) != VALUE_OK) {
        report(c, loc->line,
               "location: invalid URL \"%s\" (want http://HOST[:PORT]/write or "
               "https://...)",
               shown(value_url_redacted(loc->v.str, rb, sizeof(rb)), sb, sizeof(sb)));
    } else if (u.userinfo_len > 0 || u.fragment_off > 0) {
        report(c, loc->line,
               "location: %s is not allowed in \"%s\" (influxdb-relay refuses it: %s)",
               u.userinfo_len > 0 ? "userinfo" : "a fragment",
               shown(value_url_redacted(loc->v.str, rb, sizeof(rb)), sb, sizeof(sb)),
               u.userinfo_len > 0 ? "set the output's username and password-file instead"
                                  : "the query would follow it");
    } else {
        emit(c, loc->line, "location", loc->v.str);
    }
    emit_duration(c, t, "timeout", true, DURATION_MAX_MS);
    const struct toml_value *buf = get(t, "buffer-size-mb");
    bool buffered = buf != NULL && buf->type == TOML_INT && buf->i > 0;
    if (buf != NULL && buf->type == TOML_INT) {
        emit_clamped(c, t, "buffer-size-mb", 0, 0, BUFFER_MAX_MB);
    }
    emit_clamped(c, t, "max-batch-kb", 512, 1, BATCH_MAX_KB);
    emit_duration(c, t, "max-delay-interval", buffered, DURATION_MAX_MS);
    const struct toml_value *skip = get(t, "skip-tls-verification");
    if (skip != NULL && skip->type == TOML_BOOL) {
        fprintf(c->out, "skip-tls-verification = %s\n", skip->b ? "true" : "false");
    }
}

static void
emit_udp_output(struct ctx *c, const struct relay *r, const struct item *o)
{
    const struct toml_kv *loc = get_kv(o->t, "location");
    struct hostport a;
    fprintf(c->out, "\n[udp.%s.output.%s]\n", r->it.ini_name, o->ini_name);
    if (loc == NULL || loc->v.type != TOML_STRING || loc->v.str[0] == '\0') {
        report(c, o->line, "[[udp.output]] location is missing or empty");
    } else if (hostport_parse(loc->v.str, strlen(loc->v.str), 0, 0, &a) != HOSTPORT_OK) {
        char sb[128];
        report(c, loc->line, "location: invalid address \"%s\" (want HOST:PORT)",
               shown(loc->v.str, sb, sizeof(sb)));
    } else {
        emit(c, loc->line, "location", loc->v.str);
    }
    emit_clamped(c, o->t, "mtu", 1024, MTU_MIN, MTU_MAX);
}

static void
emit_relay(struct ctx *c, const struct relay *r)
{
    const struct toml_value *t = r->it.t;
    fprintf(c->out, "\n[%s.%s]\n", r->http ? "http" : "udp", r->it.ini_name);
    emit_bind(c, r);
    if (r->http) {
        emit_string(c, t, "ssl-combined-pem");
        emit_string(c, t, "default-retention-policy");
    } else {
        const struct toml_kv *rb = get_kv(t, "read-buffer");
        if (rb != NULL && rb->v.type == TOML_INT) {
            emit_clamped(c, t, "read-buffer", 0, 0, READ_BUFFER_MAX);
        }
        emit_precision(c, t);
    }
    for (size_t i = 0; i < r->n_outs; i++) {
        if (r->http) {
            emit_http_output(c, r, &r->outs[i]);
        } else {
            emit_udp_output(c, r, &r->outs[i]);
        }
    }
}

/* ---- main ----------------------------------------------------------------------------- */

/* Reads path whole; returns owned text or NULL after printing why. */
static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char eb[128];
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open: %s\n", path, err_text(errno, eb, sizeof(eb)));
        return NULL;
    }
    char *buf = malloc(MAX_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE_BYTES + 1, f) : 0;
    int bad = buf == NULL || ferror(f) || n > MAX_FILE_BYTES;
    int e = errno;
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: cannot read: %s\n", path,
                n > MAX_FILE_BYTES ? "larger than 16 MiB" : err_text(e, eb, sizeof(eb)));
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void
ctx_cleanup(struct ctx *c)
{
    for (size_t i = 0; i < c->n_relays; i++) {
        struct relay *r = &c->relays[i];
        for (size_t j = 0; j < r->n_outs; j++) {
            free(r->outs[j].go_name);
            free(r->outs[j].ini_name);
        }
        free(r->outs);
        free(r->it.go_name);
        free(r->it.ini_name);
    }
    free(c->relays);
    free(c->msgs);
}

static int
convert(struct ctx *c, const struct toml_value *root)
{
    collect_relays(c, root);
    if (c->n_relays == 0 && c->errors == 0) {
        report(c, 1, "no [[http]] or [[udp]] relay");
    }
    if (c->n_relays > 1) {
        qsort(c->relays, c->n_relays, sizeof(*c->relays), by_line);
    }
    for (size_t i = 0; i < c->n_relays; i++) {
        collect_outputs(c, &c->relays[i]);
    }
    go_names(c);
    all_ini_names(c);
    fprintf(c->out,
            "; Converted from %s by influxdb-relay-convert.\n"
            "; Keys not written take their defaults: see influxdb-relay.conf(5).\n",
            c->path);
    for (size_t i = 0; i < c->n_relays; i++) {
        emit_relay(c, &c->relays[i]);
    }
    return c->errors == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: influxdb-relay-convert FILE.toml > FILE.ini");
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs("usage: influxdb-relay-convert FILE.toml > FILE.ini\n", stderr);
        return 2;
    }
    size_t len = 0;
    char *text = read_file(argv[1], &len);
    if (text == NULL) {
        return 1;
    }
    struct toml_err err = {0, ""};
    struct toml_value *root = toml_parse(text, len, &err);
    if (root == NULL) {
        fprintf(stderr, "%s:%d: %s\n", argv[1], err.line, err.msg);
        free(text);
        return 1;
    }
    char *ini = NULL;
    size_t ini_len = 0;
    struct ctx c = {argv[1], 0, open_memstream(&ini, &ini_len), NULL, 0, NULL, 0};
    if (c.out == NULL) {
        abort();
    }
    int rc = convert(&c, root);
    fclose(c.out);
    print_msgs(&c);
    if (rc == 0) {
        fwrite(ini, 1, ini_len, stdout);
    }
    ctx_cleanup(&c);
    free(ini);
    toml_free(root);
    free(text);
    return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
}
