"""https backends (docs/influxdb-relay.conf.5 skip-tls-verification): with the default
skip-tls-verification = false the backend's certificate is verified against the system trust
store and its name against the location's host; a backend that fails verification gets nothing
and the log says why. With true, a self-signed backend is accepted.

The relay has no option naming a CA file: libcurl uses the system store, /etc/ssl/certs
(Debian's libcurl: CAINFO /etc/ssl/certs/ca-certificates.crt, CAPATH /etc/ssl/certs, no
environment variable). To give it "a CA the system trusts" without touching the machine, the
relay runs in a private mount namespace where a directory holding the test CA is mounted over
/etc/ssl/certs (harness.trust_store_prefix)."""

import json
import os
import shutil
import unittest

from harness import (RelayTestCase, http_request, make_ca, make_leaf,
                     trust_store_prefix, wait_until)

RE_PROBLEM = 'Problem posting to relay "r1" backend "%s": '


class BackendTlsTest(RelayTestCase):

    def post(self, port, body):
        return http_request(port, "POST", "/write?db=db", body)

    def test_self_signed_refused_when_verifying(self):
        cert = make_leaf(self.tmp, "self", ca=None)
        m = self.mock(tls=cert)
        conf, port = self.http_relay_config([m.url])  # skip-tls-verification: default false
        r = self.relay(conf, wait_ports=[port])
        st, _, body = self.post(port, b"m v=1 1\n")
        self.assertEqual((st, json.loads(body)), (503, {"error": "unable to write points"}))
        wait_until(lambda: RE_PROBLEM % "b1" in r.log(), what="the reason in the log")
        line = [x for x in r.log().splitlines() if RE_PROBLEM % "b1" in x][0]
        self.assertRegex(line, r"(?i)self[- ]signed certificate")
        # Positive control: the same backend with verification off takes the write.
        conf2, port2 = self.http_relay_config([m.url], output_extra="skip-tls-verification = true",
                                              relay_name="r2")
        self.relay(conf2, wait_ports=[port2], name="skip.ini")
        st, _, body = self.post(port2, b"m v=2 2\n")
        self.assertEqual(st, 204, body)
        self.assertEqual([w["body"] for w in m.writes()], [b"m v=2 2\n"])

    def test_backend_signed_by_a_trusted_ca_accepted(self):
        """Three https backends in a relay whose system store holds the test CA: b1's
        certificate is signed by that CA (accepted), b2's by another CA (refused), b3's by the
        trusted CA but for another host name (refused)."""
        trusted, other = make_ca(self.tmp, "trusted-ca"), make_ca(self.tmp, "other-ca")
        good = self.mock(tls=make_leaf(self.tmp, "good", trusted))
        stranger = self.mock(tls=make_leaf(self.tmp, "stranger", other))
        misnamed = self.mock(tls=make_leaf(self.tmp, "misnamed", trusted,
                                           san="DNS:db.example.invalid"))
        store = os.path.join(self.tmp, "store")
        os.mkdir(store)
        shutil.copy(trusted[0], os.path.join(store, "ca-certificates.crt"))
        conf, port = self.http_relay_config([good.url, stranger.url, misnamed.url],
                                            extra="write-consistency = all")
        r = self.relay(conf, wait_ports=[port], prefix=trust_store_prefix(store))
        st, _, body = self.post(port, b"t v=1 1\n")
        self.assertGreaterEqual(st, 500, body)  # consistency all: b2 and b3 failed
        self.assertEqual([w["body"] for w in good.writes()], [b"t v=1 1\n"])
        self.assertEqual(stranger.requests, [])
        self.assertEqual(misnamed.requests, [])
        wait_until(lambda: RE_PROBLEM % "b2" in r.log() and RE_PROBLEM % "b3" in r.log(),
                   what="b2's and b3's reasons in the log")
        log = r.log().splitlines()
        b2 = [x for x in log if RE_PROBLEM % "b2" in x][0]
        b3 = [x for x in log if RE_PROBLEM % "b3" in x][0]
        self.assertRegex(b2, r"(?i)certificate")
        self.assertRegex(b3, r"(?i)(subject name|does not match|no alternative)")
        self.assertNotIn(RE_PROBLEM % "b1", r.log())


if __name__ == "__main__":
    unittest.main()
