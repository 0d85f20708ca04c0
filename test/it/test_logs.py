"""Logs (influxdb-relay(8) LOGGING, docs/operations.md section 4): the default text format keeps the Go relay's wording, matched by
the regexes an operator runs on Go relay logs; log-format = json gives one JSON object per line
with time, level, message, relay, backend and fields; log-level filters."""

import datetime
import http.client
import json
import re
import socket
import unittest

from harness import RelayTestCase, free_port, http_request, wait_until

RE_5XX = re.compile(r'5xx response for relay "([^"]+)" backend "([^"]+)": (\d+)')
RE_PROBLEM = re.compile(r'Problem posting to relay "([^"]+)" backend "([^"]+)": (.+)')
GO_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")
LEVELS = ("debug", "info", "warn", "error")
WRITES = 3


def answer_503(req):
    if req["path"] == "/write":
        return 503, b'{"error":"overloaded"}', {"Content-Type": "application/json"}, 0
    return 204, b"", {}, 0


class LogsTest(RelayTestCase):

    def _run(self, head, name="relay.ini"):
        """A relay whose backend b1 answers 503 and whose b2 refuses connections; WRITES writes
        (each answered 503 to the client). Returns the relay."""
        m = self.mock(responder=answer_503)
        refused = free_port()
        port = free_port()
        relay = self.relay(f"""
[relay]
{head}
[http.r1]
bind-addr = 127.0.0.1:{port}
[http.r1.output.b1]
location = {m.url}
timeout = 2s
[http.r1.output.b2]
location = http://127.0.0.1:{refused}/write
timeout = 2s
""", wait_ports=[port], name=name)
        for i in range(WRITES):
            st, _, out = http_request(port, "POST", "/write?db=d", "m v=%di\n" % i)
            self.assertEqual(st, 503, out)
        wait_until(lambda: len(m.writes()) == WRITES, what="writes at the 503 backend")
        return relay

    def test_text_keeps_go_wording(self):
        relay = self._run("")

        def matched():
            log = relay.log()
            return (RE_5XX.findall(log), RE_PROBLEM.findall(log)) if (
                len(RE_5XX.findall(log)) >= WRITES and RE_PROBLEM.search(log)) else None
        five, problem = wait_until(matched, what="5xx and Problem posting lines")
        self.assertEqual(five, [("r1", "b1", "503")] * WRITES)
        self.assertTrue(all(p[:2] == ("r1", "b2") and p[2].strip() for p in problem), problem)
        for line in relay.log().splitlines():
            if RE_5XX.search(line) or RE_PROBLEM.search(line):
                self.assertRegex(line, GO_PREFIX)
                # Exactly the Go line: prefix + message, nothing appended.
                self.assertRegex(line, GO_PREFIX.pattern +
                                 r'(5xx response for relay "r1" backend "b1": 503'
                                 r'|Problem posting to relay "r1" backend "b2": .+)$')

    def _json_lines(self, relay):
        out = []
        for raw in relay.log().splitlines():
            obj = json.loads(raw)  # every line is one JSON object
            self.assertIsInstance(obj, dict, raw)
            for key in ("time", "level", "message"):
                self.assertIn(key, obj, raw)
            self.assertIn(obj["level"], LEVELS, raw)
            self.assertIsInstance(obj["message"], str, raw)
            t = datetime.datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
            age = datetime.datetime.utcnow() - t
            self.assertLess(abs(age.total_seconds()), 120, raw)
            out.append(obj)
        return out

    def test_json_one_object_per_line(self):
        relay = self._run("log-format = json")

        def matched():
            objs = self._json_lines(relay)
            five = [o for o in objs if RE_5XX.search(o["message"])]
            problem = [o for o in objs if RE_PROBLEM.search(o["message"])]
            return (objs, five, problem) if len(five) >= WRITES and problem else None
        objs, five, problem = wait_until(matched, what="JSON 5xx and Problem posting lines")
        self.assertEqual(len(five), WRITES)
        for o in five:
            self.assertEqual((o["level"], o["relay"], o["backend"]), ("warn", "r1", "b1"), o)
            self.assertEqual(RE_5XX.search(o["message"]).groups(), ("r1", "b1", "503"))
            self.assertEqual(o["status"], 503, o)
        for o in problem:
            self.assertEqual((o["relay"], o["backend"]), ("r1", "b2"), o)
            self.assertIn(o["level"], ("warn", "error"), o)
        # Lines about a relay or backend carry them as members, e.g. the listener start-up.
        self.assertTrue(any(o.get("relay") == "r1" and o["level"] == "info" for o in objs),
                        objs[:5])

    def test_json_lines_survive_hostile_input(self):
        """Invalid lines with quotes, backslashes, control bytes and invalid UTF-8, sent over
        UDP and HTTP at debug level: whatever the relay logs about them, every log line still
        parses as one JSON object (util/log.c's escaping is unit-tested byte by byte)."""
        m = self.mock()
        port, pu = free_port(), free_port(socket.SOCK_DGRAM)
        sink = self.udp_socket()
        relay = self.relay(f"""
[relay]
log-format = json
log-level = debug
[http.r1]
bind-addr = 127.0.0.1:{port}
[http.r1.output.b1]
location = {m.url}
[udp.u1]
bind-addr = 127.0.0.1:{pu}
[udp.u1.output.s1]
location = 127.0.0.1:{sink.getsockname()[1]}
""", wait_ports=[port])
        # The UDP socket is bound after the HTTP one: a datagram sent before would be lost.
        wait_until(lambda: "listening on udp" in relay.log(), what="udp listener")
        hostile = (b'm\\" v=\xff\xfe\x01"\t x=1 k=\\"\r\n'
                   b'\xc3\x28 bad="\x00\x1b[31m" y=2\n' + b"z" * 3000 + b' "\n')
        self.udp_socket().sendto(hostile, ("127.0.0.1", pu))
        st, _, _ = http_request(port, "POST", "/write?db=d", hostile)
        self.assertEqual(st, 400)
        wait_until(lambda: any(o.get("relay") == "u1" and o["level"] == "warn"
                               for o in self._json_lines(relay)), what="UDP invalid-line warning")
        self.assertGreater(len(self._json_lines(relay)), 3)

    # ------------------------------------------------------------------ log-level

    def _every_level(self, level, fmt="json"):
        """A relay at log-level `level` made to log at every level: debug (libmicrohttpd refuses
        a connection over r2's max-connections), info (start-up and shutdown), warn (b1 answers
        503; an invalid line over UDP), error (a UDP line longer than the output's MTU). Each
        event is known to have happened (its client saw the outcome), then the relay is stopped
        (SIGTERM, exit 0), so the log is complete when it is returned."""
        m = self.mock(responder=answer_503)
        sink = self.udp_socket(timeout=10)
        port, limited, pu = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
        relay = self.relay(f"""
[relay]
log-level = {level}
log-format = {fmt}
[http.r1]
bind-addr = 127.0.0.1:{port}
[http.r1.output.b1]
location = {m.url}
[http.r2]
bind-addr = 127.0.0.1:{limited}
max-connections = 1
[http.r2.output.b1]
location = {m.url}
[udp.u1]
bind-addr = 127.0.0.1:{pu}
[udp.u1.output.s1]
location = 127.0.0.1:{sink.getsockname()[1]}
mtu = 100
""", wait_ports=[port, limited], name="level-%s-%s.ini" % (level, fmt))
        # warn: a 5xx from b1; debug: the write's answer.
        st, _, _ = http_request(port, "POST", "/write?db=d", "m v=1i\n")
        self.assertEqual(st, 503)
        # warn: r2 holds one connection; the second is refused (closed at once).
        held = http.client.HTTPConnection("127.0.0.1", limited, timeout=10)
        self.addCleanup(held.close)
        held.request("GET", "/ping")
        self.assertEqual(held.getresponse().status, 204)
        with socket.create_connection(("127.0.0.1", limited), timeout=10) as extra:
            try:
                extra.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertEqual(extra.recv(100), b"")
            except (ConnectionResetError, BrokenPipeError):
                pass
        # warn and error: an invalid line and a line over the MTU; the valid one still goes out.
        good = b"ok v=1i 1\n"
        self.udp_socket().sendto(b"not line protocol\n" + b"long,k=%s v=1i 1\n" % (b"x" * 200)
                                 + good, ("127.0.0.1", pu))
        self.assertEqual(sink.recv(65536), good)
        self.assertEqual(relay.terminate(), 0)
        return relay.log()

    # What each level provokes: (level of the line, how to find it in the message).
    PROVOKED = (("debug", "write answered"),
                ("warn", "max-connections reached, refusing new connections"),
                ("info", 'Starting HTTP relay "r1" on 127.0.0.1:'),
                ("warn", '5xx response for relay "r1" backend "b1": 503'),
                ("warn", "invalid lines dropped"),
                ("error", "payload larger than MTU"))

    def _check_level(self, level):
        objs = [json.loads(ln) for ln in self._every_level(level).splitlines()]
        shown = LEVELS[LEVELS.index(level):]  # LEVELS is most verbose first
        self.assertEqual(sorted({o["level"] for o in objs}), sorted(shown), objs)
        for lvl, text in self.PROVOKED:
            found = [o for o in objs if text in o["message"]]
            if lvl in shown:
                self.assertTrue(found, "%s line %r missing at log-level %s" % (lvl, text, level))
                self.assertEqual({o["level"] for o in found}, {lvl}, found)
            else:
                self.assertEqual(found, [], "log-level %s shows a %s line" % (level, lvl))

    def test_level_debug_shows_every_level(self):
        self._check_level("debug")

    def test_level_info_hides_debug(self):
        self._check_level("info")

    def test_level_warn_hides_info_and_debug(self):
        self._check_level("warn")

    def test_level_error_shows_only_errors(self):
        self._check_level("error")

    def test_level_warn_text_format(self):
        """The same filter in the text format: Go-worded lines (no level word) included."""
        log = self._every_level("warn", fmt="text")
        prefix = r"(?m)^" + GO_PREFIX.pattern[1:]
        self.assertRegex(log, prefix + r'5xx response for relay "r1" backend "b1": 503$')
        self.assertRegex(log, prefix + r"warn u1: invalid lines dropped")
        self.assertRegex(log, prefix + r"error u1/s1: payload larger than MTU")
        self.assertNotIn("Starting HTTP relay", log)
        self.assertNotIn("libmicrohttpd", log)
        for line in log.splitlines():
            self.assertNotRegex(line, GO_PREFIX.pattern + r"(info|debug) ")


if __name__ == "__main__":
    unittest.main()
