/* Cross-checks of a loaded configuration: rules that span keys or sections (every relay has an
 * output, relay names unique across http and udp, no two listeners of one protocol on one
 * address, the PEM file readable and holding a certificate and a key). Main thread only.
 * Never logs: problems go to the caller's struct conf_errs. */
#ifndef IR_CONF_CONF_CHECK_H
#define IR_CONF_CONF_CHECK_H

#include "conf/conf.h"

/* Appends every problem found to errs. Returns 0 when it found none, else -1. c is borrowed.
 * Reads the PEM files; resolves no host name. */
int conf_check(const struct conf *c, struct conf_errs *errs) IR_WARN_UNUSED;

#endif
