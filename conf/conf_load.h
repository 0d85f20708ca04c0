/* Loading the INI configuration: syntax, sections, key tables and value conversion, through
 * inih fed by our own line-counting reader (so every problem has its line, long lines are
 * refused instead of split, and section headers are seen even without keys).
 * Main thread only. Never logs: every problem goes to the caller's struct conf_errs. */
#ifndef IR_CONF_CONF_LOAD_H
#define IR_CONF_CONF_LOAD_H

#include <stdio.h>

#include "conf/conf.h"

/* Reads path. Returns an owned tree (free with conf_free()) with every problem appended to
 * errs; the tree is usable for conf_check() even when errs->n > 0 (a bad value keeps its
 * default). Returns NULL only when the file cannot be opened or read (errs gets a line-0
 * message naming the reason). c->path is a copy of path. */
struct conf *conf_load(const char *path, struct conf_errs *errs);

/* The same from an open stream (e.g. fmemopen() in the fuzz target); path is used for
 * c->path only. Does not close f. */
struct conf *conf_load_file(FILE *f, const char *path, struct conf_errs *errs);

#endif
