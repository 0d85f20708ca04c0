/* The one PEM reader: splits a combined PEM file (the Go relay's ssl-combined-pem: certificate
 * chain and private key in one file) into the chain and the key, as Go's tls.X509KeyPair reads
 * it: blocks labelled CERTIFICATE form the chain in file order; the key is the block labelled
 * PRIVATE KEY or "<KIND> PRIVATE KEY" (RSA, EC, DSA, ENCRYPTED ...); other blocks (EC PARAMETERS,
 * DH PARAMETERS) and text between blocks are ignored. Used by --check-config (conf/conf_check.c)
 * and at start (http/server.c), so both give the same answer. Main thread; no logging. */
#ifndef IR_UTIL_PEM_H
#define IR_UTIL_PEM_H

#include <stddef.h>

#include "util/err.h"

/* A file bigger than this is not a certificate chain and a key. */
#define PEM_MAX_BYTES ((size_t)1024 * 1024)

struct pem_pair {
    char *cert; /* owned, NUL-terminated: every CERTIFICATE block, each ending in '\n' */
    char *key;  /* owned, NUL-terminated: the private key block, ending in '\n' */
};

/* Reads path into *out. 0, or -1 with err->msg saying what is wrong, naming the file (cannot
 * read it, no certificate, no private key, more than one private key, a block without its END
 * line); then out holds nothing. err->line is left 0. */
int pem_load_pair(const char *path, struct pem_pair *out, struct ir_err *err) IR_WARN_UNUSED;
/* Splits text[0..len) the same way; what = the file's name for messages. Pure. */
int pem_split_pair(const char *text, size_t len, const char *what, struct pem_pair *out,
                   struct ir_err *err) IR_WARN_UNUSED;
/* Frees what out owns; out is empty afterwards. */
void pem_pair_cleanup(struct pem_pair *out);

#endif
