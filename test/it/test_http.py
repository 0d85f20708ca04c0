"""HTTP listener (influxdb-relay(8), HTTP API): routes, /ping, JSON errors, body bounds, gzip,
keep-alive after errors, clients that stop mid-body, HTTPS and IPv6 listeners."""

import gzip
import http.client
import json
import os
import socket
import ssl
import time
import unittest

from harness import (RelayTestCase, free_port, http_request, make_ca, make_leaf, peer_ports,
                     port_open, wait_until)


def ok_mock():
    return lambda req: (204, b"", {}, 0)


class HttpListenerTest(RelayTestCase):

    def start_relay(self, extra="", outputs=None, **kw):
        self.m = self.mock(ok_mock())
        conf, port = self.http_relay_config(outputs or [self.m.url], extra=extra, **kw)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        return port

    def json_error(self, resp, status, text=None):
        st, h, body = resp
        self.assertEqual(st, status, body)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertTrue(body.endswith(b"\n"))
        err = json.loads(body)["error"]
        if text is not None:
            self.assertEqual(err, text)
        return err

    def test_ping(self):
        p = self.start_relay()
        for method in ("GET", "HEAD"):
            for path in ("/ping", "/ping?wait_for_leader=30s"):
                st, h, body = http_request(p, method, path)
                self.assertEqual((st, body), (204, b""))
                self.assertEqual(h.get("x-influxdb-version"), "relay")
        st, h, body = http_request(p, "GET", "/ping?verbose=true")
        self.assertEqual(st, 200)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(json.loads(body), {"version": "relay"})
        self.assertEqual(self.m.requests, [])  # never forwarded

    def test_routes(self):
        p = self.start_relay()
        st, h, body = http_request(p, "OPTIONS", "/write")
        self.assertEqual((st, body, h.get("allow")), (204, b"", "POST"))
        for method in ("GET", "PUT", "DELETE", "HEAD"):
            st, h, body = http_request(p, method, "/write?db=x")
            self.assertEqual(st, 405)
            self.assertEqual(h.get("allow"), "POST")
            if method != "HEAD":
                self.json_error((st, h, body), 405)
        # /query is relayed (query = all, test_query.py); other paths are not.
        for path in ("/", "/write/", "/writes", "/query/", "/api/v2/query", "/api/v1/prom/read"):
            self.json_error(http_request(p, "POST", path, "m v=1"), 404)
        st, h, body = http_request(p, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h.get("content-type").startswith("text/plain; version=0.0.4"))
        self.assertIn(b'influxdb_relay_http_requests_total{relay="r1",endpoint="write",code="405"} 4',
                      body)
        st, h, body = http_request(p, "GET", "/health")
        self.assertIn(st, (200, 503))
        self.assertEqual(h.get("content-type"), "application/json")
        json.loads(body)
        self.assertEqual(self.m.requests, [])

    def test_requests_counted(self):
        p = self.start_relay()
        for _ in range(3):
            http_request(p, "GET", "/ping")
        http_request(p, "GET", "/nope")
        http_request(p, "POST", "/write", "m v=1")
        _, _, body = http_request(p, "GET", "/metrics")
        text = body.decode()
        self.assertIn('influxdb_relay_http_requests_total{relay="r1",endpoint="ping",code="204"} 3',
                      text)
        self.assertIn('influxdb_relay_http_requests_total{relay="r1",endpoint="other",code="404"} 1',
                      text)
        self.assertIn('influxdb_relay_http_requests_total{relay="r1",endpoint="write",code="400"} 1',
                      text)

    def test_missing_db_and_bad_precision(self):
        p = self.start_relay()
        self.json_error(http_request(p, "POST", "/write", "m v=1"), 400, "missing parameter: db")
        self.json_error(http_request(p, "POST", "/write?db=", "m v=1"), 400,
                        "missing parameter: db")
        err = self.json_error(http_request(p, "POST", "/write?db=x&precision=xs", "m v=1"), 400)
        self.assertIn('"xs"', err)
        self.assertEqual(self.m.writes(), [])

    def test_json_escaping_of_errors(self):
        p = self.start_relay()
        st, h, body = http_request(p, "POST", "/write?db=x", b'bad "q" \\ <x>\x01\n')
        err = self.json_error((st, h, body), 400)
        self.assertEqual(err, "unable to parse 'bad \"q\" \\ <x>\x01': invalid field format")
        self.assertIn(b"\\u003cx\\u003e\\u0001", body)  # Go's encoding/json, as influxd
        self.assertEqual(self.m.writes(), [])

    def test_body_limit(self):
        p = self.start_relay(extra="max-body-mb = 1")
        mb = 1024 * 1024
        line = b"m v=1\n"
        exact = line * (mb // len(line)) + b"#" * (mb % len(line))
        self.assertEqual(len(exact), mb)
        st, _, body = http_request(p, "POST", "/write?db=x", exact)
        self.assertEqual(st, 204, body)
        # One byte over: 413, and the keep-alive connection still carries the next request.
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
        c.request("POST", "/write?db=x", body=exact + b"\n")
        r = c.getresponse()
        self.json_error((r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()), 413)
        c.request("GET", "/ping")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (204, b""))
        c.close()
        # Chunked (no Content-Length) above the bound: 413 too, and the connection survives.
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
        c.request("POST", "/write?db=x", body=iter([exact, b"m v=2\n"]), encode_chunked=True)
        r = c.getresponse()
        self.json_error((r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()), 413)
        c.request("POST", "/write?db=x", body=b"m v=3 3\n")
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (204, b""))
        c.close()
        self.assertEqual(len(self.m.writes()), 2)
        self.assertEqual(self.m.writes()[1]["body"], b"m v=3 3\n")

    def test_gzip(self):
        p = self.start_relay(extra="max-body-mb = 1")
        plain = b"".join(b"cpu,host=h%d value=%d %d\n" % (i, i, 1000 + i) for i in range(100))
        gz = {"Content-Encoding": "gzip"}
        st, _, body = http_request(p, "POST", "/write?db=x", gzip.compress(plain), gz)
        self.assertEqual(st, 204, body)
        w = self.m.writes()
        self.assertEqual(len(w), 1)
        self.assertEqual(w[0]["body"], plain)  # forwarded inflated
        self.assertNotIn("content-encoding", w[0]["headers"])
        # Two concatenated members are one body (as Go's gzip reader reads them).
        st, _, _ = http_request(p, "POST", "/write?db=x", gzip.compress(plain) * 2, gz)
        self.assertEqual(st, 204)
        self.assertEqual(self.m.writes()[1]["body"], plain * 2)

    def test_gzip_errors_keep_connection(self):
        p = self.start_relay(extra="max-body-mb = 1")
        bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
        self.assertLess(len(bomb), 1024 * 1024)
        good = gzip.compress(b"m v=1 1\n")
        bad_crc = bytearray(good)
        bad_crc[-6] ^= 0xff
        cases = [
            (bomb, 413, None),
            (good[:-4], 400, "unexpected EOF"),
            (bytes(bad_crc), 400, "gzip: invalid checksum"),
            (b"definitely not gzip", 400, "gzip: invalid header"),
            (b"", 400, None),
        ]
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
        c.connect()
        local = c.sock.getsockname()
        rss0 = self.r.rss_kb()
        for body, status, text in cases:
            c.request("POST", "/write?db=x", body=body, headers={"Content-Encoding": "gzip"})
            r = c.getresponse()
            self.json_error((r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()),
                            status, text)
            # Same keep-alive connection carries the next request.
            c.request("GET", "/ping")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 204)
            self.assertEqual(c.sock.getsockname(), local)
        self.assertEqual(self.m.writes(), [])
        self.assertLess(self.r.rss_kb() - rss0, 16 * 1024, "a bomb must not cost its size")
        c.close()

    def test_keepalive_after_400(self):
        p = self.start_relay()
        c = http.client.HTTPConnection("127.0.0.1", p, timeout=30)
        c.connect()
        local = c.sock.getsockname()
        for path, body, status in [("/write", b"m v=1 1\n" * 1000, 400),
                                   ("/write?db=x", b"garbage\n" * 1000, 400),
                                   ("/write?db=x&precision=q", b"m v=1\n" * 1000, 400),
                                   ("/nope", b"x" * 10000, 404),
                                   ("/write?db=x", b"m v=1 1\n", 204)]:
            c.request("POST", path, body=body)
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, status)
            self.assertEqual(c.sock.getsockname(), local)
        self.assertEqual(len(self.m.writes()), 1)
        c.close()

    def test_half_body_then_close_or_stall(self):
        p = self.start_relay()
        head = (b"POST /write?db=half HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                b"m v=1 1\nm v=2 2\n")
        closer = socket.create_connection(("127.0.0.1", p))
        closer.sendall(head)
        staller = socket.create_connection(("127.0.0.1", p))
        staller.sendall(head)
        ports = {c.getsockname()[1] for c in (closer, staller)}
        wait_until(lambda: ports <= peer_ports(self.r.proc.pid), what="both connections accepted")
        closer.close()
        # Others are served while one client stalls mid-body.
        t0 = time.monotonic()
        for i in range(20):
            st, _, _ = http_request(p, "POST", "/write?db=ok", b"m v=%d %d\n" % (i, i))
            self.assertEqual(st, 204)
        self.assertLess(time.monotonic() - t0, 5)
        staller.close()
        # Once the relay has closed both connections it is done with them; a write after that
        # arrives (FIFO queue), and nothing of the partial bodies came before it.
        wait_until(lambda: not ports & peer_ports(self.r.proc.pid), what="both connections closed")
        st, _, _ = http_request(p, "POST", "/write?db=last", b"m v=1 1\n")
        self.assertEqual(st, 204)
        dbs = [w["query"]["db"][0] for w in self.m.writes()]
        self.assertEqual(dbs, ["ok"] * 20 + ["last"])  # nothing of the partial bodies
        self.assertEqual(self.r.proc.poll(), None)

    def test_expect_100_continue(self):
        # curl sends "Expect: 100-continue" for bodies over 1 KiB: the relay says continue.
        p = self.start_relay()
        body = b"m v=1 1\n" * 200
        s = socket.create_connection(("127.0.0.1", p), timeout=10)
        s.sendall(b"POST /write?db=x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % len(body))
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 100 Continue"))
        s.sendall(body)
        self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 204"))
        s.close()
        self.assertEqual(self.m.writes()[0]["body"], body)

    def test_early_413_by_content_length(self):
        p = self.start_relay(extra="max-body-mb = 1")
        s = socket.create_connection(("127.0.0.1", p), timeout=10)
        s.sendall(b"POST /write?db=x HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        resp = s.recv(4096)
        self.assertTrue(resp.startswith(b"HTTP/1.1 413"), resp)
        self.assertIn(b"request body too large", resp)
        s.close()

    def test_max_connections(self):
        p = self.start_relay(extra="max-connections = 2")

        def hold():
            # The harness's startup probe may still hold a slot for a moment: retry.
            c = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
            try:
                c.request("GET", "/ping")
                r = c.getresponse()
                r.read()
                return c if r.status == 204 else None
            except (OSError, http.client.HTTPException):
                c.close()
                return None
        held = [wait_until(hold, what="a slot") for _ in range(2)]
        # A third client is not served while both slots are taken (MHD closes it at once).
        extra = socket.create_connection(("127.0.0.1", p), timeout=2)
        try:
            extra.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(extra.recv(100), b"")
        except (ConnectionResetError, BrokenPipeError):
            pass
        extra.close()
        # A slot frees when a client leaves.
        held.pop().close()
        held.append(wait_until(hold, what="a free slot"))
        for c in held:
            c.close()

    def make_cert(self):
        """A CA and a leaf for 127.0.0.1 signed by it; the combined PEM holds the leaf, the CA
        (the chain) and the leaf's key. Returns (CA path, combined path)."""
        ca = make_ca(self.tmp)
        leaf = make_leaf(self.tmp, "leaf", ca)
        combined = os.path.join(self.tmp, "combined.pem")
        with open(combined, "w") as f:
            for n in (leaf[0], ca[0], leaf[1]):
                with open(n) as part:
                    f.write(part.read())
        return ca[0], combined

    def test_https_pem_without_key_refused_at_start(self):
        ca, combined = self.make_cert()
        m = self.mock(ok_mock())
        conf, _ = self.http_relay_config([m.url], extra="ssl-combined-pem = " + ca)
        r = self.relay(conf)
        wait_until(lambda: r.proc.poll() is not None, what="relay exit")
        self.assertNotEqual(r.proc.returncode, 0)
        self.assertIn("no private key", r.log())
        self.assertIn(ca, r.log())

    def test_https_listener(self):
        ca, combined = self.make_cert()
        p = self.start_relay(extra="ssl-combined-pem = " + combined)
        ctx = ssl.create_default_context(cafile=ca)  # verifies the chain up to the test CA
        c = http.client.HTTPSConnection("127.0.0.1", p, context=ctx, timeout=10)
        c.request("GET", "/ping")
        r = c.getresponse()
        r.read()
        self.assertEqual(r.status, 204)
        c.request("POST", "/write?db=x", body=b"m v=1 1\n", headers={"Authorization": "Token t"})
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (204, b""))
        c.close()
        w = self.m.writes()
        self.assertEqual(len(w), 1)
        self.assertEqual(w[0]["body"], b"m v=1 1\n")
        wait_until(lambda: "Starting HTTPS relay \"r1\" on 127.0.0.1:%d" % p in self.r.log(),
                   what="the HTTPS start-up line")
        # Plain HTTP on the HTTPS port gets no answer, and the listener survives it.
        try:
            http_request(p, "GET", "/ping", timeout=3)
        except (OSError, http.client.HTTPException):
            pass
        c = http.client.HTTPSConnection("127.0.0.1", p, context=ctx, timeout=10)
        c.request("GET", "/ping")
        self.assertEqual(c.getresponse().status, 204)
        c.close()

    def test_ipv6_listener(self):
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        m = self.mock(ok_mock())
        port = free_port()
        conf = "[http.r1]\nbind-addr = [::1]:%d\n\n[http.r1.output.b1]\nlocation = %s\n" % (
            port, m.url)
        r = self.relay(conf)
        wait_until(lambda: r._alive() and port_open(port, host="::1"), what="relay on [::1]")
        st, _, _ = http_request(port, "POST", "/write?db=x", "m v=1 1\n", host="::1")
        self.assertEqual(st, 204)
        wait_until(lambda: "on [::1]:%d" % port in r.log(), what="the start-up line")
        self.assertFalse(port_open(port))  # not on 127.0.0.1

    def test_bind_failure_names_address(self):
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        m = self.mock(ok_mock())
        conf, _ = self.http_relay_config([m.url], port=port)
        r = self.relay(conf)
        wait_until(lambda: r.proc.poll() is not None, what="relay exit")
        self.assertNotEqual(r.proc.returncode, 0)
        self.assertIn("127.0.0.1:%d" % port, r.log())
        self.assertIn("in use", r.log())
        busy.close()


if __name__ == "__main__":
    unittest.main()
