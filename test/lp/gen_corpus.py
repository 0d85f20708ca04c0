#!/usr/bin/python3
"""Fills in influxd's verdicts in test/lp/corpus.txt: starts a real influxd 1.x (the it test
harness), writes every case alone to its own database and rewrites the VERDICT and REASON
columns with what influxd answered. The RELAY column is kept. Review the diff before committing.
Usage: /usr/bin/python3 test/lp/gen_corpus.py [corpus.txt]"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "it"))

import corpus  # noqa: E402
import harness  # noqa: E402


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus.txt")
    items, cases = corpus.read(path)
    with tempfile.TemporaryDirectory(prefix="lp-corpus-") as tmp:
        influxd = harness.Influxd(tmp).start()
        try:
            diffs = corpus.check_influxd(influxd.http_port, cases, harness.http_request)
        finally:
            influxd.kill()
    for c, verdict, reason in diffs:
        print(f"{path}:{c.lineno}: {c.verdict} -> {verdict} {reason!r}")
        c.verdict = verdict
        c.reason_text = corpus.escape(reason.encode("utf-8", "surrogateescape"))
    corpus.write(path, items)
    print(f"{len(cases)} cases, {len(diffs)} verdicts changed")


if __name__ == "__main__":
    main()
