"""GET /metrics (docs/operations.md section 1): a strict Prometheus text exposition covering every relay
of the process, every backend's series from start-up, and counters equal to what the test did
through traffic, a partial write, an outage (retries, buffer_full drops, state down), and a
recovery (draining, then up, backlog delivered)."""

import json
import os
import re
import socket
import threading
import time
import unittest

from harness import RelayTestCase, free_port, http_request, wait_until, SRC
import prom

BACKEND_COUNTERS = ("batches_sent_total", "points_delivered_total", "bytes_delivered_total",
                    "retries_total")


def take_down(mock):
    """Makes a mock unreachable: kept-alive connections are closed at their next request (the
    responder raises, so no answer is sent) and new connections are refused."""
    def refuse(req):
        raise ConnectionAbortedError("mock backend down")
    mock.responder = refuse
    mock.server.handle_error = lambda request, client_address: None
    mock.stop()


def lines(n, tag, width=0, ts=1700000000000000000):
    """n valid points with explicit timestamps (forwarded byte for byte); width pads the field."""
    pad = "x" * width
    return "".join('m,tag=%s v=%di,s="%s" %d\n' % (tag, i, pad, ts + i) for i in range(n))


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        return re.search(r"project\(influxdb-relay VERSION ([0-9.]+)", f.read()).group(1)


class MetricsTest(RelayTestCase):

    def test_every_series_from_startup(self):
        """Before any write, both listeners show the whole process: every backend at 0 and up,
        every UDP relay and output, start time and build info; the format is strict."""
        m1, m2 = self.mock(), self.mock()
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        self.addCleanup(sink.close)
        p1, p2, pu = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
        t0 = time.time()
        self.relay(f"""
[http.r1]
bind-addr = 127.0.0.1:{p1}
[http.r1.output.b1]
location = {m1.url}
buffer-size-mb = 1
[http.r1.output.b2]
location = {m2.url}
[http.r2]
bind-addr = 127.0.0.1:{p2}
[http.r2.output.c1]
location = {m1.url}
[udp.u1]
bind-addr = 127.0.0.1:{pu}
[udp.u1.output.s1]
location = 127.0.0.1:{sink.getsockname()[1]}
""", wait_ports=[p1, p2])
        s = prom.scrape(p1)
        self.assertTrue(s.headers["content-type"].startswith("text/plain"), s.headers)
        self.assertIn("version=0.0.4", s.headers["content-type"])
        for relay, backend in (("r1", "b1"), ("r1", "b2"), ("r2", "c1")):
            self.assertEqual(s.state(relay, backend), "up")
            for m in BACKEND_COUNTERS + ("queue_bytes", "queue_writes",
                                         "oldest_queued_age_seconds",
                                         "last_success_timestamp_seconds"):
                self.assertEqual(s.backend(m, relay, backend), 0, (m, relay, backend))
            for reason in prom.DROP_REASONS:
                self.assertEqual(s.dropped(relay, backend, reason), 0)
            self.assertEqual(s.backend("send_duration_seconds_count", relay, backend), 0)
        self.assertEqual(s.backend("queue_capacity_bytes", "r1", "b1"), 1 << 20)
        self.assertGreater(s.backend("queue_capacity_bytes", "r1", "b2"), 0)
        for relay in ("r1", "r2"):
            for m in ("points_received_total", "bytes_received_total", "lines_rejected_total",
                      "request_duration_seconds_count"):
                self.assertEqual(s.get("influxdb_relay_" + m, relay=relay), 0)
        self.assertEqual(s.get("influxdb_relay_udp_datagrams_received_total", relay="u1"), 0)
        self.assertEqual(s.get("influxdb_relay_udp_points_received_total", relay="u1"), 0)
        for reason in ("invalid", "mtu"):
            self.assertEqual(s.get("influxdb_relay_udp_lines_dropped_total", relay="u1",
                                   reason=reason), 0)
        self.assertEqual(s.get("influxdb_relay_udp_points_sent_total", relay="u1",
                               backend="s1"), 0)
        start = s.get("influxdb_relay_start_time_seconds")
        self.assertTrue(t0 - 2 <= start <= time.time() + 1, (t0, start))
        self.assertEqual(s.get("influxdb_relay_build_info", version=project_version()), 1)
        # The other listener shows the same process (its own /metrics request aside).
        s2 = prom.scrape(p2)
        keys = {k for k in s.samples if k[0] != "influxdb_relay_http_requests_total"}
        keys2 = {k for k in s2.samples if k[0] != "influxdb_relay_http_requests_total"}
        self.assertEqual(keys, keys2)
        self.assertEqual(s2.requests("r1", "metrics", 200), 1)

    def test_counters_follow_traffic_outage_recovery(self):
        """Counters equal what the test did: points and bytes received and delivered, requests
        by code, rejected lines; during an outage retries grow, the state is down and writes
        that do not fit are dropped as buffer_full; on recovery the backlog drains (draining,
        then up) and exactly the held writes arrive."""
        m1, m2 = self.mock(), self.mock()
        port = free_port()
        relay = self.relay(f"""
[http.r1]
bind-addr = 127.0.0.1:{port}
[http.r1.output.b1]
location = {m1.url}
timeout = 2s
buffer-size-mb = 1
max-batch-kb = 64
max-delay-interval = 1s
[http.r1.output.b2]
location = {m2.url}
timeout = 2s
""", wait_ports=[port])

        # 1. Traffic: 5 writes of 100 points, both backends up.
        bodies = [lines(100, "t%d" % i) for i in range(5)]
        for b in bodies:
            st, _, out = http_request(port, "POST", "/write?db=d", b)
            self.assertEqual(st, 204, out)
        sent_bytes = sum(len(b) for b in bodies)
        s = wait_until(lambda: self._scrape_when(
            port, lambda s: s.requests("r1", "write", 204) == 5 and
            s.backend("points_delivered_total", "r1", "b1") == 500 and
            s.backend("points_delivered_total", "r1", "b2") == 500), what="traffic counted")
        self.assertEqual(s.get("influxdb_relay_points_received_total", relay="r1"), 500)
        self.assertEqual(s.get("influxdb_relay_bytes_received_total", relay="r1"), sent_bytes)
        self.assertEqual(s.get("influxdb_relay_request_duration_seconds_count", relay="r1"), 5)
        for b, m in (("b1", m1), ("b2", m2)):
            got = m.writes()
            self.assertEqual(s.backend("batches_sent_total", "r1", b), len(got))
            self.assertEqual(s.backend("bytes_delivered_total", "r1", b),
                             sum(len(r["body"]) for r in got))
            self.assertGreaterEqual(s.backend("send_duration_seconds_count", "r1", b), len(got))
            self.assertAlmostEqual(s.backend("last_success_timestamp_seconds", "r1", b),
                                   time.time(), delta=10)
            self.assertEqual(s.state("r1", b), "up")
            self.assertEqual(s.backend("retries_total", "r1", b), 0)

        # 2. A partial write: 2 valid lines, 1 invalid -> 400, the valid ones forwarded.
        st, _, out = http_request(port, "POST", "/write?db=d", lines(2, "p") + "bad line\n")
        self.assertEqual(st, 400, out)
        s = wait_until(lambda: self._scrape_when(
            port, lambda s: s.requests("r1", "write", 400) == 1), what="400 counted")
        self.assertEqual(s.get("influxdb_relay_lines_rejected_total", relay="r1"), 1)
        self.assertEqual(s.get("influxdb_relay_points_received_total", relay="r1"), 502)
        wait_until(lambda: self._scrape_when(
            port, lambda s: s.backend("points_delivered_total", "r1", "b1") == 502),
            what="partial write delivered")

        # 3. Outage of b1: 15 writes of ~100 KB (1.5 MB for a 1 MiB buffer). b2 takes each one,
        # so every client gets 204; b1 holds what fits and drops the rest as buffer_full.
        take_down(m1)
        big = [lines(1000, "o%d" % i, width=80) for i in range(15)]
        for b in big:
            st, _, out = http_request(port, "POST", "/write?db=d", b)
            self.assertEqual(st, 204, out)
        s = wait_until(lambda: self._scrape_when(
            port, lambda s: s.backend("retries_total", "r1", "b1") >= 2 and
            s.state("r1", "b1") == "down"), timeout=15, what="b1 down and retried")
        held = s.backend("queue_writes", "r1", "b1")
        full = s.dropped("r1", "b1", "buffer_full")
        self.assertEqual(held + full, 15, (held, full))
        self.assertGreater(full, 0)
        self.assertGreater(held, 0)
        self.assertGreater(s.backend("queue_bytes", "r1", "b1"), 0)
        self.assertLessEqual(s.backend("queue_bytes", "r1", "b1"),
                             s.backend("queue_capacity_bytes", "r1", "b1"))
        self.assertGreater(s.backend("oldest_queued_age_seconds", "r1", "b1"), 0)
        self.assertEqual(s.state("r1", "b2"), "up")
        self.assertEqual(s.backend("points_delivered_total", "r1", "b2"), 502 + 15 * 1000)
        for reason in ("rejected", "withdrawn", "shutdown"):
            self.assertEqual(s.dropped("r1", "b1", reason), 0, reason)
        st, _, out = http_request(port, "GET", "/health")
        self.assertEqual(st, 200, out)
        self.assertIn(b'"degraded"', out)

        # 4. Recovery, slowed down (0.2 s a request, one write a batch) so draining is seen.
        m1b = self.mock(port=m1.port, responder=lambda req: (204, b"", {}, 0.2 if req["path"] ==
                                                             "/write" else 0))
        seen = set()

        health_draining = []

        def recovered(s):
            seen.add(s.state("r1", "b1"))
            st, _, out = http_request(port, "GET", "/health")
            doc = json.loads(out)
            if doc["backends"][0]["state"] == "draining":
                health_draining.append((st, doc["status"]))
            return s.state("r1", "b1") == "up" and s.backend("queue_writes", "r1", "b1") == 0
        s = wait_until(lambda: self._scrape_when(port, recovered), timeout=30, step=0.05,
                       what="b1 drained and up")
        self.assertIn("draining", seen)
        # While b1 drains, /health says degraded (200): b1 takes writes, but is behind.
        self.assertTrue(health_draining)
        self.assertEqual(set(health_draining), {(200, "degraded")})
        self.assertEqual(s.backend("queue_bytes", "r1", "b1"), 0)
        self.assertEqual(s.backend("oldest_queued_age_seconds", "r1", "b1"), 0)
        delivered = b"".join(r["body"] for r in m1b.writes())
        self.assertEqual(delivered.count(b"\n"), held * 1000)
        self.assertEqual(s.backend("points_delivered_total", "r1", "b1"), 502 + held * 1000)
        self.assertEqual(s.dropped("r1", "b1", "buffer_full"), full)
        self.assertGreaterEqual(s.backend("retries_total", "r1", "b1"), 2)
        self.assertEqual(s.get("influxdb_relay_points_received_total", relay="r1"),
                         502 + 15 * 1000)
        self.assertEqual(s.requests("r1", "write", 204), 20)
        st, _, out = http_request(port, "GET", "/health")
        self.assertEqual((st, b'"ok"' in out), (200, True), out)
        relay.kill()

    def test_rejected_and_withdrawn(self):
        """A write one backend refuses with 400 is dropped there as rejected; a write no backend
        takes in time gets 503 and is withdrawn from the buffered backend."""
        def picky(req):
            if b"reject" in req["body"]:
                return 400, b'{"error":"field type conflict"}', {"Content-Type":
                                                                  "application/json"}, 0
            return 204, b"", {}, 0
        m1, m2 = self.mock(responder=picky), self.mock()
        port = free_port()
        self.relay(f"""
[http.r1]
bind-addr = 127.0.0.1:{port}
write-timeout = 1s
[http.r1.output.b1]
location = {m1.url}
timeout = 500ms
buffer-size-mb = 1
[http.r1.output.b2]
location = {m2.url}
timeout = 500ms
""", wait_ports=[port])
        st, _, out = http_request(port, "POST", "/write?db=d", "reject v=1i\n")
        self.assertIn(st, (204, 400), out)
        s = wait_until(lambda: self._scrape_when(
            port, lambda s: s.dropped("r1", "b1", "rejected") == 1 and
            s.backend("points_delivered_total", "r1", "b2") == 1), what="rejected counted")
        self.assertEqual(s.dropped("r1", "b2", "rejected"), 0)
        self.assertEqual(s.backend("points_delivered_total", "r1", "b1"), 0)
        self.assertEqual(s.state("r1", "b1"), "up")
        # Both down: 503 at once, the write withdrawn from b1's buffer (b2 keeps nothing).
        take_down(m1)
        take_down(m2)
        st, _, out = http_request(port, "POST", "/write?db=d", "w v=1i\n")
        self.assertEqual(st, 503, out)
        s = wait_until(lambda: self._scrape_when(
            port, lambda s: s.dropped("r1", "b1", "withdrawn") == 1), what="withdrawn counted")
        self.assertEqual(s.backend("queue_writes", "r1", "b1"), 0)
        self.assertEqual(s.requests("r1", "write", 503), 1)

    def test_scrapes_during_traffic(self):
        """Scrapes taken while writers run are each a valid exposition, and no counter ever goes
        backwards from one scrape to the next; at the end the totals are exact."""
        m1, m2 = self.mock(), self.mock()
        cfg, port = self.http_relay_config([m1.url, m2.url], output_extra="buffer-size-mb = 8")
        self.relay(cfg, wait_ports=[port])
        writers, per_writer, points = 3, 150, 20
        errors = []

        def writer(w):
            try:
                for i in range(per_writer):
                    st, _, out = http_request(port, "POST", "/write?db=d",
                                              lines(points, "w%d_%d" % (w, i)))
                    if st != 204:
                        errors.append((st, out))
            except Exception as e:  # reported by the main thread
                errors.append(e)
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        scrapes, last = 0, {}
        while any(t.is_alive() for t in threads) or scrapes < 3:
            s = prom.scrape(port)
            scrapes += 1
            for (name, labels), v in s.samples.items():
                if s.types.get(name) == "counter" or name.endswith(("_bucket", "_count", "_sum")):
                    key = (name, labels)
                    self.assertGreaterEqual(v, last.get(key, 0), key)
                    last[key] = v
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        total = writers * per_writer * points
        s = wait_until(lambda: self._scrape_when(port, lambda s: all(
            s.backend("points_delivered_total", "r1", b) == total for b in ("b1", "b2"))),
            what="everything delivered")
        self.assertEqual(s.get("influxdb_relay_points_received_total", relay="r1"), total)
        self.assertEqual(s.requests("r1", "write", 204), writers * per_writer)
        self.assertGreater(scrapes, 3)

    def test_histograms_in_seconds(self):
        """A backend that takes 0.3 s: the write's answer and the backend request land in the
        0.25..0.5 s buckets, and _sum is about 0.3 (seconds, not ms or us)."""
        slow = self.mock(responder=lambda req: (204, b"", {}, 0.3 if req["path"] == "/write"
                                                else 0))
        cfg, port = self.http_relay_config([slow.url])
        self.relay(cfg, wait_ports=[port])
        st, _, out = http_request(port, "POST", "/write?db=d", lines(1, "h"))
        self.assertEqual(st, 204, out)
        s = wait_until(lambda: self._scrape_when(port, lambda s: s.backend(
            "send_duration_seconds_count", "r1", "b1") >= 1), what="send observed")
        for name, labels in (("influxdb_relay_request_duration_seconds", {"relay": "r1"}),
                             ("influxdb_relay_backend_send_duration_seconds",
                              {"relay": "r1", "backend": "b1"})):
            self.assertEqual(s.get(name + "_bucket", le="0.25", **labels), 0, name)
            self.assertEqual(s.get(name + "_bucket", le="0.5", **labels), 1, name)
            self.assertEqual(s.get(name + "_bucket", le="+Inf", **labels), 1, name)
            self.assertEqual(s.get(name + "_count", **labels), 1, name)
            self.assertGreaterEqual(s.get(name + "_sum", **labels), 0.29, name)
            self.assertLess(s.get(name + "_sum", **labels), 0.5, name)

    def test_udp_counters(self):
        """UDP counters equal the datagrams and lines sent, including invalid and too-long
        lines, and the datagrams that arrive at the output."""
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(0.2)
        self.addCleanup(sink.close)
        m = self.mock()
        port, pu = free_port(), free_port(socket.SOCK_DGRAM)
        r = self.relay(f"""
[http.r1]
bind-addr = 127.0.0.1:{port}
[http.r1.output.b1]
location = {m.url}
[udp.u1]
bind-addr = 127.0.0.1:{pu}
[udp.u1.output.s1]
location = 127.0.0.1:{sink.getsockname()[1]}
mtu = 200
""", wait_ports=[port])
        # The UDP socket is bound after the HTTP one: a datagram sent before would be lost.
        wait_until(lambda: "listening on udp" in r.log(), what="udp listener")
        short = ["m,d=%02d v=%di 1700000000000000000\n" % (i, i) for i in range(10)]
        longline = "m,d=long s=\"%s\" 1700000000000000000\n" % ("y" * 300)
        datagrams = ["".join(short[:5]), short[0] + "not line protocol\n" + longline + short[1],
                     "".join(short)]
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(tx.close)
        for d in datagrams:
            tx.sendto(d.encode(), ("127.0.0.1", pu))
        got = []
        s = wait_until(lambda: self._scrape_when(port, lambda s: s.get(
            "influxdb_relay_udp_datagrams_received_total", relay="u1") == 3 and s.get(
            "influxdb_relay_udp_points_sent_total", relay="u1", backend="s1") == 17),
            what="UDP counted")
        while True:
            try:
                got.append(sink.recv(65536))
            except socket.timeout:
                break
        self.assertEqual(sum(g.count(b"\n") for g in got), 17)
        self.assertTrue(all(len(g) <= 200 for g in got))
        self.assertEqual(s.get("influxdb_relay_udp_points_received_total", relay="u1"), 18)
        self.assertEqual(s.get("influxdb_relay_udp_lines_dropped_total", relay="u1",
                               reason="invalid"), 1)
        self.assertEqual(s.get("influxdb_relay_udp_lines_dropped_total", relay="u1",
                               reason="mtu"), 1)
        self.assertEqual(s.get("influxdb_relay_udp_datagrams_sent_total", relay="u1",
                               backend="s1"), len(got))
        self.assertEqual(s.get("influxdb_relay_udp_send_errors_total", relay="u1",
                               backend="s1"), 0)
        # UDP traffic is not HTTP traffic.
        self.assertEqual(s.get("influxdb_relay_points_received_total", relay="r1"), 0)

    def _scrape_when(self, port, pred):
        s = prom.scrape(port)
        return s if pred(s) else None


if __name__ == "__main__":
    unittest.main()
