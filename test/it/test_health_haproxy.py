"""The HAProxy active check of docs/operations.md ("option httpchk GET /health" + "http-check
expect status 200"), run for real against two relays: a relay whose backends are all down is
taken out of rotation (its /health answers 503) and writes go to the other relay; it comes back
when its backend does. The backend section is taken from the doc itself, so the doc stays true."""

import os
import re
import subprocess
import unittest

from harness import (RelayTestCase, SRC, _live, _kill, free_port, http_request, require_tool,
                     wait_until)
from test_metrics import take_down, lines



def doc_backend_section():
    """The HAProxy block under "### HAProxy (active check)" in docs/operations.md."""
    with open(os.path.join(SRC, "docs", "operations.md")) as f:
        text = f.read()
    m = re.search(r"### HAProxy \(active check\)\s*```\n(.*?)```", text, re.S)
    return m.group(1)


class HaproxyHealthTest(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.haproxy = require_tool("haproxy", "/usr/sbin/haproxy")  # missing: fail, not skip

    def _haproxy(self, relay_ports):
        section = doc_backend_section()
        section = section.replace("10.0.0.1:9096", "127.0.0.1:%d" % relay_ports[0])
        section = section.replace("10.0.0.2:9096", "127.0.0.1:%d" % relay_ports[1])
        # Faster checks than the doc's 2 s, same rule (fall 3, rise 2).
        section = section.replace("inter 2s", "inter 200ms")
        front, stats = free_port(), free_port()
        conf = f"""
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend influx
    bind 127.0.0.1:{front}
    default_backend influxdb_relays
listen stats
    bind 127.0.0.1:{stats}
    stats enable
    stats uri /stats
{section}"""
        path = os.path.join(self.tmp, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(conf)
        log = open(os.path.join(self.tmp, "haproxy.log"), "ab")
        proc = subprocess.Popen([self.haproxy, "-db", "-f", path], stdout=log,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        _live.add(proc)
        self.addCleanup(_kill, proc)
        return front, stats

    def _status(self, stats_port, server):
        """HAProxy's view of a server: UP, DOWN, or a transition like "UP 1/3"."""
        try:
            st, _, body = http_request(stats_port, "GET", "/stats;csv", timeout=2)
        except OSError:
            return None
        for row in body.decode().splitlines():
            cols = row.split(",")
            if len(cols) > 17 and cols[0] == "influxdb_relays" and cols[1] == server:
                return cols[17]
        return None

    def test_relay_out_of_rotation_when_its_backends_are_down(self):
        m1, m2 = self.mock(), self.mock()
        ports = self.relay_per_mock((m1, m2))
        front, stats = self._haproxy(ports)
        for srv in ("relay1", "relay2"):
            wait_until(lambda: self._status(stats, srv) == "UP", timeout=15, what=srv + " UP")

        # relay1's only backend goes down; a write through relay1 makes it notice (503).
        take_down(m1)
        st, _, _ = http_request(ports[0], "POST", "/write?db=d", lines(1, "direct"))
        self.assertEqual(st, 503)
        wait_until(lambda: self._status(stats, "relay1") == "DOWN", timeout=15,
                   what="relay1 DOWN in HAProxy")
        self.assertEqual(self._status(stats, "relay2"), "UP")
        # Every write through HAProxy now lands on relay2.
        before = len(m2.writes())
        for i in range(6):
            st, _, out = http_request(front, "POST", "/write?db=d", lines(1, "lb%d" % i))
            self.assertEqual(st, 204, out)
        self.assertEqual(len(m2.writes()), before + 6)

        # The backend returns: relay1's probe sees it, /health is 200 again, HAProxy puts it back.
        self.mock(port=m1.port)
        wait_until(lambda: self._status(stats, "relay1") == "UP", timeout=20,
                   what="relay1 UP again in HAProxy")


if __name__ == "__main__":
    unittest.main()
