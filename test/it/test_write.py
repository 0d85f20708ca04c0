"""POST /write against mock backends (influxdb-relay(8), HTTP API): what is forwarded (params,
headers, bytes), partial writes, and the answer rules: first decisive answer, 4xx passthrough,
all-5xx, none answered, write-timeout, buffer full, write-consistency all/any, https backends."""

import json
import os
import ssl
import subprocess
import threading
import time
import unittest

from harness import RelayTestCase, free_port, http_request, wait_until


def answer(status, body=b"", headers=None, delay=0):
    return lambda req: (status, body, headers or {}, delay)


class WriteTest(RelayTestCase):

    def start(self, responders, extra="", output_extra=""):
        self.ms = [self.mock(r) for r in responders]
        conf, port = self.http_relay_config([m.url for m in self.ms], extra=extra,
                                            output_extra=output_extra)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        return port

    def writes(self, m, n=1):
        """m's writes once it has n (consistency one answers with the first 204, so the other
        backend's copy may still be on its way)."""
        wait_until(lambda: len(m.writes()) >= n, what="%d write(s) at the backend" % n)
        return m.writes()

    def post(self, body, query="db=db", headers=None, timeout=30):
        return http_request(self.port, "POST", "/write?" + query, body, headers, timeout=timeout)

    def test_forwarded_params_and_headers_exact(self):
        self.start([answer(204), answer(204)])
        q = ("db=my%20db&rp=r%2Fp&precision=ns&u=us%26er&p=p%C3%A4ss&consistency=all"
             "&foo=bar&q=select&chunked=true")
        st, _, _ = self.post(b"m,t=a v=1 1\n", q, {"Authorization": "Token secret",
                                                    "X-Custom": "leak", "Cookie": "c=1",
                                                    "User-Agent": "client/1"})
        self.assertEqual(st, 204)
        for m in self.ms:
            [w] = self.writes(m)
            self.assertEqual(w["method"], "POST")
            self.assertEqual(w["path"], "/write")
            self.assertEqual(w["query"], {"db": ["my db"], "rp": ["r/p"], "precision": ["n"],
                                          "u": ["us&er"], "p": ["päss"],
                                          "consistency": ["all"]})
            self.assertEqual(w["headers"].get("authorization"), "Token secret")
            for h in ("x-custom", "cookie"):
                self.assertNotIn(h, w["headers"])
            self.assertNotEqual(w["headers"].get("user-agent"), "client/1")
            self.assertEqual(w["body"], b"m,t=a v=1 1\n")

    def test_nothing_invented(self):
        self.start([answer(204)])
        st, _, _ = self.post(b"m v=1 1\n", "db=d")
        self.assertEqual(st, 204)
        [w] = self.ms[0].writes()
        self.assertEqual(w["raw_query"], "db=d")
        self.assertNotIn("authorization", w["headers"])

    def test_precision_canonical(self):
        self.start([answer(204)])
        for given, sent in [("n", "n"), ("ns", "n"), ("u", "u"), ("us", "u"), ("ms", "ms"),
                            ("s", "s"), ("m", "m"), ("h", "h")]:
            st, _, _ = self.post(b"m v=1 1\n", "db=d&precision=" + given)
            self.assertEqual(st, 204)
            self.assertEqual(self.ms[0].writes()[-1]["query"]["precision"], [sent])

    def test_default_retention_policy(self):
        self.start([answer(204)], extra="default-retention-policy = autogen")
        self.post(b"m v=1 1\n", "db=d")
        self.post(b"m v=1 1\n", "db=d&rp=week")
        w = self.ms[0].writes()
        self.assertEqual(w[0]["query"]["rp"], ["autogen"])
        self.assertEqual(w[1]["query"]["rp"], ["week"])

    def test_timestamps_added_once(self):
        self.start([answer(204), answer(204)])
        t0 = time.time_ns()
        st, _, _ = self.post(b"a v=1\nb v=2 5\nc v=3\n", "db=d")
        self.assertEqual(st, 204)
        bodies = [self.writes(m)[0]["body"] for m in self.ms]
        self.assertEqual(bodies[0], bodies[1])  # the same bytes on every backend
        lines = bodies[0].decode().splitlines()
        self.assertEqual(lines[1], "b v=2 5")
        ts_a = int(lines[0].split()[-1])
        self.assertEqual(ts_a, int(lines[2].split()[-1]))
        self.assertTrue(t0 <= ts_a <= time.time_ns())

    def test_partial_write(self):
        self.start([answer(204)])
        st, h, body = self.post(b"m v=1 1\nbad line\nm v=2 2\nalso bad\n")
        self.assertEqual(st, 400)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(json.loads(body)["error"],
                         "partial write: unable to parse 'bad line': invalid field format\n"
                         "unable to parse 'also bad': invalid field format dropped=2")
        [w] = self.ms[0].writes()
        self.assertEqual(w["body"], b"m v=1 1\nm v=2 2\n")
        _, _, metrics = http_request(self.port, "GET", "/metrics")
        for line in ('influxdb_relay_points_received_total{relay="r1"} 2',
                     'influxdb_relay_lines_rejected_total{relay="r1"} 2',
                     'influxdb_relay_bytes_received_total{relay="r1"} 34',
                     'influxdb_relay_request_duration_seconds_count{relay="r1"} 1'):
            self.assertIn(line, metrics.decode())

    def test_partial_write_not_accepted_gives_backend_verdict(self):
        self.start([answer(500, b'{"error":"boom"}', {"Content-Type": "application/json"})])
        st, _, body = self.post(b"m v=1 1\nbad line\n")
        self.assertEqual(st, 500)
        self.assertEqual(body, b'{"error":"boom"}')

    def test_only_invalid_or_only_comments(self):
        self.start([answer(204)])
        st, _, body = self.post(b"bad line\n")
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(body)["error"],
                         "unable to parse 'bad line': invalid field format")
        st, _, body = self.post(b"# comment\n\n   \n")
        self.assertEqual((st, body), (204, b""))
        st, _, body = self.post(b"")
        self.assertEqual((st, body), (204, b""))
        self.assertEqual(self.ms[0].writes(), [])

    def test_first_2xx_wins_hanging_backend_never_delays(self):
        self.start([answer(204, delay=20), answer(204)])
        t0 = time.monotonic()
        st, _, _ = self.post(b"m v=1 1\n")
        self.assertEqual(st, 204)
        self.assertLess(time.monotonic() - t0, 2)

    def test_4xx_passthrough_with_content_type(self):
        body4 = b"<p>no such database</p>"
        self.start([answer(404, body4, {"Content-Type": "text/html"}), answer(204, delay=3)])
        t0 = time.monotonic()
        st, h, body = self.post(b"m v=1 1\n")
        self.assertEqual((st, body), (404, body4))
        self.assertEqual(h.get("content-type"), "text/html")
        self.assertLess(time.monotonic() - t0, 2.5)

    def test_all_5xx_last_one(self):
        self.start([answer(500, b'{"error":"first"}', {"Content-Type": "application/json"}),
                    answer(502, b'{"error":"last"}', {"Content-Type": "application/json"},
                           delay=0.5)])
        st, h, body = self.post(b"m v=1 1\n")
        self.assertEqual((st, body), (502, b'{"error":"last"}'))
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertIn('5xx response for relay "r1" backend "b1": 500', self.r.log())
        self.assertIn('5xx response for relay "r1" backend "b2": 502', self.r.log())

    def test_none_answered(self):
        urls = ["http://127.0.0.1:%d/write" % free_port() for _ in range(2)]
        conf, port = self.http_relay_config(urls)
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        st, h, body = self.post(b"m v=1 1\n")
        self.assertEqual(st, 503)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(json.loads(body), {"error": "unable to write points"})
        self.assertIn("retry-after", h)
        self.assertIn('Problem posting to relay "r1" backend "b1"', self.r.log())

    def test_write_timeout(self):
        self.start([answer(204, delay=5), answer(204, delay=5)], extra="write-timeout = 1s")
        t0 = time.monotonic()
        st, h, body = self.post(b"m v=1 1\n")
        took = time.monotonic() - t0
        self.assertEqual(st, 503)
        # Sent whole to backends that never answered: they may store it, so no Retry-After.
        self.assertNotIn("retry-after", h)
        self.assertIn("may have been stored", json.loads(body)["error"])
        self.assertTrue(0.8 < took < 2.5, took)

    def test_buffer_full_503_at_once(self):
        self.start([answer(204, delay=3)], output_extra="buffer-size-mb = 1")
        big = b"".join(b"m,i=%d v=1 1\n" % i for i in range(40000))  # ~640 KB
        first = {}
        t = threading.Thread(target=lambda: first.setdefault("r", self.post(big)))
        t.start()
        wait_until(lambda: self.ms[0].requests, what="the first write in flight")
        t0 = time.monotonic()
        st, h, body = self.post(big)
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(st, 503)
        self.assertIn("buffer full", json.loads(body)["error"])
        self.assertIn("retry-after", h)
        t.join(15)
        self.assertEqual(first["r"][0], 204)
        self.assertEqual(len(self.ms[0].writes()), 1)

    def test_consistency_all(self):
        self.start([answer(204), answer(500, b'{"error":"x"}', delay=0.3)],
                   extra="write-consistency = all")
        st, _, _ = self.post(b"m v=1 1\n")
        self.assertEqual(st, 500)

    def test_consistency_all_every_backend_ok(self):
        self.start([answer(204), answer(204, delay=0.5)], extra="write-consistency = all")
        t0 = time.monotonic()
        st, _, _ = self.post(b"m v=1 1\n")
        self.assertEqual(st, 204)
        self.assertGreater(time.monotonic() - t0, 0.45)

    def test_consistency_any(self):
        urls = ["http://127.0.0.1:%d/write" % free_port() for _ in range(2)]
        conf, port = self.http_relay_config(urls, extra="write-consistency = any")
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        st, _, _ = self.post(b"m v=1 1\n")
        self.assertEqual(st, 204)

    def test_gzip_forwarded_inflated_to_all(self):
        import gzip
        self.start([answer(204), answer(204)])
        st, _, _ = self.post(gzip.compress(b"m v=1 1\n"), headers={"Content-Encoding": "gzip"})
        self.assertEqual(st, 204)
        for m in self.ms:
            self.assertEqual(self.writes(m)[0]["body"], b"m v=1 1\n")

    def test_concurrent_clients_every_point_once(self):
        self.start([answer(204), answer(204)])
        errors = []

        def client(c):
            try:
                for i in range(20):
                    st, _, body = self.post(b"m,c=%d v=%d %d\n" % (c, i, i))
                    if st != 204:
                        errors.append((st, body))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        ts = [threading.Thread(target=client, args=(c,)) for c in range(20)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
        for m in self.ms:
            # The answer comes with the first 204; the other copy may still be on its way.
            wait_until(lambda: len(m.body().splitlines()) >= 400, what="every write forwarded")
            lines = sorted(m.body().splitlines())
            want = sorted(b"m,c=%d v=%d %d" % (c, i, i) for c in range(20) for i in range(20))
            self.assertEqual(lines, want)

    def test_sigterm_answers_requests_in_flight(self):
        self.start([answer(204, delay=1.0)])
        result = {}

        def client():
            result["r"] = self.post(b"m v=1 1\n")
        t = threading.Thread(target=client)
        t.start()
        wait_until(lambda: self.ms[0].requests, what="the write at the backend")
        rc = self.r.terminate(timeout=20)
        t.join(10)
        self.assertEqual(result["r"][0], 204)
        self.assertEqual(rc, 0)

    def test_https_backend_self_signed(self):
        key = os.path.join(self.tmp, "bk.pem")
        cert = os.path.join(self.tmp, "bc.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True, timeout=60)
        m = self.mock(answer(204))
        # Re-serve the mock's listening socket through TLS.
        m.server.shutdown()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        m.server.socket = ctx.wrap_socket(m.server.socket, server_side=True)
        m.thread = threading.Thread(target=m.server.serve_forever, daemon=True)
        m.thread.start()
        url = "https://127.0.0.1:%d/write" % m.port
        conf, port = self.http_relay_config([url], output_extra="skip-tls-verification = true")
        self.r = self.relay(conf, wait_ports=[port])
        self.port = port
        st, _, body = self.post(b"m v=1 1\n")
        self.assertEqual(st, 204, body)
        self.assertEqual(m.writes()[0]["body"], b"m v=1 1\n")


if __name__ == "__main__":
    unittest.main()
