#include "conf/conf_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "conf/value.h"
#include "util/xalloc.h"

#define KIB 1024LL
#define MIB (1024LL * 1024LL)
/* Ranges refuse only values that cannot work, so any value the Go relay accepts for one of its
 * keys is accepted here. Durations: up to the largest Go duration (math.MaxInt64 ns, in ms),
 * for our keys as well. Sizes: up to what still fits in int64 bytes (4 x for the
 * unbuffered queue bound of max-batch-kb). */
#define DUR_MAX_MS   9223372036854LL
#define MB_MAX       (INT64_MAX / MIB)
#define BATCH_KB_MAX (INT64_MAX / 4 / KIB)

/* Ranges are documented in docs/influxdb-relay.conf.5; keep the two in step. */
static const struct conf_key keys_relay[] = {
        {"log-level", CONF_V_LOG_LEVEL, offsetof(struct conf, log_level), "info", 0, 0, false, 0,
         0},
        {"log-format", CONF_V_LOG_FORMAT, offsetof(struct conf, log_json), "text", 0, 0, false, 0,
         0},
        {"shutdown-timeout", CONF_V_DURATION, offsetof(struct conf, shutdown_timeout_ms), "10s", 0,
         DUR_MAX_MS, false, 0, 0},
        {"max-inflight-mb", CONF_V_SIZE_MB, offsetof(struct conf, max_inflight_bytes), "1024", 1,
         MB_MAX, false, 0, 0},
        {"spool-dir", CONF_V_STRING, offsetof(struct conf, spool_dir), NULL, 0, 0, false,
         offsetof(struct conf, spool_dir_line), 0},
};

static const struct conf_key keys_http[] = {
        {"bind-addr", CONF_V_BIND, offsetof(struct conf_http, bind_addr), NULL, 0, 0, true,
         offsetof(struct conf_http, bind_line), offsetof(struct conf_http, bind)},
        {"ssl-combined-pem", CONF_V_STRING, offsetof(struct conf_http, ssl_combined_pem), NULL, 0,
         0, false, offsetof(struct conf_http, pem_line), 0},
        {"default-retention-policy", CONF_V_STRING, offsetof(struct conf_http, default_rp), NULL, 0,
         0, false, 0, 0},
        /* No default here: conf_load() sets the largest output timeout + 1s. */
        {"write-timeout", CONF_V_DURATION, offsetof(struct conf_http, write_timeout_ms), NULL, 1,
         DUR_MAX_MS, false, 0, 0},
        {"write-consistency", CONF_V_CONSISTENCY, offsetof(struct conf_http, write_consistency),
         "one", 0, 0, false, 0, 0},
        {"max-body-mb", CONF_V_SIZE_MB, offsetof(struct conf_http, max_body_bytes), "32", 1, 4096,
         false, 0, 0},
        {"max-connections", CONF_V_INT, offsetof(struct conf_http, max_connections), "10000", 1,
         65536, false, 0, 0},
        {"workers", CONF_V_INT, offsetof(struct conf_http, workers), "0", 0, 4096, false, 0, 0},
        {"idle-timeout", CONF_V_DURATION, offsetof(struct conf_http, idle_timeout_ms), "75s", 0,
         DUR_MAX_MS, false, 0, 0},
        {"read-timeout", CONF_V_DURATION, offsetof(struct conf_http, read_timeout_ms), "30s", 0,
         DUR_MAX_MS, false, 0, 0},
        {"query", CONF_V_QUERY, offsetof(struct conf_http, query), "all", 0, 0, false, 0, 0},
};

static const struct conf_key keys_http_output[] = {
        {"location", CONF_V_URL, offsetof(struct conf_http_output, location), NULL, 0, 0, true, 0,
         0},
        {"timeout", CONF_V_DURATION, offsetof(struct conf_http_output, timeout_ms), "10s", 1,
         DUR_MAX_MS, false, 0, 0},
        {"buffer-size-mb", CONF_V_SIZE_MB, offsetof(struct conf_http_output, buffer_bytes), "0", 0,
         MB_MAX, false, 0, 0},
        {"max-batch-kb", CONF_V_SIZE_KB, offsetof(struct conf_http_output, max_batch_bytes), "512",
         1, BATCH_KB_MAX, false, 0, 0},
        {"max-delay-interval", CONF_V_DURATION, offsetof(struct conf_http_output, max_delay_ms),
         "10s", 1, DUR_MAX_MS, false, 0, 0},
        {"skip-tls-verification", CONF_V_BOOL,
         offsetof(struct conf_http_output, skip_tls_verification), "false", 0, 0, false, 0, 0},
        {"content-encoding", CONF_V_ENCODING, offsetof(struct conf_http_output, content_encoding),
         "identity", 0, 0, false, 0, 0},
        {"username", CONF_V_STRING, offsetof(struct conf_http_output, username), NULL, 0, 0, false,
         offsetof(struct conf_http_output, username_line), 0},
        /* Its value is never printed: a problem with it names the key only. */
        {"password", CONF_V_STRING, offsetof(struct conf_http_output, password), NULL, 0, 0, false,
         offsetof(struct conf_http_output, password_line), 0},
        {"password-file", CONF_V_STRING, offsetof(struct conf_http_output, password_file), NULL, 0,
         0, false, offsetof(struct conf_http_output, password_file_line), 0},
        {"spool-size-mb", CONF_V_SIZE_MB, offsetof(struct conf_http_output, spool_bytes), "0", 0,
         MB_MAX, false, offsetof(struct conf_http_output, spool_line), 0},
        {"spool-max-age", CONF_V_DURATION, offsetof(struct conf_http_output, spool_max_age_ms),
         "168h", 0, DUR_MAX_MS, false, 0, 0},
        {"spool-sync", CONF_V_DURATION, offsetof(struct conf_http_output, spool_sync_ms), "1s", 0,
         DUR_MAX_MS, false, 0, 0},
};

static const struct conf_key keys_udp[] = {
        {"bind-addr", CONF_V_BIND, offsetof(struct conf_udp, bind_addr), NULL, 0, 0, true,
         offsetof(struct conf_udp, bind_line), offsetof(struct conf_udp, bind)},
        {"read-buffer", CONF_V_INT, offsetof(struct conf_udp, read_buffer), "0", 0, INT64_MAX,
         false, 0, 0},
        {"precision", CONF_V_PRECISION, offsetof(struct conf_udp, precision), "n", 0, 0, false, 0,
         0},
};

static const struct conf_key keys_udp_output[] = {
        {"location", CONF_V_HOSTPORT, offsetof(struct conf_udp_output, location), NULL, 0, 0, true,
         0, offsetof(struct conf_udp_output, dest)},
        {"mtu", CONF_V_INT, offsetof(struct conf_udp_output, mtu), "1024", 64, INT64_MAX, false, 0,
         0},
};

struct table {
    const struct conf_key *keys;
    size_t n;
};

static const struct table tables[CONF_SEC_COUNT] = {
        [CONF_SEC_RELAY] = {keys_relay, IR_ARRAY_LEN(keys_relay)},
        [CONF_SEC_HTTP] = {keys_http, IR_ARRAY_LEN(keys_http)},
        [CONF_SEC_HTTP_OUTPUT] = {keys_http_output, IR_ARRAY_LEN(keys_http_output)},
        [CONF_SEC_UDP] = {keys_udp, IR_ARRAY_LEN(keys_udp)},
        [CONF_SEC_UDP_OUTPUT] = {keys_udp_output, IR_ARRAY_LEN(keys_udp_output)},
};

static const char *const log_levels[] = {"error", "warn", "info", "debug"};
static const char *const log_formats[] = {"text", "json"};
static const char *const consistencies[] = {"one", "all", "any"};
static const char *const query_modes[] = {"all", "ddl", "off"};
static const char *const precisions[] = {"n", "ns", "u", "us", "ms", "s", "m", "h"};
static const char *const encodings[] = {"identity", "gzip"};
static const enum conf_precision precision_values[] = {
        CONF_PREC_N,  CONF_PREC_N, CONF_PREC_U, CONF_PREC_U,
        CONF_PREC_MS, CONF_PREC_S, CONF_PREC_M, CONF_PREC_H,
};

const struct conf_key *
conf_keys_table(enum conf_section_kind kind, size_t *n)
{
    *n = tables[kind].n;
    return tables[kind].keys;
}

const struct conf_key *
conf_keys_find(enum conf_section_kind kind, const char *name)
{
    for (size_t i = 0; i < tables[kind].n; i++) {
        if (strcmp(tables[kind].keys[i].name, name) == 0) {
            return &tables[kind].keys[i];
        }
    }
    return NULL;
}

void
conf_keys_defaults(enum conf_section_kind kind, void *base)
{
    char why[256];
    for (size_t i = 0; i < tables[kind].n; i++) {
        const struct conf_key *k = &tables[kind].keys[i];
        if (k->def != NULL && conf_key_set(k, base, k->def, why, sizeof(why)) != 0) {
            abort(); /* a table default that does not parse is a programmer error */
        }
    }
}

static const char *
range_text(const struct conf_key *k, char *buf, size_t len)
{
    if (k->type == CONF_V_DURATION) {
        char lo[32];
        char hi[32];
        snprintf(buf, len, "%s to %s", value_format_ms(k->min, lo, sizeof(lo)),
                 value_format_ms(k->max, hi, sizeof(hi)));
    } else {
        snprintf(buf, len, "%lld to %lld", (long long)k->min, (long long)k->max);
    }
    return buf;
}

static int
set_number(const struct conf_key *k, int64_t *dst, const char *v, char *why, size_t why_len)
{
    char range[80];
    int64_t x = 0;
    enum value_status st = k->type == CONF_V_DURATION ? value_duration_ms(v, k->min, k->max, &x)
                                                      : value_int(v, k->min, k->max, &x);
    if (st == VALUE_OK) {
        *dst = k->type == CONF_V_SIZE_KB ? x * KIB : k->type == CONF_V_SIZE_MB ? x * MIB : x;
        return 0;
    }
    const char *what = k->type == CONF_V_DURATION ? "duration" : "integer";
    if (st == VALUE_INVALID) {
        snprintf(why, why_len, "invalid %s \"%s\"", what, v);
    } else if (st == VALUE_NEGATIVE) {
        snprintf(why, why_len, "negative duration \"%s\"", v);
    } else {
        snprintf(why, why_len, "%s \"%s\" out of range (%s)", what, v,
                 range_text(k, range, sizeof(range)));
    }
    return -1;
}

struct enum_info {
    enum conf_vtype type;
    const char *const *names;
    size_t n;
    const char *list; /* for messages */
};

static const struct enum_info enums[] = {
        {CONF_V_LOG_LEVEL, log_levels, IR_ARRAY_LEN(log_levels), "debug, info, warn or error"},
        {CONF_V_LOG_FORMAT, log_formats, IR_ARRAY_LEN(log_formats), "text or json"},
        {CONF_V_CONSISTENCY, consistencies, IR_ARRAY_LEN(consistencies), "one, all or any"},
        {CONF_V_PRECISION, precisions, IR_ARRAY_LEN(precisions), "n, ns, u, us, ms, s, m or h"},
        {CONF_V_QUERY, query_modes, IR_ARRAY_LEN(query_modes), "all, ddl or off"},
        {CONF_V_ENCODING, encodings, IR_ARRAY_LEN(encodings), "identity or gzip"},
};

static int
set_enum(const struct conf_key *k, void *dst, const char *v, char *why, size_t why_len)
{
    const struct enum_info *e = &enums[0];
    while (e->type != k->type) {
        e++;
    }
    const char *const *names = e->names;
    size_t n = e->n;
    const char *list = e->list;
    int i = 0;
    if (value_enum(v, names, n, &i) != VALUE_OK) {
        snprintf(why, why_len, "invalid value \"%s\" (want %s)", v, list);
        return -1;
    }
    if (k->type == CONF_V_LOG_FORMAT) {
        *(bool *)dst = i == 1;
    } else if (k->type == CONF_V_PRECISION) {
        *(enum conf_precision *)dst = precision_values[i];
    } else {
        *(int *)dst = i;
    }
    return 0;
}

/* A backend URL: well formed, without userinfo or fragment. 0, or -1 with why filled; a
 * password in the URL is never shown. */
static int
check_url(const char *v, char *why, size_t why_len)
{
    char shown[300];
    value_url_redacted(v, shown, sizeof(shown));
    struct value_url u;
    enum value_status st = value_url(v, &u);
    if (st == VALUE_RANGE) {
        snprintf(why, why_len, "port out of range (1 to 65535) in \"%s\"", shown);
    } else if (st != VALUE_OK) {
        snprintf(why, why_len, "invalid URL \"%s\" (want http://HOST[:PORT]/PATH or https://...)",
                 shown);
    } else if (u.userinfo_len > 0) {
        /* The redacted userinfo: shown from the same offset up to its '@'. */
        const char *at = strchr(shown + u.userinfo_off, '@');
        int n = at != NULL ? (int)(at + 1 - (shown + u.userinfo_off)) : 0;
        snprintf(why, why_len,
                 "userinfo is not allowed in \"%s\" (remove \"%.*s\"; set the output's "
                 "username and password or password-file instead)",
                 shown, n, shown + u.userinfo_off);
    } else if (u.fragment_off > 0) {
        snprintf(why, why_len,
                 "fragment \"%s\" is not allowed in \"%s\" (the query the relay appends would "
                 "follow it and never reach the backend: remove it)",
                 v + u.fragment_off, v);
    } else {
        return 0;
    }
    return -1;
}

/* A HOST:PORT key: parsed once, into base + k->addr_off. 0, or -1 with why filled. */
static int
set_hostport(const struct conf_key *k, void *base, const char *v, char *why, size_t why_len)
{
    struct hostport hp;
    unsigned flags = k->type == CONF_V_BIND ? HOSTPORT_EMPTY_HOST : 0;
    enum hostport_status st = hostport_parse(v, strlen(v), flags, 0, &hp);
    if (st == HOSTPORT_RANGE) {
        snprintf(why, why_len, "port out of range (1 to 65535) in \"%s\"", v);
    } else if (st != HOSTPORT_OK) {
        snprintf(why, why_len, "invalid address \"%s\" (want HOST:PORT or [IPV6]:PORT)", v);
    } else {
        *(struct hostport *)((char *)base + k->addr_off) = hp;
        return 0;
    }
    return -1;
}

/* Checks a string-valued key (and parses an address into its typed field); 0 if v is
 * acceptable for its type. */
static int
check_string(const struct conf_key *k, void *base, const char *v, char *why, size_t why_len)
{
    if (v[0] == '\0') {
        snprintf(why, why_len, "empty value");
        return -1;
    }
    if (k->type == CONF_V_URL) {
        return check_url(v, why, why_len);
    }
    if (k->type == CONF_V_BIND || k->type == CONF_V_HOSTPORT) {
        return set_hostport(k, base, v, why, why_len);
    }
    return 0;
}

int
conf_key_set(const struct conf_key *k, void *base, const char *value, char *why, size_t why_len)
{
    void *dst = (char *)base + k->offset;
    switch (k->type) {
    case CONF_V_DURATION:
    case CONF_V_INT:
    case CONF_V_SIZE_KB:
    case CONF_V_SIZE_MB:
        return set_number(k, dst, value, why, why_len);
    case CONF_V_BOOL:
        if (value_bool(value, dst) != VALUE_OK) {
            snprintf(why, why_len, "invalid boolean \"%s\" (want true or false)", value);
            return -1;
        }
        return 0;
    case CONF_V_LOG_LEVEL:
    case CONF_V_LOG_FORMAT:
    case CONF_V_CONSISTENCY:
    case CONF_V_PRECISION:
    case CONF_V_QUERY:
    case CONF_V_ENCODING:
        return set_enum(k, dst, value, why, why_len);
    case CONF_V_STRING:
    case CONF_V_URL:
    case CONF_V_BIND:
    case CONF_V_HOSTPORT:
        if (check_string(k, base, value, why, why_len) != 0) {
            return -1;
        }
        free(*(char **)dst);
        *(char **)dst = xstrdup(value);
        return 0;
    }
    return -1;
}
