"""Reload on SIGHUP (docs/operations.md "Reload"): a new configuration applies without a restart
and without losing a write; a bad one changes nothing."""

import http.client
import os
import re
import signal
import socket
import ssl
import threading
import time
import unittest

from harness import (RelayTestCase, Worker, bound_sockets, free_port, http_request, make_leaf,
                     wait_until)
import prom

RELOADED = "configuration reloaded"
FAILED = "configuration reload failed"


def reload(relay, config, outcome=RELOADED, timeout=20, port=None):
    """Writes config as the relay's file, sends SIGHUP and waits for the reload's outcome line
    (one more than before) in the log -- or, with port (a log level that hides the line), for
    the success timestamp of /metrics to move. Returns the log text written by this reload."""
    before = relay.log()
    t0 = port and sample(port, "influxdb_relay_config_last_reload_success_timestamp_seconds")
    with open(relay.conf_path, "w") as f:
        f.write(config)
    relay.config = config
    os.kill(relay.proc.pid, signal.SIGHUP)
    n = before.count(outcome)
    if port:
        wait_until(lambda: sample(port, "influxdb_relay_config_last_reload_success_timestamp_"
                                  "seconds") > t0, timeout=timeout, what="a reload")
    else:
        wait_until(lambda: relay._alive() and relay.log().count(outcome) > n, timeout=timeout,
                   what="log line %r after SIGHUP" % outcome)
    return relay.log()[len(before):]


def write(port, body, db="db", conn=None, timeout=30):
    return http_request(port, "POST", "/write?db=" + db, body=body, conn=conn, timeout=timeout)


def sample(port, name, **labels):
    return prom.scrape(port).get(name, **labels)


def lines_of(mock):
    """The lines a mock backend stored (its 2xx answers), in arrival order."""
    with mock.lock:
        reqs = [r for r in mock.requests if r["path"] == "/write" and r.get("stored", True)]
    return [l for r in reqs for l in r["body"].decode().split("\n") if l]


class ReloadTest(RelayTestCase):

    def tearDown(self):
        # Every relay ends with an orderly shutdown after its reloads: exit status 0 (under the
        # sanitizers: no leak, no error at exit).
        ended = [(r, r.terminate()) for r in self.relays if r.proc and r.proc.poll() is None]
        bad = ["exit %s:\n%s" % (c, r.log()[-6000:]) for r, c in ended if c != 0]
        super().tearDown()
        self.assertEqual(bad, [], "a relay did not exit cleanly")

    # ------------------------------------------------------------------ failures change nothing

    def test_invalid_file_logs_every_problem_and_changes_nothing(self):
        m = self.mock()
        cfg, port = self.http_relay_config([m.url])
        r = self.relay(cfg, wait_ports=[port])
        self.assertEqual(sample(port, "influxdb_relay_config_last_reload_successful"), 1)
        t0 = sample(port, "influxdb_relay_config_last_reload_success_timestamp_seconds")
        bad = cfg + "[http.r1.output.b2]\nlocation = ftp://x/write\ntimeout = 10x\n[bogus]\n"
        text = reload(r, bad, outcome=FAILED)
        path = re.escape(r.conf_path)
        lines = [l for l in text.splitlines() if re.search(path + r":\d+: ", l)]
        # Every problem, each on its own error line, as --check-config prints them.
        self.assertEqual(len(lines), 3, text)
        for l in lines:
            self.assertIn("error", l)
        self.assertTrue(any("location" in l for l in lines), lines)
        self.assertTrue(any("timeout" in l for l in lines), lines)
        self.assertTrue(any("bogus" in l for l in lines), lines)
        self.assertEqual(sample(port, "influxdb_relay_config_last_reload_successful"), 0)
        # Nothing changed: the same single backend gets the next write.
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)
        self.assertEqual(lines_of(m), ["m v=1 1"])
        self.assertNotIn("b2", prom.scrape(port).text)
        # A valid file then applies: the gauge is 1 again and the timestamp moves.
        m2 = self.mock()
        good = cfg + "[http.r1.output.b2]\nlocation = %s\n" % m2.url
        reload(r, good)
        self.assertEqual(sample(port, "influxdb_relay_config_last_reload_successful"), 1)
        self.assertGreater(
            sample(port, "influxdb_relay_config_last_reload_success_timestamp_seconds"), t0)
        self.assertEqual(write(port, "m v=2 2\n")[0], 204)
        wait_until(lambda: lines_of(m2) == ["m v=2 2"], what="the added output's write")

    def test_port_in_use_fails_the_reload_and_changes_nothing(self):
        m = self.mock()
        cfg, port = self.http_relay_config([m.url])
        r = self.relay(cfg, wait_ports=[port])
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        other = "[http.r2]\nbind-addr = 127.0.0.1:%d\n[http.r2.output.b1]\nlocation = %s\n" % (
            busy.getsockname()[1], m.url)
        text = reload(r, cfg + other, outcome=FAILED)
        self.assertRegex(text, re.escape(r.conf_path) + r":\d+: \[http\.r2\] cannot listen on")
        self.assertEqual(sample(port, "influxdb_relay_config_last_reload_successful"), 0)
        self.assertNotIn('relay="r2"', prom.scrape(port).text)
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)

    # ------------------------------------------------------------------ queued writes survive

    def _down_mock(self):
        """A mock answering 503 to writes while self.down is set (then 204); a write it answers
        503 is marked not stored."""
        self.down = True

        def respond(req):
            if self.down and req["path"] == "/write":
                req["stored"] = False
                return 503, "down", {}, 0
            return 204, b"", {}, 0
        return self.mock(respond)

    def _two_outputs(self, up_url, down_url, extra="", b2_extra=""):
        port = free_port()
        cfg = ("[relay]\nshutdown-timeout = 2s\n"
               "[http.r1]\nbind-addr = 127.0.0.1:%d\n%s"
               "[http.r1.output.b1]\nlocation = %s\n"
               "[http.r1.output.b2]\nlocation = %s\nbuffer-size-mb = 8\n"
               "max-delay-interval = 200ms\ntimeout = 2s\n%s" % (port, extra, up_url, down_url,
                                                                  b2_extra))
        return cfg, port

    def _queue_for_down(self, port, n):
        """n writes answered 204 (b1) while b2 holds them; returns their lines."""
        sent = ["m,k=%d v=%d %d" % (i, i, 1000 + i) for i in range(n)]
        for line in sent:
            self.assertEqual(write(port, line + "\n")[0], 204)
        wait_until(lambda: prom.scrape(port).backend("queue_writes", "r1", "b2") == n,
                   what="%d writes queued for b2" % n)
        return sent

    def test_queued_writes_of_a_down_backend_survive_a_reload(self):
        up = self.mock()
        dn = self._down_mock()
        cfg, port = self._two_outputs(up.url, dn.url)
        r = self.relay(cfg, wait_ports=[port])
        sent = self._queue_for_down(port, 30)
        # b2's settings change (its queue stays), and the relay's too.
        cfg2, _ = self._two_outputs(up.url, dn.url, extra="write-timeout = 5s\n",
                                    b2_extra="max-batch-kb = 1\n")
        cfg2 = cfg2.replace("bind-addr = 127.0.0.1:%d" % free_port(), "")
        cfg2 = re.sub(r"bind-addr = 127\.0\.0\.1:\d+", "bind-addr = 127.0.0.1:%d" % port, cfg2)
        text = reload(r, cfg2)
        self.assertIn("output changed by a reload backend=b2 changed=max-batch-kb", text)
        self.assertEqual(prom.scrape(port).backend("queue_writes", "r1", "b2"), 30)
        more = ["m,k=late v=1 5000"]
        self.assertEqual(write(port, more[-1] + "\n")[0], 204)
        self.down = False
        want = sent + more
        wait_until(lambda: lines_of(dn) == want, timeout=30,
                   what="every queued write at b2, in order")
        self.assertEqual(lines_of(up), want)

    def test_changed_location_receives_the_queued_writes(self):
        up = self.mock()
        dn = self._down_mock()
        cfg, port = self._two_outputs(up.url, dn.url)
        r = self.relay(cfg, wait_ports=[port])
        sent = self._queue_for_down(port, 20)
        new = self.mock()
        text = reload(r, cfg.replace(dn.url, new.url))
        self.assertIn("backend=b2 changed=location", text)
        wait_until(lambda: lines_of(new) == sent, timeout=30,
                   what="the queued writes at the new location, in order")
        wait_until(lambda: prom.scrape(port).state("r1", "b2") == "up", what="b2 up")
        self.assertEqual(write(port, "m v=9 9\n")[0], 204)
        wait_until(lambda: lines_of(new) == sent + ["m v=9 9"], what="the next write")
        # The old location heard nothing more after the reload.
        self.assertEqual(lines_of(dn), [])

    def test_added_output_appears_at_zero_and_removed_one_drains_then_goes(self):
        up = self.mock()
        dn = self._down_mock()
        cfg, port = self._two_outputs(up.url, dn.url)
        r = self.relay(cfg, wait_ports=[port])
        self._queue_for_down(port, 5)
        added = self.mock()
        only_b1 = cfg.split("[http.r1.output.b2]")[0]
        cfg2 = only_b1 + "[http.r1.output.b3]\nlocation = %s\n" % added.url
        t_reload = time.monotonic()
        text = reload(r, cfg2)
        self.assertIn("output removed by a reload", text)
        self.assertIn("output added by a reload backend=b3", text)
        s = prom.scrape(port)
        # The added output has its series from the start, at 0.
        self.assertEqual(s.backend("batches_sent_total", "r1", "b3"), 0)
        self.assertEqual(s.backend("queue_writes", "r1", "b3"), 0)
        # New writes go to b1 and b3 only.
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)
        wait_until(lambda: lines_of(added) == ["m v=1 1"], what="the added output's write")
        # The removed one keeps retrying (still down) until shutdown-timeout (2s), then drops.
        wait_until(lambda: "r1/b2: output removed by a reload: shutdown-timeout passed, dropped "
                   "writes=5" in r.log(), timeout=15, what="the removed output's drop")
        self.assertGreaterEqual(time.monotonic() - t_reload, 1.5)
        # The next scrape shows its final counters once, the one after has no b2 any more.
        s = wait_until(lambda: (lambda x: x if x.has("influxdb_relay_backend_dropped_writes_total",
                                                      relay="r1", backend="b2",
                                                      reason="removed") else None)(
            prom.scrape(port)), what="b2's final scrape")
        self.assertEqual(s.dropped("r1", "b2", "removed"), 5)
        s = prom.scrape(port)
        self.assertFalse([l for l, _ in s.series("influxdb_relay_backend_state")
                          if l["backend"] == "b2"], s.text)
        self.assertEqual(lines_of(dn), [])

    def test_output_removed_and_added_again_while_the_old_one_drains(self):
        up = self.mock()
        dn = self._down_mock()
        cfg, port = self._two_outputs(up.url, dn.url)
        r = self.relay(cfg, wait_ports=[port])
        self._queue_for_down(port, 2)
        only_b1 = cfg.split("[http.r1.output.b2]")[0]
        reload(r, only_b1)
        fresh = self.mock()
        reload(r, only_b1 + "[http.r1.output.b2]\nlocation = %s\n" % fresh.url)
        # The old b2 still drains; /metrics lists one b2 only (the new one: its queue is empty).
        s = prom.scrape(port)
        self.assertEqual(s.backend("queue_writes", "r1", "b2"), 0)
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)
        wait_until(lambda: lines_of(fresh) == ["m v=1 1"], what="the new b2's write")
        wait_until(lambda: "r1/b2: output removed by a reload: shutdown-timeout passed, dropped "
                   "writes=2" in r.log(), timeout=15, what="the old b2's drop")
        s = prom.scrape(port)  # still one b2, the new one
        self.assertEqual(s.backend("batches_sent_total", "r1", "b2"), 1)
        self.assertEqual(s.dropped("r1", "b2", "removed"), 0)

    def test_removed_output_that_drains_in_time_delivers_everything(self):
        up = self.mock()
        dn = self._down_mock()
        cfg, port = self._two_outputs(up.url, dn.url)
        r = self.relay(cfg, wait_ports=[port])
        sent = self._queue_for_down(port, 10)
        only_b1 = cfg.split("[http.r1.output.b2]")[0].replace("shutdown-timeout = 2s",
                                                             "shutdown-timeout = 30s")
        reload(r, only_b1)
        self.down = False
        wait_until(lambda: lines_of(dn) == sent, timeout=20, what="the removed output drained")
        wait_until(lambda: "r1/b2: output removed by a reload: drained" in r.log(),
                   what="the drained line")

    def _spooled(self, up_url, down_url, b2_extra="spool-size-mb = 16\n"):
        spool = os.path.join(self.tmp, "spool")
        os.makedirs(spool, exist_ok=True)
        cfg, port = self._two_outputs(up_url, down_url, b2_extra=b2_extra)
        return cfg.replace("[relay]\n", "[relay]\nspool-dir = %s\n" % spool), port, spool

    def test_spooled_output_keeps_its_spool_across_reloads(self):
        """A spooled output whose location changes keeps its spool (the writes go to the new
        location); its spool keys need a restart; removed, it leaves its spool on disk, and
        configured again it delivers what the spool held."""
        up = self.mock()
        dn = self._down_mock()
        cfg, port, spool = self._spooled(up.url, dn.url)
        r = self.relay(cfg, wait_ports=[port])
        sent = self._queue_for_down(port, 12)
        self.assertEqual(prom.scrape(port).backend("spool_writes", "r1", "b2"), 12)
        # The location changes (to another backend that is down) and so does spool-size-mb.
        dn2 = self._down_mock()
        cfg2 = cfg.replace(dn.url, dn2.url).replace("spool-size-mb = 16", "spool-size-mb = 32")
        text = reload(r, cfg2)
        self.assertIn("needs a restart: spool-size-mb, spool-max-age and spool-sync of "
                      "backend=b2", text)
        s = prom.scrape(port)
        self.assertEqual(s.backend("spool_writes", "r1", "b2"), 12)
        self.assertEqual(s.get("influxdb_relay_backend_spool_capacity_bytes", relay="r1",
                               backend="b2"), 16 << 20)
        # Removed while down: after shutdown-timeout (2s) its spool stays on disk, named.
        only_b1 = cfg2.split("[http.r1.output.b2]")[0]
        reload(r, only_b1)
        wait_until(lambda: "r1/b2: output removed by a reload: its spool is left on disk"
                   in r.log(), timeout=15, what="the removed output's spool line")
        self.assertIn("dir=%s/r1/b2" % spool, r.log())
        self.assertTrue(os.listdir(os.path.join(spool, "r1", "b2")))
        # Added back while this process still holds the old spool: the reload fails, naming
        # the lock, and changes nothing; a restart delivers what the spool held, in order,
        # then the new writes.
        self.down = False
        back = self.mock()
        cfg3 = only_b1 + "[http.r1.output.b2]\nlocation = %s\nspool-size-mb = 16\n" % back.url
        text = reload(r, cfg3, outcome=FAILED)
        self.assertIn("spool directory %s/r1/b2 is in use" % spool, text)
        self.assertEqual(r.terminate(), 0)
        r2 = self.relay(cfg3, wait_ports=[port], name="relay2.ini")
        self.assertIn("spooled_writes=12", r2.log())
        self.assertEqual(write(port, "m v=9 9\n")[0], 204)
        wait_until(lambda: lines_of(back) == sent + ["m v=9 9"], timeout=30,
                   what="the spooled writes then the new one at b2")
        self.assertEqual(lines_of(dn2), [])

    def test_password_file_is_read_again_at_each_reload(self):
        """An output's password-file is read again by a reload: the next request carries the new
        password (HTTP Basic), and the password appears in no log line."""
        import base64
        m = self.mock()
        pw = os.path.join(self.tmp, "b1.password")
        with open(pw, "w") as f:
            f.write("first-s3cret\n")
        port = free_port()
        cfg = ("[relay]\nlog-level = debug\n[http.r1]\nbind-addr = 127.0.0.1:%d\n"
               "[http.r1.output.b1]\nlocation = %s\nusername = relay\npassword-file = %s\n"
               % (port, m.url, pw))
        r = self.relay(cfg, wait_ports=[port])

        def basic():
            with m.lock:
                h = [q["headers"].get("authorization") for q in m.requests
                     if q["path"] == "/write"]
            return h[-1] if h else None
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)
        wait_until(lambda: basic() is not None, what="the first write at b1")
        self.assertEqual(basic(), "Basic " + base64.b64encode(b"relay:first-s3cret").decode())
        with open(pw, "w") as f:
            f.write("second-s3cret\n")
        text = reload(r, cfg)
        self.assertIn("output changed by a reload backend=b1 changed=password", text)
        n = len(m.requests)
        self.assertEqual(write(port, "m v=2 2\n")[0], 204)
        wait_until(lambda: len(m.requests) > n, what="the second write at b1")
        self.assertEqual(basic(), "Basic " + base64.b64encode(b"relay:second-s3cret").decode())
        self.assertNotIn("s3cret", r.log())

    # ------------------------------------------------------------------ listeners

    def _relay_conf(self, port, url, relay_extra="", head=""):
        return ("%s[http.r1]\nbind-addr = 127.0.0.1:%d\n%s"
                "[http.r1.output.b1]\nlocation = %s\n" % (head, port, relay_extra, url))

    def test_changed_bind_address_moves_the_listener(self):
        m = self.mock()
        p1, p2 = free_port(), free_port()
        r = self.relay(self._relay_conf(p1, m.url), wait_ports=[p1])
        reload(r, self._relay_conf(p2, m.url))
        self.assertEqual(write(p2, "m v=2 2\n")[0], 204)
        # The old address is closed at once: a new connection there is refused.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p1), timeout=5).close()
        self.assertEqual(lines_of(m), ["m v=2 2"])
        self.assertEqual(sample(p2, "influxdb_relay_http_requests_total", relay="r1",
                                endpoint="write", code="204"), 1)

    def test_log_level_and_format_apply_at_once(self):
        m = self.mock()
        port = free_port()
        r = self.relay(self._relay_conf(port, m.url), wait_ports=[port])
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)
        self.assertNotIn("write answered", r.log())
        reload(r, self._relay_conf(port, m.url, head="[relay]\nlog-level = debug\n"))
        self.assertEqual(write(port, "m v=2 2\n")[0], 204)
        wait_until(lambda: "r1: write answered status=204" in r.log(), what="a debug line")
        n = len(r.log())
        reload(r, self._relay_conf(port, m.url,
                                   head="[relay]\nlog-level = debug\nlog-format = json\n"))
        self.assertEqual(write(port, "m v=3 3\n")[0], 204)
        wait_until(lambda: '"message":"write answered"' in r.log()[n:], what="a JSON debug line")
        n = len(r.log())
        reload(r, self._relay_conf(port, m.url, head="[relay]\nlog-level = error\n"), port=port)
        self.assertEqual(write(port, "m v=4 4\n")[0], 204)
        # A positive control first: an error line is still written at this level.
        reload(r, "[http.r1]\n", outcome=FAILED)
        self.assertNotIn("write answered", r.log()[n:].split(FAILED)[-1])
        self.assertNotIn(" info ", r.log()[n:])

    def _pings(self, port):
        return prom.scrape(port).requests("r1", "ping", 204)

    def _hammer(self, port, stop, result):
        """Opens a new connection for each /ping until stop is set; records failures."""
        ok = 0
        while not stop.is_set():
            try:
                st = http_request(port, "GET", "/ping", timeout=10)[0]
                if st != 204:
                    result.append("status %d" % st)
                ok += 1
            except OSError as e:
                result.append(repr(e))
        return ok

    def test_workers_change_hands_the_socket_over_without_a_refused_connection(self):
        m = self.mock()
        port = free_port()
        r = self.relay(self._relay_conf(port, m.url, "workers = 2\n"), wait_ports=[port])
        threads = len(os.listdir("/proc/%d/task" % r.proc.pid))
        stop, errors = threading.Event(), []
        w = Worker(self._hammer, port, stop, errors)
        w.start()
        try:
            wait_until(lambda: self._pings(port) > 20, what="pings before")
            for workers in (3, 2, 4):
                text = reload(r, self._relay_conf(port, m.url, "workers = %d\n" % workers))
                self.assertIn("server restarted with the new settings", text)
                self.assertIn("workers=%d" % workers, text)
                before = self._pings(port)
                wait_until(lambda: self._pings(port) > before + 20, what="pings after")
        finally:
            stop.set()
        self.assertGreater(w.join(), 60)
        self.assertEqual(errors, [])
        # The old daemons stop once their connections are gone.
        wait_until(lambda: r.log().count("previous server stopped after a reload") == 3,
                   what="old servers stopped")
        # 4 workers now instead of 2, the old pools are gone; the retire thread that stopped them
        # started with the first reload that needed it.
        self.assertEqual(len(os.listdir("/proc/%d/task" % r.proc.pid)), threads + 2 + 1)
        self.assertEqual(write(port, "m v=1 1\n")[0], 204)

    def test_max_connections_applies_at_once(self):
        m = self.mock()
        port = free_port()
        r = self.relay(self._relay_conf(port, m.url, "max-connections = 2\n"), wait_ports=[port])
        wait_until(lambda: sample(port, "influxdb_relay_http_connections", relay="r1") <= 1,
                   what="only the scrape's connection")
        held = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(2)]
        for c in held:
            self.assertEqual(http_request(port, "GET", "/ping", conn=c)[0], 204)
        extra = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with self.assertRaises((OSError, http.client.HTTPException)):
            http_request(port, "GET", "/ping", conn=extra)
        extra.close()
        text = reload(r, self._relay_conf(port, m.url, "max-connections = 4\n"))
        self.assertNotIn("server restarted", text)  # no new daemon for this one
        third = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.assertEqual(http_request(port, "GET", "/ping", conn=third)[0], 204)
        s = prom.scrape(port)  # a fourth connection
        self.assertEqual(s.get("influxdb_relay_http_connections", relay="r1"), 4)
        self.assertGreaterEqual(s.get("influxdb_relay_http_connections_refused_total",
                                      relay="r1"), 1)
        for c in held + [third]:
            self.assertEqual(http_request(port, "GET", "/ping", conn=c)[0], 204)
            c.close()

    def test_certificate_swapped_at_the_same_path_applies(self):
        a = make_leaf(self.tmp, "a")
        b = make_leaf(self.tmp, "b")
        pem = os.path.join(self.tmp, "relay.pem")

        def install(pair):
            with open(pem, "w") as f:
                for part in pair:
                    with open(part) as g:
                        f.write(g.read())
        install(a)
        m = self.mock()
        port = free_port()
        cfg = self._relay_conf(port, m.url, "ssl-combined-pem = %s\n" % pem)
        r = self.relay(cfg, wait_ports=[port])
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        def served_cert():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw) as tls:
                    return tls.getpeercert(binary_form=True)

        def der(path):
            with open(path) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(served_cert(), der(a[0]))
        kept = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        self.assertEqual(http_request(port, "POST", "/write?db=db", "m v=1 1\n", conn=kept)[0],
                         204)
        install(b)
        text = reload(r, cfg)  # the same file name, new content
        self.assertIn("server restarted with the new settings", text)
        self.assertEqual(served_cert(), der(b[0]))
        # The connection opened before keeps working until its answer closes it cleanly.
        st, headers, _ = http_request(port, "POST", "/write?db=db", "m v=2 2\n", conn=kept)
        self.assertEqual(st, 204)
        self.assertEqual(headers.get("connection", "").lower(), "close")
        kept.close()
        wait_until(lambda: "previous server stopped after a reload" in r.log(),
                   what="the old server stopped")
        self.assertEqual(lines_of(m), ["m v=1 1", "m v=2 2"])

    def test_twenty_reloads_while_clients_write_on_keepalive_connections(self):
        # b2 answers after 20 ms: writes wait for it, suspended, while generations and
        # daemons change under them.
        m1, m2 = self.mock(), self.mock(lambda req: (204, b"", {}, 0.02))
        port = free_port()

        def conf(i):
            # Every reload changes a per-request setting; every third one a daemon setting too.
            return ("[http.r1]\nbind-addr = 127.0.0.1:%d\nwrite-timeout = %ds\nworkers = %d\n"
                    "[http.r1.output.b1]\nlocation = %s\n[http.r1.output.b2]\nlocation = %s\n"
                    "timeout = %ds\n" % (port, 5 + i % 2, 2 + (i // 3) % 2, m1.url, m2.url,
                                          3 + i % 2))
        r = self.relay(conf(0), wait_ports=[port])
        stop = threading.Event()
        answered = [0]  # writes answered 204 so far, all clients (+= under the GIL)

        def client(k):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            sent = []
            while not stop.is_set() or len(sent) < 20:
                line = "m,c=%d v=%d %d" % (k, len(sent), 1000 + len(sent))
                st, _, body = http_request(port, "POST", "/write?db=db", line + "\n", conn=conn)
                if st != 204:
                    raise AssertionError("client %d: %d %r" % (k, st, body))
                sent.append(line)
                answered[0] += 1
            conn.close()
            return sent
        workers = [Worker(client, k) for k in range(4)]
        for w in workers:
            w.start()
        for i in range(1, 21):
            # Each reload happens while the clients write: one more answer since the last one.
            seen = answered[0]
            wait_until(lambda: answered[0] > seen or any(w.exc for w in workers),
                       what="a write answered before reload %d" % i)
            for w in workers:
                if w.exc is not None:
                    raise w.exc  # a client's error, as it saw it
            reload(r, conf(i))
        stop.set()
        sent = sorted(l for w in workers for l in w.join())
        self.assertGreaterEqual(len(sent), 80)
        wait_until(lambda: sorted(lines_of(m1)) == sent and sorted(lines_of(m2)) == sent,
                   timeout=30, what="every write at both backends")

    def test_removed_relay_answers_what_it_holds(self):
        m1 = self.mock()
        got = threading.Event()

        def slow(req):
            got.set()
            return 204, b"", {}, 1.0
        m2 = self.mock(slow)
        p1, p2 = free_port(), free_port()
        r1 = "[http.r1]\nbind-addr = 127.0.0.1:%d\n[http.r1.output.b1]\nlocation = %s\n" % (
            p1, m1.url)
        r2 = "[http.r2]\nbind-addr = 127.0.0.1:%d\n[http.r2.output.b1]\nlocation = %s\n" % (
            p2, m2.url)
        r = self.relay(r1 + r2, wait_ports=[p1, p2])
        w = Worker(write, p2, "m v=1 1\n")
        w.start()
        self.assertTrue(got.wait(10))  # the write is at r2's backend, its client waiting
        text = reload(r, r1)
        self.assertIn("r2: relay removed by a reload", text)
        self.assertEqual(w.join()[0], 204)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p2), timeout=5).close()
        self.assertEqual(write(p1, "m v=2 2\n")[0], 204)
        # Once stopped, one scrape still shows r2 with its final counters, the next one not.
        s = wait_until(lambda: (lambda x: x if x.requests("r2", "write", 204) == 1 and
                                "relay=\"r2\"" in x.text else None)(prom.scrape(p1)),
                       what="r2's final scrape")
        wait_until(lambda: 'relay="r2"' not in prom.scrape(p1).text, what="r2 gone")
        self.assertEqual(lines_of(m2), ["m v=1 1"])

    def test_shutdown_after_a_removal_stays_within_shutdown_timeout(self):
        up = self.mock()
        dn = self._down_mock()
        cfg, port = self._two_outputs(up.url, dn.url)
        cfg = cfg.replace("shutdown-timeout = 2s", "shutdown-timeout = 3s")
        r = self.relay(cfg, wait_ports=[port])
        self._queue_for_down(port, 3)
        reload(r, cfg.split("[http.r1.output.b2]")[0])
        t0 = time.monotonic()
        os.kill(r.proc.pid, signal.SIGTERM)
        self.assertEqual(r.proc.wait(timeout=30), 0)
        self.assertLess(time.monotonic() - t0, 3 + 2)
        self.assertIn("r1/b2: output removed by a reload: shutdown-timeout passed, dropped "
                      "writes=3", r.log())

    # ------------------------------------------------------------------ UDP

    def test_udp_reload_swaps_outputs_and_precision_then_rebinds(self):
        o1, o2 = self.udp_socket(timeout=10), self.udp_socket(timeout=10)
        p1, p2, hp = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), free_port()
        m = self.mock()

        def conf(bind, prec, outs):
            text = self._relay_conf(hp, m.url) + "[udp.u1]\nbind-addr = 127.0.0.1:%d\n" \
                   "precision = %s\n" % (bind, prec)
            for name, sock in outs:
                text += "[udp.u1.output.%s]\nlocation = 127.0.0.1:%d\n" % (
                    name, sock.getsockname()[1])
            return text
        r = self.relay(conf(p1, "s", [("o1", o1)]), wait_ports=[hp])
        sender = self.udp_socket()
        sender.sendto(b"m v=1\n", ("127.0.0.1", p1))
        got = o1.recv(2048).decode()
        self.assertRegex(got, r"^m v=1 \d{10}\n$")
        reload(r, conf(p1, "ms", [("o1", o1), ("o2", o2)]))
        s = prom.scrape(hp)
        self.assertEqual(s.get("influxdb_relay_udp_datagrams_sent_total", relay="u1",
                               backend="o2"), 0)
        self.assertEqual(s.get("influxdb_relay_udp_datagrams_sent_total", relay="u1",
                               backend="o1"), 1)  # kept: its counter goes on
        sender.sendto(b"m v=2\n", ("127.0.0.1", p1))
        self.assertRegex(o2.recv(2048).decode(), r"^m v=2 \d{13}\n$")
        self.assertRegex(o1.recv(2048).decode(), r"^m v=2 \d{13}\n$")
        # A new address: the relay receives there, the old port is closed.
        reload(r, conf(p2, "ms", [("o2", o2)]))
        wait_until(lambda: ("udp", p2) in bound_sockets(r.proc.pid) and
                   ("udp", p1) not in bound_sockets(r.proc.pid), what="the UDP socket moved")
        sender.sendto(b"m v=3\n", ("127.0.0.1", p2))
        self.assertRegex(o2.recv(2048).decode(), r"^m v=3 \d{13}\n$")
        s = prom.scrape(hp)
        self.assertEqual(s.get("influxdb_relay_udp_datagrams_received_total", relay="u1"), 3)
        self.assertFalse(s.has("influxdb_relay_udp_datagrams_sent_total", relay="u1",
                               backend="o1"))


if __name__ == "__main__":
    unittest.main()
