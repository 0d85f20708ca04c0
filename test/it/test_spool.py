"""The durable spool (spool-dir, spool-size-mb, spool-max-age, spool-sync): a write answered 204
is in the spool of every other spooled backend, survives SIGKILL and SIGTERM of the relay and is
delivered after the restart, in order; a write answered 503 is never delivered, also after a
restart; damaged spool files are cut and counted; the size and age caps; the directory lock;
disk errors (a file-size limit, a real full disk: a small tmpfs); memory stays bounded while the
spool holds the backlog; a poison write in the spool does not block it.

Every write of these tests is one point "m,w=ID v=ID ID" (a unique timestamp per write), so a
repeat overwrites itself in InfluxDB and what a backend got can be compared as sets of IDs."""

import os
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

from harness import (RelayTestCase, free_port, http_request, require_tool, run_relay,
                     run_threads, wait_until)
import prom

T0 = 1700000000000000000
LINE_RE = re.compile(rb"^m,w=(\d+) ")


def line(i, pad=0):
    return "m,w=%d v=%di%s %d\n" % (i, i, (",s=\"%s\"" % ("x" * pad)) if pad else "", T0 + i)


def ids_of(body):
    out = []
    for ln in body.split(b"\n"):
        m = LINE_RE.match(ln)
        if m:
            out.append(int(m.group(1)))
    return out


def write(port, ids, pad=0, db="db", timeout=10):
    body = "".join(line(i, pad) for i in ids)
    return http_request(port, "POST", "/write?db=" + db, body, timeout=timeout)


class Writer(threading.Thread):
    """Writes ids 1, 2, ... one request at a time until stopped, across relay restarts.
    acked: ids answered 204; sent: every id tried (nothing may arrive that is not in it)."""

    def __init__(self, port, pad=0, per_request=1):
        super().__init__(daemon=True)
        self.port, self.pad, self.per = port, pad, per_request
        self.acked, self.sent, self.failed = [], set(), []
        self.next = 1
        self.stop = threading.Event()
        self.exc = None
        self.ok_since = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                ids = list(range(self.next, self.next + self.per))
                self.next += self.per
                self.sent.update(ids)
                try:
                    st, _, body = write(self.port, ids, self.pad, timeout=5)
                except OSError:
                    time.sleep(0.005)  # the relay is down (killed): try the next ids
                    continue
                if st == 204:
                    self.acked.extend(ids)
                    self.ok_since.set()
                else:
                    self.failed.append((ids, st, body))
        except BaseException as e:  # noqa: BLE001 - re-raised by finish()
            self.exc = e

    def finish(self):
        self.stop.set()
        self.join(30)
        if self.exc is not None:
            raise self.exc
        return set(self.acked)


def spool_files(d):
    """{name: size} of the regular files under d (recursive)."""
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            try:
                out[os.path.relpath(os.path.join(root, f), d)] = os.path.getsize(
                    os.path.join(root, f))
            except OSError:
                pass
    return out


def segments(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".seg")
                  and os.path.getsize(os.path.join(d, f)) > 0)


def records(path):
    """[(offset, size, seq, [ids])] of the valid records of a segment file (spool.c's format:
    a 32-byte header, the data, padding to 8; the data is the backend's serialised write: a
    24-byte header, the query, the Authorization value, the body)."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + 32 <= len(data):
        magic, ln, seq, _, dcrc, hcrc = struct.unpack("<4sIQQII", data[off:off + 32])
        if magic != b"\xf5SP1" or zlib.crc32(data[off:off + 28]) != hcrc:
            break
        size = (32 + ln + 7) & ~7
        rec = data[off + 32:off + 32 + ln]
        qlen, alen = struct.unpack("<II", rec[4:12])
        out.append((off, size, seq, ids_of(rec[24 + qlen + alen:])))
        off += size
    return out


class SpoolTest(RelayTestCase):

    def spool_config(self, outputs, port=None, consistency="one", relay_extra="",
                     write_timeout="3s"):
        """One HTTP relay r1; outputs: [(name, url, extra keys)]. The spool dir is <tmp>/spool."""
        self.spool_dir = os.path.join(self.tmp, "spool")
        os.makedirs(self.spool_dir, exist_ok=True)
        port = port or free_port()
        text = ("[relay]\nspool-dir = %s\nshutdown-timeout = 5s\n%s\n"
                "[http.r1]\nbind-addr = 127.0.0.1:%d\nwrite-consistency = %s\n"
                "write-timeout = %s\n" % (self.spool_dir, relay_extra, port, consistency,
                                          write_timeout))
        for name, url, extra in outputs:
            text += ("\n[http.r1.output.%s]\nlocation = %s\ntimeout = 1s\n"
                     "max-delay-interval = 200ms\n%s\n" % (name, url, extra))
        return text, port

    def dir_of(self, backend):
        return os.path.join(self.spool_dir, "r1", backend)

    def down_url(self):
        """The URL of a backend that refuses connections (a port nobody listens on)."""
        return "http://127.0.0.1:%d/write" % free_port()

    def wait_state(self, port, backend, states):
        wait_until(lambda: prom.scrape(port).state("r1", backend) in states, timeout=30,
                   what="%s in state %s" % (backend, "/".join(states)))

    def relay_up(self, cfg, port, **kw):
        return self.relay(cfg, wait_ports=[port], **kw)

    def wait_spool_empty(self, port, backend, timeout=60):
        def empty():
            s = prom.scrape(port)
            return s.backend("spool_writes", "r1", backend) == 0
        wait_until(empty, timeout=timeout, what="spool of %s delivered" % backend)

    def kill_rounds(self, cfg, port, rounds, sig, writer):
        """Starts the relay `rounds` times and ends it with sig after a random delay, while
        writer keeps writing; every round sees writes acknowledged."""
        rng = random.Random(os.environ.get("SPOOL_IT_SEED") or time.time())
        for n in range(rounds):
            r = self.relay_up(cfg, port)
            writer.ok_since.clear()
            self.assertTrue(writer.ok_since.wait(30), "no write acknowledged in round %d" % n)
            time.sleep(rng.uniform(0.0, 0.3))  # the moment to end it: random, writes in flight
            r._alive()  # it never died by itself (a sanitizer's report ends it too)
            if sig == signal.SIGKILL:
                r.kill()
            else:
                self.assertEqual(r.terminate(timeout=30, sig=sig), 0, r.log()[-3000:])
                self.assertIn("kept in the spool", r.log())
            self.relays.remove(r)
            self.relays.append(r)  # (its log is printed if the test fails)

    # ------------------------------------------------------------------ crash safety

    def crash_rounds(self, sig):
        a = self.mock()
        b = self.influxd(db="db")
        b.kill()
        cfg, port = self.spool_config([("a", a.url, ""),
                                       ("b", b.url, "buffer-size-mb = 1\nspool-size-mb = 64")])
        w = Writer(port)
        w.start()
        self.kill_rounds(cfg, port, 22, sig, w)
        acked = w.finish()
        self.assertGreater(len(acked), 50)
        b.start()
        self.relay_up(cfg, port)
        got = set()

        def all_in():
            got.clear()
            got.update(int(r[1]) for r in b.rows("db", "SELECT v FROM m"))
            return acked <= got
        wait_until(all_in, timeout=90, what="every acknowledged write in B")
        self.wait_spool_empty(port, "b")
        got = {int(r[1]) for r in b.rows("db", "SELECT v FROM m")}
        self.assertLessEqual(got, w.sent, "B holds writes nobody sent")
        self.assertLessEqual(acked, got)
        # Exact modulo idempotent repeats: one point per write, never two.
        self.assertEqual(b.count("db", "m", "v"), len(got))

    def test_sigkill_rounds_lose_nothing(self):
        self.crash_rounds(signal.SIGKILL)

    def test_sigterm_rounds_lose_nothing(self):
        self.crash_rounds(signal.SIGTERM)

    def test_order_across_restarts(self):
        """One client writing one write at a time: B receives the writes in that order (first
        arrivals; a batch in flight at a crash may come again), the spool before anything
        newer."""
        b_port = free_port()
        b_url = "http://127.0.0.1:%d/write" % b_port
        a = self.mock()
        cfg, port = self.spool_config([("a", a.url, ""),
                                       ("b", b_url, "buffer-size-mb = 1\nspool-size-mb = 64")])
        w = Writer(port)
        w.start()
        self.kill_rounds(cfg, port, 8, signal.SIGKILL, w)
        acked = w.finish()
        b = self.mock(port=b_port)
        self.relay_up(cfg, port)
        st, _, _ = write(port, [10 ** 7])  # newer than everything spooled
        self.assertEqual(st, 204)
        wait_until(lambda: 10 ** 7 in ids_of(b.body()), timeout=60, what="the newest write")
        seen, order = set(), []
        for i in ids_of(b.body()):
            if i not in seen:
                seen.add(i)
                order.append(i)
        self.assertEqual(order, sorted(order), "first arrivals out of order")
        self.assertLessEqual(acked, seen)
        self.assertEqual(order[-1], 10 ** 7)

    def test_any_every_backend_down(self):
        """write-consistency = any, every backend down and spooled: 204 means spooled; SIGKILL
        rounds; both backends get every acknowledged write once back."""
        a = self.influxd(db="db")
        b = self.influxd(db="db")
        a.kill()
        b.kill()
        spooled = "spool-size-mb = 64"
        cfg, port = self.spool_config([("a", a.url, spooled), ("b", b.url, spooled)],
                                      consistency="any")
        w = Writer(port)
        w.start()
        self.kill_rounds(cfg, port, 20, signal.SIGKILL, w)
        acked = w.finish()
        self.assertGreater(len(acked), 50)
        self.assertEqual(w.failed, [])
        a.start()
        b.start()
        self.relay_up(cfg, port)
        for backend, influx in (("a", a), ("b", b)):
            wait_until(lambda: acked <= {int(r[1]) for r in influx.rows(
                "db", "SELECT v FROM m")}, timeout=90, what="acknowledged writes in " + backend)
            got = {int(r[1]) for r in influx.rows("db", "SELECT v FROM m")}
            self.assertLessEqual(got, w.sent)

    # ------------------------------------------------------------------ 503 = nothing kept

    def switchable(self):
        """A mock backend that drops every connection without an answer while state["down"]
        (a backend that is down), else answers 204; it records only what it answered."""
        state = {"down": True}

        def responder(req):
            if state["down"]:
                raise ConnectionAbortedError("down")
            return 204, b"", {}, 0
        return self.mock(responder), state

    def test_503_never_delivered(self):
        """Every backend down, write-consistency one: each write gets 503 and its spooled copy
        is voided: never delivered, neither by this relay once B is back nor after SIGKILL and a
        restart."""
        a_port = free_port()
        a_url = "http://127.0.0.1:%d/write" % a_port
        b, b_state = self.switchable()
        cfg, port = self.spool_config([("a", a_url, ""),
                                       ("b", b.url, "buffer-size-mb = 1\nspool-size-mb = 64")])
        r = self.relay_up(cfg, port)
        for i in range(1, 31):
            st, hdrs, body = write(port, [i])
            self.assertEqual(st, 503, body)
        # Same relay, B back: the positive control arrives, none of the 503s does.
        b_state["down"] = False
        self.wait_state(port, "b", ("up", "draining"))  # its probe found it
        st, _, body = write(port, [1000])
        self.assertEqual(st, 204, body)  # from B (A is still down)
        wait_until(lambda: 1000 in ids_of(b.body()), timeout=30, what="the control write")
        self.wait_spool_empty(port, "b")
        self.wait_state(port, "b", ("up",))
        self.assertEqual([i for i in ids_of(b.body()) if i < 1000], [])
        # B down again: 503s, then SIGKILL before B is back.
        b_state["down"] = True
        for i in range(31, 61):
            st, _, body = write(port, [i])
            self.assertEqual(st, 503, body)
        r.kill()
        b_state["down"] = False
        self.mock(port=a_port)
        self.relay_up(cfg, port)
        st, _, _ = write(port, [2000])
        self.assertEqual(st, 204)
        wait_until(lambda: 2000 in ids_of(b.body()), timeout=30, what="the control write")
        self.wait_spool_empty(port, "b")
        self.assertEqual([i for i in ids_of(b.body()) if i < 1000 or 1000 < i < 2000], [])

    # ------------------------------------------------------------------ damage

    def test_corruption_cut_and_counted(self):
        """Damage in a stopped relay's spool (a flipped byte in an older segment and in the
        newest, the newest truncated inside a record and garbage appended): the relay starts,
        every write of an undamaged record is delivered, the damaged ones are counted."""
        a = self.mock()
        b_port = free_port()
        cfg, port = self.spool_config([
            ("a", a.url, ""),
            ("b", "http://127.0.0.1:%d/write" % b_port, "spool-size-mb = 1")])
        r = self.relay_up(cfg, port)
        ids = list(range(1, 301))
        for i in ids:
            st, _, _ = write(port, [i], pad=900)
            self.assertEqual(st, 204)
        self.assertEqual(r.terminate(), 0)
        d = self.dir_of("b")
        segs = segments(d)
        self.assertGreaterEqual(len(segs), 4, os.listdir(d))
        lost = set()
        old = records(segs[0])
        off, size, _, rid = old[2]
        with open(segs[0], "r+b") as f:  # a byte of an older segment's record data
            f.seek(off + 100)
            c = f.read(1)
            f.seek(off + 100)
            f.write(bytes([c[0] ^ 0x10]))
        lost.update(rid)
        new = records(segs[-1])
        self.assertGreaterEqual(len(new), 3)
        off, size, _, rid = new[0]
        with open(segs[-1], "r+b") as f:  # the newest segment's first record
            f.seek(off + 40)
            c = f.read(1)
            f.seek(off + 40)
            f.write(bytes([c[0] ^ 0x01]))
        lost.update(rid)
        off, size, _, rid = new[-1]
        os.truncate(segs[-1], off + size // 2)  # torn inside its last record
        lost.update(rid)
        with open(segs[-1], "ab") as f:
            f.write(os.urandom(3000))
        b = self.mock(port=b_port)
        self.relay_up(cfg, port)
        want = set(ids) - lost
        wait_until(lambda: want <= set(ids_of(b.body())), timeout=60, what="the valid writes")
        self.wait_spool_empty(port, "b")
        self.assertEqual(set(ids_of(b.body())), want)
        s = prom.scrape(port)
        self.assertGreaterEqual(s.dropped("r1", "b", "corrupt"), 3)

    # ------------------------------------------------------------------ bounds

    def test_size_cap(self):
        """A long outage: the spool directory never holds more than spool-size-mb plus one
        segment; writes that do not fit are refused for B (counted spool_full) while clients
        still get 204 from A; what was spooled is delivered."""
        a = self.mock()
        b_port = free_port()
        cap = 1 << 20
        cfg, port = self.spool_config([
            ("a", a.url, ""), ("b", "http://127.0.0.1:%d/write" % b_port, "spool-size-mb = 1")])
        self.relay_up(cfg, port)
        d = self.dir_of("b")
        peak = 0
        for i in range(1, 2001):
            st, _, _ = write(port, [i], pad=1000)
            self.assertEqual(st, 204)
            if i % 20 == 0:
                peak = max(peak, sum(spool_files(d).values()))
        du = subprocess.run([require_tool("du"), "-sb", d], capture_output=True, check=True)
        peak = max(peak, int(du.stdout.split()[0]) - os.path.getsize(d))
        self.assertLessEqual(peak, cap + cap // 16, "spool above its cap plus one segment")
        s = prom.scrape(port)
        full = s.dropped("r1", "b", "spool_full")
        self.assertGreater(full, 500)
        self.assertEqual(s.backend("spool_capacity_bytes", "r1", "b"), cap)
        self.assertLessEqual(s.backend("spool_bytes", "r1", "b"), cap)
        spooled = s.backend("spool_writes", "r1", "b")
        self.assertEqual(spooled + full, 2000)
        b = self.mock(port=b_port)
        self.wait_spool_empty(port, "b")
        self.assertEqual(len(set(ids_of(b.body()))), spooled)

    def test_max_age(self):
        """spool-max-age = 2s: writes spooled while B was down for longer are dropped as
        expired (from memory and from disk), counted, never delivered; a fresh write is."""
        a = self.mock()
        b1_port, b2_port = free_port(), free_port()
        cfg, port = self.spool_config([
            ("a", a.url, ""),
            ("b1", "http://127.0.0.1:%d/write" % b1_port, "spool-size-mb = 8\nspool-max-age = 2s"),
            ("b2", "http://127.0.0.1:%d/write" % b2_port,
             "spool-size-mb = 8\nspool-max-age = 2s\nbuffer-size-mb = 1")])
        self.relay_up(cfg, port)
        t0 = time.monotonic()
        for i in range(1, 21):
            self.assertEqual(write(port, [i])[0], 204)
        time.sleep(max(0.0, t0 + 2.5 - time.monotonic()))  # what is tested: their age
        b1 = self.mock(port=b1_port)
        b2 = self.mock(port=b2_port)

        def expired():
            s = prom.scrape(port)
            return (s.dropped("r1", "b1", "expired") == 20 and
                    s.dropped("r1", "b2", "expired") == 20)
        wait_until(expired, timeout=30, what="20 writes expired for b1 and for b2")
        self.assertEqual(write(port, [100])[0], 204)
        for m in (b1, b2):
            wait_until(lambda: 100 in ids_of(m.body()), timeout=30, what="the fresh write")
            self.assertEqual(ids_of(m.body()), [100])

    # ------------------------------------------------------------------ the lock

    def test_second_relay_refuses_the_spool(self):
        a = self.mock()
        cfg, port = self.spool_config([("a", a.url, "spool-size-mb = 8")])
        self.relay_up(cfg, port)
        cfg2 = cfg.replace("127.0.0.1:%d" % port, "127.0.0.1:%d" % free_port())
        r2 = self.relay(cfg2, name="second.ini")
        rc = r2.proc.wait(timeout=30)
        self.assertNotEqual(rc, 0)
        self.assertIn(self.dir_of("a"), r2.log())
        self.assertIn("in use by another process", r2.log())
        # --check-config of the running relay's file does not take (nor need) the lock.
        chk = run_relay(["-config", os.path.join(self.tmp, "relay.ini"), "--check-config"])
        self.assertEqual(chk.returncode, 0, chk.stderr)

    # ------------------------------------------------------------------ disk errors

    def test_disk_full_falls_back_to_memory(self):
        """The relay may not write segment bytes beyond 300 kB (RLIMIT_FSIZE): appends fail with
        EFBIG, logged once, counted; writes stay in memory (still 204); when the limit is
        raised the spool takes writes again; nothing acknowledged is lost."""
        prlimit = require_tool("prlimit")
        a = self.mock()
        b_port = free_port()
        cfg, port = self.spool_config([
            ("a", a.url, ""),
            ("b", "http://127.0.0.1:%d/write" % b_port, "spool-size-mb = 64\nbuffer-size-mb = 16")])
        r = self.relay(cfg, wait_ports=[port], prefix=[prlimit, "--fsize=300000:unlimited", "--"])
        for i in range(1, 601):
            self.assertEqual(write(port, [i], pad=1000)[0], 204)
        self.assertTrue(r._alive())
        s = prom.scrape(port)
        self.assertGreater(s.get("influxdb_relay_backend_spool_errors_total", relay="r1",
                                 backend="b", op="write"), 0)
        self.assertEqual(r.log().count("spool: write failed, keeping writes in memory"), 1,
                         r.log()[-3000:])
        subprocess.run([prlimit, "--pid", str(r.proc.pid), "--fsize=unlimited:unlimited"], check=True)
        for i in range(601, 651):
            self.assertEqual(write(port, [i], pad=1000)[0], 204)
        wait_until(lambda: "spool: writing again" in r.log(), timeout=10, what="writing again")
        b = self.mock(port=b_port)
        want = set(range(1, 651))
        wait_until(lambda: want <= set(ids_of(b.body())), timeout=60, what="every write in B")
        self.assertEqual(r.terminate(), 0)

    def tmpfs_prefix(self, size):
        """argv prefix that runs the relay in its own mount namespace with a tmpfs of `size`
        mounted at self.spool_dir (util-linux unshare execs the shell, which execs the relay:
        the PID stays the relay's). A failed mount ends the shell, so the relay never binds and
        the test fails. Nothing is mounted outside that process."""
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        require_tool("mount")
        return ([require_tool("unshare")] + userns + ["--mount", "--propagation", "private",
                "sh", "-c", 'mount -t tmpfs -o size=%s tmpfs "$0" && exec "$@"' % size,
                self.spool_dir])

    def test_disk_full_tmpfs(self):
        """A real full disk: the spool dir is a 2 MiB tmpfs (smaller than spool-size-mb) in the
        relay's own mount namespace, B is down. Appends fail with ENOSPC: the relay does not
        exit, clients keep getting 204 (A has the writes, B's are held in memory), logged once,
        counted. When B is back its delivered segments are deleted, space returns, the spool
        takes writes again, and B has every acknowledged write, first arrivals in order."""
        a = self.mock()
        b_port = free_port()
        # 4 MiB cap (256 KiB segments) on 2 MiB of disk: the disk fills first. The writes held
        # in memory meanwhile are charged against buffer-size-mb, which holds them all here.
        cfg, port = self.spool_config([
            ("a", a.url, ""),
            ("b", "http://127.0.0.1:%d/write" % b_port, "spool-size-mb = 4\nbuffer-size-mb = 16")])
        r = self.relay(cfg, wait_ports=[port], prefix=self.tmpfs_prefix("2m"))
        # The relay's view of its spool dir (through its root in /proc: its mount namespace).
        seen = "/proc/%d/root%s" % (r.proc.pid, self.spool_dir)

        def fs():
            st = os.statvfs(seen)
            return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        self.assertEqual(fs()[0], 2 << 20, "the spool dir is not the relay's 2 MiB tmpfs")
        self.assertEqual(os.listdir(self.spool_dir), [], "the tmpfs leaked out of the namespace")

        def errors():
            return prom.scrape(port).get("influxdb_relay_backend_spool_errors_total",
                                         relay="r1", backend="b", op="write")
        acked, i, full_at = [], 0, None
        while full_at is None or i < full_at + 200:  # until full, then 200 writes more
            i += 1
            self.assertLess(i, 5000, "the 2 MiB tmpfs never filled")
            st, _, body = write(port, [i], pad=1000)
            self.assertEqual(st, 204, body)
            acked.append(i)
            if full_at is None and i % 10 == 0 and errors() > 0:
                full_at = i
        r._alive()
        self.assertLess(fs()[1], 64 << 10, "the tmpfs is not full")
        self.assertGreater(errors(), 0)
        log = r.log()
        self.assertEqual(log.count("spool: write failed, keeping writes in memory"), 1, log[-3000:])
        self.assertIn('error="No space left on device"', log)
        self.assertNotIn("spool: writing again", log)
        self.assertEqual(prom.scrape(port).dropped("r1", "b", "buffer_full"), 0)
        # Space returns: B back, its backlog (disk and memory) delivered and acknowledged, its
        # sealed segments deleted. (The cursor's first write may fail too, logged on its own
        # line: delivered writes may then come again after a restart, not tested here.)
        b = self.mock(port=b_port)
        wait_until(lambda: set(acked) <= set(ids_of(b.body())), timeout=120,
                   what="every acknowledged write in B")
        wait_until(lambda: fs()[1] > (1 << 20), timeout=30, what="space back on the tmpfs")
        i += 1
        st, _, body = write(port, [i], pad=1000)  # the first write since: spooled again
        self.assertEqual(st, 204, body)
        acked.append(i)
        wait_until(lambda: "spool: writing again" in r.log(), timeout=10, what="writing again")
        wait_until(lambda: set(acked) <= set(ids_of(b.body())), timeout=60, what="the new writes")
        self.wait_spool_empty(port, "b")
        got = ids_of(b.body())
        self.assertEqual(set(got), set(acked))
        first = list(dict.fromkeys(got))  # first arrivals (a retried batch may come again)
        self.assertEqual(first, sorted(first), "first arrivals out of order")
        log = r.log()
        self.assertEqual(log.count("spool: write failed"), 1, log[-3000:])
        self.assertEqual(r.terminate(), 0)

    # ------------------------------------------------------------------ memory

    def test_memory_bounded_while_spool_grows(self):
        """buffer-size-mb = 2 with B down: the spool takes 100 MB of writes while the relay's
        RSS grows by far less."""
        a = self.mock()
        cfg, port = self.spool_config([
            ("a", a.url, ""),
            ("b", self.down_url(), "spool-size-mb = 512\nbuffer-size-mb = 2")])
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
        r = self.relay(cfg, wait_ports=[port], env=env)
        for i in range(1, 41):  # warm up: threads, arenas, connections
            self.assertEqual(write(port, [i], pad=60000)[0], 204)
        rss0 = r.rss_kb()

        def client(k):
            for i in range(k * 10000, k * 10000 + 400):
                st, _, body = write(port, [i], pad=60000)
                if st != 204:
                    raise AssertionError((st, body))
        run_threads(client, [1, 2, 3, 4], timeout=600)
        s = prom.scrape(port)
        spooled = int(s.backend("spool_bytes", "r1", "b"))
        self.assertGreater(spooled, 90 << 20)
        grown = r.rss_kb() - rss0
        msg = "RSS grew by %d KiB while the spool holds %d MiB" % (grown, spooled >> 20)
        sys.stderr.write("\n%s\n" % msg)
        self.assertLess(grown * 1024, spooled // 4, msg)
        self.assertLessEqual(s.backend("queue_bytes", "r1", "b"), 3 << 20)

    # ------------------------------------------------------------------ poison

    def test_poison_in_the_spool_is_dropped_after_a_restart(self):
        """A write influxd 1.6.7 answers 500 for its data (a line with exactly 100 tags), spooled
        while B was down between two good writes: after a restart it is tried alone, the write
        behind it is stored, and it is dropped as rejected: the spool moves on."""
        a = self.mock()
        b = self.influxd(db="db")
        b.kill()
        cfg, port = self.spool_config([("a", a.url, ""), ("b", b.url, "spool-size-mb = 8")])
        r = self.relay_up(cfg, port)
        poison = "p," + ",".join("t%d=v" % k for k in range(100)) + " v=1i %d\n" % (T0 + 50)
        self.assertEqual(write(port, [1])[0], 204)
        self.assertEqual(http_request(port, "POST", "/write?db=db", poison)[0], 204)
        self.assertEqual(write(port, [2])[0], 204)
        r.kill()
        b.start()
        self.relay_up(cfg, port)
        wait_until(lambda: {1, 2} <= {int(x[1]) for x in b.rows("db", "SELECT v FROM m")},
                   timeout=60, what="the good writes in B")
        self.wait_spool_empty(port, "b")
        s = prom.scrape(port)
        self.assertEqual(s.dropped("r1", "b", "rejected"), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
