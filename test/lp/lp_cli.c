/* A by-hand helper for test/lp/diff_influxd.py (not built by CMake): reads records "4-byte
 * little-endian length, 1 byte enum lp_prec, body" on stdin and prints, per record,
 * "<points> <dropped> <errors as hex>\n". Build (from the repo root):
 *   cc -O1 -g -fsanitize=address,undefined -D_POSIX_C_SOURCE=200809L -I. -o /tmp/lp_cli \
 *      test/lp/lp_cli.c lp/lp.c lp/scan.c util/strconv.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lp/lp.h"

int
main(void)
{
    static char buf[1 << 24];
    unsigned char hdr[5];
    while (fread(hdr, 1, sizeof(hdr), stdin) == sizeof(hdr)) {
        uint32_t n = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
        if (n > sizeof(buf) || fread(buf, 1, n, stdin) != n || hdr[4] > LP_PREC_H) {
            return 1;
        }
        struct lp_result r;
        if (lp_process(buf, n, (enum lp_prec)hdr[4], 1700000000000000000LL, &r) != 0) {
            return 2;
        }
        printf("%zu %zu ", r.points, r.dropped);
        for (size_t i = 0; i < r.errors_len; i++) {
            printf("%02x", (unsigned char)r.errors[i]);
        }
        printf("\n");
        fflush(stdout);
        lp_result_cleanup(&r);
    }
    return 0;
}
