"""POST /write through the relay into two real influxd 1.6.7: every point arrives exactly once in
each under concurrent load, and InfluxDB's own answers (partial writes, unknown database) reach
the client as influxd gives them."""

import json
import random
import threading
import time
import unittest

from harness import RelayTestCase, http_request, wait_until


class WriteInfluxdTest(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.dbs = [self.influxd(db="db"), self.influxd(db="db")]
        conf, self.port = self.http_relay_config([i.url for i in self.dbs])
        self.r = self.relay(conf, wait_ports=[self.port])

    def rows_everywhere(self, q, n):
        """The rows of q on each influxd once each has n (consistency one answers with the first
        204: the other copy may still be on its way)."""
        for i in self.dbs:
            wait_until(lambda: len(i.rows("db", q)) >= n, what="%d rows for %s" % (n, q))
        return [i.rows("db", q) for i in self.dbs]

    def post(self, body, query="db=db", headers=None):
        return http_request(self.port, "POST", "/write?" + query, body, headers)

    def test_50_clients_100_requests_mixed_sizes(self):
        clients, requests = 50, 100
        sizes = [1, 2, 5, 10, 50, 100, 500]
        errors = []
        sent = [0] * clients

        def client(c):
            rnd = random.Random(c)
            try:
                for r in range(requests):
                    n = rnd.choice(sizes)
                    # Unique series and timestamp per point: nothing is overwritten.
                    body = "".join("load,c=%d,r=%d value=%di %d\n" % (c, r, i, 1000000 + i)
                                   for i in range(n))
                    st, _, b = self.post(body, "db=db&precision=s")
                    if st != 204:
                        errors.append((st, b))
                    sent[c] += n
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join(300)
        took = time.monotonic() - t0
        self.assertEqual(errors[:5], [])
        total = sum(sent)
        # consistency one: the answer came with the first 204; the other copy may still be on its
        # way, so wait (bounded) for both to hold everything. Then a marker write: each backend's
        # queue is FIFO, so once the marker is in an influxd whatever came before it is too.
        for i in self.dbs:
            wait_until(lambda: i.count("db", "load") >= total, timeout=30,
                       what="all points in influxd %d" % i.http_port)
        self.assertEqual(self.post("marker value=1i 1\n")[0], 204)
        for i in self.dbs:
            wait_until(lambda: i.count("db", "marker") == 1, timeout=30,
                       what="the marker in influxd %d" % i.http_port)
            self.assertEqual(i.count("db", "load"), total)
        print("\n%d points in %d requests from %d clients in %.1fs" % (
            total, clients * requests, clients, took))

    def test_partial_write_like_influxd(self):
        body = b"m v=1 1\nbad line\nm v=2 2\n"
        st, h, relay_body = self.post(body)
        self.assertEqual(st, 400)
        self.assertEqual(h.get("content-type"), "application/json")
        direct_st, _, direct_body = self.dbs[0].write("db", body)
        self.assertEqual(direct_st, 400)
        # influxd itself says dropped=0 here; the relay counts what it dropped.
        self.assertEqual(json.loads(relay_body)["error"],
                         json.loads(direct_body)["error"].replace("dropped=0", "dropped=1"))
        for rows in self.rows_everywhere("SELECT v FROM m", 2):
            self.assertEqual(len(rows), 2)

    def test_no_valid_line_like_influxd(self):
        body = b"bad line\nalso bad\n"
        st, _, relay_body = self.post(body)
        direct_st, _, direct_body = self.dbs[0].write("db", body)
        self.assertEqual((st, relay_body), (direct_st, direct_body))

    def test_unknown_database_passthrough(self):
        st, h, body = self.post(b"m v=1 1\n", "db=nope")
        self.assertEqual(st, 404)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(json.loads(body), {"error": 'database not found: "nope"'})

    def test_precision_and_stamping(self):
        t0 = int(time.time())
        st, _, _ = self.post(b"p v=1\np v=2 1500000000\n", "db=db&precision=s")
        self.assertEqual(st, 204)
        rows = self.rows_everywhere("SELECT v FROM p", 2)
        self.assertEqual(rows[0], rows[1])  # the same stamp on both
        stamps = sorted(r[0] for r in rows[0])
        self.assertEqual(stamps[0], 1500000000 * 10**9)
        self.assertTrue(t0 * 10**9 <= stamps[1] <= (int(time.time()) + 1) * 10**9)
        self.assertEqual(stamps[1] % 10**9, 0)  # precision s: whole seconds

    def test_us_precision_not_1000x_off(self):
        st, _, _ = self.post(b"u v=1 1500000000000000\n", "db=db&precision=us")
        self.assertEqual(st, 204)
        for rows in self.rows_everywhere("SELECT v FROM u", 1):
            self.assertEqual(rows[0][0], 1500000000 * 10**9)


if __name__ == "__main__":
    unittest.main()
