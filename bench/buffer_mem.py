#!/usr/bin/python3
"""Memory benchmark of the retry buffer (issue #5): one backend down, buffer-size-mb = 64,
500 MB offered through the real relay. Reports idle RSS, peak RSS while buffering (sampled every
20 ms from /proc), RSS after recovery and drain, and checks that the recovered backend received
exactly the writes it had accepted, byte for byte and in order (SHA-256 of the stream).

    RELAY_BIN=build/influxdb-relay /usr/bin/python3 bench/buffer_mem.py [OFFERED_MB] [BODY_KB] [CLIENTS]

With CLIENTS > 1 (each on its own connection, so the relay's allocations spread over many
malloc arenas) the arrival order is not known to the driver: the check becomes "b2 received
exactly the bytes it held".

Pass: peak <= idle + 64 MiB x 1.15. Backends are small Python sinks (204 after reading the whole
body): b1 always up, b2 refusing connections until the offer is over, then up.
"""

import hashlib
import http.client
import http.server
import os
import re
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "it"))
from harness import Relay, free_port, http_request, wait_until  # noqa: E402

BUFFER_MB = 64


class Sink:
    """HTTP sink: answers 204 after reading the body; hashes every /write body in order."""

    def __init__(self, port):
        self.port = port
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.writes = 0
        self.lock = threading.Lock()
        sink = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with sink.lock:
                    sink.sha.update(body)
                    sink.bytes += len(body)
                    sink.writes += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class S(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = S(("127.0.0.1", port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(port, name, backend):
    _, _, body = http_request(port, "GET", "/metrics")
    m = re.search(r'^influxdb_relay_%s\{[^}]*backend="%s"[^}]*\} (\S+)$' % (name, backend),
                  body.decode(), re.M)
    return float(m.group(1)) if m else None


def body_of(i, size):
    """A body of about size bytes: numbered lines with explicit timestamps."""
    lines = []
    n = 0
    j = 0
    while n < size - 120:
        line = b"mem,host=h%d,w=%d value=%di,pad=\"%s\" %d\n" % (
            j % 8, i, j, b"p" * 40, 1600000000000000000 + i * 10000 + j)
        lines.append(line)
        n += len(line)
        j += 1
    return b"".join(lines)


def offer(rport, total, body_kb, clients):
    """Posts numbered bodies until total bytes were sent; returns (bytes, writes)."""
    lock = threading.Lock()
    state = {"sent": 0, "next": 1}

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", rport, timeout=30)
        while True:
            with lock:
                if state["sent"] >= total:
                    return
                i = state["next"]
                state["next"] += 1
            b = body_of(i, body_kb * 1024)
            with lock:
                state["sent"] += len(b)
            conn.request("POST", "/write?db=db", body=b)
            r = conn.getresponse()
            r.read()
            if r.status != 204:
                raise SystemExit("write %d: status %d" % (i, r.status))

    ts = [threading.Thread(target=client) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return state["sent"], state["next"] - 1


def main():
    offered_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    body_kb = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    tmp = tempfile.mkdtemp(prefix="buffer-mem-")
    p1, p2, rport = free_port(), free_port(), free_port()
    Sink(p1)
    conf = """[http.r]
bind-addr = 127.0.0.1:%d
write-timeout = 5s
[http.r.output.b1]
location = http://127.0.0.1:%d/write
[http.r.output.b2]
location = http://127.0.0.1:%d/write
buffer-size-mb = %d
max-delay-interval = 1s
""" % (rport, p1, p2, BUFFER_MB)
    relay = Relay(tmp, conf).start(wait_ports=[rport])
    pid = relay.proc.pid
    try:
        conn = http.client.HTTPConnection("127.0.0.1", rport, timeout=30)
        # Warm up (allocator, curl handles, first connection), then idle RSS.
        conn.request("POST", "/write?db=db", body=body_of(0, 1024))
        conn.getresponse().read()
        time.sleep(1.5)
        idle = rss_kb(pid)
        peak = [idle]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kb(pid))
                time.sleep(0.02)

        threading.Thread(target=sample, daemon=True).start()
        t0 = time.monotonic()
        count = offer(rport, offered_mb * 1000 * 1000, body_kb, clients)
        sent, i = count
        offer_s = time.monotonic() - t0
        held = int(metric(rport, "backend_queue_writes", "b2"))
        held_bytes = int(metric(rport, "backend_queue_bytes", "b2"))
        time.sleep(0.5)
        peak_buffering = peak[0]
        # Recovery: b2 comes up; the relay must deliver exactly writes 0..held-1 in order
        # (write 0 is the warm-up; equal-size writes: once full, no later write fits).
        expect = hashlib.sha256()
        expect.update(body_of(0, 1024))
        for j in range(1, held if clients == 1 else 0):
            expect.update(body_of(j, body_kb * 1024))
        s2 = Sink(p2)
        wait_until(lambda: metric(rport, "backend_queue_writes", "b2") == 0, timeout=120,
                   what="b2 drained")
        time.sleep(2.0)
        stop.set()
        after = rss_kb(pid)
        if "-v" in sys.argv:
            os.system("awk '/^[0-9a-f]+-/{r=$0} /^Rss:/{if ($2 > 1000) print $2, r}' /proc/%d/smaps"
                      % pid)
        if clients == 1:
            ok_bytes = s2.sha.digest() == expect.digest() and s2.writes <= held
        else:
            ok_bytes = s2.bytes == int(metric(rport, "backend_bytes_delivered_total", "b2"))
        bound = idle + BUFFER_MB * 1024 * 1.15
        print("offered_mb=%d body_kb=%d clients=%d writes=%d offer_s=%.1f" % (
            sent // 10**6, body_kb, clients, i, offer_s))
        print("b2 held writes=%d bytes=%d (%.1f MiB of %d MiB)" % (held, held_bytes,
                                                                 held_bytes / 2**20, BUFFER_MB))
        print("rss_kb idle=%d peak=%d after_drain=%d bound=%d peak_over_idle_mib=%.1f" % (
            idle, peak_buffering, after, bound, (peak_buffering - idle) / 1024))
        print("b2 received requests=%d bytes=%d byte_exact_in_order=%s" % (s2.writes, s2.bytes,
                                                                         ok_bytes))
        print("PASS" if peak_buffering <= bound and ok_bytes else "FAIL")
    finally:
        relay.terminate(timeout=60)
        relay.kill()
        sys.stdout.write(relay.log()[-1500:] if "-v" in sys.argv else "")


if __name__ == "__main__":
    main()
