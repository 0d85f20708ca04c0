"""The line protocol corpus (test/lp/corpus.txt) against a real influxd 1.6.7: every case is
written alone to its own database and influxd's verdict (and reason, for parse errors) must equal
the recorded one; the relay's recorded output of each accepted case is accepted too. unit.lp_corpus checks lp_process() against the same file, so the relay's
parser and influxd cannot drift apart unnoticed."""
import os
import sys
import unittest

from harness import RelayTestCase, http_request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lp"))
import corpus  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lp", "corpus.txt")


class LineProtocolInfluxdTest(RelayTestCase):
    def test_corpus_verdicts_match_influxd(self):
        _, cases = corpus.read(CORPUS)
        self.assertGreaterEqual(len(cases), 250)
        influxd = self.influxd()
        diffs = corpus.check_influxd(influxd.http_port, cases, http_request)
        msg = "\n".join(f"corpus.txt:{c.lineno}: recorded {c.verdict} {c.reason_text!r}, "
                        f"influxd says {v} {r!r}" for c, v, r in diffs)
        self.assertEqual(diffs, [], msg)

    def test_relay_output_accepted_by_influxd(self):
        """What the relay forwards for each case influxd accepts (the output bytes unit.lp_corpus
        checks) is itself accepted by influxd, and a stamped point is stored at its stamp."""
        _, cases = corpus.read(CORPUS)
        influxd = self.influxd()
        problems = corpus.check_outputs_influxd(influxd.http_port, cases, http_request)
        self.assertEqual([f"corpus.txt:{c.lineno}: {p}" for c, p in problems], [])
        self.assertGreaterEqual(sum(1 for c in cases if c.verdict == "ok" and c.output), 150)

    def test_error_text_shape(self):
        """The text lp.h documents for the HTTP layer: one "unable to parse" per bad line
        joined with \\n, the raw line without leading whitespace, a \\r kept, dropped=0."""
        influxd = self.influxd(db="db")
        body = b"a v=1\r\nb v=2 1 2\n  foo\n#c\n  \nc v=1\n"
        st, _, out = http_request(influxd.http_port, "POST", "/write?db=db", body=body)
        self.assertEqual(st, 400)
        self.assertEqual(out, b'{"error":"partial write: unable to parse \'a v=1\\r\': invalid '
                              b'number\\nunable to parse \'b v=2 1 2\': point is invalid\\nunable'
                              b' to parse \'foo\': missing fields dropped=0"}\n')
        st, _, out = http_request(influxd.http_port, "POST", "/write?db=db",
                                  body=b"x\n<y> v=1 1 1\n")
        self.assertEqual(st, 400)
        self.assertEqual(out, b'{"error":"unable to parse \'x\': missing fields\\nunable to parse'
                              b' \'\\u003cy\\u003e v=1 1 1\': point is invalid"}\n')


if __name__ == "__main__":
    unittest.main()
