"""The official InfluxDB v2 client (@influxdata/influxdb-client, npm; test/it/node, installed by
scripts/setup.sh with npm ci) writes through the relay's /api/v2/write as an application of
InfluxDB 1.8 does: a "user:password" token, bucket "db" or "db/rp", gzipped bodies. The points
land in a real influxd 1.6.7 that has auth-enabled (which reads the token only as the Basic
credentials the relay makes of it), and the client reads the relay's v2 errors."""

import os
import subprocess
import unittest

from harness import HERE, RelayTestCase, require_tool
from test_apis_transport import ADMIN, ADMIN_PW, AuthInfluxd

NODE_DIR = os.path.join(HERE, "node")
# A token is "user:password" split at the first colon; a blank would make it no token at all
# (InfluxDB 1.8 splits the header at blanks), so this password has a colon and no blank.
WRITER, WRITER_PW = "writer", "wr:it3r"


class NodeClientTest(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.node = require_tool("node", "nodejs")
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@influxdata",
                                          "influxdb-client")):
            raise AssertionError("test/it/node has no node_modules: run scripts/setup.sh")
        self.i = AuthInfluxd(self.tmp).start()
        self.influxds.append(self.i)
        st, _, b = self.i.query_as("CREATE USER \"%s\" WITH PASSWORD '%s' WITH ALL PRIVILEGES"
                                   % (ADMIN, ADMIN_PW), user=None)
        self.assertEqual(st, 200, b)
        for q in ('CREATE DATABASE "db"',
                  'CREATE RETENTION POLICY "week" ON "db" DURATION 3650d REPLICATION 1',
                  "CREATE USER \"%s\" WITH PASSWORD '%s'" % (WRITER, WRITER_PW),
                  'GRANT WRITE ON "db" TO "%s"' % WRITER):
            st, _, b = self.i.query_as(q)
            self.assertEqual(st, 200, b)
        # The relay's output forwards the client's credentials (no username of its own).
        conf, self.port = self.http_relay_config([self.i.url])
        self.relay(conf, wait_ports=[self.port])

    def write(self, token, bucket, precision, count, measurement):
        return subprocess.run(
            [self.node, os.path.join(NODE_DIR, "v2_write.js"), "http://127.0.0.1:%d" % self.port,
             token, bucket, precision, str(count), measurement],
            capture_output=True, timeout=120, cwd=NODE_DIR)

    def test_points_land_with_a_user_password_token(self):
        token = "%s:%s" % (WRITER, WRITER_PW)
        for bucket, prec, n, m in (("db", "ns", 1200, "plain"), ("db/week", "s", 1000, "inweek"),
                                   ("db/", "ms", 10, "slash")):
            r = self.write(token, bucket, prec, n, m)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(self.i.count_as_admin("db", "plain"), 1200)
        self.assertEqual(self.i.count_as_admin("db", "slash"), 10)
        st, _, b = self.i.query_as('SELECT count("v") FROM "week"."inweek"', db="db")
        self.assertEqual(st, 200)
        self.assertIn(b'"values":[["1970-01-01T00:00:00Z",1000]]', b)
        # The times are the client's, in its precision.
        st, _, b = self.i.query_as('SELECT "v" FROM "week"."inweek" WHERE "n" = \'3\' LIMIT 1',
                                   db="db")
        self.assertIn(b'"2023-11-14T22:13:23Z",3]', b)

    def test_client_reads_the_relays_v2_errors(self):
        r = self.write("%s:wrong" % WRITER, "db", "ns", 10, "m")
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode()
        self.assertIn("HttpError status=401 code=unauthorized message=authorization failed", err)
        r = self.write("%s:%s" % (WRITER, WRITER_PW), "/rp", "ns", 10, "m")
        self.assertEqual(r.returncode, 1)
        self.assertIn('HttpError status=404 code=not found message=bucket name "/rp" is in db/rp '
                      'form but has an empty database', r.stderr.decode())
        r = self.write("%s:%s" % (WRITER, WRITER_PW), "nodb", "ns", 10, "m")
        # influxd looks the database up before the user's rights: 404, not 403.
        self.assertEqual(r.returncode, 1)
        self.assertIn('HttpError status=404 code=not found message=database not found: "nodb"',
                      r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
