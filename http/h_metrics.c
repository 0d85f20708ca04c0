/* GET /metrics. Families come out grouped as docs/operations.md section 1 lists them, each with
 * its HELP and TYPE lines and all its series together (every relay of the process), because the
 * exposition format wants a family's samples contiguous. Backends are snapshotted once per
 * scrape, so the state and queue gauges of one scrape agree with each other. Every configured
 * backend has all its series from start-up; request series appear with their first request (a
 * code label has no zero). */
#include "http/h_metrics.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/dbuf.h"
#include "util/err.h"
#include "util/histo.h"

#define PREFIX     "influxdb_relay_"
#define LABELS_MAX 4 /* key/value pairs of one series, plus the NULL end */

static const char *const endpoint_names[EP_COUNT] = {
        "write", "ping", "metrics", "health", "query", "api_v2_write", "prom_write", "other"};
static const char *const state_names[] = {"up", "down", "draining"};

static const struct httpd_stats zero_http_stats;
static const struct backend_stats zero_backend_stats;

static uint64_t
load(const _Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* Label values escape backslash, double quote and newline (exposition format 0.0.4). Names are
 * [A-Za-z0-9_-] (conf/ checks them), so the common case is one copy. */
static void
label_value(struct dbuf *b, const char *s)
{
    if (s == NULL) {
        return;
    }
    size_t plain = strcspn(s, "\\\"\n");
    dbuf_append(b, s, plain);
    for (const char *p = s + plain; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            char esc[2] = {'\\', *p};
            dbuf_append(b, esc, 2);
        } else if (*p == '\n') {
            dbuf_append(b, "\\n", 2);
        } else {
            dbuf_char(b, *p);
        }
    }
}

static void
family(struct dbuf *b, const char *name, const char *type, const char *help)
{
    dbuf_str(b, "# HELP " PREFIX);
    dbuf_str(b, name);
    dbuf_char(b, ' ');
    dbuf_str(b, help);
    dbuf_str(b, "\n# TYPE " PREFIX);
    dbuf_str(b, name);
    dbuf_char(b, ' ');
    dbuf_str(b, type);
    dbuf_char(b, '\n');
}

/* Writes "PREFIX name suffix{k="v",...} " ; kv is a NULL-terminated list of key, value. */
static void
series(struct dbuf *b, const char *name, const char *suffix, const char *const *kv)
{
    dbuf_str(b, PREFIX);
    dbuf_str(b, name);
    dbuf_str(b, suffix);
    for (size_t i = 0; kv[i] != NULL; i += 2) {
        dbuf_char(b, i == 0 ? '{' : ',');
        dbuf_str(b, kv[i]);
        dbuf_str(b, "=\"");
        label_value(b, kv[i + 1]);
        dbuf_char(b, '"');
        if (kv[i + 2] == NULL) {
            dbuf_char(b, '}');
        }
    }
    dbuf_char(b, ' ');
}

static void
sample_u64(struct dbuf *b, const char *name, const char *const *kv, uint64_t v)
{
    series(b, name, "", kv);
    dbuf_u64(b, v);
    dbuf_char(b, '\n');
}

static void
sample_fixed(struct dbuf *b, const char *name, const char *const *kv, double v)
{
    series(b, name, "", kv);
    dbuf_fixed(b, v, 3);
    dbuf_char(b, '\n');
}

/* The le label of each finite bucket of util/histo.h, as "%g" prints its bound (a table, not a
 * snprintf per line: formatting them made up most of a scrape's cost). */
static const char *const le_names[HISTO_BUCKETS] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                                    "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                                    "2.5",   "5",      "10"};

/* Programmer check: le_names still matches histo_bound() (asserted: unused under NDEBUG). */
static IR_UNUSED bool
le_names_match(void)
{
    for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
        char le[32];
        snprintf(le, sizeof(le), "%g", histo_bound(i));
        if (strcmp(le, le_names[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* One histogram series set: cumulative _bucket{le} lines, +Inf equal to _count, _sum, _count.
 * kv holds the series' labels with two free slots before the final NULL for "le". */
static void
histogram(struct dbuf *b, const char *name, const char **kv, size_t at, const struct histo *h)
{
    uint64_t cum = 0;
    kv[at] = "le";
    kv[at + 2] = NULL;
    for (unsigned i = 0; i < HISTO_BUCKETS; i++) {
        cum += load(&h->bucket[i]);
        kv[at + 1] = le_names[i];
        series(b, name, "_bucket", kv);
        dbuf_u64(b, cum);
        dbuf_char(b, '\n');
    }
    /* An observation in flight may have bumped its bucket but not yet count. */
    uint64_t count = load(&h->count);
    count = count < cum ? cum : count;
    kv[at + 1] = "+Inf";
    series(b, name, "_bucket", kv);
    dbuf_u64(b, count);
    dbuf_char(b, '\n');
    kv[at] = NULL;
    series(b, name, "_sum", kv);
    dbuf_fixed(b, (double)load(&h->sum_us) / 1e6, 6);
    dbuf_char(b, '\n');
    series(b, name, "_count", kv);
    dbuf_u64(b, count);
    dbuf_char(b, '\n');
}

static const struct httpd_stats *
relay_stats(const struct h_metrics_relay *r)
{
    return r->stats != NULL ? r->stats : &zero_http_stats;
}

/* The http_requests_total series of one relay's endpoint: one per status code seen. */
static void
render_endpoint_requests(struct dbuf *b, const char *relay, const struct httpd_stats *st, int ep)
{
    for (int code = 0; code < HTTPD_MAX_CODE; code++) {
        uint64_t n = load(&st->requests[ep][code]);
        if (n == 0) {
            continue;
        }
        char code_s[16];
        snprintf(code_s, sizeof(code_s), "%d", code);
        const char *kv[] = {"relay", relay, "endpoint", endpoint_names[ep], "code", code_s, NULL};
        sample_u64(b, "http_requests_total", kv, n);
    }
}

static void
render_requests(struct dbuf *b, const struct h_metrics_view *v)
{
    family(b, "http_requests_total", "counter", "Requests answered, by endpoint and status code.");
    for (size_t r = 0; r < v->n_http; r++) {
        for (int ep = 0; ep < EP_COUNT; ep++) {
            render_endpoint_requests(b, v->http[r].name, relay_stats(&v->http[r]), ep);
        }
    }
}

/* A counter of a stats struct (struct httpd_stats, struct h_metrics_udp_output) at byte offset
 * off. */
struct counter_at {
    const char *name;
    const char *type;
    const char *help;
    size_t off;
};

static const struct counter_at relay_counters[] = {
        {"points_received_total", "counter", "Valid points accepted from /write.",
         offsetof(struct httpd_stats, points_received)},
        {"bytes_received_total", "counter", "Bytes of /write bodies (after gunzip).",
         offsetof(struct httpd_stats, bytes_received)},
        {"lines_rejected_total", "counter", "Invalid lines in /write bodies.",
         offsetof(struct httpd_stats, lines_rejected)},
};

/* The connections of the HTTP relays. */
static const struct counter_at front_values[] = {
        {"http_connections", "gauge", "Open client connections.",
         offsetof(struct httpd_stats, connections)},
        {"http_connections_refused_total", "counter",
         "Connections closed at once: max-connections open.",
         offsetof(struct httpd_stats, connections_refused)},
        {"http_read_timeouts_total", "counter", "Requests closed because read-timeout passed.",
         offsetof(struct httpd_stats, read_timeouts)},
        {"http_inflight_refused_total", "counter",
         "Writes refused with 503: max-inflight-mb held already.",
         offsetof(struct httpd_stats, inflight_refused)},
};

/* One family with one sample per HTTP relay, read from its struct httpd_stats. */
static void
relay_family(struct dbuf *b, const struct h_metrics_view *v, const struct counter_at *c)
{
    family(b, c->name, c->type, c->help);
    for (size_t r = 0; r < v->n_http; r++) {
        const char *base = (const char *)relay_stats(&v->http[r]);
        const char *kv[] = {"relay", v->http[r].name, NULL};
        sample_u64(b, c->name, kv, load((const _Atomic uint64_t *)(base + c->off)));
    }
}

/* The connections, and the process-wide bound on request bytes. */
static void
render_front(struct dbuf *b, const struct h_metrics_view *v)
{
    for (size_t c = 0; c < IR_ARRAY_LEN(front_values); c++) {
        relay_family(b, v, &front_values[c]);
    }
    const char *none[] = {NULL};
    family(b, "http_inflight_bytes", "gauge",
           "Bytes of request bodies being read or waiting for their answer (process-wide).");
    sample_u64(b, "http_inflight_bytes", none, v->inflight_bytes);
}

static void
render_http(struct dbuf *b, const struct h_metrics_view *v)
{
    render_requests(b, v);
    for (size_t c = 0; c < IR_ARRAY_LEN(relay_counters); c++) {
        relay_family(b, v, &relay_counters[c]);
    }
    family(b, "request_duration_seconds", "histogram", "Time to answer POST /write.");
    for (size_t r = 0; r < v->n_http; r++) {
        const char *kv[LABELS_MAX * 2 + 1] = {"relay", v->http[r].name, NULL};
        histogram(b, "request_duration_seconds", kv, 2,
                  &relay_stats(&v->http[r])->request_duration);
    }
    render_front(b, v);
}

/* Where a per-backend value comes from. */
enum value_kind {
    VALUE_COUNTER, /* struct backend_stats at off */
    VALUE_QUEUE_BYTES,
    VALUE_QUEUE_WRITES,
    VALUE_CAPACITY,
    VALUE_OLDEST_AGE,
    VALUE_LAST_SUCCESS,
    VALUE_SPOOL_BYTES,
    VALUE_SPOOL_WRITES,
    VALUE_SPOOL_CAPACITY,
};

/* One per-backend family (or, for the dropped_* counters, one reason of a family). */
struct backend_value {
    const char *name; /* without PREFIX */
    const char *type;
    const char *help;
    enum value_kind kind;
    size_t off;        /* VALUE_COUNTER: offset in struct backend_stats */
    const char *field; /* VALUE_COUNTER: the X-macro field name */
    bool is_drop;      /* a dropped_* counter: a reason of backend_dropped_writes_total */
};

static const struct backend_value backend_gauges[] = {
        {"backend_queue_bytes", "gauge", "Bytes held for the backend (in-flight batch included).",
         VALUE_QUEUE_BYTES, 0, NULL, false},
        {"backend_queue_writes", "gauge",
         "Client writes held for the backend (in-flight batch included).", VALUE_QUEUE_WRITES, 0,
         NULL, false},
        {"backend_queue_capacity_bytes", "gauge",
         "The bound on backend_queue_bytes (buffer-size-mb; unbuffered: 4 x max-batch-kb, at "
         "least 32 MiB).",
         VALUE_CAPACITY, 0, NULL, false},
        {"backend_oldest_queued_age_seconds", "gauge", "Age of the oldest held write.",
         VALUE_OLDEST_AGE, 0, NULL, false},
        {"backend_spool_bytes", "gauge",
         "Bytes of the backend's spool on disk (segments and index; 0 without a spool).",
         VALUE_SPOOL_BYTES, 0, NULL, false},
        {"backend_spool_writes", "gauge", "Writes in the backend's spool not yet delivered.",
         VALUE_SPOOL_WRITES, 0, NULL, false},
        {"backend_spool_capacity_bytes", "gauge",
         "The bound on backend_spool_bytes (spool-size-mb; 0 without a spool).",
         VALUE_SPOOL_CAPACITY, 0, NULL, false},
};

/* Generated from BACKEND_COUNTERS: a counter with an empty metric suffix is a drop reason. */
static const struct backend_value backend_counters[] = {
#define BACKEND_COUNTER_VALUE(f, m, h)                                                             \
    {"backend_" m, "counter",     h, VALUE_COUNTER, offsetof(struct backend_stats, f),             \
     #f,           sizeof(m) == 1},
        BACKEND_COUNTERS(BACKEND_COUNTER_VALUE)
#undef BACKEND_COUNTER_VALUE
};

static const struct backend_value last_success = {
        "backend_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last batch the backend accepted (0 = never).",
        VALUE_LAST_SUCCESS,
        0,
        NULL,
        false};

#define N_BACKEND_COUNTERS IR_ARRAY_LEN(backend_counters)
#define DROP_PREFIX        "dropped_"

static const struct backend_stats *
snap_stats(const struct backend_snapshot *s)
{
    return s->stats != NULL ? s->stats : &zero_backend_stats;
}

static void
backend_value_write(struct dbuf *b, const struct backend_snapshot *s,
                    const struct backend_value *bv)
{
    switch (bv->kind) {
    case VALUE_COUNTER:
        dbuf_u64(b, load((const _Atomic uint64_t *)((const char *)snap_stats(s) + bv->off)));
        break;
    case VALUE_QUEUE_BYTES:
        dbuf_u64(b, s->queue_bytes);
        break;
    case VALUE_QUEUE_WRITES:
        dbuf_u64(b, s->queue_writes);
        break;
    case VALUE_CAPACITY:
        dbuf_u64(b, s->capacity_bytes);
        break;
    case VALUE_OLDEST_AGE:
        dbuf_fixed(b, s->oldest_age_s, 3);
        break;
    case VALUE_SPOOL_BYTES:
        dbuf_u64(b, s->spool_bytes);
        break;
    case VALUE_SPOOL_WRITES:
        dbuf_u64(b, s->spool_writes);
        break;
    case VALUE_SPOOL_CAPACITY:
        dbuf_u64(b, s->spool_capacity_bytes);
        break;
    case VALUE_LAST_SUCCESS: {
        int64_t ns = atomic_load_explicit(&snap_stats(s)->last_success_ns, memory_order_relaxed);
        dbuf_fixed(b, (double)ns / 1e9, 3);
        break;
    }
    }
    dbuf_char(b, '\n');
}

/* One sample of bv per backend; a drop reason adds its reason label. */
static void
backend_samples(struct dbuf *b, const struct h_metrics_view *v, const struct backend_value *bv)
{
    const char *name = bv->is_drop ? "backend_dropped_writes_total" : bv->name;
    assert(!bv->is_drop || strncmp(bv->field, DROP_PREFIX, strlen(DROP_PREFIX)) == 0);
    const char *reason = bv->is_drop ? bv->field + strlen(DROP_PREFIX) : NULL;
    for (size_t r = 0; r < v->n_http; r++) {
        for (size_t i = 0; i < v->http[r].n_backends; i++) {
            const struct backend_snapshot *s = &v->http[r].backends[i];
            const char *kv[] = {"relay",  v->http[r].name, "backend", s->name,
                                "reason", reason,          NULL};
            if (reason == NULL) {
                kv[4] = NULL;
            }
            series(b, name, "", kv);
            backend_value_write(b, s, bv);
        }
    }
}

static void
backend_family(struct dbuf *b, const struct h_metrics_view *v, const struct backend_value *bv)
{
    family(b, bv->name, bv->type, bv->help);
    backend_samples(b, v, bv);
}

static void
render_backend_state(struct dbuf *b, const struct h_metrics_view *v)
{
    family(b, "backend_state", "gauge",
           "1 for the backend's current state (up, down, draining), 0 for the others.");
    for (size_t r = 0; r < v->n_http; r++) {
        for (size_t i = 0; i < v->http[r].n_backends; i++) {
            const struct backend_snapshot *s = &v->http[r].backends[i];
            for (int st = BACKEND_UP; st <= BACKEND_DRAINING; st++) {
                const char *kv[] = {"relay", v->http[r].name, "backend", s->name,
                                    "state", state_names[st], NULL};
                sample_u64(b, "backend_state", kv, (int)s->state == st);
            }
        }
    }
}

/* The spool's failed operations by op, and its sync durations (every backend: 0 without a
 * spool). */
static void
render_spool(struct dbuf *b, const struct h_metrics_view *v)
{
    family(b, "backend_spool_errors_total", "counter",
           "Failed spool operations (open, write, sync, read, unlink).");
    for (size_t r = 0; r < v->n_http; r++) {
        for (size_t i = 0; i < v->http[r].n_backends; i++) {
            const struct backend_snapshot *s = &v->http[r].backends[i];
            for (unsigned op = 0; op < SPOOL_OP_COUNT; op++) {
                const char *kv[] = {"relay",   v->http[r].name,
                                    "backend", s->name,
                                    "op",      spool_op_name((enum spool_op)op),
                                    NULL};
                sample_u64(b, "backend_spool_errors_total", kv, s->spool_errors[op]);
            }
        }
    }
    family(b, "backend_spool_sync_duration_seconds", "histogram",
           "Duration of the spool's fdatasync rounds.");
    for (size_t r = 0; r < v->n_http; r++) {
        for (size_t i = 0; i < v->http[r].n_backends; i++) {
            const struct backend_snapshot *s = &v->http[r].backends[i];
            const char *kv[LABELS_MAX * 2 + 1] = {"relay", v->http[r].name, "backend", s->name};
            histogram(b, "backend_spool_sync_duration_seconds", kv, 4, &snap_stats(s)->spool_sync);
        }
    }
}

static void
render_backends(struct dbuf *b, const struct h_metrics_view *v)
{
    render_backend_state(b, v);
    for (size_t g = 0; g < IR_ARRAY_LEN(backend_gauges); g++) {
        backend_family(b, v, &backend_gauges[g]);
    }
    for (size_t c = 0; c < N_BACKEND_COUNTERS; c++) {
        if (!backend_counters[c].is_drop) {
            backend_family(b, v, &backend_counters[c]);
        }
    }
    family(b, "backend_dropped_writes_total", "counter",
           "Writes given up, by reason: buffer_full (did not fit in the buffer), rejected (4xx), "
           "withdrawn (the client got a 503 first), shutdown (still held at shutdown-timeout), "
           "removed (its output was removed by a reload and not drained within "
           "shutdown-timeout).");
    for (size_t c = 0; c < N_BACKEND_COUNTERS; c++) {
        if (backend_counters[c].is_drop) {
            backend_samples(b, v, &backend_counters[c]);
        }
    }
    backend_family(b, v, &last_success);
    render_spool(b, v);
    family(b, "backend_send_duration_seconds", "histogram", "Duration of requests to the backend.");
    for (size_t r = 0; r < v->n_http; r++) {
        for (size_t i = 0; i < v->http[r].n_backends; i++) {
            const struct backend_snapshot *s = &v->http[r].backends[i];
            const char *kv[LABELS_MAX * 2 + 1] = {"relay", v->http[r].name, "backend", s->name};
            histogram(b, "backend_send_duration_seconds", kv, 4, &snap_stats(s)->send_duration);
        }
    }
}

static void
render_udp_relays(struct dbuf *b, const struct h_metrics_view *v)
{
    family(b, "udp_datagrams_received_total", "counter", "Datagrams received.");
    for (size_t u = 0; u < v->n_udp; u++) {
        const char *kv[] = {"relay", v->udp[u].name, NULL};
        sample_u64(b, "udp_datagrams_received_total", kv, v->udp[u].datagrams_received);
    }
    family(b, "udp_points_received_total", "counter", "Valid points received.");
    for (size_t u = 0; u < v->n_udp; u++) {
        const char *kv[] = {"relay", v->udp[u].name, NULL};
        sample_u64(b, "udp_points_received_total", kv, v->udp[u].points_received);
    }
    family(b, "udp_lines_dropped_total", "counter",
           "Lines dropped, by reason: invalid (not line protocol), mtu (longer than the mtu).");
    for (size_t u = 0; u < v->n_udp; u++) {
        const char *kv[] = {"relay", v->udp[u].name, "reason", "invalid", NULL};
        sample_u64(b, "udp_lines_dropped_total", kv, v->udp[u].lines_dropped_invalid);
        kv[3] = "mtu";
        sample_u64(b, "udp_lines_dropped_total", kv, v->udp[u].lines_dropped_mtu);
    }
    family(b, "udp_receive_errors_total", "counter",
           "Failed receives on the relay's socket (the relay backs off and keeps receiving).");
    for (size_t u = 0; u < v->n_udp; u++) {
        const char *kv[] = {"relay", v->udp[u].name, NULL};
        sample_u64(b, "udp_receive_errors_total", kv, v->udp[u].receive_errors);
    }
    family(b, "udp_receiver_up", "gauge",
           "1 while the relay's receiving thread runs, 0 when it has stopped.");
    for (size_t u = 0; u < v->n_udp; u++) {
        const char *kv[] = {"relay", v->udp[u].name, NULL};
        sample_u64(b, "udp_receiver_up", kv, v->udp[u].receiver_up ? 1 : 0);
    }
}

/* Per-output UDP counters. send_errors is ours (the Go relay has no such metric): datagrams the
 * kernel refused are lost, and an operator should see it. */
static const struct counter_at udp_output_counters[] = {
        {"udp_datagrams_sent_total", "counter", "Datagrams sent.",
         offsetof(struct h_metrics_udp_output, datagrams_sent)},
        {"udp_points_sent_total", "counter", "Points sent.",
         offsetof(struct h_metrics_udp_output, points_sent)},
        {"udp_send_errors_total", "counter", "Datagrams the kernel refused to send (lost).",
         offsetof(struct h_metrics_udp_output, send_errors)},
};

static void
render_udp_outputs(struct dbuf *b, const struct h_metrics_view *v, const struct counter_at *oc)
{
    family(b, oc->name, oc->type, oc->help);
    for (size_t u = 0; u < v->n_udp; u++) {
        for (size_t i = 0; i < v->udp[u].n_outputs; i++) {
            const struct h_metrics_udp_output *o = &v->udp[u].outputs[i];
            const char *kv[] = {"relay", v->udp[u].name, "backend", o->name, NULL};
            sample_u64(b, oc->name, kv, *(const uint64_t *)((const char *)o + oc->off));
        }
    }
}

static void
render_process(struct dbuf *b, const struct h_metrics_view *v)
{
    const char *none[] = {NULL};
    family(b, "start_time_seconds", "gauge", "Process start, unix time.");
    sample_fixed(b, "start_time_seconds", none, (double)v->start_time_ns / 1e9);
    family(b, "build_info", "gauge", "Always 1; the version label names the build.");
    const char *kv[] = {"version", IR_VERSION, NULL};
    sample_u64(b, "build_info", kv, 1);
    family(b, "config_last_reload_successful", "gauge",
           "1 when the last configuration reload (SIGHUP) applied, 0 when it failed; 1 at start.");
    sample_u64(b, "config_last_reload_successful", none, v->reload_ok ? 1 : 0);
    family(b, "config_last_reload_success_timestamp_seconds", "gauge",
           "Unix time of the last successful configuration load (the start, or a reload).");
    sample_fixed(b, "config_last_reload_success_timestamp_seconds", none,
                 (double)v->reload_ok_ns / 1e9);
}

char *
h_metrics_render_view(const struct h_metrics_view *v, size_t *len)
{
    size_t n_backends = 0;
    for (size_t r = 0; r < v->n_http; r++) {
        n_backends += v->http[r].n_backends;
    }
    assert(le_names_match());
    struct dbuf b;
    /* About 2.7 KiB of text per backend; the buffer doubles if the guess is short. */
    dbuf_init(&b, DBUF_NO_BOUND);
    dbuf_reserve(&b, 0, 8192 + n_backends * 3072 + v->n_udp * 1024);
    render_http(&b, v);
    render_backends(&b, v);
    render_udp_relays(&b, v);
    for (size_t c = 0; c < IR_ARRAY_LEN(udp_output_counters); c++) {
        render_udp_outputs(&b, v, &udp_output_counters[c]);
    }
    render_process(&b, v);
    return dbuf_finish(&b, len);
}
