"""Sender-side defects of issue 17, each reproduced as reported: a poison write (influxd 1.6.7
answers 500 to a line with exactly 100 tags) stalling a buffered backend for good; a 503 with
Retry-After for a write the backend then stored; stamping growth breaking the byte bound;
environment proxies receiving the writes; write-consistency any answering 503 when the backends
are known to be down; 408/499/3xx/1xx answers misclassified."""

import json
import os
import re
import threading
import time
import unittest
from unittest import mock

from harness import RelayTestCase, free_port, http_request, wait_until
from test_retry import dropped, metric

TS = 1600000000000000000
POISON = ("m," + ",".join("t%02d=v" % k for k in range(100)) + " f=1 %d\n" % TS).encode()


class Flaky:
    """A mock responder: the first `bad` /write requests get `status` (with `headers`), then
    204. Records every /write body with the status it got; other paths get 204."""

    def __init__(self, status, bad, headers=None, body=b'{"error":"nope"}'):
        self.status, self.bad, self.headers, self.body = status, bad, headers or {}, body
        self.seen = []  # (status, body)
        self.lock = threading.Lock()

    def __call__(self, req):
        if req["path"] != "/write":
            return 204, b"", {}, 0
        with self.lock:
            st = self.status if self.bad > 0 else 204
            self.bad -= 1
            self.seen.append((st, req["body"]))
        return (st, self.body, self.headers, 0) if st != 204 else (204, b"", {}, 0)

    def accepted(self):
        with self.lock:
            return [b for st, b in self.seen if st == 204]

    def bodies(self):
        with self.lock:
            return [b for _, b in self.seen]


class SenderDefectsTest(RelayTestCase):

    def start(self, urls, extra="", output_extra=""):
        conf, port = self.http_relay_config(urls, extra=extra, output_extra=output_extra)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        return port

    def post(self, body, query="db=db", timeout=30):
        return http_request(self.port, "POST", "/write?" + query, body, timeout=timeout)

    def state(self, backend):
        _, _, body = http_request(self.port, "GET", "/health")
        return {b["name"]: b["state"] for b in json.loads(body)["backends"]}[backend]

    # ------------------------------------------------------------------ 1. poison writes

    def test_poison_write_is_dropped_and_later_writes_land(self):
        """influxd 1.6.7 answers 500 to a line with exactly 100 tags, forever; the other backend
        stores it. The poison is dropped (counted, logged with the answer) and the writes after
        it land in influxd, in order."""
        influx = self.influxd(db="db")
        st, _, _ = influx.write("db", POISON)
        self.assertEqual(st, 500)  # the premise, checked on the real thing
        other = self.mock()
        self.start([influx.url, other.url],
                   output_extra="buffer-size-mb = 16\nmax-delay-interval = 1s")
        st, _, body = self.post(POISON)
        self.assertEqual(st, 204, body)
        for i in range(1, 6):
            # g: one series and timestamp, so the value left is the write stored last.
            st, _, body = self.post(b"g v=%d %d\nc,n=%d v=1 %d\n" % (i, TS, i, TS + i))
            self.assertEqual(st, 204, body)
        wait_until(lambda: influx.count("db", "c", "v") == 5, timeout=30,
                   what="the 5 writes after the poison in influxd")
        self.assertEqual(influx.rows("db", "SELECT v FROM g"), [[TS, 5]])
        self.assertEqual(influx.count("db", "m", "f"), 0)
        self.assertEqual(dropped(self.port, "b1", "rejected"), 1)
        self.assertEqual(dropped(self.port, "b2", "rejected"), 0)
        log = self.r.log()
        self.assertRegex(log, r"error r1/b1: write dropped as rejected: .* status=500 attempts=3 "
                              r"reason=\"Internal Server Error ?\"")
        wait_until(lambda: self.state("b1") == "up", timeout=10, what="b1 up again")
        self.assertEqual(len(other.writes()), 6)

    def test_backend_failing_every_write_loses_nothing(self):
        """A backend that answers 500 to every write (an overloaded influxd) is down, not
        poisoned: the witness fails too, nothing is dropped, and once it recovers it gets
        every write, in order."""
        sick = Flaky(500, bad=10 ** 9, body=b'{"error":"engine: cache-max-memory-size exceeded"}')
        b1, b2 = self.mock(sick), self.mock()
        self.start([b1.url, b2.url], output_extra="buffer-size-mb = 16\nmax-delay-interval = 200ms")
        writes = [b"w n=%di %d\n" % (i, TS + i) for i in range(4)]
        for w in writes:
            st, _, body = self.post(w)
            self.assertEqual(st, 204, body)
        # The head write alone failed 3 times, then the witness (the next one, alone) failed:
        # twice, so that the rule had its chance to drop something.
        wait_until(lambda: sick.bodies().count(writes[1]) >= 2, timeout=20,
                   what="the witness sent alone twice")
        self.assertGreaterEqual(sick.bodies().count(writes[0]), 4)
        self.assertEqual(dropped(self.port, "b1", "rejected"), 0)
        self.assertEqual(self.state("b1"), "down")
        sick.bad = 0
        wait_until(lambda: b"".join(sick.accepted()) == b"".join(writes), timeout=20,
                   what="every write delivered in order after the recovery")
        self.assertEqual(dropped(self.port, "b1", "rejected"), 0)
        self.assertNotIn("write dropped as rejected", self.r.log())

    # ------------------------------------------------------------------ 2. 503 and Retry-After

    def test_no_retry_after_for_a_write_the_backend_received(self):
        """The issue's scenario scaled down (backend 6 s -> 0.8 s per request, timeout 10 s ->
        1 s, write-timeout 11 s -> 1.5 s): writes waiting behind a slow one. A 503 with
        Retry-After must be a write the backend never received; a 503 for a write it may have
        stored says so."""
        m = self.mock(lambda req: (204, b"", {}, 0.8 if req["path"] == "/write" else 0))
        self.start([m.url], extra="write-timeout = 1500ms", output_extra="timeout = 1s")
        res = {}

        def client(i):
            res[i] = self.post(b"s,w=%d v=1 %d\n" % (i, TS + i))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join()
        self.assertEqual(res[0][0], 204)  # positive control: the path works
        failed = [i for i in res if res[i][0] == 503]
        self.assertTrue(failed, res)  # the scenario happened
        # Let every request the relay started reach the mock and finish.
        time.sleep(1.0)
        received = b"".join(w["body"] for w in m.writes())
        for i in failed:
            st, h, body = res[i]
            got = b"s,w=%d v=1" % i in received
            if "retry-after" in h:
                self.assertFalse(got, "503 + Retry-After for write %d the backend received" % i)
            else:
                self.assertIn("may have been stored", json.loads(body)["error"])

    def test_503_when_the_request_outlives_the_client(self):
        """One write, a backend slower than write-timeout: the request is cut before the
        client's deadline; the backend got it whole, so no Retry-After."""
        m = self.mock(lambda req: (204, b"", {}, 3 if req["path"] == "/write" else 0))
        self.start([m.url], extra="write-timeout = 1s", output_extra="timeout = 10s")
        t0 = time.monotonic()
        st, h, body = self.post(b"late v=1 1\n")
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(st, 503)
        self.assertNotIn("retry-after", h)
        self.assertEqual(json.loads(body)["error"], "unable to write points: the write may have "
                         "been stored by some backends; retrying may store it twice")
        self.assertEqual(len(m.writes()), 1)

    def test_hung_backend_with_short_write_timeout_goes_down(self):
        """write-timeout below timeout: every request is cut for its client's deadline. One cut
        is no failure of the backend, but a backend that answers none within what its clients
        wait is down (and then fails fast)."""
        m = self.mock(lambda req: (204, b"", {}, 5 if req["path"] == "/write" else 0))
        self.start([m.url], extra="write-timeout = 500ms",
                   output_extra="timeout = 10s\nbuffer-size-mb = 1\nmax-delay-interval = 10s")
        for i in range(2):
            st, h, body = self.post(b"h v=%d %d\n" % (i, i))
            self.assertEqual(st, 503)
            self.assertNotIn("retry-after", h)  # it reached the backend whole
        wait_until(lambda: self.state("b1") == "down", timeout=5, what="b1 down")
        t0 = time.monotonic()
        st, h, _ = self.post(b"h v=9 9\n")
        self.assertEqual(st, 503)
        self.assertLess(time.monotonic() - t0, 0.4)  # fails fast, nothing sent
        self.assertIn("retry-after", h)

    # ------------------------------------------------------------------ 3. stamping and the bound

    def test_stamped_body_is_held_at_its_stamped_size(self):
        """4 MiB of unstamped `m f=1` lines are 18.2 MB once stamped (ns): that is what is
        forwarded, and what the buffered queue holds and reports, not the doubling buffer."""
        lines = (4 << 20) // 6
        body = b"m f=1\n" * lines
        stamped = lines * 26
        other = self.mock()
        self.start(["http://127.0.0.1:%d/write" % free_port(), other.url],
                   output_extra="buffer-size-mb = 64\nmax-delay-interval = 10s")
        st, _, resp = self.post(body)
        self.assertEqual(st, 204, resp)
        wait_until(lambda: other.writes(), timeout=10, what="the write at b2")
        self.assertEqual(len(other.writes()[0]["body"]), stamped)
        self.assertEqual(metric(self.port, "backend_queue_writes", "b1"), 1)
        held = metric(self.port, "backend_queue_bytes", "b1")
        self.assertGreaterEqual(held, stamped)
        self.assertLess(held, stamped + 8192, "held %d for %d stamped bytes" % (held, stamped))

    def test_write_that_can_never_fit_gets_413(self):
        """Stamped, a body below max-body-mb can outgrow a buffered output's whole buffer: no
        retry could ever queue it, so the client gets 413 (not 503 buffer full + Retry-After).
        The same lines with precision=s (11 bytes a stamp) fit."""
        m = self.mock()
        self.start([m.url], output_extra="buffer-size-mb = 16")
        lines = (4 << 20) // 6
        body = b"m f=1\n" * lines
        st, h, resp = self.post(body)
        self.assertEqual(st, 413, resp)
        self.assertNotIn("retry-after", h)
        err = json.loads(resp)["error"]
        self.assertIn("request too large for output \"b1\": %d bytes" % (lines * 26), err)
        self.assertIn("buffer-size-mb (16777216 bytes)", err)
        self.assertEqual(dropped(self.port, "b1", "buffer_full"), 1)
        self.assertIn("r1/b1: write larger than the whole buffer, refused with 413", self.r.log())
        st, _, resp = self.post(body, query="db=db&precision=s")
        self.assertEqual(st, 204, resp)
        self.assertEqual([len(w["body"]) for w in m.writes()], [lines * 17])

    # ------------------------------------------------------------------ 4. proxies

    def test_environment_proxies_are_not_used(self):
        """With http_proxy, HTTPS_PROXY and ALL_PROXY set, writes and /ping probes still go
        straight to the backend; the "proxy" sees nothing."""
        proxy = self.mock()
        purl = "http://127.0.0.1:%d" % proxy.port
        env = {k: purl for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                 "ALL_PROXY", "all_proxy")}
        env["no_proxy"] = env["NO_PROXY"] = ""
        port = free_port()
        with mock.patch.dict(os.environ, env):
            self.start(["http://127.0.0.1:%d/write" % port],
                       output_extra="buffer-size-mb = 1\nmax-delay-interval = 200ms\ntimeout = 1s")
        st, _, _ = self.post(b"p v=0 1\n")
        self.assertEqual(st, 503)  # nothing listens there yet
        wait_until(lambda: "r1/b1: backend down" in self.r.log(), what="b1 down")
        backend = self.mock(port=port)
        wait_until(lambda: any(r["path"] == "/ping" for r in backend.requests), timeout=10,
                   what="a /ping probe at the backend")
        wait_until(lambda: self.state("b1") == "up", timeout=10, what="b1 up")
        st, _, _ = self.post(b"p v=1 2\n")
        self.assertEqual(st, 204)
        self.assertEqual([w["body"] for w in backend.writes()], [b"p v=1 2\n"])
        self.assertEqual(proxy.requests, [])

    # ------------------------------------------------------------------ 5. consistency any

    def test_any_is_204_before_and_after_backends_are_known_down(self):
        """write-consistency any, every backend refusing connections: 204 whether the senders
        have noticed yet or not; when the backends come back every write is delivered."""
        ports = [free_port(), free_port()]
        self.start(["http://127.0.0.1:%d/write" % p for p in ports],
                   extra="write-consistency = any",
                   output_extra="buffer-size-mb = 16\nmax-delay-interval = 200ms")
        writes = [b"a n=%di %d\n" % (i, TS + i) for i in range(8)]
        for w in writes[:4]:  # at once: the senders have not tried yet
            st, _, body = self.post(w)
            self.assertEqual(st, 204, body)
        wait_until(lambda: all("r1/b%d: backend down" % i in self.r.log() for i in (1, 2)),
                   what="both backends known down")
        for w in writes[4:]:
            st, _, body = self.post(w)
            self.assertEqual(st, 204, body)
        mocks = [self.mock(port=p) for p in ports]
        for m in mocks:
            wait_until(lambda: m.body() == b"".join(writes), timeout=20,
                       what="every write at :%d in order" % m.port)
        for b in ("b1", "b2"):
            self.assertEqual(dropped(self.port, b, "withdrawn"), 0)

    # ------------------------------------------------------------------ 8. classification

    def test_408_and_499_are_retried_not_dropped(self):
        """Transient answers (a 408, a proxy's 499) from a buffered backend: kept and retried,
        not dropped as the write's fault."""
        for code in (408, 499):
            with self.subTest(code=code):
                flaky = Flaky(code, bad=2)
                b1, b2 = self.mock(flaky), self.mock()
                self.start([b1.url, b2.url],
                           output_extra="buffer-size-mb = 1\nmax-delay-interval = 200ms")
                w = b"t n=%di 1\n" % code
                st, _, body = self.post(w)
                self.assertEqual(st, 204, body)
                wait_until(lambda: flaky.accepted() == [w], timeout=10, what="retried and stored")
                self.assertEqual(dropped(self.port, "b1", "rejected"), 0)
                self.assertEqual(dropped(self.port, "b1", "withdrawn"), 0)
                self.r.kill()

    def test_transient_4xx_is_not_the_clients_answer(self):
        """An unbuffered backend's 408 is no verdict on the client's write: 503 (nothing kept),
        not the 408."""
        m = self.mock(Flaky(408, bad=1))
        self.start([m.url])
        st, h, body = self.post(b"t v=1 1\n")
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(body), {"error": "unable to write points"})
        self.assertIn("retry-after", h)

    def test_redirect_is_a_failure_with_a_hint(self):
        """A 3xx is not a success and not the client's fault: a wrong location. The client gets
        502 (not the 301), the log says where it redirects; once fixed, writes flow."""
        flaky = Flaky(301, bad=1, headers={"Location": "http://elsewhere:8086/write"}, body=b"")
        m = self.mock(flaky)
        self.start([m.url], output_extra="buffer-size-mb = 1\nmax-delay-interval = 200ms")
        st, h, body = self.post(b"r v=1 1\n")
        self.assertEqual(st, 502)
        self.assertIn("bad gateway: a backend answered 301", json.loads(body)["error"])
        self.assertIn("redirects to http://elsewhere:8086/write: set location to the backend's own "
                      "write URL (redirects are not followed)", self.r.log())
        wait_until(lambda: self.state("b1") == "up", timeout=10, what="b1 up after the probe")
        st, _, _ = self.post(b"r v=2 2\n")
        self.assertEqual(st, 204)
        self.assertEqual(flaky.accepted(), [b"r v=2 2\n"])  # the 502'd write was withdrawn

    def test_informational_answer_alone_is_no_answer(self):
        """A stray 1xx with no final answer after it: curl waits for one, so it is no answer
        (a timeout here), logged as such; the write is kept and retried when buffered."""
        flaky = Flaky(150, bad=1, body=b"")
        b1, b2 = self.mock(flaky), self.mock()
        self.start([b1.url, b2.url],
                   output_extra="buffer-size-mb = 1\nmax-delay-interval = 200ms\ntimeout = 500ms")
        st, _, _ = self.post(b"i v=1 1\n")
        self.assertEqual(st, 204)
        wait_until(lambda: flaky.accepted() == [b"i v=1 1\n"], timeout=10,
                   what="retried and stored")
        self.assertIn("answered 150 and nothing after it, not a write endpoint", self.r.log())


if __name__ == "__main__":
    unittest.main()
