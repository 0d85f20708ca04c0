"""it.cli: the command line of build/influxdb-relay (influxdb-relay(8)).

--check-config, --version, --help, usage errors, a missing or unreadable file, every form of
-config, invalid configs at normal start-up (same FILE:LINE lines, nothing bound), and the
signal handling of a running relay (SIGTERM/SIGINT exit 0, SIGHUP ignored with a log line).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import unittest

from harness import (RELAY_BIN, RelayTestCase, free_port, http_request, port_open, run_relay,
                     unprivileged_prefix, wait_until)


def valid_config(port, backend_port=None, head=""):
    backend_port = backend_port or free_port()
    return (head + "[http.r1]\nbind-addr = 127.0.0.1:%d\n\n[http.r1.output.b1]\n"
            "location = http://127.0.0.1:%d/write\n" % (port, backend_port))


class TestCliFlags(RelayTestCase):

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_version(self):
        r = run_relay(["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^influxdb-relay \d+\.\d+\.\d+\n$")
        self.assertEqual(run_relay(["-version"]).returncode, 0)

    def test_help(self):
        for flag in ("--help", "-help", "-h"):
            r = run_relay([flag])
            self.assertEqual(r.returncode, 0, flag)
            self.assertIn("usage: influxdb-relay -config FILE", r.stdout.decode())
            self.assertIn("--check-config", r.stdout.decode())

    def test_unknown_flag_is_a_usage_error(self):
        r = run_relay(["--frobnicate"])
        self.assertEqual(r.returncode, 2)
        err = r.stderr.decode()
        self.assertIn("unknown option --frobnicate", err)
        self.assertIn("usage:", err)
        self.assertEqual(r.stdout, b"")

    def test_stray_argument_is_a_usage_error(self):
        path = self.write("ok.ini", valid_config(free_port()))
        r = run_relay(["-config", path, "extra"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown argument extra", r.stderr.decode())

    def test_missing_config_flag(self):
        r = run_relay([])
        self.assertEqual(r.returncode, 2)
        self.assertIn("missing -config FILE", r.stderr.decode())
        r = run_relay(["-config"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs a FILE", r.stderr.decode())

    def test_every_config_form(self):
        path = self.write("ok.ini", valid_config(free_port()))
        forms = [["-config", path], ["--config", path], ["-c", path], ["-config=" + path],
                 ["--config=" + path]]
        for form in forms:
            r = run_relay(form + ["--check-config"])
            self.assertEqual(r.returncode, 0, "%s: %s" % (form, r.stderr))
            self.assertEqual(r.stderr, b"", form)
            r = run_relay(["-check-config"] + form)
            self.assertEqual(r.returncode, 0, form)

    def test_missing_file(self):
        path = os.path.join(self.tmp, "nope.ini")
        for extra in (["--check-config"], []):
            r = run_relay(["-config", path] + extra, timeout=10)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr.decode(),
                             "%s: cannot open config file: No such file or directory\n" % path)

    def test_unreadable_file(self):
        """A config file the relay may not read. Root reads any file, so the relay runs as
        nobody (harness.unprivileged_prefix) on a copy of the binary in a directory nobody may
        enter; positive control: the same user reads a readable config next to it."""
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        os.chmod(self.tmp, 0o711)
        os.chmod(shared, 0o755)
        binary = os.path.join(shared, "influxdb-relay")
        shutil.copy(RELAY_BIN, binary)
        as_nobody = unprivileged_prefix()

        def check(path):
            return subprocess.run(as_nobody + [binary, "-config", path, "--check-config"],
                                  capture_output=True, timeout=30)
        readable = os.path.join(shared, "ok.ini")
        with open(readable, "w") as f:
            f.write(valid_config(free_port()))
        os.chmod(readable, 0o644)
        r = check(readable)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        path = os.path.join(shared, "secret.ini")
        with open(path, "w") as f:
            f.write(valid_config(free_port()))
        os.chmod(path, 0)
        r = check(path)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         "%s: cannot open config file: Permission denied\n" % path)

    def test_directory_as_config(self):
        r = run_relay(["-config", self.tmp, "--check-config"])
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         "%s: cannot read config file: Is a directory\n" % self.tmp)

    def test_check_config_reports_every_problem_with_path_as_given(self):
        self.write("bad.ini", "[relay]\nlog-level = loud\n\n[http.a]\nbind-addr = x\n"
                   "[http.a.output.b]\nlocation = http://h/write\ntimeout = 10x\n")
        r = subprocess.run([RELAY_BIN, "-config", "bad.ini", "--check-config"], cwd=self.tmp,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode().splitlines(), [
            'bad.ini:2: [relay] log-level: invalid value "loud" (want debug, info, warn or '
            'error)',
            'bad.ini:5: [http.a] bind-addr: invalid address "x" (want HOST:PORT or '
            '[IPV6]:PORT)',
            'bad.ini:8: [http.a.output.b] timeout: invalid duration "10x"',
        ])

    def test_check_config_binds_nothing_and_resolves_nothing(self):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(1)
            # The port is taken and the backend host does not resolve: still valid.
            path = self.write("ok.ini", "[http.r1]\nbind-addr = 127.0.0.1:%d\n"
                              "[http.r1.output.b1]\nlocation = http://no-such-host.invalid:8086"
                              "/write\n" % port)
            r = run_relay(["-config", path, "--check-config"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, b"")


class TestCliRun(RelayTestCase):

    def test_invalid_config_at_start_exits_nonzero_and_binds_nothing(self):
        port = free_port()
        text = valid_config(port) + "timeout = 10x\n"
        path = os.path.join(self.tmp, "bad.ini")
        with open(path, "w") as f:
            f.write(text)
        r = run_relay(["-config", path], timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(),
                         '%s:6: [http.r1.output.b1] timeout: invalid duration "10x"\n' % path)
        self.assertFalse(port_open(port))

    def test_same_problems_at_start_as_with_check_config(self):
        path = os.path.join(self.tmp, "bad.ini")
        with open(path, "w") as f:
            f.write("[http.a]\n[udp.a]\nbind-addr = :1\nprecision = y\n")
        a = run_relay(["-config", path, "--check-config"])
        b = run_relay(["-config", path], timeout=10)
        self.assertEqual(a.returncode, 1)
        self.assertEqual(b.returncode, 1)
        self.assertEqual(a.stderr, b.stderr)
        self.assertEqual(len(a.stderr.decode().splitlines()), 5, a.stderr)

    def test_address_in_use_at_start_exits_one(self):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))
            s.listen(1)
            path = os.path.join(self.tmp, "busy.ini")
            with open(path, "w") as f:
                f.write(valid_config(port))
            self.assertEqual(run_relay(["-config", path, "--check-config"]).returncode, 0)
            r = run_relay(["-config", path], timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("error", r.stderr.decode())
            self.assertIn(str(port), r.stderr.decode())

    def start(self, head=""):
        port = free_port()
        mock = self.mock()
        r = self.relay(valid_config(port, mock.port, head=head), wait_ports=[port])
        return r, port

    def test_sigterm_exits_zero_and_logs_version_and_path(self):
        r, port = self.start()
        st, _, _ = http_request(port, "GET", "/ping")
        self.assertEqual(st, 204)
        self.assertEqual(r.terminate(sig=signal.SIGTERM), 0)
        log = r.log()
        self.assertRegex(log, r"influxdb-relay \d+\.\d+\.\d+ starting config=%s"
                         % r.conf_path.replace(".", r"\."))
        self.assertIn("SIGTERM received", log)
        self.assertFalse(port_open(port))

    def test_sigint_exits_zero(self):
        r, _ = self.start()
        self.assertEqual(r.terminate(sig=signal.SIGINT), 0)
        self.assertIn("SIGINT received", r.log())

    def test_sighup_reloads_and_keeps_serving(self):
        # What a reload does is it.reload's; here: SIGHUP neither stops nor kills the relay.
        r, port = self.start()
        os.kill(r.proc.pid, signal.SIGHUP)
        wait_until(lambda: "configuration reloaded" in r.log(), timeout=10,
                   what="SIGHUP log line")
        self.assertIsNone(r.proc.poll())
        st, _, _ = http_request(port, "GET", "/ping")
        self.assertEqual(st, 204)
        self.assertEqual(r.terminate(), 0)

    def test_log_format_json(self):
        r, _ = self.start(head="[relay]\nlog-format = json\n\n")
        self.assertEqual(r.terminate(), 0)
        lines = [ln for ln in r.log().splitlines() if ln.strip()]
        self.assertTrue(lines)
        for ln in lines:
            obj = json.loads(ln)
            self.assertIn(obj["level"], ("debug", "info", "warn", "error"))
            self.assertIn("time", obj)
            self.assertIn("message", obj)

    def test_log_level_error_hides_info(self):
        # Positive control: an error line (a write dropped at shutdown) does reach the log. The
        # backend hangs, so the write is queued (any: 204) and still in flight at the deadline.
        port = free_port()
        hang = self.mock(lambda req: (204, b"", {}, 30 if req["path"] == "/write" else 0))
        r = self.relay("[relay]\nlog-level = error\nshutdown-timeout = 1s\n\n"
                       "[http.r1]\nbind-addr = 127.0.0.1:%d\nwrite-consistency = any\n\n"
                       "[http.r1.output.b1]\nlocation = %s\ntimeout = 60s\n"
                       "buffer-size-mb = 1\n" % (port, hang.url), wait_ports=[port])
        self.assertEqual(http_request(port, "POST", "/write?db=d", b"m v=1 1\n")[0], 204)
        wait_until(lambda: hang.writes(), what="the write in flight")
        self.assertEqual(r.terminate(), 0)
        self.assertRegex(r.log(), r"error r1/b1: shutdown: dropped writes=1 ")
        self.assertNotIn("starting", r.log())
        self.assertNotIn("SIGTERM", r.log())

if __name__ == "__main__":
    unittest.main()
