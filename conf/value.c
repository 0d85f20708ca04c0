#include "conf/value.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/hostport.h"

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
    /* Rounded up, but rounding never pushes a value out of the range. */
    int64_t v = ns / 1000000;
    if (ns % 1000000 != 0 && v < max_ms) {
        v++;
    }
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
    struct value_url u;
    memset(&u, 0, sizeof(u));
    size_t i = url_scheme(s, &u.https);
    if (i == 0) {
        return VALUE_INVALID;
    }
    size_t end = i + strcspn(s + i, "/?#");
    for (size_t k = end; s[k] != '\0'; k++) {
        if ((unsigned char)s[k] <= ' ' || s[k] == 0x7f) {
            return VALUE_INVALID;
        }
    }
    size_t auth = i;
    for (size_t k = i; k < end; k++) {
        if (s[k] == '@') {
            auth = k + 1; /* user:password@ */
        }
    }
    u.userinfo_off = i;
    u.userinfo_len = auth - i;
    enum hostport_status st =
            hostport_parse(s + auth, end - auth, HOSTPORT_PORT_OPTIONAL, u.https ? 443 : 80, &u.hp);
    if (st != HOSTPORT_OK) {
        return st == HOSTPORT_RANGE ? VALUE_RANGE : VALUE_INVALID;
    }
    const char *hash = strchr(s + end, '#');
    u.fragment_off = hash != NULL ? (size_t)(hash - s) : 0;
    *out = u;
    return VALUE_OK;
}

const char *
value_url_redacted(const char *s, char *buf, size_t len)
{
    const char *sep = strstr(s, "://");
    const char *auth = sep != NULL ? sep + 3 : NULL;
    const char *end = auth != NULL ? auth + strcspn(auth, "/?#") : NULL;
    const char *at = NULL;
    for (const char *p = auth; p != NULL && p < end; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL) {
        snprintf(buf, len, "%s", s);
    } else {
        /* As Go's url.URL.Redacted(): the user stays, the password does not. */
        snprintf(buf, len, "%.*sxxxxx%s", (int)(colon + 1 - s), s, at);
    }
    return buf;
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
