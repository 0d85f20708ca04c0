"""The HA setup of docs/deployment.md, end to end on 127.0.0.1.

A load balancer (nginx, then HAProxy, each run from the very file in docs/deploy/ with only the
addresses and host paths rewritten) in front of two relays (buffering on, each writing to both
InfluxDB) and two real influxd. A client writes a steady numbered stream through the load
balancer, one point per write with an explicit timestamp, and records which writes got 204.
Meanwhile one influxd is killed (SIGKILL) and restarted on the same data a few seconds later, then
one relay is killed (SIGKILL) and restarted. At the end every acknowledged write must be in both
influxd, and both must hold the same points with the same values.

The relay is killed at a moment when it holds no acknowledged write for either influxd (its
/health shows queue_writes 0 just before, with the client paused between two writes): a relay
killed while it still holds the second copy of an acknowledged write loses that copy, by design
(memory buffer; see docs/deployment.md section 4). The influxd is killed at a random moment.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from harness import (SRC, RelayTestCase, free_port, http_request, port_open, require_tool,
                     wait_until)

DB = "ha"
BASE_NS = 1_764_000_000 * 10**9  # explicit timestamps: seq n is at BASE_NS + n us
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
PACE_S = 0.008  # about 100 writes/s


def substitute(text, subs, what):
    """Applies exact replacements; each must match, so the test follows the shipped file."""
    for old, new in subs:
        if old not in text:
            raise AssertionError("%s no longer contains %r: update test_ha.py" % (what, old))
        text = text.replace(old, new)
    return text


def deploy_file(name):
    with open(os.path.join(SRC, "docs", "deploy", name)) as f:
        return f.read()


class LoadBalancer:
    """nginx or HAProxy on a config derived from docs/deploy/, run in the foreground in its own
    process group (nginx has worker processes), stopped by PID."""

    def __init__(self, kind, tmp, port, udp_port, relay_ports, influx_ports):
        self.kind, self.tmp, self.port, self.udp_port = kind, tmp, port, udp_port
        self.udp = False
        self.log_path = os.path.join(tmp, kind + ".log")
        addr = {"10.0.0.11:9096": relay_ports[0], "10.0.0.12:9096": relay_ports[1],
                "10.0.0.21:8086": influx_ports[0], "10.0.0.22:8086": influx_ports[1]}
        subs = [(a, "127.0.0.1:%d" % p) for a, p in addr.items()]
        if kind == "nginx":
            self.conf = self._nginx_conf(subs)
            self.argv = [require_tool("nginx", "/usr/sbin/nginx"), "-p", tmp + "/", "-e", self.log_path, "-c", self._write()]
        else:
            self.conf = self._haproxy_conf(subs)
            self.argv = [require_tool("haproxy", "/usr/sbin/haproxy"), "-db", "-f", self._write()]
        self.proc = None

    def _nginx_conf(self, subs):
        t = self.tmp
        # The stream module (libnginx-mod-stream, installed by scripts/setup.sh) carries UDP.
        if not os.path.exists(STREAM_MODULE):
            raise AssertionError(STREAM_MODULE + " is not installed: run scripts/setup.sh")
        self.udp = True
        user = "user root;" if os.geteuid() == 0 else ""
        modules = "load_module %s;" % STREAM_MODULE if self.udp else ""
        subs = subs + [
            ("user www-data;", "daemon off;\n" + user),
            ("pid /run/nginx.pid;", "pid %s/nginx.pid;" % t),
            ("error_log /var/log/nginx/error.log warn;", "error_log %s info;" % self.log_path),
            ("include /etc/nginx/modules-enabled/*.conf;", modules),
            ("http {", "http {\n" + "".join("    %s_temp_path %s/%s;\n" % (k, t, k) for k in
                                           ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))),
            ("listen 8086;", "listen 127.0.0.1:%d;" % self.port),
            ("listen 8089 udp;", "listen 127.0.0.1:%d udp;" % self.udp_port),
            # Which relay answered each write, for the report (test only).
            ("location = /write {", "location = /write {\n"
             "            add_header X-Relay $upstream_addr always;"),
        ]
        text = substitute(deploy_file("nginx.conf"), subs, "docs/deploy/nginx.conf")
        if not self.udp:
            text = re.sub(r"# BEGIN udp.*# END udp", "", text, flags=re.S)
        return text

    def _haproxy_conf(self, subs):
        drop = ["    log /dev/log local0\n", "    chroot /var/lib/haproxy\n",
                "    stats socket /run/haproxy/admin.sock mode 660 level admin\n",
                "    user haproxy\n", "    group haproxy\n", "    daemon\n"]
        subs = subs + [(d, "") for d in drop] + [
            ("bind :8086", "bind 127.0.0.1:%d" % self.port),
            ("backend influxdb_relays\n", "backend influxdb_relays\n"
             "    http-response set-header X-Relay %[srv_name]\n"),
        ]
        return substitute(deploy_file("haproxy.cfg"), subs, "docs/deploy/haproxy.cfg")

    def _write(self):
        path = os.path.join(self.tmp, self.kind + ".conf")
        with open(path, "w") as f:
            f.write(self.conf)
        return path

    def start(self):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited %s:\n%s" % (self.kind, self.proc.returncode,
                                                            self.log()))
            return port_open(self.port)
        wait_until(up, timeout=15, what=self.kind + " port")
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        """SIGTERM to the master (it stops its workers), then SIGKILL to its process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self.proc = None


class Writer(threading.Thread):
    """One client writing seq 1, 2, ... through the load balancer over a keep-alive connection.
    `between(fn)` runs fn in this thread between two writes (the client pauses meanwhile)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.status = {}   # seq -> HTTP status, or "error: ..." when no answer came
        self.relay = {}    # seq -> the relay that answered (X-Relay)
        self.answered_at = {}  # seq -> monotonic time of the answer
        self.halt = threading.Event()
        self._task = None
        self._task_done = threading.Event()
        self._lock = threading.Lock()

    @staticmethod
    def line(n):
        return "ha,client=c1 seq=%di,v=%s %d" % (n, repr(n * 0.25 + 0.125), BASE_NS + n * 1000)

    def run(self):
        conn = None
        n = 0
        while not self.halt.is_set():
            n += 1
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                st, hdrs, _ = http_request(self.port, "POST", "/write?db=" + DB, self.line(n),
                                           conn=conn)
                self.status[n] = st
                self.relay[n] = hdrs.get("x-relay", "?")
            except (OSError, http.client.HTTPException) as e:
                self.status[n] = "error: %s" % e
                conn.close()
                conn = None
            self.answered_at[n] = time.monotonic()
            self._run_task()
            left = PACE_S - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)
        if conn is not None:
            conn.close()

    def _run_task(self):
        with self._lock:
            task = self._task
        if task is not None and task():
            with self._lock:
                self._task = None
            self._task_done.set()

    def between(self, fn, timeout):
        """Runs fn() between writes until it returns True; waits for that (bounded)."""
        self._task_done.clear()
        with self._lock:
            self._task = fn
        if not self._task_done.wait(timeout):
            with self._lock:
                self._task = None
            raise AssertionError("task not done between writes within %ss" % timeout)


class HATest(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.lb = None
        self.writer = None

    def tearDown(self):
        if self.writer is not None:
            self.writer.halt.set()
            self.writer.join(timeout=30)
        if self.lb is not None:
            if self._outcome_failed():
                sys.stderr.write("\n----- %s log -----\n%s\n" % (self.lb.kind, self.lb.log()))
            self.lb.stop()
        super().tearDown()

    def watch_backlog(self, ports, backlog):
        """Polls the relays' /health until one relay reports influxdb1 down and holds at least
        `backlog` writes for it (bounded); returns the largest number held by one relay."""
        seen = {"peak": 0, "down": False}

        def held():
            for p in ports:
                for b in self.health(p)[1].get("backends", []):
                    if b.get("name") == "influxdb1":
                        seen["peak"] = max(seen["peak"], b.get("queue_writes", 0))
                        seen["down"] = seen["down"] or b.get("state") == "down"
            return seen["down"] and seen["peak"] >= backlog
        wait_until(held, timeout=30, step=0.1,
                   what="a relay holding %d writes for the dead influxdb1 (%s)" % (backlog, seen))
        return seen["peak"]

    def answered(self, writer, n, what):
        """Waits until the writer has had n more answers (the scenario moves on by traffic)."""
        last = max(writer.status, default=0)
        wait_until(lambda: max(writer.status, default=0) >= last + n, timeout=60, step=0.05,
                   what="%d more writes answered %s" % (n, what))

    def relay_conf(self, port, influxds):
        lines = ["[relay]", "shutdown-timeout = 5s", "",
                 "[http.ha]", "bind-addr = 127.0.0.1:%d" % port]
        for k, i in enumerate(influxds):
            lines += ["", "[http.ha.output.influxdb%d]" % (k + 1), "location = " + i.url,
                      "timeout = 2s", "buffer-size-mb = 64", "max-delay-interval = 1s"]
        lines += ["", "[udp.ha-udp]", "bind-addr = 127.0.0.1:%d" % port, "precision = n"]
        for k, i in enumerate(influxds):
            lines += ["", "[udp.ha-udp.output.influxdb%d]" % (k + 1),
                      "location = 127.0.0.1:%d" % i.udp_port, "mtu = 1400"]
        return "\n".join(lines) + "\n"

    @staticmethod
    def health(port):
        try:
            st, _, body = http_request(port, "GET", "/health", timeout=2)
            return st, json.loads(body)
        except (OSError, ValueError, http.client.HTTPException):
            return None, {}

    def relay_idle(self, port):
        """True when every backend of the relay on port is up and holds no write."""
        st, h = self.health(port)
        backends = h.get("backends", [])
        return st == 200 and len(backends) == 2 and all(
            b.get("state") == "up" and b.get("queue_writes") == 0 for b in backends)

    def points(self, influxd):
        rows = influxd.rows(DB, 'SELECT "seq", "v" FROM "ha"')
        return {r[0]: (r[1], r[2]) for r in rows}

    def run_scenario(self, kind):
        t_start = time.monotonic()
        i1 = self.influxd(db=DB, udp_db=DB)
        i2 = self.influxd(db=DB, udp_db=DB)
        influxds = [i1, i2]
        ports = [free_port(), free_port()]
        relays = [self.relay(self.relay_conf(p, influxds), wait_ports=[p], name="relay%d.ini" % k)
                  for k, p in enumerate(ports, 1)]
        lb = LoadBalancer(kind, self.tmp, free_port(), free_port(socket.SOCK_DGRAM), ports,
                          [i.http_port for i in influxds])
        self.lb = lb
        lb.start()
        wait_until(lambda: http_request(lb.port, "GET", "/ping", timeout=2)[0] == 204,
                   timeout=10, what="/ping through " + kind)

        writer = Writer(lb.port)
        self.writer = writer
        writer.start()
        self.answered(writer, 150, "before the outage")

        # 1. One influxd dies at a random moment and comes back on the same data dir. Meanwhile
        # the relays must see it down and hold its writes.
        i1.kill()
        peak = self.watch_backlog(ports, backlog=50)
        i1.start()
        t0 = time.monotonic()
        wait_until(lambda: all(self.relay_idle(p) for p in ports), timeout=30, step=0.1,
                   what="both relays drained to the restarted influxd")
        drain_s = time.monotonic() - t0
        self.answered(writer, 100, "after the drain")

        # 2. One relay dies (while holding nothing) and comes back.
        killed = {}

        def kill_relay1():
            if not self.relay_idle(ports[0]):
                return False
            relays[0].kill()
            killed["after_seq"] = max(writer.status)
            return True
        writer.between(kill_relay1, timeout=15)
        self.answered(writer, 250, "while relay1 is dead")
        relays[0].start(wait_ports=[ports[0]])
        restarted_seq = max(writer.status)
        # The load balancer puts it back (nginx after fail_timeout, HAProxy after `rise` checks).
        wait_until(lambda: any(writer.relay.get(n, "") in ("relay1", "127.0.0.1:%d" % ports[0])
                               for n in range(restarted_seq, max(writer.status) + 1)),
                   timeout=15, step=0.2, what="writes served by the restarted relay")
        self.answered(writer, 100, "after relay1's return")
        writer.halt.set()
        writer.join(timeout=30)

        # UDP through the load balancer (nginx stream block), at the end, on a calm system.
        if lb.udp:
            self.send_udp(lb, influxds)

        # Every acknowledged write in both influxd, once the relays are done.
        acked = sorted(n for n, st in writer.status.items() if st == 204)
        want = {BASE_NS + n * 1000: (n, n * 0.25 + 0.125) for n in acked}
        t0 = time.monotonic()
        wait_until(lambda: all(self.relay_idle(p) for p in ports), timeout=30, step=0.1,
                   what="relays drained at the end")
        got = [{}, {}]

        def complete():
            for k, i in enumerate(influxds):
                got[k] = self.points(i)
            return all(set(want) <= set(g) for g in got)
        try:
            wait_until(complete, timeout=30, step=0.5, what="acknowledged writes in both influxd")
        finally:
            self.report(kind, ports, writer, acked, got, (peak, drain_s),
                        time.monotonic() - t_start, killed)
        for k in (0, 1):
            missing = sorted(set(want) - set(got[k]))
            self.assertEqual(missing, [], "influxdb%d lacks acknowledged writes" % (k + 1))
            for ts, (seq, v) in want.items():
                self.assertEqual(got[k][ts], (seq, v), "influxdb%d: wrong point" % (k + 1))
        self.assertEqual(len(got[0]), len(got[1]), "point counts differ")
        self.assertEqual(got[0], got[1], "the two influxd hold different points or values")
        # The writes kept going: the load balancer routed around the dead relay.
        self.assertGreaterEqual(len(acked), 0.95 * len(writer.status))
        # Both relays still stop cleanly (and, in sanitizer builds, without a report).
        for k, r in enumerate(relays, 1):
            self.assertEqual(r.terminate(), 0, "relay%d: exit status after SIGTERM" % k)
            self.assertNotRegex(r.log(), "AddressSanitizer|LeakSanitizer|runtime error:",
                                "relay%d: sanitizer report" % k)

    def send_udp(self, lb, influxds, count=200, per_round=20):
        """Sends count points over UDP through the load balancer, in rounds: the next round
        once both influxd hold the previous one (influxd's UDP socket has the default small
        buffer; a datagram lost on the way fails the test, none is resent)."""
        counts = [0, 0]

        def arrived(n):
            for k, i in enumerate(influxds):
                counts[k] = i.count(DB, "ha_udp", field="seq")
            return counts[0] >= n and counts[1] >= n
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for first in range(1, count + 1, per_round):
                    for n in range(first, first + per_round):
                        s.sendto(("ha_udp,client=u1 seq=%di %d\n"
                                  % (n, BASE_NS + n * 1000)).encode(), ("127.0.0.1", lb.udp_port))
                    wait_until(lambda: arrived(first + per_round - 1), timeout=15, step=0.1,
                               what="UDP points in both influxd")
            self.assertEqual(counts, [count, count])
        finally:
            sys.stderr.write("UDP via the load balancer: sent %d, influxdb1 %d, influxdb2 %d\n"
                             % (count, counts[0], counts[1]))

    def report(self, kind, ports, writer, acked, got, outage, total_s, killed):
        other = {}
        for st in writer.status.values():
            if st != 204:
                key = str(st)[:60]
                other[key] = other.get(key, 0) + 1
        by_relay = {}
        names = {"127.0.0.1:%d" % p: "relay%d" % k for k, p in enumerate(ports, 1)}
        for n in acked:
            r = ", ".join(names.get(x, x) for x in writer.relay.get(n, "?").split(", "))
            by_relay[r] = by_relay.get(r, 0) + 1
        sys.stderr.write(
            "\nHA via %s: writes sent %d, acknowledged (204) %d, other answers %s;\n"
            "  present: influxdb1 %d points, influxdb2 %d points (acknowledged present in both:"
            " %d); acknowledged per relay %s;\n  influxdb1 outage: up to %d writes held by one"
            " relay, drained %.1fs after its restart; relay1 killed after seq %s;"
            " scenario %.1fs\n"
            % (kind, len(writer.status), len(acked), other or "none", len(got[0]), len(got[1]),
               sum(1 for n in acked if BASE_NS + n * 1000 in got[0]
                   and BASE_NS + n * 1000 in got[1]),
               by_relay, outage[0], outage[1], killed.get("after_seq"), total_s))

    def test_nginx(self):
        self.run_scenario("nginx")

    def test_haproxy(self):
        self.run_scenario("haproxy")


if __name__ == "__main__":
    unittest.main()
