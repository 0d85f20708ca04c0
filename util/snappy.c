/* The decoder of github.com/golang/snappy (the versions influxd 1.6 and 1.8 vendor: decode.go and
 * decode_other.go, whose amd64 assembly does the same checks), with the output left out: only
 * the output position is tracked, which is all its checks look at. Go's rules, kept here:
 * - the header is a uvarint as encoding/binary reads it (non-minimal forms accepted; more than
 *   10 bytes, or a 10th byte above 1, is an overflow) whose value is at most 0xffffffff;
 * - a literal of 1 to 2^32 bytes must fit in what is left of the input and of the output;
 * - a copy (1, 2 or 4 bytes of offset) needs 0 < offset <= bytes decoded so far and must fit in
 *   what is left of the output (a copy may overlap its own output: offset < length is fine);
 * - the decoded length must equal the header's; trailing bytes are read as more tags. */
#include "util/snappy.h"

#define TAG_LITERAL 0
#define TAG_COPY1   1
#define TAG_COPY2   2
#define TAG_COPY4   3

/* A uvarint as Go's binary.Uvarint reads it; false when it is truncated or overflows. */
static bool
read_uvarint(const unsigned char *s, size_t len, uint64_t *v, size_t *used)
{
    uint64_t x = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        unsigned char b = s[i];
        if (b < 0x80) {
            if (i == 9 && b > 1) {
                return false;
            }
            *v = x | (uint64_t)b << (7 * i);
            *used = i + 1;
            return true;
        }
        x |= (uint64_t)(b & 0x7f) << (7 * i);
    }
    return false; /* truncated, or an 11th byte: an overflow either way */
}

/* n little-endian bytes at s (n <= 4). */
static uint64_t
read_le(const unsigned char *s, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x |= (uint64_t)s[i] << (8 * i);
    }
    return x;
}

/* The element at src[*s]: advances *s past it and *d by the bytes it decodes to. False when Go
 * would refuse it. */
static bool
step(const unsigned char *src, size_t len, size_t *s, uint64_t *d, uint64_t dlen)
{
    unsigned tag = src[*s];
    size_t left = len - *s;
    uint64_t length = 0;
    uint64_t offset = 0;
    switch (tag & 3) {
    case TAG_LITERAL: {
        uint64_t x = tag >> 2;
        size_t head = x < 60 ? 1 : 1 + (size_t)(x - 59);
        if (head > left) {
            return false;
        }
        if (x >= 60) {
            x = read_le(src + *s + 1, head - 1);
        }
        length = x + 1;
        if (length > dlen - *d || length > left - head) {
            return false;
        }
        *s += head + (size_t)length;
        *d += length;
        return true;
    }
    case TAG_COPY1:
        if (left < 2) {
            return false;
        }
        length = 4 + ((tag >> 2) & 7);
        offset = (uint64_t)(tag & 0xe0) << 3 | src[*s + 1];
        *s += 2;
        break;
    case TAG_COPY2:
        if (left < 3) {
            return false;
        }
        length = 1 + (tag >> 2);
        offset = read_le(src + *s + 1, 2);
        *s += 3;
        break;
    default: /* TAG_COPY4 */
        if (left < 5) {
            return false;
        }
        length = 1 + (tag >> 2);
        offset = read_le(src + *s + 1, 4);
        *s += 5;
        break;
    }
    if (offset == 0 || *d < offset || length > dlen - *d) {
        return false;
    }
    *d += length;
    return true;
}

bool
snappy_block_is_valid(const unsigned char *src, size_t len, uint64_t *decoded_len)
{
    uint64_t dlen = 0;
    size_t s = 0;
    if (!read_uvarint(src, len, &dlen, &s) || dlen > 0xffffffffULL) {
        return false;
    }
    uint64_t d = 0;
    while (s < len) {
        if (!step(src, len, &s, &d, dlen)) {
            return false;
        }
    }
    if (d != dlen) {
        return false;
    }
    if (decoded_len != NULL) {
        *decoded_len = dlen;
    }
    return true;
}
