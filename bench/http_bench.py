#!/usr/bin/python3
"""HTTP write-path benchmark (bench/README.md, section HTTP).

wrk (2 threads, 32 connections) POSTs bodies of 1, 100 and 5000 lines with explicit timestamps
  A. to the relay, whose two backends are nginx sinks answering 204 after reading the whole body
     (libnginx-mod-http-echo `echo_read_request_body`), and
  B. straight to one such nginx sink (the ceiling),
and, with --influxd, 100-line bodies to the relay with two real influxd vs straight to one influxd.
Reports requests/s, points/s, p50/p99, relay CPU-seconds per million points (utime+stime from
/proc/PID/stat) and the relay's peak RSS (VmHWM), each the median of --runs runs.

Usage: bench/http_bench.py --relay build-rel/influxdb-relay [--secs 8] [--runs 3] [--influxd]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "it"))
import harness  # noqa: E402

NGINX_CONF = """
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
# One process, no master: killing it leaves no orphaned worker behind.
master_process off;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
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
    listen 127.0.0.1:{port};
    location /write {{ echo_read_request_body; echo_status 204; }}
  }}
}}
"""

HZ = os.sysconf("SC_CLK_TCK")


def start_nginx(tmp, name):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    port = harness.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(d=d, port=port))
    p = subprocess.Popen(["nginx", "-c", conf, "-p", d], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    harness._live.add(p)
    harness.wait_until(lambda: harness.port_open(port), what="nginx")
    return p, port


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


def run_relay(relay_bin, tmp, outputs, name):
    port = harness.free_port()
    conf = "[relay]\nlog-level = warn\n\n[http.bench]\nbind-addr = 127.0.0.1:%d\nmax-body-mb = 64\n" % port
    for i, url in enumerate(outputs):
        conf += "\n[http.bench.output.b%d]\nlocation = %s\n%s" % (i + 1, url, OUTPUT_EXTRA)
    path = os.path.join(tmp, name + ".ini")
    with open(path, "w") as f:
        f.write(conf)
    log = open(path + ".log", "wb")
    p = subprocess.Popen([relay_bin, "-config", path], stderr=log, stdout=log)
    harness._live.add(p)
    harness.wait_until(lambda: harness.port_open(port), what="relay")
    return p, port


def measure(port, body, lines, secs, pid=None, path="/write?db=bench"):
    t0 = cpu_ticks(pid) if pid else 0
    r = wrk(port, body, secs, path=path)
    points = r["requests"] * lines
    r["points_s"] = points / r["secs"]
    if pid:
        r["cpu_s_per_mpoints"] = (cpu_ticks(pid) - t0) / HZ / (points / 1e6)
    return r


def median_of(runs):
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def fmt(label, r, rss=None):
    s = "%-28s %9.0f req/s %11.0f points/s  p50 %7.2f ms  p99 %7.2f ms" % (
        label, r["rps"], r["points_s"], r["p50_ms"], r["p99_ms"])
    if "cpu_s_per_mpoints" in r:
        s += "  cpu %7.3f s/Mpoints" % r["cpu_s_per_mpoints"]
    if rss:
        s += "  peak RSS %d MiB" % (rss // 1024)
    if r.get("errors"):
        s += "  ERRORS %d" % r["errors"]
    return s


def bench_nginx(args, tmp):
    n1, p1 = start_nginx(tmp, "sink1")
    n2, p2 = start_nginx(tmp, "sink2")
    relay, rport = run_relay(args.relay, tmp, ["http://127.0.0.1:%d/write" % p for p in (p1, p2)],
                             "nginx")
    for lines in (1, 100, 5000):
        body = make_body(tmp, lines)
        rel = median_of([measure(rport, body, lines, args.secs, relay.pid)
                         for _ in range(args.runs)])
        direct = median_of([measure(p1, body, lines, args.secs) for _ in range(args.runs)])
        print(fmt("relay  %4d-line bodies" % lines, rel, peak_rss_kb(relay.pid)))
        print(fmt("direct %4d-line bodies" % lines, direct))
        print("  relay/direct points/s = %.0f %%" % (100 * rel["points_s"] / direct["points_s"]))
        sys.stdout.flush()
    for p in (relay, n1, n2):
        harness._kill(p)


def bench_influxd(args, tmp):
    dbs = []
    for _ in range(2):
        i = harness.Influxd(tmp).start()
        i.create_db("bench")
        dbs.append(i)
    relay, rport = run_relay(args.relay, tmp, [i.url for i in dbs], "influxd")
    body = make_body(tmp, 100)
    rel = median_of([measure(rport, body, 100, args.secs, relay.pid) for _ in range(args.runs)])
    direct = median_of([measure(dbs[0].http_port, body, 100, args.secs)
                        for _ in range(args.runs)])
    print(fmt("relay  -> 2 influxd (100)", rel, peak_rss_kb(relay.pid)))
    print(fmt("direct -> 1 influxd (100)", direct))
    print("  relay/direct points/s = %.0f %%" % (100 * rel["points_s"] / direct["points_s"]))
    harness._kill(relay)
    for i in dbs:
        i.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default=os.path.join(HERE, "..", "build", "influxdb-relay"))
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--influxd", action="store_true", help="also the real influxd comparison")
    ap.add_argument("--no-nginx", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        try:
            if not args.no_nginx:
                bench_nginx(args, tmp)
            if args.influxd:
                bench_influxd(args, tmp)
        finally:
            harness._kill_all()


if __name__ == "__main__":
    main()
