"""The Grafana dashboard (docs/grafana/influxdb-relay.json): a Grafana 9+ JSON model whose every
query names only metrics the relay exports, and returns data from a real Prometheus scraping a
relay under traffic (HTTP writes, a backend down for a while, a rejected write, UDP datagrams,
a reload)."""

import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest
import urllib.parse
import urllib.request

from harness import (SRC, RelayTestCase, Worker, _kill, _live, free_port, http_request,
                     require_tool, wait_until)
import prom

DASHBOARD = os.path.join(SRC, "docs", "grafana", "influxdb-relay.json")
# Metrics the dashboard shows before the relay exports them: each names the helper adding it.
# A query using one of these is only allowed while the metric is absent from /metrics.
PENDING = {}
# What Grafana substitutes in a query (the "All" value of a multi-value variable is ".*").
SUBST = {"$__rate_interval": "10s", "$instance": ".*", "$relay": ".*"}


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def all_panels(d):
    out = []
    for p in d["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def exprs(d):
    """[(panel title, expr)] of every query of every panel."""
    return [(p["title"], t["expr"]) for p in all_panels(d) for t in p.get("targets", [])]


def metric_names(expr):
    """The relay metric families an expression names (histogram suffixes removed)."""
    return {re.sub(r"_(bucket|sum|count)$", "", m) for m in
            re.findall(r"influxdb_relay_[a-z_]+", expr)}


def substitute(expr):
    for k, v in SUBST.items():
        expr = expr.replace(k, v)
    return expr


class Prometheus:
    """A real Prometheus (Debian's package) on a free 127.0.0.1 port, scraping targets every
    second, with its own config and storage in tmp."""

    def __init__(self, tmp, targets):
        self.port = free_port()
        self.dir = os.path.join(tmp, "prometheus")
        os.makedirs(os.path.join(self.dir, "data"))
        self.conf = os.path.join(self.dir, "prometheus.yml")
        with open(self.conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: influxdb-relay\n    static_configs:\n"
                    "      - targets: [%s]\n" % ", ".join("'127.0.0.1:%d'" % t for t in targets))
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [require_tool("prometheus"), "--config.file=" + self.conf,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _live.add(self.proc)
        wait_until(self._ready, timeout=60, step=0.2, what="prometheus ready")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited %s:\n%s" % (self.proc.returncode, self.log()))
        try:
            return http_request(self.port, "GET", "/-/ready", timeout=5)[0] == 200
        except OSError:
            return False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path,
                                                     urllib.parse.urlencode(params, doseq=True))
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise AssertionError("prometheus %s %s: %s" % (path, params, body))
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def kill(self):
        if self.proc is not None:
            _kill(self.proc)


class DashboardModelTest(unittest.TestCase):
    """The JSON model itself, without running anything."""

    def test_grafana_model(self):
        d = load_dashboard()
        self.assertGreaterEqual(d["schemaVersion"], 36)  # Grafana 9.0 and later
        self.assertEqual(d["uid"], "influxdb-relay")
        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds = variables["DS_PROMETHEUS"]
        self.assertEqual((ds["type"], ds["query"]), ("datasource", "prometheus"))
        relay = variables["relay"]
        self.assertEqual(relay["type"], "query")
        self.assertIn("label_values(", relay["definition"])
        self.assertTrue(relay["multi"] and relay["includeAll"])
        ids = [p["id"] for p in all_panels(d)]
        self.assertEqual(len(ids), len(set(ids)))
        for p in all_panels(d):
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                             p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                self.assertEqual(t["expr"].count("("), t["expr"].count(")"), p["title"])
        titles = " | ".join(p["title"] for p in all_panels(d)).lower()
        for want in ("writes/s", "points/s", "answers", "latency", "backend state",
                     "queue bytes vs capacity", "spool bytes vs capacity", "oldest queued",
                     "retries", "dropped by reason", "udp datagrams", "reload"):
            self.assertIn(want, titles)

    def test_every_metric_is_documented(self):
        known = set(prom.FAMILIES) | set(prom.EXTRA_FAMILIES) | set(PENDING)
        for title, expr in exprs(load_dashboard()):
            for name in metric_names(expr):
                self.assertIn(name, known, "%s: unknown metric %s" % (title, name))


class DashboardPrometheusTest(RelayTestCase):
    """Every query of the dashboard, evaluated by a real Prometheus scraping a busy relay."""

    def setUp(self):
        super().setUp()
        self.prom = None

    def tearDown(self):
        if self.prom is not None:
            if self._outcome_failed():
                print("\n----- prometheus log -----\n%s" % self.prom.log()[-4000:])
            self.prom.kill()
        super().tearDown()

    def _traffic(self, port, udp_port, stop):
        """Writes (one rejected by a backend now and then) and datagrams until stop."""
        sender = self.udp_socket()
        i = 0
        while not stop.is_set():
            body = "m,k=%d v=%d %d\n" % (i % 3, i, 1000 + i)
            if i % 10 == 5:
                body = "bad v=1 1\n"
            http_request(port, "POST", "/write?db=db", body, timeout=30)
            sender.sendto(b"u v=%d\n" % i, ("127.0.0.1", udp_port))
            i += 1
            stop.wait(0.05)
        return i

    def test_every_query_returns_data(self):
        self.down = True

        def b2(req):
            if self.down and req["path"] == "/write":
                return 503, "down", {}, 0
            return 204, b"", {}, 0
        b1 = self.mock(lambda req: (400, '{"error":"bad"}', {"Content-Type": "application/json"},
                                    0) if b"bad" in req["body"] else (204, b"", {}, 0))
        b2m = self.mock(b2)
        sink = self.udp_socket()
        port, udp_port = free_port(), free_port()
        cfg = ("[http.r1]\nbind-addr = 127.0.0.1:%d\n"
               "[http.r1.output.b1]\nlocation = %s\n"
               "[http.r1.output.b2]\nlocation = %s\nbuffer-size-mb = 8\n"
               "max-delay-interval = 500ms\ntimeout = 2s\n"
               "[udp.u1]\nbind-addr = 127.0.0.1:%d\n"
               "[udp.u1.output.o1]\nlocation = 127.0.0.1:%d\n"
               % (port, b1.url, b2m.url, udp_port, sink.getsockname()[1]))
        r = self.relay(cfg, wait_ports=[port])
        self.prom = Prometheus(self.tmp, [port]).start()
        stop = threading.Event()
        w = Worker(self._traffic, port, udp_port, stop)
        w.start()
        try:
            # Retries while b2 is down, then it recovers; a reload meanwhile (a changed timeout).
            wait_until(lambda: prom.scrape(port).backend("retries_total", "r1", "b2") >= 2,
                       timeout=30, what="retries to the down backend")
            with open(r.conf_path, "w") as f:
                f.write(cfg.replace("timeout = 2s", "timeout = 3s"))
            os.kill(r.proc.pid, signal.SIGHUP)
            wait_until(lambda: "configuration reloaded" in r.log(), what="the reload")
            self.down = False
            wait_until(lambda: prom.scrape(port).state("r1", "b2") == "up", timeout=30,
                       what="b2 back up")
            # Enough scrapes for a 10s rate window, the traffic still going.
            wait_until(lambda: self.prom.query('count_over_time(up{job="influxdb-relay"}[20s]) '
                                               '>= 12'), timeout=60, what="20s of scrapes")
            self._check_queries(port)
        finally:
            stop.set()
        self.assertGreater(w.join(), 20)
        self.assertEqual(r.terminate(), 0)

    def _check_queries(self, port):
        exported = set(prom.scrape(port).types)
        d = load_dashboard()
        empty, pending = [], []
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                m = re.match(r"label_values\((.*), *(\w+)\)$", v["definition"])
                values = self.prom.api("label/%s/values" % m.group(2),
                                       **{"match[]": substitute(m.group(1))})
                self.assertTrue(values, "variable %s: no values" % v["name"])
        for title, expr in exprs(d):
            names = metric_names(expr)
            waiting = {n for n in names if n in PENDING and n not in exported}
            if waiting:
                pending.append((title, sorted(waiting)))
                continue
            for n in names:
                self.assertIn(n, exported, "%s: %s is not exported" % (title, n))
            if not self.prom.query(substitute(expr)):
                empty.append((title, expr))
        self.assertEqual(empty, [], "queries without data")
        # The only queries not evaluated are those of metrics another helper is adding.
        for title, names in pending:
            print("pending %s: %s (%s)" % (", ".join(PENDING[n] for n in names), title,
                                           ", ".join(names)))


if __name__ == "__main__":
    unittest.main()
