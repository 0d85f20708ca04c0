"""The HTTP front (docs/influxdb-relay.conf.5: workers, max-connections, idle-timeout,
read-timeout, max-inflight-mb): thousands of idle keep-alive clients cost no thread and do not stop
a fresh client, connections beyond max-connections are refused and counted, slow clients are
closed at read-timeout without slowing anyone, the process-wide bound on request bytes answers
503 at once, and the suspended-write path holds up when answers and write-timeout race."""

import json
import os
import resource
import select
import socket
import sys
import threading
import time
import unittest

import subprocess

import harness
from harness import RelayTestCase, free_port, http_request, wait_until
import prom

WRITE = b"POST /write?db=db HTTP/1.1\r\nHost: relay\r\nContent-Length: 8\r\n\r\nm v=1 1\n"


def raise_nofile(n):
    """Lets this test process hold n sockets (the hard limit permitting)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (key, pid))


def read_response(s, timeout=10.0):
    """Reads one HTTP response (headers + Content-Length body) from socket s; b"" when the
    server closed the connection first."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def closed_by_peer(s, timeout):
    """Waits until the peer closes s (EOF or reset); returns (closed, bytes received before)."""
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return True, got
    except socket.timeout:
        return False, got


def fresh_write_ms(port):
    t = time.monotonic()
    st, _, body = http_request(port, "POST", "/write?db=db", b"m v=1 1\n", timeout=10)
    if st != 204:
        raise AssertionError("fresh write: %d %r" % (st, body))
    return (time.monotonic() - t) * 1000


class FrontTest(RelayTestCase):

    def start(self, extra="", outputs=1, responder=None, output_extra=""):
        self.ms = [self.mock(responder) for _ in range(outputs)]
        conf, port = self.http_relay_config([m.url for m in self.ms], extra=extra,
                                            output_extra=output_extra)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        return port

    def threads(self):
        return proc_status(self.r.proc.pid, "Threads")

    def test_5000_idle_keepalive_clients_cost_no_thread(self):
        n = 5000
        if raise_nofile(n + 200) < n + 200:
            self.fail("the hard open-files limit is below %d" % (n + 200))
        port = self.start("workers = 2")
        base = [fresh_write_ms(port) for _ in range(20)]
        socks = []
        try:
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(WRITE)
                socks.append(s)
            for s in socks:
                self.assertTrue(read_response(s).startswith(b"HTTP/1.1 204"))
            # Every one is still open (keep-alive) and idle now (the earlier clients' closes
            # are seen as the workers get to them).
            wait_until(lambda: prom.scrape(port).get("influxdb_relay_http_connections",
                                                     relay="r1") == n + 1,
                       what="the idle connections (and this scrape's) counted")
            # workers + one sender + main, the deadline timer, the acceptor and the /query fetch
            # thread (+ one of a sanitizer's runtime), whatever the connections.
            self.assertLessEqual(self.threads(), 2 + 1 + 4 + 1)
            fresh = sorted(fresh_write_ms(port) for _ in range(50))
            rss = proc_status(self.r.proc.pid, "VmRSS")
            sys.stderr.write("\n5000 idle keep-alive connections: threads=%d VmRSS=%d KiB, "
                             "fresh writes p50=%.2f ms max=%.2f ms (idle relay p50=%.2f ms)\n"
                             % (self.threads(), rss, fresh[25], fresh[-1], sorted(base)[10]))
            # Each idle client may send its next write at any time: they all still work.
            for s in socks[::50]:
                s.sendall(WRITE)
                self.assertTrue(read_response(s).startswith(b"HTTP/1.1 204"))
        finally:
            for s in socks:
                s.close()

    def test_threads_follow_workers(self):
        counts = {}
        for workers in (1, 3):
            m = self.mock()
            conf, port = self.http_relay_config([m.url, m.url], extra="workers = %d" % workers)
            r = self.relay(conf, wait_ports=[port], name="w%d.ini" % workers)
            st, _, _ = http_request(port, "POST", "/write?db=db", b"m v=1 1\n")
            self.assertEqual(st, 204)
            counts[workers] = proc_status(r.proc.pid, "Threads")
            r.kill()
        # workers + senders + main, timer, the acceptor and the /query fetch thread (+ one of a
        # sanitizer's runtime)
        self.assertLessEqual(counts[1], 1 + 2 + 4 + 1)
        self.assertEqual(counts[3] - counts[1], 2)

    def test_max_connections_refuses_and_counts(self):
        port = self.start("max-connections = 4\nworkers = 2")
        # The start-up probe's connection is gone once this one is the only one open.
        ctl = socket.create_connection(("127.0.0.1", port))

        def gauge():
            ctl.sendall(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
            text = read_response(ctl).partition(b"\r\n\r\n")[2].decode()
            return prom.Scrape(text).get("influxdb_relay_http_connections", relay="r1")
        wait_until(lambda: gauge() == 1, what="no other connection")
        socks = [ctl] + [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            for s in socks:
                s.sendall(b"GET /ping HTTP/1.1\r\nHost: r\r\n\r\n")
                self.assertTrue(read_response(s).startswith(b"HTTP/1.1 204"))
            extra = socket.create_connection(("127.0.0.1", port))
            extra.sendall(b"GET /ping HTTP/1.1\r\nHost: r\r\n\r\n")
            closed, got = closed_by_peer(extra, 10)
            self.assertTrue(closed)
            self.assertEqual(got, b"")
            extra.close()
            # The first ones still work; one of them reads the counters.
            for s in socks:
                s.sendall(WRITE)
                self.assertTrue(read_response(s).startswith(b"HTTP/1.1 204"))
            socks[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
            text = read_response(socks[0]).partition(b"\r\n\r\n")[2].decode()
            s = prom.Scrape(text)
            self.assertEqual(s.get("influxdb_relay_http_connections_refused_total", relay="r1"), 1)
            self.assertEqual(s.get("influxdb_relay_http_connections", relay="r1"), 4)
        finally:
            for s in socks:
                s.close()
        # Closed ones free their slot.
        def fresh_ok():
            try:
                return fresh_write_ms(port) > 0
            except OSError:
                return False
        wait_until(fresh_ok, what="a new connection after closing")

    def test_idle_timeout_closes_idle_keepalive(self):
        port = self.start("idle-timeout = 1s")
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(WRITE)
        self.assertTrue(read_response(s).startswith(b"HTTP/1.1 204"))
        t0 = time.monotonic()
        closed, got = closed_by_peer(s, 10)
        took = time.monotonic() - t0
        self.assertTrue(closed)
        self.assertEqual(got, b"")
        self.assertTrue(0.8 <= took < 10, took)
        # A connection in use is not idle: requests 0.4 s apart keep it open past 1 s.
        s2 = socket.create_connection(("127.0.0.1", port))
        for _ in range(5):
            s2.sendall(WRITE)
            self.assertTrue(read_response(s2).startswith(b"HTTP/1.1 204"))
            time.sleep(0.4)
        s2.close()

    def test_slow_clients_closed_at_read_timeout_without_slowing_others(self):
        n = 1000
        raise_nofile(n + 200)
        port = self.start("read-timeout = 3s\nworkers = 2")
        base = sorted(fresh_write_ms(port) for _ in range(20))
        socks = []
        opened = []
        stop = threading.Event()
        # Each sends its request line and then one header byte every 0.5 s: libmicrohttpd's
        # inactivity timeout never trips, only read-timeout can close them.
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /write?db=db HTTP/1.1\r\nHost: r\r\nX-Slow: ")
            socks.append(s)
            opened.append(time.monotonic())

        def trickle():
            while not stop.wait(0.5):
                for s in socks:
                    try:
                        s.send(b"a")
                    except OSError:
                        pass
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            during = sorted(fresh_write_ms(port) for _ in range(20))
            self.assertLess(during[10], max(10 * base[10], 50))
            # Every slow one is closed after read-timeout, with a 408 (plain HTTP).
            for i, s in enumerate(socks):
                closed, got = closed_by_peer(s, 15)
                self.assertTrue(closed, "slow connection %d still open" % i)
                if got:
                    self.assertTrue(got.startswith(b"HTTP/1.1 408"), got[:100])
            took_last = time.monotonic() - opened[0]
            self.assertGreaterEqual(time.monotonic() - opened[-1], 2.9)
        finally:
            stop.set()
            t.join(5)
            for s in socks:
                s.close()
        sys.stderr.write("\n%d slow clients: fresh writes p50 %.2f ms (idle relay %.2f ms), "
                         "all closed %.1f s after the first opened\n"
                         % (n, during[10], base[10], took_last))
        s = prom.scrape(port)
        self.assertEqual(s.get("influxdb_relay_http_read_timeouts_total", relay="r1"), n)
        for w in self.ms[0].writes():
            self.assertEqual(w["body"], b"m v=1 1\n")  # nothing of the slow requests

    def test_read_timeout_counts_from_first_byte_of_a_trickled_request_line(self):
        port = self.start("read-timeout = 2s")
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(WRITE)
        self.assertTrue(read_response(s).startswith(b"HTTP/1.1 204"))
        stop = threading.Event()
        t0 = time.monotonic()

        def trickle():
            for c in b"POST /write?db=db HTTP/1.1\r\n":
                if stop.wait(0.25):
                    return
                try:
                    s.send(bytes([c]))
                except OSError:
                    return
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        closed, got = closed_by_peer(s, 15)
        took = time.monotonic() - t0
        stop.set()
        t.join(5)
        self.assertTrue(closed)
        # Its first byte went 0.25 s after t0: closed between 2 s and 1.25 x 2 s after it
        # (plus scheduling slack).
        self.assertTrue(2.2 <= took < 5.0, took)
        if got:
            self.assertTrue(got.startswith(b"HTTP/1.1 408"), got)
        s.close()

    def test_https_idle_after_handshake_is_not_a_slow_request(self):
        import ssl
        pem = os.path.join(self.tmp, "relay.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        pem + ".key", "-out", pem + ".crt", "-days", "2", "-subj", "/CN=relay"],
                       check=True, capture_output=True, timeout=60)
        with open(pem, "wb") as f:
            f.write(open(pem + ".crt", "rb").read() + open(pem + ".key", "rb").read())
        port = self.start("ssl-combined-pem = %s\nread-timeout = 1s\nidle-timeout = 30s" % pem)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # A: a handshake that starts 150 ms after the connection (as across a slow link), then
        # nothing yet (a pooled client connection).
        raw = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.15)  # the client's behaviour under test, not a synchronisation
        idle = ctx.wrap_socket(raw)
        # B: handshake, then a request line trickled byte by byte: closed by read-timeout.
        slow = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
        t0 = time.monotonic()
        closed = False
        for c in b"POST /write?db=db HTTP/1.1\r\nHost: r\r\n":
            try:
                slow.send(bytes([c]))
                slow.settimeout(0.2)
                if slow.recv(100) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                closed = True
                break
        self.assertTrue(closed, "the trickled HTTPS request was not closed")
        self.assertTrue(1.0 <= time.monotonic() - t0 < 5, time.monotonic() - t0)
        # A has been idle longer than B lived: still open, and it serves its first request.
        idle.sendall(WRITE)
        self.assertTrue(read_response(idle).startswith(b"HTTP/1.1 204"))
        idle.close()
        slow.close()

    def test_max_inflight_refuses_at_once_with_retry_after(self):
        release = threading.Event()
        arrived = threading.Event()

        def slow(req):
            arrived.set()
            release.wait(20)
            return 204, b"", {}, 0
        # max-inflight-mb is a [relay] key, for the whole process.
        m = self.mock(slow)
        conf, port = self.http_relay_config([m.url], head="[relay]\nmax-inflight-mb = 1\n")
        self.r = self.relay(conf, wait_ports=[port])
        body = b"".join(b"m,i=%06d v=1 1\n" % i for i in range(40000))  # ~640 KB
        first = {}
        t = threading.Thread(target=lambda: first.setdefault(
            "r", http_request(port, "POST", "/write?db=db", body, timeout=30)))
        t.start()
        wait_until(arrived.is_set, what="the first write held at the backend")
        t0 = time.monotonic()
        st, h, rbody = http_request(port, "POST", "/write?db=db", body)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(st, 503)
        self.assertIn("retry-after", h)
        self.assertIn("max-inflight-mb", json.loads(rbody)["error"])
        s = prom.scrape(port)
        self.assertEqual(s.get("influxdb_relay_http_inflight_refused_total", relay="r1"), 1)
        self.assertGreaterEqual(s.get("influxdb_relay_http_inflight_bytes"), len(body))
        self.assertEqual(s.requests("r1", "write", 503), 1)
        # Small writes still fit; the refused body never reached the backend.
        release.set()
        t.join(30)
        self.assertEqual(first["r"][0], 204)
        st, _, _ = http_request(port, "POST", "/write?db=db", b"m v=2 2\n")
        self.assertEqual(st, 204)
        self.assertEqual(len([w for w in m.writes() if len(w["body"]) > 1000]), 1)
        # Given back once each request completes (just after its answer is sent).
        wait_until(lambda: prom.scrape(port).get("influxdb_relay_http_inflight_bytes") == 0,
                   what="every body given back to max-inflight-mb")

    def test_answers_racing_write_timeout(self):
        # Backends answer right around write-timeout: the verdict and the deadline race. Every
        # client gets an answer (204 or 503), the relay stays up, and a 204 is a stored write.
        delays = [0.9, 0.95, 1.0, 1.05, 1.1]
        lock = threading.Lock()
        count = [0]

        def around_deadline(req):
            with lock:
                count[0] += 1
                d = delays[count[0] % len(delays)]
            return 204, b"", {}, d
        port = self.start("write-timeout = 1s\nworkers = 2", outputs=2, responder=around_deadline)
        results = []
        errors = []

        def client(c):
            try:
                for i in range(6):
                    st, h, body = http_request(port, "POST", "/write?db=db",
                                               b"m,c=%d v=%d %d\n" % (c, i, i), timeout=30)
                    results.append((st, h, body))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        ts = [threading.Thread(target=client, args=(c,)) for c in range(40)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 240)
        codes = {st for st, _, _ in results}
        self.assertTrue(codes <= {204, 503}, codes)
        for st, h, body in results:
            if st == 503:
                err = json.loads(body)["error"]
                # In flight at the deadline: may be stored, no Retry-After; else nothing kept.
                self.assertEqual("retry-after" in h, "may have been stored" not in err, err)
        wait_until(lambda: prom.scrape(port).get("influxdb_relay_http_connections",
                                                 relay="r1") == 1,
                   what="every client connection closed")
        st, _, _ = http_request(port, "GET", "/ping")
        self.assertEqual(st, 204)


class OpenFilesTest(RelayTestCase):

    def run_with_nofile(self, soft, hard, name):
        """Starts the relay (default max-connections) under the given open-files limit; returns
        its log once it serves."""
        m = self.mock()
        conf, port = self.http_relay_config([m.url])
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(conf)
        log = open(path + ".log", "wb")
        p = subprocess.Popen([harness.RELAY_BIN, "-config", path], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                                   (soft, hard)))
        log.close()
        harness._live.add(p)
        try:
            wait_until(lambda: harness.port_open(port), what="the relay")
            st, _, _ = http_request(port, "POST", "/write?db=db", b"m v=1 1\n")
            self.assertEqual(st, 204)
            with open(path + ".log") as f:
                return f.read()
        finally:
            harness._kill(p)

    def test_raised_to_the_hard_limit(self):
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard < 10100:
            self.fail("this test needs a hard open-files limit of 10100 (it is %d)" % hard)
        log = self.run_with_nofile(256, hard, "raised.ini")
        self.assertIn("open files limit raised limit=%d was=256" % hard, log)
        self.assertNotIn("below what max-connections needs", log)

    def test_logged_when_short_of_what_the_config_needs(self):
        log = self.run_with_nofile(256, 2048, "short.ini")
        self.assertIn("open files limit is below what max-connections needs", log)
        self.assertIn("limit=2048 needed=", log)


class ShutdownTest(RelayTestCase):

    def test_shutdown_bounded_by_shutdown_timeout(self):
        m = self.mock(lambda req: (204, b"", {}, 8))
        conf, port = self.http_relay_config([m.url], head="[relay]\nshutdown-timeout = 1s\n",
                                            output_extra="timeout = 10s")
        r = self.relay(conf, wait_ports=[port])
        res = {}
        t = threading.Thread(target=lambda: res.setdefault(
            "r", http_request(port, "POST", "/write?db=db", b"m v=1 1\n", timeout=30)))
        t.start()
        wait_until(lambda: m.requests, what="the write at the backend")
        t0 = time.monotonic()
        rc = r.terminate(timeout=20)
        took = time.monotonic() - t0
        t.join(10)
        self.assertEqual(rc, 0)
        self.assertLess(took, 4.0)  # not the backend's 8 s, nor write-timeout
        self.assertEqual(res["r"][0], 503)  # answered, not dropped
        self.assertIn("shutdown: complete", r.log())

    def test_second_signal_exits_at_once_and_logs_what_is_dropped(self):
        dead = "http://127.0.0.1:%d/write" % free_port()
        conf, port = self.http_relay_config(
            [dead], head="[relay]\nshutdown-timeout = 60s\n",
            output_extra="buffer-size-mb = 8\nmax-delay-interval = 30s\n",
            extra="write-consistency = any")
        r = self.relay(conf, wait_ports=[port])
        for i in range(3):
            st, _, _ = http_request(port, "POST", "/write?db=db", b"m v=%d %d\n" % (i, i))
            self.assertEqual(st, 204)  # queued for a backend that is down
        os.kill(r.proc.pid, 15)
        wait_until(lambda: "shutdown: draining queues" in r.log(), what="the drain started")
        t0 = time.monotonic()
        rc = r.terminate(timeout=20)
        self.assertLess(time.monotonic() - t0, 4.0)  # not shutdown-timeout's 60 s
        self.assertEqual(rc, 0)
        log = r.log()
        self.assertIn("received again: exiting now", log)
        self.assertIn("shutdown: dropped writes=3", log)

    def test_upload_ending_during_shutdown_is_not_forwarded(self):
        release = threading.Event()
        arrived = threading.Event()

        def slow_first(req):
            if b"first" in req["body"]:
                arrived.set()
                release.wait(20)
            return 204, b"", {}, 0
        m = self.mock(slow_first)
        conf, port = self.http_relay_config([m.url], head="[relay]\nshutdown-timeout = 10s\n")
        r = self.relay(conf, wait_ports=[port])
        res = {}
        first = b"first v=1 1\n"
        t = threading.Thread(target=lambda: res.setdefault(
            "r", http_request(port, "POST", "/write?db=db", first, timeout=30)))
        t.start()
        wait_until(arrived.is_set, what="the first write held at the backend")
        # A second client has sent its headers and half of its body.
        late = socket.create_connection(("127.0.0.1", port))
        body = b"late v=1 1\n"
        late.sendall(b"POST /write?db=db HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n"
                     % len(body) + body[:5])
        # ... and the relay has read that head (its Content-Length is charged to
        # max-inflight-mb beside the first write's): a connection still in the listen backlog
        # when the relay stops accepting is reset by the kernel, it never reaches the relay.
        wait_until(lambda: prom.scrape(port).get("influxdb_relay_http_inflight_bytes") ==
                   len(first) + len(body), what="the late request's head read by the relay")
        os.kill(r.proc.pid, 15)
        wait_until(lambda: "shutdown: stop accepting" in r.log(), what="the shutdown")
        # The HTTP phase waits for the first write; the late upload ends now.
        late.sendall(body[5:])
        answer = read_response(late)
        release.set()
        t.join(20)
        self.assertEqual(res["r"][0], 204)
        if answer:
            self.assertTrue(answer.startswith(b"HTTP/1.1 503"), answer)
        self.assertEqual(r.proc.wait(timeout=20), 0)
        self.assertNotIn(b"late", b"".join(w["body"] for w in m.writes()))


if __name__ == "__main__":
    unittest.main()
