/* HTTPS listener material: splits the Go relay's ssl-combined-pem (certificate chain and private
 * key in one PEM file) into the two PEM texts libmicrohttpd takes. Main thread, start-up only. */
#ifndef IR_HTTP_TLS_H
#define IR_HTTP_TLS_H

#include "util/err.h"

/* Reads path and returns in *cert every non-key PEM block (the chain, in file order) and in *key
 * the private key block, both owned NUL-terminated strings (free()). 0, or -1 with err filled
 * (unreadable file, no certificate, no or several keys); then nothing is returned. */
int tls_load_combined_pem(const char *path, char **cert, char **key,
                          struct ir_err *err) IR_WARN_UNUSED;

#endif
