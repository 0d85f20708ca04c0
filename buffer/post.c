/* Request bodies are streamed from the payloads' parts by curl's read callback, never copied
 * into one buffer. With gzip the same callback deflates the parts straight into curl's upload
 * buffer (zlib keeps its window and hash, about 256 KiB per post, allocated once), so a batch is
 * compressed once per attempt and never held whole, compressed or not; its compressed length is
 * not known before the end, so it goes with chunked transfer encoding, as Telegraf sends gzip.
 * A rewind (curl resending on a keep-alive connection the backend had closed) starts the
 * compression again from the first part. */
/* explicit_bzero() (glibc, BSD): the copy of the output's credentials is wiped on free. */
#define _DEFAULT_SOURCE /* NOLINT(bugprone-reserved-identifier) */
#include "buffer/post.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <zlib.h>

#include "util/base64.h"
#include "util/clock.h"
#include "util/xalloc.h"

#define POST_BODY_KEEP ((size_t)64 * 1024)
#define GZIP_LEVEL     1
#define GZIP_WINDOW    (15 + 16) /* 32 KiB window, gzip wrapper */
#define GZIP_MEM_LEVEL 8
/* zlib counts its input in uInt: a part is fed at most this much at a time. */
#define GZIP_FEED_MAX ((size_t)1 << 30)

/* The read callback's position in a request body made of parts. Sender thread only. */
struct post_body {
    const struct post_part *parts;
    size_t n_parts;
    size_t part;         /* current part */
    size_t off;          /* offset in the current part */
    z_stream *z;         /* borrowed: the post's deflate stream when this body is gzipped */
    bool z_end;          /* the gzip stream is complete */
    bool z_failed;       /* deflate() failed: the request was aborted */
    uint64_t wire_bytes; /* handed to curl */
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
    char *auth_line;         /* owned, wiped on free: "Authorization: Basic ..." of the output's own
                              * credentials, or NULL (the client's are forwarded) */
    z_stream z;              /* the deflate stream of gzipped writes (when gzip) */
    bool gzip;               /* z is initialised */
    struct post_body body;   /* the request being sent */
    struct post_result *res; /* the result being filled */
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
    b->wire_bytes += n;
    return n;
}

/* Feeds the next piece of the parts to the deflate stream once it has used the previous one. */
static void
gzip_feed(struct post_body *b)
{
    z_stream *z = b->z;
    while (z->avail_in == 0 && b->part < b->n_parts) {
        const struct post_part *p = &b->parts[b->part];
        size_t n = p->len - b->off;
        n = n > GZIP_FEED_MAX ? GZIP_FEED_MAX : n;
        z->next_in = (const Bytef *)p->data + b->off;
        z->avail_in = (uInt)n;
        b->off += n;
        if (b->off == p->len) {
            b->part++;
            b->off = 0;
        }
    }
}

/* The gzip stream of the parts, deflated straight into curl's buffer. Returns 0 only once the
 * stream is complete (curl's end of body). */
static size_t
on_read_gzip(char *dst, size_t size, size_t nmemb, void *ud)
{
    struct post_body *b = ud;
    z_stream *z = b->z;
    size_t room = size * nmemb;
    room = room > UINT_MAX ? UINT_MAX : room;
    z->next_out = (Bytef *)dst;
    z->avail_out = (uInt)room;
    while (z->avail_out > 0 && !b->z_end) {
        gzip_feed(b);
        bool last = z->avail_in == 0 && b->part == b->n_parts;
        int rc = deflate(z, last ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            b->z_end = true;
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            b->z_failed = true;
            return CURL_READFUNC_ABORT;
        }
    }
    size_t n = room - z->avail_out;
    b->wire_bytes += n;
    return n;
}

/* curl rewinds the body when it retries a request on a keep-alive connection that turned out to
 * be closed by the backend. A gzip stream starts again from the beginning. */
static int
on_seek(void *ud, curl_off_t offset, int origin)
{
    struct post_body *b = ud;
    if (origin != SEEK_SET || offset < 0) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    if (b->z != NULL) {
        if (offset != 0 || deflateReset(b->z) != Z_OK) {
            return CURL_SEEKFUNC_CANTSEEK;
        }
        b->z->avail_in = 0;
        b->part = 0;
        b->off = 0;
        b->z_end = false;
        return CURL_SEEKFUNC_OK;
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

/* The output's credentials and content encoding. 0, or -1 with err filled. */
static int
post_set_options(struct post *p, const struct post_conf *c, struct ir_err *err)
{
    if (c->username != NULL) {
        const char *pw = c->password != NULL ? c->password : "";
        char *basic = base64_basic(c->username, strlen(c->username), pw, strlen(pw));
        size_t n = sizeof("Authorization: ") + strlen(basic);
        p->auth_line = xmalloc(n);
        snprintf(p->auth_line, n, "Authorization: %s", basic);
        explicit_bzero(basic, strlen(basic));
        free(basic);
    }
    if (c->gzip) {
        if (deflateInit2(&p->z, GZIP_LEVEL, Z_DEFLATED, GZIP_WINDOW, GZIP_MEM_LEVEL,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            ir_err_set(err, 0, "cannot set up gzip compression (out of memory)");
            return -1;
        }
        p->gzip = true;
    }
    return 0;
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
    if (post_set_options(p, c, err) != 0) {
        post_free(p);
        return NULL;
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
    if (p->auth_line != NULL) {
        explicit_bzero(p->auth_line, strlen(p->auth_line));
        free(p->auth_line);
    }
    if (p->gzip) {
        deflateEnd(&p->z);
    }
    free(p);
}

/* Headers of a forwarded payload: Authorization (the output's own credentials, or the client's
 * when it sent one), the kind's own Content-Type (and Content-Encoding) and, for a gzipped
 * write, Content-Encoding: gzip and chunked transfer encoding; curl's default Accept and
 * Expect: 100-continue are removed. */
static struct curl_slist *
write_headers(const struct post *p, enum payload_kind k, const char *auth, bool gzip)
{
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, KINDS[k].ctype);
    if (KINDS[k].encoding != NULL) {
        h = curl_slist_append(h, KINDS[k].encoding);
    }
    if (gzip) {
        h = curl_slist_append(h, "Content-Encoding: gzip");
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
    }
    h = curl_slist_append(h, "Accept:");
    h = curl_slist_append(h, "Expect:");
    if (p->auth_line != NULL) {
        h = curl_slist_append(h, p->auth_line);
    } else if (auth != NULL) {
        size_t n = strlen(auth) + sizeof("Authorization: ");
        char *line = xmalloc(n);
        snprintf(line, n, "Authorization: %s", auth);
        h = curl_slist_append(h, line);
        free(line);
    }
    return h;
}

/* Whether the "key=value" pair at q[0..n) is a credential parameter (u or p). */
static bool
is_credential(const char *q, size_t n)
{
    return n >= 2 && (q[0] == 'u' || q[0] == 'p') && q[1] == '=';
}

/* location + '?' + query; without_credentials: the query's u and p parameters left out. */
static char *
write_url(const char *location, const char *query, bool without_credentials)
{
    size_t qlen = query != NULL ? strlen(query) : 0;
    size_t n = strlen(location) + 1 + qlen + 1;
    char *url = xmalloc(n);
    size_t o = (size_t)snprintf(url, n, "%s", location);
    char sep = strchr(location, '?') != NULL ? '&' : '?';
    for (size_t i = 0; i < qlen;) {
        size_t len = strcspn(query + i, "&");
        if (len > 0 && !(without_credentials && is_credential(query + i, len))) {
            url[o++] = sep;
            memcpy(url + o, query + i, len);
            o += len;
            sep = '&';
        }
        i += len + (query[i + len] == '&');
    }
    url[o] = '\0';
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

/* Runs the prepared request and fills res. body_len: the bytes of the request body, -1 when
 * it is a gzip stream of unknown length. */
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
    res->wire_bytes = p->body.wire_bytes;
    if (body_len < 0) {
        /* Chunked (gzip): the whole stream was produced and handed over. */
        body_len = (curl_off_t)p->body.wire_bytes;
        res->sent = p->body.z_end;
    } else {
        res->sent = true;
    }
    res->sent = res->sent && curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK &&
                up >= body_len;
    if (rc != CURLE_OK) {
        const char *why = p->errbuf[0] != '\0' ? p->errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_ABORTED_BY_CALLBACK) {
            why = p->body.z_failed ? "gzip compression failed"
                                   : "request aborted at the shutdown deadline"; /* on_progress() */
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
    /* Only line protocol is gzipped: a Prometheus body is snappy already, and influxd reads
     * neither it nor a /query form through Content-Encoding. */
    bool gzip = p->gzip && req->kind == PAYLOAD_WRITE;
    if (gzip && deflateReset(&p->z) != Z_OK) {
        snprintf(res->error, sizeof(res->error), "cannot reset gzip compression");
        return -1;
    }
    p->body = (struct post_body){
            .parts = req->parts, .n_parts = req->n_parts, .z = gzip ? &p->z : NULL};
    p->z.avail_in = 0;
    char *url = write_url(p->url[req->kind], req->query, p->auth_line != NULL);
    struct curl_slist *hdrs = write_headers(p, req->kind, req->auth, gzip);
    CURL *h = p->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, gzip ? on_read_gzip : on_read);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, gzip ? (curl_off_t)-1 : total);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    set_timeout(p, req->timeout_ms);
    int rc = post_perform(p, gzip ? -1 : total, res);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

int
post_ping(struct post *p, struct post_result *res)
{
    memset(res, 0, sizeof(*res));
    p->body = (struct post_body){.parts = NULL};
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
