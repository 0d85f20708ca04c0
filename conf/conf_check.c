#include "conf/conf_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/stat.h>
#include <unistd.h>

#include "util/pem.h"
#include "util/xalloc.h"

static void
check_outputs(const struct conf *c, struct conf_errs *errs)
{
    for (size_t i = 0; i < c->n_http; i++) {
        if (c->http[i].n_outputs == 0) {
            conf_errs_add(errs, c->http[i].line,
                          "[http.%s] has no output (add an [http.%s.output.NAME] section)",
                          c->http[i].name, c->http[i].name);
        }
    }
    for (size_t i = 0; i < c->n_udp; i++) {
        if (c->udp[i].n_outputs == 0) {
            conf_errs_add(errs, c->udp[i].line,
                          "[udp.%s] has no output (add a [udp.%s.output.NAME] section)",
                          c->udp[i].name, c->udp[i].name);
        }
    }
}

/* The Go relay refuses two relays of the same name, whatever their protocol. */
static void
check_names(const struct conf *c, struct conf_errs *errs)
{
    for (size_t i = 0; i < c->n_udp; i++) {
        const struct conf_udp *u = &c->udp[i];
        for (size_t j = 0; j < c->n_http; j++) {
            const struct conf_http *h = &c->http[j];
            if (strcmp(u->name, h->name) != 0) {
                continue;
            }
            if (u->line > h->line) {
                conf_errs_add(errs, u->line,
                              "[udp.%s] relay name \"%s\" is already used by [http.%s] at line %d",
                              u->name, u->name, h->name, h->line);
            } else {
                conf_errs_add(errs, h->line,
                              "[http.%s] relay name \"%s\" is already used by [udp.%s] at line %d",
                              h->name, h->name, u->name, u->line);
            }
        }
    }
}

static bool
is_wildcard(const struct hostport *a)
{
    return a->kind == HOSTPORT_ANY || strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0;
}

/* Whether two bind addresses (parsed at load) collide: same port, and the same host or a
 * wildcard host. */
static bool
binds_collide(const char *a_text, const struct hostport *a, const char *b_text,
              const struct hostport *b)
{
    if (a_text == NULL || b_text == NULL || a->port != b->port) {
        return false;
    }
    return is_wildcard(a) || is_wildcard(b) || strcasecmp(a->host, b->host) == 0;
}

/* One listener, for the bind-address check across both protocols. */
struct listener {
    const char *proto;
    const char *name;
    int line;
    const char *bind; /* as written, NULL when missing */
    const struct hostport *hp;
    int bind_line;
};

static void
check_binds(const struct listener *l, size_t n, struct conf_errs *errs)
{
    for (size_t j = 1; j < n; j++) {
        for (size_t i = 0; i < j; i++) {
            if (strcmp(l[i].proto, l[j].proto) != 0 ||
                !binds_collide(l[i].bind, l[i].hp, l[j].bind, l[j].hp)) {
                continue;
            }
            conf_errs_add(errs, l[j].bind_line,
                          "[%s.%s] bind-addr: %s conflicts with %s of [%s.%s] at line %d",
                          l[j].proto, l[j].name, l[j].bind, l[i].bind, l[i].proto, l[i].name,
                          l[i].bind_line);
            break;
        }
    }
}

static void
check_all_binds(const struct conf *c, struct conf_errs *errs)
{
    size_t n = c->n_http + c->n_udp;
    struct listener *l = xcalloc(n ? n : 1, sizeof(*l));
    for (size_t i = 0; i < c->n_http; i++) {
        const struct conf_http *h = &c->http[i];
        l[i] = (struct listener){"http", h->name, h->line, h->bind_addr, &h->bind, h->bind_line};
    }
    for (size_t i = 0; i < c->n_udp; i++) {
        const struct conf_udp *u = &c->udp[i];
        l[c->n_http + i] =
                (struct listener){"udp", u->name, u->line, u->bind_addr, &u->bind, u->bind_line};
    }
    check_binds(l, n, errs);
    free(l);
}

/* The same reader as the HTTP relay at start (util/pem.h), so both give the same answer. */
static void
check_pem(const struct conf_http *h, struct conf_errs *errs)
{
    struct pem_pair pair;
    struct ir_err e = {0, ""};
    if (pem_load_pair(h->ssl_combined_pem, &pair, &e) != 0) {
        conf_errs_add(errs, h->pem_line, "[http.%s] ssl-combined-pem: %s", h->name, e.msg);
        return;
    }
    pem_pair_cleanup(&pair);
}

/* spool-dir: an existing directory the relay may create files in (the spools of its outputs go
 * to spool-dir/RELAY/BACKEND, created at start). */
static void
check_spool_dir(const struct conf *c, struct conf_errs *errs)
{
    struct stat st;
    char eb[128];
    if (stat(c->spool_dir, &st) != 0) {
        conf_errs_add(errs, c->spool_dir_line, "[relay] spool-dir: %s: %s", c->spool_dir,
                      ir_strerror(errno, eb, sizeof(eb)));
    } else if (!S_ISDIR(st.st_mode)) {
        conf_errs_add(errs, c->spool_dir_line, "[relay] spool-dir: %s is not a directory",
                      c->spool_dir);
    } else if (access(c->spool_dir, W_OK | X_OK) != 0) {
        conf_errs_add(errs, c->spool_dir_line, "[relay] spool-dir: %s is not writable: %s",
                      c->spool_dir, ir_strerror(errno, eb, sizeof(eb)));
    }
}

/* An output with spool-size-mb > 0 needs spool-dir. */
static void
check_spools(const struct conf *c, struct conf_errs *errs)
{
    if (c->spool_dir != NULL) {
        check_spool_dir(c, errs);
        return;
    }
    for (size_t i = 0; i < c->n_http; i++) {
        for (size_t j = 0; j < c->http[i].n_outputs; j++) {
            const struct conf_http_output *o = &c->http[i].outputs[j];
            if (o->spool_bytes > 0) {
                conf_errs_add(errs, o->spool_line,
                              "[http.%s.output.%s] spool-size-mb needs spool-dir in [relay] (the "
                              "directory where spools live)",
                              c->http[i].name, o->name);
            }
        }
    }
}

int
conf_check(const struct conf *c, struct conf_errs *errs)
{
    size_t before = errs->n;
    check_outputs(c, errs);
    check_names(c, errs);
    check_all_binds(c, errs);
    check_spools(c, errs);
    for (size_t i = 0; i < c->n_http; i++) {
        if (c->http[i].ssl_combined_pem != NULL) {
            check_pem(&c->http[i], errs);
        }
    }
    return errs->n == before ? 0 : -1;
}
