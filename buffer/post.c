#include "buffer/post.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "util/clock.h"
#include "util/xalloc.h"

#define POST_BODY_KEEP ((size_t)64 * 1024)

/* The read callback's position in a request body made of parts. Sender thread only. */
struct post_body {
    const struct post_part *parts;
    size_t n_parts;
    size_t part; /* current part */
    size_t off;  /* offset in the current part */
};

/* How each payload kind goes out: the path that replaces the location's last segment (NULL:
 * the location itself) and the headers that say what the body is. */
static const struct {
    const char *path;
    const char *ctype;    /* Content-Type header line */
    const char *encoding; /* Content-Encoding header line, or NULL */
} KINDS[] = {
        [PAYLOAD_WRITE] = {NULL, "Content-Type: text/plain; charset=utf-8", NULL},
        [PAYLOAD_PROM] = {"api/v1/prom/write", "Content-Type: application/x-protobuf",
                          "Content-Encoding: snappy"},
        [PAYLOAD_QUERY] = {"query", "Content-Type: application/x-www-form-urlencoded", NULL},
};
#define N_KINDS (sizeof(KINDS) / sizeof(KINDS[0]))

struct post {
    CURL *curl;                         /* sender thread only, for the post's whole life */
    char errbuf[CURL_ERROR_SIZE];       /* CURLOPT_ERRORBUFFER */
    char *url[N_KINDS];                 /* owned: post_url_of() per kind */
    char *ping_url;                     /* owned */
    int64_t timeout_ms;                 /* the configured whole-request timeout */
    const _Atomic int64_t *abort_at_ms; /* borrowed */
    struct post_body body;              /* the request being sent */
    struct post_result *res;            /* the result being filled */
};

int
post_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
post_global_cleanup(void)
{
    curl_global_cleanup();
}

/* location with its last path segment replaced by seg (and its query string dropped):
 * http://h:8086/write -> http://h:8086/<seg>, http://h/influx/write -> http://h/influx/<seg>,
 * http://h:8086 -> http://h:8086/<seg>. */
static char *
url_beside(const char *location, const char *seg)
{
    const char *q = strchr(location, '?');
    size_t len = q != NULL ? (size_t)(q - location) : strlen(location);
    const char *scheme = strstr(location, "://");
    const char *host = scheme != NULL ? scheme + 3 : location;
    const char *slash = memchr(host, '/', len - (size_t)(host - location));
    size_t keep = len;
    if (slash != NULL) {
        for (keep = len; location[keep - 1] != '/'; keep--) {
        }
        keep--; /* drop the '/' too; it comes back below */
    }
    size_t n = strlen(seg);
    char *url = xmalloc(keep + 1 + n + 1);
    memcpy(url, location, keep);
    url[keep] = '/';
    memcpy(url + keep + 1, seg, n + 1);
    return url;
}

char *
post_url_of(const char *location, enum payload_kind k)
{
    return KINDS[k].path == NULL ? xstrdup(location) : url_beside(location, KINDS[k].path);
}

static size_t
on_read(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct post_body *b = ud;
    size_t room = size * nmemb;
    size_t n = 0;
    while (n < room && b->part < b->n_parts) {
        const struct post_part *p = &b->parts[b->part];
        size_t chunk = p->len - b->off;
        if (chunk > room - n) {
            chunk = room - n;
        }
        memcpy(dst + n, p->data + b->off, chunk);
        n += chunk;
        b->off += chunk;
        if (b->off == p->len) {
            b->part++;
            b->off = 0;
        }
    }
    return n;
}

/* curl rewinds the body when it retries a request on a keep-alive connection that turned out to
 * be closed by the backend. */
static int
on_seek(void *ud, curl_off_t offset, int origin)
{
    struct post_body *b = ud;
    if (origin != SEEK_SET || offset < 0) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    size_t left = (size_t)offset;
    b->part = 0;
    b->off = 0;
    while (b->part < b->n_parts && left >= b->parts[b->part].len) {
        left -= b->parts[b->part].len;
        b->part++;
    }
    b->off = left;
    return left > 0 && b->part == b->n_parts ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

static size_t
on_write(char *src, size_t size, size_t nmemb, void *ud)
{
    struct post_result *r = ud;
    size_t n = size * nmemb;
    size_t keep = n;
    if (r->body_len + keep > POST_BODY_KEEP) {
        keep = POST_BODY_KEEP - r->body_len;
    }
    if (keep > 0) {
        r->body = xrealloc(r->body, r->body_len + keep + 1);
        memcpy(r->body + r->body_len, src, keep);
        r->body_len += keep;
        r->body[r->body_len] = '\0';
    }
    return n;
}

static int
on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    const struct post *p = ud;
    int64_t at = p->abort_at_ms != NULL ? atomic_load(p->abort_at_ms) : 0;
    return at > 0 && clock_mono_ms() >= at ? 1 : 0;
}

struct post *
post_new(const struct post_conf *c, struct ir_err *err)
{
    struct post *p = xcalloc(1, sizeof(*p));
    p->curl = curl_easy_init();
    if (p->curl == NULL) {
        ir_err_set(err, 0, "curl_easy_init failed");
        free(p);
        return NULL;
    }
    for (size_t k = 0; k < N_KINDS; k++) {
        p->url[k] = post_url_of(c->location, (enum payload_kind)k);
    }
    p->ping_url = url_beside(c->location, "ping");
    p->timeout_ms = c->timeout_ms;
    p->abort_at_ms = c->abort_at_ms;
    CURL *h = p->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->errbuf);
    /* Never a proxy: curl reads http_proxy, HTTPS_PROXY and ALL_PROXY from the environment, and
     * a proxy would receive every write with its credentials. An empty CURLOPT_PROXY turns
     * that off (checked with Debian 12's libcurl 7.88 by it.sender_defects). */
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &p->body);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &p->body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    /* One read callback and one send() per 512 KiB instead of per 64 KiB (curl's default):
     * large batches are the relay's bulk traffic. curl allocates it on the first upload. */
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    if (c->skip_tls_verification) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return p;
}

void
post_free(struct post *p)
{
    if (p == NULL) {
        return;
    }
    curl_easy_cleanup(p->curl);
    for (size_t k = 0; k < N_KINDS; k++) {
        free(p->url[k]);
    }
    free(p->ping_url);
    free(p);
}

/* Headers of a forwarded payload: only Authorization (when the client sent one) and the kind's
 * own Content-Type (and Content-Encoding); curl's default Accept and Expect: 100-continue are
 * removed. */
static struct curl_slist *
write_headers(enum payload_kind k, const char *auth)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, KINDS[k].ctype);
    if (KINDS[k].encoding != NULL) {
        h = curl_slist_append(h, KINDS[k].encoding);
    }
    h = curl_slist_append(h, "Accept:");
    h = curl_slist_append(h, "Expect:");
    if (auth != NULL) {
        size_t n = strlen(auth) + sizeof("Authorization: ");
        char *line = xmalloc(n);
        snprintf(line, n, "Authorization: %s", auth);
        h = curl_slist_append(h, line);
        free(line);
    }
    return h;
}

static char *
write_url(const char *location, const char *query)
{
    if (query == NULL || query[0] == '\0') {
        return xstrdup(location);
    }
    char sep = strchr(location, '?') != NULL ? '&' : '?';
    size_t n = strlen(location) + 1 + strlen(query) + 1;
    char *url = xmalloc(n);
    snprintf(url, n, "%s%c%s", location, sep, query);
    return url;
}

/* Sets the whole-request (and connect) timeout: timeout_ms, at most the configured one. */
static void
set_timeout(struct post *p, int64_t timeout_ms)
{
    int64_t t = timeout_ms > 0 && timeout_ms < p->timeout_ms ? timeout_ms : p->timeout_ms;
    curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, (long)t);
    curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)t);
}

/* A 3xx: the relay does not follow redirects; say where it points, for the operator. */
static void
note_redirect(CURL *h, struct post_result *res)
{
    char *to = NULL;
    if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &to) == CURLE_OK && to != NULL) {
        snprintf(res->error, sizeof(res->error), "redirects to %s", to);
    } else {
        snprintf(res->error, sizeof(res->error), "a redirect without a Location");
    }
}

/* Runs the prepared request and fills res. body_len: the bytes of the request body. */
static int
post_perform(struct post *p, curl_off_t body_len, struct post_result *res)
{
    CURL *h = p->curl;
    p->errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_WRITEDATA, res);
    CURLcode rc = curl_easy_perform(h);
    curl_off_t us = 0;
    if (curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK) {
        res->duration_us = (int64_t)us;
    }
    curl_off_t up = 0;
    res->sent = curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK && up >= body_len;
    if (rc != CURLE_OK) {
        const char *why = p->errbuf[0] != '\0' ? p->errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_ABORTED_BY_CALLBACK) {
            why = "request aborted at the shutdown deadline"; /* on_progress() */
        }
        long info = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &info);
        if (info >= 100 && info < 200) {
            /* curl waits past an informational answer for the final one: none came. */
            int n = snprintf(res->error, sizeof(res->error),
                             "answered %ld and nothing after it, not a write endpoint (check "
                             "location): ",
                             info);
            size_t at = n > 0 && (size_t)n < sizeof(res->error) ? (size_t)n : 0;
            snprintf(res->error + at, sizeof(res->error) - at, "%.*s",
                     (int)(sizeof(res->error) - at - 1), why);
        } else {
            snprintf(res->error, sizeof(res->error), "%s", why);
        }
        res->status = 0;
        res->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        return -1;
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    res->status = (int)code;
    if (code >= 300 && code < 400) {
        note_redirect(h, res);
    }
    char *ct = NULL;
    if (curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL) {
        res->ctype = xstrdup(ct);
    }
    return 0;
}

int
post_write(struct post *p, const struct post_request *req, struct post_result *res)
{
    memset(res, 0, sizeof(*res));
    curl_off_t total = 0;
    for (size_t i = 0; i < req->n_parts; i++) {
        total += (curl_off_t)req->parts[i].len;
    }
    p->body = (struct post_body){.parts = req->parts, .n_parts = req->n_parts};
    char *url = write_url(p->url[req->kind], req->query);
    struct curl_slist *hdrs = write_headers(req->kind, req->auth);
    CURL *h = p->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, total);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    set_timeout(p, req->timeout_ms);
    int rc = post_perform(p, total, res);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

int
post_ping(struct post *p, struct post_result *res)
{
    memset(res, 0, sizeof(*res));
    CURL *h = p->curl;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept:");
    curl_easy_setopt(h, CURLOPT_URL, p->ping_url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    set_timeout(p, 0);
    int rc = post_perform(p, 0, res);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}

void
post_result_cleanup(struct post_result *res)
{
    free(res->body);
    free(res->ctype);
    res->body = NULL;
    res->ctype = NULL;
}
