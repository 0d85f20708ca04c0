/* The key tables: one table per section kind, naming each key's type, where it is stored in
 * the conf structs, its default and its range. Defaults live only here. Pure data plus the
 * functions that apply a table to a struct; no I/O, any thread. */
#ifndef IR_CONF_CONF_KEYS_H
#define IR_CONF_CONF_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum conf_section_kind {
    CONF_SEC_RELAY,       /* [relay] -> struct conf */
    CONF_SEC_HTTP,        /* [http.R] -> struct conf_http */
    CONF_SEC_HTTP_OUTPUT, /* [http.R.output.B] -> struct conf_http_output */
    CONF_SEC_UDP,         /* [udp.R] -> struct conf_udp */
    CONF_SEC_UDP_OUTPUT,  /* [udp.R.output.B] -> struct conf_udp_output */
    CONF_SEC_COUNT,
};

enum conf_vtype {
    CONF_V_DURATION,    /* Go duration -> int64_t ms; min/max in ms */
    CONF_V_INT,         /* decimal -> int64_t */
    CONF_V_SIZE_KB,     /* decimal KiB -> int64_t bytes; min/max in KiB */
    CONF_V_SIZE_MB,     /* decimal MiB -> int64_t bytes; min/max in MiB */
    CONF_V_BOOL,        /* true|false -> bool */
    CONF_V_STRING,      /* non-empty -> char * (owned) */
    CONF_V_URL,         /* http(s)://HOST[:PORT]/..., no userinfo, no fragment -> char * */
    CONF_V_BIND,        /* HOST:PORT, empty host allowed -> char * + struct hostport at addr_off */
    CONF_V_HOSTPORT,    /* HOST:PORT -> char * + struct hostport at addr_off */
    CONF_V_LOG_LEVEL,   /* debug|info|warn|error -> enum log_level */
    CONF_V_LOG_FORMAT,  /* text|json -> bool (true = json) */
    CONF_V_CONSISTENCY, /* one|all|any -> enum conf_consistency */
    CONF_V_PRECISION,   /* n|ns|u|us|ms|s|m|h -> enum conf_precision */
    CONF_V_QUERY,       /* all|ddl|off -> enum conf_query */
    CONF_V_ENCODING,    /* identity|gzip -> enum conf_encoding */
};

#define CONF_KEYS_MAX 16 /* the most keys of any table */

struct conf_key {
    const char *name;
    enum conf_vtype type;
    size_t offset;   /* of the value in the section's struct */
    const char *def; /* default as written in a config; NULL = none (see required) */
    int64_t min;     /* range, in the key's own unit */
    int64_t max;
    bool required;
    size_t line_off; /* offset of an int that records the key's line; 0 = not recorded */
    size_t addr_off; /* CONF_V_BIND, CONF_V_HOSTPORT: offset of the parsed struct hostport */
};

/* The table of a section kind; *n gets its length. */
const struct conf_key *conf_keys_table(enum conf_section_kind kind, size_t *n);
/* The key called name in the table, or NULL. */
const struct conf_key *conf_keys_find(enum conf_section_kind kind, const char *name);

/* Applies every default of the table to base (a zeroed struct of the section's type). */
void conf_keys_defaults(enum conf_section_kind kind, void *base);

/* Converts value and stores it at base + k->offset (freeing a string it replaces).
 * 0, or -1 with why (e.g. `invalid duration "10x"`) filled. */
int conf_key_set(const struct conf_key *k, void *base, const char *value, char *why,
                 size_t why_len) IR_WARN_UNUSED;

#endif
