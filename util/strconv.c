#include "util/strconv.h"

#include <stdbool.h>
#include <string.h>

int
strconv_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len) {
        return -1;
    }
    /* Accumulate as a negative number so INT64_MIN is representable. */
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10) {
            return -1;
        }
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN) {
            return -1;
        }
        v = -v;
    }
    if (v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int
strconv_i64z(const char *s, int64_t min, int64_t max, int64_t *out)
{
    return strconv_i64(s, strlen(s), min, max, out);
}
