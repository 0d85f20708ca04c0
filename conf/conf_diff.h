/* Comparing two configuration trees for a reload: finding a section by name, and telling
 * whether a section's settings changed, key by key, from the key tables (conf/conf_keys.c), so a
 * key added to a table is compared without further code. Pure functions; any thread. */
#ifndef IR_CONF_CONF_DIFF_H
#define IR_CONF_CONF_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "conf/conf_keys.h"

/* The section called name in c (or in relay h / u), or NULL. All borrowed. */
const struct conf_http *conf_find_http(const struct conf *c, const char *name);
const struct conf_http_output *conf_find_http_output(const struct conf_http *h, const char *name);
const struct conf_udp *conf_find_udp(const struct conf *c, const char *name);
const struct conf_udp_output *conf_find_udp_output(const struct conf_udp *u, const char *name);

/* True when a and b (two sections of kind: struct conf, conf_http, conf_http_output, conf_udp or
 * conf_udp_output) hold the same value for k. */
bool conf_key_equal(const struct conf_key *k, const void *a, const void *b);
/* True when a and b hold the same value for every key of kind's table (names, lines and the
 * outputs of a relay are not compared). */
bool conf_section_equal(enum conf_section_kind kind, const void *a, const void *b);
/* The names of the keys of kind's table whose values differ, comma-separated into out (len
 * bytes, truncated to fit, "" when none). Returns how many differ. A value a section gets at
 * load from outside the file (the content of a file a key names) is not in a key table: it
 * must be compared here as well, or a reload keeps using the old one for an unchanged key. */
size_t conf_section_diff(enum conf_section_kind kind, const void *a, const void *b, char *out,
                         size_t len);

#endif
