#!/usr/bin/python3
"""HTTP write-path benchmark (bench/README.md, section HTTP).

wrk (2 threads, 32 and 1000 connections) POSTs bodies of 1, 100 and 5000 lines with explicit
timestamps to
  direct   one nginx sink answering 204 after reading the whole body (libnginx-mod-http-echo
           `echo_read_request_body`): the ceiling,
  mirror   an nginx `mirror` relay (bench/nginx-mirror.conf) in front of two sinks: the floor of a
           fan-out with no logic,
  relay    this relay (--relay) with two sinks as outputs, and with --before a second build (e.g.
           main, for a before/after in one sitting), with --go the Go relay,
and, with --influxd, 100-line bodies to the relay with two real influxd vs straight to one influxd;
with --gzip, the relay with content-encoding = identity vs gzip on both outputs (two relay
processes, the same two sinks, one after the other): bytes on the wire per byte delivered
(from /metrics) and relay CPU per million points.
Reports requests/s, points/s, p50/p99, CPU-seconds per million points of the relay process
(utime+stime from /proc/PID/stat; the mirror's nginx too) and its peak RSS (VmHWM), each the
median of --runs runs, then the ratios the targets are stated in (relay/direct points/s, relay
CPU / mirror CPU, 1000-connection / 32-connection points/s). Points are those of answered (2xx)
writes only: a refused write (503) carried none; errors are printed beside.

Usage: bench/http_bench.py --relay build-rel/influxdb-relay [--before OLD_BIN] [--go GO_BIN]
           [--secs 6] [--runs 3] [--lines 1,100,5000] [--conns 32,1000] [--no-mirror]
           [--influxd] [--gzip] [--no-nginx]
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "it"))
import harness  # noqa: E402

NGINX_CONF = """
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
# One process, no master: killing it leaves no orphaned worker behind.
master_process off;
daemon off;
worker_rlimit_nofile 20000;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 256m;
  client_body_buffer_size 1m;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location /write {{ echo_read_request_body; echo_status 204; }}
  }}
}}
"""

HZ = os.sysconf("SC_CLK_TCK")


def raise_nofile():
    """wrk with 1000 connections, and nginx, inherit this process's open-files limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_nginx_conf(tmp, name, text, port):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(text)
    p = subprocess.Popen(["nginx", "-c", conf, "-p", d], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    harness._live.add(p)
    harness.wait_until(lambda: harness.port_open(port), what=name)
    return p


def start_nginx(tmp, name):
    port = harness.free_port()
    d = os.path.join(tmp, name)
    return start_nginx_conf(tmp, name, NGINX_CONF.format(d=d, port=port), port), port


def start_mirror(tmp, b1, b2):
    port = harness.free_port()
    with open(os.path.join(HERE, "nginx-mirror.conf")) as f:
        template = f.read()
    d = os.path.join(tmp, "mirror")
    text = template.format(dir=d, port=port, b1=b1, b2=b2)
    return start_nginx_conf(tmp, "mirror", text, port), port


def make_body(tmp, lines):
    path = os.path.join(tmp, "body%d.lp" % lines)
    ts = 1700000000000000000
    with open(path, "w") as f:
        for i in range(lines):
            # About 85 bytes a line, a typical telegraf cpu line.
            f.write("cpu,host=server%04d,region=eu-west-1 usage_user=%d.5,usage_idle=%di %d\n"
                    % (i % 1000, i % 100, i, ts + i))
    return path


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def wrk(port, body, secs, path="/write?db=bench", conns=32):
    env = dict(os.environ, BODY=body, WPATH=path)
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % secs, "--latency", "-s",
                          os.path.join(HERE, "http_wrk.lua"), "http://127.0.0.1:%d" % port],
                         capture_output=True, text=True, env=env, timeout=secs + 60)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    raise RuntimeError("wrk said: " + out.stdout + out.stderr)


# Extra keys for every output; the default (unbuffered) config is what is measured. (Until the
# unbuffered queue bound went from 8 to 32 MiB, 32 concurrent 425 KB writes overflowed it and the
# bench used "buffer-size-mb = 64" here.)
OUTPUT_EXTRA = ""


def run_relay(relay_bin, tmp, outputs, name, output_extra=OUTPUT_EXTRA, relay_extra=""):
    """This relay (any build: the config uses no key newer than the first release, unless
    output_extra (every output) or relay_extra ([relay]) adds one)."""
    port = harness.free_port()
    conf = ("[relay]\nlog-level = warn\n%s\n[http.bench]\nbind-addr = 127.0.0.1:%d\n"
            "max-body-mb = 64\n" % (relay_extra, port))
    for i, url in enumerate(outputs):
        conf += "\n[http.bench.output.b%d]\nlocation = %s\n%s" % (i + 1, url, output_extra)
    path = os.path.join(tmp, name + ".ini")
    with open(path, "w") as f:
        f.write(conf)
    log = open(path + ".log", "wb")
    p = subprocess.Popen([relay_bin, "-config", path], stderr=log, stdout=log)
    harness._live.add(p)
    harness.wait_until(lambda: harness.port_open(port), what="relay " + name)
    return p, port


def run_go_relay(go_bin, tmp, outputs):
    port = harness.free_port()
    conf = '[[http]]\nname = "bench"\nbind-addr = "127.0.0.1:%d"\noutput = [\n' % port
    for i, url in enumerate(outputs):
        conf += '  { name = "b%d", location = "%s" },\n' % (i + 1, url)
    conf += "]\n"
    path = os.path.join(tmp, "go.toml")
    with open(path, "w") as f:
        f.write(conf)
    log = open(path + ".log", "wb")
    p = subprocess.Popen([go_bin, "-config", path], stderr=log, stdout=log)
    harness._live.add(p)
    harness.wait_until(lambda: harness.port_open(port), what="Go relay")
    return p, port


def measure(port, body, lines, secs, conns, pid=None, path="/write?db=bench"):
    t0 = cpu_ticks(pid) if pid else 0
    r = wrk(port, body, secs, path=path, conns=conns)
    # Only answered writes count: a 503 (buffer full, max-inflight-mb) carried no point, so the
    # points/s and the CPU per point are those of the 2xx answers (errors are printed beside).
    points = max(r["requests"] - r["errors"], 0) * lines
    r["points_s"] = points / r["secs"]
    if pid and points > 0:
        r["cpu_s_per_mpoints"] = (cpu_ticks(pid) - t0) / HZ / (points / 1e6)
    return r


def median_of(runs):
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def fmt(label, r, rss=None):
    s = "%-30s %9.0f req/s %11.0f points/s  p50 %7.2f ms  p99 %7.2f ms" % (
        label, r["rps"], r["points_s"], r["p50_ms"], r["p99_ms"])
    if "cpu_s_per_mpoints" in r:
        s += "  cpu %8.3f s/Mpoints" % r["cpu_s_per_mpoints"]
    if rss:
        s += "  peak RSS %d MiB" % (rss // 1024)
    if r.get("errors"):
        s += "  ERRORS %d" % r["errors"]
    return s


def bench_nginx(args, tmp):
    n1, p1 = start_nginx(tmp, "sink1")
    n2, p2 = start_nginx(tmp, "sink2")
    sinks = ["http://127.0.0.1:%d/write" % p for p in (p1, p2)]
    targets = []  # (label, pid or None, port)
    targets.append(("direct", None, p1))
    if not args.no_mirror:
        mirror, mport = start_mirror(tmp, p1, p2)
        targets.append(("mirror", mirror.pid, mport))
    if args.before:
        before, bport = run_relay(args.before, tmp, sinks, "before")
        targets.append(("before", before.pid, bport))
    relay, rport = run_relay(args.relay, tmp, sinks, "relay")
    targets.append(("relay", relay.pid, rport))
    if args.go:
        gor, gport = run_go_relay(args.go, tmp, sinks)
        targets.append(("go", gor.pid, gport))
    res = {}
    for lines in args.lines:
        body = make_body(tmp, lines)
        for conns in args.conns:
            for label, pid, port in targets:
                runs = [measure(port, body, lines, args.secs, conns, pid) for _ in range(args.runs)]
                r = res[(label, lines, conns)] = median_of(runs)
                print(fmt("%-6s %4d lines %4d conns" % (label, lines, conns), r,
                          peak_rss_kb(pid) if pid else None))
                sys.stdout.flush()
    print_ratios(res, args, [t[0] for t in targets])


def print_ratios(res, args, labels):
    print("\nratios (same sitting): points/s vs direct | CPU per point vs mirror | "
          "1000-conn vs 32-conn points/s")
    for label in labels:
        if label in ("direct",):
            continue
        for lines in args.lines:
            for conns in args.conns:
                r = res[(label, lines, conns)]
                d = res[("direct", lines, conns)]
                row = "%-6s %4d lines %4d conns: %5.0f %% of direct" % (
                    label, lines, conns, 100 * r["points_s"] / d["points_s"])
                m = res.get(("mirror", lines, conns))
                if m and "cpu_s_per_mpoints" in r and label != "mirror":
                    row += " | CPU %.2f x mirror" % (r["cpu_s_per_mpoints"] /
                                                     m["cpu_s_per_mpoints"])
                low = res.get((label, lines, min(args.conns)))
                if conns != min(args.conns) and low:
                    row += " | %.0f %% of its %d-conn points/s" % (
                        100 * r["points_s"] / low["points_s"], min(args.conns))
                print(row)


def bench_influxd(args, tmp):
    dbs = []
    for _ in range(2):
        i = harness.Influxd(tmp).start()
        i.create_db("bench")
        dbs.append(i)
    relay, rport = run_relay(args.relay, tmp, [i.url for i in dbs], "influxd")
    body = make_body(tmp, 100)
    rel = median_of([measure(rport, body, 100, args.secs, 32, relay.pid)
                     for _ in range(args.runs)])
    direct = median_of([measure(dbs[0].http_port, body, 100, args.secs, 32)
                        for _ in range(args.runs)])
    print(fmt("relay  -> 2 influxd (100)", rel, peak_rss_kb(relay.pid)))
    print(fmt("direct -> 1 influxd (100)", direct))
    print("  relay/direct points/s = %.0f %%" % (100 * rel["points_s"] / direct["points_s"]))
    harness._kill(relay)
    for i in dbs:
        i.kill()


def backend_sums(port):
    """(wire bytes, delivered bytes) of every backend of a relay, from its /metrics."""
    st, _, body = harness.http_request(port, "GET", "/metrics")
    wire = delivered = 0.0
    for line in body.decode().splitlines():
        if line.startswith("influxdb_relay_backend_wire_bytes_total{"):
            wire += float(line.rsplit(" ", 1)[1])
        elif line.startswith("influxdb_relay_backend_bytes_delivered_total{"):
            delivered += float(line.rsplit(" ", 1)[1])
    return wire, delivered


def bench_gzip(args, tmp):
    """content-encoding identity vs gzip, 32 connections, for each --lines."""
    _, p1 = start_nginx(tmp, "gzsink1")
    _, p2 = start_nginx(tmp, "gzsink2")
    sinks = ["http://127.0.0.1:%d/write" % p for p in (p1, p2)]
    relays = []
    for enc in ("identity", "gzip"):
        relays.append((enc,) + run_relay(args.relay, tmp, sinks, "enc-" + enc,
                                         "content-encoding = %s\n" % enc))
    rows = {}
    for lines in args.lines:
        body = make_body(tmp, lines)
        for enc, proc, port in relays:
            w0, d0 = backend_sums(port)
            r = median_of([measure(port, body, lines, args.secs, 32, proc.pid)
                           for _ in range(args.runs)])
            w1, d1 = backend_sums(port)
            r["wire_per_byte"] = (w1 - w0) / (d1 - d0)
            rows[(enc, lines)] = r
            print(fmt("%-8s %4d lines   32 conns" % (enc, lines), r, peak_rss_kb(proc.pid)) +
                  "  wire/delivered %.3f" % r["wire_per_byte"])
            sys.stdout.flush()
    print("\ngzip vs identity (same sitting; 'alone' = one body gzipped by itself at level 1, as a "
          "reference: merged batches of the same body repeated compress far better):")
    for lines in args.lines:
        i, g = rows[("identity", lines)], rows[("gzip", lines)]
        with open(make_body(tmp, lines), "rb") as f:
            raw = f.read()
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        alone = len(z.compress(raw) + z.flush()) / len(raw)
        print("%4d lines: wire bytes %.3f x (alone %.3f), relay CPU per point %.2f x (+%.3f s per "
              "million points), points/s %.0f %%" % (
                  lines, g["wire_per_byte"] / i["wire_per_byte"], alone,
                  g["cpu_s_per_mpoints"] / i["cpu_s_per_mpoints"],
                  g["cpu_s_per_mpoints"] - i["cpu_s_per_mpoints"],
                  100 * g["points_s"] / i["points_s"]))
    for _, proc, _ in relays:
        harness._kill(proc)


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default=os.path.join(HERE, "..", "build", "influxdb-relay"))
    ap.add_argument("--before", help="another build of the relay, measured in the same sitting")
    ap.add_argument("--go", help="the Go relay's binary, measured in the same sitting")
    ap.add_argument("--secs", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lines", type=int_list, default=[1, 100, 5000])
    ap.add_argument("--conns", type=int_list, default=[32, 1000])
    ap.add_argument("--no-mirror", action="store_true")
    ap.add_argument("--influxd", action="store_true", help="also the real influxd comparison")
    ap.add_argument("--gzip", action="store_true",
                    help="content-encoding identity vs gzip instead of the nginx comparison")
    ap.add_argument("--no-nginx", action="store_true")
    args = ap.parse_args()
    raise_nofile()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        try:
            if args.gzip:
                bench_gzip(args, tmp)
            elif not args.no_nginx:
                bench_nginx(args, tmp)
            if args.influxd:
                bench_influxd(args, tmp)
        finally:
            harness._kill_all()


if __name__ == "__main__":
    main()
