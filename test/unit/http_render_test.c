/* Unit tests for the /metrics and /health renderers (http/h_metrics.c, http/h_health.c) fed with
 * hand-built views. The it tests parse the real output with a strict
 * Prometheus parser; these pin the exact lines. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http/h_health.h"
#include "http/h_metrics.h"

static struct httpd_stats relay_stats;
static struct backend_stats b1_stats;
static struct backend_stats b2_stats;

static size_t
count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

#define CHECK_HAS(text, line) CHECK(strstr((text), (line)) != NULL)

static void
fill_stats(void)
{
    atomic_store(&relay_stats.requests[EP_WRITE][204], 5);
    atomic_store(&relay_stats.requests[EP_HEALTH][503], 1);
    atomic_store(&relay_stats.points_received, 10);
    histo_observe(&relay_stats.request_duration, 2000);
    histo_observe(&relay_stats.request_duration, 2000);
    histo_observe(&relay_stats.request_duration, 20000000);
    atomic_store(&b1_stats.batches_sent, 7);
    atomic_store(&b1_stats.dropped_buffer_full, 3);
    atomic_store(&b1_stats.dropped_withdrawn, 2);
    atomic_store(&b1_stats.last_success_ns, 1700000000250000000LL);
    histo_observe(&b1_stats.send_duration, 700);
}

static void
test_metrics(void)
{
    fill_stats();
    struct backend_snapshot snaps[2] = {
            {.relay = "r1",
             .name = "b1",
             .state = BACKEND_DOWN,
             .queue_bytes = 1000,
             .queue_writes = 4,
             .capacity_bytes = 1 << 20,
             .oldest_age_s = 1.5,
             .stats = &b1_stats},
            {.relay = "r1", .name = "a\"b\\c\nd", .state = BACKEND_UP, .stats = &b2_stats},
    };
    struct h_metrics_relay relay = {"r1", &relay_stats, snaps, 2};
    atomic_store(&relay_stats.connections, 12);
    atomic_store(&relay_stats.connections_refused, 3);
    struct h_metrics_udp_output uo = {"o1", 4, 40, 1};
    struct h_metrics_udp udp = {"u1", 5, 50, 2, 1, 6, true, &uo, 1};
    struct h_metrics_view v = {
            &relay, 1, &udp, 1, 4096, 1700000000500000000LL, true, 1700000000500000000LL};
    size_t len = 0;
    char *t = h_metrics_render_view(&v, &len);
    CHECK(t != NULL && strlen(t) == len);
    CHECK_HAS(t, "# HELP influxdb_relay_http_requests_total ");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_http_requests_total counter\n");
    CHECK_HAS(t,
              "\ninfluxdb_relay_http_requests_total{relay=\"r1\",endpoint=\"write\",code=\"204\"}"
              " 5\n");
    CHECK_HAS(t, "{relay=\"r1\",endpoint=\"health\",code=\"503\"} 1\n");
    CHECK_HAS(t, "\ninfluxdb_relay_points_received_total{relay=\"r1\"} 10\n");
    CHECK_HAS(t, "\ninfluxdb_relay_lines_rejected_total{relay=\"r1\"} 0\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_request_duration_seconds histogram\n");
    CHECK_HAS(t, "\ninfluxdb_relay_request_duration_seconds_bucket{relay=\"r1\",le=\"0.001\"} 0\n");
    CHECK_HAS(t,
              "\ninfluxdb_relay_request_duration_seconds_bucket{relay=\"r1\",le=\"0.0025\"} 2\n");
    CHECK_HAS(t, "\ninfluxdb_relay_request_duration_seconds_bucket{relay=\"r1\",le=\"10\"} 2\n");
    CHECK_HAS(t, "\ninfluxdb_relay_request_duration_seconds_bucket{relay=\"r1\",le=\"+Inf\"} 3\n");
    CHECK_HAS(t, "\ninfluxdb_relay_request_duration_seconds_sum{relay=\"r1\"} 20.004000\n");
    CHECK_HAS(t, "\ninfluxdb_relay_request_duration_seconds_count{relay=\"r1\"} 3\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_state{relay=\"r1\",backend=\"b1\",state=\"up\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_state{relay=\"r1\",backend=\"b1\",state=\"down\"} 1\n");
    CHECK_HAS(t, "{relay=\"r1\",backend=\"a\\\"b\\\\c\\nd\",state=\"up\"} 1\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_queue_bytes{relay=\"r1\",backend=\"b1\"} 1000\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_queue_writes{relay=\"r1\",backend=\"b1\"} 4\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_oldest_queued_age_seconds{relay=\"r1\",backend=\"b1\"} "
                 "1.500\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_batches_sent_total{relay=\"r1\",backend=\"b1\"} 7\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_retries_total{relay=\"r1\",backend=\"b1\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_dropped_writes_total{relay=\"r1\",backend=\"b1\","
                 "reason=\"buffer_full\"} 3\n");
    CHECK_HAS(t, "reason=\"withdrawn\"} 2\n");
    CHECK_HAS(t, "reason=\"rejected\"} 0\n");
    CHECK_HAS(t, "reason=\"shutdown\"} 0\n");
    CHECK_HAS(t, "reason=\"spool_full\"} 0\n");
    CHECK_HAS(t, "reason=\"expired\"} 0\n");
    CHECK_HAS(t, "reason=\"corrupt\"} 0\n");
    CHECK_EQ_I64(count_of(t, "influxdb_relay_backend_dropped_writes_total{"), 16);
    CHECK_HAS(t, "\ninfluxdb_relay_backend_spool_bytes{relay=\"r1\",backend=\"b1\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_spool_writes{relay=\"r1\",backend=\"b1\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_spool_capacity_bytes{relay=\"r1\",backend=\"b1\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_spool_errors_total{relay=\"r1\",backend=\"b1\","
                 "op=\"sync\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_spool_sync_duration_seconds_count{relay=\"r1\","
                 "backend=\"b1\"} 0\n");
    CHECK_HAS(t, "reason=\"removed\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_last_success_timestamp_seconds{relay=\"r1\","
                 "backend=\"b1\"} 1700000000.250\n");
    CHECK_HAS(t, "\ninfluxdb_relay_backend_send_duration_seconds_bucket{relay=\"r1\","
                 "backend=\"b1\",le=\"0.001\"} 1\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_udp_lines_dropped_total counter\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_udp_receive_errors_total counter\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_udp_receiver_up gauge\n");
    CHECK_HAS(t, "\ninfluxdb_relay_udp_lines_dropped_total{relay=\"u1\",reason=\"invalid\"} 2\n");
    CHECK_HAS(t, "\ninfluxdb_relay_udp_datagrams_received_total{relay=\"u1\"} 5\n");
    CHECK_HAS(t, "\ninfluxdb_relay_udp_points_sent_total{relay=\"u1\",backend=\"o1\"} 40\n");
    CHECK_HAS(t, "\ninfluxdb_relay_udp_send_errors_total{relay=\"u1\",backend=\"o1\"} 1\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_http_connections gauge\n");
    CHECK_HAS(t, "\ninfluxdb_relay_http_connections{relay=\"r1\"} 12\n");
    CHECK_HAS(t, "\ninfluxdb_relay_http_connections_refused_total{relay=\"r1\"} 3\n");
    CHECK_HAS(t, "\ninfluxdb_relay_http_inflight_refused_total{relay=\"r1\"} 0\n");
    CHECK_HAS(t, "\ninfluxdb_relay_http_read_timeouts_total{relay=\"r1\"} 0\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_http_inflight_bytes gauge\n");
    CHECK_HAS(t, "\ninfluxdb_relay_http_inflight_bytes 4096\n");
    CHECK_HAS(t, "\ninfluxdb_relay_udp_receive_errors_total{relay=\"u1\"} 6\n");
    CHECK_HAS(t, "\ninfluxdb_relay_udp_receiver_up{relay=\"u1\"} 1\n");
    CHECK_HAS(t, "\ninfluxdb_relay_start_time_seconds 1700000000.500\n");
    CHECK_HAS(t, "\ninfluxdb_relay_build_info{version=\"" IR_VERSION "\"} 1\n");
    CHECK_HAS(t, "\n# TYPE influxdb_relay_config_last_reload_successful gauge\n"
                 "influxdb_relay_config_last_reload_successful 1\n");
    CHECK_HAS(t, "\ninfluxdb_relay_config_last_reload_success_timestamp_seconds "
                 "1700000000.500\n");
    /* Every family once, every line ends with a newline, no empty line. */
    CHECK_EQ_I64(count_of(t, "# TYPE influxdb_relay_backend_state "), 1);
    CHECK_EQ_I64(count_of(t, "# TYPE "), count_of(t, "# HELP "));
    CHECK_EQ_I64(count_of(t, "# TYPE "), 40);
    CHECK(len > 0 && t[len - 1] == '\n' && strstr(t, "\n\n") == NULL);
    free(t);
}

static void
test_health(void)
{
    char b1[] = "b1", b2[] = "b2", r1[] = "r1"; /* conf strings are owned, so not literals */
    struct conf_http_output outs[2] = {{.name = b1, .buffer_bytes = 1 << 20},
                                       {.name = b2, .buffer_bytes = 0}};
    struct conf_http c = {.name = r1, .outputs = outs, .n_outputs = 2};
    struct backend_snapshot s[2] = {
            {.name = "b1",
             .state = BACKEND_UP,
             .queue_bytes = 10,
             .capacity_bytes = 1 << 20,
             .stats = &b1_stats},
            {.name = "b2", .state = BACKEND_UP, .capacity_bytes = 8 << 20},
    };
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_OK);
    CHECK_EQ_I64(h_health_status_of(&c, s, 0), H_HEALTH_DOWN);
    s[1].state = BACKEND_DRAINING;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DEGRADED);
    s[0].state = BACKEND_DOWN;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DEGRADED);
    s[1].state = BACKEND_DOWN;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DOWN);

    /* "all": one backend down is enough for every write to fail. */
    c.write_consistency = CONF_CONSISTENCY_ALL;
    s[1].state = BACKEND_UP;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DOWN);
    s[0].state = BACKEND_DRAINING;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DEGRADED);
    /* "any" is judged like "one": a down backend with buffer room does not count. */
    c.write_consistency = CONF_CONSISTENCY_ANY;
    s[0].state = BACKEND_DOWN;
    s[1].state = BACKEND_DOWN;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DOWN);
    s[1].state = BACKEND_UP;
    CHECK_EQ_I64(h_health_status_of(&c, s, 2), H_HEALTH_DEGRADED);
    s[1].state = BACKEND_DOWN;
    c.write_consistency = CONF_CONSISTENCY_ONE;

    int status = 0;
    size_t len = 0;
    char *t = h_health_render_snapshots(&c, s, 2, NULL, 0, &status, &len);
    CHECK_EQ_I64(status, 503);
    CHECK(t != NULL && strlen(t) == len);
    CHECK_HAS(t, "{\"status\":\"down\",\"relay\":\"r1\",\"backends\":[{\"name\":\"b1\","
                 "\"state\":\"down\",\"queue_bytes\":10,\"queue_writes\":0,");
    CHECK_HAS(t, "\"dropped_buffer_full\":3,");
    CHECK_HAS(t, "\"last_success_timestamp_seconds\":1700000000.250,");
    CHECK_HAS(t, "},{\"name\":\"b2\",\"state\":\"down\",");
    CHECK(len > 4 && strcmp(t + len - 4, "}]}\n") == 0);
    free(t);
    s[0].state = BACKEND_UP;
    t = h_health_render_snapshots(&c, s, 2, NULL, 0, &status, &len);
    CHECK_EQ_I64(status, 200);
    CHECK(strncmp(t, "{\"status\":\"degraded\",", 21) == 0);
    free(t);
    /* UDP receivers: listed; one that stopped turns "ok" into "degraded", never "down". */
    s[1].state = BACKEND_UP;
    struct h_health_udp u[2] = {{"u1", true}, {"u2", true}};
    t = h_health_render_snapshots(&c, s, 2, u, 2, &status, &len);
    CHECK_EQ_I64(status, 200);
    CHECK(strncmp(t, "{\"status\":\"ok\",", 15) == 0);
    const char *tail = "}],\"udp\":[{\"relay\":\"u1\",\"receiver\":\"up\"},"
                       "{\"relay\":\"u2\",\"receiver\":\"up\"}]}\n";
    CHECK(len > strlen(tail) && strcmp(t + len - strlen(tail), tail) == 0);
    free(t);
    u[1].receiving = false;
    t = h_health_render_snapshots(&c, s, 2, u, 2, &status, &len);
    CHECK_EQ_I64(status, 200);
    CHECK(strncmp(t, "{\"status\":\"degraded\",", 21) == 0);
    CHECK_HAS(t, "{\"relay\":\"u2\",\"receiver\":\"down\"}]}\n");
    free(t);
    s[0].state = BACKEND_DOWN;
    s[1].state = BACKEND_DOWN;
    t = h_health_render_snapshots(&c, s, 2, u, 2, &status, &len);
    CHECK_EQ_I64(status, 503);
    free(t);
}

int
main(void)
{
    test_metrics();
    test_health();
    return CHECK_DONE();
}
