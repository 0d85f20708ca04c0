/* A small TOML (v0.4) reader for influxdb-relay-convert: enough for every config the Go relay
 * (BurntSushi/toml) accepts. Tables, arrays of tables ([[a.b]]), key/value pairs with bare or
 * quoted keys, strings (basic, literal, multi-line, all escapes), integers (with _ and a sign),
 * booleans, arrays and inline tables, comments, LF or CRLF. Floats and dates are refused with
 * a message (no Go relay key takes them). libc only; not thread-safe is never an issue: pure. */
#ifndef IR_TOOLS_TOML_H
#define IR_TOOLS_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum toml_type { TOML_STRING, TOML_INT, TOML_BOOL, TOML_ARRAY, TOML_TABLE };

struct toml_kv;

struct toml_value {
    enum toml_type type;
    int line;                 /* where the value starts (a table: its header or its '{') */
    char *str;                /* TOML_STRING, owned, NUL-terminated (a \u0000 escape is refused) */
    int64_t i;                /* TOML_INT */
    bool b;                   /* TOML_BOOL */
    struct toml_value *items; /* TOML_ARRAY, owned */
    size_t n_items;
    bool table_array;    /* TOML_ARRAY made by [[...]] headers */
    struct toml_kv *kvs; /* TOML_TABLE, owned, in file order */
    size_t n_kvs;
    bool defined; /* TOML_TABLE: has its own [header] or is inline (not just implied) */
};

struct toml_kv {
    char *key; /* owned */
    int line;
    struct toml_value v;
};

struct toml_err {
    int line;
    char msg[256];
};

/* Parses text[0..len). Returns the root table (owned; free with toml_free()), or NULL with
 * *err filled (the first problem: TOML has no recovery). */
struct toml_value *toml_parse(const char *text, size_t len, struct toml_err *err);

/* NULL is a no-op. */
void toml_free(struct toml_value *root);

/* The name of a type for messages: "string", "integer", ... */
const char *toml_type_name(enum toml_type t);

#endif
