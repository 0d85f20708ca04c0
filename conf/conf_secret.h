/* The credentials of HTTP outputs: the cross-checks of username, password and password-file,
 * and the reading of password files. conf_load() calls conf_secrets_load() once the outputs
 * are attached to their relays; a reload that loads the file again re-reads every password
 * file that way, and conf_output_read_password() re-reads one output's file alone. A password
 * is never put in a message. Main thread (any single thread: the functions touch only the
 * conf passed in). */
#ifndef IR_CONF_CONF_SECRET_H
#define IR_CONF_CONF_SECRET_H

#include "conf/conf.h"
#include "util/err.h"

/* The most bytes a password file may hold (a trailing newline included). */
#define CONF_PASSWORD_FILE_MAX 4096

/* Checks the credentials keys of every HTTP output of c (username needs password or
 * password-file; either needs username; not both) and reads each password-file into the
 * output's password. Adds every problem to errs as FILE:LINE-able entries. */
void conf_secrets_load(struct conf *c, struct conf_errs *errs);

/* (Re-)reads o->password_file into o->password (replacing and wiping the previous value): the
 * whole content of a regular file of at most CONF_PASSWORD_FILE_MAX bytes, one trailing "\n"
 * or "\r\n" removed. 0, or -1 with err filled (its line is o->password_file_line; the message
 * names the key and the file, never the content) and o->password unchanged. */
int conf_output_read_password(struct conf_http_output *o, struct ir_err *err) IR_WARN_UNUSED;

#endif
