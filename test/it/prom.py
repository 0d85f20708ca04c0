"""Strict reading of the relay's GET /metrics for the it tests (test_metrics*, test_health*).

Every scrape is checked twice: by Debian's prometheus_client text parser (what a Prometheus
server accepts) and by check_exposition() below, which is stricter about what the parser lets
pass (HELP and TYPE for every family, families contiguous, no duplicate series, cumulative
histogram buckets ending in +Inf == _count) and checks the names, types and labels against the
tables of docs/operations.md section 1.
"""

import math
import re

from prometheus_client.parser import text_string_to_metric_families

from harness import http_request

# The base families (the Go relay replacement's contract, docs/operations.md section 1):
# family name -> (type, label names of its samples, "le" excluded).
FAMILIES = {
    "influxdb_relay_http_requests_total": ("counter", {"relay", "endpoint", "code"}),
    "influxdb_relay_points_received_total": ("counter", {"relay"}),
    "influxdb_relay_bytes_received_total": ("counter", {"relay"}),
    "influxdb_relay_lines_rejected_total": ("counter", {"relay"}),
    "influxdb_relay_request_duration_seconds": ("histogram", {"relay"}),
    "influxdb_relay_backend_state": ("gauge", {"relay", "backend", "state"}),
    "influxdb_relay_backend_queue_bytes": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_queue_writes": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_oldest_queued_age_seconds": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_batches_sent_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_backend_points_delivered_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_backend_bytes_delivered_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_backend_retries_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_backend_dropped_writes_total": ("counter", {"relay", "backend", "reason"}),
    "influxdb_relay_backend_last_success_timestamp_seconds": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_send_duration_seconds": ("histogram", {"relay", "backend"}),
    "influxdb_relay_udp_datagrams_received_total": ("counter", {"relay"}),
    "influxdb_relay_udp_points_received_total": ("counter", {"relay"}),
    "influxdb_relay_udp_datagrams_sent_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_udp_points_sent_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_udp_lines_dropped_total": ("counter", {"relay", "reason"}),
    "influxdb_relay_start_time_seconds": ("gauge", set()),
    "influxdb_relay_build_info": ("gauge", {"version"}),
    # The HTTP front (a worker pool): connections, and the process-wide bound on request bytes.
    "influxdb_relay_http_connections": ("gauge", {"relay"}),
    "influxdb_relay_http_connections_refused_total": ("counter", {"relay"}),
    "influxdb_relay_http_inflight_refused_total": ("counter", {"relay"}),
    "influxdb_relay_http_inflight_bytes": ("gauge", set()),
}
# Additions, documented in docs/operations.md as well (the bound for "queue > 80 %",
# datagrams lost in sendmmsg, failed receives and a stopped UDP receiver).
EXTRA_FAMILIES = {
    "influxdb_relay_backend_queue_capacity_bytes": ("gauge", {"relay", "backend"}),
    "influxdb_relay_udp_send_errors_total": ("counter", {"relay", "backend"}),
    "influxdb_relay_udp_receive_errors_total": ("counter", {"relay"}),
    "influxdb_relay_udp_receiver_up": ("gauge", {"relay"}),
    "influxdb_relay_http_read_timeouts_total": ("counter", {"relay"}),
    "influxdb_relay_backend_wire_bytes_total": ("counter", {"relay", "backend"}),
    # The durable spool (0 for a backend without one).
    "influxdb_relay_backend_spool_bytes": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_spool_writes": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_spool_capacity_bytes": ("gauge", {"relay", "backend"}),
    "influxdb_relay_backend_spool_errors_total": ("counter", {"relay", "backend", "op"}),
    "influxdb_relay_backend_spool_sync_duration_seconds": ("histogram", {"relay", "backend"}),
    # Reload (SIGHUP).
    "influxdb_relay_config_last_reload_successful": ("gauge", set()),
    "influxdb_relay_config_last_reload_success_timestamp_seconds": ("gauge", set()),
}

DROP_REASONS = ("buffer_full", "rejected", "withdrawn", "shutdown", "spool_full", "expired",
                "corrupt", "removed")
STATES = ("up", "down", "draining")

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def _parse_labels(s, line):
    out = {}
    pos = 0
    while pos < len(s):
        m = _LABEL.match(s, pos)
        if not m:
            raise AssertionError("bad label set in %r" % line)
        k = m.group(1)
        if k in out:
            raise AssertionError("label %s twice in %r" % (k, line))
        out[k] = (m.group(2).replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\"))
        pos = m.end()
    return out


def _family_of(sample_name, types):
    if sample_name in types:
        return sample_name
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name[: -len(suffix)]
        if sample_name.endswith(suffix) and types.get(base) == "histogram":
            return base
    return None


def _check_histograms(hist):
    for (fam, key), h in hist.items():
        les = h["buckets"]
        if not les or les[-1][0] != math.inf:
            raise AssertionError("%s%s: no +Inf bucket last" % (fam, dict(key)))
        bounds = [b for b, _ in les]
        if bounds != sorted(bounds):
            raise AssertionError("%s%s: le not ascending" % (fam, dict(key)))
        counts = [c for _, c in les]
        if counts != sorted(counts):
            raise AssertionError("%s%s: buckets not cumulative: %r" % (fam, dict(key), counts))
        if h.get("count") != counts[-1] or "sum" not in h:
            raise AssertionError("%s%s: _count %r != +Inf %r or no _sum" %
                                 (fam, dict(key), h.get("count"), counts[-1]))


def check_exposition(text):
    """Structural checks of a text exposition 0.0.4; returns {(name, labels frozenset): value}."""
    if not text.endswith("\n"):
        raise AssertionError("exposition does not end with a newline")
    helps, types, done = set(), {}, set()
    current = None
    samples = {}
    hist = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            if name in helps or name in done:
                raise AssertionError("second HELP for %s" % name)
            if current is not None:
                done.add(current)
            helps.add(name)
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            if name != current or name in types:
                raise AssertionError("TYPE %s not right after its HELP" % name)
            types[name] = typ
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("not a sample line: %r" % line)
        fam = _family_of(m.group(1), types)
        if fam is None or fam != current:
            raise AssertionError("sample %r outside its family (HELP/TYPE first, contiguous)" % line)
        labels = _parse_labels(m.group(3) or "", line)
        value = float(m.group(4))
        key = (m.group(1), frozenset(labels.items()))
        if key in samples:
            raise AssertionError("duplicate series %r" % line)
        samples[key] = value
        if types[fam] == "histogram":
            le = labels.pop("le", None)
            h = hist.setdefault((fam, frozenset(labels.items())), {"buckets": []})
            if m.group(1).endswith("_bucket"):
                h["buckets"].append((float(le), value))
            else:
                h[m.group(1)[len(fam) + 1:]] = value
    missing = set(types) ^ helps
    if missing:
        raise AssertionError("HELP without TYPE or TYPE without HELP: %s" % missing)
    _check_histograms(hist)
    return samples, types


def check_names(samples, types):
    """Every base family present with its type; labels exactly as specified."""
    table = dict(FAMILIES)
    table.update(EXTRA_FAMILIES)
    for name, (typ, _) in FAMILIES.items():
        if types.get(name) != typ:
            raise AssertionError("family %s: type %r, want %r" % (name, types.get(name), typ))
    for name in types:
        if name not in table:
            raise AssertionError("family %s is not in prom.FAMILIES or EXTRA_FAMILIES" % name)
    for (sname, labels), _ in samples.items():
        fam = _family_of(sname, types)
        got = {k for k, _ in labels} - {"le"}
        if got != table[fam][1]:
            raise AssertionError("%s: labels %s, want %s" % (sname, got, table[fam][1]))


class Scrape:
    """One parsed /metrics answer."""

    def __init__(self, text, headers=None):
        self.text = text
        self.headers = headers or {}
        # The reference parser must accept it...
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        # ... and so must the stricter checks.
        self.samples, self.types = check_exposition(text)
        check_names(self.samples, self.types)

    def get(self, name, **labels):
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            near = [dict(k[1]) for k in self.samples if k[0] == name]
            raise AssertionError("no series %s%s; have %s" % (name, labels, near))
        return self.samples[key]

    def has(self, name, **labels):
        return (name, frozenset(labels.items())) in self.samples

    def series(self, name):
        """[(labels dict, value)] of one sample name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]

    def backend(self, metric, relay, backend, **labels):
        return self.get("influxdb_relay_backend_" + metric, relay=relay, backend=backend, **labels)

    def state(self, relay, backend):
        """The backend's current state; exactly one of the three is 1."""
        on = [s for s in STATES
              if self.get("influxdb_relay_backend_state", relay=relay, backend=backend,
                          state=s) == 1]
        if len(on) != 1:
            raise AssertionError("backend %s/%s: states at 1: %s" % (relay, backend, on))
        return on[0]

    def dropped(self, relay, backend, reason):
        return self.backend("dropped_writes_total", relay, backend, reason=reason)

    def requests(self, relay, endpoint, code):
        key = dict(relay=relay, endpoint=endpoint, code=str(code))
        return self.get("influxdb_relay_http_requests_total", **key) if self.has(
            "influxdb_relay_http_requests_total", **key) else 0


def scrape(port):
    """GET /metrics on a relay port, checked; returns a Scrape."""
    st, headers, body = http_request(port, "GET", "/metrics", timeout=10)
    if st != 200:
        raise AssertionError("GET /metrics: %d %r" % (st, body[:200]))
    return Scrape(body.decode("utf-8"), headers)
