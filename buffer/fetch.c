/* DESIGN: one fetch thread, one libcurl multi handle, every streamed fetch of the process.
 *
 * Hand-offs. A consumer never calls libcurl on a handle: fetch_start(), the resume after a
 * drain and fetch_release() queue a command on the fetcher (one list, fr->mu) and wake the
 * thread with curl_multi_wakeup(); the thread takes the whole list at the top of each turn and
 * applies it (add the easy handle, curl_easy_pause(CONT), remove it). Every curl_easy_* and
 * curl_multi_* call except curl_multi_wakeup() is made by the fetch thread.
 *
 * Body buffer. Each fetch has a ring of `cap` bytes (allocated at the first body byte) with a
 * single producer (the write callback, fetch thread) and a single consumer (fetch_read()). The
 * positions wpos and rpos only grow and are guarded by f->mu; the bytes are copied outside the
 * lock: the producer writes only into [wpos, rpos + cap) and the consumer reads only
 * [rpos, wpos), and each publishes its new position under the lock after its copy. curl hands
 * at most 16 KiB at a time and a hand-over cannot be taken in part: when it does not fit, the
 * callback returns CURL_WRITEFUNC_PAUSE (curl keeps that piece and stops reading the socket) and
 * records how much room it needs; the consumer's fetch_read() that makes that room queues the
 * resume. So the bytes held per fetch are at most cap plus curl's own receive buffer.
 *
 * Notification. fetch_head()/fetch_read() returning FETCH_AGAIN arm the fetch (f->armed, under
 * f->mu). Whatever changes next on the fetch thread (head published, bytes, end, failure) takes
 * the arm under the lock and calls notify without it: one call per FETCH_AGAIN, never a spurious
 * one. fetch_release() disarms and, when notify is running on another thread, waits for it to
 * return (f->in_notify, f->cv): once fetch_release() returns, notify is never called again.
 *
 * Lifetime. A fetch is reference-counted: one reference for the consumer (dropped by
 * fetch_release()), one while it sits in the command list, one while the fetch thread has it
 * in the multi handle. Whoever drops the last frees it; the easy handle is always cleaned up by
 * the fetch thread before its reference goes.
 *
 * Timeouts. Connect: curl's CURLOPT_CONNECTTIMEOUT_MS. Idle: the fetch thread keeps, per
 * active fetch, the monotonic ms at which it fails when nothing arrives; bytes push it back,
 * pausing clears it (the consumer is then the one holding the transfer up) and the resume sets it
 * again. The thread scans the active list once per turn (a few hundred fetches at most are
 * expected) and sleeps in curl_multi_poll() until the nearest of that deadline and curl's own.
 *
 * Locks: fr->mu guards the command list and the stop flags; f->mu guards a fetch's shared state.
 * They are never held together, and neither is held while curl, notify or an allocation runs. */
#include "buffer/fetch.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util/clock.h"
#include "util/dbuf.h"
#include "util/strconv.h"
#include "util/xalloc.h"

#define FETCH_HEAD_MAX  ((size_t)64 * 1024) /* bytes of response headers kept */
#define FETCH_IDLE_SCAN 60000               /* longest sleep without any deadline, ms */
#define CMD_START       1u
#define CMD_RESUME      2u
#define CMD_ABORT       4u

struct fetch {
    /* Immutable after fetch_start(). */
    struct fetcher *fr;
    char *url;
    char *body;
    size_t body_len;
    bool is_post;
    struct curl_slist *hdrs;
    int64_t connect_ms;
    int64_t idle_ms;
    bool skip_tls;
    size_t cap;
    fetch_notify_fn notify;
    void *notify_arg;

    _Atomic int refs;

    /* Fetch thread only. */
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    struct fetch *take_next; /* the command list being applied */
    unsigned take_cmd;
    struct fetch *act_prev; /* the fetcher's active list */
    struct fetch *act_next;
    int64_t idle_at_ms; /* 0: no idle deadline (paused, or none configured) */
    struct dbuf hblock; /* header names and values being collected, "name\0value\0"... */
    size_t n_hdr;
    int64_t clen;
    bool head_sent; /* the head was published */

    /* Written by the fetch thread before head_ready / wpos are published, then immutable. */
    char *ring;              /* cap bytes */
    struct fetch_header *hv; /* n_hdr entries pointing into hblock_p */
    char *hblock_p;          /* owned */
    struct fetch_head head;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* in_notify went false */
    bool head_ready;
    size_t wpos;
    size_t rpos;
    size_t need;       /* room the paused hand-over needs */
    bool paused;       /* the transfer waits for room */
    bool resume_asked; /* a resume command is queued */
    bool done;         /* the body is complete (OK) */
    bool failed;
    char error[256];
    bool armed;    /* a FETCH_AGAIN is owed a notify */
    bool released; /* the consumer gave it up */
    bool in_notify;
    pthread_t notify_thread;

    /* Guarded by fr->mu. */
    struct fetch *cmd_next;
    unsigned cmd;
    bool cmd_queued;
};

struct fetcher {
    CURLM *multi;         /* fetch thread only (curl_multi_wakeup(): any thread), freed by main */
    pthread_t thread;     /* main thread only */
    bool started;         /* main thread only */
    struct fetch *active; /* fetch thread only: fetches in the multi handle */
    _Atomic uint64_t n_active;

    /* Guarded by mu. */
    pthread_mutex_t mu;
    struct fetch *cmd_head;
    struct fetch *cmd_tail;
    bool stopping; /* fetcher_stop() asked */
    bool closed;   /* the thread takes no more commands: new fetches fail at once */
};

/* ------------------------------------------------------------------ references, commands */

static void
fetch_ref(struct fetch *f)
{
    atomic_fetch_add(&f->refs, 1);
}

static void
fetch_unref(struct fetch *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1) {
        return;
    }
    curl_slist_free_all(f->hdrs);
    dbuf_cleanup(&f->hblock);
    free(f->hblock_p);
    free(f->hv);
    free(f->ring);
    free(f->url);
    free(f->body);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Any thread: queues cmd for the fetch thread. Returns false (nothing queued) once the thread
 * takes no more commands. */
static bool
fetch_command(struct fetch *f, unsigned cmd)
{
    struct fetcher *fr = f->fr;
    bool queued = false;
    pthread_mutex_lock(&fr->mu);
    if (!fr->closed) {
        f->cmd |= cmd;
        if (!f->cmd_queued) {
            f->cmd_queued = true;
            fetch_ref(f);
            if (fr->cmd_tail != NULL) {
                fr->cmd_tail->cmd_next = f;
            } else {
                fr->cmd_head = f;
            }
            fr->cmd_tail = f;
        }
        queued = true;
    }
    pthread_mutex_unlock(&fr->mu);
    if (queued) {
        curl_multi_wakeup(fr->multi);
    }
    return queued;
}

/* Fetch thread, no lock held: calls notify when a FETCH_AGAIN is owed one. */
static void
fetch_notify(struct fetch *f)
{
    pthread_mutex_lock(&f->mu);
    bool call = f->armed && !f->released;
    f->armed = false;
    if (call) {
        f->in_notify = true;
        f->notify_thread = pthread_self();
    }
    pthread_mutex_unlock(&f->mu);
    if (!call) {
        return;
    }
    f->notify(f->notify_arg);
    pthread_mutex_lock(&f->mu);
    f->in_notify = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Fetch thread: marks the fetch failed (unless it completed) with why, and notifies. */
static void
fetch_fail(struct fetch *f, const char *why)
{
    pthread_mutex_lock(&f->mu);
    if (!f->done && !f->failed) {
        f->failed = true;
        size_t n = strlen(why);
        n = n < sizeof(f->error) - 1 ? n : sizeof(f->error) - 1; /* cut, as snprintf would */
        memcpy(f->error, why, n);
        f->error[n] = '\0';
    }
    pthread_mutex_unlock(&f->mu);
    fetch_notify(f);
}

/* ------------------------------------------------------------------ curl callbacks */

/* Fetch thread: publishes the head collected so far (the final answer's). */
static void
head_publish(struct fetch *f, int status)
{
    f->hblock_p = dbuf_take(&f->hblock);
    f->hv = f->n_hdr > 0 ? xcalloc(f->n_hdr, sizeof(*f->hv)) : NULL;
    const char *p = f->hblock_p;
    for (size_t i = 0; i < f->n_hdr; i++) {
        f->hv[i].name = p;
        p += strlen(p) + 1;
        f->hv[i].value = p;
        p += strlen(p) + 1;
    }
    f->head = (struct fetch_head){
            .status = status, .content_length = f->clen, .headers = f->hv, .n_headers = f->n_hdr};
    f->head_sent = true;
    pthread_mutex_lock(&f->mu);
    f->head_ready = true;
    pthread_mutex_unlock(&f->mu);
    fetch_notify(f);
}

static bool
hop_by_hop(const char *name, size_t n)
{
    static const char *const drop[] = {"connection", "keep-alive", "transfer-encoding", "trailer",
                                       "upgrade",    "te",         "content-length"};
    for (size_t i = 0; i < IR_ARRAY_LEN(drop); i++) {
        if (strlen(drop[i]) == n && strncasecmp(name, drop[i], n) == 0) {
            return true;
        }
    }
    return n >= 6 && strncasecmp(name, "proxy-", 6) == 0;
}

/* Fetch thread: one header line "Name: value\r\n" of the block being collected. */
static void
head_line(struct fetch *f, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL || colon == s) {
        return;
    }
    size_t nlen = (size_t)(colon - s);
    const char *v = colon + 1;
    const char *end = s + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) {
        end--;
    }
    int64_t cl = 0;
    if (nlen == 14 && strncasecmp(s, "content-length", 14) == 0 &&
        strconv_i64(v, (size_t)(end - v), 0, INT64_MAX, &cl) == 0) {
        f->clen = cl;
    }
    if (hop_by_hop(s, nlen)) {
        return;
    }
    dbuf_append(&f->hblock, s, nlen);
    dbuf_char(&f->hblock, '\0');
    dbuf_append(&f->hblock, v, (size_t)(end - v));
    dbuf_char(&f->hblock, '\0');
    f->n_hdr++;
}

static size_t
on_header(char *s, size_t size, size_t nitems, void *ud)
{
    struct fetch *f = ud;
    size_t n = size * nitems;
    if (f->head_sent) {
        return n; /* trailers */
    }
    f->idle_at_ms = f->idle_ms > 0 ? clock_mono_ms() + f->idle_ms : 0;
    if (n >= 5 && strncmp(s, "HTTP/", 5) == 0) {
        dbuf_cleanup(&f->hblock); /* a new answer (after a 1xx) */
        dbuf_init(&f->hblock, FETCH_HEAD_MAX);
        f->n_hdr = 0;
        f->clen = -1;
        return n;
    }
    if (n <= 2 && (n == 0 || s[0] == '\r' || s[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) {
            head_publish(f, (int)code);
        }
        return n;
    }
    head_line(f, s, n);
    return f->hblock.status == DBUF_OK ? n : 0; /* too many header bytes: fail */
}

/* Fetch thread: room for n more bytes, or pause (see DESIGN). Returns the write offset, or
 * SIZE_MAX to pause, SIZE_MAX - 1 to abort. */
static size_t
ring_reserve(struct fetch *f, size_t n)
{
    size_t at = SIZE_MAX - 1;
    pthread_mutex_lock(&f->mu);
    size_t used = f->wpos - f->rpos;
    if (f->released || (used == 0 && n > f->cap)) {
        at = SIZE_MAX - 1;
    } else if (f->cap - used < n) {
        f->paused = true;
        f->need = n;
        at = SIZE_MAX;
    } else {
        at = f->wpos;
    }
    pthread_mutex_unlock(&f->mu);
    return at;
}

static size_t
on_write(char *src, size_t size, size_t nmemb, void *ud)
{
    struct fetch *f = ud;
    size_t n = size * nmemb;
    if (f->ring == NULL) {
        f->ring = xmalloc(f->cap);
    }
    size_t at = ring_reserve(f, n);
    if (at == SIZE_MAX) {
        f->idle_at_ms = 0;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (at == SIZE_MAX - 1) {
        return 0; /* released, or a piece larger than the buffer: the transfer fails */
    }
    size_t off = at % f->cap;
    size_t first = f->cap - off < n ? f->cap - off : n;
    memcpy(f->ring + off, src, first);
    memcpy(f->ring, src + first, n - first);
    pthread_mutex_lock(&f->mu);
    f->wpos += n;
    pthread_mutex_unlock(&f->mu);
    f->idle_at_ms = f->idle_ms > 0 ? clock_mono_ms() + f->idle_ms : 0;
    fetch_notify(f);
    return n;
}

/* ------------------------------------------------------------------ fetch thread */

static void
active_add(struct fetcher *fr, struct fetch *f)
{
    f->act_prev = NULL;
    f->act_next = fr->active;
    if (fr->active != NULL) {
        fr->active->act_prev = f;
    }
    fr->active = f;
}

static void
active_remove(struct fetcher *fr, struct fetch *f)
{
    if (f->act_prev != NULL) {
        f->act_prev->act_next = f->act_next;
    } else {
        fr->active = f->act_next;
    }
    if (f->act_next != NULL) {
        f->act_next->act_prev = f->act_prev;
    }
}

/* Fetch thread: the transfer is over (why == NULL: curl completed it with rc). */
static void
fetch_finish(struct fetcher *fr, struct fetch *f, CURLcode rc, const char *why)
{
    char text[CURL_ERROR_SIZE + 64];
    curl_multi_remove_handle(fr->multi, f->easy);
    atomic_fetch_sub(&fr->n_active, 1); /* before the consumer can see the end */
    if (why == NULL && rc == CURLE_OK && f->head_sent) {
        pthread_mutex_lock(&f->mu);
        f->done = true;
        pthread_mutex_unlock(&f->mu);
        fetch_notify(f);
    } else {
        if (why == NULL) {
            why = rc == CURLE_OK ? "the backend sent no answer" : text;
            snprintf(text, sizeof(text), "%s",
                     f->errbuf[0] != '\0' ? f->errbuf : curl_easy_strerror(rc));
        }
        fetch_fail(f, why);
    }
    curl_easy_cleanup(f->easy);
    f->easy = NULL;
    active_remove(fr, f);
    fetch_unref(f);
}

/* Fetch thread: the easy handle of a new fetch, added to the multi handle. */
static void
fetch_begin(struct fetcher *fr, struct fetch *f)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        atomic_fetch_sub(&fr->n_active, 1);
        fetch_fail(f, "curl_easy_init failed");
        return;
    }
    f->easy = h;
    f->clen = -1;
    dbuf_init(&f->hblock, FETCH_HEAD_MAX);
    curl_easy_setopt(h, CURLOPT_URL, f->url);
    curl_easy_setopt(h, CURLOPT_PRIVATE, f);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never the environment's proxy */
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L); /* bytes pass through as sent */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, f->hdrs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    if (f->connect_ms > 0) {
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)f->connect_ms);
    }
    if (f->skip_tls) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (f->is_post) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, f->body != NULL ? f->body : "");
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    f->idle_at_ms = f->idle_ms > 0 ? clock_mono_ms() + f->idle_ms : 0;
    fetch_ref(f); /* the fetch thread's reference, until fetch_finish() */
    active_add(fr, f);
    curl_multi_add_handle(fr->multi, h);
}

/* Fetch thread: the consumer made room for the paused hand-over. */
static void
fetch_resume(struct fetch *f)
{
    pthread_mutex_lock(&f->mu);
    bool go = f->paused && f->resume_asked;
    f->paused = false;
    f->resume_asked = false;
    pthread_mutex_unlock(&f->mu);
    if (go && f->easy != NULL) {
        f->idle_at_ms = f->idle_ms > 0 ? clock_mono_ms() + f->idle_ms : 0;
        curl_easy_pause(f->easy, CURLPAUSE_CONT); /* may call on_write() at once */
    }
}

static void
apply_command(struct fetcher *fr, struct fetch *f, unsigned cmd, bool closing)
{
    if (closing && (cmd & CMD_START) != 0 && f->easy == NULL) {
        atomic_fetch_sub(&fr->n_active, 1);
        fetch_fail(f, "relay shutting down");
    } else if ((cmd & CMD_ABORT) != 0) {
        if (f->easy != NULL) {
            fetch_finish(fr, f, CURLE_OK, "released by its consumer");
        } else if ((cmd & CMD_START) != 0) {
            atomic_fetch_sub(&fr->n_active, 1);
        }
    } else if ((cmd & CMD_START) != 0 && f->easy == NULL) {
        fetch_begin(fr, f);
    } else if ((cmd & CMD_RESUME) != 0) {
        fetch_resume(f);
    }
    fetch_unref(f); /* the command list's reference */
}

/* Fetch thread: applies the queued commands. Returns true when the fetcher is stopping (the
 * commands were applied as failures and no more will be queued). The list is detached under
 * the lock with each fetch's bits moved to take_cmd: a fetch queued again meanwhile goes to the
 * next list with its own reference, and this walk follows take_next, which nobody else writes. */
static bool
take_commands(struct fetcher *fr)
{
    pthread_mutex_lock(&fr->mu);
    struct fetch *list = fr->cmd_head;
    bool closing = fr->stopping;
    fr->cmd_head = NULL;
    fr->cmd_tail = NULL;
    fr->closed = closing;
    for (struct fetch *f = list; f != NULL; f = f->take_next) {
        f->take_next = f->cmd_next;
        f->take_cmd = f->cmd;
        f->cmd_next = NULL;
        f->cmd = 0;
        f->cmd_queued = false;
    }
    pthread_mutex_unlock(&fr->mu);
    while (list != NULL) {
        struct fetch *f = list;
        list = f->take_next;
        apply_command(fr, f, f->take_cmd, closing);
    }
    return closing;
}

/* Fetch thread: curl's finished transfers. */
static void
reap_done(struct fetcher *fr)
{
    CURLMsg *msg = NULL;
    int left = 0;
    while ((msg = curl_multi_info_read(fr->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct fetch *f = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        fetch_finish(fr, f, msg->data.result, NULL);
    }
}

/* Fetch thread: fails the fetches whose backend went quiet; returns the ms until the nearest
 * idle deadline left (FETCH_IDLE_SCAN when there is none). */
static int64_t
check_idle(struct fetcher *fr)
{
    int64_t now = clock_mono_ms();
    int64_t wait = FETCH_IDLE_SCAN;
    struct fetch *next = NULL;
    char why[96];
    for (struct fetch *f = fr->active; f != NULL; f = next) {
        next = f->act_next;
        if (f->idle_at_ms == 0) {
            continue;
        }
        if (f->idle_at_ms <= now) {
            snprintf(why, sizeof(why), "timeout: the backend sent nothing for %lld ms",
                     (long long)f->idle_ms);
            fetch_finish(fr, f, CURLE_OK, why);
        } else if (f->idle_at_ms - now < wait) {
            wait = f->idle_at_ms - now;
        }
    }
    return wait;
}

static void *
fetch_main(void *arg)
{
    struct fetcher *fr = arg;
    while (!take_commands(fr)) {
        int running = 0;
        curl_multi_perform(fr->multi, &running);
        reap_done(fr);
        int64_t wait = check_idle(fr);
        long curl_wait = -1;
        curl_multi_timeout(fr->multi, &curl_wait);
        if (curl_wait >= 0 && curl_wait < wait) {
            wait = curl_wait;
        }
        curl_multi_poll(fr->multi, NULL, 0, (int)wait, NULL);
    }
    while (fr->active != NULL) {
        fetch_finish(fr, fr->active, CURLE_OK, "relay shutting down");
    }
    return NULL;
}

/* ------------------------------------------------------------------ public */

struct fetcher *
fetcher_new(struct ir_err *err)
{
    struct fetcher *fr = xcalloc(1, sizeof(*fr));
    fr->multi = curl_multi_init();
    if (fr->multi == NULL) {
        ir_err_set(err, 0, "curl_multi_init failed");
        free(fr);
        return NULL;
    }
    pthread_mutex_init(&fr->mu, NULL);
    return fr;
}

int
fetcher_start(struct fetcher *fr, struct ir_err *err)
{
    int rc = pthread_create(&fr->thread, NULL, fetch_main, fr);
    if (rc != 0) {
        char buf[128];
        ir_err_set(err, 0, "cannot start the fetch thread: %s", ir_strerror(rc, buf, sizeof(buf)));
        return -1;
    }
    fr->started = true;
    return 0;
}

void
fetcher_stop(struct fetcher *fr)
{
    if (fr == NULL) {
        return;
    }
    pthread_mutex_lock(&fr->mu);
    fr->stopping = true;
    if (!fr->started) {
        fr->closed = true;
    }
    pthread_mutex_unlock(&fr->mu);
    if (!fr->started) {
        return;
    }
    curl_multi_wakeup(fr->multi);
    pthread_join(fr->thread, NULL);
    fr->started = false;
}

void
fetcher_free(struct fetcher *fr)
{
    if (fr == NULL) {
        return;
    }
    curl_multi_cleanup(fr->multi);
    pthread_mutex_destroy(&fr->mu);
    free(fr);
}

uint64_t
fetcher_active(const struct fetcher *fr)
{
    return atomic_load(&fr->n_active);
}

static struct curl_slist *
header_add(struct curl_slist *l, const char *name, const char *value)
{
    if (value == NULL) {
        return l;
    }
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = xmalloc(n);
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *r = curl_slist_append(l, line);
    free(line);
    return r != NULL ? r : l;
}

static struct curl_slist *
request_headers(const struct fetch_request *req)
{
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    l = req->accept != NULL ? header_add(l, "Accept", req->accept)
                            : curl_slist_append(l, "Accept:");
    l = header_add(l, "Accept-Encoding", req->encoding);
    l = header_add(l, "Authorization", req->auth);
    l = header_add(l, "Content-Type", req->body != NULL ? req->ctype : NULL);
    return l;
}

struct fetch *
fetch_start(struct fetcher *fr, const struct fetch_request *req)
{
    struct fetch *f = xcalloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    atomic_init(&f->refs, 1);
    f->fr = fr;
    f->url = xstrdup(req->url);
    f->is_post = req->body != NULL;
    if (req->body != NULL && req->body_len > 0) {
        f->body = xmalloc(req->body_len);
        memcpy(f->body, req->body, req->body_len);
    }
    f->body_len = req->body_len;
    f->hdrs = request_headers(req);
    f->connect_ms = req->connect_timeout_ms;
    f->idle_ms = req->idle_timeout_ms;
    f->skip_tls = req->skip_tls_verification;
    f->cap = req->buffer_bytes == 0 ? FETCH_BUFFER_DEFAULT : req->buffer_bytes;
    f->cap = f->cap < FETCH_BUFFER_MIN ? FETCH_BUFFER_MIN : f->cap;
    f->notify = req->notify;
    f->notify_arg = req->notify_arg;
    atomic_fetch_add(&fr->n_active, 1);
    if (!fetch_command(f, CMD_START)) {
        atomic_fetch_sub(&fr->n_active, 1);
        f->failed = true; /* not shared yet: no lock needed */
        snprintf(f->error, sizeof(f->error), "relay shutting down");
    }
    return f;
}

enum fetch_status
fetch_head(struct fetch *f, struct fetch_head *head)
{
    enum fetch_status st = FETCH_AGAIN;
    pthread_mutex_lock(&f->mu);
    if (f->head_ready) {
        *head = f->head;
        st = FETCH_OK;
    } else if (f->failed) {
        st = FETCH_ERROR;
    } else {
        f->armed = true;
    }
    pthread_mutex_unlock(&f->mu);
    return st;
}

/* Consumer: copies out of the ring (no lock: see DESIGN); returns the bytes copied. */
static size_t
ring_copy(const struct fetch *f, size_t from, size_t avail, char *dst, size_t cap)
{
    size_t n = avail < cap ? avail : cap;
    size_t off = from % f->cap;
    size_t first = f->cap - off < n ? f->cap - off : n;
    memcpy(dst, f->ring + off, first);
    memcpy(dst + first, f->ring, n - first);
    return n;
}

enum fetch_status
fetch_read(struct fetch *f, char *dst, size_t cap, size_t *n)
{
    *n = 0;
    pthread_mutex_lock(&f->mu);
    size_t avail = f->wpos - f->rpos;
    size_t from = f->rpos;
    enum fetch_status st = FETCH_OK;
    if (avail == 0 || cap == 0) {
        st = f->done ? FETCH_END : f->failed ? FETCH_ERROR : FETCH_AGAIN;
        f->armed = st == FETCH_AGAIN && cap > 0;
    }
    pthread_mutex_unlock(&f->mu);
    if (st != FETCH_OK || cap == 0) {
        return st;
    }
    *n = ring_copy(f, from, avail, dst, cap);
    pthread_mutex_lock(&f->mu);
    f->rpos += *n;
    bool resume = f->paused && !f->resume_asked && f->cap - (f->wpos - f->rpos) >= f->need;
    f->resume_asked = f->resume_asked || resume;
    pthread_mutex_unlock(&f->mu);
    if (resume) {
        fetch_command(f, CMD_RESUME);
    }
    return FETCH_OK;
}

const char *
fetch_error(struct fetch *f)
{
    pthread_mutex_lock(&f->mu);
    const char *e = f->failed ? f->error : ""; /* never written again once failed */
    pthread_mutex_unlock(&f->mu);
    return e;
}

size_t
fetch_buffered(struct fetch *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->wpos - f->rpos;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void
fetch_release(struct fetch *f)
{
    if (f == NULL) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->released = true;
    f->armed = false;
    while (f->in_notify && !pthread_equal(f->notify_thread, pthread_self())) {
        pthread_cond_wait(&f->cv, &f->mu);
    }
    bool over = f->done || f->failed;
    pthread_mutex_unlock(&f->mu);
    if (!over) {
        fetch_command(f, CMD_ABORT);
    }
    fetch_unref(f);
}
