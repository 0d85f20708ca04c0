"""it.convert: build/influxdb-relay-convert (influxdb-relay-convert(1)).

Golden fixtures in test/convert/ (the Go relay's sample configs, the README's examples, hard
TOML cases): NAME.toml -> exactly NAME.ini on stdout and NAME.stderr (warnings) on stderr, and
the output passes influxdb-relay --check-config. Then every kind of refusal: FILE:LINE: message,
nothing on stdout, exit 1.
"""

import glob
import os
import subprocess
import unittest

from harness import CONVERT_BIN, RELAY_BIN, SRC, RelayTestCase

FIXTURES = os.path.join(SRC, "test", "convert")


def convert(path, cwd=None):
    return subprocess.run([CONVERT_BIN, path], capture_output=True, timeout=30, cwd=cwd)


def check_config(path):
    return subprocess.run([RELAY_BIN, "-config", path, "--check-config"], capture_output=True,
                          timeout=30)


class TestConvertFixtures(RelayTestCase):

    def test_fixtures_exist(self):
        names = {os.path.basename(p)[:-5] for p in glob.glob(FIXTURES + "/*.toml")}
        for want in ("sample", "sample_buffered", "kapacitor", "readme_http", "readme_udp",
                     "hard", "crlf"):
            self.assertIn(want, names)

    def test_golden_outputs_pass_check_config(self):
        for toml in sorted(glob.glob(FIXTURES + "/*.toml")):
            name = os.path.basename(toml)[:-5]
            with self.subTest(fixture=name):
                r = convert(name + ".toml", cwd=FIXTURES)
                self.assertEqual(r.returncode, 0, r.stderr)
                with open(os.path.join(FIXTURES, name + ".ini"), "rb") as f:
                    self.assertEqual(r.stdout.decode(), f.read().decode())
                want_err = b""
                if os.path.exists(os.path.join(FIXTURES, name + ".stderr")):
                    with open(os.path.join(FIXTURES, name + ".stderr"), "rb") as f:
                        want_err = f.read()
                self.assertEqual(r.stderr.decode(), want_err.decode())
                ini = os.path.join(self.tmp, name + ".ini")
                with open(ini, "wb") as f:
                    f.write(r.stdout)
                c = check_config(ini)
                if name == "readme_http":
                    # The README's PEM path does not exist here: that is the only problem.
                    self.assertEqual(c.stderr.decode(), '%s:6: [http.example-http] '
                                     'ssl-combined-pem: cannot read "/etc/ssl/influxdb-relay.pem"'
                                     ': No such file or directory\n' % ini)
                else:
                    self.assertEqual(c.returncode, 0, c.stderr)
                    self.assertEqual(c.stderr, b"")

    def test_sample_keeps_order_names_and_values(self):
        r = convert(os.path.join(FIXTURES, "sample.toml"))
        text = r.stdout.decode()
        order = [text.index(s) for s in ("[http.example-http]", "output.local1]",
                                         "output.local2]", "[udp.example-udp]", "mtu = 512",
                                         "mtu = 1024")]
        self.assertEqual(order, sorted(order))
        self.assertIn("[udp.example-udp]\nbind-addr = 127.0.0.1:9096\n", text)

    def test_usage(self):
        r = subprocess.run([CONVERT_BIN], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: influxdb-relay-convert FILE.toml", r.stderr.decode())
        r = subprocess.run([CONVERT_BIN, "--help"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        r = convert(os.path.join(self.tmp, "missing.toml"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing.toml: cannot open: No such file or directory", r.stderr.decode())


HTTP_OK = '[[http]]\nname = "a"\nbind-addr = "127.0.0.1:9096"\n' \
          'output = [ { name = "b", location = "http://127.0.0.1:8086/write" } ]\n'


class TestConvertRefusals(RelayTestCase):

    def run_toml(self, text, name="in.toml"):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        return convert(name, cwd=self.tmp)

    def refused(self, text, *lines):
        r = self.run_toml(text)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(r.stdout, b"")
        self.assertEqual(r.stderr.decode().splitlines(), ["in.toml:" + ln for ln in lines])

    def test_toml_syntax(self):
        cases = [
            ('[[http]]\nname = "abc\n', '2: newline in a single-line string'),
            ('[[http]]\nname = "a\\qb"\n', '2: invalid escape "\\q" in string'),
            ('[[http]]\nname "a"\n', '2: expected "=" after key'),
            ('[[http]]\nname = "a"\nname = "b"\n', '3: duplicate key "name"'),
            ('[a]\n[a]\n', '2: table defined twice'),
            ('[[http]]\nread-buffer = 1.5\n', '2: floating-point values are not supported: 1.5'),
            ('[[http]]\nx = 1979-05-27T07:32:00Z\n', '2: dates and times are not supported'),
            ('[[http]]\nx = 012\n', '2: invalid value 012'),
            ('[[http]]\nx = 1__0\n', '2: invalid value 1__0'),
            ('[[http]]\nx = 99999999999999999999\n',
             '2: integer 99999999999999999999 out of range'),
            ('[[http]]\na.b = 1\n', '2: dotted keys are not supported'),
            ('[[http]]\nx = [1, 2\n', '3: expected "," or "]" in array'),
            ('[[http]]\nx = { a = 1 \n', '3: expected "," or "}" in inline table'),
            ('[[http]\n', '1: expected "]]" to close the table header'),
            ('[[http]]\nname = "a" b\n', '2: unexpected text "b" at end of line'),
            ('[[http]]\nname = """abc\n\n', '2: unterminated string'),
            ('[[http]]\nname = "\\u0000"\n', '2: unicode escape U+0000 is not allowed here'),
            ('[[http]]\noutput = []\n[[http.output]]\n', '3: "output" is already a static array'),
            ('http = 1\n[[http]]\n', '2: "http" is already a value of type integer'),
            (b'[[http]]\nname = "a\x00"\n', '2: NUL byte in file'),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                self.refused(text, want)

    def test_semantic_problems_all_reported_in_line_order(self):
        self.refused('[[http]]\nname = "a"\nbind-addr = "127.0.0.1"\ncolour = "red"\n'
                     'output = [ { name = "b1", location = "ftp://x/write", timeout = "10x" },\n'
                     '  { name = "b2", location = "http://h/write", mtu = 5 } ]\n'
                     '[[udp]]\nname = "a"\nbind-addr = ":1"\n'
                     'output = [ { name = "u", location = ":2" } ]\n',
                     '3: bind-addr: invalid address "127.0.0.1" (want HOST:PORT)',
                     '4: unknown key "colour" in [[http]]',
                     '5: location: invalid URL "ftp://x/write" (want http://HOST[:PORT]/write or '
                     'https://...)',
                     '5: timeout: invalid duration "10x"',
                     '6: unknown key "mtu" in [[http.output]]',
                     '7: duplicate relay name "a" (first at line 1; the Go relay refuses it too)',
                     '7: warning: relay name "a" is used twice: written as "a-2"',
                     '10: location: invalid address ":2" (want HOST:PORT)')

    def test_types(self):
        self.refused('[[http]]\nname = 5\n' + HTTP_OK[9:].replace('name = "a"\n', ''),
                     '1: warning: relay name "http://127.0.0.1:9096" is not a valid INI name: '
                     'written as "http_127_0_0_1_9096"',
                     '2: [[http]] name: want a string, got integer')
        self.refused(HTTP_OK.replace('"b",', '"b", buffer-size-mb = "100",'),
                     '4: [[http.output]] buffer-size-mb: want an integer, got string')
        self.refused(HTTP_OK.replace('"b",', '"b", skip-tls-verification = "true",'),
                     '4: [[http.output]] skip-tls-verification: want a boolean, got string')
        self.refused('[http]\nname = "a"\n',
                     '1: http: want an array of tables ([[http]]), got table')
        self.refused('[[influxdb]]\n', '1: unknown key "influxdb" (want [[http]] or [[udp]])')
        self.refused('# nothing\n', '1: no [[http]] or [[udp]] relay')

    def test_missing_values(self):
        self.refused('[[http]]\nname = "a"\noutput = [ { name = "b", location = "http://h/w" } ]\n',
                     '1: [[http]] bind-addr is missing or empty (the Go relay would listen on a '
                     'random port)')
        self.refused('[[http]]\nname = "a"\nbind-addr = ":1"\noutput = [ { name = "b" } ]\n',
                     '4: [[http.output]] location is missing or empty')
        self.refused('[[udp]]\nname = "a"\nbind-addr = ":1"\n',
                     '1: [[udp]] relay has no output (influxdb-relay needs at least one; the Go '
                     'relay would accept writes and store them nowhere)')

    def test_duplicate_default_relay_names(self):
        # Two nameless relays on one address: the Go relay refuses "http://ADDR" twice.
        self.refused('[[http]]\nbind-addr = ":1"\n[[http.output]]\nname = "b"\n'
                     'location = "http://h/w"\n'
                     '[[http]]\nbind-addr = ":1"\n[[http.output]]\nname = "b"\n'
                     'location = "http://h/w"\n',
                     '1: warning: relay name "http://:1" is not a valid INI name: written as '
                     '"http_1"',
                     '6: duplicate relay name "http://:1" (first at line 1; the Go relay refuses '
                     'it too)',
                     '6: warning: relay name "http://:1" is not a valid INI name: written as '
                     '"http_1-2"')

    def test_value_not_representable_in_ini(self):
        self.refused(HTTP_OK + 'default-retention-policy = "a ; b"\n',
                     '5: default-retention-policy: value "a ; b" cannot be written in INI '
                     '(control character, edge blank, " ;" or longer than 197 characters)')

    def test_invalid_duration_refused_when_go_parses_it(self):
        self.refused(HTTP_OK.replace('"b",', '"b", buffer-size-mb = 1, max-delay-interval = "x",'),
                     '4: max-delay-interval: invalid duration "x"')


class TestConvertNames(RelayTestCase):

    def run_ok(self, text):
        path = os.path.join(self.tmp, "in.toml")
        with open(path, "w") as f:
            f.write(text)
        r = convert("in.toml", cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        ini = os.path.join(self.tmp, "out.ini")
        with open(ini, "wb") as f:
            f.write(r.stdout)
        c = check_config(ini)
        self.assertEqual(c.returncode, 0, c.stderr)
        return r.stdout.decode(), r.stderr.decode()

    def test_valid_names_are_never_renamed(self):
        out, err = self.run_ok(
            '[[http]]\nname = "a b"\nbind-addr = ":1"\n'
            'output = [ { name = "o.1", location = "http://h/w" }, '
            '{ name = "o_1", location = "http://h/w" } ]\n'
            '[[udp]]\nname = "a_b"\nbind-addr = ":2"\noutput = [ { location = "localhost:1" } ]\n')
        self.assertIn("[http.a_b-2]\n", out)
        self.assertIn("[udp.a_b]\n", out)
        self.assertIn("[http.a_b-2.output.o_1-2]\n", out)
        self.assertIn("[http.a_b-2.output.o_1]\n", out)
        self.assertIn("[udp.a_b.output.localhost_1]\n", out)
        self.assertEqual(err.splitlines(), [
            'in.toml:1: warning: relay name "a b" is not a valid INI name: written as "a_b-2"',
            'in.toml:4: warning: output name "o.1" is not a valid INI name: written as "o_1-2"',
            'in.toml:8: warning: output name "localhost:1" is not a valid INI name: written as '
            '"localhost_1"',
        ])
        # Output order is kept: o.1 (renamed) still comes first.
        self.assertLess(out.index("output.o_1-2]"), out.index("output.o_1]"))

    def test_strings_with_escapes_survive(self):
        out, _ = self.run_ok('[[http]]\nname = "r\\u00e9lai"\nbind-addr = \'[::1]:9096\'\n'
                             'default-retention-policy = "r\\u00e9p\\"s\\""\n'
                             'output = [ { name = "b", location = """http://h/w""" } ]\n')
        self.assertIn('default-retention-policy = rép"s"\n', out)
        self.assertIn("[http.r_lai]\n", out)
        self.assertIn("bind-addr = [::1]:9096\n", out)

    def test_non_positive_durations_keep_their_go_meaning(self):
        out, err = self.run_ok('[[http]]\nname = "a"\nbind-addr = ":1"\noutput = [ { name = "b", '
                               'location = "http://h/w", buffer-size-mb = 1, '
                               'max-delay-interval = "0s", timeout = "-1s" } ]\n')
        self.assertIn("timeout = 2562047h47m16.854s\nbuffer-size-mb = 1\nmax-delay-interval = 1ms\n",
                      out)
        self.assertEqual(err.splitlines(), [
            'in.toml:4: warning: timeout = "-1s" means no limit to the Go relay: written as '
            '2562047h47m16.854s',
            'in.toml:4: warning: max-delay-interval = "0s" means retry at once to the Go relay: '
            'written as 1ms',
        ])


if __name__ == "__main__":
    unittest.main()
