#!/usr/bin/python3
"""Idle-fleet probe (bench/README.md): N clients each do one write and keep their connection open
(a fleet of agents between flushes); then fresh clients write, one new connection each. Prints
what a user sees: how many idle clients got 204, fresh-write latency p50/p99 and failures, and
the relay's threads and RSS (/proc/PID/status) with the fleet connected.

The relay under test runs with two nginx sinks as outputs (as in http_bench.py): this relay
(--relay, default config: max-connections 10000, workers one per core) or the Go relay (--go,
built from its repository; its config is written here).

Usage: bench/idle_fleet.py --relay build-rel/influxdb-relay [--n 5000] [--fresh 200]
       bench/idle_fleet.py --go /tmp/go-relay [--n 5000]
"""

import argparse
import http.client
import os
import resource
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "test", "it"))
import harness  # noqa: E402
import http_bench  # noqa: E402


def relay_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return int(fields["Threads"][0]), int(fields["VmRSS"][0]) // 1024


def open_fleet(port, n):
    socks, failed = [], 0
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            body = b"idle,c=%d v=1i 1700000000000000000" % i
            s.sendall(b"POST /write?db=bench HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n"
                      b"\r\n" % len(body) + body)
            socks.append(s)
        except OSError:
            failed += 1
    for s in socks:
        try:
            if not s.recv(4096).startswith(b"HTTP/1.1 204"):
                failed += 1
        except OSError:
            failed += 1
    return socks, failed


def fresh_writes(port, m):
    lat, ok = [], 0
    for _ in range(m):
        a = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("POST", "/write?db=bench", body=b"fresh v=1i 1700000000000000000")
            r = c.getresponse()
            r.read()
            ok += r.status == 204
            c.close()
        except OSError:
            pass
        lat.append((time.monotonic() - a) * 1000)
    lat.sort()
    return ok, lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", help="this relay's binary")
    ap.add_argument("--go", help="the Go relay's binary")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--fresh", type=int, default=200)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="relay-fleet-") as tmp:
        try:
            sinks = []
            for i in range(2):
                _, p = http_bench.start_nginx(tmp, "sink%d" % i)
                sinks.append("http://127.0.0.1:%d/write" % p)
            if args.go:
                relay, port = http_bench.run_go_relay(args.go, tmp, sinks)
                name = "go relay"
            else:
                relay, port = http_bench.run_relay(args.relay, tmp, sinks, "relay")
                name = "relay"
            idle_ok, idle_lat = fresh_writes(port, args.fresh)
            threads0, rss0 = relay_status(relay.pid)
            t0 = time.monotonic()
            socks, failed = open_fleet(port, args.n)
            opened = time.monotonic() - t0
            threads, rss = relay_status(relay.pid)
            ok, lat = fresh_writes(port, args.fresh)
            print("%s: idle relay threads=%d rss_mb=%d fresh p50=%.2f ms p99=%.2f ms"
                  % (name, threads0, rss0, idle_lat[len(idle_lat) // 2],
                     idle_lat[int(len(idle_lat) * 0.99) - 1]))
            print("%s: idle=%d opened_in=%.1fs idle_failed=%d threads=%d rss_mb=%d "
                  "fresh_ok=%d/%d fresh_p50_ms=%.2f fresh_p99_ms=%.2f fresh_max_ms=%.2f"
                  % (name, args.n, opened, failed, threads, rss, ok, args.fresh,
                     lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1], lat[-1]))
            for s in socks:
                s.close()
        finally:
            harness._kill_all()


if __name__ == "__main__":
    main()
