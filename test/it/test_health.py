"""GET /health (docs/operations.md section 3): 200 "ok" when every backend of the listener is up, 200
"degraded" when some are down but one takes writes, 503 "down" when none does; recovery without
client writes (probes); each listener lists only its own backends."""

import json
import unittest

from harness import RelayTestCase, free_port, http_request, wait_until
from test_metrics import take_down, lines
import prom


def health(port):
    st, headers, body = http_request(port, "GET", "/health", timeout=10)
    doc = json.loads(body)
    return st, headers, doc


class HealthTest(RelayTestCase):

    def _health_is(self, port, status, code, timeout=15):
        def check():
            st, _, doc = health(port)
            return (st, doc) if (st, doc["status"]) == (code, status) else None
        return wait_until(check, timeout=timeout, what="/health %d %s" % (code, status))

    def test_states(self):
        m1, m2, m3 = self.mock(), self.mock(), self.mock()
        p1, p2 = free_port(), free_port()
        self.relay(f"""
[http.r1]
bind-addr = 127.0.0.1:{p1}
[http.r1.output.b1]
location = {m1.url}
timeout = 2s
buffer-size-mb = 1
max-delay-interval = 1s
[http.r1.output.b2]
location = {m2.url}
timeout = 2s
max-delay-interval = 1s
[http.r2]
bind-addr = 127.0.0.1:{p2}
[http.r2.output.c1]
location = {m3.url}
""", wait_ports=[p1, p2])

        # Every backend up: 200 ok, every backend of this listener (and only those) listed.
        st, headers, doc = health(p1)
        self.assertEqual((st, doc["status"]), (200, "ok"), doc)
        self.assertTrue(headers["content-type"].startswith("application/json"), headers)
        self.assertEqual([b["name"] for b in doc["backends"]], ["b1", "b2"])
        for b in doc["backends"]:
            self.assertEqual((b["state"], b["queue_bytes"], b["queue_writes"]), ("up", 0, 0), b)
        st, _, doc2 = health(p2)
        self.assertEqual((st, doc2["status"], [b["name"] for b in doc2["backends"]]),
                         (200, "ok", ["c1"]))

        # b1 down (buffered): the write is taken by b2 (204) and held for b1 -> degraded.
        take_down(m1)
        first = lines(3, "first")
        st, _, out = http_request(p1, "POST", "/write?db=d", first)
        self.assertEqual(st, 204, out)
        st, doc = self._health_is(p1, "degraded", 200)
        b1 = doc["backends"][0]
        self.assertEqual((b1["name"], b1["state"], b1["queue_writes"]), ("b1", "down", 1), b1)
        self.assertGreater(b1["queue_bytes"], 0)
        self.assertEqual(doc["backends"][1]["state"], "up")

        # b2 down too: no backend can take writes -> a write gets 503, /health 503 down.
        take_down(m2)
        st, _, out = http_request(p1, "POST", "/write?db=d", lines(3, "second"))
        self.assertEqual(st, 503, out)
        st, doc = self._health_is(p1, "down", 503)
        self.assertEqual([b["state"] for b in doc["backends"]], ["down", "down"])
        # The other listener's backend is unaffected.
        st, _, doc2 = health(p2)
        self.assertEqual((st, doc2["status"]), (200, "ok"))

        # b2 comes back: probed without client writes -> degraded again (b1 still down).
        m2b = self.mock(port=m2.port)
        st, doc = self._health_is(p1, "degraded", 200)
        self.assertEqual([b["state"] for b in doc["backends"]], ["down", "up"])

        # b1 comes back: its held write is delivered (not the withdrawn one) -> ok.
        m1b = self.mock(port=m1.port)
        st, doc = self._health_is(p1, "ok", 200)
        self.assertEqual([(b["state"], b["queue_writes"], b["queue_bytes"])
                          for b in doc["backends"]], [("up", 0, 0), ("up", 0, 0)])
        self.assertEqual(m1b.body(), first.encode())
        self.assertEqual(m2b.writes(), [])
        s = prom.scrape(p1)
        self.assertEqual(s.dropped("r1", "b1", "withdrawn"), 1)
        self.assertGreaterEqual(s.requests("r1", "health", 503), 1)
        self.assertGreaterEqual(s.requests("r1", "health", 200), 3)

    def _two_backends(self, consistency):
        m1, m2 = self.mock(), self.mock()
        port = free_port()
        self.relay(f"""
[http.r1]
bind-addr = 127.0.0.1:{port}
write-consistency = {consistency}
[http.r1.output.b1]
location = {m1.url}
timeout = 2s
buffer-size-mb = 1
max-delay-interval = 1s
[http.r1.output.b2]
location = {m2.url}
timeout = 2s
max-delay-interval = 1s
""", wait_ports=[port])
        return m1, m2, port

    def test_consistency_all(self):
        """write-consistency = all: one backend down makes every write fail, so /health says
        down (503) as soon as one backend is down."""
        m1, m2, port = self._two_backends("all")
        take_down(m2)
        st, _, out = http_request(port, "POST", "/write?db=d", lines(1, "a"))
        self.assertEqual(st, 503, out)
        st, doc = self._health_is(port, "down", 503)
        self.assertEqual([b["state"] for b in doc["backends"]], ["up", "down"])
        st, _, out = http_request(port, "POST", "/write?db=d", lines(1, "b"))
        self.assertEqual(st, 503, out)

    def test_health_is_not_forwarded(self):
        m = self.mock()
        cfg, port = self.http_relay_config([m.url])
        self.relay(cfg, wait_ports=[port])
        for path in ("/health", "/metrics"):
            st, _, _ = http_request(port, "GET", path)
            self.assertEqual(st, 200)
        self.assertEqual(m.requests, [])


if __name__ == "__main__":
    unittest.main()
