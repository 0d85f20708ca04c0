#!/usr/bin/python3
"""Durable spool benchmarks (bench/README.md, section "spool"); reuses bench/http_bench.py.

ab      spool off vs spool on (spool-sync = 1s, the default) vs spool on with spool-sync = 0,
        both outputs up, 100-line bodies, wrk 2 threads x --conns connections. Three relay
        processes on the same two backends (real influxd by default, --backend nginx for the
        nginx sinks), measured interleaved: off, on, sync0, off, on, sync0... (--pairs rounds),
        so a neighbour's load hits all three alike. Per run: points/s, relay CPU-s per million
        points (utime+stime), bytes the relay wrote to disk (/proc/PID/io write_bytes); then
        ranges, medians and the per-round ratios on/off and sync0/off.
outage  one relay, two backends, both outputs spooled (buffer-size-mb = --buffer-mb, default
        16). The relay's max rate is measured first (wrk, --secs) unless --rate is given; a paced
        client (wrk -t1, RATE) then writes at --load (default 0.5) of it. After --warm seconds
        backend b2 is killed (SIGKILL) for --outage seconds (default 60), then started again on
        the same port; the client keeps writing until b2's spool is empty. /metrics
        (points_received_total, backend_spool_bytes, _spool_writes, _queue_bytes) and VmRSS
        are sampled once a second (CSV with --csv). Reports spool growth, ingest rate, the
        drain once b2 is back (b2's send rate and the backlog's net decrease), RSS during the
        outage, time to empty.

Usage: bench/spool_bench.py --relay build-rel/influxdb-relay ab [--pairs 3] [--secs 4]
                            [--conns 32] [--backend influxd|nginx] [--buffer-mb N]
                            [--perf DIR]
       bench/spool_bench.py --relay build-rel/influxdb-relay outage [--outage 60] [--rate REQ_S]
                            [--load 0.5] [--buffer-mb 16] [--backend influxd|nginx] [--csv F]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import http_bench  # noqa: E402
from http_bench import harness  # noqa: E402

LINES = 100


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def disk_write_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_backends(args, tmp):
    """Two backends: [(url, handle)]; handle is an Influxd, or the nginx Popen."""
    out = []
    for i in range(2):
        if args.backend == "influxd":
            d = harness.Influxd(tmp).start()
            d.create_db("bench")
            out.append((d.url, d))
        else:
            p, port = http_bench.start_nginx(tmp, "sink%d-%d" % (i + 1, time.monotonic_ns()))
            out.append(("http://127.0.0.1:%d/write" % port, p))
    return out


def spooled_relay(args, tmp, urls, name, sync="1s", size_mb=4096, buffer_mb=None):
    d = os.path.join(tmp, "spool-" + name)
    os.makedirs(d)
    extra = "spool-size-mb = %d\nspool-sync = %s\n" % (size_mb, sync)
    if buffer_mb is not None:
        extra += "buffer-size-mb = %d\n" % buffer_mb
    return http_bench.run_relay(args.relay, tmp, urls, name, output_extra=extra,
                                relay_extra="spool-dir = %s\n" % d)


# --------------------------------------------------------------------------- ab

def bench_ab(args, tmp):
    urls = [u for u, _ in start_backends(args, tmp)]
    relays = [("off",) + http_bench.run_relay(args.relay, tmp, urls, "off"),
              ("on",) + spooled_relay(args, tmp, urls, "on", buffer_mb=args.buffer_mb),
              ("sync0",) + spooled_relay(args, tmp, urls, "sync0", sync="0",
                                         buffer_mb=args.buffer_mb)]
    body = http_bench.make_body(tmp, LINES)
    print("load average at start: %s  (backend: %s, %d conns, %d s runs, spooled outputs: "
          "buffer-size-mb %s)" % (load_avg(), args.backend, args.conns, args.secs,
                                  "default" if args.buffer_mb is None else args.buffer_mb))
    runs = {label: [] for label, _, _ in relays}
    for rnd in range(args.pairs):
        for label, proc, port in relays:
            w0 = disk_write_bytes(proc.pid)
            perf = None
            if args.perf and rnd == args.pairs - 1:
                perf = subprocess.Popen(["perf", "record", "-g", "-q", "-p", str(proc.pid), "-o",
                                         os.path.join(args.perf, label + ".data"), "--", "sleep",
                                         str(max(1, args.secs - 1))], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                harness._live.add(perf)
            r = http_bench.measure(port, body, LINES, args.secs, args.conns, proc.pid)
            if perf:
                perf.wait(timeout=60)
            r["disk_mb_s"] = (disk_write_bytes(proc.pid) - w0) / r["secs"] / 1e6
            runs[label].append(r)
            print(http_bench.fmt("round %d %-5s" % (rnd + 1, label), r) +
                  "  disk %.1f MB/s" % r["disk_mb_s"])
            sys.stdout.flush()
    print("load average at end: %s" % load_avg())
    print_ab(runs, relays)
    for _, proc, _ in relays:
        harness._kill(proc)


def rng(xs, f="%.0f"):
    return (f + " - " + f + " (median " + f + ")") % (min(xs), max(xs), statistics.median(xs))


def print_ab(runs, relays):
    print("\n%-6s %-40s %-34s %s" % ("", "points/s", "CPU s per M points", "peak RSS"))
    for label, proc, _ in relays:
        rs = runs[label]
        print("%-6s %-40s %-34s %d MiB" % (
            label, rng([r["points_s"] for r in rs]),
            rng([r["cpu_s_per_mpoints"] for r in rs], "%.3f"),
            http_bench.peak_rss_kb(proc.pid) // 1024))
    off = runs["off"]
    for label in ("on", "sync0"):
        tp = [100 * r["points_s"] / o["points_s"] for r, o in zip(runs[label], off)]
        cpu = [r["cpu_s_per_mpoints"] / o["cpu_s_per_mpoints"] for r, o in zip(runs[label], off)]
        print("%-5s / off, same round: points/s %s %%, CPU per point %s x" % (
            label, rng(tp), rng(cpu, "%.2f")))


# --------------------------------------------------------------------------- outage

def scrape(port):
    """{(name, backend or None): value} for the families the outage report uses."""
    _, _, body = harness.http_request(port, "GET", "/metrics", timeout=5)
    want = ("influxdb_relay_points_received_total", "influxdb_relay_bytes_received_total",
            "influxdb_relay_backend_spool_bytes", "influxdb_relay_backend_spool_writes",
            "influxdb_relay_backend_queue_bytes")
    out = {}
    for line in body.decode().splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in want:
            continue
        backend = None
        if 'backend="' in line:
            backend = line.split('backend="', 1)[1].split('"', 1)[0]
        key = (name.replace("influxdb_relay_", "").replace("backend_", ""), backend)
        out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


class Sampler(threading.Thread):
    """Once a second: /metrics and VmRSS of the relay, with the time and the phase."""

    def __init__(self, port, pid):
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.phase = "warm"
        self.rows = []
        self.stop = threading.Event()

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                m = scrape(self.port)
            except OSError:
                m = {}
            m["rss_kb"] = vm_rss_kb(self.pid)
            m["t"], m["phase"] = t - t0, self.phase
            self.rows.append(m)
            if len(self.rows) % 5 == 0:
                print("  t=%4.0f %-6s b2 spool %7.1f MB %7d writes, queue b2 %5.1f MiB, "
                      "RSS %5.1f MiB" % (m["t"], m["phase"], m.get(("spool_bytes", "b2"), 0) / 1e6,
                                         m.get(("spool_writes", "b2"), 0),
                                         m.get(("queue_bytes", "b2"), 0) / 2**20,
                                         m["rss_kb"] / 1024))
                sys.stdout.flush()
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t)))

    def last(self, key, default=0):
        return self.rows[-1].get(key, default) if self.rows else default


def max_rate(args, tmp, port, pid, body):
    r = http_bench.measure(port, body, LINES, args.secs, args.conns, pid)
    print("max rate (wrk -t2 -c%d, %d s): %.0f req/s = %.0f points/s, load %s"
          % (args.conns, args.secs, r["rps"], r["points_s"], load_avg()))
    return r["rps"]


def paced_client(port, body, rate, tmp):
    env = dict(os.environ, BODY=body, WPATH="/write?db=bench", RATE=str(rate))
    out = open(os.path.join(tmp, "paced-wrk.out"), "w")
    p = subprocess.Popen(["wrk", "-t1", "-c16", "-d3600s", "--latency", "-s",
                          os.path.join(HERE, "http_wrk.lua"), "http://127.0.0.1:%d" % port],
                         stdout=out, stderr=subprocess.STDOUT, env=env)
    harness._live.add(p)
    return p


def bench_outage(args, tmp):
    backends = start_backends(args, tmp)
    urls = [u for u, _ in backends]
    relay, port = spooled_relay(args, tmp, urls, "outage", buffer_mb=args.buffer_mb,
                                size_mb=args.spool_mb)
    body = http_bench.make_body(tmp, LINES)
    rate = args.rate or args.load * max_rate(args, tmp, port, relay.pid, body)
    print("paced client: %.0f req/s (%.0f points/s), outage %d s, buffer-size-mb %d"
          % (rate, rate * LINES, args.outage, args.buffer_mb))
    sampler = Sampler(port, relay.pid)
    sampler.start()
    client = paced_client(port, body, rate, tmp)
    time.sleep(args.warm)
    b2 = backends[1][1]
    kill_backend(b2)
    sampler.phase = "outage"
    print("b2 killed at t=%.0f s, load %s" % (sampler.last("t"), load_avg()))
    time.sleep(args.outage)
    restart_backend(args, tmp, backends)
    sampler.phase = "back"
    print("b2 back at t=%.0f s, load %s" % (sampler.last("t"), load_avg()))
    # Caught up: b2's spool holds no more than b1's (the writes in flight: spool_writes counts
    # every write not yet delivered, so it never reaches 0 while the client writes).
    ok = True
    try:
        harness.wait_until(lambda: caught_up(sampler), timeout=args.max_drain, step=0.2,
                           what="b2's spool back to b1's level")
    except AssertionError as e:
        print("NOT EMPTIED: %s" % e)
        ok = False
    sampler.phase = "empty"
    time.sleep(3)
    sampler.stop.set()
    sampler.join()
    client.send_signal(signal.SIGINT)
    client.wait(timeout=30)
    print("load average at end: %s" % load_avg())
    if args.csv:
        write_csv(args.csv, sampler.rows)
    report_outage(sampler.rows, ok)
    harness._kill(relay)


def caught_up(sampler):
    if not sampler.rows or sampler.rows[-1]["phase"] != "back":
        return False
    r = sampler.rows[-1]
    return r.get(("spool_writes", "b2"), 1e18) <= r.get(("spool_writes", "b1"), 0) + 50


def kill_backend(b):
    if isinstance(b, harness.Influxd):
        b.kill()
    else:
        harness._kill(b)


def restart_backend(args, tmp, backends):
    url, b = backends[1]
    if isinstance(b, harness.Influxd):
        b.start()
        return
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    d = os.path.join(tmp, "sink2-again")
    p = http_bench.start_nginx_conf(tmp, "sink2-again",
                                    http_bench.NGINX_CONF.format(d=d, port=port), port)
    backends[1] = (url, p)


def write_csv(path, rows):
    keys = [("spool_bytes", "b2"), ("spool_writes", "b2"), ("queue_bytes", "b2"),
            ("queue_bytes", "b1"), ("spool_bytes", "b1"), ("points_received_total", None)]
    with open(path, "w") as f:
        f.write("t,phase,rss_kb," + ",".join("%s_%s" % (k, b or "") for k, b in keys) + "\n")
        for r in rows:
            f.write("%.1f,%s,%d,%s\n" % (r["t"], r["phase"], r["rss_kb"],
                                         ",".join("%d" % r.get(k, 0) for k in keys)))


def slope(rows, key):
    """Per second, from the first to the last row."""
    if len(rows) < 2:
        return 0.0
    return (rows[-1].get(key, 0) - rows[0].get(key, 0)) / (rows[-1]["t"] - rows[0]["t"])


def report_outage(rows, emptied):
    by = {ph: [r for r in rows if r["phase"] == ph] for ph in ("warm", "outage", "back", "empty")}
    out, back = by["outage"], by["back"]
    sb, sw = ("spool_bytes", "b2"), ("spool_writes", "b2")
    pts = ("points_received_total", None)
    byts = ("bytes_received_total", None)
    peak = max(out + back, key=lambda r: r.get(sb, 0))
    ingest_w = slope(out, pts) / LINES
    ingest_mb = slope(out, byts) / 1e6
    print("\ningest during the outage: %.0f writes/s, %.0f points/s, %.1f MB/s of bodies"
          % (ingest_w, slope(out, pts), ingest_mb))
    print("spool of b2 at its peak: %.1f MB, %d writes (grew %.1f MB/s, %.0f writes/s)"
          % (peak.get(sb, 0) / 1e6, peak.get(sw, 0), slope(out, sb) / 1e6, slope(out, sw)))
    rss = [r["rss_kb"] / 1024 for r in out]
    warm_rss = [r["rss_kb"] / 1024 for r in by["warm"]] or [0]
    print("relay VmRSS: warm-up %.1f-%.1f MiB; outage %.1f-%.1f MiB (first 5 s %.1f, last 5 s "
          "%.1f); b2 queue_bytes during the outage max %.1f MiB"
          % (min(warm_rss), max(warm_rss), min(rss), max(rss), max(rss[:5]), max(rss[-5:]),
             max(r.get(("queue_bytes", "b2"), 0) for r in out) / 2**20))
    t_back = back[0]["t"] if back else 0
    falling = [r for r in back if r["t"] > peak["t"] and r.get(sw, 0) < peak.get(sw, 0)]
    if not falling:
        print("b2's spool never fell")
        return
    t_empty = by["empty"][0]["t"] if emptied and by["empty"] else back[-1]["t"]
    drain = [r for r in back if r["t"] >= peak["t"]]
    if emptied and by["empty"]:
        drain.append(by["empty"][0])
    net_w = -slope(drain, sw)
    net_mb = -slope(drain, sb) / 1e6
    sent_w = net_w + slope(drain, pts) / LINES
    print("b2 back at t=%.0f s; spool peaks %.0f s later (the retry wait), caught up %.0f s "
          "after b2 was back (%.0f s of draining)" % (t_back, peak["t"] - t_back, t_empty - t_back,
                                                       t_empty - peak["t"]))
    print("draining: backlog falls %.0f writes/s (%.1f MB/s of spool), b2 takes %.0f writes/s "
          "(backlog + live); ingest meanwhile %.0f writes/s"
          % (net_w, net_mb, sent_w, slope(drain, pts) / LINES))
    print("ratios vs the outage's ingest rate: b2's send rate %.1f x, net drain %.1f x "
          "(target >= 2x)" % (sent_w / ingest_w, net_w / ingest_w))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default=os.path.join(HERE, "..", "build", "influxdb-relay"))
    ap.add_argument("--backend", choices=("influxd", "nginx"), default="influxd")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--secs", type=int, default=4)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ab = sub.add_parser("ab")
    ab.add_argument("--pairs", type=int, default=3)
    ab.add_argument("--buffer-mb", type=int,
                    help="buffer-size-mb of the spooled outputs (default: not set, i.e. 0)")
    ab.add_argument("--perf", metavar="DIR",
                    help="perf record -g each relay during the last round: DIR/LABEL.data")
    o = sub.add_parser("outage")
    o.add_argument("--outage", type=int, default=60)
    o.add_argument("--warm", type=int, default=10)
    o.add_argument("--rate", type=float, help="client requests/s (default: --load x max)")
    o.add_argument("--load", type=float, default=0.5)
    o.add_argument("--buffer-mb", type=int, default=16)
    o.add_argument("--spool-mb", type=int, default=4096)
    o.add_argument("--max-drain", type=int, default=300)
    o.add_argument("--csv")
    args = ap.parse_args()
    http_bench.raise_nofile()
    with tempfile.TemporaryDirectory(prefix="relay-spool-bench-", dir="/var/tmp") as tmp:
        try:
            if args.cmd == "ab":
                bench_ab(args, tmp)
            else:
                bench_outage(args, tmp)
        finally:
            harness._kill_all()


if __name__ == "__main__":
    main()
