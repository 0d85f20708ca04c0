"""How an output talks to its backend (influxdb-relay.conf(5), [http.NAME.output.BACKEND]):
content-encoding = gzip (batches compressed by the sender, bytes on the wire counted) and the
output's own credentials (username with password or password-file: HTTP Basic instead of
anything the client sent), against real influxd 1.6.7 (one with auth-enabled) and mock
backends; and the password never shown: not in logs at debug level, /metrics, /health or
--check-config output."""

import base64
import gzip
import json
import os
import signal
import threading
import urllib.parse
import unittest

import snappy  # python3-snappy (scripts/setup.sh)

import prom
from harness import (Influxd, RelayTestCase, Worker, free_port, http_request, run_relay,
                     wait_until)
from test_apis import PROM_HEADERS, PROM_SERIES, write_request

ADMIN, ADMIN_PW = "admin", "adm:in pw"  # a colon and a blank: Basic must carry them


class AuthInfluxd(Influxd):
    """influxd with [http] auth-enabled = true."""

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf_path) as f:
            conf = f.read()
        conf = conf.replace("[http]\n  enabled = true\n", "[http]\n  enabled = true\n"
                            "  auth-enabled = true\n")
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def query_as(self, q, db=None, user=ADMIN, pw=ADMIN_PW):
        params = {"q": q}
        if db:
            params["db"] = db
        if user is not None:
            params.update(u=user, p=pw)
        return http_request(self.http_port, "POST", "/query?" + urllib.parse.urlencode(params))

    def count_as_admin(self, db, measurement):
        st, _, b = self.query_as('SELECT count("v") FROM "%s"' % measurement, db=db)
        assert st == 200, (st, b)
        res = json.loads(b)["results"][0]
        return res["series"][0]["values"][0][1] if "series" in res else 0


def basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def lines(n, tag, start=0):
    return "".join("cpu,host=server%02d,region=eu-west,tag=%s usage_user=%d.5,usage_system=12.25,"
                   "usage_idle=%di %d\n" % (i % 20, tag, i, 90 - i % 7, 1700000000000000000 + i)
                   for i in range(start, start + n))


class GzipTest(RelayTestCase):

    def test_batches_land_in_influxd(self):
        i = self.influxd(db="db")
        conf, port = self.http_relay_config([i.url], output_extra="content-encoding = gzip")
        self.relay(conf, wait_ports=[port])
        total = 0
        for k, n in enumerate((1, 100, 5000)):
            st, _, b = http_request(port, "POST", "/write?db=db", lines(n, "v1-%d" % k))
            self.assertEqual(st, 204, b)
            total += n
        st, _, b = http_request(port, "POST", "/api/v2/write?bucket=db", lines(100, "v2"))
        self.assertEqual(st, 204, b)
        total += 100
        wait_until(lambda: i.count("db", "cpu", "usage_idle") == total, what="every point")
        s = prom.scrape(port)
        wire = s.backend("wire_bytes_total", "r1", "b1")
        delivered = s.backend("bytes_delivered_total", "r1", "b1")
        self.assertGreater(delivered, 0)
        self.assertLess(wire, delivered / 4)

    def test_backend_sees_gzip_that_inflates_to_the_forwarded_bytes(self):
        plain, gz = self.mock(), self.mock()
        conf, port = self.http_relay_config([plain.url, gz.url])
        # b1 identity, b2 gzip
        conf = conf.replace("location = %s\n" % gz.url,
                            "location = %s\ncontent-encoding = gzip\n" % gz.url)
        self.relay(conf, wait_ports=[port])
        for k, n in enumerate((1, 7, 100, 5000, 3)):
            st, _, b = http_request(port, "POST", "/write?db=db&precision=n",
                                    lines(n, "w%d" % k) + "unstamped v=%di\n" % k)
            self.assertEqual(st, 204, b)
        wait_until(lambda: plain.body().count(b"\n") == 5116 and gz.writes() and
                   sum(gzip.decompress(r["body"]).count(b"\n") for r in gz.writes()) == 5116,
                   what="every line at both")
        for r in gz.writes():
            h = r["headers"]
            self.assertEqual(h.get("content-encoding"), "gzip")
            self.assertEqual(h.get("transfer-encoding"), "chunked")
            self.assertNotIn("content-length", h)
            self.assertEqual(h.get("content-type"), "text/plain; charset=utf-8")
            self.assertEqual(r["raw_query"], "db=db&precision=n")
        for r in plain.writes():
            self.assertNotIn("content-encoding", r["headers"])
        # Byte for byte what the identity output got (stamps included: one time per write).
        inflated = b"".join(gzip.decompress(r["body"]) for r in gz.writes())
        self.assertEqual(inflated, b"".join(r["body"] for r in plain.writes()))
        s = prom.scrape(port)
        sent_gz = sum(len(r["body"]) for r in gz.writes())
        self.assertEqual(s.backend("wire_bytes_total", "r1", "b2"), sent_gz)
        self.assertEqual(s.backend("bytes_delivered_total", "r1", "b2"), len(inflated))
        self.assertEqual(s.backend("wire_bytes_total", "r1", "b1"), len(inflated))
        self.assertEqual(s.backend("bytes_delivered_total", "r1", "b1"), len(inflated))
        self.assertLess(sent_gz, len(inflated) / 4)

    def test_prometheus_bodies_are_never_gzipped(self):
        gz = self.mock()
        conf, port = self.http_relay_config([gz.url], output_extra="content-encoding = gzip")
        self.relay(conf, wait_ports=[port])
        body = snappy.compress(write_request(PROM_SERIES))
        st, _, b = http_request(port, "POST", "/api/v1/prom/write?db=p", body, PROM_HEADERS)
        self.assertEqual(st, 204, b)
        with gz.lock:
            (req,) = gz.requests
        self.assertEqual(req["body"], body)
        self.assertEqual(req["headers"].get("content-encoding"), "snappy")
        self.assertEqual(req["headers"].get("content-length"), str(len(body)))


class CredentialsTest(RelayTestCase):

    def auth_influxd(self):
        i = AuthInfluxd(self.tmp).start()
        self.influxds.append(i)
        # With no user yet, influxd lets anyone create the first admin.
        st, _, b = i.query_as("CREATE USER \"%s\" WITH PASSWORD '%s' WITH ALL PRIVILEGES"
                              % (ADMIN, ADMIN_PW), user=None)
        self.assertEqual(st, 200, b)
        st, _, b = i.query_as('CREATE DATABASE "db"')
        self.assertEqual(st, 200, b)
        return i

    def test_influxd_with_auth_takes_the_outputs_credentials(self):
        i = self.auth_influxd()
        pw_file = os.path.join(self.tmp, "influx.pw")
        with open(pw_file, "w") as f:
            f.write(ADMIN_PW + "\n")
        conf, port = self.http_relay_config(
            [i.url], output_extra="username = %s\npassword-file = %s" % (ADMIN, pw_file))
        self.relay(conf, wait_ports=[port])
        # Positive control: influxd refuses a write without credentials...
        st, _, b = i.write("db", "direct v=1i 1\n")
        self.assertEqual(st, 401, b)
        # ... and so does it through a relay whose output forwards the client's.
        conf2, port2 = self.http_relay_config([i.url], relay_name="fwd")
        self.relay(conf2, wait_ports=[port2], name="fwd.ini")
        st, _, b = http_request(port2, "POST", "/write?db=db", "m v=1i 1\n")
        self.assertEqual(st, 401, b)
        st, _, b = http_request(port2, "POST", "/write?db=db&u=%s&p=%s" % (
            ADMIN, urllib.parse.quote(ADMIN_PW)), "m v=1i 1\n")
        self.assertEqual(st, 204, b)  # the client's own, forwarded
        # The output with its own credentials: none, wrong ones, in every form a client uses.
        cases = [
            ("/write?db=db", {}),
            ("/write?db=db&u=mallory&p=wrong", {}),
            ("/write?db=db", {"Authorization": basic("mallory", "wrong")}),
            ("/write?db=db&u=mallory&p=wrong", {"Authorization": "Bearer not.a.jwt"}),
            ("/api/v2/write?bucket=db", {"Authorization": "Token mallory:wrong"}),
            ("/api/v2/write?bucket=db/autogen&precision=s", {"Authorization": "Token x"}),
        ]
        for k, (path, headers) in enumerate(cases):
            st, _, b = http_request(port, "POST", path, "m,case=%d v=%di %d\n" % (k, k, k + 10),
                                    headers)
            self.assertEqual(st, 204, (path, headers, b))
        wait_until(lambda: i.count_as_admin("db", "m") == len(cases) + 1, what="every point")

    def test_mock_sees_only_the_outputs_credentials(self):
        own, fwd = self.mock(), self.mock()
        conf, port = self.http_relay_config([own.url, fwd.url])
        conf = conf.replace("location = %s\n" % own.url,
                            "location = %s\nusername = relay\npassword = r3lay-pw\n" % own.url)
        self.relay(conf, wait_ports=[port])
        client_auth = basic("client", "client-pw")
        st, _, b = http_request(port, "POST", "/write?db=db&rp=r&u=client&p=client-pw&"
                                "precision=s&consistency=one", "m v=1i 1\n",
                                {"Authorization": client_auth})
        self.assertEqual(st, 204, b)
        st, _, b = http_request(port, "POST", "/api/v2/write?bucket=db&u=client&p=client-pw",
                                "m v=2i 2\n", {"Authorization": "Token client:client-pw"})
        self.assertEqual(st, 204, b)
        body = snappy.compress(write_request(PROM_SERIES))
        st, _, b = http_request(port, "POST", "/api/v1/prom/write?db=db&u=client&p=client-pw",
                                body, dict(PROM_HEADERS, Authorization=client_auth))
        self.assertEqual(st, 204, b)
        for m in (own, fwd):
            wait_until(lambda: len(m.requests) == 3, what="3 requests")
        with own.lock:
            got = [(r["path"], r["raw_query"], r["headers"].get("authorization"))
                   for r in own.requests]
        relay_auth = basic("relay", "r3lay-pw")
        self.assertEqual(got, [
            ("/write", "db=db&rp=r&precision=s&consistency=one", relay_auth),
            ("/write", "db=db", relay_auth),
            ("/api/v1/prom/write", "db=db", relay_auth),
        ])
        with fwd.lock:
            got = [(r["path"], r["raw_query"], r["headers"].get("authorization"))
                   for r in fwd.requests]
        self.assertEqual(got, [
            ("/write", "db=db&rp=r&precision=s&u=client&p=client-pw&consistency=one",
             client_auth),
            ("/write", "db=db&u=client&p=client-pw", client_auth),
            ("/api/v1/prom/write", "db=db&u=client&p=client-pw", client_auth),
        ])

    def test_query_reads_and_changes_carry_the_outputs_credentials(self):
        """/query: a read streamed from an output with credentials of its own and a change
        queued to every output both carry that output's Basic and never the client's u/p."""
        def answer(req):
            return 200, b'{"results":[{"statement_id":0}]}', {
                "Content-Type": "application/json"}, 0
        own, fwd = self.mock(answer), self.mock(answer)
        conf, port = self.http_relay_config([own.url, fwd.url])
        conf = conf.replace("location = %s\n" % own.url,
                            "location = %s\nusername = relay\npassword = r3lay-pw\n" % own.url)
        self.relay(conf, wait_ports=[port])
        client_auth = basic("client", "client-pw")
        st, _, b = http_request(port, "GET", "/query?q=SHOW+DATABASES&u=client&p=client-pw",
                                headers={"Authorization": client_auth})
        self.assertEqual(st, 200, b)
        st, _, b = http_request(port, "POST", "/query?u=client&p=client-pw",
                                "q=CREATE+DATABASE+x",
                                {"Authorization": client_auth,
                                 "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 200, b)
        wait_until(lambda: len(own.requests) == 2 and len(fwd.requests) == 1,
                   what="the read at the first output, the change at both")
        with own.lock:
            got = [(r["method"], r["path"], r["query"], r["headers"].get("authorization"))
                   for r in own.requests]
        relay_auth = basic("relay", "r3lay-pw")
        self.assertEqual(got, [("GET", "/query", {"q": ["SHOW DATABASES"]}, relay_auth),
                               ("POST", "/query", {}, relay_auth)])
        with fwd.lock:
            r = fwd.requests[0]
        self.assertEqual((r["path"], r["query"], r["headers"].get("authorization")),
                         ("/query", {"u": ["client"], "p": ["client-pw"]}, client_auth))

    def test_batches_keep_clients_credentials_apart(self):
        """An output without credentials of its own forwards each client's: writes of different
        clients are never merged into one request (their Authorization differs)."""
        release = threading.Event()
        first = threading.Event()

        def responder(req):
            if not first.is_set():
                first.set()
                release.wait(30)
            return 204, b"", {}, 0

        m = self.mock(responder)
        conf, port = self.http_relay_config([m.url], output_extra="max-batch-kb = 64")
        self.relay(conf, wait_ports=[port])
        who = ["A", "A", "A", "B", "B", "A"]
        threads = []

        def write(k):
            st, _, b = http_request(port, "POST", "/write?db=db", "m,who=%s v=%di %d\n"
                                    % (who[k], k, k), {"Authorization": basic(who[k], "x")})
            assert st == 204, (st, b)

        def queued():
            return prom.scrape(port).backend("queue_writes", "r1", "b1")

        for k in range(len(who)):
            t = Worker(write, k)
            t.start()
            threads.append(t)
            if k == 0:
                wait_until(first.is_set, what="the first write at the backend")
            # Each write queued before the next one is sent: a known order.
            wait_until(lambda: queued() == k + 1, what="%d writes held" % (k + 1))
        release.set()
        for t in threads:
            t.join(30)  # re-raises a failed write
        wait_until(lambda: len(m.writes()) == 4, what="4 requests")
        got = [(r["headers"]["authorization"], r["body"].count(b"\n")) for r in m.writes()]
        self.assertEqual(got, [(basic("A", "x"), 1), (basic("A", "x"), 2),
                               (basic("B", "x"), 2), (basic("A", "x"), 1)])
        for r in m.writes():
            who_in_body = {line.split(b"who=")[1][:1] for line in r["body"].splitlines()}
            self.assertEqual(len(who_in_body), 1)


class PasswordNeverShownTest(RelayTestCase):
    """At log-level debug, through failures (a backend down, a 401, a 5xx), every write API,
    /metrics, /health, SIGHUP and the shutdown, and in --check-config's output for valid and
    invalid configs: neither password, nor the Basic value made of it, appears anywhere."""

    PW_INLINE = "Inline-S3cret-pw"
    PW_FILE = "File-S3cret-pw"

    def secrets(self):
        out = [self.PW_INLINE, self.PW_FILE]
        for user in ("relay", "other"):
            for pw in (self.PW_INLINE, self.PW_FILE):
                out.append(basic(user, pw).split(" ", 1)[1])
                out.append(base64.b64encode(("%s:%s" % (user, pw)).encode())[:-2].decode())
        return out

    def assert_no_secret(self, text, where):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for s in self.secrets():
            self.assertNotIn(s, text, "%s shows a password (%r)" % (where, s))

    def config(self, port, pw_file, m401, m500, down_port, extra_output=""):
        return (
            "[relay]\nlog-level = debug\nshutdown-timeout = 1s\n\n"
            "[http.r1]\nbind-addr = 127.0.0.1:%d\nwrite-timeout = 3s\n\n"
            "[http.r1.output.rejects]\nlocation = %s\nusername = relay\npassword = %s\n"
            "buffer-size-mb = 1\n\n"
            "[http.r1.output.fails]\nlocation = %s\nusername = relay\npassword-file = %s\n"
            "timeout = 1s\n\n"
            "[http.r1.output.down]\nlocation = http://127.0.0.1:%d/write\nusername = other\n"
            "password-file = %s\nbuffer-size-mb = 1\ntimeout = 1s\nmax-delay-interval = 200ms\n"
            "content-encoding = gzip\n%s"
            % (port, m401.url, self.PW_INLINE, m500.url, pw_file, down_port, pw_file,
               extra_output))

    def test_password_never_shown(self):
        pw_file = os.path.join(self.tmp, "pw")
        with open(pw_file, "w") as f:
            f.write(self.PW_FILE + "\n")
        m401 = self.mock(lambda req: (401, '{"error":"authorization failed"}',
                                      {"Content-Type": "application/json"}, 0))
        m500 = self.mock(lambda req: (500, '{"error":"engine: cache full"}',
                                      {"Content-Type": "application/json"}, 0))
        port, down_port = free_port(), free_port()
        conf = self.config(port, pw_file, m401, m500, down_port)
        r = self.relay(conf, wait_ports=[port])
        for path, headers, body in (
                ("/write?db=db&u=client&p=client-pw", {}, "m v=1i 1\n"),
                ("/api/v2/write?bucket=db", {"Authorization": "Token client:client-pw"},
                 "m v=2i 2\n"),
                ("/api/v1/prom/write?db=db", PROM_HEADERS,
                 snappy.compress(write_request(PROM_SERIES))),
                ("/write?db=db", {}, "bad line\n")):
            st, h, b = http_request(port, "POST", path, body, headers)
            self.assertIn(st, (400, 401, 500, 503))
            self.assert_no_secret(b, "an answer")
            self.assert_no_secret(json.dumps(h), "an answer's headers")
        # The failures are logged (positive controls for the grep below).
        wait_until(lambda: "write rejected by backend" in r.log(), what="the rejected write")
        wait_until(lambda: '5xx response for relay "r1" backend "fails": 500' in r.log(),
                   what="the 5xx line")
        wait_until(lambda: 'Problem posting to relay "r1" backend "down"' in r.log(),
                   what="the down backend")
        self.assertIn("write answered status=", r.log())  # debug lines are on
        st, _, metrics = http_request(port, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertIn(b'influxdb_relay_backend_wire_bytes_total{relay="r1",backend="down"}',
                      metrics)
        self.assert_no_secret(metrics, "/metrics")
        st, _, health = http_request(port, "GET", "/health")
        self.assertIn(b'"name":"down"', health)
        self.assert_no_secret(health, "/health")
        os.kill(r.proc.pid, signal.SIGHUP)
        wait_until(lambda: "SIGHUP" in r.log() or "reload" in r.log(), what="SIGHUP handled")
        self.assertEqual(r.terminate(), 0)
        log = r.log()
        self.assertIn("shutdown", log)
        self.assert_no_secret(log, "the log")
        self.check_config_outputs(port, pw_file, m401, m500, down_port)

    def check_config_outputs(self, port, pw_file, m401, m500, down_port):
        def check(text, name, want_rc):
            path = os.path.join(self.tmp, name)
            with open(path, "w") as f:
                f.write(text)
            c = run_relay(["-config", path, "--check-config"])
            self.assertEqual(c.returncode, want_rc, c.stderr)
            self.assert_no_secret(c.stdout + c.stderr, "--check-config of " + name)
            return c.stderr.decode()

        valid = self.config(port, pw_file, m401, m500, down_port)
        check(valid, "valid.ini", 0)
        # Both password and password-file, a syntax error on a password line, a password
        # "file" that is a directory, the password in a location's userinfo: all refused,
        # the password in none of the messages.
        bad = self.config(port, pw_file, m401, m500, down_port,
                          "password = %s\npassword %s\npassword: %s\n\n"
                          "[http.r1.output.dir]\nlocation = http://u:%s@127.0.0.1:1/write\n"
                          "username = x\npassword-file = %s\n"
                          % (self.PW_INLINE, self.PW_INLINE, self.PW_FILE, self.PW_FILE,
                             self.tmp))
        err = check(bad, "bad.ini", 1)
        self.assertIn("password and password-file are both set", err)
        self.assertIn("got password... (the rest is not shown)", err)
        self.assertIn("userinfo is not allowed", err)
        self.assertIn("is not a regular file", err)


if __name__ == "__main__":
    unittest.main()
