#include "conf/value.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Durations follow Go's time.ParseDuration exactly (same units, same overflow rules), so a
 * value copied from a Go relay config means the same here. */
struct dur_unit {
    const char *name;
    uint64_t ns;
};

static const struct dur_unit dur_units[] = {
        {"ns", 1ULL},
        {"us", 1000ULL},
        {"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000ULL}, /* U+03BC Greek mu */
        {"ms", 1000000ULL},
        {"s", 1000000000ULL},
        {"m", 60ULL * 1000000000ULL},
        {"h", 3600ULL * 1000000000ULL},
};

#define DUR_LIMIT (1ULL << 63) /* |int64| range; the positive side is one less */

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Leading digits of *p into *v; false on overflow. Sets *any when a digit was read. */
static bool
dur_digits(const char **p, uint64_t *v, bool *any)
{
    *v = 0;
    while (is_digit(**p)) {
        if (*v > (DUR_LIMIT - 1) / 10) {
            return false;
        }
        *v = *v * 10 + (uint64_t)(**p - '0');
        if (*v > DUR_LIMIT) {
            return false;
        }
        (*p)++;
        *any = true;
    }
    return true;
}

/* The fraction digits after '.', as f / scale; digits beyond what fits are dropped (Go does
 * the same). */
static void
dur_fraction(const char **p, uint64_t *f, double *scale, bool *any)
{
    *f = 0;
    *scale = 1;
    bool overflow = false;
    while (is_digit(**p)) {
        *any = true;
        if (!overflow && *f <= (DUR_LIMIT - 1) / 10) {
            *f = *f * 10 + (uint64_t)(**p - '0');
            *scale *= 10;
        } else {
            overflow = true;
        }
        (*p)++;
    }
}

static const struct dur_unit *
dur_unit(const char **p)
{
    const char *start = *p;
    while (**p != '\0' && **p != '.' && !is_digit(**p)) {
        (*p)++;
    }
    size_t n = (size_t)(*p - start);
    for (size_t i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
        if (strlen(dur_units[i].name) == n && memcmp(dur_units[i].name, start, n) == 0) {
            return &dur_units[i];
        }
    }
    return NULL;
}

/* One "12.5ms" component added to *total. */
static enum value_status
dur_component(const char **p, uint64_t *total)
{
    bool any = false;
    uint64_t v = 0;
    uint64_t f = 0;
    double scale = 1;
    if (!is_digit(**p) && **p != '.') {
        return VALUE_INVALID;
    }
    if (!dur_digits(p, &v, &any)) {
        return VALUE_RANGE;
    }
    if (**p == '.') {
        (*p)++;
        dur_fraction(p, &f, &scale, &any);
    }
    if (!any) {
        return VALUE_INVALID;
    }
    const struct dur_unit *u = dur_unit(p);
    if (u == NULL) {
        return VALUE_INVALID;
    }
    if (v > DUR_LIMIT / u->ns) {
        return VALUE_RANGE;
    }
    v *= u->ns;
    if (f > 0) {
        v += (uint64_t)((double)f * ((double)u->ns / scale));
        if (v > DUR_LIMIT) {
            return VALUE_RANGE;
        }
    }
    *total += v;
    return *total > DUR_LIMIT ? VALUE_RANGE : VALUE_OK;
}

enum value_status
value_duration_ns(const char *s, int64_t *ns)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (strcmp(p, "0") == 0) {
        *ns = 0;
        return VALUE_OK;
    }
    if (*p == '\0') {
        return VALUE_INVALID;
    }
    uint64_t total = 0;
    while (*p != '\0') {
        enum value_status st = dur_component(&p, &total);
        if (st != VALUE_OK) {
            return st;
        }
    }
    if (!neg && total > DUR_LIMIT - 1) {
        return VALUE_RANGE;
    }
    *ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return VALUE_OK;
}

enum value_status
value_duration_ms(const char *s, int64_t min_ms, int64_t max_ms, int64_t *ms)
{
    int64_t ns = 0;
    enum value_status st = value_duration_ns(s, &ns);
    if (st != VALUE_OK) {
        return st;
    }
    if (ns < 0) {
        return VALUE_NEGATIVE;
    }
    int64_t v = ns / 1000000 + (ns % 1000000 != 0);
    if (v < min_ms || v > max_ms) {
        return VALUE_RANGE;
    }
    *ms = v;
    return VALUE_OK;
}

const char *
value_format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms < 1000) {
        snprintf(buf, len, ms == 0 ? "0s" : "%lldms", (long long)ms);
        return buf;
    }
    long long h = (long long)(ms / 3600000);
    long long m = (long long)(ms / 60000 % 60);
    long long sec = (long long)(ms / 1000 % 60);
    long long frac = (long long)(ms % 1000);
    char secs[32] = "";
    if (frac != 0) {
        snprintf(secs, sizeof(secs), "%lld.%03llds", sec, frac);
        /* Go prints the shortest fraction: 1.500s -> 1.5s. */
        char *end = secs + strlen(secs) - 2;
        while (*end == '0') {
            memmove(end, end + 1, strlen(end));
            end--;
        }
    } else if (sec != 0) {
        snprintf(secs, sizeof(secs), "%llds", sec);
    }
    if (h != 0) {
        snprintf(buf, len, m != 0 || secs[0] ? "%lldh%lldm%s" : "%lldh", h, m, secs);
    } else if (m != 0) {
        snprintf(buf, len, "%lldm%s", m, secs);
    } else {
        snprintf(buf, len, "%s", secs);
    }
    return buf;
}

enum value_status
value_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (!is_digit(*p)) {
        return VALUE_INVALID;
    }
    uint64_t v = 0;
    bool overflow = false;
    for (; is_digit(*p); p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (overflow || v > (DUR_LIMIT - d) / 10) {
            overflow = true;
        } else {
            v = v * 10 + d;
        }
    }
    if (*p != '\0') {
        return VALUE_INVALID;
    }
    if (overflow || v > DUR_LIMIT - (neg ? 0 : 1)) {
        return VALUE_RANGE;
    }
    int64_t x = neg ? (int64_t)(0 - v) : (int64_t)v;
    if (x < min || x > max) {
        return VALUE_RANGE;
    }
    *out = x;
    return VALUE_OK;
}

enum value_status
value_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        *out = s[0] == 't';
        return VALUE_OK;
    }
    return VALUE_INVALID;
}

enum value_status
value_enum(const char *s, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return VALUE_OK;
        }
    }
    return VALUE_INVALID;
}

static bool
is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
           c == '.' || c == '_';
}

static bool
is_v6_char(char c)
{
    /* Hex digits, ':' and '.', and a zone after '%' (fe80::1%eth0). */
    return is_host_char(c) || c == ':' || c == '%';
}

/* A port in s[0..n): 1-65535, digits only. */
static enum value_status
parse_port(const char *s, size_t n, int *port)
{
    if (n == 0 || n > 5) {
        return n == 0 ? VALUE_INVALID : VALUE_RANGE;
    }
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return VALUE_INVALID;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return VALUE_RANGE;
    }
    *port = v;
    return VALUE_OK;
}

/* The host part s[0..n) (brackets included for IPv6); sets offset and length without them. */
static bool
parse_host(const char *s, size_t n, size_t *off, size_t *len)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        for (size_t i = 1; i + 1 < n; i++) {
            if (!is_v6_char(s[i])) {
                return false;
            }
        }
        *off = 1;
        *len = n - 2;
        return n > 2 && memchr(s + 1, ':', n - 2) != NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_host_char(s[i])) {
            return false;
        }
    }
    *off = 0;
    *len = n;
    return true;
}

enum value_status
value_hostport(const char *s, bool empty_host_ok, struct value_addr *out)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
        return VALUE_INVALID;
    }
    size_t hn = (size_t)(colon - s);
    struct value_addr a = {0, 0, 0};
    if (!parse_host(s, hn, &a.host_off, &a.host_len)) {
        return VALUE_INVALID;
    }
    if (a.host_len == 0 && !empty_host_ok) {
        return VALUE_INVALID;
    }
    enum value_status st = parse_port(colon + 1, strlen(colon + 1), &a.port);
    if (st == VALUE_OK) {
        *out = a;
    }
    return st;
}

/* Length of the scheme prefix "http://" or "https://" (any case), 0 if neither. */
static size_t
url_scheme(const char *s, bool *https)
{
    if (strncasecmp(s, "http://", 7) == 0) {
        *https = false;
        return 7;
    }
    if (strncasecmp(s, "https://", 8) == 0) {
        *https = true;
        return 8;
    }
    return 0;
}

enum value_status
value_url(const char *s, struct value_url *out)
{
    struct value_url u = {false, 0, 0, 0};
    size_t i = url_scheme(s, &u.https);
    if (i == 0) {
        return VALUE_INVALID;
    }
    size_t auth = i;
    size_t end = auth + strcspn(s + auth, "/?#");
    for (size_t k = end; s[k] != '\0'; k++) {
        if ((unsigned char)s[k] <= ' ' || s[k] == 0x7f) {
            return VALUE_INVALID;
        }
    }
    for (size_t k = auth; k < end; k++) {
        if (s[k] == '@') {
            auth = k + 1; /* skip user:password@ */
        }
    }
    /* The port colon is the last ':' after any IPv6 bracket. */
    size_t colon = end;
    for (size_t k = auth; k < end; k++) {
        if (s[k] == ':') {
            colon = k;
        } else if (s[k] == ']') {
            colon = end;
        }
    }
    u.port = u.https ? 443 : 80;
    if (colon < end) {
        enum value_status st = parse_port(s + colon + 1, end - colon - 1, &u.port);
        if (st != VALUE_OK) {
            return st;
        }
    }
    if (!parse_host(s + auth, colon - auth, &u.host_off, &u.host_len) || u.host_len == 0) {
        return VALUE_INVALID;
    }
    u.host_off += auth;
    *out = u;
    return VALUE_OK;
}

bool
value_name_is_valid(const char *s, size_t len)
{
    if (len == 0 || len > VALUE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
              c == '-')) {
            return false;
        }
    }
    return true;
}
