"""Logs (influxdb-relay(8) LOGGING, docs/operations.md section 4): the default text format keeps the Go relay's wording, matched by
the regexes an operator runs on Go relay logs; log-format = json gives one JSON object per line
with time, level, message, relay, backend and fields; log-level filters."""

import datetime
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
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        self.addCleanup(sink.close)
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
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(tx.close)
        tx.sendto(hostile, ("127.0.0.1", pu))
        st, _, _ = http_request(port, "POST", "/write?db=d", hostile)
        self.assertEqual(st, 400)
        wait_until(lambda: any(o.get("relay") == "u1" and o["level"] == "warn"
                               for o in self._json_lines(relay)), what="UDP invalid-line warning")
        self.assertGreater(len(self._json_lines(relay)), 3)

    def test_level_error_hides_warn_and_info(self):
        relay = self._run("log-level = error\nlog-format = json")
        relay.terminate()
        objs = self._json_lines(relay)
        self.assertEqual([o for o in objs if o["level"] != "error"], [])
        text = self._run_text_error()
        for line in text.splitlines():
            self.assertNotRegex(line, RE_5XX)
            self.assertNotRegex(line, RE_PROBLEM)
            self.assertNotRegex(line, GO_PREFIX.pattern + r"(warn|info|debug) ")

    def _run_text_error(self):
        relay = self._run("log-level = error", name="text-error.ini")
        relay.terminate()
        return relay.log()


if __name__ == "__main__":
    unittest.main()
