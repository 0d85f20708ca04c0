/* Fuzz target: conf_load_file() and conf_check() on arbitrary INI text. Every input must be
 * either loaded or refused with messages, never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf/conf_check.h"
#include "conf/conf_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    FILE *f = fmemopen((void *)(uintptr_t)data, size, "r");
    if (f == NULL) {
        return 0;
    }
    struct conf_errs errs = {NULL, 0, 0};
    struct conf *c = conf_load_file(f, "fuzz.ini", &errs);
    fclose(f);
    if (c != NULL) {
        /* The PEM check opens the named file: a FIFO or a device would stall the fuzzer. */
        for (size_t i = 0; i < c->n_http; i++) {
            free(c->http[i].ssl_combined_pem);
            c->http[i].ssl_combined_pem = NULL;
        }
        if (conf_check(c, &errs) != 0) {
            conf_errs_sort(&errs);
        }
    }
    conf_free(c);
    conf_errs_cleanup(&errs);
    return 0;
}
