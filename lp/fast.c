#include "lp/fast.h"

#include <stdio.h>
#include <string.h>

/* This file is built twice: as itself (the base build: SSE2 on x86-64, a byte loop elsewhere)
 * and through lp/fast_avx2.c with -mavx2 -mbmi -mbmi2, which defines LP_FAST_AVX2 and gets
 * lp_fast_line_avx2() out of it. lp_fast_line() picks the build once per lp_process() call.
 * How lines are walked: lp/fast.h. */

#ifdef LP_FAST_AVX2
#define LP_FAST_LINE lp_fast_line_avx2
#define LP_FAST_RUN  lp_fast_run_avx2
#else
#define LP_FAST_LINE lp_fast_line_base
#define LP_FAST_RUN  lp_fast_run_base
#endif
/* CMake defines LP_FAST_HAVE_AVX2=1 where lp/fast_avx2.c is built (x86-64). */
#ifndef LP_FAST_HAVE_AVX2
#define LP_FAST_HAVE_AVX2 0
#endif

#if defined(__AVX2__)
#include <immintrin.h>

/* The structural bits of p[0..32): each byte's low and high nibble pick a class bit from two
 * tables, and a byte is structural when both agree. Classes: ' ' '"' ',' (high nibble 2), '='
 * (3), '\n' (0), '\\' (5). */
static inline uint64_t
mask32(const char *p)
{
    const __m256i lo_tbl = _mm256_setr_epi8(1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 9, 2, 0, 0, 1, 0, 1,
                                            0, 0, 0, 0, 0, 0, 0, 4, 0, 9, 2, 0, 0);
    const __m256i hi_tbl = _mm256_setr_epi8(4, 0, 1, 2, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1,
                                            2, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i lo = _mm256_shuffle_epi8(lo_tbl, _mm256_and_si256(x, nib));
    __m256i hi = _mm256_shuffle_epi8(hi_tbl, _mm256_and_si256(_mm256_srli_epi16(x, 4), nib));
    __m256i none = _mm256_cmpeq_epi8(_mm256_and_si256(lo, hi), _mm256_setzero_si256());
    return ~(uint64_t)(uint32_t)_mm256_movemask_epi8(none) & 0xffffffffULL;
}

static inline uint64_t
mask64(const char *p)
{
    return mask32(p) | mask32(p + 32) << 32;
}
#elif defined(__SSE2__)
#include <emmintrin.h>

static inline uint64_t
mask16(const char *p)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')),
                             _mm_cmpeq_epi8(x, _mm_set1_epi8(',')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('=')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('\n')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    return (uint64_t)(unsigned)_mm_movemask_epi8(m);
}

/* The structural bits of p[0..64). */
static inline uint64_t
mask64(const char *p)
{
    return mask16(p) | mask16(p + 16) << 16 | mask16(p + 32) << 32 | mask16(p + 48) << 48;
}
#else
static const bool structural[256] = {
        [' '] = true, [','] = true, ['='] = true, ['\n'] = true, ['"'] = true, ['\\'] = true};

static inline uint64_t
mask64(const char *p)
{
    uint64_t m = 0;
    for (unsigned k = 0; k < 64; k++) {
        m |= (uint64_t)structural[(unsigned char)p[k]] << k;
    }
    return m;
}
#endif

/* The structural bits of b[base..base+64) when fewer than 64 bytes are left: bytes past len
 * count as none. */
static uint64_t __attribute__((noinline)) mask_tail(const char *b, size_t len, size_t base)
{
    char tail[64] = {0};
    if (base < len) {
        memcpy(tail, b + base, len - base);
    }
    return mask64(tail);
}

static inline uint64_t
mask_at(const char *b, size_t len, size_t base)
{
    return __builtin_expect(base + 64 <= len, 1) ? mask64(b + base) : mask_tail(b, len, base);
}

#ifndef LP_FAST_AVX2
void
lp_fast_init(struct lp_fast *f, const char *b, size_t len, int64_t ts_mult)
{
    f->b = b;
    f->len = len;
    /* LP_MAX_NANO_TIME / ts_mult for each precision lp_prec_parse() knows. */
    static const struct {
        int64_t mult;
        const char *bound;
    } bounds[] = {
            {1, "9223372036854775806"},       {1000, "9223372036854775"},
            {1000000, "9223372036854"},       {1000000000, "9223372036"},
            {60LL * 1000000000, "153722867"}, {3600LL * 1000000000, "2562047"},
    };
    f->bound_len = 0;
    for (size_t k = 0; k < sizeof(bounds) / sizeof(bounds[0]); k++) {
        if (bounds[k].mult == ts_mult) {
            f->bound_len = strlen(bounds[k].bound);
            memcpy(f->bound, bounds[k].bound, f->bound_len + 1);
        }
    }
    if (f->bound_len == 0) {
        int n = snprintf(f->bound, sizeof(f->bound), "%lld",
                         (long long)(LP_MAX_NANO_TIME / ts_mult));
        f->bound_len = (size_t)n;
    }
    f->avx2 = LP_FAST_HAVE_AVX2 && __builtin_cpu_supports("avx2") &&
              __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    lp_fast_seek(f, 0);
}

/* Any build's bits are the same: the base one serves. */
void
lp_fast_seek(struct lp_fast *f, size_t pos)
{
    f->base = pos;
    f->m = mask_at(f->b, f->len, pos);
}

bool
lp_fast_line(struct lp_fast *f, size_t pos, struct lp_line *ln, bool *has_ts)
{
#if LP_FAST_HAVE_AVX2
    if (f->avx2) {
        return lp_fast_line_avx2(f, pos, ln, has_ts);
    }
#endif
    return lp_fast_line_base(f, pos, ln, has_ts);
}

size_t
lp_fast_run(struct lp_fast *f, size_t pos, size_t *lines)
{
#if LP_FAST_HAVE_AVX2
    if (f->avx2) {
        return lp_fast_run_avx2(f, pos, lines);
    }
#endif
    return lp_fast_run_base(f, pos, lines);
}
#endif

/* A walk's position, kept in registers while lp_fast_line() runs. */
struct walk {
    const char *b;
    size_t len;
    size_t base;
    uint64_t m;
};

/* The next structural byte's index, or len. */
static inline size_t
walk_next(struct walk *w)
{
    while (w->m == 0) {
        w->base += 64;
        if (w->base >= w->len) {
            w->base = w->len;
            return w->len;
        }
        w->m = mask_at(w->b, w->len, w->base);
    }
    size_t i = w->base + (size_t)__builtin_ctzll(w->m);
    w->m &= w->m - 1;
    return i;
}

/* The number of ASCII digits p[0..avail) starts with. */
static inline size_t
digit_run(const char *p, size_t avail)
{
    size_t k = 0;
    while (k < avail && lp_is_digit(p[k])) {
        k++;
    }
    return k;
}

/* A number value v[0..n) (n > 0) in the shapes scan_number() accepts without a range check,
 * -?D*[.D*] with a digit and under 25 bytes, or -?D+i under 19: its verdict for them. */
static inline bool
number_bytes(const char *v, size_t n)
{
    size_t j = v[0] == '-';
    size_t digits = digit_run(v + j, n - j);
    j += digits;
    if (j == n) {
        return digits > 0 && n < LP_FLOAT_CHECK_LEN;
    }
    if (v[j] == 'i') {
        return digits > 0 && j + 1 == n && j < LP_INT_CHECK_LEN;
    }
    if (v[j] != '.') {
        return false;
    }
    j++;
    size_t frac = digit_run(v + j, n - j);
    return j + frac == n && digits + frac > 0 && n < LP_FLOAT_CHECK_LEN;
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint64_t
load8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* The bytes of x that are not ASCII digits, as their high nibbles. */
static inline uint64_t
non_digits8(uint64_t x)
{
    uint64_t t = x ^ 0x3030303030303030ULL;
    return ((t & 0xF0F0F0F0F0F0F0F0ULL) | ((t & 0x0F0F0F0F0F0F0F0FULL) + 0x0606060606060606ULL)) &
           0xF0F0F0F0F0F0F0F0ULL;
}

/* p[0..n) are all ASCII digits. */
static inline bool
all_digits(const char *p, size_t n)
{
    if (n < 8) {
        return digit_run(p, n) == n;
    }
    uint64_t nd = non_digits8(load8(p + n - 8));
    for (size_t k = 0; k + 8 < n; k += 8) {
        nd |= non_digits8(load8(p + k));
    }
    return nd == 0;
}

/* number_bytes() for n <= 8 when 8 bytes from v can be read: the value's non-digit bytes,
 * besides a leading '-', must be one 'i' at the end or one '.'. */
static inline bool
number8(const char *v, size_t n)
{
    size_t neg = v[0] == '-';
    uint64_t nd = non_digits8(load8(v)) & (~0ULL >> (64 - 8 * n)) & ~(0xFFULL * neg);
    if (nd == 0) {
        return n > neg;
    }
    size_t k = (size_t)__builtin_ctzll(nd) / 8;
    if ((nd >> (8 * k)) >> 8 != 0) {
        return false;
    }
    char c = v[k];
    return (c == 'i' && k == n - 1 && k > neg) || (c == '.' && n - 1 > neg);
}
#else
static inline bool
all_digits(const char *p, size_t n)
{
    return digit_run(p, n) == n;
}

static inline bool
number8(const char *v, size_t n)
{
    return number_bytes(v, n);
}
#endif

/* A field value v[0..n) (n > 0, followed by a structural byte or the end: avail >= n bytes
 * can be read) that scan_number()'s own fast path or scan_boolean() accepts. */
static inline bool
fast_value(const char *v, size_t n, size_t avail)
{
    char c = v[0];
    if (c == 't' || c == 'f' || c == 'T' || c == 'F') {
        return lp_is_bool_word(v, n);
    }
    return n <= 8 && avail >= 8 ? number8(v, n) : number_bytes(v, n);
}

/* A timestamp t[0..n) that scan_time() accepts at once: -?[0-9]{1,19} within the precision's
 * range. */
static inline bool
fast_time(const struct lp_fast *f, const char *t, size_t n)
{
    size_t neg = n > 0 && t[0] == '-';
    size_t nd = n - neg;
    if (nd == 0 || nd > f->bound_len || !all_digits(t + neg, nd)) {
        return false;
    }
    return nd < f->bound_len || t[neg] < f->bound[0] || memcmp(t + neg, f->bound, nd) <= 0;
}

/* First bytes that leave a line to the slow path: whitespace the point would skip, a comment,
 * an empty line, a missing measurement, and the structural bytes. */
static const bool fast_no_start[256] = {
        [' '] = true, ['\t'] = true, ['\0'] = true, ['#'] = true, ['\n'] = true,
        [','] = true, ['='] = true,  ['"'] = true,  ['\\'] = true};

/* The point of the line starting at pos, walked with w: true when it is valid and of the common
 * shape; then *e is where it ends (its '\n', or len) and *has_ts whether it has a timestamp. */
static inline __attribute__((always_inline)) bool
walk_line(struct walk *w, const struct lp_fast *f, size_t pos, size_t *e_out, bool *has_ts)
{
    const char *b = w->b;
    size_t len = w->len;
    if (fast_no_start[(unsigned char)b[pos]]) {
        return false;
    }
    size_t i = walk_next(w);
    if (i >= len) {
        return false;
    }
    if (b[i] == ',') {
        size_t prev = 0;
        size_t prev_len = 0;
        for (;;) {
            size_t k = i + 1;
            size_t q = walk_next(w);
            if (q >= len || b[q] != '=' || q == k ||
                (prev_len > 0 && lp_key_cmp(b + prev, prev_len, b + k, q - k) >= 0)) {
                return false;
            }
            prev = k;
            prev_len = q - k;
            i = walk_next(w);
            if (i >= len || i == q + 1 || (b[i] != ',' && b[i] != ' ')) {
                return false;
            }
            if (b[i] == ' ') {
                break;
            }
        }
    } else if (b[i] != ' ') {
        return false;
    }
    char c;
    do {
        size_t k = i + 1;
        size_t q = walk_next(w);
        if (q >= len || b[q] != '=' || q == k) {
            return false;
        }
        i = walk_next(w);
        if (i == q + 1 || !fast_value(b + q + 1, i - q - 1, len - q - 1)) {
            return false;
        }
        c = (char)(i < len ? b[i] : '\n');
    } while (c == ',');
    size_t e = i;
    *has_ts = c == ' ';
    if (c == ' ') {
        e = walk_next(w);
        if ((e < len && b[e] != '\n') || !fast_time(f, b + i + 1, e - i - 1)) {
            return false;
        }
    } else if (c != '\n') {
        return false;
    }
    if (e - pos > LP_MAX_KEY_LEN - 4) {
        return false; /* the key length checks are lp_parse_point()'s */
    }
    *e_out = e;
    return true;
}

bool
LP_FAST_LINE(struct lp_fast *f, size_t pos, struct lp_line *ln, bool *has_ts)
{
    struct walk w = {f->b, f->len, f->base, f->m};
    size_t e = 0;
    if (!walk_line(&w, f, pos, &e, has_ts)) {
        return false;
    }
    f->base = w.base;
    f->m = w.m;
    ln->start = pos;
    ln->end = e;
    ln->next = e < f->len ? e + 1 : f->len;
    ln->open_end = false;
    return true;
}

size_t
LP_FAST_RUN(struct lp_fast *f, size_t pos, size_t *lines)
{
    struct walk w = {f->b, f->len, f->base, f->m};
    size_t n = 0;
    while (pos < f->len) {
        struct walk at = w;
        size_t e = 0;
        bool has_ts = false;
        if (!walk_line(&w, f, pos, &e, &has_ts) || !has_ts || e >= f->len) {
            w = at;
            break;
        }
        pos = e + 1;
        n++;
    }
    f->base = w.base;
    f->m = w.m;
    *lines = n;
    return pos;
}
