"""The line protocol corpus (test/lp/corpus.txt): reader, writer and influxd's verdicts.

Format, one case per line, columns separated by one TAB:
    VERDICT  PRECISION  BODY  [REASON  [RELAY]]
VERDICT is what influxd 1.6.7 answered when BODY was written alone to an empty database:
    ok       204 and a point stored
    skip     204 and nothing stored (blank lines, comments)
    err      400 "unable to parse '...': REASON" (REASON is influxd's text after "': ")
    refused  400 for another reason (storage refused a parsed point; REASON is its message)
    500      influxd's parser crashed (a 500 without a reason)
PRECISION is influxd's precision= value (n, u, ms, s, m, h).
BODY and REASON use C-like escapes: \\\\ \\" \\t \\n \\r \\0 \\xHH, and \\*N(TEXT) for TEXT repeated N
times with each '%' in TEXT replaced by the repetition index (4 digits), for long lines;
a backslash before any other character stands for itself (so `cpu\\ name` reads as written).
RELAY is what lp_process() (the relay) does with BODY, called with the fixed clock NOW_NS =
1700000000123456789 ns:
    =        it forwards BODY untouched: the output is exactly BODY followed by "\n"
    +        it stamps it: BODY, one space, NOW_NS in PRECISION (truncated), "\n"
    >BYTES   the output is exactly BYTES (escapes as in BODY), e.g. for a body of several lines
    REASON   it rejects the line where influxd accepts it (the relay-only reason "ambiguous line
             end", see lp/lp.h; or a line influxd crashes on before finding its error)
It is required for every case the relay forwards (VERDICT ok, refused, 500) and empty for the
cases it drops like influxd (err, skip).
Lines starting with '#' and blank lines are comments. Verdicts come from influxd: regenerate
them with `python3 test/lp/gen_corpus.py` (starts a real influxd), then review the diff.
"""
import re

VERDICTS = ("ok", "skip", "err", "refused", "500")
PRECISIONS = ("n", "u", "ms", "s", "m", "h")
NOW_NS = 1700000000123456789
PREC_NS = {"n": 1, "u": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_ESCAPES = {"\\": 0x5C, '"': 0x22, "t": 9, "n": 10, "r": 13, "0": 0}
_REPEAT = re.compile(r"\\\*(\d+)\(([^)]*)\)")


def unescape(s):
    """Corpus text -> bytes."""
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        m = _REPEAT.match(s, i)
        if m:
            n, text = int(m.group(1)), m.group(2)
            for k in range(n):
                out += unescape(text.replace("%", "%04d" % k))
            i = m.end()
            continue
        n = s[i + 1] if i + 1 < len(s) else ""
        if n not in _ESCAPES and n != "x":
            out.append(0x5C)  # a backslash before any other character stands for itself
            i += 1
            continue
        if n == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
            continue
        out.append(_ESCAPES[n])
        i += 2
    return bytes(out)


def escape(b):
    """bytes -> corpus text (no repetition compression)."""
    out = []
    for x in b:
        c = chr(x)
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif x == 0:
            out.append("\\0")
        elif x < 0x20 or x >= 0x7F:
            out.append("\\x%02x" % x)
        else:
            out.append(c)
    return "".join(out)


class Case:
    def __init__(self, lineno, verdict, prec, body_text, reason_text="", relay=""):
        self.lineno = lineno
        self.verdict = verdict
        self.prec = prec
        self.body_text = body_text
        self.reason_text = reason_text
        self.relay = relay

    @property
    def body(self):
        return unescape(self.body_text)

    @property
    def reason(self):
        return unescape(self.reason_text)

    @property
    def output(self):
        """The bytes the relay forwards for this case, or None when it drops it."""
        if self.relay == "=":
            return self.body + b"\n"
        if self.relay == "+":
            return self.body + b" %d\n" % (NOW_NS // PREC_NS[self.prec])
        if self.relay.startswith(">"):
            return unescape(self.relay[1:])
        return None

    def format(self):
        cols = [self.verdict, self.prec, self.body_text]
        if self.reason_text or self.relay:
            cols.append(self.reason_text)
        if self.relay:
            cols.append(self.relay)
        return "\t".join(cols)


def read(path):
    """Returns (items, cases): items keeps every line in order (comment strings and Case
    objects) for rewriting; cases is the list of Case objects."""
    items, cases = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                items.append(line)
                continue
            cols = line.split("\t")
            if len(cols) < 3 or len(cols) > 5:
                raise ValueError(f"{path}:{n}: expected 3 to 5 TAB-separated columns")
            c = Case(n, *cols)
            items.append(c)
            cases.append(c)
    return items, cases


def write(path, items):
    with open(path, "w", encoding="utf-8") as f:
        for it in items:
            f.write((it.format() if isinstance(it, Case) else it) + "\n")


def classify(status, body, stored):
    """influxd's answer to a one-case write -> (verdict, reason text)."""
    if status == 204:
        return ("ok" if stored else "skip"), ""
    if status >= 500:
        return "500", ""
    import json
    msg = json.loads(body.decode("utf-8"))["error"]
    m = re.match(r"(?s)unable to parse '.*': (.*)\Z", msg)
    if status == 400 and m and "\nunable to parse" not in msg:
        # The reason is what follows the last "': " (the line itself may contain "': ").
        reason = msg[msg.rindex("': ") + 3:]
        return "err", reason
    return "refused", msg


def check_influxd(port, cases, http_request, workers=8):
    """Writes every case alone to its own database on the influxd at port; returns a list of
    (case, verdict, reason) for each case whose answer differs from the recorded verdict."""
    import urllib.parse
    from concurrent.futures import ThreadPoolExecutor

    def query(q, db=None):
        path = "/query?" + urllib.parse.urlencode({"q": q, **({"db": db} if db else {})})
        st, _, body = http_request(port, "POST", path)
        if st != 200:
            raise AssertionError(f"influxd query {q!r}: {st} {body!r}")
        return body

    def one(idx_case):
        idx, c = idx_case
        db = "c%04d" % idx
        query(f"CREATE DATABASE {db}")
        st, _, body = http_request(port, "POST", f"/write?db={db}&precision={c.prec}", body=c.body)
        stored = False
        if st == 204:
            stored = b'"values"' in query("SHOW SERIES", db)
        verdict, reason = classify(st, body, stored)
        got_reason = escape(reason.encode("utf-8", "surrogateescape")) if verdict == "err" else ""
        return c, verdict, reason, got_reason

    bad = []
    with ThreadPoolExecutor(workers) as ex:
        for c, verdict, reason, got_reason in ex.map(one, enumerate(cases)):
            want_reason = c.reason_text if c.verdict == "err" else ""
            if verdict != c.verdict or got_reason != want_reason:
                bad.append((c, verdict, reason))
    return bad


def check_outputs_influxd(port, cases, http_request, workers=8):
    """Writes the relay's output (Case.output) of every case influxd accepts (VERDICT ok) alone
    to its own database on the influxd at port: influxd must take it (204) and, for a stamped
    one, store the point at the stamp. Returns a list of (case, problem) for each that fails."""
    import json
    import urllib.parse
    from concurrent.futures import ThreadPoolExecutor

    def query(q, db=None):
        path = "/query?" + urllib.parse.urlencode({"q": q, "epoch": "ns",
                                                   **({"db": db} if db else {})})
        st, _, body = http_request(port, "POST", path)
        if st != 200:
            raise AssertionError(f"influxd query {q!r}: {st} {body!r}")
        return json.loads(body)

    def one(idx_case):
        idx, c = idx_case
        db = "out%04d" % idx
        query(f"CREATE DATABASE {db}")
        st, _, body = http_request(port, "POST", f"/write?db={db}&precision={c.prec}",
                                   body=c.output)
        if st != 204:
            return c, f"influxd answered {st} {body!r} to {c.output!r}"
        if c.relay == "+":
            series = query("SELECT * FROM /.*/", db)["results"][0].get("series", [])
            times = [v[0] for s in series for v in s["values"]]
            want = NOW_NS // PREC_NS[c.prec] * PREC_NS[c.prec]
            if times != [want]:
                return c, f"stored at {times}, stamped {want}"
        return None

    todo = [(k, c) for k, c in enumerate(cases) if c.verdict == "ok" and c.output is not None]
    with ThreadPoolExecutor(workers) as ex:
        return [r for r in ex.map(one, todo) if r is not None]
