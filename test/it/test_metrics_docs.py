"""docs/operations.md stays true to /metrics: every family the relay exports is documented, the
alert rules are valid YAML and name only metrics that exist, and the base families' names are
all exported."""

import os
import re
import unittest

import yaml

from harness import RelayTestCase, SRC
import prom

DOC = os.path.join(SRC, "docs", "operations.md")


def doc_text():
    with open(DOC) as f:
        return f.read()


def yaml_blocks(text):
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


class MetricsDocsTest(RelayTestCase):

    def test_every_family_documented(self):
        m = self.mock()
        cfg, port = self.http_relay_config([m.url])
        self.relay(cfg, wait_ports=[port])
        s = prom.scrape(port)
        text = doc_text()
        for family in s.types:
            self.assertIn("`%s" % family, text, "%s not in docs/operations.md" % family)
        self.assertEqual(set(prom.FAMILIES) - set(s.types), set())

    def test_alert_rules_parse_and_name_real_metrics(self):
        known = set(prom.FAMILIES) | set(prom.EXTRA_FAMILIES)
        rules = [r for b in yaml_blocks(doc_text()) if isinstance(b, dict) and "groups" in b
                 for g in b["groups"] for r in g["rules"]]
        self.assertGreaterEqual(len(rules), 4)
        alerts = {r["alert"] for r in rules}
        for want in ("InfluxdbRelayBackendDown", "InfluxdbRelayQueueHigh",
                     "InfluxdbRelayWritesDropped"):
            self.assertIn(want, alerts)
        for r in rules:
            self.assertIn("expr", r)
            self.assertEqual(r["expr"].count("("), r["expr"].count(")"), r["alert"])
            for name in re.findall(r"influxdb_relay_[a-z_]+", r["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                self.assertIn(base, known, "%s: unknown metric %s" % (r["alert"], name))
        backend_down = next(r for r in rules if r["alert"] == "InfluxdbRelayBackendDown")
        self.assertEqual(backend_down["for"], "1m")


if __name__ == "__main__":
    unittest.main()
