"""Retry buffering (issue #5, docs/queue-and-retry.md "Retry (buffered)"): outages of real influxd
(SIGSTOP, SIGKILL + restart on the same port) lose no acknowledged write, the overwrite scenario,
delivery order across an outage, the documented retry schedule, buffer-full answers, withdraw on
503, a 4xx inside a merged batch, the down -> up probe, and the shutdown drain/drop report."""

import json
import re
import threading
import time
import unittest

from harness import RelayTestCase, free_port, http_request, wait_until

TS = 1600000000000000000


def metric(port, name, backend):
    """The value of influxdb_relay_<name>{...backend="<backend>"...} (first match), or None."""
    _, _, body = http_request(port, "GET", "/metrics")
    pat = re.compile(r'^influxdb_relay_%s\{([^}]*)\} (\S+)$' % re.escape(name), re.M)
    for labels, value in pat.findall(body.decode()):
        if 'backend="%s"' % backend in labels:
            return float(value)
    return None


def dropped(port, backend, reason):
    _, _, body = http_request(port, "GET", "/metrics")
    pat = re.compile(r'^influxdb_relay_backend_dropped_writes_total\{([^}]*)\} (\S+)$', re.M)
    for labels, value in pat.findall(body.decode()):
        if 'backend="%s"' % backend in labels and 'reason="%s"' % reason in labels:
            return float(value)
    return None


class Switch:
    """A mock responder: 503 while down, else 204. Records the bodies it accepted, in order."""

    def __init__(self, down=False, delay=0):
        self.down = down
        self.delay = delay
        self.accepted = []
        self.times = []
        self.lock = threading.Lock()

    def __call__(self, req):
        if req["path"] != "/write":
            return (503 if self.down else 204), b"", {}, 0
        with self.lock:
            self.times.append(time.monotonic())
            if self.down:
                return 503, b'{"error":"down"}', {"Content-Type": "application/json"}, 0
            self.accepted.append(req["body"])
        return 204, b"", {}, self.delay

    def numbers(self):
        with self.lock:
            body = b"".join(self.accepted)
        return [int(m) for m in re.findall(rb"n=(\d+)i", body)]


class RetryTest(RelayTestCase):

    def start(self, urls, extra="", output_extra="buffer-size-mb = 16\nmax-delay-interval = 1s",
              head=""):
        conf, port = self.http_relay_config(urls, extra=extra, output_extra=output_extra,
                                            head=head)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        return port

    def post(self, body, query="db=db", timeout=30):
        return http_request(self.port, "POST", "/write?" + query, body, timeout=timeout)

    # ------------------------------------------------------------------ real influxd

    def test_outage_sigstop_and_kill_lose_nothing(self):
        a, b = self.influxd(db="db"), self.influxd(db="db")
        self.start([a.url, b.url], extra="write-timeout = 3s",
                   output_extra="buffer-size-mb = 16\nmax-delay-interval = 1s\ntimeout = 1s")
        acked = 0
        n = 0

        def burst(count):
            nonlocal acked, n
            for _ in range(count):
                st, _, body = self.post(b"cpu,host=h value=%d %d\n" % (n, TS + n))
                self.assertEqual(st, 204, body)
                acked += 1
                n += 1

        burst(20)
        b.stop_signal()          # hangs: every request to b times out
        burst(30)
        b.cont_signal()
        burst(10)
        b.kill()                 # connection refused
        burst(30)
        b.start()                # same port, same data dir
        burst(10)
        for i in (a, b):
            wait_until(lambda: i.count("db", "cpu") == acked, timeout=30,
                       what="every acknowledged point on :%d" % i.http_port)
        log = self.r.log()
        self.assertIn('r1/b2: backend down', log)
        self.assertIn('r1/b2: backend up', log)

    def test_overwrite_scenario(self):
        a, b = self.influxd(db="db"), self.influxd(db="db")
        self.start([a.url, b.url], output_extra="buffer-size-mb = 16\nmax-delay-interval = 2s")
        b.kill()
        st, _, _ = self.post(b"x,k=1 v=1 %d\n" % TS)      # X1 while b is down
        self.assertEqual(st, 204)
        time.sleep(1.5)  # let b's retries back off
        b.start()
        st, _, _ = self.post(b"x,k=1 v=2 %d\n" % TS)      # X2 after b returned
        self.assertEqual(st, 204)

        def value(i):
            rows = i.rows("db", "SELECT v FROM x")
            return rows[0][1] if rows else None

        wait_until(lambda: metric(self.port, "backend_queue_writes", "b2") == 0, timeout=20,
                   what="b2 drained")
        self.assertEqual(value(a), 2)
        self.assertEqual(value(b), 2)

    # ------------------------------------------------------------------ mocks

    def test_order_across_outage(self):
        up = Switch()
        sw = Switch(down=False)
        ma, mb = self.mock(up), self.mock(sw)
        self.start([ma.url, mb.url])
        for i in range(1000):
            if i == 200:
                sw.down = True
            if i == 700:
                sw.down = False
            st, _, _ = self.post(b"seq n=%di %d\n" % (i, TS + i))
            self.assertEqual(st, 204)
        wait_until(lambda: len(sw.numbers()) >= 1000, timeout=30, what="b2 got all 1000")
        wait_until(lambda: len(up.numbers()) >= 1000, timeout=10, what="b1 got all 1000")
        self.assertEqual(sw.numbers(), list(range(1000)))
        self.assertEqual(up.numbers(), list(range(1000)))
        self.assertRegex(self.r.log(), r'5xx response for relay "r1" backend "b2": 503')

    def test_retry_schedule(self):
        sw = Switch(down=True)
        ma, mb = self.mock(), self.mock(sw)
        self.start([ma.url, mb.url],
                   output_extra="buffer-size-mb = 1\nmax-delay-interval = 2s")
        st, _, _ = self.post(b"m v=1 1\n")
        self.assertEqual(st, 204)
        wait_until(lambda: len(sw.times) >= 6, timeout=15, what="6 attempts")
        t = sw.times
        d = [t[i + 1] - t[i] for i in range(5)]
        # Documented: 0.5 s, then min(cap, 0.5 s x 2^(n-1)) x U[0.8, 1.0], cap 2 s.
        self.assertTrue(0.45 <= d[0] <= 0.7, d)
        self.assertTrue(0.75 <= d[1] <= 1.2, d)
        for x in d[2:]:
            self.assertTrue(1.55 <= x <= 2.2, d)
        # Every 5xx is logged, in the Go relay's words.
        lines = re.findall(r'5xx response for relay "r1" backend "b2": 503', self.r.log())
        self.assertGreaterEqual(len(lines), 6)
        self.assertEqual(metric(self.port, "backend_retries_total", "b2"), len(lines))

    def test_write_larger_than_buffer_is_413(self):
        """Larger than the whole buffer: no retry could ever queue it, so not a 503 (issue 17)."""
        m = self.mock()
        self.start([m.url], output_extra="buffer-size-mb = 1")
        body = b"".join(b"big,k=%d v=%d %d\n" % (i, i, TS) for i in range(60000))
        self.assertGreater(len(body), 1 << 20)
        t0 = time.monotonic()
        st, h, resp = self.post(body)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(st, 413)
        self.assertIn("too large", json.loads(resp)["error"])
        self.assertNotIn("retry-after", h)
        self.assertEqual(m.writes(), [])
        self.assertEqual(dropped(self.port, "b1", "buffer_full"), 1)

    def test_buffer_bound_counts_every_byte(self):
        """1 MiB holds at most 102 writes of 10 KiB; the rest are refused for that backend, the
        other backend's 204 still answers the client; the queued ones arrive in order."""
        sw = Switch(down=True)
        ma, mb = self.mock(), self.mock(sw)
        self.start([ma.url, mb.url],
                   output_extra="buffer-size-mb = 1\nmax-delay-interval = 500ms")
        line = b"w n=%di,pad=\"%s\" %d\n"
        for i in range(150):
            body = line % (i, b"x" * (10240 - 64), TS + i)
            body = body[:10239 - len(b"\n")] + b"\n" if len(body) > 10240 else body
            st, _, _ = self.post(body)
            self.assertEqual(st, 204)
        held = metric(self.port, "backend_queue_writes", "b2")
        full = dropped(self.port, "b2", "buffer_full")
        self.assertLessEqual(held, 102)
        self.assertGreaterEqual(held, 90)
        self.assertEqual(held + full, 150)
        self.assertLessEqual(metric(self.port, "backend_queue_bytes", "b2"), 1 << 20)
        self.assertIn("r1/b2: buffer above 80%", self.r.log())
        self.assertIn("r1/b2: buffer full", self.r.log())
        sw.down = False
        wait_until(lambda: len(sw.numbers()) == held, timeout=20, what="b2 drained")
        self.assertEqual(sw.numbers(), list(range(int(held))))

    def test_withdraw_on_timeout(self):
        """A write still queued when its client got 503 is never sent (503 + Retry-After: nothing
        was kept). b1 takes 1.5 s a request; b2 answers w0 and w1 at once, so b1's request
        carrying w1 is sent whole for clients already answered, and w2 (refused by b2) waits
        behind it past its 1 s write-timeout."""
        saw_w1 = threading.Event()

        def slow(req):
            if req["path"] == "/write" and b"w1" in req["body"]:
                saw_w1.set()
            return 204, b"", {}, 1.5 if req["path"] == "/write" else 0

        m = self.mock(slow)
        m2 = self.mock(lambda req: (500, b'{"error":"no"}', {}, 0) if b"w2" in req["body"]
                       else (204, b"", {}, 0))
        conf, port = self.http_relay_config([m.url, m2.url], extra="write-timeout = 1s",
                                            output_extra="timeout = 5s")
        conf = conf.replace(m.url + "\n", m.url + "\nbuffer-size-mb = 16\n", 1)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        for name in (b"w0", b"w1"):  # b1 is busy with w0 while b2 answers w1
            st, _, _ = self.post(name + b" v=1 1\n")
            self.assertEqual(st, 204)
        self.assertTrue(saw_w1.wait(10))
        t0 = time.monotonic()
        st, h, body = self.post(b"w2 v=2 2\n")
        self.assertEqual(st, 503)
        self.assertIn("retry-after", h)
        self.assertTrue(0.8 < time.monotonic() - t0 < 2.0)
        time.sleep(2.5)
        bodies = [w["body"] for w in m.writes()]
        self.assertIn(b"w1 v=1 1\n", b"".join(bodies))
        self.assertNotIn(b"w2", b"".join(bodies))
        self.assertEqual(dropped(self.port, "b1", "withdrawn"), 1)

    def test_all_down_503_at_once_nothing_kept_probe_recovers(self):
        ports = [free_port(), free_port()]
        self.start(["http://127.0.0.1:%d/write" % p for p in ports],
                   output_extra="buffer-size-mb = 16\nmax-delay-interval = 500ms")
        for i in range(3):
            t0 = time.monotonic()
            st, h, body = self.post(b"gone v=%d %d\n" % (i, i))
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertEqual(st, 503)
            self.assertEqual(json.loads(body), {"error": "unable to write points"})
            self.assertIn("retry-after", h)
        ms = [self.mock(port=p) for p in ports]
        wait_until(lambda: self.r.log().count("backend up") >= 2, timeout=10,
                   what="both backends up through /ping")
        for m in ms:
            self.assertEqual(m.writes(), [])
            self.assertTrue(any(r["path"] == "/ping" for r in m.requests))
        self.assertEqual(dropped(self.port, "b1", "withdrawn"), 3)
        st, _, _ = self.post(b"back v=1 1\n")
        self.assertEqual(st, 204)

    def split_case(self, output_extra):
        def resp(req):
            if b"reject" in req["body"]:
                return (400, b'{"error":"partial write: field type conflict"}',
                        {"Content-Type": "application/json"}, 0.2)
            return 204, b"", {}, 0.2

        m = self.mock(resp)
        self.start([m.url], output_extra=output_extra)
        res = {}

        def client(i):
            body = b"reject v=1i %d\n" % i if i == 5 else b"ok n=%di %d\n" % (i, i)
            res[i] = self.post(body)

        ts = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        ts[0].start()
        time.sleep(0.05)          # the first write goes alone and occupies the sender
        for t in ts[1:]:
            t.start()
        for t in ts:
            t.join()
        for i in range(12):
            st, h, body = res[i]
            if i == 5:
                self.assertEqual(st, 400)
                self.assertEqual(body, b'{"error":"partial write: field type conflict"}')
                self.assertEqual(h.get("content-type"), "application/json")
            else:
                self.assertEqual(st, 204, (i, body))
        merged = [w for w in m.writes() if b"reject" in w["body"] and b"ok" in w["body"]]
        self.assertTrue(merged, "the rejected write was part of a merged batch")
        good = b"".join(w["body"] for w in m.writes() if b"reject" not in w["body"])
        got = sorted(int(x) for x in re.findall(rb"ok n=(\d+)i", good))
        self.assertEqual(got, [i for i in range(12) if i != 5])
        self.assertEqual(dropped(self.port, "b1", "rejected"), 1)

    def test_4xx_in_merged_batch_unbuffered(self):
        self.split_case("")

    def test_4xx_in_merged_batch_buffered(self):
        self.split_case("buffer-size-mb = 16")
        self.assertIn("write rejected by backend, dropped status=400", self.r.log())

    def test_shutdown_drains_then_reports_dropped(self):
        sw = Switch(down=True)
        ma, mb = self.mock(), self.mock(sw)
        self.start([ma.url, mb.url], extra="",
                   output_extra="buffer-size-mb = 16\nmax-delay-interval = 500ms")
        for i in range(5):
            st, _, _ = self.post(b"s v=%d %d\n" % (i, i))
            self.assertEqual(st, 204)
        t0 = time.monotonic()
        rc = self.r.terminate(timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        log = self.r.log()
        self.assertRegex(log, r"r1/b2: shutdown: dropped writes=5 bytes=\d+")
        self.assertIn("r1/b1: shutdown: drained", log)
        self.assertNotIn("Sanitizer", log)  # ASan/LSan/TSan builds: clean exit, nothing leaked
        # Default shutdown-timeout 10 s: b2 keeps retrying until then.
        self.assertTrue(9 < took < 13, took)

    def test_shutdown_aborts_a_hanging_request_at_the_deadline(self):
        m = self.mock(lambda req: (204, b"", {}, 30 if req["path"] == "/write" else 0))
        self.start([m.url], extra="write-consistency = any",
                   output_extra="buffer-size-mb = 16\ntimeout = 60s",
                   head="[relay]\nshutdown-timeout = 2s\n")
        for i in range(2):  # any: 204 once queued; the first hangs in flight, the second waits
            self.assertEqual(self.post(b"h v=%d %d\n" % (i, i))[0], 204)
        t0 = time.monotonic()
        rc = self.r.terminate(timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0)
        self.assertTrue(took < 2 + 2.5, took)
        log = self.r.log()
        self.assertRegex(log, r"r1/b1: shutdown: dropped writes=2 bytes=\d+")
        self.assertIn("aborted at the shutdown deadline", log)

if __name__ == "__main__":
    unittest.main()
