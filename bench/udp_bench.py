#!/usr/bin/python3
"""UDP relay benchmark (bench/README.md, section UDP).

Starts the real relay with one [udp] listener (read-buffer 8 MiB, precision n) and two outputs,
both sinks of bench/udp_load_bench (the C load generator: sendmmsg sender at a fixed rate,
recvmmsg sinks). Datagrams carry 10 lines of ~85 bytes (explicit timestamps unless
--unstamped), so each fits the default mtu (1024) and leaves as one datagram per output.
"Zero loss" means both sinks received every line sent, in each of --runs runs of --secs seconds.

Finds the highest zero-loss rate: steps the rate up by x1.25 from --start until a run loses,
then bisects to within 3 %. Reports datagrams/s and points/s at that rate, and the relay's CPU
per million datagrams (utime+stime from /proc/PID/stat).

Usage: bench/udp_bench.py --relay build-rel/influxdb-relay --load build-rel/bench/udp_load_bench
       [--secs 3] [--runs 3] [--start 20000] [--max 400000] [--unstamped] [--rates 50000,100000]
       [--nice -10] [--max-other 0.15]
"""

import argparse
import os
import signal
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "it"))
import harness  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def system_busy_ticks():
    """(busy, total) jiffies of the whole machine from /proc/stat (guest time is already in
    user time, so only the first 8 columns count)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def wait_quiet(max_wait=120, threshold=0.10):
    """Waits until the other processes of the (shared) machine use under threshold of it."""
    end = time.monotonic() + max_wait
    while True:
        b0, t0 = system_busy_ticks()
        time.sleep(0.5)
        b1, t1 = system_busy_ticks()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy < threshold or time.monotonic() > end:
            return busy


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def parse(out):
    """udp_load_bench output -> (sent datagrams, lines per datagram, [lost lines per sink],
    sent_rate, rcvbuf_errors)."""
    sent, lines, rate, rcvbuf, lost = 0, 0, 0.0, 0, []
    for line in out.splitlines():
        kv = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if "sent" in kv:
            sent, lines = int(kv["sent"]), int(kv["lines"])
            rate, rcvbuf = float(kv["sent_rate"]), int(kv["rcvbuf_errors"])
        elif "sink" in kv:
            lost.append(int(kv["lost_lines"]))
    return sent, lines, lost, rate, rcvbuf


class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.port = harness.free_port(socket.SOCK_DGRAM)
        self.sinks = [harness.free_port(socket.SOCK_DGRAM) for _ in range(2)]
        conf = ["[relay]", "log-level = warn", "", "[udp.bench]",
                "bind-addr = 127.0.0.1:%d" % self.port, "read-buffer = %d" % (8 << 20),
                "precision = n", ""]
        for i, p in enumerate(self.sinks):
            conf += ["[udp.bench.output.sink%d]" % (i + 1), "location = 127.0.0.1:%d" % p,
                     "mtu = 1024", ""]
        self.relay = harness.Relay(tmp, "\n".join(conf) + "\n", name="udp_bench.ini").start()
        time.sleep(0.5)
        self.relay._alive()
        if args.nice:
            # Every thread of the relay (setpriority on a pid changes one thread only), as an
            # operator would with Nice= in the systemd unit on a busy machine.
            for tid in os.listdir("/proc/%d/task" % self.relay.proc.pid):
                os.setpriority(os.PRIO_PROCESS, int(tid), args.nice)

    def run(self, rate):
        """One run at rate; returns (zero_loss, sent_rate, relay cpu s per 1M datagrams, text)."""
        a = self.args
        cmd = [a.load, "--target", str(self.port), "--rate", str(rate), "--seconds", str(a.secs)]
        for p in self.sinks:
            cmd += ["--sink", str(p)]
        if a.unstamped:
            cmd.append("--unstamped")
        wait_quiet()
        t0 = cpu_ticks(self.relay.proc.pid)
        b0, _ = system_busy_ticks()
        w0 = time.monotonic()
        p = harness.subprocess.Popen(cmd, stdout=harness.subprocess.PIPE, text=True)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        b1, _ = system_busy_ticks()
        cpu = (cpu_ticks(self.relay.proc.pid) - t0) / HZ
        wall = time.monotonic() - w0
        # CPU the rest of the (shared) machine used meanwhile, in cores.
        others = ((b1 - b0) / HZ - cpu - ru.ru_utime - ru.ru_stime) / max(wall, 1e-9)
        sent, _, lost, sent_rate, rcvbuf = parse(out)
        ok = sent > 0 and all(x == 0 for x in lost) and p.returncode == 0
        per_m = cpu / sent * 1e6 if sent else 0
        text = ("rate=%d sent_rate=%.0f lost_lines=%s rcvbuf_errors=%d relay_cpu_s_per_1M=%.2f "
                "relay_cores=%.2f loadgen_cores=%.2f other_cores=%.2f" % (
                    rate, sent_rate, lost, rcvbuf, per_m, cpu / wall,
                    (ru.ru_utime + ru.ru_stime) / wall, others))
        print("  " + text, flush=True)
        return ok and sent_rate >= 0.97 * rate, others, per_m

    def zero_loss(self, rate):
        """True when every one of --runs runs at rate loses nothing. A run with loss while other
        processes took more than --max-other cores is not counted and is repeated (at most
        3 times per rate): the machine is shared."""
        cpus, retries = [], 0
        while len(cpus) < self.args.runs:
            ok, others, per_m = self.run(rate)
            if not ok and others > self.args.max_other and retries < 3:
                retries += 1
                print("  (disturbed by other processes: run repeated)", flush=True)
                continue
            if not ok:
                return False, None
            cpus.append(per_m)
        return True, sorted(cpus)[len(cpus) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default=harness.RELAY_BIN)
    ap.add_argument("--load", default=os.path.join(harness.BUILD, "bench", "udp_load_bench"))
    ap.add_argument("--secs", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--start", type=int, default=20000)
    ap.add_argument("--max", type=int, default=400000)
    ap.add_argument("--rates", default="", help="only run these rates (comma-separated)")
    ap.add_argument("--unstamped", action="store_true", help="lines without timestamps")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the relay's threads at this nice value (negative needs root)")
    ap.add_argument("--max-other", type=float, default=0.15,
                    help="a losing run is repeated when other processes used more cores")
    args = ap.parse_args()
    harness.RELAY_BIN = args.relay
    # SIGTERM (e.g. from timeout(1)) still runs the finally below, which stops the relay.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with tempfile.TemporaryDirectory(prefix="udp-bench-") as tmp:
        b = Bench(args, tmp)
        try:
            if args.rates:
                for r in (int(x) for x in args.rates.split(",")):
                    ok, cpu = b.zero_loss(r)
                    print("rate %d: %s" % (r, "zero loss" if ok else "LOSS"))
                return
            best, best_cpu, fail, rate = 0, None, None, args.start
            while rate <= args.max:
                ok, cpu = b.zero_loss(rate)
                if not ok:
                    fail = rate
                    break
                best, best_cpu = rate, cpu
                rate = int(rate * 1.25)
            while fail is not None and best and fail - best > 0.03 * best:
                mid = (best + fail) // 2
                ok, cpu = b.zero_loss(mid)
                if ok:
                    best, best_cpu = mid, cpu
                else:
                    fail = mid
            print("highest zero-loss rate: %d datagrams/s = %d points/s (%d runs x %d s each)%s"
                  % (best, best * 10, args.runs, args.secs,
                     "; relay CPU %.2f s per 1M datagrams" % best_cpu if best_cpu else ""))
            if fail:
                print("first rate with loss: %d datagrams/s" % fail)
        finally:
            b.relay.terminate()


if __name__ == "__main__":
    main()
