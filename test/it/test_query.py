"""/query through the relay (issue 14) with real influxd 1.6.7 backends (a mock only where a
backlog or a request's exact shape must be seen): statements that change state reach every
backend through its write queue, in order with the writes, also one that was down; reads are
streamed from the first caught-up backend (X-Relay-Stale otherwise, 503 when none is up);
server-local and mixed statements are refused; `query = ddl | off`; real clients' requests
(Telegraf's start-up CREATE DATABASE, node-influx's createDatabase()) are answered as influxd
answers them."""

import json
import os
import re
import socket
import subprocess
import threading
import unittest
import urllib.parse

from harness import HERE, RelayTestCase, free_port, http_request, wait_until

NODE_DIR = os.path.join(HERE, "node")


def form(**params):
    return urllib.parse.urlencode(params)


def raw_get(port, path, timeout=30):
    """GET over a raw socket: (status line, headers dict, list of chunk payloads, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    chunks = []
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            chunks.append(rest[:n])
            rest = rest[n + 2:]
        body = b"".join(chunks)
    else:
        body = rest
    return lines[0], headers, chunks, body


class QueryTestBase(RelayTestCase):

    def relay_for(self, urls, extra="", output_extra="timeout = 2s\nmax-delay-interval = 1s\n"):
        conf, port = self.http_relay_config(urls, extra=extra, output_extra=output_extra)
        self.relay(conf, wait_ports=[port])
        return port

    def q(self, port, q, method="GET", db=None, extra=None, headers=None):
        params = {"q": q}
        if db:
            params["db"] = db
        params.update(extra or {})
        if method == "GET":
            return http_request(port, "GET", "/query?" + form(**params), headers=headers)
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return http_request(port, "POST", "/query", form(**params), h)

    def databases(self, influxd):
        res = influxd.query("SHOW DATABASES")["results"][0]
        return [v[0] for s in res.get("series", []) for v in s.get("values", [])]


class QueryInfluxdTest(QueryTestBase):

    def setUp(self):
        super().setUp()
        self.dbs = [self.influxd(), self.influxd()]
        self.port = self.relay_for([i.url for i in self.dbs],
                                   output_extra="buffer-size-mb = 16\ntimeout = 2s\n"
                                   "max-delay-interval = 1s\n")

    def test_create_database_reaches_every_backend(self):
        st, h, body = self.q(self.port, "CREATE DATABASE qdb", method="POST")
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(json.loads(body), {"results": [{"statement_id": 0}]})
        for i in self.dbs:
            wait_until(lambda: "qdb" in self.databases(i), what="qdb on %d" % i.http_port)
        # q in the query string of a POST (node-influx's shape) and a GET (deprecated in influxd
        # 1.x, still executed): both change every backend.
        st, _, body = http_request(self.port, "POST", "/query?" + form(q="CREATE DATABASE q2"))
        self.assertEqual(st, 200, body)
        st, _, body = self.q(self.port, "CREATE DATABASE q3; CREATE DATABASE q4")
        self.assertEqual(st, 200, body)
        for i in self.dbs:
            wait_until(lambda: {"q2", "q3", "q4"} <= set(self.databases(i)),
                       what="q2..q4 on %d" % i.http_port)

    def test_ddl_reaches_a_backend_that_was_down_before_the_writes_after_it(self):
        down = self.dbs[1]
        down.kill()
        st, _, body = self.q(self.port, "CREATE DATABASE late", method="POST")
        self.assertEqual(st, 200, body)
        self.assertIn("late", self.databases(self.dbs[0]))
        for n in range(20):
            st, _, body = http_request(self.port, "POST", "/write?db=late&precision=s",
                                       "m,n=%d v=%d %d\n" % (n, n, 1000 + n))
            self.assertEqual(st, 204, body)
        down.start()  # same port, same data directory
        wait_until(lambda: "late" in self.databases(down), timeout=30, what="late on restart")
        wait_until(lambda: down.count("late", "m", "v") == 20, timeout=30,
                   what="the 20 points queued after the DDL")
        self.assertEqual(self.dbs[0].count("late", "m", "v"), 20)

    def test_telegraf_startup_request(self):
        # plugins/outputs/influxdb/http.go: POST <url>/query, form body q=CREATE DATABASE "db",
        # Content-Type application/x-www-form-urlencoded, Go's Accept-Encoding: gzip, its
        # User-Agent; it wants 200 and no "error" in results[0].
        body = form(q='CREATE DATABASE "telegraf"')
        st, h, resp = http_request(self.port, "POST", "/query", body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Telegraf/1.25.0 Go/1.19.8", "Accept-Encoding": "gzip"})
        self.assertEqual(st, 200, resp)
        self.assertNotIn("error", json.loads(resp)["results"][0])
        for i in self.dbs:
            wait_until(lambda: "telegraf" in self.databases(i), what="telegraf db")

    def test_node_influx_create_database(self):
        script = os.path.join(NODE_DIR, "create_db.js")
        self.assertTrue(os.path.isdir(os.path.join(NODE_DIR, "node_modules", "influx")),
                        "node-influx missing: run scripts/setup.sh (npm install in test/it/node)")
        p = subprocess.run(["node", script, "127.0.0.1", str(self.port), "nodedb"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.strip(), b"OK")
        for i in self.dbs:
            wait_until(lambda: "nodedb" in self.databases(i), what="nodedb")

    def test_reads_come_back_as_influxd_answers(self):
        for i in self.dbs:
            i.create_db("r")
        st, _, body = http_request(self.port, "POST", "/write?db=r&precision=s",
                                   "".join("cpu,host=h%d v=%d %d\n" % (n % 3, n, 100 + n)
                                           for n in range(30)))
        self.assertEqual(st, 204, body)
        for i in self.dbs:
            wait_until(lambda: i.count("r", "cpu", "v") == 30, what="30 points")
        for method in ("GET", "POST"):
            for q, extra in (("SELECT * FROM cpu", {"epoch": "s"}),
                             ("SELECT mean(v) FROM cpu GROUP BY host", {}),
                             ("SHOW TAG VALUES WITH KEY = host", {"pretty": "true"}),
                             ("SELECT * FROM cpu; SHOW MEASUREMENTS", {"epoch": "ms"})):
                st, h, body = self.q(self.port, q, method=method, db="r", extra=extra)
                direct = self.q(self.dbs[0].http_port, q, method=method, db="r", extra=extra)
                self.assertEqual(st, 200, body)
                self.assertEqual(body, direct[2], q)
                self.assertEqual(h.get("content-type"), direct[1].get("content-type"))
                self.assertNotIn("x-relay-stale", h)
        # influxd's own refusal of a read passes through (unknown database, bad syntax).
        st, _, body = self.q(self.port, "SELECT * FROM cpu WHERE", db="r")
        direct = http_request(self.dbs[0].http_port, "GET",
                              "/query?" + form(q="SELECT * FROM cpu WHERE", db="r"))
        self.assertEqual((st, body), (direct[0], direct[2]))

    def test_chunked_answer_is_streamed(self):
        for i in self.dbs:
            i.create_db("c")
        lines = "".join("big,k=%d v=%d %d\n" % (n % 50, n, 1000 + n) for n in range(5000))
        st, _, body = http_request(self.port, "POST", "/write?db=c&precision=s", lines)
        self.assertEqual(st, 204, body)
        for i in self.dbs:
            wait_until(lambda: i.count("c", "big", "v") == 5000, what="5000 points")
        path = "/query?" + form(q="SELECT * FROM big", db="c", chunked="true", chunk_size="1")
        status, h, chunks, body = raw_get(self.port, path)
        self.assertIn(" 200 ", status + " ")
        self.assertEqual(h.get("transfer-encoding"), "chunked")
        self.assertGreater(len(chunks), 1)
        _, _, _, direct = raw_get(self.dbs[0].http_port, path)
        self.assertEqual(body, direct)
        self.assertEqual(len(body.splitlines()), 5000)  # chunk_size=1: a JSON document a row

    def test_local_mixed_and_invalid_statements_are_refused(self):
        st, h, body = self.q(self.port, "SHOW SHARDS")
        self.assertEqual(st, 400)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertIn("SHOW SHARDS", json.loads(body)["error"])
        st, _, body = self.q(self.port, "KILL QUERY 1; DROP SHARD 3; SHOW STATS", method="POST")
        self.assertEqual(st, 400)
        err = json.loads(body)["error"]
        for name in ("KILL QUERY", "DROP SHARD", "SHOW STATS"):
            self.assertIn(name, err)
        st, _, body = self.q(self.port, "CREATE DATABASE x; SHOW DATABASES", method="POST")
        self.assertEqual(st, 400)
        self.assertIn("mix", json.loads(body)["error"])
        for q in ("FOO", "SHOW", "SHOW FOO; SHOW DATABASES"):
            st, _, body = self.q(self.port, q)
            direct = http_request(self.dbs[0].http_port, "GET", "/query?" + form(q=q))
            self.assertEqual((st, body), (direct[0], direct[2]), q)
        st, _, body = http_request(self.port, "GET", "/query?db=x")
        direct = http_request(self.dbs[0].http_port, "GET", "/query?db=x")
        self.assertEqual((st, body), (direct[0], direct[2]))
        self.assertNotIn("x", self.databases(self.dbs[0]))
        st, h, _ = http_request(self.port, "PUT", "/query?q=SHOW+DATABASES")
        self.assertEqual(st, 405)


# One statement of each kind influxd 1.6.7 knows, in an order where each can succeed.
CHANGES = [
    "CREATE DATABASE k",
    "CREATE RETENTION POLICY rp1 ON k DURATION 2d REPLICATION 1",
    "ALTER RETENTION POLICY rp1 ON k DURATION 3d",
    "CREATE USER u1 WITH PASSWORD 'pw'",
    "SET PASSWORD FOR u1 = 'pw2'",
    "GRANT READ ON k TO u1",
    "REVOKE READ ON k FROM u1",
    "CREATE CONTINUOUS QUERY cq1 ON k BEGIN SELECT mean(v) INTO m2 FROM m GROUP BY time(1h) END",
    "CREATE SUBSCRIPTION s1 ON k.autogen DESTINATIONS ALL 'udp://127.0.0.1:9'",
    "SELECT v INTO k.autogen.copy FROM k.autogen.m",
    "DELETE FROM m WHERE time < '1970-01-01T00:00:01.5Z'",
    "DROP SERIES FROM copy",
    "DROP MEASUREMENT copy",
    "DROP SUBSCRIPTION s1 ON k.autogen",
    "DROP CONTINUOUS QUERY cq1 ON k",
    "DROP RETENTION POLICY rp1 ON k",
    "DROP USER u1",
]
READS = [
    "SELECT * FROM m", "EXPLAIN SELECT * FROM m", "EXPLAIN ANALYZE SELECT * FROM m",
    "SHOW CONTINUOUS QUERIES", "SHOW DATABASES", "SHOW FIELD KEY CARDINALITY",
    "SHOW FIELD KEYS", "SHOW GRANTS FOR u2", "SHOW MEASUREMENT EXACT CARDINALITY",
    "SHOW MEASUREMENT CARDINALITY", "SHOW MEASUREMENTS", "SHOW RETENTION POLICIES",
    "SHOW SERIES", "SHOW SERIES CARDINALITY", "SHOW SUBSCRIPTIONS", "SHOW TAG KEY CARDINALITY",
    "SHOW TAG KEYS", "SHOW TAG VALUES WITH KEY = t", "SHOW USERS",
]
LOCALS = ["SHOW QUERIES", "KILL QUERY 1", "SHOW SHARDS", "SHOW SHARD GROUPS", "SHOW STATS",
          "SHOW DIAGNOSTICS", "DROP SHARD 1"]


class QueryClassificationTest(QueryTestBase):
    """The classification table end to end: one request per statement kind."""

    def test_every_statement_kind(self):
        dbs = [self.influxd(), self.influxd()]
        port = self.relay_for([i.url for i in dbs])
        for i in dbs:
            i.create_db("k")
            i.query("CREATE USER u2 WITH PASSWORD 'x'")
            st, _, b = i.write("k", "m,t=a v=1 1000000000\nm,t=b v=2 2000000000\n")
            self.assertEqual(st, 204, b)
        for q in CHANGES:
            st, _, body = self.q(port, q, method="POST", db="k")
            self.assertEqual(st, 200, (q, body))
            self.assertNotIn("error", body.decode(), q)
        # Every backend went through the same changes, in order (write-consistency one: the
        # second may still be on its way when the first answered).
        for show in ("SHOW RETENTION POLICIES ON k", "SHOW USERS", "SHOW MEASUREMENTS ON k",
                     "SHOW CONTINUOUS QUERIES", "SHOW SUBSCRIPTIONS"):
            wait_until(lambda: dbs[0].query(show) == dbs[1].query(show), what=show)
        self.assertEqual(dbs[1].query("SHOW USERS")["results"][0]["series"][0]["values"],
                         [["u2", False]])
        for q in READS:
            st, _, body = self.q(port, q, db="k")
            direct = http_request(dbs[0].http_port, "GET", "/query?" + form(q=q, db="k"))
            self.assertEqual(st, 200, (q, body))
            if not q.startswith("EXPLAIN ANALYZE"):  # carries timings
                self.assertEqual(body, direct[2], q)
        for q in LOCALS:
            st, _, body = self.q(port, q, method="POST", db="k")
            self.assertEqual(st, 400, q)
            self.assertIn(re.sub(r" \d+$", "", q), json.loads(body)["error"])


class QueryRoutingTest(QueryTestBase):

    def test_stale_backend_and_none_up(self):
        held = threading.Event()
        release = threading.Event()

        def slow(req):
            if req["path"] == "/write":
                held.set()
                release.wait(30)
                return 204, b"", {}, 0
            return 200, b'{"results":[{"statement_id":0}]}', {"Content-Type": "application/json",
                                                                "X-Influxdb-Version": "mock"}, 0

        m = self.mock(slow)
        real = self.influxd(db="s")
        # A long timeout: the held write stays in the mock's queue until the test releases it.
        port = self.relay_for([m.url, real.url], output_extra="timeout = 60s\n")
        try:
            st, _, body = http_request(port, "POST", "/write?db=s", "m v=1 1\n")
            self.assertEqual(st, 204, body)  # influxd took it; the mock holds its copy
            self.assertTrue(held.wait(10))
            # The first backend has a backlog: the caught-up second one answers.
            st, h, body = self.q(port, "SELECT * FROM m", db="s")
            self.assertEqual(st, 200, body)
            self.assertIn(b'"series"', body)
            self.assertNotIn("x-relay-stale", h)
            self.assertEqual([r for r in m.requests if r["path"] == "/query"], [])
            # The caught-up one goes away: the one with a backlog answers, marked stale.
            real.kill()
            st, h, body = self.q(port, "SELECT * FROM m", db="s")
            self.assertEqual(st, 200, body)
            self.assertEqual(h.get("x-relay-stale"), "true")
            self.assertEqual(h.get("x-influxdb-version"), "mock")
            self.assertEqual(len([r for r in m.requests if r["path"] == "/query"]), 1)
        finally:
            release.set()

    def test_503_when_no_backend_answers(self):
        # Nothing listens on either output: each is tried, then 503.
        port = self.relay_for(["http://127.0.0.1:%d/write" % free_port() for _ in range(2)])
        st, h, body = self.q(port, "SHOW DATABASES")
        self.assertEqual(st, 503, body)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertIn("unable to query", json.loads(body)["error"])
        # Once a write has found them down (buffered), a read is refused without trying.
        port = self.relay_for(["http://127.0.0.1:%d/write" % free_port()],
                              output_extra="buffer-size-mb = 1\ntimeout = 2s\n")
        st, _, _ = http_request(port, "POST", "/write?db=x", "m v=1\n")
        self.assertEqual(st, 503)
        st, _, body = self.q(port, "SHOW DATABASES")
        self.assertEqual((st, json.loads(body)), (503, {"error": "no backend is up"}))

    def test_authorization_and_credentials_are_forwarded(self):
        m = self.mock(lambda req: (200, b'{"results":[{"statement_id":0}]}',
                                   {"Content-Type": "application/json"}, 0))
        port = self.relay_for([m.url])
        auth = {"Authorization": "Basic dTpw"}
        st, _, _ = self.q(port, "SHOW DATABASES", extra={"u": "u", "p": "pw"}, headers=auth)
        self.assertEqual(st, 200)
        # influxd reads u and p from the URL only (pretty too): a POST keeps them there.
        st, _, _ = http_request(port, "POST", "/query?" + form(u="u", p="pw"),
                                form(q="CREATE DATABASE a", db="a"),
                                dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"}))
        self.assertEqual(st, 200)
        reqs = [r for r in m.requests if r["path"] == "/query"]
        self.assertEqual(len(reqs), 2)
        for r in reqs:
            self.assertEqual(r["headers"].get("authorization"), "Basic dTpw")
            params = dict(urllib.parse.parse_qsl(r["raw_query"]))
            self.assertEqual((params.get("u"), params.get("p")), ("u", "pw"))
        change = reqs[1]
        self.assertEqual(change["method"], "POST")
        self.assertEqual(change["headers"].get("content-type"),
                         "application/x-www-form-urlencoded")
        self.assertEqual(dict(urllib.parse.parse_qsl(change["body"].decode()))["q"],
                         "CREATE DATABASE a")

    def test_query_modes(self):
        m = self.mock(lambda req: (200, b'{"results":[{"statement_id":0}]}',
                                   {"Content-Type": "application/json"}, 0))
        ddl = self.relay_for([m.url], extra="query = ddl")
        st, _, body = self.q(ddl, "SHOW DATABASES")
        self.assertEqual((st, json.loads(body)), (403, {"error": "reads are not relayed here"}))
        st, _, body = self.q(ddl, "CREATE DATABASE d", method="POST")
        self.assertEqual(st, 200, body)
        off = self.relay_for([m.url], extra="query = off")
        for method in ("GET", "POST"):
            st, _, _ = self.q(off, "CREATE DATABASE d", method=method)
            self.assertEqual(st, 404)

    def test_metrics_count_query_requests(self):
        m = self.mock(lambda req: (200, b'{"results":[{"statement_id":0}]}',
                                   {"Content-Type": "application/json"}, 0))
        port = self.relay_for([m.url])
        for _ in range(3):
            self.assertEqual(self.q(port, "SHOW DATABASES")[0], 200)
        self.assertEqual(self.q(port, "SHOW SHARDS")[0], 400)
        _, _, text = http_request(port, "GET", "/metrics")
        text = text.decode()
        self.assertRegex(text, r'influxdb_relay_http_requests_total\{relay="r1",'
                               r'endpoint="query",code="200"\} 3\b')
        self.assertRegex(text, r'influxdb_relay_http_requests_total\{relay="r1",'
                               r'endpoint="query",code="400"\} 1\b')


if __name__ == "__main__":
    unittest.main()
