#include "conf/conf_diff.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const struct conf_http *
conf_find_http(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_http; i++) {
        if (strcmp(c->http[i].name, name) == 0) {
            return &c->http[i];
        }
    }
    return NULL;
}

const struct conf_http_output *
conf_find_http_output(const struct conf_http *h, const char *name)
{
    for (size_t i = 0; i < h->n_outputs; i++) {
        if (strcmp(h->outputs[i].name, name) == 0) {
            return &h->outputs[i];
        }
    }
    return NULL;
}

const struct conf_udp *
conf_find_udp(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < c->n_udp; i++) {
        if (strcmp(c->udp[i].name, name) == 0) {
            return &c->udp[i];
        }
    }
    return NULL;
}

const struct conf_udp_output *
conf_find_udp_output(const struct conf_udp *u, const char *name)
{
    for (size_t i = 0; i < u->n_outputs; i++) {
        if (strcmp(u->outputs[i].name, name) == 0) {
            return &u->outputs[i];
        }
    }
    return NULL;
}

static bool
str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

bool
conf_key_equal(const struct conf_key *k, const void *a, const void *b)
{
    const char *pa = (const char *)a + k->offset;
    const char *pb = (const char *)b + k->offset;
    switch (k->type) {
    case CONF_V_DURATION:
    case CONF_V_INT:
    case CONF_V_SIZE_KB:
    case CONF_V_SIZE_MB:
        return *(const int64_t *)(const void *)pa == *(const int64_t *)(const void *)pb;
    case CONF_V_BOOL:
    case CONF_V_LOG_FORMAT:
        return *(const bool *)(const void *)pa == *(const bool *)(const void *)pb;
    case CONF_V_LOG_LEVEL:
    case CONF_V_CONSISTENCY:
    case CONF_V_PRECISION:
    case CONF_V_QUERY:
    case CONF_V_ENCODING:
        return *(const int *)(const void *)pa == *(const int *)(const void *)pb;
    case CONF_V_STRING:
    case CONF_V_URL:
    case CONF_V_BIND:
    case CONF_V_HOSTPORT:
        return str_equal(*(char *const *)(const void *)pa, *(char *const *)(const void *)pb);
    }
    return false;
}

bool
conf_section_equal(enum conf_section_kind kind, const void *a, const void *b)
{
    return conf_section_diff(kind, a, b, NULL, 0) == 0;
}

size_t
conf_section_diff(enum conf_section_kind kind, const void *a, const void *b, char *out, size_t len)
{
    size_t n = 0;
    size_t used = 0;
    const struct conf_key *keys = conf_keys_table(kind, &n);
    size_t differ = 0;
    if (out != NULL && len > 0) {
        out[0] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        if (conf_key_equal(&keys[i], a, b)) {
            continue;
        }
        if (out != NULL && used < len) {
            int w = snprintf(out + used, len - used, "%s%s", differ > 0 ? "," : "", keys[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
        differ++;
    }
    return differ;
}
