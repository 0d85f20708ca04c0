"""UDP relay (issue #6, influxdb-relay.conf(5) [udp.NAME]): fan-out to mock UDP outputs byte for byte,
MTU splitting, lines over the MTU and invalid lines dropped while the rest goes out, stamping
in every precision, IPv6, and real influxd UDP listeners as outputs."""

import json
import os
import re
import socket
import threading
import time
import unittest

from harness import RelayTestCase, free_port, http_request, run_relay, wait_until

UNITS_NS = {"n": 1, "ns": 1, "u": 1000, "us": 1000, "ms": 10**6, "s": 10**9,
            "m": 60 * 10**9, "h": 3600 * 10**9}


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class UdpSink:
    """A mock UDP output: records every datagram it receives, in order."""

    def __init__(self, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.host = "[::1]" if family == socket.AF_INET6 else "127.0.0.1"
        self.grams = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                data = self.sock.recv(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.grams.append(data)

    @property
    def location(self):
        return "%s:%d" % (self.host, self.port)

    def datagrams(self):
        with self.lock:
            return list(self.grams)

    def data(self):
        return b"".join(self.datagrams())

    def wait_bytes(self, n, timeout=10):
        wait_until(lambda: len(self.data()) >= n, timeout=timeout,
                   what="%d bytes at %s (got %d)" % (n, self.location, len(self.data())))
        return self.data()

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.sock.close()


class UdpTestCase(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.sinks = []
        self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.client.bind(("127.0.0.1", 0))

    def tearDown(self):
        logs = [r.log() for r in self.relays]
        super().tearDown()
        for log in logs:  # a sanitizer build reports into the relay's log
            for word in ("AddressSanitizer", "ThreadSanitizer", "LeakSanitizer", "runtime error:"):
                self.assertNotIn(word, log)
        for s in self.sinks:
            s.close()
        self.client.close()

    def sink(self, family=socket.AF_INET):
        s = UdpSink(family)
        self.sinks.append(s)
        return s

    def udp_relay(self, relays, head=""):
        """relays: list of (name, bind, precision, [(output name, location, mtu)]).
        Starts the relay and waits until every UDP listener is bound."""
        lines = [head]
        for name, bind, prec, outputs in relays:
            lines += ["[udp.%s]" % name, "bind-addr = " + bind, "read-buffer = 1048576",
                      "precision = " + prec, ""]
            for oname, loc, mtu in outputs:
                lines += ["[udp.%s.output.%s]" % (name, oname), "location = " + loc,
                          "mtu = %d" % mtu, ""]
        return self.relay("\n".join(lines) + "\n").wait_ready()

    def send(self, port, data, host="127.0.0.1", sock=None):
        if isinstance(data, str):
            data = data.encode()
        (sock or self.client).sendto(data, (host, port))


class TestUdpFanOut(UdpTestCase):

    def test_fan_out_byte_exact_and_mtu(self):
        """Two outputs get the same bytes: the input lines in order, unstamped points stamped
        once with the same value; every datagram <= mtu; lines never cut."""
        a, b = self.sink(), self.sink()
        port = free_port(socket.SOCK_DGRAM)
        r = self.udp_relay([("u1", "127.0.0.1:%d" % port, "n",
                             [("a", a.location, 1024), ("b", b.location, 300)])])
        sent = []
        for i in range(40):
            lines = ["cpu,host=h%d,n=%d value=%d,text=\"%s\" %d"
                     % (i % 3, j, j, "x" * (i * 3 % 90), 1600000000000000000 + i * 100 + j)
                     for j in range(1 + i % 17)]
            sent.append("\n".join(lines) + "\n")
        before = time.time_ns()
        sent.append("cpu value=1\nmem value=2\n")  # stamped, same value on both lines
        for d in sent:
            self.send(port, d)
        want_len = sum(len(d) for d in sent) + 2 * 20
        got_a, got_b = a.wait_bytes(want_len), b.wait_bytes(want_len)
        after = time.time_ns()
        self.assertEqual(got_a, got_b)
        text = got_a.decode()
        head = "".join(sent[:-1])
        self.assertEqual(text[:len(head)], head)
        m = re.fullmatch(r"cpu value=1 (\d+)\nmem value=2 (\d+)\n", text[len(head):])
        self.assertIsNotNone(m, text[len(head):])
        self.assertEqual(m.group(1), m.group(2))
        self.assertTrue(before <= int(m.group(1)) <= after)
        for sink, mtu in ((a, 1024), (b, 300)):
            for g in sink.datagrams():
                self.assertLessEqual(len(g), mtu)
                self.assertTrue(g.endswith(b"\n"))
        self.assertGreater(len(b.datagrams()), len(a.datagrams()))
        self.assertNotIn("larger than MTU", r.log())

    def test_line_longer_than_mtu_dropped_rest_goes_out(self):
        a, b = self.sink(), self.sink()
        port = free_port(socket.SOCK_DGRAM)
        r = self.udp_relay([("u1", "127.0.0.1:%d" % port, "n",
                             [("small", a.location, 100), ("big", b.location, 2000)])])
        long_line = "cpu,host=%s value=1 1000\n" % ("y" * 150)
        first = "cpu,host=a value=1 1\ncpu,host=b value=2 2\n"
        last = "cpu,host=c value=3 3\n"
        self.send(port, first + long_line + last)
        self.assertEqual(a.wait_bytes(len(first + last)), (first + last).encode())
        self.assertEqual(b.wait_bytes(len(first + long_line + last)),
                         (first + long_line + last).encode())
        wait_until(lambda: "payload larger than MTU" in r.log(), what="MTU log line")
        line = [x for x in r.log().splitlines() if "payload larger than MTU" in x][0]
        self.assertIn("small", line)
        # Rate-limited: a second oversize line within 10 s logs nothing new. The listener
        # handles datagrams one after the other, so once a third one has gone out the second
        # one is done with, logging included.
        self.send(port, long_line + last)
        self.send(port, first)
        a.wait_bytes(len(first + last + last + first))
        self.assertEqual(r.log().count("payload larger than MTU"), 1)

    def test_invalid_lines_dropped_valid_go_out(self):
        a, b = self.sink(), self.sink()
        port = free_port(socket.SOCK_DGRAM)
        r = self.udp_relay([("u1", "127.0.0.1:%d" % port, "n",
                             [("a", a.location, 1024), ("b", b.location, 1024)])])
        good1, good2 = "cpu value=1 10\n", "cpu value=2 20\n"
        self.send(port, good1 + "this is not line protocol\n" + "cpu value= 5\n" + good2)
        for s in (a, b):
            self.assertEqual(s.wait_bytes(len(good1 + good2)), (good1 + good2).encode())
        sender = "127.0.0.1:%d" % self.client.getsockname()[1]
        wait_until(lambda: "invalid lines dropped" in r.log(), what="invalid-lines log line")
        line = [x for x in r.log().splitlines() if "invalid lines dropped" in x][0]
        self.assertIn(sender, line)
        self.assertIn("lines=2", line)
        self.assertNotIn("this is not line protocol", r.log())
        # A datagram with no valid line sends nothing; the next one still goes out.
        self.send(port, "garbage\n")
        self.send(port, "cpu value=3 30\n")
        self.assertEqual(a.wait_bytes(45), (good1 + good2 + "cpu value=3 30\n").encode())
        self.assertEqual(len(a.datagrams()), 2)

    def test_precision_every_unit(self):
        relays, sinks, ports = [], {}, {}
        for unit in UNITS_NS:
            sinks[unit] = self.sink()
            ports[unit] = free_port(socket.SOCK_DGRAM)
            relays.append(("p" + unit, "127.0.0.1:%d" % ports[unit], unit,
                           [("o", sinks[unit].location, 1024)]))
        self.udp_relay(relays)
        for unit in UNITS_NS:
            before = time.time_ns()
            self.send(ports[unit], "cpu value=1\n")
            got = sinks[unit].wait_bytes(14).decode()
            after = time.time_ns()
            m = re.fullmatch(r"cpu value=1 (\d+)\n", got)
            self.assertIsNotNone(m, "%s: %r" % (unit, got))
            ts = int(m.group(1))
            self.assertTrue(before // UNITS_NS[unit] <= ts <= after // UNITS_NS[unit],
                            "%s: %d not in [%d, %d]" % (unit, ts, before // UNITS_NS[unit],
                                                        after // UNITS_NS[unit]))

    def test_json_log_lines(self):
        """With log-format = json the UDP events are JSON objects with their fields."""
        a = self.sink()
        port = free_port(socket.SOCK_DGRAM)
        r = self.udp_relay([("u1", "127.0.0.1:%d" % port, "n", [("a", a.location, 64)])],
                           head="[relay]\nlog-format = json\n\n")
        self.send(port, "garbage\ncpu,host=%s value=1 1\ncpu value=2 2\n" % ("w" * 80))
        a.wait_bytes(14)
        wait_until(lambda: "larger than MTU" in r.log() and "invalid lines" in r.log(),
                   what="both log lines")
        events = [json.loads(x) for x in r.log().splitlines() if x.strip()]
        inv = [e for e in events if e["message"].startswith("invalid lines dropped")][0]
        self.assertEqual(inv["level"], "warn")
        self.assertEqual(inv["sender"], "127.0.0.1:%d" % self.client.getsockname()[1])
        self.assertEqual(inv["lines"], 1)
        mtu = [e for e in events if "payload larger than MTU" in e["message"]][0]
        self.assertEqual((mtu["level"], mtu["mtu"], mtu["lines"]), ("error", 64, 1))

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback")
    def test_ipv6_bind_and_output(self):
        a, b = self.sink(socket.AF_INET6), self.sink()
        port = free_port(socket.SOCK_DGRAM)
        self.udp_relay([("u6", "[::1]:%d" % port, "n",
                         [("v6", a.location, 1024), ("v4", b.location, 1024)])])
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as c6:
            self.send(port, "cpu value=6 6\n", host="::1", sock=c6)
        for s in (a, b):
            self.assertEqual(s.wait_bytes(14), b"cpu value=6 6\n")

    def test_sigterm_stops_cleanly(self):
        a = self.sink()
        port = free_port(socket.SOCK_DGRAM)
        r = self.udp_relay([("u1", "127.0.0.1:%d" % port, "n", [("a", a.location, 1024)])])
        self.send(port, "cpu value=1 1\n")
        a.wait_bytes(14)
        t0 = time.monotonic()
        self.assertEqual(r.terminate(timeout=15), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("udp relay stopped", r.log())


class TestUdpConfig(UdpTestCase):

    def test_unresolvable_output_fails_check_config(self):
        path = os.path.join(self.tmp, "bad.ini")
        with open(path, "w") as f:
            f.write("[udp.u1]\nbind-addr = 127.0.0.1:1\n\n"
                    "[udp.u1.output.a]\nlocation = no-such-host.invalid:8089\n")
        p = run_relay(["-config", path, "--check-config"])
        self.assertEqual(p.returncode, 1)
        self.assertIn(path.encode() + b":4: [udp.u1.output.a] location: cannot resolve "
                      b"\"no-such-host.invalid:8089\"", p.stderr)

    def test_unbindable_address_fails_start(self):
        path = os.path.join(self.tmp, "bad.ini")
        with open(path, "w") as f:
            f.write("[udp.u1]\nbind-addr = 192.0.2.7:%d\n\n"
                    "[udp.u1.output.a]\nlocation = 127.0.0.1:9\n" % free_port(socket.SOCK_DGRAM))
        p = run_relay(["-config", path])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b":2: [udp.u1] bind-addr: cannot listen on \"192.0.2.7:", p.stderr)


class TestUdpMetrics(UdpTestCase):

    def test_counters_in_metrics(self):
        """The UDP counters as /metrics shows them (rendered by the HTTP listener)."""
        a, b = self.sink(), self.sink()
        port, hport = free_port(socket.SOCK_DGRAM), free_port()
        head = "[http.h]\nbind-addr = 127.0.0.1:%d\n\n[http.h.output.x]\n" \
               "location = http://127.0.0.1:%d/write\n\n" % (hport, free_port())
        self.udp_relay([("u1", "127.0.0.1:%d" % port, "n",
                         [("a", a.location, 100), ("b", b.location, 1024)])], head=head)
        long_line = "cpu,host=%s value=1 1\n" % ("z" * 100)
        self.send(port, "cpu value=1 1\ncpu value=2 2\n")          # 2 points
        self.send(port, "garbage\ncpu value=3 3\n" + long_line)    # 1 invalid, 2 points
        want_b = len("cpu value=1 1\ncpu value=2 2\ncpu value=3 3\n" + long_line)
        b.wait_bytes(want_b)
        a.wait_bytes(want_b - len(long_line))

        def metrics():
            st, _, body = http_request(hport, "GET", "/metrics")
            self.assertEqual(st, 200)
            return body.decode()

        want = [
            'influxdb_relay_udp_datagrams_received_total{relay="u1"} 2',
            'influxdb_relay_udp_points_received_total{relay="u1"} 4',
            'influxdb_relay_udp_lines_dropped_total{relay="u1",reason="invalid"} 1',
            'influxdb_relay_udp_lines_dropped_total{relay="u1",reason="mtu"} 1',
            'influxdb_relay_udp_datagrams_sent_total{relay="u1",backend="a"} 2',
            'influxdb_relay_udp_points_sent_total{relay="u1",backend="a"} 3',
            'influxdb_relay_udp_datagrams_sent_total{relay="u1",backend="b"} 2',
            'influxdb_relay_udp_points_sent_total{relay="u1",backend="b"} 4',
        ]
        wait_until(lambda: all(w in metrics().splitlines() for w in want), timeout=10,
                   what="UDP counters in /metrics")


class TestUdpInfluxd(UdpTestCase):

    def test_two_influxd_udp_outputs(self):
        """N datagrams in -> N points in each influxd (through its UDP listener)."""
        i1, i2 = self.influxd(udp_db="udp"), self.influxd(udp_db="udp")
        port = free_port(socket.SOCK_DGRAM)
        # influxd's UDP listener reads timestamps as ns (its own precision setting), so the
        # relay forwards ns timestamps byte for byte.
        self.udp_relay([("u1", "127.0.0.1:%d" % port, "n",
                         [("i1", "127.0.0.1:%d" % i1.udp_port, 1024),
                          ("i2", "127.0.0.1:%d" % i2.udp_port, 1024)])])
        # influxd's UDP socket has the default (small) buffer and a loaded machine may not
        # schedule its reader for a while: send in rounds of 20 datagrams, each once both
        # influxd hold the previous round (a lost datagram fails the test, it is never resent).
        n, per_round = 200, 20
        for first in range(0, n, per_round):
            for k in range(first, first + per_round):
                self.send(port, "udp_test,k=%d value=%d %d\n" % (k, k, (1600000000 + k) * 10**9))
            for i in (i1, i2):
                wait_until(lambda: i.count("udp", "udp_test") >= first + per_round, timeout=20,
                           step=0.05, what="%d points in influxd :%d (got %s)" % (
                               first + per_round, i.http_port, i.count("udp", "udp_test")))
        for i in (i1, i2):
            self.assertEqual(i.count("udp", "udp_test"), n)
        rows = i1.rows("udp", 'SELECT "value" FROM "udp_test" WHERE "k" = \'7\'')
        self.assertEqual(rows, [[(1600000000 + 7) * 10**9, 7]])


if __name__ == "__main__":
    unittest.main()
