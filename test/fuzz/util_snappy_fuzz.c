/* libFuzzer target for util/snappy.c: snappy_block_is_valid() on arbitrary bytes against a
 * reference decoder written here the way Go's snappy.Decode is (it builds the output and copies
 * byte by byte). Checks, besides ASan/UBSan: both give the same verdict, and for a valid block
 * the same decoded length. Blocks declaring more than REF_MAX bytes are checked by the
 * validator alone (sanitizers only). The snappy source is compiled into this target so that it
 * gets ASan and UBSan with the coverage instrumentation (see lp_fuzz.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/snappy.c" /* NOLINT(bugprone-suspicious-include): see above */

#define REF_MAX (1u << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The header as Go reads it; 0 bytes used when invalid. */
static size_t
ref_header(const uint8_t *s, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 10) {
            return 0;
        }
        if (s[i] < 0x80) {
            if (i == 9 && s[i] > 1) {
                return 0;
            }
            *v = x | (uint64_t)s[i] << (7 * i);
            return i + 1;
        }
        x |= (uint64_t)(s[i] & 0x7f) << (7 * i);
    }
    return 0;
}

/* One copy element at src[s]; returns its size in bytes (0 when truncated). */
static size_t
ref_copy(const uint8_t *src, size_t n, size_t s, size_t *length, size_t *offset)
{
    unsigned t = src[s] & 3;
    size_t need = t == 1 ? 2 : t == 2 ? 3 : 5;
    if (n - s < need) {
        return 0;
    }
    *length = t == 1 ? 4 + (src[s] >> 2 & 7) : 1 + (src[s] >> 2);
    *offset = t == 1   ? (size_t)(src[s] & 0xe0) << 3 | src[s + 1]
              : t == 2 ? (size_t)src[s + 1] | (size_t)src[s + 2] << 8
                       : (size_t)src[s + 1] | (size_t)src[s + 2] << 8 | (size_t)src[s + 3] << 16 |
                                 (size_t)src[s + 4] << 24;
    return need;
}

/* Decodes into dst[0..dlen); true when Go would return the output. */
static bool
ref_decode(const uint8_t *src, size_t n, size_t s, uint8_t *dst, size_t dlen)
{
    size_t d = 0;
    while (s < n) {
        if ((src[s] & 3) == 0) {
            size_t x = src[s] >> 2;
            size_t head = x < 60 ? 1 : x - 58;
            if (n - s < head) {
                return false;
            }
            if (x >= 60) {
                x = 0;
                for (size_t i = 1; i < head; i++) {
                    x |= (size_t)src[s + i] << (8 * (i - 1));
                }
            }
            s += head;
            if (x + 1 > dlen - d || x + 1 > n - s) {
                return false;
            }
            memcpy(dst + d, src + s, x + 1);
            d += x + 1;
            s += x + 1;
            continue;
        }
        size_t length = 0;
        size_t offset = 0;
        size_t used = ref_copy(src, n, s, &length, &offset);
        if (used == 0 || offset == 0 || d < offset || length > dlen - d) {
            return false;
        }
        s += used;
        for (size_t end = d + length; d != end; d++) {
            dst[d] = dst[d - offset];
        }
    }
    return d == dlen;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t got_len = 0;
    bool got = snappy_block_is_valid(data, size, &got_len);
    uint64_t dlen = 0;
    size_t s = ref_header(data, size, &dlen);
    if (s == 0 || dlen > 0xffffffffULL) {
        if (got) {
            fprintf(stderr, "snappy_fuzz: bad header accepted\n");
            abort();
        }
        return 0;
    }
    if (dlen > REF_MAX) {
        return 0;
    }
    uint8_t *dst = malloc(dlen ? dlen : 1);
    bool want = ref_decode(data, size, s, dst, (size_t)dlen);
    free(dst);
    if (got != want || (got && got_len != dlen)) {
        fprintf(stderr, "snappy_fuzz: validator says %d, reference decoder %d\n", got, want);
        abort();
    }
    return 0;
}
