"""The sender side of the HTTP write path (issue #4, docs/queue-and-retry.md "Batching",
"Outcomes", "Rendezvous"): queued writes of one route merge into one backend request up to max-batch-kb
(whole writes, in order), routes never mix, one kept-alive connection per backend, the request
carries only what it must, and without buffering a failed send is answered, logged and never
retried."""

import re
import socket
import threading
import unittest

import prom

from harness import RelayTestCase, free_port, http_request, run_threads, wait_until


class ConnCounter:
    """A minimal HTTP/1.1 backend on a raw socket: answers every request 204 (keep-alive) and
    counts the TCP connections it accepted."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.connections = 0
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[n:]
                self.requests += 1
                c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    def close(self):
        self.sock.close()

    @property
    def url(self):
        return "http://127.0.0.1:%d/write" % self.port


class BackendTest(RelayTestCase):

    def start(self, urls, extra="", output_extra=""):
        conf, port = self.http_relay_config(urls, extra=extra, output_extra=output_extra)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port

    def post(self, body, query="db=db", headers=None):
        return http_request(self.port, "POST", "/write?" + query, body, headers)

    def clients(self, n, fn):
        """Runs fn(0) .. fn(n - 1) at once, each in its own thread; an assertion that fails in
        one of them fails the test."""
        run_threads(fn, range(n))

    def test_queued_writes_merge_whole_and_in_order(self):
        m = self.mock(lambda req: (204, b"", {}, 0.05))
        self.start([m.url])
        bad = []

        def client(c):
            for j in range(5):
                body = b"w,c=%d,j=%d a=1i %d\nw,c=%d,j=%d b=2i %d\n" % (c, j, j, c, j, j)
                st, _, _ = self.post(body)
                if st != 204:
                    bad.append(st)

        self.clients(40, client)
        self.assertEqual(bad, [])
        reqs = m.writes()
        self.assertLess(len(reqs), 100, "200 writes should merge into far fewer requests")
        lines = b"".join(r["body"] for r in reqs).splitlines()
        self.assertEqual(len(lines), 400)
        # Whole writes: a write's two lines are adjacent; per client, writes in order.
        seen = {}
        for k in range(0, 400, 2):
            a = re.match(rb"w,c=(\d+),j=(\d+) a=1i", lines[k])
            b = re.match(rb"w,c=(\d+),j=(\d+) b=2i", lines[k + 1])
            self.assertTrue(a and b and a.groups() == b.groups(), lines[k:k + 2])
            c, j = int(a.group(1)), int(a.group(2))
            self.assertEqual(seen.get(c, -1) + 1, j)
            seen[c] = j
        self.assertTrue(all(r["body"].endswith(b"\n") for r in reqs))

    def test_batch_bounded_by_max_batch_kb(self):
        m = self.mock(lambda req: (204, b"", {}, 0.05))
        self.start([m.url], output_extra="max-batch-kb = 1")
        big = b"".join(b"big,k=%d v=1i %d\n" % (i, i) for i in range(150))
        self.assertGreater(len(big), 1024)

        def client(c):
            if c == 7:
                self.assertEqual(self.post(big)[0], 204)
            for j in range(4):
                body = b"small,c=%d,j=%d pad=\"%s\" %d\n" % (c, j, b"x" * 250, j)
                self.assertEqual(self.post(body)[0], 204)

        self.clients(16, client)
        for r in m.writes():
            if b"big," in r["body"]:
                self.assertEqual(r["body"], big)  # a larger write goes alone
            else:
                self.assertLessEqual(len(r["body"]), 1024)
        self.assertEqual(b"".join(r["body"] for r in m.writes()).count(b"small,"), 64)

    def test_routes_never_merge(self):
        m = self.mock(lambda req: (204, b"", {}, 0.05))
        self.start([m.url])
        routes = [("db=a", None), ("db=b", None), ("db=a", "Token x"), ("db=a&rp=r", None)]

        def client(c):
            q, auth = routes[c % 4]
            h = {"Authorization": auth} if auth else {}
            for j in range(5):
                st, _, _ = self.post(b"r,route=%d v=%di %d\n" % (c % 4, j, j), q, h)
                self.assertEqual(st, 204)

        self.clients(16, client)
        for r in m.writes():
            ids = set(re.findall(rb"route=(\d)", r["body"]))
            self.assertEqual(len(ids), 1, r["body"])
            q, auth = routes[int(ids.pop())]
            self.assertEqual(r["raw_query"], q)
            self.assertEqual(r["headers"].get("authorization"), auth)

    def test_one_keepalive_connection(self):
        c = ConnCounter()
        self.addCleanup(c.close)
        self.start([c.url])
        for i in range(50):
            self.assertEqual(self.post(b"k v=%di %d\n" % (i, i))[0], 204)
        self.assertEqual(c.requests, 50)
        self.assertEqual(c.connections, 1)

    def test_request_headers(self):
        m = self.mock()
        self.start([m.url])
        body = b"".join(b"h,k=%d v=1i %d\n" % (i, i) for i in range(100000))  # > 1 MiB
        self.assertEqual(self.post(body)[0], 204)
        [w] = m.writes()
        self.assertEqual(w["body"], body)
        h = w["headers"]
        self.assertNotIn("expect", h)
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), h)
        self.assertEqual(int(h["content-length"]), len(body))
        self.assertNotIn("transfer-encoding", h)

    def test_unbuffered_5xx_answered_logged_not_retried(self):
        fail = threading.Event()
        fail.set()
        m = self.mock(lambda req: (500, b'{"error":"boom"}', {"Content-Type": "application/json"},
                                   0) if fail.is_set() else (204, b"", {}, 0))
        self.start([m.url])
        for _ in range(2):
            st, h, body = self.post(b"f v=1 1\n")
            self.assertEqual((st, body), (500, b'{"error":"boom"}'))
        # Positive control: the backend recovers and a new write goes through. A failed write
        # kept for a retry would sit at the head of the queue and go first (or merged with it).
        fail.clear()
        self.assertEqual(self.post(b"g v=2 2\n")[0], 204)
        self.assertEqual([w["body"] for w in m.writes()],
                         [b"f v=1 1\n", b"f v=1 1\n", b"g v=2 2\n"])
        self.assertEqual(self.r.log().count('5xx response for relay "r1" backend "b1": 500'), 2)

    def test_unbuffered_transport_error_logged_once_per_outage(self):
        port = free_port()
        self.start(["http://127.0.0.1:%d/write" % port])
        for _ in range(3):
            st, _, body = self.post(b"t v=1 1\n")
            self.assertEqual((st, body), (503, b'{"error":"unable to write points"}'))
        log = self.r.log()
        self.assertEqual(log.count('Problem posting to relay "r1" backend "b1": '), 1)
        self.assertRegex(log, r'Problem posting to relay "r1" backend "b1": .*[Cc]onnect')
        self.assertIn("r1/b1: backend down", log)
        m = self.mock(port=port)
        wait_until(lambda: "r1/b1: backend up" in self.r.log(), timeout=10, what="probe")
        self.assertEqual(self.post(b"t v=1 1\n")[0], 204)
        self.assertEqual(len(m.writes()), 1)


    # ------------------------------------------------------------------ unbuffered queue bound

    UNBUFFERED_CAP = 32 << 20  # max(4 x max-batch-kb, 32 MiB) with the default max-batch-kb

    def test_unbuffered_queue_bound(self):
        """A hanging unbuffered backend queues writes up to its bound (max(4 x max-batch-kb,
        32 MiB), every byte held counted, the request in flight included) and refuses the rest
        for itself (buffer_full); the other backend still takes every write and the client gets
        its 204."""
        hang = self.mock(lambda req: (204, b"", {}, 60 if req["path"] == "/write" else 0))
        ok = self.mock()
        self.start([hang.url, ok.url], output_extra="timeout = 60s")
        body = b"".join(b"bound,k=%05d v=%di 1\n" % (i, i) for i in range(50000))
        self.assertGreater(len(body), 1 << 20)
        n = 40  # 40 writes of 1 MiB and more: past the 32 MiB bound
        for i in range(n):
            st, _, out = self.post(body)
            self.assertEqual(st, 204, (i, out))
        self.assertEqual(len(ok.writes()), n)
        s = prom.scrape(self.port)
        cap = s.backend("queue_capacity_bytes", "r1", "b1")
        self.assertEqual(cap, self.UNBUFFERED_CAP)
        held = s.backend("queue_writes", "r1", "b1")
        full = s.dropped("r1", "b1", "buffer_full")
        self.assertLessEqual(s.backend("queue_bytes", "r1", "b1"), cap)
        self.assertGreater(s.backend("queue_bytes", "r1", "b1"), cap - 2 * len(body) - 4096)
        self.assertGreaterEqual(full, 1)
        self.assertEqual(held + full, n)
        self.assertEqual(s.dropped("r1", "b2", "buffer_full"), 0)
        wait_until(lambda: hang.writes(), what="the first write at the hanging backend")
        self.assertEqual(len(hang.writes()), 1)  # the first one, still in flight
        self.assertIn("r1/b1: buffer full, refusing writes for this backend", self.r.log())

    def test_unbuffered_empty_queue_takes_a_write_over_the_bound(self):
        """An idle unbuffered backend takes one write of any size the listener accepts, even
        one larger than its queue bound."""
        m = self.mock()
        self.start([m.url], extra="max-body-mb = 40")
        line = b"huge,k=%07d v=1i 1\n"
        body = b"".join(line % i for i in range((self.UNBUFFERED_CAP + (1 << 20)) // len(line)))
        self.assertGreater(len(body), self.UNBUFFERED_CAP)
        st, _, out = self.post(body)
        self.assertEqual(st, 204, out)
        [w] = m.writes()
        self.assertEqual(len(w["body"]), len(body))
        self.assertEqual(w["body"], body)
        self.assertEqual(prom.scrape(self.port).dropped("r1", "b1", "buffer_full"), 0)


if __name__ == "__main__":
    unittest.main()
