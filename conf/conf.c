/* explicit_bzero() (glibc, BSD): a wipe of a password the compiler cannot drop. */
#define _DEFAULT_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "conf/conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

void
conf_errs_add(struct conf_errs *e, int line, const char *fmt, ...)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    struct conf_err *x = &e->v[e->n++];
    x->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
    va_end(ap);
}

void
conf_errs_sort(struct conf_errs *e)
{
    /* Insertion sort: stable, and configs have few problems. */
    for (size_t i = 1; i < e->n; i++) {
        struct conf_err x = e->v[i];
        size_t j = i;
        while (j > 0 && e->v[j - 1].line > x.line) {
            e->v[j] = e->v[j - 1];
            j--;
        }
        e->v[j] = x;
    }
}

void
conf_errs_cleanup(struct conf_errs *e)
{
    free(e->v);
    e->v = NULL;
    e->n = 0;
    e->cap = 0;
}

void
conf_password_wipe(struct conf_http_output *o)
{
    if (o->password != NULL) {
        explicit_bzero(o->password, strlen(o->password));
        free(o->password);
        o->password = NULL;
    }
}

static void
conf_http_cleanup(struct conf_http *h)
{
    for (size_t j = 0; j < h->n_outputs; j++) {
        struct conf_http_output *o = &h->outputs[j];
        free(o->name);
        free(o->location);
        free(o->username);
        conf_password_wipe(o);
        free(o->password_file);
    }
    free(h->outputs);
    free(h->name);
    free(h->bind_addr);
    free(h->ssl_combined_pem);
    free(h->default_rp);
}

static void
conf_udp_cleanup(struct conf_udp *u)
{
    for (size_t j = 0; j < u->n_outputs; j++) {
        free(u->outputs[j].name);
        free(u->outputs[j].location);
    }
    free(u->outputs);
    free(u->name);
    free(u->bind_addr);
}

struct conf *
conf_ref(struct conf *c)
{
    if (c != NULL) {
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    }
    return c;
}

void
conf_unref(struct conf *c)
{
    if (c != NULL && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        conf_free(c);
    }
}

void
conf_free(struct conf *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_http; i++) {
        conf_http_cleanup(&c->http[i]);
    }
    for (size_t i = 0; i < c->n_udp; i++) {
        conf_udp_cleanup(&c->udp[i]);
    }
    free(c->http);
    free(c->udp);
    free(c->path);
    free(c->spool_dir);
    free(c);
}
