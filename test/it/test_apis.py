"""The other write APIs (influxdb-relay(8), HTTP API): POST /api/v2/write (InfluxDB 1.8's
compatibility API) and POST /api/v1/prom/write (Prometheus remote write), against real influxd
1.6.7 where the data must land and mock backends where the exact bytes, headers or a backend's
answer matter. Both go through the same write path as /write (same queues, same answer
rules); v2 answers errors in InfluxDB 2's shape with X-Influxdb-Error."""

import json
import struct
import time
import unittest

import snappy  # python3-snappy (scripts/setup.sh)

import prom
from harness import RelayTestCase, free_port, http_request, wait_until

NS = {"ns": 1, "us": 1000, "ms": 1000000, "s": 1000000000}


# --------------------------------------------------------------------------- protobuf by hand

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, payload):
    """A length-delimited field (wire type 2)."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def write_request(series):
    """A Prometheus remote-write WriteRequest: series is [(labels dict, [(value, ts_ms)])].
    WriteRequest.timeseries = 1; TimeSeries.labels = 1, .samples = 2; Label.name = 1,
    .value = 2; Sample.value = 1 (double), .timestamp = 2 (int64 ms)."""
    out = b""
    for labels, samples in series:
        ts = b""
        for k, v in sorted(labels.items()):
            ts += field_bytes(1, field_bytes(1, k.encode()) + field_bytes(2, v.encode()))
        for value, t in samples:
            sample = varint(1 << 3 | 1) + struct.pack("<d", value) + varint(2 << 3 | 0) + varint(t)
            ts += field_bytes(2, sample)
        out += field_bytes(1, ts)
    return out


# Two series, three samples (what PromWriteTest and test_apis_transport send).
PROM_SERIES = [({"__name__": "http_requests_total", "job": "api", "code": "200"},
                [(1027.0, 1700000000000), (1030.5, 1700000015000)]),
               ({"__name__": "up", "job": "api"}, [(1.0, 1700000000000)])]

PROM_HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0"}


def v2_error(test, st, h, body, status, code, message):
    """Asserts an InfluxDB 2 error answer."""
    test.assertEqual(st, status, body)
    test.assertEqual(h.get("content-type"), "application/json; charset=utf-8")
    test.assertEqual(json.loads(body), {"code": code, "message": message})
    test.assertEqual(h.get("x-influxdb-error"), message)


class ApiV2InfluxdTest(RelayTestCase):
    """/api/v2/write into two real influxd 1.6.7."""

    def setUp(self):
        super().setUp()
        self.dbs = [self.influxd(db="db"), self.influxd(db="db")]
        for i in self.dbs:
            i.query('CREATE RETENTION POLICY "week" ON "db" DURATION 7d REPLICATION 1')
        conf, self.port = self.http_relay_config([i.url for i in self.dbs])
        self.r = self.relay(conf, wait_ports=[self.port])

    def v2(self, body, query, headers=None):
        return http_request(self.port, "POST", "/api/v2/write?" + query, body, headers)

    def rows(self, q, n):
        """The rows of q once each influxd holds n of them (the same on both)."""
        for i in self.dbs:
            wait_until(lambda: len(i.rows("db", q)) >= n, what="%d rows of %s" % (n, q))
        rows = [i.rows("db", q) for i in self.dbs]
        self.assertEqual(rows[0], rows[1])
        return rows[0]

    def test_each_precision_with_and_without_rp(self):
        t = int(time.time()) - 3600  # within the week of "week"
        for k, (prec, mul) in enumerate(sorted(NS.items())):
            stamp = (t + k) * (NS["s"] // mul)
            for bucket, m in (("db", "plain"), ("db/week", "inweek")):
                st, _, b = self.v2("%s,p=%s v=%di %d\n" % (m, prec, k, stamp),
                                   "org=anything&bucket=%s&precision=%s" % (bucket, prec))
                self.assertEqual(st, 204, b)
        # No precision: nanoseconds.
        self.assertEqual(self.v2("plain,p=none v=9i %d\n" % (t * NS["s"]), "bucket=db")[0], 204)
        want = [[(t + k) * NS["s"], "%s" % prec, k] for k, prec in enumerate(sorted(NS))]
        got = self.rows('SELECT "p", "v" FROM "autogen"."plain" WHERE "p" <> \'none\'', 4)
        self.assertEqual(sorted(got), sorted(want))
        self.assertEqual(sorted(self.rows('SELECT "p", "v" FROM "week"."inweek"', 4)),
                         sorted(want))
        self.assertEqual(self.rows('SELECT "v" FROM "plain" WHERE "p" = \'none\'', 1),
                         [[t * NS["s"], 9]])
        # "db/" is the database's default retention policy.
        self.assertEqual(self.v2("slash v=1i %d\n" % (t * NS["s"]), "bucket=db/")[0], 204)
        self.assertEqual(self.rows('SELECT "v" FROM "autogen"."slash"', 1), [[t * NS["s"], 1]])

    def test_points_without_timestamp_stamped_in_the_v2_precision(self):
        for prec, mul in sorted(NS.items()):
            before = time.time_ns()
            st, _, b = self.v2("stamp,p=%s v=1i\n" % prec, "bucket=db&precision=" + prec)
            self.assertEqual(st, 204, b)
            after = time.time_ns()
            (got,) = self.rows('SELECT "v" FROM "stamp" WHERE "p" = \'%s\'' % prec, 1)
            ts = got[0]
            self.assertEqual(ts % mul, 0, "%s: %d is not in whole %s" % (prec, ts, prec))
            self.assertTrue(before // mul * mul <= ts <= after, (prec, before, ts, after))

    def test_partial_write_and_backend_404(self):
        st, h, b = self.v2("m v=1i 1\nbad line\nm v=2i 2\n", "bucket=db")
        v2_error(self, st, h, b, 400, "invalid",
                 "partial write: unable to parse 'bad line': invalid field format dropped=1")
        self.assertEqual(self.rows('SELECT "v" FROM "m"', 2), [[1, 1], [2, 2]])
        # No valid line: the relay's own 400, nothing forwarded.
        st, h, b = self.v2("bad line\n", "bucket=db")
        v2_error(self, st, h, b, 400, "invalid",
                 "unable to parse 'bad line': invalid field format")
        # influxd's 404 for an unknown database, in v2's shape.
        st, h, b = self.v2("m v=1i 1\n", "bucket=nosuchdb")
        v2_error(self, st, h, b, 404, "not found", 'database not found: "nosuchdb"')


class ApiV2MockTest(RelayTestCase):
    """What backends receive from /api/v2/write, and every error shape."""

    def start(self, responder=None, n=2, extra="", output_extra=""):
        self.mocks_ = [self.mock(responder) for _ in range(n)]
        conf, self.port = self.http_relay_config([m.url for m in self.mocks_], extra=extra,
                                                 output_extra=output_extra)
        self.r = self.relay(conf, wait_ports=[self.port])

    def v2(self, body, query, headers=None, method="POST"):
        return http_request(self.port, method, "/api/v2/write?" + query, body, headers)

    def test_backends_get_a_v1_write(self):
        self.start()
        cases = [
            ("bucket=db&org=o", {}, "db=db", None),
            ("bucket=db/rp&precision=ns", {}, "db=db&rp=rp&precision=n", None),
            ("precision=us&bucket=d%20b/r%2Fp", {}, "db=d%20b&rp=r%2Fp&precision=u", None),
            ("bucket=db&precision=ms&u=me&p=pw&consistency=all", {},
             "db=db&precision=ms&u=me&p=pw&consistency=all", None),
            ("bucket=db&precision=s", {"Authorization": "Token alice:s3:cret"},
             "db=db&precision=s", "Basic YWxpY2U6czM6Y3JldA=="),
            ("bucket=db", {"Authorization": "Token abcdef"}, "db=db", "Token abcdef"),
            ("bucket=db", {"Authorization": "Token a:b c"}, "db=db", "Token a:b c"),
            ("bucket=db", {"Authorization": "Basic eDp5"}, "db=db", "Basic eDp5"),
        ]
        for i, (query, headers, want_q, want_auth) in enumerate(cases):
            st, _, b = self.v2("m v=%di 1\n" % i, query, headers)
            self.assertEqual(st, 204, b)
            for m in self.mocks_:
                wait_until(lambda: len(m.writes()) > i, what="write %d" % i)
                req = m.writes()[i]
                self.assertEqual(req["raw_query"], want_q, query)
                self.assertEqual(req["headers"].get("authorization"), want_auth, query)
                self.assertEqual(req["body"], b"m v=%di 1\n" % i)
        # The default retention policy fills a bucket without one.
        st = self.start_default_rp()
        self.assertEqual(st, 204)

    def start_default_rp(self):
        m = self.mock()
        conf, port = self.http_relay_config([m.url], extra="default-retention-policy = week")
        self.relay(conf, wait_ports=[port], name="rp.ini")
        for q in ("bucket=db", "bucket=db/", "bucket=db/month"):
            st, _, b = http_request(port, "POST", "/api/v2/write?" + q, "m v=1i 1\n")
            self.assertEqual(st, 204, b)
        wait_until(lambda: len(m.writes()) == 3, what="3 writes")
        self.assertEqual([r["raw_query"] for r in m.writes()],
                         ["db=db&rp=week", "db=db&rp=week", "db=db&rp=month"])
        return 204

    def test_relay_errors_in_v2_shape(self):
        self.start(extra="max-body-mb = 1")
        st, h, b = self.v2("m v=1\n", "org=o")
        v2_error(self, st, h, b, 404, "not found",
                 'bucket name "" is missing a slash; not in "database/retention-policy" format')
        st, h, b = self.v2("m v=1\n", "bucket=")
        v2_error(self, st, h, b, 404, "not found",
                 'bucket name "" is missing a slash; not in "database/retention-policy" format')
        st, h, b = self.v2("m v=1\n", "bucket=/rp")
        v2_error(self, st, h, b, 404, "not found",
                 'bucket name "/rp" is in db/rp form but has an empty database')
        for prec in ("n", "u", "m", "h", "seconds"):
            st, h, b = self.v2("m v=1\n", "bucket=db&precision=" + prec)
            v2_error(self, st, h, b, 400, "invalid",
                     'invalid precision "%s" (use ns, us, ms or s)' % prec)
        st, h, b = self.v2("x" * (1024 * 1024 + 1), "bucket=db")
        v2_error(self, st, h, b, 413, "request too large", "http: request body too large")
        st, h, b = self.v2(b"\x1f\x8b not gzip", "bucket=db", {"Content-Encoding": "gzip"})
        self.assertEqual(st, 400, b)
        self.assertEqual(json.loads(b)["code"], "invalid")
        st, h, b = self.v2("", "bucket=db", method="GET")
        v2_error(self, st, h, b, 405, "method not allowed", "invalid write method")
        self.assertEqual(h.get("allow"), "POST")
        st, h, b = self.v2("", "bucket=db", method="OPTIONS")
        self.assertEqual((st, h.get("allow"), b), (204, "POST", b""))
        # Nothing of it reached a backend; a valid write does.
        self.assertEqual(self.v2("m v=1i 1\n", "bucket=db")[0], 204)
        for m in self.mocks_:
            wait_until(lambda: len(m.writes()) == 1, what="the valid write")
        s = prom.scrape(self.port)
        self.assertEqual(s.requests("r1", "api_v2_write", 404), 3)
        self.assertEqual(s.requests("r1", "api_v2_write", 204), 2)  # OPTIONS too
        self.assertEqual(s.requests("r1", "api_v2_write", 405), 1)

    def test_backend_4xx_passed_on_in_v2_shape(self):
        answers = {
            b"conflict": (400, '{"error":"partial write: field type conflict: input field '
                               '\\"v\\" on measurement \\"m\\" is type integer, already exists '
                               'as type float dropped=1"}\n', "application/json"),
            b"auth": (401, '{"error":"authorization failed"}\n', "application/json"),
            b"forbidden": (403, '{"error":"\\"u\\" user is not authorized to write to database'
                                ' \\"db\\""}\n', "application/json"),
            b"html": (422, "<html>unprocessable\r\nentity</html>\n", "text/html"),
            b"empty": (429, "", "text/plain"),
        }

        def responder(req):
            for k, (status, body, ctype) in answers.items():
                if req["body"].startswith(k):
                    return status, body, {"Content-Type": ctype}, 0
            return 204, b"", {}, 0

        self.start(responder, n=1)
        st, h, b = self.v2("conflict v=1i 1\n", "bucket=db")
        v2_error(self, st, h, b, 400, "invalid",
                 'partial write: field type conflict: input field "v" on measurement "m" is type '
                 'integer, already exists as type float dropped=1')
        st, h, b = self.v2("auth v=1i 1\n", "bucket=db")
        v2_error(self, st, h, b, 401, "unauthorized", "authorization failed")
        st, h, b = self.v2("forbidden v=1i 1\n", "bucket=db")
        v2_error(self, st, h, b, 403, "forbidden", '"u" user is not authorized to write to '
                 'database "db"')
        st, h, b = self.v2("html v=1i 1\n", "bucket=db")
        self.assertEqual(st, 422)
        self.assertEqual(json.loads(b), {"code": "unprocessable entity",
                                         "message": "<html>unprocessable\r\nentity</html>"})
        self.assertEqual(h.get("x-influxdb-error"), "<html>unprocessable  entity</html>")
        # A 429 without a body: its status, the relay's words.
        st, h, b = self.v2("empty v=1i 1\n", "bucket=db")
        v2_error(self, st, h, b, 429, "too many requests", "unable to write points")

    def test_503_with_retry_after_when_every_backend_is_down(self):
        port = free_port()  # nobody listens there
        conf, self.port = self.http_relay_config(
            ["http://127.0.0.1:%d/write" % port], extra="write-timeout = 2s",
            output_extra="timeout = 1s\nbuffer-size-mb = 1")
        self.relay(conf, wait_ports=[self.port])
        st, h, b = self.v2("m v=1i 1\n", "bucket=db")
        v2_error(self, st, h, b, 503, "unavailable", "unable to write points")
        self.assertEqual(h.get("retry-after"), "2")

    def test_long_message_header_cut_at_1024_bytes(self):
        long_msg = "\u00e9" * 700  # 1400 bytes of UTF-8

        def responder(req):
            return 400, json.dumps({"error": long_msg}), {"Content-Type": "application/json"}, 0

        self.start(responder, n=1)
        st, h, b = self.v2("m v=1i 1\n", "bucket=db")
        self.assertEqual(st, 400)
        self.assertEqual(json.loads(b)["message"], long_msg)
        # http.client decodes header bytes as latin-1.
        header = h.get("x-influxdb-error").encode("latin-1").decode("utf-8")
        self.assertEqual(header, "\u00e9" * 512)


class PromWriteTest(RelayTestCase):
    """/api/v1/prom/write: a snappy body forwarded byte for byte, or refused as influxd would."""

    SERIES = PROM_SERIES

    def start(self, outputs=2, output_extra=""):
        self.mocks_ = [self.mock() for _ in range(outputs)]
        conf, self.port = self.http_relay_config([m.url for m in self.mocks_],
                                                 output_extra=output_extra)
        self.r = self.relay(conf, wait_ports=[self.port])

    def post(self, body, query="db=prom", headers=None):
        return http_request(self.port, "POST", "/api/v1/prom/write?" + query, body,
                            headers if headers is not None else PROM_HEADERS)

    def prom_requests(self, m):
        with m.lock:
            return [r for r in m.requests if r["path"] == "/api/v1/prom/write"]

    def test_body_arrives_byte_identical_at_each_backend(self):
        self.start()
        body = snappy.compress(write_request(self.SERIES))
        st, _, b = self.post(body, "db=prom&rp=week&u=me&p=pw&precision=s&org=x",
                             dict(PROM_HEADERS, Authorization="Basic bWU6cHc="))
        self.assertEqual(st, 204, b)
        for m in self.mocks_:
            wait_until(lambda: len(self.prom_requests(m)) == 1, what="the Prometheus body")
            (req,) = self.prom_requests(m)
            self.assertEqual(req["body"], body)
            self.assertEqual(req["raw_query"], "db=prom&rp=week&u=me&p=pw")
            hd = req["headers"]
            self.assertEqual(hd.get("content-encoding"), "snappy")
            self.assertEqual(hd.get("content-type"), "application/x-protobuf")
            self.assertEqual(hd.get("authorization"), "Basic bWU6cHc=")
            self.assertNotIn("x-prometheus-remote-write-version", hd)
        s = prom.scrape(self.port)
        self.assertEqual(s.requests("r1", "prom_write", 204), 1)
        self.assertEqual(s.get("influxdb_relay_bytes_received_total", relay="r1"), len(body))

    def test_corrupt_bodies_refused_nothing_forwarded(self):
        self.start()
        good = snappy.compress(write_request(self.SERIES))
        self.assertEqual(self.post(good)[0], 204)  # positive control: the path works
        for m in self.mocks_:
            wait_until(lambda: len(self.prom_requests(m)) == 1, what="the first body")
        lit = snappy.compress(b"abcdefgh" * 3)  # a literal, then a copy of offset 8
        bad_offset = bytearray(lit)
        bad_offset[-1] = 0x40  # that copy now reaches 64 bytes back, before the start
        self.assertEqual(snappy.uncompress(lit), b"abcdefgh" * 3)
        bad = {
            "empty": b"",
            "garbage": b"this is not snappy at all",
            "truncated": good[:-3],
            "bad offset": bytes(bad_offset),
            "longer": good + b"\x00",
            "length too large": b"\xff\xff\xff\xff\x0f" + good[1:],
            "protobuf not snappy": write_request(self.SERIES),
        }
        for what, body in bad.items():
            st, h, b = self.post(body)
            self.assertEqual((st, b), (400, b'{"error":"snappy: corrupt input"}\n'), what)
        # Missing db, as influxd says it.
        st, _, b = self.post(good, "rp=x")
        self.assertEqual((st, b), (400, b'{"error":"database is required"}\n'))
        # A second good body arrives right behind the first: nothing came in between.
        second = snappy.compress(write_request(self.SERIES[1:]))
        self.assertEqual(self.post(second)[0], 204)
        for m in self.mocks_:
            wait_until(lambda: len(self.prom_requests(m)) == 2, what="the second body")
            self.assertEqual([r["body"] for r in self.prom_requests(m)], [good, second])
            self.assertEqual(m.writes(), [])

    def test_never_gzipped_and_content_encoding_not_undone(self):
        self.start(outputs=1, output_extra="content-encoding = gzip")
        body = snappy.compress(write_request(self.SERIES))
        self.assertEqual(self.post(body)[0], 204)
        # A client saying gzip does not make the relay inflate a Prometheus body (neither does
        # influxd): it is not a snappy block.
        import gzip
        st, _, b = self.post(gzip.compress(body), headers=dict(PROM_HEADERS,
                                                               **{"Content-Encoding": "gzip"}))
        self.assertEqual(st, 400, b)
        wait_until(lambda: len(self.prom_requests(self.mocks_[0])) == 1, what="the body")
        req = self.prom_requests(self.mocks_[0])[0]
        self.assertEqual(req["body"], body)
        self.assertEqual(req["headers"].get("content-encoding"), "snappy")
        self.assertNotIn("transfer-encoding", req["headers"])


class PromInfluxdTest(RelayTestCase):
    """Prometheus samples land in a real influxd 1.6.7: measurement = metric name, field
    "value", the other labels as tags."""

    def test_samples_land(self):
        i = self.influxd(db="prom")
        conf, port = self.http_relay_config([i.url])
        self.relay(conf, wait_ports=[port])
        body = snappy.compress(write_request(PromWriteTest.SERIES))
        st, _, b = http_request(port, "POST", "/api/v1/prom/write?db=prom", body, PROM_HEADERS)
        self.assertEqual(st, 204, b)
        wait_until(lambda: len(i.rows("prom", 'SELECT * FROM "http_requests_total"')) == 2,
                   what="the samples in influxd")
        res = i.query('SELECT "value", "job", "code" FROM "http_requests_total"', db="prom",
                      epoch="ms")["results"][0]["series"][0]
        self.assertEqual(res["columns"], ["time", "value", "job", "code"])
        self.assertEqual(res["values"], [[1700000000000, 1027.0, "api", "200"],
                                         [1700000015000, 1030.5, "api", "200"]])
        self.assertEqual(i.rows("prom", 'SELECT "value" FROM "up"'),
                         [[1700000000000000000, 1.0]])
        # A snappy block holding no valid protobuf: influxd's own 400, passed on.
        bad = snappy.compress(b"\x0a\xff\xff\xff\xff\x0f")
        st, h, b = http_request(port, "POST", "/api/v1/prom/write?db=prom", bad, PROM_HEADERS)
        self.assertEqual(st, 400, b)
        self.assertIn("error", json.loads(b))
        # And an unknown database: influxd's 404.
        st, _, b = http_request(port, "POST", "/api/v1/prom/write?db=nodb", body, PROM_HEADERS)
        self.assertEqual(st, 404, b)


if __name__ == "__main__":
    unittest.main()
