"""Configuration compatibility and checks of issue 16 ("one floor") and issue 17 item 9:
values the Go relay accepts for its keys start a relay (durations beyond the old 1h bound, with
Retry-After still right for a write-timeout longer than 136 years), and backend URLs with a
fragment or with userinfo are refused by --check-config and by the converter, the password
never shown."""

import os
import socket
import subprocess
import unittest

import prom
from harness import CONVERT_BIN, RelayTestCase, free_port, http_request, run_relay, wait_until


class GoRangesTest(RelayTestCase):

    def test_go_durations_start_and_retry_after_does_not_wrap(self):
        port = free_port()
        down = free_port()  # nothing listens there: every send is refused at once
        conf = ("[relay]\nshutdown-timeout = 2h\n"
                "[http.r1]\nbind-addr = 127.0.0.1:%d\nwrite-timeout = 2000000h\n"
                "[http.r1.output.b1]\nlocation = http://127.0.0.1:%d/write\ntimeout = 48h\n"
                "max-delay-interval = 2h\n" % (port, down))
        path = os.path.join(self.tmp, "go.ini")
        with open(path, "w") as f:
            f.write(conf)
        c = run_relay(["-config", path, "--check-config"])
        self.assertEqual((c.returncode, c.stderr), (0, b""))
        self.relay(conf, wait_ports=[port])
        status, headers, body = http_request(port, "POST", "/write?db=x", body=b"m v=1 1\n",
                                             timeout=30)
        self.assertEqual(status, 503, body)
        # ceil(2000000h) in seconds is above 2^32: the header is capped, not wrapped.
        self.assertEqual(headers.get("retry-after"), "4294967295")


class UdpReceiverTest(RelayTestCase):
    """Issue 17 item 10: the UDP receiver's state in /metrics and /health (the error paths,
    injected, are in unit.udp_listener)."""

    def test_receiver_up_in_metrics_and_health(self):
        m = self.mock()
        port = free_port()
        udp = free_port(socket.SOCK_DGRAM)
        sink = free_port(socket.SOCK_DGRAM)
        conf = ("[http.r1]\nbind-addr = 127.0.0.1:%d\n[http.r1.output.b1]\nlocation = %s\n"
                "[udp.u1]\nbind-addr = 127.0.0.1:%d\n[udp.u1.output.o1]\n"
                "location = 127.0.0.1:%d\n" % (port, m.url, udp, sink))
        r = self.relay(conf, wait_ports=[port])
        wait_until(lambda: r._alive() and "listening on udp" in r.log(), what="udp listener")
        s = prom.scrape(port)
        self.assertEqual(s.get("influxdb_relay_udp_receiver_up", relay="u1"), 1)
        self.assertEqual(s.get("influxdb_relay_udp_receive_errors_total", relay="u1"), 0)
        status, _, body = http_request(port, "GET", "/health")
        self.assertEqual(status, 200)
        self.assertTrue(body.endswith(b',"udp":[{"relay":"u1","receiver":"up"}]}\n'), body)
        self.assertTrue(body.startswith(b'{"status":"ok",'), body)


class UrlChecksTest(RelayTestCase):

    def check(self, location):
        path = os.path.join(self.tmp, "u.ini")
        with open(path, "w") as f:
            f.write("[http.a]\nbind-addr = 127.0.0.1:1\n[http.a.output.b]\nlocation = %s\n"
                    % location)
        return run_relay(["-config", path, "--check-config"])

    def test_fragment_refused(self):
        c = self.check("http://127.0.0.1:8086/write#x")
        self.assertEqual(c.returncode, 1)
        self.assertIn(b':4: [http.a.output.b] location: fragment "#x" is not allowed in '
                      b'"http://127.0.0.1:8086/write#x"', c.stderr)

    def test_userinfo_refused_password_masked(self):
        c = self.check("http://admin:hunter2@127.0.0.1:8086/write")
        self.assertEqual(c.returncode, 1)
        self.assertIn(b'location: userinfo is not allowed in '
                      b'"http://admin:xxxxx@127.0.0.1:8086/write"', c.stderr)
        self.assertNotIn(b"hunter2", c.stderr)
        c = self.check("http://admin:hunter2@127.0.0.1:0/write")  # invalid for another reason
        self.assertEqual(c.returncode, 1)
        self.assertIn(b"port out of range", c.stderr)
        self.assertNotIn(b"hunter2", c.stderr)

    def test_converter_refuses_them_too(self):
        path = os.path.join(self.tmp, "in.toml")
        with open(path, "w") as f:
            f.write('[[http]]\nname = "a"\nbind-addr = ":1"\noutput = [\n'
                    '  { name = "b", location = "http://u:hunter2@h:8086/write" },\n'
                    '  { name = "c", location = "http://h:8086/write#x" },\n]\n')
        r = subprocess.run([CONVERT_BIN, "in.toml"], capture_output=True, timeout=30,
                           cwd=self.tmp)
        self.assertNotEqual(r.returncode, 0)
        err = r.stderr.decode()
        self.assertIn('in.toml:5: location: userinfo is not allowed in '
                      '"http://u:xxxxx@h:8086/write"', err)
        self.assertIn('in.toml:6: location: a fragment is not allowed in '
                      '"http://h:8086/write#x"', err)
        self.assertNotIn("hunter2", err)


if __name__ == "__main__":
    unittest.main()
