"""Every log line docs/queue-and-retry.md promises, provoked and matched (text format: the Go
prefix, the level, "RELAY/BACKEND: ", the message with its key=value fields).

DOC holds each promise as the doc words it; test_doc_still_promises_them fails when the doc's
wording changes, so the doc and these tests move together. The Go-worded lines (5xx response,
Problem posting) are matched exactly by it.logs."""

import os
import re
import time
import unittest

import prom
from harness import SRC, RelayTestCase, free_port, http_request, wait_until
from test_metrics import take_down

PREFIX = r"(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d "
NUM = r"\d+(?:\.\d+)?"

DOC = (
    "`buffer above 80%`",
    "`buffer full, refusing writes for this backend`, then `buffer accepting writes again`",
    'logged `write rejected by backend, dropped status=... reason="..."` (at most once a '
    "second, with the count in between)",
    "a summary `backend still down down_s=... retries=... queued_writes=... queued_bytes=... "
    'last_error="..."` is logged at most every 30 s',
    "`up` -> `down` on a failed send (logged with the reason and what is queued",
    "(`backend recovered, draining outage_s=... retries=... queued_writes=... "
    "queued_bytes=...`)",
    "(`backend up, backlog drained drain_s=...`)",
    "`down` -> `up` directly when nothing is queued (`backend up outage_s=... retries=...`)",
    "`R/B: shutdown: dropped writes=N bytes=M state=...` (error level), or `R/B: shutdown: "
    "drained, dropped writes=0 bytes=0` (info)",
)

KIB100 = 100 * 1024


def body_of(size, tag):
    """One write of about size bytes (one line with a padded string field)."""
    head = b'%s v=1i,pad="' % tag.encode()
    tail = b'" 1\n'
    return head + b"x" * (size - len(head) - len(tail)) + tail


class QueueLogsTest(RelayTestCase):

    def test_doc_still_promises_them(self):
        with open(os.path.join(SRC, "docs", "queue-and-retry.md")) as f:
            doc = " ".join(f.read().split())
        for promise in DOC:
            self.assertIn(promise, doc)

    def start(self, outputs, output_extra, extra="", head=""):
        conf, self.port = self.http_relay_config(outputs, extra=extra, output_extra=output_extra,
                                                 head=head)
        self.r = self.relay(conf, wait_ports=[self.port])
        return self.r

    def start_one_down(self, output_extra, head=""):
        """A relay with two backends: b1 up, b2 down (refusing); returns (b1's mock, b2's)."""
        ok, down = self.mock(), self.mock()
        take_down(down)
        self.start([ok.url, down.url], output_extra, head=head)
        return ok, down

    def recover_then_write(self, down):
        """b2 comes back and drains its backlog; then one more write of 100 KiB."""
        self.mock(port=down.port)
        wait_until(lambda: prom.scrape(self.port).backend("queue_writes", "r1", "b2") == 0,
                   timeout=20, what="b2 drained")
        self.assertEqual(self.post(body_of(KIB100, "after"))[0], 204)

    def post(self, body):
        return http_request(self.port, "POST", "/write?db=d", body)

    def lines(self, pattern):
        return re.findall(PREFIX + pattern, self.r.log())

    def wait_line(self, pattern, what):
        return wait_until(lambda: re.search(PREFIX + pattern, self.r.log()), timeout=20,
                          what=what)

    # ------------------------------------------------------------------ buffer level

    def test_buffer_above_80_once_then_below_50(self):
        """A buffered backend warns once when its buffer passes 80 % (more writes do not
        repeat it) and notes once when it is back under 50 %."""
        ok, down = self.start_one_down("buffer-size-mb = 1\nmax-delay-interval = 500ms")
        for i in range(9):  # 9 x 100 KiB: past 80 % of 1 MiB, still fitting
            self.assertEqual(self.post(body_of(KIB100, "b%d" % i))[0], 204)
        s = prom.scrape(self.port)
        self.assertGreater(s.backend("queue_bytes", "r1", "b2"), 0.8 * (1 << 20))
        self.assertEqual(s.dropped("r1", "b2", "buffer_full"), 0)
        above = self.lines(r"warn r1/b2: buffer above 80%% queued_bytes=(\d+) capacity_bytes=%d$"
                           % (1 << 20))
        self.assertEqual(len(above), 1, self.r.log())
        self.assertGreater(int(above[0]), 0.8 * (1 << 20))
        self.assertEqual(self.lines(r".*buffer below 50%"), [])
        # The level is looked at when a write is queued: the note comes with the next write.
        self.recover_then_write(down)
        self.wait_line(r"info r1/b2: buffer below 50%% again queued_bytes=\d+ capacity_bytes=%d$"
                       % (1 << 20), "the buffer below 50 % line")
        self.assertEqual(len(self.lines(r".*buffer above 80%")), 1)

    def test_buffer_full_once_per_episode_then_accepting_again(self):
        """A write that does not fit is refused for this backend; the first refusal of an
        episode is logged, the following ones are only counted; the next write that fits again
        ends the episode with the count."""
        ok, down = self.start_one_down("buffer-size-mb = 1\nmax-delay-interval = 500ms")
        for i in range(14):  # the 11th and later do not fit
            self.assertEqual(self.post(body_of(KIB100, "f%d" % i))[0], 204)
        full = prom.scrape(self.port).dropped("r1", "b2", "buffer_full")
        self.assertGreaterEqual(full, 3)
        self.assertEqual(len(self.lines(r"warn r1/b2: buffer full, refusing writes for this "
                                        r"backend capacity_bytes=%d$" % (1 << 20))), 1,
                         self.r.log())
        self.assertEqual(self.lines(r".*buffer accepting writes again"), [])
        self.recover_then_write(down)
        self.wait_line(r"info r1/b2: buffer accepting writes again dropped_buffer_full=%d$"
                       % full, "the accepting again line")
        self.assertEqual(len(self.lines(r".*buffer full, refusing")), 1)

    # ------------------------------------------------------------------ rejected writes

    def test_rejected_write_logged_at_most_once_a_second_with_count(self):
        def picky(req):
            if req["path"] == "/write":
                return (400, b'{"error":"field type \\"conflict\\""}',
                        {"Content-Type": "application/json"}, 0)
            return 204, b"", {}, 0
        self.start([self.mock(picky).url], "buffer-size-mb = 1")
        # The backend's body, each quote and backslash made harmless (').
        reason = '"{\'error\':\'field type \'\'conflict\'\'\'}"'
        pat = (r"warn r1/b1: write rejected by backend, dropped status=400 reason=" +
               re.escape(reason) + r" also_dropped=(\d+)$")
        t0 = time.monotonic()
        sent = 0
        # One rejected write after the other until a line reports some dropped in between
        # (paced by the round trips; bounded).
        while True:
            st, _, _ = self.post(b"r v=%di 1\n" % sent)
            self.assertEqual(st, 400)
            sent += 1
            counts = [int(c) for c in self.lines(pat)]
            if len(counts) >= 2 and counts[-1] > 0:
                break
            self.assertLess(sent, 2000, self.r.log()[-2000:])
        elapsed = time.monotonic() - t0
        self.assertEqual(counts[0], 0)
        self.assertLessEqual(len(counts), elapsed + 1.5)  # at most about one a second
        self.assertLessEqual(sum(counts) + len(counts), sent)
        # The sender counts a rejected write just after its client got the 400.
        wait_until(lambda: prom.scrape(self.port).dropped("r1", "b1", "rejected") == sent,
                   what="every rejected write counted")

    # ------------------------------------------------------------------ states

    def test_down_recovered_draining_then_backlog_drained(self):
        ok, down = self.start_one_down("buffer-size-mb = 16\nmax-delay-interval = 500ms\n"
                                       "max-batch-kb = 1")  # one write a request: drain seen
        for i in range(5):
            self.assertEqual(self.post(body_of(800, "d%d" % i))[0], 204)
        # b1's 204 may come before b2's first failure is logged.
        down_re = (r'warn r1/b2: backend down reason="([^"]+)" queued_writes=(\d+) '
                   r'queued_bytes=(\d+)$')
        self.wait_line(down_re, "the backend down line")
        down_lines = self.lines(down_re)
        self.assertEqual(len(down_lines), 1, self.r.log())
        reason, writes, held = down_lines[0]
        self.assertRegex(reason, r"(?i)(connect|recv|empty reply|reset|closed)")
        self.assertGreaterEqual(int(writes), 1)
        self.assertGreater(int(held), 800 * int(writes))
        wait_until(lambda: prom.scrape(self.port).backend("retries_total", "r1", "b2") >= 2,
                   timeout=15, what="two retries")
        self.mock(port=down.port)
        rec = self.wait_line(r"info r1/b2: backend recovered, draining outage_s=(%s) "
                             r"retries=(\d+) queued_writes=(\d+) queued_bytes=(\d+)$" % NUM,
                             "the recovered, draining line")
        self.assertGreater(float(rec.group(1)), 0.4)
        self.assertGreaterEqual(int(rec.group(2)), 2)
        self.assertEqual(int(rec.group(3)), 4)  # the first of the 5 went with the success
        self.assertGreater(int(rec.group(4)), 4 * 800)
        self.wait_line(r"info r1/b2: backend up, backlog drained drain_s=%s$" % NUM,
                       "the backlog drained line")
        self.assertEqual(self.lines(r".*backend up outage_s="), [])

    def test_down_then_up_directly_when_nothing_queued(self):
        """An unbuffered backend that fails a write is down; its probes bring it back up with
        nothing queued: the direct down -> up line."""
        port = free_port()
        self.start(["http://127.0.0.1:%d/write" % port], "max-delay-interval = 500ms")
        st, _, _ = self.post(b"u v=1i 1\n")
        self.assertEqual(st, 503)
        self.assertEqual(len(self.lines(r'warn r1/b1: backend down reason="[^"]*[Cc]onnect[^"]*" '
                                        r"queued_writes=\d+ queued_bytes=\d+$")), 1, self.r.log())
        self.mock(port=port)
        up = self.wait_line(r"info r1/b1: backend up outage_s=(%s) retries=(\d+) "
                            r"queued_writes=0 queued_bytes=0$" % NUM, "the backend up line")
        self.assertGreater(float(up.group(1)), 0.4)
        self.assertEqual(self.lines(r".*(recovered, draining|backlog drained)"), [])

    def test_still_down_summary_at_most_every_30s(self):
        """An outage logs its start once (Problem posting, backend down), then a summary line
        at most every 30 s however often it is retried (every 0.5 s here)."""
        port = free_port()
        ok = self.mock()
        self.start([ok.url, "http://127.0.0.1:%d/write" % port],
                   "buffer-size-mb = 1\nmax-delay-interval = 500ms")
        self.assertEqual(self.post(b"s v=1i 1\n")[0], 204)
        t0 = time.monotonic()
        summary = wait_until(lambda: re.search(
            PREFIX + r'warn r1/b2: backend still down down_s=(\d+) retries=(\d+) '
            r'queued_writes=1 queued_bytes=(\d+) last_error="([^"]*)"$', self.r.log()),
            timeout=60, what="the still down summary")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 29)
        self.assertIn(int(summary.group(1)), range(30, 45))
        self.assertGreaterEqual(int(summary.group(2)), 20)
        self.assertGreater(int(summary.group(3)), 0)
        self.assertRegex(summary.group(4), "(?i)connect")
        log = self.r.log()
        self.assertEqual(log.count("backend still down"), 1)
        self.assertEqual(log.count('Problem posting to relay "r1" backend "b2"'), 1)
        self.assertEqual(log.count("r1/b2: backend down"), 1)
        retries = prom.scrape(self.port).backend("retries_total", "r1", "b2")
        self.assertGreaterEqual(retries, 20)

    # ------------------------------------------------------------------ shutdown

    def test_shutdown_lines(self):
        self.start_one_down("buffer-size-mb = 1\nmax-delay-interval = 500ms",
                            head="[relay]\nshutdown-timeout = 1s\n")
        sent = b""
        for i in range(3):
            b = b"sd v=%di %d\n" % (i, i)
            self.assertEqual(self.post(b)[0], 204)
            sent += b
        self.assertEqual(self.r.terminate(), 0)
        self.assertEqual(len(self.lines(r"error r1/b2: shutdown: dropped writes=3 bytes=%d "
                                        r"state=down$" % len(sent))), 1, self.r.log())
        self.assertEqual(len(self.lines(r"info r1/b1: shutdown: drained, dropped writes=0 "
                                        r"bytes=0$")), 1, self.r.log())


if __name__ == "__main__":
    unittest.main()
