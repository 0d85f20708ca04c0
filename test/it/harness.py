"""Shared harness for the black-box tests (test/it/test_*.py).

Starts the real build/influxdb-relay, real influxd instances and programmable mock backends on
free 127.0.0.1 ports with temp dirs. Every process started is tracked by PID and killed in
tearDown (and at exit); every wait is bounded. On failure the relay's log is printed.

Environment (set by ctest): RELAY_BIN, RELAY_BUILD, RELAY_SRC.
"""

import atexit
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("RELAY_SRC", os.path.abspath(os.path.join(HERE, "..", "..")))
BUILD = os.environ.get("RELAY_BUILD", os.path.join(SRC, "build"))
RELAY_BIN = os.environ.get("RELAY_BIN", os.path.join(BUILD, "influxdb-relay"))
CONVERT_BIN = os.path.join(os.path.dirname(RELAY_BIN), "influxdb-relay-convert")
INFLUXD = os.environ.get("INFLUXD", "/usr/bin/influxd")

_live = set()  # Popen objects not yet reaped


def _kill_all():
    for p in list(_live):
        _kill(p)


atexit.register(_kill_all)


def _kill(p, sig=signal.SIGKILL):
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGCONT)
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    _live.discard(p)


# Ports handed to the relays, mocks and servers of the tests: below the kernel's ephemeral range
# (32768-60999 on Debian), so no outgoing connection and no bind(0) of another process can take
# one between free_port() and the bind of whoever gets it; and reserved across the test processes
# that run at once (ctest -j2) by a file created exclusively per port, which is reused only once
# it is an hour old.
PORT_LOW, PORT_HIGH = 10000, 32000
PORT_DIR = os.path.join(tempfile.gettempdir(), "relay-it-ports")
PORT_REUSE_S = 3600


def _reserve(port):
    os.makedirs(PORT_DIR, exist_ok=True)
    path = os.path.join(PORT_DIR, str(port))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        try:
            if time.time() - os.stat(path).st_mtime < PORT_REUSE_S:
                return False
            os.utime(path)  # an hour old: a run long gone, or this one's oldest
            return True
        except OSError:
            return False


def _bindable(port, kind):
    try:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def free_port(kind=socket.SOCK_STREAM):
    """A port free for both TCP and UDP on 127.0.0.1 right now, and given to no other test."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(2000):
        port = rng.randrange(PORT_LOW, PORT_HIGH)
        if (_bindable(port, socket.SOCK_STREAM) and _bindable(port, socket.SOCK_DGRAM)
                and _reserve(port)):
            return port
    raise RuntimeError("no free port in %d-%d" % (PORT_LOW, PORT_HIGH))


def wait_until(pred, timeout=10.0, step=0.02, what="condition"):
    """Polls pred() until true; returns its value or raises AssertionError at timeout."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(step)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_request(port, method, path, body=None, headers=None, timeout=30, host="127.0.0.1",
                 conn=None):
    """One request; returns (status, headers dict (lower-case keys), body bytes)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if own:
            conn.close()


# --------------------------------------------------------------------------- influxd

class Influxd:
    """A real influxd 1.x on free loopback ports with its own temp dir."""

    def __init__(self, tmp, udp_db=None, http_port=None, udp_port=None):
        self.dir = tempfile.mkdtemp(prefix="influxd-", dir=tmp)
        self.http_port = http_port or free_port()
        self.rpc_port = free_port()
        self.udp_port = udp_port or (free_port(socket.SOCK_DGRAM) if udp_db else None)
        self.udp_db = udp_db
        self.proc = None
        self.log_path = os.path.join(self.dir, "influxd.log")
        self._write_conf()

    def _write_conf(self):
        d = self.dir
        conf = f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[coordinator]
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.http_port}"
  log-enabled = false
  flux-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""
        if self.udp_db:
            conf += f"""
[[udp]]
  enabled = true
  bind-address = "127.0.0.1:{self.udp_port}"
  database = "{self.udp_db}"
  batch-size = 100
  batch-timeout = "50ms"
"""
        self.conf_path = os.path.join(d, "influxd.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf)

    def start(self, timeout=30):
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([INFLUXD, "-config", self.conf_path], stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        _live.add(self.proc)
        wait_until(lambda: self._ping(), timeout=timeout, what="influxd /ping")
        return self

    def _ping(self):
        if self.proc.poll() is not None:
            raise AssertionError("influxd exited: " + open(self.log_path).read()[-2000:])
        try:
            st, _, _ = http_request(self.http_port, "GET", "/ping", timeout=2)
            return st == 204
        except OSError:
            return False

    def kill(self):
        if self.proc:
            _kill(self.proc)

    def stop_signal(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont_signal(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    @property
    def url(self):
        return "http://127.0.0.1:%d/write" % self.http_port

    def query(self, q, db=None, epoch="ns"):
        params = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        st, _, body = http_request(self.http_port, "POST",
                                   "/query?" + urllib.parse.urlencode(params))
        if st != 200:
            raise AssertionError("query %r: %d %s" % (q, st, body))
        return json.loads(body)

    def create_db(self, name):
        self.query('CREATE DATABASE "%s"' % name)

    def rows(self, db, q):
        """All rows of the first series of q, as lists."""
        res = self.query(q, db=db)["results"][0]
        out = []
        for s in res.get("series", []):
            out.extend(s["values"])
        return out

    def count(self, db, measurement, field="value"):
        rows = self.rows(db, 'SELECT count("%s") FROM "%s"' % (field, measurement))
        return rows[0][1] if rows else 0

    def write(self, db, body, precision=None):
        path = "/write?db=" + db + ("&precision=" + precision if precision else "")
        return http_request(self.http_port, "POST", path, body)


# --------------------------------------------------------------------------- mock backend

class MockBackend:
    """A programmable HTTP backend on 127.0.0.1 recording every request.

    Behaviour per request comes from `responder(req) -> (status, body, headers, delay_s)`;
    the default answers 204. `requests` holds dicts: method, path, query (dict of lists),
    headers (lower-case), body (bytes), time. With tls=(cert, key) it speaks HTTPS only.
    """

    def __init__(self, port=None, responder=None, tls=None):
        self.port = port or free_port()
        self.tls = tls
        self.responder = responder or (lambda req: (204, b"", {}, 0))
        self.requests = []
        self.errors = []  # tracebacks of exceptions raised by the responder
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    def start(self):
        mock = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                    body = read_chunked(self.rfile)  # a gzipping output sends chunked
                else:
                    n = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                req = {"method": self.command, "path": u.path,
                       "query": urllib.parse.parse_qs(u.query, keep_blank_values=True),
                       "raw_query": u.query,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "time": time.monotonic()}
                try:
                    status, rbody, rheaders, delay = mock.responder(req)
                except ConnectionAbortedError:
                    raise  # take_down(): drop the connection without an answer
                except BaseException:
                    # A failed assertion (or a bug) in a responder fails the test (tearDown
                    # re-raises it in the main thread); the connection is dropped.
                    with mock.lock:
                        mock.errors.append(traceback.format_exc())
                    raise
                with mock.lock:
                    mock.requests.append(req)
                if delay:
                    time.sleep(delay)
                if isinstance(rbody, str):
                    rbody = rbody.encode()
                self.send_response(status)
                for k, v in (rheaders or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                self.wfile.write(rbody)

            do_POST = _handle
            do_GET = _handle
            do_HEAD = _handle

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        return "%s://127.0.0.1:%d/write" % ("https" if self.tls else "http", self.port)

    def writes(self):
        with self.lock:
            return [r for r in self.requests if r["path"] == "/write"]

    def body(self):
        """Concatenation of every /write body received, in arrival order."""
        return b"".join(r["body"] if r["body"].endswith(b"\n") else r["body"] + b"\n"
                        for r in self.writes())


# --------------------------------------------------------------------------- relay

def listeners(config):
    """[("tcp"|"udp", port)] of every [http.NAME] / [udp.NAME] bind-addr of an INI config."""
    out, kind = [], None
    for raw in config.splitlines():
        line = raw.strip()
        if line.startswith("["):
            m = re.match(r"\[(http|udp)\.[^.\]]+\]$", line)
            kind = ("tcp" if m.group(1) == "http" else "udp") if m else None
        elif kind and re.match(r"bind-addr\s*=", line):
            addr = line.split("=", 1)[1].strip().strip('"')
            out.append((kind, int(addr.rsplit(":", 1)[1])))
    return out


def _socket_rows(pid):
    """(proto, local port, remote port, state) of every inet socket process pid holds (IPv4
    and IPv6), read from /proc; proto "tcp" or "udp", state as in /proc/net/tcp ("0A" LISTEN,
    "01" ESTABLISHED ...)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open("/proc/net/" + proto) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[9] in inodes:
                out.append((proto[:3], int(cols[1].rsplit(":", 1)[1], 16),
                            int(cols[2].rsplit(":", 1)[1], 16), cols[3]))
    return out


def bound_sockets(pid):
    """{("tcp", port) for each listening TCP socket, ("udp", port) for each bound UDP socket}
    that process pid holds."""
    return {(proto, local) for proto, local, _, state in _socket_rows(pid)
            if proto == "udp" or state == "0A"}


def peer_ports(pid):
    """The remote ports of the TCP connections process pid holds (a connection the process
    has closed is gone from this set)."""
    return {remote for proto, _, remote, state in _socket_rows(pid)
            if proto == "tcp" and state != "0A"}


class Relay:
    """The real relay binary run on a config text (INI).

    `prefix` is an argv put before the relay's (e.g. a namespace or user wrapper that ends with
    exec, so the PID stays the relay's)."""

    def __init__(self, tmp, config, name="relay.ini", prefix=(), env=None):
        self.dir = tmp
        self.config = config
        self.conf_path = os.path.join(tmp, name)
        with open(self.conf_path, "w") as f:
            f.write(config)
        self.log_path = self.conf_path + ".log"
        self.proc = None
        self.prefix = list(prefix)
        self.env = env

    def start(self, wait_ports=(), timeout=15):
        """Starts the relay. With wait_ports, waits until each of those TCP ports and every
        listener of the config (HTTP and UDP) is bound (see wait_ready())."""
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.prefix + [RELAY_BIN, "-config", self.conf_path],
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        logf.close()
        _live.add(self.proc)
        if wait_ports:
            self.wait_ready(extra_tcp=wait_ports, timeout=timeout)
        return self

    def wait_ready(self, extra_tcp=(), timeout=15):
        """Waits until every listener of the config ([http.*] and [udp.*] bind-addr) and every
        port of extra_tcp is bound by this relay process: a TCP socket listening, a UDP socket
        bound (read from /proc: no probe connection, no datagram, works at any log level).
        From then on a datagram sent to a UDP listener is queued in its socket, and a TCP
        connection is accepted. Fails at once if the relay exits."""
        want = set(listeners(self.config)) | {("tcp", p) for p in extra_tcp}

        def ready():
            self._alive()
            return want <= bound_sockets(self.proc.pid)
        wait_until(ready, timeout=timeout,
                   what="relay listeners bound %s" % sorted("%s/%d" % w for w in want))
        return self

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("relay exited %s:\n%s" % (self.proc.returncode, self.log()))
        return True

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def terminate(self, timeout=30, sig=signal.SIGTERM):
        """Sends sig and waits; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            _kill(self.proc)
        return rc

    def kill(self):
        if self.proc:
            _kill(self.proc)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def run_relay(args, timeout=30, input=None):
    """Runs the relay binary to completion (e.g. --check-config); returns CompletedProcess."""
    return subprocess.run([RELAY_BIN] + list(args), capture_output=True, timeout=timeout,
                          input=input)


# --------------------------------------------------------------------------- test base

class RelayTestCase(unittest.TestCase):
    """Base class: a temp dir, process tracking, and the relay log printed on failure."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="relay-it-")
        self.tmp = self._tmp.name
        self.relays = []
        self.influxds = []
        self.mocks = []

    def tearDown(self):
        failed = self._outcome_failed()
        for r in self.relays:
            if failed:
                sys.stderr.write("\n----- relay log %s -----\n%s\n" % (r.conf_path, r.log()[-8000:]))
            r.kill()
        for i in self.influxds:
            i.kill()
        for m in self.mocks:
            m.stop()
        self._tmp.cleanup()
        errors = [e for m in self.mocks for e in m.errors]
        if errors:
            raise AssertionError("a mock backend's responder raised:\n" + "\n".join(errors))

    def _outcome_failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        errors = getattr(outcome, "errors", None)
        if errors is None:  # Python 3.11+
            result = getattr(outcome, "result", None)
            if result is None:
                return False
            return any(t is self for t, _ in result.failures + result.errors)
        return any(exc for _, exc in errors)

    def influxd(self, db=None, udp_db=None, **kw):
        i = Influxd(self.tmp, udp_db=udp_db, **kw).start()
        self.influxds.append(i)
        if db:
            i.create_db(db)
        if udp_db and udp_db != db:
            i.create_db(udp_db)
        return i

    def mock(self, responder=None, port=None, tls=None):
        m = MockBackend(port=port, responder=responder, tls=tls).start()
        self.mocks.append(m)
        return m

    def udp_socket(self, timeout=None):
        """A UDP socket bound to a free 127.0.0.1 port (a sink for a UDP output, or a sender),
        closed at the end of the test."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        self.addCleanup(s.close)
        return s

    def relay(self, config, wait_ports=(), name="relay.ini", prefix=(), env=None):
        r = Relay(self.tmp, config, name=name, prefix=prefix, env=env)
        self.relays.append(r)  # before start: its log is printed if start-up fails
        return r.start(wait_ports=wait_ports)

    def relay_per_mock(self, mocks, output_extra="timeout = 2s\nmax-delay-interval = 1s\n"):
        """One relay per mock backend ([http.relayN] with output "influx"), started; returns
        their ports in order."""
        ports = [free_port() for _ in mocks]
        for i, (port, m) in enumerate(zip(ports, mocks)):
            self.relay("[http.relay%d]\nbind-addr = 127.0.0.1:%d\n"
                       "[http.relay%d.output.influx]\nlocation = %s\n%s"
                       % (i + 1, port, i + 1, m.url, output_extra),
                       wait_ports=[port], name="relay%d.ini" % (i + 1))
        return ports

    def http_relay_config(self, outputs, port=None, extra="", output_extra="", relay_name="r1",
                          head=""):
        """INI for one [http.relay_name] on a free port with the given backend URLs.
        Returns (config text, port)."""
        port = port or free_port()
        lines = [head, "[http.%s]" % relay_name, "bind-addr = 127.0.0.1:%d" % port, extra]
        for i, url in enumerate(outputs):
            lines += ["", "[http.%s.output.b%d]" % (relay_name, i + 1), "location = " + url,
                      output_extra]
        return "\n".join(lines) + "\n", port


# --------------------------------------------------------------------------- threads, tools

class Worker(threading.Thread):
    """A thread whose exception (a failed assertion included) fails the test: join() re-raises
    it in the joining thread, and a worker still running at the join timeout is a failure.
    result holds fn's return value."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__(daemon=True)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.result = None
        self.exc = None

    def run(self):
        try:
            self.result = self.fn(*self.args, **self.kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised by join()
            self.exc = e

    def join(self, timeout=120):
        super().join(timeout)
        if self.is_alive():
            raise AssertionError("worker %s still running after %ss" % (self.fn.__name__, timeout))
        if self.exc is not None:
            raise self.exc
        return self.result


def run_threads(fn, args_list, timeout=120):
    """Runs fn(*args) for each args of args_list, each in its own Worker, all at once; joins
    them all and re-raises the first exception in the caller. Returns the results in order."""
    workers = [Worker(fn, *(a if isinstance(a, tuple) else (a,))) for a in args_list]
    for w in workers:
        w.start()
    end = time.monotonic() + timeout
    for w in workers:
        threading.Thread.join(w, max(0.0, end - time.monotonic()))
    return [w.join(0) for w in workers]


def require_tool(name, *fallbacks):
    """The path of a program a test needs; a missing one fails the test (scripts/setup.sh
    installs every tool the tests call), it never skips it."""
    for n in (name,) + fallbacks:
        path = shutil.which(n) or (n if os.path.isabs(n) and os.access(n, os.X_OK) else None)
        if path:
            return path
    raise AssertionError("%s is not installed: run scripts/setup.sh" % name)


def unprivileged_prefix():
    """argv prefix that runs a command as nobody:nogroup with no supplementary groups (util-linux
    setpriv, execs the command: same PID). Needs root; as another user, [] (already
    unprivileged)."""
    if os.geteuid() != 0:
        return []
    return [require_tool("setpriv"), "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


def openssl(*args):
    """Runs the openssl command line tool; fails the test when it fails."""
    subprocess.run([require_tool("openssl")] + list(args), check=True, capture_output=True,
                   timeout=60)


def make_ca(directory, name="ca"):
    """A self-signed CA certificate and its key in directory; returns (cert path, key path)."""
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
            "-days", "2", "-subj", "/CN=relay test %s" % name)
    return cert, key


def make_leaf(directory, name, ca=None, san="IP:127.0.0.1,DNS:localhost"):
    """A server certificate for san, signed by ca (a (cert, key) pair) or self-signed when ca is
    None, and its key; returns (cert path, key path)."""
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")
    ext = os.path.join(directory, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san)
    if ca is None:
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=" + san)
        return cert, key
    csr = os.path.join(directory, name + ".csr")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj",
            "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


def trust_store_prefix(bundle_dir):
    """argv prefix that runs a command in a private mount namespace where bundle_dir is mounted
    over /etc/ssl/certs, the system trust store libcurl uses (Debian's libcurl is built with
    CAINFO /etc/ssl/certs/ca-certificates.crt and CAPATH /etc/ssl/certs and reads no environment
    variable for them). Nothing changes outside that process. As root only (otherwise through a
    user namespace); util-linux unshare execs, so the PID stays the command's."""
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ([require_tool("unshare")] + userns + ["--mount", "--propagation", "private", "sh",
            "-c", 'mount --bind "$0" /etc/ssl/certs && exec "$@"', bundle_dir])


def read_chunked(rfile):
    """The body of a request sent with Transfer-Encoding: chunked, read from rfile (chunk
    extensions and trailers ignored)."""
    out = []
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(out)
        out.append(rfile.read(size))
        rfile.readline()
