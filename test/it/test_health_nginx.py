"""The nginx passive check of docs/operations.md (max_fails + proxy_next_upstream http_503
non_idempotent), run for real against two relays: a relay whose backends are all down answers
503, nginx re-sends the write to the other relay (the client sees 204) and, after max_fails,
skips the failed relay. The upstream and server blocks are taken from the doc itself."""

import os
import re
import subprocess
import unittest

from harness import (RelayTestCase, SRC, _live, _kill, free_port, http_request, require_tool,
                     wait_until)
from test_metrics import take_down, lines



def doc_nginx_blocks():
    """The nginx block under "### nginx (passive checks)" in docs/operations.md."""
    with open(os.path.join(SRC, "docs", "operations.md")) as f:
        text = f.read()
    return re.search(r"### nginx \(passive checks\).*?```nginx\n(.*?)```", text, re.S).group(1)


class NginxPassiveTest(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.nginx = require_tool("nginx", "/usr/sbin/nginx")  # missing: fail, not skip

    def _nginx(self, relay_ports):
        blocks = doc_nginx_blocks()
        blocks = blocks.replace("10.0.0.1:9096", "127.0.0.1:%d" % relay_ports[0])
        blocks = blocks.replace("10.0.0.2:9096", "127.0.0.1:%d" % relay_ports[1])
        front = free_port()
        blocks = blocks.replace("listen 8086;", "listen 127.0.0.1:%d;" % front)
        t = self.tmp
        temps = "".join("    %s_temp_path %s/%s;\n" % (k, t, k)
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;" if os.geteuid() == 0 else ""
        # One process (no master/workers), so killing the PID leaves no orphan worker.
        conf = f"""daemon off;
master_process off;
{user}
pid {t}/nginx.pid;
error_log {t}/nginx-error.log info;
events {{}}
http {{
    access_log off;
{temps}
    add_header X-Relay $upstream_addr always;
{blocks}
}}
"""
        path = os.path.join(t, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        log = open(os.path.join(t, "nginx.log"), "ab")
        proc = subprocess.Popen([self.nginx, "-p", t + "/", "-e", t + "/nginx-error.log", "-c",
                                 path],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        _live.add(proc)
        self.addCleanup(_kill, proc)

        def up():
            if proc.poll() is not None:
                raise AssertionError("nginx exited: " + open(t + "/nginx-error.log").read())
            try:
                return http_request(front, "GET", "/nothing", timeout=2)[0] > 0
            except OSError:
                return False
        wait_until(up, what="nginx up")
        return front

    def test_503_relay_skipped_and_write_retried(self):
        m1, m2 = self.mock(), self.mock()
        ports = self.relay_per_mock((m1, m2))
        front = self._nginx(ports)
        take_down(m1)
        # Every write through nginx gets 204: a 503 from relay1 is re-sent to relay2.
        relays = []
        for i in range(8):
            st, headers, out = http_request(front, "POST", "/write?db=d", lines(1, "n%d" % i))
            self.assertEqual(st, 204, out)
            relays.append(headers.get("x-relay", ""))
        self.assertEqual(len(m2.writes()), 8)
        self.assertEqual(m1.writes(), [])
        # relay1 was tried (503) until max_fails, then skipped for fail_timeout.
        tried_relay1 = [r for r in relays if "127.0.0.1:%d" % ports[0] in r]
        self.assertGreaterEqual(len(tried_relay1), 1, relays)
        self.assertLessEqual(len(tried_relay1), 3, relays)
        self.assertTrue(relays[-1].endswith("127.0.0.1:%d" % ports[1]), relays)


if __name__ == "__main__":
    unittest.main()
