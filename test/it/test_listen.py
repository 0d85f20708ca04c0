"""Listeners on every interface (issue 17 item 11): `bind-addr = :PORT` takes IPv4 clients on
127.0.0.1 for HTTP and UDP (a dual-stack [::] socket where the host has IPv6, 0.0.0.0 where it
has not: the fallback itself is unit-tested in unit.util_hostport with injected failures), and
a host name binds its IPv4 address first, as the Go relay does."""

import socket
import unittest

from harness import RelayTestCase, free_port, http_request, wait_until
from test_udp import UdpSink, have_ipv6  # no test class: importing runs none of test_udp


class ListenTest(RelayTestCase):

    def test_http_empty_host_answers_on_ipv4_loopback(self):
        m = self.mock()
        port = free_port()
        conf = ("[http.r1]\nbind-addr = :%d\n[http.r1.output.b1]\nlocation = %s\n"
                % (port, m.url))
        r = self.relay(conf, wait_ports=[port])  # waits for a TCP connect to 127.0.0.1
        status, _, _ = http_request(port, "GET", "/ping", host="127.0.0.1", timeout=10)
        self.assertEqual(status, 204)
        status, _, body = http_request(port, "POST", "/write?db=x", body=b"m v=1 1\n",
                                       host="127.0.0.1", timeout=10)
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(m.body(), b"m v=1 1\n")
        self.assertIn('Starting HTTP relay "r1" on :%d' % port, r.log())
        if have_ipv6():
            status, _, _ = http_request(port, "GET", "/ping", host="::1", timeout=10)
            self.assertEqual(status, 204)

    def test_http_host_name_binds_ipv4_first(self):
        port = free_port()
        m = self.mock()
        conf = ("[http.r1]\nbind-addr = localhost:%d\n[http.r1.output.b1]\nlocation = %s\n"
                % (port, m.url))
        self.relay(conf, wait_ports=[port])
        status, _, _ = http_request(port, "GET", "/ping", host="127.0.0.1", timeout=10)
        self.assertEqual(status, 204)

    def test_udp_empty_host_receives_on_ipv4_loopback(self):
        sink = UdpSink()
        self.addCleanup(sink.close)
        port = free_port(socket.SOCK_DGRAM)
        conf = ("[udp.u1]\nbind-addr = :%d\n[udp.u1.output.o1]\nlocation = 127.0.0.1:%d\n"
                % (port, sink.port))
        r = self.relay(conf)
        wait_until(lambda: r._alive() and "listening on udp" in r.log(), what="udp listener")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"m v=1 1\n", ("127.0.0.1", port))
        wait_until(lambda: sink.data() == b"m v=1 1\n", what="datagram at the output")
        if have_ipv6():
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.sendto(b"m v=2 2\n", ("::1", port))
            wait_until(lambda: sink.data() == b"m v=1 1\nm v=2 2\n", what="IPv6 datagram")


if __name__ == "__main__":
    unittest.main()
