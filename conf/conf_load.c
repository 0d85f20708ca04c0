/* getline() is POSIX 2008; nothing else here needs an extension. */
#include "conf/conf_load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <ini.h>

#include "conf/conf_keys.h"
#include "conf/conf_secret.h"
#include "conf/value.h"
#include "util/xalloc.h"

/* How this uses inih (Debian's libinih 55, see docs/ARCHITECTURE.md): inih alone gives no line
 * numbers, never reports a section without keys, truncates section names over 49 characters
 * and splits lines over 198. So our reader hands inih one physical line at a time and does
 * everything line-based itself: it counts lines, strips leading blanks (which also keeps
 * inih's multi-line continuation from ever applying), parses section headers (inih gets a
 * blank line instead), refuses over-long lines and lines that are not KEY = VALUE. inih only
 * splits "key = value ; comment" lines and calls the handler, which reads the current line
 * and section from the reader's context. */

enum sec_state { SEC_NONE, SEC_IGNORED, SEC_ACTIVE };

/* The section being read. */
struct sec {
    enum sec_state state;
    enum conf_section_kind kind;
    void *base;   /* struct the keys go to */
    bool scratch; /* base is loader.scratch: checked, then discarded (duplicate section) */
    char title[256];
    int line;
    int key_line[CONF_KEYS_MAX]; /* line of each key of the table seen so far, 0 = not yet */
};

/* An output section waiting for the end of the file, when every relay is known. */
struct pending {
    enum conf_section_kind kind; /* CONF_SEC_HTTP_OUTPUT or CONF_SEC_UDP_OUTPUT */
    char *relay;
    union {
        struct conf_http_output http;
        struct conf_udp_output udp;
    } o;
};

struct loader {
    FILE *f;
    int lineno;
    char *raw;
    size_t raw_cap;
    int read_errno;
    struct conf *c;
    struct conf_errs *errs;
    struct sec cur;
    int relay_line;        /* line of [relay], 0 = not seen */
    bool saw_relay_header; /* any [http... or [udp... line, valid or not */
    struct pending *pend;
    size_t n_pend;
    union {
        struct conf c;
        struct conf_http h;
        struct conf_http_output ho;
        struct conf_udp u;
        struct conf_udp_output uo;
    } scratch;
};

/* Section names as written in messages. */
static const char *const kind_word[CONF_SEC_COUNT] = {"relay", "http", "http", "udp", "udp"};

static bool
is_string_type(enum conf_vtype t)
{
    return t == CONF_V_STRING || t == CONF_V_URL || t == CONF_V_BIND || t == CONF_V_HOSTPORT;
}

static void
free_strings(enum conf_section_kind kind, void *base)
{
    size_t n = 0;
    const struct conf_key *keys = conf_keys_table(kind, &n);
    for (size_t i = 0; i < n; i++) {
        if (is_string_type(keys[i].type)) {
            char **p = (char **)((char *)base + keys[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

static void
sec_close(struct loader *L)
{
    struct sec *s = &L->cur;
    if (s->state == SEC_ACTIVE && !s->scratch) {
        size_t n = 0;
        const struct conf_key *keys = conf_keys_table(s->kind, &n);
        for (size_t i = 0; i < n; i++) {
            if (keys[i].required && s->key_line[i] == 0) {
                conf_errs_add(L->errs, s->line, "[%s] missing required key %s", s->title,
                              keys[i].name);
            }
        }
    }
    if (s->state == SEC_ACTIVE && s->scratch) {
        free_strings(s->kind, s->base);
    }
    memset(s, 0, sizeof(*s));
}

/* Splits title at '.' into at most 4 parts; returns the count, or 5 when there are more. */
static size_t
split_title(const char *title, const char *part[4], size_t len[4])
{
    size_t n = 0;
    const char *p = title;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 4) {
            return 5;
        }
        part[n] = p;
        len[n++] = l;
        if (dot == NULL) {
            return n;
        }
        p = dot + 1;
    }
}

/* The section kind of title, or -1 (then the message is added). */
static int
title_kind(struct loader *L, const char *title, const char *part[4], size_t len[4])
{
    size_t n = split_title(title, part, len);
    bool http = len[0] == 4 && memcmp(part[0], "http", 4) == 0;
    bool udp = len[0] == 3 && memcmp(part[0], "udp", 3) == 0;
    if (strcmp(title, "relay") == 0) {
        return CONF_SEC_RELAY;
    }
    if ((http || udp) && n == 2) {
        return http ? CONF_SEC_HTTP : CONF_SEC_UDP;
    }
    if ((http || udp) && n == 4 && len[2] == 6 && memcmp(part[2], "output", 6) == 0) {
        return http ? CONF_SEC_HTTP_OUTPUT : CONF_SEC_UDP_OUTPUT;
    }
    conf_errs_add(L->errs, L->lineno,
                  "unknown section [%s] (want [relay], [http.NAME], [http.NAME.output.NAME], "
                  "[udp.NAME] or [udp.NAME.output.NAME])",
                  title);
    return -1;
}

static bool
name_ok(struct loader *L, const char *title, const char *what, const char *s, size_t len)
{
    if (value_name_is_valid(s, len)) {
        return true;
    }
    conf_errs_add(L->errs, L->lineno,
                  "[%s] invalid %s name \"%.*s\" (use letters, digits, \"_\" and \"-\", at most "
                  "%d characters)",
                  title, what, (int)len, s, VALUE_NAME_MAX);
    return false;
}

/* Line of an existing section with the same kind and names, 0 if none. */
static int
find_existing(struct loader *L, int kind, const char *part[4], size_t len[4])
{
    struct conf *c = L->c;
    if (kind == CONF_SEC_RELAY) {
        return L->relay_line;
    }
    for (size_t i = 0; kind == CONF_SEC_HTTP && i < c->n_http; i++) {
        if (strlen(c->http[i].name) == len[1] && memcmp(c->http[i].name, part[1], len[1]) == 0) {
            return c->http[i].line;
        }
    }
    for (size_t i = 0; kind == CONF_SEC_UDP && i < c->n_udp; i++) {
        if (strlen(c->udp[i].name) == len[1] && memcmp(c->udp[i].name, part[1], len[1]) == 0) {
            return c->udp[i].line;
        }
    }
    for (size_t i = 0; i < L->n_pend; i++) {
        struct pending *p = &L->pend[i];
        const char *name = p->kind == CONF_SEC_HTTP_OUTPUT ? p->o.http.name : p->o.udp.name;
        int line = p->kind == CONF_SEC_HTTP_OUTPUT ? p->o.http.line : p->o.udp.line;
        if ((int)p->kind == kind && strlen(p->relay) == len[1] &&
            memcmp(p->relay, part[1], len[1]) == 0 && strlen(name) == len[3] &&
            memcmp(name, part[3], len[3]) == 0) {
            return line;
        }
    }
    return 0;
}

/* Appends the struct a new section fills; returns its base. */
static void *
sec_new(struct loader *L, int kind, const char *part[4], size_t len[4])
{
    struct conf *c = L->c;
    if (kind == CONF_SEC_RELAY) {
        L->relay_line = L->lineno;
        return c;
    }
    if (kind == CONF_SEC_HTTP) {
        c->http = xrealloc(c->http, (c->n_http + 1) * sizeof(*c->http));
        struct conf_http *h = memset(&c->http[c->n_http++], 0, sizeof(*c->http));
        h->name = xstrndup(part[1], len[1]);
        h->line = L->lineno;
        return h;
    }
    if (kind == CONF_SEC_UDP) {
        c->udp = xrealloc(c->udp, (c->n_udp + 1) * sizeof(*c->udp));
        struct conf_udp *u = memset(&c->udp[c->n_udp++], 0, sizeof(*c->udp));
        u->name = xstrndup(part[1], len[1]);
        u->line = L->lineno;
        return u;
    }
    L->pend = xrealloc(L->pend, (L->n_pend + 1) * sizeof(*L->pend));
    struct pending *p = memset(&L->pend[L->n_pend++], 0, sizeof(*L->pend));
    p->kind = kind;
    p->relay = xstrndup(part[1], len[1]);
    if (kind == CONF_SEC_HTTP_OUTPUT) {
        p->o.http.name = xstrndup(part[3], len[3]);
        p->o.http.line = L->lineno;
        return &p->o.http;
    }
    p->o.udp.name = xstrndup(part[3], len[3]);
    p->o.udp.line = L->lineno;
    return &p->o.udp;
}

static void
sec_open(struct loader *L, const char *title)
{
    sec_close(L);
    struct sec *s = &L->cur;
    s->state = SEC_IGNORED;
    s->line = L->lineno;
    snprintf(s->title, sizeof(s->title), "%s", title);
    const char *part[4] = {NULL, NULL, NULL, NULL};
    size_t len[4] = {0, 0, 0, 0};
    int kind = title_kind(L, title, part, len);
    if (kind < 0) {
        return;
    }
    bool output = kind == CONF_SEC_HTTP_OUTPUT || kind == CONF_SEC_UDP_OUTPUT;
    if ((kind != CONF_SEC_RELAY && !name_ok(L, title, "relay", part[1], len[1])) ||
        (output && !name_ok(L, title, "output", part[3], len[3]))) {
        return;
    }
    s->state = SEC_ACTIVE;
    s->kind = kind;
    int first = find_existing(L, kind, part, len);
    if (first != 0) {
        conf_errs_add(L->errs, L->lineno, "duplicate section [%s] (first at line %d)", title,
                      first);
        s->scratch = true;
        s->base = memset(&L->scratch, 0, sizeof(L->scratch));
        return;
    }
    s->base = sec_new(L, kind, part, len);
    if (kind != CONF_SEC_RELAY) {
        conf_keys_defaults(kind, s->base);
    }
}

/* A "[...]" line (leading blanks already stripped). */
static void
header(struct loader *L, char *line)
{
    char *end = strchr(line, ']');
    if (strncmp(line + 1, "http", 4) == 0 || strncmp(line + 1, "udp", 3) == 0) {
        L->saw_relay_header = true;
    }
    if (end == NULL) {
        sec_close(L);
        L->cur.state = SEC_IGNORED;
        conf_errs_add(L->errs, L->lineno, "syntax error: section header without \"]\": %.80s",
                      line);
        return;
    }
    *end = '\0';
    const char *rest = end + 1 + strspn(end + 1, " \t");
    char *title = line + 1 + strspn(line + 1, " \t");
    size_t tl = strlen(title);
    while (tl > 0 && (title[tl - 1] == ' ' || title[tl - 1] == '\t')) {
        title[--tl] = '\0';
    }
    sec_open(L, title);
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        conf_errs_add(L->errs, L->lineno, "syntax error: text after section header [%s]: %.80s",
                      title, rest);
    }
}

/* Whether inih will split the line at an '=': one comes before any ':' (inih also splits at
 * ':', which would turn "bind-addr 127.0.0.1:9096" into a key "bind-addr 127.0.0.1") and
 * before any inline comment. */
static bool
has_delimiter(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '=' || *p == ':') {
            return *p == '=';
        }
        if (*p == ';' && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
            return false;
        }
    }
    return false;
}

/* Decides what inih sees of one stripped line: the line itself for KEY = VALUE, else "". */
static void
line_feed(struct loader *L, char *line, size_t len, char *out, int num)
{
    out[0] = '\0';
    if (len == 0 || line[0] == ';' || line[0] == '#') {
        return;
    }
    if (len > (size_t)num - 3) {
        conf_errs_add(L->errs, L->lineno, "line too long (%zu characters, at most %d)", len,
                      num - 3);
        return;
    }
    if (strlen(line) != len) {
        conf_errs_add(L->errs, L->lineno, "syntax error: NUL byte in line");
        return;
    }
    if (line[0] == '[') {
        header(L, line);
        return;
    }
    if (!has_delimiter(line)) {
        /* "password hunter2" or "password: hunter2" must not show the password. */
        bool secret = strncmp(line, "password", 8) == 0;
        conf_errs_add(L->errs, L->lineno,
                      "syntax error: want KEY = VALUE or [SECTION], got %.80s%s",
                      secret ? "password" : line, secret ? "... (the rest is not shown)" : "");
        return;
    }
    memcpy(out, line, len + 1);
}

/* The ini_reader: one physical line per call. */
static char *
reader(char *str, int num, void *stream)
{
    struct loader *L = stream;
    errno = 0;
    ssize_t n = getline(&L->raw, &L->raw_cap, L->f);
    if (n < 0) {
        L->read_errno = ferror(L->f) ? (errno ? errno : EIO) : 0;
        return NULL;
    }
    L->lineno++;
    char *line = L->raw;
    size_t len = (size_t)n;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        line[--len] = '\0';
    }
    if (L->lineno == 1 && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
        line += 3;
        len -= 3;
    }
    size_t lead = strspn(line, " \t");
    line_feed(L, line + lead, len - lead, str, num);
    return str;
}

/* A hint for values that look like TOML habits. */
static const char *
value_hint(const char *value)
{
    if (value[0] == '"' || value[0] == '\'') {
        return " (INI values are not quoted)";
    }
    if (strstr(value, " #") != NULL || strstr(value, "\t#") != NULL) {
        return " (inline comments start with \" ;\")";
    }
    return "";
}

/* The ini_handler. inih's section argument is ignored: it may be truncated, ours is not. */
static int
handler(void *user, const char *section, const char *name, const char *value)
{
    (void)section;
    struct loader *L = user;
    struct sec *s = &L->cur;
    if (s->state == SEC_NONE) {
        conf_errs_add(L->errs, L->lineno, "%s: key outside a section", name);
        return 1;
    }
    if (s->state == SEC_IGNORED) {
        return 1;
    }
    size_t n = 0;
    const struct conf_key *keys = conf_keys_table(s->kind, &n);
    const struct conf_key *k = conf_keys_find(s->kind, name);
    if (name[0] == '\0') {
        conf_errs_add(L->errs, L->lineno, "[%s] missing key name before \"=\"", s->title);
        return 1;
    }
    if (k == NULL) {
        conf_errs_add(L->errs, L->lineno, "[%s] %s: unknown key", s->title, name);
        return 1;
    }
    size_t i = (size_t)(k - keys);
    if (s->key_line[i] != 0) {
        conf_errs_add(L->errs, L->lineno, "[%s] %s: duplicate key (first at line %d)", s->title,
                      name, s->key_line[i]);
        return 1;
    }
    s->key_line[i] = L->lineno;
    char why[400];
    if (conf_key_set(k, s->base, value, why, sizeof(why)) != 0) {
        conf_errs_add(L->errs, L->lineno, "[%s] %s: %s%s", s->title, name, why, value_hint(value));
    } else if (k->line_off != 0) {
        *(int *)((char *)s->base + k->line_off) = L->lineno;
    }
    return 1;
}

static void *
find_relay(struct conf *c, enum conf_section_kind kind, const char *name)
{
    for (size_t i = 0; kind == CONF_SEC_HTTP_OUTPUT && i < c->n_http; i++) {
        if (strcmp(c->http[i].name, name) == 0) {
            return &c->http[i];
        }
    }
    for (size_t i = 0; kind == CONF_SEC_UDP_OUTPUT && i < c->n_udp; i++) {
        if (strcmp(c->udp[i].name, name) == 0) {
            return &c->udp[i];
        }
    }
    return NULL;
}

/* Moves each pending output to its relay, in file order. */
static void
attach_outputs(struct loader *L)
{
    for (size_t i = 0; i < L->n_pend; i++) {
        struct pending *p = &L->pend[i];
        bool http = p->kind == CONF_SEC_HTTP_OUTPUT;
        void *relay = find_relay(L->c, p->kind, p->relay);
        if (relay == NULL) {
            conf_errs_add(L->errs, http ? p->o.http.line : p->o.udp.line,
                          "[%s.%s.output.%s] relay section [%s.%s] is missing", kind_word[p->kind],
                          p->relay, http ? p->o.http.name : p->o.udp.name, kind_word[p->kind],
                          p->relay);
            free_strings(p->kind, &p->o);
            free(http ? p->o.http.name : p->o.udp.name);
        } else if (http) {
            struct conf_http *h = relay;
            h->outputs = xrealloc(h->outputs, (h->n_outputs + 1) * sizeof(*h->outputs));
            h->outputs[h->n_outputs++] = p->o.http;
        } else {
            struct conf_udp *u = relay;
            u->outputs = xrealloc(u->outputs, (u->n_outputs + 1) * sizeof(*u->outputs));
            u->outputs[u->n_outputs++] = p->o.udp;
        }
        free(p->relay);
    }
    free(L->pend);
    L->pend = NULL;
    L->n_pend = 0;
}

/* Every relay and output section points back to its tree (conf_ref() keeps a section alive). */
static void
set_trees(struct conf *c)
{
    for (size_t i = 0; i < c->n_http; i++) {
        c->http[i].tree = c;
        for (size_t j = 0; j < c->http[i].n_outputs; j++) {
            c->http[i].outputs[j].tree = c;
        }
    }
    for (size_t i = 0; i < c->n_udp; i++) {
        c->udp[i].tree = c;
    }
}

/* write-timeout defaults to the largest output timeout + 1s. */
static void
default_write_timeouts(struct conf *c)
{
    for (size_t i = 0; i < c->n_http; i++) {
        struct conf_http *h = &c->http[i];
        if (h->write_timeout_ms != 0) {
            continue;
        }
        int64_t max = h->n_outputs ? 0 : 10000;
        for (size_t j = 0; j < h->n_outputs; j++) {
            if (h->outputs[j].timeout_ms > max) {
                max = h->outputs[j].timeout_ms;
            }
        }
        h->write_timeout_ms = max + 1000;
    }
}

static bool
has_error_at(const struct conf_errs *e, int line)
{
    for (size_t i = 0; i < e->n; i++) {
        if (e->v[i].line == line) {
            return true;
        }
    }
    return false;
}

struct conf *
conf_load_file(FILE *f, const char *path, struct conf_errs *errs)
{
    struct loader L;
    memset(&L, 0, sizeof(L));
    L.f = f;
    L.errs = errs;
    L.c = xcalloc(1, sizeof(*L.c));
    atomic_init(&L.c->refs, 1);
    L.c->path = xstrdup(path);
    conf_keys_defaults(CONF_SEC_RELAY, L.c);
    int rc = ini_parse_stream(reader, &L, handler, &L);
    sec_close(&L);
    free(L.raw);
    attach_outputs(&L);
    default_write_timeouts(L.c);
    conf_secrets_load(L.c, errs);
    set_trees(L.c);
    if (L.read_errno != 0) {
        char eb[128];
        conf_errs_add(errs, 0, "cannot read config file: %s",
                      ir_strerror(L.read_errno, eb, sizeof(eb)));
        conf_free(L.c);
        return NULL;
    }
    if (L.c->n_http == 0 && L.c->n_udp == 0 && !L.saw_relay_header) {
        conf_errs_add(errs, 0, "no relay configured (add an [http.NAME] or [udp.NAME] section)");
    }
    /* Our reader hands inih only lines it can parse, so this is a safety net. */
    if (rc != 0 && !has_error_at(errs, rc > 0 ? rc : 0)) {
        conf_errs_add(errs, rc > 0 ? rc : 0, "syntax error");
    }
    return L.c;
}

struct conf *
conf_load(const char *path, struct conf_errs *errs)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        char eb[128];
        conf_errs_add(errs, 0, "cannot open config file: %s", ir_strerror(e, eb, sizeof(eb)));
        return NULL;
    }
    struct conf *c = conf_load_file(f, path, errs);
    fclose(f);
    return c;
}
